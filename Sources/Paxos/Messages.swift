/// The messages replicas of one cluster exchange. Every message that carries a ballot is judged against the
/// receiver's promise; a message from a lower ballot is answered with `rejected`.
public enum Message<Command: Sendable & Equatable, State: Sendable & Equatable>: Sendable, Equatable {
    /// Prepare: a candidate asks for promises covering every slot from `firstSlot` on.
    case phase1a(ballot: Ballot, firstSlot: Slot)
    /// Promise: the acceptor promises `ballot` and reports what it holds from `firstSlot` on. Entries marked
    /// chosen are final; the others carry the ballot they were accepted under. `snapshotSlot` > 0 says every slot
    /// up to it is chosen and summarised by a snapshot the candidate can fetch with `catchUpRequest`. The acceptor
    /// knows every slot through `chosenThrough` chosen, and `memberships` are the configurations it derived from
    /// them: the candidate needs a majority of each configuration that governs a slot after the highest such slot.
    case phase1b(
        ballot: Ballot, snapshotSlot: Slot, chosenThrough: Slot, entries: [SlotEntry<Command>],
        memberships: Memberships)
    /// Accept: the leader of `ballot` proposes values for slots and tells what it knows chosen.
    case phase2a(ballot: Ballot, proposals: [SlotProposal<Command>], chosenThrough: Slot)
    /// Accepted: the acceptor stored these slots' values under `ballot`; it knows every slot up to `chosenThrough`
    /// chosen (how far behind it is: a learner is promoted, a voter counted as caught up, only near the leader).
    case phase2b(ballot: Ballot, slots: [Slot], chosenThrough: Slot)
    /// Commit notice: every slot up to `chosenThrough` is chosen; a replica holding a slot's value under `ballot`
    /// holds the chosen value, any other replica asks with `catchUpRequest`.
    case chosen(ballot: Ballot, chosenThrough: Slot)
    /// The leader is alive. Answered with `heartbeatAck`, which keeps the leader's view of its majority fresh.
    /// `round` numbers the leader's probes: an acknowledgement of round r proves the acceptor still followed this
    /// ballot after every read registered before probe r was sent (read index).
    case heartbeat(ballot: Ballot, chosenThrough: Slot, round: UInt64)
    /// `chosenThrough` is the acknowledger's chosen prefix: how far behind it is, even while no slot is proposed (a
    /// learner catching up on an idle cluster).
    case heartbeatAck(ballot: Ballot, round: UInt64, chosenThrough: Slot)
    /// The receiver has promised `promised`, higher than the ballot of the message it refuses; or it still hears
    /// from a live leader and refuses to depose it.
    case rejected(promised: Ballot)
    /// A lagging replica asks for the chosen values from `firstSlot` on.
    case catchUpRequest(firstSlot: Slot)
    /// Chosen values (and a snapshot when the asker is behind the sender's truncation point).
    case catchUpReply(snapshot: Snapshot<State>?, entries: [SlotEntry<Command>])
    /// A follower hands client requests to the leader it knows.
    case forward(requests: [Request<Command>])
    /// The leader of `ballot` is not a voter of the configuration that governs the next slot: it stepped down, and
    /// the receiver (the most up-to-date voter it knew) campaigns at once instead of waiting for its timer.
    case handover(ballot: Ballot)

    /// Whether the message states what its sender holds on disk (a promise, an acceptance, an acknowledgement under
    /// its promise, its log), and so must wait until the `Ready` that produced it is durable (`Ready` step 3). A
    /// proposal, a commit notice, a heartbeat, a catch-up request and a forwarded request claim nothing of the kind:
    /// the sender counts its own promise and acceptance only after its `Ready` is performed, and what it announces
    /// as chosen a majority already holds.
    public var waitsForStorage: Bool {
        switch self {
        case .phase1b, .phase2b, .heartbeatAck, .rejected, .catchUpReply: true
        case .phase1a, .phase2a, .chosen, .heartbeat, .catchUpRequest, .forward, .handover: false
        }
    }
}

/// A slot and what a replica holds for it.
public struct SlotEntry<Command: Sendable & Equatable>: Sendable, Equatable {
    public var slot: Slot
    public var entry: LogEntry<Command>

    public init(slot: Slot, entry: LogEntry<Command>) {
        self.slot = slot
        self.entry = entry
    }
}

/// A value the leader proposes for a slot.
public struct SlotProposal<Command: Sendable & Equatable>: Sendable, Equatable {
    public var slot: Slot
    public var value: SlotValue<Command>

    public init(slot: Slot, value: SlotValue<Command>) {
        self.slot = slot
        self.value = value
    }
}

/// A message and its destination.
public struct Envelope<Command: Sendable & Equatable, State: Sendable & Equatable>: Sendable, Equatable {
    public var to: ReplicaID
    public var message: Message<Command, State>

    public init(to: ReplicaID, message: Message<Command, State>) {
        self.to = to
        self.message = message
    }
}

/// Why an incoming message was refused without changing any state. The shell logs it.
public struct MessageRejection: Error, Equatable, Sendable, CustomStringConvertible {
    public var sender: ReplicaID
    public var reason: String

    public init(sender: ReplicaID, reason: String) {
        self.sender = sender
        self.reason = reason
    }

    public var description: String { "message from \(sender) refused: \(reason)" }
}
