import Paxos
import Testing

let s4 = ReplicaID(4)

/// Membership changes (`Replica.reconfigure`, `Memberships`): a change is one slot of the log and governs the slots
/// `slotsInFlightMax` after it; learners are never counted; one change at a time; a removed leader hands over.
@Suite struct MembershipTests {
    /// The window of these tests' clusters (`Configuration.slotsInFlightMax`).
    static let alpha: Slot = 4

    static func cluster() -> Cluster {
        Cluster { $0.slotsInFlightMax = Int(alpha) }
    }

    static func change(_ sequence: UInt64, epoch: UInt64, voters: [ReplicaID], learners: [ReplicaID] = [])
        -> Reconfiguration
    {
        Reconfiguration(
            id: RequestID(client: 99, sequence: sequence),
            membership: Membership(epoch: epoch, voters: voters, learners: learners))
    }

    /// Asks `leader` for `change` and settles; returns its outcome.
    static func reconfigure(_ cluster: inout Cluster, _ change: Reconfiguration, at leader: ReplicaID) -> Outcome? {
        cluster.replicas[leader]!.reconfigure(change)
        let readies = cluster.stabilize()
        cluster.announceChoices(of: leader)
        return Cluster.outcomes(of: leader, in: readies).first { $0.id == change.id }?.outcome
    }

    /// A cluster of S1, S2, S3 led by S1 that added S4 as a learner, and S4 caught up.
    static func withLearner() -> Cluster {
        var cluster = cluster()
        cluster.elect(s1)
        cluster.heartbeat(s1)
        cluster.add(s4)
        let outcome = reconfigure(&cluster, change(1, epoch: 2, voters: [s1, s2, s3], learners: [s4]), at: s1)
        #expect(outcome == .chosen(slot: 1))
        cluster.heartbeat(s1)
        return cluster
    }

    @Test func aChangeGovernsTheSlotsAlphaAfterTheSlotThatChoseIt() {
        let cluster = Self.withLearner()
        let memberships = cluster[s1].memberships
        #expect(memberships.governing(Self.alpha).learners == [])
        #expect(memberships.governing(1 + Self.alpha) == Membership(epoch: 2, voters: [s1, s2, s3], learners: [s4]))
        // No client proposed: the leader filled the slots before the change with no-ops, so it took effect.
        #expect(cluster[s1].chosenThrough >= Self.alpha)
        #expect(cluster[s1].peers == [s2, s3, s4])
        // Every replica, the learner included, derived the same history from the log.
        for member in cluster.members { #expect(cluster[member].memberships == memberships, "\(member)") }
        #expect(cluster[s4].chosenThrough == cluster[s1].chosenThrough)
    }

    @Test func aLearnerIsNeverCounted() {
        var cluster = Self.withLearner()
        cluster.isolate(s2)
        cluster.isolate(s3)
        cluster.submit(request("a", 1), at: s1)
        cluster.stabilize()
        cluster.tick(s1, times: 3)
        cluster.stabilize()
        // S1 and the learner S4 accepted it; that is one voter of three.
        #expect(cluster[s4].log.values.contains { $0.value.requests == [request("a", 1)] })
        #expect(cluster[s1].outstanding.proposals.map(\.acceptedBy).first == [s1, s4])
        #expect(!cluster.journals[s1]!.applied.contains("a"))
        cluster.heal()
        cluster.tick(s1, times: 3)
        cluster.stabilize()
        #expect(cluster.journals[s1]!.applied.contains("a"))
    }

    @Test func aSecondChangeIsRefusedWhileOneIsInProgress() {
        var cluster = Self.cluster()
        cluster.elect(s1)
        cluster.heartbeat(s1)
        cluster.add(s4)
        cluster.replicas[s1]!.reconfigure(Self.change(1, epoch: 2, voters: [s1, s2, s3], learners: [s4]))
        cluster.replicas[s1]!.reconfigure(Self.change(2, epoch: 2, voters: [s1, s2]))
        let ready = cluster.takeReady(s1)
        #expect(
            ready.outcomes == [
                RequestOutcome(
                    id: RequestID(client: 99, sequence: 2), outcome: .refused(reason: "reconfiguration in progress"))
            ])
        // Once the change governs, the next one is taken.
        cluster.stabilize()
        cluster.announceChoices(of: s1)
        #expect(cluster[s1].memberships.governing(cluster[s1].chosenThrough + 1).epoch == 2)
        // Promoting the learner, which caught up: taken, and a retry is answered once, when it is applied.
        let promotion = Self.change(3, epoch: 3, voters: [s1, s2, s3, s4])
        cluster.replicas[s1]!.reconfigure(promotion)
        #expect(cluster.takeReady(s1).outcomes.isEmpty)
        let outcome = Self.reconfigure(&cluster, promotion, at: s1)
        #expect(cluster[s1].memberships.latest == promotion.membership)
        #expect(outcome == .chosen(slot: cluster[s1].memberships.eras.last!.chosenAt))
    }

