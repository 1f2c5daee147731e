import Foundation
import LedgerCore
import LedgerRPC
import Paxos
import Testing

@testable import LedgerClient

extension ClusterProcessTests {
    /// The exactly-once window moves while a replica is down: clients finish and release their transactions, a
    /// client leaves for a new id, cross-shard commits are delivered and forgotten, and the log is compacted past the
    /// down replica. Restarted from its own file, it needs a snapshot (the state and only the history rows it lacks);
    /// a leader killed and restarted afterwards recovers from its file. Then every replica of a cluster holds the same
    /// balances, the same WAL and datastore rows and the same window, and a retry of a released transfer is answered
    /// expired, not applied again.
    @Test(.timeLimit(.minutes(6))) func aLaggardAndARestartedReplicaRecoverAfterTheWindowMoved() async throws {
        let deployment = try TestDeployment(
            clusters: 2, accountsPerCluster: 20, snapshotInterval: 32, metrics: true)
        defer { deployment.stopAll() }
        try deployment.startAll()
        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: try deployment.catalog()) {
            connection in
            try await deployment.waitUntilServing(connection)
            let c1 = connection.cluster("C1")!
            let c2 = connection.cluster("C2")!

            let early = try Transfer(from: AccountID(1), to: AccountID(2), amount: Amount(1))
            let (earlyOutcome, earlyID) = await connection.tracedTransfer(early)
            #expect(earlyOutcome == .committed)
            let leader = try await deployment.waitForLeader(c1, within: .seconds(10))
            let laggard = c1.replicas.first { $0 != leader }!
            let laggardApplied = try await c1.status(of: laggard).appliedThrough
            deployment.kill(laggard)

            // Rounds of transfers inside C1 and between C1 and C2, both ways, from two client ids in turn.
            var committed = 1
            for round in 0..<12 {
                if round == 6 { connection.startNewSession() }
                let transfers = try (0..<16).map { index in
                    let from = UInt64(1 + (round + index) % 20)
                    let to = index % 2 == 0 ? UInt64(1 + (round + index + 7) % 20) : UInt64(21 + index)
                    return try Transfer(
                        from: AccountID(index % 4 == 3 ? to : from), to: AccountID(index % 4 == 3 ? from : to),
                        amount: Amount(1))
                }
                committed += await withTaskGroup(of: Bool.self) { group in
                    for transfer in transfers {
                        group.addTask { await connection.transfer(transfer) == .committed }
                    }
                    return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
                }
            }
            #expect(committed > 100, "only \(committed) transfers committed")

            // The release of the first client's floor has reached C1 (it rides on a batch): the early transfer is
            // forgotten there, and its retry is answered expired.
            let id = try #require(earlyID)
            let retry = await connection.command(
                .transfer(id, from: early.from, to: early.to, amount: early.amount), to: "C1")
            guard case .applied(.expired) = retry else {
                Issue.record("a retry of a released transfer was answered \(retry), not expired")
                return
            }
            let applied = try await c1.datastore(of: leader).filter { $0.transaction == id }
            #expect(applied.count == 1, "the early transfer's datastore rows: \(applied)")

            // The log was compacted past the laggard: only a snapshot brings it back.
            let compacted = try await c1.status(of: leader).snapshotSlot
            #expect(compacted > laggardApplied + 1, "the leader's log still reaches the laggard's slot")
            try deployment.start([laggard.description])
            let target = try await c1.status(of: leader).appliedThrough
            try await deployment.waitUntilApplied(c1, replica: laggard, through: target, within: .seconds(60))
            #expect(try await c1.status(of: laggard).snapshotSlot >= compacted)

            // A restarted leader of C2 recovers its window from its own file.
            let c2Leader = try await deployment.waitForLeader(c2, within: .seconds(10))
            deployment.kill(c2Leader)
            try deployment.start([c2Leader.description])
            let last = try Transfer(from: AccountID(21), to: AccountID(3), amount: Amount(1))
            #expect(await connection.transfer(last) == .committed)

            try await deployment.expectConsistent(connection, total: Int64(40) * deployment.initialBalance)
            for cluster in [c1, c2] {
                try await expectSameHistoryAndWindow(cluster, deployment)
            }
            print("integration: window moved past a laggard (\(committed) transfers, log compacted to \(compacted))")
        }
    }

    /// Every replica of `cluster` holds the same WAL and datastore rows and, once the same slot is applied
    /// everywhere (the gauges follow within a second, and a pending delivery may still change one), the same numbers of
    /// remembered transactions and client sessions: a few, against the hundreds of transactions in the history.
    private func expectSameHistoryAndWindow(_ cluster: ClusterClient, _ deployment: TestDeployment) async throws {
        let wal = try await cluster.replicas.asyncMap { try await cluster.logs(of: $0) }
        let datastore = try await cluster.replicas.asyncMap { try await cluster.datastore(of: $0) }
        #expect(wal.allSatisfy { $0 == wal[0] }, "\(cluster.cluster): the replicas' WALs differ")
        #expect(datastore.allSatisfy { $0 == datastore[0] }, "\(cluster.cluster): the replicas' datastores differ")
        var window: [[Int?]] = []
        for _ in 0..<50 {
            window = cluster.replicas.map { replica in
                let metrics = deployment.metrics(of: replica.description)
                return [metrics?["ledger_transactions_remembered"], metrics?["ledger_client_sessions"]]
            }
            if window.allSatisfy({ $0 == window[0] && !$0.contains(nil) }) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(window.allSatisfy { $0 == window[0] && !$0.contains(nil) }, "\(cluster.cluster): windows \(window)")
        #expect((window[0][0] ?? .max) < wal[0].count / 4, "\(cluster.cluster) remembers \(window[0]) transactions")
    }
}

extension Sequence {
    /// `map` with an async transform, one element at a time.
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
