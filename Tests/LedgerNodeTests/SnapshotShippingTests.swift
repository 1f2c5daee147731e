import Foundation
import LedgerCore
import LedgerRPC
import LedgerStore
import Logging
import Paxos
import Synchronization
import Testing

@testable import LedgerNode

/// A replica keeps its own snapshot without the history (its store holds that), and a snapshot it ships to a replica
/// that catches up carries the history that replica lacks, so it prints the same WAL and datastore as the others.
@Suite struct SnapshotShippingTests {
    /// Keeps every batch of messages the node sends.
    final class Recorder: PeerSender, Sendable {
        let sent = Mutex<[(peer: ReplicaID, message: LedgerMessage)]>([])

        func send(_ messages: [LedgerMessage], to peer: ReplicaID) {
            sent.withLock { $0 += messages.map { (peer, $0) } }
        }

        var catchUpReplies: [(snapshot: Snapshot<LedgerSnapshot>?, entries: [SlotEntry<LedgerCommand>])] {
            sent.withLock { sent in
                sent.compactMap { item in
                    guard case .catchUpReply(let snapshot, let entries) = item.message else { return nil }
                    return (snapshot, entries)
                }
            }
        }
    }

    static let leader = Ballot(round: 3, replica: ReplicaID(1))

    static func transfer(_ sequence: UInt64, from: UInt64, to: UInt64) -> Request<LedgerCommand> {
        let command = LedgerCommand.transfer(
            TransactionID(client: 7, sequence: sequence), from: AccountID(from), to: AccountID(to), amount: Amount(1))
        return Request(id: command.requestID, command: command)
    }

    /// Waits (up to 10 s) until `done` holds.
    static func eventually(_ done: () async -> Bool) async throws {
        for _ in 0..<5_000 where await !done() { try await Task.sleep(for: .milliseconds(2)) }
    }

    @Test func aCompactedFollowerShipsItsStateWithTheWholeHistory() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ledger-shipping-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("S2.sqlite").path
        let recorder = Recorder()
        do {
            let (store, recovered) = try ReplicaStore.open(path: path, cluster: "C1", replica: "S2", minBalance: 0)
            // No ticks: the follower never campaigns, it only takes the leader's messages.
            let node = ReplicaNode(
                cluster: "C1",
                configuration: Configuration(
                    me: ReplicaID(2), members: [ReplicaID(1), ReplicaID(2), ReplicaID(3)], leaderTimeoutTicks: 100,
                    heartbeatIntervalTicks: 10, consensusTimeoutTicks: 100, snapshotIntervalSlots: 3),
                store: store, recovered: recovered, peers: recorder, accounts: [AccountID(1)...AccountID(10)],
                initialBalance: 10, seed: 1, logger: Logger(label: "test"), onFailure: { _ in })
            let create = LedgerCommand.createAccounts([AccountID(1)...AccountID(10)], balance: 10)
            let values: [SlotValue<LedgerCommand>] = [
                .batch([Request(id: create.requestID, command: create)], ballot: Self.leader),
                .batch([Self.transfer(1, from: 1, to: 2), Self.transfer(2, from: 2, to: 3)], ballot: Self.leader),
                .batch([Self.transfer(3, from: 3, to: 4)], ballot: Self.leader),
                .batch([Self.transfer(4, from: 4, to: 5)], ballot: Self.leader),
            ]
            // Slots 1-3 are chosen and applied, which compacts the log at slot 3; slot 4 is applied after that.
            for (index, value) in values.enumerated() {
                let slot = Slot(index + 1)
                let rejected = await node.receive(
                    [
                        .phase2a(
                            ballot: Self.leader, proposals: [SlotProposal(slot: slot, value: value)], chosenThrough: 0),
                        .chosen(ballot: Self.leader, chosenThrough: slot),
                    ],
                    from: ReplicaID(1))
                #expect(rejected.isEmpty)
                try await Self.eventually { await node.status().appliedThrough == slot }
                // The core applies first; the compaction follows when the node has performed that `Ready`.
                if slot == 3 { try await Self.eventually { await node.status().snapshotSlot == 3 } }
            }
            #expect(await node.status().snapshotSlot == 3)
            #expect(await node.status().appliedThrough == 4)

            // A replica that has nothing asks from slot 1: the log below slot 4 is gone, so it gets a snapshot.
            #expect(await node.receive([.catchUpRequest(firstSlot: 1)], from: ReplicaID(3)).isEmpty)
            try await Self.eventually { !recorder.catchUpReplies.isEmpty }
            let reply = try #require(recorder.catchUpReplies.first)
            let snapshot = try #require(reply.snapshot)
            // At the slot the ledger is applied through, past the core's own snapshot, with every record so far.
            #expect(snapshot.slot == 4)
            #expect(snapshot.state.state == (await node.state))
            let wal = try await node.walRecords()
            let datastore = try await node.datastoreRecords()
            #expect(wal.count == 16 && datastore.count == 4)
            #expect(snapshot.state.wal == wal)
            #expect(snapshot.state.datastore == datastore)
            #expect(snapshot.state.historyAfter == 0)
            #expect(reply.entries.map(\.slot) == [4])

            // A laggard that applied slots 1 and 2 gets only the history of slots 3 and 4.
            #expect(await node.receive([.catchUpRequest(firstSlot: 3)], from: ReplicaID(3)).isEmpty)
            try await Self.eventually { recorder.catchUpReplies.count == 2 }
            let partial = try #require(recorder.catchUpReplies.last?.snapshot)
            #expect(partial.state.historyAfter == 2)
            #expect(partial.state.walEntries.map(\.slot) == [3, 4])
            #expect(partial.state.wal == Array(wal.suffix(8)))
            #expect(partial.state.datastore.map(\.slot) == [3, 4])
            await node.writeQueuedWrites()
        }

        // The replica's own snapshot, on disk, is the state at slot 3 without the history.
        let (_, recovered) = try ReplicaStore.open(path: path, cluster: "C1", replica: "S2", minBalance: 0)
        let kept = try #require(recovered.durable.snapshot)
        #expect(kept.slot == 3)
        #expect(kept.state.wal.isEmpty && kept.state.datastore.isEmpty)
        #expect(kept.state.state.balances[AccountID(4)] == 11)
        #expect(recovered.state.balances[AccountID(4)] == 10)
    }
}