    @Test(arguments: [
        (change(5, epoch: 3, voters: [s1, s2, s3]), "epoch 3 does not follow the current epoch 1"),
        (change(5, epoch: 2, voters: [s1, s2]), "two voters tolerate no failure; add or remove one more"),
        (change(5, epoch: 2, voters: [s1, s2, s3], learners: [s4, ReplicaID(5)]), "at most one learner at a time"),
        (change(5, epoch: 2, voters: [s1, s2, s3], learners: [s3]), "S3 is both voter and learner"),
        (
            change(5, epoch: 2, voters: [s1, s2, s3, s4]),
            "only 2 of the 4 new voters are live and within 256 slots of the leader; a majority must be"
        ),
    ])
    func aChangeThatCannotBeMadeIsRefusedAndChangesNothing(change: Reconfiguration, reason: String) {
        var cluster = Self.cluster()
        cluster.elect(s1)
        cluster.heartbeat(s1)
        // S2 cut off for longer than a leader timeout: with S4 never started, a fourth voter would leave two of four.
        cluster.isolate(s2)
        for _ in 0..<12 { cluster.step() }
        #expect(cluster[s1].leadsWithQuorum)
        let before = cluster[s1].memberships
        cluster.replicas[s1]!.reconfigure(change)
        #expect(cluster.takeReady(s1).outcomes == [RequestOutcome(id: change.id, outcome: .refused(reason: reason))])
        #expect(cluster[s1].memberships == before)
    }

    @Test func aFollowerAnswersNotLeader() {
        var cluster = Self.cluster()
        cluster.elect(s1)
        cluster.heartbeat(s1)
        let change = Self.change(1, epoch: 2, voters: [s1, s2, s3], learners: [s4])
        cluster.replicas[s2]!.reconfigure(change)
        #expect(cluster.takeReady(s2).outcomes == [RequestOutcome(id: change.id, outcome: .notLeader(hint: s1))])
    }

    /// Replace: the learner S4 takes the place of the leader S1 in one change. S1 leads until the change governs,
    /// then hands over to a voter of the new configuration, steps down and retires; the others refuse it since.
    @Test func aRemovedLeaderHandsOverAndRetires() {
        var cluster = Self.withLearner()
        let outcome = Self.reconfigure(&cluster, Self.change(2, epoch: 3, voters: [s2, s3, s4]), at: s1)
        guard case .chosen(let slot) = outcome else {
            Issue.record("the replacement was not chosen: \(String(describing: outcome))")
            return
        }
        #expect(cluster[s1].role == .follower)
        #expect(cluster[s1].isRetired)
        #expect(cluster[s1].chosenThrough == slot + Self.alpha - 1)
        let handover = cluster.sent.filter { $0.from == s1 && $0.message == .handover(ballot: cluster[s1].promised) }
        #expect(handover.count == 1)
        cluster.stop(s1)
        cluster.stabilize()
        let leaders = cluster.members.filter { cluster[$0].role == .leader }
        #expect(leaders == handover.map(\.to), "the successor campaigned at once and won")
        guard let leader = leaders.first else { return }
        // The new configuration keeps serving clients.
        cluster.submit(request("b", 2), at: leader)
        cluster.stabilize()
        cluster.announceChoices(of: leader)
        for member in cluster.members { #expect(cluster.journals[member]!.applied.contains("b"), "\(member)") }
        // A message from the removed replica is refused, and changes nothing.
        let refusal = cluster.inject(.phase1a(ballot: ballot(99, s1), firstSlot: 1), at: s2, from: s1)
        #expect(refusal?.reason.hasPrefix("was removed from the cluster") == true)
        #expect(cluster[s2].promised < ballot(99, s1))
    }

    /// A removed follower is sent nothing once its removal governs, so the leader tells it the chosen prefix once;
    /// its catch-up request (taken from a removed replica) brings the rest, and it learns it retired.
    @Test func aRemovedFollowerLearnsItRetired() {
        var cluster = Self.withLearner()
        // S3 misses the slots after the change (it holds none of their values), then hears only the farewell.
        cluster.isolate(s3)
        let outcome = Self.reconfigure(&cluster, Self.change(2, epoch: 3, voters: [s1, s2, s4]), at: s1)
        guard case .chosen = outcome else {
            Issue.record("the replacement was not chosen: \(String(describing: outcome))")
            return
        }
        cluster.tick(s1, times: 3)
        cluster.stabilize()
        #expect(!cluster[s1].peers.contains(s3))
        #expect(!cluster[s3].isRetired)
        let farewells = cluster.sent.filter { $0.from == s1 && $0.to == s3 }
        #expect(farewells.contains { if case .chosen = $0.message { true } else { false } }, "no farewell to S3")
        // The farewell went while S3 was cut off; the leader sends S3 nothing else, so send it again by hand.
        cluster.heal()
        _ = cluster.inject(
            .chosen(ballot: cluster[s1].ballot, chosenThrough: cluster[s1].chosenThrough), at: s3, from: s1)
        cluster.stabilize()
        #expect(cluster[s3].isRetired)
        #expect(cluster[s3].chosenThrough == cluster[s1].chosenThrough)
    }

    /// A snapshot carries the configurations: a replica restarted from it (the log below truncated) knows them.
    @Test func theConfigurationsSurviveACompactionAndARestart() {
        var cluster = Self.withLearner()
        cluster.compact(s2)
        _ = cluster.takeReady(s2)
        let stored = cluster.durable[s2]!.snapshot?.memberships
        let next = cluster[s2].snapshotSlot + 1
        #expect(stored?.governingFrom(next) == cluster[s1].memberships.governingFrom(next))
        #expect(stored?.eras.count == 1, "the configurations that govern no slot after the snapshot are forgotten")
        let before = cluster[s2].memberships
        cluster.restart(s2, seed: 7)
        #expect(cluster[s2].memberships == before)
        #expect(cluster[s2].peers == [s1, s3, s4])
    }
}

/// What an operator's change asks for (`Memberships.applying`): the next configuration, nothing when it is in effect
/// already, or why it cannot be made.
@Suite struct MembershipChangeTests {
    static let (s5, s6) = (ReplicaID(5), ReplicaID(6))

