/// `new-schema.txt`: the plan `shardctl rebalance` writes and `client rebalance` applies.
///
/// The format, one entry per line (`#` starts a comment that runs to the end of the line; blank lines, CRLF and a
/// byte-order mark are allowed):
/// ```
/// # Cross-shard transfers before the plan: 66.72% (8203 of 12294)
/// {clusters: [C1 C2], accounts: [1997, 796], transactions: 2, total: 16.000000}
/// {move: 796, from: C2, to: C1}
/// ```
/// A pair line says that two accounts that transacted `transactions` times (moving `total` in all) end together in
/// the first cluster listed; the second account comes from the second cluster. A move line moves one account. Only
/// the moves change anything; the pairs say why. Account ids may be written grouped (`9090-8912-1209-0098`).
///
/// Invariants (checked by `parse`): no account is moved twice; every move has `from != to`; every pair names two
/// different accounts and two different clusters, `transactions >= 1`. `pairLines` and `moveLines` hold the 1-based
/// line of each pair and move when the schema was read from text, and are empty otherwise.
public struct RebalanceSchema: Sendable, Equatable {
    /// The file the schema came from or goes to, as the user named it; used in messages.
    public var source: String
    /// The text of the comment lines, without `#` and surrounding spaces, in file order.
    public var comments: [String]
    public var pairs: [ColocatedPair]
    public var moves: [AccountMove]
    private(set) var pairLines: [Int] = []
    private(set) var moveLines: [Int] = []

    public init(source: String, comments: [String] = [], pairs: [ColocatedPair] = [], moves: [AccountMove] = []) {
        self.source = source
        self.comments = comments
        self.pairs = pairs
        self.moves = moves
    }

    static let examplePair = "{clusters: [C1 C2], accounts: [1997, 796], transactions: 2, total: 16.000000}"
    static let exampleMove = "{move: 796, from: C2, to: C1}"

    // MARK: - Writing

    /// The schema of `plan`, with a header that says where the history came from (`origin`, like `the datastores of
    /// S1, S4 and S7`), the options, the cross-shard fraction before and after and the shard sizes.
    public init(plan: RebalancePlan, origin: String, source: String = "new-schema.txt") {
        let comments =
            [
                "Account moves planned by `shardctl rebalance` from \(origin).",
                "Options: --max-imbalance \(plan.options.maxImbalance) --min-transactions \(plan.options.minTransactions)",
            ] + plan.summary + [
                "{clusters: [C1 C2], accounts: [a, b], transactions: n, total: t}: a and b transacted n times (t in all) "
                    + "and end together in C1; b comes from C2.",
                "{move: a, from: C2, to: C1}: account a moves from C2 to C1.",
            ]
        self.init(source: source, comments: comments, pairs: plan.pairs, moves: plan.moves)
    }

    /// The file's text: the comments, the pairs, then the moves.
    public var text: String {
        var lines = comments.map { "# \($0)" }
        for pair in pairs {
            lines.append(
                "{clusters: [\(pair.into) \(pair.from)], accounts: [\(pair.first), \(pair.second)], "
                    + "transactions: \(pair.transactions), total: \(pair.total).000000}")
        }
        for move in moves {
            lines.append("{move: \(move.account), from: \(move.from), to: \(move.to)}")
        }
        return lines.map { $0 + "\n" }.joined()
    }

    // MARK: - Reading

    /// Reads new-schema text; `source` names the file in errors.
    public static func parse(_ text: String, source: String) throws(InputError) -> RebalanceSchema {
        var schema = RebalanceSchema(source: source)
        var lineOfMove: [AccountID: Int] = [:]
        for line in TextInput.lines(text) {
            var content = line.text
            if let hash = content.firstIndex(of: "#") {
                let comment = TextInput.trimmed(content[content.index(after: hash)...])
                content = content[..<hash]
                if TextInput.trimmed(content).isEmpty {
                    schema.comments.append(String(comment))
                    continue
                }
            }
            content = TextInput.trimmed(content)
            if content.isEmpty { continue }
            switch try Entry.parse(content, source: source, line: line.number) {
            case .pair(let pair):
                schema.pairs.append(pair)
                schema.pairLines.append(line.number)
            case .move(let move):
                if let earlier = lineOfMove[move.account] {
                    throw InputError(
                        source: source, line: line.number,
                        message: "account \(move.account) is moved twice (first at line \(earlier))")
                }
                lineOfMove[move.account] = line.number
                schema.moves.append(move)
                schema.moveLines.append(line.number)
            }
        }
        return schema
    }

    /// One line of the file that is not a comment.
    enum Entry {
        case pair(ColocatedPair)
        case move(AccountMove)

