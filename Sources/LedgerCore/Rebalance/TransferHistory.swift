/// Committed transfers folded into weighted account pairs: how often each unordered pair of accounts transacted and
/// how much money moved between them. The rebalance planner reads it as a graph of accounts.
///
/// Invariants: every pair has two different accounts, `first < second`; every weight has `transactions >= 1` and
/// `total >= transactions` (each transfer moves at least 1); `transfers` is the sum of every pair's `transactions`.
public struct TransferHistory: Sendable, Equatable {
    /// An unordered pair of different accounts, kept as `first < second`.
    public struct Pair: Hashable, Comparable, Sendable, CustomStringConvertible {
        public let first: AccountID
        public let second: AccountID

        /// The pair of `one` and `other`, in either order; the same account twice is a programming error.
        public init(_ one: AccountID, _ other: AccountID) {
            precondition(one != other, "a pair joins two different accounts")
            (first, second) = one < other ? (one, other) : (other, one)
        }

        public static func < (left: Pair, right: Pair) -> Bool {
            (left.first, left.second) < (right.first, right.second)
        }

        public var description: String { "\(first)-\(second)" }
    }

    /// How often a pair transacted, and the money it moved (in either direction).
    public struct Weight: Hashable, Sendable {
        public var transactions: Int
        /// The sum of the amounts; `Int128` because many transfers near `Int64.max` must not trap.
        public var total: Int128

        public init(transactions: Int, total: Int128) {
            self.transactions = transactions
            self.total = total
        }

        mutating func count(_ amount: Amount) {
            transactions += 1
            total += Int128(amount.value)
        }
    }

    /// The weight of every pair that transacted at least once.
    public private(set) var weights: [Pair: Weight] = [:]
    /// Transfers counted, over every pair.
    public private(set) var transfers = 0
    /// Cross-shard transactions found at only some of their participants (a participant not read, or a commit not
    /// applied there yet): their accounts cannot be paired, so they are left out of `weights` and `transfers`.
    public var unmatchedTransactions = 0

    public init() {}

    /// The history of `transfers`, each counted once.
    public init(_ transfers: some Sequence<Transfer>) {
        weights.reserveCapacity(transfers.underestimatedCount)
        for transfer in transfers { add(transfer) }
    }

    /// Counts one transfer of `amount` between `from` and `to`.
    public mutating func add(from: AccountID, to: AccountID, amount: Amount) {
        // A ledger never commits a transfer to the same account; if one came in anyway, it links nothing.
        guard from != to else { return }
        // One lookup: `default:` with a mutating call updates the stored value in place.
        weights[Pair(from, to), default: Weight(transactions: 0, total: 0)].count(amount)
        transfers += 1
    }

    public mutating func add(_ transfer: Transfer) {
        add(from: transfer.from, to: transfer.to, amount: transfer.amount)
    }

    /// Every pair with its weight, in pair order (a dictionary's order changes from one process to the next).
    public var sortedPairs: [(pair: Pair, weight: Weight)] {
        weights.map { (pair: $0.key, weight: $0.value) }.sorted { $0.pair < $1.pair }
    }

    /// The committed history recorded in the datastores of one replica per cluster (`datastores[cluster]`).
    ///
    /// An intra-shard transfer is one record of one cluster. A cross-shard transaction has one record in each
    /// participant, holding only that cluster's changes under the same transaction id: the records are joined by id,
    /// and every debited account (negative change) is paired with every credited one (positive change), moving the
    /// smaller of the two amounts; a transfer, the only cross-shard transaction clients issue, is one pair. A
    /// transaction whose debits or credits are all missing counts in `unmatchedTransactions`. Account moves are
    /// skipped.
    public init(datastores: [String: [DatastoreRecord]]) {
        var crossShard: [TransactionID: [AccountChange]] = [:]
        for cluster in datastores.keys.sorted() {
            // A cluster commits a transaction once; a record listed twice must not count twice.
            var seen: Set<TransactionID> = []
            for record in datastores[cluster]! where seen.insert(record.transaction).inserted {
                switch record.kind {
                case .transfer(let from, let to, let amount):
                    add(from: from, to: to, amount: amount)
                case .crossShard(let changes):
                    crossShard[record.transaction, default: []] += changes
                case .moveOut, .moveIn:
                    // An account move (an earlier rebalance) is not traffic between accounts.
                    break
                }
            }
        }
        for transaction in crossShard.keys.sorted() {
            let changes = crossShard[transaction]!
            let debits = changes.filter { $0.delta < 0 }
            let credits = changes.filter { $0.delta > 0 }
            guard !debits.isEmpty, !credits.isEmpty else {
                unmatchedTransactions += 1
                continue
            }
            for debit in debits {
                for credit in credits {
                    // Magnitudes: `-Int64.min` would trap, and a change is never zero, so the amount is at least 1.
                    let amount = min(debit.delta.magnitude, credit.delta.magnitude, UInt64(Int64.max))
                    add(from: debit.account, to: credit.account, amount: Amount(Int64(amount)))
                }
            }
        }
    }
}
