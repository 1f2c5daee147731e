import Foundation
import LedgerCore
import LedgerNode
import LedgerRPC
import LedgerStore
import Logging
import Paxos
import Synchronization
import Testing

/// A home keeps its commit of a cross-shard transaction until the other participant is seen to have applied it
/// (DESIGN §3), whatever the client releases; then it forgets it.
@Suite struct DeliveryTests {
    /// The other participant, C2, as this home sees it: whatever the test says it reports (`reportedOf` for the
    /// transactions it names, else `reported`), and the questions it was asked.
    final class Participant: OtherClusters {
        let reported = Mutex<LedgerState.Report?>(nil)
        let reportedOf = Mutex<[TransactionID: LedgerState.Report]>([:])
        let questions = Mutex<[[TransactionID]]>([])
        let asked = Mutex(0)
        /// What a replica of C2 on the home's node reports (`neighbourReports`), and the questions it was asked.
        let neighbour = Mutex<[TransactionID: LedgerState.Report]>([:])
        let neighbourQuestions = Mutex<[[TransactionID]]>([])

        func decision(of id: TransactionID, home: String) async -> CommandResult? { nil }

        func reports(of ids: [TransactionID], at cluster: String) async -> [TransactionID: LedgerState.Report]? {
            questions.withLock { $0.append(ids) }
            let (reportedOf, reported) = (self.reportedOf.withLock { $0 }, self.reported.withLock { $0 })
            return ids.reduce(into: [:]) { $0[$1] = reportedOf[$1] ?? reported }
        }

        func neighbourReports(of ids: [TransactionID], at cluster: String) async -> [TransactionID: LedgerState.Report]
        {
            neighbourQuestions.withLock { $0.append(ids) }
            let known = neighbour.withLock { $0 }
            return ids.reduce(into: [:]) { $0[$1] = known[$1] }
        }

        func finalReports(of ids: [TransactionID], at cluster: String) async -> [TransactionID: LedgerState.Report]? {
            asked.withLock { $0 += 1 }
            switch reported.withLock({ $0 }) {
            case let report?:
                return report.isFinal ? ids.reduce(into: [:]) { $0[$1] = report } : [:]
            case nil: return nil
            }
        }
    }

    struct NoPeers: PeerSender {
        func send(_ messages: [LedgerMessage], to peer: ReplicaID) {}
    }

    static let id = TransactionID(client: 9, sequence: 1)
    static let transfer = CrossShardTransfer(
        from: AccountID(1), to: AccountID(11), amount: Amount(4), home: "C1", participants: ["C1", "C2"])

