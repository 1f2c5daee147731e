/// The deployment's address book, read from `configs/hosts.ini`: every replica's address, which
/// replicas form each cluster, each cluster's default contact, and the client's callback address.
///
/// Invariants (checked by `parse`): at least one replica; replica names `S<n>` and cluster names
/// `C<n>` are unique; the client's address is no replica's; replicas that share an address form a node (one
/// process), which hosts at most one replica of each cluster; every replica is a member of exactly one cluster;
/// every cluster has an odd number of members, all defined replicas, and a contact among them. `replicas` are sorted by index, `clusters` by index; a cluster's position in
/// `clusters` is its position in a test file's contact list.
///
/// The `EC` line is a cluster's first configuration, which bootstraps a new deployment; once the cluster runs, its
/// log decides who votes (membership changes, `shardctl member`). Replicas added later are listed by `AC` lines and
/// replicas removed by `RC` lines, which `shardctl member` appends: hosts.ini stays the address book of everyone who
/// may belong to a cluster, and the `EC` line never changes, so every replica derives the same first configuration.
///
/// The format, one entry per line, split on the first `-`; `#` starts a comment:
/// ```
/// S1-localhost:6001        # replica S1 and its address (S4-localhost:6001: S1 and S4 share a node)
/// client-localhost:5001    # the client's callback address (optional)
/// C1-S1                    # the default contact of cluster C1 (optional; default: the first member)
/// EC1-S1:S2:S3             # the members of cluster C1 (its first configuration)
/// AC1-S10                  # replicas added to C1 later (by `shardctl member add`; optional, any number of lines)
/// RC1-S3                   # replicas removed from C1 (by `shardctl member remove`; optional, any number of lines)
/// all-S1:S2:S3             # every replica (optional; must match the S lines)
/// ```
public struct HostsFile: Sendable, Equatable {
    /// A network address `host:port`.
    ///
    /// Invariant: `host` is non-empty without spaces; `port` is in 1...65535.
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `host:port`.
        public var description: String { "\(host):\(port)" }
    }

    /// One replica: its name `S<index>`, where it listens, and the line that defines it.
    ///
    /// Invariant: `name == "S\(index)"`, `index >= 1`.
    public struct Replica: Sendable, Equatable {
        public var name: String
        public var index: Int
        public var host: String
        public var port: Int
        /// The 1-based line of hosts.ini that defines this replica.
        public var line: Int

        public init(name: String, index: Int, host: String, port: Int, line: Int) {
            self.name = name
            self.index = index
            self.host = host
            self.port = port
            self.line = line
        }

        /// `host:port`.
        public var address: Address { Address(host: host, port: port) }
    }

    /// One cluster: its name `C<index>`, its first members in the order written, the replicas added and removed
    /// since, and its default contact.
    ///
    /// Invariant: `name == "C\(index)"`; `members` is non-empty, odd in count, without duplicates; `added` shares
    /// no replica with `members` or another cluster; `removed` is a subset of `replicas`, and `reachable` is not
    /// empty; `contact` is one of `reachable`.
    public struct Cluster: Sendable, Equatable {
        public var name: String
        public var index: Int
        /// The first configuration's voters (the `EC` line): what a replica starting with an empty store assumes
        /// until the log tells it otherwise.
        public var members: [String]
        /// Replicas added since (the `AC` lines), in the order written.
        public var added: [String]
        /// Replicas removed since (the `RC` lines), in the order written: never members again.
        public var removed: [String]
        public var contact: String
        /// The 1-based line of the `EC<n>` line that lists the members.
        public var line: Int

        public init(
            name: String, index: Int, members: [String], added: [String] = [], removed: [String] = [],
            contact: String, line: Int
        ) {
            self.name = name
            self.index = index
            self.members = members
            self.added = added
            self.removed = removed
            self.contact = contact
            self.line = line
        }

        /// Every replica that is or was in the cluster: the first members and the added ones.
        public var replicas: [String] { members + added }

        /// The replicas a client or another cluster may reach: every replica not removed.
        public var reachable: [String] { replicas.filter { !removed.contains($0) } }
    }

    /// The file the entries came from, as the user named it; used in messages.
    public var source: String
    /// Every replica, sorted by index.
    public var replicas: [Replica]
    /// Every cluster, sorted by index.
    public var clusters: [Cluster]
    /// Where the client listens for callbacks, if the file says.
    public var clientAddress: Address?
    /// Clusters drained and removed (`DC` lines), with their replicas: names never used again.
    public var drained: [String: [String]]

    public init(
        source: String, replicas: [Replica], clusters: [Cluster], clientAddress: Address?,
        drained: [String: [String]] = [:]
    ) {
        self.source = source
        self.replicas = replicas
        self.clusters = clusters
        self.clientAddress = clientAddress
        self.drained = drained
    }

    /// Whether `name` (`S4`, `C2`) names a replica or cluster defined here or drained before.
    public func isUsed(_ name: String) -> Bool {
        replica(named: name) != nil || cluster(named: name) != nil || drained[name] != nil
            || drained.values.contains { $0.contains(name) }
    }

    /// The replica called `name` (like `"S4"`), if defined.
    public func replica(named name: String) -> Replica? {
        replicas.first { $0.name == name }
    }

    /// The cluster called `name` (like `"C2"`), if defined.
    public func cluster(named name: String) -> Cluster? {
        clusters.first { $0.name == name }
    }

    /// A process that hosts every replica written with its address: one replica of each of some clusters.
    ///
    /// Invariant: `name == "N\(index)"`; `replicas` is non-empty, sorted by index, at most one per cluster.
    public struct Node: Sendable, Equatable {
        public var name: String
        public var index: Int
        public var address: Address
        /// The names of the replicas it hosts, by index.
        public var replicas: [String]

        public init(name: String, index: Int, address: Address, replicas: [String]) {
            self.name = name
            self.index = index
            self.address = address
            self.replicas = replicas
        }
    }

    /// The nodes, numbered `N1`, `N2`, ... in the order of their first replica's index. A deployment whose replicas
    /// all have addresses of their own has one node per replica.
    public var nodes: [Node] {
        var order: [Address] = []
        var hosted: [Address: [String]] = [:]
        for replica in replicas {
            if hosted[replica.address] == nil { order.append(replica.address) }
            hosted[replica.address, default: []].append(replica.name)
        }
        return order.enumerated().map { offset, address in
            Node(name: "N\(offset + 1)", index: offset + 1, address: address, replicas: hosted[address]!)
        }
    }

    /// The node called `name` (like `"N2"`), if defined.
    public func node(named name: String) -> Node? {
        nodes.first { $0.name == name }
    }

    /// The node hosting the replica called `replica`, if it is defined.
    public func node(of replica: String) -> Node? {
        nodes.first { $0.replicas.contains(replica) }
    }

    /// The cluster the replica called `replica` belongs or belonged to (a first member or an added one), if any.
    public func cluster(of replica: String) -> Cluster? {
        clusters.first { $0.replicas.contains(replica) }
    }

    /// The names of the clusters, in order: `["C1", "C2", "C3"]`.
    public var clusterNames: [String] { clusters.map(\.name) }

    /// Reads hosts.ini text; `source` names the file in errors.
    public static func parse(_ text: String, source: String) throws(InputError) -> HostsFile {
        var reader = HostsReader(source: source)
        for line in TextInput.lines(text) {
            try reader.read(line)
        }
        return try reader.finish()
    }
}

