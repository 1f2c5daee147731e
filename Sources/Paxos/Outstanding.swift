/// What a replica is waiting for, for a person reading a stuck run: the simulator prints it when a run ends
/// unhealed, and a status page may show it. A read-only view of the replica's memory; building it changes nothing.
public struct Outstanding: Sendable, Equatable, CustomStringConvertible {
    /// A slot this leader proposed and does not know chosen, with the replicas known to have accepted it.
    public struct Proposal: Sendable, Equatable {
        public var slot: Slot
        public var acceptedBy: [ReplicaID]
        /// Ticks since the proposal was last sent.
        public var sentAgo: Tick
    }

    /// Missing chosen slots: known chosen through `announcedThrough`, held through `chosenThrough`.
    public struct CatchUp: Sendable, Equatable {
        public var chosenThrough: Slot
        public var announcedThrough: Slot
        /// The replica asked last (or to ask first), and how many ticks ago, if a request is out.
        public var source: ReplicaID?
        public var askedAgo: Tick?
    }

    /// At a leader: its unchosen proposals, the requests queued for a slot, each laggard's late slots, and the
    /// highest chosen slot every peer was told of.
    public var proposals: [Proposal] = []
    public var queuedRequests = 0
    public var laggardSlots: [ReplicaID: [Slot]] = [:]
    public var promptPeers: [ReplicaID] = []
    public var announcedChosenThrough: Slot?
    /// At a candidate: the peers whose promise is missing.
    public var promisesMissing: [ReplicaID] = []
    public var catchUp: CatchUp?
    /// Client requests waiting here for an outcome (the first few ids, oldest deadline first), and forwards not sent.
    public var waiting: [RequestID] = []
    public var waitingCount = 0
    public var forwardsUnsent = 0
    public var readsWaiting = 0

    public init() {}

    public var description: String {
        var parts: [String] = []
        if !proposals.isEmpty {
            let items = proposals.map { "\($0.slot) accepted by \($0.acceptedBy) sent \($0.sentAgo) ago" }
            parts.append("proposals [\(items.joined(separator: "; "))]")
        }
        if queuedRequests > 0 { parts.append("\(queuedRequests) requests queued") }
        if !promptPeers.isEmpty { parts.append("prompt peers \(promptPeers)") }
        let late = laggardSlots.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }
        if !late.isEmpty { parts.append("late slots \(late.map { "\($0.key): \($0.value)" }.joined(separator: ", "))") }
        if let announced = announcedChosenThrough { parts.append("announced chosen through \(announced)") }
        if !promisesMissing.isEmpty { parts.append("promises missing from \(promisesMissing)") }
        if let catchUp {
            let asked =
                catchUp.askedAgo.map { "asked \(catchUp.source.map(String.init(describing:)) ?? "-") \($0) ago" }
                ?? "not asked yet"
            parts.append("catch-up \(catchUp.chosenThrough + 1)...\(catchUp.announcedThrough) (\(asked))")
        }
        if waitingCount > 0 {
            let more = waitingCount > waiting.count ? ", ..." : ""
            parts.append(
                "\(waitingCount) requests waiting (\(waiting.map(String.init(describing:)).joined(separator: ", "))\(more))"
            )
        }
        if forwardsUnsent > 0 { parts.append("\(forwardsUnsent) forwards unsent") }
        if readsWaiting > 0 { parts.append("\(readsWaiting) reads waiting") }
        return parts.isEmpty ? "nothing" : parts.joined(separator: "; ")
    }
}
