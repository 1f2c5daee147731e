import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerClient
import LedgerRPC
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Paxos
import ServiceLifecycle
import Synchronization

/// The outbound half of replica-to-replica traffic of a node (the process hosting one or more replicas): one
/// long-lived connection to each other node, carrying every hosted replica's messages for the replicas of that
/// node, one `PeerBatch` per replica pair and `Ready`; its writer takes everything queued at once, in one write and
/// one flush. To a node with a peer port the batches go as frames (`PeerFrame`), else on a gRPC client stream to its
/// replica port. A connection that fails (the node restarted or is unreachable) is opened again with backoff; what
/// was queued meanwhile is bounded and the oldest is dropped first, because Paxos retransmits whatever still matters.
public final class PeerLinks: Service {
    /// A node to reach, and the replicas it hosts that replicas of this node talk to.
    public struct Destination: Sendable {
        public var host: String
        /// The node's replica port (gRPC).
        public var port: Int
        /// The node's peer port, when its clusters give one (`peer_port`).
        public var peerPort: Int?
        public var replicas: [ReplicaID]

        public init(host: String, port: Int, peerPort: Int? = nil, replicas: [ReplicaID]) {
            self.host = host
            self.port = port
            self.peerPort = peerPort
            self.replicas = replicas
        }
    }

    /// Batches queued per hosted replica and destination node while its stream is down. A leader sends at most one
    /// batch per peer per `Ready`, so this is a few hundred milliseconds of traffic; older batches are stale by the
    /// time the node is back.
    static let queuedBatchesMax = 1_024
    /// Reconnection backoff: quick enough to rejoin within a heartbeat interval after a restart, capped so a dead
    /// node costs one connection attempt a second.
    static let backoffInitial = Duration.milliseconds(20)
    static let backoffMax = Duration.seconds(1)

    /// The destinations, one queue each (by index), and the destination index of every replica a hosted replica
    /// talks to. Destinations are only ever added (`update`), so an index stays valid.
    private struct Routes {
        var destinations: [Destination] = []
        var queues: [PeerQueue] = []
        var route: [ReplicaID: Int] = [:]
    }

    private let routes = Mutex(Routes())
    /// The indexes of destinations added after `run` started, for it to open their streams.
    private let added = AsyncStream.makeStream(of: Int.self)
    private let logger: Logger
    private let queueCapacity: Int
    private let security: ConnectionSecurity
    /// How frames to a peer port are secured: this node's identity, or nil for plaintext.
    private let frameSecurity: NIOSSLContext?

    /// - Parameter hostedCount: how many replicas this node hosts (they share each destination's queue).
    public init(
        destinations: [Destination], hostedCount: Int, security: ConnectionSecurity, logger: Logger
    ) throws {
        self.security = security
        frameSecurity = try PeerFrame.tls(security, server: false)
        self.logger = logger
        queueCapacity = Self.queuedBatchesMax * max(1, hostedCount)
        _ = update(destinations: destinations)
    }

    /// Adds the destinations and replicas not known yet (a replica added to a hosted cluster; its node may be new or
    /// one this node reaches already); returns the indexes of the new destinations. Nothing is ever removed: a
    /// removed replica is simply no longer sent anything.
    @discardableResult
    func update(destinations: [Destination]) -> [Int] {
        let new = routes.withLock { routes in
            var new: [Int] = []
            for destination in destinations {
                let index: Int
                if let known = routes.destinations.firstIndex(where: {
                    $0.host == destination.host && $0.port == destination.port
                }) {
                    index = known
                    routes.destinations[index].replicas += destination.replicas.filter {
                        !routes.destinations[index].replicas.contains($0)
                    }
                } else {
                    index = routes.destinations.count
                    routes.destinations.append(destination)
                    routes.queues.append(PeerQueue(capacity: queueCapacity))
                    new.append(index)
                }
                for replica in destination.replicas where routes.route[replica] == nil { routes.route[replica] = index }
            }
            return new
        }
        for index in new { added.continuation.yield(index) }
        return new
    }

    /// What one hosted replica sends through: its messages, after its fault layer, go on its destination's stream.
    func sender(cluster: String, me: ReplicaID, faults: LinkFaultLayer) -> any PeerSender {
        ReplicaLinks(links: self, cluster: cluster, me: me, faults: faults)
    }

    fileprivate func enqueue(_ messages: [LedgerMessage], cluster: String, from: ReplicaID, to peer: ReplicaID) {
        guard !messages.isEmpty,
            let queue = routes.withLock({ routes in routes.route[peer].map { routes.queues[$0] } })
        else { return }
        queue.push(
            stride(from: 0, to: messages.count, by: WireLimits.messagesPerBatchMax).map { start in
                let end = min(messages.count, start + WireLimits.messagesPerBatchMax)
                return PeerBatch(cluster: cluster, from: from, to: peer, messages: Array(messages[start..<end]))
            })
    }

