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
    @Test(.timeLimit(.minutes(6))) func movesRaceTransfersWithoutLosingMoney() async throws {
        try await TestDeployment.withRunning(clusters: 2, accountsPerCluster: 20, consensusTimeout: "1000ms") {
            deployment, connection in
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
            #expect(outcomes.unknownReasons.isEmpty, "unknown outcomes: \(outcomes.unknownReasons.prefix(3))")
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
    @Test(.timeLimit(.minutes(6))) func aMoveSurvivesItsClientAndLeaders() async throws {
        try await TestDeployment.withRunning(clusters: 2, accountsPerCluster: 20, consensusTimeout: "1000ms") {
            deployment, connection in
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
            // C1 elects a new leader first, and its commit waits for the target's confirmation: on a busy machine that
            // may outlast one try, so the client sends the commit again (same id) as a coordinator would.
            #expect(await Self.commit(id, at: "C1", connection) == .applied(.committed))
            #expect(await Self.commit(id, at: "C2", connection) == .applied(.committed))
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

    /// Sends a commit until it is answered committed or aborted, or 30 s pass; returns the last answer. A commit whose
    /// answer did not come in time, or that a participant refused while its home was still deciding, is sent again
    /// under the same id: applied at most once.
    static func commit(_ id: TransactionID, at cluster: String, _ connection: LedgerConnection) async
        -> Coordinator.Answer
    {
        let deadline = ContinuousClock.now + .seconds(30)
        var answer = await connection.submit(.commit(id), to: cluster)
        while ContinuousClock.now < deadline {
            switch answer {
            case .applied(.committed), .applied(.aborted): return answer
            default:
                try? await Task.sleep(for: .milliseconds(200))
                answer = await connection.submit(.commit(id), to: cluster)
            }
        }
        return answer
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

extension ClusterProcessTests {
    /// The whole path a user takes: a workload whose accounts transact in triples spread over three clusters is
    /// replayed, `shardctl rebalance` plans from the clusters' committed history, `client rebalance` applies the plan
    /// while another client keeps transferring, and the same workload replayed again is (nearly) all intra-shard.
    @Test(.timeLimit(.minutes(7))) func planAndApplyOnlineCutsCrossShardTraffic() async throws {
        let deployment = try TestDeployment(clusters: 3, accountsPerCluster: 30, consensusTimeout: "1000ms")
        defer { deployment.stopAll() }
        try deployment.startAll()
        let hosts = ["--hosts", deployment.hostsPath]
        let workload = deployment.directory.appendingPathComponent("workload.csv").path
        try Self.tripleWorkload(transfers: 240).write(toFile: workload, atomically: true, encoding: .utf8)

        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: try deployment.catalog()) {
            connection in
            try await deployment.waitUntilServing(connection)
            let first = try runClient(
                ["run", workload, "--batch", "--sequential"] + hosts, in: deployment.directory, within: .seconds(120))
            #expect(first.status == 0, "replay exited \(first.status):\n\(first.output)")
            let afterFirst = try await deployment.committedKinds(connection)

            let schema = deployment.directory.appendingPathComponent("new-schema.txt").path
            let plan = try runTool(
                "shardctl", ["rebalance", "--out", schema] + hosts, in: deployment.directory, within: .seconds(60))
            #expect(plan.status == 0, "shardctl exited \(plan.status):\n\(plan.output)")
            let planned = try RebalanceSchema.parse(try String(contentsOfFile: schema, encoding: .utf8), source: schema)
            #expect(!planned.moves.isEmpty, "no moves planned:\n\(plan.output)")

            let predicted = try #require(
                planned.comments.first { $0.hasPrefix("Cross-shard transfers after the plan:") }
                    .flatMap { Self.fraction(in: $0) },
                "no predicted fraction in \(planned.comments)")

            // Four more clients keep transferring inside the triples, with the catalog they started with.
            let stop = Flag()
            let background = Task {
                try await withThrowingTaskGroup(of: [TransferOutcome].self) { group in
                    for worker in 0..<4 {
                        group.addTask {
                            var outcomes: [TransferOutcome] = []
                            var random = SeededRandom(seed: UInt64(7 + worker))
                            while !stop.isSet, outcomes.count < 2_000 {
                                let (from, to) = Self.tripleTransfer(&random)
                                outcomes.append(
                                    await connection.transfer(try Transfer(from: from, to: to, amount: Amount(1))))
                            }
                            return outcomes
                        }
                    }
                    var all: [TransferOutcome] = []
                    for try await outcomes in group { all += outcomes }
                    return all
                }
            }
            let applied = try runClient(["rebalance", schema] + hosts, in: deployment.directory, within: .seconds(120))
            stop.set()
            let raced = try await background.value
            #expect(applied.status == 0, "client rebalance exited \(applied.status):\n\(applied.output)")
            #expect(applied.output.contains("moved \(planned.moves.count), already there 0, not moved 0"))
            #expect(raced.unknownReasons.isEmpty, "unknown outcomes: \(raced.unknownReasons.prefix(3))")
            #expect(raced.contains(.committed), "no transfer committed while the plan was applied")

            // Running the plan again changes nothing.
            let again = try runClient(["rebalance", schema] + hosts, in: deployment.directory, within: .seconds(120))
            #expect(
                again.output.contains("moved 0, already there \(planned.moves.count), not moved 0"), "\(again.output)")

            let beforeSecond = try await deployment.committedKinds(connection)
            let second = try runClient(
                ["run", workload, "--batch", "--sequential"] + hosts, in: deployment.directory, within: .seconds(120))
            #expect(second.status == 0, "replay exited \(second.status):\n\(second.output)")
            let afterSecond = try await deployment.committedKinds(connection)
            let before = afterFirst.crossShardFraction
            let after = afterSecond.minus(beforeSecond).crossShardFraction
            #expect(before > 0.95, "the first replay was \(before) cross-shard")
            #expect(after <= before * 0.2, "cross-shard fraction \(before) -> \(after): cut by less than 80%")
            // The replay meets what the plan predicted from the same history (a few transfers may differ: funds).
            #expect(abs(after - predicted) <= 0.05, "measured \(after), the plan predicted \(predicted)")

            // A moved account is found in its new cluster; the books balance.
            let moved = planned.moves[0]
            let printed = try runClient(
                ["print-balance", "\(moved.account)"] + hosts, in: deployment.directory, within: .seconds(30))
            let targetReplicas = deployment.replicas(of: moved.to)
            #expect(
                printed.output.hasPrefix(targetReplicas.map { "\($0): " }.first!),
                "print-balance \(moved.account) answered \(printed.output)")
            try await LedgerConnection.with(
                deployment: try deployment.deployment(), catalog: try deployment.catalog()
            ) { fresh in
                try await deployment.expectConsistent(fresh, total: 90 * deployment.initialBalance)
                try await deployment.expectEachAccountInOneCluster(fresh)
            }
            print(
                "integration: rebalance moved \(planned.moves.count) accounts; cross-shard fraction of the workload "
                    + "\(before) -> \(after) (planned \(predicted)); \(raced.count) transfers raced the moves")
        }
    }

    /// `0.0125` from a plan comment like `Cross-shard transfers after the plan: 1.25% (3 of 240)`.
    static func fraction(in comment: String) -> Double? {
        guard let open = comment.lastIndex(of: "("), let of = comment.range(of: " of ", range: open..<comment.endIndex),
            let part = Double(comment[comment.index(after: open)..<of.lowerBound]),
            let whole = Double(comment[of.upperBound...].dropLast()), whole > 0
        else { return nil }
        return part / whole
    }

    /// Account `i` of cluster C1 transacts with `i + 30` (C2) and `i + 60` (C3) only: 30 triples, each spread over
    /// the three clusters.
    static func tripleTransfer(_ random: inout SeededRandom) -> (AccountID, AccountID) {
        let base = UInt64.random(in: 1...30, using: &random)
        let members = [base, base + 30, base + 60]
        let from = Int.random(in: 0..<3, using: &random)
        let to = (from + Int.random(in: 1...2, using: &random)) % 3
        return (AccountID(members[from]), AccountID(members[to]))
    }

    /// One test set of `transfers` triple transfers with every server live.
    static func tripleWorkload(transfers: Int) -> String {
        var random = SeededRandom(seed: 2026)
        var lines: [String] = []
        for index in 0..<transfers {
            let (from, to) = tripleTransfer(&random)
            lines.append(
                index == 0
                    ? "1,\"(\(from), \(to), 1)\",\"[S1, S2, S3, S4, S5, S6, S7, S8, S9]\",\"[S1, S4, S7]\""
                    : ",\"(\(from), \(to), 1)\",,")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// What the clusters committed, by kind: intra-shard transfers, and cross-shard transactions (counted once, however
/// many participants record them).
struct CommittedKinds {
    var intraShard: Int
    var crossShard: Int

    var crossShardFraction: Double { Double(crossShard) / Double(max(1, intraShard + crossShard)) }

    func minus(_ earlier: CommittedKinds) -> CommittedKinds {
        CommittedKinds(intraShard: intraShard - earlier.intraShard, crossShard: crossShard - earlier.crossShard)
    }
}

extension TestDeployment {
    /// Counts the committed transfers in the datastore of each cluster's leader.
    func committedKinds(_ connection: LedgerConnection) async throws -> CommittedKinds {
        var intra = 0
        var cross: Set<TransactionID> = []
        for cluster in connection.clusters {
            let leader = try await waitForLeader(cluster, within: .seconds(10))
            for record in try await cluster.datastore(of: leader) {
                switch record.kind {
                case .transfer: intra += 1
                case .crossShard: cross.insert(record.transaction)
                case .moveOut, .moveIn: break
                }
            }
        }
        return CommittedKinds(intraShard: intra, crossShard: cross.count)
    }
}
