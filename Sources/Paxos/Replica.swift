/// What a replica restarts from: everything it made durable through `Ready.persist`, and the slot its state
/// machine had applied (persisted by the shell with the applied state).
///
/// Invariant: every slot in `snapshot.slot + 1 ... appliedThrough` has an entry marked chosen.
public struct DurableState<Command: Sendable & Equatable, State: Sendable & Equatable>: Sendable, Equatable {
    public var promised: Ballot
    public var snapshot: Snapshot<State>?
    public var entries: [Slot: LogEntry<Command>]
    public var appliedThrough: Slot

    public init(
        promised: Ballot = .zero,
        snapshot: Snapshot<State>? = nil,
        entries: [Slot: LogEntry<Command>] = [:],
        appliedThrough: Slot = 0
    ) {
        self.promised = promised
        self.snapshot = snapshot
        self.entries = entries
        self.appliedThrough = appliedThrough
    }
}

/// The role a replica plays now.
public enum Role: Sendable, Equatable, CustomStringConvertible {
    case follower
    case candidate
    case leader

    public var description: String {
        switch self {
        case .follower: return "follower"
        case .candidate: return "candidate"
        case .leader: return "leader"
        }
    }
}

/// A multi-Paxos replica as a pure value: proposer, acceptor and learner of one cluster in one struct.
///
/// Inputs are `tick()`, `submit(_:)`, `receive(_:from:)` and `compact(state:)`; each only changes memory and adds
/// to a pending `Ready`, which `takeReady()` hands to the shell (see `Ready` for the order the shell must follow).
/// There is no clock, randomness source, I/O or logging here: time is ticks and randomness is a seeded generator,
/// so the simulator runs this exact code and replays any run from its seed.
///
/// Invariants, checked by the simulator after every step:
/// - at most one value is chosen per slot, and a chosen entry never changes;
/// - slots are applied once each, in order, `appliedThrough <= chosenThrough`;
/// - a promise or accepted value is in `Ready.persist` before any message that depends on it is in
///   `Ready.messages`.
public struct Replica<Command: Sendable & Equatable, State: Sendable & Equatable>: Sendable {
    public typealias Entry = LogEntry<Command>

    public let configuration: Configuration
    public private(set) var now: Tick = 0
    /// The highest ballot promised; no value from a lower ballot is accepted.
    public private(set) var promised: Ballot
    /// The log above the snapshot: accepted and chosen entries.
    public private(set) var log: [Slot: Entry]
    public private(set) var snapshot: Snapshot<State>?
    /// Every slot up to here is chosen and known here (contiguous prefix).
    public private(set) var chosenThrough: Slot
    /// Every slot up to here has been handed to the shell to apply.
    public private(set) var appliedThrough: Slot
    /// The replica this one believes leads, if any.
    public private(set) var leaderHint: ReplicaID?
    /// The cluster's configurations, derived from the chosen log through `chosenThrough` (and the snapshot's).
    public private(set) var memberships: Memberships
    /// The configurations that govern some slot after `chosenThrough`: each must grant a majority (to a candidate,
    /// for a leader's contact, for a read), and their members are this replica's peers.
    public private(set) var currentEras: [Membership] = []
    /// Every member of `currentEras` except this replica.
    public private(set) var peers: [ReplicaID] = []
    /// Whether this replica votes in the configuration that governs the next slot (`currentEras[0]`).
    private var votesNext = false
    /// Whether this replica is the only voter of every configuration in `currentEras` (all its writes are durable).
    private var soleVoter = false
    /// The chosen prefix reached the first slot a new configuration governs since the last `Ready`: its chosen marks
    /// are made durable, so a replica never forgets that the old configuration's part is over (it may be gone).
    private var crossedEra = false

    private var random: SeededRandom
    private var electionDeadline: Tick = 0
    private var lastLeaderContact: Tick?
    private var highestRoundSeen: UInt64
    private var candidacy: Candidacy?
    private var leadership: Leadership?
    private var waiters: [RequestID: Waiter] = [:]
    /// Waiter deadlines in submission order; `deadlines[deadlinesHead...]` may still expire.
    private var deadlines: [(deadline: Tick, id: RequestID)] = []
    private var deadlinesHead = 0
    /// The highest chosen slot some leader announced; above our `chosenThrough` means we must catch up.
    private var announcedChosenThrough: Slot = 0
    private var catchUpRequestedAt: Tick?
    /// The replica we ask for missing chosen slots.
    private var catchUpSource: ReplicaID?
    private var forwardBuffer: [Request<Command>] = []
    /// The reconfiguration submitted here and not yet answered (one at a time).
    private var changeWaiter: ChangeWaiter?
    private var pending = Ready<Command, State>()

    /// Starts a replica from its durable state (empty for a new replica).
    /// - Parameter seed: seeds the election-timeout randomness; give every replica its own.
    public init(configuration: Configuration, durable: DurableState<Command, State> = .init(), seed: UInt64) {
        self.configuration = configuration
        self.promised = durable.promised
        self.snapshot = durable.snapshot
        let snapshotSlot = durable.snapshot?.slot ?? 0
        self.log = durable.entries.filter { $0.key > snapshotSlot }
        self.appliedThrough = max(durable.appliedThrough, snapshotSlot)
        if let snapshot = durable.snapshot, durable.appliedThrough < snapshot.slot {
            // The snapshot became durable but the crash came before the state machine installed it: install it now.
            pending.apply.append(.installSnapshot(snapshot))
        }
        self.memberships = durable.snapshot?.memberships ?? Memberships(initial: configuration.bootstrap)
        self.chosenThrough = snapshotSlot
        self.highestRoundSeen = durable.promised.round
        self.random = SeededRandom(seed: seed)
        refreshEras()
        extendChosenPrefix()
        precondition(chosenThrough >= appliedThrough, "a slot was applied but is not chosen in the durable log")
        resetElectionTimer()
        applyChosen()
    }

    // MARK: - Status

    public var role: Role {
        if leadership != nil { return .leader }
        if candidacy != nil { return .candidate }
        return .follower
    }

    /// The ballot this replica leads or campaigns with, else the ballot it promised.
    public var ballot: Ballot { leadership?.ballot ?? candidacy?.ballot ?? promised }

    /// The first slot of `log` (everything below is in the snapshot).
    public var snapshotSlot: Slot { snapshot?.slot ?? 0 }

    /// Requests waiting on this replica for an outcome.
    public var waitingCount: Int { waiters.count }

    /// While this replica leads: the chosen prefix each peer last reported (in a promise, a Phase2b or a heartbeat
    /// acknowledgement), how far behind it is. Nil elsewhere.
    public var peerProgress: [ReplicaID: Slot]? { leadership?.progress }

    /// True when this replica leads and has heard from a majority within the leader timeout.
    public var leadsWithQuorum: Bool { leadership != nil && hasQuorumContact() }

    /// True once a configuration that governs the next slot and every later one leaves this replica out: it was
    /// removed, and its shell should stop it. It never campaigns again, and its id is never used again.
    public var isRetired: Bool { hasRetired(configuration.me) }

    /// What a replica takes from a removed one: the last messages of a leader whose removal now governs, under the
    /// ballot this replica follows it with (the chosen notice and the handover it sends as it steps down,
    /// `handOver`), and a catch-up request, whose answer (chosen values only) is how a removed replica that missed
    /// the end of its configuration learns it was removed.
    private func isTakenFromRetired(_ message: Message<Command, State>, from sender: ReplicaID) -> Bool {
        switch message {
        case .chosen(let ballot, _), .handover(let ballot): return ballot == promised && leaderHint == sender
        case .catchUpRequest: return true
        default: return false
        }
    }

    /// Whether the log removed `replica` and no configuration that governs a slot after the chosen prefix counts it
    /// (until then, it still votes on, or leads, the slots before its removal governs).
    public func hasRetired(_ replica: ReplicaID) -> Bool {
        memberships.retired.contains(replica) && !currentEras.contains { $0.contains(replica) }
    }