/// The state of reading hosts.ini line by line, before the cross-line checks of `finish`.
private struct HostsReader {
    let source: String
    var replicas: [String: HostsFile.Replica] = [:]
    var addressOwners: [HostsFile.Address: (owner: String, line: Int)] = [:]
    var clientAddress: HostsFile.Address?
    var clientLine: Int?
    var members: [String: (index: Int, names: [String], line: Int)] = [:]
    /// The `AC` and `RC` lines: replicas added to and removed from each cluster, with the line of each.
    var added: [String: [(name: String, line: Int)]] = [:]
    var removed: [String: [(name: String, line: Int)]] = [:]
    /// The `DC` lines: clusters drained and removed, with their replicas.
    var drained: [String: (names: [String], line: Int)] = [:]
    var contacts: [String: (contact: String, line: Int)] = [:]
    var allNames: (names: [String], line: Int)?
    var clusterOfReplica: [String: (cluster: String, line: Int)] = [:]

    init(source: String) {
        self.source = source
    }

    func error(_ line: Int, _ message: String) -> InputError {
        InputError(source: source, line: line, message: message)
    }

    mutating func read(_ numberedLine: NumberedLine) throws(InputError) {
        var content = numberedLine.text
        if let hash = content.firstIndex(of: "#") {
            content = content[..<hash]
        }
        content = TextInput.trimmed(content)
        if content.isEmpty { return }
        let line = numberedLine.number
        guard let dash = content.firstIndex(of: "-") else {
            throw error(line, "line \"\(content)\" has no \"-\"; write KEY-VALUE, like S1-localhost:6001")
        }
        let key = TextInput.trimmed(content[..<dash])
        let value = TextInput.trimmed(content[content.index(after: dash)...])
        if key == "client" {
            try readClient(value, line: line)
        } else if key == "all" {
            try readAll(value, line: line)
        } else if Self.isNumbered(key, prefix: "EC") {
            try readMembers(key: key, value: value, line: line)
        } else if Self.isNumbered(key, prefix: "AC") || Self.isNumbered(key, prefix: "RC") {
            try readChange(key: key, value: value, line: line)
        } else if Self.isNumbered(key, prefix: "DC") {
            try readDrained(key: key, value: value, line: line)
        } else if Self.isNumbered(key, prefix: "C") {
            try readContact(key: key, value: value, line: line)
        } else if Self.isNumbered(key, prefix: "S") {
            try readReplica(key: key, value: value, line: line)
        } else if key.isEmpty {
            throw error(line, "line \"\(content)\" has nothing before \"-\"; write KEY-VALUE, like S1-localhost:6001")
        } else {
            throw error(
                line,
                "unknown key \"\(key)\"; expected S<n> (a replica), C<n> (a cluster's contact), "
                    + "EC<n> (a cluster's members), AC<n> or RC<n> (replicas added to or removed from it), DC<n> (a "
                    + "drained cluster), client or all"
            )
        }
    }

