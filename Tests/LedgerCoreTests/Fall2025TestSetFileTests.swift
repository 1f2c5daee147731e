import LedgerCore
import Testing

/// The Fall 2025 course's test-file format beside the original one: nodes `n<k>` for replicas `S<k>`, reads, fail and
/// recover rows, no contacts; how a file's format is told from its content, and the errors of rows that mix them.
@Suite("Test-set files in the Fall 2025 format")
struct Fall2025TestSetFileTests {
    static let all = "[n1, n2, n3, n4, n5, n6, n7, n8, n9]"
    static let servers = (1...9).map { "S\($0)" }
    static let example = """
        Set Number,Transactions,Live Nodes
        1,"(100, 3100, 2)","\(all)"
        ,"(2001)",
        ,F(n3),
        ,"(101, 102, 1)",
        ,"(101)",
        ,R(n3),
        2,"(7000, 1, 4)","[n1, n2, n4, n5, n7, n8]"
        ,R(n9),

        """

    static func transfer(_ from: UInt64, _ to: UInt64, _ amount: Int64) throws -> TestStep.Action {
        .transfer(try Transfer(from: AccountID(from), to: AccountID(to), amount: Amount(amount)))
    }

    @Test("the example reads as sets of steps, nodes as their replicas")
    func example() throws {
        let file = try TestSetFile.parse(Self.example, source: "fall.csv")
        #expect(file.format == .fall2025)
        #expect(file.sets.map(\.number) == [1, 2])
        #expect(file.sets.map(\.line) == [2, 8])
        #expect(file.sets.map(\.format) == [.fall2025, .fall2025])
        #expect(file.sets[0].liveServers == Self.servers)
        #expect(file.sets[0].contacts == [])
        #expect(
            file.sets[0].steps == [
                TestStep(try Self.transfer(100, 3100, 2), line: 2), TestStep(.read(AccountID(2001)), line: 3),
                TestStep(.fail("S3"), line: 4), TestStep(try Self.transfer(101, 102, 1), line: 5),
                TestStep(.read(AccountID(101)), line: 6), TestStep(.recover("S3"), line: 7),
            ])
        #expect(file.sets[0].transfers.map(\.line) == [2, 5])
        #expect(file.sets[0].reads == [AccountID(2001), AccountID(101)])
        #expect(file.sets[0].operationCount == 4)
        #expect(file.sets[1].liveServers == ["S1", "S2", "S4", "S5", "S7", "S8"])
        #expect(
            file.sets[1].steps == [TestStep(try Self.transfer(7000, 1, 4), line: 8), TestStep(.recover("S9"), line: 9)])
        #expect(file.sets[1].name(of: "S9") == "n9")
    }

    @Test("a set runs in segments split at its fail and recover rows")
    func segments() throws {
        let sets = try TestSetFile.parse(Self.example, source: "fall.csv").sets
        let first = sets[0].segments
        #expect(first.count == 3)
        #expect(first.map { $0.changes.map(\.line) } == [[], [4], [7]])
        #expect(first.map { $0.operations.map(\.line) } == [[2, 3], [5, 6], []])
        #expect(
            first.map { Set($0.liveServers) } == [
                Set(Self.servers), Set(Self.servers).subtracting(["S3"]), Set(Self.servers),
            ])
        // A set that starts with a change, and changes next to each other, make one segment's changes.
        let text = "1,F(n1),\"\(Self.all)\"\n,F(n2),\n,\"(1)\",\n,R(n1),\n,R(n2),\n,\"(2)\",\n"
        let set = try TestSetFile.parse(text, source: "fall.csv").sets[0]
        #expect(set.segments.map { $0.changes.map(\.line) } == [[1, 2], [4, 5]])
        #expect(set.segments.map { $0.operations.map(\.line) } == [[3], [6]])
        #expect(
            set.segments.map { Set($0.liveServers) } == [
                Set(Self.servers).subtracting(["S1", "S2"]), Set(Self.servers),
            ])
        // The original format: one segment of transfers.
        let original = try TestSetFile.parse(TestSetFileTests.design, source: "tests.csv").sets[0]
        #expect(
            original.segments == [
                TestSegment(changes: [], operations: original.steps, liveServers: original.liveServers)
            ])
    }

    static let variants: [String] = [
        windowsText(example),
        // No header: the node names tell.
        example.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().joined(separator: "\n"),
        // Every field quoted, spaces around and inside, trailing commas, a fourth empty column.
        """
        "Set Number" , "Transactions" , "Live Nodes"
        "1","( 100 , 3100 , 2 )","[n1,n2,n3,n4,n5,n6,n7,n8,n9]",
        "",  "(2001)"  ,""
        ,"F( n3 )",,
        ,"(101, 102, 1)"
        ,( 101 ),
        ,R (n3),
        ,,
        , , ,
        2,"(7000, 1, 4)","[ n1 , n2 , n4 , n5 , n7 , n8 ]"
        ,"R(n9)",
        """,
    ]

    @Test("spacing, quoting, CRLF, a missing header and spreadsheet padding read the same", arguments: variants)
    func sameSets(text: String) throws {
        let expected = try TestSetFile.parse(Self.example, source: "fall.csv")
        let file = try TestSetFile.parse(text, source: "fall.csv")
        #expect(file.format == .fall2025)
        #expect(file.sets.map(\.number) == expected.sets.map(\.number))
        #expect(file.sets.map { $0.steps.map(\.action) } == expected.sets.map { $0.steps.map(\.action) })
        #expect(file.sets.map(\.liveServers) == expected.sets.map(\.liveServers))
    }

    static let detections: [(String, TestSetFile.Format)] = [
        ("Set Number,Transactions,Live Nodes\n1,\"(1, 2, 3)\",\"[]\"", .fall2025),
        ("set number , transactions , live  nodes\n1,\"(1, 2, 3)\",\"[]\"", .fall2025),
        ("Set,Transactions,Live Servers,Contact Servers\n1,\"(1, 2, 3)\",\"[]\"", .original),
        ("1,\"(1, 2, 3)\",\"[n1]\"", .fall2025),
        ("1,\"(1, 2, 3)\",\"[S1]\"", .original),
        ("1,\"(1, 2, 3)\",\"[]\"\n2,\"(1, 2, 3)\",\"[n1]\"", .fall2025),
        ("1,\"(1, 2, 3)\",\"[]\",\"[]\"\n2,\"(1, 2, 3)\",\"[]\"", .original),
        ("1,\"(1, 2, 3)\",\"[]\",\"[S1]\"", .original),
        ("1,\"(1, 2, 3)\",\"[]\"\n,R(n1),", .fall2025),
        ("1,\"(1, 2, 3)\",\"[]\"\n,\"(7)\",", .fall2025),
        // Nothing tells: the original format, whose rows these are too.
        ("1,\"(1, 2, 3)\",\"[]\"", .original),
        ("Set,Transfer,Live\n1,\"(1, 2, 3)\",\"[]\"", .original),
    ]

    @Test(
        "the format is told by the header, the replica names, contacts, reads or fail and recover rows",
        arguments: detections)
    func detection(text: String, format: TestSetFile.Format) throws {
        #expect(try TestSetFile.parse(text, source: "t.csv").format == format)
    }

    static let start = "Set Number,Transactions,Live Nodes\n1,\"(1, 2, 3)\",\"[n1, n2, n3]\"\n"
    static let fallHeader = "the file is in the Fall 2025 format (the header on line 1 names Live Nodes)"
    static let originalRow = "the file is in the original format (line 1 names server S1)"
    static let transactions = "a transfer (21, 700, 2), a read (2001), F(n3) or R(n3)"

    static let badFiles: [(String, String)] = [
        // Fail and recover rows.
        (
            start + ",F(n0),",
            "fall.csv:3: fail row \"F(n0)\" names \"n0\", which is not a node; write n and a number, like F(n3)"
        ),
        (
            start + ",F(3),",
            "fall.csv:3: fail row \"F(3)\" names \"3\", which is not a node; write n and a number, like F(n3)"
        ),
        (
            start + ",R(),",
            "fall.csv:3: recover row \"R()\" names \"\", which is not a node; write n and a number, like R(n3)"
        ),
        (
            start + ",\"F(n1, n2)\",",
            "fall.csv:3: fail row \"F(n1, n2)\" names \"n1, n2\", which is not a node; write n and a number, like F(n3)"
        ),
        (
            start + ",F(N3),",
            "fall.csv:3: fail row \"F(N3)\" names \"N3\", which is not a node; write n and a number, like F(n3)"
        ),
        (start + ",F(n3,", "fall.csv:3: fail row \"F(n3\" does not end with \")\"; write F(n3)"),
        (
            start + ",F(S3),",
            "fall.csv:3: fail row \"F(S3)\" names server S3, but \(fallHeader), which names nodes: write F(n3)"
        ),
        (start + ",f(n3),", "fall.csv:3: transaction \"f(n3)\" is not \(transactions)"),
        (start + ",Fail(n3),", "fall.csv:3: transaction \"Fail(n3)\" is not \(transactions)"),
        (
            start + ",F(n4),",
            "fall.csv:3: F(n4) fails n4, which is not live at this point of set 1: the live nodes on line 2 leave it out; "
                + "fail only a live node"
        ),
        (
            start + ",F(n2),\n,F(n2),",
            "fall.csv:4: F(n2) fails n2 again; it failed on line 3 and has not recovered since; fail only a live node"
        ),
        (
            start + ",R(n2),",
            "fall.csv:3: R(n2) recovers n2, which is live at this point of set 1 (the live nodes on line 2 list it); "
                + "recover only a failed node or one the live nodes leave out"
        ),
        (
            start + ",R(n4),\n,R(n4),",
            "fall.csv:4: R(n4) recovers n4 again; it recovered on line 3 and has not failed since; recover only a failed node"
        ),
        // A fail in one set does not carry into the next: its live nodes decide again.
        (
            start + ",F(n2),\n2,\"(1, 2, 3)\",\"[n1, n2, n3]\"\n,R(n2),",
            "fall.csv:5: R(n2) recovers n2, which is live at this point of set 2 (the live nodes on line 4 list it); "
                + "recover only a failed node or one the live nodes leave out"
        ),
        (
            "Set Number,Transactions,Live Nodes\n1,F(n1),\"[n1, n2, n3]\"\n,R(n1),\n2,\"(1, 2, 3)\",\"[n1]\"",
            "fall.csv:2: set 1 has no transfers or reads; write one in column 2, like \"(21, 700, 2)\" or \"(2001)\""
        ),
        // Reads.
        (start + ",\"(0)\",", "fall.csv:3: account id \"0\" is not an account; account ids start at 1"),
        (start + ",(),", "fall.csv:3: read \"()\" names no account; write the account in parentheses, like (2001)"),
        (start + ",(x7),", "fall.csv:3: account id \"x7\" is not a whole number; \(TestSetFileTests.forms)"),
        (start + ",\"(-7)\",", "fall.csv:3: account id \"-7\" is negative; account ids start at 1"),
        (start + ",2001,", "fall.csv:3: transaction \"2001\" is not \(transactions)"),
        (start + ",\"(7, 8)\",", "fall.csv:3: transfer \"(7, 8)\" has 2 parts; \(TestSetFileTests.tuple)"),
        // Columns and lists.
        (
            start + ",\"(1, 2, 3)\",,\"[n1]\"",
            "fall.csv:3: column 4 (\"[n1]\") would be contacts, which the Fall 2025 format does not have; "
                + "\(fallHeader); it has 3 columns: set number, transaction, live nodes"
        ),
        (
            start + "2,(1, 2, 3),[n1]",
            "fall.csv:3: row has 5 columns; expected 3: set number, transaction, live nodes; quote a field that holds "
                + "commas, like \"(21, 700, 2)\""
        ),
        (
            "Set Number,Transactions,Live Nodes\n1,\"(1, 2, 3)\"",
            "fall.csv:2: set 1 has no live nodes; list them in column 3, like \"[n1, n2, n3]\""
        ),
        (
            start + ",\"(4, 5, 6)\",\"[n1]\"",
            "fall.csv:3: live nodes belong on the row that starts set 1 (line 2); leave column 3 empty here"
        ),
        (
            "Set Number,Transactions,Live Nodes\n1,\"(1, 2, 3)\",\"n1, n2\"",
            "fall.csv:2: live nodes \"n1, n2\" is not a list; write node names in brackets, like [n1, n2, n3]"
        ),
        (
            "Set Number,Transactions,Live Nodes\n1,\"(1, 2, 3)\",\"[n1, node2]\"",
            "fall.csv:2: live nodes list \"node2\", which is not a node name; write n and a number, like n1"
        ),
        ("Set Number,Transactions,Live Nodes\n1,\"(1, 2, 3)\",\"[n1, n1]\"", "fall.csv:2: live nodes list n1 twice"),
        (
            "Set Number,Transactions,Live Nodes\n",
            "fall.csv: no test sets; write rows like 1,\"(21, 700, 2)\",\"[n1, n2, n3]\""
        ),
        // Files that mix the formats.
        (
            start + "2,\"(1, 2, 3)\",\"[S1, S2]\"",
            "fall.csv:3: live nodes list S1, a server of the original format, but \(fallHeader); write nodes as n1, "
                + "n2, ..."
        ),
        (
            "1,\"(1, 2, 3)\",\"[S1, S2]\"\n2,\"(1, 2, 3)\",\"[n1, n2]\"",
            "fall.csv:2: live servers list n1, a node of the Fall 2025 format, but \(originalRow); write servers as S1, "
                + "S2, ..."
        ),
        (
            "1,\"(1, 2, 3)\",\"[S1, S2]\"\n,F(n1),",
            "fall.csv:2: F(n1) would fail a node, which only the Fall 2025 format does, but \(originalRow); write "
                + "transfers (21, 700, 2) only"
        ),
        (
            "1,\"(1, 2, 3)\",\"[S1, S2]\"\n,R(n1),",
            "fall.csv:2: R(n1) would recover a node, which only the Fall 2025 format does, but \(originalRow); write "
                + "transfers (21, 700, 2) only"
        ),
        (
            "1,\"(1, 2, 3)\",\"[S1, S2]\",\"[S1]\"\n,\"(2001)\",",
            "fall.csv:2: (2001) would read a balance, which only the Fall 2025 format does, but the file is in the "
                + "original format (line 1 names server S1); write transfers (21, 700, 2) only"
        ),
        (
            "Set,Transactions,Live Servers,Contact Servers\n1,\"(1, 2, 3)\",\"[n1]\"",
            "fall.csv:2: live servers list n1, a node of the Fall 2025 format, but the file is in the original format "
                + "(the header on line 1 names servers or contacts); write servers as S1, S2, ..."
        ),
        (
            "1,\"(1, 2, 3)\",\"[]\",\"[]\"\n,F(n1),",
            "fall.csv:2: F(n1) would fail a node, which only the Fall 2025 format does, but the file is in the "
                + "original format (line 1 gives contacts in column 4); write transfers (21, 700, 2) only"
        ),
    ]

    @Test("bad rows of the Fall 2025 format, and files that mix the formats", arguments: badFiles)
    func badFile(text: String, expected: String) {
        #expect(
            thrownDescription { () throws(InputError) in try TestSetFile.parse(text, source: "fall.csv") } == expected)
    }

    static let references: [(String, String)] = [
        (
            "1,\"(1, 2, 3)\",\"[n1, n10]\"",
            "fall.csv:1: live node n10 is not in hosts.ini (node n<k> is its replica S<k>; it has no S10)"
        ),
        (
            "1,\"(1, 2, 3)\",\"[n1]\"\n,R(n12),",
            "fall.csv:2: R(n12) names node n12, which is not in hosts.ini (node n<k> is its replica S<k>; it has no S12)"
        ),
        ("1,\"(1, 2, 3)\",\"[n1]\"\n,\"(5000)\",", "fall.csv:2: account 5000 is in no shard of shards.csv"),
        ("1,\"(1, 2, 3)\",\"[n1]\"\n,\"(2, 4000, 1)\",", "fall.csv:2: account 4000 is in no shard of shards.csv"),
    ]

    @Test("nodes and accounts must exist in hosts.ini and the shard map", arguments: references)
    func badReference(text: String, expected: String) throws {
        let hosts = try HostsFile.parse(HostsFileTests.deployment, source: "hosts.ini")
        let shards = try ShardMap.parse(ShardMapTests.seed, source: "shards.csv")
        let file = try TestSetFile.parse(text, source: "fall.csv")
        #expect(
            thrownDescription { () throws(InputError) in try file.check(against: hosts, shards: shards) } == expected)
    }
}
