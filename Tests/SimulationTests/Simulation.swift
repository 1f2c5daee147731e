import Paxos

/// Fault rates and sizes of one run, all drawn from its seed.
struct SimulationParameters: CustomStringConvertible {
    var replicaCount: Int
    var dropRate: Double
    var duplicateRate: Double
    var delayMax: Int
    var crashRate: Double
    var partitionRate: Double
    var submitRate: Double
    var clients: Int
    var clientWindow: Int
    var batchSizeMax: Int
    var slotsInFlightMax: Int
    var snapshotIntervalSlots: Slot
    var forwardsRequests: Bool
    /// Per client and tick, the chance of a linearizable read when the client has none outstanding.
    var readRate: Double
    /// Thrifty Phase 2 (`Configuration.laggardFlushTicks`): 0 (off), 1 or 2; the heartbeat is 3 ticks.
    var laggardFlushTicks: Tick
    /// `Configuration.preferredLeader`, by member index from 1 (nil: none). Drawn from a generator of its own, so
    /// every other draw of a seed stays what it was before it existed.
    var preferredLeader: Int?
    /// Per tick of the fault phase, the chance that the operator asks for a membership change when none is under
    /// way (0 in a third of the runs, in the canaries of other bugs, and in clusters that share nodes).
    var reconfigurationRate = 0.0

    /// - Parameter harsh: many more crashes and partitions, for runs that hunt a planted bug.
    init(random: inout SeededRandom, harsh: Bool) {
        replicaCount = Bool.random(using: &random) ? 3 : 5
        dropRate = Double.random(in: 0...0.25, using: &random)
        duplicateRate = Double.random(in: 0...0.1, using: &random)
        delayMax = Int.random(in: 1...6, using: &random)
        crashRate = Double.random(in: harsh ? 0.02...0.06 : 0...0.02, using: &random)
        partitionRate = Double.random(in: harsh ? 0.02...0.08 : 0...0.02, using: &random)
        submitRate = Double.random(in: 0.05...0.6, using: &random)
        clients = Int.random(in: 1...4, using: &random)
        clientWindow = Int.random(in: 1...4, using: &random)
        batchSizeMax = Int.random(in: 1...6, using: &random)
        slotsInFlightMax = Int.random(in: 1...6, using: &random)
        snapshotIntervalSlots = [4, 16, 64, 10_000][Int.random(in: 0...3, using: &random)]
        forwardsRequests = Bool.random(using: &random)
        // Drawn last, so the parameters above stay what they were for every seed.
        readRate = Double.random(in: 0.02...0.3, using: &random)
        laggardFlushTicks = Tick.random(in: 0...2, using: &random)
    }

    /// Draws the parameters that came later, from `random` (not the run's generator).
    mutating func drawLater(random: inout SeededRandom, fault: InjectedFault?) {
        preferredLeader = Bool.random(using: &random) ? Int.random(in: 1...replicaCount, using: &random) : nil
        let changes = Int.random(in: 0..<3, using: &random) > 0
        reconfigurationRate = changes ? Double.random(in: 0.005...0.04, using: &random) : 0
        switch fault {
        case .reconfigurationAtOnce?:
            // The canary's bug shows only while a change takes effect with slots in flight.
            reconfigurationRate = 0.08
            slotsInFlightMax = max(slotsInFlightMax, 3)
        case .promiseNotPersisted?, .acceptanceNotDurable?:
            reconfigurationRate = 0  // Those canaries hunt their own bugs, as they did before changes existed.
        case nil:
            break
        }
    }

    var description: String {
        let rates = "drop \(percent(dropRate)) dup \(percent(duplicateRate)) delay<=\(delayMax)"
        let faults = "crash/tick \(percent(crashRate)) partition/tick \(percent(partitionRate))"
        return "\(replicaCount) replicas, \(rates), \(faults), batch \(batchSizeMax), window \(slotsInFlightMax), "
            + "snapshot every \(snapshotIntervalSlots), \(forwardsRequests ? "forwarding" : "leader hints"), "
            + "\(clients) clients x \(clientWindow) in flight, submit \(percent(submitRate))/tick, "
            + "reads \(percent(readRate))/tick, "
            + (laggardFlushTicks == 0 ? "every peer prompt" : "laggards every \(laggardFlushTicks) ticks")
            + (preferredLeader.map { ", S\($0) preferred leader" } ?? "")
            + (reconfigurationRate > 0 ? ", reconfigurations \(percent(reconfigurationRate))/tick" : "")
    }

    private func percent(_ value: Double) -> String { "\(Int((value * 1000).rounded()) / 10)%" }
}

/// What a run found and how much it exercised.
struct SimulationReport {
    var seed: UInt64
    var parameters: String
    var violations: [String] = []
    var ticks = 0
    var messagesDelivered = 0
    var messagesDropped = 0
    var messagesDuplicated = 0
    var crashes = 0
    /// Crashes that lost lazy writes (a power loss after a `Ready` without fsync).
    var lazyWritesLost = 0
    var partitions = 0
    var leaderIsolations = 0
    var requestsSubmitted = 0
    var requestsAcknowledged = 0
    var requestsRefused = 0
    var requestsExpired = 0
    var slotsChosen: Slot = 0
    var snapshotsInstalled = 0
    var ticksToLeaderAfterHeal: Int?
    /// Ticks the run went on past its end to settle (`Simulation.settleTicksMax`).
    var settleTicks = 0
    /// For a failing run: each replica's state, what it waits for, and its last inputs (see `Simulation.explain`).
    var explanation: [String] = []
    /// The machine's own counts of what the chosen log did (see `SimulatedMachine.tally`).
    var tally: [String: Int] = [:]
    /// Linearizable reads the clients issued, those answered `readable` (and checked), and those refused
    /// (`notLeader`, `noQuorum`, `busy`) or lost with a crashed replica.
    var readsIssued = 0
    var readsAnswered = 0
    var readsRefused = 0
    /// Membership changes the operator asked for, those chosen and applied (by the log's order), those a leader
    /// or the log refused, the leaders asked to remove themselves, and the replicas stopped once removed.
    var reconfigurationsAsked = 0
    var reconfigurationsApplied = 0
    var reconfigurationsRefused = 0
    var leaderRemovalsAsked = 0
    var replicasRetired = 0

    var faultsInjected: Int { messagesDropped + messagesDuplicated + crashes + partitions + leaderIsolations }
}

