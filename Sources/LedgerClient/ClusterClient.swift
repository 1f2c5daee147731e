import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerCore
import LedgerRPC
import Paxos
import Synchronization

/// A client of one cluster: a gRPC connection to each replica, and the retry rules of DESIGN §3: follow leader
/// hints, move on from a replica that does not answer, and retry an unknown outcome with the same transaction id
/// (applied at most once) until an answer or the deadline.
public struct ClusterClient: Sendable {
    /// A replica's address.
    public struct Address: Sendable, Hashable {
        public var replica: ReplicaID
        public var host: String
        public var port: Int

        public init(replica: ReplicaID, host: String, port: Int) {
            self.replica = replica
            self.host = host
            self.port = port
        }
    }

    public let cluster: String
    public let replicas: [ReplicaID]
    private let apis: [ReplicaID: Ledger_V1_Ledger.Client<HTTP2ClientTransport.Posix>]
    /// The batch streams to each replica, one per lane, opened when a batch first goes there.
    private let streams: [Lane: [ReplicaID: BatchStream<Ledger_V1_CommandBatchRequest, Ledger_V1_CommandBatchReply>]]
    /// The status question streams to each replica, opened when a question first goes there.
    private let statusStreams:
        [ReplicaID: BatchStream<Ledger_V1_TransactionStatusBatchRequest, Ledger_V1_TransactionStatusBatchReply>]
    /// The leader the cluster's replies named last, shared by every copy of this client: calls go there first, so a
    /// contact that is a follower forwards only the first one.
    private let leader: LearnedLeader

    init(cluster: String, replicas: [ReplicaID], apis: [ReplicaID: Ledger_V1_Ledger.Client<HTTP2ClientTransport.Posix>])
    {
        self.cluster = cluster
        self.replicas = replicas
        self.apis = apis
        streams = Dictionary(uniqueKeysWithValues: Lane.allCases.map { ($0, apis.mapValues(BatchStream.commands)) })
        statusStreams = apis.mapValues(BatchStream.statuses)
        self.leader = LearnedLeader()
    }

    /// Which batch stream to a replica a batch travels on. A replica answers a stream's batches in the order they
    /// came, and a batch once its slowest command is answered. A cross-shard decision (a commit or an abort) first
    /// asks another cluster (the home confirms what the other participant prepared; a participant learns the home's
    /// decision), then takes a consensus round of its own: on the stream of the transfers and prepares it would hold
    /// up every batch behind it, so decisions have a stream of their own.
    public enum Lane: Sendable, Hashable, CaseIterable {
        case commands
        case decisions

        /// The lane of `command`.
        public init(_ command: LedgerCommand) {
            switch command {
            case .commit, .abort: self = .decisions
            default: self = .commands
            }
        }
    }

    /// Ends the batch streams (before the connections close: a call still open holds them up).
    func closeStreams() {
        for stream in streams.values.flatMap(\.values) { stream.close() }
        for stream in statusStreams.values { stream.close() }
    }

    /// The leader learned from replies, where the next call goes first.
    public var knownLeader: ReplicaID? { leader.value }

    /// Forgets the leader learned from replies, so the next call starts at the contact it is given (a test set that
    /// names its contacts).
    public func forgetLeader() { leader.set(nil) }

    /// One call's time limit: a replica that does not answer in time is treated as unreachable.
    static let callTimeout = Duration.seconds(5)
    /// The pause before trying again after an unknown outcome or an unreachable replica.
    static let retryPause = Duration.milliseconds(50)

