import Foundation
import GRPCCore
import LedgerClient
import LedgerCore
import LedgerRPC
import LedgerStore
import Paxos

/// Clusters of real replica processes (the built `cluster` executable, `replica` subcommand) in a temporary
/// directory, on loopback ports the kernel picked free: the files a user would write (hosts.ini, one YAML per
/// cluster, shards.csv) and the catalog built from them. Stops every process it started when asked, and always
/// within the test's time limit.
final class TestDeployment: @unchecked Sendable {
    let directory: URL
    /// Replica name (`S1`) to its gRPC port.
    let ports: [String: Int]
    let clusterNames: [String]
    let accountsPerCluster: Int
    let initialBalance: Int64
    /// Replica name (`S1`) to its `/metrics` port, when the deployment serves them.
    let metricsPorts: [String: Int]
    /// Replica name (`S1`) to its peer port, when the clusters give one (`peerPorts`).
    let peerPorts: [String: Int]
    /// Whether the replicas run as three nodes (`N1` hosts S1, S4, S7; `N2` S2, S5, S8; ...: one process each) instead
    /// of one process per replica.
    let nodes: Bool
    /// With `hosts`, the three nodes run on these hosts (node `N<k>` on the k-th), each inside its network namespace.
    let hosts: [NetworkHost]
    private let lock = NSLock()
    private var processes: [String: Process] = [:]
    /// The spare replicas not taken yet, by cluster (`spareReplicas`).
    private var spares: [String: [String]]