/// One seeded run of N replicas of the real `Replica` code over a simulated network and simulated durable storage,
/// replicating `Machine`.
///
/// Each tick: deliver due messages, tick every live replica, let clients submit and read, perform every replica's
/// `Ready` (persist, send, apply, answer), inject faults, then check the invariants. The fault phase is followed by
/// a heal (everything restarted and reconnected, no more loss) and a liveness phase.
///
/// Reads are checked for linearizability when they are answered: a read answered `.readable(slot: s)` by replica X
/// must find X's state applied through `s`, and through the slot of every write acknowledged to any client before
/// the read was issued (a deposed or lagging leader answering from stale state breaks the second).
///
/// Every dictionary whose order could reach a random draw, a message or a report is iterated sorted: Swift seeds
/// hashing per process, and `SIM_SEED=n` must replay a run exactly in a new process.
struct Simulation<Machine: SimulatedMachine> {
    typealias Command = Machine.Command
    typealias SimReplica = Replica<Command, Machine>
    typealias SimMessage = Message<Command, Machine>

    struct InFlight {
        var deliverAt: Int
        var order: UInt64
        var from: ReplicaID
        var to: ReplicaID
        var message: SimMessage
    }

    /// One replica's process and disk. A class, and owned by one simulation only: reading a field of a struct node
    /// held in a collection copies the whole node in a debug build (and, the simulation being generic, through
    /// value witnesses), which made most of a run's time.
    final class Node {
        var replica: SimReplica?
        /// What the replica wrote (the log and promise, and the state machine as last applied), as a process that
        /// restarts without losing power finds it.
        var durable: DurableState<Command, Machine>
        var state: Machine
        /// What had reached the disk for sure: the same as of the last durable `Ready`. A crash may lose what
        /// lazy `Ready`s wrote after it (a power loss), and then the replica restarts from this.
        var syncedDurable: DurableState<Command, Machine>
        var syncedState: Machine
        var maxAppliedSeen: Slot = 0
        var downUntil = 0
        /// The answers of the slots applied while performing the current `Ready`, for its outcomes.
        var answers: [Slot: [RequestID: Machine.Result]] = [:]
        /// The replica's last inputs, to explain a run that ends unhealed.
        var recent = InputRing<Command, Machine>(capacity: Simulation.recentInputsKept)

        init(state: Machine) {
            self.durable = DurableState()
            self.state = state
            self.syncedDurable = durable
            self.syncedState = state
        }
    }

    /// The replicas' nodes, by member (S1, S2, ... in order).
    struct Nodes {
        private var storage: [Node] = []

        mutating func append(_ node: Node, for member: ReplicaID) {
            precondition(member.index == storage.count + 1, "members are S1, S2, ... in order")
            storage.append(node)
        }

        subscript(member: ReplicaID) -> Node { storage[member.index - 1] }

        var count: Int { storage.count }
    }

    /// Replicas that accepted one value in one slot under one ballot.
    struct Acceptance {
        var value: SlotValue<Command>
        var acceptors: Set<ReplicaID>
    }

    /// The ballot a slot was first applied under, and by whom.
    struct AppliedBallot {
        var ballot: Ballot
        var member: ReplicaID
    }

    /// A linearizable read in flight: where it was sent, when it was issued, and the highest slot of a write
    /// acknowledged to any client before then (the answer's state must include it).
    struct ClientRead {
        var client: Int
        var target: ReplicaID
        var issuedAt: Int
        var acknowledgedThrough: Slot
        /// The write acknowledged in that slot, for a report.
        var acknowledgedWrite: RequestID?
    }

    struct ClientRequest {
        var request: Request<Command>
        var target: ReplicaID
        var submittedAt: Int
        var sentAt: Int
        var attempts: Int
        /// Whether any attempt may have reached a leader's proposal (timed out or lost): the request is unknown.
        var uncertain: Bool
    }

    /// A membership change the operator asked for and has no answer to yet.
    struct OperatorChange {
        var id: RequestID
        var target: ReplicaID
        var sentAt: Int
    }

    /// The client id of the operator's changes.
    static var operatorClient: UInt64 { 1_000_000 }

    struct SimClient {
        var id: UInt64
        var outstanding: [RequestID: ClientRequest] = [:]
        var believedLeader: ReplicaID?
        /// The read in flight, if any (one at a time), and how many reads the client issued.
        var read: RequestID?
        var readsIssued: UInt64 = 0
    }

    let seed: UInt64
    let parameters: SimulationParameters
    let faultTicks: Int
    let livenessTicks: Int
    let fault: InjectedFault?
    let leaderTimeoutTicks: Tick = 10
    let heartbeatTicks: Tick = 3
    let consensusTimeoutTicks: Tick = 40
    /// After healing, some replica must lead with a live majority within this many ticks.
    let leaderBoundTicks = 150
    /// The last ticks of a run submit nothing new.
    let drainTicks = 100
    /// A run not settled when its ticks are up (a client still waits, or a replica has not applied every chosen slot)
    /// runs on, without new requests, for at most this many ticks more. A slow draw (five replicas, delays up to 6
    /// ticks, one slot in flight, one request per slot: about 8 ticks a slot) serves fewer requests in the drain than
    /// its clients may have outstanding; what must hold is that it settles, not that it settles in 100 ticks.
    let settleTicksMax = 1_000
    /// How many inputs per replica a failing run's explanation shows.
    static var recentInputsKept: Int { 12 }

    var random: SeededRandom
    /// Draws crashes during a write and power losses from a stream of their own, so the rest of a seed's run (its
    /// faults, clients and timings) is what it was before they were modelled.
    var storageRandom: SeededRandom
    /// Every replica started so far: the first configuration's, then those added (S1, S2, ... in order).
    var members: [ReplicaID]
    /// The voters of the first configuration, which every replica starts from.
    let bootstrapMembers: [ReplicaID]
    /// Replicas stopped for good once removed from the cluster.
    var retiredMembers: Set<ReplicaID> = []
    /// The operator's membership changes come from a stream of their own (see `reconfigurationRate`).
    var operatorRandom: SeededRandom
    var operatorChange: OperatorChange?
    var operatorSequence: UInt64 = 0
    var nodes = Nodes()
    var network: [InFlight] = []
    var messageOrder: UInt64 = 0
    /// `blocked[from]` holds the replicas `from` cannot reach.
    var blocked: [ReplicaID: Set<ReplicaID>] = [:]
    var clients: [SimClient] = []
    var workload: Machine.Workload
    /// The state machine before any slot: a replica added later starts from it too.
    let initialState: Machine
    var now = 0
    var healed = false
    var report: SimulationReport

