/// One account that a rebalance moves from the cluster that owns it to another.
///
/// Invariant: `from != to`.
public struct AccountMove: Hashable, Sendable {
    public var account: AccountID
    public var from: String
    public var to: String

    public init(account: AccountID, from: String, to: String) {
        self.account = account
        self.from = from
        self.to = to
    }
}

/// Two accounts that transacted in different clusters and that a plan puts in the same cluster, as
/// `new-schema.txt` lists them: `{clusters: [into from], accounts: [first, second], transactions: n, total: t}`.
///
/// Invariants: `first != second`; `second` is an account the plan moves and `from` is the cluster it leaves;
/// `first` is the account that stays in `into`, or, when both move, the smaller id; `into != from`.
public struct ColocatedPair: Hashable, Sendable {
    public var first: AccountID
    public var second: AccountID
    /// The cluster both accounts end in, listed first in the file.
    public var into: String
    /// The cluster `second` leaves, listed second in the file.
    public var from: String
    /// How often the two accounts transacted.
    public var transactions: Int
    /// The money that moved between them.
    public var total: Int128

    public init(first: AccountID, second: AccountID, into: String, from: String, transactions: Int, total: Int128) {
        self.first = first
        self.second = second
        self.into = into
        self.from = from
        self.transactions = transactions
        self.total = total
    }
}

/// What `RebalancePlanner.plan` proposes, and the figures that justify it.
///
/// Invariants: `moves` is sorted by account and names each account once; `crossShardAfter <= crossShardBefore
/// <= transfers` (a plan that would not cut cross-shard transfers moves nothing); every shard's `after` is within
/// its `allowed` sizes; `pairs` is sorted by decreasing `transactions`, then by accounts.
public struct RebalancePlan: Sendable, Equatable {
    /// One cluster's size (the accounts it owns) before and after the plan.
    public struct ShardSize: Sendable, Equatable {
        public var cluster: String
        public var before: Int
        public var after: Int
        /// The sizes the plan may leave: within `maxImbalance` of the mean size, widened to include `before` (a
        /// cluster already outside the bound may not get further from it).
        public var allowed: ClosedRange<Int>

        public init(cluster: String, before: Int, after: Int, allowed: ClosedRange<Int>) {
            self.cluster = cluster
            self.before = before
            self.after = after
            self.allowed = allowed
        }
    }

    public var options: RebalancePlanner.Options
    public var moves: [AccountMove]
    /// Pairs that transacted at least `minTransactions` times, were in different clusters and end in one.
    public var pairs: [ColocatedPair]
    /// Every cluster, in name order.
    public var shards: [ShardSize]
    /// Transfers of the history between two accounts that a cluster owns (all of them, whatever `minTransactions`).
    public var transfers: Int
    /// Of `transfers`, those between accounts of different clusters, before and after the plan.
    public var crossShardBefore: Int
    public var crossShardAfter: Int
    /// Transfers of the history naming an account no cluster owns; left out of every figure.
    public var unownedTransfers: Int

    public init(
        options: RebalancePlanner.Options, moves: [AccountMove], pairs: [ColocatedPair], shards: [ShardSize],
        transfers: Int, crossShardBefore: Int, crossShardAfter: Int, unownedTransfers: Int
    ) {
        self.options = options
        self.moves = moves
        self.pairs = pairs
        self.shards = shards
        self.transfers = transfers
        self.crossShardBefore = crossShardBefore
        self.crossShardAfter = crossShardAfter
        self.unownedTransfers = unownedTransfers
    }

    public var crossShardFractionBefore: Double { Self.fraction(crossShardBefore, of: transfers) }
    public var crossShardFractionAfter: Double { Self.fraction(crossShardAfter, of: transfers) }

    static func fraction(_ part: Int, of whole: Int) -> Double {
        whole == 0 ? 0 : Double(part) / Double(whole)
    }

    /// The figures in words, one line each: the header of new-schema.txt and what `shardctl rebalance` prints.
    public var summary: [String] {
        var lines = [
            "Cross-shard transfers before the plan: \(Self.percent(crossShardBefore, of: transfers)) "
                + "(\(crossShardBefore) of \(transfers))",
            "Cross-shard transfers after the plan: \(Self.percent(crossShardAfter, of: transfers)) "
                + "(\(crossShardAfter) of \(transfers))",
        ]
        if unownedTransfers > 0 {
            lines.append("\(unownedTransfers) transfers name accounts no cluster owns; they are left out.")
        }
        let sizes = shards.map {
            "\($0.cluster) \($0.before) -> \($0.after) (\($0.allowed.lowerBound)-\($0.allowed.upperBound))"
        }
        lines.append("Shard sizes in accounts, before -> after (allowed): \(sizes.joined(separator: ", "))")
        lines.append(
            "\(pairs.count) co-located pair\(pairs.count == 1 ? "" : "s"), then \(moves.count) "
                + "move\(moves.count == 1 ? "" : "s").")
        return lines
    }

    /// `66.72%`: `part` of `whole` rounded to hundredths of a percent, in whole numbers (no floating point).
    static func percent(_ part: Int, of whole: Int) -> String {
        guard whole > 0 else { return "0.00%" }
        let hundredths = (Int128(part) * 10_000 + Int128(whole / 2)) / Int128(whole)
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)%"
    }
}

/// How far a plan has come, for a progress line on a terminal.
public struct RebalanceProgress: Sendable, Equatable, CustomStringConvertible {
    public enum Phase: String, Sendable {
        /// Reading the history into the graph of accounts: `done` of `total` pairs.
        case graph
        /// Moving accounts to cut cross-shard transfers: `done` passes of at most `total`.
        case refine
        /// Taking back moves that do not pay for themselves: `total` moved accounts to check, `done` when finished.
        case prune
    }

    public var phase: Phase
    public var done: Int
    public var total: Int

    public init(phase: Phase, done: Int, total: Int) {
        self.phase = phase
        self.done = done
        self.total = total
    }

    /// `graph 45%`, `refine pass 3`, `prune 80%`.
    public var description: String {
        switch phase {
        case .refine: return "refine pass \(done)"
        case .graph, .prune: return "\(phase.rawValue) \(total == 0 ? 100 : done * 100 / total)%"
        }
    }
}