    /// Epoch 1 S1 S2 S3; epoch 2 adds S4 as a learner; epoch 3 replaces S3 by S4 (S3 retired).
    static func history(eras: Int) -> Memberships {
        var memberships = Memberships(initial: Membership(epoch: 1, voters: [s1, s2, s3]))
        let later = [
            Membership(epoch: 2, voters: [s1, s2, s3], learners: [s4]),
            Membership(epoch: 3, voters: [s1, s2, s4]),
        ]
        for (offset, next) in later.prefix(eras - 1).enumerated() {
            #expect(memberships.record(next, chosenAt: Slot(10 * (offset + 1)), delay: 4) == nil)
        }
        return memberships
    }

    static func next(_ epoch: UInt64, _ voters: [ReplicaID], _ learners: [ReplicaID] = [])
        -> Result<Membership?, MembershipChangeRefusal>
    {
        .success(Membership(epoch: epoch, voters: voters, learners: learners))
    }

    static func refused(_ reason: String) -> Result<Membership?, MembershipChangeRefusal> {
        .failure(MembershipChangeRefusal(reason: reason))
    }

    @Test(arguments: [
        // Each change from the first configuration (S1 S2 S3).
        (1, MembershipChange.addLearner(s4), next(2, [s1, s2, s3], [s4])),
        (1, .addLearner(s1), refused("S1 is a voter already")),
        (1, .promote(s4), refused("S4 is not a learner of epoch 1: voters S1 S2 S3; add it first")),
        (1, .remove(s3), next(2, [s1, s2])),
        (1, .remove(s4), refused("S4 is not a member of epoch 1: voters S1 S2 S3")),
        (
            1, .replace(s3, with: s4),
            refused("S4 is not a learner of epoch 1: voters S1 S2 S3; add it and let it catch up first")
        ),
        // With S4 learning.
        (2, .addLearner(s4), .success(nil)),
        (2, .addLearner(s5), refused("S4 is learning already; promote or remove it first (one learner at a time)")),
        (2, .promote(s4), next(3, [s1, s2, s3, s4])),
        (2, .remove(s4), next(3, [s1, s2, s3])),
        (2, .replace(s3, with: s4), next(3, [s1, s2, s4])),
        (2, .replace(s5, with: s4), refused("S5 is not a voter of epoch 2: voters S1 S2 S3, learners S4")),
        // After the swap: asking again is done; S3's id is gone for good.
        (3, .replace(s3, with: s4), .success(nil)),
        (3, .remove(s3), .success(nil)),
        (3, .promote(s4), .success(nil)),
        (3, .addLearner(s3), refused("S3 was removed before; a replica id is never reused")),
        (3, .addLearner(s6), next(4, [s1, s2, s4], [s6])),
    ])
    func applying(eras: Int, change: MembershipChange, expected: Result<Membership?, MembershipChangeRefusal>) {
        #expect(Self.history(eras: eras).applying(change) == expected)
    }

    @Test func onlyTheLeadersRefusalsForNowAreTransient() {
        #expect(MembershipChangeRefusal.isTransient(MembershipChangeRefusal.inProgress))
        #expect(MembershipChangeRefusal.isTransient(MembershipChangeRefusal.notReady(ready: 1, voters: 3)))
        #expect(!MembershipChangeRefusal.isTransient("two voters tolerate no failure; add or remove one more"))
        #expect(!MembershipChangeRefusal.isTransient("S3 was removed before; a replica id is never reused"))
    }
}