    // The oracle: what every replica must agree on.
    var submitted: [RequestID: Command] = [:]
    var acceptances: [Slot: [Ballot: Acceptance]] = [:]
    var chosen: [Slot: SlotValue<Command>] = [:]
    /// The ballot each slot was first applied under, and by whom: every replica must apply it under the same one.
    var appliedBallots: [Slot: AppliedBallot] = [:]
    /// The canonical state's digest after each slot.
    var canonical: [Slot: UInt64]
    var canonicalState: Machine
    /// Every request the canonical application applied: none may be applied twice.
    var canonicalApplied: Set<RequestID> = []
    /// Every request the canonical application answered, and the answers per slot: a client must be told the same.
    var canonicalSeen: Set<RequestID> = []
    var canonicalAnswers: [Slot: [RequestID: Machine.Result]] = [:]
    var acknowledged: [RequestID: Acknowledgement<Machine.Result>] = [:]
    /// Requests answered `noQuorum` or `busy` on their only attempt: they must never be applied.
    var refusedForGood: Set<RequestID> = []
    /// Reads in flight, and the highest slot of a write acknowledged so far (with that write).
    var reads: [RequestID: ClientRead] = [:]
    var acknowledgedThrough: Slot = 0
    var acknowledgedWrite: RequestID?
    /// The configurations, derived from the chosen log with the true alpha (`slotsInFlightMax`): which one counts
    /// the votes of each slot, whatever the replicas think.
    var oracleMemberships: Memberships
    /// Slots some acceptors accepted whose configuration is not known yet (a slot within alpha of an unchosen one).
    var undecidedSlots: Set<Slot> = []
    /// Chosen marks by replicas to check once their slot's configuration is known.
    var unverifiedChosen: [(slot: Slot, value: SlotValue<Command>, member: ReplicaID)] = []
    var extendingCanonical = false

    /// - Parameter replicaCount: overrides the seed's draw (3 or 5), for clusters that share nodes
    ///   (`NodeSimulation`).
    init(seed: UInt64, steps: Int, fault: InjectedFault? = nil, replicaCount: Int? = nil) {
        self.seed = seed
        self.fault = fault
        var random = SeededRandom(seed: seed)
        storageRandom = SeededRandom(seed: seed ^ 0x5EED_D15C)
        var parameters = SimulationParameters(random: &random, harsh: fault != nil)
        var laterRandom = SeededRandom(seed: seed ^ 0x1EAD_E7)
        parameters.drawLater(random: &laterRandom, fault: fault)
        if let replicaCount {
            parameters.replicaCount = replicaCount
            if let preferred = parameters.preferredLeader, preferred > replicaCount { parameters.preferredLeader = nil }
            // Clusters that share nodes keep one replica per node.
            parameters.reconfigurationRate = 0
        }
        self.parameters = parameters
        let initial = Machine.initial(random: &random)
        initialState = initial
        self.random = random
        canonicalState = initial
        canonical = [0: initial.digest]
        faultTicks = steps * 3 / 5
        livenessTicks = steps - faultTicks
        members = (1...parameters.replicaCount).map { ReplicaID($0) }
        bootstrapMembers = members
        oracleMemberships = Memberships(initial: Membership(epoch: 1, voters: members))
        operatorRandom = SeededRandom(seed: seed ^ 0x0C0F_1609)
        report = SimulationReport(seed: seed, parameters: parameters.description)
        clients = (0..<parameters.clients).map { SimClient(id: UInt64($0 + 1)) }
        workload = Machine.Workload(clients: clients.map(\.id))
        for member in members {
            nodes.append(Node(state: initial), for: member)
            start(member)
        }
    }

    mutating func run() -> SimulationReport {
        while now < faultTicks + livenessTicks, report.violations.isEmpty {
            if now == faultTicks { heal() }
            step()
        }
        while report.violations.isEmpty, !settled, now < faultTicks + livenessTicks + settleTicksMax {
            step()
            report.settleTicks += 1
        }
        return finish()
    }

    /// The final checks, when nothing was violated before, and the report.
    mutating func finish() -> SimulationReport {
        if report.violations.isEmpty { checkFinal() }
        if !report.violations.isEmpty { report.explanation = explain() }
        report.ticks = now
        report.slotsChosen = UInt64(chosen.count)
        return report
    }

    /// Per replica: its state, what it waits for (`Replica.outstanding`), and its last inputs, oldest first; then
    /// the messages still in flight. Enough to tell a lost message from a timer that never fired.
    func explain() -> [String] {
        var lines: [String] = []
        for member in members {
            let inputs = nodes[member].recent.inputs.map(\.description).joined(separator: "; ")
            guard let replica = nodes[member].replica else {
                lines.append("state: \(member) down until tick \(nodes[member].downUntil)\n  last inputs: \(inputs)")
                continue
            }
            lines.append(
                "state: \(member) \(replica.role) ballot \(replica.ballot) promised \(replica.promised) leader "
                    + "\(replica.leaderHint.map(String.init(describing:)) ?? "-") chosen \(replica.chosenThrough) "
                    + "applied \(replica.appliedThrough) snapshot \(replica.snapshotSlot) log \(replica.log.count) "
                    + "waiting \(replica.waitingCount)\n  waits for: \(replica.outstanding)\n  last inputs: \(inputs)")
        }
        let inFlight = network.sorted { ($0.deliverAt, $0.order) < ($1.deliverAt, $1.order) }
        let shown = inFlight.prefix(12).map { item in
            "t\(item.deliverAt) \(item.from)->\(item.to): \(SimInput<Command, Machine>.summary(item.message))"
        }
        let more = inFlight.count > shown.count ? "; ... \(inFlight.count - shown.count) more" : ""
        lines.append("in flight: \(shown.isEmpty ? "nothing" : shown.joined(separator: "; "))\(more)")
        return lines
    }

    /// Every client request answered, and every replica up and applied through the highest chosen slot.
    var settled: Bool {
        let highest = chosen.keys.max() ?? 0
        return clients.allSatisfy(\.outstanding.isEmpty)
            && finalMembers.allSatisfy { nodes[$0].replica != nil && nodes[$0].state.slot >= highest }
    }

    /// The replicas a run must end with, up and applied through every chosen slot: the latest configuration's.
    var finalMembers: [ReplicaID] { oracleMemberships.latest.members }

    /// The replicas a client or a fault may pick: started, and not stopped for good.
    var activeMembers: [ReplicaID] { members.filter { !retiredMembers.contains($0) } }

    // MARK: - One tick

    mutating func step() {
        beginTick()
        for member in members where nodes[member].replica != nil {
            performReady(member)
        }
        if !healed { injectFaults() } else { restartDue() }
        checkAfterStep()
    }

    /// A tick up to the `Ready`s: deliver due messages, tick every live replica, let clients submit and read.
    mutating func beginTick() {
        now += 1
        deliverDueMessages()
        for member in members where nodes[member].replica != nil {
            nodes[member].replica!.tick()
            nodes[member].recent.tick(now)
        }
        clientsAct()
        operatorActs()
    }

