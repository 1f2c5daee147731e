import Paxos
import Testing

/// Snapshots, truncation and restarts: what a replica keeps and what it can be given back.
@Suite struct RecoveryTests {
    // DESIGN §3: a log prefix applied everywhere may be truncated after a snapshot; a replica behind the truncation
    // point receives the snapshot.
    @Test func leaderCompactsAndShipsSnapshotToLaggingFollower() {
        var cluster = Cluster { $0.snapshotIntervalSlots = 2 }
        cluster.elect(s1)
        let leader = ballot(1, s1)
        let a = request("a", 1)
        let b = request("b", 2)
        let c = request("c", 3)
        cluster.isolate(s3)

        cluster.submit(a, at: s1)
        cluster.stabilize()
        #expect(cluster[s1].appliedThrough == 1)

        // Applying slot 2 reaches the snapshot interval.
        cluster.submit(b, at: s1)
        _ = cluster.takeReady(s1)
        cluster.deliver()
        _ = cluster.takeReady(s2)
        cluster.deliver()
        let due = cluster.takeReady(s1)
        #expect(due.apply == [.slot(2, ballot: leader, value: batch(leader, b))])
        #expect(due.snapshotDue)
        #expect(cluster[s1].log.count == 2)
        #expect(cluster[s1].snapshotSlot == 0)

        cluster.compact(s1)
        let snapshot = Snapshot(slot: 2, state: Journal(applied: ["a", "b"]), memberships: firstMemberships)
        #expect(cluster[s1].log.isEmpty)
        #expect(cluster[s1].snapshotSlot == 2)
        #expect(cluster[s1].snapshot == snapshot)
        let persisted = cluster.takeReady(s1)
        #expect(persisted.persist.snapshot == snapshot)
        #expect(cluster.durable[s1]!.snapshot == snapshot)
        #expect(cluster.durable[s1]!.entries.isEmpty)

        cluster.submit(c, at: s1)
        cluster.stabilize()
        #expect(cluster[s1].log == [3: chosen(leader, batch(leader, c))])

        // S3 comes back far behind: the heartbeat's chosenThrough sends it to the leader for catch-up.
        cluster.heal()
        cluster.tick(s1, times: 3)
        let heartbeat = cluster.takeReady(s1)
        #expect(heartbeat.messages.contains(envelope(to: s3, .heartbeat(ballot: leader, chosenThrough: 3, round: 0))))
        cluster.deliver(to: s3)
        let ask = cluster.takeReady(s3)
        #expect(
            ask.messages == [
                envelope(to: s1, .catchUpRequest(firstSlot: 1)),
                envelope(to: s1, .heartbeatAck(ballot: leader, round: 0, chosenThrough: 0)),
            ])

        cluster.deliver(to: s1)
        let reply = cluster.takeReady(s1)
        #expect(
            reply.messages == [
                envelope(
                    to: s3,
                    .catchUpReply(
                        snapshot: snapshot, entries: [SlotEntry(slot: 3, entry: chosen(leader, batch(leader, c)))]))
            ])

        cluster.deliver(to: s3)
        let installed = cluster.takeReady(s3)
        #expect(installed.apply == [.installSnapshot(snapshot), .slot(3, ballot: leader, value: batch(leader, c))])
        #expect(installed.persist.snapshot == snapshot)
        #expect(installed.persist.entries == [3: chosen(leader, batch(leader, c))])
        #expect(cluster[s3].appliedThrough == 3)
        #expect(cluster[s3].snapshotSlot == 2)
        #expect(cluster.journals[s3] == Journal(applied: ["a", "b", "c"]))
    }

    // Paxos Made Simple §2.2 ("an acceptor must remember this information even if it fails and then restarts") and
    // DESIGN §3 Durability: promise and accepted values survive a restart from what the Readies persisted.
    @Test func restartedReplicaKeepsPromiseAndAcceptedValues() {
        var cluster = Cluster()
        cluster.elect(s1)
        // S3 wins (2,S3) with S2's promise alone; S1 still believes it leads with (1,S1).
        _ = cluster.campaign(s3)
        let promisedBeforeRestart = ballot(2, s3)
        cluster.deliver(to: s2)
        cluster.drop()
        _ = cluster.takeReady(s2)
        cluster.deliver()
        #expect(cluster[s3].role == .leader)
        #expect(cluster[s1].role == .leader)

        // S2 accepts a in slot 1; its answer is lost.
        let a = request("a", 1)
        cluster.submit(a, at: s3)
        _ = cluster.takeReady(s3)
        cluster.deliver(to: s2)
        cluster.drop()
        _ = cluster.takeReady(s2)
        cluster.drop()
        #expect(
            cluster.durable[s2]
                == TestDurable(
                    promised: promisedBeforeRestart,
                    entries: [1: accepted(promisedBeforeRestart, batch(promisedBeforeRestart, a))]))

        cluster.restart(s2, seed: 77)
        #expect(cluster[s2].role == .follower)
        #expect(cluster[s2].promised == promisedBeforeRestart)
        #expect(cluster[s2].log == [1: accepted(promisedBeforeRestart, batch(promisedBeforeRestart, a))])

        // The stale leader's Phase2a is refused and overwrites nothing.
        let z = request("z", 2)
        cluster.submit(z, at: s1)
        _ = cluster.takeReady(s1)
        cluster.deliver(to: s2)
        cluster.drop()
        let refusal = cluster.takeReady(s2)
        #expect(refusal.messages == [envelope(to: s1, .rejected(promised: promisedBeforeRestart))])
        #expect(refusal.persist.isEmpty)
        #expect(cluster[s2].log == [1: accepted(promisedBeforeRestart, batch(promisedBeforeRestart, a))])

        // The refusal sends S1 campaigning with (3,S1); S2's promise reports the value it accepted before restarting.
        cluster.deliver()
        let campaign = cluster.takeReady(s1)
        let higher = ballot(3, s1)
        #expect(campaign.messages.contains(envelope(to: s2, .phase1a(ballot: higher, firstSlot: 1))))
        cluster.deliver(to: s2)
        cluster.drop()
        let promise = cluster.takeReady(s2)
        #expect(promise.persist.promised == higher)
        #expect(
            promise.messages == [
                envelope(
                    to: s1,
                    .phase1b(
                        ballot: higher, snapshotSlot: 0, chosenThrough: 0,
                        entries: [
                            SlotEntry(slot: 1, entry: accepted(promisedBeforeRestart, batch(promisedBeforeRestart, a)))
                        ], memberships: firstMemberships))
            ])

        // And S1, leading again, re-proposes a over its own z from the lower ballot, keeping a's stamp: S3 first
        // proposed it. z, still waiting, goes next as a new value.
        cluster.deliver()
        #expect(cluster[s1].role == .leader)
        let reproposal = cluster.takeReady(s1)
        #expect(
            proposals(in: reproposal, to: s2) == [
                SlotProposal(slot: 1, value: batch(promisedBeforeRestart, a)),
                SlotProposal(slot: 2, value: batch(higher, z)),
            ])
    }
}

