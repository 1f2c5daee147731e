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

/// One set of a test file: transfers issued together while only `liveServers` are connected.
///
/// Invariants (checked by `TestSetFile.parse`): `number >= 1`; `transfers` is non-empty;
/// `liveServers` and `contacts` hold server names `S<n>` without duplicates; `contacts[i]` is the
/// contact for the cluster at position `i` of hosts.ini (C1, C2, ...), and may be shorter than the
/// cluster list (the rest use hosts.ini's default contacts) or empty.
public struct TestSet: Sendable, Equatable {
    /// The set number written in column 1.
    public var number: Int
    /// The 1-based line of the row that starts the set.
    public var line: Int
    /// The transfers of the set, in file order.
    public var transfers: [TestTransfer]
    /// The servers connected during the set; every other server is disconnected.
    public var liveServers: [String]
    /// The contact server per cluster, by position.
    public var contacts: [String]

    public init(number: Int, line: Int, transfers: [TestTransfer], liveServers: [String], contacts: [String]) {
        self.number = number
        self.line = line
        self.transfers = transfers
        self.liveServers = liveServers
        self.contacts = contacts
    }
}

/// A test file like `tests-data/tests.csv`: test sets run one after the other.
///
/// Invariants (checked by `parse`): at least one set; set numbers strictly increase.
///
/// The format is CSV (quotes, CRLF or LF, a byte-order mark and blank lines allowed; an optional
/// header whose first field is a word, like `Set`), at most four columns:
/// ```
/// 1,"(12, 640, 3)","[S1, S2, S3, S4, S5, S6, S7, S8, S9]","[S1, S4, S7]"
/// ,"(1402, 2777, 4)",,
/// ```
/// Column 1 is the set number (non-empty starts a set), column 2 a transfer `(from, to, amount)`,
/// column 3 the live servers and column 4 the contacts; columns 3 and 4 belong to the row that
/// starts a set and stay empty on the rows that continue it.
public struct TestSetFile: Sendable, Equatable {
    /// The file the sets came from, as the user named it; used in messages.
    public var source: String
    /// The sets, in file order.
    public var sets: [TestSet]

    public init(source: String, sets: [TestSet]) {
        self.source = source
        self.sets = sets
    }

    /// Reads test-file text; `source` names the file in errors.
    public static func parse(_ text: String, source: String) throws(InputError) -> TestSetFile {
        var records = try CSVReader.records(text, source: source)
        // A header is optional; a first field that starts with a letter (`Set`) cannot be a set number.
        if let first = records.first, first.fields[0].first?.isLetter == true {
            records.removeFirst()
        }
        guard !records.isEmpty else {
            throw InputError(
                source: source, message: "no test sets; write rows like 1,\"(21, 700, 2)\",\"[S1, S2, S3]\"")
        }
        var sets: [TestSet] = []
        var current: TestSet?
        func finish(_ set: TestSet) throws(InputError) {
            guard !set.transfers.isEmpty else {
                throw InputError(
                    source: source, line: set.line,
                    message: "set \(set.number) has no transfers; write one in column 2, like \"(21, 700, 2)\"")
            }
            sets.append(set)
        }
        for record in records {
            let line = record.line
            func error(_ message: String) -> InputError {
                InputError(source: source, line: line, message: message)
            }
            guard record.fields.count <= 4 else {
                throw error(
                    "row has \(record.fields.count) columns; expected at most 4: set number, transfer, "
                        + "live servers, contacts")
            }
            let fields = record.fields + Array(repeating: "", count: 4 - record.fields.count)
            let (numberText, transferText, liveText, contactsText) = (fields[0], fields[1], fields[2], fields[3])
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
                    throw error(
                        "set \(number) has no live servers; list them in column 3, like \"[S1, S2, S3]\"")
                }
                let liveServers = try parseServers(liveText, what: "live servers", source: source, line: line)
                let contacts =
                    contactsText.isEmpty
                    ? [] : try parseServers(contactsText, what: "contacts", source: source, line: line)
                current = TestSet(
                    number: number, line: line, transfers: [], liveServers: liveServers, contacts: contacts)
            } else {
                guard let set = current else {
                    throw error(
                        "row continues a set, but no set has started; write a set number in column 1 of the first row")
                }
                let place = "the row that starts set \(set.number) (line \(set.line))"
                guard liveText.isEmpty else {
                    throw error("live servers belong on \(place); leave column 3 empty here")
                }
                guard contactsText.isEmpty else {
                    throw error("contacts belong on \(place); leave column 4 empty here")
                }
                guard !transferText.isEmpty else {
                    throw error(
                        "row continues set \(set.number) but has no transfer; write one in column 2, "
                            + "like \"(21, 700, 2)\"")
                }
            }
            if !transferText.isEmpty {
                let transfer = try Transfer.parse(transferText, source: source, line: line)
                current?.transfers.append(TestTransfer(transfer: transfer, line: line))
            }
        }
        if let last = current {
            try finish(last)
        }
        return TestSetFile(source: source, sets: sets)
    }

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

    /// A server list written in brackets, like `[S1, S2, S3]`; `[]` is an empty list.
    static func parseServers(_ text: String, what: String, source: String, line: Int) throws(InputError) -> [String] {
        func error(_ message: String) -> InputError {
            InputError(source: source, line: line, message: message)
        }
        guard text.first == "[", text.last == "]", text.count >= 2 else {
            throw error("\(what) \"\(text)\" is not a list; write server names in brackets, like [S1, S2, S3]")
        }
        let inner = TextInput.trimmed(text.dropFirst().dropLast())
        if inner.isEmpty { return [] }
        var names: [String] = []
        for item in inner.split(separator: ",", omittingEmptySubsequences: false) {
            let name = TextInput.trimmed(item)
            if name.isEmpty {
                throw error("\(what) \"\(text)\" has an empty entry; separate server names with one comma")
            }
            guard TextInput.nameNumber(name, prefix: "S") != nil else {
                throw error("\(what) list \"\(name)\", which is not a server name; write S and a number, like S1")
            }
            if names.contains(String(name)) {
                throw error("\(what) list \(name) twice")
            }
            names.append(String(name))
        }
        return names
    }

    /// Refuses servers unknown to hosts.ini, contacts that are not live or not in the cluster at their
    /// position, more contacts than clusters, and transfers naming accounts no shard holds.
    public func check(against hosts: HostsFile, shards: ShardMap) throws(InputError) {
        for set in sets {
            func error(_ message: String) -> InputError {
                InputError(source: source, line: set.line, message: message)
            }
            for server in set.liveServers where hosts.replica(named: server) == nil {
                throw error("live server \(server) is not in \(hosts.source)")
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
            for item in set.transfers {
                for account in [item.transfer.from, item.transfer.to] where shards.cluster(of: account) == nil {
                    throw InputError(
                        source: source, line: item.line,
                        message: "account \(account) is in no shard of \(shards.source)")
                }
            }
        }
    }
}
