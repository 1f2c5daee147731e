import Foundation
import LedgerCore
import LedgerRPC
import LedgerStore
import Paxos
import Synchronization

/// A client of the whole deployment: connections to every cluster of hosts.ini, the catalog it routes with, the
/// contact replica of each cluster, and the transaction ids it hands out (its own random client id, then a sequence).
///
/// `transfer` runs an intra-shard transfer as one command of the owning cluster, and a cross-shard one as the 2PC of
/// DESIGN §5 (`Coordinator` performed by `TransactionDriver`). A `wrongShard` answer updates the routing and the
/// transfer is tried again on the owner.
public final class LedgerConnection: Sendable {
    public let deployment: Deployment
    /// The client id of new transactions (`startNewSession` changes it).
    public var clientID: UInt64 { state.withLock { $0.clientID } }
    /// How long one step of a transfer (a command at one cluster) may take before the client gives up on it:
    /// `stepTimeoutsMax` times the longest consensus timeout of the clusters, long enough for a leader election and a
    /// consensus round, short enough that a cluster without quorum is reported.
    public let stepTimeout: Duration

    /// The step timeout in consensus timeouts. Replicas wait longer than two steps before they resolve a prepared
    /// transaction themselves (`ReplicaProcess.inDoubtTimeoutsMax`).
    public static let stepTimeoutsMax = 2
    private let connections: Mutex<Connections>
    /// Connections to clusters added after the connection was made, for `with` to run.
    private let added = AsyncStream.makeStream(of: ClusterConnections.self)
    private let security: ConnectionSecurity

    private struct Connections {
        var clusters: [String: ClusterConnections]
        /// When hosts.ini was last read for a cluster not known (at most once per `addressBookPatience`).
        var lookedUp: ContinuousClock.Instant?
    }

    /// How often a connection reads hosts.ini again for a cluster it does not know.
    static let addressBookPatience = Duration.seconds(1)
    private let batchers: Mutex<[BatcherKey: CommandBatcher]> = Mutex([:])
    /// Cross-shard commits reported to their callers and still on their way to the other participant.
    private let reportedCommits = ReportedCommits()
    private let state: Mutex<State>

    private struct State {
        var catalog: Catalog
        var contacts: [String: ReplicaID]
        var clientID: UInt64
        var nextSequence: UInt64 = 1
        /// Transactions handed out and not finished, of every client id this connection used.
        var open: Set<TransactionID> = []
        /// The floor each cluster was last told, per client id (`release`).
        var released: [UInt64: [String: UInt64]] = [:]
        /// Client ids given up by `startNewSession`, with their final floor: each is released everywhere once its
        /// last transaction is finished.
        var retiring: [UInt64: UInt64] = [:]

        /// The lowest sequence `client` still waits on (every one below it is finished).
        func floor(of client: UInt64) -> UInt64 {
            open.filter { $0.client == client }.map(\.sequence).min()
                ?? (client == clientID ? nextSequence : retiring[client] ?? nextSequence)
        }
    }

    /// The most tries of one transfer that find its accounts elsewhere (`wrongShard`, each one moving the routing) or
    /// in the middle of a move, before the last answer is reported.
    static let reroutesMax = 8
    /// The first pause before trying again a transfer that met a move in progress; it doubles with each try.
    static let movingPause = Duration.milliseconds(20)

    init(deployment: Deployment, catalog: Catalog, clientID: UInt64, security: ConnectionSecurity) throws {
        precondition(clientID != LedgerCommand.clusterClient, "client id 0 is the clusters' own")
        self.deployment = deployment
        stepTimeout = deployment.clusters.map(\.paxos.consensusTimeout).max()! * Self.stepTimeoutsMax
        var connections: [String: ClusterConnections] = [:]
        var contacts: [String: ReplicaID] = [:]
        for cluster in deployment.hosts.clusters {
            connections[cluster.name] = try ClusterConnections(
                cluster: cluster.name, addresses: Self.addresses(of: cluster.name, in: deployment.hosts),
                security: security)
            contacts[cluster.name] = deployment.hosts.replica(named: cluster.contact).map { ReplicaID($0.index) }
        }
        self.connections = Mutex(Connections(clusters: connections))
        self.security = security
        state = Mutex(State(catalog: catalog, contacts: contacts, clientID: clientID))
    }

