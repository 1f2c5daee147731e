import Foundation
import LedgerCore
import LedgerStore
import Testing

/// The configs and test data the repository ships must parse, agree with each other, and say what
/// the README and DESIGN promise: 3 clusters of 3 replicas on loopback, accounts 1...3000.
@Suite("Shipped files")
struct ShippedFilesTests {
    /// The package directory: this file is `<package>/Tests/LedgerStoreTests/ShippedFilesTests.swift`.
    static let packageDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ relative: String) -> String {
        packageDirectory.appendingPathComponent(relative).path
    }

    @Test("configs/hosts.ini")
    func hosts() throws {
        let hosts = try ConfigFiles.loadHosts(path: Self.path("configs/hosts.ini"))
        #expect(hosts.replicas.map(\.name) == (1...9).map { "S\($0)" })
        #expect(hosts.replicas.map(\.host) == Array(repeating: "localhost", count: 9))
        #expect(hosts.replicas.map(\.port) == Array(6001...6009))
        #expect(hosts.clientAddress == HostsFile.Address(host: "localhost", port: 5001))
        #expect(hosts.clusters.map(\.name) == ["C1", "C2", "C3"])
        #expect(hosts.clusters.map(\.members) == [["S1", "S2", "S3"], ["S4", "S5", "S6"], ["S7", "S8", "S9"]])
        #expect(hosts.clusters.map(\.contact) == ["S1", "S4", "S7"])
    }

    @Test("configs/C1.yaml, C2.yaml and C3.yaml agree with hosts.ini", arguments: [1, 2, 3])
    func clusterConfig(number: Int) throws {
        let hosts = try ConfigFiles.loadHosts(path: Self.path("configs/hosts.ini"))
        let config = try ConfigFiles.loadCluster(path: Self.path("configs/C\(number).yaml"))
        try config.check(against: hosts)
        let start = 3 * number - 2
        #expect(config.clusterName == "C\(number)")
        #expect(config.replicaCount == 3)
        #expect(config.replicaStart == start)
        #expect(config.portBase == 6000 + start)
        #expect(config.metricsPortBase == 9100 + start)
        #expect(config.dataDirectory == "data/C\(number)")
        #expect(config.catalogPath == "data/catalog.sqlite")
        #expect(config.logLevel == .info)
        #expect(config.balanceMin == 0)
        #expect(config.balanceInitial == 10)
        #expect(config.testControlsEnabled)
        #expect(config.paxos == ClusterConfig.PaxosTimings.defaults)
        #expect(config.batching == ClusterConfig.Batching.defaults)
        // Mutual TLS with the files `shardctl certs` writes, `{name}` read through YAML as written.
        #expect(config.tls == .mutual(.defaults))
    }

    @Test("tests-data/shards.csv")
    func shards() throws {
        let hosts = try ConfigFiles.loadHosts(path: Self.path("configs/hosts.ini"))
        let shards = try ConfigFiles.loadShards(path: Self.path("tests-data/shards.csv"))
        try shards.check(against: hosts)
        #expect(shards.shards.map(\.name) == ["D1", "D2", "D3"])
        #expect(shards.accounts(of: "C1") == [AccountID(1)...AccountID(1000)])
        #expect(shards.accounts(of: "C2") == [AccountID(1001)...AccountID(2000)])
        #expect(shards.accounts(of: "C3") == [AccountID(2001)...AccountID(3000)])
    }

    @Test("tests-data/tests.csv covers the scenarios the client must show")
    func testSets() throws {
        let hosts = try ConfigFiles.loadHosts(path: Self.path("configs/hosts.ini"))
        let shards = try ConfigFiles.loadShards(path: Self.path("tests-data/shards.csv"))
        let file = try ConfigFiles.loadTestSets(path: Self.path("tests-data/tests.csv"))
        try file.check(against: hosts, shards: shards)
        let sets = file.sets
        #expect(sets.count >= 8)
        #expect(sets.map(\.number) == Array(1...sets.count))
        let everyone = hosts.replicas.map(\.name)
        func isCrossShard(_ transfer: Transfer) -> Bool {
            shards.cluster(of: transfer.from) != shards.cluster(of: transfer.to)
        }
        let transfers = sets.flatMap { $0.transfers.map(\.transfer) }
        #expect(transfers.contains { !isCrossShard($0) }, "intra-shard transfers")
        #expect(transfers.contains(where: isCrossShard), "cross-shard transfers")
        #expect(
            sets.contains { !$0.liveServers.contains("S2") && $0.liveServers.contains("S1") }, "a disconnected follower"
        )
        #expect(
            sets.contains { !$0.liveServers.contains("S1") && $0.contacts.first == "S2" },
            "a disconnected leader with a new contact")
        #expect(
            sets.contains { set in
                hosts.clusters.contains { cluster in
                    cluster.members.filter { set.liveServers.contains($0) }.count <= cluster.members.count / 2
                }
            }, "a cluster without quorum")
        #expect(transfers.contains { $0.amount.value > 10 }, "insufficient funds: more than the initial balance 10")
        #expect(
            sets.contains { set in
                let accounts = set.transfers.flatMap { [$0.transfer.from, $0.transfer.to] }
                return Set(accounts).count < accounts.count
            }, "transfers on the same accounts within one set")
        #expect(
            zip(sets, sets.dropFirst()).contains { previous, next in
                Set(previous.liveServers) != Set(everyone) && Set(next.liveServers) == Set(everyone)
            }, "a set that reconnects everyone")
    }

    // MARK: The Fall 2025 layout

    @Test("configs/fall2025: nodes n1..n9 are the replicas S1..S9 on ports of their own, accounts 1...9000")
    func fall2025Layout() throws {
        let hosts = try ConfigFiles.loadHosts(path: Self.path("configs/fall2025/hosts.ini"))
        #expect(hosts.replicas.map(\.name) == (1...9).map { "S\($0)" })
        #expect(hosts.replicas.map(\.port) == Array(6201...6209))
        #expect(hosts.clientAddress == HostsFile.Address(host: "localhost", port: 5201))
        #expect(hosts.clusters.map(\.members) == [["S1", "S2", "S3"], ["S4", "S5", "S6"], ["S7", "S8", "S9"]])
        for number in 1...3 {
            let config = try ConfigFiles.loadCluster(path: Self.path("configs/fall2025/C\(number).yaml"))
            try config.check(against: hosts)
            let start = 3 * number - 2
            #expect(config.clusterName == "C\(number)")
            #expect(config.replicaStart == start)
            #expect(config.portBase == 6200 + start)
            #expect(config.metricsPortBase == 9300 + start)
            #expect(config.peerPortBase == 7200 + start)
            #expect(config.dataDirectory == "data/fall2025/C\(number)")
            #expect(config.catalogPath == "data/fall2025/catalog.sqlite")
            #expect(config.balanceMin == 0)
            #expect(config.balanceInitial == 10, "the course's initial balance")
            #expect(config.testControlsEnabled, "fail and recover rows disconnect replicas")
            #expect(config.tls == .mutual(.defaults))
        }
        let shards = try ConfigFiles.loadShards(path: Self.path("configs/fall2025/shards.csv"))
        try shards.check(against: hosts)
        #expect(shards.accounts(of: "C1") == [AccountID(1)...AccountID(3000)])
        #expect(shards.accounts(of: "C2") == [AccountID(3001)...AccountID(6000)])
        #expect(shards.accounts(of: "C3") == [AccountID(6001)...AccountID(9000)])
    }

    @Test("the three shipped layouts share no port, data directory or catalog, so they run side by side")
    func layoutsRunSideBySide() throws {
        var ports: [Int: String] = [:]
        var directories: [String: String] = [:]
        var catalogs: Set<String> = []
        for layout in ["configs", "configs/nodes", "configs/fall2025"] {
            let hosts = try ConfigFiles.loadHosts(path: Self.path("\(layout)/hosts.ini"))
            var layoutPorts = Set(hosts.replicas.map(\.port))
            if let client = hosts.clientAddress { layoutPorts.insert(client.port) }
            for number in 1...3 {
                let config = try ConfigFiles.loadCluster(path: Self.path("\(layout)/C\(number).yaml"))
                for offset in 0..<config.replicaCount {
                    for base in [config.metricsPortBase, config.peerPortBase] where base != 0 {
                        layoutPorts.insert(base + offset)
                    }
                }
                #expect(
                    directories[config.dataDirectory] == nil,
                    "\(layout) and \(directories[config.dataDirectory] ?? "") share \(config.dataDirectory)")
                directories[config.dataDirectory] = layout
                catalogs.insert(config.catalogPath)
            }
            for port in layoutPorts {
                #expect(ports[port] == nil, "\(layout) and \(ports[port] ?? "") both use port \(port)")
                ports[port] = layout
            }
        }
        #expect(catalogs.count == 3)
    }

    @Test("tests-data/tests-fall2025.csv covers every row kind of the Fall 2025 format")
    func fall2025TestSets() throws {
        let hosts = try ConfigFiles.loadHosts(path: Self.path("configs/fall2025/hosts.ini"))
        let shards = try ConfigFiles.loadShards(path: Self.path("configs/fall2025/shards.csv"))
        let text = try String(contentsOfFile: Self.path("tests-data/tests-fall2025.csv"), encoding: .utf8)
        #expect(text.hasPrefix("Set Number,Transactions,Live Nodes\n"), "the course's header")
        let file = try ConfigFiles.loadTestSets(path: Self.path("tests-data/tests-fall2025.csv"))
        #expect(file.format == .fall2025)
        try file.check(against: hosts, shards: shards)
        let sets = file.sets
        #expect(sets.map(\.number) == Array(1...sets.count))
        let steps = sets.flatMap(\.steps)
        let transfers = sets.flatMap { $0.transfers.map(\.transfer) }
        func isCrossShard(_ transfer: Transfer) -> Bool {
            shards.cluster(of: transfer.from) != shards.cluster(of: transfer.to)
        }
        #expect(transfers.contains { !isCrossShard($0) }, "intra-shard transfers")
        #expect(transfers.contains(where: isCrossShard), "cross-shard transfers")
        #expect(transfers.contains { $0.amount.value > 10 }, "insufficient funds: more than the initial balance 10")
        let accounts = Set(transfers.flatMap { [$0.from, $0.to] } + sets.flatMap(\.reads))
        for cluster in ["C1", "C2", "C3"] {
            #expect(accounts.contains { shards.cluster(of: $0) == cluster }, "accounts of \(cluster)")
        }
        #expect(accounts.contains { $0.value > 6000 }, "accounts beyond the original 3000")
        #expect(steps.contains { if case .read = $0.action { true } else { false } }, "reads")
        #expect(steps.contains { if case .fail = $0.action { true } else { false } }, "fail rows")
        #expect(steps.contains { if case .recover = $0.action { true } else { false } }, "recover rows")
        let segments = sets.flatMap(\.segments)
        func hasMajority(_ cluster: HostsFile.Cluster, _ segment: TestSegment) -> Bool {
            cluster.members.filter(segment.liveServers.contains).count * 2 > cluster.members.count
        }
        #expect(
            segments.contains { segment in
                !segment.changes.isEmpty && !segment.operations.isEmpty
                    && hosts.clusters.contains { !hasMajority($0, segment) }
            }, "a fail row that leaves a cluster without a majority, with transfers and reads after it")
        #expect(
            sets.contains { set in
                set.steps.contains { step in
                    guard case .recover(let replica) = step.action else { return false }
                    return !set.liveServers.contains(replica)
                }
            }, "a recover row for a node the set's live nodes leave out")
    }
}