    /// A one-replica C1 (accounts 1-10 at balance 10) that asks `participant` about C2; with `members` above 1, a
    /// replica of a larger C1 that never hears from its peers, so it never leads nor applies anything.
    static func withHome(
        _ participant: Participant, members: Int = 1, _ body: (ReplicaNode) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-delivery-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let (store, recovered) = try ReplicaStore.open(
            path: directory.appendingPathComponent("S1.sqlite").path, cluster: "C1", replica: "S1", minBalance: 0)
        let node = ReplicaNode(
            cluster: "C1",
            configuration: Configuration(
                me: ReplicaID(1), members: (1...members).map(ReplicaID.init), leaderTimeoutTicks: 3,
                heartbeatIntervalTicks: 1,
                consensusTimeoutTicks: 50),
            store: store, recovered: recovered, peers: NoPeers(), accounts: [AccountID(1)...AccountID(10)],
            initialBalance: 10, seed: 1, logger: Logger(label: "test"), otherClusters: participant,
            onFailure: { _ in })
        let ticker = Task {
            while !Task.isCancelled {
                await node.tick()
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
        defer { ticker.cancel() }
        for _ in 0..<(members == 1 ? 2_000 : 0) where await node.localBalance(of: AccountID(1)).balance == nil {
            try await Task.sleep(for: .milliseconds(2))
        }
        try await body(node)
    }

    /// Prepares `count` cross-shard transfers of 4 at `node` (C1), transaction ids 9.1, 9.2, ...: the i-th between
    /// account i of C1 and account 10 + i of C2, from the one at `home`.
    static func prepared(_ count: Int, at node: ReplicaNode, home: String) async throws -> (
        ids: [TransactionID], transfers: [CrossShardTransfer]
    ) {
        let transfers = (1...count).map {
            let (here, there) = (AccountID(UInt64($0)), AccountID(UInt64(10 + $0)))
            return CrossShardTransfer(
                from: home == "C1" ? here : there, to: home == "C1" ? there : here, amount: Amount(4), home: home,
                participants: ["C1", "C2"])
        }
        let ids = (1...count).map { TransactionID(client: 9, sequence: UInt64($0)) }
        #expect(
            try await node.submit(batch: zip(ids, transfers).map { .prepare($0, $1) })
                == Array(repeating: .applied(.preparedYes), count: count))
        return (ids, transfers)
    }

    /// Waits (a bounded number of ticks' worth) until `condition` holds of the node's state.
    static func eventually(_ node: ReplicaNode, _ condition: (LedgerState) -> Bool) async throws -> Bool {
        for _ in 0..<1_000 {
            if condition(await node.state) { return true }
            try await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    @Test func theHomeForgetsItsCommitOnlyOnceTheParticipantAppliedIt() async throws {
        let participant = Participant()
        try await Self.withHome(participant) { node in
            #expect(try await node.submit(.prepare(Self.id, Self.transfer)) == .applied(.preparedYes))
            participant.reported.withLock { $0 = .prepared(.transfer(Self.transfer), home: "C1") }
            #expect(try await node.submit(.commit(Self.id)) == .applied(.committed))
            #expect(await node.state.undelivered == [Self.id])

            // The client releases it; the participant still reports it prepared, then unknown (a replica that lags):
            // neither is an acknowledgement, so the home keeps answering committed.
            _ = try await node.submit(.release(client: 9, floor: 2))
            let askedBefore = participant.asked.withLock { $0 }
            #expect(try await Self.eventually(node) { _ in participant.asked.withLock { $0 } > askedBefore })
            participant.reported.withLock { $0 = .unknown }
            try await Task.sleep(for: .milliseconds(300))
            #expect(await node.state.undelivered == [Self.id])
            #expect(await node.transactionStatuses(of: [Self.id])[0].report == .committed)

            // It applied the commit: the home proposes `delivered` and, the client having released it, forgets it.
            participant.reported.withLock { $0 = .committed }
            #expect(try await Self.eventually(node) { $0.undelivered.isEmpty && $0.transactions[Self.id] == nil })
            #expect(await node.transactionStatuses(of: [Self.id])[0].report == .expired)
            // A retry of the commit is answered expired, and changes nothing.
            let balance = await node.localBalance(of: AccountID(1)).balance
            guard case .applied(.expired) = try await node.submit(.commit(Self.id)) else {
                Issue.record("a commit below the floor was not answered expired")
                return
            }
            #expect(await node.localBalance(of: AccountID(1)).balance == balance)
        }
    }

    /// A client's batch of commits costs the home one question to the other participant, not one per commit, and each
    /// commit still gets its own verdict: committed where the participant prepared the same terms, refused where it
    /// prepared other terms, no quorum (nothing proposed; the commit may be sent again) where it gave no answer.
    @Test func theHomeAsksTheParticipantOnceForABatchOfCommits() async throws {
        let participant = Participant()
        try await Self.withHome(participant) { node in
            let (ids, transfers) = try await Self.prepared(3, at: node, home: "C1")
            let other = CrossShardTransfer(
                from: AccountID(2), to: AccountID(12), amount: Amount(5), home: "C1", participants: ["C1", "C2"])
            participant.reportedOf.withLock {
                $0 = [
                    ids[0]: .prepared(.transfer(transfers[0]), home: "C1"),
                    ids[1]: .prepared(.transfer(other), home: "C1"),
                ]
            }
            participant.questions.withLock { $0 = [] }

            let outcomes = try await node.submit(batch: ids.map { .commit($0) })
            #expect(participant.questions.withLock { $0 } == [ids])
            #expect(outcomes[0] == .applied(.committed))
            guard case .applied(.refused(let message)) = outcomes[1] else {
                Issue.record("a commit the participant prepared on other terms was not refused: \(outcomes[1])")
                return
            }
            #expect(message.contains("C2 prepared"))
            #expect(outcomes[2] == .failed(.noQuorum))
            #expect(await node.localBalance(of: AccountID(1)).balance == 6)
            #expect(await node.state.transactions[ids[1]]?.isFinal == false)
        }
    }

    /// A replica of the participant on the home's node (a neighbour) answers what any replica may: the home asks the
    /// participant's cluster only about the commits the neighbour has not seen prepared, and a neighbour's report of
    /// other terms refuses the commit as the cluster's would.
    @Test func aNeighbourAnswersTheHomeWhatItPrepared() async throws {
        let participant = Participant()
        try await Self.withHome(participant) { node in
            let (ids, transfers) = try await Self.prepared(3, at: node, home: "C1")
            let other = CrossShardTransfer(
                from: AccountID(3), to: AccountID(13), amount: Amount(5), home: "C1", participants: ["C1", "C2"])
            participant.neighbour.withLock {
                $0 = [
                    ids[0]: .prepared(.transfer(transfers[0]), home: "C1"),
                    ids[2]: .prepared(.transfer(other), home: "C1"),
                ]
            }
            participant.reported.withLock { $0 = .prepared(.transfer(transfers[1]), home: "C1") }

            let outcomes = try await node.submit(batch: ids.map { .commit($0) })
            #expect(participant.neighbourQuestions.withLock { $0 } == [ids])
            #expect(
                participant.questions.withLock { $0 } == [[ids[1]]], "the cluster was asked what the neighbour knew")
            #expect(outcomes[0] == .applied(.committed))
            #expect(outcomes[1] == .applied(.committed))
            guard case .applied(.refused(let message)) = outcomes[2] else {
                Issue.record("a commit the neighbour saw prepared on other terms was not refused: \(outcomes[2])")
                return
            }
            #expect(message.contains("C2 prepared"))
            #expect(await node.localBalance(of: AccountID(1)).balance == 6)
            #expect(await node.localBalance(of: AccountID(3)).balance == 10)
        }
    }

    /// A participant learns its home's decision from a neighbour (a replica of the home on its node) only when the
    /// neighbour applied one: a neighbour that saw the transaction prepared may lag the home's commit, so the home
    /// cluster is asked.
    @Test func aNeighbourOfTheHomeAnswersOnlyWithADecision() async throws {
        let home = Participant()
        try await Self.withHome(home) { node in
            // Transfers from C2 (the home) to this cluster, C1.
            let (ids, transfers) = try await Self.prepared(2, at: node, home: "C2")
            home.neighbour.withLock {
                $0 = [ids[0]: .committed, ids[1]: .prepared(.transfer(transfers[1]), home: "C2")]
            }
            home.reported.withLock { $0 = .committed }

            let outcomes = try await node.submit(batch: ids.map { .commit($0) })
            #expect(home.questions.withLock { $0 } == [[ids[1]]], "a neighbour's prepared was taken for the home's")
            #expect(outcomes == [.applied(.committed), .applied(.committed)])
            #expect(await node.localBalance(of: AccountID(1)).balance == 14)
            #expect(await node.localBalance(of: AccountID(2)).balance == 14)
        }
    }

    /// What a replica reports to its neighbours: every report but unknown, and nothing while disconnected.
    @Test func aReplicaTellsItsNeighboursOnlyWhatAnyReplicaMayReport() async throws {
        try await Self.withHome(Participant()) { (node: ReplicaNode) async throws in
            #expect(try await node.submit(.prepare(Self.id, Self.transfer)) == .applied(.preparedYes))
            let unseen = TransactionID(client: 9, sequence: 2)
            #expect(
                await node.settledReports(of: [Self.id, unseen])
                    == [Self.id: .prepared(.transfer(Self.transfer), home: "C1")])
            await node.setConnected(false)
            #expect(await node.settledReports(of: [Self.id]).isEmpty)
        }
    }

    /// "Unknown" speaks for the cluster only from its leader, after a read index: a follower may not yet have applied
    /// a prepare its cluster chose (its leader died before telling it), and a home that took its "unknown" for the
    /// cluster's would refuse a commit both participants voted for. "Prepared" is true from any replica, at once.
    @Test func anUnknownStatusSpeaksForTheClusterOnlyFromItsLeader() async throws {
        try await Self.withHome(Participant()) { (leader: ReplicaNode) async throws in
            let unknown = await leader.transactionStatuses(of: [Self.id])[0]
            #expect(unknown.report == .unknown && unknown.linearizable)
            #expect(unknown.clusterReport == .unknown)
            #expect(try await leader.submit(.prepare(Self.id, Self.transfer)) == .applied(.preparedYes))
            let prepared = await leader.transactionStatuses(of: [Self.id])[0]
            #expect(prepared.clusterReport == .prepared(.transfer(Self.transfer), home: "C1"))
        }
        try await Self.withHome(Participant(), members: 3) { follower in
            let unknown = await follower.transactionStatuses(of: [Self.id])[0]
            #expect(unknown.report == .unknown && !unknown.linearizable)
            #expect(unknown.clusterReport == nil, "a follower's unknown is not the cluster's")
        }
    }
}
