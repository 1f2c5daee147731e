import LedgerCore
import Paxos
import Testing

@Suite("Cluster configs")
struct ClusterConfigTests {
    /// The required keys only; every other key takes its default.
    static let minimal = """
        cluster: C1
        replicas:
          count: 3
          start: 1
          subnet: 6001
        data_dir: data/C1
        catalog: data/catalog.sqlite

        """

    static let full = """
        cluster: C2
        replicas:
          count: 5
          start: 4          # S4
          subnet: 7004
        data_dir: data/C2
        catalog: data/catalog.sqlite
        log_level: Debug
        min_balance: -50
        initial_balance: 100
        metrics_port: 9104
        peer_port: 8004
        test_controls: true
        paxos:
          leader_timeout: 2s
          leader_ping_interval: 500ms
          consensus_timeout: 5s
          tick: 20ms
          laggard_flush: 100ms
          snapshot_interval: 5000
        batching:
          batch_size_max: 256
          slots_in_flight_max: 32

        """

    static func validate(_ text: String) throws(InputError) -> ClusterConfig {
        try ClusterConfig.validate(configTree(text), source: "C1.yaml")
    }

    @Test("defaults fill every optional key")
    func defaults() throws {
        let config = try Self.validate(Self.minimal)
        #expect(config.clusterName == "C1")
        #expect(config.replicaCount == 3)
        #expect(config.replicaStart == 1)
        #expect(config.portBase == 6001)
        #expect(config.dataDirectory == "data/C1")
        #expect(config.catalogPath == "data/catalog.sqlite")
        #expect(config.logLevel == .info)
        #expect(config.balanceMin == 0)
        #expect(config.balanceInitial == 10)
        #expect(config.metricsPortBase == 0)
        #expect(config.testControlsEnabled == false)
        #expect(config.paxos == ClusterConfig.PaxosTimings.defaults)
        #expect(config.paxos.leaderTimeout == .milliseconds(1000))
        #expect(config.paxos.leaderPingInterval == .milliseconds(200))
        #expect(config.paxos.consensusTimeout == .milliseconds(3000))
        #expect(config.paxos.tick == .milliseconds(10))
        #expect(config.paxos.laggardFlush == .milliseconds(50))
        #expect(config.batching == ClusterConfig.Batching(batchSizeMax: 512, slotsInFlightMax: 16))
        #expect(config.tls == .mutual(.defaults))
        #expect(config.replicaNames == ["S1", "S2", "S3"])
        #expect(config.port(ofReplica: 3) == 6003)
        // A replica added later (hosts.ini's AC lines) follows the same rule; none is below replicas.start.
        #expect(config.port(ofReplica: 10) == 6010)
        #expect(config.port(ofReplica: 0) == nil)
        #expect(config.metricsPort(ofReplica: 1) == nil)
        #expect(config.peerPort(ofReplica: 1) == nil)
        #expect(config.keyLines["replicas.subnet"] == 5)
        #expect(config.source == "C1.yaml")
    }

