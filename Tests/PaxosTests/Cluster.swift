import Paxos
import Testing

/// The replicated state machine of these tests: the commands it applied, in order.
struct Journal: Sendable, Equatable {
    var applied: [String] = []
}

typealias TestReplica = Replica<String, Journal>
typealias TestMessage = Message<String, Journal>
typealias TestEnvelope = Envelope<String, Journal>
typealias TestReady = Ready<String, Journal>
typealias TestDurable = DurableState<String, Journal>

let s1 = ReplicaID(1)
let s2 = ReplicaID(2)
let s3 = ReplicaID(3)

/// The configurations of a three-replica test cluster that never changed them (epoch 1: S1, S2, S3).
let firstMemberships = Memberships(initial: Membership(epoch: 1, voters: [s1, s2, s3]))

/// A ballot, written the way the paper writes it: (round, replica).
func ballot(_ round: UInt64, _ replica: ReplicaID) -> Ballot {
    Ballot(round: round, replica: replica)
}

/// A request of client 1 whose command is its name.
func request(_ command: String, _ sequence: UInt64) -> Request<String> {
    Request(id: RequestID(client: 1, sequence: sequence), command: command)
}

/// A batch stamped with the ballot of the leader that first proposed it.
func batch(_ proposer: Ballot, _ requests: Request<String>...) -> SlotValue<String> {
    .batch(requests, ballot: proposer)
}

func accepted(_ ballot: Ballot, _ value: SlotValue<String>) -> LogEntry<String> {
    LogEntry(ballot: ballot, value: value, isChosen: false)
}

func chosen(_ ballot: Ballot, _ value: SlotValue<String>) -> LogEntry<String> {
    LogEntry(ballot: ballot, value: value, isChosen: true)
}

func envelope(to replica: ReplicaID, _ message: TestMessage) -> TestEnvelope {
    TestEnvelope(to: replica, message: message)
}

/// Every proposal a Ready sends to `peer` in Phase2a messages, in order.
func proposals(in ready: TestReady, to peer: ReplicaID) -> [SlotProposal<String>] {
    ready.messages.filter { $0.to == peer }.flatMap { envelope -> [SlotProposal<String>] in
        switch envelope.message {
        case .phase2a(_, let proposals, _): return proposals
        default: return []
        }
    }
}

/// A message in flight: who sent it, to whom.
struct Sent: Equatable {
    var from: ReplicaID
    var to: ReplicaID
    var message: TestMessage

    /// True for a Phase2a that proposes `request` in any slot.
    func proposes(_ request: Request<String>) -> Bool {
        guard case .phase2a(_, let proposals, _) = message else { return false }
        return proposals.contains { $0.value.requests.contains(request) }
    }
}

/// A directed link between two replicas.
struct Link: Hashable {
    var from: ReplicaID
    var to: ReplicaID
}

/// Three replicas wired by hand, in the manner of etcd raft's interaction tests: the test decides when each replica
/// ticks, when it hands over its Ready and which messages arrive. `takeReady` performs a Ready the way the shell
/// must (persist, then send, then apply), so `durable` always holds what a restart would find.
struct Cluster {
    static let members = [s1, s2, s3]

    /// The replicas started: the first three, then any `add`ed.
    var members = Cluster.members
    var replicas: [ReplicaID: TestReplica] = [:]
    var configurations: [ReplicaID: Configuration] = [:]
    /// What each replica made durable, accumulated from its Readies like the simulator's storage.
    var durable: [ReplicaID: TestDurable] = [:]
    /// Each replica's state machine.
    var journals: [ReplicaID: Journal] = [:]
    /// Sent and not yet delivered, in send order.
    var mailbox: [Sent] = []
    /// Every message ever sent, delivered or not.
    var sent: [Sent] = []
    /// Directed links that lose every message.
    var cut: Set<Link> = []
    /// Every apply step each replica performed, in order.
    var applied: [ReplicaID: [ApplyStep<String, Journal>]] = [:]

