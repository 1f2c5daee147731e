/// A command typed at the test-set runner's prompt between sets. Case does not matter, nor spaces between the words
/// of a command: `PrintBalance 21`, `print balance 21` and `printbalance 21` are the same.
public enum PromptCommand: Hashable, Sendable {
    /// Every replica's own value of the account.
    case printBalance(AccountID)
    /// The WAL records of one replica.
    case printLogs(replica: String)
    /// The committed transactions of one replica, or of every replica.
    case printDatastore(replica: String?)
    /// Committed transfers per second and latency over the sets run so far.
    case performance
    /// Run the next set.
    case next
    /// Stop the runner.
    case exit
    case help

    /// The one-line summary of every command, for `help` and for a line that is not a command.
    public static let usage =
        "commands: PrintBalance <account>, PrintLogs <server>, PrintDatastore [server], Performance, next, exit, help"

    /// Parses one line; an empty line means `next`. A line that is not a command is refused with a one-line hint.
    public static func parse(_ line: String) throws(InputError) -> PromptCommand {
        let words = line.split(whereSeparator: \.isWhitespace).map { $0.lowercased() }
        let joined = words.joined()
        func argument(after command: String) -> String {
            // The argument is what follows the command's letters, however the words were spaced.
            String(joined.dropFirst(command.count))
        }
        func fail(_ message: String) -> InputError { InputError(source: "prompt", message: message) }

        switch joined {
        case "", "next", "n": return .next
        case "exit", "quit", "q": return .exit
        case "help", "?", "h": return .help
        case "performance": return .performance
        case "printdatastore": return .printDatastore(replica: nil)
        default: break
        }
        if joined.hasPrefix("printbalance") {
            let text = argument(after: "printbalance")
            guard !text.isEmpty else { throw fail("PrintBalance needs an account, e.g. PrintBalance 21") }
            do {
                return .printBalance(try AccountID.parse(text, source: "prompt"))
            } catch {
                throw fail("PrintBalance: \(error.message)")
            }
        }
        if joined.hasPrefix("printlogs") {
            return .printLogs(replica: try replicaName(argument(after: "printlogs"), command: "PrintLogs"))
        }
        if joined.hasPrefix("printdatastore") {
            return .printDatastore(
                replica: try replicaName(argument(after: "printdatastore"), command: "PrintDatastore"))
        }
        throw fail("unknown command \"\(line.trimmingSpaces)\"; \(usage)")
    }

    private static func replicaName(_ text: String, command: String) throws(InputError) -> String {
        guard !text.isEmpty else {
            throw InputError(source: "prompt", message: "\(command) needs a server, e.g. \(command) S1")
        }
        let name = text.uppercased()
        guard TextInput.nameNumber(Substring(name), prefix: "S") != nil else {
            throw InputError(source: "prompt", message: "\(command): \"\(text)\" is not a server name like S1")
        }
        return name
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring { TextInput.trimmed(self) }
}
