import LedgerCore
import LedgerRPC
import Synchronization
import Testing

@testable import LedgerClient

@Suite("Command batcher")
struct CommandBatcherTests {
    private func transfer(_ sequence: UInt64) -> LedgerCommand {
        .transfer(
            TransactionID(client: 7, sequence: sequence), from: AccountID(1), to: AccountID(2), amount: Amount(1))
    }

    @Test("commits and aborts travel on the decisions lane; transfers, prepares and releases on the commands lane")
    func lanes() {
        let id = TransactionID(client: 7, sequence: 9)
        let transfer = CrossShardTransfer(
            from: AccountID(1), to: AccountID(2), amount: Amount(1), home: "C1", participants: ["C1", "C2"])
        #expect(ClusterClient.Lane(.commit(id)) == .decisions)
        #expect(ClusterClient.Lane(.abort(id)) == .decisions)
        #expect(ClusterClient.Lane(self.transfer(1)) == .commands)
        #expect(ClusterClient.Lane(.prepare(id, transfer)) == .commands)
        #expect(ClusterClient.Lane(.release(client: 7, floor: 3)) == .commands)
    }

    @Test("a lone command leaves at once; commands sent while a call is out leave together when it returns")
    func batchesWhileACallIsOut() async throws {
        let calls = Mutex<[[LedgerCommand]]>([])
        // The first call waits until the test opens the gate.
        let (gate, open) = AsyncStream<Void>.makeStream()
        let batcher = CommandBatcher { batch in
            let isFirst = calls.withLock { calls in
                calls.append(batch.map(\.command))
                return calls.count == 1
            }
            if isFirst {
                for await _ in gate { break }
            }
            for pending in batch { pending.resume(.applied(.committed)) }
        }

        async let first = batcher.submit(transfer(1))
        try await waitUntil { calls.withLock { $0.count } == 1 }
        async let second = batcher.submit(transfer(2))
        async let third = batcher.submit(transfer(3))
        try await waitUntil { batcher.queuedCount == 2 }
        #expect(calls.withLock { $0.count } == 1, "no second call while the first is out")

        open.yield()
        let outcomes = await [first, second, third]
        #expect(outcomes == Array(repeating: .applied(.committed), count: 3))
        let sent = calls.withLock { $0 }
        #expect(sent.count == 2)
        #expect(sent.first == [transfer(1)])
        #expect(Set(sent.last ?? []) == [transfer(2), transfer(3)])
    }

    /// Waits until `condition` holds, for at most 5 s.
    /// Waits for `condition`; the bound is for a machine busy with the other suites, not a timing check.
    private func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("the condition did not hold within 60 s")
                return
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}
