import Foundation
import LedgerCore
import LedgerRPC
import Paxos
import Testing

@testable import LedgerClient

/// DESIGN §5.5 on real replica processes: a client holding a valid client certificate sends, command by command, what
/// an attacker would (issue 21): credit-only prepares, prepares naming the wrong home or participants, commits the
/// home did not make, different terms at each participant, decisions only replicas may propose, reused transaction
/// ids. Each is refused or has no effect; at the end the total over every account is the initial total, the replicas
/// of each cluster agree, and no lock is held.
@Suite(.serialized, .sharesMachine) struct AdversarialClientTests {
    /// C1 holds accounts 1...10, C2 11...20, each with 10.
    static let total: Int64 = 200

    @Test(.timeLimit(.minutes(6))) func aHostileClientCannotCreateOrDestroyMoney() async throws {
        try await TestDeployment.withRunning(clusters: 2, accountsPerCluster: 10, consensusTimeout: "1000ms") {
            deployment, connection in
            let c1 = try #require(connection.clusters.first { $0.cluster == "C1" })
            let c2 = try #require(connection.clusters.first { $0.cluster == "C2" })
            let leaders = [
                "C1": try await deployment.waitForLeader(c1, within: .seconds(60)),
                "C2": try await deployment.waitForLeader(c2, within: .seconds(60)),
            ]
            let clients = ["C1": c1, "C2": c2]
            // The client retries a command whose outcome is unknown (same id) until its deadline: long, since what is
            // checked is each answer, not how soon it comes on a machine running every suite at once.
            let patience = Duration.seconds(60)
            func send(_ command: LedgerCommand, to cluster: String) async -> CommandOutcome {
                await clients[cluster]!.submit(command, contact: leaders[cluster]!, deadline: .now + patience)
            }
            func transfer(
                _ from: UInt64, _ to: UInt64, _ amount: Int64, home: String = "C1",
                in participants: [String] = ["C1", "C2"]
            )
                -> CrossShardTransfer
            {
                CrossShardTransfer(
                    from: AccountID(from), to: AccountID(to), amount: Amount(amount), home: home,
                    participants: participants)
            }
            func expectRefused(
                _ outcome: CommandOutcome, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
            ) {
                switch outcome {
                case .applied(.refused), .applied(.aborted(.invalid)), .failed(.wrongShard): break
                default: Issue.record("\(what) was not refused: \(outcome)", sourceLocation: sourceLocation)
                }
            }

            // 1. A credit-only prepare at C2, naming C2 as home and only participant, then its commit.
            let creditOnly = connection.nextTransaction()
            expectRefused(
                await send(.prepare(creditOnly, transfer(1, 13, 5, home: "C2", in: ["C2"])), to: "C2"),
                "a credit-only prepare")
            expectRefused(await send(.commit(creditOnly), to: "C2"), "the commit of a credit-only prepare")

            // 2. A prepare at C2 naming C2 home of a transfer whose debit (account 1) is in C1.
            let wrongHome = connection.nextTransaction()
            expectRefused(
                await send(.prepare(wrongHome, transfer(1, 13, 5, home: "C2")), to: "C2"),
                "a prepare with the wrong home")

            // 3. Participants that leave the receiving cluster out.
            let leftOut = connection.nextTransaction()
            expectRefused(
                await send(.prepare(leftOut, transfer(1, 13, 5, in: ["C1", "C3"])), to: "C2"),
                "a prepare whose participants leave C2 out")

            // 4. Prepared at both; the home aborts; then a commit at the other participant.
            let abortedAtHome = connection.nextTransaction()
            #expect(await send(.prepare(abortedAtHome, transfer(2, 12, 1)), to: "C1") == .applied(.preparedYes))
            #expect(await send(.prepare(abortedAtHome, transfer(2, 12, 1)), to: "C2") == .applied(.preparedYes))
            #expect(await send(.abort(abortedAtHome), to: "C1") == .applied(.aborted(.aborted)))
            // At C2 the commit is a hint: C2 learns the home's decision, applies it, and answers with it.
            #expect(await send(.commit(abortedAtHome), to: "C2") == .applied(.aborted(.aborted)))
            #expect(await send(.abort(abortedAtHome), to: "C2") == .applied(.aborted(.aborted)))

            // 5. Different amounts at each participant: the home refuses to commit; the other cannot commit first.
            let mismatched = connection.nextTransaction()
            #expect(await send(.prepare(mismatched, transfer(3, 13, 1)), to: "C1") == .applied(.preparedYes))
            #expect(await send(.prepare(mismatched, transfer(3, 13, 9)), to: "C2") == .applied(.preparedYes))
            expectRefused(await send(.commit(mismatched), to: "C2"), "a commit at C2 before its home decided")
            expectRefused(await send(.commit(mismatched), to: "C1"), "a commit at the home on mismatched terms")
            #expect(await send(.abort(mismatched), to: "C1") == .applied(.aborted(.aborted)))
            #expect(await send(.abort(mismatched), to: "C2") == .applied(.aborted(.aborted)))

            // 6. A commit for a prepare never sent.
            let neverPrepared = connection.nextTransaction()
            expectRefused(await send(.commit(neverPrepared), to: "C1"), "a commit of an unknown transaction")
            expectRefused(await send(.commit(neverPrepared), to: "C2"), "a commit of an unknown transaction")

            // 7. An abort at the home after the commit point: refused; the transfer stands at both.
            let committed = connection.nextTransaction()
            #expect(await send(.prepare(committed, transfer(4, 14, 3)), to: "C1") == .applied(.preparedYes))
            #expect(await send(.prepare(committed, transfer(4, 14, 3)), to: "C2") == .applied(.preparedYes))
            #expect(await send(.commit(committed), to: "C1") == .applied(.committed))
            expectRefused(await send(.abort(committed), to: "C1"), "an abort at the home after its commit")
            // An abort at C2 is a hint as well: C2 learns that its home committed, and commits. C2 asks C1; on a
            // starved machine the answer it has by its deadline may be a lagging replica's "prepared", and C2 refuses
            // the hint as undecided at its home: nothing is applied, and the hint is sent again.
            var hinted = await send(.abort(committed), to: "C2")
            for _ in 0..<10 {
                guard case .applied(.refused(let why)) = hinted, why.contains("is undecided at its home") else { break }
                hinted = await send(.abort(committed), to: "C2")
            }
            #expect(hinted == .applied(.committed))
            #expect(await send(.commit(committed), to: "C2") == .applied(.committed))

            // 8. Decisions only replicas may propose, sent in a batch straight to the replica.
            let forged = connection.nextTransaction()
            #expect(await send(.prepare(forged, transfer(5, 15, 2)), to: "C2") == .applied(.preparedYes))
            let batch = await c2.submitOnce(
                [.follow(forged, committed: true), .decideCommit(forged, agreed: .transfer(transfer(5, 15, 2)))],
                contact: leaders["C2"]!, deadline: .now + patience)
            guard case .answered(let answers) = batch else {
                Issue.record("the batch of forged decisions got no answer: \(batch)")
                return
            }
            for answer in answers { expectRefused(answer, "a decision only replicas propose") }
            #expect(await send(.abort(forged), to: "C2") != .applied(.committed))

            // 9. A client may not make a home decide (`Decision`), but may read any transaction's status.
            let decision = await c1.decision(
                of: connection.nextTransaction(), asker: "C2", contact: leaders["C1"]!, deadline: .now + patience)
            guard case .failed(.forbidden) = decision else {
                Issue.record("a client's Decision call was not refused: \(decision)")
                return
            }
            let status = await c1.transactionStatus(
                of: committed, contact: leaders["C1"]!, deadline: .now + patience)
            #expect(status?.report == .committed)
            let other = await c2.transactionStatus(
                of: mismatched, contact: leaders["C2"]!, deadline: .now + patience)
            #expect(other?.report == .aborted(.aborted))

            // 10. A transaction id reused with other content.
            let reused = connection.nextTransaction()
            let first = LedgerCommand.transfer(reused, from: AccountID(6), to: AccountID(7), amount: Amount(2))
            #expect(await send(first, to: "C1") == .applied(.committed))
            #expect(await send(first, to: "C1") == .applied(.committed), "a retry gets the first outcome")
            let again = await send(
                .transfer(reused, from: AccountID(6), to: AccountID(7), amount: Amount(3)), to: "C1")
            guard case .applied(.refused(let why)) = again else {
                Issue.record("a reused id with another amount was not refused: \(again)")
                return
            }
            #expect(why.contains("a transfer of 2 from 6 to 7") && why.contains("a transfer of 3 from 6 to 7"))
            expectRefused(
                await send(.prepare(reused, transfer(6, 16, 1)), to: "C1"), "a prepare reusing a transfer's id")

            // Whatever was sent: total money is unchanged, replicas agree, no lock is held; the one transfer that
            // committed moved its amount, and the reused id moved 2, once.
            try await deployment.expectConsistent(connection, total: Self.total)
            #expect(await connection.balance(of: AccountID(4)) == .success(7))
            #expect(await connection.balance(of: AccountID(14)) == .success(13))
            #expect(await connection.balance(of: AccountID(6)) == .success(8))
            for account in [1, 2, 3, 5, 12, 13, 15] {
                #expect(await connection.balance(of: AccountID(UInt64(account))) == .success(10), "account \(account)")
            }
        }
    }
}
