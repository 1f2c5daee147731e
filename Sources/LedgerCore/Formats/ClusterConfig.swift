import Paxos

/// The settings of one cluster, read from a YAML file like `configs/C1.yaml` and validated.
///
/// Invariants (checked by `validate`): `replicaCount` is odd and in 1...`Limits.replicaCountMax`;
/// `replicaStart >= 1`; the replica ports `portBase ..< portBase + replicaCount` and, when
/// `metricsPortBase != 0`, the metrics ports `metricsPortBase ..< metricsPortBase + replicaCount`, and when
/// `peerPortBase != 0` the peer ports likewise, lie in 1...65535 and are all distinct; `0 <= balanceInitial`, `balanceMin <= balanceInitial`;
/// `paxos.tick <= paxos.leaderPingInterval < paxos.leaderTimeout <= paxos.consensusTimeout` and, unless off,
/// `paxos.tick <= paxos.laggardFlush < paxos.leaderPingInterval`, every duration in 1ms...`Limits.durationMax`;
/// batching limits in 1...their ceilings.
public struct ClusterConfig: Sendable, Equatable {
    /// How much a replica logs, from the most (`trace`) to the least (`critical`).
    public enum LogLevel: String, Sendable, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    /// The Paxos timers of every replica of the cluster, in time and, for snapshots, in slots.
    ///
    /// Invariant (of a validated config): `tick <= leaderPingInterval < leaderTimeout <= consensusTimeout`, and
    /// `tick <= laggardFlush < leaderPingInterval` unless `laggardFlush` is nil; `snapshotIntervalSlots` in
    /// `Limits.snapshotIntervalSlotsRange`.
    public struct PaxosTimings: Sendable, Equatable {
        /// How long a follower waits without hearing the leader before it starts Phase 1.
        public var leaderTimeout: Duration
        /// How often the leader sends a heartbeat.
        public var leaderPingInterval: Duration
        /// How long a request may wait for its value to be chosen before it is answered `noQuorum`.
        public var consensusTimeout: Duration
        /// The period of the replica's timer; every other duration is counted in ticks.
        public var tick: Duration
        /// How late the leader sends new slots to its laggards, the peers beyond the majority it waits for (thrifty
        /// Phase 2); nil (`off`) sends every slot to every peer at once. Longer means fewer messages and fsyncs on a
        /// laggard, which then trails the leader by as much.
        public var laggardFlush: Duration?
        /// Applied slots between two snapshots (`paxos.snapshot_interval`): a replica then truncates its log, and a
        /// peer further behind than the log reaches is sent a snapshot.
        public var snapshotIntervalSlots: UInt64

        public init(
            leaderTimeout: Duration, leaderPingInterval: Duration, consensusTimeout: Duration, tick: Duration,
            laggardFlush: Duration?, snapshotIntervalSlots: UInt64 = Paxos.Limits.snapshotIntervalSlots
        ) {
            self.leaderTimeout = leaderTimeout
            self.leaderPingInterval = leaderPingInterval
            self.consensusTimeout = consensusTimeout
            self.tick = tick
            self.laggardFlush = laggardFlush
            self.snapshotIntervalSlots = snapshotIntervalSlots
        }

        /// The values used for keys the file leaves out. A laggard flush of 50 ms is a few ticks, so a laggard's
        /// Phase2a carries several slots and costs one fsync for them all, and still far below the leader timeout.
        public static let defaults = PaxosTimings(
            leaderTimeout: .milliseconds(1000), leaderPingInterval: .milliseconds(200),
            consensusTimeout: .milliseconds(3000), tick: .milliseconds(10), laggardFlush: .milliseconds(50))
    }

    /// How much work the leader groups together.
    ///
    /// Invariant (of a validated config): both values are in 1...their ceilings in `Limits`.
    public struct Batching: Sendable, Equatable {
        /// The most commands one Paxos slot carries.
        public var batchSizeMax: Int
        /// The most slots the leader has proposed but not yet seen chosen.
        public var slotsInFlightMax: Int

        public init(batchSizeMax: Int, slotsInFlightMax: Int) {
            self.batchSizeMax = batchSizeMax
            self.slotsInFlightMax = slotsInFlightMax
        }

        /// The values used for keys the file leaves out.
        public static let defaults = Batching(
            batchSizeMax: Paxos.Limits.batchSizeMax, slotsInFlightMax: Paxos.Limits.slotsInFlightMax)
    }

    /// How the cluster's connections are secured (`tls:`).
    public enum TLS: Sendable, Equatable {
        /// Plaintext: anyone who reaches a port may call anything. Only an explicit `tls: off` gives it.
        case off
        /// Mutual TLS on every listener and every outgoing connection, with the deployment's CA.
        case mutual(Files)

        /// How the setting reads in messages: `off`, or the files.
        public var summary: String {
            switch self {
            case .off: return "off"
            case .mutual(let files): return "(ca \(files.ca), certificate \(files.certificate), key \(files.key))"
            }
        }

        /// Where the CA certificate and each identity's certificate and private key are. In `certificate` and `key`,
        /// `{name}` stands for the identity: a replica (`S1`), `client` or `operator`.
        public struct Files: Sendable, Equatable {
            public var ca: String
            public var certificate: String
            public var key: String

            public init(ca: String, certificate: String, key: String) {
                self.ca = ca
                self.certificate = certificate
                self.key = key
            }