        static let pairFields = ["clusters", "accounts", "transactions", "total"]
        static let moveFields = ["move", "from", "to"]

        static func parse(_ text: Substring, source: String, line: Int) throws(InputError) -> Entry {
            func error(_ message: String) -> InputError {
                InputError(source: source, line: line, message: message)
            }
            let forms = "write a pair, like \(examplePair), or a move, like \(exampleMove)"
            guard text.first == "{", text.last == "}", text.count >= 2 else {
                throw error("\"\(text)\" is neither a pair nor a move; \(forms)")
            }
            var fields: [String: Substring] = [:]
            var order: [String] = []
            for field in try split(text.dropFirst().dropLast(), source: source, line: line) {
                guard let colon = field.firstIndex(of: ":") else {
                    throw error("field \"\(field)\" has no \":\"; write a name and a value, like to: C1")
                }
                let name = String(TextInput.trimmed(field[..<colon]))
                guard fields[name] == nil else { throw error("field \(name) is given twice") }
                fields[name] = TextInput.trimmed(field[field.index(after: colon)...])
                order.append(name)
            }
            let isMove = fields["move"] != nil
            guard isMove || pairFields.contains(where: { fields[$0] != nil }) else {
                throw error("\"\(text)\" is neither a pair nor a move; \(forms)")
            }
            let (kind, known, example) = isMove ? ("move", moveFields, exampleMove) : ("pair", pairFields, examplePair)
            if let unknown = order.first(where: { !known.contains($0) }) {
                throw error(
                    "a \(kind) has no field \"\(unknown)\"; its fields are \(TextInput.list(known)), like \(example)")
            }
            if let missing = known.first(where: { fields[$0] == nil }) {
                throw error("the \(kind) has no \(missing); write \(example)")
            }
            if isMove {
                let account = try AccountID.parse(fields["move"]!, source: source, line: line)
                let from = try cluster(fields["from"]!, source: source, line: line)
                let to = try cluster(fields["to"]!, source: source, line: line)
                guard from != to else {
                    throw error(
                        "the move of account \(account) from \(from) to \(to) changes nothing; from and to must be "
                            + "different clusters")
                }
                return .move(AccountMove(account: account, from: from, to: to))
            }
            let clusters = try list(fields["clusters"]!, of: "clusters", source: source, line: line)
            guard clusters.count == 2 else {
                throw error(
                    "clusters [\(clusters.joined(separator: " "))] lists \(clusters.count) cluster"
                        + "\(clusters.count == 1 ? "" : "s"); write two: where both accounts end, then where the "
                        + "second comes from, like [C1 C2]")
            }
            let into = try cluster(clusters[0], source: source, line: line)
            let from = try cluster(clusters[1], source: source, line: line)
            guard into != from else {
                throw error("clusters [\(into) \(from)] lists one cluster twice; the second account comes from another")
            }
            let written = try list(fields["accounts"]!, of: "accounts", source: source, line: line)
            guard written.count == 2 else {
                throw error(
                    "accounts [\(written.joined(separator: ", "))] lists \(written.count) account"
                        + "\(written.count == 1 ? "" : "s"); write two, like [1997, 796]")
            }
            let first = try AccountID.parse(written[0], source: source, line: line)
            let second = try AccountID.parse(written[1], source: source, line: line)
            guard first != second else {
                throw error("accounts [\(written.joined(separator: ", "))] lists account \(first) twice")
            }
            let transactions = fields["transactions"]!
            guard let count = TextInput.unsignedValue(transactions), count >= 1, count <= UInt64(Int.max) else {
                throw error("transactions \"\(transactions)\" is not a whole number from 1, like 2")
            }
            let total = try amount(fields["total"]!, source: source, line: line)
            return .pair(
                ColocatedPair(
                    first: first, second: second, into: into, from: from, transactions: Int(count), total: total))
        }

        /// The fields of `{...}`: split at the commas outside brackets.
        static func split(_ text: Substring, source: String, line: Int) throws(InputError) -> [Substring] {
            var fields: [Substring] = []
            var start = text.startIndex
            var depth = 0
            for index in text.indices {
                switch text[index] {
                case "[": depth += 1
                case "]": depth -= 1
                case "," where depth == 0:
                    fields.append(text[start..<index])
                    start = text.index(after: index)
                default: break
                }
                guard (0...1).contains(depth) else {
                    throw InputError(
                        source: source, line: line,
                        message: "brackets do not match in \"{\(text)}\"; write lists like [C1 C2] or [1997, 796]")
                }
            }
            guard depth == 0 else {
                throw InputError(
                    source: source, line: line,
                    message: "brackets do not match in \"{\(text)}\"; write lists like [C1 C2] or [1997, 796]")
            }
            fields.append(text[start...])
            return fields
        }

