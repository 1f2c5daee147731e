import LedgerCore
import LedgerRPC
import NIOCore
import NIOEmbedded
import Paxos
import Testing

@testable import LedgerNode

/// The peer port's framing: what one node writes (`PeerFrame.encode`) comes out of the other's decoder as the same
/// batches, however TCP cuts the bytes, and a frame declaring more than the limit ends the connection.
@Suite("Peer frames")
struct PeerFrameTests {
    static func batch(_ round: UInt64, cluster: String = "C1") -> PeerBatch {
        PeerBatch(
            cluster: cluster, from: ReplicaID(2), to: ReplicaID(1),
            messages: (0..<round).map {
                .heartbeatAck(ballot: Ballot(round: 1, replica: ReplicaID(1)), round: $0, chosenThrough: 0)
            })
    }

    /// Feeds `chunks` to a decoder and returns the batches it produced.
    static func decode(_ chunks: [ByteBuffer]) throws -> [PeerBatch] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(PeerFrameDecoder()))
        var batches: [PeerBatch] = []
        for chunk in chunks {
            try channel.writeInbound(chunk)
            while let frame = try channel.readInbound(as: ByteBuffer.self) {
                batches.append(
                    try PeerBatch(wire: Ledger_V1_PeerBatch(serializedBytes: Array(frame.readableBytesView))))
            }
        }
        _ = try channel.finish()
        return batches
    }

    @Test("frames written together come out one by one, in order")
    func framesTogether() throws {
        let batches = [Self.batch(1), Self.batch(3, cluster: "C2"), Self.batch(0)]
        let bytes = try PeerFrame.encode(batches, allocator: ByteBufferAllocator())
        #expect(try Self.decode([bytes]) == batches)
    }

    @Test("frames cut anywhere, even byte by byte, come out whole")
    func framesCut() throws {
        let batches = [Self.batch(2), Self.batch(5)]
        var bytes = try PeerFrame.encode(batches, allocator: ByteBufferAllocator())
        var chunks: [ByteBuffer] = []
        while let byte = bytes.readSlice(length: 1) { chunks.append(byte) }
        #expect(try Self.decode(chunks) == batches)
        // A cut inside the length prefix and another inside the body.
        let whole = try PeerFrame.encode(batches, allocator: ByteBufferAllocator())
        let cuts = [2, 9, whole.readableBytes]
        var start = 0
        let pieces = cuts.map { end in
            defer { start = end }
            return whole.getSlice(at: start, length: end - start)!
        }
        #expect(try Self.decode(pieces) == batches)
    }

    @Test("a frame declaring more than the limit is refused before its body arrives")
    func tooLarge() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(PeerFrameDecoder()))
        var header = ByteBufferAllocator().buffer(capacity: 4)
        header.writeInteger(UInt32(PeerFrame.sizeMax + 1))
        #expect(throws: PeerFrameTooLarge.self) { try channel.writeInbound(header) }
        _ = try? channel.finish()
    }

    @Test("a partial frame waits for the rest")
    func partial() throws {
        var bytes = try PeerFrame.encode([Self.batch(4)], allocator: ByteBufferAllocator())
        bytes.moveWriterIndex(to: bytes.writerIndex - 1)
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(PeerFrameDecoder()))
        try channel.writeInbound(bytes)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        _ = try? channel.finish()
    }
}
