import LedgerCore
import Testing

@Suite("Account ids, amounts and transfers")
struct AccountIDTests {
    static let forms = "write digits only, like 21, or 16 digits in groups of 4, like 9090-8912-1209-0098"

    @Test(
        "account ids in both forms",
        arguments: [
            ("21", UInt64(21)), (" 21 ", 21), ("007", 7), ("9090-8912-1209-0098", 9_090_891_212_090_098),
            ("0000-0000-0000-0021", 21), ("18446744073709551615", UInt64.max),
        ])
    func accountIDs(text: String, value: UInt64) throws {
        #expect(try AccountID.parse(text, source: "account") == AccountID(value))
    }

    static let badAccountIDs: [(String, String)] = [
        ("", "account: account id is empty; \(forms)"),
        ("   ", "account: account id is empty; \(forms)"),
        ("+5", "account: account id \"+5\" has a sign; write digits only, like 21"),
        ("-3", "account: account id \"-3\" is negative; account ids start at 1"),
        ("abc", "account: account id \"abc\" is not a whole number; \(forms)"),
        ("0x10", "account: account id \"0x10\" is not a whole number; \(forms)"),
        ("1e3", "account: account id \"1e3\" is not a whole number; \(forms)"),
        ("1.5", "account: account id \"1.5\" is not a whole number; \(forms)"),
        ("2 1", "account: account id \"2 1\" is not a whole number; \(forms)"),
        ("+x", "account: account id \"+x\" is not a whole number; \(forms)"),
        (
            "909-0891-2120-90098",
            "account: account id \"909-0891-2120-90098\" is not grouped right; write 16 digits in groups of 4, "
                + "like 9090-8912-1209-0098"
        ),
        (
            "9090-8912-1209",
            "account: account id \"9090-8912-1209\" is not grouped right; write 16 digits in groups of 4, "
                + "like 9090-8912-1209-0098"
        ),
        ("9090-8912-1209-009a", "account: account id \"9090-8912-1209-009a\" is not a whole number; \(forms)"),
        ("0", "account: account id \"0\" is not an account; account ids start at 1"),
        (
            "0000-0000-0000-0000",
            "account: account id \"0000-0000-0000-0000\" is not an account; account ids start at 1"
        ),
        (
            "18446744073709551616",
            "account: account id \"18446744073709551616\" is too large; the largest account id is 18446744073709551615"
        ),
    ]

    @Test("bad account ids", arguments: badAccountIDs)
    func badAccountID(text: String, expected: String) {
        #expect(thrownDescription { () throws(InputError) in try AccountID.parse(text, source: "account") } == expected)
    }