    /// Keeps one stream per destination open until shutdown, those added meanwhile too.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                // Every destination comes through `added`, those given at init first.
                for await index in added.stream {
                    group.addTask { await self.maintain(index) }
                }
            }
        } onGracefulShutdown: {
            let queues = self.routes.withLock { $0.queues }
            self.added.continuation.finish()
            for queue in queues { queue.close() }
        }
    }

    private func maintain(_ index: Int) async {
        // The destination's replicas may grow later; its host and ports never change.
        let (destination, queue) = routes.withLock { ($0.destinations[index], $0.queues[index]) }
        var backoff = Self.backoffInitial
        while !queue.isClosed {
            do {
                if let peerPort = destination.peerPort {
                    try await sendFrames(to: destination.host, port: peerPort, from: queue) {
                        backoff = Self.backoffInitial
                    }
                    continue
                }
                let transport = try HTTP2ClientTransport.Posix(
                    target: .ipv4(address: destination.host, port: destination.port),
                    transportSecurity: security.client,
                    config: .defaults {
                        $0.backoff = .init(
                            initial: Self.backoffInitial, max: Self.backoffMax, multiplier: 2, jitter: 0.2)
                        // A write is everything queued for the node already: holding its flush only delays it.
                        $0.connection.flushCoalescing = nil
                        $0.channelDebuggingCallbacks.onCreateTCPConnection = DeadPaths.bound
                    })
                try await withGRPCClient(transport: transport) { client in
                    let api = Ledger_V1_Peer.Client(wrapping: client)
                    let request = StreamingClientRequest<Ledger_V1_PeerBatch> { writer in
                        // `next()` returns nil when this stream's task is cancelled (the call failed) or the queue
                        // closed; the queue keeps what it holds for the next stream either way.
                        while let batches = await queue.next() {
                            try await writer.write(contentsOf: batches.map(Ledger_V1_PeerBatch.init))
                        }
                    }
                    _ = try await api.stream(request: request)
                }
                backoff = Self.backoffInitial
            } catch {
                logger.debug(
                    "stream to \(destination.replicas) at \(destination.host):\(destination.port) broke: \(error); retrying"
                )
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, Self.backoffMax)
            }
        }
    }
}

extension PeerLinks {
    /// Sends the queue's batches as frames on one connection to `host:port` until the queue closes or the connection
    /// fails; `connected` runs once the connection is open. A write completes once the kernel has the bytes, so a
    /// node that does not read slows this writer down and the queue, bounded, drops its oldest batches.
    fileprivate func sendFrames(
        to host: String, port: Int, from queue: PeerQueue, connected: () -> Void
    ) async throws {
        let channel = try await PeerFrame.connect(host: host, port: port, tls: frameSecurity)
        defer { channel.close(promise: nil) }
        connected()
        while let batches = await queue.next() {
            try await channel.writeAndFlush(try PeerFrame.encode(batches, allocator: channel.allocator)).get()
        }
    }
}

/// One hosted replica's view of its node's `PeerLinks`.
private struct ReplicaLinks: PeerSender {
    let links: PeerLinks
    let cluster: String
    let me: ReplicaID
    let faults: LinkFaultLayer

    func send(_ messages: [LedgerMessage], to peer: ReplicaID) {
        let (links, cluster, me) = (links, cluster, me)
        let now = faults.pass(messages, peer: peer, inbound: false) { delayed in
            links.enqueue(delayed, cluster: cluster, from: me, to: peer)
        }
        links.enqueue(now, cluster: cluster, from: me, to: peer)
    }
}

/// A bounded FIFO of peer batches for one destination with one consumer at a time. Unlike `AsyncStream`, a consumer
/// whose task is cancelled (its stream broke) leaves the queue open for the next stream; when full, the oldest batch
/// is dropped. The consumer takes everything queued at once.
final class PeerQueue: @unchecked Sendable {
    private let lock = NSLock()
    private let capacity: Int
    private var items: [PeerBatch] = []
    private var waiter: CheckedContinuation<[PeerBatch]?, Never>?
    private var closed = false

    init(capacity: Int) {
        self.capacity = capacity
    }

    var isClosed: Bool { lock.withLock { closed } }

    func push(_ batches: [PeerBatch]) {
        let resumed: CheckedContinuation<[PeerBatch]?, Never>? = lock.withLock {
            guard !closed else { return nil }
            if let waiter {
                self.waiter = nil
                return waiter
            }
            items.append(contentsOf: batches)
            if items.count > capacity { items.removeFirst(items.count - capacity) }
            return nil
        }
        resumed?.resume(returning: batches)
    }

    /// Every batch queued, at least one; nil when the queue is closed or the calling task is cancelled.
    func next() async -> [PeerBatch]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[PeerBatch]?, Never>) in
                let immediate: [PeerBatch]?? = lock.withLock {
                    if !items.isEmpty {
                        defer { items.removeAll(keepingCapacity: true) }
                        return .some(items)
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
