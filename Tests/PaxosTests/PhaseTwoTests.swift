import Paxos
import Testing

/// Phase 2: proposing, accepting, choosing, applying and learning what is chosen.
@Suite struct PhaseTwoTests {
    // Paxos Made Simple §2.2 phase 2 and §3 and DESIGN §3: requests batched into one slot, accepted after being
    // persisted, chosen by a majority, applied strictly in slot order.
    @Test func batchIsProposedAcceptedChosenAndAppliedInOrder() {
        var cluster = Cluster()
        cluster.elect(s1)
        let leader = ballot(1, s1)
        let a = request("a", 1)
        let b = request("b", 2)
        let c = request("c", 3)
        let d = request("d", 4)

        // Three submits before one takeReady share one slot.
        for item in [a, b, c] { cluster.submit(item, at: s1) }
        #expect(cluster[s1].waitingCount == 3)
        let first = cluster.takeReady(s1)
        #expect(first.persist.entries == [1: accepted(leader, batch(leader, a, b, c))])
        #expect(
            first.messages
                == [s2, s3].map {
                    envelope(
                        to: $0,
                        .phase2a(
                            ballot: leader, proposals: [SlotProposal(slot: 1, value: batch(leader, a, b, c))],
                            chosenThrough: 0)
                    )
                })
        cluster.submit(d, at: s1)
        let second = cluster.takeReady(s1)
        #expect(proposals(in: second, to: s2) == [SlotProposal(slot: 2, value: batch(leader, d))])