    /// `clusters` clusters of 3 replicas; cluster `C<n>` owns accounts `(n-1)*accountsPerCluster+1 ...
    /// n*accountsPerCluster`. Timings are short so that elections and in-doubt recovery happen within a test. With
    /// `tls` (the default, as in production) every replica, the client and the operator get a certificate from a CA
    /// made for this deployment. `snapshotInterval` (slots) makes replicas compact, and ship snapshots to laggards,
    /// within a short test; `metrics` serves every replica's `/metrics`. With `nodes`, the replicas of all clusters
    /// share three addresses: three node processes, each hosting one replica of every cluster. With `peerPorts` (the
    /// default, as shipped) the replicas take their peers' messages as frames on a port of their own, else on the gRPC
    /// stream of their replica port. `spareReplicas` (per cluster, not with `nodes`) keeps ports free for replicas that
    /// `shardctl member add` adds later: new ids after every first member, dealt to the clusters in turn (one cluster:
    /// S4, S5, ...; two: S7 to C1, S8 to C2, S9 to C1, ...), on the ports the config's rules give them (`spares`).
    /// `spareClusters` keeps ports (gRPC and peer) free for that many more clusters of 3, which `shardctl cluster add`
    /// adds later (`C4` of S10, S11, S12 after three clusters): `ports` and `peerPorts` name them.
    init(
        clusters: Int, accountsPerCluster: Int, initialBalance: Int64 = 10, consensusTimeout: String = "1500ms",
        snapshotInterval: Int? = nil, tls: Bool = true, metrics: Bool = false, nodes: Bool = false,
        peerPorts: Bool = true, spareReplicas: Int = 0, spareClusters: Int = 0, hosts: [NetworkHost] = []
    ) throws {
        precondition(spareReplicas == 0 || !nodes, "a running node takes no new replica")
        precondition(hosts.isEmpty || (nodes && hosts.count == 3), "hosts run the three nodes")
        self.nodes = nodes
        self.hosts = hosts
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.accountsPerCluster = accountsPerCluster
        self.initialBalance = initialBalance
        clusterNames = (1...clusters).map { "C\($0)" }
        let certs = directory.appendingPathComponent("certs").path
        var ports: [String: Int] = [:]
        var metricsPorts: [String: Int] = [:]
        var peerPortsByName: [String: Int] = [:]
        var addressBook = ""
        var shards = "Shard, Cluster, Range\n"
        let nodePorts = nodes ? try Self.freeConsecutivePorts(3) : nil
        let nodePeerPorts = nodes && peerPorts ? try Self.freeConsecutivePorts(3) : nil
        var spares: [String: [String]] = [:]
        for number in 1...clusters {
            // The spare replicas' ids, and how many ports past the first member's the last of them takes.
            let start = 3 * (number - 1) + 1
            let spareIndexes = (0..<spareReplicas).map { 3 * clusters + 1 + $0 * clusters + (number - 1) }
            let window = (spareIndexes.last.map { $0 - start } ?? 2) + 1
            // A cluster config names a base port and its replicas take consecutive ports, so find them in a row.
            let base = try nodePorts ?? Self.freeConsecutivePorts(window)
            let names = (1...3).map { "S\(3 * (number - 1) + $0)" }
            for (offset, name) in names.enumerated() {
                ports[name] = base + offset
                addressBook += "\(name)-\(hosts.isEmpty ? "127.0.0.1" : hosts[offset].address):\(base + offset)\n"
            }
            addressBook += "C\(number)-\(names[0])\nEC\(number)-\(names.joined(separator: ":"))\n"
            let metricsBase = metrics ? try Self.freeConsecutivePorts(window) : 0
            if metrics { for (offset, name) in names.enumerated() { metricsPorts[name] = metricsBase + offset } }
            let peerBase = peerPorts ? try nodePeerPorts ?? Self.freeConsecutivePorts(window) : 0
            if peerPorts { for (offset, name) in names.enumerated() { peerPortsByName[name] = peerBase + offset } }
            for index in spareIndexes { ports["S\(index)"] = base + index - start }
            spares["C\(number)"] = spareIndexes.map { "S\($0)" }
            let config = """
                cluster: C\(number)
                replicas:
                  count: 3
                  start: \(3 * (number - 1) + 1)
                  subnet: \(base)
                data_dir: \(directory.path)/data/C\(number)
                catalog: \(directory.path)/data/catalog.sqlite
                log_level: info
                min_balance: 0
                initial_balance: \(initialBalance)
                metrics_port: \(metricsBase)
                peer_port: \(peerBase)
                test_controls: true
                paxos:
                  leader_timeout: 300ms
                  leader_ping_interval: 50ms
                  consensus_timeout: \(consensusTimeout)
                  tick: 10ms
                \(snapshotInterval.map { "  snapshot_interval: \($0)\n" } ?? "")tls: \(tls ? "" : "off")
                """
                + (tls
                    ? "\n  ca: \(certs)/ca.pem\n  certificate: \(certs)/{name}.pem\n  key: \(certs)/{name}-key.pem"
                    : "")
            try config.write(
                to: directory.appendingPathComponent("C\(number).yaml"), atomically: true, encoding: .utf8)
            let first = (number - 1) * accountsPerCluster + 1
            shards += "D\(number), C\(number), \(first)-\(first + accountsPerCluster - 1)\n"
        }
        for number in clusters + 1..<clusters + 1 + spareClusters {
            let base = try Self.freeConsecutivePorts(3)
            let peerBase = peerPorts ? try Self.freeConsecutivePorts(3) : 0
            for offset in 0..<3 {
                ports["S\(3 * (number - 1) + offset + 1)"] = base + offset
                if peerPorts { peerPortsByName["S\(3 * (number - 1) + offset + 1)"] = peerBase + offset }
            }
        }
        self.ports = ports
        self.spares = spares
        self.metricsPorts = metricsPorts
        self.peerPorts = peerPortsByName
        try addressBook.write(to: directory.appendingPathComponent("hosts.ini"), atomically: true, encoding: .utf8)
        if tls {
            _ = try Certificates.issueDeployment(
                hosts: try ConfigFiles.loadHosts(path: hostsPath), files: certificateFiles, force: false)
        }
        try shards.write(to: directory.appendingPathComponent("shards.csv"), atomically: true, encoding: .utf8)
        _ = try CatalogFile.write(
            try ShardMap.parse(shards, source: "shards.csv"), to: "\(directory.path)/data/catalog.sqlite")
    }

    var hostsPath: String { directory.appendingPathComponent("hosts.ini").path }