    @Test("an account id from a file names the line")
    func accountIDLine() {
        #expect(
            thrownDescription { () throws(InputError) in try AccountID.parse("x", source: "tests.csv", line: 7) }
                == "tests.csv:7: account id \"x\" is not a whole number; \(Self.forms)")
    }

    @Test("amounts", arguments: [("25", Int64(25)), (" 7 ", 7), ("9223372036854775807", Int64.max)])
    func amounts(text: String, value: Int64) throws {
        #expect(try Amount.parse(text, source: "amount") == Amount(value))
    }

    static let badAmounts: [(String, String)] = [
        ("", "amount: amount is empty; write a positive whole number, like 25"),
        ("0", "amount: amount \"0\" is zero; a transfer moves at least 1"),
        ("-5", "amount: amount \"-5\" is negative; write a positive whole number, like 25"),
        ("+5", "amount: amount \"+5\" has a sign; write digits only, like 25"),
        ("1.5", "amount: amount \"1.5\" is not a whole number; write digits only, like 25"),
        ("1e3", "amount: amount \"1e3\" is not a whole number; write digits only, like 25"),
        ("0x10", "amount: amount \"0x10\" is not a whole number; write digits only, like 25"),
        ("ten", "amount: amount \"ten\" is not a whole number; write digits only, like 25"),
        ("1,000", "amount: amount \"1,000\" is not a whole number; write digits only, like 25"),
        ("-x", "amount: amount \"-x\" is not a whole number; write digits only, like 25"),
        (
            "9223372036854775808",
            "amount: amount \"9223372036854775808\" is too large; the largest amount is 9223372036854775807"
        ),
        (
            "18446744073709551616",
            "amount: amount \"18446744073709551616\" is too large; the largest amount is 9223372036854775807"
        ),
    ]

    @Test("bad amounts", arguments: badAmounts)
    func badAmount(text: String, expected: String) {
        #expect(thrownDescription { () throws(InputError) in try Amount.parse(text, source: "amount") } == expected)
    }

    @Test("transfers in both id forms")
    func transfers() throws {
        let transfer = try Transfer.parse("(21, 700, 2)", source: "transfer")
        #expect(transfer.from == AccountID(21))
        #expect(transfer.to == AccountID(700))
        #expect(transfer.amount == Amount(2))
        #expect(transfer.description == "(21, 700, 2)")
        let grouped = try Transfer.parse(" ( 9090-8912-1209-0098 ,21,5 ) ", source: "transfer")
        #expect(grouped.from == AccountID(9_090_891_212_090_098))
        #expect(grouped.to == AccountID(21))
    }

    static let example = "write (from, to, amount), like (21, 700, 2)"
    static let badTransfers: [(String, String)] = [
        (
            "(21, 21, 5)",
            "transfer: transfer (21, 21, 5) moves money from account 21 to itself; from and to must be different "
                + "accounts"
        ),
        (
            "(0000-0000-0000-0021, 21, 5)",
            "transfer: transfer (21, 21, 5) moves money from account 21 to itself; from and to must be different "
                + "accounts"
        ),
        ("(1, 2)", "transfer: transfer \"(1, 2)\" has 2 parts; \(example)"),
        ("()", "transfer: transfer \"()\" has 0 parts; \(example)"),
        ("(1)", "transfer: transfer \"(1)\" has 1 part; \(example)"),
        ("(1, 2, 3, 4)", "transfer: transfer \"(1, 2, 3, 4)\" has 4 parts; \(example)"),
        ("1, 2, 3", "transfer: transfer \"1, 2, 3\" is not in parentheses; \(example)"),
        ("(1, 2, 3", "transfer: transfer \"(1, 2, 3\" is not in parentheses; \(example)"),
        ("", "transfer: transfer \"\" is not in parentheses; \(example)"),
        ("(1, 2, 0)", "transfer: amount \"0\" is zero; a transfer moves at least 1"),
        ("(1, 2, 1e3)", "transfer: amount \"1e3\" is not a whole number; write digits only, like 25"),
        ("(x, 2, 3)", "transfer: account id \"x\" is not a whole number; \(forms)"),
        ("(1, -2, 3)", "transfer: account id \"-2\" is negative; account ids start at 1"),
    ]

    @Test("bad transfers", arguments: badTransfers)
    func badTransfer(text: String, expected: String) {
        #expect(thrownDescription { () throws(InputError) in try Transfer.parse(text, source: "transfer") } == expected)
    }

    @Test("a transfer built in code refuses from == to")
    func transferToItself() {
        #expect(
            thrownDescription { () throws(InputError) in
                try Transfer(from: AccountID(5), to: AccountID(5), amount: Amount(1))
            }
                == "transfer: transfer (5, 5, 1) moves money from account 5 to itself; from and to must be different "
                + "accounts")
    }

    @Test("error descriptions with and without a line")
    func descriptions() {
        #expect(
            InputError(source: "configs/hosts.ini", line: 7, message: "bad").description == "configs/hosts.ini:7: bad")
        #expect(InputError(source: "amount", message: "bad").description == "amount: bad")
    }

    @Test("ids order by number and print plainly")
    func ordering() {
        #expect(AccountID(2) < AccountID(10))
        #expect(AccountID(9_090_891_212_090_098).description == "9090891212090098")
        #expect(Amount(3) < Amount(4))
    }
}