    mutating func deliverDueMessages() {
        var due: [InFlight] = []
        var later: [InFlight] = []
        for item in network {
            if item.deliverAt <= now { due.append(item) } else { later.append(item) }
        }
        network = later
        due.sort { ($0.deliverAt, $0.order) < ($1.deliverAt, $1.order) }
        for item in due {
            guard nodes[item.to].replica != nil, !isBlocked(item.from, item.to) else {
                report.messagesDropped += 1
                continue
            }
            report.messagesDelivered += 1
            nodes[item.to].recent.append(.received(at: now, from: item.from, message: item.message))
            do {
                try nodes[item.to].replica!.receive(item.message, from: item.from)
            } catch {
                // A replica refuses a sender it knows was removed (a late message, or one that has not learned it).
                // Anything else a correct peer sends is taken.
                if nodes[item.to].replica!.hasRetired(item.from) { continue }
                report.violations.append("tick \(now): a correct peer's message was refused: \(error)")
            }
        }
    }

    mutating func send(_ message: SimMessage, from: ReplicaID, to: ReplicaID) {
        if isBlocked(from, to) || (!healed && Double.random(in: 0..<1, using: &random) < parameters.dropRate) {
            report.messagesDropped += 1
            return
        }
        let copies = !healed && Double.random(in: 0..<1, using: &random) < parameters.duplicateRate ? 2 : 1
        if copies == 2 { report.messagesDuplicated += 1 }
        for _ in 0..<copies {
            messageOrder += 1
            let delay = Int.random(in: 1...parameters.delayMax, using: &random)
            network.append(InFlight(deliverAt: now + delay, order: messageOrder, from: from, to: to, message: message))
        }
    }

    func isBlocked(_ from: ReplicaID, _ to: ReplicaID) -> Bool { blocked[from]?.contains(to) ?? false }

    /// Performs a replica's `Ready` in the documented order, as `ReplicaNode` does: send what waits for nothing,
    /// persist (durably or lazily), send the rest, apply, answer, compact. A crash may strike while the write is
    /// under way: then the messages of step 1 are out and nothing else of this `Ready` happened.
    mutating func performReady(_ member: ReplicaID) {
        let ready = startReady(member)
        if !healed, !ready.persist.isEmpty, Double.random(in: 0..<1, using: &storageRandom) < parameters.crashRate / 2 {
            crash(member)
            return
        }
        finishReady(member, ready, synced: ready.persistMustBeDurable)
    }

    /// Takes a replica's `Ready` and sends the messages that wait for nothing.
    mutating func startReady(_ member: ReplicaID) -> Ready<Command, Machine> {
        let ready = nodes[member].replica!.takeReady()
        for envelope in ready.messages where !envelope.message.waitsForStorage {
            send(envelope.message, from: member, to: envelope.to)
        }
        return ready
    }

    /// The rest of a `Ready` once its write is done: `synced` when that write reached the disk (an fsync), which
    /// makes every write before it durable too.
    mutating func finishReady(_ member: ReplicaID, _ ready: Ready<Command, Machine>, synced: Bool) {
        persist(ready.persist, at: member)
        for envelope in ready.messages where envelope.message.waitsForStorage {
            send(envelope.message, from: member, to: envelope.to)
        }
        for step in ready.apply { apply(step, at: member) }
        if synced { markSynced(member) }
        for outcome in ready.outcomes { deliver(outcome, from: member) }
        nodes[member].answers.removeAll()
        if ready.snapshotDue {
            nodes[member].replica!.compact(state: nodes[member].state)
        }
    }

    /// Everything the replica wrote is on disk: a power loss now loses none of it.
    mutating func markSynced(_ member: ReplicaID) {
        nodes[member].syncedDurable = nodes[member].durable
        nodes[member].syncedState = nodes[member].state
    }

    mutating func persist(_ persist: Persist<Command, Machine>, at member: ReplicaID) {
        if let promised = persist.promised {
            if promised < nodes[member].durable.promised {
                violation(
                    "\(member) lowered its durable promise from \(nodes[member].durable.promised) to \(promised)")
            }
            nodes[member].durable.promised = promised
        }
        if let snapshot = persist.snapshot {
            nodes[member].durable.snapshot = snapshot
            nodes[member].durable.entries = nodes[member].durable.entries.filter { $0.key > snapshot.slot }
        }
        for slot in persist.entries.keys.sorted() {
            let entry = persist.entries[slot]!
            if let old = nodes[member].durable.entries[slot], old.isChosen, old.value != entry.value {
                violation("\(member) changed chosen slot \(slot)")
            }
            nodes[member].durable.entries[slot] = entry
            if entry.isChosen {
                observeChosen(slot, entry.value, by: member)
            } else {
                observeAcceptance(slot, entry, by: member)
            }
        }
    }

    mutating func apply(_ step: ApplyStep<Command, Machine>, at member: ReplicaID) {
        switch step {
        case .installSnapshot(let snapshot):
            guard snapshot.slot > nodes[member].state.slot else {
                violation("\(member) installed a snapshot at \(snapshot.slot), not beyond its applied slot")
                return
            }
            if let expected = canonical[snapshot.slot], expected != snapshot.state.digest {
                violation("\(member) installed a snapshot at slot \(snapshot.slot) whose state differs from the log's")
            }
            if snapshot.state.slot != snapshot.slot {
                violation(
                    "\(member) installed a snapshot of slot \(snapshot.slot) holding the state of slot "
                        + "\(snapshot.state.slot)"
                )
            }
            nodes[member].state = snapshot.state
            for text in snapshot.state.violations() {
                violation("\(member) installed a snapshot at slot \(snapshot.slot) that breaks an invariant: \(text)")
            }
            report.snapshotsInstalled += 1
        case .slot(let slot, let ballot, let value):
            guard slot == nodes[member].state.slot + 1 else {
                violation("\(member) applied slot \(slot) after slot \(nodes[member].state.slot)")
                return
            }
            observeChosen(slot, value, by: member)
            if ballot != value.ballot {
                violation(
                    "\(member) applied slot \(slot) under \(ballot), not under the ballot \(value.ballot) that first "
                        + "proposed its value")
            }
            if let first = appliedBallots[slot] {
                if first.ballot != ballot {
                    violation(
                        "slot \(slot) applied under two ballots: \(first.member) under \(first.ballot), \(member) "
                            + "under \(ballot)")
                }
            } else {
                appliedBallots[slot] = AppliedBallot(ballot: ballot, member: member)
            }
            for request in value.requests where submitted[request.id] != request.command {
                violation("\(member) applied request \(request.id) that no client proposed")
            }
            let applied = nodes[member].state.apply(slot: slot, ballot: ballot, value: value)
            var answers: [RequestID: Machine.Result] = [:]
            for request in applied where answers[request.id] == nil { answers[request.id] = request.result }
            nodes[member].answers[slot] = answers
            if let expected = canonical[slot], expected != nodes[member].state.digest {
                violation(
                    "\(member) reached a different state after slot \(slot): a request applied twice or out of order, "
                        + "or applying is not deterministic")
            }
            for text in nodes[member].state.violations() {
                violation("\(member) broke an invariant applying slot \(slot): \(text)")
            }
        }
        nodes[member].durable.appliedThrough = nodes[member].state.slot
    }

