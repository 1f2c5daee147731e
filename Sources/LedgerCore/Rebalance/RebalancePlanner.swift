/// Plans account moves that cut cross-shard transfers while every cluster stays within a size bound.
///
/// The history is a graph: accounts are nodes, and two accounts that transacted at least `minTransactions` times are
/// joined by an edge weighted by how often they did. The plan partitions the graph, starting from the catalog's
/// assignment, in three steps:
/// 1. **Refine** (Fiduccia-Mattheyses, k-way): each pass moves accounts one at a time, best gain first (the weight of
///    cross-shard edges it removes minus those it adds), even at zero or negative gain, each account at most once per
///    pass, then keeps the best prefix of the pass. Zero-gain moves are how a chain split in the middle (`a-b | c-d`)
///    or a group spread evenly over clusters comes together; a move back to its original cluster, then a newly
///    updated account (it just gained a neighbor), then a lighter account (fewer transfers in all, pairs below
///    `minTransactions` included) wins a tie, so chains are followed and fewer accounts, and less traffic, move. A pass may overfill a cluster by one account, but then only moves out of it are allowed
///    until it is back within bounds, and only prefixes within bounds are kept: a swap between two full clusters is
///    a move and its answer. Passes repeat while they cut more.
/// 2. **Prune**: a moved account must pay for itself. If its transfers in its new cluster exceed those in its old one
///    by less than `moveBenefitMin` of all its transfers (ignored pairs included), it goes back (alone, or with an account moved the other way
///    when the bound requires), and the check repeats on the moved neighbors. Uniform traffic spreads every account
///    over all clusters, so its moves are taken back, while a member of a community keeps most of its transfers with
///    the community it joined.
/// 3. A plan that does not end with fewer cross-shard transfers than the catalog, over the whole history (ignored
///    pairs included), moves nothing.
///
/// The size of a cluster is the number of accounts it owns (ranges and overrides). The bound is `[ceil(mean * (1 -
/// maxImbalance)), floor(mean * (1 + maxImbalance))]` over the mean size of `clusters`, widened per cluster to
/// include its current size. Only accounts of the graph move.
///
/// Pure and deterministic: the same inputs give the same plan (ties are broken by account order, never by hashing).
/// About `(passes + 1) * edges * log(edges)` work: a million transfers over 100,000 accounts plan in seconds.
public enum RebalancePlanner {
    /// What the plan may do.
    ///
    /// Invariants (preconditions of `plan`): `maxImbalance` is in `0...1`; `minTransactions >= 1`;
    /// `moveBenefitMin` is in `0...1`.
    public struct Options: Sendable, Equatable {
        /// How far a cluster's size may be from the mean size, as a fraction of the mean.
        public var maxImbalance: Double
        /// Pairs that transacted fewer times are left out of the graph (they still count in the fractions).
        public var minTransactions: Int
        /// The share of its transfers a moved account must turn from cross-shard into intra-shard, net.
        public var moveBenefitMin: Double

        public init(maxImbalance: Double = 0.05, minTransactions: Int = 1, moveBenefitMin: Double = 0.5) {
            self.maxImbalance = maxImbalance
            self.minTransactions = minTransactions
            self.moveBenefitMin = moveBenefitMin
        }
    }

    /// The most refinement passes: a pass that cuts nothing ends the refinement, and passes after the first few cut
    /// little; this bounds the time on any graph.
    static let refinePassesMax = 16
    /// Moves a pass makes past its best prefix before it gives up: enough to follow a chain of this many zero-gain
    /// moves to the move that pays, few enough that a pass over a large graph ends soon after its last gain.
    static let stallMovesMax = 1_000
    /// A pass that cuts less than this fraction of the cut it started from ends the refinement: on a large graph the
    /// passes after it cut less still (uniform traffic goes on finding crumbs that pruning takes back anyway).
    static let refineCutShareMin = 1_000
    /// Progress is reported every this many items of a phase.
    static let progressInterval = 1 << 16

