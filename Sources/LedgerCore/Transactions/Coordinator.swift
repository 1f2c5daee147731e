/// How a transfer ended, as the client reports it.
public enum TransferOutcome: Hashable, Sendable, CustomStringConvertible {
    case committed
    case aborted(TransferAbort)
    /// The decision could not be learned before the deadline. The replicas settle it (a participant in doubt asks
    /// the home cluster, which aborts when it has no decision); `client balance` shows the result.
    case unknown(String)

    public var description: String {
        switch self {
        case .committed: return "committed"
        case .aborted(let reason): return "aborted: \(reason)"
        case .unknown(let why): return "unknown: \(why)"
        }
    }
}

/// Why a transfer was aborted.
public enum TransferAbort: Hashable, Sendable, CustomStringConvertible {
    /// The ledger of a cluster refused it (insufficient funds, locked, unknown account, overflow, invalid).
    case refused(AbortReason, cluster: String)
    /// A cluster had no leader with a live majority (or did not answer) before the deadline; nothing was applied.
    case noQuorum(cluster: String)
    /// A cluster does not own an account the catalog said it owns.
    case wrongShard(AccountID, owner: String?)
    /// The home cluster aborted the transaction before the commit arrived (its participants' recovery timed out).
    case abortedAtHome(cluster: String)
    /// A cluster refused the caller itself (its certificate may not make the call); nothing was applied.
    case forbidden(String, cluster: String)

    public var description: String {
        switch self {
        case .refused(.insufficientFunds, _): return "insufficient funds"
        case .refused(.locked, _): return "locked"
        case .refused(let reason, _): return "\(reason)"
        case .noQuorum(let cluster): return "no quorum in \(cluster)"
        case .wrongShard(let account, let owner?): return "wrong shard (\(account) belongs to \(owner))"
        case .wrongShard(let account, nil): return "wrong shard (\(account) has no owner)"
        case .abortedAtHome(let cluster): return "aborted by the home cluster \(cluster)"
        case .forbidden(let reason, let cluster): return "refused by \(cluster): \(reason)"
        }
    }
}

/// The client side of one cross-shard transaction (DESIGN §5) as a pure state machine: the shell (the client's
/// `TransactionDriver`) performs each `Action` and feeds the answer back with `receive`.
///
/// 1. `start`: a prepare to every participant at once. 2. All yes: commit at the home cluster, the commit point.
/// 3. The home chose commit: commit at the other participants. Any no, a home that refuses the commit, or a
/// participant that cannot vote in time: abort everywhere. If the home's answer is lost, ask it for its decision
/// (it chooses abort when it has none, so the answer is final).
///
/// Invariants: commit is sent to a non-home participant only after the home cluster chose commit; abort is never
/// sent after the home chose commit; the outcome, once set, never changes.
public struct Coordinator: Sendable {
    /// What the shell must do: submit `command` to `cluster` (through its leader, retrying until the deadline), or
    /// ask `cluster` for its decision on the transaction.
    public enum Action: Hashable, Sendable {
        case submit(LedgerCommand, to: String)
        case askDecision(TransactionID, of: String)
    }

    /// A cluster's answer to an action: the ledger's result, or why there is none.
    public enum Answer: Hashable, Sendable {
        case applied(CommandResult)
        /// No answer before the deadline (no quorum, unreachable, timed out): the fate of the command is unknown.
        case unavailable
        case wrongShard(AccountID, owner: String?)
    }

    public enum Phase: Hashable, Sendable {
        case preparing
        case committingAtHome
        case askingHome
        case finishing
        case done
    }

    public let id: TransactionID
    public let home: String
    /// The changes of each participant cluster, home included.
    public let changes: [String: [AccountChange]]
    public private(set) var phase: Phase = .preparing
    /// Set once the decision is known; never changes after.
    public private(set) var outcome: TransferOutcome?
    private var yes: Set<String> = []
    /// Participants that could not answer a prepare in time (no quorum, unreachable).
    private var unavailable: Set<String> = []
    private var awaiting: Set<String> = []

