import LedgerRPC
import Paxos
import Synchronization
import Testing

@testable import LedgerNode

/// The transport's fault layer on its own: which messages go through now, which later, which never.
@Suite struct LinkFaultLayerTests {
    static let s2 = ReplicaID(2)
    static let s3 = ReplicaID(3)
    static let messages: [LedgerMessage] = (1...20).map {
        .heartbeatAck(ballot: Ballot(round: 1, replica: ReplicaID(1)), round: $0, chosenThrough: 0)
    }

    static func rounds(_ messages: [LedgerMessage]) -> [UInt64] {
        messages.compactMap { if case .heartbeatAck(_, let round, _) = $0 { round } else { nil } }
    }

    /// Collects what a layer delivers late.
    final class Late: Sendable {
        private let state = Mutex<[LedgerMessage]>([])
        func take(_ messages: [LedgerMessage]) { state.withLock { $0 += messages } }
        var messages: [LedgerMessage] { state.withLock { $0 } }
    }

    @Test func withoutFaultsEveryMessageGoesThroughAtOnceInOrder() {
        let layer = LinkFaultLayer(peers: [Self.s2, Self.s3])
        let late = Late()
        #expect(layer.pass(Self.messages, peer: Self.s2, inbound: false, later: late.take) == Self.messages)
        #expect(layer.pass(Self.messages, peer: Self.s3, inbound: true, later: late.take) == Self.messages)
        #expect(late.messages.isEmpty)
    }

    @Test func aOneWayCutDropsOnlyItsDirectionAndPeer() throws {
        let layer = LinkFaultLayer(peers: [Self.s2, Self.s3])
        #expect(try layer.set([.cut(Self.s2, .outbound)]) == 1)
        let late = Late()
        #expect(layer.pass(Self.messages, peer: Self.s2, inbound: false, later: late.take).isEmpty)
        #expect(layer.pass(Self.messages, peer: Self.s2, inbound: true, later: late.take) == Self.messages)
        #expect(layer.pass(Self.messages, peer: Self.s3, inbound: false, later: late.take) == Self.messages)

        #expect(try layer.set([]) == 0)
        #expect(layer.pass(Self.messages, peer: Self.s2, inbound: false, later: late.take) == Self.messages)
        #expect(late.messages.isEmpty)
    }

    @Test func aFaultWithoutPeerCoversEveryPeerAndALaterOneReplacesIt() throws {
        let layer = LinkFaultLayer(peers: [Self.s2, Self.s3])
        #expect(try layer.set([.cut(), LinkFault(peer: Self.s3, direction: .inbound, duplicate: 1)]) == 4)
        let late = Late()
        for (peer, inbound) in [(Self.s2, false), (Self.s2, true), (Self.s3, false)] {
            #expect(layer.pass(Self.messages, peer: peer, inbound: inbound, later: late.take).isEmpty)
        }
        let doubled = layer.pass(Self.messages, peer: Self.s3, inbound: true, later: late.take)
        #expect(doubled == Self.messages.flatMap { [$0, $0] })
    }

    @Test func partialLossKeepsSomeMessagesInOrder() throws {
        let layer = LinkFaultLayer(peers: [Self.s2])
        _ = try layer.set([LinkFault(peer: Self.s2, direction: .outbound, loss: 0.5)])
        let many = Array(repeating: Self.messages, count: 50).flatMap { $0 }
        let passed = layer.pass(many, peer: Self.s2, inbound: false) { _ in }
        // 1,000 draws at 0.5: outside 350...650 once in about 10^21 runs.
        #expect((350...650).contains(passed.count), "\(passed.count) of 1000 went through")
        var rest = passed[...]
        for message in many where rest.first == message { rest.removeFirst() }
        #expect(rest.isEmpty, "what goes through keeps its order")
    }

    @Test func delayedMessagesArriveLaterAndNotNow() async throws {
        let layer = LinkFaultLayer(peers: [Self.s2])
        _ = try layer.set([
            LinkFault(peer: Self.s2, direction: .inbound, delay: .milliseconds(30), jitter: .milliseconds(20))
        ])
        let late = Late()
        #expect(layer.pass(Self.messages, peer: Self.s2, inbound: true, later: late.take).isEmpty)
        for _ in 0..<500 where late.messages.count < Self.messages.count {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(Self.rounds(late.messages).sorted() == Self.rounds(Self.messages), "each arrives once, later")
    }

    @Test func aFaultOnAStrangerIsRefusedAndChangesNothing() throws {
        let layer = LinkFaultLayer(peers: [Self.s2, Self.s3])
        _ = try layer.set([.cut(Self.s3)])
        let error = #expect(throws: WireError.self) { try layer.set([.cut(Self.s2), .cut(ReplicaID(9))]) }
        #expect(error?.field == "faults[1].peer")
        #expect(error?.problem.contains("S9 is not a peer of this replica; its peers are S2, S3") == true)
        #expect(layer.pass(Self.messages, peer: Self.s2, inbound: false) { _ in } == Self.messages)
        #expect(layer.pass(Self.messages, peer: Self.s3, inbound: false) { _ in }.isEmpty, "the old faults stand")
    }
}