    /// What this replica is waiting for: unchosen proposals, queued and waiting requests, missing chosen slots.
    public var outstanding: Outstanding {
        var outstanding = Outstanding()
        if let leadership {
            outstanding.proposals = leadership.proposals.sorted { $0.key < $1.key }.map { slot, proposal in
                Outstanding.Proposal(
                    slot: slot, acceptedBy: proposal.acceptedBy.sorted(), sentAgo: now - proposal.sentAt)
            }
            outstanding.queuedRequests = leadership.queued.count
            outstanding.laggardSlots = leadership.laggardSlots
            if configuration.laggardFlushTicks > 0 { outstanding.promptPeers = leadership.promptPeers.sorted() }
            outstanding.announcedChosenThrough = leadership.announcedChosenThrough
            outstanding.readsWaiting = leadership.reads.count
        }
        if let candidacy {
            outstanding.promisesMissing = requiredVoters(candidacy).filter { candidacy.promises[$0] == nil }
        }
        if announcedChosenThrough > chosenThrough {
            outstanding.catchUp = Outstanding.CatchUp(
                chosenThrough: chosenThrough, announcedThrough: announcedChosenThrough, source: catchUpSource,
                askedAgo: catchUpRequestedAt.map { now - $0 })
        }
        let waiting = waiters.sorted { ($0.value.deadline, $0.key) < ($1.value.deadline, $1.key) }
        outstanding.waiting = waiting.prefix(4).map(\.key)
        outstanding.waitingCount = waiters.count
        outstanding.forwardsUnsent = forwardBuffer.count
        return outstanding
    }

    // MARK: - Inputs

    /// Hands the shell everything accumulated since the last call. The leader proposes queued requests here, so
    /// every request that arrived since the last call shares one slot (batching) and one storage write (group commit).
    public mutating func takeReady() -> Ready<Command, State> {
        if leadership != nil {
            proposeQueued()
            flushLeaderMessages()
            if !votesNext { handOver() }
        }
        flushForwards()
        var ready = pending
        pending = Ready()
        let persist = ready.persist
        ready.persistMustBeDurable =
            configuration.fault != .acceptanceNotDurable
            && (soleVoter || crossedEra || persist.promised != nil || persist.snapshot != nil
                || persist.entries.values.contains { !$0.isChosen })
        crossedEra = false
        return ready
    }

    /// Advances logical time by one tick: election and retransmission timers, heartbeats, request deadlines.
    public mutating func tick() {
        now += 1
        expireWaiters()
        if leadership != nil {
            leaderTick()
        } else if candidacy != nil {
            if now >= electionDeadline {
                startElection()
            } else if now - candidacy!.sentAt >= configuration.heartbeatIntervalTicks {
                sendPhase1a(onlyMissing: true)
            }
        } else if now >= electionDeadline {
            if canCampaign { startElection() } else { resetElectionTimer() }
        }
        requestCatchUpIfBehind()
        if now % configuration.leaderTimeoutTicks == 0 { reforwardStale() }
    }

    /// Accepts a client request. Its outcome arrives in a later `Ready.outcomes`.
    public mutating func submit(_ request: Request<Command>) {
        if waiters[request.id] != nil {
            // A retry of a request we already wait on: one outcome will answer both.
            return
        }
        if waiters.count >= Limits.waitingRequestsMax {
            pending.outcomes.append(RequestOutcome(id: request.id, outcome: .busy))
            return
        }
        let deadline = now + configuration.consensusTimeoutTicks
        waiters[request.id] = Waiter(request: request, deadline: deadline)
        deadlines.append((deadline, request.id))
        route(request.id)
    }

    /// Asks for a linearizable read. Only a leader answers: it registers the read at its last proposed slot, probes
    /// a majority with a new heartbeat round, and says `.readable(slot:)` once the majority acknowledged that round
    /// and the slot is applied. A deposed leader never gets that majority, so it never answers from stale state.
    /// Elsewhere the outcome is `.notLeader(hint:)`; without a majority in time, `.noQuorum`.
    public mutating func read(_ id: RequestID) {
        guard leadership != nil else {
            pending.outcomes.append(RequestOutcome(id: id, outcome: .notLeader(hint: leaderHint)))
            return
        }
        guard leadership!.reads[id] == nil else { return }
        if leadership!.reads.count >= Limits.waitingRequestsMax {
            pending.outcomes.append(RequestOutcome(id: id, outcome: .busy))
            return
        }
        // Every read registered before the next flush shares that flush's probe round.
        if !leadership!.probeScheduled {
            leadership!.probeScheduled = true
            leadership!.probeRound += 1
        }
        let index = max(chosenThrough, leadership!.nextSlot - 1)
        leadership!.reads[id] = PendingRead(
            index: index, round: leadership!.probeRound, deadline: now + configuration.consensusTimeoutTicks)
        answerConfirmedReads()
    }

    /// Asks this replica, if it leads, to change the cluster's membership. The outcome is `.chosen(slot:)` once the
    /// change is applied (it governs the slots from `slotsInFlightMax` after that one on), `.refused(reason:)` when
    /// it cannot be made (another change in progress, fewer than a majority of the new voters live and caught up,
    /// or `Memberships.problem(with:)`), `.notLeader(hint:)` elsewhere, or `.noQuorum` / `.timedOut` as for a request.
    public mutating func reconfigure(_ change: Reconfiguration) {
        guard leadership != nil else {
            pending.outcomes.append(RequestOutcome(id: change.id, outcome: .notLeader(hint: leaderHint)))
            return
        }
        if changeWaiter?.id == change.id { return }  // A retry: one outcome answers both.
        if let problem = reconfigurationProblem(change.membership) {
            pending.outcomes.append(RequestOutcome(id: change.id, outcome: .refused(reason: problem)))
            return
        }
        changeWaiter = ChangeWaiter(id: change.id, deadline: now + configuration.consensusTimeoutTicks)
        leadership!.pendingChange = change
    }

    /// Handles a message from a peer. A message from a replica removed from the cluster (by a configuration that
    /// governs every slot after the chosen prefix), or a malformed one, is refused without any change. A replica this
    /// one does not know is heard: it may have been added in a part of the log not learned here yet (which only a
    /// leader of a later configuration can tell), and nothing it sends is counted unless a configuration makes it a
    /// voter.
    public mutating func receive(_ message: Message<Command, State>, from sender: ReplicaID) throws(MessageRejection) {
        guard sender != configuration.me else {
            throw MessageRejection(sender: sender, reason: "a message from \(configuration.me) to itself")
        }
        guard !hasRetired(sender) || isTakenFromRetired(message, from: sender) else {
            throw MessageRejection(
                sender: sender, reason: "was removed from the cluster; it is not a member of \(memberships.latest)")
        }
        try validate(message, from: sender)
        switch message {
        case .phase1a(let ballot, let firstSlot):
            onPhase1a(ballot: ballot, firstSlot: firstSlot, from: sender)
        case .phase1b(let ballot, let snapshotSlot, let chosenThrough, let entries, let memberships):
            let promise = Promise(
                snapshotSlot: snapshotSlot, chosenThrough: chosenThrough, entries: entries, memberships: memberships)
            onPhase1b(ballot: ballot, promise: promise, from: sender)
        case .phase2a(let ballot, let proposals, let chosenThrough):
            onPhase2a(ballot: ballot, proposals: proposals, chosenThrough: chosenThrough, from: sender)
        case .phase2b(let ballot, let slots, let chosenThrough):
            onPhase2b(ballot: ballot, slots: slots, chosenThrough: chosenThrough, from: sender)
        case .chosen(let ballot, let chosenThrough):
            if acceptLeaderContact(ballot: ballot, from: sender) {
                learnChosenThrough(chosenThrough, leaderBallot: ballot)
            }
        case .heartbeat(let ballot, let chosenThrough, let round):
            if acceptLeaderContact(ballot: ballot, from: sender) {
                learnChosenThrough(chosenThrough, leaderBallot: ballot)
                send(.heartbeatAck(ballot: ballot, round: round, chosenThrough: self.chosenThrough), to: sender)
            }
        case .heartbeatAck(let ballot, let round, let peerChosen):
            if leadership?.ballot == ballot {
                leadership!.lastHeard[sender] = now
                leadership!.ackedRound[sender] = max(leadership!.ackedRound[sender] ?? 0, round)
                leadership!.progress[sender] = max(leadership!.progress[sender] ?? 0, peerChosen)
                answerConfirmedReads()
            }
        case .rejected(let higher):
            onRejected(promised: higher)
        case .catchUpRequest(let firstSlot):
            onCatchUpRequest(firstSlot: firstSlot, from: sender)
        case .catchUpReply(let snapshot, let entries):
            onCatchUpReply(snapshot: snapshot, entries: entries, from: sender)
        case .forward(let requests):
            onForward(requests)
        case .handover(let ballot):
            // Our leader stepped down for us: campaign now rather than after a timeout.
            if ballot == promised, leaderHint == sender, leadership == nil, candidacy == nil, canCampaign {
                startElection()
            }
        }
    }

