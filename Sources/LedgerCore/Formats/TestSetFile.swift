/// One transfer of a test set, with the line it was written on so a failure can point at it.
///
/// Invariant: `line` is 1-based.
public struct TestTransfer: Sendable, Equatable {
    public var transfer: Transfer
    public var line: Int

    public init(transfer: Transfer, line: Int) {
        self.transfer = transfer
        self.line = line
    }
}

/// One row of a test set: a transfer, a balance read, or a replica failed or recovered at that point of the set.
///
/// Invariants: `line` is 1-based; a replica is named `S<k>` whatever the file wrote (`n3` is `S3`).
public struct TestStep: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// `(21, 700, 2)`.
        case transfer(Transfer)
        /// `(2001)` (Fall 2025 format): the account's committed balance, read and printed.
        case read(AccountID)
        /// `F(n3)` (Fall 2025 format): the replica is disconnected from this point of the set on.
        case fail(String)
        /// `R(n3)` (Fall 2025 format): the replica is reconnected from this point of the set on.
        case recover(String)
    }

    public var action: Action
    /// The 1-based line of the row.
    public var line: Int

    public init(_ action: Action, line: Int) {
        self.action = action
        self.line = line
    }

    /// Whether the step is a transfer or a read (rather than a fail or recover row).
    public var isOperation: Bool {
        switch action {
        case .transfer, .read: return true
        case .fail, .recover: return false
        }
    }
}

/// A part of a set between its fail and recover rows: those rows' changes are applied first, then the transfers and
/// reads run as a set's do (together, or one at a time), and all of them are answered before the next part's changes.
///
/// Invariant: `liveServers` is the set's live list with the changes of this and every earlier segment applied.
public struct TestSegment: Sendable, Equatable {
    /// The fail and recover rows before `operations`, in file order (empty for a set's first segment unless the set
    /// starts with one).
    public var changes: [TestStep]
    /// The transfers and reads, in file order; empty only for the last segment of a set that ends with a change.
    public var operations: [TestStep]
    /// The replicas connected while `operations` run.
    public var liveServers: [String]

    public init(changes: [TestStep], operations: [TestStep], liveServers: [String]) {
        self.changes = changes
        self.operations = operations
        self.liveServers = liveServers
    }
}

/// One set of a test file: transfers and reads issued together while only `liveServers` are connected, with replicas
/// failed and recovered between them in the Fall 2025 format.
///
/// Invariants (checked by `TestSetFile.parse`): `number >= 1`; `steps` holds at least one transfer or read;
/// `liveServers` and `contacts` hold server names `S<n>` without duplicates; `contacts[i]` is the contact for the
/// cluster at position `i` of hosts.ini (C1, C2, ...), and may be shorter than the cluster list (the rest use
/// hosts.ini's default contacts) or empty; a fail step names a replica connected at that point of the set, a recover
/// step one disconnected at that point.
public struct TestSet: Sendable, Equatable {
    /// The set number written in column 1.
    public var number: Int
    /// The 1-based line of the row that starts the set.
    public var line: Int
    /// The rows of the set, in file order.
    public var steps: [TestStep]
    /// The servers connected when the set starts; every other server is disconnected.
    public var liveServers: [String]
    /// The contact server per cluster, by position.
    public var contacts: [String]
    /// The format of the file the set came from, which names the replicas in messages.
    public var format: TestSetFile.Format

    /// A set of transfers only, in the original format.
    public init(number: Int, line: Int, transfers: [TestTransfer], liveServers: [String], contacts: [String]) {
        self.init(
            number: number, line: line, steps: transfers.map { TestStep(.transfer($0.transfer), line: $0.line) },
            liveServers: liveServers, contacts: contacts, format: .original)
    }

    public init(
        number: Int, line: Int, steps: [TestStep], liveServers: [String], contacts: [String],
        format: TestSetFile.Format
    ) {
        self.number = number
        self.line = line
        self.steps = steps
        self.liveServers = liveServers
        self.contacts = contacts
        self.format = format
    }

    /// The transfers of the set, in file order.
    public var transfers: [TestTransfer] {
        steps.compactMap { step in
            guard case .transfer(let transfer) = step.action else { return nil }
            return TestTransfer(transfer: transfer, line: step.line)
        }
    }