    // MARK: - Oracle

    mutating func observeAcceptance(_ slot: Slot, _ entry: LogEntry<Command>, by member: ReplicaID) {
        var perBallot = acceptances[slot, default: [:]]
        var record = perBallot[entry.ballot] ?? Acceptance(value: entry.value, acceptors: [])
        if record.value != entry.value {
            violation("two values accepted in slot \(slot) under one ballot \(entry.ballot)")
        }
        record.acceptors.insert(member)
        perBallot[entry.ballot] = record
        acceptances[slot] = perBallot
        // Only this ballot's acceptors grew: it alone may have become a majority.
        guard let governing = oracleGoverning(slot) else {
            undecidedSlots.insert(slot)
            return
        }
        if governing.isQuorum(record.acceptors) { observeChosen(slot, record.value, by: nil) }
    }

    /// The configuration that counts the votes of `slot` by the true alpha, once the chosen prefix decides it.
    func oracleGoverning(_ slot: Slot) -> Membership? {
        slot <= canonicalState.slot + Slot(parameters.slotsInFlightMax) ? oracleMemberships.governing(slot) : nil
    }

    /// A value accepted in `slot` by a majority of the voters of the slot's configuration, under one ballot, is
    /// chosen; a slot whose configuration is not known yet waits.
    mutating func decideChosen(_ slot: Slot) {
        guard let governing = oracleGoverning(slot) else {
            undecidedSlots.insert(slot)
            return
        }
        for (_, record) in (acceptances[slot] ?? [:]).sorted(by: { $0.key < $1.key })
        where governing.isQuorum(record.acceptors) {
            observeChosen(slot, record.value, by: nil)
        }
    }

    /// A replica marked `slot` chosen with `value`: a majority of the voters of the configuration that governs the
    /// slot must have accepted it under one ballot (learners and strangers count for nothing).
    mutating func verifyChosen(_ slot: Slot, _ value: SlotValue<Command>, by member: ReplicaID) {
        guard let governing = oracleGoverning(slot) else {
            unverifiedChosen.append((slot, value, member))
            return
        }
        let quorum = acceptances[slot]?.values.contains { $0.value == value && governing.isQuorum($0.acceptors) }
        if quorum != true {
            let acceptors = (acceptances[slot] ?? [:]).values.filter { $0.value == value }.map { record in
                record.acceptors.sorted().map(\.description).joined(separator: " ")
            }
            violation(
                "\(member) learned slot \(slot) chosen, but no majority of its configuration (\(governing)) accepted "
                    + "that value under one ballot; it was accepted by [\(acceptors.joined(separator: "; "))]")
        }
    }

    mutating func observeChosen(_ slot: Slot, _ value: SlotValue<Command>, by member: ReplicaID?) {
        if let member { verifyChosen(slot, value, by: member) }
        if let known = chosen[slot] {
            if known != value {
                let who = member.map { "\($0) learned" } ?? "a majority accepted"
                violation("two values chosen in slot \(slot): \(who) another value than before")
            }
            return
        }
        chosen[slot] = value
        extendCanonical()
    }

    /// Applies the chosen prefix canonically as far as it goes; each slot it passes may decide the configuration
    /// of later slots, whose acceptances and chosen marks are then judged.
    mutating func extendCanonical() {
        guard !extendingCanonical else { return }
        extendingCanonical = true
        defer { extendingCanonical = false }
        var progressed = true
        while progressed {
            progressed = false
            while let value = chosen[canonicalState.slot + 1] {
                let next = canonicalState.slot + 1
                applyCanonically(next, value)
                progressed = true
            }
            for slot in undecidedSlots.sorted() where oracleGoverning(slot) != nil {
                undecidedSlots.remove(slot)
                decideChosen(slot)
            }
            let unverified = unverifiedChosen
            unverifiedChosen.removeAll()
            for mark in unverified { verifyChosen(mark.slot, mark.value, by: mark.member) }
        }
    }

    mutating func applyCanonically(_ next: Slot, _ value: SlotValue<Command>) {
        var answers: [RequestID: Machine.Result] = [:]
        let applied = canonicalState.apply(slot: next, ballot: value.ballot, value: value)
        for (request, answer) in zip(value.requests, applied) {
            if answer.tookEffect, !canonicalApplied.insert(answer.id).inserted {
                violation("request \(answer.id) applied twice by the state machine in slot \(next)")
            }
            if canonicalSeen.insert(answer.id).inserted {
                Machine.tally(request.command, answer.result, into: &report.tally)
            }
            if answers[answer.id] == nil { answers[answer.id] = answer.result }
        }
        canonicalAnswers[next] = answers
        canonical[next] = canonicalState.digest
        for text in canonicalState.violations() {
            violation("the canonical application broke an invariant in slot \(next): \(text)")
        }
        if let change = value.reconfiguration {
            let retiredBefore = Set(oracleMemberships.retired)
            let delay = Slot(parameters.slotsInFlightMax)
            if oracleMemberships.record(change.membership, chosenAt: next, delay: delay) == nil {
                report.reconfigurationsApplied += 1
                if let back = change.membership.members.first(where: retiredBefore.contains) {
                    violation("slot \(next) made \(back) a member again after it was removed")
                }
                // A replica added is started now, from an empty disk: it learns everything from its peers.
                for added in change.membership.members where !members.contains(added) {
                    members.append(added)
                    start(added)
                }
            }
        }
    }

    mutating func violation(_ text: String) {
        report.violations.append("tick \(now): \(text)")
    }