extension RecoveryTests {
    // Configuration.heartbeatIntervalTicks and DESIGN §3 stable leader: while the leader feeds a lagging follower
    // by catch-up, the other follower must still hear from it, so the leader keeps its majority and its office.
    @Test func leaderServingCatchUpKeepsHeartbeatingOtherFollower() {
        var cluster = Cluster { $0.catchUpEntriesMax = 1 }
        cluster.elect(s1)
        cluster.heartbeat(s1)
        cluster.isolate(s3)
        for sequence in UInt64(1)...20 {
            cluster.submit(request("r\(sequence)", sequence), at: s1)
            cluster.stabilize()
        }
        #expect(cluster[s1].chosenThrough == 20)
        #expect(cluster[s3].chosenThrough == 0)

        // S3 returns and catches up one slot per round trip: about 40 ticks with nothing for S2 to acknowledge.
        cluster.heal()
        var lastHeardByS2 = 0
        var silenceMax = 0
        var leaderLost: Int?
        for tick in 1...60 {
            let readies = cluster.step()
            if readies[s1]?.messages.contains(where: { $0.to == s2 }) == true { lastHeardByS2 = tick }
            if cluster[s1].role == .leader { silenceMax = max(silenceMax, tick - lastHeardByS2) }
            if leaderLost == nil, !cluster[s1].leadsWithQuorum { leaderLost = tick }
        }
        #expect(cluster[s3].appliedThrough == 20)
        #expect(silenceMax <= 3, "S2 heard nothing from its leader for \(silenceMax) ticks")
        #expect(leaderLost == nil, "S1 stopped leading with a majority at tick \(leaderLost ?? 0)")
        #expect(cluster[s1].role == .leader)
        #expect(cluster[s2].role == .follower)
        #expect(cluster[s2].leaderHint == s1)
    }
}

extension RecoveryTests {
    // Ready's order (persist, then apply) and DurableState: a crash between persisting a snapshot received by
    // catch-up and applying it leaves a durable state the replica must be able to restart from.
    @Test func restartAfterPersistingButBeforeApplyingReceivedSnapshot() async {
        // In a child process: the replica's precondition would otherwise stop the whole test run.
        await #expect(processExitsWith: .success) {
            var cluster = Cluster { $0.snapshotIntervalSlots = 2 }
            cluster.elect(s1)
            cluster.isolate(s3)
            for sequence in UInt64(1)...3 {
                cluster.submit(request("r\(sequence)", sequence), at: s1)
                cluster.stabilize()
            }
            #expect(cluster[s1].snapshotSlot == 2)

            // S3 comes back; the heartbeat sends it asking, and the leader replies with the snapshot and slot 3.
            cluster.heal()
            cluster.tick(s1, times: 3)
            _ = cluster.takeReady(s1)
            cluster.deliver(to: s3)
            _ = cluster.takeReady(s3)
            cluster.deliver(to: s1)
            _ = cluster.takeReady(s1)
            cluster.deliver(to: s3)
            // S3's shell makes that Ready durable (snapshot at slot 2, slot 3 chosen), then crashes before applying.
            cluster.takeReadyAndCrashAfterPersisting(s3)
            #expect(cluster.durable[s3]!.snapshot?.slot == 2)
            #expect(cluster.durable[s3]!.entries[3]?.isChosen == true)
            #expect(cluster.durable[s3]!.appliedThrough == 0)

            cluster.restart(s3, seed: 5)
            _ = cluster.takeReady(s3)
            #expect(cluster[s3].appliedThrough == 3)
            #expect(cluster.journals[s3] == Journal(applied: ["r1", "r2", "r3"]))
        }
    }
}
