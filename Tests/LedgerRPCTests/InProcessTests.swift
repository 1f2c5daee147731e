import GRPCCore
import GRPCInProcessTransport
import LedgerCore
import LedgerRPC
import Paxos
import Testing

/// A `Ledger` service that answers only `Status`, as replica S5 of cluster C2; every other call is unimplemented.
struct StatusOnlyLedger: Ledger_V1_Ledger.SimpleServiceProtocol {
    static let status = ReplicaStatus(
        cluster: "C2", replica: ReplicaID(5), role: .leader, ballot: Ballot(round: 4, replica: ReplicaID(5)),
        leader: ReplicaID(5), chosenThrough: 120, appliedThrough: 118, locksHeld: 3, snapshotSlot: 100,
        isDisconnected: false, accountsHeld: 40, waitingOn: ["C1", "C3"])

    func status(request: Ledger_V1_StatusRequest, context: ServerContext) async throws -> Ledger_V1_StatusReply {
        let me = StatusOnlyLedger.status
        guard request.cluster == me.cluster, request.replica.isEmpty || request.replica == me.replica.description
        else {
            throw RPCError(
                code: .failedPrecondition,
                message:
                    "this is \(me.replica) of \(me.cluster); the call is for \(request.replica) of \(request.cluster)")
        }
        return Ledger_V1_StatusReply(me)
    }

    func transfer(request: Ledger_V1_TransferRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        throw Self.unimplemented
    }

    func balance(request: Ledger_V1_BalanceRequest, context: ServerContext) async throws -> Ledger_V1_BalanceReply {
        throw Self.unimplemented
    }

    func prepare(request: Ledger_V1_PrepareRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        throw Self.unimplemented
    }

    func commit(request: Ledger_V1_CommitRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        throw Self.unimplemented
    }

    func abort(request: Ledger_V1_AbortRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        throw Self.unimplemented
    }

    func decision(request: Ledger_V1_DecisionRequest, context: ServerContext) async throws -> Ledger_V1_CommandReply {
        throw Self.unimplemented
    }

    func transactionStatus(request: Ledger_V1_TransactionStatusRequest, context: ServerContext) async throws
        -> Ledger_V1_TransactionStatusReply
    {
        throw Self.unimplemented
    }

    func transactionStatusBatch(request: Ledger_V1_TransactionStatusBatchRequest, context: ServerContext) async throws
        -> Ledger_V1_TransactionStatusBatchReply
    {
        throw Self.unimplemented
    }

    func submitBatch(request: Ledger_V1_CommandBatchRequest, context: ServerContext) async throws
        -> Ledger_V1_CommandBatchReply
    {
        throw Self.unimplemented
    }

    func submitStream(
        request: RPCAsyncSequence<Ledger_V1_CommandBatchRequest, any Error>,
        response: RPCWriter<Ledger_V1_CommandBatchReply>,
        context: ServerContext
    ) async throws {
        throw Self.unimplemented
    }

    func transactionStatusStream(
        request: RPCAsyncSequence<Ledger_V1_TransactionStatusBatchRequest, any Error>,
        response: RPCWriter<Ledger_V1_TransactionStatusBatchReply>,
        context: ServerContext
    ) async throws {
        throw Self.unimplemented
    }

    func localBalance(
        request: Ledger_V1_LocalBalanceRequest, context: ServerContext
    ) async throws -> Ledger_V1_LocalBalanceReply {
        throw Self.unimplemented
    }

    func logs(request: Ledger_V1_LogsRequest, context: ServerContext) async throws -> Ledger_V1_LogsReply {
        throw Self.unimplemented
    }

    func datastore(request: Ledger_V1_DatastoreRequest, context: ServerContext) async throws -> Ledger_V1_DatastoreReply
    {
        throw Self.unimplemented
    }

    func setConnectivity(
        request: Ledger_V1_SetConnectivityRequest, context: ServerContext
    ) async throws -> Ledger_V1_SetConnectivityReply {
        throw Self.unimplemented
    }

    func setLinkFaults(
        request: Ledger_V1_SetLinkFaultsRequest, context: ServerContext
    ) async throws -> Ledger_V1_SetLinkFaultsReply {
        throw Self.unimplemented
    }