    /// Records the state machine's state after applying every slot up to `appliedThrough` as the new snapshot and
    /// truncates the log below it. Call it when a `Ready` says `snapshotDue`, after performing that `Ready`.
    public mutating func compact(state: State) {
        guard appliedThrough > snapshotSlot else { return }
        memberships.forget(before: appliedThrough + 1)
        let snapshot = Snapshot(slot: appliedThrough, state: state, memberships: memberships)
        self.snapshot = snapshot
        log = log.filter { $0.key > snapshot.slot }
        pending.persist.snapshot = snapshot
        pending.persist.entries = pending.persist.entries.filter { $0.key > snapshot.slot }
    }

    // MARK: - Phase 1

    /// Only a voter of the configuration that governs the next slot and of the latest one campaigns: a learner is not
    /// counted, a replica being removed leaves leading to the configuration that follows, and one promoted waits until
    /// its promotion governs.
    private var canCampaign: Bool {
        votesNext && memberships.latest.isVoter(configuration.me)
    }

    private mutating func startElection() {
        if leadership != nil { stepDown() }
        highestRoundSeen = max(highestRoundSeen, promised.round) + 1
        let ballot = Ballot(round: highestRoundSeen, replica: configuration.me)
        setPromise(ballot)
        leaderHint = nil
        lastLeaderContact = nil
        var candidacy = Candidacy(ballot: ballot, firstSlot: chosenThrough + 1, sentAt: now)
        candidacy.promises[configuration.me] = Promise(
            snapshotSlot: snapshotSlot, chosenThrough: chosenThrough, entries: entries(from: chosenThrough + 1),
            memberships: memberships)
        self.candidacy = candidacy
        resetElectionTimer()
        if hasEveryMajority(candidacy) {
            becomeLeader()
        } else {
            sendPhase1a(onlyMissing: false)
        }
    }

    /// Sends Phase1a to the voters a candidate needs: all of them, or those not yet asked or not yet answered.
    private mutating func sendPhase1a(onlyMissing: Bool) {
        guard let candidacy else { return }
        for voter in requiredVoters(candidacy)
        where voter != configuration.me && (!onlyMissing || candidacy.promises[voter] == nil) {
            send(.phase1a(ballot: candidacy.ballot, firstSlot: candidacy.firstSlot), to: voter)
            self.candidacy!.asked.insert(voter)
        }
        self.candidacy!.sentAt = now
    }

    /// The promise that knows the longest chosen prefix (the candidate's own at least); the lowest id wins a tie.
    private func bestInformed(_ candidacy: Candidacy) -> (replica: ReplicaID, promise: Promise) {
        let best = candidacy.promises.max { a, b in
            (a.value.chosenThrough, b.key.index) < (b.value.chosenThrough, a.key.index)
        }!
        return (best.key, best.value)
    }

    /// Every configuration that may govern a slot the candidate must take over: those its best-informed promiser
    /// derived for the slots after the chosen prefix it knows (the slots up to it are chosen, and the candidate learns
    /// them rather than proposing in them), and those of the reconfigurations the promises report after that prefix
    /// (chosen, or accepted under the highest ballot of a slot: that one may be chosen). By induction over slots, a
    /// candidate holding a majority of each has heard from a majority of the configuration that governs every slot
    /// where a value may be chosen, which is what Phase 1 needs; a replica that lags behind a change does not need
    /// the old configuration's replicas, which may be gone.
    private func requiredMemberships(_ candidacy: Candidacy) -> [Membership] {
        let known = bestInformed(candidacy).promise
        var required = known.memberships.governingFrom(known.chosenThrough + 1)
        func add(_ membership: Membership) { if !required.contains(membership) { required.append(membership) } }
        var highest: [Slot: LogEntry<Command>] = [:]
        for (_, promise) in candidacy.promises.sorted(by: { $0.key < $1.key }) {
            for item in promise.entries where item.slot > known.chosenThrough {
                if item.entry.isChosen {
                    if let change = item.entry.value.reconfiguration { add(change.membership) }
                } else if highest[item.slot].map({ $0.ballot < item.entry.ballot }) ?? true {
                    highest[item.slot] = item.entry
                }
            }
        }
        for (_, entry) in highest.sorted(by: { $0.key < $1.key }) {
            if let change = entry.value.reconfiguration { add(change.membership) }
        }
        return required
    }

    private func requiredVoters(_ candidacy: Candidacy) -> [ReplicaID] {
        Array(Set(requiredMemberships(candidacy).flatMap(\.voters))).sorted()
    }

    private func hasEveryMajority(_ candidacy: Candidacy) -> Bool {
        let promisers = Set(candidacy.promises.keys)
        return requiredMemberships(candidacy).allSatisfy { $0.isQuorum(promisers) }
    }

    private mutating func onPhase1a(ballot: Ballot, firstSlot: Slot, from sender: ReplicaID) {
        noteRound(ballot.round)
        if ballot < promised {
            send(.rejected(promised: promised), to: sender)
            return
        }
        if ballot > promised {
            // Stable leader: while we hear from a live leader, a third replica may not depose it. Refusing a
            // promise is always safe; the leader's own re-election (after a rejection) is allowed through, and so is
            // a successor once the leader is no voter of the configuration that governs the next slot.
            if let leader = leaderHint, leader != sender, let contact = lastLeaderContact,
                now - contact < configuration.leaderTimeoutTicks,
                currentEras[0].isVoter(leader)
            {
                send(.rejected(promised: promised), to: sender)
                return
            }
            if leadership != nil || candidacy != nil { stepDown() }
            if configuration.fault == .promiseNotPersisted {
                promised = ballot  // The canary's bug: the promise stays in memory only.
            } else {
                setPromise(ballot)
            }
            leaderHint = nil
            lastLeaderContact = nil
            resetElectionTimer()
        }
        send(
            .phase1b(
                ballot: ballot, snapshotSlot: snapshotSlot, chosenThrough: chosenThrough,
                entries: entries(from: firstSlot),
                memberships: memberships),
            to: sender)
    }

    private mutating func onPhase1b(ballot: Ballot, promise: Promise, from sender: ReplicaID) {
        guard var candidacy, candidacy.ballot == ballot else { return }
        candidacy.promises[sender] = promise
        self.candidacy = candidacy
        if hasEveryMajority(candidacy) {
            becomeLeader()
        } else {
            // The promise may name a configuration the candidate did not know: ask its voters too.
            let unasked = requiredVoters(candidacy).filter { $0 != configuration.me && !candidacy.asked.contains($0) }
            for voter in unasked {
                send(.phase1a(ballot: ballot, firstSlot: candidacy.firstSlot), to: voter)
                self.candidacy!.asked.insert(voter)
            }
        }
    }

    /// Phase 1 won: learn what the promises say is chosen, re-propose the highest-ballot accepted value of every
    /// other open slot (unchanged, so it keeps the stamp of the leader that first proposed it), fill gaps with
    /// no-ops stamped with our ballot, and lead every later slot.
    private mutating func becomeLeader() {
        guard let candidacy else { return }
        self.candidacy = nil
        let ballot = candidacy.ballot
        // Slots up to the highest snapshot reported are chosen; we fetch them rather than propose in them.
        var truncatedThrough: Slot = 0
        var snapshotHolder: ReplicaID?
        var highestAccepted: [Slot: LogEntry<Command>] = [:]
        var lastSlot = max(chosenThrough, log.keys.max() ?? 0)
        for (replica, promise) in candidacy.promises.sorted(by: { $0.key < $1.key }) {
            if promise.snapshotSlot > truncatedThrough {
                truncatedThrough = promise.snapshotSlot
                snapshotHolder = replica
            }
            lastSlot = max(lastSlot, promise.snapshotSlot)
            for item in promise.entries {
                lastSlot = max(lastSlot, item.slot)
                if item.entry.isChosen {
                    learnChosen(item.slot, item.entry)
                } else if let best = highestAccepted[item.slot], best.ballot >= item.entry.ballot {
                    continue
                } else {
                    highestAccepted[item.slot] = item.entry
                }
            }
        }
        // Voters that promised, lowest ids first, are the prompt ones until one of them lags (`thriftyTick`).
        let governing = currentEras[0]
        let promptPeers = candidacy.promises.keys.filter { $0 != configuration.me && governing.isVoter($0) }.sorted()
            .prefix(governing.majority - 1)
        var leadership = Leadership(
            ballot: ballot, nextSlot: lastSlot + 1, activeSince: now, promptPeers: Set(promptPeers))
        for (replica, promise) in candidacy.promises where replica != configuration.me {
            leadership.lastHeard[replica] = now
            leadership.progress[replica] = promise.chosenThrough
        }
        self.leadership = leadership
        leaderHint = configuration.me
        lastLeaderContact = nil
        // Every slot up to the best-informed promiser's chosen prefix is chosen: fetch those we do not hold.
        let (informed, known) = bestInformed(candidacy)
        if chosenThrough < truncatedThrough, let holder = snapshotHolder {
            announcedChosenThrough = max(announcedChosenThrough, truncatedThrough)
            catchUpSource = holder
            catchUpRequestedAt = nil
        }
        if chosenThrough < known.chosenThrough, announcedChosenThrough < known.chosenThrough {
            announcedChosenThrough = known.chosenThrough
            catchUpSource = informed
            catchUpRequestedAt = nil
        }
        let firstOpen = max(chosenThrough, truncatedThrough, known.chosenThrough) + 1
        if firstOpen <= lastSlot {
            for slot in firstOpen...lastSlot where log[slot]?.isChosen != true {
                propose(highestAccepted[slot]?.value ?? .noop(ballot: ballot), in: slot)
            }
        }
        for id in waiters.keys.sorted() { route(id) }
        advanceChosen()
        requestCatchUpIfBehind()
    }