    public var participants: [String] { changes.keys.sorted() }

    public init(id: TransactionID, home: String, changes: [String: [AccountChange]]) {
        precondition(changes[home] != nil, "the home cluster \(home) must be a participant")
        precondition(changes.count >= 2, "a cross-shard transaction has at least two participants")
        self.id = id
        self.home = home
        self.changes = changes
    }

    /// The prepares, one per participant, to send at once.
    public mutating func start() -> [Action] {
        precondition(phase == .preparing && awaiting.isEmpty, "start is called once")
        awaiting = Set(participants)
        return participants.map {
            .submit(.prepare(id, home: home, participants: participants, changes: changes[$0]!), to: $0)
        }
    }

    /// Feeds back a cluster's answer to `action`; returns the next actions. Answers to actions of an earlier phase
    /// (a prepare answered after another participant voted no) change nothing: the abort already sent covers them.
    public mutating func receive(_ answer: Answer, for action: Action) -> [Action] {
        switch (phase, action) {
        case (.preparing, .submit(.prepare, let cluster)):
            guard awaiting.remove(cluster) != nil else { return [] }
            switch answer {
            case .applied(.preparedYes):
                yes.insert(cluster)
                guard yes.count == changes.count else { return [] }
                phase = .committingAtHome
                awaiting = [home]
                return [.submit(.commit(id), to: home)]
            case .applied(.aborted(let reason)):
                return abort(.refused(reason, cluster: cluster))
            case .applied(.committed), .applied(.refused), .applied(.accountsCreated), .applied(.preparedMove):
                // Not an answer a prepare gets for a fresh transaction id: refuse to go on with it.
                return abort(.refused(.invalid("unexpected answer to prepare: \(answer)"), cluster: cluster))
            case .unavailable:
                unavailable.insert(cluster)
                return abort(.noQuorum(cluster: cluster))
            case .wrongShard(let account, let owner):
                return abort(.wrongShard(account, owner: owner))
            }
        case (.committingAtHome, .submit(.commit, _)), (.askingHome, .askDecision):
            switch answer {
            case .applied(.committed):
                return decideCommit()
            case .applied(.aborted), .applied(.refused):
                // The home cluster aborted first (a participant's recovery asked it): the abort stands everywhere.
                return abort(.abortedAtHome(cluster: home))
            case .unavailable, .wrongShard, .applied(.preparedYes), .applied(.preparedMove), .applied(.accountsCreated):
                guard phase == .committingAtHome else {
                    phase = .done
                    outcome = .unknown("the home cluster \(home) did not answer with its decision")
                    return []
                }
                phase = .askingHome
                return [.askDecision(id, of: home)]
            }
        case (.finishing, .submit(.commit, let cluster)), (.finishing, .submit(.abort, let cluster)):
            // A participant that did not confirm learns the decision from the home cluster when its own
            // recovery timer fires; the outcome stands either way.
            awaiting.remove(cluster)
            if awaiting.isEmpty { phase = .done }
            return []
        default:
            return []
        }
    }

    private mutating func decideCommit() -> [Action] {
        outcome = .committed
        let others = participants.filter { $0 != home }
        phase = .finishing
        awaiting = Set(others)
        return others.map { .submit(.commit(id), to: $0) }
    }

    private mutating func abort(_ reason: TransferAbort) -> [Action] {
        precondition(outcome == nil, "\(id): abort after the decision \(outcome!)")
        outcome = .aborted(reason)
        phase = .finishing
        // Abort at every participant that can answer, including one whose vote is still in flight: an abort for a
        // transaction a cluster has not seen is recorded, so a late prepare is refused there. A participant that
        // could not answer its prepare in time would not answer this either; should its prepare be applied after
        // all, its in-doubt recovery asks the home cluster, which has the abort (or, being that participant itself,
        // aborts on its own).
        let told = participants.filter { !unavailable.contains($0) }
        awaiting = Set(told)
        if awaiting.isEmpty { phase = .done }
        return told.map { .submit(.abort(id), to: $0) }
    }
}