    /// Whether `key` is `prefix` followed by a digit: meant as a numbered name, even a badly numbered one.
    static func isNumbered(_ key: Substring, prefix: String) -> Bool {
        key.hasPrefix(prefix) && key.dropFirst(prefix.count).first.map { $0.isASCII && $0.isNumber } == true
    }

    mutating func readReplica(key: Substring, value: Substring, line: Int) throws(InputError) {
        guard let index = TextInput.nameNumber(key, prefix: "S") else {
            throw error(line, "bad replica name \"\(key)\"; replica names are S followed by a number from 1, like S1")
        }
        let name = String(key)
        if let earlier = replicas[name] {
            throw error(line, "replica \(name) is defined twice (first at line \(earlier.line))")
        }
        let address = try readAddress(value, owner: "replica \(name)", line: line)
        try claim(address, owner: name, line: line)
        replicas[name] = HostsFile.Replica(name: name, index: index, host: address.host, port: address.port, line: line)
    }

    mutating func readClient(_ value: Substring, line: Int) throws(InputError) {
        if let clientLine {
            throw error(line, "the client address is given twice (first at line \(clientLine))")
        }
        let address = try readAddress(value, owner: "the client", line: line)
        try claim(address, owner: "the client", line: line)
        clientAddress = address
        clientLine = line
    }

    /// Replicas may share an address (a node hosting them), checked against their clusters in `finish`; the client
    /// shares none.
    mutating func claim(_ address: HostsFile.Address, owner: String, line: Int) throws(InputError) {
        let isClient = owner == "the client"
        if let earlier = addressOwners[address], isClient || earlier.owner == "the client" {
            throw error(
                line,
                "address \(address) of \(owner) is already used by \(earlier.owner) (line \(earlier.line)); "
                    + "the client needs a host:port no replica uses"
            )
        }
        if addressOwners[address] == nil || isClient { addressOwners[address] = (owner, line) }
    }

