import Dispatch
import Foundation
import LedgerCore
import LedgerRPC
import LedgerStore
import Logging
import Metrics
import NIOCore
import NIOPosix
import Paxos

/// The Paxos replica of the ledger: commands are `LedgerCommand`s, snapshots are `LedgerSnapshot`s.
public typealias LedgerReplica = Replica<LedgerCommand, LedgerSnapshot>

/// Carries messages to the other replicas of the cluster.
public protocol PeerSender: Sendable {
    /// Queues messages for `peer` and returns at once. Messages to an unreachable peer are dropped: Paxos
    /// retransmits what matters, so the sender never blocks the replica.
    func send(_ messages: [LedgerMessage], to peer: ReplicaID)
}

/// The other clusters of the deployment, as a replica asks them about the cross-shard transactions it shares with
/// them: a home confirms what its other participants prepared before it commits; a participant learns its home's
/// decision; a participant in doubt has its home decide.
public protocol OtherClusters: Sendable {
    /// Asks `home` to decide `id` (`Decision`, DESIGN §5.3). The home answers through its log and chooses abort when it
    /// has no decision, so the answer is final: `.committed`, or an abort. Nil when the home cluster did not answer.
    func decision(of id: TransactionID, home: String) async -> CommandResult?
    /// What `cluster` knows of each of `ids` (`TransactionStatusBatch`, linearizable, in one call): committed, aborted,
    /// expired or prepared from any replica (prepared from its leader when it names one), unknown only from its
    /// leader's linearizable answer; an id with no such answer is left out. Nil when the cluster did not answer.
    func reports(of ids: [TransactionID], at cluster: String) async -> [TransactionID: LedgerState.Report]?
    /// The final reports (committed, aborted, expired) among what one replica of `cluster` applied of `ids`
    /// (`TransactionStatusBatch`); the others are left out. Nil when no replica answered.
    func finalReports(of ids: [TransactionID], at cluster: String) async -> [TransactionID: LedgerState.Report]?
    /// What a replica of `cluster` that this process hosts (a node's neighbour) applied of `ids`, asked in the
    /// process: every report but unknown, which only the leader's read index vouches for. Empty when the process
    /// hosts no replica of `cluster`, or it is disconnected. The answers any replica may give (committed, aborted,
    /// expired, prepared) need no call to the other cluster when a neighbour has them.
    func neighbourReports(of ids: [TransactionID], at cluster: String) async -> [TransactionID: LedgerState.Report]
}

extension OtherClusters {
    /// None: the process hosts no replica of another cluster.
    public func neighbourReports(
        of ids: [TransactionID], at cluster: String
    ) async -> [TransactionID: LedgerState.Report] { [:] }
}

/// The replica cannot take requests: it is disconnected by the test control, or its storage failed.
public struct ReplicaUnavailable: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
}