    func changeMembership(
        request: Ledger_V1_ChangeMembershipRequest, context: ServerContext
    ) async throws -> Ledger_V1_ChangeMembershipReply {
        throw Self.unimplemented
    }

    static let unimplemented = RPCError(code: .unimplemented, message: "this test service answers Status only")
}

/// Collects what a `Peer` service received.
actor Inbox {
    private(set) var messages: [LedgerMessage] = []

    func take(_ batch: PeerBatch) {
        messages += batch.messages
    }
}

/// A `Peer` service as replica S2 of C1: decodes every batch, refuses a misrouted or malformed one.
struct RecordingPeer: Ledger_V1_Peer.SimpleServiceProtocol {
    let inbox: Inbox

    func stream(
        request: RPCAsyncSequence<Ledger_V1_PeerBatch, any Error>, context: ServerContext
    ) async throws -> Ledger_V1_PeerStreamSummary {
        var summary = Ledger_V1_PeerStreamSummary()
        for try await wire in request {
            let batch: PeerBatch
            do {
                batch = try PeerBatch(wire: wire)
            } catch {
                throw RPCError(error)
            }
            guard batch.cluster == "C1", batch.to == ReplicaID(2), batch.protocolVersion == LedgerRPC.protocolVersion
            else { throw RPCError(code: .failedPrecondition, message: "misrouted batch") }
            await inbox.take(batch)
            summary.batches += 1
            summary.messages += UInt64(batch.messages.count)
        }
        return summary
    }
}

/// The generated services and clients work over gRPC's in-process transport (no sockets).
@Suite struct InProcessTests {
    @Test func statusAnswers() async throws {
        let transport = InProcessTransport()
        try await withGRPCServer(transport: transport.server, services: [StatusOnlyLedger()]) { _ in
            try await withGRPCClient(transport: transport.client) { client in
                let ledger = Ledger_V1_Ledger.Client(wrapping: client)
                let reply = try await ledger.status(.with { $0.cluster = "C2" })
                #expect(try ReplicaStatus(wire: reply) == StatusOnlyLedger.status)

                let named = try await ledger.status(
                    .with {
                        $0.cluster = "C2"
                        $0.replica = "S5"
                    })
                #expect(try ReplicaStatus(wire: named) == StatusOnlyLedger.status)

                await #expect {
                    _ = try await ledger.status(.with { $0.cluster = "C1" })
                } throws: { error in
                    (error as? RPCError)?.code == .failedPrecondition
                }
                await #expect {
                    _ = try await ledger.transfer(
                        Ledger_V1_TransferRequest(
                            cluster: "C2", transaction: Samples.transaction, from: AccountID(1), to: AccountID(2),
                            amount: Amount(1)))
                } throws: { error in
                    (error as? RPCError)?.code == .unimplemented
                }
            }
        }
    }

    @Test func peerStreamCarriesBatches() async throws {
        let transport = InProcessTransport()
        let inbox = Inbox()
        let sent = Samples.messages
        try await withGRPCServer(transport: transport.server, services: [RecordingPeer(inbox: inbox)]) { _ in
            try await withGRPCClient(transport: transport.client) { client in
                let peer = Ledger_V1_Peer.Client(wrapping: client)
                let summary = try await peer.stream { writer in
                    try await writer.write(
                        Ledger_V1_PeerBatch(
                            PeerBatch(cluster: "C1", from: ReplicaID(1), to: ReplicaID(2), messages: Array(sent[..<5])))
                    )
                    try await writer.write(
                        Ledger_V1_PeerBatch(
                            PeerBatch(cluster: "C1", from: ReplicaID(1), to: ReplicaID(2), messages: Array(sent[5...])))
                    )
                }
                #expect(summary.batches == 2)
                #expect(summary.messages == UInt64(sent.count))

                await #expect {
                    _ = try await peer.stream { writer in
                        var malformed = Ledger_V1_PeerBatch(
                            PeerBatch(cluster: "C1", from: ReplicaID(1), to: ReplicaID(2), messages: []))
                        malformed.messages = [Ledger_V1_PeerMessage()]
                        try await writer.write(malformed)
                    }
                } throws: { error in
                    guard let error = error as? RPCError else { return false }
                    return error.code == .invalidArgument && error.message.hasPrefix("malformed messages[0].kind")
                }
            }
        }
        #expect(await inbox.messages == sent)
    }
}
