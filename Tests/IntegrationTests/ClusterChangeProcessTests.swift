import Foundation
import LedgerClient
import LedgerCore
import LedgerRPC
import LedgerStore
import Paxos
import Testing

/// A cluster joins and another leaves a running deployment, with the shipped commands, while transfers run:
/// `shardctl cluster add C4` (config, hosts.ini, certificates), the new cluster started, `shardctl rebalance --fill
/// C4` and `client rebalance` give it its share, and `shardctl cluster drain C2` moves every account of C2 away and
/// takes it out of the catalog and hosts.ini. Afterwards money is conserved, every account is in exactly one cluster
/// (C2's replicas hold none), the replicas of each cluster are identical and no lock is held. Twelve replica
/// processes: the test needs the machine alone (beside the other process suites it would starve their deadlines).
@Suite(.serialized) struct ClusterChangeProcessTests {
    static let accountsPerCluster = 20

    @Test(.needsMachineAlone, .timeLimit(.minutes(20))) func addFillAndDrainClustersUnderLoad() async throws {
        let deployment = try TestDeployment(
            clusters: 3, accountsPerCluster: Self.accountsPerCluster, consensusTimeout: "2000ms", spareClusters: 1)
        defer { deployment.stopAll() }
        try deployment.startAll()
        func tool(_ name: String, _ arguments: [String]) throws -> String {
            let run = try deployment.tool(name, arguments)
            #expect(run.status == 0, "\(name) \(arguments.joined(separator: " ")) exited \(run.status):\n\(run.output)")
            return run.output
        }
        let accounts = 3 * Self.accountsPerCluster
        let total = Int64(accounts) * deployment.initialBalance

        let catalogPath = try deployment.deployment().catalogPath
        // The load's connection is made before C4 exists: it reaches C4 when a moved account's answer names it.
        try await LedgerConnection.with(
            deployment: try deployment.deployment(), catalog: try CatalogFile.read(path: catalogPath)
        ) { connection in
            try await connection.waitUntilServing(within: .seconds(30))
            let load = Task { await Self.transfers(connection, accounts: accounts) }

            // C4 joins, owning nothing, and starts.
            let added = try tool(
                "shardctl",
                [
                    "cluster", "add", "C4", "--replicas", "S10:S11:S12", "--host", "127.0.0.1", "--port",
                    "\(deployment.ports["S10"]!)", "--peer-port", "\(deployment.peerPorts["S10"]!)", "--metrics-port",
                    "0",
                ])
            #expect(added.contains("cluster C4 added"), "\(added)")
            #expect(try deployment.deployment().hosts.cluster(named: "C4")?.members == ["S10", "S11", "S12"])
            try deployment.start(["S10", "S11", "S12"])
            _ = try await deployment.waitForLeader(try #require(connection.cluster("C4")), within: .seconds(30))

            // Fill C4 from the others: a quarter of the accounts.
            let planned = try tool("shardctl", ["rebalance", "--fill", "C4", "--max-imbalance", "0"])
            #expect(planned.contains("C4 0 -> 15"), "\(planned)")
            let applied = try tool("client", ["rebalance", "new-schema.txt"])
            #expect(applied.contains("moved 15,"), "\(applied)")
            #expect(try CatalogFile.read(path: catalogPath).accountCount(of: "C4") == 15)
            // The connection made before C4 existed reaches it: a transfer between two of its accounts commits there
            // (or is refused there for want of money).
            let inC4 = try CatalogFile.read(path: catalogPath).accounts(of: "C4").flatMap { range in
                (range.lowerBound.value...range.upperBound.value).map { AccountID($0) }
            }
            let outcome = await connection.transfer(try Transfer(from: inC4[0], to: inC4[1], amount: Amount(1)))
            switch outcome {
            case .committed, .aborted(.refused(.insufficientFunds, cluster: "C4")): break
            case .aborted(.refused(.insufficientFunds, _)): Issue.record("refused outside C4: \(outcome)")
            default: Issue.record("a transfer between C4's accounts \(inC4[0]) and \(inC4[1]): \(outcome)")
            }

            // Drain C2 into the three others.
            let drained = try tool("shardctl", ["cluster", "drain", "C2", "--max-imbalance", "0", "--timeout", "90"])
            #expect(drained.contains("C2's replicas may be stopped now"), "\(drained)")
            load.cancel()
            let outcomes = await load.value
            let committed = outcomes.filter { $0 == .committed }.count
            #expect(outcomes.unknownReasons.isEmpty, "unknown outcomes: \(outcomes.unknownReasons.prefix(3))")
            #expect(committed > outcomes.count / 2, "only \(committed) of \(outcomes.count) transfers committed")
            print(
                "cluster changes: \(committed) of \(outcomes.count) transfers committed while C4 filled and C2 drained")

            // C2's replicas hold nothing and wait on nothing.
            let c2 = try #require(connection.cluster("C2"))
            for replica in c2.replicas {
                let status = try await c2.status(of: replica)
                #expect(status.accountsHeld == 0 && status.locksHeld == 0 && status.waitingOn.isEmpty, "\(status)")
            }
        }

        // The catalog and hosts.ini no longer know C2; the three clusters left share every account.
        let after = try deployment.deployment()
        #expect(after.hosts.clusterNames == ["C1", "C3", "C4"])
        #expect(after.hosts.drained["C2"] == ["S4", "S5", "S6"])
        #expect(
            FileManager.default.fileExists(
                atPath: deployment.directory.appendingPathComponent("C2.yaml.drained").path))
        let catalog = try CatalogFile.read(path: after.catalogPath)
        #expect(catalog.clusters == ["C1", "C3", "C4"] && catalog.draining.isEmpty)
        #expect(["C1", "C3", "C4"].map { catalog.accountCount(of: $0) } == [20, 20, 20])
        for name in ["S4", "S5", "S6"] { deployment.kill(ReplicaID(Int(name.dropFirst())!)) }
        try await LedgerConnection.with(deployment: after, catalog: catalog, as: LedgerConnection.operatorIdentity) {
            connection in
            try await deployment.expectConsistent(connection, total: total)
            try await deployment.expectEachAccountInOneCluster(connection)
        }
    }

