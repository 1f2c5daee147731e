import LedgerCore
import Testing

@Suite("catalog")
struct CatalogTests {
    static func catalog(_ overrides: [UInt64: String]) throws -> Catalog {
        let shards = try ShardMap.parse(
            "Shard, Cluster, Range\nD1, C1, 1-10\nD2, C2, 11-20\nD3, C1, 30-30\n", source: "shards.csv")
        return Catalog(
            version: 1, shards: shards,
            overrides: Dictionary(uniqueKeysWithValues: overrides.map { (AccountID($0.key), $0.value) }))
    }

    static func ranges(_ pairs: [(UInt64, UInt64)]) -> [ClosedRange<AccountID>] {
        pairs.map { AccountID($0.0)...AccountID($0.1) }
    }

    @Test("a cluster holds its ranges without the accounts moved away, plus those moved to it")
    func accountsOfACluster() throws {
        #expect(try Self.catalog([:]).accounts(of: "C1") == Self.ranges([(1, 10), (30, 30)]))
        let moved = try Self.catalog([1: "C2", 5: "C2", 10: "C2", 11: "C1", 30: "C2", 19: "C3"])
        #expect(moved.accounts(of: "C1") == Self.ranges([(2, 4), (6, 9), (11, 11)]))
        #expect(moved.accounts(of: "C2") == Self.ranges([(1, 1), (5, 5), (10, 10), (12, 18), (20, 20), (30, 30)]))
        #expect(moved.accounts(of: "C3") == Self.ranges([(19, 19)]))
        // An override that names the range's own cluster (a move back) changes nothing.
        #expect(try Self.catalog([3: "C1"]).accounts(of: "C1") == Self.ranges([(1, 10), (30, 30)]))
        #expect(moved.cluster(of: AccountID(5)) == "C2" && moved.cluster(of: AccountID(6)) == "C1")
    }
}
