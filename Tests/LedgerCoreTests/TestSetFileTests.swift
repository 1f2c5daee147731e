import LedgerCore
import Testing

@Suite("Test-set files")
struct TestSetFileTests {
    static let design = """
        1,"(12, 640, 3)","[S1, S2, S3, S4, S5, S6, S7, S8, S9]","[S1, S4, S7]"
        ,"(1402, 2777, 4)",,
        2,"(2511, 2007, 6)","[S1, S2, S3, S4, S6, S7, S8, S9]","[S1, S4, S7]"

        """

    static func transfer(_ from: UInt64, _ to: UInt64, _ amount: Int64, line: Int) throws -> TestTransfer {
        TestTransfer(
            transfer: try Transfer(from: AccountID(from), to: AccountID(to), amount: Amount(amount)), line: line)
    }

    @Test("the example of the design")
    func designExample() throws {
        let file = try TestSetFile.parse(Self.design, source: "tests.csv")
        let all = ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9"]
        #expect(
            file.sets == [
                TestSet(
                    number: 1, line: 1,
                    transfers: [try Self.transfer(12, 640, 3, line: 1), try Self.transfer(1402, 2777, 4, line: 2)],
                    liveServers: all, contacts: ["S1", "S4", "S7"]),
                TestSet(
                    number: 2, line: 3, transfers: [try Self.transfer(2511, 2007, 6, line: 3)],
                    liveServers: all.filter { $0 != "S5" }, contacts: ["S1", "S4", "S7"]),
            ])
    }

    @Test(
        "a header, CRLF, a byte-order mark and spaces read the same",
        arguments: [
            windowsText(design),
            "Set,Transactions,Live Servers,Contact Servers\n" + design,
            " 1 , \"(12,640,3)\" , \"[S1,S2,S3,S4,S5,S6,S7,S8,S9]\" , \"[ S1 , S4 , S7 ]\"\n"
                + "  , \"( 1402 , 2777 , 4 )\" ,  ,\n2,\"(2511, 2007, 6)\",\"[S1, S2, S3, S4, S6, S7, S8, S9]\","
                + "\"[S1, S4, S7]\"",
        ])
    func sameSets(text: String) throws {
        let expected = try TestSetFile.parse(Self.design, source: "tests.csv").sets
        let sets = try TestSetFile.parse(text, source: "tests.csv").sets
        // Only the header shifts the lines.
        #expect(sets.map(\.number) == expected.map(\.number))
        #expect(sets.map { $0.transfers.map(\.transfer) } == expected.map { $0.transfers.map(\.transfer) })
        #expect(sets.map(\.liveServers) == expected.map(\.liveServers))
        #expect(sets.map(\.contacts) == expected.map(\.contacts))
    }

    @Test("CRLF with a byte-order mark keeps the lines")
    func windowsLines() throws {
        #expect(
            try TestSetFile.parse(windowsText(Self.design), source: "tests.csv")
                == TestSetFile.parse(Self.design, source: "tests.csv"))
    }

    @Test("blank lines, grouped ids, no contacts, and a set row without a transfer")
    func variations() throws {
        let text = """

            1,"(0000-0000-0000-0021, 9090-8912-1209-0098, 2)","[S1, S2, S3]"

            3,,"[S1]","[]"
            ,"(5, 6, 7)"
            7,"(8, 9, 10)","[]",
            """
        let sets = try TestSetFile.parse(text, source: "tests.csv").sets
        #expect(sets.map(\.number) == [1, 3, 7])
        #expect(sets.map(\.line) == [2, 4, 6])
        #expect(sets[0].transfers == [try Self.transfer(21, 9_090_891_212_090_098, 2, line: 2)])
        #expect(sets[0].contacts == [])
        #expect(sets[1].transfers == [try Self.transfer(5, 6, 7, line: 5)])
        #expect(sets[1].liveServers == ["S1"])
        #expect(sets[2].liveServers == [])
    }

    @Test("a quoted field may hold a line break and a doubled quote")
    func multilineField() throws {
        let text = "1,\"(1,\n 2, 3)\",\"[S1]\"\n2,\"(4, 5, 6)\",\"[S1]\""
        let sets = try TestSetFile.parse(text, source: "tests.csv").sets
        #expect(sets.map(\.line) == [1, 3])
        #expect(
            thrownDescription { () throws(InputError) in
                try TestSetFile.parse("1,\"(1, 2, \"\"3\"\")\",\"[S1]\"", source: "tests.csv")
            } == "tests.csv:1: amount \"\"3\"\" is not a whole number; write digits only, like 25")
    }

    static let forms = "write digits only, like 21, or 16 digits in groups of 4, like 9090-8912-1209-0098"
    static let tuple = "write (from, to, amount), like (21, 700, 2)"
    static let row = "1,\"(1, 2, 3)\",\"[S1]\"\n"
    static let badFiles: [(String, String)] = [
        ("", "tests.csv: no test sets; write rows like 1,\"(21, 700, 2)\",\"[S1, S2, S3]\""),
        ("\n\r\n\n", "tests.csv: no test sets; write rows like 1,\"(21, 700, 2)\",\"[S1, S2, S3]\""),
        (
            "Set,Transfer,Live,Contacts\n",
            "tests.csv: no test sets; write rows like 1,\"(21, 700, 2)\",\"[S1, S2, S3]\""
        ),
        (
            ",\"(1, 2, 3)\",,",
            "tests.csv:1: row continues a set, but no set has started; write a set number in column 1 of the first row"
        ),
        (
            "1,\"(1, 2, 3)\",\"[S1]\",\"[S1]\",",
            "tests.csv:1: row has 5 columns; expected at most 4: set number, transfer, live servers, contacts"
        ),
        (
            "1,(1, 2, 3),[S1]",
            "tests.csv:1: row has 5 columns; expected at most 4: set number, transfer, live servers, contacts"
        ),
        (
            "1,\"(1, 2, 3)\",\"[S1]",
            "tests.csv:1: the quote opened on this line is never closed; end the field with another \""
        ),
        (
            row + ",\"(4, 5, 6),,\n,\"(7, 8, 9)\",,",
            "tests.csv:2: the quote opened on this line closes on line 3, followed by \"(\"; is a closing quote "
                + "missing on this line?"
        ),
        (
            row + ",\"(4, 5, 6),,\n",
            "tests.csv:2: the quote opened on this line is never closed; end the field with another \""
        ),
        ("1,\"(1, 2)\",\"[S1]\"", "tests.csv:1: transfer \"(1, 2)\" has 2 parts; \(tuple)"),
        ("1,\"1, 2, 3\",\"[S1]\"", "tests.csv:1: transfer \"1, 2, 3\" is not in parentheses; \(tuple)"),
        ("1,(1 2 3),\"[S1]\"", "tests.csv:1: transfer \"(1 2 3)\" has 1 part; \(tuple)"),
        ("1,\"(0x10, 2, 3)\",\"[S1]\"", "tests.csv:1: account id \"0x10\" is not a whole number; \(forms)"),
        ("1,\"(1, +2, 3)\",\"[S1]\"", "tests.csv:1: account id \"+2\" has a sign; write digits only, like 21"),
        (
            "1,\"(18446744073709551616, 2, 3)\",\"[S1]\"",
            "tests.csv:1: account id \"18446744073709551616\" is too large; the largest account id is "
                + "18446744073709551615"
        ),
        ("1,\"(1, 2, 1e3)\",\"[S1]\"", "tests.csv:1: amount \"1e3\" is not a whole number; write digits only, like 25"),
        ("1,\"(1, 2, +5)\",\"[S1]\"", "tests.csv:1: amount \"+5\" has a sign; write digits only, like 25"),
        ("1,\"(1, 2, -5)\",\"[S1]\"", "tests.csv:1: amount \"-5\" is negative; write a positive whole number, like 25"),
        ("1,\"(1, 2, 0)\",\"[S1]\"", "tests.csv:1: amount \"0\" is zero; a transfer moves at least 1"),
        ("1,\"(1, 2, 2.5)\",\"[S1]\"", "tests.csv:1: amount \"2.5\" is not a whole number; write digits only, like 25"),
        (
            row + ",\"(1, 2, 9223372036854775808)\",,",
            "tests.csv:2: amount \"9223372036854775808\" is too large; the largest amount is 9223372036854775807"
        ),
        (
            "1,\"(5, 5, 1)\",\"[S1]\"",
            "tests.csv:1: transfer (5, 5, 1) moves money from account 5 to itself; from and to must be different "
                + "accounts"
        ),
        (
            "1,\"(1, 2, 3)\",\"S1, S2\"",
            "tests.csv:1: live servers \"S1, S2\" is not a list; write server names in brackets, like [S1, S2, S3]"
        ),
        (
            "1,\"(1, 2, 3)\",\"[S1, X2]\"",
            "tests.csv:1: live servers list \"X2\", which is not a server name; write S and a number, like S1"
        ),
        (
            "1,\"(1, 2, 3)\",\"[S1,,S2]\"",
            "tests.csv:1: live servers \"[S1,,S2]\" has an empty entry; separate server names with one comma"
        ),
        ("1,\"(1, 2, 3)\",\"[S1, S2, S1]\"", "tests.csv:1: live servers list S1 twice"),
        ("1,\"(1, 2, 3)\",\"[S1]\",\"[S1, S1]\"", "tests.csv:1: contacts list S1 twice"),
        (
            "1,\"(1, 2, 3)\",\"[S1]\",S1",
            "tests.csv:1: contacts \"S1\" is not a list; write server names in brackets, like [S1, S2, S3]"
        ),
        (
            "1,\"(1, 2, 3)\"",
            "tests.csv:1: set 1 has no live servers; list them in column 3, like \"[S1, S2, S3]\""
        ),
        (
            row + ",\"(4, 5, 6)\",\"[S1]\"",
            "tests.csv:2: live servers belong on the row that starts set 1 (line 1); leave column 3 empty here"
        ),
        (
            row + ",\"(4, 5, 6)\",,\"[S1]\"",
            "tests.csv:2: contacts belong on the row that starts set 1 (line 1); leave column 4 empty here"
        ),
        (
            row + ",,,",
            "tests.csv:2: row continues set 1 but has no transfer; write one in column 2, like \"(21, 700, 2)\""
        ),
        (
            "2,\"(1, 2, 3)\",\"[S1]\"\n1,\"(1, 2, 3)\",\"[S1]\"",
            "tests.csv:2: set number 1 does not follow set 2 (line 1); set numbers must increase"
        ),
        (
            row + row,
            "tests.csv:2: set number 1 does not follow set 1 (line 1); set numbers must increase"
        ),
        (
            row + "x1,\"(1, 2, 3)\",\"[S1]\"",
            "tests.csv:2: set number \"x1\" is not a whole number; write 1, 2, 3, ..."
        ),
        ("-1,\"(1, 2, 3)\",\"[S1]\"", "tests.csv:1: set number \"-1\" is not a whole number; write 1, 2, 3, ..."),
        ("0,\"(1, 2, 3)\",\"[S1]\"", "tests.csv:1: set number 0 is zero; sets start at 1"),
        ("1000000,\"(1, 2, 3)\",\"[S1]\"", "tests.csv:1: set number 1000000 is too large; the largest is 999999"),
        (
            "1,,\"[S1]\"\n2,\"(1, 2, 3)\",\"[S1]\"",
            "tests.csv:1: set 1 has no transfers; write one in column 2, like \"(21, 700, 2)\""
        ),
        (
            row + "2,,\"[S1]\"",
            "tests.csv:2: set 2 has no transfers; write one in column 2, like \"(21, 700, 2)\""
        ),
    ]

    @Test("bad test files", arguments: badFiles)
    func badFile(text: String, expected: String) {
        #expect(
            thrownDescription { () throws(InputError) in try TestSetFile.parse(text, source: "tests.csv") } == expected)
    }

    // MARK: Cross-check with hosts.ini and shards.csv

    static let all = "[S1, S2, S3, S4, S5, S6, S7, S8, S9]"
    static let references: [(String, String)] = [
        ("1,\"(1, 2, 3)\",\"[S1, S10]\"", "tests.csv:1: live server S10 is not in hosts.ini"),
        (
            "1,\"(1, 2, 3)\",\"\(all)\",\"[S1, S4, S7, S2]\"",
            "tests.csv:1: set 1 gives 4 contacts but hosts.ini defines 3 clusters (C1, C2 and C3)"
        ),
        (
            "1,\"(1, 2, 3)\",\"\(all)\",\"[S4, S1, S7]\"",
            "tests.csv:1: contact S4 is in the position of cluster C1 (S1, S2, S3); S4 belongs to C2"
        ),
        ("1,\"(1, 2, 3)\",\"\(all)\",\"[S12]\"", "tests.csv:1: contact S12 is not in hosts.ini"),
        (
            "1,\"(1, 2, 3)\",\"[S2, S3]\",\"[S1]\"",
            "tests.csv:1: contact S1 of cluster C1 is not live in set 1; add it to the live servers or pick a live "
                + "member"
        ),
        (
            "1,\"(1, 2, 3)\",\"\(all)\"\n,\"(1, 5000, 2)\",,",
            "tests.csv:2: account 5000 is in no shard of shards.csv"
        ),
        (
            "1,\"(9090-8912-1209-0098, 2, 3)\",\"[S1]\"",
            "tests.csv:1: account 9090891212090098 is in no shard of shards.csv"
        ),
    ]

    @Test("servers, contacts and accounts must exist", arguments: references)
    func badReference(text: String, expected: String) throws {
        let hosts = try HostsFile.parse(HostsFileTests.deployment, source: "hosts.ini")
        let shards = try ShardMap.parse(ShardMapTests.seed, source: "shards.csv")
        let file = try TestSetFile.parse(text, source: "tests.csv")
        #expect(
            thrownDescription { () throws(InputError) in try file.check(against: hosts, shards: shards) } == expected)
    }

    @Test("fewer contacts than clusters, and the design example, pass the cross-check")
    func goodReferences() throws {
        let hosts = try HostsFile.parse(HostsFileTests.deployment, source: "hosts.ini")
        let shards = try ShardMap.parse(ShardMapTests.seed, source: "shards.csv")
        try TestSetFile.parse(Self.design, source: "tests.csv").check(against: hosts, shards: shards)
        try TestSetFile.parse("1,\"(1, 2, 3)\",\"[S2]\",\"[S2]\"", source: "tests.csv").check(
            against: hosts, shards: shards)
    }
}
