import Foundation
import LedgerCore
import LedgerRPC
import Paxos
import Synchronization
import Testing

@testable import LedgerClient

extension ClusterProcessTests {
    /// Three nodes, each one process hosting one replica of each of three clusters (`cluster node`). Under a load of
    /// intra- and cross-shard transfers, one node is killed with SIGKILL (one replica of every cluster at once) and
    /// restarted from its files; the clusters keep committing on the other two nodes, the restarted replicas catch
    /// up, every replica of a cluster ends with the same balances, and no money is made or lost. Each replica serves
    /// its own metrics on its own port.
    @Test(.timeLimit(.minutes(6))) func threeNodesKeepServingThroughTheKillOfOne() async throws {
        let deployment = try TestDeployment(clusters: 3, accountsPerCluster: 30, metrics: true, nodes: true)
        defer { deployment.stopAll() }
        try deployment.startAll()
        #expect(deployment.pid(of: "S1") == deployment.pid(of: "S7"), "S1 and S7 are not one process")
        #expect(deployment.pid(of: "S1") != deployment.pid(of: "S2"), "S1 and S2 are one process")
        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: try deployment.catalog()) {
            connection in
            try await deployment.waitUntilServing(connection)
            let stop = Mutex(false)
            let load = Task {
                var committed = 0
                var round = 0
                while !stop.withLock({ $0 }) {
                    committed += await Self.transferRound(connection, round: round, accounts: 90)
                    round += 1
                }
                return committed
            }
            try await Task.sleep(for: .seconds(1))
            deployment.kill(ReplicaID(1))
            #expect(!deployment.isRunning(ReplicaID(4)), "killing node N1 left S4 running")
            try await Task.sleep(for: .seconds(2))
            // The other two nodes hold a majority of every cluster: transfers still commit everywhere (the load may hold
            // an account for a while: a transfer that finds it locked is tried again).
            for (from, to) in [(2, 3), (32, 33), (62, 63), (5, 65)] {
                let transfer = try Transfer(from: AccountID(UInt64(from)), to: AccountID(UInt64(to)), amount: Amount(1))
                var outcome = await connection.transfer(transfer)
                let deadline = ContinuousClock.now + .seconds(30)
                while outcome != .committed, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(200))
                    outcome = await connection.transfer(transfer)
                }
                #expect(outcome == .committed, "\(transfer) with node N1 down: \(outcome)")
            }
            try deployment.start(["N1"])
            try await Task.sleep(for: .seconds(2))
            stop.withLock { $0 = true }
            let committed = await load.value
            #expect(committed > 50, "only \(committed) transfers committed under load")

            // Every replica, the restarted ones too, applies what its leader applied, with the same balances.
            try await deployment.expectConsistent(connection, total: 90 * deployment.initialBalance)
            var answeredHere = 0
            for replica in (1...9).map({ "S\($0)" }) {
                let metrics = deployment.metrics(of: replica)
                let applied = metrics?["ledger_slots_applied_total"]
                #expect((applied ?? 0) > 0, "\(replica) serves no metrics of its own: \(String(describing: applied))")
                answeredHere += metrics?["ledger_cross_shard_questions_total{answered=\"here\"}"] ?? 0
            }
            // A replica's question about another cluster's transaction goes first to that cluster's replica on its node.
            #expect(answeredHere > 0, "no question about a cross-shard transaction was answered on the asker's node")
            print("integration: three nodes, one killed and restarted under load (\(committed) transfers committed)")
        }
    }

    /// A replica disconnected by the test controls is one replica, not its node: the other replicas of its node keep
    /// serving their clusters, and a test set's disconnection of S1 takes C1's replica only. Without peer ports: the
    /// nodes send their peers' messages on the gRPC stream of the replica port, as clusters without `peer_port` do.
    @Test(.timeLimit(.minutes(5))) func aDisconnectedReplicaLeavesItsNodesOtherReplicasServing() async throws {
        let deployment = try TestDeployment(clusters: 3, accountsPerCluster: 10, nodes: true, peerPorts: false)
        defer { deployment.stopAll() }
        try deployment.startAll()
        try await LedgerConnection.with(
            deployment: try deployment.deployment(), catalog: try deployment.catalog(),
            as: LedgerConnection.operatorIdentity
        ) {
            connection in
            try await deployment.waitUntilServing(connection)
            let c1 = connection.cluster("C1")!
            let c2 = connection.cluster("C2")!
            try await c1.setConnected(false, replica: ReplicaID(1))
            let before1 = try await c1.status(of: ReplicaID(2)).appliedThrough
            let before4 = try await c2.status(of: ReplicaID(4)).appliedThrough
            for (from, to) in [(1, 2), (11, 12), (21, 22), (3, 13)] {
                let transfer = try Transfer(from: AccountID(UInt64(from)), to: AccountID(UInt64(to)), amount: Amount(1))
                #expect(await connection.transfer(transfer) == .committed, "\(transfer) with S1 disconnected")
            }
            // S4, on S1's node, applies C2's transfers; S1 applies nothing while disconnected.
            let leader2 = try await deployment.waitForLeader(c2, within: .seconds(10))
            let target = try await c2.status(of: leader2).appliedThrough
            #expect(target > before4)
            try await deployment.waitUntilApplied(c2, replica: ReplicaID(4), through: target, within: .seconds(10))
            #expect(try await c1.status(of: ReplicaID(2)).appliedThrough > before1)
            #expect(try await c1.localBalance(of: AccountID(1), at: ReplicaID(1)).balance == deployment.initialBalance)
            try await c1.setConnected(true, replica: ReplicaID(1))
            try await deployment.expectConsistent(connection, total: 30 * deployment.initialBalance)
        }
    }

    /// One round of 24 concurrent transfers over `accounts` accounts in three clusters: a third cross-shard.
    static func transferRound(_ connection: LedgerConnection, round: Int, accounts: Int) async -> Int {
        await withTaskGroup(of: Bool.self) { group in
            for index in 0..<24 {
                let from = 1 + (round * 7 + index * 5) % accounts
                let sameShard = (from - 1) / (accounts / 3) * (accounts / 3) + 1 + (from + index) % (accounts / 3)
                let to = index % 3 == 0 ? 1 + (from + accounts / 3 - 1) % accounts : sameShard
                guard from != to,
                    let transfer = try? Transfer(
                        from: AccountID(UInt64(from)), to: AccountID(UInt64(to)), amount: Amount(1))
                else { continue }
                group.addTask { await connection.transfer(transfer) == .committed }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }
}