    mutating func checkAfterStep() {
        for member in members {
            guard let replica = nodes[member].replica else { continue }
            if replica.appliedThrough < nodes[member].maxAppliedSeen {
                violation(
                    "\(member) went back from applied slot \(nodes[member].maxAppliedSeen) to \(replica.appliedThrough)"
                )
            }
            nodes[member].maxAppliedSeen = max(nodes[member].maxAppliedSeen, replica.appliedThrough)
            if replica.appliedThrough > replica.chosenThrough {
                violation("\(member) applied beyond its chosen prefix")
            }
            // Configurations change only in runs that change them.
            guard parameters.reconfigurationRate > 0 else { continue }
            if replica.chosenThrough <= canonicalState.slot,
                replica.memberships.latest != oracleMemberships.latest(asOf: replica.chosenThrough)
            {
                violation(
                    "\(member) derived the configuration \(replica.memberships.latest) from the log through slot "
                        + "\(replica.chosenThrough); the log says \(oracleMemberships.latest(asOf: replica.chosenThrough))"
                )
            }
            if replica.isRetired, isNeeded(member) {
                violation(
                    "\(member) stopped as removed while a configuration still counts it: "
                        + "\(oracleMemberships.governingFrom(canonicalState.slot + 1))")
            }
        }
        if parameters.reconfigurationRate > 0 { retireRemoved() }
        if healed, report.ticksToLeaderAfterHeal == nil,
            finalMembers.contains(where: { nodes[$0].replica?.leadsWithQuorum == true })
        {
            report.ticksToLeaderAfterHeal = now - faultTicks
        }
        if healed, report.ticksToLeaderAfterHeal == nil, now - faultTicks > leaderBoundTicks {
            violation("no leader with a live majority within \(leaderBoundTicks) ticks of healing")
        }
    }

    mutating func checkFinal() {
        let members = finalMembers
        let applied = members.map { nodes[$0].state.slot }
        let highest = chosen.keys.max() ?? 0
        // A slot a majority accepted that no replica knows chosen: the leader never learned its acceptances.
        let unknown = chosen.keys.sorted().filter { slot in
            members.allSatisfy { member in
                guard let replica = nodes[member].replica else { return true }
                return replica.chosenThrough < slot && replica.log[slot]?.isChosen != true
            }
        }
        if !unknown.isEmpty {
            violation(
                "slots \(SimInput<Command, Machine>.slots(unknown)) are chosen (a majority accepted) but no replica "
                    + "knows it after healing")
        }
        for member in members where nodes[member].state.slot < highest {
            violation("\(member) applied through \(nodes[member].state.slot) of \(highest) chosen slots after healing")
        }
        if Set(members.map { nodes[$0].state.digest }).count > 1 {
            violation("replicas hold different states after healing: applied \(applied)")
        }
        let appliedIDs = Set(chosen.values.flatMap { $0.requests.map(\.id) })
        for (id, answer) in acknowledged.sorted(by: { $0.key < $1.key }) {
            if !appliedIDs.contains(id) {
                violation("request \(id) acknowledged as chosen in slot \(answer.slot) is in no chosen slot")
            } else if let expected = canonicalAnswers[answer.slot]?[id], expected != answer.result {
                violation(
                    "request \(id) was answered \(answer.result) for slot \(answer.slot); the log's answer is "
                        + "\(expected)"
                )
            }
        }
        for id in refusedForGood.sorted() where appliedIDs.contains(id) {
            violation("request \(id) was answered noQuorum/busy yet applied")
        }
        guard report.violations.isEmpty else { return }
        // Every replica applied the whole chosen log: each must equal its canonical application, in full.
        for member in members where nodes[member].state != canonicalState {
            violation(
                "\(member) differs from the canonical application of the chosen log: "
                    + nodes[member].state.differences(from: canonicalState))
        }
        let run = FinalRun(
            replicas: members.map { (member: $0, state: nodes[$0].state) }, canonical: canonicalState,
            submitted: submitted, acknowledged: acknowledged, chosen: chosen)
        for text in Machine.finalViolations(run) { violation(text) }
        // Clients retry until answered; after healing, every request must be answered within a bounded time.
        let answerBound = leaderBoundTicks + Int(consensusTimeoutTicks) * 4
        for client in clients {
            for (id, request) in client.outstanding.sorted(by: { $0.key < $1.key })
            where now - request.submittedAt > answerBound {
                violation("request \(id) submitted at tick \(request.submittedAt) still unanswered at the end")
            }
        }
    }

    // MARK: - Clients

    mutating func clientsAct() {
        for index in clients.indices {
            // Give up on lost answers (crashed replica): retry elsewhere with the same id.
            // Sorted: dictionary order differs between processes, and `SIM_SEED` must replay exactly.
            for (id, request) in clients[index].outstanding.sorted(by: { $0.key < $1.key })
            where now - request.sentAt > Int(consensusTimeoutTicks) + parameters.delayMax * 2 + 5 {
                resubmit(client: index, id: id, to: randomMember(), uncertain: true)
            }
            // New requests stop shortly before the end so the run can drain and the replicas converge.
            let draining = now > faultTicks + livenessTicks - drainTicks
            let window = !draining && clients[index].outstanding.count < parameters.clientWindow
            if window, Double.random(in: 0..<1, using: &random) < parameters.submitRate,
                let request = workload.nextRequest(client: clients[index].id, random: &random)
            {
                let id = request.id
                if let earlier = submitted[id], earlier != request.command {
                    violation("the workload reused request id \(id) for another command")
                }
                submitted[id] = request.command
                report.requestsSubmitted += 1
                let target = clients[index].believedLeader ?? randomMember()
                clients[index].outstanding[id] = ClientRequest(
                    request: request, target: target, submittedAt: now, sentAt: now, attempts: 0, uncertain: false)
                resubmit(client: index, id: id, to: target, uncertain: false)
            }
            // A read whose answer was lost (its replica crashed) is given up; reads change nothing, so none is
            // retried: the client issues a new one later.
            if let id = clients[index].read, let read = reads[id], now - read.issuedAt > readTimeoutTicks {
                reads[id] = nil
                clients[index].read = nil
                report.readsRefused += 1
            }
            if !draining, clients[index].read == nil, Double.random(in: 0..<1, using: &random) < parameters.readRate {
                issueRead(client: index)
            }
        }
    }

    /// How long a client waits for a read's answer: the replica answers within the consensus timeout unless it
    /// crashed.
    var readTimeoutTicks: Int { Int(consensusTimeoutTicks) + parameters.delayMax * 2 + 5 }

    /// Sends a linearizable read to the replica the client believes leads, remembering which writes it must see.
    mutating func issueRead(client index: Int) {
        clients[index].readsIssued += 1
        // Reads are not commands: their ids keep clear of every request id (top bit set), as a deployment's do.
        let id = RequestID(client: clients[index].id, sequence: 1 << 63 | clients[index].readsIssued)
        let target = clients[index].believedLeader ?? randomMember()
        reads[id] = ClientRead(
            client: index, target: target, issuedAt: now, acknowledgedThrough: acknowledgedThrough,
            acknowledgedWrite: acknowledgedWrite)
        clients[index].read = id
        report.readsIssued += 1
        // A read sent to a crashed replica is lost; the client gives it up after `readTimeoutTicks`.
        guard nodes[target].replica != nil else { return }
        nodes[target].recent.append(.read(at: now, id: id))
        nodes[target].replica!.read(id)
    }

