import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import LedgerClient
import LedgerRPC
import NIOCore
import NIOPosix
import SwiftProtobuf

/// What one request/reply round trip costs on loopback, in one process on one event loop as a node runs
/// (`ProcessRuntime.adoptOneEventLoop`), plaintext: over a gRPC bidirectional stream (`TransactionStatusStream`, as
/// the replicas' streams are), and over length-prefixed protobuf frames on a NIO channel handled on the event loop.
/// Both sides are in the process, so the CPU per round trip counts the client's and the server's work. Issue 23,
/// step 2: the peer path's cost per message.
///
///     swift run -c release transport-probe [ROUND_TRIPS=20000] [IDS_PER_MESSAGE=13]
@main
struct TransportProbe {
    /// Round trips before measuring (connections open, caches warm).
    static let warmUp = 1_000

    static func main() async throws {
        ProcessRuntime.adoptOneEventLoop()
        let arguments = CommandLine.arguments.dropFirst().map { Int($0) }
        guard arguments.allSatisfy({ ($0 ?? 0) > 0 }), arguments.count <= 2 else {
            print("usage: transport-probe [ROUND_TRIPS] [IDS_PER_MESSAGE] (positive whole numbers)")
            exit(2)
        }
        let roundTrips = arguments.first.flatMap { $0 } ?? 20_000
        let messages = Messages(ids: arguments.dropFirst().first.flatMap { $0 } ?? 13)
        let (requestBytes, replyBytes): ([UInt8], [UInt8]) = (
            try messages.request.serializedBytes(), try messages.reply.serializedBytes()
        )
        print("request \(requestBytes.count) bytes, reply \(replyBytes.count) bytes, \(roundTrips) round trips")
        for round in 1...2 {
            report(
                "round \(round) gRPC stream, flushes coalesced (gRPC's default)",
                try await grpc(messages, roundTrips: roundTrips, coalescing: true), roundTrips)
            report(
                "round \(round) gRPC stream, every flush at once",
                try await grpc(messages, roundTrips: roundTrips, coalescing: false), roundTrips)
            report("round \(round) NIO frames", try await frames(messages, roundTrips: roundTrips), roundTrips)
        }
    }

    static func report(_ name: String, _ cost: Cost, _ roundTrips: Int) {
        let perTrip = { (seconds: Double) in String(format: "%.1f", seconds / Double(roundTrips) * 1e6) }
        print("\(name): \(perTrip(cost.cpu)) us CPU, \(perTrip(cost.wall)) us wall per round trip")
    }

    /// The CPU (user and system) and wall seconds of the measured round trips.
    struct Cost: Sendable {
        var cpu: Double
        var wall: Double

        /// From `start` (the process's CPU seconds and the wall clock then) to now.
        static func since(_ start: (cpu: Double, wall: Date)) -> Cost {
            Cost(cpu: cpuSeconds() - start.cpu, wall: Date().timeIntervalSince(start.wall))
        }
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let seconds = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec
        return Double(seconds) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// A question batch of `ids` transactions and its reply, the size of a small batch of the replicas' traffic.
    struct Messages: Sendable {
        let request: Ledger_V1_TransactionStatusBatchRequest
        let reply: Ledger_V1_TransactionStatusBatchReply

        init(ids: Int) {
            var request = Ledger_V1_TransactionStatusBatchRequest()
            request.cluster = "C2"
            request.linearizable = true
            request.transactions = (0..<ids).map {
                var id = Ledger_V1_TransactionId()
                id.client = UInt64($0) + 1_000_000
                id.sequence = 1
                return id
            }
            var reply = Ledger_V1_TransactionStatusBatchReply()
            reply.statuses = (0..<ids).map { _ in
                var status = Ledger_V1_TransactionStatusReply()
                status.replica = "S1"
                status.appliedThrough = 100
                status.state = .committed
                return status
            }
            self.request = request
            self.reply = reply
        }
    }

    // MARK: - gRPC

    /// Answers every request of the stream with the reply.
    final class Echo: RegistrableRPCService {
        let reply: Ledger_V1_TransactionStatusBatchReply

        init(reply: Ledger_V1_TransactionStatusBatchReply) { self.reply = reply }

        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(
                forMethod: Ledger_V1_Ledger.Method.TransactionStatusStream.descriptor,
                deserializer: ProtobufDeserializer<Ledger_V1_TransactionStatusBatchRequest>(),
                serializer: ProtobufSerializer<Ledger_V1_TransactionStatusBatchReply>()
            ) { [reply] request, _ in
                StreamingServerResponse { writer in
                    for try await _ in request.messages { try await writer.write(reply) }
                    return [:]
                }
            }
        }
    }