    /// Opens connections to every replica for the duration of `body`.
    public static func with<Result: Sendable>(
        cluster: String,
        addresses: [Address],
        security: ConnectionSecurity,
        _ body: (ClusterClient) async throws -> Result
    ) async throws -> Result {
        let connections = try ClusterConnections(cluster: cluster, addresses: addresses, security: security)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await connections.run() }
            defer { connections.shutdown() }
            return try await body(connections.client)
        }
    }

    private var options: CallOptions {
        var options = CallOptions.defaults
        options.timeout = Self.callTimeout
        return options
    }

    // MARK: - Commands

    /// Submits a command to the cluster, starting at `contact`, until it is applied or refused for good, or the
    /// deadline passes (then the last failure: `.timedOut` means the outcome is still unknown).
    /// `uncertain`: an earlier try of the command (a batch) may still take effect.
    public func submit(
        _ command: LedgerCommand, contact: ReplicaID, deadline: ContinuousClock.Instant, uncertain: Bool = false
    ) async -> CommandOutcome {
        // A cluster creates its own accounts and its replicas propose the decisions; no client may.
        if command.isReplicaOnly { return .applied(.refused("only replicas propose \(command.summary)")) }
        return await routeCommand(contact: contact, deadline: deadline, uncertain: uncertain) { api, options in
            switch command {
            case .transfer(let id, let from, let to, let amount):
                return try await api.transfer(
                    Ledger_V1_TransferRequest(cluster: cluster, transaction: id, from: from, to: to, amount: amount),
                    options: options)
            case .prepare(let id, let transfer):
                return try await api.prepare(
                    Ledger_V1_PrepareRequest(cluster: cluster, transaction: id, transfer), options: options)
            case .prepareMove(let id, let home, let participants, let part):
                var request = Ledger_V1_PrepareRequest()
                request.cluster = cluster
                request.prepareMove = Ledger_V1_PrepareMoveCommand(
                    transaction: id, home: home, participants: participants, part: part)
                return try await api.prepare(request, options: options)
            case .commit(let id):
                return try await api.commit(
                    Ledger_V1_CommitRequest(cluster: cluster, transaction: id), options: options)
            case .abort(let id):
                return try await api.abort(Ledger_V1_AbortRequest(cluster: cluster, transaction: id), options: options)
            case .createAccounts, .decideCommit, .follow, .delivered, .release:
                // A release goes only with a batch (`submitOnce`); the others are the replicas' own.
                return nil
            }
        }
    }

    /// What one try of a batch got: every command's answer, or a failed call (`uncertain`: it may have been delivered).
    public enum BatchTry: Sendable {
        case answered([CommandOutcome])
        case failed(uncertain: Bool)
    }

    /// One try of many commands as one batch on the `lane` stream to the leader learned from replies (else
    /// `contact`). No retry: the caller retries each command that did not get a final answer on its own, with
    /// `submit`.
    public func submitOnce(
        _ commands: [LedgerCommand], contact: ReplicaID, deadline: ContinuousClock.Instant, lane: Lane = .commands
    ) async -> BatchTry {
        let target = firstTarget(contact: contact)
        guard let stream = streams[lane]?[target] else { return .failed(uncertain: false) }
        let answer = await stream.send(
            Ledger_V1_CommandBatchRequest(cluster: cluster, commands: commands),
            deadline: min(deadline, ContinuousClock.now + Self.callTimeout))
        do {
            switch answer {
            case .reply(let reply):
                let outcomes = try CommandOutcome.batch(wire: reply, count: commands.count)
                if let hint = try? ReplicaID(wireName: reply.leaderHint) {
                    leader.set(hint)
                } else if outcomes.contains(where: { if case .applied = $0 { true } else { false } }) {
                    leader.set(target)
                }
                return .answered(outcomes)
            case .failed(let error as RPCError, _) where Self.isForbidden(error):
                return .answered(Array(repeating: .failed(.forbidden(error.message)), count: commands.count))
            case .failed(let error, let written):
                // A replica refuses a batch it did not take with `failedPrecondition` (disconnected, stopped).
                leader.forget(target)
                return .failed(uncertain: written && (error as? RPCError)?.code != .failedPrecondition)
            }
        } catch {
            // A reply that does not match the batch: the replica may have applied any of it.
            leader.forget(target)
            return .failed(uncertain: true)
        }
    }

    /// Whether the replica refused the caller itself (its certificate), which no retry changes.
    static func isForbidden(_ error: RPCError) -> Bool {
        error.code == .permissionDenied || error.code == .unauthenticated
    }

    /// The replica a call goes to first: the leader learned from replies, else `contact`.
    private func firstTarget(contact: ReplicaID) -> ReplicaID {
        leader.value.flatMap { apis[$0] == nil ? nil : $0 } ?? contact
    }

    /// Whether a new try, begun after the pause, could not be answered before `deadline` if it took as long as the
    /// one begun at `attemptStarted`.
    static func noTimeToRetry(since attemptStarted: ContinuousClock.Instant, deadline: ContinuousClock.Instant) -> Bool
    {
        let now = ContinuousClock.now
        return deadline - now < now - attemptStarted + retryPause
    }

    /// Asks this cluster, as the home of transaction `id`, for its decision. It answers through its log and chooses
    /// abort when it has none, so an answer is final: `.applied(.committed)` or `.applied(.aborted)`.
    public func decision(
        of id: TransactionID, asker: String, contact: ReplicaID, deadline: ContinuousClock.Instant
    ) async -> CommandOutcome {
        await routeCommand(contact: contact, deadline: deadline) { api, options in
            try await api.decision(
                Ledger_V1_DecisionRequest(cluster: cluster, transaction: id, asker: asker), options: options)
        }
    }

    /// Reads what became of transaction `id` at this cluster (`TransactionStatus`, which decides nothing). Committed,
    /// aborted and expired are final wherever read; prepared from a follower that names a leader is asked again
    /// there, and unknown that is not linearizable (a follower's, or a leader's that could not confirm it leads) at
    /// the leader or the next replica, until the deadline. The last answer, which may still be a follower's
    /// (`clusterReport` says); nil when no replica answered before the deadline.
    public func transactionStatus(
        of id: TransactionID, contact: ReplicaID, deadline: ContinuousClock.Instant
    ) async -> TransactionStatusAnswer? {
        let (answer, _) = await route(contact: contact, deadline: deadline) {
            api, options, _ -> TransactionStatusAnswer?? in
            .some(
                try TransactionStatusAnswer(
                    wire: try await api.transactionStatus(
                        Ledger_V1_TransactionStatusRequest(cluster: cluster, transaction: id), options: options)))
        } failure: { (answer: TransactionStatusAnswer?) -> RequestFailure? in
            answer.flatMap(Self.unsettled)
        } leaderHint: {
            $0?.leader
        } forbidden: { _ in
            nil
        }
        return answer ?? nil
    }

    /// Why a status answer does not settle what the cluster knows, or nil when it does. An undecided report from a
    /// follower may lag: ask the leader it names. An unknown one does not speak for the cluster unless linearizable:
    /// ask the leader, or with no hint the next replica.
    private static func unsettled(_ answer: TransactionStatusAnswer) -> RequestFailure? {
        switch answer.report {
        case .committed, .aborted, .expired: return nil
        case .prepared: return answer.leader.map { .notLeader(hint: $0) }
        case .unknown: return answer.linearizable ? nil : .notLeader(hint: answer.leader)
        }
    }

    /// What this cluster knows of each of `ids`, in order, asked on the replica's `TransactionStatusStream` (a
    /// replica's questions about the transactions it shares with this cluster). Not `linearizable`: what one replica
    /// applied, the learned leader's or the contact's, else the next replica's that answers (prepared and unknown may
    /// lag). `linearizable`: each as `transactionStatus` reads it, the whole batch asked again where any answer does
    /// not settle (the last answers may still include such). Nil when no replica answered before the deadline.
    public func transactionStatusBatch(
        of ids: [TransactionID], contact: ReplicaID, deadline: ContinuousClock.Instant, linearizable: Bool = false
    ) async -> [TransactionStatusAnswer]? {
        let request = Ledger_V1_TransactionStatusBatchRequest(
            cluster: cluster, transactions: ids, linearizable: linearizable)
        let (answer, _) = await route(contact: contact, deadline: deadline) {
            _, options, target -> [TransactionStatusAnswer]?? in
            guard let stream = statusStreams[target] else { return nil }
            switch await stream.send(request, deadline: .now + (options.timeout ?? Self.callTimeout)) {
            case .reply(let reply): return .some(try TransactionStatusAnswer.batch(wire: reply, count: ids.count))
            case .failed(let error, _): throw error
            }
        } failure: { (answers: [TransactionStatusAnswer]?) -> RequestFailure? in
            guard linearizable, let answers else { return nil }
            return answers.lazy.compactMap(Self.unsettled).first
        } leaderHint: {
            $0?.first?.leader
        } forbidden: { _ in
            nil
        }
        return answer ?? nil
    }

    /// The retry rules of every call that goes through the leader: follow leader hints, move on from a replica that
    /// does not answer, and retry an unknown outcome (same transaction id, so applied at most once) until an answer
    /// or the deadline. `call` returns the decoded answer (nil: this call cannot go to a cluster); `failure` says
    /// why an answer is not final, or nil when it is. Returns the last answer (nil: none, or `call` refused), and
    /// whether an earlier try may still take effect: one that timed out after it was proposed, or a call that failed
    /// after it may have reached a replica. Then a later "not applied" answer (no quorum, busy, not leader) speaks
    /// only for the later try, and the command's fate is unknown.
    private func route<Answer>(
        contact: ReplicaID, deadline: ContinuousClock.Instant,
        _ call: (Ledger_V1_Ledger.Client<HTTP2ClientTransport.Posix>, CallOptions, ReplicaID) async throws -> Answer?,
        failure: (Answer) -> RequestFailure?, leaderHint: (Answer) -> ReplicaID? = { _ in nil },
        forbidden: (String) -> Answer
    ) async -> (answer: Answer?, uncertain: Bool) {
        var target = firstTarget(contact: contact)
        var last: Answer?
        var uncertain = false
        while ContinuousClock.now < deadline {
            guard let api = apis[target] else { return (nil, uncertain) }
            var options = self.options
            options.timeout = min(Self.callTimeout, max(.milliseconds(10), deadline - ContinuousClock.now))
            let attemptStarted = ContinuousClock.now
            let answer: Answer
            do {
                guard let decoded = try await call(api, options, target) else { return (nil, uncertain) }
                answer = decoded
            } catch let error as RPCError where Self.isForbidden(error) {
                // Every replica of the cluster would refuse this caller the same way.
                return (forbidden(error.message), uncertain)
            } catch {
                // Unreachable, disconnected or malformed: try the next replica. Only a call the replica refused
                // before taking it (disconnected, stopped, another cluster: `failedPrecondition`) surely did
                // nothing; a broken connection may have delivered it first.
                if (error as? RPCError)?.code != .failedPrecondition { uncertain = true }
                leader.forget(target)
                target = next(after: target)
                try? await Task.sleep(for: Self.retryPause)
                continue
            }
            last = answer
            switch failure(answer) {
            case .forbidden, .membershipRefused:
                // Asking again gets the same answer.
                return (answer, uncertain)
            case nil, .wrongShard:
                // The replica that answered leads, unless it named another.
                leader.set(leaderHint(answer) ?? target)
                return (answer, uncertain)
            case .notLeader(let hint):
                // A leader this client has no address for (added to the cluster since it started) is reached through
                // the others, which forward commands.
                let known = hint.flatMap { apis[$0] == nil ? nil : $0 }
                leader.set(known)
                target = known ?? next(after: target)
                // A hint may be stale (that replica lost leadership or is disconnected): pause before looping.
                if known == nil { try? await Task.sleep(for: Self.retryPause) }
            case .timedOut:
                uncertain = true
                try? await Task.sleep(for: Self.retryPause)
            case .noQuorum, .busy, .inDoubt:
                // A retry the replica could not answer before the deadline would leave the request waiting there,
                // to be applied perhaps later: stop with this sure answer instead.
                if Self.noTimeToRetry(since: attemptStarted, deadline: deadline) { return (answer, uncertain) }
                try? await Task.sleep(for: Self.retryPause)
            }
        }
        return (last, uncertain)
    }

    /// `route` for the calls answered with a `CommandReply`.
    private func routeCommand(
        contact: ReplicaID, deadline: ContinuousClock.Instant, uncertain: Bool = false,
        _ call: (Ledger_V1_Ledger.Client<HTTP2ClientTransport.Posix>, CallOptions) async throws ->
            Ledger_V1_CommandReply?
    ) async -> CommandOutcome {
        let (answer, uncertainAfter) = await route(contact: contact, deadline: deadline) { api, options, _ in
            try await call(api, options).map { reply in
                (
                    outcome: try CommandOutcome(wire: reply),
                    // A hint that does not parse is only a hint: ignored.
                    leader: try? ReplicaID(wireName: reply.result.leaderHint)
                )
            }
        } failure: { answer in
            if case .failed(let failure) = answer.outcome { return failure }
            return nil
        } leaderHint: {
            $0.leader
        } forbidden: {
            (outcome: .failed(.forbidden($0)), leader: nil)
        }
        let outcome = answer?.outcome
        switch outcome {
        case .applied?, .failed(.wrongShard)?, .failed(.timedOut)?, .failed(.forbidden)?: return outcome!
        case .failed?, nil: return .failed(uncertain || uncertainAfter ? .timedOut : .noQuorum)
        }
    }

    /// A transfer between two accounts of this cluster.
    public func transfer(
        _ id: TransactionID, from: AccountID, to: AccountID, amount: Amount, contact: ReplicaID,
        deadline: ContinuousClock.Instant
    ) async -> CommandOutcome {
        await submit(.transfer(id, from: from, to: to, amount: amount), contact: contact, deadline: deadline)
    }

    /// The committed balance of an account, read linearizably through the leader.
    public func balance(of account: AccountID, contact: ReplicaID, deadline: ContinuousClock.Instant) async -> Result<
        Int64, RequestFailure
    > {
        let (outcome, _) = await route(contact: contact, deadline: deadline) {
            api, options, _ in
            try Result(
                wire: try await api.balance(
                    Ledger_V1_BalanceRequest(cluster: cluster, account: account), options: options))
        } failure: { answer in
            if case .failure(let failure) = answer { return failure }
            return nil
        } forbidden: {
            .failure(.forbidden($0))
        }
        switch outcome {
        // Every replica tried until the deadline, none leading with a live majority (or none answering): the
        // cluster has no quorum for the read, whatever the last replica said of itself. A read changes nothing, so
        // a timeout leaves nothing unknown either.
        case .failure(.notLeader)?, .failure(.timedOut)?, nil: return .failure(.noQuorum)
        case let outcome?: return outcome
        }
    }

    // MARK: - Membership

    /// Asks the cluster's leader for one membership change (operators only), following leader hints until an answer
    /// or the deadline. Nil when no replica answered.
    public func changeMembership(
        _ change: MembershipChange, contact: ReplicaID, deadline: ContinuousClock.Instant
    ) async -> MembershipChangeOutcome? {
        let request = Ledger_V1_ChangeMembershipRequest(cluster: cluster, change: change)
        let (answer, _) = await route(contact: contact, deadline: deadline) { api, options, _ in
            try MembershipChangeOutcome(wire: try await api.changeMembership(request, options: options))
        } failure: { answer in
            if case .failed(let failure) = answer.outcome { return failure }
            return nil
        } forbidden: {
            MembershipChangeOutcome(outcome: .failed(.forbidden($0)), membership: nil, slot: nil)
        }
        return answer
    }

    // MARK: - One replica's view

    public func status(of replica: ReplicaID) async throws -> ReplicaStatus {
        let reply = try await api(replica).status(
            {
                var request = Ledger_V1_StatusRequest(); request.cluster = cluster; return request
            }(), options: options)
        return try ReplicaStatus(wire: reply)
    }

    public func localBalance(of account: AccountID, at replica: ReplicaID) async throws -> LocalBalance {
        var request = Ledger_V1_LocalBalanceRequest()
        request.cluster = cluster
        request.replica = replica.description
        request.account = account.value
        return try LocalBalance(wire: try await api(replica).localBalance(request, options: options))
    }

    /// Every datastore record of a replica, page by page.
    public func datastore(of replica: ReplicaID) async throws -> [DatastoreRecord] {
        try await allPages { first in
            var request = Ledger_V1_DatastoreRequest()
            request.cluster = cluster
            request.replica = replica.description
            request.start = first
            return try RecordPage(wire: try await api(replica).datastore(request, options: options))
        }
    }

    /// Every WAL record of a replica, page by page.
    public func logs(of replica: ReplicaID) async throws -> [WALRecord] {
        try await allPages { first in
            var request = Ledger_V1_LogsRequest()
            request.cluster = cluster
            request.replica = replica.description
            request.start = first
            return try RecordPage(wire: try await api(replica).logs(request, options: options))
        }
    }

    /// The records of every page, fetching from record 0 until a page says there is no next one.
    private func allPages<Record>(_ page: (UInt64) async throws -> RecordPage<Record>) async throws -> [Record] {
        var records: [Record] = []
        var start: UInt64? = 0
        while let first = start {
            let next = try await page(first)
            records += next.records
            start = next.nextStart
        }
        return records
    }

    /// The test control: disconnect or reconnect a replica.
    public func setConnected(_ connected: Bool, replica: ReplicaID) async throws {
        var request = Ledger_V1_SetConnectivityRequest()
        request.cluster = cluster
        request.replica = replica.description
        request.connected = connected
        _ = try await api(replica).setConnectivity(request, options: options)
    }

    /// The test control: replaces the faults on `replica`'s peer links (an empty list heals them); returns how many
    /// links (peer and direction) are faulty now.
    @discardableResult
    public func setLinkFaults(_ faults: [LinkFault], replica: ReplicaID) async throws -> Int {
        var request = Ledger_V1_SetLinkFaultsRequest()
        request.cluster = cluster
        request.replica = replica.description
        request.faults = faults.map(Ledger_V1_LinkFault.init)
        return Int(try await api(replica).setLinkFaults(request, options: options).faultyLinks)
    }

    private func api(_ replica: ReplicaID) throws -> Ledger_V1_Ledger.Client<HTTP2ClientTransport.Posix> {
        guard let api = apis[replica] else {
            throw RPCError(code: .invalidArgument, message: "\(replica) is not a replica of \(cluster)")
        }
        return api
    }

    private func next(after replica: ReplicaID) -> ReplicaID {
        let index = replicas.firstIndex(of: replica).map { ($0 + 1) % replicas.count } ?? 0
        return replicas[index]
    }
}