            /// The files `shardctl certs` writes by default, used for keys the config leaves out.
            public static let defaults = Files(
                ca: "certs/ca.pem", certificate: "certs/{name}.pem", key: "certs/{name}-key.pem")

            /// The placeholder of `certificate` and `key`.
            public static let placeholder = "{name}"

            /// The certificate of identity `name`.
            public func certificate(of name: String) -> String {
                certificate.replacing(Self.placeholder, with: name)
            }

            /// The private key of identity `name`.
            public func key(of name: String) -> String { key.replacing(Self.placeholder, with: name) }
        }
    }

    /// Bounds on configured values, each with the reason for its value.
    public enum Limits {
        // Each Phase 2 round waits for a majority; beyond 15 replicas every commit pays more messages
        // and fsyncs with no failure any deployment plans for.
        public static let replicaCountMax = 15
        // Replica names S<n> have at most six digits (see hosts.ini), which also keeps index arithmetic
        // far from overflow.
        public static let replicaIndexMax = TextInput.nameNumberMax
        // A timeout longer than an hour is a unit mistake (s for ms), and an hour keeps every duration
        // far inside Duration's and the tick counter's range.
        public static let durationMax: Duration = .seconds(3600)
        // A slot's batch is stored and sent whole, and the codec and the wire refuse a slot of more than
        // Paxos.Limits.batchSizeMax requests (CodecLimits.requestsPerSlotMax, WireLimits.requestsPerSlotMax):
        // a larger configured batch would be proposed, then crash the replica that stores it.
        public static let batchSizeMaxCeiling = Paxos.Limits.batchSizeMax
        // Every slot in flight holds its batch in memory on every replica; past 1,024 the pipeline only
        // adds queueing delay, it cannot add throughput once the disk's group commit is saturated.
        public static let slotsInFlightMaxCeiling = 1_024
        // A snapshot costs a state encoding and an fsync: every 16 slots at least, or compaction would be most of a
        // replica's work; a million slots of log is a few GB of memory on every replica, the most a log may hold.
        public static let snapshotIntervalSlotsRange: ClosedRange<UInt64> = 16...1_000_000
    }

    /// The file the settings came from, as the user named it; used in messages.
    public var source: String
    /// The cluster's name, `C<n>`.
    public var clusterName: String
    /// How many replicas the cluster has (`replicas.count`).
    public var replicaCount: Int
    /// The index of the first replica (`replicas.start`): 1 means S1.
    public var replicaStart: Int
    /// The port of the first replica (`replicas.subnet`); replica `S<start + k>` listens on `portBase + k`.
    public var portBase: Int
    /// Where the replicas keep their SQLite files (`data_dir`), as written.
    public var dataDirectory: String
    /// The path of the shard catalog (`catalog`), as written.
    public var catalogPath: String
    /// How much the replicas log (`log_level`).
    public var logLevel: LogLevel
    /// No balance may go below this (`min_balance`).
    public var balanceMin: Int64
    /// The balance of every account when the cluster creates it (`initial_balance`).
    public var balanceInitial: Int64
    /// The Prometheus port of the first replica (`metrics_port`); replica `S<start + k>` serves on
    /// `metricsPortBase + k`; 0 turns the endpoints off.
    public var metricsPortBase: Int
    /// The address every replica's metrics endpoint binds (`metrics_address`): an IPv4 or IPv6 address or a host
    /// name. Nil binds `metricsAddressDefault`, the loopback address, as `/metrics` is plain HTTP without the mutual
    /// TLS of every other port: only the replica's own machine may read it unless the file says otherwise.
    public var metricsAddress: String?
    /// The port on which the first replica takes its peers' Paxos messages as frames (`peer_port`); replica
    /// `S<start + k>` listens on `peerPortBase + k`, on its host. 0: the peers send on the replica port's gRPC stream
    /// instead.
    public var peerPortBase: Int
    /// Whether the test-only disconnect and reconnect calls are allowed (`test_controls`).
    public var testControlsEnabled: Bool
    /// The Paxos timers (`paxos:`).
    public var paxos: PaxosTimings
    /// The batching limits (`batching:`).
    public var batching: Batching
    /// Transport security (`tls:`); mutual TLS with the default files when the file leaves it out.
    public var tls: TLS
    /// The line of every key the file wrote, by dotted path (`"paxos.tick"`); used in messages.
    public var keyLines: [String: Int]

    /// Settings given in code; they are trusted as they are. User input goes through `validate`.
    public init(
        source: String, clusterName: String, replicaCount: Int, replicaStart: Int, portBase: Int,
        dataDirectory: String, catalogPath: String, logLevel: LogLevel = .info, balanceMin: Int64 = 0,
        balanceInitial: Int64 = 10, metricsPortBase: Int = 0, metricsAddress: String? = nil, peerPortBase: Int = 0,
        testControlsEnabled: Bool = false, paxos: PaxosTimings = .defaults, batching: Batching = .defaults,
        tls: TLS = .mutual(.defaults), keyLines: [String: Int] = [:]
    ) {
        self.source = source
        self.clusterName = clusterName
        self.replicaCount = replicaCount
        self.replicaStart = replicaStart
        self.portBase = portBase
        self.dataDirectory = dataDirectory
        self.catalogPath = catalogPath
        self.logLevel = logLevel
        self.balanceMin = balanceMin
        self.balanceInitial = balanceInitial
        self.metricsPortBase = metricsPortBase
        self.metricsAddress = metricsAddress
        self.peerPortBase = peerPortBase
        self.testControlsEnabled = testControlsEnabled
        self.paxos = paxos
        self.batching = batching
        self.tls = tls
        self.keyLines = keyLines
    }

