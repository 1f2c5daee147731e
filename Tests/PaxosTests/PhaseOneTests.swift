import Paxos
import Testing

/// Phase 1: elections, ballot order and what a new leader re-proposes.
@Suite struct PhaseOneTests {
    // Paxos Made Simple §2.2 phase 1(a) and DESIGN §3 Durability: a candidate outbids its promise and persists it
    // before its Phase1a leaves.
    @Test func followerWhoseTimerExpiresCampaignsAndLeadsWithPromises() {
        var cluster = Cluster()
        // S2 campaigns first and only S1 hears it, so S1 holds a promise to outbid.
        _ = cluster.campaign(s2)
        cluster.deliver(to: s1)
        _ = cluster.takeReady(s1)
        cluster.drop()
        #expect(cluster[s1].promised == ballot(1, s2))

        let campaign = cluster.campaign(s1)
        let candidate = ballot(2, s1)
        #expect(cluster[s1].role == .candidate)
        #expect(cluster[s1].ballot == candidate)
        // One Ready holds both the promise to persist and the Phase1a it allows to leave.
        #expect(campaign.persist.promised == candidate)
        #expect(
            campaign.messages == [
                envelope(to: s2, .phase1a(ballot: candidate, firstSlot: 1)),
                envelope(to: s3, .phase1a(ballot: candidate, firstSlot: 1)),
            ])

