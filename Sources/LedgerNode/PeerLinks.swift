import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerClient
import LedgerRPC
import Logging
import Paxos
import ServiceLifecycle

/// The outbound half of replica-to-replica traffic: one long-lived client stream to each peer, carrying every
/// `Ready`'s messages for that peer as one `PeerBatch`. A stream that fails (the peer restarted or is unreachable)
/// is opened again with backoff; what was queued meanwhile is bounded and the oldest is dropped first, because Paxos
/// retransmits whatever still matters.
public final class PeerLinks: PeerSender, Service {
    /// A peer's address.
    public struct Peer: Sendable {
        public var replica: ReplicaID
        public var host: String
        public var port: Int

        public init(replica: ReplicaID, host: String, port: Int) {
            self.replica = replica
            self.host = host
            self.port = port
        }
    }

    /// Batches queued per peer while its stream is down. A leader sends at most one batch per peer per `Ready`, so
    /// this is a few hundred milliseconds of traffic; older batches are stale by the time the peer is back.
    static let queuedBatchesMax = 1_024
    /// Reconnection backoff: quick enough to rejoin within a heartbeat interval after a restart, capped so a dead
    /// peer costs one connection attempt a second.
    static let backoffInitial = Duration.milliseconds(20)
    static let backoffMax = Duration.seconds(1)

    private let cluster: String
    private let me: ReplicaID
    private let peers: [Peer]
    private let logger: Logger
    private let queues: [ReplicaID: PeerQueue]
    private let security: ConnectionSecurity
    private let faults: LinkFaultLayer

    init(
        cluster: String, me: ReplicaID, peers: [Peer], security: ConnectionSecurity, faults: LinkFaultLayer,
        logger: Logger
    ) {
        self.cluster = cluster
        self.security = security
        self.faults = faults
        self.me = me
        self.peers = peers
        self.logger = logger
        self.queues = Dictionary(
            uniqueKeysWithValues: peers.map { ($0.replica, PeerQueue(capacity: Self.queuedBatchesMax)) })
    }

    public func send(_ messages: [LedgerMessage], to peer: ReplicaID) {
        guard let queue = queues[peer] else { return }
        let now = faults.pass(messages, peer: peer, inbound: false) { queue.push($0) }
        if !now.isEmpty { queue.push(now) }
    }

    /// Keeps one stream per peer open until shutdown.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for peer in peers {
                    group.addTask { await self.maintain(peer) }
                }
            }
        } onGracefulShutdown: {
            for queue in self.queues.values { queue.close() }
        }
    }

    private func maintain(_ peer: Peer) async {
        guard let queue = queues[peer.replica] else { return }
        var backoff = Self.backoffInitial
        while !queue.isClosed {
            do {
                let transport = try HTTP2ClientTransport.Posix(
                    target: .ipv4(address: peer.host, port: peer.port),
                    transportSecurity: security.client,
                    config: .defaults {
                        $0.backoff = .init(
                            initial: Self.backoffInitial, max: Self.backoffMax, multiplier: 2, jitter: 0.2)
                    })
                try await withGRPCClient(transport: transport) { client in
                    let api = Ledger_V1_Peer.Client(wrapping: client)
                    let request = StreamingClientRequest<Ledger_V1_PeerBatch> { writer in
                        // `next()` returns nil when this stream's task is cancelled (the call failed) or the queue
                        // closed; the queue keeps what it holds for the next stream either way.
                        while let messages = await queue.next() {
                            for batch in self.batches(messages, to: peer.replica) { try await writer.write(batch) }
                        }
                    }
                    _ = try await api.stream(request: request)
                }
                backoff = Self.backoffInitial
            } catch {
                logger.debug("stream to \(peer.replica) at \(peer.host):\(peer.port) broke: \(error); retrying")
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, Self.backoffMax)
            }
        }
    }

    /// The messages as wire batches of at most `WireLimits.messagesPerBatchMax` messages each.
    private func batches(_ messages: [LedgerMessage], to peer: ReplicaID) -> [Ledger_V1_PeerBatch] {
        stride(from: 0, to: messages.count, by: WireLimits.messagesPerBatchMax).map { start in
            let end = min(messages.count, start + WireLimits.messagesPerBatchMax)
            return Ledger_V1_PeerBatch(
                PeerBatch(cluster: cluster, from: me, to: peer, messages: Array(messages[start..<end])))
        }
    }
}

/// A bounded FIFO of batches for one peer with one consumer at a time. Unlike `AsyncStream`, a consumer whose task is
/// cancelled (its stream broke) leaves the queue open for the next stream; when full, the oldest batch is dropped.
final class PeerQueue: @unchecked Sendable {
    private let lock = NSLock()
    private let capacity: Int
    private var items: [[LedgerMessage]] = []
    private var head = 0
    private var waiter: CheckedContinuation<[LedgerMessage]?, Never>?
    private var closed = false

    init(capacity: Int) {
        self.capacity = capacity
    }

    var isClosed: Bool { lock.withLock { closed } }

    func push(_ messages: [LedgerMessage]) {
        let resumed: CheckedContinuation<[LedgerMessage]?, Never>? = lock.withLock {
            guard !closed else { return nil }
            if let waiter {
                self.waiter = nil
                return waiter
            }
            items.append(messages)
            if items.count - head > capacity { head += 1 }
            if head > capacity {
                items.removeFirst(head)
                head = 0
            }
            return nil
        }
        resumed?.resume(returning: messages)
    }

    /// The next batch; nil when the queue is closed or the calling task is cancelled.
    func next() async -> [LedgerMessage]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[LedgerMessage]?, Never>) in
                let immediate: [LedgerMessage]?? = lock.withLock {
                    if head < items.count {
                        let item = items[head]
                        head += 1
                        return .some(item)
                    }
                    if closed || Task.isCancelled { return .some(nil) }
                    waiter = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiting = lock.withLock {
                let waiting = waiter
                waiter = nil
                return waiting
            }
            waiting?.resume(returning: nil)
        }
    }

    func close() {
        let waiting = lock.withLock {
            closed = true
            let waiting = waiter
            waiter = nil
            return waiting
        }
        waiting?.resume(returning: nil)
    }
}
