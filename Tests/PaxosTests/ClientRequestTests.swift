import Paxos
import Testing

/// What becomes of a client request: forwarded, hinted, chosen, or answered when no majority is live.
@Suite struct ClientRequestTests {
    // DESIGN §3: a request sent to a follower is forwarded to the leader, and answered once the follower applies it.
    @Test func followerForwardsRequestToLeader() {
        var cluster = Cluster()
        cluster.elect(s1)
        cluster.heartbeat(s1)
        #expect(cluster[s2].leaderHint == s1)

        let f = request("f", 1)
        cluster.submit(f, at: s2)
        let forward = cluster.takeReady(s2)
        #expect(forward.messages == [envelope(to: s1, .forward(requests: [f]))])
        #expect(forward.outcomes.isEmpty)

        cluster.deliver()
        let proposal = cluster.takeReady(s1)
        #expect(proposals(in: proposal, to: s2) == [SlotProposal(slot: 1, value: batch(ballot(1, s1), f))])

        // The follower answers once it learns the slot is chosen.
        let readies = cluster.stabilize().merging(cluster.announceChoices(of: s1), uniquingKeysWith: +)
        #expect(Cluster.outcomes(of: s2, in: readies) == [RequestOutcome(id: f.id, outcome: .chosen(slot: 1))])
        #expect(Cluster.outcomes(of: s1, in: readies).isEmpty)
        #expect(cluster[s2].waitingCount == 0)
        #expect(cluster.journals[s2] == Journal(applied: ["f"]))
    }

    // DESIGN §3: a follower that does not forward answers with a leader hint at once.
    @Test func followerWithoutForwardingAnswersLeaderHint() {
        var cluster = Cluster { $0.forwardsRequests = false }
        cluster.elect(s1)
        cluster.heartbeat(s1)

        let f = request("f", 1)
        cluster.submit(f, at: s2)
        let hint = cluster.takeReady(s2)
        #expect(hint.outcomes == [RequestOutcome(id: f.id, outcome: .notLeader(hint: s1))])
        #expect(hint.messages.isEmpty)
        #expect(cluster[s2].waitingCount == 0)
    }

    // Configuration.leaderTimeoutTicks (check quorum): a leader that hears from no majority for the leader timeout
    // stops leading.
    @Test func leaderCutOffStepsDownAfterLeaderTimeout() {
        var cluster = Cluster()
        cluster.elect(s1)
        cluster.isolate(s1)

        cluster.tick(s1, times: 9)
        #expect(cluster[s1].role == .leader)
        #expect(cluster[s1].leadsWithQuorum)
        cluster.tick(s1)
        #expect(cluster[s1].role == .follower)
        #expect(!cluster[s1].leadsWithQuorum)
        #expect(cluster[s1].leaderHint == nil)
    }

    // DESIGN §3: a cluster without a live majority answers noQuorum within consensus_timeout and never applies.
    @Test func isolatedReplicaAnswersNoQuorumAndNeverProposes() {
        var cluster = Cluster()
        cluster.isolate(s2)
        cluster.elect(s1)
        let q = request("q", 1)
        cluster.submit(q, at: s2)

        var outcomes: [RequestOutcome] = []
        for _ in 1..<30 {
            for member in Cluster.members { cluster.tick(member) }
            outcomes += Cluster.outcomes(of: s2, in: cluster.stabilize())
        }
        #expect(outcomes.isEmpty)
        #expect(cluster[s2].waitingCount == 1)

        for member in Cluster.members { cluster.tick(member) }
        outcomes += Cluster.outcomes(of: s2, in: cluster.stabilize())
        #expect(outcomes == [RequestOutcome(id: q.id, outcome: .noQuorum)])
        #expect(cluster[s2].waitingCount == 0)
        #expect(!cluster.sent.contains { $0.proposes(q) })
        #expect(cluster[s1].role == .leader)
    }

    // Outcome.timedOut: a request proposed by a leader that then lost its majority may still be chosen, so it is
    // answered timedOut, never noQuorum.
    @Test func proposedRequestOfCutOffLeaderTimesOut() {
        var cluster = Cluster()
        cluster.elect(s1)
        cluster.isolate(s1)
        let t = request("t", 1)
        cluster.submit(t, at: s1)
        let proposal = cluster.takeReady(s1)
        #expect(proposals(in: proposal, to: s2) == [SlotProposal(slot: 1, value: batch(ballot(1, s1), t))])

        var outcomes: [RequestOutcome] = []
        for _ in 1..<30 {
            cluster.tick(s1)
            outcomes += cluster.takeReady(s1).outcomes
        }
        #expect(outcomes.isEmpty)
        #expect(cluster[s1].role != .leader)

        cluster.tick(s1)
        outcomes += cluster.takeReady(s1).outcomes
        #expect(outcomes == [RequestOutcome(id: t.id, outcome: .timedOut)])
        #expect(cluster[s1].waitingCount == 0)
    }
    // Issue 26 (simulation seed 77751): a forwarded request that waited in a busy leader's queue past the consensus
    // timeout was still proposed, after its follower had answered `timedOut` and its client had moved on. Under load
    // such stale copies, and their clients' retries, took most slots, and the backlog outlasted the run. A forwarded
    // request the leader could not propose in time is dropped unproposed; the follower's `timedOut` stays true.
    @Test func leaderDropsForwardedRequestItCouldNotProposeInTime() {
        var cluster = Cluster {
            $0.slotsInFlightMax = 1
            $0.batchSizeMax = 1
        }
        cluster.elect(s1)
        cluster.heartbeat(s1)
        // One slot at a time, one request per slot: the leader's own backlog outlasts the consensus timeout.
        let backlog = (1...40).map { request("b\($0)", UInt64($0)) }
        for item in backlog { cluster.submit(item, at: s1) }
        let f = request("f", 100)
        cluster.submit(f, at: s2)
        #expect(cluster.takeReady(s2).messages == [envelope(to: s1, .forward(requests: [f]))])
        cluster.deliver()

        var outcomes: [ReplicaID: [RequestOutcome]] = [:]
        for _ in 0..<45 {
            for (member, ready) in cluster.step() { outcomes[member, default: []] += ready.outcomes }
        }
        #expect(cluster[s1].role == .leader)
        #expect(outcomes[s1, default: []].contains { $0.outcome == .noQuorum })
        #expect(outcomes[s2, default: []] == [RequestOutcome(id: f.id, outcome: .timedOut)])
        // The pipeline had room again once the backlog's waiters gave up, but nobody waited for `f` any more.
        #expect(!cluster.sent.contains { $0.proposes(f) })
        #expect(!cluster.journals[s2]!.applied.contains("f"))
    }
}