/// The shell around the pure Paxos core and the ledger state machine of one replica.
///
/// Every input (`tick`, `receive`, `submit`) changes the core in memory and schedules one `pump`, which performs the
/// core's `Ready`: apply the chosen slots to the ledger in memory, send the messages that claim nothing about this
/// replica's disk (proposals, commit notices, heartbeats), write the Paxos state and the applied effects in one
/// SQLite transaction (shared by every input since the last pump: group commit; with an fsync when it holds a
/// promise or an acceptance, else lazily), then send the promises and acceptances, then answer the clients. No
/// promise or acceptance leaves the replica before it is durable; an answer to a client follows a choice a majority
/// holds durably.
///
/// A durable write runs on the replica's storage thread, so the event loop carries the proposals of step one and
/// takes new inputs while the disk syncs. Inputs that arrive meanwhile change the core, but the next `Ready` is
/// taken only after the write: nothing they cause leaves the replica before the state it follows from is durable.
public actor ReplicaNode {
    public nonisolated let cluster: String
    public nonisolated let me: ReplicaID
    /// The event loop this replica runs on: its serial executor, so a channel handler on that loop calls it without a
    /// hop (`assumeIsolated`).
    public nonisolated let loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()

    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.executor.asUnownedSerialExecutor() }
    private var replica: LedgerReplica
    private var ledger: LedgerState
    /// The slot `ledger` is applied through (the core's `appliedThrough` runs ahead while a write is awaited).
    private var ledgerSlot: Slot
    private let store: ReplicaStore
    private let peers: PeerSender
    private let logger: Logger
    private let accounts: [ClosedRange<AccountID>]
    private let initialBalance: Int64
    /// Who waits for each request's outcome: a place in the batch of a `submit` call.
    private var waiting: [RequestID: [(batch: PendingBatch, index: Int)]] = [:]
    /// Read indexes waiting for their round: each resumed with nil once readable, or with why not.
    private var reads: [RequestID: [CheckedContinuation<RequestFailure?, Never>]] = [:]
    private var readSequence: UInt64 = 0
    /// Inputs changed the core since the last `Ready` was taken.
    private var pumpScheduled = false
    /// A pump is running (possibly waiting for its write); it takes the next `Ready` when it is done.
    private var pumping = false
    private var connected = true
    private var failure: String?
    private let metrics: NodeMetrics
    /// Recovery of cross-shard transactions (DESIGN §5.3): how long, in ticks, this replica has seen each prepared
    /// transaction in doubt while leading, and which ones it is resolving now.
    private var inDoubt: [TransactionID: Tick] = [:]
    private var resolving: Set<TransactionID> = []
    /// Delivery of this cluster's commits as a home (DESIGN §3): ticks until each undelivered commit's participant
    /// is asked (again) whether it applied it, and the ones being asked now.
    /// Delivery rounds until each undelivered commit is asked about (again).
    private var deliveryDue: [TransactionID: Int] = [:]
    /// The participants with a delivery question in flight.
    private var delivering: Set<String> = []
    /// The first slot each peer last asked to catch up from.
    private var catchUpFrom: [ReplicaID: Slot] = [:]
    private var ticks: UInt64 = 0
    private let inDoubtTicksMax: Tick
    private let otherClusters: (any OtherClusters)?
    /// The command each request id in flight stands for: the same id with other content is refused, never answered
    /// with the first one's outcome.
    private var inFlight: [RequestID: LedgerCommand] = [:]
    /// Called once if the replica cannot continue (its storage failed); the process should stop.
    private let onFailure: @Sendable (String) -> Void
    /// Membership changes asked of this replica as leader, by their request id.
    private var changes: [RequestID: CheckedContinuation<Outcome, Never>] = [:]
    private var changeSequence: UInt64 = 0
    /// The log removed this replica: it takes no more part (`Replica.isRetired`), and its node stops it.
    private var retired = false
    private let onRetired: @Sendable (String) -> Void

    /// - Parameters:
    ///   - accounts: the account ranges this cluster owns; created with `initialBalance` when its first leader
    ///     finds the ledger empty.
    ///   - otherClusters: where a home confirms what the other participants prepared before it commits, a participant
    ///     learns its home's decision, and a prepared transaction in doubt for `inDoubtTicksMax` ticks asks its home
    ///     cluster to decide (nil: no cross-shard commit can be confirmed or learned; transactions in doubt whose home
    ///     is this cluster are still aborted here).
    ///   - metricsFactory: where the replica's metrics go (its own registry when its node hosts several).
    public init(
        cluster: String,
        configuration: Configuration,
        store: ReplicaStore,
        recovered: ReplicaStore.Recovered,
        peers: PeerSender,
        accounts: [ClosedRange<AccountID>],
        initialBalance: Int64,
        seed: UInt64,
        logger: Logger,
        otherClusters: (any OtherClusters)? = nil,
        inDoubtTicksMax: Tick = 600,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        onFailure: @escaping @Sendable (String) -> Void,
        onRetired: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.onRetired = onRetired
        self.metrics = NodeMetrics(factory: metricsFactory)
        precondition(inDoubtTicksMax > 0, "a prepared transaction needs time to be decided")
        self.otherClusters = otherClusters
        self.inDoubtTicksMax = inDoubtTicksMax
        self.cluster = cluster
        self.me = configuration.me
        self.replica = LedgerReplica(configuration: configuration, durable: recovered.durable, seed: seed)
        self.ledger = recovered.state
        self.ledgerSlot = recovered.durable.appliedThrough
        self.store = store
        self.peers = peers
        self.accounts = accounts
        self.initialBalance = initialBalance
        self.logger = logger
        self.onFailure = onFailure
    }

    // MARK: - Inputs

    /// One tick of logical time. The ticker is the only caller and the only code that reads the clock.
    public func tick() {
        guard connected, failure == nil, !retired else { return }
        commitLazyWrites()
        replica.tick()
        createAccountsIfLeaderOfEmptyLedger()
        resolveTransactionsInDoubt()
        if ticks % Self.deliveryEveryTicks == 0 { confirmDeliveries() }
        ticks += 1
        if ticks % Self.metricsTicks == 0 {
            metrics.observe(ledger, snapshot: store.lastSnapshotWrite)
            metrics.observe(
                replica.memberships.latest, me: me, chosenThrough: replica.chosenThrough, progress: replica.peerProgress
            )
        }
        schedulePump()
    }

    /// Ticks between two updates of the memory gauges (about a second at the usual 10 ms tick).
    static let metricsTicks: UInt64 = 100

    /// Messages from a peer. Refused messages (non-member sender, malformed) are returned for logging; they change
    /// nothing.
    public func receive(_ messages: [LedgerMessage], from sender: ReplicaID) -> [MessageRejection] {
        guard connected, failure == nil else { return [] }
        var rejections: [MessageRejection] = []
        for message in messages {
            if case .catchUpRequest(let firstSlot) = message {
                // The peer holds the history through the slot before it (it applied every slot it knows chosen, and
                // wrote them before it installs what it gets back): a snapshot shipped to it carries only the history
                // after that (`withHistory`).
                catchUpFrom[sender] = firstSlot
            }
            // A snapshot the store would refuse to install must not reach the core: it would stop this replica.
            if case .catchUpReply(let snapshot?, _) = message,
                snapshot.state.state.minBalance != ledger.minBalance || snapshot.state.state.cluster != cluster
            {
                rejections.append(
                    MessageRejection(
                        sender: sender,
                        reason: "a snapshot of \(snapshot.state.state.cluster) with min_balance "
                            + "\(snapshot.state.state.minBalance); this replica's are \(cluster) and \(ledger.minBalance)"
                    ))
                continue
            }
            do {
                try replica.receive(message, from: sender)
            } catch {
                rejections.append(error)
            }
        }
        schedulePump()
        return rejections
    }

    /// Submits a command and waits for its outcome (at most about the consensus timeout).
    public func submit(_ command: LedgerCommand) async throws(ReplicaUnavailable) -> CommandOutcome {
        try await submit(batch: [command])[0]
    }

    /// Submits many commands at once and waits for every outcome, in the order given. They reach the core together,
    /// so a leader proposes them in one slot with one storage write, and the caller waits once, not once per command.
    ///
    /// A client's commit or abort of a prepared cross-shard transaction is not proposed as it is (`LedgerState.route`):
    /// at the home, a commit is proposed as `decideCommit` once every other participant reported the same terms; at
    /// another participant, a commit or abort makes this replica ask the home and propose its decision (`follow`).
    public func submit(batch commands: [LedgerCommand]) async throws(ReplicaUnavailable) -> [CommandOutcome] {
        try checkAvailable()
        guard !commands.isEmpty else { return [] }
        metrics.requests.increment(by: commands.count)
        var routed: [(index: Int, route: LedgerState.Route)] = []
        var plain: [Int] = []
        for (index, command) in commands.enumerated() {
            let route = ledger.route(command)
            if route == .propose { plain.append(index) } else { routed.append((index, route)) }
        }
        if routed.isEmpty { return await propose(commands) }
        var outcomes = [CommandOutcome?](repeating: nil, count: commands.count)
        let plainCommands = plain.map { commands[$0] }
        await withTaskGroup(of: [(Int, CommandOutcome)].self) { group in
            group.addTask { [plain] in zip(plain, await self.propose(plainCommands)).map { ($0, $1) } }
            group.addTask { [routed] in await self.decide(routed) }
            for await answers in group { for (index, outcome) in answers { outcomes[index] = outcome } }
        }
        // This replica's state lagged when it routed these commands: the ledger refused a commit or abort that must
        // go the decision's way. Route them again, now that the state holds the prepare.
        let rerouted = plain.compactMap { index -> (index: Int, route: LedgerState.Route)? in
            guard case .applied(.refused) = outcomes[index], case let route = ledger.route(commands[index]),
                route != .propose
            else { return nil }
            return (index, route)
        }
        for (index, outcome) in await decide(rerouted) { outcomes[index] = outcome }
        return outcomes.map { $0! }
    }

    /// Proposes commands as they are and waits for their outcomes, in order.
    private func propose(_ commands: [LedgerCommand]) async -> [CommandOutcome] {
        guard !commands.isEmpty else { return [] }
        // Retired while this batch asked other clusters: nothing here answers it any more.
        if retired { return commands.map { _ in .failed(.notLeader(hint: otherLeader)) } }
        return await withCheckedContinuation { continuation in
            let batch = PendingBatch(count: commands.count, continuation: continuation)
            for (index, command) in commands.enumerated() {
                let id = command.requestID
                if let other = inFlight[id], other != command {
                    batch.resolve(
                        index,
                        .applied(
                            .refused(
                                "request \(id) is in flight as \(other.summary); this one is \(command.summary): one "
                                    + "transaction id names one transaction")))
                    continue
                }
                inFlight[id] = command
                waiting[id, default: []].append((batch, index))
                replica.submit(Request(id: id, command: command))
            }
            schedulePump()
        }
    }

    /// The decision path of a batch's commits and aborts (`LedgerState.Route`): ask the other clusters, one question
    /// per cluster for the whole batch, then propose together what they allow. Nothing is proposed for a command they
    /// do not allow. Returns each command's outcome with its index.
    private func decide(_ routes: [(index: Int, route: LedgerState.Route)]) async -> [(Int, CommandOutcome)] {
        guard !routes.isEmpty else { return [] }
        guard let otherClusters else {
            return routes.map {
                (
                    $0.index,
                    .applied(.refused("replica \(me) reaches no other cluster to confirm a cross-shard decision"))
                )
            }
        }
        var questions: [String: [TransactionID]] = [:]
        // The participants' questions to their home: only a decision answers them.
        var learning: Set<TransactionID> = []
        for (_, route) in routes {
            switch route {
            case .propose:
                preconditionFailure("a command to propose as it is has no decision path")
            case .confirm(let id, _, let participants):
                for participant in participants { questions[participant, default: []].append(id) }
            case .learn(let id, let home, _):
                questions[home, default: []].append(id)
                learning.insert(id)
            }
        }
        // A neighbour of the asked cluster (a replica of it on this node) answers what it can; the cluster is asked
        // the rest. A prepared report from a neighbour may lag the home's decision, so it answers only a confirmation.
        var reports: [String: [TransactionID: LedgerState.Report]] = [:]
        var remote: [String: [TransactionID]] = [:]
        for (cluster, ids) in questions {
            let here = await otherClusters.neighbourReports(of: ids, at: cluster)
            for id in ids {
                switch here[id] {
                case .prepared? where learning.contains(id), .unknown?, nil: remote[cluster, default: []].append(id)
                case let report?: reports[cluster, default: [:]][id] = report
                }
            }
        }
        metrics.questionsAnsweredHere.increment(by: reports.values.map(\.count).reduce(0, +))
        metrics.questionsAsked.increment(by: remote.values.map(\.count).reduce(0, +))
        // A cluster that did not answer is left out, and so is an answer that does not speak for its cluster.
        let answers = await withTaskGroup(of: (String, [TransactionID: LedgerState.Report]?).self) { group in
            for (cluster, ids) in remote {
                group.addTask { (cluster, await otherClusters.reports(of: ids, at: cluster)) }
            }
            var answers: [String: [TransactionID: LedgerState.Report]] = [:]
            for await (cluster, answer) in group { answers[cluster] = answer }
            return answers
        }
        reports.merge(answers) { here, asked in here.merging(asked) { settled, _ in settled } }
        // A client may abort its transaction at the home at any time; here it asked a participant, so the home decides
        // now (`Decision`: abort, unless it committed first), as recovery would later.
        let undecided = routes.compactMap { _, route -> (TransactionID, home: String)? in
            guard case .learn(let id, let home, aborting: true) = route, reports[home]?[id]?.isDecided == false else {
                return nil
            }
            return (id, home)
        }
        await withTaskGroup(of: (TransactionID, String, CommandResult?).self) { group in
            for (id, home) in undecided {
                group.addTask { (id, home, await otherClusters.decision(of: id, home: home)) }
            }
            for await (id, home, decision) in group {
                switch decision {
                case .committed?: reports[home]?[id] = .committed
                case .aborted(let reason)?: reports[home]?[id] = .aborted(reason)
                default: reports[home]?[id] = nil
                }
            }
        }
        var answered: [(Int, CommandOutcome)] = []
        var proposals: [(index: Int, command: LedgerCommand)] = []
        for (index, route) in routes {
            switch verdict(route, reports: reports) {
            case .propose(let command): proposals.append((index, command))
            case .answer(let outcome): answered.append((index, outcome))
            }
        }
        return answered + zip(proposals, await propose(proposals.map(\.command))).map { ($0.index, $1) }
    }

    /// What the other clusters' reports allow for one routed commit or abort: the command to propose, or the answer
    /// without one (a refusal, or no quorum when a cluster did not answer: the client may send it again).
    private func verdict(
        _ route: LedgerState.Route, reports: [String: [TransactionID: LedgerState.Report]]
    ) -> Verdict {
        switch route {
        case .propose:
            preconditionFailure("a command to propose as it is has no decision path")
        case .confirm(let id, let terms, let participants):
            for participant in participants {
                switch reports[participant]?[id] {
                case .prepared(terms, _)?, .committed?:
                    // Committed there means it learned this home's commit: only a lagging replica asks again.
                    continue
                case .prepared(let other, _)?:
                    return .refused(
                        "\(participant) prepared \(id) as a \(other), but its home \(cluster) as a \(terms): the "
                            + "commit is refused; abort")
                case .aborted?:
                    return .refused("\(participant) aborted \(id): the commit is refused; abort")
                case .expired?:
                    return .refused("\(participant) no longer remembers \(id): the commit is refused; abort")
                case .unknown?:
                    return .refused(
                        "\(participant) has not prepared \(id): the commit is refused; abort, or prepare it")
                case nil:
                    // Nothing was proposed; the commit can be sent again.
                    return .answer(.failed(.noQuorum))
                }
            }
            return .propose(.decideCommit(id, agreed: terms))
        case .learn(let id, let home, _):
            switch reports[home]?[id] {
            case .committed?:
                return .propose(.follow(id, committed: true))
            case .aborted?, .expired?:
                // A home forgets a commit only once this participant applied it; this one is still prepared here.
                return .propose(.follow(id, committed: false))
            case .prepared?, .unknown?:
                return .refused(
                    "\(id) is undecided at its home \(home); \(cluster) applies only the home's decision: decide at "
                        + "\(home) first")
            case nil:
                return .answer(.failed(.noQuorum))
            }
        }
    }

    /// A routed command's way: the command to propose, or its answer without a proposal.
    private enum Verdict {
        case propose(LedgerCommand)
        case answer(CommandOutcome)

        static func refused(_ message: String) -> Verdict { .answer(.applied(.refused(message))) }
    }

    /// What this replica's applied state knows of each of `ids` (`TransactionStatus`, `TransactionStatusBatch`). Every
    /// report but unknown is answered at once: committed, aborted and expired are final, and prepared is true of the
    /// cluster (it chose the prepare) though perhaps decided since. With `linearizable`, unknown is linearizable when
    /// this replica leads and confirms it with a read index first (one for all of `ids`), so that a prepare its cluster
    /// chose and a follower has not yet applied is never reported as unknown for the cluster. Without it, no read
    /// index: prepared and unknown may lag (the home's delivery check acts only on final reports).
    public func transactionStatuses(of ids: [TransactionID], linearizable: Bool = true) async
        -> [TransactionStatusAnswer]
    {
        var confirmed = false
        if linearizable, ids.contains(where: { ledger.report(of: $0) == .unknown }) {
            confirmed = (try? await confirmCurrent()) == .some(nil)
        }
        return ids.map {
            TransactionStatusAnswer(
                replica: me, appliedThrough: ledgerSlot, report: ledger.report(of: $0), leader: otherLeader,
                linearizable: confirmed)
        }
    }

    /// What this replica applied of `ids` and any replica may report (`OtherClusters.neighbourReports`): every report
    /// but unknown. None while disconnected: the test control cuts it off from every other replica, its neighbours'
    /// questions included.
    public func settledReports(of ids: [TransactionID]) -> [TransactionID: LedgerState.Report] {
        guard connected, failure == nil else { return [:] }
        var reports: [TransactionID: LedgerState.Report] = [:]
        for id in ids {
            let report = ledger.report(of: id)
            if report != .unknown { reports[id] = report }
        }
        return reports
    }

    /// What a linearizable read returns: the committed balance, or why there is none.
    public typealias ReadOutcome = Result<Int64, RequestFailure>

    /// Reads an account's committed balance linearizably: only a leader answers, after a majority confirmed it
    /// still leads (read index), from a state that includes every write chosen before the read began.
    public func read(_ account: AccountID) async throws(ReplicaUnavailable) -> ReadOutcome {
        if let failure = try await confirmCurrent() { return .failure(failure) }
        // A prepared transaction's account has no committed balance here until its decision is applied: the home may
        // have committed it already, and its client been told so.
        if let owner = ledger.locks[account] { return .failure(.inDoubt(account, by: owner)) }
        return ledger.balances[account].map { .success($0) }
            ?? .failure(.wrongShard(account, owner: ledger.movedOut[account]))
    }

    /// The read index: returns nil once this replica's applied state includes every command chosen before the call,
    /// confirmed by a majority that still takes this replica as leader; otherwise why not (not the leader, no quorum).
    private func confirmCurrent() async throws(ReplicaUnavailable) -> RequestFailure? {
        try checkAvailable()
        readSequence += 1
        // Reads are not commands: their ids only match answers to callers, under the cluster's own client id.
        let id = RequestID(client: LedgerCommand.clusterClient, sequence: (1 << 63) | readSequence)
        return await withCheckedContinuation { continuation in
            reads[id, default: []].append(continuation)
            replica.read(id)
            schedulePump()
        }
    }

    private func checkAvailable() throws(ReplicaUnavailable) {
        if let failure { throw ReplicaUnavailable(description: "replica \(me) stopped: \(failure)") }
        // A retired replica's core takes no more part: a request would wait for nothing, so it goes elsewhere.
        if retired { throw ReplicaUnavailable(description: "replica \(me) was removed from \(cluster)") }
        guard connected else { throw ReplicaUnavailable(description: "replica \(me) is disconnected") }
    }

    /// The test control: a disconnected replica drops all peer and client traffic and its timers stop.
    public func setConnected(_ connected: Bool) {
        guard self.connected != connected else { return }
        self.connected = connected
        logger.notice("\(connected ? "reconnected" : "disconnected") by test control")
        if !connected { failWaiting(.timedOut) }
    }

    // MARK: - Queries (this replica's own view, possibly stale)

    public func status() -> ReplicaStatus {
        ReplicaStatus(
            cluster: cluster, replica: me, role: replica.role, ballot: replica.ballot, leader: replica.leaderHint,
            chosenThrough: replica.chosenThrough, appliedThrough: replica.appliedThrough, locksHeld: ledger.locks.count,
            snapshotSlot: replica.snapshotSlot, isDisconnected: !connected, membership: replica.memberships.latest,
            progress: replica.peerProgress ?? [:], isRetired: retired, accountsHeld: ledger.balances.count,
            waitingOn: ledger.clustersWaitedOn(by: cluster))
    }

    // MARK: - Membership

    /// Asks this replica, as leader, to make one membership change through its log, and waits for the outcome: the
    /// change applied (or in effect already), refused with the reason, or a failure as for a command (`notLeader`
    /// with the leader it knows, `noQuorum`, `timedOut`).
    public func changeMembership(_ change: MembershipChange) async throws(ReplicaUnavailable)
        -> MembershipChangeOutcome
    {
        try checkAvailable()
        func answer(_ outcome: CommandOutcome, slot: Slot? = nil) -> MembershipChangeOutcome {
            MembershipChangeOutcome(outcome: outcome, membership: replica.memberships.latest, slot: slot)
        }
        guard replica.role == .leader else { return answer(.failed(.notLeader(hint: otherLeader))) }
        let next: Membership
        switch replica.memberships.applying(change) {
        case .failure(let refusal): return answer(.failed(.membershipRefused(refusal.reason)))
        case .success(nil): return answer(.applied(.committed))
        case .success(let membership?): next = membership
        }
        changeSequence += 1
        // A sequence of the cluster's own client that no read (bit 63) or command uses.
        let id = RequestID(client: LedgerCommand.clusterClient, sequence: (1 << 62) | changeSequence)
        let outcome = await withCheckedContinuation { continuation in
            changes[id] = continuation
            replica.reconfigure(Reconfiguration(id: id, membership: next))
            schedulePump()
        }
        if case .chosen(let slot) = outcome {
            logger.notice("membership changed", metadata: ["change": "\(change)", "slot": "\(slot)", "now": "\(next)"])
            return answer(.applied(.committed), slot: slot)
        }
        logger.notice("membership change failed", metadata: ["change": "\(change)", "outcome": "\(outcome)"])
        return answer(.failed(RequestFailure(outcome) ?? .timedOut))
    }

    /// Notices that the log removed this replica: it stops taking part, answers what waits on it, and tells its node.
    private func noticeRetirement() {
        guard !retired, replica.isRetired else { return }
        retired = true
        let reason = "\(me) was removed from \(cluster) (\(replica.memberships.latest)); it takes no more part"
        logger.notice("retired: \(reason)")
        failWaiting(.notLeader(hint: otherLeader))
        onRetired(reason)
    }

    /// PrintBalance: this replica's own applied value of an account (nil when not in this shard), possibly stale.
    public func localBalance(of account: AccountID) -> LocalBalance {
        LocalBalance(
            replica: me, balance: ledger.balances[account], isDisconnected: !connected, appliedThrough: ledgerSlot)
    }

    public var isConnected: Bool { connected }

    /// The leader this replica knows of, when it is another replica (a client sends there next).
    public var otherLeader: ReplicaID? { replica.leaderHint.flatMap { $0 == me ? nil : $0 } }

    public func walRecords() throws(StoreError) -> [WALRecord] {
        try store.walRecords()
    }

    public func datastoreRecords() throws(StoreError) -> [DatastoreRecord] {
        try store.datastoreRecords()
    }

    /// The applied ledger state (tests and audits).
    public var state: LedgerState { ledger }

    // MARK: - Performing the core's Ready

    private func schedulePump() {
        guard !pumpScheduled else { return }
        pumpScheduled = true
        guard !pumping else { return }
        pumping = true
        // Runs after the inputs already queued on this actor, so they share one Ready and one storage transaction.
        Task { await self.pump() }
    }

    /// Performs `Ready`s one at a time until the core has nothing new: one write in flight at most, and a `Ready` is
    /// taken only once the write before it is done (the core's contract).
    private func pump() async {
        while pumpScheduled, failure == nil {
            pumpScheduled = false
            await perform(replica.takeReady())
        }
        pumping = false
    }

    private func perform(_ ready: Ready<LedgerCommand, LedgerSnapshot>) async {
        guard !ready.isEmpty else { return }

        // Apply in memory first, so the effects are written in the same transaction as the Paxos state.
        var results: [RequestID: CommandResult] = [:]
        var applied: [LedgerState.Effects] = []
        var installed: LedgerSnapshot?
        for step in ready.apply {
            switch step {
            case .installSnapshot(let snapshot):
                // The snapshot supersedes everything applied before it in this Ready.
                ledger = snapshot.state.state
                ledgerSlot = snapshot.slot
                installed = snapshot.state
                applied.removeAll()
                logger.info("installed snapshot", metadata: ["slot": "\(snapshot.slot)"])
            case .slot(let slot, let ballot, let value):
                for request in value.requests {
                    let effects = ledger.apply(request.command, slot: slot, ballot: ballot)
                    results[request.id] = effects.result
                    applied.append(effects)
                }
                ledgerSlot = slot
            }
        }
        let batch = StoreBatch(
            persist: ready.persist, installedSnapshot: installed, applied: applied,
            appliedThrough: ready.apply.isEmpty ? nil : ledgerSlot)
        // Proposals, commit notices and heartbeats leave before the write, which then overlaps their trip; promises
        // and acceptances after it (`Ready`).
        send(ready.messages.filter { !$0.message.waitsForStorage })
        metrics.slotsApplied.increment(by: ready.apply.count)
        metrics.commandsApplied.increment(by: applied.count)
        metrics.messagesSent.increment(by: connected ? ready.messages.count : 0)
        if ready.persistMustBeDurable {
            do {
                // The clock is read here only to measure the storage; protocol time is the ticker's alone.
                let started = ContinuousClock.now
                try await store.commitDurably([batch])
                metrics.commitDuration.recordInterval(since: started)
                metrics.commits.increment()
            } catch {
                fail("storage write failed: \(error)")
                return
            }
        } else {
            // A crash may lose a lazy write anyway (`Ready`), so it waits in the file's queue for the next durable
            // write of any replica of this node, or the next tick: a busy node then writes once per fsync, and a
            // leader answers its clients without a write in the way.
            do {
                try store.enqueue(batch)
            } catch {
                fail("storage write failed: \(error)")
                return
            }
        }
        send(withHistory(ready.messages.filter { $0.message.waitsForStorage }))

        for outcome in ready.outcomes { answer(outcome, results: results) }

        noticeRetirement()
        if ready.snapshotDue {
            // Without the history: the store holds it, and it leaves only with a snapshot shipped (`withHistory`).
            replica.compact(state: LedgerSnapshot(state: ledger))
            schedulePump()
        }
    }

    /// Catch-up replies leave with a snapshot and the history its receiver lacks: the applied ledger state, at the slot
    /// the ledger is applied through (at or past the core's snapshot, whose log was truncated), and the store's WAL
    /// and datastore rows after the slot the receiver asked from (its whole history if this store cannot tell those
    /// rows apart, or it never asked). Reading history is paid only when a peer needs a snapshot, never at a
    /// compaction, and a laggard gets only what it lacks.
    private func withHistory(
        _ envelopes: [Envelope<LedgerCommand, LedgerSnapshot>]
    ) -> [Envelope<LedgerCommand, LedgerSnapshot>] {
        guard envelopes.contains(where: { if case .catchUpReply(_?, _) = $0.message { true } else { false } })
        else { return envelopes }
        var shipped: [ReplicaID: Snapshot<LedgerSnapshot>] = [:]
        return envelopes.compactMap { envelope in
            guard case .catchUpReply(_?, let entries) = envelope.message else { return envelope }
            let peer = envelope.to
            if shipped[peer] == nil {
                let after = catchUpFrom.removeValue(forKey: peer).map { $0 - 1 }
                do {
                    shipped[peer] = Snapshot(
                        slot: ledgerSlot, state: try store.snapshot(of: ledger, historyAfter: after),
                        memberships: replica.memberships.asOf(ledgerSlot))
                } catch {
                    fail("snapshot failed: \(error)")
                    return nil
                }
            }
            return Envelope(to: peer, message: .catchUpReply(snapshot: shipped[peer]!, entries: entries))
        }
    }

    /// Writes the lazy writes queued in the store's file without an fsync, unless a write is under way (which takes
    /// them). Called at each tick.
    public func commitLazyWrites() {
        guard failure == nil else { return }
        do {
            if try store.flush() { metrics.lazyCommits.increment() }
        } catch {
            fail("storage write failed: \(error)")
        }
    }

    /// Writes the lazy writes queued in the store's file before returning: a clean stop keeps what a crash could
    /// lose.
    public func writeQueuedWrites() {
        guard failure == nil else { return }
        do {
            try store.writeQueued()
        } catch {
            fail("storage write failed: \(error)")
        }
    }

    /// Hands messages to the peer links, one batch per peer.
    private func send(_ envelopes: [Envelope<LedgerCommand, LedgerSnapshot>]) {
        guard connected, !envelopes.isEmpty else { return }
        var outgoing: [ReplicaID: [LedgerMessage]] = [:]
        for envelope in envelopes { outgoing[envelope.to, default: []].append(envelope.message) }
        for (peer, messages) in outgoing.sorted(by: { $0.key < $1.key }) { peers.send(messages, to: peer) }
    }

    private func createAccountsIfLeaderOfEmptyLedger() {
        // The core waits on one request per id, so proposing again while a creation is in flight does nothing.
        guard replica.leadsWithQuorum, ledger.balances.isEmpty, !accounts.isEmpty else { return }
        let command = LedgerCommand.createAccounts(accounts, balance: initialBalance)
        replica.submit(Request(id: command.requestID, command: command))
    }

    /// The leader's side of DESIGN §5.3: a transaction prepared here for longer than `inDoubtTicksMax` ticks (its
    /// coordinator may be dead) is decided by its home cluster, which chooses abort when it has no decision; the
    /// decision then goes through this cluster's log like the coordinator's would. Only the leader counts, so the
    /// clock restarts when leadership moves: a delay, never a wrong decision.
    private func resolveTransactionsInDoubt() {
        guard replica.role == .leader else {
            inDoubt.removeAll()
            return
        }
        let prepared = Set(ledger.locks.values)
        inDoubt = inDoubt.filter { prepared.contains($0.key) }
        for id in prepared {
            let age = inDoubt[id, default: 0] + 1
            inDoubt[id] = age
            guard age >= inDoubtTicksMax, replica.leadsWithQuorum, !resolving.contains(id),
                case .prepared(let transaction) = ledger.transactions[id]
            else { continue }
            resolving.insert(id)
            inDoubt[id] = 0  // If this attempt fails, the next one comes after another full timeout.
            let home = transaction.home
            logger.notice(
                "transaction in doubt; asking its home cluster", metadata: ["transaction": "\(id)", "home": "\(home)"])
            Task { await self.resolve(id, home: home) }
        }
    }

    /// The leader's side of delivery: a commit this cluster made as the home stays in its state until the other
    /// participant is seen to have applied it (it reports the transaction committed, or forgotten: it forgets only
    /// decided transactions); then `delivered` lets the home forget it too. Every `deliveryEveryTicks` ticks, each
    /// participant with no question in flight is asked, in one `TransactionStatusBatch`, about the commits due: a
    /// commit is first due `deliveryFirstRounds` rounds after it was made (the client's commit to the participant
    /// usually got there first), then every `deliveryRetryRounds` rounds.
    private func confirmDeliveries() {
        guard replica.role == .leader, replica.leadsWithQuorum, let otherClusters else {
            deliveryDue.removeAll()
            return
        }
        deliveryDue = deliveryDue.filter { ledger.undelivered.contains($0.key) }
        var batches: [String: [TransactionID]] = [:]
        for id in ledger.undelivered {
            let rounds = deliveryDue[id] ?? Self.deliveryFirstRounds
            guard rounds <= 1 else {
                deliveryDue[id] = rounds - 1
                continue
            }
            guard let participant = ledger.openings[id]?.crossShard?.participants.first(where: { $0 != cluster }),
                !delivering.contains(participant), batches[participant, default: []].count < Self.deliveryBatchMax
            else { continue }
            batches[participant, default: []].append(id)
            deliveryDue[id] = Self.deliveryRetryRounds
        }
        for (participant, ids) in batches {
            delivering.insert(participant)
            Task { await self.confirmDeliveries(ids, at: participant, otherClusters) }
        }
    }

    static let deliveryEveryTicks: UInt64 = 10
    static let deliveryFirstRounds = 2
    static let deliveryRetryRounds = 10
    static let deliveryBatchMax = WireLimits.commandsPerBatchMax

    private func confirmDeliveries(_ ids: [TransactionID], at participant: String, _ otherClusters: any OtherClusters)
        async
    {
        defer { delivering.remove(participant) }
        // A neighbour of the participant answers the commits it applied; the participant is asked the rest. No answer:
        // every one of them is asked again later.
        var reports = await otherClusters.neighbourReports(of: ids, at: participant).filter(\.value.isFinal)
        let remote = ids.filter { reports[$0] == nil }
        metrics.questionsAnsweredHere.increment(by: reports.count)
        metrics.questionsAsked.increment(by: remote.count)
        if !remote.isEmpty {
            guard let answers = await otherClusters.finalReports(of: remote, at: participant) else { return }
            reports.merge(answers) { settled, _ in settled }
        }
        var delivered: [LedgerCommand] = []
        for id in ids {
            switch reports[id] {
            case .committed?, .expired?:
                delivered.append(.delivered(id))
            case .aborted?:
                logger.error(
                    "a participant aborted a transaction its home committed",
                    metadata: ["transaction": "\(id)", "participant": "\(participant)"])
            case .prepared?, .unknown?, nil:
                // Not applied there yet (its recovery asks this home), or a replica that lags: asked again later.
                break
            }
        }
        _ = await propose(delivered)
    }

    private func resolve(_ id: TransactionID, home: String) async {
        defer { resolving.remove(id) }
        let command: LedgerCommand
        if home == cluster {
            // This cluster is the home: with no commit chosen here, abort is the decision (a commit chosen first
            // makes the ledger refuse the abort).
            command = .abort(id)
        } else {
            guard let otherClusters, let decision = await otherClusters.decision(of: id, home: home) else {
                logger.warning("home cluster gave no decision; retrying later", metadata: ["transaction": "\(id)"])
                return
            }
            command = .follow(id, committed: decision == .committed)
        }
        let outcome = try? await submit(command)
        logger.notice(
            "transaction in doubt resolved",
            metadata: [
                "transaction": "\(id)", "decision": "\(command)",
                "outcome": "\(outcome.map(String.init(describing:)) ?? "unavailable")",
            ])
    }

    private func answer(_ outcome: RequestOutcome, results: [RequestID: CommandResult]) {
        if let change = changes.removeValue(forKey: outcome.id) {
            change.resume(returning: outcome.outcome)
            return
        }
        if let readers = reads.removeValue(forKey: outcome.id) {
            var failure: RequestFailure?
            if case .readable = outcome.outcome {} else { failure = RequestFailure(outcome.outcome) ?? .timedOut }
            for reader in readers { reader.resume(returning: failure) }
            return
        }
        let reply: CommandOutcome
        if case .chosen = outcome.outcome {
            // Applied in this Ready unless a snapshot covered it; then the client learns the result on retry.
            reply = results[outcome.id].map(CommandOutcome.applied) ?? .failed(.timedOut)
        } else {
            reply = .failed(RequestFailure(outcome.outcome) ?? .timedOut)
        }
        inFlight[outcome.id] = nil
        for waiter in waiting.removeValue(forKey: outcome.id) ?? [] { waiter.batch.resolve(waiter.index, reply) }
    }

    private func failWaiting(_ failure: RequestFailure) {
        for waiter in waiting.values.joined() { waiter.batch.resolve(waiter.index, .failed(failure)) }
        waiting.removeAll()
        inFlight.removeAll()
        for reader in reads.values.joined() { reader.resume(returning: failure) }
        reads.removeAll()
        // Whether a change asked was chosen is unknown: the operator asks again, and learns it was in effect.
        for change in changes.values { change.resume(returning: .timedOut) }
        changes.removeAll()
    }

    private func fail(_ reason: String) {
        failure = reason
        logger.critical("replica stopping: \(reason)")
        failWaiting(.timedOut)
        onFailure(reason)
    }
}

