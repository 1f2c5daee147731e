import Paxos
import Testing

/// What the replica does with input it must not trust, and that the same input always gives the same output.
@Suite struct InputTests {
    /// Everything a test can see of a replica.
    struct Observed: Equatable {
        var now: Tick
        var role: Role
        var ballot: Ballot
        var promised: Ballot
        var log: [Slot: LogEntry<String>]
        var snapshotSlot: Slot
        var chosenThrough: Slot
        var appliedThrough: Slot
        var leaderHint: ReplicaID?
        var waitingCount: Int

        init(_ replica: TestReplica) {
            now = replica.now
            role = replica.role
            ballot = replica.ballot
            promised = replica.promised
            log = replica.log
            snapshotSlot = replica.snapshotSlot
            chosenThrough = replica.chosenThrough
            appliedThrough = replica.appliedThrough
            leaderHint = replica.leaderHint
            waitingCount = replica.waitingCount
        }
    }

    let configuration = Configuration(
        me: s1, members: Cluster.members, leaderTimeoutTicks: 10, heartbeatIntervalTicks: 3, consensusTimeoutTicks: 30)

    // Replica.receive and MessageRejection: a message from the replica itself, or malformed, is refused without any
    // change (the ballot, slot and chosen-mark rules of Replica.validate); one from a removed replica too
    // (MembershipTests).
    @Test func foreignOrMalformedMessageIsRefusedWithoutChange() {
        var cluster = Cluster()
        cluster.elect(s1)
        cluster.heartbeat(s1)
        cluster.submit(request("a", 1), at: s1)
        cluster.stabilize()
        cluster.announceChoices(of: s1)
        let z = batch(ballot(9, s1), request("z", 2))
        let before = Observed(cluster[s2])
        #expect(before.chosenThrough == 1)
        #expect(before.leaderHint == s1)

        // Each would raise S2's promise or change its log if it were taken in.
        let cases: [(String, TestMessage, ReplicaID)] = [
            ("Phase1a from itself", .phase1a(ballot: ballot(9, s2), firstSlot: 1), s2),
            (
                "Phase2a under another replica's ballot",
                .phase2a(ballot: ballot(9, s3), proposals: [SlotProposal(slot: 2, value: z)], chosenThrough: 0), s1
            ),
            (
                "Phase2a for slot 0",
                .phase2a(ballot: ballot(9, s1), proposals: [SlotProposal(slot: 0, value: z)], chosenThrough: 0), s1
            ),
            (
                "catch-up entry not marked chosen",
                .catchUpReply(snapshot: nil, entries: [SlotEntry(slot: 2, entry: accepted(ballot(9, s1), z))]), s1
            ),
            (
                "Phase2a value stamped above the Phase2a's ballot",
                .phase2a(ballot: ballot(8, s1), proposals: [SlotProposal(slot: 2, value: z)], chosenThrough: 0), s1
            ),
            (
                "Phase2a value stamped with round 0",
                .phase2a(
                    ballot: ballot(9, s1), proposals: [SlotProposal(slot: 2, value: .noop(ballot: .zero))],
                    chosenThrough: 0),
                s1
            ),
            (
                "catch-up entry stamped above the ballot it was accepted under",
                .catchUpReply(snapshot: nil, entries: [SlotEntry(slot: 2, entry: chosen(ballot(8, s3), z))]), s1
            ),
            (
                "Phase1b entry stamped above the ballot it was accepted under",
                .phase1b(
                    ballot: ballot(9, s2), snapshotSlot: 0, chosenThrough: 0,
                    entries: [SlotEntry(slot: 2, entry: accepted(ballot(8, s3), z))], memberships: firstMemberships),
                s3
            ),
        ]
        for (name, message, sender) in cases {
            let refusal = cluster.inject(message, at: s2, from: sender)
            #expect(refusal?.sender == sender, "\(name)")
            #expect(Observed(cluster[s2]) == before, "\(name)")
            #expect(cluster.takeReady(s2).isEmpty, "\(name)")
        }
    }

    // STYLE.md (tigerbeetle) "any failing seed replays exactly": the core draws randomness from its seed only, so the
    // same seed and the same inputs give the same Readies.
    @Test func sameSeedAndInputsGiveSameReadies() throws {
        let first = try transcript(seed: 42)
        let second = try transcript(seed: 42)
        #expect(first == second)
        // The transcript went through an election and chose slots, so there was something to diverge.
        #expect(first.contains { !$0.apply.isEmpty })
        // The seed does drive the election timer: replicas seeded differently campaign at different ticks.
        let campaignTicks = (UInt64(1)...8).map { seed in
            var replica = TestReplica(configuration: configuration, seed: seed)
            while replica.role == .follower { replica.tick() }
            return replica.now
        }
        #expect(Set(campaignTicks).count > 1)
        #expect(campaignTicks.allSatisfy { (10..<20).contains($0) })

        // The same holds for a whole cluster: every message sent and every state reached.
        func run() -> Cluster {
            var cluster = Cluster()
            cluster.elect(s2)
            cluster.submit(request("a", 1), at: s1)
            for _ in 0..<40 {
                for member in Cluster.members { cluster.tick(member) }
                cluster.stabilize()
            }
            return cluster
        }
        let one = run()
        let other = run()
        #expect(one.sent == other.sent)
        #expect(one.journals == other.journals)
    }

    /// S1 driven alone for 60 ticks: S2 answers everything that asks for an answer, S3 stays silent, and a request
    /// arrives every 7 ticks. Returns every Ready S1 produced.
    func transcript(seed: UInt64) throws -> [TestReady] {
        var replica = TestReplica(configuration: configuration, seed: seed)
        var readies: [TestReady] = []
        for step in 1...60 {
            replica.tick()
            if step.isMultiple(of: 7) { replica.submit(request("r\(step)", UInt64(step))) }
            let ready = replica.takeReady()
            readies.append(ready)
            for envelope in ready.messages where envelope.to == s2 {
                switch envelope.message {
                case .phase1a(let ballot, _):
                    try replica.receive(
                        .phase1b(
                            ballot: ballot, snapshotSlot: 0, chosenThrough: 0, entries: [],
                            memberships: firstMemberships), from: s2)
                case .phase2a(let ballot, let proposals, _):
                    try replica.receive(
                        .phase2b(ballot: ballot, slots: proposals.map(\.slot), chosenThrough: 0), from: s2)
                case .heartbeat(let ballot, _, let round):
                    try replica.receive(.heartbeatAck(ballot: ballot, round: round, chosenThrough: 0), from: s2)
                default:
                    break
                }
            }
        }
        return readies
    }
}