    /// A new client id, time-ordered as the clusters expect (DESIGN §3): the milliseconds since 1970 in the high
    /// 44 bits, 20 random bits below them. A cluster that evicted the session of some client id refuses every older id
    /// without a session, so a client id is made fresh for each session and never reused.
    public static func newClientID() -> UInt64 {
        let milliseconds = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        return milliseconds << 20 | UInt64.random(in: 0..<(1 << 20))
    }

    /// Connects to every cluster for the duration of `body`, presenting the certificate of identity `name` (`client`,
    /// or `operator` for the test controls) when the deployment uses TLS.
    public static func with<Result: Sendable>(
        deployment: Deployment, catalog: Catalog, clientID: UInt64 = LedgerConnection.newClientID(),
        as name: String = LedgerConnection.clientIdentity,
        _ body: (LedgerConnection) async throws -> Result
    ) async throws -> Result {
        let security = try ConnectionSecurity.load(deployment.tls, as: name)
        let connection = try LedgerConnection(
            deployment: deployment, catalog: catalog, clientID: clientID, security: security)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for cluster in connection.all { group.addTask { try await cluster.run() } }
            group.addTask {
                try await withThrowingTaskGroup(of: Void.self) { later in
                    for await cluster in connection.added.stream { later.addTask { try await cluster.run() } }
                    try await later.waitForAll()
                }
            }
            defer {
                connection.added.continuation.finish()
                for cluster in connection.all { cluster.shutdown() }
            }
            let result = try await body(connection)
            // The commits reported already still reach their other participants before the connections close.
            await connection.settle()
            return result
        }
    }

    /// The identity clients present by default; `operatorIdentity` may also use the test controls.
    public static let clientIdentity = "client"
    public static let operatorIdentity = "operator"

    static func addresses(of cluster: String, in hosts: HostsFile) -> [ClusterClient.Address] {
        (hosts.cluster(named: cluster)?.reachable ?? []).compactMap { name in
            hosts.replica(named: name).map {
                ClusterClient.Address(replica: ReplicaID($0.index), host: $0.host, port: $0.port)
            }
        }
    }

    // MARK: - Routing

    public var catalog: Catalog { state.withLock { $0.catalog } }

    /// The client of one cluster; nil for a name hosts.ini does not define. A cluster added to hosts.ini after the
    /// connection was made (`shardctl cluster add`) is connected to when first asked for (hosts.ini is read again at
    /// most once a second).
    public func cluster(_ name: String) -> ClusterClient? {
        if let known = connections.withLock({ $0.clusters[name] }) { return known.client }
        return connectLater(to: name)?.client
    }

    /// The clients of every cluster, in cluster order (`C2` before `C10`).
    public var clusters: [ClusterClient] {
        connections.withLock { $0.clusters }.sorted { ($0.key.count, $0.key) < ($1.key.count, $1.key) }
            .map(\.value.client)
    }

    private var all: [ClusterConnections] { connections.withLock { Array($0.clusters.values) } }

    /// Reads hosts.ini again and connects to `cluster` if it is there now; nil if it is not (or was looked for less
    /// than `addressBookPatience` ago, or cannot be connected to).
    private func connectLater(to cluster: String) -> ClusterConnections? {
        let now = ContinuousClock.now
        let due = connections.withLock { connections in
            guard connections.lookedUp.map({ now - $0 >= Self.addressBookPatience }) ?? true else { return false }
            connections.lookedUp = now
            return true
        }
        guard due, let hosts = try? ConfigFiles.loadHosts(path: deployment.hostsPath),
            let entry = hosts.cluster(named: cluster),
            let made = try? ClusterConnections(
                cluster: cluster, addresses: Self.addresses(of: cluster, in: hosts), security: security)
        else { return nil }
        let kept = connections.withLock { connections in
            if let raced = connections.clusters[cluster] { return raced }
            connections.clusters[cluster] = made
            return made
        }
        guard kept === made else {
            made.shutdown()
            return kept
        }
        state.withLock { $0.contacts[cluster] = hosts.replica(named: entry.contact).map { ReplicaID($0.index) } }
        added.continuation.yield(made)
        return made
    }

    /// The replica each command to `cluster` goes to first.
    public func contact(of cluster: String) -> ReplicaID? { state.withLock { $0.contacts[cluster] } }

    /// Makes `replica` the first replica asked in its cluster; refuses a name hosts.ini does not define.
    public func setContact(_ replica: String) throws(InputError) {
        guard let entry = deployment.hosts.replica(named: replica),
            let cluster = deployment.hosts.cluster(of: replica)
        else {
            throw InputError(source: "contact", message: "\(replica) is not a replica of \(deployment.hostsPath)")
        }
        state.withLock { $0.contacts[cluster.name] = ReplicaID(entry.index) }
        // The contact is where the next command starts; the leader learned from replies takes over after it.
        self.cluster(cluster.name)?.forgetLeader()
    }

    /// Routes `account` to `cluster` from now on (a move this client made or learned of).
    public func recordMove(_ account: AccountID, to cluster: String) {
        state.withLock { $0.catalog.move(account, to: cluster) }
    }

    /// Waits until every cross-shard commit reported so far reached its other participant (or was given up on: the
    /// participant's recovery settles it). A test set waits so before it prints balances; a connection, before it
    /// closes.
    public func settle() async {
        await reportedCommits.waitUntilNone()
    }

    /// A new transaction id: this client's id and the next sequence number. The transaction stays open, holding this
    /// client's floor below it, until `finish`.
    public func nextTransaction() -> TransactionID {
        state.withLock { state in
            defer { state.nextSequence += 1 }
            let id = TransactionID(client: state.clientID, sequence: state.nextSequence)
            state.open.insert(id)
            return id
        }
    }

    /// This client waits on `id` no more: once every transaction below it is finished too, the clusters are told with
    /// the next commands they get (`release`), and forget it.
    public func finish(_ id: TransactionID) {
        let retired = state.withLock { state -> (client: UInt64, floor: UInt64)? in
            state.open.remove(id)
            guard let floor = state.retiring[id.client], !state.open.contains(where: { $0.client == id.client })
            else { return nil }
            state.retiring[id.client] = nil
            return (id.client, floor)
        }
        if let retired { releaseEverywhere(retired.client, floor: retired.floor) }
    }

    /// Starts a new client session: later transactions get a new client id (sequences from 1), as a new client would.
    /// The old id's transactions still open finish under it; then it is released everywhere, so the clusters forget
    /// it (a client that leaves should do the same).
    public func startNewSession() {
        let old = state.withLock { state -> (client: UInt64, floor: UInt64, done: Bool) in
            let old = (state.clientID, state.nextSequence, !state.open.contains { $0.client == state.clientID })
            if !old.2 { state.retiring[state.clientID] = state.nextSequence }
            var fresh = Self.newClientID()
            while fresh <= state.clientID { fresh += 1 }
            state.clientID = fresh
            state.nextSequence = 1
            return old
        }
        if old.done { releaseEverywhere(old.client, floor: old.floor) }
    }

    private func releaseEverywhere(_ client: UInt64, floor: UInt64) {
        let clusters = state.withLock { $0.released.removeValue(forKey: client).map { Array($0.keys) } ?? [] }
        for cluster in clusters { Task { _ = await self.command(.release(client: client, floor: floor), to: cluster) } }
    }

    /// The release to send with the next batch to `cluster`: this client's floor, when it rose since the cluster was
    /// last told (nil otherwise). A cluster that never got a command of this client gets none.
    private func releaseDue(at cluster: String, carrying commands: [LedgerCommand]) -> LedgerCommand? {
        state.withLock { state in
            let client = state.clientID
            let floor = state.floor(of: client)
            var told = state.released[client]?[cluster]
            if told == nil, commands.contains(where: { $0.transaction?.client == client }) {
                told = 1  // The cluster learns of this client now: it is told its floor from the next rise on.
                state.released[client, default: [:]][cluster] = 1
            }
            guard let told, floor > told else { return nil }
            state.released[client]![cluster] = floor
            return .release(client: client, floor: floor)
        }
    }

    /// A release that did not get through is sent again with a later batch.
    private func releaseFailed(_ release: LedgerCommand, at cluster: String) {
        guard case .release(let client, let floor) = release else { return }
        state.withLock { state in
            if state.released[client]?[cluster] == floor { state.released[client]?[cluster] = 1 }
        }
    }

    // MARK: - Transfers and reads

    /// Runs one transfer to its end: committed, aborted with the reason, or unknown (see `TransferOutcome`).
    ///
    /// A transfer that races an account move is applied before the move or routed to the new owner after it: an
    /// answer `moving` (the account is locked by the move) makes it wait and try again, and `wrongShard` with an owner
    /// (the account left) routes it there. Each try is a new transaction, so none is applied twice.
    public func transfer(_ transfer: Transfer) async -> TransferOutcome {
        await tracedTransfer(transfer).outcome
    }

    /// `transfer`, with the transaction id of its last try: the one the outcome speaks for, which a history checker
    /// looks up in the datastores. Earlier tries were answered before anything was applied (the account had moved,
    /// or a move held it); nil when no try was sent.
    public func tracedTransfer(_ transfer: Transfer) async -> (outcome: TransferOutcome, id: TransactionID?) {
        var outcome = TransferOutcome.unknown("not routed")
        var lastID: TransactionID?
        var pause = Self.movingPause
        for _ in 0..<Self.reroutesMax {
            let catalog = self.catalog
            guard let source = catalog.cluster(of: transfer.from) else {
                return (.aborted(.wrongShard(transfer.from, owner: nil)), lastID)
            }
            guard let target = catalog.cluster(of: transfer.to) else {
                return (.aborted(.wrongShard(transfer.to, owner: nil)), lastID)
            }
            // A commit this client reported may still be on its way to one of these accounts' cluster: a transfer
            // sent now would find the account locked by it.
            await reportedCommits.wait(for: [transfer.from, transfer.to])
            let id = nextTransaction()
            lastID = id
            if source == target {
                outcome = await intraShard(id, transfer, cluster: source)
                finish(id)
            } else {
                let crossShard = CrossShardTransfer(
                    from: transfer.from, to: transfer.to, amount: transfer.amount, home: source,
                    participants: [source, target])
                outcome = await TransactionDriver(connection: self, reportedCommits: reportedCommits).run(
                    Coordinator(id: id, transfer: crossShard), accounts: [transfer.from, transfer.to])
            }
            switch outcome {
            case .aborted(.wrongShard(let account, let owner?)) where owner != catalog.cluster(of: account):
                // The catalog was stale: the cluster that answered knows the owner. Route there and try again.
                state.withLock { $0.catalog.move(account, to: owner) }
            case .aborted(.refused(.moving, _)):
                // A move holds the account: once it is decided the account is either still here or gone (and the
                // answer names the new owner).
                try? await Task.sleep(for: pause)
                pause *= 2
            default:
                return (outcome, lastID)
            }
        }
        return (outcome, lastID)
    }

    private func intraShard(_ id: TransactionID, _ transfer: Transfer, cluster: String) async -> TransferOutcome {
        let outcome = await command(
            .transfer(id, from: transfer.from, to: transfer.to, amount: transfer.amount), to: cluster)
        switch outcome {
        case .applied(.committed): return .committed
        case .applied(.aborted(let reason)): return .aborted(.refused(reason, cluster: cluster))
        case .applied(.expired(let why)): return .unknown("\(cluster) answered expired: \(why)")
        case .applied(let other): return .unknown("unexpected answer from \(cluster): \(other)")
        case .failed(.wrongShard(let account, let owner)): return .aborted(.wrongShard(account, owner: owner))
        // Proposed (or maybe delivered) but not confirmed in time: it may still be applied.
        case .failed(.timedOut): return .unknown("\(cluster) did not confirm the transfer in time")
        case .failed(.forbidden(let reason)): return .aborted(.forbidden(reason, cluster: cluster))
        case .failed: return .aborted(.noQuorum(cluster: cluster))
        }
    }

    /// Submits a command to `cluster` within one step's time, batched with the other commands of its lane sent to it
    /// at the same time (`CommandBatcher`; decisions travel apart, `ClusterClient.Lane`).
    func command(_ command: LedgerCommand, to cluster: String) async -> CommandOutcome {
        guard self.cluster(cluster) != nil else { return .failed(.noQuorum) }
        return await batcher(of: BatcherKey(cluster: cluster, lane: ClusterClient.Lane(command))).submit(command)
    }

    /// A cluster's batcher of one lane.
    private struct BatcherKey: Hashable {
        var cluster: String
        var lane: ClusterClient.Lane
    }

    private func batcher(of key: BatcherKey) -> CommandBatcher {
        batchers.withLock { batchers in
            if let batcher = batchers[key] { return batcher }
            let batcher = CommandBatcher { [weak self] batch in
                guard let self else {
                    for pending in batch { pending.resume(.failed(.noQuorum)) }
                    return
                }
                await self.send(batch, to: key.cluster, lane: key.lane)
            }
            batchers[key] = batcher
            return batcher
        }
    }

    /// One try of the whole batch (through the learned leader, else the contact); every command that did not get a
    /// final answer is then retried on its own until the step's deadline, without holding up the next batch.
    private func send(_ batch: [CommandBatcher.Pending], to cluster: String, lane: ClusterClient.Lane) async {
        guard let client = self.cluster(cluster), let contact = contact(of: cluster) ?? client.replicas.first else {
            for pending in batch { pending.resume(.failed(.noQuorum)) }
            return
        }
        let started = ContinuousClock.now
        let deadline = started + stepTimeout
        // Each command's answer when final; otherwise whether this try may still take effect.
        let answers: [Result<CommandOutcome, Retry>]
        var commands = batch.map(\.command)
        // A raised floor rides with the transfers and prepares, never behind a decision.
        let release = lane == .commands ? releaseDue(at: cluster, carrying: commands) : nil
        if let release { commands.append(release) }
        switch await client.submitOnce(commands, contact: contact, deadline: deadline, lane: lane) {
        case .answered(var outcomes):
            if let release, outcomes.count == commands.count {
                if case .applied(.released) = outcomes.removeLast() {} else { releaseFailed(release, at: cluster) }
            }
            // As in `ClusterClient.route`: a sure "not applied" stands when a new try could not be answered in time
            // (the replica would hold it, and might apply it later).
            let noTimeToRetry = ClusterClient.noTimeToRetry(since: started, deadline: deadline)
            answers = outcomes.map { outcome in
                switch outcome {
                case .applied, .failed(.wrongShard), .failed(.forbidden): return .success(outcome)
                case .failed(.noQuorum), .failed(.busy): return noTimeToRetry ? .success(outcome) : .failure(Retry())
                case .failed(.timedOut): return .failure(Retry(uncertain: true))
                case .failed: return .failure(Retry())
                }
            }
        case .failed(let uncertain):
            if let release { releaseFailed(release, at: cluster) }
            answers = Array(repeating: .failure(Retry(uncertain: uncertain)), count: batch.count)
        }
        for (pending, answer) in zip(batch, answers) {
            switch answer {
            case .success(let outcome):
                pending.resume(outcome)
            case .failure(let retry):
                Task {
                    pending.resume(
                        await client.submit(
                            pending.command, contact: contact, deadline: deadline, uncertain: retry.uncertain))
                }
            }
        }
    }

    /// `command`, as a 2PC coordinator sees the answer: a cluster that did not answer for sure may have applied
    /// it or not, and in-doubt recovery settles a prepare either way.
    func submit(_ command: LedgerCommand, to cluster: String) async -> Coordinator.Answer {
        Coordinator.Answer(await self.command(command, to: cluster))
    }

    /// What became of transaction `id` at `cluster` (`TransactionStatus`, read-only). Nil when no replica answered
    /// in time.
    public func transactionStatus(of id: TransactionID, at cluster: String) async -> TransactionStatusAnswer? {
        guard let client = self.cluster(cluster), let contact = contact(of: cluster) ?? client.replicas.first else {
            return nil
        }
        return await client.transactionStatus(of: id, contact: contact, deadline: .now + stepTimeout)
    }

    /// `transactionStatus`, as a coordinator sees the answer: a decision, undecided, or none.
    func askStatus(_ id: TransactionID, of cluster: String) async -> Coordinator.Answer {
        switch await transactionStatus(of: id, at: cluster)?.report {
        case .committed?: return .applied(.committed)
        case .aborted(let reason)?: return .applied(.aborted(reason))
        case .prepared?, .unknown?: return .undecided
        case .expired?:
            return .applied(.expired("\(cluster) no longer remembers \(id); its fate is in \(cluster)'s datastore"))
        case nil: return .unavailable
        }
    }

    /// The committed balance of `account`, read linearizably at the leader of its cluster. An answer naming another
    /// owner (the account moved) routes the read there, as for a transfer.
    public func balance(of account: AccountID) async -> Result<Int64, RequestFailure> {
        var answer = Result<Int64, RequestFailure>.failure(.wrongShard(account, owner: nil))
        for _ in 0..<Self.reroutesMax {
            guard let cluster = catalog.cluster(of: account), let client = self.cluster(cluster),
                let contact = contact(of: cluster) ?? client.replicas.first
            else { return answer }
            answer = await client.balance(of: account, contact: contact, deadline: .now + stepTimeout)
            guard case .failure(.wrongShard(_, let owner?)) = answer, owner != cluster else { return answer }
            recordMove(account, to: owner)
        }
        return answer
    }
}