        // S2 persists both values in the same Ready that carries its Phase2b answers.
        cluster.deliver(to: s2)
        cluster.drop(to: s3)
        let acceptance = cluster.takeReady(s2)
        #expect(
            acceptance.persist.entries == [
                1: accepted(leader, batch(leader, a, b, c)), 2: accepted(leader, batch(leader, d)),
            ])
        #expect(
            acceptance.messages == [
                envelope(to: s1, .phase2b(ballot: leader, slots: [1], chosenThrough: 0)),
                envelope(to: s1, .phase2b(ballot: leader, slots: [2], chosenThrough: 0)),
            ])
        #expect(cluster[s2].leaderHint == s1)

        // Slot 2 is chosen first, but nothing is applied past the missing slot 1.
        cluster.deliver { $0.message == .phase2b(ballot: leader, slots: [2], chosenThrough: 0) }
        let early = cluster.takeReady(s1)
        #expect(early.persist.entries == [2: chosen(leader, batch(leader, d))])
        #expect(early.apply.isEmpty)
        #expect(early.outcomes.isEmpty)
        #expect(cluster[s1].chosenThrough == 0)

        cluster.deliver()
        let applied = cluster.takeReady(s1)
        #expect(applied.persist.entries == [1: chosen(leader, batch(leader, a, b, c))])
        #expect(
            applied.apply == [
                .slot(1, ballot: leader, value: batch(leader, a, b, c)),
                .slot(2, ballot: leader, value: batch(leader, d)),
            ])
        #expect(
            applied.outcomes == [
                RequestOutcome(id: a.id, outcome: .chosen(slot: 1)),
                RequestOutcome(id: b.id, outcome: .chosen(slot: 1)),
                RequestOutcome(id: c.id, outcome: .chosen(slot: 1)),
                RequestOutcome(id: d.id, outcome: .chosen(slot: 2)),
            ])
        // The leader announces the chosen slots in its next message: with no proposal to carry them, a notice of
        // its own once a whole tick passed.
        #expect(applied.messages.isEmpty)
        cluster.tick(s1)
        #expect(cluster.takeReady(s1).messages.isEmpty, "the choice gets a whole tick to ride on a proposal")
        cluster.tick(s1)
        #expect(
            cluster.takeReady(s1).messages
                == [s2, s3].map { envelope(to: $0, .chosen(ballot: leader, chosenThrough: 2)) })
        #expect(cluster[s1].chosenThrough == 2)
        #expect(cluster[s1].appliedThrough == 2)
        #expect(cluster[s1].waitingCount == 0)
        #expect(cluster.journals[s1] == Journal(applied: ["a", "b", "c", "d"]))
    }

    // Ready: promises and acceptances reach the disk before anything depends on them; chosen marks and applied
    // slots may follow lazily (a majority holds them as acceptances); proposals may leave before the write.
    @Test func onlyPromisesAndAcceptancesMustBeDurable() {
        var cluster = Cluster()
        let campaign = cluster.campaign(s1)
        #expect(campaign.persistMustBeDurable, "a candidate's promise to itself")
        #expect(campaign.messages.allSatisfy { !$0.message.waitsForStorage }, "a Phase1a may leave before the write")
        cluster.stabilize()
        let a = request("a", 1)
        cluster.submit(a, at: s1)
        let proposal = cluster.takeReady(s1)
        #expect(proposal.persistMustBeDurable, "the leader's own acceptance counts toward the majority")
        #expect(proposal.messages.allSatisfy { !$0.message.waitsForStorage }, "a Phase2a may leave before the write")

        cluster.deliver()
        let acceptance = cluster.takeReady(s2)
        #expect(acceptance.persistMustBeDurable)
        #expect(acceptance.messages.allSatisfy { $0.message.waitsForStorage }, "a Phase2b waits for the write")
        _ = cluster.takeReady(s3)
        cluster.drop { $0.from == s3 }

        cluster.deliver()
        let choice = cluster.takeReady(s1)
        #expect(choice.outcomes == [RequestOutcome(id: a.id, outcome: .chosen(slot: 1))])
        #expect(!choice.persistMustBeDurable, "a chosen mark and an applied slot may be written lazily")
        cluster.tick(s1, times: 2)
        _ = cluster.takeReady(s1)
        cluster.deliver(to: s3)
        let learned = cluster.takeReady(s3)
        #expect(learned.persist.entries == [1: chosen(ballot(1, s1), batch(ballot(1, s1), a))])
        #expect(!learned.persistMustBeDurable, "a slot learned as chosen needs no vote of this replica")

        // A single replica is its own majority: every write it makes is durable.
        var alone = TestReplica(
            configuration: Configuration(
                me: s1, members: [s1], leaderTimeoutTicks: 10, heartbeatIntervalTicks: 3, consensusTimeoutTicks: 30),
            seed: 7)
        for _ in 0..<100 where alone.role != .leader {
            alone.tick()
            _ = alone.takeReady()
        }
        alone.submit(a)
        let own = alone.takeReady()
        #expect(own.outcomes == [RequestOutcome(id: a.id, outcome: .chosen(slot: 1))])
        #expect(own.persistMustBeDurable)
    }

    // DESIGN §3 Phase 2 pipelined and Limits.slotsInFlightMax: no more than the window of slots awaits acceptance.
    @Test func pipelineHoldsAtMostSlotsInFlightMax() {
        var cluster = Cluster {
            $0.slotsInFlightMax = 2
            $0.batchSizeMax = 1
        }
        cluster.elect(s1)
        let leader = ballot(1, s1)
        let requests = (1...5).map { request("r\($0)", UInt64($0)) }
        for item in requests { cluster.submit(item, at: s1) }

        let window = cluster.takeReady(s1)
        #expect(window.persist.entries.keys.sorted() == [1, 2])
        #expect(
            proposals(in: window, to: s2) == [
                SlotProposal(slot: 1, value: batch(leader, requests[0])),
                SlotProposal(slot: 2, value: batch(leader, requests[1])),
            ])
        #expect(cluster.takeReady(s1).isEmpty)

        // Each round of acknowledgements from S2 frees the window for the next two.
        cluster.drop(to: s3)
        cluster.deliver()
        _ = cluster.takeReady(s2)
        cluster.deliver()
        let next = cluster.takeReady(s1)
        #expect(next.outcomes.map(\.outcome) == [.chosen(slot: 1), .chosen(slot: 2)])
        #expect(
            next.messages.first { $0.to == s2 }
                == envelope(
                    to: s2,
                    .phase2a(
                        ballot: leader,
                        proposals: [
                            SlotProposal(slot: 3, value: batch(leader, requests[2])),
                            SlotProposal(slot: 4, value: batch(leader, requests[3])),
                        ],
                        chosenThrough: 2)))

        cluster.drop(to: s3)
        cluster.deliver()
        _ = cluster.takeReady(s2)
        cluster.deliver()
        let last = cluster.takeReady(s1)
        #expect(proposals(in: last, to: s2) == [SlotProposal(slot: 5, value: batch(leader, requests[4]))])
    }

    // DESIGN §3 "the leader announces chosen slots in its next message": a follower holding the slot's value under
    // the leader's ballot learns it is chosen from a chosen notice or a heartbeat.
    @Test func followerLearnsChosenFromNoticeAndHeartbeat() {
        var cluster = Cluster()
        cluster.elect(s1)
        let leader = ballot(1, s1)
        let a = request("a", 1)
        let e = request("e", 2)

        // Both followers accept slot 1; only S2's Phase2b reaches the leader.
        cluster.submit(a, at: s1)
        _ = cluster.takeReady(s1)
        cluster.deliver()
        _ = cluster.takeReady(s2)
        _ = cluster.takeReady(s3)
        cluster.drop { $0.from == s3 }
        cluster.deliver()
        _ = cluster.takeReady(s1)
        cluster.tick(s1, times: 2)
        let notice = cluster.takeReady(s1)
        #expect(notice.messages == [s2, s3].map { envelope(to: $0, .chosen(ballot: leader, chosenThrough: 1)) })

        cluster.deliver(to: s3)
        let learned = cluster.takeReady(s3)
        #expect(learned.persist.entries == [1: chosen(leader, batch(leader, a))])
        #expect(learned.apply == [.slot(1, ballot: leader, value: batch(leader, a))])
        #expect(learned.messages.isEmpty)
        #expect(cluster[s3].chosenThrough == 1)

        // Slot 2 the same way, but the chosen notice is lost; the next heartbeat carries chosenThrough.
        cluster.submit(e, at: s1)
        _ = cluster.takeReady(s1)
        cluster.deliver()
        _ = cluster.takeReady(s2)
        _ = cluster.takeReady(s3)
        cluster.drop { $0.from == s3 }
        cluster.deliver()
        _ = cluster.takeReady(s1)
        cluster.drop()
        cluster.tick(s1, times: 3)
        let heartbeat = cluster.takeReady(s1)
        #expect(
            heartbeat.messages
                == [s2, s3].map { envelope(to: $0, .heartbeat(ballot: leader, chosenThrough: 2, round: 0)) })
        cluster.deliver(to: s3)
        let fromHeartbeat = cluster.takeReady(s3)
        #expect(fromHeartbeat.persist.entries == [2: chosen(leader, batch(leader, e))])
        #expect(fromHeartbeat.apply == [.slot(2, ballot: leader, value: batch(leader, e))])
        // The acknowledgement tells the leader how far this follower's chosen prefix is now.
        #expect(fromHeartbeat.messages == [envelope(to: s1, .heartbeatAck(ballot: leader, round: 0, chosenThrough: 2))])
        #expect(cluster[s3].appliedThrough == 2)
    }

    // The leader sends no chosen notice of its own at once: the next Phase2a carries chosenThrough. A choice that
    // no message carried for a whole tick gets a notice at the next tick.
    @Test func chosenNoticeWaitsForTheNextProposalOrTick() {
        var cluster = Cluster()
        cluster.elect(s1)
        let leader = ballot(1, s1)
        let a = request("a", 1)
        let b = request("b", 2)
        let c = request("c", 3)

        cluster.submit(a, at: s1)
        _ = cluster.takeReady(s1)
        cluster.deliver()
        _ = cluster.takeReady(s2)
        _ = cluster.takeReady(s3)
        // Slot 2 is proposed before slot 1's acceptances reach the leader.
        cluster.submit(b, at: s1)
        _ = cluster.takeReady(s1)
        cluster.deliver(to: s1)
        let chosenOne = cluster.takeReady(s1)
        #expect(chosenOne.outcomes == [RequestOutcome(id: a.id, outcome: .chosen(slot: 1))])
        #expect(chosenOne.messages.isEmpty, "slot 2 is in flight: its successor carries the news")

        cluster.submit(c, at: s1)
        let next = cluster.takeReady(s1)
        #expect(
            next.messages
                == [s2, s3].map {
                    envelope(
                        to: $0,
                        .phase2a(
                            ballot: leader, proposals: [SlotProposal(slot: 3, value: batch(leader, c))],
                            chosenThrough: 1))
                })

        // Slot 2 is chosen while slot 3 is still in flight, and no proposal follows: a tick sends the notice.
        cluster.deliver(where: { $0.proposes(b) })
        cluster.drop(where: { $0.proposes(c) })
        _ = cluster.takeReady(s2)
        _ = cluster.takeReady(s3)
        cluster.deliver(to: s1)
        let chosenTwo = cluster.takeReady(s1)
        #expect(cluster[s1].chosenThrough == 2)
        #expect(chosenTwo.messages.isEmpty)
        cluster.tick(s1)
        #expect(cluster.takeReady(s1).messages.isEmpty, "the choice gets a whole tick to ride on a proposal")
        cluster.tick(s1)
        let ticked = cluster.takeReady(s1)
        #expect(ticked.messages == [s2, s3].map { envelope(to: $0, .chosen(ballot: leader, chosenThrough: 2)) })
    }

    // DESIGN §3 catch-up: a follower told of a chosen slot it does not hold asks the leader and applies the reply.
    @Test func followerMissingChosenSlotCatchesUp() {
        var cluster = Cluster()
        cluster.elect(s1)
        let leader = ballot(1, s1)
        let a = request("a", 1)
        cluster.submit(a, at: s1)
        _ = cluster.takeReady(s1)
        cluster.drop(to: s3)
        cluster.deliver()
        _ = cluster.takeReady(s2)
        cluster.deliver()
        _ = cluster.takeReady(s1)
        cluster.tick(s1, times: 2)
        let notice = cluster.takeReady(s1)
        #expect(notice.messages.contains(envelope(to: s3, .chosen(ballot: leader, chosenThrough: 1))))

        cluster.deliver(to: s3)
        let behind = cluster.takeReady(s3)
        #expect(behind.apply.isEmpty)
        #expect(behind.messages == [envelope(to: s1, .catchUpRequest(firstSlot: 1))])
        #expect(cluster[s3].chosenThrough == 0)

        cluster.deliver(to: s1)
        let reply = cluster.takeReady(s1)
        #expect(
            reply.messages == [
                envelope(
                    to: s3,
                    .catchUpReply(snapshot: nil, entries: [SlotEntry(slot: 1, entry: chosen(leader, batch(leader, a)))])
                )
            ])

        cluster.deliver(to: s3)
        let caughtUp = cluster.takeReady(s3)
        #expect(caughtUp.persist.entries == [1: chosen(leader, batch(leader, a))])
        #expect(caughtUp.apply == [.slot(1, ballot: leader, value: batch(leader, a))])
        #expect(cluster[s3].appliedThrough == 1)
        #expect(cluster.journals[s3] == Journal(applied: ["a"]))
    }
}

