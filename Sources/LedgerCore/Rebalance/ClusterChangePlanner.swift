/// Plans for a cluster that joins or leaves the deployment (`shardctl rebalance --fill C4`, `shardctl cluster drain
/// C2`): unlike `RebalancePlanner.plan`, which only moves accounts that pay for themselves, these move however many
/// accounts it takes to reach a size, and choose the accounts that cost the fewest cross-shard transfers.
///
/// - **Fill**: the cluster grows to its share, the mean size of the clusters (drained ones left out), taken from the
///   clusters above it, largest first, none going below `ceil(mean * (1 - maxImbalance))`. From each donor it takes
///   first the accounts with at least as many transfers with the filled cluster as with their own, then accounts
///   that never transacted (from the top of the donor's accounts, so that they move as contiguous ranges), then the
///   accounts with the least traffic left behind.
/// - **Drain**: every account of the cluster goes to the others, none of which may end above
///   `floor(mean * (1 + maxImbalance))` of the new mean, or its ceiling if that is more (so the others can always
///   take them all: only a cluster with no other to drain into is refused). Accounts that transacted go, busiest
///   first, to the cluster they transacted with most; the rest fill the smallest clusters, in contiguous ranges.
///
/// Pure and deterministic, like `RebalancePlanner.plan`. Both take accounts that never transacted as well: the
/// history is only a guide.
extension RebalancePlanner {
    /// Why a cluster cannot be filled or drained as asked.
    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Moves that bring `cluster` to its share of the accounts. A cluster at its share already gets no move.
    public static func fill(
        _ cluster: String, history: TransferHistory, catalog: Catalog, clusters: [String], options: Options = Options()
    ) throws(Refusal) -> RebalancePlan {
        guard !catalog.draining.contains(cluster) else {
            throw Refusal(description: "cluster \(cluster) is being drained; it takes no accounts")
        }
        var state = ChangeState(
            history: history, catalog: catalog, clusters: Set(clusters).union([cluster]), options: options)
        let target = state.index[cluster]!
        let active = state.names.indices.filter { !catalog.draining.contains(state.names[$0]) }
        let total = active.map { state.sizes[$0] }.reduce(0, +)
        let mean = Double(total) / Double(active.count)
        let share = Int(mean)
        let floor = Int((mean * (1 - options.maxImbalance) - 1e-9).rounded(.up))
        // Which donor gives each account: one at a time from the largest, while it stays above the floor and the mean.
        var quota = Array(repeating: 0, count: state.names.count)
        var sizes = state.sizes
        while sizes[target] < share {
            guard
                let donor = active.filter({ $0 != target && sizes[$0] > max(floor, share) }).max(by: {
                    (sizes[$0], -$0) < (sizes[$1], -$1)
                })
            else { break }
            quota[donor] += 1
            sizes[donor] -= 1
            sizes[target] += 1
        }
        for donor in active where quota[donor] > 0 {
            state.give(quota[donor], from: donor, to: target)
        }
        let ceiling = Int((mean * (1 + options.maxImbalance) + 1e-9).rounded(.down))
        return state.plan(allowed: { index in
            index == target ? min(floor, state.sizes[index])...max(ceiling, state.sizes[index]) : nil
        })
    }

    /// Moves that take every account of `cluster` to the other clusters. Refused when no other cluster may take
    /// accounts (it is the only one, or the others are being drained too).
    public static func drain(
        _ cluster: String, history: TransferHistory, catalog: Catalog, clusters: [String], options: Options = Options()
    ) throws(Refusal) -> RebalancePlan {
        var state = ChangeState(
            history: history, catalog: catalog, clusters: Set(clusters).union([cluster]), options: options)
        let source = state.index[cluster]!
        let targets = state.names.indices.filter { $0 != source && !catalog.draining.contains(state.names[$0]) }
        guard !targets.isEmpty else {
            throw Refusal(
                description: "cluster \(cluster) is the only cluster that can hold accounts; add one before draining it"
            )
        }
        let total = state.names.indices.filter { $0 == source || targets.contains($0) }.map { state.sizes[$0] }
            .reduce(0, +)
        let mean = Double(total) / Double(targets.count)
        let ceiling = max(Int((mean * (1 + options.maxImbalance) + 1e-9).rounded(.down)), Int(mean.rounded(.up)))
        state.disperse(from: source, to: targets, ceiling: ceiling)
        return state.plan(allowed: { index in
            index == source ? 0...state.sizes[source] : nil
        })
    }
}

