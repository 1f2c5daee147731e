import Paxos
import Testing

/// Linearizable reads by read index (DESIGN §4): a leader answers only after a majority confirmed, after the read
/// arrived, that it still leads, and only once every slot chosen before the read is applied.
@Suite struct ReadIndexTests {
    // DESIGN §4: the read waits for a new probe round acknowledged by a majority, then is readable at the last slot.
    @Test func leaderAnswersReadAfterMajorityConfirmsNewRound() {
        var cluster = Cluster()
        cluster.elect(s1)
        cluster.heartbeat(s1)
        cluster.submit(request("a", 1), at: s1)
        cluster.stabilize()

        let read = RequestID(client: 7, sequence: 1)
        cluster.replicas[s1]!.read(read)
        let probe = cluster.takeReady(s1)
        #expect(probe.outcomes.isEmpty)
        let rounds = probe.messages.compactMap { envelope -> UInt64? in
            if case .heartbeat(_, _, let round) = envelope.message { return round }
            return nil
        }
        #expect(rounds.count == 2 && Set(rounds).count == 1 && rounds[0] >= 1)

        // One follower's acknowledgement makes a majority with the leader.
        cluster.deliver(to: s2)
        _ = cluster.takeReady(s2)
        cluster.drop(to: s3)
        cluster.deliver(to: s1)
        let answer = cluster.takeReady(s1)
        #expect(answer.outcomes == [RequestOutcome(id: read, outcome: .readable(slot: 1))])
    }

    // DESIGN §4: a deposed leader never answers from its own stale state: cut off, it gets no confirmation and the
    // read ends as noQuorum (or notLeader once it steps down), never readable.
    @Test func isolatedLeaderNeverAnswersRead() {
        var cluster = Cluster()
        cluster.elect(s1)
        cluster.heartbeat(s1)
        cluster.isolate(s1)

        let read = RequestID(client: 7, sequence: 1)
        cluster.replicas[s1]!.read(read)
        var outcomes: [RequestOutcome] = []
        for _ in 0..<40 {
            cluster.tick(s1)
            outcomes += cluster.takeReady(s1).outcomes
            cluster.deliver()
        }
        #expect(outcomes.count == 1)
        #expect(outcomes.allSatisfy { $0.id == read && $0.outcome != .readable(slot: 0) })
        #expect(!outcomes.contains { if case .readable = $0.outcome { return true } else { return false } })
    }

    // An acknowledgement of a heartbeat sent before the read was registered does not confirm it.
    @Test func staleAcknowledgementDoesNotConfirmRead() throws {
        var cluster = Cluster()
        cluster.elect(s1)
        cluster.heartbeat(s1)
        // A periodic heartbeat leaves before the read arrives; its acknowledgements come back after.
        cluster.tick(s1, times: 3)
        _ = cluster.takeReady(s1)
        cluster.deliver(to: s2)
        cluster.deliver(to: s3)
        _ = cluster.takeReady(s2)
        _ = cluster.takeReady(s3)

        let read = RequestID(client: 7, sequence: 1)
        cluster.replicas[s1]!.read(read)
        cluster.deliver(to: s1)  // the old acknowledgements
        let afterOld = cluster.takeReady(s1)
        #expect(afterOld.outcomes.isEmpty)
        cluster.stabilize()
        #expect(cluster[s1].role == .leader)
    }

    // A follower does not serve reads: it names the leader.
    @Test func followerAnswersNotLeader() {
        var cluster = Cluster()
        cluster.elect(s1)
        cluster.heartbeat(s1)
        let read = RequestID(client: 7, sequence: 1)
        cluster.replicas[s2]!.read(read)
        #expect(cluster.takeReady(s2).outcomes == [RequestOutcome(id: read, outcome: .notLeader(hint: s1))])
    }
}