    // MARK: - Phase 2

    private mutating func onPhase2a(
        ballot: Ballot,
        proposals: [SlotProposal<Command>],
        chosenThrough leaderChosenThrough: Slot,
        from sender: ReplicaID
    ) {
        guard acceptLeaderContact(ballot: ballot, from: sender) else { return }
        var accepted: [Slot] = []
        for proposal in proposals {
            accepted.append(proposal.slot)
            // A slot at or below our snapshot, or already chosen here, is final: acknowledging it is harmless because
            // a correct leader can only propose the chosen value again.
            guard proposal.slot > snapshotSlot, log[proposal.slot]?.isChosen != true else { continue }
            let entry = LogEntry(ballot: ballot, value: proposal.value, isChosen: false)
            log[proposal.slot] = entry
            pending.persist.entries[proposal.slot] = entry
        }
        learnChosenThrough(leaderChosenThrough, leaderBallot: ballot)
        send(.phase2b(ballot: ballot, slots: accepted, chosenThrough: chosenThrough), to: sender)
    }

    private mutating func onPhase2b(
        ballot: Ballot, slots: [Slot], chosenThrough peerChosen: Slot, from sender: ReplicaID
    ) {
        guard leadership?.ballot == ballot else { return }
        leadership!.lastHeard[sender] = now
        leadership!.progress[sender] = max(leadership!.progress[sender] ?? 0, peerChosen)
        for slot in slots {
            guard leadership!.proposals[slot] != nil else { continue }
            leadership!.proposals[slot]!.acceptedBy.insert(sender)
            if let proposal = chooseIfCounted(slot), isLaggard(sender) { promote(sender, over: proposal) }
        }
        advanceChosen()
    }

    /// Marks our proposal in `slot` chosen if a majority of the configuration that governs the slot accepted it,
    /// and returns it. A slot beyond `chosenThrough + slotsInFlightMax` waits: its configuration may still change.
    @discardableResult
    private mutating func chooseIfCounted(_ slot: Slot) -> Proposal? {
        guard let proposal = leadership!.proposals[slot], slot <= chosenThrough + window,
            memberships.governing(slot).isQuorum(proposal.acceptedBy)
        else { return nil }
        leadership!.proposals[slot] = nil
        for request in proposal.value.requests { leadership!.inFlight[request.id] = nil }
        markChosen(slot, LogEntry(ballot: leadership!.ballot, value: proposal.value, isChosen: true))
        return proposal
    }

    /// The pipeline depth: a leader proposes slot s only once every slot up to s - window is chosen.
    private var window: Slot { Slot(configuration.slotsInFlightMax) }

    /// How many slots after the one that chose it a configuration governs (`Memberships.record`).
    private var reconfigurationDelay: Slot { configuration.fault == .reconfigurationAtOnce ? 1 : window }

    /// Whether this leader may propose in `slot`: within the window, and a voter of the configuration that governs
    /// it (a leader being removed leads the slots before its removal takes effect, then hands over).
    private func mayPropose(in slot: Slot) -> Bool {
        slot <= chosenThrough + window && memberships.governing(slot).isVoter(configuration.me)
    }

    /// Why this leader will not propose `next` now, or nil: another change in progress, the change itself refused
    /// (`Memberships.problem(with:)`), or fewer than a majority of its voters live (heard from within the leader
    /// timeout) and caught up (`Limits.caughtUpSlotsMax`). A voter removed need not be either.
    private func reconfigurationProblem(_ next: Membership) -> String? {
        let inFlight = leadership!.proposals.values.contains { $0.value.reconfiguration != nil }
        if changeWaiter != nil || leadership!.pendingChange != nil || inFlight
            || memberships.hasPending(at: chosenThrough + 1)
        {
            return MembershipChangeRefusal.inProgress
        }
        if let problem = memberships.problem(with: next) { return problem }
        let ready = next.voters.filter { voter in
            if voter == configuration.me { return true }
            guard let heard = leadership!.lastHeard[voter], now - heard < configuration.leaderTimeoutTicks else {
                return false
            }
            return (leadership!.progress[voter] ?? 0) + Limits.caughtUpSlotsMax >= chosenThrough
        }
        if ready.count < next.majority {
            return MembershipChangeRefusal.notReady(ready: ready.count, voters: next.voters.count)
        }
        return nil
    }

    private mutating func onRejected(promised higher: Ballot) {
        noteRound(higher.round)
        // A leader whose ballot an acceptor refuses campaigns again at once with a higher round; the followers
        // that still hear from it let it through, so one refusing replica cannot stall the cluster.
        if let leadership, higher > leadership.ballot {
            startElection()
        }
    }

    /// Proposes queued requests while the pipeline has room, as many per slot as the batch limit allows. A request
    /// whose queue deadline passed is dropped instead: whoever submitted it has been answered by now (`timedOut` at a
    /// forwarding follower), and its client retries it; proposing it anyway spends a slot on a request nobody waits
    /// for, which under load delays the requests still waited for past their own deadlines in turn.
    ///
    /// A reconfiguration goes first, in a slot of its own. Once one is chosen, the leader fills the slots before it
    /// governs with no-ops when no request comes, so the change takes effect without waiting for clients.
    private mutating func proposeQueued() {
        guard leadership != nil, hasQuorumContact() else { return }
        while mayPropose(in: leadership!.nextSlot) {
            if let change = leadership!.pendingChange {
                leadership!.pendingChange = nil
                changeWaiter?.mayBeChosen = true
                propose(.reconfigure(change, ballot: leadership!.ballot), in: leadership!.nextSlot)
                continue
            }
            guard leadership!.queueHead < leadership!.queue.count else {
                guard memberships.hasPending(at: leadership!.nextSlot) else { break }
                propose(.noop(ballot: leadership!.ballot), in: leadership!.nextSlot)
                continue
            }
            var batch: [Request<Command>] = []
            while batch.count < configuration.batchSizeMax, leadership!.queueHead < leadership!.queue.count {
                let request = leadership!.queue[leadership!.queueHead]
                leadership!.queueHead += 1
                guard let deadline = leadership!.queued.removeValue(forKey: request.id), deadline > now else {
                    continue
                }
                batch.append(request)
            }
            if leadership!.queueHead == leadership!.queue.count {
                leadership!.queue.removeAll(keepingCapacity: true)
                leadership!.queueHead = 0
            }
            guard !batch.isEmpty else { break }
            let slot = leadership!.nextSlot
            for request in batch {
                leadership!.inFlight[request.id] = slot
            }
            propose(.batch(batch, ballot: leadership!.ballot), in: slot)
        }
        advanceChosen()
    }

    /// Accepts `value` for `slot` locally under the leader's ballot and schedules it for every peer. The value keeps
    /// its stamp: ours for a new value, the first proposer's for a re-proposed one.
    private mutating func propose(_ value: SlotValue<Command>, in slot: Slot) {
        let ballot = leadership!.ballot
        // Holds in correct Paxos: our promises cover every ballot below ours. A deliberately broken replica (the
        // simulator's canary) can void it; there the simulator, not this assertion, must report the violation.
        precondition(
            value.ballot <= ballot || configuration.fault != nil,
            "slot \(slot) re-proposed with a stamp \(value.ballot) above \(ballot)")
        let entry = LogEntry(ballot: ballot, value: value, isChosen: false)
        log[slot] = entry
        pending.persist.entries[slot] = entry
        leadership!.nextSlot = max(leadership!.nextSlot, slot + 1)
        for request in value.requests {
            leadership!.inFlight[request.id] = slot
            waiters[request.id]?.mayBeChosen = true
        }
        var proposal = Proposal(value: value, sentAt: now)
        proposal.acceptedBy.insert(configuration.me)
        leadership!.proposals[slot] = proposal
        for peer in peers {
            if isLaggard(peer) {
                leadership!.laggardSlots[peer, default: []].append(slot)
            } else {
                leadership!.unsent[peer, default: []].append(slot)
            }
        }
        chooseIfCounted(slot)
    }