/// The working state of a fill or a drain: the catalog's assignment changed by the moves planned so far, and the
/// history as traffic per account.
///
/// Invariants: `sizes[c]` is the number of accounts `names[c]` holds with `moved` applied; `moved` never names an
/// account's original cluster.
private struct ChangeState {
    let catalog: Catalog
    let options: RebalancePlanner.Options
    let names: [String]
    let index: [String: Int]
    let original: [Int]
    var sizes: [Int]
    let history: TransferHistory
    /// Each account's partners, by transfers between them (pairs below `minTransactions` left out).
    let partners: [AccountID: [(account: AccountID, transactions: Int)]]
    /// The cluster each moved account goes to.
    var moved: [AccountID: Int] = [:]

    init(history: TransferHistory, catalog: Catalog, clusters: Set<String>, options: RebalancePlanner.Options) {
        precondition((0...1).contains(options.maxImbalance), "maxImbalance is a fraction of the mean size")
        self.catalog = catalog
        self.options = options
        self.history = history
        names = clusters.union(catalog.clusters).sorted(by: RebalancePlanner.clusterOrder)
        index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
        original = RebalancePlanner.accountCounts(catalog, clusters: names, index: index)
        sizes = original
        var partners: [AccountID: [(account: AccountID, transactions: Int)]] = [:]
        for (pair, weight) in history.sortedPairs where weight.transactions >= options.minTransactions {
            partners[pair.first, default: []].append((pair.second, weight.transactions))
            partners[pair.second, default: []].append((pair.first, weight.transactions))
        }
        self.partners = partners
    }

    /// The cluster `account` is in with the moves planned so far; nil for an account no cluster owns.
    func owner(_ account: AccountID) -> Int? {
        moved[account] ?? catalog.cluster(of: account).flatMap { index[$0] }
    }

    /// Transfers of `account` with the accounts of each cluster.
    func traffic(of account: AccountID) -> [Int: Int] {
        var traffic: [Int: Int] = [:]
        for (partner, transactions) in partners[account] ?? [] {
            if let cluster = owner(partner) { traffic[cluster, default: 0] += transactions }
        }
        return traffic
    }

    mutating func move(_ account: AccountID, to cluster: Int) {
        let from = owner(account)!
        sizes[from] -= 1
        sizes[cluster] += 1
        moved[account] = cluster
    }

    /// The accounts `cluster` holds now, ascending: by the catalog, less and plus the moves planned.
    func accounts(of cluster: Int) -> [AccountID] {
        var held: [AccountID] = []
        for range in catalog.accounts(of: names[cluster]) {
            var account = range.lowerBound.value
            while true {
                if moved[AccountID(account)] == nil { held.append(AccountID(account)) }
                guard account < range.upperBound.value else { break }
                account += 1
            }
        }
        held += moved.filter { $0.value == cluster }.keys
        return held.sorted()
    }

