import GRPCCore
import LedgerCore
import LedgerRPC
import LedgerStore
import Logging
import Paxos
import ServiceLifecycle

/// The client API of one replica (`ledger.v1.Ledger`, through its node's `LedgerService`): commands go through the
/// replica's Paxos log; the inspection calls answer from this replica's own state.
struct ReplicaEndpoint: Sendable {
    let node: ReplicaNode
    let catalog: Catalog
    let testControlsEnabled: Bool
    let linkFaults: LinkFaultLayer
    let logger: Logger

    var cluster: String { node.cluster }

    func transfer(request: Ledger_V1_TransferRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        let command = try decoded { () throws(WireError) in try LedgerCommand(wire: request) }
        return try await reply(submit(command))
    }

    func balance(request: Ledger_V1_BalanceRequest, context: ServerContext) async throws -> Ledger_V1_BalanceReply {
        let account = try decoded { () throws(WireError) in try AccountID(wire: request.account) }
        var answer = try await available { () throws(ReplicaUnavailable) in try await node.read(account) }
        if case .failure(.wrongShard(let account, nil)) = answer {
            answer = .failure(.wrongShard(account, owner: catalogOwner(of: account)))
        }
        return Ledger_V1_BalanceReply(answer)
    }

    func prepare(request: Ledger_V1_PrepareRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        let command = try decoded { () throws(WireError) in try LedgerCommand(wire: request) }
        return try await reply(submit(command))
    }

    func commit(request: Ledger_V1_CommitRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        let command = try decoded { () throws(WireError) in try LedgerCommand(wire: request) }
        return try await reply(submit(command))
    }

    func abort(request: Ledger_V1_AbortRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        let command = try decoded { () throws(WireError) in try LedgerCommand(wire: request) }
        return try await reply(submit(command))
    }

    /// A participant resolving doubt asks the home cluster to decide. The home cluster answers through its log: it
    /// proposes an abort, which is refused if the transaction committed first. So a decision, once given, is final,
    /// and a transaction without one is aborted (DESIGN §5.3). Replicas only (`AccessPolicy`).
    func decision(request: Ledger_V1_DecisionRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        let id = try decoded { () throws(WireError) in try TransactionID(wire: request) }
        let caller: Logger.MetadataValue =
            switch AccessControl.identity(of: context) {
            case .success(let identity): "\(identity)"
            case .failure: "no certificate"
            }
        logger.notice(
            "asked to decide a transaction in doubt",
            metadata: ["transaction": "\(id)", "asker": "\(request.asker)", "caller": caller])
        let outcome = try await submit(.abort(id))
        switch outcome {
        case .applied(.refused):
            // The only abort the ledger refuses is one of a committed transaction.
            return await reply(.applied(.committed))
        case .applied(.expired):
            // Forgotten here, so not a commit still owed to a participant (those stay until delivered): a participant
            // still in doubt was never told commit, and abort is the decision.
            return await reply(.applied(.aborted(.aborted)))
        default:
            return await reply(outcome)
        }
    }

    /// What this replica's applied state knows of a transaction; decides nothing.
    func transactionStatus(request: Ledger_V1_TransactionStatusRequest, context: ServerContext) async throws
        -> Ledger_V1_TransactionStatusReply
    {
        try checkReplica(request.replica)
        let id = try decoded { () throws(WireError) in try TransactionID(wire: request) }
        return Ledger_V1_TransactionStatusReply(await node.transactionStatuses(of: [id])[0])
    }

    /// What this replica knows of many transactions: linearizable as `TransactionStatus`, or as its applied state has
    /// it (no read index); decides nothing.
    func transactionStatusBatch(request: Ledger_V1_TransactionStatusBatchRequest, context: ServerContext) async throws
        -> Ledger_V1_TransactionStatusBatchReply
    {
        try checkReplica(request.replica)
        let ids = try decoded { () throws(WireError) in try TransactionID.batch(wire: request) }
        return Ledger_V1_TransactionStatusBatchReply(
            await node.transactionStatuses(of: ids, linearizable: request.linearizable))
    }

    /// Many commands in one call, each answered as its own call would be: they reach the log together (one `Ready`,
    /// one slot when this replica leads) and are answered in order. A replica that refuses calls (disconnected,
    /// stopped) refuses the whole batch.
    func submitBatch(request: Ledger_V1_CommandBatchRequest, context: ServerContext) async throws
        -> Ledger_V1_CommandBatchReply
    {
        try await answer(request)
    }