/// A command of a batch that needs a try of its own; `uncertain`: the batch's try may still take effect.
private struct Retry: Error {
    var uncertain = false
}

extension LedgerConnection {
    /// A wait on the clusters that did not end in time.
    public struct WaitTimedOut: Error, CustomStringConvertible {
        public var description: String
    }

    /// Waits until every cluster of the catalog answers a linearizable read of its first account: it has a leader
    /// with a live majority and has created its accounts.
    public func waitUntilServing(within limit: Duration) async throws {
        let deadline = ContinuousClock.now + limit
        for cluster in deployment.hosts.clusters {
            guard let first = catalog.accounts(of: cluster.name).first?.lowerBound else { continue }
            // An owner named in a wrong-shard answer came through the cluster's log: it serves (the catalog was old).
            while case .failure(let failure) = await balance(of: first), failure.owner == nil {
                guard ContinuousClock.now < deadline else {
                    throw WaitTimedOut(description: "cluster \(cluster.name) is not serving after \(limit): \(failure)")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}

extension LedgerConnection {
    /// Locks held by prepared transactions, summed over every replica not skipped; nil while one does not answer.
    public func locksHeld(skipping: Set<ReplicaID> = []) async -> Int? {
        var held = 0
        for cluster in clusters {
            for replica in cluster.replicas where !skipping.contains(replica) {
                guard let status = try? await cluster.status(of: replica) else { return nil }
                held += status.locksHeld
            }
        }
        return held
    }

    /// Waits until no replica (but the skipped ones) holds a lock: every cross-shard transaction is decided
    /// everywhere, so an audit sees no money in flight.
    public func waitUntilNoLocks(within limit: Duration, skipping: Set<ReplicaID> = []) async throws {
        let deadline = ContinuousClock.now + limit
        while await locksHeld(skipping: skipping) != 0 {
            guard ContinuousClock.now < deadline else {
                var held: [String] = []
                for cluster in clusters {
                    for replica in cluster.replicas where !skipping.contains(replica) {
                        let status = try? await cluster.status(of: replica)
                        held.append("\(replica): \(status.map { "\($0.locksHeld) locks" } ?? "unreachable")")
                    }
                }
                throw WaitTimedOut(description: "locks still held after \(limit) (\(held.joined(separator: ", ")))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

extension Coordinator.Answer {
    /// A cluster's final answer to a command, as the coordinator sees it: a failure after every retry means the
    /// cluster could not be reached with a quorum in time.
    init(_ outcome: CommandOutcome) {
        switch outcome {
        case .applied(let result): self = .applied(result)
        case .failed(.wrongShard(let account, let owner)): self = .wrongShard(account, owner: owner)
        case .failed: self = .unavailable
        }
    }
}

/// The shell of one `Coordinator`: performs its actions concurrently through the connection and feeds the answers
/// back until every action has been answered, then finishes the transaction (`LedgerConnection.finish`).
///
/// A commit is reported as soon as the home chose it, the commit point (DESIGN §5.2): the commit to the other
/// participant goes on after, in the background, holding the transfer's accounts in `reportedCommits` until it is answered,
/// so a later transfer of this client on them waits for it instead of finding them locked. A read of the other
/// participant's account meanwhile is linearizable still: the account is locked there until the commit is applied, and
/// a read of a locked account is answered `inDoubt` and asked again.
struct TransactionDriver {
    let connection: LedgerConnection
    let reportedCommits: ReportedCommits

    func run(_ start: Coordinator, accounts: [AccountID]) async -> TransferOutcome {
        await withCheckedContinuation { report in
            // Not a child task: the commit to the other participant outlives the caller's wait.
            Task {
                var coordinator = start
                var reported = false
                await withTaskGroup(of: (Coordinator.Action, Coordinator.Answer).self) { group in
                    func launch(_ actions: [Coordinator.Action]) {
                        for action in actions {
                            group.addTask {
                                switch action {
                                case .submit(let command, let cluster):
                                    return (action, await connection.submit(command, to: cluster))
                                case .askStatus(let id, let cluster):
                                    return (action, await connection.askStatus(id, of: cluster))
                                }
                            }
                        }
                    }
                    launch(coordinator.start())
                    while let (action, answer) = await group.next() {
                        launch(coordinator.receive(answer, for: action))
                        if !reported, coordinator.outcome == .committed, coordinator.phase != .done {
                            reported = true
                            reportedCommits.hold(accounts)
                            report.resume(returning: .committed)
                        }
                    }
                }
                connection.finish(coordinator.id)
                if reported {
                    reportedCommits.release(accounts)
                } else {
                    report.resume(
                        returning: coordinator.outcome ?? .unknown("the transaction ended without a decision"))
                }
            }
        }
    }
}

/// The accounts of cross-shard commits reported to their callers whose commit to the other participant is still under
/// way (`TransactionDriver`), and who waits for them.
final class ReportedCommits: Sendable {
    private let state = Mutex(State())

    private struct State {
        /// How many reported commits still under way hold each account.
        var held: [AccountID: Int] = [:]
        var underWay = 0
        var waiters: [(accounts: [AccountID], continuation: CheckedContinuation<Void, Never>)] = []
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    func hold(_ accounts: [AccountID]) {
        state.withLock { state in
            state.underWay += 1
            for account in accounts { state.held[account, default: 0] += 1 }
        }
    }

    func release(_ accounts: [AccountID]) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.underWay -= 1
            for account in accounts {
                state.held[account]! -= 1
                if state.held[account] == 0 { state.held[account] = nil }
            }
            var ready: [CheckedContinuation<Void, Never>] = []
            state.waiters.removeAll { waiter in
                guard waiter.accounts.allSatisfy({ state.held[$0] == nil }) else { return false }
                ready.append(waiter.continuation)
                return true
            }
            if state.underWay == 0 {
                ready += state.idleWaiters
                state.idleWaiters = []
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once no reported commit under way holds any of `accounts`.
    func wait(for accounts: [AccountID]) async {
        guard state.withLock({ state in accounts.contains { state.held[$0] != nil } }) else { return }
        await withCheckedContinuation { continuation in
            let free = state.withLock { state in
                guard accounts.contains(where: { state.held[$0] != nil }) else { return true }
                state.waiters.append((accounts, continuation))
                return false
            }
            if free { continuation.resume() }
        }
    }

    /// Returns once no reported commit is under way.
    func waitUntilNone() async {
        guard state.withLock({ $0.underWay > 0 }) else { return }
        await withCheckedContinuation { continuation in
            let idle = state.withLock { state in
                guard state.underWay > 0 else { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }
}