    /// Where this deployment's CA and certificates are (with `tls`).
    var certificateFiles: ClusterConfig.TLS.Files {
        let certs = directory.appendingPathComponent("certs").path
        return .init(ca: "\(certs)/ca.pem", certificate: "\(certs)/{name}.pem", key: "\(certs)/{name}-key.pem")
    }

    /// How a test process connects as identity `name` (`client`, `operator`, a replica's name).
    func security(as name: String = LedgerConnection.operatorIdentity) throws -> ConnectionSecurity {
        try ConnectionSecurity.load(try deployment().tls, as: name)
    }

    func deployment() throws -> Deployment { try Deployment.load(hostsPath: hostsPath) }

    /// Every account of every cluster.
    var accounts: [AccountID] { (1...(accountsPerCluster * clusterNames.count)).map { AccountID(UInt64($0)) } }

    /// Takes the next spare replica of `cluster` (its name), nil when none is left.
    func takeSpare(of cluster: String) -> String? {
        lock.withLock { spares[cluster]?.isEmpty == false ? spares[cluster]!.removeFirst() : nil }
    }

    /// The replicas of `cluster` that hosts.ini says are reachable now (added ones included, removed ones not).
    func reachableAddresses(of cluster: String) throws -> [ClusterClient.Address] {
        let hosts = try deployment().hosts
        return (hosts.cluster(named: cluster)?.reachable ?? []).compactMap { hosts.replica(named: $0) }.map {
            ClusterClient.Address(replica: ReplicaID($0.index), host: $0.host, port: $0.port)
        }
    }

    /// The replicas of `cluster`, by name.
    func replicas(of cluster: String) -> [String] {
        let number = Int(cluster.dropFirst())!
        return (1...3).map { "S\(3 * (number - 1) + $0)" }
    }

    func addresses(of cluster: String) -> [ClusterClient.Address] {
        replicas(of: cluster).map {
            ClusterClient.Address(replica: ReplicaID(Int($0.dropFirst())!), host: "127.0.0.1", port: ports[$0]!)
        }
    }