    func answer(_ request: Ledger_V1_CommandBatchRequest) async throws -> Ledger_V1_CommandBatchReply {
        let commands = try decoded { () throws(WireError) in try LedgerCommand.batch(wire: request) }
        // A cluster creates its own accounts and its replicas propose the decisions of cross-shard transactions; no
        // client may propose either.
        var outcomes = commands.map { CommandOutcome.applied(.refused("only replicas propose \($0.summary)")) }
        let proposed = commands.indices.filter { !commands[$0].isReplicaOnly }
        let answers = try await available { () throws(ReplicaUnavailable) in
            try await node.submit(batch: proposed.map { commands[$0] })
        }
        for (index, answer) in zip(proposed, answers) { outcomes[index] = routed(answer) }
        return Ledger_V1_CommandBatchReply(outcomes, leader: await node.otherLeader)
    }

    func localBalance(request: Ledger_V1_LocalBalanceRequest, context: ServerContext) async throws
        -> Ledger_V1_LocalBalanceReply
    {
        try checkReplica(request.replica)
        let account = try decoded { () throws(WireError) in try AccountID(wire: request.account) }
        return Ledger_V1_LocalBalanceReply(await node.localBalance(of: account))
    }

    func logs(request: Ledger_V1_LogsRequest, context: ServerContext) async throws -> Ledger_V1_LogsReply {
        try checkReplica(request.replica)
        let records = try await stored { () throws(StoreError) in try await node.walRecords() }
        return Ledger_V1_LogsReply(page(records, start: request.start, limit: request.limit))
    }

    func datastore(request: Ledger_V1_DatastoreRequest, context: ServerContext) async throws
        -> Ledger_V1_DatastoreReply
    {
        try checkReplica(request.replica)
        let records = try await stored { () throws(StoreError) in try await node.datastoreRecords() }
        return Ledger_V1_DatastoreReply(page(records, start: request.start, limit: request.limit))
    }

    func status(request: Ledger_V1_StatusRequest, context: ServerContext) async throws -> Ledger_V1_StatusReply {
        try checkReplica(request.replica)
        return Ledger_V1_StatusReply(await node.status())
    }

    /// One membership change, made by the leader through its log (operators only: `AccessPolicy`).
    func changeMembership(request: Ledger_V1_ChangeMembershipRequest, context: ServerContext) async throws
        -> Ledger_V1_ChangeMembershipReply
    {
        let change = try decoded { () throws(WireError) in try MembershipChange(wire: request) }
        let answer = try await available { () throws(ReplicaUnavailable) in try await node.changeMembership(change) }
        return Ledger_V1_ChangeMembershipReply(answer)
    }

    func setConnectivity(request: Ledger_V1_SetConnectivityRequest, context: ServerContext) async throws
        -> Ledger_V1_SetConnectivityReply
    {
        try checkReplica(request.replica)
        try checkTestControls()
        await node.setConnected(request.connected)
        var reply = Ledger_V1_SetConnectivityReply()
        reply.connected = await node.isConnected
        return reply
    }

    func setLinkFaults(request: Ledger_V1_SetLinkFaultsRequest, context: ServerContext) async throws
        -> Ledger_V1_SetLinkFaultsReply
    {
        try checkReplica(request.replica)
        try checkTestControls()
        let faults = try decoded { () throws(WireError) in
            try LinkFault.list(wire: request, members: linkFaults.peers.count + 1)
        }
        let faulty = try decoded { () throws(WireError) in try linkFaults.set(faults) }
        logger.notice(
            faults.isEmpty
                ? "link faults healed by test control"
                : "link faults set by test control: \(faults.map(\.description).joined(separator: "; "))")
        var reply = Ledger_V1_SetLinkFaultsReply()
        reply.faultyLinks = UInt32(faulty)
        return reply
    }

    // MARK: - Helpers

    /// The reply to a command, naming the leader when this replica is not it: the client sends there next, sparing
    /// this replica the forwarding and the request a hop.
    private func reply(_ outcome: CommandOutcome) async -> Ledger_V1_CommandReply {
        var reply = Ledger_V1_CommandReply(outcome)
        if reply.result.leaderHint.isEmpty, let leader = await node.otherLeader {
            reply.result.leaderHint = leader.description
        }
        return reply
    }