    /// The accounts the set reads, in file order.
    public var reads: [AccountID] {
        steps.compactMap { step in
            guard case .read(let account) = step.action else { return nil }
            return account
        }
    }

    /// The transfers and reads of the set.
    public var operationCount: Int { steps.filter(\.isOperation).count }

    /// The set split at its fail and recover rows: one segment for a set without them.
    public var segments: [TestSegment] {
        var segments: [TestSegment] = []
        var live = liveServers
        var current = TestSegment(changes: [], operations: [], liveServers: live)
        for step in steps {
            switch step.action {
            case .transfer, .read:
                current.operations.append(step)
            case .fail(let replica), .recover(let replica):
                if !current.operations.isEmpty {
                    segments.append(current)
                    current = TestSegment(changes: [], operations: [], liveServers: live)
                }
                if case .fail = step.action {
                    live.removeAll { $0 == replica }
                } else {
                    live.append(replica)
                }
                current.changes.append(step)
                current.liveServers = live
            }
        }
        if !current.operations.isEmpty || !current.changes.isEmpty || segments.isEmpty {
            segments.append(current)
        }
        return segments
    }

    /// How the set's file writes `replica`: `S3`, or `n3` in the Fall 2025 format.
    public func name(of replica: String) -> String { format.name(of: replica) }
}

/// A test file: test sets run one after the other, in either of two formats, told apart by their content.
///
/// Invariants (checked by `parse`): at least one set; set numbers strictly increase; every set in `format`.
///
/// Both formats are CSV (quotes, CRLF or LF, a byte-order mark and blank lines allowed; an optional header whose first
/// field is a word, like `Set`). The **original** format (`tests-data/tests.csv`) has at most four columns:
/// ```
/// 1,"(12, 640, 3)","[S1, S2, S3, S4, S5, S6, S7, S8, S9]","[S1, S4, S7]"
/// ,"(1402, 2777, 4)",,
/// ```
/// Column 1 is the set number (non-empty starts a set), column 2 a transfer `(from, to, amount)`, column 3 the live
/// servers and column 4 the contacts; columns 3 and 4 belong to the row that starts a set and stay empty on the rows
/// that continue it. The **Fall 2025** format (`tests-data/tests-fall2025.csv`) has three columns and names replica
/// `S<k>` as node `n<k>`:
/// ```
/// Set Number,Transactions,Live Nodes
/// 1,"(100, 3100, 2)","[n1, n2, n3, n4, n5, n6, n7, n8, n9]"
/// ,"(2001)",
/// ,F(n3),
/// ,R(n3),
/// ```
/// Column 2 also holds balance reads `(2001)` and fail and recover rows `F(n3)`, `R(n3)`; there is no contacts column.
public struct TestSetFile: Sendable, Equatable {
    /// The two layouts of a test file.
    public enum Format: Sendable, Equatable {
        /// Servers `S<k>`, an optional contacts column, transfers only (`tests-data/tests.csv`).
        case original
        /// The Fall 2025 course's: header `Set Number,Transactions,Live Nodes`, nodes `n<k>` (replica `S<k>` of
        /// hosts.ini), no contacts column, and reads `(2001)`, `F(n3)` and `R(n3)` rows among the transfers.
        case fall2025

        /// `original` or `Fall 2025`, for messages.
        public var name: String { self == .original ? "original" : "Fall 2025" }

        /// How this format writes `replica` (`S3`): `S3`, or `n3` in the Fall 2025 format.
        public func name(of replica: String) -> String {
            guard self == .fall2025, replica.hasPrefix("S") else { return replica }
            return "n" + replica.dropFirst()
        }

        /// What the format calls a replica: `server` or `node`.
        var replicaWord: String { self == .original ? "server" : "node" }
        /// The prefix of a replica name in the file: `S` or `n`.
        var replicaPrefix: String { self == .original ? "S" : "n" }
    }

    /// The file the sets came from, as the user named it; used in messages.
    public var source: String
    /// The sets, in file order.
    public var sets: [TestSet]
    /// The format the file is written in.
    public var format: Format

    public init(source: String, sets: [TestSet], format: Format = .original) {
        self.source = source
        self.sets = sets
        self.format = format
    }

    /// Which format a file is in and the row that shows it, named in the errors about rows that disagree.
    struct Detection {
        var format: Format
        /// Like `the header on line 1 names Live Nodes`; nil when nothing in the file tells (the original format is
        /// then assumed: its rows are also valid rows of the other).
        var evidence: String?