    func readAddress(_ value: Substring, owner: String, line: Int) throws(InputError) -> HostsFile.Address {
        let example = "write host:port, like localhost:6001"
        if value.isEmpty {
            throw error(line, "\(owner) has no address; \(example)")
        }
        // The last colon separates the port, so a bracketed IPv6 host like [::1] keeps its colons.
        guard let colon = value.lastIndex(of: ":") else {
            throw error(line, "\(owner) address \"\(value)\" has no port; \(example)")
        }
        let host = TextInput.trimmed(value[..<colon])
        let portText = TextInput.trimmed(value[value.index(after: colon)...])
        if host.isEmpty {
            throw error(line, "\(owner) address \"\(value)\" has no host; \(example)")
        }
        if host.contains(where: \.isWhitespace) {
            throw error(line, "\(owner) host \"\(host)\" contains a space; \(example)")
        }
        guard TextInput.isDigits(portText) else {
            throw error(line, "\(owner) port \"\(portText)\" is not a number; write a port from 1 to 65535")
        }
        guard let port = TextInput.unsignedValue(portText), (1...65535).contains(port) else {
            throw error(line, "\(owner) port \(portText) is out of range; write a port from 1 to 65535")
        }
        return HostsFile.Address(host: String(host), port: Int(port))
    }

    mutating func readContact(key: Substring, value: Substring, line: Int) throws(InputError) {
        guard TextInput.nameNumber(key, prefix: "C") != nil else {
            throw error(line, "bad cluster name \"\(key)\"; cluster names are C followed by a number from 1, like C1")
        }
        let cluster = String(key)
        if let earlier = contacts[cluster] {
            throw error(line, "the contact of cluster \(cluster) is given twice (first at line \(earlier.line))")
        }
        guard TextInput.nameNumber(value, prefix: "S") != nil else {
            throw error(
                line, "contact \"\(value)\" of cluster \(cluster) is not a replica name; write one replica, like C1-S1")
        }
        contacts[cluster] = (String(value), line)
    }

    mutating func readMembers(key: Substring, value: Substring, line: Int) throws(InputError) {
        guard let index = TextInput.nameNumber(key, prefix: "EC") else {
            throw error(
                line,
                "bad cluster name \"\(key)\"; a members line starts with EC and a cluster number from 1, "
                    + "like EC1-S1:S2:S3"
            )
        }
        let cluster = "C\(index)"
        if let earlier = members[cluster] {
            throw error(line, "the members of cluster \(cluster) are given twice (first at line \(earlier.line))")
        }
        let names = try readNames(value, what: "cluster \(cluster)", example: "EC\(index)-S1:S2:S3", line: line)
        for name in names {
            if let earlier = clusterOfReplica[name] {
                throw error(
                    line,
                    "replica \(name) is in cluster \(earlier.cluster) (line \(earlier.line)) and in cluster "
                        + "\(cluster); a replica belongs to one cluster"
                )
            }
        }
        if names.count % 2 == 0 {
            throw error(
                line, "cluster \(cluster) has \(names.count) members; Paxos needs an odd number (3, 5, ...)")
        }
        for name in names {
            clusterOfReplica[name] = (cluster, line)
        }
        members[cluster] = (index, names, line)
    }