    /// Timings small enough to read in a transcript: leader timeout 10, heartbeat 3, consensus timeout 30.
    init(_ adjust: (inout Configuration) -> Void = { _ in }) {
        for member in Self.members {
            var configuration = Configuration(
                me: member,
                members: Self.members,
                leaderTimeoutTicks: 10,
                heartbeatIntervalTicks: 3,
                consensusTimeoutTicks: 30
            )
            adjust(&configuration)
            configurations[member] = configuration
            durable[member] = TestDurable()
            journals[member] = Journal()
            replicas[member] = TestReplica(configuration: configuration, seed: UInt64(member.index) * 1_000)
        }
    }

    /// Starts `replica` from an empty disk, configured like the others (it learns from the log who votes).
    mutating func add(_ replica: ReplicaID) {
        var configuration = configurations[s1]!
        configuration.me = replica
        configuration.preferredLeader = nil
        configurations[replica] = configuration
        durable[replica] = TestDurable()
        journals[replica] = Journal()
        replicas[replica] = TestReplica(configuration: configuration, seed: UInt64(replica.index) * 1_000)
        members.append(replica)
    }

    /// Stops `replica` for good (a removed replica's shell does): it takes no more turns, and what it sent is lost.
    mutating func stop(_ replica: ReplicaID) {
        members.removeAll { $0 == replica }
        mailbox.removeAll { $0.from == replica || $0.to == replica }
    }

    subscript(replica: ReplicaID) -> TestReplica { replicas[replica]! }

    // MARK: - Inputs

    mutating func tick(_ replica: ReplicaID, times: Int = 1) {
        for _ in 0..<times { replicas[replica]!.tick() }
    }

    mutating func submit(_ request: Request<String>, at replica: ReplicaID) {
        replicas[replica]!.submit(request)
    }

    /// Hands `message` to `replica` as if `sender` had sent it; returns the refusal, if any.
    @discardableResult
    mutating func inject(_ message: TestMessage, at replica: ReplicaID, from sender: ReplicaID) -> MessageRejection? {
        do {
            try replicas[replica]!.receive(message, from: sender)
            return nil
        } catch {
            return error
        }
    }

    /// Takes `replica`'s Ready and performs it: persist, then send (into the mailbox), then apply.
    mutating func takeReady(_ replica: ReplicaID) -> TestReady {
        let ready = replicas[replica]!.takeReady()
        persist(ready.persist, at: replica)
        for envelope in ready.messages {
            let item = Sent(from: replica, to: envelope.to, message: envelope.message)
            sent.append(item)
            mailbox.append(item)
        }
        for step in ready.apply { apply(step, at: replica) }
        return ready
    }

    /// Takes `replica`'s Ready and makes only its `persist` durable, as a shell that crashes right after step 1:
    /// nothing is sent and nothing is applied.
    mutating func takeReadyAndCrashAfterPersisting(_ replica: ReplicaID) {
        let ready = replicas[replica]!.takeReady()
        persist(ready.persist, at: replica)
    }

    /// What the shell does when a Ready says `snapshotDue`.
    mutating func compact(_ replica: ReplicaID) {
        replicas[replica]!.compact(state: journals[replica]!)
    }

    /// Rebuilds `replica` from what it made durable, as after a crash.
    mutating func restart(_ replica: ReplicaID, seed: UInt64) {
        replicas[replica] = TestReplica(
            configuration: configurations[replica]!, durable: durable[replica]!, seed: seed)
    }

    // MARK: - Network

    /// Delivers the mailbox's messages that match, in send order; the others stay. A message on a cut link is lost.
    mutating func deliver(where matches: (Sent) -> Bool = { _ in true }) {
        var kept: [Sent] = []
        for item in mailbox {
            guard matches(item) else {
                kept.append(item)
                continue
            }
            guard !cut.contains(Link(from: item.from, to: item.to)) else { continue }
            if let refusal = inject(item.message, at: item.to, from: item.from) {
                Issue.record("a correct replica's message was refused: \(refusal)")
            }
        }
        mailbox = kept
    }

    mutating func deliver(to replica: ReplicaID) {
        deliver { $0.to == replica }
    }

    mutating func deliver(from replica: ReplicaID) {
        deliver { $0.from == replica }
    }

    /// Loses the mailbox's messages that match.
    mutating func drop(where matches: (Sent) -> Bool = { _ in true }) {
        mailbox.removeAll(where: matches)
    }

    mutating func drop(to replica: ReplicaID) {
        drop { $0.to == replica }
    }