        /// The header decides when it names `Live Nodes` (Fall 2025), or servers or contacts (original); else the
        /// first row that names a replica (`n3` or `S3`) in a list, gives contacts, or holds a read or a fail or
        /// recover row.
        static func of(header: CSVRecord?, records: [CSVRecord]) -> Detection {
            if let header {
                let names = header.fields.map {
                    $0.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
                }
                let at = "the header on line \(header.line)"
                if names.contains("live nodes") {
                    return Detection(format: .fall2025, evidence: "\(at) names Live Nodes")
                }
                if names.contains(where: { $0.contains("server") || $0.contains("contact") }) {
                    return Detection(format: .original, evidence: "\(at) names servers or contacts")
                }
            }
            for record in records {
                if let detection = of(record) { return detection }
            }
            return Detection(format: .original, evidence: nil)
        }

        private static func of(_ record: CSVRecord) -> Detection? {
            let at = "line \(record.line)"
            for field in record.fields where field.first == "[" {
                let inner = field.dropFirst().prefix { $0 != "," && $0 != "]" }
                let first = TextInput.trimmed(inner)
                if TextInput.nameNumber(first, prefix: "n") != nil {
                    return Detection(format: .fall2025, evidence: "\(at) names node \(first)")
                }
                if TextInput.nameNumber(first, prefix: "S") != nil {
                    return Detection(format: .original, evidence: "\(at) names server \(first)")
                }
            }
            if record.fields.count == 4, !record.fields[3].isEmpty {
                return Detection(format: .original, evidence: "\(at) gives contacts in column 4")
            }
            if record.fields.count >= 2 {
                let text = Substring(record.fields[1])
                if nodeChangeKind(text) != nil {
                    return Detection(format: .fall2025, evidence: "\(at) has \(text)")
                }
                if readAccountText(text) != nil {
                    return Detection(format: .fall2025, evidence: "\(at) reads \(text)")
                }
            }
            return nil
        }

        /// `the file is in the Fall 2025 format (the header on line 1 names Live Nodes)`.
        var statement: String {
            "the file is in the \(format.name) format" + (evidence.map { " (\($0))" } ?? "")
        }
    }

    /// `F` or `R` when `text` is written like a fail or recover row: the letter, then an opening parenthesis.
    static func nodeChangeKind(_ text: Substring) -> Character? {
        guard let letter = text.first, letter == "F" || letter == "R",
            TextInput.trimmed(text.dropFirst()).first == "("
        else { return nil }
        return letter
    }

    /// The inside of `text` when it is written like a read: one value in parentheses, without a comma.
    static func readAccountText(_ text: Substring) -> Substring? {
        guard text.count >= 2, text.first == "(", text.last == ")", !text.contains(",") else { return nil }
        return TextInput.trimmed(text.dropFirst().dropLast())
    }