/// The outcomes of one `submit` call so far; its caller resumes when the last one is known. Used only on the
/// replica's actor.
private final class PendingBatch {
    private var outcomes: [CommandOutcome?]
    private var unresolved: Int
    private let continuation: CheckedContinuation<[CommandOutcome], Never>

    init(count: Int, continuation: CheckedContinuation<[CommandOutcome], Never>) {
        outcomes = Array(repeating: nil, count: count)
        unresolved = count
        self.continuation = continuation
    }

    func resolve(_ index: Int, _ outcome: CommandOutcome) {
        guard outcomes[index] == nil else { return }
        outcomes[index] = outcome
        unresolved -= 1
        if unresolved == 0 { continuation.resume(returning: outcomes.map { $0! }) }
    }
}

/// The replica's metrics, exported at `/metrics` by the Prometheus backend the executable bootstraps.
struct NodeMetrics: Sendable {
    /// Durable storage transactions (one fsync each): one per performed `Ready` that had a promise or an acceptance
    /// to write.
    let commits: Counter
    /// Storage transactions without an fsync this replica started (at a tick, for the lazy writes every replica of
    /// its file queued since the last transaction: chosen marks and applied slots, `Ready.persistMustBeDurable`).
    let lazyCommits: Counter
    let commitDuration: Metrics.Timer
    let slotsApplied: Counter
    let commandsApplied: Counter
    let messagesSent: Counter
    let requests: Counter
    /// Questions about cross-shard transactions to another cluster (a home confirming its participants' prepares, a
    /// participant learning its home's decision, a home's delivery check), one per transaction: answered by a replica
    /// of that cluster hosted on this node, or asked of the cluster.
    let questionsAnsweredHere: Counter
    let questionsAsked: Counter
    /// What the replicated state remembers (DESIGN §3): transactions, client sessions, and commits awaiting delivery.
    let transactionsRemembered: Gauge
    let clientSessions: Gauge
    let commitsUndelivered: Gauge
    /// The last compaction: its snapshot's encoded size, and the time encoding and writing it took.
    let snapshotBytes: Gauge
    let compactionSeconds: Gauge
    /// The process's resident memory (RSS), from /proc/self/statm.
    let residentMemory: Gauge
    /// The latest configuration this replica knows: its epoch, how many vote and learn, and whether this replica
    /// votes (1), learns (0.5: never counted) or was removed (0).
    let epoch: Gauge
    let voters: Gauge
    let learners: Gauge
    let membershipRole: Gauge
    private let factory: any MetricsFactory

