import LedgerCore
import Paxos

/// Why a replica did not apply a request. Unlike an `AbortReason` these are not the ledger's answer: nothing was
/// decided (or, for `timedOut`, the replica does not know yet), so the client may retry, elsewhere or later, with
/// the same transaction id.
public enum RequestFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// The account belongs to another cluster: `owner` when the replica knows it. Nothing was applied.
    case wrongShard(AccountID, owner: String?)
    /// This replica does not lead; `hint` is the leader it knows of. Nothing was applied.
    case notLeader(hint: ReplicaID?)
    /// No leader with a live majority within the consensus timeout. Nothing was applied.
    case noQuorum
    /// The leader's queue is full. Nothing was applied.
    case busy
    /// Proposed but not known to be chosen in time: the outcome is unknown. Retry with the same transaction id.
    case timedOut
    /// The replica refused the caller before taking the call: its certificate may not make it (or it presented
    /// none). Nothing was applied, and asking again does not help. Client-side only: a replica refuses with a gRPC
    /// status, never with this in a reply.
    case forbidden(String)
    /// A balance read of an account that a prepared cross-shard transaction holds: its committed balance depends on
    /// a decision this cluster has not applied yet (the home may have committed already), so nothing is read. Ask
    /// again once the transaction is decided here.
    case inDoubt(AccountID, by: TransactionID)
    /// A change of the cluster's membership was refused, for this reason (`Paxos.Outcome.refused`). Nothing
    /// changed.
    case membershipRefused(String)

    /// The failure a Paxos outcome reports, or nil when the outcome is not a failure: `.chosen` (the request was
    /// applied; answer with its result) and `.readable` (a linearizable read may be answered now from the applied
    /// state).
    public init?(_ outcome: Paxos.Outcome) {
        switch outcome {
        case .chosen, .readable: return nil
        case .notLeader(let hint): self = .notLeader(hint: hint)
        case .noQuorum: self = .noQuorum
        case .timedOut: self = .timedOut
        case .busy: self = .busy
        case .refused(let reason): self = .membershipRefused(reason)
        }
    }

    /// The owner a wrong-shard answer names, if any.
    public var owner: String? {
        if case .wrongShard(_, let owner) = self { return owner }
        return nil
    }

    public var description: String {
        switch self {
        case .wrongShard(let account, let owner?): return "account \(account) belongs to cluster \(owner)"
        case .wrongShard(let account, nil): return "account \(account) does not belong to this cluster"
        case .notLeader(let hint?): return "this replica does not lead; the leader is \(hint)"
        case .notLeader(nil): return "this replica does not lead and knows no leader"
        case .noQuorum: return "no leader with a live majority; nothing was applied"
        case .busy: return "the leader is busy; nothing was applied"
        case .timedOut: return "timed out; the outcome is unknown, retry with the same transaction id"
        case .forbidden(let reason): return "refused: \(reason); nothing was applied"
        case .inDoubt(let account, let owner):
            return "account \(account) is held by transaction \(owner), not yet decided here; ask again"
        case .membershipRefused(let reason): return "membership change refused: \(reason); nothing changed"
        }
    }
}

/// What a replica answers to a ledger request: the result of applying the command, or why it did not apply it.
public enum CommandOutcome: Hashable, Sendable, CustomStringConvertible {
    /// The command was ordered and applied; this is what applying it did.
    case applied(CommandResult)
    /// The command was not applied (or its fate is unknown, for `timedOut`).
    case failed(RequestFailure)

    public var description: String {
        switch self {
        case .applied(.committed): return "committed"
        case .applied(.aborted(let reason)): return "aborted: \(reason)"
        case .applied(.preparedYes): return "prepared (vote yes)"
        case .applied(.preparedMove(let balance)): return "move prepared (vote yes; balance \(balance))"
        case .applied(.refused(let why)): return "refused: \(why)"
        case .applied(.accountsCreated(let count)): return "\(count) accounts created"
        case .applied(.released(let count)): return "released (\(count) transactions forgotten)"
        case .applied(.expired(let why)): return "expired: \(why)"
        case .failed(let failure): return failure.description
        }
    }
}

// MARK: - Encoding

extension Ledger_V1_Result {
    /// The wire form of `outcome`, with `message` set for people.
    public init(_ outcome: CommandOutcome) {
        self.init()
        message = outcome.description
        switch outcome {
        case .applied(.committed):
            self.outcome = .committed
        case .applied(.aborted(let reason)):
            self.outcome = .aborted
            setReason(reason)
        case .applied(.preparedYes):
            self.outcome = .prepared
        case .applied(.preparedMove(let balance)):
            self.outcome = .movePrepared
            self.balance = balance
        case .applied(.refused(let why)):
            self.outcome = .refused
            detail = why
        case .applied(.accountsCreated(let count)):
            self.outcome = .accountsCreated
            precondition(count >= 0, "a count of created accounts is never negative")
            accountsCreated = UInt64(count)
        case .applied(.released(let count)):
            self.outcome = .released
            precondition(count >= 0, "a count of forgotten transactions is never negative")
            forgotten = UInt64(count)
        case .applied(.expired(let why)):
            self.outcome = .expired
            detail = why
        case .failed(let failure):
            self.outcome = .aborted
            setFailure(failure)
        }
    }

