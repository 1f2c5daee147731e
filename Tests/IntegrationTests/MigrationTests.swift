import Foundation
import LedgerCore
import LedgerRPC
import Paxos
import Testing

@testable import LedgerClient

extension ClusterProcessTests {
    /// Today's replicas start on the files the release before store schema 4 wrote (`Fixtures/schema3`, made by its
    /// `make.sh`): each file migrates in place and says so in its log; the balances and the history of the old run
    /// are all there, the same on every replica; a retry of an old transfer is answered expired, not applied again;
    /// the homes' old cross-shard commits are confirmed delivered; and new transfers commit.
    @Test(.timeLimit(.minutes(5))) func replicasStartOnTheFilesOfStoreSchema3() async throws {
        let deployment = try TestDeployment(clusters: 2, accountsPerCluster: 20, tls: false, metrics: true)
        defer { deployment.stopAll() }
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/schema3")
        for cluster in deployment.clusterNames {
            let data = deployment.directory.appendingPathComponent("data/\(cluster)")
            try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
            for replica in deployment.replicas(of: cluster) {
                try FileManager.default.copyItem(
                    at: fixture.appendingPathComponent("\(replica).sqlite"),
                    to: data.appendingPathComponent("\(replica).sqlite"))
            }
        }
        try deployment.startAll()
        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: try deployment.catalog()) {
            connection in
            try await deployment.waitUntilServing(connection)
            for replica in deployment.clusterNames.flatMap(deployment.replicas(of:)) {
                let log = try String(
                    contentsOf: deployment.directory.appendingPathComponent("\(replica).log"), encoding: .utf8)
                #expect(log.contains("store migrated"), "\(replica) did not say it migrated its file")
            }

            // What the old run left: 1 -> 2 (4), 3 -> 25 (3), 22 -> 5 (2), 26 -> 27 (1); 7 -> 8 (50) was refused.
            let old: [UInt64: Int64] = [1: 6, 2: 14, 3: 7, 25: 13, 22: 8, 5: 12, 26: 9, 27: 11, 7: 10, 8: 10]
            for (account, balance) in old {
                #expect(await connection.balance(of: AccountID(account)) == .success(balance), "account \(account)")
            }
            let c1 = connection.cluster("C1")!
            let history = try await c1.datastore(of: ReplicaID(1))
            #expect(history.count == 3, "C1's old datastore: \(history)")

            // The old client's first transfer, sent again: its session was carried over with its floor above every
            // sequence it used, so the retry is expired, and the datastore keeps one row of it.
            let first = try #require(history.first { if case .transfer = $0.kind { true } else { false } })
            let retry = await connection.command(
                .transfer(first.transaction, from: AccountID(1), to: AccountID(2), amount: Amount(4)), to: "C1")
            guard case .applied(.expired) = retry else {
                Issue.record("a retry of an old transfer was answered \(retry), not expired")
                return
            }

            // The homes' old cross-shard commits are delivered (each home asks the other participant), so nothing
            // stays pinned; new transfers, inside a cluster and across, commit.
            for replica in deployment.clusterNames.flatMap(deployment.replicas(of:)) {
                var undelivered: Int?
                for _ in 0..<100 {
                    undelivered = deployment.metrics(of: replica)?["ledger_commits_undelivered"]
                    if undelivered == 0 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(
                    undelivered == 0, "\(replica) still holds \(String(describing: undelivered)) undelivered commits")
            }
            for (from, to) in [(1, 2), (4, 30), (31, 32)] {
                let transfer = try Transfer(from: AccountID(UInt64(from)), to: AccountID(UInt64(to)), amount: Amount(1))
                #expect(await connection.transfer(transfer) == .committed, "\(from) -> \(to)")
            }
            try await deployment.expectConsistent(connection, total: Int64(40) * deployment.initialBalance)
            for cluster in connection.clusters {
                let datastores = try await cluster.replicas.asyncMap { try await cluster.datastore(of: $0) }
                #expect(datastores.allSatisfy { $0 == datastores[0] }, "\(cluster.cluster): datastores differ")
            }
        }
    }
}