    private func submit(_ command: LedgerCommand) async throws -> CommandOutcome {
        routed(try await available { () throws(ReplicaUnavailable) in try await node.submit(command) })
    }

    /// Every command goes through the log, misrouted ones too: which accounts a cluster holds changes with moves, and
    /// only the log says it right (a lagging replica would not), after the transaction id was checked for a recorded
    /// result. The ledger's "not here" answers become `wrongShard`, whichever call asked: with the owner where the
    /// account moved, or else the owner in the catalog this replica started with (none when no cluster holds it).
    private func routed(_ outcome: CommandOutcome) -> CommandOutcome {
        switch outcome {
        case .applied(.aborted(.moved(let account, let owner))):
            return .failed(.wrongShard(account, owner: owner))
        case .applied(.aborted(.unknownAccount(let account))):
            return .failed(.wrongShard(account, owner: catalogOwner(of: account)))
        default:
            return outcome
        }
    }

    /// The owner of `account` in this replica's catalog, when that is another cluster.
    private func catalogOwner(of account: AccountID) -> String? {
        catalog.cluster(of: account).flatMap { $0 == cluster ? nil : $0 }
    }

    private func checkTestControls() throws {
        guard testControlsEnabled else {
            throw RPCError(
                code: .permissionDenied,
                message: "test controls are off for \(cluster); set test_controls: true in its config to use them")
        }
    }

    /// The node's `LedgerService` routed the request by its cluster; a request that names a replica must name this one.
    private func checkReplica(_ replica: String) throws {
        guard replica.isEmpty || replica == node.me.description else {
            throw RPCError(
                code: .failedPrecondition, message: "this is replica \(node.me); the request is for \(replica)")
        }
    }

    private func decoded<Value>(_ body: () throws(WireError) -> Value) throws -> Value {
        do {
            return try body()
        } catch {
            logger.warning("malformed request refused: \(error)")
            throw RPCError(error)
        }
    }

    private func available<Value>(_ body: () async throws(ReplicaUnavailable) -> Value) async throws -> Value {
        do {
            return try await body()
        } catch {
            // Refused before it was taken (disconnected, stopped): the caller knows nothing was done.
            throw RPCError(code: .failedPrecondition, message: error.description)
        }
    }

    private func stored<Value>(_ body: () async throws(StoreError) -> Value) async throws -> Value {
        do {
            return try await body()
        } catch {
            throw RPCError(code: .internalError, message: "\(error)")
        }
    }

    private func page<Record: Hashable & Sendable>(_ records: [Record], start: UInt64, limit: UInt32) -> RecordPage<
        Record
    > {
        let size = Int(
            limit == 0 ? UInt32(WireLimits.recordsPerPageMax) : min(limit, UInt32(WireLimits.recordsPerPageMax)))
        let first = Int(min(start, UInt64(records.count)))
        let end = min(records.count, first + size)
        return RecordPage(
            replica: node.me, records: Array(records[first..<end]), nextStart: end < records.count ? UInt64(end) : nil)
    }
}

/// The client API of a node (`ledger.v1.Ledger`): every request names its cluster and goes to the replica of that
/// cluster the node hosts.
struct LedgerService: Ledger_V1_Ledger.SimpleServiceProtocol {
    /// The hosted replicas' endpoints by cluster.
    let endpoints: [String: ReplicaEndpoint]

    init(endpoints: [ReplicaEndpoint]) {
        self.endpoints = Dictionary(uniqueKeysWithValues: endpoints.map { ($0.cluster, $0) })
    }

    /// The service of a node hosting only `node`.
    init(node: ReplicaNode, catalog: Catalog, testControlsEnabled: Bool, linkFaults: LinkFaultLayer, logger: Logger) {
        self.init(endpoints: [
            ReplicaEndpoint(
                node: node, catalog: catalog, testControlsEnabled: testControlsEnabled, linkFaults: linkFaults,
                logger: logger)
        ])
    }

    /// The endpoint of `cluster`'s replica; a cluster not hosted here is refused with the replicas that are.
    private func endpoint(_ cluster: String) throws -> ReplicaEndpoint {
        if let endpoint = endpoints[cluster] { return endpoint }
        let hosted = endpoints.values.map { "\($0.node.me) of \($0.cluster)" }.sorted().joined(separator: ", ")
        throw RPCError(
            code: .failedPrecondition, message: "this node hosts \(hosted); the request is for cluster \(cluster)")
    }