    private mutating func leaderTick() {
        expireReads()
        guard leadership != nil else { return }
        if now - leadership!.activeSince >= configuration.leaderTimeoutTicks, !hasQuorumContact() {
            // Check quorum: a leader cut off from its majority stops leading, so its queued requests are answered
            // `noQuorum` instead of waiting, and the followers' timers can elect a leader that can make progress.
            stepDown()
            resetElectionTimer()
            return
        }
        // Sorted: dictionary order differs between processes, and a replayed run must send the same messages.
        for (slot, proposal) in leadership!.proposals.sorted(by: { $0.key < $1.key })
        where now - proposal.sentAt >= configuration.heartbeatIntervalTicks {
            for peer in peers where !proposal.acceptedBy.contains(peer) {
                leadership!.unsent[peer, default: []].append(slot)
            }
            leadership!.proposals[slot]!.sentAt = now
        }
        if configuration.laggardFlushTicks > 0 { thriftyTick() }
        if !leadership!.farewells.isEmpty { sayFarewells() }
        // Per peer: a follower must hear from the leader every heartbeat interval even while the leader is busy
        // answering another peer's catch-up, or its election timer fires.
        for peer in peers
        where now - (leadership!.lastProbed[peer] ?? leadership!.activeSince) >= configuration.heartbeatIntervalTicks {
            leadership!.heartbeatDue.insert(peer)
        }
        // A choice that no message carried for a whole tick gets a notice of its own at the next flush.
        if leadership!.announcedChosenThrough < leadership!.chosenThroughAtLastTick {
            leadership!.chosenNoticeDue = true
        }
        leadership!.chosenThroughAtLastTick = chosenThrough
    }

    /// Whether `peer` gets new proposals late (thrifty Phase 2, `Configuration.laggardFlushTicks`). While a
    /// configuration chosen governs later slots, every peer is prompt: the prompt ones are picked in one.
    private func isLaggard(_ peer: ReplicaID) -> Bool {
        configuration.laggardFlushTicks > 0 && currentEras.count == 1 && !leadership!.promptPeers.contains(peer)
    }

    /// Thrifty Phase 2 at each tick. A proposal two ticks old and not chosen means a prompt peer is slow or gone:
    /// every laggard gets its slots now, and the prompt peers that have not accepted a stalled proposal give way to
    /// the peers heard from most recently. Otherwise the laggards get their slots every `laggardFlushTicks`.
    private mutating func thriftyTick() {
        let stalled = leadership!.proposals.values.filter { now - $0.sentAt >= 2 }
        if !stalled.isEmpty {
            let prompt = leadership!.promptPeers
            let silent = Set(prompt.filter { peer in stalled.contains { !$0.acceptedBy.contains(peer) } })
            let heard = leadership!.lastHeard
            let governing = currentEras[0]
            let ranked = governing.voters.filter { $0 != configuration.me }.sorted { a, b in
                if silent.contains(a) != silent.contains(b) { return silent.contains(b) }
                if heard[a, default: 0] != heard[b, default: 0] { return heard[a, default: 0] > heard[b, default: 0] }
                if prompt.contains(a) != prompt.contains(b) { return prompt.contains(a) }
                return a < b
            }
            leadership!.promptPeers = Set(ranked.prefix(governing.majority - 1))
        }
        if !stalled.isEmpty || now - leadership!.laggardsFlushedAt >= configuration.laggardFlushTicks {
            flushLaggards()
        }
    }

    /// A laggard's acceptance completed a majority for `proposal`, so a prompt peer had not accepted it by the
    /// flush: they swap. Without this, laggards flushed more often than a proposal takes to stall (two ticks) would
    /// hide a dead prompt peer, and every slot would wait for a flush.
    private mutating func promote(_ laggard: ReplicaID, over proposal: Proposal) {
        guard currentEras[0].isVoter(laggard),
            let slow = leadership!.promptPeers.filter({ !proposal.acceptedBy.contains($0) }).min()
        else { return }
        leadership!.promptPeers.remove(slow)
        leadership!.promptPeers.insert(laggard)
    }

    /// Schedules every laggard's late slots for the next flush.
    private mutating func flushLaggards() {
        for (peer, slots) in leadership!.laggardSlots {
            leadership!.unsent[peer, default: []].append(contentsOf: slots)
        }
        leadership!.laggardSlots.removeAll(keepingCapacity: true)
        leadership!.laggardsFlushedAt = now
    }

    /// Turns the leader's scheduled slots, heartbeats and chosen notices into messages, one per peer.
    ///
    /// Every Phase2a and heartbeat carries `chosenThrough`. A chosen notice of its own goes only when a choice went
    /// a whole tick without a message to carry it: while clients keep proposing, the next Phase2a carries it, so a
    /// follower learns and accepts in one step (one message, one storage write) instead of two, and a quiet leader's
    /// followers learn its last choices within two ticks.
    private mutating func flushLeaderMessages() {
        let ballot = leadership!.ballot
        if leadership!.probeScheduled {
            leadership!.probeScheduled = false
            leadership!.heartbeatDue = Set(peers)
        }
        let behind = chosenThrough > leadership!.announcedChosenThrough
        let announce = behind && leadership!.chosenNoticeDue
        var everyPeerTold = true
        for peer in peers {
            var told = false
            var slots = leadership!.unsent[peer] ?? []
            // A laggard's late slots go first in any Phase2a or heartbeat to it: no message may tell it of choices
            // whose values it has not been sent.
            if let late = leadership!.laggardSlots[peer], !slots.isEmpty || leadership!.heartbeatDue.contains(peer) {
                slots = late + slots
                leadership!.laggardSlots[peer] = nil
            }
            if !slots.isEmpty {
                var seen = Set<Slot>()
                var proposals: [SlotProposal<Command>] = []
                for slot in slots where seen.insert(slot).inserted {
                    // A chosen slot is sent too (a laggard's late one): accepting the chosen value under this ballot
                    // is what the follower would do anyway, and the message's chosenThrough then marks it chosen.
                    guard let entry = log[slot], entry.ballot == ballot else { continue }
                    proposals.append(SlotProposal(slot: slot, value: entry.value))
                }
                if !proposals.isEmpty {
                    send(.phase2a(ballot: ballot, proposals: proposals, chosenThrough: chosenThrough), to: peer)
                    leadership!.lastProbed[peer] = now
                    told = true
                }
            }
            // A read probe still needs its own heartbeat round, even after a Phase2a.
            let probing = leadership!.probeRound > 0 && (leadership!.ackedRound[peer] ?? 0) < leadership!.probeRound
            if leadership!.heartbeatDue.contains(peer), !told || probing {
                send(.heartbeat(ballot: ballot, chosenThrough: chosenThrough, round: leadership!.probeRound), to: peer)
                leadership!.lastProbed[peer] = now
                told = true
            } else if !told, announce {
                if leadership!.laggardSlots[peer] == nil {
                    // A chosen notice is not answered, so it does not count as probing the peer.
                    send(.chosen(ballot: ballot, chosenThrough: chosenThrough), to: peer)
                }
                // A laggard learns the choice with its late slots, within `laggardFlushTicks`.
                told = true
            }
            everyPeerTold = everyPeerTold && told
        }
        leadership!.unsent.removeAll(keepingCapacity: true)
        leadership!.heartbeatDue.removeAll()
        if everyPeerTold {
            leadership!.announcedChosenThrough = chosenThrough
            leadership!.chosenNoticeDue = false
        }
    }

    // MARK: - Learning and applying

    /// Judges a message from a leader of `ballot`. Returns true when we follow it; refuses a lower ballot.
    private mutating func acceptLeaderContact(ballot: Ballot, from sender: ReplicaID) -> Bool {
        noteRound(ballot.round)
        if ballot < promised || (ballot == promised && (leadership != nil || candidacy != nil)) {
            send(.rejected(promised: promised), to: sender)
            return false
        }
        if leadership != nil || candidacy != nil { stepDown() }
        if ballot > promised { setPromise(ballot) }
        let leaderChanged = leaderHint != sender
        leaderHint = sender
        lastLeaderContact = now
        resetElectionTimer()
        if leaderChanged {
            for id in waiters.keys.sorted() { route(id) }
        }
        return true
    }