    @Test("every key given")
    func everyKey() throws {
        let config = try Self.validate(Self.full)
        #expect(config.clusterName == "C2")
        #expect(config.replicaNames == ["S4", "S5", "S6", "S7", "S8"])
        #expect(config.port(ofReplica: 8) == 7008)
        #expect(config.metricsPort(ofReplica: 5) == 9105)
        #expect(config.peerPort(ofReplica: 5) == 8005)
        #expect(config.peerPort(ofReplica: 12) == 8012)
        #expect(config.peerPort(ofReplica: 3) == nil)
        #expect(config.logLevel == .debug)
        #expect(config.balanceMin == -50)
        #expect(config.balanceInitial == 100)
        #expect(config.testControlsEnabled)
        #expect(
            config.paxos
                == ClusterConfig.PaxosTimings(
                    leaderTimeout: .seconds(2), leaderPingInterval: .milliseconds(500),
                    consensusTimeout: .seconds(5), tick: .milliseconds(20), laggardFlush: .milliseconds(100),
                    snapshotIntervalSlots: 5_000))
        #expect(config.paxosConfiguration(ofReplica: 4).snapshotIntervalSlots == 5_000)
        #expect(config.batching == ClusterConfig.Batching(batchSizeMax: 256, slotsInFlightMax: 32))
    }

    static let topKeys =
        "cluster, replicas, data_dir, catalog, log_level, min_balance, initial_balance, metrics_port, metrics_address, peer_port, "
        + "test_controls, "
        + "paxos, batching, tls"
    static let paxosKeys =
        "leader_timeout, leader_ping_interval, consensus_timeout, tick, laggard_flush, snapshot_interval"

    static let badConfigs: [(String, String)] = [
        (minimal + "colour: blue", "C1.yaml:8: unknown key \"colour\"; expected one of: \(topKeys)"),
        (
            minimal.replacing("  subnet: 6001", with: "  subnet: 6001\n  size: 3"),
            "C1.yaml:6: unknown key \"replicas.size\"; expected one of: count, start, subnet"
        ),
        (minimal + "paxos:\n  timeout: 1s", "C1.yaml:9: unknown key \"paxos.timeout\"; expected one of: \(paxosKeys)"),
        (
            minimal + "batching:\n  batch_size: 1",
            "C1.yaml:9: unknown key \"batching.batch_size\"; expected one of: batch_size_max, slots_in_flight_max"
        ),
        (minimal + "cluster: C2", "C1.yaml:8: duplicate key \"cluster\" (first at line 1)"),
        (
            minimal + "paxos:\n  tick: 10ms\n  tick: 20ms",
            "C1.yaml:10: duplicate key \"paxos.tick\" (first at line 9)"
        ),
        (
            minimal.replacing("cluster: C1\n", with: ""),
            "C1.yaml: missing required key \"cluster\"; add it, like cluster: C1"
        ),
        (
            minimal.replacing("catalog: data/catalog.sqlite\n", with: ""),
            "C1.yaml: missing required key \"catalog\"; add it, like catalog: data/catalog.sqlite"
        ),
        (
            minimal.replacing("data_dir: data/C1\n", with: ""),
            "C1.yaml: missing required key \"data_dir\"; add it, like data_dir: data/C1"
        ),
        (
            "cluster: C1\ndata_dir: d\ncatalog: c\n",
            "C1.yaml: missing required key \"replicas\"; add it, like replicas: {count: 3, start: 1, subnet: 6001}"
        ),
        (
            minimal.replacing("  subnet: 6001\n", with: ""),
            "C1.yaml:2: missing required key \"replicas.subnet\"; add it, like subnet: 6001"
        ),
        (
            minimal.replacing("  count: 3\n", with: ""),
            "C1.yaml:2: missing required key \"replicas.count\"; add it, like count: 3"
        ),
        (
            "cluster: C1\nreplicas: 3\ndata_dir: d\ncatalog: c\n",
            "C1.yaml:2: replicas is \"3\"; expected a mapping with count, start and subnet"
        ),
        (
            "cluster: C1\nreplicas:\ndata_dir: d\ncatalog: c\n",
            "C1.yaml:2: replicas is empty; expected a mapping with count, start and subnet"
        ),
        (
            minimal.replacing("  count: 3", with: "  count:\n    value: 3"),
            "C1.yaml:3: replicas.count is a mapping; expected a value, like 3"
        ),
        (
            minimal + "paxos: fast",
            "C1.yaml:8: paxos is \"fast\"; expected a mapping with leader_timeout, leader_ping_interval, "
                + "consensus_timeout, tick, laggard_flush and snapshot_interval"
        ),
        (
            minimal.replacing("data_dir: data/C1", with: "data_dir:"),
            "C1.yaml:6: data_dir is empty; write a value, like data/C1"
        ),
        (
            minimal.replacing("cluster: C1", with: "cluster: X1"),
            "C1.yaml:1: cluster \"X1\" is not a cluster name; write C followed by a number from 1, like C1"
        ),
        (
            minimal.replacing("count: 3", with: "count: three"),
            "C1.yaml:3: replicas.count \"three\" is not a whole number; write digits only, like 3"
        ),
        (
            minimal.replacing("count: 3", with: "count: 1e3"),
            "C1.yaml:3: replicas.count \"1e3\" is not a whole number; write digits only, like 3"
        ),
        (
            minimal.replacing("count: 3", with: "count: 0x10"),
            "C1.yaml:3: replicas.count \"0x10\" is not a whole number; write digits only, like 3"
        ),
        (
            minimal.replacing("count: 3", with: "count: 3.0"),
            "C1.yaml:3: replicas.count \"3.0\" is not a whole number; write digits only, like 3"
        ),
        (
            minimal.replacing("count: 3", with: "count: +3"),
            "C1.yaml:3: replicas.count \"+3\" has a sign; write digits only, like 3"
        ),
        (
            minimal.replacing("count: 3", with: "count: -3"),
            "C1.yaml:3: replicas.count \"-3\" is negative; write digits only, like 3"
        ),
        (
            minimal.replacing("count: 3", with: "count: 99999999999999999999"),
            "C1.yaml:3: replicas.count \"99999999999999999999\" is too large; the largest is 9223372036854775807"
        ),
        (
            minimal.replacing("count: 3", with: "count: 2"),
            "C1.yaml:3: replicas.count is 2; Paxos needs an odd number (3, 5, ...)"
        ),
        (
            minimal.replacing("count: 3", with: "count: 0"),
            "C1.yaml:3: replicas.count is 0; Paxos needs an odd number (3, 5, ...)"
        ),
        (
            minimal.replacing("count: 3", with: "count: 17"),
            "C1.yaml:3: replicas.count is 17; a cluster has at most 15 replicas"
        ),
        (
            minimal.replacing("start: 1", with: "start: 0"),
            "C1.yaml:4: replicas.start is 0; replica indexes start at 1 (S1)"
        ),
        (
            minimal.replacing("start: 1", with: "start: 999999"),
            "C1.yaml:4: replicas.start is 999999, so the last replica would be S1000001; replica indexes end at 999999"
        ),
        (
            minimal.replacing("subnet: 6001", with: "subnet: 0"),
            "C1.yaml:5: replicas.subnet is 0; write a port from 1 to 65535"
        ),
        (
            minimal.replacing("subnet: 6001", with: "subnet: 70000"),
            "C1.yaml:5: replicas.subnet is 70000; write a port from 1 to 65535"
        ),
        (
            minimal.replacing("subnet: 6001", with: "subnet: 65534"),
            "C1.yaml:5: replicas.subnet is 65534, so 3 replicas need ports 65534 to 65536; ports end at 65535"
        ),
        (
            minimal + "metrics_port: 6002",
            "C1.yaml:8: metrics_port is 6002, so S1 would serve metrics on port 6002, the replica port of S2; replica, "
                + "metrics and peer ports must all be distinct"
        ),
        (
            minimal + "metrics_port: 5999",
            "C1.yaml:8: metrics_port is 5999, so S3 would serve metrics on port 6001, the replica port of S1; replica, "
                + "metrics and peer ports must all be distinct"
        ),
        (
            minimal + "metrics_port: 9101\npeer_port: 9102",
            "C1.yaml:9: peer_port is 9102, so S1 would take peer messages on port 9102, the metrics port of S2; "
                + "replica, metrics and peer ports must all be distinct"
        ),
        (
            minimal + "peer_port: 70000",
            "C1.yaml:8: peer_port is 70000; write a port from 1 to 65535 (or 0 to send peer messages on the replica "
                + "port)"
        ),
        (
            minimal + "metrics_port: 70000",
            "C1.yaml:8: metrics_port is 70000; write a port from 1 to 65535 (or 0 to turn metrics off)"
        ),
        (
            minimal + "metrics_port: 65535",
            "C1.yaml:8: metrics_port is 65535, so 3 replicas need ports 65535 to 65537; ports end at 65535"
        ),
        (
            minimal + "log_level: verbose",
            "C1.yaml:8: log_level \"verbose\" is not a log level; write one of trace, debug, info, notice, warning, "
                + "error, critical"
        ),
        (minimal + "test_controls: yes", "C1.yaml:8: test_controls \"yes\" is not true or false"),
        (minimal + "initial_balance: -5", "C1.yaml:8: initial_balance is -5; accounts start with 0 or more"),
        (
            minimal + "initial_balance: 1.5",
            "C1.yaml:8: initial_balance \"1.5\" is not a whole number; write digits only, like 10"
        ),
        (
            minimal + "min_balance: 20",
            "C1.yaml:8: initial_balance (10, the default) is below min_balance (20); accounts must start at or above "
                + "the minimum"
        ),
        (
            minimal + "min_balance: 20\ninitial_balance: 15",
            "C1.yaml:9: initial_balance (15) is below min_balance (20); accounts must start at or above the minimum"
        ),
        (
            minimal + "paxos:\n  tick: 10",
            "C1.yaml:9: paxos.tick \"10\" has no unit; write a unit: 10ms or 10s"
        ),
        (
            minimal + "paxos:\n  leader_timeout: 1000",
            "C1.yaml:9: paxos.leader_timeout \"1000\" has no unit; write a unit: 1000ms or 1000s"
        ),
        (
            minimal + "paxos:\n  tick: 1.5s",
            "C1.yaml:9: paxos.tick \"1.5s\" is not a duration; write a whole number and a unit: 1000ms or 1s"
        ),
        (
            minimal + "paxos:\n  tick: 10 ms",
            "C1.yaml:9: paxos.tick \"10 ms\" is not a duration; write a whole number and a unit: 1000ms or 1s"
        ),
        (
            minimal + "paxos:\n  tick: 1m",
            "C1.yaml:9: paxos.tick \"1m\" is not a duration; write a whole number and a unit: 1000ms or 1s"
        ),
        (
            minimal + "paxos:\n  tick: -5ms",
            "C1.yaml:9: paxos.tick \"-5ms\" is not a duration; write a whole number and a unit: 1000ms or 1s"
        ),
        (minimal + "paxos:\n  tick: 0ms", "C1.yaml:9: paxos.tick \"0ms\" is zero; write at least 1ms"),
        (
            minimal + "paxos:\n  consensus_timeout: 3601s",
            "C1.yaml:9: paxos.consensus_timeout \"3601s\" is longer than the limit of 3600s; write a shorter one"
        ),
        (
            minimal + "paxos:\n  consensus_timeout: 99999999999999999999999ms",
            "C1.yaml:9: paxos.consensus_timeout \"99999999999999999999999ms\" is longer than the limit of 3600s; "
                + "write a shorter one"
        ),
        (
            minimal + "paxos:\n  leader_timeout: 300ms\n  leader_ping_interval: 500ms",
            "C1.yaml:10: paxos.leader_ping_interval (500ms) must be shorter than paxos.leader_timeout (300ms)"
        ),
        (
            minimal + "paxos:\n  leader_ping_interval: 1s",
            "C1.yaml:9: paxos.leader_ping_interval (1s) must be shorter than paxos.leader_timeout (1000ms, the "
                + "default)"
        ),
        (
            minimal + "paxos:\n  leader_timeout: 200ms\n  consensus_timeout: 200ms",
            "C1.yaml:9: paxos.leader_ping_interval (200ms, the default) must be shorter than paxos.leader_timeout "
                + "(200ms)"
        ),
        (
            minimal + "paxos:\n  consensus_timeout: 500ms",
            "C1.yaml:9: paxos.consensus_timeout (500ms) must be at least paxos.leader_timeout (1000ms, the default)"
        ),
        (
            minimal + "paxos:\n  tick: 300ms",
            "C1.yaml:9: paxos.tick (300ms) must not be longer than paxos.leader_ping_interval (200ms, the default)"
        ),
        (
            minimal + "paxos:\n  laggard_flush: 200ms",
            "C1.yaml:9: paxos.laggard_flush (200ms) must be shorter than paxos.leader_ping_interval (200ms, the "
                + "default)"
        ),
        (
            minimal + "paxos:\n  snapshot_interval: 8",
            "C1.yaml:9: paxos.snapshot_interval is 8 slots; write 16 to 1000000"
        ),
        (
            minimal + "paxos:\n  snapshot_interval: 10ms",
            "C1.yaml:9: paxos.snapshot_interval \"10ms\" is not a whole number; write digits only, like 10000"
        ),
        (
            minimal + "paxos:\n  tick: 20ms\n  laggard_flush: 15ms",
            "C1.yaml:10: paxos.laggard_flush (15ms) must not be shorter than paxos.tick (20ms)"
        ),
        (
            minimal + "paxos:\n  laggard_flush: never",
            "C1.yaml:9: paxos.laggard_flush \"never\" is not a duration; write a whole number and a unit: 1000ms or 1s"
        ),
        (
            minimal + "batching:\n  batch_size_max: 0",
            "C1.yaml:9: batching.batch_size_max is 0; write at least 1"
        ),
        (
            // A slot holds at most Paxos.Limits.batchSizeMax requests in storage and on the wire.
            minimal + "batching:\n  batch_size_max: 513",
            "C1.yaml:9: batching.batch_size_max is 513; the limit is 512"
        ),
        (
            minimal + "batching:\n  slots_in_flight_max: 2000",
            "C1.yaml:9: batching.slots_in_flight_max is 2000; the limit is 1024"
        ),
    ]

    @Test("tls: off, on, the default files, and files of one's own with {name} per identity")
    func tlsSettings() throws {
        #expect(try Self.validate(Self.minimal + "tls: off").tls == .off)
        #expect(try Self.validate(Self.minimal + "tls: OFF").tls == .off)
        #expect(try Self.validate(Self.minimal + "tls: on").tls == .mutual(.defaults))
        let own = try Self.validate(
            Self.minimal + "tls:\n  ca: /etc/ledger/ca.pem\n  certificate: /etc/ledger/{name}.crt\n  key: /k/{name}.key"
        ).tls
        #expect(
            own == .mutual(.init(ca: "/etc/ledger/ca.pem", certificate: "/etc/ledger/{name}.crt", key: "/k/{name}.key"))
        )
        guard case .mutual(let files) = own else { return }
        #expect(files.certificate(of: "S4") == "/etc/ledger/S4.crt")
        #expect(files.key(of: "operator") == "/k/operator.key")
        // Keys left out take the default files.
        #expect(
            try Self.validate(Self.minimal + "tls:\n  ca: ca/root.pem").tls
                == .mutual(.init(ca: "ca/root.pem", certificate: "certs/{name}.pem", key: "certs/{name}-key.pem")))
    }

    static let badTLS: [(String, String)] = [
        (
            minimal + "tls: maybe",
            "C1.yaml:8: tls \"maybe\" is not off, on or a mapping; write tls: off, or the files like tls: {ca: "
                + "certs/ca.pem, certificate: certs/{name}.pem, key: certs/{name}-key.pem}"
        ),
        (
            minimal + "tls:\n  certificate: certs/server.pem",
            "C1.yaml:9: tls.certificate \"certs/server.pem\" has no {name}; write where each identity's file is, like "
                + "certs/{name}.pem (S1, client, operator)"
        ),
        (
            minimal + "tls:\n  key: certs/key.pem",
            "C1.yaml:9: tls.key \"certs/key.pem\" has no {name}; write where each identity's file is, like "
                + "certs/{name}-key.pem (S1, client, operator)"
        ),
        (minimal + "tls:\n  cert: x", "C1.yaml:9: unknown key \"tls.cert\"; expected one of: ca, certificate, key"),
    ]

    @Test("bad tls settings name the key and show a good one", arguments: badTLS)
    func badTLSSetting(text: String, expected: String) {
        #expect(thrownDescription { () throws(InputError) in try Self.validate(text) } == expected)
    }

    @Test("bad configs", arguments: badConfigs)
    func badConfig(text: String, expected: String) {
        #expect(thrownDescription { () throws(InputError) in try Self.validate(text) } == expected)
    }

    // The ceiling is the batch a slot can hold in storage and on the wire, so a config at it is usable.
    @Test(
        "laggard_flush: off sends every slot to every peer at once; a default too long for the heartbeat is not an error"
    )
    func laggardFlush() throws {
        let off = try Self.validate(Self.minimal + "paxos:\n  laggard_flush: Off")
        #expect(off.paxos.laggardFlush == nil)
        #expect(off.paxosConfiguration(ofReplica: 1).laggardFlushTicks == 0)
        let standard = try Self.validate(Self.minimal).paxosConfiguration(ofReplica: 2)
        #expect(standard.laggardFlushTicks == 5 && standard.heartbeatIntervalTicks == 20 && standard.me == ReplicaID(2))
        // 190ms at 20ms ticks is 10 ticks, the heartbeat's count: one less, so laggards hear between heartbeats.
        let rounded = try Self.validate(Self.minimal + "paxos:\n  tick: 20ms\n  laggard_flush: 190ms")
        #expect(rounded.paxosConfiguration(ofReplica: 1).laggardFlushTicks == 9)
        let fast = try Self.validate(Self.minimal + "paxos:\n  leader_ping_interval: 30ms")
        #expect(fast.paxos.laggardFlush == .milliseconds(50))
        #expect(fast.paxosConfiguration(ofReplica: 1).laggardFlushTicks == 2)
    }

    @Test("batch_size_max up to the Paxos batch limit is accepted")
    func batchCeilingIsThePaxosLimit() throws {
        #expect(ClusterConfig.Limits.batchSizeMaxCeiling == Paxos.Limits.batchSizeMax)
        #expect(ClusterConfig.Limits.batchSizeMaxCeiling == CodecLimits.requestsPerSlotMax)
        let config = try Self.validate(Self.minimal + "batching:\n  batch_size_max: \(Paxos.Limits.batchSizeMax)")
        #expect(config.batching.batchSizeMax == Paxos.Limits.batchSizeMax)
    }

    @Test("trees that no key: value text gives")
    func badTrees() {
        let notMapping = ConfigNode.scalar("hello", line: 1)
        #expect(
            thrownDescription { () throws(InputError) in try ClusterConfig.validate(notMapping, source: "C1.yaml") }
                == "C1.yaml:1: the file holds \"hello\"; expected settings, one per line, like cluster: C1")
        guard case .mapping(var entries, let line) = configTree(Self.minimal) else {
            Issue.record("the minimal config is not a mapping")
            return
        }
        entries[2].value = .sequence([.scalar("a", line: 6), .scalar("b", line: 6)], line: 6)
        let withList = ConfigNode.mapping(entries, line: line)
        #expect(
            thrownDescription { () throws(InputError) in try ClusterConfig.validate(withList, source: "C1.yaml") }
                == "C1.yaml:6: data_dir is a list; expected a value, like data/C1")
    }

    // MARK: Cross-check with hosts.ini

    static let hostsText = """
        S1-localhost:6001
        S2-localhost:6002
        S3-localhost:6003
        S4-localhost:6004
        S5-localhost:6005
        S6-localhost:6006
        S7-localhost:6007
        S8-localhost:6008
        S9-localhost:6009
        client-localhost:5001
        EC1-S1:S2:S3
        EC2-S4:S5:S6
        EC3-S7:S8:S9

        """

    @Test("configs that agree with hosts.ini pass", arguments: [(1, 6001), (4, 6004), (7, 6007)])
    func agreeing(start: Int, subnet: Int) throws {
        let hosts = try HostsFile.parse(Self.hostsText, source: "hosts.ini")
        let cluster = "C\((start + 2) / 3)"
        let text = Self.minimal.replacing("cluster: C1", with: "cluster: \(cluster)")
            .replacing("start: 1", with: "start: \(start)").replacing("subnet: 6001", with: "subnet: \(subnet)")
        try Self.validate(text + "metrics_port: \(9100 + start)").check(against: hosts)
    }

    static let disagreeing: [(String, String)] = [
        (
            minimal.replacing("cluster: C1", with: "cluster: C4"),
            "C1.yaml:1: cluster C4 is not in hosts.ini, which defines C1, C2 and C3"
        ),
        (
            minimal.replacing("count: 3", with: "count: 5"),
            "C1.yaml:3: replicas.count is 5 but hosts.ini:11 gives cluster C1 3 members (S1, S2, S3)"
        ),
        (
            minimal.replacing("start: 1", with: "start: 2"),
            "C1.yaml:4: replicas.start is 2, so cluster C1 would be S2, S3, S4, but hosts.ini:11 gives it S1, S2, S3"
        ),
        (
            minimal.replacing("subnet: 6001", with: "subnet: 7001"),
            "C1.yaml:5: replicas.subnet is 7001, so S1 would listen on port 7001, but hosts.ini:1 gives S1 "
                + "localhost:6001"
        ),
        (
            minimal + "metrics_port: 6004",
            "C1.yaml:8: metrics_port is 6004, so S1 would serve metrics on localhost:6004, which hosts.ini:4 gives "
                + "to S4"
        ),
        (
            minimal + "metrics_port: 4999",
            "C1.yaml:8: metrics_port is 4999, so S3 would serve metrics on localhost:5001, which hosts.ini gives to "
                + "the client"
        ),
        (
            minimal + "peer_port: 6004",
            "C1.yaml:8: peer_port is 6004, so S1 would take peer messages on localhost:6004, which hosts.ini:4 gives "
                + "to S4"
        ),
    ]

    @Test("a replica added to the cluster (an AC line) follows its port rules")
    func addedReplica() throws {
        let config = try Self.validate(Self.minimal + "metrics_port: 9101")
        let added = try HostsFile.parse(Self.hostsText + "S10-localhost:6010\nAC1-S10\n", source: "hosts.ini")
        try config.check(against: added)
        let elsewhere = try HostsFile.parse(Self.hostsText + "S10-localhost:6020\nAC1-S10\n", source: "hosts.ini")
        #expect(
            thrownDescription { () throws(InputError) in try config.check(against: elsewhere) }
                == "C1.yaml:5: replicas.subnet is 6001, so S10 would listen on port 6010, but hosts.ini:14 gives S10 "
                + "localhost:6020")
    }

    @Test("configs that disagree with hosts.ini are refused", arguments: disagreeing)
    func disagreeingConfig(text: String, expected: String) throws {
        let hosts = try HostsFile.parse(Self.hostsText, source: "hosts.ini")
        let config = try Self.validate(text)
        #expect(thrownDescription { () throws(InputError) in try config.check(against: hosts) } == expected)
    }
}