    /// Moves `count` accounts of `donor` to `target`, the cheapest first (see `RebalancePlanner.fill`).
    mutating func give(_ count: Int, from donor: Int, to target: Int) {
        var left = count
        let held = accounts(of: donor)
        let linked = held.filter { partners[$0] != nil }
        // Accounts that transact with the target as much as with their own cluster, until none is left (each move
        // may make its partners such accounts).
        var changed = true
        while changed, left > 0 {
            changed = false
            for account in linked where left > 0 && owner(account) == donor {
                let traffic = self.traffic(of: account)
                if traffic[target, default: 0] >= traffic[donor, default: 0] {
                    move(account, to: target)
                    left -= 1
                    changed = true
                }
            }
        }
        // Accounts that never transacted, from the top.
        for account in held.reversed() where left > 0 && partners[account] == nil {
            move(account, to: target)
            left -= 1
        }
        // The accounts that leave the least traffic behind.
        let costs = linked.filter { owner($0) == donor }.map { account in
            let traffic = self.traffic(of: account)
            return (account, traffic[donor, default: 0] - traffic[target, default: 0])
        }
        for (account, _) in costs.sorted(by: { ($0.1, $0.0) < ($1.1, $1.0) }) where left > 0 {
            move(account, to: target)
            left -= 1
        }
    }

    /// Moves every account of `source` to `targets`, none above `ceiling` (see `RebalancePlanner.drain`).
    mutating func disperse(from source: Int, to targets: [Int], ceiling: Int) {
        let held = accounts(of: source)
        let linked = held.filter { partners[$0] != nil }.map { account in
            (account, (partners[account] ?? []).map(\.transactions).reduce(0, +))
        }
        for (account, _) in linked.sorted(by: { ($1.1, $0.0) < ($0.1, $1.0) }) {
            let traffic = self.traffic(of: account)
            let best = targets.filter { sizes[$0] < ceiling }.max { left, right in
                (traffic[left, default: 0], ceiling - sizes[left], -left)
                    < (traffic[right, default: 0], ceiling - sizes[right], -right)
            }!
            move(account, to: best)
        }
        // The rest fill the smallest clusters evenly, in contiguous ranges: first count each one's part, then hand
        // out the accounts in order.
        let rest = held.filter { partners[$0] == nil }
        var parts = Array(repeating: 0, count: names.count)
        for _ in rest {
            let smallest = targets.filter { sizes[$0] + parts[$0] < ceiling }.min {
                (sizes[$0] + parts[$0], $0) < (sizes[$1] + parts[$1], $1)
            }!
            parts[smallest] += 1
        }
        var next = rest.makeIterator()
        for target in targets {
            for _ in 0..<parts[target] { move(next.next()!, to: target) }
        }
    }

    /// The plan of the moves made: its figures over the whole history, and each cluster's size with the sizes
    /// allowed (`allowed` gives a cluster's own; the others may not leave `maxImbalance` of the mean, widened to
    /// their sizes before and after).
    func plan(allowed: (Int) -> ClosedRange<Int>?) -> RebalancePlan {
        let moves = moved.keys.sorted().map { account in
            AccountMove(account: account, from: names[original(of: account)], to: names[moved[account]!])
        }
        var figures = (transfers: 0, before: 0, after: 0, unowned: 0)
        for (pair, weight) in history.sortedPairs {
            guard let first = catalog.cluster(of: pair.first), let second = catalog.cluster(of: pair.second) else {
                figures.unowned += weight.transactions
                continue
            }
            figures.transfers += weight.transactions
            if first != second { figures.before += weight.transactions }
            if owner(pair.first) != owner(pair.second) { figures.after += weight.transactions }
        }
        let (lowest, highest) = RebalancePlanner.bounds(sizes: original, maxImbalance: options.maxImbalance)
        let shards = names.indices.map { cluster in
            RebalancePlan.ShardSize(
                cluster: names[cluster], before: original[cluster], after: sizes[cluster],
                allowed: allowed(cluster)
                    ?? min(lowest[cluster], sizes[cluster])...max(highest[cluster], sizes[cluster]))
        }
        return RebalancePlan(
            options: options, moves: moves, pairs: [], shards: shards, transfers: figures.transfers,
            crossShardBefore: figures.before, crossShardAfter: figures.after, unownedTransfers: figures.unowned)
    }

    private func original(of account: AccountID) -> Int {
        index[catalog.cluster(of: account)!]!
    }
}
