/// Which cluster owns each account: the shard ranges of `shards.csv` plus per-account overrides (accounts moved by
/// a rebalance), with a version that grows with every change. The client routes with it; a cluster creates its
/// accounts from it on first start.
///
/// Invariants: ranges never overlap (`ShardMap` checks them); an override names a cluster; `version >= 1`.
public struct Catalog: Sendable, Equatable {
    public var version: UInt64
    public var shards: ShardMap
    public var overrides: [AccountID: String]
    /// Clusters being drained (`shardctl cluster drain`): they take no account, and give all of theirs away.
    public var draining: Set<String>

    public init(
        version: UInt64, shards: ShardMap, overrides: [AccountID: String] = [:], draining: Set<String> = []
    ) {
        precondition(version >= 1, "a catalog's version starts at 1")
        self.version = version
        self.shards = shards
        self.overrides = overrides
        self.draining = draining
    }

    /// The cluster that owns `account`, if any.
    public func cluster(of account: AccountID) -> String? {
        overrides[account] ?? shards.cluster(of: account)
    }

    /// The ranges of `shards.csv` that `cluster` owns.
    public func ranges(of cluster: String) -> [ClosedRange<AccountID>] {
        shards.accounts(of: cluster)
    }

    /// The accounts `cluster` holds by this catalog, as ascending disjoint ranges: its ranges without the accounts
    /// moved elsewhere, plus the accounts moved to it. What a cluster creates when it starts with an empty ledger
    /// (a fresh deployment from a catalog that a rebalance changed).
    public func accounts(of cluster: String) -> [ClosedRange<AccountID>] {
        var result: [ClosedRange<AccountID>] = []
        func append(_ range: ClosedRange<AccountID>) {
            if let last = result.last, last.upperBound.value != UInt64.max,
                last.upperBound.value + 1 == range.lowerBound.value
            {
                result[result.count - 1] = last.lowerBound...range.upperBound
            } else {
                result.append(range)
            }
        }
        let away = overrides.filter { $0.value != cluster }.keys.sorted()
        let here = overrides.filter { $0.value == cluster && shards.cluster(of: $0.key) != cluster }.keys
        var pieces = here.map { $0...$0 }
        for range in ranges(of: cluster) {
            var start = range.lowerBound.value
            for account in away where range.contains(account) {
                if account.value > start { pieces.append(AccountID(start)...AccountID(account.value - 1)) }
                start = account.value &+ 1  // 0 after the largest id: nothing is left
            }
            if start != 0, start <= range.upperBound.value { pieces.append(AccountID(start)...range.upperBound) }
        }
        for piece in pieces.sorted(by: { $0.lowerBound < $1.lowerBound }) { append(piece) }
        return result
    }

    /// The number of accounts `cluster` holds by this catalog.
    public func accountCount(of cluster: String) -> UInt64 {
        accounts(of: cluster).reduce(0) { count, range in
            count &+ (range.upperBound.value - range.lowerBound.value) &+ 1
        }
    }

    /// Every cluster that owns accounts, in name order.
    public var clusters: [String] { Set(shards.shards.map(\.cluster)).union(overrides.values).sorted() }

    /// Records that `account` now lives in `cluster` (the answer `wrongShard` gave).
    public mutating func move(_ account: AccountID, to cluster: String) {
        guard self.cluster(of: account) != cluster else { return }
        overrides[account] = cluster
        version += 1
    }
}
