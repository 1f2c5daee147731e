import LedgerCore
import Testing

@Suite("shards.csv")
struct ShardMapTests {
    static let seed = """
        Shard, Cluster, Range
        D1, C1, 1-1000
        D2, C2, 1001-2000
        D3, C3, 2001-3000

        """

    static func shard(_ name: String, _ cluster: String, _ first: UInt64, _ last: UInt64, line: Int) -> ShardMap.Shard {
        ShardMap.Shard(name: name, cluster: cluster, accounts: AccountID(first)...AccountID(last), line: line)
    }

    @Test("the seed map")
    func seedMap() throws {
        let map = try ShardMap.parse(Self.seed, source: "shards.csv")
        #expect(
            map.shards == [
                Self.shard("D1", "C1", 1, 1000, line: 2), Self.shard("D2", "C2", 1001, 2000, line: 3),
                Self.shard("D3", "C3", 2001, 3000, line: 4),
            ])
        #expect(map.source == "shards.csv")
        #expect(map.shard(named: "D2")?.cluster == "C2")
        #expect(map.accounts(of: "C2") == [AccountID(1001)...AccountID(2000)])
        #expect(map.accounts(of: "C9") == [])
    }

    @Test(
        "account lookup at and around every bound",
        arguments: [
            (UInt64(1), "C1"), (21, "C1"), (1000, "C1"), (1001, "C2"), (2000, "C2"), (2001, "C3"), (3000, "C3"),
            (3001, nil), (UInt64.max, nil),
        ] as [(UInt64, String?)])
    func lookup(account: UInt64, cluster: String?) throws {
        let map = try ShardMap.parse(Self.seed, source: "shards.csv")
        #expect(map.cluster(of: AccountID(account)) == cluster)
    }

    @Test("gaps, several ranges per cluster and rows out of order")
    func gapsAndOrder() throws {
        let map = try ShardMap.parse("D3, C1, 500-599\nD1, C1, 1-99\nD2, C2, 100-199\n", source: "shards.csv")
        #expect(map.shards.map(\.name) == ["D1", "D2", "D3"])
        #expect(map.cluster(of: AccountID(250)) == nil)
        #expect(map.cluster(of: AccountID(550)) == "C1")
        #expect(map.accounts(of: "C1") == [AccountID(1)...AccountID(99), AccountID(500)...AccountID(599)])
    }

    @Test(
        "header or not, quotes, spaces, CRLF and a byte-order mark read the same",
        arguments: [
            "Shard,Cluster,Range\nD1,C1,1-1000\nD2,C2,1001-2000\nD3,C3,2001-3000\n",
            "shard , cluster , range\n D1 , C1 , 1-1000 \n\"D2\",\"C2\",\" 1001 - 2000 \"\nD3,C3,2001-3000",
            windowsText(seed),
            "\u{FEFF}Shard, Cluster, Range\r\n\r\nD1, C1, 1-1000\r\nD2, C2, 1001-2000\r\nD3, C3, 2001-3000\r\n",
        ])
    func sameMap(text: String) throws {
        let expected = try ShardMap.parse(Self.seed, source: "shards.csv").shards.map {
            ($0.name, $0.cluster, $0.accounts)
        }
        let map = try ShardMap.parse(text, source: "shards.csv")
        #expect(map.shards.map(\.name) == expected.map(\.0))
        #expect(map.shards.map(\.cluster) == expected.map(\.1))
        #expect(map.shards.map(\.accounts) == expected.map(\.2))
    }

    @Test("without a header, lines count from the first row")
    func withoutHeader() throws {
        let map = try ShardMap.parse("D1, C1, 1-1000\nD2, C2, 1001-2000", source: "shards.csv")
        #expect(map.shards.map(\.line) == [1, 2])
    }

    static let forms = "write digits only, like 21, or 16 digits in groups of 4, like 9090-8912-1209-0098"
    static let badMaps: [(String, String)] = [
        ("", "shards.csv: no shards defined; write rows like D1, C1, 1-1000"),
        ("\n\n", "shards.csv: no shards defined; write rows like D1, C1, 1-1000"),
        ("Shard, Cluster, Range\n", "shards.csv: no shards defined; write rows like D1, C1, 1-1000"),
        (
            "Shard, Cluster\nD1, C1, 1-10",
            "shards.csv:1: header \"Shard, Cluster\" should be Shard, Cluster, Range"
        ),
        (
            "D1, C1",
            "shards.csv:1: row has 2 fields; expected 3: Shard, Cluster, Range, like D1, C1, 1-1000"
        ),
        (
            "Shard, Cluster, Range\nD1, C1, 1-10, extra",
            "shards.csv:2: row has 4 fields; expected 3: Shard, Cluster, Range, like D1, C1, 1-1000"
        ),
        (
            "D1 C1 1-10",
            "shards.csv:1: row has 1 field; expected 3: Shard, Cluster, Range, like D1, C1, 1-1000"
        ),
        (
            "X1, C1, 1-10",
            "shards.csv:1: bad shard name \"X1\"; shard names are D followed by a number from 1, like D1"
        ),
        ("D0, C1, 1-10", "shards.csv:1: bad shard name \"D0\"; shard names are D followed by a number from 1, like D1"),
        ("D1, C1, 1-10\nD1, C2, 11-20", "shards.csv:2: shard D1 is defined twice (first at line 1)"),
        (
            "D1, X, 1-10",
            "shards.csv:1: bad cluster name \"X\"; cluster names are C followed by a number from 1, like C1"
        ),
        (
            "D1, C1, 1000-1",
            "shards.csv:1: range \"1000-1\" is backwards; write the smaller account id first, like 1-1000"
        ),
        ("D1, C1, a-b", "shards.csv:1: range \"a-b\": account id \"a\" is not a whole number; \(forms)"),
        ("D1, C1, 1-1e3", "shards.csv:1: range \"1-1e3\": account id \"1e3\" is not a whole number; \(forms)"),
        ("D1, C1, 1000", "shards.csv:1: range \"1000\" has no \"-\"; write first-last, like 1-1000"),
        (
            "D1, C1, 1-2-3",
            "shards.csv:1: range \"1-2-3\" has more than one \"-\"; write first-last with plain numbers, like 1-1000"
        ),
        ("D1, C1, 0-10", "shards.csv:1: range \"0-10\": account id \"0\" is not an account; account ids start at 1"),
        ("D1, C1, 1-", "shards.csv:1: range \"1-\": account id is empty; \(forms)"),
        ("D1, C1, -5", "shards.csv:1: range \"-5\": account id is empty; \(forms)"),
        ("D1, C1,", "shards.csv:1: range is empty; write first-last, like 1-1000"),
        (
            "D1, C1, 1-18446744073709551616",
            "shards.csv:1: range \"1-18446744073709551616\": account id \"18446744073709551616\" is too large; the "
                + "largest account id is 18446744073709551615"
        ),
        (
            "D1, C1, 1-1000\nD2, C2, 500-1500",
            "shards.csv:2: range 500-1500 of D2 overlaps range 1-1000 of D1 (line 1); ranges must not overlap"
        ),
        (
            "D1, C1, 500-1500\nD2, C2, 1-1000",
            "shards.csv:2: range 1-1000 of D2 overlaps range 500-1500 of D1 (line 1); ranges must not overlap"
        ),
        (
            "D1, C1, 1-1000\nD2, C2, 1000-2000",
            "shards.csv:2: range 1000-2000 of D2 overlaps range 1-1000 of D1 (line 1); ranges must not overlap"
        ),
        (
            "D1, C1, 1-3000\nD2, C2, 1001-2000\nD3, C3, 2001-2500",
            "shards.csv:2: range 1001-2000 of D2 overlaps range 1-3000 of D1 (line 1); ranges must not overlap"
        ),
        (
            "\"D1, C1, 1-10",
            "shards.csv:1: the quote opened on this line is never closed; end the field with another \""
        ),
        (
            "D\"1\", C1, 1-10",
            "shards.csv:1: stray quote after D; put quotes around a whole field and write a quote inside it as \"\""
        ),
        (
            "\"D1\"x, C1, 1-10",
            "shards.csv:1: text \"x\" after the closing quote of \"D1\"; a quoted field ends at its closing quote, "
                + "before the next comma"
        ),
    ]

    @Test("bad shard maps", arguments: badMaps)
    func badMap(text: String, expected: String) {
        #expect(
            thrownDescription { () throws(InputError) in try ShardMap.parse(text, source: "shards.csv") } == expected)
    }

    @Test("every cluster must exist in hosts.ini")
    func unknownCluster() throws {
        let hosts = try HostsFile.parse(HostsFileTests.deployment, source: "hosts.ini")
        try ShardMap.parse(Self.seed, source: "shards.csv").check(against: hosts)
        let map = try ShardMap.parse(Self.seed + "D4, C4, 3001-4000\n", source: "shards.csv")
        #expect(
            thrownDescription { () throws(InputError) in try map.check(against: hosts) }
                == "shards.csv:5: shard D4 names cluster C4, which hosts.ini does not define; it defines C1, C2 and C3")
    }
}
