/// The seed shard map, read from `tests-data/shards.csv`: which cluster holds each range of accounts.
///
/// Invariants (checked by `parse`): at least one shard; shard names `D<n>` are unique; every range
/// has `first <= last`; no two ranges overlap; `shards` is sorted by the first account of its range,
/// which `cluster(of:)` relies on for its binary search. Accounts in no range belong to no cluster.
///
/// The format is CSV with an optional header, spaces around fields, CRLF or LF and quotes allowed:
/// ```
/// Shard, Cluster, Range
/// D1, C1, 1-1000
/// ```
public struct ShardMap: Sendable, Equatable {
    /// One shard: a range of accounts and the cluster that holds them.
    ///
    /// Invariant: `name` is `D<n>`, `cluster` is `C<n>`, `line` is 1-based.
    public struct Shard: Sendable, Equatable {
        public var name: String
        public var cluster: String
        public var accounts: ClosedRange<AccountID>
        /// The 1-based line of the row that defines the shard.
        public var line: Int

        public init(name: String, cluster: String, accounts: ClosedRange<AccountID>, line: Int) {
            self.name = name
            self.cluster = cluster
            self.accounts = accounts
            self.line = line
        }
    }

    /// The file the rows came from, as the user named it; used in messages.
    public var source: String
    /// Every shard, sorted by the first account of its range.
    public var shards: [Shard]

    public init(source: String, shards: [Shard]) {
        self.source = source
        self.shards = shards.sorted { $0.accounts.lowerBound < $1.accounts.lowerBound }
    }

    /// The shard whose range holds `account`, if any.
    public func shard(of account: AccountID) -> Shard? {
        // The last shard starting at or before `account` is the only one that can hold it.
        var low = 0
        var high = shards.count
        while low < high {
            let middle = (low + high) / 2
            if shards[middle].accounts.lowerBound <= account {
                low = middle + 1
            } else {
                high = middle
            }
        }
        guard low > 0, shards[low - 1].accounts.contains(account) else { return nil }
        return shards[low - 1]
    }

    /// The cluster that holds `account`, if any shard does.
    public func cluster(of account: AccountID) -> String? {
        shard(of: account)?.cluster
    }

    /// The ranges of accounts `cluster` holds, in account order.
    public func accounts(of cluster: String) -> [ClosedRange<AccountID>] {
        shards.filter { $0.cluster == cluster }.map(\.accounts)
    }

    /// The shard called `name` (like `"D2"`), if defined.
    public func shard(named name: String) -> Shard? {
        shards.first { $0.name == name }
    }

    /// Refuses shards assigned to clusters that hosts.ini does not define.
    public func check(against hosts: HostsFile) throws(InputError) {
        for shard in shards.sorted(by: { $0.line < $1.line }) where hosts.cluster(named: shard.cluster) == nil {
            throw InputError(
                source: source, line: shard.line,
                message:
                    "shard \(shard.name) names cluster \(shard.cluster), which \(hosts.source) does not define; "
                    + "it defines \(TextInput.list(hosts.clusterNames))")
        }
    }

    /// Reads shards.csv text; `source` names the file in errors.
    public static func parse(_ text: String, source: String) throws(InputError) -> ShardMap {
        var records = try CSVReader.records(text, source: source)
        let empty = InputError(source: source, message: "no shards defined; write rows like D1, C1, 1-1000")
        guard let first = records.first else { throw empty }
        if first.fields[0].lowercased() == "shard" {
            guard first.fields.map({ $0.lowercased() }) == ["shard", "cluster", "range"] else {
                throw InputError(
                    source: source, line: first.line,
                    message: "header \"\(first.fields.joined(separator: ", "))\" should be Shard, Cluster, Range")
            }
            records.removeFirst()
        }
        guard !records.isEmpty else { throw empty }

        var shards: [Shard] = []
        var lineOfShard: [String: Int] = [:]
        for record in records {
            let line = record.line
            func error(_ message: String) -> InputError {
                InputError(source: source, line: line, message: message)
            }
            guard record.fields.count == 3 else {
                let count = record.fields.count
                throw error(
                    "row has \(count) field\(count == 1 ? "" : "s"); expected 3: Shard, Cluster, Range, "
                        + "like D1, C1, 1-1000")
            }
            let name = record.fields[0]
            guard TextInput.nameNumber(Substring(name), prefix: "D") != nil else {
                throw error("bad shard name \"\(name)\"; shard names are D followed by a number from 1, like D1")
            }
            if let earlier = lineOfShard[name] {
                throw error("shard \(name) is defined twice (first at line \(earlier))")
            }
            let cluster = record.fields[1]
            guard TextInput.nameNumber(Substring(cluster), prefix: "C") != nil else {
                throw error(
                    "bad cluster name \"\(cluster)\"; cluster names are C followed by a number from 1, like C1")
            }
            let accounts = try parseRange(record.fields[2], source: source, line: line)
            lineOfShard[name] = line
            shards.append(Shard(name: name, cluster: cluster, accounts: accounts, line: line))
        }

        let map = ShardMap(source: source, shards: shards)
        // Sorted by first account, any overlap shows up between neighbors; report the one written last.
        var overlaps: [InputError] = []
        for (left, right) in zip(map.shards, map.shards.dropFirst())
        where right.accounts.lowerBound <= left.accounts.upperBound {
            let (earlier, later) = left.line < right.line ? (left, right) : (right, left)
            overlaps.append(
                InputError(
                    source: source, line: later.line,
                    message:
                        "range \(rangeText(later.accounts)) of \(later.name) overlaps range "
                        + "\(rangeText(earlier.accounts)) of \(earlier.name) (line \(earlier.line)); "
                        + "ranges must not overlap"))
        }
        if let first = overlaps.min(by: { ($0.line ?? 0) < ($1.line ?? 0) }) {
            throw first
        }
        return map
    }

    static func rangeText(_ accounts: ClosedRange<AccountID>) -> String {
        "\(accounts.lowerBound)-\(accounts.upperBound)"
    }

    /// A range written `first-last` with plain account numbers, like `1-1000`.
    static func parseRange(_ text: String, source: String, line: Int) throws(InputError) -> ClosedRange<AccountID> {
        func error(_ message: String) -> InputError {
            InputError(source: source, line: line, message: message)
        }
        if text.isEmpty {
            throw error("range is empty; write first-last, like 1-1000")
        }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        if parts.count == 1 {
            throw error("range \"\(text)\" has no \"-\"; write first-last, like 1-1000")
        }
        guard parts.count == 2 else {
            throw error("range \"\(text)\" has more than one \"-\"; write first-last with plain numbers, like 1-1000")
        }
        let first: AccountID
        let last: AccountID
        do {
            first = try AccountID.parse(parts[0], source: source, line: line)
            last = try AccountID.parse(parts[1], source: source, line: line)
        } catch {
            throw InputError(source: source, line: line, message: "range \"\(text)\": \(error.message)")
        }
        guard first <= last else {
            throw error("range \"\(text)\" is backwards; write the smaller account id first, like 1-1000")
        }
        return first...last
    }
}