    /// `coalescing`: gRPC's transport holds each flush up to 100 us to merge it with the next (its default); without,
    /// each flush goes at once.
    static func grpc(_ messages: Messages, roundTrips: Int, coalescing: Bool) async throws -> Cost {
        let server = GRPCServer(
            transport: .http2NIOPosix(
                address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext,
                config: .defaults { if !coalescing { $0.connection.flushCoalescing = nil } }),
            services: [Echo(reply: messages.reply)])
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            defer { server.beginGracefulShutdown() }
            guard let port = try await server.listeningAddress?.ipv4?.port else {
                throw RPCError(code: .unavailable, message: "the probe's server has no IPv4 address")
            }
            return try await withGRPCClient(
                transport: .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext,
                    config: .defaults { if !coalescing { $0.connection.flushCoalescing = nil } })
            ) { client in
                let api = Ledger_V1_Ledger.Client(wrapping: client)
                // The writer sends the next request only once the reply to the last one came.
                let (replies, replied) = AsyncStream.makeStream(of: Void.self)
                let (starts, started) = AsyncStream.makeStream(of: (cpu: Double, wall: Date).self)
                try await api.transactionStatusStream(
                    request: StreamingClientRequest { writer in
                        var iterator = replies.makeAsyncIterator()
                        for trip in 0..<(warmUp + roundTrips) {
                            if trip == warmUp { started.yield((cpuSeconds(), Date())) }
                            try await writer.write(messages.request)
                            _ = await iterator.next()
                        }
                    }
                ) { response in
                    var count = 0
                    for try await _ in response.messages {
                        count += 1
                        replied.yield()
                        if count == warmUp + roundTrips { break }
                    }
                }
                started.finish()
                var iterator = starts.makeAsyncIterator()
                guard let start = await iterator.next() else {
                    throw RPCError(code: .internalError, message: "the probe never started measuring")
                }
                return Cost.since(start)
            }
        }
    }

    // MARK: - NIO frames

    /// Splits a byte stream into frames of a 4-byte big-endian length and that many bytes.
    final class FrameDecoder: ByteToMessageDecoder {
        typealias InboundOut = ByteBuffer

        func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
            guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
                buffer.readableBytes >= 4 + Int(length)
            else { return .needMoreData }
            buffer.moveReaderIndex(forwardBy: 4)
            context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
            return .continue
        }
    }

    static func frame(_ message: some SwiftProtobuf.Message, _ allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let bytes: [UInt8] = try message.serializedBytes()
        var buffer = allocator.buffer(capacity: bytes.count + 4)
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        return buffer
    }

    /// Decodes each request and writes the reply, on the event loop.
    final class Server: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let reply: Ledger_V1_TransactionStatusBatchReply

        init(reply: Ledger_V1_TransactionStatusBatchReply) { self.reply = reply }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            do {
                _ = try Ledger_V1_TransactionStatusBatchRequest(
                    serializedBytes: Array(unwrapInboundIn(data).readableBytesView))
                context.writeAndFlush(wrapOutboundOut(try frame(reply, context.channel.allocator)), promise: nil)
            } catch {
                context.fireErrorCaught(error)
            }
        }
    }

    /// Sends a request, and the next one when the reply came, until the last; then fulfils `done`.
    final class Client: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let messages: Messages
        let roundTrips: Int
        let done: EventLoopPromise<Cost>
        var count = 0
        var start = (cpu: 0.0, wall: Date())

        init(messages: Messages, roundTrips: Int, done: EventLoopPromise<Cost>) {
            self.messages = messages
            self.roundTrips = roundTrips
            self.done = done
        }

        func channelActive(context: ChannelHandlerContext) {
            send(context)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            do {
                _ = try Ledger_V1_TransactionStatusBatchReply(
                    serializedBytes: Array(unwrapInboundIn(data).readableBytesView))
            } catch {
                done.fail(error)
                return
            }
            count += 1
            if count == warmUp { start = (cpuSeconds(), Date()) }
            if count == warmUp + roundTrips {
                done.succeed(Cost.since(start))
            } else {
                send(context)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            done.fail(error)
        }

        private func send(_ context: ChannelHandlerContext) {
            do {
                context.writeAndFlush(
                    wrapOutboundOut(try frame(messages.request, context.channel.allocator)), promise: nil)
            } catch {
                done.fail(error)
            }
        }
    }

    static func frames(_ messages: Messages, roundTrips: Int) async throws -> Cost {
        let group = MultiThreadedEventLoopGroup.singleton
        let reply = messages.reply
        let server = try await ServerBootstrap(group: group)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(Server(reply: reply))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let done = group.next().makePromise(of: Cost.self)
        let client = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(
                        Client(messages: messages, roundTrips: roundTrips, done: done))
                }
            }
            .connect(to: server.localAddress!).get()
        let cost = try await done.futureResult.get()
        try await client.close()
        try await server.close()
        return cost
    }
}
