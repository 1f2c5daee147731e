import Paxos

/// One write-ahead-log record of a replica, written in the same storage transaction as the state it describes.
public struct WALRecord: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        case start
        /// The account's balance goes from `old` to `new` (planned at prepare, applied at commit).
        case update(AccountID, old: Int64, new: Int64)
        case commit
        case abort
    }

    public var transaction: TransactionID
    public var kind: Kind

    public init(transaction: TransactionID, kind: Kind) {
        self.transaction = transaction
        self.kind = kind
    }

    /// `<T7.1, Start>`, `<T7.1, Update, 100, 2>`, `<T7.1, Commit>`, `<T7.1, Abort>`.
    public var description: String {
        switch kind {
        case .start: return "<\(transaction), Start>"
        case .update(let account, _, let new): return "<\(transaction), Update, \(account), \(new)>"
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
        }
        return "\(transaction) \(what) slot \(slot) ballot \(ballot)"
    }
}
