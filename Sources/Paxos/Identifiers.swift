/// A replica of one cluster, named by its index (`S4` is index 4). Indices are unique within a deployment.
public struct ReplicaID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var index: Int

    public init(_ index: Int) {
        self.index = index
    }

    public static func < (lhs: ReplicaID, rhs: ReplicaID) -> Bool { lhs.index < rhs.index }

    public var description: String { "S\(index)" }
}

/// A position in the replicated log. Slot 1 is the first; slot 0 means "none".
public typealias Slot = UInt64

/// Logical time: the shell calls `Replica.tick()` at a fixed interval; the core never reads a clock.
public typealias Tick = UInt64

/// A Paxos ballot: (round, replica index), ordered lexicographically, so a higher replica index wins a tie.
///
/// Invariant: a replica proposes under a ballot carrying its own index only, and never reuses a ballot after a
/// restart (it always picks a round above the highest one it has promised).
public struct Ballot: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var round: UInt64
    public var replica: ReplicaID

    public init(round: UInt64, replica: ReplicaID) {
        self.round = round
        self.replica = replica
    }

    /// Below every ballot a replica can propose with (round 0 is never used for proposals).
    public static let zero = Ballot(round: 0, replica: ReplicaID(0))

    public static func < (lhs: Ballot, rhs: Ballot) -> Bool {
        (lhs.round, lhs.replica.index) < (rhs.round, rhs.replica.index)
    }

    public var description: String { "(\(round),\(replica))" }
}

/// Identifies one client request: the client's id and its sequence number. A retried request keeps its id, so
/// the replicated state machine can apply it at most once (see `ClientSessions`).
public struct RequestID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var client: UInt64
    public var sequence: UInt64

    public init(client: UInt64, sequence: UInt64) {
        self.client = client
        self.sequence = sequence
    }

    public static func < (lhs: RequestID, rhs: RequestID) -> Bool {
        (lhs.client, lhs.sequence) < (rhs.client, rhs.sequence)
    }

    public var description: String { "\(client).\(sequence)" }
}

/// A command submitted by a client, with the id that makes retries recognisable.
public struct Request<Command: Sendable & Equatable>: Sendable, Equatable {
    public var id: RequestID
    public var command: Command

    public init(id: RequestID, command: Command) {
        self.id = id
        self.command = command
    }
}

/// What one slot of the log holds: a batch of requests, a no-op that a new leader uses to fill a gap, or a change of
/// the cluster's membership (which governs slots from `Configuration.slotsInFlightMax` slots later on: `Memberships`).
///
/// Each value is stamped with `ballot`, the ballot of the leader that first proposed it. A later leader re-proposes
/// the value unchanged, stamp included, so the stamp is part of what Paxos chooses: every replica applies a chosen
/// slot under the same ballot, whichever ballot it accepted or learned the value under (`LogEntry.ballot`).
/// Invariant: the stamp is at most the ballot a replica accepted the value under, and its round is at least 1.
public enum SlotValue<Command: Sendable & Equatable>: Sendable, Equatable {
    case noop(ballot: Ballot)
    case batch([Request<Command>], ballot: Ballot)
    case reconfigure(Reconfiguration, ballot: Ballot)

    /// The requests of the slot, empty for a no-op or a reconfiguration.
    public var requests: [Request<Command>] {
        switch self {
        case .noop, .reconfigure: return []
        case .batch(let requests, _): return requests
        }
    }

    /// The ballot of the leader that first proposed this value.
    public var ballot: Ballot {
        switch self {
        case .noop(let ballot), .batch(_, let ballot), .reconfigure(_, let ballot): return ballot
        }
    }

    /// The reconfiguration this slot carries, if any.
    public var reconfiguration: Reconfiguration? {
        if case .reconfigure(let change, _) = self { return change }
        return nil
    }
}

/// One slot of a replica's log as it is stored.
///
/// `ballot` is the ballot under which the value was accepted here (or, for a value learned as chosen from another
/// replica, the ballot that replica reported); it differs between replicas and serves Paxos only. The ballot that
/// the state machine sees is the value's stamp, `value.ballot`. Invariant: once `isChosen` is true, `value` never
/// changes.
public struct LogEntry<Command: Sendable & Equatable>: Sendable, Equatable {
    public var ballot: Ballot
    public var value: SlotValue<Command>
    public var isChosen: Bool

    public init(ballot: Ballot, value: SlotValue<Command>, isChosen: Bool) {
        self.ballot = ballot
        self.value = value
        self.isChosen = isChosen
    }
}

/// A snapshot of the replicated state machine after applying every slot up to and including `slot`, with the
/// configurations that govern the slots after it. The log prefix it covers may be truncated; a replica behind it
/// receives the snapshot instead.
public struct Snapshot<State: Sendable & Equatable>: Sendable, Equatable {
    public var slot: Slot
    public var state: State
    /// Nil in a snapshot stored before configurations were kept with it: no reconfiguration existed then, so the
    /// deployment's first configuration (`Configuration.bootstrap`) still governs. A replica's compaction always
    /// sets it.
    public var memberships: Memberships?

    public init(slot: Slot, state: State, memberships: Memberships?) {
        self.slot = slot
        self.state = state
        self.memberships = memberships
    }
}