    /// Checks a read's answer for linearizability (see the type's comment).
    mutating func answerRead(_ outcome: RequestOutcome, _ read: ClientRead) {
        let member = read.target
        reads[outcome.id] = nil
        clients[read.client].read = nil
        switch outcome.outcome {
        case .readable(let slot):
            report.readsAnswered += 1
            clients[read.client].believedLeader = member
            let applied = nodes[member].state.slot
            if applied < slot {
                violation(
                    "\(member) answered read \(outcome.id) as of slot \(slot) from a state applied through \(applied)")
            }
            if let write = read.acknowledgedWrite, applied < read.acknowledgedThrough {
                violation(
                    "stale read: \(member) answered read \(outcome.id), issued at tick \(read.issuedAt), from a state "
                        + "applied through slot \(applied), but write \(write) was acknowledged in slot "
                        + "\(read.acknowledgedThrough) before the read was issued")
            }
            if let write = read.acknowledgedWrite, slot < read.acknowledgedThrough {
                violation(
                    "\(member) answered read \(outcome.id) as of slot \(slot), below slot \(read.acknowledgedThrough) "
                        + "of write \(write), acknowledged before the read was issued")
            }
        case .notLeader(let hint):
            report.readsRefused += 1
            clients[read.client].believedLeader = hint
        case .noQuorum, .busy, .timedOut:
            report.readsRefused += 1
            clients[read.client].believedLeader = nil
        case .chosen, .refused:
            violation("\(member) answered read \(outcome.id) as a chosen request or a membership change")
        }
    }

    mutating func resubmit(client index: Int, id: RequestID, to target: ReplicaID, uncertain: Bool) {
        guard var request = clients[index].outstanding[id] else { return }
        request.target = target
        request.sentAt = now
        request.attempts += 1
        request.uncertain = request.uncertain || uncertain
        clients[index].outstanding[id] = request
        // A request to a crashed replica is lost; the client's timer retries it.
        guard nodes[target].replica != nil else { return }
        nodes[target].recent.append(.submitted(at: now, id: id, attempt: request.attempts))
        nodes[target].replica!.submit(request.request)
    }

    mutating func deliver(_ outcome: RequestOutcome, from member: ReplicaID) {
        if outcome.id.client == Self.operatorClient {
            operatorAnswered(outcome, from: member)
            return
        }
        if let read = reads[outcome.id] {
            if read.target == member { answerRead(outcome, read) }
            return
        }
        // Found by the request, not by the id's client: a machine may number some requests itself.
        guard let index = clients.firstIndex(where: { $0.outstanding[outcome.id] != nil }),
            let request = clients[index].outstanding[outcome.id], request.target == member
        else { return }
        switch outcome.outcome {
        case .chosen(let slot):
            if chosen[slot]?.requests.contains(where: { $0.id == outcome.id }) != true {
                violation("\(member) acknowledged \(outcome.id) in slot \(slot), which does not hold it")
            }
            // The shell answers with the state machine's result for the request in that slot (`Ready` step 4).
            guard let result = nodes[member].answers[slot]?[outcome.id] else {
                violation("\(member) answered \(outcome.id) for slot \(slot), which it did not apply in that Ready")
                return
            }
            if Machine.acknowledges(result, appliedByLog: canonicalApplied.contains(outcome.id)) {
                acknowledged[outcome.id] = Acknowledgement(slot: slot, result: result)
                if slot > acknowledgedThrough {
                    acknowledgedThrough = slot
                    acknowledgedWrite = outcome.id
                }
                report.requestsAcknowledged += 1
                workload.answered(request.request, result: result)
            } else {
                report.requestsExpired += 1  // Retried after its client's floor passed it: answered `expired`.
                workload.expired(request.request, result: result)
            }
            clients[index].outstanding[outcome.id] = nil
            clients[index].believedLeader = member
        case .notLeader(let hint):
            clients[index].believedLeader = hint
            resubmit(client: index, id: outcome.id, to: hint ?? randomMember(), uncertain: false)
        case .noQuorum, .busy:
            report.requestsRefused += 1
            if request.attempts == 1 && !request.uncertain && workload.abandons(request.request) {
                // Definitely never applied: abandon it and check at the end that it never is.
                refusedForGood.insert(outcome.id)
                clients[index].outstanding[outcome.id] = nil
                workload.abandoned(request.request)
            } else {
                resubmit(client: index, id: outcome.id, to: randomMember(), uncertain: false)
            }
            clients[index].believedLeader = nil
        case .timedOut:
            resubmit(client: index, id: outcome.id, to: randomMember(), uncertain: true)
            clients[index].believedLeader = nil
        case .readable, .refused:
            violation("\(member) answered request \(outcome.id) as a read or a membership change")
        }
    }

    mutating func randomMember() -> ReplicaID {
        let active = activeMembers
        return active[Int.random(in: 0..<active.count, using: &random)]
    }

    // MARK: - Faults

    mutating func start(_ member: ReplicaID) {
        let configuration = Configuration(
            me: member,
            members: bootstrapMembers,
            leaderTimeoutTicks: leaderTimeoutTicks,
            heartbeatIntervalTicks: heartbeatTicks,
            consensusTimeoutTicks: consensusTimeoutTicks,
            batchSizeMax: parameters.batchSizeMax,
            slotsInFlightMax: parameters.slotsInFlightMax,
            snapshotIntervalSlots: parameters.snapshotIntervalSlots,
            catchUpEntriesMax: 8,
            forwardsRequests: parameters.forwardsRequests,
            laggardFlushTicks: parameters.laggardFlushTicks,
            preferredLeader: parameters.preferredLeader.map { ReplicaID($0) },
            fault: fault
        )
        // The core refuses (traps on) a disk whose applied slot is not chosen: a broken shell (a canary) can leave
        // one, and that is a violation to report, not a crash of the simulator.
        let durable = nodes[member].durable
        var chosenThrough = durable.snapshot?.slot ?? 0
        while durable.entries[chosenThrough + 1]?.isChosen == true { chosenThrough += 1 }
        guard chosenThrough >= durable.appliedThrough else {
            violation(
                "\(member) restarts from a disk that applied slot \(durable.appliedThrough) but holds slots chosen "
                    + "only through \(chosenThrough)")
            return
        }
        // Restart from what was persisted: the durable log and snapshot, and the state machine as last applied.
        let replica = SimReplica(configuration: configuration, durable: nodes[member].durable, seed: random.next())
        nodes[member].replica = replica
        nodes[member].recent.append(.started(at: now))
    }