    /// The wire form of a command's result.
    public init(_ result: CommandResult) {
        self.init(CommandOutcome.applied(result))
    }

    /// The wire form of a failure.
    public init(_ failure: RequestFailure) {
        self.init(CommandOutcome.failed(failure))
    }

    private mutating func setReason(_ reason: LedgerCore.AbortReason) {
        switch reason {
        case .insufficientFunds(let account, let balance):
            self.reason = .insufficientFunds
            self.account = account.value
            self.balance = balance
        case .locked(let account, let owner):
            self.reason = .locked
            self.account = account.value
            lockedBy = Ledger_V1_TransactionId(owner)
        case .unknownAccount(let account):
            self.reason = .unknownAccount
            self.account = account.value
        case .balanceOverflow(let account):
            self.reason = .balanceOverflow
            self.account = account.value
        case .aborted:
            self.reason = .aborted
        case .invalid(let why):
            self.reason = .invalid
            detail = why
        case .moving(let account, let cluster):
            self.reason = .moving
            self.account = account.value
            ownerCluster = cluster
        case .moved(let account, let cluster):
            self.reason = .moved
            self.account = account.value
            ownerCluster = cluster
        }
    }

    private mutating func setFailure(_ failure: RequestFailure) {
        switch failure {
        case .wrongShard(let account, let owner):
            reason = .wrongShard
            self.account = account.value
            ownerCluster = owner ?? ""
        case .notLeader(let hint):
            reason = .notLeader
            leaderHint = hint?.description ?? ""
        case .noQuorum: reason = .noQuorum
        case .busy: reason = .busy
        case .timedOut: reason = .timedOut
        // Never in a reply (a replica refuses a caller with a gRPC status); had it one, "nothing was applied" holds.
        case .forbidden: reason = .noQuorum
        case .inDoubt(let account, let owner):
            reason = .locked
            self.account = account.value
            lockedBy = Ledger_V1_TransactionId(owner)
        case .membershipRefused(let why):
            reason = .membershipRefused
            detail = why
        }
    }
}

extension Ledger_V1_CommandReply {
    public init(_ outcome: CommandOutcome) {
        self.init()
        result = Ledger_V1_Result(outcome)
    }
}

extension Ledger_V1_BalanceReply {
    /// The committed balance, or why the replica could not read it.
    public init(_ answer: Result<Int64, RequestFailure>) {
        self.init()
        switch answer {
        case .success(let balance):
            result = Ledger_V1_Result(CommandOutcome.applied(.committed))
            result.message = "committed balance \(balance)"
            result.balance = balance
            self.balance = balance
        case .failure(let failure):
            result = Ledger_V1_Result(failure)
        }
    }
}

// MARK: - Decoding

extension CommandOutcome {
    /// Reads a result: a known outcome, and for `ABORTED` a known reason with the fields it needs.
    public init(wire: Ledger_V1_Result) throws(WireError) {
        switch wire.outcome {
        case .committed: self = .applied(.committed)
        case .prepared: self = .applied(.preparedYes)
        case .movePrepared: self = .applied(.preparedMove(balance: wire.balance))
        case .refused: self = .applied(.refused(wire.detail))
        case .accountsCreated:
            guard let count = Int(exactly: wire.accountsCreated) else {
                throw WireError(field: "accounts_created", "is \(wire.accountsCreated), more than a count can be")
            }
            self = .applied(.accountsCreated(count))
        case .released:
            guard let count = Int(exactly: wire.forgotten) else {
                throw WireError(field: "forgotten", "is \(wire.forgotten), more than a count can be")
            }
            self = .applied(.released(forgotten: count))
        case .expired: self = .applied(.expired(wire.detail))
        case .aborted: self = try CommandOutcome.aborted(wire: wire)
        case .unspecified: throw WireError(field: "outcome", "is not set (OUTCOME_UNSPECIFIED)")
        case .UNRECOGNIZED(let value): throw WireError(field: "outcome", "is \(value), not a known outcome")
        }
    }