    /// The indexes of the cluster's replicas: `replicaStart ..< replicaStart + replicaCount`.
    public var replicaIndexes: Range<Int> { replicaStart..<(replicaStart + replicaCount) }

    /// The names of the cluster's replicas, in order: `["S1", "S2", "S3"]`.
    public var replicaNames: [String] { replicaIndexes.map { "S\($0)" } }

    /// The port replica `S<index>` listens on, or nil when it cannot be in this cluster (below `replicas.start`). A
    /// replica added later (hosts.ini's `AC` lines) follows the rule of the first ones: `S<start+k>` on `subnet + k`.
    public func port(ofReplica index: Int) -> Int? {
        index >= replicaStart ? portBase + (index - replicaStart) : nil
    }

    /// The Prometheus port of replica `S<index>`, or nil when metrics are off or it is not in this cluster.
    public func metricsPort(ofReplica index: Int) -> Int? {
        guard metricsPortBase != 0, index >= replicaStart else { return nil }
        return metricsPortBase + (index - replicaStart)
    }

    /// The peer port of replica `S<index>`, or nil when the cluster has none (`peer_port`) or it is not in this
    /// cluster.
    public func peerPort(ofReplica index: Int) -> Int? {
        guard peerPortBase != 0, index >= replicaStart else { return nil }
        return peerPortBase + (index - replicaStart)
    }

    /// Where the metrics endpoints bind when the file names no `metrics_address`: the loopback address, so a
    /// replica's plain-HTTP metrics stay on its own machine.
    public static let metricsAddressDefault = "127.0.0.1"

    /// The address the metrics endpoints bind: `metricsAddress`, or the loopback address.
    public var metricsHost: String { metricsAddress ?? Self.metricsAddressDefault }

    /// The Paxos configuration of replica `S<index>`: every duration in ticks, rounded up to at least one.
    public func paxosConfiguration(ofReplica index: Int) -> Configuration {
        func ticks(_ duration: Duration) -> Tick { Tick(max(1, (duration / paxos.tick).rounded(.up))) }
        let heartbeat = ticks(paxos.leaderPingInterval)
        return Configuration(
            me: ReplicaID(index),
            members: replicaIndexes.map { ReplicaID($0) },
            leaderTimeoutTicks: ticks(paxos.leaderTimeout),
            heartbeatIntervalTicks: heartbeat,
            consensusTimeoutTicks: ticks(paxos.consensusTimeout),
            batchSizeMax: batching.batchSizeMax,
            slotsInFlightMax: batching.slotsInFlightMax,
            snapshotIntervalSlots: paxos.snapshotIntervalSlots,
            // Below the heartbeat, as a laggard must hear from the leader between heartbeats; a written
            // `laggard_flush` is already, the default may be cut. Off (0) when the heartbeat is one tick.
            laggardFlushTicks: paxos.laggardFlush.map { min(ticks($0), heartbeat - 1) } ?? 0)
    }

    /// Validates a configuration tree; `source` names the file in errors.
    public static func validate(_ node: ConfigNode, source: String) throws(InputError) -> ClusterConfig {
        var reader = ClusterConfigReader(source: source)
        return try reader.read(node)
    }

    /// Refuses a config that disagrees with hosts.ini, the authority on addresses: its cluster must be
    /// defined there, with the same members (count and starting index) and the same ports, and no
    /// metrics port may take an address hosts.ini gives to someone else.
    public func check(against hosts: HostsFile) throws(InputError) {
        func error(_ key: String, _ message: String) -> InputError {
            InputError(source: source, line: keyLines[key], message: message)
        }
        guard let cluster = hosts.cluster(named: clusterName) else {
            throw error(
                "cluster",
                "cluster \(clusterName) is not in \(hosts.source), which defines \(TextInput.list(hosts.clusterNames))")
        }
        let hostsPlace = "\(hosts.source):\(cluster.line)"
        let hostsMembers = cluster.members.joined(separator: ", ")
        guard cluster.members.count == replicaCount else {
            throw error(
                "replicas.count",
                "replicas.count is \(replicaCount) but \(hostsPlace) gives cluster \(clusterName) "
                    + "\(cluster.members.count) members (\(hostsMembers))")
        }
        guard Set(cluster.members) == Set(replicaNames) else {
            throw error(
                "replicas.start",
                "replicas.start is \(replicaStart), so cluster \(clusterName) would be "
                    + "\(replicaNames.joined(separator: ", ")), but \(hostsPlace) gives it \(hostsMembers)")
        }
        // The first members and the replicas added since, which follow the same port rules.
        let indexes = cluster.replicas.compactMap { TextInput.nameNumber(Substring($0), prefix: "S") }
        for index in indexes {
            // Every member is a replica of hosts.ini: `HostsFile.parse` refuses undefined members.
            guard index >= replicaStart else {
                throw error(
                    "replicas.start",
                    "replicas.start is \(replicaStart), so S\(index), added to \(clusterName) in \(hosts.source), "
                        + "would have no port; a replica added to a cluster has an index of at least replicas.start")
            }
            guard let replica = hosts.replica(named: "S\(index)"), let port = port(ofReplica: index) else { continue }
            if replica.port != port {
                throw error(
                    "replicas.subnet",
                    "replicas.subnet is \(portBase), so \(replica.name) would listen on port \(port), but "
                        + "\(hosts.source):\(replica.line) gives \(replica.name) \(replica.address)")
            }
        }
        let kinds: [(key: String, base: Int, port: (Int) -> Int?, serves: String)] = [
            ("metrics_port", metricsPortBase, metricsPort(ofReplica:), "serve metrics"),
            ("peer_port", peerPortBase, peerPort(ofReplica:), "take peer messages"),
        ]
        for kind in kinds {
            for index in indexes {
                guard let replica = hosts.replica(named: "S\(index)"), let port = kind.port(index) else { continue }
                let address = HostsFile.Address(host: replica.host, port: port)
                let owner: String
                if let other = hosts.replicas.first(where: { $0.address == address }) {
                    owner = "\(hosts.source):\(other.line) gives to \(other.name)"
                } else if hosts.clientAddress == address {
                    owner = "\(hosts.source) gives to the client"
                } else {
                    continue
                }
                throw error(
                    kind.key,
                    "\(kind.key) is \(kind.base), so \(replica.name) would \(kind.serves) on \(address), which "
                        + owner)
            }
        }
    }
}