    /// A leader of `leaderBallot` says every slot up to `through` is chosen. An entry we accepted under that same
    /// ballot holds the value the leader got chosen; for any other slot we must ask.
    private mutating func learnChosenThrough(_ through: Slot, leaderBallot: Ballot) {
        guard through > chosenThrough else { return }
        if through > announcedChosenThrough {
            announcedChosenThrough = through
            catchUpSource = leaderBallot.replica
        }
        // Visit whichever is smaller: the announced range or our log (a restarted replica may be far behind).
        let range = (chosenThrough + 1)...through
        let candidates: [Slot] =
            UInt64(log.count) < through - chosenThrough
            ? log.keys.filter { range.contains($0) } : range.filter { log[$0] != nil }
        for slot in candidates.sorted() {
            if let entry = log[slot], !entry.isChosen, entry.ballot == leaderBallot {
                markChosen(slot, LogEntry(ballot: entry.ballot, value: entry.value, isChosen: true))
            }
        }
        advanceChosen()
        requestCatchUpIfBehind()
    }

    /// Records a value learned to be chosen from another replica.
    private mutating func learnChosen(_ slot: Slot, _ entry: LogEntry<Command>) {
        guard slot > snapshotSlot, log[slot]?.isChosen != true else { return }
        if let proposal = leadership?.proposals[slot] {
            if proposal.value != entry.value {
                // Our own proposal lost: another leader with a higher ballot got this slot chosen. We are deposed;
                // announcing chosen slots now could make a follower take our losing value for the chosen one.
                stepDown()
            } else {
                leadership!.proposals[slot] = nil
                for request in proposal.value.requests { leadership!.inFlight[request.id] = nil }
            }
        }
        markChosen(slot, LogEntry(ballot: entry.ballot, value: entry.value, isChosen: true))
    }

    private mutating func markChosen(_ slot: Slot, _ entry: LogEntry<Command>) {
        log[slot] = entry
        pending.persist.entries[slot] = entry
    }

    /// Extends the chosen prefix, choosing on the way our proposals that a longer prefix lets us count.
    private mutating func advanceChosen() {
        let before = chosenThrough
        var through: Slot
        repeat {
            through = chosenThrough
            extendChosenPrefix()
            if chosenThrough > through, leadership != nil {
                // The slots the longer prefix brought within the window (a new leader re-proposes beyond it).
                for slot in (through + window + 1)...(chosenThrough + window) where leadership!.proposals[slot] != nil {
                    chooseIfCounted(slot)
                }
            }
        } while chosenThrough > through
        if chosenThrough > before { applyChosen() }
    }

    /// Extends `chosenThrough` over the contiguous chosen entries, recording each reconfiguration on the way.
    private mutating func extendChosenPrefix() {
        while let entry = log[chosenThrough + 1], entry.isChosen {
            chosenThrough += 1
            if let change = entry.value.reconfiguration { record(change, chosenAt: chosenThrough) }
        }
        if currentEras.count > 1 {
            let (before, formerPeers) = (currentEras.count, peers)
            refreshEras()
            guard currentEras.count < before else { return }
            crossedEra = true
            // The replicas this crossing removed are sent nothing more: the leader says goodbye (`sayFarewells`).
            if leadership != nil {
                let from = memberships.eras.last { $0.from <= chosenThrough + 1 }!.from
                for gone in formerPeers where !peers.contains(gone) {
                    leadership!.farewells[gone] = Farewell(from: from)
                }
            }
        }
    }

    /// Tells each replica removed since this leader leads what is chosen, so that it asks for the rest (a catch-up
    /// request is taken from a removed replica) and learns it retired; its shell then stops it. Only once every voter
    /// of the configuration that removed it reported a chosen prefix into that configuration (made durable there): a
    /// voter that does not know it yet campaigns asking the old configuration's voters only, and learns of the new
    /// configuration from their promises, so a removed replica stopped earlier could leave it waiting for good (the
    /// simulator found both a majority rule and none at all wanting). Said `Limits.farewellsMax` times, a heartbeat
    /// interval apart, since a message may be lost.
    private mutating func sayFarewells() {
        for (gone, farewell) in leadership!.farewells.sorted(by: { $0.key < $1.key }) {
            let voters = memberships.governing(farewell.from).voters
            let known = voters.filter { voter in
                (voter == configuration.me ? chosenThrough : leadership!.progress[voter] ?? 0) >= farewell.from - 1
            }
            guard known.count == voters.count,
                farewell.saidAt.map({ now - $0 >= configuration.heartbeatIntervalTicks }) ?? true
            else { continue }
            send(.chosen(ballot: leadership!.ballot, chosenThrough: chosenThrough), to: gone)
            leadership!.farewells[gone]!.saidAt = now
            leadership!.farewells[gone]!.said += 1
            if leadership!.farewells[gone]!.said >= Limits.farewellsMax { leadership!.farewells[gone] = nil }
        }
    }

    /// Records a chosen reconfiguration (every replica refuses the same ones) and answers whoever submitted it here.
    private mutating func record(_ change: Reconfiguration, chosenAt slot: Slot) {
        let problem = memberships.record(change.membership, chosenAt: slot, delay: reconfigurationDelay)
        refreshEras()
        guard changeWaiter?.id == change.id else { return }
        changeWaiter = nil
        let outcome: Outcome = problem.map { .refused(reason: $0) } ?? .chosen(slot: slot)
        pending.outcomes.append(RequestOutcome(id: change.id, outcome: outcome))
    }

    /// Recomputes `currentEras` and `peers` after the chosen prefix or the configurations changed.
    private mutating func refreshEras() {
        currentEras = memberships.governingFrom(chosenThrough + 1)
        votesNext = currentEras[0].isVoter(configuration.me)
        soleVoter = currentEras.allSatisfy { $0.voters == [configuration.me] }
        var members = Set(currentEras.flatMap(\.members))
        members.remove(configuration.me)
        peers = members.sorted()
    }

    /// Hands every chosen slot after `appliedThrough` to the shell, in order, and answers the requests waiting here.
    private mutating func applyChosen() {
        while appliedThrough < chosenThrough {
            let slot = appliedThrough + 1
            guard let entry = log[slot] else { preconditionFailure("chosen slot \(slot) missing from the log") }
            pending.apply.append(.slot(slot, ballot: entry.value.ballot, value: entry.value))
            for request in entry.value.requests where waiters.removeValue(forKey: request.id) != nil {
                pending.outcomes.append(RequestOutcome(id: request.id, outcome: .chosen(slot: slot)))
            }
            appliedThrough = slot
        }
        if appliedThrough - snapshotSlot >= configuration.snapshotIntervalSlots {
            pending.snapshotDue = true
            // The compaction after this Ready truncates the log: laggards get their late slots in it first, instead
            // of a snapshot later.
            if leadership != nil { flushLaggards() }
        }
        answerConfirmedReads()
    }

    // MARK: - Catch-up

    /// Asks for the chosen slots we miss: first the replica that told us of them, then, if it stays silent for a
    /// retransmission interval, the other peers in turn (the first may have crashed or been cut off).
    private mutating func requestCatchUpIfBehind() {
        guard chosenThrough < announcedChosenThrough else { return }
        if let asked = catchUpRequestedAt, now - asked < configuration.heartbeatIntervalTicks { return }
        // The leader may be in a configuration this replica has not learned yet: ask it in turn too.
        var sources = peers
        if let leader = leaderHint, leader != configuration.me, !sources.contains(leader) {
            sources = (sources + [leader]).sorted()
        }
        guard !sources.isEmpty else { return }
        if catchUpRequestedAt != nil || catchUpSource == nil || catchUpSource == configuration.me {
            let next = catchUpSource.flatMap { sources.firstIndex(of: $0) }.map { ($0 + 1) % sources.count } ?? 0
            catchUpSource = sources[next]
        }
        catchUpRequestedAt = now
        send(.catchUpRequest(firstSlot: chosenThrough + 1), to: catchUpSource!)
    }

    private mutating func onCatchUpRequest(firstSlot: Slot, from sender: ReplicaID) {
        let shipped = firstSlot <= snapshotSlot ? snapshot : nil
        var entries: [SlotEntry<Command>] = []
        var slot = max(firstSlot, snapshotSlot + 1)
        while entries.count < configuration.catchUpEntriesMax, let entry = log[slot], entry.isChosen {
            entries.append(SlotEntry(slot: slot, entry: entry))
            slot += 1
        }
        guard shipped != nil || !entries.isEmpty else { return }
        send(.catchUpReply(snapshot: shipped, entries: entries), to: sender)
    }

