/// Everything a replica asks its shell to do after one or more inputs, in the order the shell must do it:
///
/// 1. send the `messages` that claim nothing about this replica's storage (`Message.waitsForStorage` false: a
///    proposal, a commit notice, a heartbeat, a request) at once, if it likes: the storage write of step 2 then
///    overlaps their trip. The replica's memory already counts its own promise and acceptance, so the next `Ready`
///    must not be taken before step 2 is done (an answer to those messages could complete a quorum with a vote not
///    yet on disk). Inputs may arrive meanwhile: whatever they cause leaves only with that next `Ready`;
/// 2. write `persist` (one storage transaction, synchronous; several inputs share it: group commit), durably (an
///    fsync) when `persistMustBeDurable`; otherwise the write may reach the disk with a later durable one, and a
///    crash may lose it (and every write after it, but never one without those before);
/// 3. then send the other `messages` (a promise or an acceptance never leaves before the state it states is durable);
/// 4. then perform `apply` in order on the state machine (installing snapshots and applying chosen slots),
///    persisting the applied state and its slot together, in the same transaction as step 2 or after it;
/// 5. then deliver `outcomes` to the clients waiting on this replica; an outcome `.chosen(slot)` is answered
///    with the state machine's result for that request in that slot;
/// 6. if `snapshotDue`, call `Replica.compact(state:)` with the state machine's state after step 4.
///
/// Why a write may be lazy: what a replica must not forget is what it promised and what it accepted, since others
/// count on it. A chosen mark and an applied slot are facts a majority holds durably as acceptances; a replica that
/// loses them learns them again and applies again, to the same result (applying is deterministic). A single-replica
/// cluster is its own majority, so all its writes are durable.
public struct Ready<Command: Sendable & Equatable, State: Sendable & Equatable>: Sendable, Equatable {
    public var persist = Persist<Command, State>()
    public var messages: [Envelope<Command, State>] = []
    public var apply: [ApplyStep<Command, State>] = []
    public var outcomes: [RequestOutcome] = []
    public var snapshotDue = false
    /// Whether step 2 must reach the disk before step 3: `persist` changes the promise, stores a snapshot, accepts a
    /// value not known to be chosen, or marks chosen the last slot before a new configuration governs (or the cluster
    /// has one voter). Set by `Replica.takeReady()`.
    public var persistMustBeDurable = false

    public init() {}

    /// True when the shell has nothing to do.
    public var isEmpty: Bool {
        persist.isEmpty && messages.isEmpty && apply.isEmpty && outcomes.isEmpty && !snapshotDue
    }
}

/// The durable writes of one `Ready`.
public struct Persist<Command: Sendable & Equatable, State: Sendable & Equatable>: Sendable, Equatable {
    /// The new promise, when it changed.
    public var promised: Ballot?
    /// A new snapshot; the log entries up to its slot are deleted. Written before `entries`.
    public var snapshot: Snapshot<State>?
    /// Log entries to insert or replace (accepted values, chosen marks).
    public var entries: [Slot: LogEntry<Command>] = [:]

    public init() {}

    public var isEmpty: Bool { promised == nil && snapshot == nil && entries.isEmpty }
}

/// One step of applying, in log order.
public enum ApplyStep<Command: Sendable & Equatable, State: Sendable & Equatable>: Sendable, Equatable {
    /// Replace the state machine's state with the snapshot (this replica was behind the sender's truncation point).
    case installSnapshot(Snapshot<State>)
    /// Apply the chosen value of `slot`. `ballot` is `value.ballot`, the ballot of the leader that first proposed
    /// the value: the same on every replica, so records that keep it (the ledger's datastore) agree. A no-op still
    /// advances the applied slot.
    case slot(Slot, ballot: Ballot, value: SlotValue<Command>)
}

/// What became of a client request submitted to this replica.
public struct RequestOutcome: Sendable, Equatable {
    public var id: RequestID
    public var outcome: Outcome

    public init(id: RequestID, outcome: Outcome) {
        self.id = id
        self.outcome = outcome
    }
}

/// The outcome of a client request.
public enum Outcome: Sendable, Equatable {
    /// Applied in this slot; the shell answers with the state machine's result.
    case chosen(slot: Slot)
    /// This replica does not lead and does not forward; try the hinted replica.
    case notLeader(hint: ReplicaID?)
    /// Not proposed: no leader with a live majority was found within the consensus timeout. Nothing was applied.
    case noQuorum
    /// Proposed, but not known to be chosen within the consensus timeout. It may still be applied: retry with the
    /// same request id (applied at most once) to learn the result.
    case timedOut
    /// Refused at once because the leader's queue is full. Nothing was applied.
    case busy
    /// A reconfiguration that was refused, before it was proposed (another change in progress, a majority of the
    /// new voters not live and caught up) or when applied (`Memberships.problem(with:)`). Nothing changed.
    case refused(reason: String)
    /// A read may be answered now from the state machine: this replica confirmed with a majority that it still
    /// leads, after the read arrived, and has applied every slot chosen before (through `slot`).
    case readable(slot: Slot)
}