/// Reads a `ConfigNode` tree into a `ClusterConfig`, remembering where each key was written.
private struct ClusterConfigReader {
    let source: String
    var keyLines: [String: Int] = [:]
    /// The text of each scalar as written, by dotted path, to quote it back in messages.
    var written: [String: String] = [:]

    init(source: String) {
        self.source = source
    }

    /// The keys each mapping accepts, by the dotted path of the mapping ("" is the file itself).
    static let keys: [String: [String]] = [
        "": [
            "cluster", "replicas", "data_dir", "catalog", "log_level", "min_balance", "initial_balance",
            "metrics_port", "metrics_address", "peer_port", "test_controls", "paxos", "batching", "tls",
        ],
        "tls": ["ca", "certificate", "key"],
        "replicas": ["count", "start", "subnet"],
        "paxos": [
            "leader_timeout", "leader_ping_interval", "consensus_timeout", "tick", "laggard_flush", "snapshot_interval",
        ],
        "batching": ["batch_size_max", "slots_in_flight_max"],
    ]

    /// The keys without a default, in the order they are reported missing.
    static let required = [
        "cluster", "replicas", "replicas.count", "replicas.start", "replicas.subnet", "data_dir", "catalog",
    ]

    /// A valid value of every key, for the hints in messages.
    static let examples: [String: String] = [
        "cluster": "C1", "replicas": "{count: 3, start: 1, subnet: 6001}", "replicas.count": "3",
        "replicas.start": "1", "replicas.subnet": "6001", "data_dir": "data/C1", "catalog": "data/catalog.sqlite",
        "log_level": "info", "min_balance": "0", "initial_balance": "10", "metrics_port": "9101",
        "metrics_address": "127.0.0.1", "peer_port": "7101",
        "test_controls": "true", "paxos.leader_timeout": "1000ms", "paxos.leader_ping_interval": "200ms",
        "paxos.consensus_timeout": "3000ms", "paxos.tick": "10ms", "paxos.laggard_flush": "50ms or off",
        "paxos.snapshot_interval": "10000",
        "batching.batch_size_max": "512",
        "batching.slots_in_flight_max": "16", "tls": "{ca: certs/ca.pem, certificate: certs/{name}.pem, ...} or off",
        "tls.ca": "certs/ca.pem", "tls.certificate": "certs/{name}.pem", "tls.key": "certs/{name}-key.pem",
    ]

    func error(_ line: Int?, _ message: String) -> InputError {
        InputError(source: source, line: line, message: message)
    }

    /// The line of `path`'s key, for errors about its value.
    func line(_ path: String) -> Int? {
        keyLines[path]
    }

