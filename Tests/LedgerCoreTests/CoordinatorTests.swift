import LedgerCore
import Paxos
import Testing

/// The 2PC coordinator of DESIGN §5, step by step: each test feeds answers and checks the exact actions and the
/// outcome, including the orders a real network produces (late votes, lost answers).
@Suite("2PC coordinator")
struct CoordinatorTests {
    static let id = TransactionID(client: 9, sequence: 1)
    static let transfer = CrossShardTransfer(
        from: AccountID(5), to: AccountID(1005), amount: Amount(3), home: "C1", participants: ["C1", "C2"])

    static func coordinator() -> Coordinator {
        Coordinator(id: id, transfer: transfer)
    }

    /// Every participant gets the same prepare: the whole transfer.
    static func prepare(_ cluster: String) -> Coordinator.Action {
        .submit(.prepare(id, transfer), to: cluster)
    }

    static func commit(_ cluster: String) -> Coordinator.Action { .submit(.commit(id), to: cluster) }
    static func abort(_ cluster: String) -> Coordinator.Action { .submit(.abort(id), to: cluster) }

    @Test func preparesEveryParticipantAtOnce() {
        var coordinator = Self.coordinator()
        #expect(coordinator.start() == [Self.prepare("C1"), Self.prepare("C2")])
        #expect(coordinator.phase == .preparing)
        #expect(coordinator.outcome == nil)
    }

    @Test func allYesCommitsAtHomeFirstThenAtTheOthers() {
        var coordinator = Self.coordinator()
        _ = coordinator.start()
        #expect(coordinator.receive(.applied(.preparedYes), for: Self.prepare("C2")) == [])
        #expect(coordinator.receive(.applied(.preparedYes), for: Self.prepare("C1")) == [Self.commit("C1")])
        #expect(coordinator.outcome == nil, "no decision before the home cluster chose commit")
        #expect(coordinator.receive(.applied(.committed), for: Self.commit("C1")) == [Self.commit("C2")])
        #expect(coordinator.outcome == .committed)
        #expect(coordinator.phase == .finishing)
        #expect(coordinator.receive(.applied(.committed), for: Self.commit("C2")) == [])
        #expect(coordinator.phase == .done)
    }

    @Test func aNoVoteAbortsEverywhereWithItsReason() {
        var coordinator = Self.coordinator()
        _ = coordinator.start()
        let reason = AbortReason.insufficientFunds(AccountID(5), balance: 1)
        // The home first: the other participant, once prepared, follows the home's decision.
        #expect(coordinator.receive(.applied(.aborted(reason)), for: Self.prepare("C1")) == [Self.abort("C1")])
        #expect(coordinator.outcome == .aborted(.refused(reason, cluster: "C1")))
        #expect(coordinator.outcome?.description == "aborted: insufficient funds")
        // The other vote arrives late: it changes nothing; the abort already sent covers it.
        #expect(coordinator.receive(.applied(.preparedYes), for: Self.prepare("C2")) == [])
        #expect(coordinator.outcome == .aborted(.refused(reason, cluster: "C1")))
        #expect(coordinator.receive(.applied(.aborted(.aborted)), for: Self.abort("C1")) == [Self.abort("C2")])
        #expect(coordinator.phase == .finishing)
        _ = coordinator.receive(.applied(.aborted(.aborted)), for: Self.abort("C2"))
        #expect(coordinator.phase == .done)
    }

    @Test func aParticipantWithoutQuorumAbortsTheTransaction() {
        var coordinator = Self.coordinator()
        _ = coordinator.start()
        _ = coordinator.receive(.applied(.preparedYes), for: Self.prepare("C1"))
        // C2 could not answer its prepare; it is not kept waiting for an abort it cannot answer either.
        #expect(coordinator.receive(.unavailable, for: Self.prepare("C2")) == [Self.abort("C1")])
        #expect(coordinator.outcome == .aborted(.noQuorum(cluster: "C2")))
        #expect(coordinator.outcome?.description == "aborted: no quorum in C2")
        _ = coordinator.receive(.applied(.aborted(.aborted)), for: Self.abort("C1"))
        #expect(coordinator.phase == .done)
    }