    private static func aborted(wire: Ledger_V1_Result) throws(WireError) -> CommandOutcome {
        switch wire.reason {
        case .insufficientFunds:
            return .applied(.aborted(.insufficientFunds(try AccountID(wire: wire.account), balance: wire.balance)))
        case .locked:
            let account = try AccountID(wire: wire.account)
            let owner = try TransactionID.required(wire: wire.lockedBy, isPresent: wire.hasLockedBy, field: "locked_by")
            return .applied(.aborted(.locked(account, by: owner)))
        case .unknownAccount: return .applied(.aborted(.unknownAccount(try AccountID(wire: wire.account))))
        case .balanceOverflow: return .applied(.aborted(.balanceOverflow(try AccountID(wire: wire.account))))
        case .aborted: return .applied(.aborted(.aborted))
        case .invalid: return .applied(.aborted(.invalid(wire.detail)))
        case .moving:
            let account = try AccountID(wire: wire.account)
            return .applied(.aborted(.moving(account, to: try clusterName(wire.ownerCluster, field: "owner_cluster"))))
        case .moved:
            let account = try AccountID(wire: wire.account)
            return .applied(.aborted(.moved(account, to: try clusterName(wire.ownerCluster, field: "owner_cluster"))))
        case .wrongShard:
            let account = try AccountID(wire: wire.account)
            return .failed(
                .wrongShard(account, owner: try optionalClusterName(wire.ownerCluster, field: "owner_cluster")))
        case .notLeader:
            return .failed(.notLeader(hint: try ReplicaID.optional(wireName: wire.leaderHint, field: "leader_hint")))
        case .noQuorum: return .failed(.noQuorum)
        case .busy: return .failed(.busy)
        case .timedOut: return .failed(.timedOut)
        case .membershipRefused: return .failed(.membershipRefused(wire.detail))
        case .unspecified:
            throw WireError(field: "reason", "is not set (ABORT_REASON_UNSPECIFIED); an aborted outcome needs a reason")
        case .UNRECOGNIZED(let value): throw WireError(field: "reason", "is \(value), not a known abort reason")
        }
    }

    /// Reads the reply of `Transfer`, `Prepare`, `Commit`, `Abort` or `Decision`.
    public init(wire: Ledger_V1_CommandReply) throws(WireError) {
        guard wire.hasResult else { throw WireError(field: "result", "is missing") }
        self = try within("result") { () throws(WireError) in try CommandOutcome(wire: wire.result) }
    }
}

extension Result where Success == Int64, Failure == RequestFailure {
    /// Reads the reply of `Balance`: the committed balance (outcome `COMMITTED`), or a failure.
    public init(wire: Ledger_V1_BalanceReply) throws(WireError) {
        guard wire.hasResult else { throw WireError(field: "result", "is missing") }
        let outcome = try within("result") { () throws(WireError) in try CommandOutcome(wire: wire.result) }
        switch outcome {
        case .applied(.committed): self = .success(wire.balance)
        case .applied(.aborted(.locked(let account, let owner))): self = .failure(.inDoubt(account, by: owner))
        case .failed(let failure): self = .failure(failure)
        case .applied:
            throw WireError(
                field: "result", "is \"\(outcome)\"; a balance read is committed or fails with a request failure")
        }
    }
}

// MARK: - Batches

extension Ledger_V1_CommandBatchRequest {
    public init(cluster: String, commands: [LedgerCommand]) {
        self.init()
        self.cluster = cluster
        self.commands = commands.map(Ledger_V1_Command.init)
    }
}

extension LedgerCommand {
    /// Reads the commands of a `SubmitBatch` call: at most `WireLimits.commandsPerBatchMax`, each valid.
    public static func batch(wire: Ledger_V1_CommandBatchRequest) throws(WireError) -> [LedgerCommand] {
        guard !wire.commands.isEmpty else { throw WireError(field: "commands", "is empty; a batch has a command") }
        return try decodeEach(
            wire.commands, field: "commands", atMost: WireLimits.commandsPerBatchMax, limitName: "commandsPerBatchMax"
        ) { (command) throws(WireError) in try LedgerCommand(wire: command) }
    }
}

extension Ledger_V1_CommandBatchReply {
    /// The answers to a batch, in its order, and the leader when the replica that answered is not it.
    public init(_ outcomes: [CommandOutcome], leader: ReplicaID?) {
        self.init()
        results = outcomes.map(Ledger_V1_Result.init)
        leaderHint = leader?.description ?? ""
    }
}

extension CommandOutcome {
    /// Reads the answers to a batch of `count` commands: one valid result each, in order.
    public static func batch(wire: Ledger_V1_CommandBatchReply, count: Int) throws(WireError) -> [CommandOutcome] {
        guard wire.results.count == count else {
            throw WireError(field: "results", "holds \(wire.results.count) results for \(count) commands")
        }
        return try decodeEach(
            wire.results, field: "results", atMost: WireLimits.commandsPerBatchMax, limitName: "commandsPerBatchMax"
        ) { (result) throws(WireError) in try CommandOutcome(wire: result) }
    }
}

