import LedgerRPC
import Metrics
import Paxos
import Synchronization

/// The transport's fault layer (DESIGN §7): loss, duplication and delay of peer messages, per peer and direction,
/// switched on only by the `SetLinkFaults` test control (a replica without `test_controls: true` refuses it).
/// `PeerLinks` passes every outbound message through it and `PeerService` every inbound one; with no fault set, a
/// message goes straight through.
///
/// Faults are drawn per message, so one `Ready`'s batch may lose some messages and keep others; a delayed message is
/// delivered by its own task after its delay, so later messages may overtake it (reordering).
final class LinkFaultLayer: Sendable {
    private struct Link: Hashable {
        var peer: ReplicaID
        var inbound: Bool
    }

    /// The replica's peers: the links a fault can name.
    let peers: [ReplicaID]
    private let faults = Mutex<[Link: LinkFault]>([:])
    private let dropped: Counter
    private let duplicated: Counter
    private let delayed: Counter

    /// - Parameter factory: where the counters go (the replica's own registry when its node hosts several).
    init(peers: [ReplicaID], factory: any MetricsFactory = MetricsSystem.factory) {
        self.peers = peers
        let label = "ledger_link_fault_messages_total"
        dropped = Counter(label: label, dimensions: [("effect", "dropped")], factory: factory)
        duplicated = Counter(label: label, dimensions: [("effect", "duplicated")], factory: factory)
        delayed = Counter(label: label, dimensions: [("effect", "delayed")], factory: factory)
    }

    /// Replaces every fault with `list` (empty heals every link); returns how many links are faulty now. A fault
    /// naming no peer applies to every peer; a later fault on a link replaces an earlier one.
    func set(_ list: [LinkFault]) throws(WireError) -> Int {
        var links: [Link: LinkFault] = [:]
        for (index, fault) in list.enumerated() {
            if let peer = fault.peer, !peers.contains(peer) {
                throw WireError(
                    field: "faults[\(index)].peer",
                    "\(peer) is not a peer of this replica; its peers are \(peers.map(\.description).joined(separator: ", "))"
                )
            }
            let directions =
                switch fault.direction {
                case .outbound: [false]
                case .inbound: [true]
                case .both: [false, true]
                }
            for peer in fault.peer.map({ [$0] }) ?? peers {
                for inbound in directions { links[Link(peer: peer, inbound: inbound)] = fault }
            }
        }
        faults.withLock { $0 = links }
        return links.count
    }

    /// Passes `messages` on the link from this replica to `peer` (`inbound: false`) or from `peer` to it, and returns
    /// what goes through now, in order. Delayed messages reach `later` after their delay, each from a task of its own.
    func pass(
        _ messages: [LedgerMessage], peer: ReplicaID, inbound: Bool,
        later: @escaping @Sendable ([LedgerMessage]) async -> Void
    ) -> [LedgerMessage] {
        guard let fault = faults.withLock({ $0[Link(peer: peer, inbound: inbound)] }) else { return messages }
        var now: [LedgerMessage] = []
        var random = SystemRandomNumberGenerator()
        for message in messages {
            if fault.loss > 0, Double.random(in: 0..<1, using: &random) < fault.loss {
                dropped.increment()
                continue
            }
            let copies = fault.duplicate > 0 && Double.random(in: 0..<1, using: &random) < fault.duplicate ? 2 : 1
            if copies == 2 { duplicated.increment() }
            for _ in 0..<copies {
                let hold = fault.delay + fault.jitter * Double.random(in: 0...1, using: &random)
                guard hold > .zero else {
                    now.append(message)
                    continue
                }
                delayed.increment()
                Task {
                    try? await Task.sleep(for: hold)
                    await later([message])
                }
            }
        }
        return now
    }
}