    /// An `AC<n>` line (replicas added to cluster C<n>) or an `RC<n>` line (replicas removed from it).
    mutating func readChange(key: Substring, value: Substring, line: Int) throws(InputError) {
        let adds = key.hasPrefix("A")
        let example = adds ? "AC1-S10" : "RC1-S3"
        guard let index = TextInput.nameNumber(key.dropFirst(), prefix: "C") else {
            throw error(
                line,
                "bad cluster name \"\(key)\"; a line of replicas \(adds ? "added to" : "removed from") a cluster starts "
                    + "with \(key.prefix(2)) and a cluster number from 1, like \(example)")
        }
        let cluster = "C\(index)"
        let names = try readNames(value, what: "\(key)", example: example, line: line)
        if adds {
            for name in names {
                if let earlier = clusterOfReplica[name] {
                    throw error(
                        line,
                        "replica \(name) is in cluster \(earlier.cluster) (line \(earlier.line)) and is added to "
                            + "cluster \(cluster); a replica belongs to one cluster, and ids are never reused")
                }
                clusterOfReplica[name] = (cluster, line)
            }
            added[cluster, default: []] += names.map { ($0, line) }
        } else {
            for name in names {
                if let earlier = removed.values.joined().first(where: { $0.name == name }) {
                    throw error(line, "replica \(name) is removed twice (first at line \(earlier.line))")
                }
            }
            removed[cluster, default: []] += names.map { ($0, line) }
        }
    }

    mutating func readDrained(key: Substring, value: Substring, line: Int) throws(InputError) {
        guard let index = TextInput.nameNumber(key.dropFirst(), prefix: "C") else {
            throw error(
                line,
                "bad cluster name \"\(key)\"; a drained cluster's line starts with DC and a cluster number from 1, "
                    + "like DC2-S4:S5:S6")
        }
        let cluster = "C\(index)"
        if let earlier = drained[cluster] {
            throw error(line, "cluster \(cluster) is drained twice (first at line \(earlier.line))")
        }
        drained[cluster] = (try readNames(value, what: "\(key)", example: "DC2-S4:S5:S6", line: line), line)
    }

    mutating func readAll(_ value: Substring, line: Int) throws(InputError) {
        if let allNames {
            throw error(line, "\"all\" is given twice (first at line \(allNames.line))")
        }
        allNames = (try readNames(value, what: "\"all\"", example: "all-S1:S2:S3", line: line), line)
    }

    /// The replica names of a `:`-separated list, like `S1:S2:S3`.
    func readNames(_ value: Substring, what: String, example: String, line: Int) throws(InputError) -> [String] {
        if value.isEmpty {
            throw error(line, "\(what) lists no replicas; write \(example)")
        }
        var names: [String] = []
        for item in value.split(separator: ":", omittingEmptySubsequences: false) {
            let name = TextInput.trimmed(item)
            if name.isEmpty {
                throw error(
                    line, "\(what) list \"\(value)\" has an empty name; separate replica names with one \":\"")
            }
            guard TextInput.nameNumber(name, prefix: "S") != nil else {
                throw error(line, "\(what) names \"\(name)\", which is not a replica name; write \(example)")
            }
            if names.contains(String(name)) {
                throw error(line, "\(what) lists \(name) twice")
            }
            names.append(String(name))
        }
        return names
    }