    private mutating func onCatchUpReply(
        snapshot shipped: Snapshot<State>?,
        entries: [SlotEntry<Command>],
        from sender: ReplicaID
    ) {
        catchUpRequestedAt = nil
        catchUpSource = sender
        if let shipped, shipped.slot > appliedThrough {
            installSnapshot(shipped)
        }
        for item in entries { learnChosen(item.slot, item.entry) }
        advanceChosen()
        requestCatchUpIfBehind()
    }

    private mutating func installSnapshot(_ shipped: Snapshot<State>) {
        // Proposals of ours in the covered slots are settled by the snapshot, whatever they were.
        if leadership != nil {
            for slot in leadership!.proposals.keys where slot <= shipped.slot {
                let proposal = leadership!.proposals.removeValue(forKey: slot)!
                for request in proposal.value.requests { leadership!.inFlight[request.id] = nil }
            }
            leadership!.nextSlot = max(leadership!.nextSlot, shipped.slot + 1)
        }
        snapshot = shipped
        log = log.filter { $0.key > shipped.slot }
        appliedThrough = shipped.slot
        chosenThrough = max(chosenThrough, shipped.slot)
        memberships = shipped.memberships ?? Memberships(initial: configuration.bootstrap)
        refreshEras()
        pending.persist.snapshot = shipped
        pending.persist.entries = pending.persist.entries.filter { $0.key > shipped.slot }
        pending.apply.append(.installSnapshot(shipped))
        advanceChosen()
    }

    // MARK: - Client requests

    /// Sends a waiting request where it can make progress: our own queue when leading, the leader when known,
    /// else it waits here for a leader until its deadline.
    private mutating func route(_ id: RequestID) {
        guard let waiter = waiters[id] else { return }
        if leadership != nil {
            enqueue(waiter.request, until: waiter.deadline)
        } else if let leader = leaderHint, leader != configuration.me {
            if configuration.forwardsRequests {
                forwardBuffer.append(waiter.request)
                waiters[id]!.mayBeChosen = true
                waiters[id]!.forwardedAt = now
            } else {
                waiters[id] = nil
                pending.outcomes.append(RequestOutcome(id: id, outcome: .notLeader(hint: leader)))
            }
        }
    }

    /// Queues `request` for a slot unless it is queued or in flight already; `deadline` is when whoever waits for
    /// it gives up (a queued one keeps the later of its deadlines).
    private mutating func enqueue(_ request: Request<Command>, until deadline: Tick) {
        guard leadership!.inFlight[request.id] == nil else { return }
        if let queued = leadership!.queued[request.id] {
            leadership!.queued[request.id] = max(queued, deadline)
            return
        }
        if leadership!.queued.count >= Limits.queuedRequestsMax {
            if waiters.removeValue(forKey: request.id) != nil {
                pending.outcomes.append(RequestOutcome(id: request.id, outcome: .busy))
            }
            return
        }
        leadership!.queued[request.id] = deadline
        leadership!.queue.append(request)
    }

    /// Forwards again the requests whose forward got no outcome for a leader timeout: the leader may have dropped
    /// them (it stepped down before proposing) or the message was lost. A leader proposes a request in flight once.
    private mutating func reforwardStale() {
        guard leadership == nil else { return }
        let stale = waiters.filter { entry in
            entry.value.forwardedAt.map { now - $0 >= configuration.leaderTimeoutTicks } ?? false
        }
        for id in stale.keys.sorted() { route(id) }
    }

    private mutating func onForward(_ requests: [Request<Command>]) {
        guard leadership != nil else { return }  // The forwarding replica forwards again later (`reforwardStale`).
        // The forwarding follower gives up within a consensus timeout of its first forward; forwarding again while
        // it waits (`reforwardStale`) does not put that off.
        for request in requests where leadership!.queued[request.id] == nil {
            enqueue(request, until: now + configuration.consensusTimeoutTicks)
        }
    }

    private mutating func flushForwards() {
        guard !forwardBuffer.isEmpty else { return }
        if let leader = leaderHint, leader != configuration.me {
            send(.forward(requests: forwardBuffer), to: leader)
        }
        forwardBuffer.removeAll(keepingCapacity: true)
    }

    private mutating func expireWaiters() {
        // Every waiter gets the same timeout, so deadlines arrive in submission order: a FIFO suffices.
        var expired: [RequestID: Waiter] = [:]
        while deadlinesHead < deadlines.count, deadlines[deadlinesHead].deadline <= now {
            let id = deadlines[deadlinesHead].id
            deadlinesHead += 1
            guard let waiter = waiters[id], waiter.deadline <= now else { continue }
            expired[id] = waiter
            waiters[id] = nil
            leadership?.queued[id] = nil
            pending.outcomes.append(RequestOutcome(id: id, outcome: waiter.mayBeChosen ? .timedOut : .noQuorum))
        }
        if let change = changeWaiter, change.deadline <= now {
            changeWaiter = nil
            if leadership?.pendingChange?.id == change.id { leadership!.pendingChange = nil }
            pending.outcomes.append(RequestOutcome(id: change.id, outcome: change.mayBeChosen ? .timedOut : .noQuorum))
        }
        if deadlinesHead > 1024, deadlinesHead * 2 > deadlines.count {
            deadlines.removeFirst(deadlinesHead)
            deadlinesHead = 0
        }
        if var leadership, !expired.isEmpty {
            // An expired request answered `noQuorum` was never proposed and now never will be.
            leadership.queue = leadership.queue[leadership.queueHead...].filter { expired[$0.id] == nil }
            leadership.queueHead = 0
            self.leadership = leadership
        }
    }

    /// Answers the reads whose probe round a majority acknowledged and whose slot is applied.
    private mutating func answerConfirmedReads() {
        guard leadership != nil, !leadership!.reads.isEmpty else { return }
        for (id, read) in leadership!.reads.sorted(by: { $0.key < $1.key }) {
            let acked = leadership!.ackedRound
            guard isQuorumEverywhere({ (acked[$0] ?? 0) >= read.round }), appliedThrough >= read.index else { continue }
            leadership!.reads[id] = nil
            pending.outcomes.append(RequestOutcome(id: id, outcome: .readable(slot: read.index)))
        }
    }

    private mutating func expireReads() {
        guard leadership != nil, !leadership!.reads.isEmpty else { return }
        for (id, read) in leadership!.reads.sorted(by: { $0.key < $1.key }) where read.deadline <= now {
            leadership!.reads[id] = nil
            pending.outcomes.append(RequestOutcome(id: id, outcome: .noQuorum))
        }
    }

    // MARK: - Helpers

    /// This leader is no voter of the configuration that governs the next slot (it was removed, and every slot it
    /// led is chosen): it tells every peer what is chosen, asks the most up-to-date voter of that configuration to
    /// campaign at once, and steps down.
    private mutating func handOver() {
        let ballot = leadership!.ballot
        let next = currentEras[0]
        let successor = next.voters.filter { $0 != configuration.me }.max { a, b in
            let (progressA, progressB) = (leadership!.progress[a] ?? 0, leadership!.progress[b] ?? 0)
            if progressA != progressB { return progressA < progressB }
            let (heardA, heardB) = (leadership!.lastHeard[a] ?? 0, leadership!.lastHeard[b] ?? 0)
            if heardA != heardB { return heardA < heardB }
            return a > b
        }
        for peer in peers { send(.chosen(ballot: ballot, chosenThrough: chosenThrough), to: peer) }
        if let successor { send(.handover(ballot: ballot), to: successor) }
        stepDown()
        resetElectionTimer()
    }

    private mutating func stepDown() {
        if let reads = leadership?.reads {
            for id in reads.keys.sorted() {
                pending.outcomes.append(RequestOutcome(id: id, outcome: .notLeader(hint: nil)))
            }
        }
        if let change = leadership?.pendingChange {
            // Never proposed: nothing changes, and the submitter asks the next leader.
            changeWaiter = nil
            pending.outcomes.append(RequestOutcome(id: change.id, outcome: .notLeader(hint: nil)))
        }
        leadership = nil
        candidacy = nil
        if leaderHint == configuration.me { leaderHint = nil }
    }

    private func hasQuorumContact() -> Bool {
        guard let leadership else { return false }
        return isQuorumEverywhere { peer in
            guard let heard = leadership.lastHeard[peer] else { return false }
            return now - heard < configuration.leaderTimeoutTicks
        }
    }

    /// Whether the voters for which `counts` holds, this replica included, are a majority of every configuration that
    /// governs a slot after `chosenThrough`.
    private func isQuorumEverywhere(_ counts: (ReplicaID) -> Bool) -> Bool {
        currentEras.allSatisfy { era in
            era.voters.reduce(0) { $0 + ($1 == configuration.me || counts($1) ? 1 : 0) } >= era.majority
        }
    }

