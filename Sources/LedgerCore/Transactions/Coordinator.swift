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
/// 1. `start`: the same prepare (the whole transfer) to both participants at once. 2. All yes: commit at the home
/// cluster, the commit point (the home checks with the other participant that it prepared the same transfer). 3. The
/// home chose commit: commit at the other participant, which learns the home's decision and applies it. Any no, a
/// home that refuses the commit, or a participant that cannot vote in time: abort at the home first, then at the
/// other participant. If the home's answer to the commit is lost, read its status: committed or aborted is final;
/// still prepared, send the commit once more; else the outcome is unknown and the replicas' recovery settles it.
///
/// Invariants: commit is sent to a non-home participant only after the home cluster chose commit; abort is never
/// sent after the home chose commit; the outcome, once set, never changes.
public struct Coordinator: Sendable {
    /// What the shell must do: submit `command` to `cluster` (through its leader, retrying until the deadline), or
    /// read the transaction's status at `cluster` (`TransactionStatus`, which decides nothing).
    public enum Action: Hashable, Sendable {
        case submit(LedgerCommand, to: String)
        case askStatus(TransactionID, of: String)
    }

    /// A cluster's answer to an action: the ledger's result, or why there is none.
    public enum Answer: Hashable, Sendable {
        case applied(CommandResult)
        /// No answer before the deadline (no quorum, unreachable, timed out): the fate of the command is unknown.
        case unavailable
        case wrongShard(AccountID, owner: String?)
        /// A status read: the transaction is prepared and undecided there, or unknown there.
        case undecided
    }

    public enum Phase: Hashable, Sendable {
        case preparing
        case committingAtHome
        case askingHome
        case finishing
        case done
    }

    public let id: TransactionID
    public let transfer: CrossShardTransfer
    public var home: String { transfer.home }
    public var participants: [String] { transfer.participants }
    public private(set) var phase: Phase = .preparing
    /// Set once the decision is known; never changes after.
    public private(set) var outcome: TransferOutcome?
    private var yes: Set<String> = []
    /// Participants that could not answer a prepare in time (no quorum, unreachable).
    private var unavailable: Set<String> = []
    private var awaiting: Set<String> = []
    /// Commits sent to the home: a lost answer whose status read finds the transaction still undecided sends one more.
    private var commitsSent = 0
    /// The participants other than the home that an abort goes to once the home answered its own.
    private var abortsAfterHome: [String] = []

    public init(id: TransactionID, transfer: CrossShardTransfer) {
        precondition(transfer.participants.contains(transfer.home), "the home cluster must be a participant")
        precondition(Set(transfer.participants).count == 2, "a cross-shard transfer has two participants")
        self.id = id
        self.transfer = transfer
    }

    /// The prepares, one per participant, to send at once.
    public mutating func start() -> [Action] {
        precondition(phase == .preparing && awaiting.isEmpty, "start is called once")
        awaiting = Set(participants)
        return participants.map { .submit(.prepare(id, transfer), to: $0) }
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
                guard yes.count == participants.count else { return [] }
                phase = .committingAtHome
                awaiting = [home]
                commitsSent = 1
                return [.submit(.commit(id), to: home)]
            case .applied(.aborted(let reason)):
                return abort(.refused(reason, cluster: cluster))
            case .applied(.expired(let message)):
                // Nothing was applied there: this client's session was evicted at that cluster.
                return abort(.refused(.invalid("expired: \(message)"), cluster: cluster))
            case .applied(.committed), .applied(.refused), .applied(.accountsCreated), .applied(.preparedMove),
                .applied(.released):
                // Not an answer a prepare gets for a fresh transaction id: refuse to go on with it.
                return abort(.refused(.invalid("unexpected answer to prepare: \(answer)"), cluster: cluster))
            case .unavailable, .undecided:
                unavailable.insert(cluster)
                return abort(.noQuorum(cluster: cluster))
            case .wrongShard(let account, let owner):
                return abort(.wrongShard(account, owner: owner))
            }
        case (.committingAtHome, .submit(.commit, _)), (.askingHome, .askStatus):
            switch answer {
            case .applied(.committed):
                return decideCommit()
            case .applied(.aborted), .applied(.refused):
                // The home aborted first (a participant's recovery asked it), or refused to commit because the other
                // participant did not confirm the same transfer: the abort stands everywhere.
                return abort(.abortedAtHome(cluster: home))
            case .applied(.expired(let message)):
                // The home forgot the transaction: its fate is in the home's history, not in this answer.
                phase = .done
                outcome = .unknown("the home cluster \(home) no longer remembers the transaction: \(message)")
                return []
            case .undecided where commitsSent < 2:
                // The commit's answer was lost and the home has not decided: send it once more.
                phase = .committingAtHome
                commitsSent += 1
                return [.submit(.commit(id), to: home)]
            case .unavailable, .wrongShard, .undecided, .applied(.preparedYes), .applied(.preparedMove),
                .applied(.accountsCreated), .applied(.released):
                guard phase == .committingAtHome else {
                    phase = .done
                    outcome = .unknown("the home cluster \(home) did not answer with its decision")
                    return []
                }
                phase = .askingHome
                return [.askStatus(id, of: home)]
            }
        case (.finishing, .submit(.commit, let cluster)), (.finishing, .submit(.abort, let cluster)):
            // A participant that did not confirm learns the decision from the home cluster when its own
            // recovery timer fires; the outcome stands either way.
            awaiting.remove(cluster)
            var next: [Action] = []
            if cluster == home, !abortsAfterHome.isEmpty {
                // The home's abort is in its log: the other participant can now learn it.
                next = abortsAfterHome.map { .submit(.abort(id), to: $0) }
                awaiting.formUnion(abortsAfterHome)
                abortsAfterHome = []
            }
            if awaiting.isEmpty { phase = .done }
            return next
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
        // transaction a cluster has not seen is recorded, so a late prepare is refused there. The home first: a
        // participant that prepared follows the home, so it can learn the abort only once the home chose it. A
        // participant that could not answer its prepare in time would not answer this either; should its prepare be
        // applied after all, its in-doubt recovery asks the home cluster, which has the abort (or, being that
        // participant itself, aborts on its own).
        let told = participants.filter { !unavailable.contains($0) }
        if told.contains(home) {
            abortsAfterHome = told.filter { $0 != home }
            awaiting = [home]
            return [.submit(.abort(id), to: home)]
        }
        awaiting = Set(told)
        if awaiting.isEmpty { phase = .done }
        return told.map { .submit(.abort(id), to: $0) }
    }
}