    static func describe(_ node: ConfigNode) -> String {
        switch node {
        case .scalar(let text, _): return text.isEmpty ? "empty" : "\"\(text)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    mutating func read(_ node: ConfigNode) throws(InputError) -> ClusterConfig {
        let top = try mapping(node, path: "")
        var nested: [String: [String: ConfigNode]] = [:]
        for name in ["replicas", "paxos", "batching"] {
            if let value = top[name] {
                nested[name] = try mapping(value, path: name)
            }
        }
        for path in Self.required {
            let parts = path.split(separator: ".").map(String.init)
            let present = parts.count == 1 ? top[parts[0]] != nil : nested[parts[0]]?[parts[1]] != nil
            if !present {
                let example = Self.examples[path] ?? ""
                let key = parts[parts.count - 1]
                throw error(
                    parts.count == 1 ? nil : line(parts[0]),
                    "missing required key \"\(path)\"; add it, like \(key): \(example)")
            }
        }
        let replicas = nested["replicas", default: [:]]
        let paxosNode = nested["paxos", default: [:]]
        let batchingNode = nested["batching", default: [:]]

        let clusterName = try text(top["cluster"]!, path: "cluster")
        guard TextInput.nameNumber(Substring(clusterName), prefix: "C") != nil else {
            throw error(
                line("cluster"),
                "cluster \"\(clusterName)\" is not a cluster name; write C followed by a number from 1, like C1")
        }
        let replicaCount = try wholeNumber(replicas["count"]!, path: "replicas.count")
        let replicaStart = try wholeNumber(replicas["start"]!, path: "replicas.start")
        let portBase = try wholeNumber(replicas["subnet"]!, path: "replicas.subnet")
        let dataDirectory = try text(top["data_dir"]!, path: "data_dir")
        let catalogPath = try text(top["catalog"]!, path: "catalog")
        var logLevel = ClusterConfig.LogLevel.info
        if let node = top["log_level"] {
            let written = try text(node, path: "log_level")
            guard let level = ClusterConfig.LogLevel(rawValue: written.lowercased()) else {
                let levels = ClusterConfig.LogLevel.allCases.map(\.rawValue).joined(separator: ", ")
                throw error(line("log_level"), "log_level \"\(written)\" is not a log level; write one of \(levels)")
            }
            logLevel = level
        }
        let balanceMin = try top["min_balance"].map { node throws(InputError) in
            try wholeNumber(node, path: "min_balance", allowsNegative: true)
        }
        let balanceInitial = try top["initial_balance"].map { node throws(InputError) in
            try wholeNumber(node, path: "initial_balance", allowsNegative: true)
        }
        let metricsPortBase = try top["metrics_port"].map { node throws(InputError) in
            try wholeNumber(node, path: "metrics_port")
        }
        let peerPortBase = try top["peer_port"].map { node throws(InputError) in
            try wholeNumber(node, path: "peer_port")
        }
        let metricsAddress = try top["metrics_address"].map { node throws(InputError) in
            try host(node, path: "metrics_address")
        }
        var testControlsEnabled = false
        if let node = top["test_controls"] {
            let written = try text(node, path: "test_controls")
            switch written.lowercased() {
            case "true": testControlsEnabled = true
            case "false": testControlsEnabled = false
            default:
                throw error(line("test_controls"), "test_controls \"\(written)\" is not true or false")
            }
        }
        let defaults = ClusterConfig.PaxosTimings.defaults
        var paxos = defaults
        if let node = paxosNode["leader_timeout"] {
            paxos.leaderTimeout = try duration(node, path: "paxos.leader_timeout")
        }
        if let node = paxosNode["leader_ping_interval"] {
            paxos.leaderPingInterval = try duration(node, path: "paxos.leader_ping_interval")
        }
        if let node = paxosNode["consensus_timeout"] {
            paxos.consensusTimeout = try duration(node, path: "paxos.consensus_timeout")
        }
        if let node = paxosNode["tick"] {
            paxos.tick = try duration(node, path: "paxos.tick")
        }
        if let node = paxosNode["laggard_flush"] {
            let off = (try? text(node, path: "paxos.laggard_flush"))?.lowercased() == "off"
            paxos.laggardFlush = off ? nil : try duration(node, path: "paxos.laggard_flush")
        }
        if let node = paxosNode["snapshot_interval"] {
            let slots = try wholeNumber(node, path: "paxos.snapshot_interval")
            let range = ClusterConfig.Limits.snapshotIntervalSlotsRange
            guard range.contains(UInt64(slots)) else {
                throw error(
                    line("paxos.snapshot_interval"),
                    "paxos.snapshot_interval is \(slots) slots; write \(range.lowerBound) to \(range.upperBound)")
            }
            paxos.snapshotIntervalSlots = UInt64(slots)
        }
        let tls = try top["tls"].map { node throws(InputError) in try self.tls(node) } ?? .mutual(.defaults)
        var batching = ClusterConfig.Batching.defaults
        if let node = batchingNode["batch_size_max"] {
            batching.batchSizeMax = Int(try wholeNumber(node, path: "batching.batch_size_max"))
        }
        if let node = batchingNode["slots_in_flight_max"] {
            batching.slotsInFlightMax = Int(try wholeNumber(node, path: "batching.slots_in_flight_max"))
        }

        let config = ClusterConfig(
            source: source, clusterName: clusterName, replicaCount: Int(replicaCount), replicaStart: Int(replicaStart),
            portBase: Int(portBase), dataDirectory: dataDirectory, catalogPath: catalogPath, logLevel: logLevel,
            balanceMin: balanceMin ?? 0, balanceInitial: balanceInitial ?? 10,
            metricsPortBase: Int(metricsPortBase ?? 0), metricsAddress: metricsAddress,
            peerPortBase: Int(peerPortBase ?? 0), testControlsEnabled: testControlsEnabled, paxos: paxos,
            batching: batching, tls: tls, keyLines: keyLines)
        try checkReplicas(config)
        try checkMetricsAddress(config)
        try checkBalances(config)
        try checkTimings(config.paxos)
        try checkBatching(config.batching)
        return config
    }

    /// `tls: off`, `tls: on` (the default files), or a mapping of file paths; a certificate or key path without
    /// `{name}` would give every identity the same certificate, so it is refused.
    mutating func tls(_ node: ConfigNode) throws(InputError) -> ClusterConfig.TLS {
        if case .scalar = node {
            let written = try text(node, path: "tls")
            switch written.lowercased() {
            case "off": return .off
            case "on": return .mutual(.defaults)
            default:
                throw error(
                    line("tls"),
                    "tls \"\(written)\" is not off, on or a mapping; write tls: off, or the files like "
                        + "tls: {ca: certs/ca.pem, certificate: certs/{name}.pem, key: certs/{name}-key.pem}")
            }
        }
        let entries = try mapping(node, path: "tls")
        var files = ClusterConfig.TLS.Files.defaults
        if let node = entries["ca"] { files.ca = try text(node, path: "tls.ca") }
        if let node = entries["certificate"] { files.certificate = try text(node, path: "tls.certificate") }
        if let node = entries["key"] { files.key = try text(node, path: "tls.key") }
        for (path, value) in [("tls.certificate", files.certificate), ("tls.key", files.key)]
        where !value.contains(ClusterConfig.TLS.Files.placeholder) {
            throw error(
                line(path),
                "\(path) \"\(value)\" has no \(ClusterConfig.TLS.Files.placeholder); write where each identity's "
                    + "file is, like \(Self.examples[path]!) (S1, client, operator)")
        }
        return .mutual(files)
    }

    // MARK: Structure

    /// The values of a mapping by key, after refusing anything but a mapping, unknown keys and repeated keys.
    mutating func mapping(_ node: ConfigNode, path: String) throws(InputError) -> [String: ConfigNode] {
        let allowed = Self.keys[path] ?? []
        guard case .mapping(let entries, _) = node else {
            if path.isEmpty {
                throw error(
                    node.line,
                    "the file holds \(Self.describe(node)); expected settings, one per line, like cluster: C1")
            }
            throw error(
                line(path) ?? node.line,
                "\(path) is \(Self.describe(node)); expected a mapping with \(TextInput.list(allowed))")
        }
        var values: [String: ConfigNode] = [:]
        for entry in entries {
            let full = path.isEmpty ? entry.key : "\(path).\(entry.key)"
            if let first = keyLines[full] {
                throw error(entry.keyLine, "duplicate key \"\(full)\" (first at line \(first))")
            }
            guard allowed.contains(entry.key) else {
                throw error(
                    entry.keyLine, "unknown key \"\(full)\"; expected one of: \(allowed.joined(separator: ", "))")
            }
            keyLines[full] = entry.keyLine
            values[entry.key] = entry.value
        }
        return values
    }

    /// The text of a scalar, trimmed; refuses a mapping, a list or an empty value.
    mutating func text(_ node: ConfigNode, path: String) throws(InputError) -> String {
        let example = Self.examples[path] ?? ""
        guard case .scalar(let text, let scalarLine) = node else {
            throw error(line(path) ?? node.line, "\(path) is \(Self.describe(node)); expected a value, like \(example)")
        }
        let trimmed = String(TextInput.trimmed(text))
        if trimmed.isEmpty {
            throw error(line(path) ?? scalarLine, "\(path) is empty; write a value, like \(example)")
        }
        written[path] = trimmed
        return trimmed
    }

    /// A whole number written with digits only (and a leading `-` when `allowsNegative`).
    mutating func wholeNumber(_ node: ConfigNode, path: String, allowsNegative: Bool = false) throws(InputError)
        -> Int64
    {
        let written = Substring(try text(node, path: path))
        let example = Self.examples[path] ?? ""
        let negative = written.first == "-"
        let digits = written.first == "-" || written.first == "+" ? written.dropFirst() : written
        guard TextInput.isDigits(digits) else {
            throw error(line(path), "\(path) \"\(written)\" is not a whole number; write digits only, like \(example)")
        }
        if written.first == "+" {
            throw error(line(path), "\(path) \"\(written)\" has a sign; write digits only, like \(example)")
        }
        if negative && !allowsNegative {
            throw error(line(path), "\(path) \"\(written)\" is negative; write digits only, like \(example)")
        }
        guard let magnitude = TextInput.unsignedValue(digits), magnitude <= UInt64(Int64.max) else {
            throw error(line(path), "\(path) \"\(written)\" is too large; the largest is \(Int64.max)")
        }
        return negative ? -Int64(magnitude) : Int64(magnitude)
    }

    /// A duration written as a whole number and a unit, `ms` or `s`: `1000ms`, `2s`.
    mutating func duration(_ node: ConfigNode, path: String) throws(InputError) -> Duration {
        let written = Substring(try text(node, path: path))
        if TextInput.isDigits(written) {
            throw error(line(path), "\(path) \"\(written)\" has no unit; write a unit: \(written)ms or \(written)s")
        }
        let digits = written.prefix { $0.isASCII && $0.isNumber }
        let unit = written[digits.endIndex...]
        guard !digits.isEmpty, unit == "ms" || unit == "s" else {
            throw error(
                line(path),
                "\(path) \"\(written)\" is not a duration; write a whole number and a unit: 1000ms or 1s")
        }
        let limit = ClusterConfigReader.milliseconds(ClusterConfig.Limits.durationMax)
        let scale: UInt64 = unit == "s" ? 1000 : 1
        guard let value = TextInput.unsignedValue(digits), value <= UInt64(limit) / scale else {
            throw error(
                line(path), "\(path) \"\(written)\" is longer than the limit of \(limit / 1000)s; write a shorter one")
        }
        if value == 0 {
            throw error(line(path), "\(path) \"\(written)\" is zero; write at least 1ms")
        }
        return .milliseconds(Int64(value * scale))
    }

    /// A host to bind: an IPv4 address (`127.0.0.1`, `0.0.0.0` for every interface), an IPv6 address without
    /// brackets (`::1`, `::`), or a host name (`localhost`). Anything else would only fail when the replica binds,
    /// after the cluster has started, so it is refused here with the file's line.
    mutating func host(_ node: ConfigNode, path: String) throws(InputError) -> String {
        let written = try text(node, path: path)
        // hosts.ini writes host:port, so a port here is a likely slip; `::1` alone ends in digits too, hence the
        // brackets an IPv6 address needs before a port.
        if let colon = written.lastIndex(of: ":"), TextInput.isDigits(written[written.index(after: colon)...]) {
            let address = written[..<colon]
            let unbracketed = address.dropFirst().dropLast()
            let bracketed = address.hasPrefix("[") && address.hasSuffix("]") && Self.isIPv6Address(unbracketed)
            if bracketed || (!address.contains(":") && Self.isIPv4OrHostName(address)) {
                throw error(
                    line(path),
                    "\(path) \"\(written)\" has a port; write only the address, "
                        + "\(bracketed ? "\"\(unbracketed)\"" : String(address)), as metrics_port gives the ports")
            }
        }
        if written.hasPrefix("[") && written.hasSuffix("]") {
            throw error(
                line(path),
                "\(path) \"\(written)\" has brackets; write the address without them (in quotes if it has colons), "
                    + "like \"\(written.dropFirst().dropLast())\"")
        }
        if written.contains(":") && written.allSatisfy({ $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") }) {
            guard Self.isIPv6Address(Substring(written)) else {
                throw error(
                    line(path),
                    "\(path) \"\(written)\" is not an IPv6 address; write one like ::1, or \"::\" in quotes")
            }
            return written
        }
        if let last = written.split(separator: ".", omittingEmptySubsequences: false).last, TextInput.isDigits(last) {
            // A host name's last label is never all digits (RFC 3696), so this was meant as an IPv4 address.
            guard Self.isIPv4Address(Substring(written)) else {
                throw error(
                    line(path),
                    "\(path) \"\(written)\" is not an IPv4 address; write four numbers from 0 to 255, like 127.0.0.1")
            }
            return written
        }
        guard Self.isIPv4OrHostName(Substring(written)) else {
            throw error(
                line(path),
                "\(path) \"\(written)\" is not an address or a host name (letters, digits, hyphens and dots); "
                    + "write one like 127.0.0.1 (this machine only), 0.0.0.0 (every interface), ::1 or localhost")
        }
        return written
    }

    /// An IPv4 address, or a host name whose last label is not all digits (RFC 3696), so that neither can pass for
    /// the other.
    static func isIPv4OrHostName(_ text: Substring) -> Bool {
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        guard let last = labels.last, !TextInput.isDigits(last) else { return isIPv4Address(text) }
        return isHostName(labels)
    }

    /// Four decimal numbers from 0 to 255 joined by dots, without leading zeros (which some parsers read as octal).
    static func isIPv4Address(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { part in
                part.count <= 3 && (part.count == 1 || part.first != "0")
                    && (TextInput.unsignedValue(part).map { $0 <= 255 } ?? false)
            }
    }

    /// Eight groups of one to four hexadecimal digits joined by colons, or fewer with one `::` standing for the
    /// missing zero groups; the last two groups may be written as an IPv4 address (`::ffff:127.0.0.1`). A zone
    /// (`%eth0`) is refused: it names an interface of one machine, not an address every replica has.
    static func isIPv6Address(_ text: Substring) -> Bool {
        guard let gap = text.firstRange(of: "::") else { return ipv6Groups(text, endsAddress: true) == 8 }
        let head = text[..<gap.lowerBound]
        let tail = text[gap.upperBound...]
        if tail.contains("::") { return false }
        guard let headGroups = head.isEmpty ? 0 : ipv6Groups(head, endsAddress: false),
            let tailGroups = tail.isEmpty ? 0 : ipv6Groups(tail, endsAddress: true)
        else { return false }
        return headGroups + tailGroups <= 7
    }

    /// How many 16-bit groups `part` holds, colon-separated, or nil when it is not such groups. When `endsAddress`,
    /// its last field may be an IPv4 address, which counts two.
    static func ipv6Groups(_ part: Substring, endsAddress: Bool) -> Int? {
        let fields = part.split(separator: ":", omittingEmptySubsequences: false)
        var count = 0
        for (position, field) in fields.enumerated() {
            if endsAddress && position == fields.count - 1 && field.contains(".") {
                guard isIPv4Address(field) else { return nil }
                count += 2
            } else {
                guard (1...4).contains(field.count), field.allSatisfy({ $0.isASCII && $0.isHexDigit }) else {
                    return nil
                }
                count += 1
            }
        }
        return count
    }

    /// Labels of 1 to 63 ASCII letters, digits and hyphens, neither starting nor ending with a hyphen, at most 253
    /// characters in all (RFC 1123).
    static func isHostName(_ labels: [Substring]) -> Bool {
        let length = labels.reduce(labels.count - 1) { $0 + $1.count }
        return length <= 253
            && labels.allSatisfy { label in
                (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                    && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
            }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    // MARK: Rules across keys

    func checkReplicas(_ config: ClusterConfig) throws(InputError) {
        let count = config.replicaCount
        if count % 2 == 0 {
            throw error(
                line("replicas.count"), "replicas.count is \(count); Paxos needs an odd number (3, 5, ...)")
        }
        if count > ClusterConfig.Limits.replicaCountMax {
            throw error(
                line("replicas.count"),
                "replicas.count is \(count); a cluster has at most \(ClusterConfig.Limits.replicaCountMax) replicas")
        }
        if config.replicaStart < 1 {
            throw error(
                line("replicas.start"), "replicas.start is \(config.replicaStart); replica indexes start at 1 (S1)")
        }
        let lastIndex = config.replicaStart + count - 1
        if lastIndex > ClusterConfig.Limits.replicaIndexMax {
            throw error(
                line("replicas.start"),
                "replicas.start is \(config.replicaStart), so the last replica would be S\(lastIndex); replica "
                    + "indexes end at \(ClusterConfig.Limits.replicaIndexMax)")
        }
        try checkPorts(base: config.portBase, count: count, path: "replicas.subnet")
        // Every port a replica takes: its replica port, then its metrics and peer ports when they are on.
        var taken = (0..<count).map {
            (port: config.portBase + $0, what: "the replica port of S\(config.replicaStart + $0)")
        }
        for (path, base, serves, what) in [
            ("metrics_port", config.metricsPortBase, "serve metrics", "metrics"),
            ("peer_port", config.peerPortBase, "take peer messages", "peer"),
        ] where base != 0 {
            try checkPorts(base: base, count: count, path: path)
            for offset in 0..<count {
                let port = base + offset
                if let owner = taken.first(where: { $0.port == port }) {
                    throw error(
                        line(path),
                        "\(path) is \(base), so S\(config.replicaStart + offset) would \(serves) on port \(port), "
                            + "\(owner.what); replica, metrics and peer ports must all be distinct")
                }
                taken.append((port, "the \(what) port of S\(config.replicaStart + offset)"))
            }
        }
    }

    /// An address for metrics that are off is a mistake: the operator meant them on, or the key is left over.
    func checkMetricsAddress(_ config: ClusterConfig) throws(InputError) {
        guard let address = config.metricsAddress, config.metricsPortBase == 0 else { return }
        throw error(
            line("metrics_address"),
            "metrics_address is \(address) but metrics are off (metrics_port is \(shown("metrics_port", 0))); "
                + "set metrics_port, like metrics_port: 9101, or remove metrics_address")
    }

    func checkPorts(base: Int, count: Int, path: String) throws(InputError) {
        guard (1...65535).contains(base) else {
            let zeroHint =
                switch path {
                case "metrics_port": " (or 0 to turn metrics off)"
                case "peer_port": " (or 0 to send peer messages on the replica port)"
                default: ""
                }
            throw error(line(path), "\(path) is \(base); write a port from 1 to 65535\(zeroHint)")
        }
        let last = base + count - 1
        if last > 65535 {
            throw error(
                line(path),
                "\(path) is \(base), so \(count) replicas need ports \(base) to \(last); ports end at 65535")
        }
    }

    func checkBalances(_ config: ClusterConfig) throws(InputError) {
        if config.balanceInitial < 0 {
            throw error(
                line("initial_balance"),
                "initial_balance is \(config.balanceInitial); accounts start with 0 or more")
        }
        if config.balanceInitial < config.balanceMin {
            throw error(
                line("initial_balance") ?? line("min_balance"),
                "initial_balance (\(shown("initial_balance", config.balanceInitial))) is below min_balance "
                    + "(\(shown("min_balance", config.balanceMin))); accounts must start at or above the minimum")
        }
    }

    /// A value as the user wrote it, or the default marked as such.
    func shown(_ path: String, _ value: some CustomStringConvertible) -> String {
        written[path] ?? "\(value), the default"
    }

    func shown(_ path: String, _ duration: Duration) -> String {
        written[path] ?? "\(Self.milliseconds(duration))ms, the default"
    }

    func checkTimings(_ paxos: ClusterConfig.PaxosTimings) throws(InputError) {
        func complain(
            _ first: String, _ firstValue: Duration, _ rule: String, _ second: String, _ secondValue: Duration
        )
            -> InputError
        {
            error(
                line("paxos.\(first)") ?? line("paxos.\(second)") ?? line("paxos"),
                "paxos.\(first) (\(shown("paxos.\(first)", firstValue))) \(rule) paxos.\(second) "
                    + "(\(shown("paxos.\(second)", secondValue)))")
        }
        if paxos.leaderPingInterval >= paxos.leaderTimeout {
            throw complain(
                "leader_ping_interval", paxos.leaderPingInterval, "must be shorter than", "leader_timeout",
                paxos.leaderTimeout)
        }
        if paxos.consensusTimeout < paxos.leaderTimeout {
            throw complain(
                "consensus_timeout", paxos.consensusTimeout, "must be at least", "leader_timeout", paxos.leaderTimeout)
        }
        if paxos.tick > paxos.leaderPingInterval {
            throw complain(
                "tick", paxos.tick, "must not be longer than", "leader_ping_interval", paxos.leaderPingInterval)
        }
        // A laggard hears from the leader between heartbeats, or its election timer would count the gap. The default
        // is not checked: `paxosConfiguration(ofReplica:)` shortens it to fit.
        if let flush = paxos.laggardFlush, written["paxos.laggard_flush"] != nil {
            if flush >= paxos.leaderPingInterval {
                throw complain(
                    "laggard_flush", flush, "must be shorter than", "leader_ping_interval", paxos.leaderPingInterval)
            }
            if flush < paxos.tick {
                throw complain("laggard_flush", flush, "must not be shorter than", "tick", paxos.tick)
            }
        }
    }

    func checkBatching(_ batching: ClusterConfig.Batching) throws(InputError) {
        let limits = [
            ("batching.batch_size_max", batching.batchSizeMax, ClusterConfig.Limits.batchSizeMaxCeiling),
            ("batching.slots_in_flight_max", batching.slotsInFlightMax, ClusterConfig.Limits.slotsInFlightMaxCeiling),
        ]
        for (path, value, ceiling) in limits {
            if value < 1 {
                throw error(line(path), "\(path) is \(value); write at least 1")
            }
            if value > ceiling {
                throw error(line(path), "\(path) is \(value); the limit is \(ceiling)")
            }
        }
    }
}
