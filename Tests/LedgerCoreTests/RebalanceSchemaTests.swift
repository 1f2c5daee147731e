import LedgerCore
import Testing

@Suite("new-schema.txt")
struct RebalanceSchemaTests {
    static let catalog = RebalanceWorkload.catalog(clusters: 3, size: 1000)
    static let clusters = ["C1", "C2", "C3"]

    static func parse(_ text: String) throws(InputError) -> RebalanceSchema {
        try RebalanceSchema.parse(text, source: "new-schema.txt")
    }

    /// The description of the error `check` throws for `text`, or nil when the file is valid.
    static func checked(_ text: String, catalog: Catalog = catalog) -> String? {
        thrownDescription { () throws(InputError) in
            try parse(text).check(against: catalog, clusters: clusters)
        }
    }

    @Test("a plan is written with its figures, one line per pair, then one per move")
    func written() throws {
        var history = TransferHistory()
        history.add(from: AccountID(796), to: AccountID(1997), amount: Amount(10))
        history.add(from: AccountID(1997), to: AccountID(796), amount: Amount(6))
        let plan = RebalancePlanner.plan(history: history, catalog: Self.catalog)
        let schema = RebalanceSchema(plan: plan, origin: "tests.csv")
        #expect(
            schema.text == """
                # Account moves planned by `shardctl rebalance` from tests.csv.
                # Options: --max-imbalance 0.05 --min-transactions 1
                # Cross-shard transfers before the plan: 100.00% (2 of 2)
                # Cross-shard transfers after the plan: 0.00% (0 of 2)
                # Shard sizes in accounts, before -> after (allowed): C1 1000 -> 999 (950-1050), \
                C2 1000 -> 1001 (950-1050), C3 1000 -> 1000 (950-1050)
                # 1 co-located pair, then 1 move.
                # {clusters: [C1 C2], accounts: [a, b], transactions: n, total: t}: a and b transacted n times \
                (t in all) and end together in C1; b comes from C2.
                # {move: a, from: C2, to: C1}: account a moves from C2 to C1.
                {clusters: [C2 C1], accounts: [1997, 796], transactions: 2, total: 16.000000}
                {move: 796, from: C1, to: C2}

                """)
    }

    @Test("percentages are rounded to hundredths without floating point")
    func percent() {
        let plan = RebalancePlan(
            options: .init(), moves: [], pairs: [], shards: [], transfers: 3, crossShardBefore: 2,
            crossShardAfter: 1, unownedTransfers: 5)
        #expect(
            plan.summary == [
                "Cross-shard transfers before the plan: 66.67% (2 of 3)",
                "Cross-shard transfers after the plan: 33.33% (1 of 3)",
                "5 transfers name accounts no cluster owns; they are left out.",
                "Shard sizes in accounts, before -> after (allowed): ",
                "0 co-located pairs, then 0 moves.",
            ])
        #expect(RebalanceSchema(plan: plan, origin: "x").comments.contains(plan.summary[2]))
    }

    @Test("what is written reads back the same, and checks against the catalog it was planned on")
    func roundTrip() throws {
        var workload = RebalanceWorkload(seed: 3)
        _ = workload.communities(accounts: 3000, share: 0.5, noise: 0.05, catalog: Self.catalog)
        let plan = RebalancePlanner.plan(history: TransferHistory(workload.transfers), catalog: Self.catalog)
        let written = RebalanceSchema(plan: plan, origin: "the datastores of S1, S4 and S7")
        let read = try Self.parse(written.text)
        #expect(read.pairs == plan.pairs)
        #expect(read.moves == plan.moves)
        #expect(read.comments == written.comments)
        #expect(!read.moves.isEmpty && !read.pairs.isEmpty)
        try read.check(against: Self.catalog, clusters: Self.clusters)
        try written.check(against: Self.catalog, clusters: Self.clusters)
        #expect(try Self.parse(windowsText(written.text)).moves == plan.moves)
    }

    @Test("the seed's line format, grouped ids, commas, bare totals, comments, blank lines, CRLF and a BOM")
    func forms() throws {
        let text = """
            # header

            {clusters: [C1 C2], accounts: [1997, 796], transactions: 2, total: 16.000000}
              { clusters: [C3, C1] ,accounts: [0000-0000-0000-0021,700],transactions:12,total: 40 }  # why
            {move: 796, from: C2, to: C1}
            {move:9090-8912-1209-0098,from:C2,to:C3}
            """
        for form in [text, windowsText(text)] {
            let schema = try Self.parse(form)
            #expect(schema.comments == ["header"])
            #expect(
                schema.pairs == [
                    ColocatedPair(
                        first: AccountID(1997), second: AccountID(796), into: "C1", from: "C2", transactions: 2,
                        total: 16),
                    ColocatedPair(
                        first: AccountID(21), second: AccountID(700), into: "C3", from: "C1", transactions: 12,
                        total: 40),
                ])
            #expect(
                schema.moves == [
                    AccountMove(account: AccountID(796), from: "C2", to: "C1"),
                    AccountMove(account: AccountID(9_090_891_212_090_098), from: "C2", to: "C3"),
                ])
        }
        #expect(try Self.parse("").moves.isEmpty)
        #expect(try Self.parse("# nothing to move\n").moves.isEmpty)
    }

    static let forms =
        "write a pair, like {clusters: [C1 C2], accounts: [1997, 796], transactions: 2, total: 16.000000}, "
        + "or a move, like {move: 796, from: C2, to: C1}"
    static let idForms = "write digits only, like 21, or 16 digits in groups of 4, like 9090-8912-1209-0098"
    static let badFiles: [(String, String)] = [
        ("hello", "new-schema.txt:1: \"hello\" is neither a pair nor a move; \(forms)"),
        ("# plan\n\n{foo: 1}", "new-schema.txt:3: \"{foo: 1}\" is neither a pair nor a move; \(forms)"),
        (
            "\r\n\r\n{move: 5, from: C1, to: C2",
            "new-schema.txt:3: \"{move: 5, from: C1, to: C2\" is neither a pair nor a move; \(forms)"
        ),
        (
            "{move 5, from: C1, to: C2}",
            "new-schema.txt:1: field \"move 5\" has no \":\"; write a name and a value, like to: C1"
        ),
        ("{move: 5, move: 6, from: C1, to: C2}", "new-schema.txt:1: field move is given twice"),
        (
            "{move: 5, from: C1, to: C2, why: 1}",
            "new-schema.txt:1: a move has no field \"why\"; its fields are move, from and to, like "
                + "{move: 796, from: C2, to: C1}"
        ),
        ("{move: 5, from: C1}", "new-schema.txt:1: the move has no to; write {move: 796, from: C2, to: C1}"),
        (
            "{move: 5, from: C1, to: C1}",
            "new-schema.txt:1: the move of account 5 from C1 to C1 changes nothing; from and to must be different "
                + "clusters"
        ),
        (
            "{move: 5, from: X1, to: C2}",
            "new-schema.txt:1: bad cluster name \"X1\"; cluster names are C followed by a number from 1, like C1"
        ),
        ("{move: 0, from: C1, to: C2}", "new-schema.txt:1: account id \"0\" is not an account; account ids start at 1"),
        ("{move: 1e3, from: C1, to: C2}", "new-schema.txt:1: account id \"1e3\" is not a whole number; \(idForms)"),
        (
            "{move: 5, from: C1, to: C2}\n# again\n{move: 5, from: C2, to: C3}",
            "new-schema.txt:3: account 5 is moved twice (first at line 1)"
        ),
        (
            "{move: 0000-0000-0000-0005, from: C1, to: C2}\n{move: 5, from: C2, to: C3}",
            "new-schema.txt:2: account 5 is moved twice (first at line 1)"
        ),
        (
            "{clusters: [C1], accounts: [1, 2], transactions: 1, total: 1}",
            "new-schema.txt:1: clusters [C1] lists 1 cluster; write two: where both accounts end, then where the "
                + "second comes from, like [C1 C2]"
        ),
        (
            "{clusters: [C1 C1], accounts: [1, 2], transactions: 1, total: 1}",
            "new-schema.txt:1: clusters [C1 C1] lists one cluster twice; the second account comes from another"
        ),
        (
            "{clusters: C1 C2, accounts: [1, 2], transactions: 1, total: 1}",
            "new-schema.txt:1: clusters \"C1 C2\" is not a list; write two items in brackets, like [C1 C2]"
        ),
        (
            "{clusters: [C1 C2, accounts: [1, 2], transactions: 1, total: 1}",
            "new-schema.txt:1: brackets do not match in \"{clusters: [C1 C2, accounts: [1, 2], transactions: 1, "
                + "total: 1}\"; write lists like [C1 C2] or [1997, 796]"
        ),
        (
            "{clusters: [C1 C2], accounts: [1, 1], transactions: 1, total: 1}",
            "new-schema.txt:1: accounts [1, 1] lists account 1 twice"
        ),
        (
            "{clusters: [C1 C2], accounts: [1, 2, 3], transactions: 1, total: 1}",
            "new-schema.txt:1: accounts [1, 2, 3] lists 3 accounts; write two, like [1997, 796]"
        ),
        (
            "{clusters: [C1 C2], accounts: [1, 2], transactions: 0, total: 1}",
            "new-schema.txt:1: transactions \"0\" is not a whole number from 1, like 2"
        ),
        (
            "{clusters: [C1 C2], accounts: [1, 2], transactions: 1, total: 16.5}",
            "new-schema.txt:1: total \"16.5\" is not a whole amount from 1; write digits, like 16 or 16.000000"
        ),
        (
            "{clusters: [C1 C2], accounts: [1, 2], transactions: 1}",
            "new-schema.txt:1: the pair has no total; write {clusters: [C1 C2], accounts: [1997, 796], "
                + "transactions: 2, total: 16.000000}"
        ),
        (
            "{clusters: [C1 C2], accounts: [1, 2], transactions: 1, total: 1, to: C3}",
            "new-schema.txt:1: a pair has no field \"to\"; its fields are clusters, accounts, transactions and "
                + "total, like {clusters: [C1 C2], accounts: [1997, 796], transactions: 2, total: 16.000000}"
        ),
    ]

    @Test("malformed lines are refused with their line", arguments: badFiles)
    func malformed(text: String, expected: String) {
        #expect(thrownDescription { () throws(InputError) in try Self.parse(text) } == expected)
    }

    static let badChecks: [(String, String)] = [
        (
            "# plan\n{clusters: [C1 C2], accounts: [1, 5000], transactions: 1, total: 1}",
            "new-schema.txt:2: account 5000 is in no shard of the catalog"
        ),
        ("{move: 3001, from: C3, to: C1}", "new-schema.txt:1: account 3001 is in no shard of the catalog"),
        (
            "{clusters: [C1 C4], accounts: [1, 1001], transactions: 1, total: 1}",
            "new-schema.txt:1: cluster C4 is not a cluster of the deployment (C1, C2 and C3)"
        ),
        (
            "\n\n{move: 5, from: C1, to: C9}",
            "new-schema.txt:3: cluster C9 is not a cluster of the deployment (C1, C2 and C3)"
        ),
        (
            "{move: 5, from: C2, to: C3}",
            "new-schema.txt:1: account 5 is in C1, neither C2 (from) nor C3 (to); the catalog changed since the plan "
                + "was made: plan again"
        ),
        (
            // Reported in file order: the move on line 2 before the pair on line 3.
            "{move: 5, from: C1, to: C2}\n{move: 6, from: C2, to: C3}\n"
                + "{clusters: [C1 C2], accounts: [1, 5000], transactions: 1, total: 1}",
            "new-schema.txt:2: account 6 is in C1, neither C2 (from) nor C3 (to); the catalog changed since the plan "
                + "was made: plan again"
        ),
    ]

    @Test(
        "unknown accounts and clusters, and accounts found elsewhere, are refused with their line", arguments: badChecks
    )
    func refused(text: String, expected: String) {
        #expect(Self.checked(text) == expected)
    }

    @Test("a move already applied (the account is in `to`) passes, so a file can run twice")
    func applied() {
        var catalog = Self.catalog
        catalog.move(AccountID(5), to: "C2")
        #expect(Self.checked("{move: 5, from: C1, to: C2}", catalog: catalog) == nil)
        #expect(Self.checked("{move: 5, from: C1, to: C2}") == nil)
        // An override outside every range counts as in the catalog.
        catalog.move(AccountID(5000), to: "C3")
        #expect(Self.checked("{move: 5000, from: C3, to: C1}", catalog: catalog) == nil)
    }
}