    private mutating func setPromise(_ ballot: Ballot) {
        promised = ballot
        pending.persist.promised = ballot
    }

    private mutating func noteRound(_ round: UInt64) {
        highestRoundSeen = max(highestRoundSeen, round)
    }

    private mutating func resetElectionTimer() {
        electionDeadline = now + Tick.random(in: configuration.electionTimeoutTicks, using: &random)
    }

    private func entries(from firstSlot: Slot) -> [SlotEntry<Command>] {
        log.filter { $0.key >= firstSlot }.sorted { $0.key < $1.key }.map { SlotEntry(slot: $0.key, entry: $0.value) }
    }

    private mutating func send(_ message: Message<Command, State>, to replica: ReplicaID) {
        pending.messages.append(Envelope(to: replica, message: message))
    }

    private func validate(_ message: Message<Command, State>, from sender: ReplicaID) throws(MessageRejection) {
        func refuse(_ reason: String) -> MessageRejection { MessageRejection(sender: sender, reason: reason) }
        switch message {
        case .phase1a(let ballot, _), .phase2b(let ballot, _, _), .chosen(let ballot, _),
            .heartbeat(let ballot, _, _):
            if ballot.round == 0 { throw refuse("ballot round 0 is never used") }
            if case .phase2b = message {
            } else if ballot.replica != sender {
                throw refuse("ballot \(ballot) does not belong to its sender")
            }
        case .phase1b(_, _, _, let entries, _):
            if entries.count > Limits.entriesPerMessageMax { throw refuse("\(entries.count) entries in one Phase1b") }
            if entries.contains(where: { $0.slot == 0 }) { throw refuse("slot 0 in a Phase1b") }
            try validateStamps(entries, refuse)
        case .phase2a(let ballot, let proposals, _):
            if ballot.replica != sender { throw refuse("ballot \(ballot) does not belong to its sender") }
            if proposals.count > Limits.entriesPerMessageMax { throw refuse("\(proposals.count) slots in one Phase2a") }
            if proposals.contains(where: { $0.slot == 0 }) { throw refuse("slot 0 in a Phase2a") }
            for proposal in proposals {
                try validateStamp(proposal.value.ballot, slot: proposal.slot, acceptedUnder: ballot, refuse)
            }
        case .catchUpRequest(let firstSlot):
            if firstSlot == 0 { throw refuse("catch-up from slot 0") }
        case .catchUpReply(_, let entries):
            if entries.count > Limits.entriesPerMessageMax { throw refuse("\(entries.count) entries in one reply") }
            if entries.contains(where: { $0.slot == 0 || !$0.entry.isChosen }) {
                throw refuse("a catch-up entry that is not chosen or has slot 0")
            }
            try validateStamps(entries, refuse)
        case .forward(let requests):
            if requests.count > Limits.queuedRequestsMax { throw refuse("\(requests.count) forwarded requests") }
        case .handover(let ballot):
            if ballot.round == 0 || ballot.replica != sender { throw refuse("handover under ballot \(ballot)") }
        case .heartbeatAck, .rejected:
            break
        }
    }

    /// A value is stamped by the leader that first proposed it, so its stamp is a proposal ballot no higher than any
    /// ballot the value is later accepted under.
    private func validateStamp(
        _ stamp: Ballot, slot: Slot, acceptedUnder ballot: Ballot, _ refuse: (String) -> MessageRejection
    ) throws(MessageRejection) {
        if stamp.round == 0 { throw refuse("the value of slot \(slot) is stamped with ballot round 0") }
        if stamp > ballot {
            throw refuse(
                "the value of slot \(slot) is stamped \(stamp), above the ballot \(ballot) it is accepted under")
        }
    }

    private func validateStamps(
        _ entries: [SlotEntry<Command>], _ refuse: (String) -> MessageRejection
    ) throws(MessageRejection) {
        for item in entries {
            try validateStamp(item.entry.value.ballot, slot: item.slot, acceptedUnder: item.entry.ballot, refuse)
        }
    }
}

// MARK: - Role state

extension Replica {
    /// A candidate's Phase 1 in progress.
    struct Candidacy: Sendable {
        var ballot: Ballot
        var firstSlot: Slot
        var sentAt: Tick
        var promises: [ReplicaID: Promise] = [:]
        /// The voters sent a Phase1a: a promise may name a configuration whose voters were not asked yet.
        var asked: Set<ReplicaID> = []
    }

    /// What one acceptor reported in its Phase1b.
    struct Promise: Sendable {
        var snapshotSlot: Slot
        var chosenThrough: Slot
        var entries: [SlotEntry<Command>]
        var memberships: Memberships
    }

    /// The leader's state for its ballot. Invariant: every slot in `proposals` holds, in `log`, an entry accepted
    /// under `ballot` and not yet known chosen; every request id in `inFlight` is in such a slot.
    /// A removed replica to tell that it was removed: the first slot of the configuration that removed it, and when
    /// and how often it was told.
    struct Farewell: Sendable {
        var from: Slot
        var saidAt: Tick?
        var said = 0
    }

    struct Leadership: Sendable {
        var ballot: Ballot
        var nextSlot: Slot
        var activeSince: Tick
        var proposals: [Slot: Proposal] = [:]
        /// Requests waiting for a slot; `queue[queueHead...]` is still to propose.
        var queue: [Request<Command>] = []
        var queueHead = 0
        /// The requests in `queue[queueHead...]`, each with the tick from which it is dropped unproposed.
        var queued: [RequestID: Tick] = [:]
        /// Requests proposed and not yet chosen, with their slot: a retry of one is not proposed twice.
        var inFlight: [RequestID: Slot] = [:]
        /// A reconfiguration accepted by `reconfigure(_:)`, proposed at the next flush.
        var pendingChange: Reconfiguration?
        /// The replicas removed while this replica leads, still to be told (`sayFarewells`).
        var farewells: [ReplicaID: Farewell] = [:]
        var lastHeard: [ReplicaID: Tick] = [:]
        /// The highest `chosenThrough` each peer reported in a Phase2b: how far behind it is.
        var progress: [ReplicaID: Slot] = [:]
        /// Slots to send (or resend) per peer at the next flush.
        var unsent: [ReplicaID: [Slot]] = [:]
        /// When each peer last got a message it answers (Phase2a or heartbeat).
        var lastProbed: [ReplicaID: Tick] = [:]
        var heartbeatDue: Set<ReplicaID> = []
        /// Thrifty Phase 2: the peers that get proposals at once, the slots each laggard has not been sent yet, and
        /// when the laggards last got theirs.
        var promptPeers: Set<ReplicaID>
        var laggardSlots: [ReplicaID: [Slot]] = [:]
        var laggardsFlushedAt: Tick
        /// Read index: the current probe round, the highest round each peer acknowledged, the reads waiting.
        var probeRound: UInt64 = 0
        var probeScheduled = false
        var ackedRound: [ReplicaID: UInt64] = [:]
        var reads: [RequestID: PendingRead] = [:]
        var announcedChosenThrough: Slot = 0
        /// `chosenThrough` at the last tick.
        var chosenThroughAtLastTick: Slot = 0
        /// A tick found a choice made before the tick before still unannounced: the next flush sends a chosen notice,
        /// so a follower never waits more than two ticks to learn a choice.
        var chosenNoticeDue = false

        init(ballot: Ballot, nextSlot: Slot, activeSince: Tick, promptPeers: Set<ReplicaID>) {
            self.ballot = ballot
            self.nextSlot = nextSlot
            self.activeSince = activeSince
            self.promptPeers = promptPeers
            self.laggardsFlushedAt = activeSince
        }
    }

    /// A read waiting for its probe round to be confirmed by a majority and its slot to be applied.
    struct PendingRead: Sendable {
        var index: Slot
        var round: UInt64
        var deadline: Tick
    }

    /// A slot proposed under the leader's ballot, with the acceptors known to have accepted it.
    struct Proposal: Sendable {
        var value: SlotValue<Command>
        var sentAt: Tick
        var acceptedBy: Set<ReplicaID> = []
    }

    /// A reconfiguration submitted here, waiting for its outcome.
    struct ChangeWaiter: Sendable {
        var id: RequestID
        var deadline: Tick
        var mayBeChosen = false
    }

    /// A client request submitted here, waiting for its outcome.
    struct Waiter: Sendable {
        var request: Request<Command>
        var deadline: Tick
        /// Set once the request was proposed or forwarded: from then on its fate is unknown until applied.
        var mayBeChosen = false
        /// When the request was last forwarded to a leader; forwarded again if still waiting a leader timeout later.
        var forwardedAt: Tick?
    }
}