/// Thrifty Phase 2 (`Configuration.laggardFlushTicks`): a proposal goes at once only to the peers a majority needs.
@Suite struct ThriftyPhaseTwoTests {
    /// Messages `sender` sent to `peer` from the `first`-th message on.
    func sent(_ cluster: Cluster, from sender: ReplicaID, to peer: ReplicaID, since first: Int) -> [TestMessage] {
        cluster.sent[first...].filter { $0.from == sender && $0.to == peer }.map(\.message)
    }

    @Test func proposalsGoToThePromptPeerAndTheLaggardGetsThemInOneMessageLater() {
        var cluster = Cluster { $0.laggardFlushTicks = 2 }
        cluster.elect(s1)
        let leader = ballot(1, s1)
        let a = request("a", 1)
        let b = request("b", 2)
        let first = cluster.sent.count

        cluster.submit(a, at: s1)
        let proposed = cluster.takeReady(s1)
        #expect(
            proposed.messages == [
                envelope(
                    to: s2,
                    .phase2a(
                        ballot: leader, proposals: [SlotProposal(slot: 1, value: batch(leader, a))], chosenThrough: 0))
            ])
        cluster.stabilize()
        cluster.submit(b, at: s1)
        cluster.stabilize()
        #expect(cluster[s1].chosenThrough == 2, "the leader and its prompt peer are a majority")
        #expect(sent(cluster, from: s1, to: s3, since: first).isEmpty)