    /// Proposes moves for the accounts of `catalog`, over the clusters of the catalog plus `clusters` (a cluster of
    /// hosts.ini that owns nothing yet may receive accounts), from the transfers of `history`.
    public static func plan(
        history: TransferHistory, catalog: Catalog, clusters: [String] = [], options: Options = Options(),
        progress: (RebalanceProgress) -> Void = { _ in }
    ) -> RebalancePlan {
        precondition((0...1).contains(options.maxImbalance), "maxImbalance is a fraction of the mean size")
        precondition(options.minTransactions >= 1, "minTransactions counts transfers")
        precondition((0...1).contains(options.moveBenefitMin), "moveBenefitMin is a fraction of the transfers")

        let names = Set(clusters).union(catalog.clusters).sorted(by: clusterOrder)
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
        let sizes = accountCounts(catalog, clusters: names, index: index)
        let (lowest, highest) = bounds(sizes: sizes, maxImbalance: options.maxImbalance)

        let indexed = IndexedHistory(
            history, catalog: catalog, clusters: index, minTransactions: options.minTransactions, progress: progress)
        let (pairs, accounts, original) = (indexed.pairs, indexed.accounts, indexed.graph.original)

        var partition = Partition(graph: indexed.graph, sizes: sizes, lowest: lowest, highest: highest)
        partition.refine(
            passesMax: refinePassesMax, stallMovesMax: stallMovesMax, cutShareMin: refineCutShareMin
        ) { pass in
            progress(RebalanceProgress(phase: .refine, done: pass, total: refinePassesMax))
        }
        partition.prune(benefitMin: options.moveBenefitMin) { done, total in
            progress(RebalanceProgress(phase: .prune, done: done, total: total))
        }
        var figures = indexed.crossShard(partition)
        // Judged on the whole history: pairs below minTransactions must not pay for the ones above.
        if figures.after >= figures.before {
            partition.undoAll()
            figures = indexed.crossShard(partition)
        }

        var moves: [AccountMove] = []
        for (node, account) in accounts.enumerated() where partition.part[node] != original[node] {
            moves.append(
                AccountMove(
                    account: account, from: names[Int(original[node])], to: names[Int(partition.part[node])]))
        }

        var colocated: [ColocatedPair] = []
        for ((item, owned), linked) in zip(zip(pairs, indexed.owners), indexed.nodes)
        where owned.0 != owned.1 && linked.0 >= 0 && linked.1 >= 0
            && item.weight.transactions >= options.minTransactions
        {
            let (one, other) = (Int(linked.0), Int(linked.1))
            let into = partition.part[one]
            guard into == partition.part[other] else { continue }
            // The account that stays comes first; when both move, the smaller one (pairs are ordered).
            let (first, second) = into == original[other] ? (other, one) : (one, other)
            colocated.append(
                ColocatedPair(
                    first: accounts[first], second: accounts[second], into: names[Int(into)],
                    from: names[Int(original[second])], transactions: item.weight.transactions,
                    total: item.weight.total))
        }
        colocated.sort { left, right in
            if left.transactions != right.transactions { return left.transactions > right.transactions }
            return (left.first, left.second) < (right.first, right.second)
        }

        let shards = names.indices.map { cluster in
            RebalancePlan.ShardSize(
                cluster: names[cluster], before: sizes[cluster], after: partition.sizes[cluster],
                allowed: lowest[cluster]...highest[cluster])
        }
        return RebalancePlan(
            options: options, moves: moves, pairs: colocated, shards: shards, transfers: figures.transfers,
            crossShardBefore: figures.before, crossShardAfter: figures.after, unownedTransfers: figures.unowned)
    }

    /// `C2` before `C10`: by length, then by text.
    static func clusterOrder(_ left: String, _ right: String) -> Bool {
        (left.count, left) < (right.count, right)
    }

    /// The accounts each cluster owns: its ranges, plus the overrides moved in, minus those moved out.
    static func accountCounts(_ catalog: Catalog, clusters: [String], index: [String: Int]) -> [Int] {
        var counts = Array(repeating: 0, count: clusters.count)
        for shard in catalog.shards.shards {
            // A range of 2^64 accounts does not fit an Int; such a catalog is far beyond any bound anyway.
            let span = shard.accounts.upperBound.value - shard.accounts.lowerBound.value
            let count = span >= UInt64(Int.max / 4) ? Int.max / 4 : Int(span) + 1
            counts[index[shard.cluster]!] = min(Int.max / 4, counts[index[shard.cluster]!] + count)
        }
        for (account, cluster) in catalog.overrides {
            let range = catalog.shards.cluster(of: account)
            guard range != cluster else { continue }
            if let range { counts[index[range]!] -= 1 }
            counts[index[cluster]!] += 1
        }
        return counts
    }

