import Paxos

/// Identifies a transaction across every cluster it touches: the client that started it and that client's
/// sequence number. A retried command carries the same id, so it takes effect at most once.
public struct TransactionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var client: UInt64
    public var sequence: UInt64

    public init(client: UInt64, sequence: UInt64) {
        self.client = client
        self.sequence = sequence
    }

    public static func < (lhs: TransactionID, rhs: TransactionID) -> Bool {
        (lhs.client, lhs.sequence) < (rhs.client, rhs.sequence)
    }

    /// `T<client>.<sequence>`, as the WAL prints it.
    public var description: String { "T\(client).\(sequence)" }
}

/// One account's part of a cross-shard transaction at one cluster: the amount its balance changes by.
/// Invariant: `delta != 0`.
public struct AccountChange: Hashable, Sendable {
    public var account: AccountID
    public var delta: Int64

    public init(account: AccountID, delta: Int64) {
        precondition(delta != 0, "a change of zero moves nothing")
        self.account = account
        self.delta = delta
    }
}

/// One cluster's part in moving an account to another cluster (a rebalance). The source is the move's home: its
/// decision is final.
public enum MovePart: Hashable, Sendable {
    /// At the source: lock the account (vote yes with its balance); at commit remove it and remember where it went,
    /// so later requests for it are answered with the new owner.
    case out(AccountID, to: String)
    /// At the target: reserve the account, which must not exist here (vote yes); at commit create it with `balance`.
    case into(AccountID, balance: Int64, from: String)

    public var account: AccountID {
        switch self {
        case .out(let account, _), .into(let account, _, _): return account
        }
    }
}

/// A transfer between accounts of two clusters, as every participant of its two-phase commit receives it: the whole
/// transfer, not one cluster's part, so each participant derives its own part and checks it (DESIGN §5.5). The home is
/// the cluster of `from` (the debit): its decision is final. `participants` are the two clusters, home included.
public struct CrossShardTransfer: Hashable, Sendable, CustomStringConvertible {
    public var from: AccountID
    public var to: AccountID
    public var amount: Amount
    public var home: String
    public var participants: [String]

    public init(from: AccountID, to: AccountID, amount: Amount, home: String, participants: [String]) {
        self.from = from
        self.to = to
        self.amount = amount
        self.home = home
        self.participants = participants
    }

    public var description: String {
        "\(amount) from \(from) (home \(home)) to \(to), participants \(participants.joined(separator: ", "))"
    }
}

/// What a participant of a cross-shard transaction prepared, in a form every participant computes alike from its own
/// record: the home commits only when every other participant reports exactly the home's own terms, so the debit at
/// the home and the credit elsewhere are one amount (DESIGN §5.5).
public enum TransactionTerms: Hashable, Sendable, CustomStringConvertible {
    case transfer(CrossShardTransfer)
    /// An account move: `account` leaves `source` (the home) holding `balance` and arrives at `target` with it.
    case move(AccountID, balance: Int64, source: String, target: String)

    public var description: String {
        switch self {
        case .transfer(let transfer): return "transfer of \(transfer)"
        case .move(let account, let balance, let source, let target):
            return "move of account \(account) with balance \(balance) from \(source) to \(target)"
        }
    }
}

