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
}