    /// The metrics in `factory`'s registry (a replica's own, when its node hosts several).
    init(factory: any MetricsFactory) {
        commits = Counter(label: "ledger_store_commits_total", factory: factory)
        lazyCommits = Counter(label: "ledger_store_lazy_commits_total", factory: factory)
        commitDuration = Metrics.Timer(label: "ledger_store_commit_seconds", factory: factory)
        slotsApplied = Counter(label: "ledger_slots_applied_total", factory: factory)
        commandsApplied = Counter(label: "ledger_commands_applied_total", factory: factory)
        messagesSent = Counter(label: "ledger_peer_messages_sent_total", factory: factory)
        requests = Counter(label: "ledger_client_requests_total", factory: factory)
        questionsAnsweredHere = Counter(
            label: "ledger_cross_shard_questions_total", dimensions: [("answered", "here")], factory: factory)
        questionsAsked = Counter(
            label: "ledger_cross_shard_questions_total", dimensions: [("answered", "asked")], factory: factory)
        transactionsRemembered = Gauge(label: "ledger_transactions_remembered", factory: factory)
        clientSessions = Gauge(label: "ledger_client_sessions", factory: factory)
        commitsUndelivered = Gauge(label: "ledger_commits_undelivered", factory: factory)
        snapshotBytes = Gauge(label: "ledger_snapshot_bytes", factory: factory)
        compactionSeconds = Gauge(label: "ledger_compaction_seconds", factory: factory)
        residentMemory = Gauge(label: "ledger_resident_memory_bytes", factory: factory)
        epoch = Gauge(label: "ledger_membership_epoch", factory: factory)
        voters = Gauge(label: "ledger_membership_voters", factory: factory)
        learners = Gauge(label: "ledger_membership_learners", factory: factory)
        membershipRole = Gauge(label: "ledger_membership_role", factory: factory)
        self.factory = factory
    }

