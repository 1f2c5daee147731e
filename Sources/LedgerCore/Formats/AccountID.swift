/// An account number: an unsigned 64-bit number from 1 up.
///
/// Invariant: `value >= 1`. Users write it `21` or as 16 digits grouped by four, `9090-8912-1209-0098`;
/// both forms name the same account, and `description` always prints the plain number.
public struct AccountID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The account number, at least 1.
    public let value: UInt64

    /// The account `value`; a zero is a programming error, because account ids start at 1.
    public init(_ value: UInt64) {
        precondition(value >= 1, "account ids start at 1")
        self.value = value
    }

    public var description: String { String(value) }

    public static func < (left: AccountID, right: AccountID) -> Bool {
        left.value < right.value
    }

    /// Reads an account id written `21` or `9090-8912-1209-0098`, ignoring spaces around it.
    ///
    /// - Parameters:
    ///   - source: the file or label the text came from, for the error.
    ///   - line: the 1-based line of the text, when it comes from a file.
    public static func parse(_ text: some StringProtocol, source: String, line: Int? = nil) throws(InputError)
        -> AccountID
    {
        let written = TextInput.trimmed(Substring(text))
        func failure(_ problem: String) -> InputError {
            InputError(source: source, line: line, message: "account id \"\(written)\" \(problem)")
        }
        let forms = "write digits only, like 21, or 16 digits in groups of 4, like 9090-8912-1209-0098"
        if written.isEmpty {
            throw InputError(source: source, line: line, message: "account id is empty; \(forms)")
        }
        if written.first == "+" || written.first == "-" {
            let unsigned = written.dropFirst()
            if TextInput.isDigits(unsigned) {
                if written.first == "+" {
                    throw failure("has a sign; write digits only, like 21")
                }
                throw failure("is negative; account ids start at 1")
            }
            throw failure("is not a whole number; \(forms)")
        }
        var digits = written
        if written.contains("-") {
            let groups = written.split(separator: "-", omittingEmptySubsequences: false)
            guard groups.count == 4, groups.allSatisfy({ $0.count == 4 && TextInput.isDigits($0) }) else {
                if written.allSatisfy({ $0 == "-" || ($0.isASCII && $0.isNumber) }) {
                    throw failure("is not grouped right; write 16 digits in groups of 4, like 9090-8912-1209-0098")
                }
                throw failure("is not a whole number; \(forms)")
            }
            digits = Substring(groups.joined())
        }
        guard TextInput.isDigits(digits) else {
            throw failure("is not a whole number; \(forms)")
        }
        guard let value = TextInput.unsignedValue(digits) else {
            throw failure("is too large; the largest account id is \(UInt64.max)")
        }
        guard value >= 1 else {
            throw failure("is not an account; account ids start at 1")
        }
        return AccountID(value)
    }
}

/// An amount of money to transfer: a positive whole number that fits in `Int64`.
///
/// Invariant: `value >= 1`.
public struct Amount: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The amount, at least 1.
    public let value: Int64

    /// The amount `value`; zero or less is a programming error, because a transfer moves at least 1.
    public init(_ value: Int64) {
        precondition(value >= 1, "amounts are positive")
        self.value = value
    }

    public var description: String { String(value) }

    public static func < (left: Amount, right: Amount) -> Bool {
        left.value < right.value
    }

    /// Reads an amount written as digits, like `25`, ignoring spaces around it.
    ///
    /// - Parameters:
    ///   - source: the file or label the text came from, for the error.
    ///   - line: the 1-based line of the text, when it comes from a file.
    public static func parse(_ text: some StringProtocol, source: String, line: Int? = nil) throws(InputError)
        -> Amount
    {
        let written = TextInput.trimmed(Substring(text))
        func failure(_ problem: String) -> InputError {
            InputError(source: source, line: line, message: "amount \"\(written)\" \(problem)")
        }
        if written.isEmpty {
            throw InputError(
                source: source, line: line, message: "amount is empty; write a positive whole number, like 25")
        }
        if written.first == "+" || written.first == "-" {
            if TextInput.isDigits(written.dropFirst()) {
                if written.first == "+" {
                    throw failure("has a sign; write digits only, like 25")
                }
                throw failure("is negative; write a positive whole number, like 25")
            }
            throw failure("is not a whole number; write digits only, like 25")
        }
        guard TextInput.isDigits(written) else {
            throw failure("is not a whole number; write digits only, like 25")
        }
        guard let value = TextInput.unsignedValue(written), value <= UInt64(Int64.max) else {
            throw failure("is too large; the largest amount is \(Int64.max)")
        }
        guard value >= 1 else {
            throw failure("is zero; a transfer moves at least 1")
        }
        return Amount(Int64(value))
    }
}

/// A request to move `amount` from account `from` to account `to`.
///
/// Invariant: `from != to`.
public struct Transfer: Sendable, Hashable, CustomStringConvertible {
    /// The account debited.
    public let from: AccountID
    /// The account credited; never `from`.
    public let to: AccountID
    /// How much moves.
    public let amount: Amount

    /// A transfer, refused when `from == to`; `source` and `line` locate the error.
    public init(
        from: AccountID, to: AccountID, amount: Amount, source: String = "transfer", line: Int? = nil
    ) throws(InputError) {
        guard from != to else {
            throw InputError(
                source: source, line: line,
                message:
                    "transfer (\(from), \(to), \(amount)) moves money from account \(from) to itself; "
                    + "from and to must be different accounts"
            )
        }
        self.from = from
        self.to = to
        self.amount = amount
    }

    /// `(from, to, amount)`, the way test files write it.
    public var description: String { "(\(from), \(to), \(amount))" }

    /// Reads a transfer written `(from, to, amount)`, like `(21, 700, 2)`; the ids may be grouped.
    ///
    /// - Parameters:
    ///   - source: the file or label the text came from, for the error.
    ///   - line: the 1-based line of the text, when it comes from a file.
    public static func parse(_ text: some StringProtocol, source: String, line: Int? = nil) throws(InputError)
        -> Transfer
    {
        let written = TextInput.trimmed(Substring(text))
        let example = "write (from, to, amount), like (21, 700, 2)"
        guard written.first == "(", written.last == ")", written.count >= 2 else {
            throw InputError(
                source: source, line: line,
                message: "transfer \"\(written)\" is not in parentheses; \(example)")
        }
        let parts = written.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            let count = parts.count == 1 && TextInput.trimmed(parts[0]).isEmpty ? 0 : parts.count
            throw InputError(
                source: source, line: line,
                message: "transfer \"\(written)\" has \(count) part\(count == 1 ? "" : "s"); \(example)")
        }
        let from = try AccountID.parse(parts[0], source: source, line: line)
        let to = try AccountID.parse(parts[1], source: source, line: line)
        let amount = try Amount.parse(parts[2], source: source, line: line)
        return try Transfer(from: from, to: to, amount: amount, source: source, line: line)
    }
}