    @Test func aWrongShardAnswerAbortsWithTheOwner() {
        var coordinator = Self.coordinator()
        _ = coordinator.start()
        _ = coordinator.receive(.wrongShard(AccountID(1005), owner: "C3"), for: Self.prepare("C2"))
        #expect(coordinator.outcome == .aborted(.wrongShard(AccountID(1005), owner: "C3")))
    }

    @Test func aHomeThatAbortedFirstMakesTheAbortStand() {
        var coordinator = Self.coordinator()
        _ = coordinator.start()
        _ = coordinator.receive(.applied(.preparedYes), for: Self.prepare("C1"))
        _ = coordinator.receive(.applied(.preparedYes), for: Self.prepare("C2"))
        // A participant's recovery asked the home, which chose abort: the commit is refused there.
        #expect(
            coordinator.receive(.applied(.refused("T9.1 was aborted")), for: Self.commit("C1")) == [Self.abort("C1")])
        #expect(coordinator.outcome == .aborted(.abortedAtHome(cluster: "C1")))
    }

    @Test func aLostCommitAnswerIsSettledByReadingTheHomesStatus() {
        var coordinator = Self.coordinator()
        _ = coordinator.start()
        _ = coordinator.receive(.applied(.preparedYes), for: Self.prepare("C1"))
        _ = coordinator.receive(.applied(.preparedYes), for: Self.prepare("C2"))
        #expect(coordinator.receive(.unavailable, for: Self.commit("C1")) == [.askStatus(Self.id, of: "C1")])
        #expect(coordinator.outcome == nil)
        #expect(coordinator.receive(.applied(.committed), for: .askStatus(Self.id, of: "C1")) == [Self.commit("C2")])
        #expect(coordinator.outcome == .committed)
    }

    @Test func anUndecidedHomeGetsTheCommitOnceMore() {
        var coordinator = Self.coordinator()
        _ = coordinator.start()
        _ = coordinator.receive(.applied(.preparedYes), for: Self.prepare("C1"))
        _ = coordinator.receive(.applied(.preparedYes), for: Self.prepare("C2"))
        _ = coordinator.receive(.unavailable, for: Self.commit("C1"))
        #expect(coordinator.receive(.undecided, for: .askStatus(Self.id, of: "C1")) == [Self.commit("C1")])
        #expect(coordinator.receive(.unavailable, for: Self.commit("C1")) == [.askStatus(Self.id, of: "C1")])
        // Still undecided after the second commit: the replicas' recovery settles it.
        #expect(coordinator.receive(.undecided, for: .askStatus(Self.id, of: "C1")) == [])
        #expect(coordinator.phase == .done)
        guard case .unknown = coordinator.outcome else {
            Issue.record("expected an unknown outcome, got \(String(describing: coordinator.outcome))")
            return
        }
    }

    @Test func aHomeThatNeverAnswersLeavesTheOutcomeUnknown() {
        var coordinator = Self.coordinator()
        _ = coordinator.start()
        _ = coordinator.receive(.applied(.preparedYes), for: Self.prepare("C1"))
        _ = coordinator.receive(.applied(.preparedYes), for: Self.prepare("C2"))
        _ = coordinator.receive(.unavailable, for: Self.commit("C1"))
        #expect(coordinator.receive(.unavailable, for: .askStatus(Self.id, of: "C1")) == [])
        #expect(coordinator.phase == .done)
        guard case .unknown = coordinator.outcome else {
            Issue.record("expected an unknown outcome, got \(String(describing: coordinator.outcome))")
            return
        }
    }

    @Test func duplicateAnswersAreIgnored() {
        var coordinator = Self.coordinator()
        _ = coordinator.start()
        _ = coordinator.receive(.applied(.preparedYes), for: Self.prepare("C1"))
        #expect(coordinator.receive(.applied(.preparedYes), for: Self.prepare("C1")) == [])
        #expect(coordinator.phase == .preparing, "one participant's vote counted twice would commit without C2")
    }
}