/// Long-lived connections to one cluster's replicas, for a process that talks to the cluster until it stops (a
/// replica asking a home cluster for decisions, a client of several clusters). `run` keeps the connections up
/// (reconnecting with backoff) until `shutdown`.
public final class ClusterConnections: Sendable {
    public let client: ClusterClient
    private let grpcs: [GRPCClient<HTTP2ClientTransport.Posix>]

    public init(cluster: String, addresses: [ClusterClient.Address], security: ConnectionSecurity) throws {
        var grpcs: [ReplicaID: GRPCClient<HTTP2ClientTransport.Posix>] = [:]
        for address in addresses {
            grpcs[address.replica] = GRPCClient(
                transport: try .http2NIOPosix(
                    target: .ipv4(
                        address: address.host == "localhost" ? "127.0.0.1" : address.host, port: address.port),
                    transportSecurity: security.client,
                    config: .defaults {
                        $0.backoff = .init(
                            initial: .milliseconds(20), max: .milliseconds(500), multiplier: 2, jitter: 0.2)
                        // A write is a whole batch already (`CommandBatcher`): holding its flush only delays it.
                        $0.connection.flushCoalescing = nil
                        $0.channelDebuggingCallbacks.onCreateTCPConnection = DeadPaths.bound
                    }))
        }
        self.grpcs = Array(grpcs.values)
        client = ClusterClient(
            cluster: cluster, replicas: addresses.map(\.replica).sorted(),
            apis: grpcs.mapValues { Ledger_V1_Ledger.Client(wrapping: $0) })
    }

    /// Runs the connections until `shutdown` is called.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for grpc in grpcs { group.addTask { try await grpc.runConnections() } }
            try await group.waitForAll()
        }
    }

    public func shutdown() {
        client.closeStreams()
        for grpc in grpcs { grpc.beginGracefulShutdown() }
    }
}

/// The leader a cluster's replies named last (nil: none known).
final class LearnedLeader: Sendable {
    private let state = Mutex<ReplicaID?>(nil)

    var value: ReplicaID? { state.withLock { $0 } }

    func set(_ leader: ReplicaID?) { state.withLock { $0 = leader } }

    /// Forgets `replica` if it is the leader remembered (it did not answer).
    func forget(_ replica: ReplicaID) {
        state.withLock { if $0 == replica { $0 = nil } }
    }
}