        // Within `laggardFlushTicks` the laggard gets both slots in one Phase2a, which also tells it they are chosen;
        // no chosen notice or heartbeat goes ahead of them.
        cluster.tick(s1, times: 2)
        cluster.stabilize()
        let toLaggard = sent(cluster, from: s1, to: s3, since: first)
        #expect(
            toLaggard.first
                == .phase2a(
                    ballot: leader,
                    proposals: [
                        SlotProposal(slot: 1, value: batch(leader, a)), SlotProposal(slot: 2, value: batch(leader, b)),
                    ],
                    chosenThrough: 2))
        #expect(cluster[s3].chosenThrough == 2)
        #expect(cluster.journals[s3]!.applied == ["a", "b"])
        #expect(cluster.durable[s3]!.entries.keys.sorted() == [1, 2], "the laggard holds the slots durably")
    }

    @Test func aSilentPromptPeerGivesWayToTheLaggardWithinTwoTicks() {
        var cluster = Cluster { $0.laggardFlushTicks = 2 }
        cluster.elect(s1)
        cluster.isolate(s2)
        let a = request("a", 1)
        let b = request("b", 2)

        cluster.submit(a, at: s1)
        cluster.stabilize()
        cluster.tick(s1)
        cluster.stabilize()
        #expect(cluster[s1].chosenThrough == 0, "only the silent prompt peer has the proposal")

        cluster.tick(s1)
        cluster.stabilize()
        #expect(cluster[s1].chosenThrough == 1, "a proposal two ticks old goes to every peer")

        // S3 is the prompt peer now: the next proposal reaches it at once and is chosen without a tick.
        cluster.submit(b, at: s1)
        let proposed = cluster.takeReady(s1)
        #expect(proposals(in: proposed, to: s3).map(\.slot) == [2])
        #expect(proposals(in: proposed, to: s2).isEmpty)
        cluster.stabilize()
        #expect(cluster[s1].chosenThrough == 2)
        #expect(cluster.journals[s1]!.applied == ["a", "b"])
    }

    /// With laggards flushed every tick, a proposal is chosen by the laggard before it is two ticks old: that
    /// acceptance, not a stall, is what shows the prompt peer slow.
    @Test func aLaggardWhoseAcceptanceChoosesASlotBecomesPrompt() {
        var cluster = Cluster {
            $0.heartbeatIntervalTicks = 2
            $0.laggardFlushTicks = 1
        }
        cluster.elect(s1)
        cluster.isolate(s2)
        cluster.submit(request("a", 1), at: s1)
        cluster.stabilize()
        cluster.tick(s1)
        cluster.stabilize()
        #expect(cluster[s1].chosenThrough == 1, "the laggard got the slot with the flush and completed a majority")

        cluster.submit(request("b", 2), at: s1)
        let proposed = cluster.takeReady(s1)
        #expect(proposals(in: proposed, to: s3).map(\.slot) == [2])
        #expect(proposals(in: proposed, to: s2).isEmpty)
        cluster.stabilize()
        #expect(cluster[s1].chosenThrough == 2, "chosen without waiting for a flush")
    }

    @Test func laggardsGetTheirSlotsBeforeTheLeaderCompactsItsLog() {
        var cluster = Cluster {
            $0.laggardFlushTicks = 2
            $0.snapshotIntervalSlots = 2
        }
        cluster.elect(s1)
        let first = cluster.sent.count
        cluster.submit(request("a", 1), at: s1)
        _ = cluster.takeReady(s1)
        cluster.deliver()
        _ = cluster.takeReady(s2)
        cluster.deliver()
        cluster.submit(request("b", 2), at: s1)
        _ = cluster.takeReady(s1)
        cluster.deliver()
        _ = cluster.takeReady(s2)
        cluster.deliver()
        let compacting = cluster.takeReady(s1)
        #expect(compacting.snapshotDue)
        #expect(proposals(in: compacting, to: s3).map(\.slot) == [1, 2])
        cluster.compact(s1)
        cluster.stabilize()
        #expect(cluster.journals[s3]!.applied == ["a", "b"])
        #expect(
            !cluster.sent[first...].contains { sent in
                if case .catchUpReply = sent.message { return true }
                return false
            }, "the laggard needed no catch-up")
    }

    @Test func withoutThriftEveryPeerGetsEveryProposalAtOnce() {
        var cluster = Cluster()
        cluster.elect(s1)
        let a = request("a", 1)
        cluster.submit(a, at: s1)
        let proposed = cluster.takeReady(s1)
        #expect(proposals(in: proposed, to: s2).map(\.slot) == [1])
        #expect(proposals(in: proposed, to: s3).map(\.slot) == [1])
    }
}