    /// Reads test-file text in either format; `source` names the file in errors.
    public static func parse(_ text: String, source: String) throws(InputError) -> TestSetFile {
        var records = try CSVReader.records(text, source: source)
        // A header is optional; a first field that starts with a letter (`Set`) cannot be a set number.
        var header: CSVRecord?
        if let first = records.first, first.fields[0].first?.isLetter == true {
            header = records.removeFirst()
        }
        let detection = Detection.of(header: header, records: records)
        let format = detection.format
        let example = format == .original ? "[S1, S2, S3]" : "[n1, n2, n3]"
        guard !records.isEmpty else {
            throw InputError(
                source: source, message: "no test sets; write rows like 1,\"(21, 700, 2)\",\"\(example)\"")
        }
        var sets: [TestSet] = []
        var current: TestSet?
        // Per replica connected at this point of the current set: nil, or the line of the recover row that
        // reconnected it. Per replica disconnected: nil, or the line of the fail row that disconnected it.
        var up: [String: Int?] = [:]
        var down: [String: Int?] = [:]
        func finish(_ set: TestSet) throws(InputError) {
            guard set.steps.contains(where: \.isOperation) else {
                throw InputError(
                    source: source, line: set.line,
                    message: format == .original
                        ? "set \(set.number) has no transfers; write one in column 2, like \"(21, 700, 2)\""
                        : "set \(set.number) has no transfers or reads; write one in column 2, like "
                            + "\"(21, 700, 2)\" or \"(2001)\"")
            }
            sets.append(set)
        }
        for record in records {
            let line = record.line
            func error(_ message: String) -> InputError {
                InputError(source: source, line: line, message: message)
            }
            // Spreadsheets write rows of empty fields; in the Fall 2025 format, whose files come from them, they
            // mean nothing.
            if format == .fall2025 && record.fields.allSatisfy(\.isEmpty) { continue }
            switch format {
            case .original:
                guard record.fields.count <= 4 else {
                    throw error(
                        "row has \(record.fields.count) columns; expected at most 4: set number, transfer, "
                            + "live servers, contacts")
                }
            case .fall2025:
                guard record.fields.count <= 4 else {
                    throw error(
                        "row has \(record.fields.count) columns; expected 3: set number, transaction, live nodes; "
                            + "quote a field that holds commas, like \"(21, 700, 2)\"")
                }
                if record.fields.count == 4 && !record.fields[3].isEmpty {
                    throw error(
                        "column 4 (\"\(record.fields[3])\") would be contacts, which the Fall 2025 format does not "
                            + "have; \(detection.statement); it has 3 columns: set number, transaction, live nodes")
                }
            }
            let fields = record.fields + Array(repeating: "", count: 4 - record.fields.count)
            let (numberText, stepText, liveText, contactsText) = (fields[0], fields[1], fields[2], fields[3])
            let liveWhat = "live \(format.replicaWord)s"
            if !numberText.isEmpty {
                let number = try parseSetNumber(numberText, source: source, line: line)
                if let previous = current {
                    guard number > previous.number else {
                        throw error(
                            "set number \(number) does not follow set \(previous.number) (line \(previous.line)); "
                                + "set numbers must increase")
                    }
                    try finish(previous)
                }
                guard !liveText.isEmpty else {
                    throw error("set \(number) has no \(liveWhat); list them in column 3, like \"\(example)\"")
                }
                let liveServers = try parseServers(
                    liveText, what: liveWhat, format: format, detection: detection, source: source, line: line)
                let contacts =
                    contactsText.isEmpty
                    ? []
                    : try parseServers(
                        contactsText, what: "contacts", format: format, detection: detection, source: source,
                        line: line)
                current = TestSet(
                    number: number, line: line, steps: [], liveServers: liveServers, contacts: contacts,
                    format: format)
                up = Dictionary(uniqueKeysWithValues: liveServers.map { ($0, Int?.none) })
                down = [:]
            } else {
                guard let set = current else {
                    throw error(
                        "row continues a set, but no set has started; write a set number in column 1 of the first row")
                }
                let place = "the row that starts set \(set.number) (line \(set.line))"
                guard liveText.isEmpty else {
                    throw error("\(liveWhat) belong on \(place); leave column 3 empty here")
                }
                guard contactsText.isEmpty else {
                    throw error("contacts belong on \(place); leave column 4 empty here")
                }
                guard !stepText.isEmpty else {
                    throw error(
                        format == .original
                            ? "row continues set \(set.number) but has no transfer; write one in column 2, "
                                + "like \"(21, 700, 2)\""
                            : "row continues set \(set.number) but has nothing in column 2; write \(transactionExamples)"
                    )
                }
            }
            guard !stepText.isEmpty, var set = current else { continue }
            let step = try parseStep(
                Substring(stepText), format: format, detection: detection, source: source, line: line)
            switch step.action {
            case .transfer, .read:
                break
            case .fail(let replica):
                let name = format.name(of: replica)
                let written = "F(\(name))"
                guard up[replica] != nil else {
                    if case .some(.some(let failedAt)) = down[replica] {
                        throw error(
                            "\(written) fails \(name) again; it failed on line \(failedAt) and has not recovered "
                                + "since; fail only a live node")
                    }
                    throw error(
                        "\(written) fails \(name), which is not live at this point of set \(set.number): the live "
                            + "nodes on line \(set.line) leave it out; fail only a live node")
                }
                up[replica] = nil
                down[replica] = .some(line)
            case .recover(let replica):
                let name = format.name(of: replica)
                let written = "R(\(name))"
                if case .some(let recoveredAt) = up[replica] {
                    if let recoveredAt {
                        throw error(
                            "\(written) recovers \(name) again; it recovered on line \(recoveredAt) and has not "
                                + "failed since; recover only a failed node")
                    }
                    throw error(
                        "\(written) recovers \(name), which is live at this point of set \(set.number) (the live "
                            + "nodes on line \(set.line) list it); recover only a failed node or one the live "
                            + "nodes leave out")
                }
                down[replica] = nil
                up[replica] = .some(line)
            }
            set.steps.append(step)
            current = set
        }
        if let last = current {
            try finish(last)
        }
        return TestSetFile(source: source, sets: sets, format: format)
    }

