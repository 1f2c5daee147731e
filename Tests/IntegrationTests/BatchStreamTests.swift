import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import LedgerRPC
import Synchronization
import Testing

@testable import LedgerClient

/// `BatchStream` against a replica stand-in on loopback that serves only `SubmitStream`: it echoes each batch's
/// `cluster` in the reply's `leader_hint`, with the number of the call it came on, and acts on a few marker values.
@Suite("Batch stream", .timeLimit(.minutes(2)))
struct BatchStreamTests {
    /// What the stand-in does with a batch, by the batch's `cluster`.
    static let refuse = "refuse"  // ends the call with FAILED_PRECONDITION
    static let silent = "silent"  // not answered: the stand-in goes on reading

    final class StandIn: RegistrableRPCService {
        let calls = Atomic(0)
        let batchesTaken = Atomic(0)

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(
                forMethod: Ledger_V1_Ledger.Method.SubmitStream.descriptor,
                deserializer: ProtobufDeserializer<Ledger_V1_CommandBatchRequest>(),
                serializer: ProtobufSerializer<Ledger_V1_CommandBatchReply>()
            ) { request, _ in
                let call = self.calls.add(1, ordering: .relaxed).newValue
                return StreamingServerResponse { writer in
                    for try await batch in request.messages {
                        self.batchesTaken.add(1, ordering: .relaxed)
                        switch batch.cluster {
                        case BatchStreamTests.refuse:
                            throw RPCError(code: .failedPrecondition, message: "refused")
                        case BatchStreamTests.silent:
                            continue
                        default:
                            var reply = Ledger_V1_CommandBatchReply()
                            reply.leaderHint = "\(batch.cluster)@\(call)"
                            try await writer.write(reply)
                        }
                    }
                    return [:]
                }
            }
        }
    }

    private typealias Commands = BatchStream<Ledger_V1_CommandBatchRequest, Ledger_V1_CommandBatchReply>

    private func withStream(_ body: (Commands, StandIn) async throws -> Void) async throws {
        let standIn = StandIn()
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
            services: [standIn])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            let port = try #require(try await server.listeningAddress?.ipv4?.port)
            try await withGRPCClient(
                transport: .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
            ) { client in
                let stream = Commands.commands(Ledger_V1_Ledger.Client(wrapping: client))
                defer { stream.close() }
                try await body(stream, standIn)
            }
        }
    }

    private func batch(_ marker: String) -> Ledger_V1_CommandBatchRequest {
        var request = Ledger_V1_CommandBatchRequest()
        request.cluster = marker
        return request
    }

    private func inAMinute() -> ContinuousClock.Instant { .now + .seconds(60) }

    /// The reply's echo (`marker@call`), or a description of the failure.
    private func echo(_ answer: Commands.Answer) -> String {
        switch answer {
        case .reply(let reply): reply.leaderHint
        case .failed(let error, let written):
            "failed \((error as? RPCError)?.code.description ?? "\(error)") \(written)"
        }
    }

    @Test("batches sent together share one call, and each gets its own reply")
    func batchesShareOneCall() async throws {
        try await withStream { stream, standIn in
            let echoes = await withTaskGroup(of: (Int, String).self) { group in
                for index in 0..<8 {
                    group.addTask { (index, echo(await stream.send(batch("b\(index)"), deadline: inAMinute()))) }
                }
                return await group.reduce(into: [Int: String]()) { $0[$1.0] = $1.1 }
            }
            #expect(echoes == Dictionary(uniqueKeysWithValues: (0..<8).map { ($0, "b\($0)@1") }))
            #expect(echo(await stream.send(batch("later"), deadline: inAMinute())) == "later@1")
            #expect(standIn.calls.load(ordering: .relaxed) == 1)
        }
    }

    @Test("a batch the replica refuses ends the call with its error; the next batch opens another")
    func aRefusalEndsTheCall() async throws {
        try await withStream { stream, standIn in
            #expect(echo(await stream.send(batch("first"), deadline: inAMinute())) == "first@1")
            #expect(
                echo(await stream.send(batch(Self.refuse), deadline: inAMinute())) == "failed failedPrecondition true")
            #expect(echo(await stream.send(batch("again"), deadline: inAMinute())) == "again@2")
            #expect(standIn.calls.load(ordering: .relaxed) == 2)
        }
    }

    @Test("a batch not answered by its deadline fails as written, and ends the call")
    func aDeadlineEndsTheCall() async throws {
        try await withStream { stream, _ in
            #expect(echo(await stream.send(batch("open"), deadline: inAMinute())) == "open@1")
            // The stand-in never answers: only the deadline ends this wait (else the suite's time limit fails it).
            let answer = await stream.send(batch(Self.silent), deadline: .now + .milliseconds(200))
            #expect(echo(answer) == "failed deadlineExceeded true")
            #expect(echo(await stream.send(batch("after"), deadline: inAMinute())) == "after@2")
        }
    }

    @Test("close fails the batch still waiting, as written, and refuses later ones as not written")
    func closeEndsEverything() async throws {
        try await withStream { stream, standIn in
            async let waiting = stream.send(batch(Self.silent), deadline: inAMinute())
            // A bound for a loaded machine, not a timing check.
            let deadline = ContinuousClock.now + .seconds(50)
            while standIn.batchesTaken.load(ordering: .relaxed) == 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(1))
            }
            stream.close()
            guard case .failed(_, written: true) = await waiting else {
                Issue.record("the waiting batch was not failed as written")
                return
            }
            guard case .failed(_, written: false) = await stream.send(batch("late"), deadline: inAMinute()) else {
                Issue.record("a batch after close was not refused as not written")
                return
            }
        }
    }
}