// MARK: - Transaction status

/// A replica's answer to `TransactionStatus`: what its applied state knows of a transaction.
public struct TransactionStatusAnswer: Hashable, Sendable {
    public var replica: ReplicaID
    /// The slot the answer reflects.
    public var appliedThrough: Slot
    public var report: LedgerState.Report
    /// The leader the replica knows of, when it is another replica.
    public var leader: ReplicaID?
    /// The state includes every command chosen before the question arrived: the leader answered after a majority
    /// confirmed it still leads. An `unknown` report speaks for the cluster only then.
    public var linearizable: Bool

    public init(
        replica: ReplicaID, appliedThrough: Slot, report: LedgerState.Report, leader: ReplicaID?, linearizable: Bool
    ) {
        self.replica = replica
        self.appliedThrough = appliedThrough
        self.report = report
        self.leader = leader
        self.linearizable = linearizable
    }

    /// The report, when it speaks for the whole cluster: committed, aborted and expired are final, and prepared is
    /// true of the cluster (it chose the prepare; it may have decided since), from any replica; unknown only from a
    /// linearizable answer (a follower may not have applied a prepare its cluster chose).
    public var clusterReport: LedgerState.Report? {
        report == .unknown && !linearizable ? nil : report
    }
}

extension Ledger_V1_TransactionStatusReply {
    public init(_ answer: TransactionStatusAnswer) {
        self.init()
        replica = answer.replica.description
        appliedThrough = answer.appliedThrough
        leaderHint = answer.leader?.description ?? ""
        linearizable = answer.linearizable
        switch answer.report {
        case .committed:
            state = .committed
        case .aborted(let reason):
            state = .aborted
            abort = Ledger_V1_Result(.aborted(reason))
        case .prepared(let terms, let home):
            state = .prepared
            self.home = home
            self.terms = Ledger_V1_TransactionTerms(terms)
        case .unknown:
            state = .unknown
        case .expired:
            state = .expired
        }
    }
}

extension TransactionStatusAnswer {
    /// Reads the reply of `TransactionStatus`: a replica name, a known state, and what that state needs.
    public init(wire: Ledger_V1_TransactionStatusReply) throws(WireError) {
        let replica = try ReplicaID(wireName: wire.replica, field: "replica")
        let leader = try ReplicaID.optional(wireName: wire.leaderHint, field: "leader_hint")
        let report: LedgerState.Report
        switch wire.state {
        case .committed: report = .committed
        case .unknown: report = .unknown
        case .expired: report = .expired
        case .aborted:
            guard wire.hasAbort else { throw WireError(field: "abort", "is missing; an aborted state has a reason") }
            let outcome = try within("abort") { () throws(WireError) in try CommandOutcome(wire: wire.abort) }
            guard case .applied(.aborted(let reason)) = outcome else {
                throw WireError(field: "abort", "is \"\(outcome)\"; an aborted state needs the ledger's abort reason")
            }
            report = .aborted(reason)
        case .prepared:
            guard wire.hasTerms else { throw WireError(field: "terms", "is missing; a prepared state has its terms") }
            let terms = try within("terms") { () throws(WireError) in try TransactionTerms(wire: wire.terms) }
            report = .prepared(terms, home: try clusterName(wire.home, field: "home"))
        case .unspecified: throw WireError(field: "state", "is not set (TRANSACTION_STATE_UNSPECIFIED)")
        case .UNRECOGNIZED(let value): throw WireError(field: "state", "is \(value), not a known transaction state")
        }
        self.init(
            replica: replica, appliedThrough: wire.appliedThrough, report: report, leader: leader,
            linearizable: wire.linearizable)
    }
}

extension Ledger_V1_TransactionStatusBatchReply {
    public init(_ answers: [TransactionStatusAnswer]) {
        self.init()
        statuses = answers.map(Ledger_V1_TransactionStatusReply.init)
    }
}

extension TransactionStatusAnswer {
    /// Reads the reply of `TransactionStatusBatch` to `count` transactions: one valid status each, in order.
    public static func batch(wire: Ledger_V1_TransactionStatusBatchReply, count: Int) throws(WireError)
        -> [TransactionStatusAnswer]
    {
        guard wire.statuses.count == count else {
            throw WireError(field: "statuses", "holds \(wire.statuses.count) statuses for \(count) transactions")
        }
        return try decodeEach(
            wire.statuses, field: "statuses", atMost: WireLimits.commandsPerBatchMax, limitName: "commandsPerBatchMax"
        ) { (status) throws(WireError) in try TransactionStatusAnswer(wire: status) }
    }
}