    /// One entry of column 2: a transfer in either format; in the Fall 2025 format also a read or a fail or recover
    /// row. A read or a fail or recover row in an original-format file is refused as a mix of the formats.
    static func parseStep(
        _ text: Substring, format: Format, detection: Detection, source: String, line: Int
    ) throws(InputError) -> TestStep {
        func error(_ message: String) -> InputError {
            InputError(source: source, line: line, message: message)
        }
        let kind = nodeChangeKind(text)
        let readText = readAccountText(text)
        if format == .original {
            if let kind {
                throw error(
                    "\(text) would \(kind == "F" ? "fail" : "recover") a node, which only the Fall 2025 format does, "
                        + "but \(detection.statement); write transfers (21, 700, 2) only")
            }
            if let readText, (try? AccountID.parse(readText, source: source)) != nil {
                throw error(
                    "\(text) would read a balance, which only the Fall 2025 format does, but \(detection.statement); "
                        + "write transfers (21, 700, 2) only")
            }
            return TestStep(.transfer(try Transfer.parse(text, source: source, line: line)), line: line)
        }
        if let kind {
            let verb = kind == "F" ? "fail" : "recover"
            let rest = TextInput.trimmed(text.dropFirst())
            guard rest.last == ")" else {
                throw error("\(verb) row \"\(text)\" does not end with \")\"; write \(kind)(n3)")
            }
            let name = TextInput.trimmed(rest.dropFirst().dropLast())
            if TextInput.nameNumber(name, prefix: "S") != nil {
                throw error(
                    "\(verb) row \"\(text)\" names server \(name), but \(detection.statement), which names nodes: "
                        + "write \(kind)(n\(name.dropFirst()))")
            }
            guard let number = TextInput.nameNumber(name, prefix: "n") else {
                throw error(
                    "\(verb) row \"\(text)\" names \"\(name)\", which is not a node; write n and a number, like "
                        + "\(kind)(n3)")
            }
            return TestStep(kind == "F" ? .fail("S\(number)") : .recover("S\(number)"), line: line)
        }
        if let readText {
            guard !readText.isEmpty else {
                throw error("read \"\(text)\" names no account; write the account in parentheses, like (2001)")
            }
            return TestStep(.read(try AccountID.parse(readText, source: source, line: line)), line: line)
        }
        guard text.first == "(" else {
            throw error("transaction \"\(text)\" is not \(transactionExamples)")
        }
        return TestStep(.transfer(try Transfer.parse(text, source: source, line: line)), line: line)
    }

    static let transactionExamples = "a transfer (21, 700, 2), a read (2001), F(n3) or R(n3)"

    static func parseSetNumber(_ text: String, source: String, line: Int) throws(InputError) -> Int {
        let written = Substring(text)
        guard TextInput.isDigits(written) else {
            throw InputError(
                source: source, line: line,
                message: "set number \"\(text)\" is not a whole number; write 1, 2, 3, ...")
        }
        guard let value = TextInput.unsignedValue(written), value <= UInt64(TextInput.nameNumberMax) else {
            throw InputError(
                source: source, line: line,
                message: "set number \(text) is too large; the largest is \(TextInput.nameNumberMax)")
        }
        guard value >= 1 else {
            throw InputError(source: source, line: line, message: "set number \(text) is zero; sets start at 1")
        }
        return Int(value)
    }