    /// The lowest and highest size of each cluster: within `maxImbalance` of the mean, widened to its current size.
    static func bounds(sizes: [Int], maxImbalance: Double) -> (lowest: [Int], highest: [Int]) {
        guard !sizes.isEmpty else { return ([], []) }
        let mean = Double(sizes.reduce(0, +)) / Double(sizes.count)
        // A hair of tolerance so that a bound landing on a whole number is not lost to rounding.
        let low = Int((mean * (1 - maxImbalance) - 1e-9).rounded(.up))
        let high = Int((mean * (1 + maxImbalance) + 1e-9).rounded(.down))
        return (sizes.map { min($0, low) }, sizes.map { max($0, high) })
    }
}

/// The history indexed for planning: every pair in pair order with the clusters and graph nodes of its two accounts,
/// and the graph of the pairs that transacted at least `minTransactions` times between owned accounts.
///
/// Invariants: `pairs`, `owners` and `nodes` are parallel; an owner is a cluster index or -1 for an account no cluster
/// owns; a node is an index into `accounts` (sorted) and `graph`, or -1 for an account outside the graph.
struct IndexedHistory {
    let pairs: [(pair: TransferHistory.Pair, weight: TransferHistory.Weight)]
    let owners: [(Int32, Int32)]
    let nodes: [(Int32, Int32)]
    let accounts: [AccountID]
    let graph: PlanningGraph

    init(
        _ history: TransferHistory, catalog: Catalog, clusters: [String: Int], minTransactions: Int,
        progress: (RebalanceProgress) -> Void
    ) {
        pairs = history.sortedPairs
        var ownerOf: [AccountID: Int32] = [:]
        func owner(_ account: AccountID) -> Int32 {
            if let known = ownerOf[account] { return known }
            let found = catalog.cluster(of: account).flatMap { clusters[$0] }.map { Int32($0) } ?? -1
            ownerOf[account] = found
            return found
        }
        func isEdge(_ weight: TransferHistory.Weight, _ owned: (Int32, Int32)) -> Bool {
            owned.0 >= 0 && owned.1 >= 0 && weight.transactions >= minTransactions
        }
        var owners: [(Int32, Int32)] = []
        owners.reserveCapacity(pairs.count)
        var linked: Set<AccountID> = []
        for (position, item) in pairs.enumerated() {
            let owned = (owner(item.pair.first), owner(item.pair.second))
            owners.append(owned)
            if isEdge(item.weight, owned) {
                linked.insert(item.pair.first)
                linked.insert(item.pair.second)
            }
            if position % RebalancePlanner.progressInterval == 0 {
                progress(RebalanceProgress(phase: .graph, done: position, total: pairs.count))
            }
        }
        self.owners = owners

        // Nodes in account order, so that ties between nodes are ties between account ids.
        accounts = linked.sorted()
        let nodeOf = Dictionary(uniqueKeysWithValues: accounts.enumerated().map { ($0.element, Int32($0.offset)) })
        var nodes: [(Int32, Int32)] = []
        nodes.reserveCapacity(pairs.count)
        var edges: [(Int32, Int32, Int)] = []
        var traffic = Array(repeating: 0, count: accounts.count)
        for (item, owned) in zip(pairs, owners) {
            let ends = (nodeOf[item.pair.first] ?? -1, nodeOf[item.pair.second] ?? -1)
            nodes.append(ends)
            if isEdge(item.weight, owned) { edges.append((ends.0, ends.1, item.weight.transactions)) }
            if owned.0 >= 0, owned.1 >= 0 {
                if ends.0 >= 0 { traffic[Int(ends.0)] += item.weight.transactions }
                if ends.1 >= 0 { traffic[Int(ends.1)] += item.weight.transactions }
            }
        }
        self.nodes = nodes
        graph = PlanningGraph(
            clusterCount: clusters.count, original: accounts.map { ownerOf[$0]! }, edges: edges, traffic: traffic)
        progress(RebalanceProgress(phase: .graph, done: pairs.count, total: pairs.count))
    }

    /// The transfers between owned accounts, those of them that cross clusters before and after `partition`, and the
    /// transfers naming an account no cluster owns.
    func crossShard(_ partition: Partition) -> (transfers: Int, before: Int, after: Int, unowned: Int) {
        var figures = (transfers: 0, before: 0, after: 0, unowned: 0)
        for ((item, owned), ends) in zip(zip(pairs, owners), nodes) {
            let count = item.weight.transactions
            guard owned.0 >= 0, owned.1 >= 0 else {
                figures.unowned += count
                continue
            }
            figures.transfers += count
            if owned.0 != owned.1 { figures.before += count }
            let first = ends.0 >= 0 ? partition.part[Int(ends.0)] : owned.0
            let second = ends.1 >= 0 ? partition.part[Int(ends.1)] : owned.1
            if first != second { figures.after += count }
        }
        return figures
    }
}
