import Foundation
import LedgerCore
import LedgerRPC
import LedgerStore
import Paxos
import Testing

@testable import LedgerClient

/// Account moves (DESIGN §6) on real replica processes: moves racing transfers, and moves whose client or source
/// leader dies half-way. Each ends with money conserved, every account in exactly one cluster (on every replica of
/// it), identical replicas and no lock held.
extension ClusterProcessTests {
    /// Four clients keep transferring between all accounts while ten accounts move to the other cluster and five of
    /// them move back: every move completes, transfers that met a move were applied before it or routed after it,
    /// and nothing is lost.
    @Test(.timeLimit(.minutes(4))) func movesRaceTransfersWithoutLosingMoney() async throws {
        let deployment = try TestDeployment(clusters: 2, accountsPerCluster: 20, consensusTimeout: "1000ms")
        defer { deployment.stopAll() }
        try deployment.startAll()
        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: try deployment.catalog()) {
            connection in
            try await deployment.waitUntilServing(connection)
            let movesDone = Flag()
            let load = Task {
                try await withThrowingTaskGroup(of: [TransferOutcome].self) { group in
                    for worker in 0..<4 {
                        group.addTask {
                            var random = SeededRandom(seed: UInt64(100 + worker))
                            var outcomes: [TransferOutcome] = []
                            // Bounded in count; the moves finish well before.
                            while outcomes.count < 400, !movesDone.isSet || outcomes.count < 40 {
                                let from = UInt64.random(in: 1...40, using: &random)
                                let to = (from + UInt64.random(in: 1...39, using: &random) - 1) % 40 + 1
                                let transfer = try Transfer(
                                    from: AccountID(from), to: AccountID(to), amount: Amount(1))
                                outcomes.append(await connection.transfer(transfer))
                            }
                            return outcomes
                        }
                    }
                    var all: [TransferOutcome] = []
                    for try await outcomes in group { all += outcomes }
                    return all
                }
            }
            var moves: [MoveOutcome] = []
            for account in 1...10 {
                moves.append(
                    await connection.move(AccountMove(account: AccountID(UInt64(account)), from: "C1", to: "C2")))
            }
            for account in 1...5 {
                moves.append(
                    await connection.move(AccountMove(account: AccountID(UInt64(account)), from: "C2", to: "C1")))
            }
            movesDone.set()
            let outcomes = try await load.value
            #expect(moves.allSatisfy { if case .moved = $0 { true } else { false } }, "\(moves)")
            #expect(outcomes.allSatisfy { if case .unknown = $0 { false } else { true } }, "an unknown outcome")
            let committed = outcomes.filter { $0 == .committed }.count
            #expect(committed > outcomes.count / 2, "only \(committed) of \(outcomes.count) transfers committed")

            // A re-run of the same moves changes nothing.
            #expect(await connection.move(AccountMove(account: AccountID(7), from: "C1", to: "C2")) == .alreadyThere)
            for account in 1...10 {
                #expect(connection.catalog.cluster(of: AccountID(UInt64(account))) == (account <= 5 ? "C1" : "C2"))
            }
            try await deployment.expectConsistent(connection, total: 40 * deployment.initialBalance)
            try await deployment.expectEachAccountInOneCluster(connection)
            print(
                "integration: 15 moves raced \(outcomes.count) transfers (\(committed) committed); money conserved")
        }
    }

    /// A move whose client dies with both votes in hand is aborted by the source's recovery (the account stays,
    /// a late commit is refused); one whose client dies right after the source committed is finished by the
    /// target's recovery; one whose source leader is killed after its vote completes on the new leader.
    @Test(.timeLimit(.minutes(4))) func aMoveSurvivesItsClientAndLeaders() async throws {
        let deployment = try TestDeployment(clusters: 2, accountsPerCluster: 20, consensusTimeout: "1000ms")
        defer { deployment.stopAll() }
        try deployment.startAll()
        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: try deployment.catalog()) {
            connection in
            try await deployment.waitUntilServing(connection)
            let participants = ["C1", "C2"]
            func prepareBoth(_ account: UInt64) async -> TransactionID {
                let id = connection.nextTransaction()
                let out = await connection.submit(
                    .prepareMove(id, home: "C1", participants: participants, part: .out(AccountID(account), to: "C2")),
                    to: "C1")
                #expect(out == .applied(.preparedMove(balance: 10)))
                let into = await connection.submit(
                    .prepareMove(
                        id, home: "C1", participants: participants,
                        part: .into(AccountID(account), balance: 10, from: "C1")),
                    to: "C2")
                #expect(into == .applied(.preparedYes))
                return id
            }

            // The client dies holding both votes: the source (the home) aborts on its own, the target asks it.
            let abandoned = await prepareBoth(3)
            #expect(
                await connection.transfer(try Transfer(from: AccountID(3), to: AccountID(4), amount: Amount(1)))
                    != .committed, "a transfer went through a locked account")
            try await deployment.waitUntilNoLocks(connection, within: .seconds(30))
            #expect(await connection.balance(of: AccountID(3)) == .success(10))
            #expect(
                await connection.submit(.commit(abandoned), to: "C1")
                    == .applied(.refused("\(abandoned) was aborted; it cannot commit")))

            // The client dies right after the commit point: the target learns the decision from the source.
            let decided = await prepareBoth(4)
            #expect(await connection.submit(.commit(decided), to: "C1") == .applied(.committed))
            try await deployment.waitUntilNoLocks(connection, within: .seconds(30))
            connection.recordMove(AccountID(4), to: "C2")
            #expect(await connection.balance(of: AccountID(4)) == .success(10))

            // The source's leader dies after its vote: the prepared move survives in its log.
            let id = connection.nextTransaction()
            let out = await connection.submit(
                .prepareMove(id, home: "C1", participants: participants, part: .out(AccountID(5), to: "C2")), to: "C1")
            #expect(out == .applied(.preparedMove(balance: 10)))
            let leader = try await deployment.waitForLeader(connection.cluster("C1")!, within: .seconds(10))
            deployment.kill(leader)
            #expect(
                await connection.submit(
                    .prepareMove(
                        id, home: "C1", participants: participants, part: .into(AccountID(5), balance: 10, from: "C1")),
                    to: "C2") == .applied(.preparedYes))
            #expect(await connection.submit(.commit(id), to: "C1") == .applied(.committed))
            #expect(await connection.submit(.commit(id), to: "C2") == .applied(.committed))
            connection.recordMove(AccountID(5), to: "C2")
            // A client with the old catalog is sent to the new owner.
            let transfer = try Transfer(from: AccountID(5), to: AccountID(6), amount: Amount(2))
            #expect(await connection.transfer(transfer) == .committed)
            try deployment.start([leader.description])
            try await deployment.expectConsistent(connection, total: 40 * deployment.initialBalance)
            try await deployment.expectEachAccountInOneCluster(connection)
            #expect(connection.catalog.cluster(of: AccountID(3)) == "C1")
            print("integration: moves survived a dead client (twice) and a killed source leader")
        }
    }
}

extension TestDeployment {
    /// Every account exists on every replica of exactly one cluster, the one the connection's catalog names, and on
    /// no replica of any other.
    func expectEachAccountInOneCluster(_ connection: LedgerConnection) async throws {
        for account in accounts {
            var holders: Set<String> = []
            for cluster in connection.clusters {
                for replica in cluster.replicas {
                    let local = try await cluster.localBalance(of: account, at: replica)
                    if local.balance != nil { holders.insert("\(cluster.cluster)/\(replica)") }
                }
            }
            let owner = try #require(connection.catalog.cluster(of: account))
            let expected = Set(replicas(of: owner).map { "\(owner)/\($0)" })
            #expect(holders == expected, "account \(account) is held by \(holders.sorted())")
        }
    }
}

/// A thread-safe flag: set once, read by many.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool { lock.withLock { value } }

    func set() { lock.withLock { value = true } }
}