    func transfer(request: Ledger_V1_TransferRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        try await endpoint(request.cluster).transfer(request: request, context: context)
    }

    func balance(request: Ledger_V1_BalanceRequest, context: ServerContext) async throws -> Ledger_V1_BalanceReply {
        try await endpoint(request.cluster).balance(request: request, context: context)
    }

    func prepare(request: Ledger_V1_PrepareRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        try await endpoint(request.cluster).prepare(request: request, context: context)
    }

    func commit(request: Ledger_V1_CommitRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        try await endpoint(request.cluster).commit(request: request, context: context)
    }

    func abort(request: Ledger_V1_AbortRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        try await endpoint(request.cluster).abort(request: request, context: context)
    }

    func decision(request: Ledger_V1_DecisionRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        try await endpoint(request.cluster).decision(request: request, context: context)
    }

    func changeMembership(request: Ledger_V1_ChangeMembershipRequest, context: ServerContext) async throws
        -> Ledger_V1_ChangeMembershipReply
    {
        try await endpoint(request.cluster).changeMembership(request: request, context: context)
    }

    func transactionStatus(request: Ledger_V1_TransactionStatusRequest, context: ServerContext) async throws
        -> Ledger_V1_TransactionStatusReply
    {
        try await endpoint(request.cluster).transactionStatus(request: request, context: context)
    }

    func transactionStatusBatch(request: Ledger_V1_TransactionStatusBatchRequest, context: ServerContext) async throws
        -> Ledger_V1_TransactionStatusBatchReply
    {
        try await endpoint(request.cluster).transactionStatusBatch(request: request, context: context)
    }

    func submitBatch(request: Ledger_V1_CommandBatchRequest, context: ServerContext) async throws
        -> Ledger_V1_CommandBatchReply
    {
        try await endpoint(request.cluster).submitBatch(request: request, context: context)
    }

    func localBalance(request: Ledger_V1_LocalBalanceRequest, context: ServerContext) async throws
        -> Ledger_V1_LocalBalanceReply
    {
        try await endpoint(request.cluster).localBalance(request: request, context: context)
    }

    func logs(request: Ledger_V1_LogsRequest, context: ServerContext) async throws -> Ledger_V1_LogsReply {
        try await endpoint(request.cluster).logs(request: request, context: context)
    }

    func datastore(request: Ledger_V1_DatastoreRequest, context: ServerContext) async throws -> Ledger_V1_DatastoreReply
    {
        try await endpoint(request.cluster).datastore(request: request, context: context)
    }

    func status(request: Ledger_V1_StatusRequest, context: ServerContext) async throws -> Ledger_V1_StatusReply {
        try await endpoint(request.cluster).status(request: request, context: context)
    }

    func setConnectivity(request: Ledger_V1_SetConnectivityRequest, context: ServerContext) async throws
        -> Ledger_V1_SetConnectivityReply
    {
        try await endpoint(request.cluster).setConnectivity(request: request, context: context)
    }

    func setLinkFaults(request: Ledger_V1_SetLinkFaultsRequest, context: ServerContext) async throws
        -> Ledger_V1_SetLinkFaultsReply
    {
        try await endpoint(request.cluster).setLinkFaults(request: request, context: context)
    }

    /// `submitBatch` for each batch of a long-lived stream. Batches are taken as they come, each as soon as it is read
    /// (a client may send the next before the last is answered), and answered in the order they came. A batch refused
    /// as a whole ends the stream with its error; the batches taken before it still go through the log.
    func submitStream(
        request: RPCAsyncSequence<Ledger_V1_CommandBatchRequest, any Error>,
        response: RPCWriter<Ledger_V1_CommandBatchReply>,
        context: ServerContext
    ) async throws {
        try await answerInOrder(request, response) { batch in try await endpoint(batch.cluster).answer(batch) }
    }

    func transactionStatusStream(
        request: RPCAsyncSequence<Ledger_V1_TransactionStatusBatchRequest, any Error>,
        response: RPCWriter<Ledger_V1_TransactionStatusBatchReply>,
        context: ServerContext
    ) async throws {
        try await answerInOrder(request, response) { batch in
            try await endpoint(batch.cluster).transactionStatusBatch(request: batch, context: context)
        }
    }