    /// The checks that need every line: names used before or after they are defined.
    func finish() throws(InputError) -> HostsFile {
        guard !replicas.isEmpty else {
            throw InputError(source: source, message: "no replicas defined; add lines like S1-localhost:6001")
        }
        // Collect every problem and report the earliest line, so the order of lines in the file decides.
        var problems: [InputError] = []
        for (cluster, entry) in members {
            for name in entry.names where replicas[name] == nil {
                problems.append(
                    error(
                        entry.line,
                        "cluster \(cluster) member \(name) is not defined; add a line like \(name)-host:port"))
            }
        }
        for (cluster, entry) in drained {
            if let reused = members[cluster]?.line ?? contacts[cluster]?.line {
                problems.append(
                    error(
                        reused,
                        "cluster \(cluster) was drained and removed (line \(entry.line)); cluster names are never "
                            + "used again"))
            }
            for name in entry.names {
                if let reused = replicas[name] {
                    problems.append(
                        error(
                            reused.line,
                            "replica \(name) belonged to cluster \(cluster), drained and removed (line \(entry.line)); "
                                + "replica ids are never reused"))
                }
            }
        }
        for (cluster, entries) in added where members[cluster] == nil {
            problems.append(
                error(
                    entries[0].line,
                    "replicas are added to cluster \(cluster), which has no members line; add a line like "
                        + "E\(cluster)-S1:S2:S3 or remove this one"))
        }
        for (cluster, entries) in removed {
            for entry in entries where clusterOfReplica[entry.name]?.cluster != cluster {
                problems.append(
                    error(
                        entry.line,
                        "replica \(entry.name) is removed from cluster \(cluster), but it is not one of its members "
                            + "or added replicas"))
            }
            let all = (members[cluster]?.names ?? []) + (added[cluster] ?? []).map(\.name)
            if let last = entries.last, !all.isEmpty, all.allSatisfy({ name in entries.contains { $0.name == name } }) {
                problems.append(
                    error(last.line, "every replica of cluster \(cluster) is removed; a cluster keeps at least one"))
            }
        }
        for entries in added.values {
            for entry in entries where replicas[entry.name] == nil {
                problems.append(
                    error(
                        entry.line,
                        "added replica \(entry.name) is not defined; add a line like \(entry.name)-host:port"))
            }
        }
        for (cluster, entry) in contacts {
            if let clusterMembers = members[cluster] {
                let all = clusterMembers.names + (added[cluster] ?? []).map(\.name)
                if !all.contains(entry.contact) {
                    problems.append(
                        error(
                            entry.line,
                            "contact \(entry.contact) of cluster \(cluster) is not one of its members ("
                                + all.joined(separator: ", ") + ")"))
                }
            } else {
                problems.append(
                    error(
                        entry.line,
                        "cluster \(cluster) has a contact but no members; add a line like "
                            + "E\(cluster)-S1:S2:S3 or remove this one"))
            }
        }
        if let allNames {
            let defined = replicas.values.sorted { $0.index < $1.index }.map(\.name)
            let missing = defined.filter { !allNames.names.contains($0) }
            let extra = allNames.names.filter { replicas[$0] == nil }
            var parts: [String] = []
            if !missing.isEmpty {
                parts.append("it leaves out \(TextInput.list(missing))")
            }
            if !extra.isEmpty {
                parts.append("it names \(TextInput.list(extra)), which no S line defines")
            }
            if !parts.isEmpty {
                problems.append(
                    error(
                        allNames.line, "\"all\" does not match the replicas defined: " + parts.joined(separator: "; ")))
            }
        }
        // A node hosts at most one replica of a cluster: two on one address would be one process voting twice.
        for (cluster, entry) in members {
            var seen: [HostsFile.Address: HostsFile.Replica] = [:]
            let names = entry.names + (added[cluster] ?? []).map(\.name)
            for replica in names.compactMap({ replicas[$0] }).sorted(by: { $0.line < $1.line }) {
                if let earlier = seen[replica.address] {
                    problems.append(
                        error(
                            replica.line,
                            "replica \(replica.name) has the address \(replica.address) of \(earlier.name) (line "
                                + "\(earlier.line)), and both are members of cluster C\(entry.index) (line \(entry.line)); "
                                + "replicas sharing an address are one node, which hosts at most one replica of a cluster"
                        ))
                }
                seen[replica.address] = replica
            }
        }
        for replica in replicas.values where clusterOfReplica[replica.name] == nil {
            problems.append(
                error(
                    replica.line,
                    "replica \(replica.name) is in no cluster; list it in a members line like EC1-S1:S2:S3"))
        }
        if let first = problems.min(by: { ($0.line ?? 0, $0.message) < ($1.line ?? 0, $1.message) }) {
            throw first
        }

        let clusters = members.map { name, entry in
            var cluster = HostsFile.Cluster(
                name: name, index: entry.index, members: entry.names, added: (added[name] ?? []).map(\.name),
                removed: (removed[name] ?? []).map(\.name), contact: entry.names[0], line: entry.line)
            // A contact that was removed gives way to the first replica still reachable.
            let contact = contacts[name]?.contact ?? entry.names[0]
            cluster.contact = cluster.reachable.contains(contact) ? contact : cluster.reachable[0]
            return cluster
        }
        return HostsFile(
            source: source,
            replicas: replicas.values.sorted { $0.index < $1.index },
            clusters: clusters.sorted { $0.index < $1.index },
            clientAddress: clientAddress,
            drained: drained.mapValues(\.names)
        )
    }
}