    /// `ClusterTool.add` on the files alone: the config it derives, running it again, and the names it refuses.
    @Test func addingAClusterWritesItsFilesOnce() throws {
        let deployment = try TestDeployment(clusters: 2, accountsPerCluster: 5, tls: false, spareClusters: 1)
        defer { deployment.stopAll() }
        let hostsPath = deployment.hostsPath
        let request = ClusterTool.NewCluster(
            name: "C3", replicas: ["S7", "S8", "S9"], host: "127.0.0.1", port: deployment.ports["S7"]!,
            peerPort: deployment.peerPorts["S7"]!)
        let added = try ClusterTool.add(request, hostsPath: hostsPath)
        let config = try ConfigFiles.loadCluster(path: added.configPath)
        let template = try ConfigFiles.loadCluster(path: deployment.directory.appendingPathComponent("C2.yaml").path)
        // C2's settings, with the new cluster's name, replicas, ports and data directory.
        #expect(config.clusterName == "C3" && config.replicaStart == 7 && config.replicaCount == 3)
        #expect(config.portBase == deployment.ports["S7"]! && config.peerPortBase == deployment.peerPorts["S7"]!)
        #expect(config.dataDirectory == deployment.directory.appendingPathComponent("data/C3").path)
        #expect(config.catalogPath == template.catalogPath && config.paxos == template.paxos)
        #expect(added.deployment.hosts.cluster(named: "C3")?.members == ["S7", "S8", "S9"])
        // Again: nothing changes.
        let hostsText = try String(contentsOfFile: hostsPath, encoding: .utf8)
        let again = try ClusterTool.add(request, hostsPath: hostsPath)
        #expect(again.lines.first?.hasSuffix("cluster C3 is there already; nothing changed") == true)
        #expect(try String(contentsOfFile: hostsPath, encoding: .utf8) == hostsText)
        // Names in use, an even count, gaps and another cluster's members are refused, changing nothing.
        let refused: [(ClusterTool.NewCluster, String)] = [
            (.init(name: "C4", replicas: ["S9", "S10", "S11"]), "S9 is used already"),
            (.init(name: "C4", replicas: ["S10", "S11"]), "an odd number of replicas"),
            (.init(name: "C4", replicas: ["S10", "S12", "S13"]), "are not consecutive"),
            (.init(name: "C3", replicas: ["S10", "S11", "S12"]), "cluster C3 exists already"),
            (.init(name: "D4", replicas: ["S10", "S11", "S12"]), "bad cluster name"),
        ]
        for (request, message) in refused {
            #expect(
                thrownDescription { () throws(InputError) in try ClusterTool.add(request, hostsPath: hostsPath) }?
                    .contains(message) == true, "\(request)")
        }
        #expect(try String(contentsOfFile: hostsPath, encoding: .utf8) == hostsText)
        #expect(!FileManager.default.fileExists(atPath: deployment.directory.appendingPathComponent("C4.yaml").path))
    }

    /// Transfers of 1 between random accounts by four workers until cancelled (at most 2,000 each).
    static func transfers(_ connection: LedgerConnection, accounts: Int) async -> [TransferOutcome] {
        await withTaskGroup(of: [TransferOutcome].self) { group in
            for worker in 0..<4 {
                group.addTask {
                    var random = SeededRandom(seed: UInt64(worker) + 7)
                    var outcomes: [TransferOutcome] = []
                    while !Task.isCancelled, outcomes.count < 2_000 {
                        let from = UInt64.random(in: 1...UInt64(accounts), using: &random)
                        let to =
                            (from + UInt64.random(in: 1..<UInt64(accounts), using: &random) - 1)
                            % UInt64(accounts) + 1
                        guard let transfer = try? Transfer(from: AccountID(from), to: AccountID(to), amount: Amount(1))
                        else { continue }
                        outcomes.append(await connection.transfer(transfer))
                    }
                    return outcomes
                }
            }
            var all: [TransferOutcome] = []
            for await outcomes in group { all += outcomes }
            return all
        }
    }
}

/// The description of the input error `body` throws, nil when it throws none.
private func thrownDescription<Value>(_ body: () throws(InputError) -> Value) -> String? {
    do {
        _ = try body()
        return nil
    } catch {
        return error.description
    }
}