    /// Answers a stream's requests in the order they came, each taken at once (a request does not wait for the one
    /// before it to be answered). The first error ends the stream.
    private func answerInOrder<Request: Sendable, Reply: Sendable>(
        _ requests: RPCAsyncSequence<Request, any Error>, _ replies: RPCWriter<Reply>,
        _ answer: @escaping @Sendable (Request) async throws -> Reply
    ) async throws {
        let (answers, pending) = AsyncStream.makeStream(of: Task<Reply, any Error>.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { pending.finish() }
                // A stopping replica takes no more requests but still writes the answers under way, then ends the
                // call; the client fails the requests it wrote after and sends them again elsewhere.
                try await untilShutdown(stopped: ()) {
                    for try await request in requests { pending.yield(Task { try await answer(request) }) }
                }
            }
            group.addTask {
                for await answer in answers { try await replies.write(try await answer.value) }
            }
            // The first error ends the stream: leaving the group by throwing cancels the other side.
            while try await group.next() != nil {}
        }
    }
}

/// The replica-to-replica API of a node (`ledger.v1.Peer`): each other node streams its replicas' messages here in
/// batches, each naming its cluster, sender and receiver.
struct PeerService: Ledger_V1_Peer.SimpleServiceProtocol {
    let inbox: PeerInbox

    /// The service of a node hosting only `node`; with `authenticatesSenders`, a batch must come from the replica
    /// the caller's certificate names.
    init(
        node: ReplicaNode, members: [ReplicaID], linkFaults: LinkFaultLayer, authenticatesSenders: Bool, logger: Logger
    ) {
        let sameReplica: @Sendable (String, String) -> Bool = { replica, identity in replica == identity }
        let cluster = node.cluster
        self.init(
            inbox: PeerInbox(
                replicas: [PeerInbox.Hosted(node: node, linkFaults: linkFaults)],
                isMember: { replica, named in named == cluster && members.contains(replica) },
                speaks: authenticatesSenders ? sameReplica : nil, logger: logger))
    }

    init(inbox: PeerInbox) {
        self.inbox = inbox
    }

    func stream(
        request: RPCAsyncSequence<Ledger_V1_PeerBatch, any Error>,
        context: ServerContext
    ) async throws -> Ledger_V1_PeerStreamSummary {
        var sender: String?
        if inbox.speaks != nil {
            switch AccessControl.identity(of: context) {
            case .success(let identity): sender = identity.name
            case .failure(let refusal): throw AccessControl.refuse(refusal, context: context, logger: inbox.logger)
            }
        }
        // A stopping node ends the stream; the peer opens it again when this node is back.
        return try await untilShutdown(stopped: Ledger_V1_PeerStreamSummary()) { [sender] in
            try await receive(request, sender: sender, context: context)
        }
    }

    private func receive(
        _ request: RPCAsyncSequence<Ledger_V1_PeerBatch, any Error>, sender: String?, context: ServerContext
    ) async throws -> Ledger_V1_PeerStreamSummary {
        var summary = Ledger_V1_PeerStreamSummary()
        for try await wire in request {
            let batch: PeerBatch
            do {
                batch = try PeerBatch(wire: wire)
            } catch {
                inbox.logger.warning("malformed peer batch refused: \(error)")
                throw RPCError(error)
            }
            switch inbox.refusal(of: batch, sender: sender) {
            case .misaddressed(let reason)?:
                inbox.logger.warning("\(reason)")
                throw RPCError(code: .failedPrecondition, message: reason)
            case .impersonation(let refusal)?:
                throw AccessControl.refuse(refusal, context: context, logger: inbox.logger)
            case nil:
                break
            }
            let (node, messages) = inbox.pass(batch)
            if !messages.isEmpty {
                for rejection in await node.receive(messages, from: batch.from) {
                    inbox.logger.warning("\(rejection)")
                }
            }
            summary.batches += 1
            summary.messages += UInt64(batch.messages.count)
        }
        return summary
    }
}

/// Runs `operation`, which reads a long-lived call's messages, until it returns or the server begins to stop (the
/// replica's graceful shutdown): then it is cancelled and the call ends with `stopped`. A call that outlived the
/// shutdown would hold the replica up until its supervisor killed it.
func untilShutdown<Value: Sendable>(
    stopped: Value, _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    do {
        return try await cancelWhenGracefulShutdown(operation)
    } catch {
        if Task.isShuttingDownGracefully { return stopped }
        throw error
    }
}