        /// The items of `[a b]` or `[a, b]`.
        static func list(_ text: Substring, of name: String, source: String, line: Int) throws(InputError)
            -> [Substring]
        {
            guard text.first == "[", text.last == "]", text.count >= 2 else {
                throw InputError(
                    source: source, line: line,
                    message: "\(name) \"\(text)\" is not a list; write two items in brackets, like "
                        + (name == "clusters" ? "[C1 C2]" : "[1997, 796]"))
            }
            return text.dropFirst().dropLast().split { $0 == "," || $0.isWhitespace }
        }

        /// A cluster name `C<n>`.
        static func cluster(_ text: Substring, source: String, line: Int) throws(InputError) -> String {
            guard TextInput.nameNumber(text, prefix: "C") != nil else {
                throw InputError(
                    source: source, line: line,
                    message: "bad cluster name \"\(text)\"; cluster names are C followed by a number from 1, like C1")
            }
            return String(text)
        }

        /// A total written as a whole number, optionally with decimals that are all zero: `16` or `16.000000`.
        static func amount(_ text: Substring, source: String, line: Int) throws(InputError) -> Int128 {
            let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            var value: Int128 = 0
            let whole = TextInput.isDigits(parts[0]) && (parts.count == 1 || parts[1].allSatisfy { $0 == "0" })
            if whole {
                for digit in parts[0].utf8 {
                    let (times10, overflowTimes) = value.multipliedReportingOverflow(by: 10)
                    let (sum, overflowSum) = times10.addingReportingOverflow(Int128(digit - UInt8(ascii: "0")))
                    guard !overflowTimes, !overflowSum else {
                        throw InputError(source: source, line: line, message: "total \(text) is too large")
                    }
                    value = sum
                }
            }
            guard whole, value >= 1 else {
                throw InputError(
                    source: source, line: line,
                    message: "total \"\(text)\" is not a whole amount from 1; write digits, like 16 or 16.000000")
            }
            return value
        }
    }

    // MARK: - Checking

    /// Refuses accounts the catalog does not hold, clusters not in `clusters` (those of hosts.ini), and moves of an
    /// account that is now in neither `from` nor `to` (in `to`, the move was applied already: running a file twice
    /// is harmless). The first problem in file order is reported, with its line.
    public func check(against catalog: Catalog, clusters: [String]) throws(InputError) {
        func error(_ line: Int?, _ message: String) -> InputError {
            InputError(source: source, line: line, message: message)
        }
        func known(_ cluster: String, line: Int?) throws(InputError) {
            guard clusters.contains(cluster) else {
                throw error(line, "cluster \(cluster) is not a cluster of the deployment (\(TextInput.list(clusters)))")
            }
        }
        func owner(_ account: AccountID, line: Int?) throws(InputError) -> String {
            guard let owner = catalog.cluster(of: account) else {
                throw error(line, "account \(account) is in no shard of the catalog")
            }
            return owner
        }
        // Pairs and moves, in file order (pairs first for a schema not read from a file).
        var entries: [(line: Int?, entry: Entry)] = []
        for (position, pair) in pairs.enumerated() { entries.append((pairLines.at(position), .pair(pair))) }
        for (position, move) in moves.enumerated() { entries.append((moveLines.at(position), .move(move))) }
        if !pairLines.isEmpty || !moveLines.isEmpty {
            entries.sort { ($0.line ?? 0) < ($1.line ?? 0) }
        }
        for (line, entry) in entries {
            switch entry {
            case .pair(let pair):
                _ = try owner(pair.first, line: line)
                _ = try owner(pair.second, line: line)
                try known(pair.into, line: line)
                try known(pair.from, line: line)
            case .move(let move):
                let now = try owner(move.account, line: line)
                try known(move.from, line: line)
                try known(move.to, line: line)
                guard !catalog.draining.contains(move.to) else {
                    throw error(
                        line, "cluster \(move.to) is being drained (`shardctl cluster drain`); it takes no accounts")
                }
                guard now == move.from || now == move.to else {
                    throw error(
                        line,
                        "account \(move.account) is in \(now), neither \(move.from) (from) nor \(move.to) (to); "
                            + "the catalog changed since the plan was made: plan again")
                }
            }
        }
    }
}

extension Array where Element == Int {
    /// The element at `position`, or nil past the end.
    fileprivate func at(_ position: Int) -> Int? {
        position < count ? self[position] : nil
    }
}