/// A command the replicas of one cluster order with Paxos and apply to `LedgerState`.
///
/// Clients send `transfer`, `prepare`, `prepareMove`, `commit` and `abort`. A decision on a prepared cross-shard
/// transaction reaches the log only as `decideCommit` (the home, once every other participant reported the same
/// terms) or `follow` (another participant, once it learned the home's decision): replicas propose those, never
/// clients, so a client cannot make a cluster commit what its home did not.
public enum LedgerCommand: Hashable, Sendable {
    /// An intra-shard transfer: both accounts live in this cluster; one consensus decision.
    case transfer(TransactionID, from: AccountID, to: AccountID, amount: Amount)
    /// 2PC prepare of a cross-shard transfer. The home (the cluster of `from`) locks `from` and plans the debit; the
    /// other participant locks `to` and plans the credit. Each checks its own part (vote yes) or records the abort
    /// (vote no).
    case prepare(TransactionID, CrossShardTransfer)
    /// 2PC prepare of an account move: this cluster's part (`MovePart`). The source is the home.
    case prepareMove(TransactionID, home: String, participants: [String], part: MovePart)
    /// A client's commit. At the home of a prepared transaction it becomes `decideCommit` once the other participants
    /// agree; at another participant, `follow` once the home chose commit. Applied as it is, it only answers what is
    /// already decided: committed, or refused.
    case commit(TransactionID)
    /// Abort. At the home it is the decision (refused once committed); at another participant it records the abort of
    /// a transaction not prepared there (so a late prepare is refused) and is refused for a prepared one, which
    /// follows its home.
    case abort(TransactionID)
    /// The home's commit: every other participant reported it prepared `agreed`, which must be this cluster's own
    /// terms. Proposed by the home's replicas only.
    case decideCommit(TransactionID, agreed: TransactionTerms)
    /// A participant other than the home applies the home's decision, learned from the home. Proposed by replicas
    /// only.
    case follow(TransactionID, committed: Bool)
    /// Creates the accounts of these ranges that do not exist yet, each with `balance` (from the catalog at first
    /// start). Idempotent.
    case createAccounts([ClosedRange<AccountID>], balance: Int64)
    /// A client's acknowledged floor: it waits on no transaction of its own below sequence `floor` any more, so the
    /// cluster forgets the decided ones (`LedgerState.Session`). A command for a forgotten transaction is `expired`.
    case release(client: UInt64, floor: UInt64)
    /// The home learned that every other participant applied its commit of the transaction, so it need not keep the
    /// decision for them any more. Proposed by the home's replicas only.
    case delivered(TransactionID)

    /// The transaction a command belongs to, if any.
    public var transaction: TransactionID? {
        switch self {
        case .transfer(let id, _, _, _), .prepare(let id, _), .prepareMove(let id, _, _, _), .commit(let id),
            .abort(let id), .decideCommit(let id, _), .follow(let id, _), .delivered(let id):
            return id
        case .createAccounts, .release: return nil
        }
    }

    /// The home and participants a command that opens a cross-shard transaction names (nil for the others).
    public var crossShard: (home: String, participants: [String])? {
        switch self {
        case .prepare(_, let transfer): return (transfer.home, transfer.participants)
        case .prepareMove(_, let home, let participants, _): return (home, participants)
        default: return nil
        }
    }

    /// Whether only a replica may propose the command (a client sending one is refused).
    public var isReplicaOnly: Bool {
        switch self {
        case .decideCommit, .follow, .createAccounts, .delivered: return true
        case .transfer, .prepare, .prepareMove, .commit, .abort, .release: return false
        }
    }
}

/// Why a transfer or a prepare did not go through.
public enum AbortReason: Hashable, Sendable, CustomStringConvertible {
    /// The debit would take the account below the cluster's minimum balance.
    case insufficientFunds(AccountID, balance: Int64)
    /// The account is locked by a prepared cross-shard transaction.
    case locked(AccountID, by: TransactionID)
    /// The account does not live in this cluster.
    case unknownAccount(AccountID)
    /// The credit would overflow the account's balance.
    case balanceOverflow(AccountID)
    /// The transaction was aborted (by a participant's no, a timeout, or the coordinator).
    case aborted
    /// A command that can never succeed as written.
    case invalid(String)
    /// A move of the account to `cluster` is in progress here (the account is locked by it, or reserved for it):
    /// try again once it is decided.
    case moving(AccountID, to: String)
    /// The account lives in `cluster`: it was moved there, or (from a cross-shard prepare that names it elsewhere)
    /// it is here and the client's catalog is out of date. Ask there.
    case moved(AccountID, to: String)

    public var description: String {
        switch self {
        case .insufficientFunds(let account, let balance):
            return "insufficient funds in \(account) (balance \(balance))"
        case .locked(let account, let owner): return "account \(account) is locked by \(owner)"
        case .unknownAccount(let account): return "account \(account) is not held by this cluster"
        case .balanceOverflow(let account): return "balance of \(account) would overflow"
        case .aborted: return "transaction aborted"
        case .invalid(let text): return "invalid: \(text)"
        case .moving(let account, let cluster): return "account \(account) is moving to \(cluster)"
        case .moved(let account, let cluster): return "account \(account) was moved to \(cluster)"
        }
    }
}

