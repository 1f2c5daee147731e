import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import LedgerCore
import LedgerRPC
import Paxos
import Synchronization
import Testing

@testable import LedgerClient

/// A replica's linearizable status questions to another cluster (`ClusterClient.transactionStatusBatch` with
/// `linearizable`), against two replica stand-ins on loopback that serve only `TransactionStatusStream`: the questions
/// travel on the stream, and a batch whose answers do not speak for the cluster is asked again where they point.
@Suite("Status questions", .timeLimit(.minutes(2)))
struct StatusQuestionTests {
    static let prepared = TransactionID(client: 4, sequence: 1)
    static let unknown = TransactionID(client: 4, sequence: 2)
    static let terms = TransactionTerms.transfer(
        CrossShardTransfer(
            from: AccountID(1), to: AccountID(11), amount: Amount(1), home: "C1", participants: ["C1", "C2"]))

    /// A replica of C2 that answers every batch with `answer(ids)` and counts the batches it took.
    final class StandIn: RegistrableRPCService {
        let batches = Atomic(0)
        let answer: @Sendable ([TransactionID]) throws -> [TransactionStatusAnswer]

        init(answer: @escaping @Sendable ([TransactionID]) throws -> [TransactionStatusAnswer]) {
            self.answer = answer
        }

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(
                forMethod: Ledger_V1_Ledger.Method.TransactionStatusStream.descriptor,
                deserializer: ProtobufDeserializer<Ledger_V1_TransactionStatusBatchRequest>(),
                serializer: ProtobufSerializer<Ledger_V1_TransactionStatusBatchReply>()
            ) { request, _ in
                StreamingServerResponse { writer in
                    for try await batch in request.messages {
                        self.batches.add(1, ordering: .relaxed)
                        #expect(batch.linearizable && batch.cluster == "C2")
                        let ids = try TransactionID.batch(wire: batch)
                        try await writer.write(Ledger_V1_TransactionStatusBatchReply(try self.answer(ids)))
                    }
                    return [:]
                }
            }
        }
    }

    /// Serves `leader` as S1 and `follower` as S2 of C2 on loopback, and runs `body` with a client of that cluster.
    private func withCluster(
        leader: StandIn, follower: StandIn, _ body: (ClusterClient) async throws -> Void
    ) async throws {
        try await Self.withCluster(of: [leader, follower]) { client, _ in try await body(client) }
    }

    /// Serves the stand-ins as S1, S2, ... of C2 on loopback, and runs `body` with a client of that cluster and the
    /// port of S1.
    static func withCluster(
        of standIns: [StandIn], _ body: (ClusterClient, _ firstPort: Int) async throws -> Void
    ) async throws {
        let servers = standIns.map {
            GRPCServer(
                transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
                services: [$0])
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for server in servers { group.addTask { try await server.serve() } }
            defer { for server in servers { server.beginGracefulShutdown() } }
            var addresses: [ClusterClient.Address] = []
            for (index, server) in servers.enumerated() {
                let port = try #require(try await server.listeningAddress?.ipv4?.port)
                addresses.append(ClusterClient.Address(replica: ReplicaID(index + 1), host: "127.0.0.1", port: port))
            }
            try await ClusterClient.with(cluster: "C2", addresses: addresses, security: .plaintext) { client in
                try await body(client, addresses[0].port)
            }
        }
    }

    /// The answer of replica `replica` for `id`: prepared for `prepared`, unknown for the others.
    static func answer(
        _ id: TransactionID, by replica: Int, leader: ReplicaID?, linearizable: Bool
    ) -> TransactionStatusAnswer {
        TransactionStatusAnswer(
            replica: ReplicaID(replica), appliedThrough: 7,
            report: id == prepared ? .prepared(terms, home: "C1") : .unknown, leader: leader,
            linearizable: linearizable)
    }

    @Test func aFollowersAnswerIsAskedAgainAtTheLeaderItNames() async throws {
        let leader = StandIn { ids in ids.map { Self.answer($0, by: 1, leader: nil, linearizable: true) } }
        // A follower cannot vouch for "unknown" (it may not have applied a prepare its cluster chose).
        let follower = StandIn { ids in ids.map { Self.answer($0, by: 2, leader: ReplicaID(1), linearizable: false) } }
        try await withCluster(leader: leader, follower: follower) { client in
            let answers = try #require(
                await client.transactionStatusBatch(
                    of: [Self.prepared, Self.unknown], contact: ReplicaID(2), deadline: .now + .seconds(10),
                    linearizable: true))
            #expect(answers.map(\.replica) == [ReplicaID(1), ReplicaID(1)])
            #expect(answers.map(\.clusterReport) == [.prepared(Self.terms, home: "C1"), .unknown])
            #expect(follower.batches.load(ordering: .relaxed) == 1)
            #expect(leader.batches.load(ordering: .relaxed) == 1)

            // The leader learned from the answer is asked first next time, on the stream already open.
            _ = await client.transactionStatusBatch(
                of: [Self.unknown], contact: ReplicaID(2), deadline: .now + .seconds(10), linearizable: true)
            #expect(follower.batches.load(ordering: .relaxed) == 1)
            #expect(leader.batches.load(ordering: .relaxed) == 2)
        }
    }

    @Test func aReplicaThatEndsTheStreamIsPassedOver() async throws {
        let leader = StandIn { _ in throw RPCError(code: .unavailable, message: "stopping") }
        let follower = StandIn { ids in ids.map { Self.answer($0, by: 2, leader: nil, linearizable: false) } }
        try await withCluster(leader: leader, follower: follower) { client in
            let answers = try #require(
                await client.transactionStatusBatch(
                    of: [Self.prepared], contact: ReplicaID(1), deadline: .now + .seconds(10), linearizable: true))
            // "Prepared" is true of the cluster from any replica: the follower's answer settles it.
            #expect(answers.map(\.replica) == [ReplicaID(2)])
            #expect(answers.map(\.clusterReport) == [.prepared(Self.terms, home: "C1")])
            #expect(leader.batches.load(ordering: .relaxed) == 1)
        }
    }
}
