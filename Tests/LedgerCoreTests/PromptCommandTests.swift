import LedgerCore
import Testing

/// The runner's prompt: case and spacing do not matter; anything else gets a one-line hint.
@Suite("prompt commands")
struct PromptCommandTests {
    @Test(arguments: [
        ("PrintBalance 21", PromptCommand.printBalance(AccountID(21))),
        ("printbalance 21", .printBalance(AccountID(21))),
        ("  Print Balance   21 ", .printBalance(AccountID(21))),
        ("PRINTBALANCE 9090-8912-1209-0098", .printBalance(AccountID(9_090_891_212_090_098))),
        ("PrintLogs S1", .printLogs(replica: "S1")),
        ("print logs s12", .printLogs(replica: "S12")),
        ("PrintDatastore", .printDatastore(replica: nil)),
        ("PrintDatastore S4", .printDatastore(replica: "S4")),
        ("performance", .performance),
        ("Performance", .performance),
        ("", .next),
        ("next", .next),
        ("EXIT", .exit),
        ("help", .help),
    ])
    func commands(line: String, expected: PromptCommand) throws {
        #expect(try PromptCommand.parse(line) == expected)
    }

    @Test(arguments: [
        ("PrintBalance", "prompt: PrintBalance needs an account, e.g. PrintBalance 21"),
        (
            "PrintBalance x",
            "prompt: PrintBalance: account id \"x\" is not a whole number; write digits only, like 21, or 16 digits "
                + "in groups of 4, like 9090-8912-1209-0098"
        ),
        ("PrintLogs", "prompt: PrintLogs needs a server, e.g. PrintLogs S1"),
        ("PrintLogs X1", "prompt: PrintLogs: \"x1\" is not a server name like S1"),
        ("PrintDatastore 4", "prompt: PrintDatastore: \"4\" is not a server name like S1"),
        (
            "balance 21",
            "prompt: unknown command \"balance 21\"; commands: PrintBalance <account>, PrintLogs <server>, "
                + "PrintDatastore [server], Performance, next, exit, help"
        ),
    ])
    func mistakes(line: String, expected: String) {
        #expect(thrownDescription { () throws(InputError) in try PromptCommand.parse(line) } == expected)
    }
}