/// What applying one command did.
public enum CommandResult: Hashable, Sendable {
    /// Transfer applied, or cross-shard transaction committed here.
    case committed
    /// Transfer rejected, or cross-shard transaction aborted here.
    case aborted(AbortReason)
    /// 2PC prepare: vote yes (accounts locked, changes recorded).
    case preparedYes
    /// 2PC prepare of a move at its source: vote yes; the account, now locked, holds `balance`.
    case preparedMove(balance: Int64)
    /// A command refused without effect: commit of an unknown or aborted transaction, abort of a committed one.
    case refused(String)
    /// Accounts created (how many were new).
    case accountsCreated(Int)
    /// A client's floor recorded (`release`); `forgotten` transactions of that client were forgotten by it.
    case released(forgotten: Int)
    /// Nothing applied: the command names a transaction below its client's window, whose record this cluster no
    /// longer keeps (the message says where its fate can be read). Never applied again, never answered with another
    /// transaction's result.
    case expired(String)
}

extension LedgerCommand {
    /// The client id reserved for commands a cluster proposes for itself (account creation).
    public static let clusterClient: UInt64 = 0

    /// The Paxos request id of this command. The commands of one transaction (prepare, then commit or abort, and the
    /// replicas' own decisions) are different requests, so each gets its own id: the transaction's sequence times
    /// sixteen plus the command kind; a release is its client's floor times sixteen plus its kind. A retried command
    /// keeps its id. Transaction sequences and floors must stay below 2^60 (`TransactionID.isValid`).
    public var requestID: RequestID {
        let kind: UInt64
        switch self {
        case .transfer: kind = 0
        case .prepare, .prepareMove: kind = 1
        case .commit: kind = 2
        case .abort: kind = 3
        case .decideCommit: kind = 4
        case .follow(_, true): kind = 5
        case .follow(_, false): kind = 6
        case .delivered: kind = 7
        case .release(let client, let floor): return RequestID(client: client, sequence: floor << 4 | 8)
        case .createAccounts: return RequestID(client: LedgerCommand.clusterClient, sequence: 1)
        }
        let id = transaction!
        return RequestID(client: id.client, sequence: id.sequence << 4 | kind)
    }

    /// The largest transaction sequence, and the largest floor a release may name.
    public static let sequenceMax: UInt64 = (1 << 60) - 1
}

extension TransactionID {
    /// Whether the id can name a transaction: sequences are at most `LedgerCommand.sequenceMax` (see
    /// `LedgerCommand.requestID`), and client 0 is the cluster's own.
    public var isValid: Bool { client != LedgerCommand.clusterClient && sequence <= LedgerCommand.sequenceMax }
}

extension LedgerCommand {
    /// The command in words, for refusals that name it: `transfer of 2 from 1 to 2`.
    public var summary: String {
        switch self {
        case .transfer(_, let from, let to, let amount): return "a transfer of \(amount) from \(from) to \(to)"
        case .prepare(_, let transfer): return "a prepare of \(transfer)"
        case .prepareMove(_, let home, _, .out(let account, let to)):
            return "a prepare of the move of account \(account) from \(home) to \(to)"
        case .prepareMove(_, _, _, .into(let account, let balance, let from)):
            return "a prepare of the move of account \(account) with balance \(balance) from \(from)"
        case .commit(let id): return "a commit of \(id)"
        case .abort(let id): return "an abort of \(id)"
        case .decideCommit(let id, let agreed): return "the home's commit of \(id) as a \(agreed)"
        case .follow(let id, let committed): return "the home's decision to \(committed ? "commit" : "abort") \(id)"
        case .createAccounts: return "an account creation"
        case .release(let client, let floor): return "client \(client)'s release of its transactions below \(floor)"
        case .delivered(let id): return "the home's note that \(id)'s commit reached every participant"
        }
    }
}
