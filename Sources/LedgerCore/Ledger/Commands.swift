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

/// A command the replicas of one cluster order with Paxos and apply to `LedgerState`.
public enum LedgerCommand: Hashable, Sendable {
    /// An intra-shard transfer: both accounts live in this cluster; one consensus decision.
    case transfer(TransactionID, from: AccountID, to: AccountID, amount: Amount)
    /// 2PC prepare: lock the accounts and record the planned changes if every account is here, free, and every
    /// debit is covered (vote yes); otherwise remember the abort (vote no). `home` is the cluster whose decision
    /// is final; `participants` are every cluster involved, home included.
    case prepare(TransactionID, home: String, participants: [String], changes: [AccountChange])
    /// 2PC prepare of an account move: this cluster's part (`MovePart`). Commit and abort are the transfers' own.
    case prepareMove(TransactionID, home: String, participants: [String], part: MovePart)
    /// 2PC commit: apply the recorded changes and release the locks. Refused for an unknown or aborted transaction.
    case commit(TransactionID)
    /// 2PC abort: drop the recorded changes and release the locks. For an unknown transaction it records the abort,
    /// so a late prepare or commit is refused.
    case abort(TransactionID)
    /// Creates the accounts of these ranges that do not exist yet, each with `balance` (from the catalog at first
    /// start). Idempotent.
    case createAccounts([ClosedRange<AccountID>], balance: Int64)

    /// The transaction a command belongs to, if any.
    public var transaction: TransactionID? {
        switch self {
        case .transfer(let id, _, _, _), .prepare(let id, _, _, _), .prepareMove(let id, _, _, _), .commit(let id),
            .abort(let id):
            return id
        case .createAccounts: return nil
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
    /// The account was moved to `cluster`: ask there.
    case moved(AccountID, to: String)

    public var description: String {
        switch self {
        case .insufficientFunds(let account, let balance):
            return "insufficient funds in \(account) (balance \(balance))"
        case .locked(let account, let owner): return "account \(account) is locked by \(owner)"
        case .unknownAccount(let account): return "account \(account) is not in this shard"
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
}

extension LedgerCommand {
    /// The client id reserved for commands a cluster proposes for itself (account creation).
    public static let clusterClient: UInt64 = 0

    /// The Paxos request id of this command. The commands of one transaction (prepare, then commit or abort) are
    /// different requests, so each gets its own id: the transaction's sequence times four plus the command kind.
    /// A retried command keeps its id. Transaction sequences must stay below 2^62 (`isValidSequence`).
    public var requestID: RequestID {
        switch self {
        case .transfer(let id, _, _, _): return RequestID(client: id.client, sequence: id.sequence << 2)
        case .prepare(let id, _, _, _), .prepareMove(let id, _, _, _):
            return RequestID(client: id.client, sequence: id.sequence << 2 | 1)
        case .commit(let id): return RequestID(client: id.client, sequence: id.sequence << 2 | 2)
        case .abort(let id): return RequestID(client: id.client, sequence: id.sequence << 2 | 3)
        case .createAccounts: return RequestID(client: LedgerCommand.clusterClient, sequence: 1)
        }
    }
}

extension TransactionID {
    /// Whether the id can name a transaction: sequences are at most 2^62 - 1 (see `LedgerCommand.requestID`), and
    /// client 0 is the cluster's own.
    public var isValid: Bool { client != LedgerCommand.clusterClient && sequence < (1 << 62) }
}
