/// Which cluster owns each account: the shard ranges of `shards.csv` plus per-account overrides (accounts moved by
/// a rebalance), with a version that grows with every change. The client routes with it; a cluster creates its
/// accounts from it on first start.
///
/// Invariants: ranges never overlap (`ShardMap` checks them); an override names a cluster; `version >= 1`.
public struct Catalog: Sendable, Equatable {
    public var version: UInt64
    public var shards: ShardMap
    public var overrides: [AccountID: String]

    public init(version: UInt64, shards: ShardMap, overrides: [AccountID: String] = [:]) {
        precondition(version >= 1, "a catalog's version starts at 1")
        self.version = version
        self.shards = shards
        self.overrides = overrides
    }

    /// The cluster that owns `account`, if any.
    public func cluster(of account: AccountID) -> String? {
        overrides[account] ?? shards.cluster(of: account)
    }

    /// The ranges `cluster` creates on first start (overrides are moved in by rebalance transactions instead).
    public func ranges(of cluster: String) -> [ClosedRange<AccountID>] {
        shards.accounts(of: cluster)
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