    /// Drops the replica's memory; it restarts from its disk after `downFor` ticks (drawn when nil). Half the crashes
    /// are power losses (or as `powerLoss` says): the lazy writes since the last durable one are gone.
    mutating func crash(_ member: ReplicaID, powerLoss: Bool? = nil, downFor: Int? = nil) {
        guard nodes[member].replica != nil else { return }
        nodes[member].replica = nil
        nodes[member].downUntil = now + (downFor ?? Int.random(in: 1...40, using: &random))
        report.crashes += 1
        if powerLoss ?? Bool.random(using: &storageRandom) {
            let node = nodes[member]
            if node.durable != node.syncedDurable { report.lazyWritesLost += 1 }
            node.durable = node.syncedDurable
            node.state = node.syncedState
            node.maxAppliedSeen = node.durable.appliedThrough
        }
    }

    mutating func restartDue() {
        for member in activeMembers where nodes[member].replica == nil && nodes[member].downUntil <= now {
            start(member)
        }
    }

    mutating func injectFaults() {
        restartDue()
        let members = activeMembers
        for member in members where Double.random(in: 0..<1, using: &random) < parameters.crashRate {
            crash(member)
        }
        guard Double.random(in: 0..<1, using: &random) < parameters.partitionRate else { return }
        switch Int.random(in: 0..<5, using: &random) {
        case 0:  // symmetric split into two groups
            let shuffled = members.shuffled(using: &random)
            let cut = Int.random(in: 1..<members.count, using: &random)
            let left = Set(shuffled[..<cut])
            blocked = [:]
            for a in members {
                for b in members where left.contains(a) != left.contains(b) { blocked[a, default: []].insert(b) }
            }
            report.partitions += 1
        case 1:  // one-way loss on one link
            let a = randomMember()
            let b = randomMember()
            if a != b {
                blocked[a, default: []].insert(b)
                report.partitions += 1
            }
        case 2:  // isolate the leader completely
            if let leader = members.first(where: { nodes[$0].replica?.role == .leader }) {
                blocked = [:]
                for other in members where other != leader {
                    blocked[leader, default: []].insert(other)
                    blocked[other, default: []].insert(leader)
                }
                report.leaderIsolations += 1
            }
        case 3:  // crash the leader
            if let leader = members.first(where: { nodes[$0].replica?.role == .leader }) { crash(leader) }
        default:  // heal the partitions
            blocked = [:]
        }
    }

    mutating func heal() {
        healed = true
        blocked = [:]
        for member in activeMembers where nodes[member].replica == nil {
            nodes[member].downUntil = now
        }
        restartDue()
    }

    // MARK: - Membership changes

    /// Whether a configuration that governs a slot after the chosen prefix counts `member` (or learns through it).
    func isNeeded(_ member: ReplicaID) -> Bool {
        oracleMemberships.governingFrom(canonicalState.slot + 1).contains { $0.contains(member) }
    }

    /// The operator, during the fault phase: now and then it asks the leader (or any replica) for one change of
    /// the latest configuration: add a learner, promote it, remove it, remove a voter (the leader half the time),
    /// replace a voter with the learner, or, rarely, something the replicas must refuse (two voters).
    mutating func operatorActs() {
        if let change = operatorChange, now - change.sentAt > Int(consensusTimeoutTicks) * 2 {
            operatorChange = nil  // Lost with a crashed replica or a dropped answer: ask again later.
        }
        guard !healed, operatorChange == nil, parameters.reconfigurationRate > 0,
            Double.random(in: 0..<1, using: &operatorRandom) < parameters.reconfigurationRate
        else { return }
        let latest = oracleMemberships.latest
        var voters = latest.voters
        var learners = latest.learners
        let leader = activeMembers.first { nodes[$0].replica?.role == .leader }
        var removed: ReplicaID?
        func removeVoter(_ random: inout SeededRandom) {
            let victim =
                leader.map(voters.contains) == true && Bool.random(using: &random)
                ? leader! : voters[Int.random(in: 0..<voters.count, using: &random)]
            voters.removeAll { $0 == victim }
            removed = victim
        }
        if let learner = learners.first {
            switch Int.random(in: 0..<4, using: &operatorRandom) {
            case 0, 1: voters.append(learner)
            case 2: break
            default:
                removeVoter(&operatorRandom)
                voters.append(learner)
            }
            learners = []
        } else if voters.count >= 5 || (voters.count == 4 && Bool.random(using: &operatorRandom))
            || Int.random(in: 0..<10, using: &operatorRandom) == 0
        {
            removeVoter(&operatorRandom)
        } else {
            let added = ReplicaID(nodes.count + 1)
            nodes.append(Node(state: initialState), for: added)
            learners = [added]
        }
        operatorSequence += 1
        let id = RequestID(client: Self.operatorClient, sequence: operatorSequence)
        let target = leader ?? randomMember()
        operatorChange = OperatorChange(id: id, target: target, sentAt: now)
        report.reconfigurationsAsked += 1
        if removed != nil, removed == leader { report.leaderRemovalsAsked += 1 }
        let change = Reconfiguration(
            id: id, membership: Membership(epoch: latest.epoch + 1, voters: voters, learners: learners))
        nodes[target].replica?.reconfigure(change)
    }

    mutating func operatorAnswered(_ outcome: RequestOutcome, from member: ReplicaID) {
        guard let change = operatorChange, change.id == outcome.id, change.target == member else { return }
        operatorChange = nil
        switch outcome.outcome {
        case .chosen(let slot):
            if chosen[slot]?.reconfiguration?.id != outcome.id {
                violation(
                    "\(member) acknowledged membership change \(outcome.id) in slot \(slot), which does not hold it")
            }
        case .refused:
            report.reconfigurationsRefused += 1
        case .notLeader, .noQuorum, .busy, .timedOut, .readable:
            break
        }
    }

    /// Stops for good the replicas no configuration needs any more, once they know it themselves (as a removed
    /// replica's shell does). One cut off when it was removed may never learn it: it runs on, and the run's end asks
    /// nothing of it. Stopping it as soon as the log decided could leave the new configuration needing the old one:
    /// its voters may not know yet that the slots before the change are chosen.
    mutating func retireRemoved() {
        for member in activeMembers where nodes[member].replica?.isRetired == true {
            nodes[member].replica = nil
            retiredMembers.insert(member)
            report.replicasRetired += 1
        }
    }
}