    /// Cuts every link to and from `replica`.
    mutating func isolate(_ replica: ReplicaID) {
        for other in members where other != replica {
            cut.insert(Link(from: replica, to: other))
            cut.insert(Link(from: other, to: replica))
        }
    }

    mutating func heal() {
        cut = []
    }

    // MARK: - Transcript steps

    /// Ticks `replica` until its election timer fires; returns the Ready that carries its Phase1a.
    mutating func campaign(_ replica: ReplicaID) -> TestReady {
        // A follower's timer fires within 2 x leaderTimeoutTicks; a leader first steps down (check quorum).
        for _ in 0..<40 {
            replicas[replica]!.tick()
            if replicas[replica]!.role == .candidate { return takeReady(replica) }
        }
        Issue.record("\(replica) did not campaign within 40 ticks")
        return TestReady()
    }

    /// Takes every replica's Ready and delivers every message until nothing is left to do (etcd's `stabilize`).
    /// Compacts a replica whose Ready says `snapshotDue`, as the shell does. Returns the non-empty Readies.
    @discardableResult
    mutating func stabilize() -> [ReplicaID: [TestReady]] {
        var readies: [ReplicaID: [TestReady]] = [:]
        for _ in 0..<100 {
            for member in members {
                let ready = takeReady(member)
                if ready.snapshotDue { compact(member) }
                if !ready.isEmpty { readies[member, default: []].append(ready) }
            }
            if mailbox.isEmpty { return readies }
            deliver()
        }
        Issue.record("the cluster did not settle within 100 rounds")
        return readies
    }

    /// Lets two ticks pass at `leader`, then settles: by then a choice that no proposal carried has a chosen notice
    /// of its own. Returns the non-empty Readies of the settling.
    @discardableResult
    mutating func announceChoices(of leader: ReplicaID) -> [ReplicaID: [TestReady]] {
        tick(leader, times: 2)
        return stabilize()
    }

    /// One tick of lockstep time, as in the simulator with a one-tick network delay: every replica ticks, hands
    /// over its Ready (compacting when due), and every message sent is delivered. Returns the non-empty Readies.
    @discardableResult
    mutating func step() -> [ReplicaID: TestReady] {
        var readies: [ReplicaID: TestReady] = [:]
        for member in members { tick(member) }
        for member in members {
            let ready = takeReady(member)
            if ready.snapshotDue { compact(member) }
            if !ready.isEmpty { readies[member] = ready }
        }
        deliver()
        return readies
    }

    /// `replica` campaigns and wins Phase 1; the others promise but do not know yet who leads.
    mutating func elect(_ replica: ReplicaID) {
        _ = campaign(replica)
        stabilize()
        #expect(self[replica].role == .leader)
    }

    /// The leader's first heartbeat tells the followers who leads.
    mutating func heartbeat(_ leader: ReplicaID) {
        tick(leader, times: Int(configurations[leader]!.heartbeatIntervalTicks))
        stabilize()
    }

    /// Every outcome `replica` reported in `readies`.
    static func outcomes(of replica: ReplicaID, in readies: [ReplicaID: [TestReady]]) -> [RequestOutcome] {
        readies[replica, default: []].flatMap(\.outcomes)
    }

    // MARK: - The shell's storage and state machine

    private mutating func persist(_ persist: Persist<String, Journal>, at replica: ReplicaID) {
        if let promised = persist.promised { durable[replica]!.promised = promised }
        if let snapshot = persist.snapshot {
            durable[replica]!.snapshot = snapshot
            durable[replica]!.entries = durable[replica]!.entries.filter { $0.key > snapshot.slot }
        }
        for (slot, entry) in persist.entries { durable[replica]!.entries[slot] = entry }
    }

    private mutating func apply(_ step: ApplyStep<String, Journal>, at replica: ReplicaID) {
        applied[replica, default: []].append(step)
        switch step {
        case .installSnapshot(let snapshot):
            journals[replica] = snapshot.state
            durable[replica]!.appliedThrough = snapshot.slot
        case .slot(let slot, _, let value):
            journals[replica]!.applied += value.requests.map(\.command)
            durable[replica]!.appliedThrough = slot
        }
    }
}