    /// A built executable of this package (`cluster`, `client`), next to the test bundle.
    static func executable(_ name: String) -> URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: name)
    }

    /// The process that runs `replica` (`S4`): the replica itself, or with `nodes` its node (`N1`).
    func processName(of replica: String) -> String {
        guard nodes, replica.hasPrefix("S") else { return replica }
        return "N\((Int(replica.dropFirst())! - 1) % 3 + 1)"
    }

    /// The host node `N<k>` runs on, with `hosts`.
    func host(ofNode name: String) -> NetworkHost? {
        guard !hosts.isEmpty, name.hasPrefix("N"), let index = Int(name.dropFirst()) else { return nil }
        return hosts[index - 1]
    }

    /// The host a replica's node runs on, with `hosts`.
    func host(of replica: ReplicaID) -> NetworkHost? { host(ofNode: processName(of: replica.description)) }

    /// Starts every replica of every cluster.
    func startAll() throws {
        try start(clusterNames.flatMap(replicas(of:)))
    }

    /// Starts the processes of `names` (replicas, or nodes `N1`; a node once however many of its replicas are named).
    func start(_ names: [String]) throws {
        var started: Set<String> = []
        for name in names.map(processName(of:)) where started.insert(name).inserted {
            let process = Process()
            process.executableURL = Self.executable("cluster")
            process.currentDirectoryURL = directory
            if let host = host(ofNode: name) {
                // `ip netns exec` execs the node in place: the process is the node.
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = [
                    "ip", "netns", "exec", host.namespace, Self.executable("cluster").path, "node", "hosts.ini",
                    "--name",
                    name,
                ]
            } else if name.hasPrefix("N") {
                process.arguments = ["node", "hosts.ini", "--name", name]
            } else {
                // hosts.ini knows a replica added by `shardctl member add` too.
                let cluster =
                    try deployment().hosts.cluster(of: name)?.name ?? "C\((Int(name.dropFirst())! - 1) / 3 + 1)"
                process.arguments = ["replica", "\(cluster).yaml", "hosts.ini", "--name", name]
            }
            let log = directory.appendingPathComponent("\(name).log")
            if !FileManager.default.fileExists(atPath: log.path) {
                _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            }
            let handle = try FileHandle(forWritingTo: log)
            handle.seekToEndOfFile()
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            lock.withLock { processes[name] = process }
        }
    }

    /// Runs a built tool (`shardctl`, `client`) on this deployment's hosts.ini, in its directory, for at most two
    /// minutes.
    func tool(_ name: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try runTool(name, arguments + ["--hosts", hostsPath], in: directory, within: .seconds(120))
    }

    /// Deletes the store of `replica` of `cluster` (a dead machine's disk); the replica must not run.
    func wipe(_ replica: ReplicaID, of cluster: String) throws {
        let data = directory.appendingPathComponent("data/\(cluster)")
        for file in try FileManager.default.contentsOfDirectory(atPath: data.path)
        where file.hasPrefix("\(replica).sqlite") {
            try FileManager.default.removeItem(at: data.appendingPathComponent(file))
        }
    }

    /// SIGKILL: the replica (with `nodes`, its node and every replica there) gets no chance to flush or say goodbye.
    func kill(_ replica: ReplicaID) {
        lock.withLock {
            if let process = processes[processName(of: replica.description)], process.isRunning {
                Foundation.kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
    }

    /// The process id of a running replica.
    func pid(of replica: String) -> Int32? {
        lock.withLock { processes[processName(of: replica)].flatMap { $0.isRunning ? $0.processIdentifier : nil } }
    }

    /// The unlabelled gauges and counters of a replica's `/metrics` (with `metrics`), as whole numbers; nil when it
    /// did not answer.
    func metrics(of replica: String) -> [String: Int]? {
        guard let port = metricsPorts[replica], let socket = RawSocket(port: port) else { return nil }
        defer { socket.close() }
        socket.send(Array("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        let (bytes, _) = socket.receive(upTo: 1 << 20, within: .milliseconds(500))
        var values: [String: Int] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else { continue }
            values[String(parts[0])] = Int(value)
        }
        return values.isEmpty ? nil : values
    }

    /// Whether the replica's process is running (a replica that crashed or stopped is not).
    func isRunning(_ replica: ReplicaID) -> Bool {
        lock.withLock { processes[processName(of: replica.description)]?.isRunning ?? false }
    }

    /// Waits up to `limit` for the replica's process to end; how it ended, or nil if it still runs.
    func waitForExit(_ replica: ReplicaID, within limit: Duration) -> (
        reason: Process.TerminationReason, status: Int32
    )? {
        guard let process = lock.withLock({ processes[processName(of: replica.description)] }) else { return nil }
        let deadline = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
        return process.isRunning ? nil : (process.terminationReason, process.terminationStatus)
    }

    /// Sends `signal` to a running replica (SIGSTOP pauses it, SIGCONT resumes it).
    func signal(_ replica: ReplicaID, _ signal: Int32) {
        lock.withLock {
            if let process = processes[processName(of: replica.description)], process.isRunning {
                _ = Foundation.kill(process.processIdentifier, signal)
            }
        }
    }

    func stopAll() {
        let running = lock.withLock { processes.values.filter(\.isRunning) }
        // A paused replica handles SIGTERM only once it runs again.
        for process in running { _ = Foundation.kill(process.processIdentifier, SIGCONT) }
        for process in running { process.terminate() }
        let deadline = Date().addingTimeInterval(5)
        for process in running {
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        }
        if ProcessInfo.processInfo.environment["KEEP_IT_DATA"] == nil {
            try? FileManager.default.removeItem(at: directory)
        } else {
            print("integration data kept in \(directory.path)")
        }
    }

    func waitForLeader(
        _ client: ClusterClient, among replicas: [ReplicaID]? = nil, within limit: Duration
    ) async throws -> ReplicaID {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            for replica in replicas ?? client.replicas {
                if let status = try? await client.status(of: replica), status.role == .leader { return replica }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClusterTimeout("no leader within \(limit); logs in \(directory.path)")
    }

    func waitForAccounts(_ client: ClusterClient, replicas: [ReplicaID], within limit: Duration) async throws {
        let deadline = ContinuousClock.now + limit
        for replica in replicas {
            while (try? await client.localBalance(of: AccountID(1), at: replica))?.balance == nil {
                guard ContinuousClock.now < deadline else {
                    throw ClusterTimeout("\(replica) has no accounts after \(limit); logs in \(directory.path)")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    func waitUntilApplied(
        _ client: ClusterClient, replica: ReplicaID, through slot: Slot, within limit: Duration
    ) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let status = try? await client.status(of: replica), status.appliedThrough >= slot { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClusterTimeout("\(replica) did not apply slot \(slot) within \(limit); logs in \(directory.path)")
    }

    /// The first of `count` consecutive ports that are free now, below the kernel's ephemeral range
    /// (`ip_local_port_range`) and never handed out before in this process: a port the kernel picked (port 0) could be
    /// taken again, between this check and the replica's bind, as the local port of any outgoing connection (another
    /// test's client, or this deployment's own replicas dialling each other), and the replica would fail to listen.
    /// Candidates are checked by binding them; tried a bounded number of times.
    static func freeConsecutivePorts(_ count: Int) throws -> Int {
        try PortWindow.shared.take(count)
    }

    /// Whether a server accepts connections on 127.0.0.1:`port` now. (Binding would not tell: the closed server's
    /// connections may hold the port in TIME_WAIT.)
    static func isListening(_ port: Int) -> Bool {
        RawSocket(port: port) != nil
    }

    /// Binds 127.0.0.1:`port` (0: any), releases it, and returns the port bound.
    static func bindPort(_ port: Int) throws -> Int {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw ClusterTimeout("cannot open a socket") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) }
        }
        guard bound == 0 else { throw ClusterTimeout("cannot bind 127.0.0.1:\(port)") }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Where test deployments take their ports: a window below the ephemeral range, walked from a point that depends on
/// the process id (so two test processes rarely meet), every block checked by binding it.
final class PortWindow: @unchecked Sendable {
    static let shared = PortWindow()

    private let lock = NSLock()
    private let range: Range<Int>
    private var next: Int

    init() {
        let ephemeral =
            (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8))?
            .split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32_768
        range = 10_000..<max(ephemeral, 20_000)
        next = range.lowerBound + Int(getpid()) * 97 % range.count
    }

    func take(_ count: Int) throws -> Int {
        try lock.withLock {
            for _ in 0..<200 {
                if next + count > range.upperBound { next = range.lowerBound }
                let first = next
                next += count
                if (0..<count).allSatisfy({ (try? TestDeployment.bindPort(first + $0)) != nil }) { return first }
            }
            throw ClusterTimeout("found no \(count) consecutive free ports on 127.0.0.1 in \(range)")
        }
    }
}

/// A host made by `scripts/hosts.sh`: its network namespace and its address there.
struct NetworkHost: Sendable, Equatable {
    var namespace: String
    var address: String
}

struct ClusterTimeout: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

extension Sequence<TransferOutcome> {
    /// Why each outcome left unknown is so, for an expectation that there are none.
    var unknownReasons: [String] {
        compactMap { outcome in
            if case .unknown(let reason) = outcome { return reason }
            return nil
        }
    }
}

/// A read-only inspection of a replica (its status, balances, datastore), asked again for up to `limit` while it fails
/// for want of time: on a starved machine one call may miss its deadline (`ClusterClient.callTimeout`) though the
/// replica is up. Any other error, or the last one past the limit, is thrown.
func patiently<Answer>(within limit: Duration = .seconds(30), _ inspect: () async throws -> Answer) async throws
    -> Answer
{
    let deadline = ContinuousClock.now + limit
    while true {
        do {
            return try await inspect()
        } catch let error as RPCError
            where [.deadlineExceeded, .unavailable].contains(error.code) && ContinuousClock.now < deadline
        {
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