    /// Sets the membership gauges; at the leader, each other member's lag too (`ledger_membership_lag_slots{peer}`:
    /// slots between the leader's chosen prefix and the one the member last reported).
    func observe(_ membership: Membership, me: ReplicaID, chosenThrough: Slot, progress: [ReplicaID: Slot]?) {
        epoch.record(Int(clamping: membership.epoch))
        voters.record(membership.voters.count)
        learners.record(membership.learners.count)
        membershipRole.record(membership.isVoter(me) ? 1 : membership.contains(me) ? 0.5 : 0)
        for (peer, slot) in progress ?? [:] where membership.contains(peer) {
            Gauge(label: "ledger_membership_lag_slots", dimensions: [("peer", peer.description)], factory: factory)
                .record(Int(clamping: chosenThrough - min(slot, chosenThrough)))
        }
    }

    /// Sets the gauges of what the state remembers and what the process holds.
    func observe(_ ledger: LedgerState, snapshot: ReplicaStore.SnapshotWrite?) {
        transactionsRemembered.record(ledger.transactions.count)
        clientSessions.record(ledger.sessions.count)
        commitsUndelivered.record(ledger.undelivered.count)
        if let snapshot {
            snapshotBytes.record(snapshot.bytes)
            compactionSeconds.record(snapshot.seconds)
        }
        if let resident = Self.residentBytes() { residentMemory.record(resident) }
    }

    /// Resident pages times the page size; nil where /proc is not there.
    static func residentBytes() -> Int? {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

extension Metrics.Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