        cluster.deliver()
        let promise = cluster.takeReady(s2)
        #expect(cluster[s2].role == .follower)
        #expect(promise.persist.promised == candidate)
        #expect(
            promise.messages == [
                envelope(
                    to: s1,
                    .phase1b(
                        ballot: candidate, snapshotSlot: 0, chosenThrough: 0, entries: [], memberships: firstMemberships
                    ))
            ])
        _ = cluster.takeReady(s3)

        // The candidate's own promise counts: one Phase1b completes a majority of three.
        cluster.deliver(from: s2)
        #expect(cluster[s1].role == .leader)
        cluster.deliver(from: s3)
        #expect(cluster[s1].role == .leader)
        #expect(cluster[s1].ballot == candidate)
        #expect(cluster[s1].leaderHint == s1)
    }

    // DESIGN §3: ballots order by (round, replica index), a higher index winning a tie; Paxos Made Simple P1a: an
    // acceptor answers a ballot below its promise with a refusal.
    @Test func higherIndexWinsTieAndLowerBallotIsRejected() {
        #expect(ballot(1, s2) < ballot(1, s3))
        #expect(ballot(1, s3) < ballot(2, s1))

        var cluster = Cluster()
        _ = cluster.campaign(s2)
        _ = cluster.campaign(s3)
        #expect(cluster[s2].ballot == ballot(1, s2))
        #expect(cluster[s3].ballot == ballot(1, s3))

        // S1 hears (1,S3) first, then the lower (1,S2).
        cluster.deliver { $0.from == s3 && $0.to == s1 }
        cluster.deliver { $0.from == s2 && $0.to == s1 }
        let answers = cluster.takeReady(s1)
        #expect(
            answers.messages == [
                envelope(
                    to: s3,
                    .phase1b(
                        ballot: ballot(1, s3), snapshotSlot: 0, chosenThrough: 0, entries: [],
                        memberships: firstMemberships)),
                envelope(to: s2, .rejected(promised: ballot(1, s3))),
            ])

        // Between the two candidates, the tie of rounds goes to S3 as well.
        cluster.stabilize()
        #expect(cluster[s3].role == .leader)
        #expect(cluster[s2].role == .follower)
        #expect(cluster[s2].promised == ballot(1, s3))

        // A Phase2a under the lower ballot is refused and stores nothing.
        let stale = TestMessage.phase2a(
            ballot: ballot(1, s2), proposals: [SlotProposal(slot: 1, value: batch(ballot(1, s2), request("a", 1)))],
            chosenThrough: 0)
        #expect(cluster.inject(stale, at: s1, from: s2) == nil)
        let refusal = cluster.takeReady(s1)
        #expect(refusal.messages == [envelope(to: s2, .rejected(promised: ballot(1, s3)))])
        #expect(refusal.persist.isEmpty)
        #expect(cluster[s1].log.isEmpty)
    }

    // Paxos Made Simple §2.2 phase 2(a) and DESIGN §3: a new leader re-proposes the value of the highest ballot its
    // promises report for each open slot, and that exact value.
    @Test func newLeaderReproposesHighestBallotValue() {
        var cluster = Cluster()
        cluster.elect(s2)
        let low = ballot(1, s2)
        let a = request("a", 1)
        let x = request("x", 2)
        // Leader (1,S2) accepts a in slot 1 and x in slot 2; no peer hears of them.
        cluster.submit(a, at: s2)
        _ = cluster.takeReady(s2)
        cluster.submit(x, at: s2)
        _ = cluster.takeReady(s2)
        cluster.drop()

        // S1 wins (2,S1) with S3's promise only, and accepts b in slot 1; no peer hears of it either.
        _ = cluster.campaign(s1)
        #expect(cluster[s1].ballot == ballot(2, s1))
        cluster.deliver(to: s3)
        cluster.drop()
        _ = cluster.takeReady(s3)
        cluster.deliver()
        #expect(cluster[s1].role == .leader)
        let middle = ballot(2, s1)
        let b = request("b", 3)
        cluster.submit(b, at: s1)
        _ = cluster.takeReady(s1)
        cluster.drop()

        // S1, cut off, steps down and campaigns again with (3,S1); this time only S2 answers.
        _ = cluster.campaign(s1)
        let high = ballot(3, s1)
        #expect(cluster[s1].ballot == high)
        cluster.deliver(to: s2)
        cluster.drop()
        let promise = cluster.takeReady(s2)
        #expect(
            promise.messages == [
                envelope(
                    to: s1,
                    .phase1b(
                        ballot: high, snapshotSlot: 0, chosenThrough: 0,
                        entries: [
                            SlotEntry(slot: 1, entry: accepted(low, batch(low, a))),
                            SlotEntry(slot: 2, entry: accepted(low, batch(low, x))),
                        ], memberships: firstMemberships))
            ])
        cluster.deliver()
        #expect(cluster[s1].role == .leader)

        // Slot 1: b under (2,S1) beats a under (1,S2). Slot 2: only S2's promise holds x, and x it is. Both keep the
        // stamp of the leader that first proposed them.
        let reproposal = cluster.takeReady(s1)
        let expected = [SlotProposal(slot: 1, value: batch(middle, b)), SlotProposal(slot: 2, value: batch(low, x))]
        #expect(proposals(in: reproposal, to: s2) == expected)
        #expect(proposals(in: reproposal, to: s3) == expected)
        #expect(reproposal.persist.entries == [1: accepted(high, batch(middle, b)), 2: accepted(high, batch(low, x))])

        cluster.stabilize()
        for member in Cluster.members {
            #expect(cluster[member].log[1] == chosen(high, batch(middle, b)))
            #expect(cluster[member].log[2] == chosen(high, batch(low, x)))
        }
    }

    // DESIGN §3: Phase 1 covers every slot from the first not known chosen; the new leader fills gaps with no-ops.
    // Each slot is applied under the ballot of the leader that first proposed its value, not the new leader's.
    @Test func newLeaderFillsGapWithNoop() {
        var cluster = Cluster()
        cluster.elect(s1)
        let old = ballot(1, s1)
        let a = request("a", 1)
        let g = request("g", 2)
        let c = request("c", 3)
        for item in [a, g, c] {
            cluster.submit(item, at: s1)
            _ = cluster.takeReady(s1)
        }
        // Only S3 hears slots 1 and 3; nobody but the old leader holds slot 2.
        cluster.deliver { $0.to == s3 && !$0.proposes(g) }
        cluster.drop()
        _ = cluster.takeReady(s3)
        cluster.drop()
        #expect(cluster[s3].log == [1: accepted(old, batch(old, a)), 3: accepted(old, batch(old, c))])

        // The old leader is gone; S3 wins Phase 1 with S2's empty promise.
        cluster.isolate(s1)
        _ = cluster.campaign(s3)
        let new = ballot(2, s3)
        cluster.deliver()
        _ = cluster.takeReady(s2)
        cluster.deliver()
        #expect(cluster[s3].role == .leader)
        let reproposal = cluster.takeReady(s3)
        #expect(
            proposals(in: reproposal, to: s2) == [
                SlotProposal(slot: 1, value: batch(old, a)),
                SlotProposal(slot: 2, value: .noop(ballot: new)),
                SlotProposal(slot: 3, value: batch(old, c)),
            ])

        let readies = cluster.stabilize()
        #expect(cluster[s3].appliedThrough == 3)
        #expect(
            readies[s3, default: []].flatMap(\.apply) == [
                .slot(1, ballot: old, value: batch(old, a)),
                .slot(2, ballot: new, value: .noop(ballot: new)),
                .slot(3, ballot: old, value: batch(old, c)),
            ])
        #expect(cluster.journals[s3] == Journal(applied: ["a", "c"]))
    }

    // DESIGN §4 datastore: every replica applies a chosen slot under one ballot, that of the leader that first
    // proposed the value, whichever ballot the replica accepted it under or learned it from.
    @Test func everyReplicaAppliesReproposedValueUnderFirstProposersBallot() {
        var cluster = Cluster()
        cluster.elect(s1)
        let old = ballot(1, s1)
        let a = request("a", 1)
        cluster.submit(a, at: s1)
        _ = cluster.takeReady(s1)
        // Only S3 accepts a under (1,S1); the leader never learns it is chosen.
        cluster.deliver(to: s3)
        cluster.drop()
        _ = cluster.takeReady(s3)
        cluster.drop()

        // S3 leads (2,S3) with S2's promise and gets a chosen again under its own ballot, stamp unchanged.
        cluster.isolate(s1)
        _ = cluster.campaign(s3)
        let new = ballot(2, s3)
        cluster.stabilize()
        cluster.announceChoices(of: s3)
        #expect(cluster[s3].role == .leader)
        for member in [s2, s3] {
            #expect(cluster[member].log[1] == chosen(new, batch(old, a)))
        }

        // S1 comes back holding a under (1,S1) only, so it fetches the chosen entry (held under (2,S3)).
        cluster.heal()
        cluster.heartbeat(s3)
        #expect(cluster[s1].role == .follower)
        #expect(cluster[s1].log[1] == chosen(new, batch(old, a)))
        // (S1 also forwards a, still waiting there, to the new leader, which proposes it again in slot 2: the core
        // orders and does not filter; the state machine admits each request id once.)
        for member in Cluster.members {
            #expect(cluster.applied[member]?.first == .slot(1, ballot: old, value: batch(old, a)))
        }
    }

    // A preferred leader's election timer runs out before anyone else's can: at a fresh start, ticking every replica
    // alike, it campaigns first and leads, whatever the seeds. It cannot depose a live leader.
    @Test func preferredLeaderCampaignsFirstButCannotDeposeALiveLeader() {
        for preferred in Cluster.members {
            var cluster = Cluster { $0.preferredLeader = preferred }
            #expect(cluster.configurations[preferred]!.electionTimeoutTicks == 5..<10)
            #expect(cluster.configurations[Cluster.members.first { $0 != preferred }!]!.electionTimeoutTicks == 10..<20)
            var ticks = 0
            while !Cluster.members.contains(where: { cluster[$0].role != .follower }) && ticks < 20 {
                for member in Cluster.members { cluster.tick(member) }
                ticks += 1
            }
            #expect(Cluster.members.filter { cluster[$0].role != .follower } == [preferred], "after \(ticks) ticks")
            cluster.stabilize()
            #expect(cluster[preferred].role == .leader)
        }

        // S2 leads; S1, preferred, restarts and hears S2's heartbeats: it never campaigns, and S2 keeps leading.
        var cluster = Cluster { $0.preferredLeader = s1 }
        _ = cluster.campaign(s2)
        cluster.stabilize()
        #expect(cluster[s2].role == .leader)
        cluster.restart(s1, seed: 7)
        for _ in 0..<40 {
            for member in Cluster.members { cluster.tick(member) }
            cluster.stabilize()
        }
        #expect(cluster[s2].role == .leader)
        #expect(cluster[s1].role == .follower)
    }
}
