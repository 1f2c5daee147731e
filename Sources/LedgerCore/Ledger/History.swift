import Paxos

/// One write-ahead-log record of a replica, written in the same storage transaction as the state it describes.
public struct WALRecord: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        case start
        /// The account's balance goes from `old` to `new` (planned at prepare, applied at commit).
        case update(AccountID, old: Int64, new: Int64)
        /// The account, holding `balance`, leaves for cluster `to` (planned at prepare, done at commit).
        case moveOut(AccountID, balance: Int64, to: String)
        /// The account arrives from cluster `from` with `balance` (planned at prepare, done at commit).
        case moveIn(AccountID, balance: Int64, from: String)
        case commit
        case abort
    }

    public var transaction: TransactionID
    public var kind: Kind

    public init(transaction: TransactionID, kind: Kind) {
        self.transaction = transaction
        self.kind = kind
    }

    /// `<T7.1, Start>`, `<T7.1, Update, 100, 2>`, `<T7.1, MoveOut, 100, 2, C2>`, `<T7.1, MoveIn, 100, 2, C1>`,
    /// `<T7.1, Commit>`, `<T7.1, Abort>`.
    public var description: String {
        switch kind {
        case .start: return "<\(transaction), Start>"
        case .update(let account, _, let new): return "<\(transaction), Update, \(account), \(new)>"
        case .moveOut(let account, let balance, let cluster):
            return "<\(transaction), MoveOut, \(account), \(balance), \(cluster)>"
        case .moveIn(let account, let balance, let cluster):
            return "<\(transaction), MoveIn, \(account), \(balance), \(cluster)>"
        case .commit: return "<\(transaction), Commit>"
        case .abort: return "<\(transaction), Abort>"
        }
    }
}

/// A committed transaction as the datastore keeps it: what it did here, the slot that chose it, and the ballot of the
/// leader that proposed it (the stamp of the slot's value, so every replica records the same one).
public struct DatastoreRecord: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        case transfer(from: AccountID, to: AccountID, amount: Amount)
        /// This cluster's part of a cross-shard transaction.
        case crossShard([AccountChange])
        /// An account that left for cluster `to` with `balance` (a rebalance).
        case moveOut(AccountID, balance: Int64, to: String)
        /// An account that arrived from cluster `from` with `balance` (a rebalance).
        case moveIn(AccountID, balance: Int64, from: String)
    }

    public var transaction: TransactionID
    public var kind: Kind
    public var slot: Slot
    public var ballot: Ballot

    public init(transaction: TransactionID, kind: Kind, slot: Slot, ballot: Ballot) {
        self.transaction = transaction
        self.kind = kind
        self.slot = slot
        self.ballot = ballot
    }

    public var description: String {
        let what: String
        switch kind {
        case .transfer(let from, let to, let amount): what = "(\(from), \(to), \(amount))"
        case .crossShard(let changes):
            what = changes.map { "\($0.account) \($0.delta > 0 ? "+" : "")\($0.delta)" }.joined(separator: ", ")
        case .moveOut(let account, let balance, let cluster):
            what = "move \(account) (balance \(balance)) to \(cluster)"
        case .moveIn(let account, let balance, let cluster):
            what = "move \(account) (balance \(balance)) from \(cluster)"
        }
        return "\(transaction) \(what) slot \(slot) ballot \(ballot)"
    }
}
