/// A problem with a user-supplied input, located precisely enough to fix it.
///
/// Invariants: `source` names the input as the user gave it (a file path, or a label such as
/// `"amount"` or `"command line"`); `line` is 1-based and present only when the input is a file;
/// `message` quotes the offending text and says what was expected.
public struct InputError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file name as given by the user, or a label like `"amount"` or `"command line"`.
    public var source: String
    /// The 1-based line of the problem, when the input is a file.
    public var line: Int?
    /// What was found and what was expected.
    public var message: String

    public init(source: String, line: Int? = nil, message: String) {
        self.source = source
        self.line = line
        self.message = message
    }

    /// `"configs/hosts.ini:7: <message>"`, or `"<source>: <message>"` without a line.
    public var description: String {
        if let line {
            return "\(source):\(line): \(message)"
        }
        return "\(source): \(message)"
    }
}