    /// A replica list written in brackets, like `[S1, S2, S3]` (or `[n1, n2, n3]` in the Fall 2025 format); `[]` is an
    /// empty list. Returns the replicas as `S<k>`.
    static func parseServers(
        _ text: String, what: String, format: Format, detection: Detection, source: String, line: Int
    ) throws(InputError) -> [String] {
        func error(_ message: String) -> InputError {
            InputError(source: source, line: line, message: message)
        }
        let word = format.replicaWord
        let prefix = format.replicaPrefix
        guard text.first == "[", text.last == "]", text.count >= 2 else {
            throw error(
                "\(what) \"\(text)\" is not a list; write \(word) names in brackets, like [\(prefix)1, \(prefix)2, "
                    + "\(prefix)3]")
        }
        let inner = TextInput.trimmed(text.dropFirst().dropLast())
        if inner.isEmpty { return [] }
        var names: [String] = []
        for item in inner.split(separator: ",", omittingEmptySubsequences: false) {
            let name = TextInput.trimmed(item)
            if name.isEmpty {
                throw error("\(what) \"\(text)\" has an empty entry; separate \(word) names with one comma")
            }
            guard let number = TextInput.nameNumber(name, prefix: prefix) else {
                let other: Format = format == .original ? .fall2025 : .original
                if TextInput.nameNumber(name, prefix: other.replicaPrefix) != nil {
                    throw error(
                        "\(what) list \(name), a \(other.replicaWord) of the \(other.name) format, but "
                            + "\(detection.statement); write \(word)s as \(prefix)1, \(prefix)2, ...")
                }
                throw error(
                    "\(what) list \"\(name)\", which is not a \(word) name; write \(prefix) and a number, like "
                        + "\(prefix)1")
            }
            let replica = "S\(number)"
            if names.contains(replica) {
                throw error("\(what) list \(name) twice")
            }
            names.append(replica)
        }
        return names
    }

    /// Refuses replicas unknown to hosts.ini, contacts that are not live or not in the cluster at their position,
    /// more contacts than clusters, and transfers and reads naming accounts no shard holds.
    public func check(against hosts: HostsFile, shards: ShardMap) throws(InputError) {
        for set in sets {
            func error(_ message: String) -> InputError {
                InputError(source: source, line: set.line, message: message)
            }
            /// In the Fall 2025 format, how a node missing from hosts.ini was looked for there.
            func mapping(_ replica: String) -> String {
                format == .fall2025 ? " (node n<k> is its replica S<k>; it has no \(replica))" : ""
            }
            for server in set.liveServers where hosts.replica(named: server) == nil {
                throw error(
                    "live \(format.replicaWord) \(format.name(of: server)) is not in \(hosts.source)\(mapping(server))")
            }
            if set.contacts.count > hosts.clusters.count {
                throw error(
                    "set \(set.number) gives \(set.contacts.count) contacts but \(hosts.source) defines "
                        + "\(hosts.clusters.count) cluster\(hosts.clusters.count == 1 ? "" : "s") "
                        + "(\(TextInput.list(hosts.clusterNames)))")
            }
            for (cluster, contact) in zip(hosts.clusters, set.contacts) {
                guard hosts.replica(named: contact) != nil else {
                    throw error("contact \(contact) is not in \(hosts.source)")
                }
                guard cluster.members.contains(contact) else {
                    let owner = hosts.cluster(of: contact).map { "; \(contact) belongs to \($0.name)" } ?? ""
                    throw error(
                        "contact \(contact) is in the position of cluster \(cluster.name) "
                            + "(\(cluster.members.joined(separator: ", ")))\(owner)")
                }
                guard set.liveServers.contains(contact) else {
                    throw error(
                        "contact \(contact) of cluster \(cluster.name) is not live in set \(set.number); "
                            + "add it to the live servers or pick a live member")
                }
            }
            for step in set.steps {
                func stepError(_ message: String) -> InputError {
                    InputError(source: source, line: step.line, message: message)
                }
                let accounts: [AccountID]
                switch step.action {
                case .transfer(let transfer): accounts = [transfer.from, transfer.to]
                case .read(let account): accounts = [account]
                case .fail(let replica), .recover(let replica):
                    accounts = []
                    if hosts.replica(named: replica) == nil {
                        let name = format.name(of: replica)
                        let kind = if case .fail = step.action { "F" } else { "R" }
                        throw stepError(
                            "\(kind)(\(name)) names node \(name), which is not in \(hosts.source)\(mapping(replica))")
                    }
                }
                for account in accounts where shards.cluster(of: account) == nil {
                    throw stepError("account \(account) is in no shard of \(shards.source)")
                }
            }
        }
    }
}
