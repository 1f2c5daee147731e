import Foundation
import GRDB
import LedgerCore
import LedgerStore
import Paxos
import Testing

/// A fresh directory for one test's store files, removed when the test ends.
final class StoreDirectory {
    let url: URL

    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-store-\(UUID().uuidString)")
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    /// The path of a file in the directory (which is created by the store when missing).
    func path(_ name: String) -> String {
        url.appendingPathComponent(name).path
    }
}

/// The description of the `StoreError` that `body` throws, or nil when it returns normally.
func storeErrorDescription<Value>(_ body: () throws(StoreError) -> Value) -> String? {
    do {
        _ = try body()
        return nil
    } catch {
        return error.description
    }
}

/// Opens `path` as replica S1 of C1 with minimum balance 0, the identity most tests use.
private func openS1(_ path: String) throws(StoreError) -> (ReplicaStore, ReplicaStore.Recovered) {
    try ReplicaStore.open(path: path, cluster: "C1", replica: "S1", minBalance: 0)
}

/// Changes a closed store file behind the store's back, the way a disk fault or an operator might.
func tamper(_ path: String, _ sql: String) throws {
    let database = try DatabaseQueue(path: path)
    try database.writeWithoutTransaction { try $0.execute(sql: sql) }
}

/// Plays the shell of a replica without a Paxos core: each call chooses one slot holding some commands, applies them
/// to the ledger state and returns the batch that makes it durable, while remembering what recovery must return.
struct Shell {
    var state = LedgerState(cluster: "C1", minBalance: 0)
    var durable = DurableState<LedgerCommand, LedgerSnapshot>()
    var wal: [WALRecord] = []
    var datastore: [DatastoreRecord] = []
    var ballot = Ballot(round: 1, replica: ReplicaID(1))
    var nextSequence: UInt64 = 1

    mutating func request(_ command: LedgerCommand) -> Request<LedgerCommand> {
        defer { nextSequence += 1 }
        return Request(id: RequestID(client: 99, sequence: nextSequence), command: command)
    }

    /// Chooses and applies the next slot.
    mutating func choose(_ commands: [LedgerCommand]) -> StoreBatch {
        let slot = durable.appliedThrough + 1
        let value = SlotValue.batch(commands.map { request($0) }, ballot: ballot)
        let entry = LogEntry(ballot: ballot, value: value, isChosen: true)
        var batch = StoreBatch()
        batch.persist.entries[slot] = entry
        durable.entries[slot] = entry
        for request in value.requests {
            let effects = state.apply(request.command, slot: slot, ballot: ballot)
            wal += effects.wal
            datastore += effects.datastore.map { [$0] } ?? []
            batch.applied.append(effects)
        }
        batch.appliedThrough = slot
        durable.appliedThrough = slot
        return batch
    }

    /// Accepts a value in `slot` without choosing it (a follower's Phase2b).
    mutating func accept(_ commands: [LedgerCommand], in slot: Slot) -> StoreBatch {
        let entry = LogEntry(
            ballot: ballot, value: .batch(commands.map { request($0) }, ballot: ballot), isChosen: false)
        durable.entries[slot] = entry
        var batch = StoreBatch()
        batch.persist.entries[slot] = entry
        return batch
    }

    mutating func promise(_ ballot: Ballot) -> StoreBatch {
        self.ballot = ballot
        durable.promised = ballot
        var batch = StoreBatch()
        batch.persist.promised = ballot
        return batch
    }

    /// Takes a Paxos snapshot at the applied slot, as `ReplicaNode` does: the state without its history.
    mutating func compact() -> StoreBatch {
        let snapshot = Snapshot(
            slot: durable.appliedThrough, state: LedgerSnapshot(state: state), memberships: changedMemberships)
        durable.snapshot = snapshot
        durable.entries = durable.entries.filter { $0.key > snapshot.slot }
        var batch = StoreBatch()
        batch.persist.snapshot = snapshot
        return batch
    }
}

/// Configurations that changed once (S4 added as a learner at slot 1), stored with every snapshot of these tests so
/// that recovery proves they come back.
let changedMemberships: Memberships = {
    var memberships = Memberships(initial: Membership(epoch: 1, voters: [ReplicaID(1), ReplicaID(2), ReplicaID(3)]))
    let added = Membership(epoch: 2, voters: [ReplicaID(1), ReplicaID(2), ReplicaID(3)], learners: [ReplicaID(4)])
    precondition(memberships.record(added, chosenAt: 1, delay: 16) == nil)
    return memberships
}()

func transfer(_ client: UInt64, _ from: UInt64, _ to: UInt64, _ amount: Int64) -> LedgerCommand {
    .transfer(
        TransactionID(client: client, sequence: from * 10_000 + to), from: AccountID(from), to: AccountID(to),
        amount: Amount(amount))
}

/// Slots that exercise every kind of effect: created accounts, committed and refused transfers, a prepare that
/// locks, a prepare voted no, a commit, an abort of a prepared transaction and an abort of an unknown one; an account
/// that changes and then moves out in one slot, one that moves in, and one reserved by a move still prepared.
let history: [[LedgerCommand]] = [
    [.createAccounts([AccountID(1)...AccountID(10)], balance: 10)],
    [transfer(1, 1, 2, 3), transfer(1, 2, 3, 4), transfer(1, 3, 1, 100)],
    [
        .prepare(
            TransactionID(client: 2, sequence: 1),
            CrossShardTransfer(
                from: AccountID(4), to: AccountID(5000), amount: Amount(5), home: "C1",
                participants: ["C1", "C2"])),
        .prepare(
            TransactionID(client: 2, sequence: 2),
            CrossShardTransfer(
                from: AccountID(5000), to: AccountID(5), amount: Amount(6), home: "C2",
                participants: ["C1", "C2"])),
        .prepare(
            TransactionID(client: 2, sequence: 3),
            CrossShardTransfer(
                from: AccountID(7), to: AccountID(5000), amount: Amount(50), home: "C1",
                participants: ["C1", "C2"])),
    ],
    [transfer(1, 4, 8, 1), .follow(TransactionID(client: 2, sequence: 2), committed: true), transfer(1, 5, 8, 1)],
    [
        .prepare(
            TransactionID(client: 2, sequence: 4),
            CrossShardTransfer(
                from: AccountID(9), to: AccountID(5000), amount: Amount(2), home: "C1",
                participants: ["C1", "C2"]))
    ],
    [.abort(TransactionID(client: 2, sequence: 4)), .abort(TransactionID(client: 2, sequence: 5))],
    [
        transfer(1, 10, 1, 1),
        .prepareMove(
            TransactionID(client: 3, sequence: 1), home: "C1", participants: ["C1", "C2"],
            part: .out(AccountID(10), to: "C2")),
        .decideCommit(
            TransactionID(client: 3, sequence: 1),
            agreed: .move(AccountID(10), balance: 9, source: "C1", target: "C2")),
        .prepareMove(
            TransactionID(client: 3, sequence: 2), home: "C2", participants: ["C1", "C2"],
            part: .into(AccountID(12), balance: 3, from: "C2")),
        .follow(TransactionID(client: 3, sequence: 2), committed: true),
        .prepareMove(
            TransactionID(client: 3, sequence: 3), home: "C2", participants: ["C1", "C2"],
            part: .into(AccountID(13), balance: 1, from: "C2")),
    ],
]

/// Builds the history in a store at `path` and returns the shell that remembers what it wrote.
private func buildHistory(at path: String) throws -> Shell {
    var shell = Shell()
    let (store, _) = try openS1(path)
    try store.commit(shell.promise(Ballot(round: 3, replica: ReplicaID(1))))
    // Chosen slots are written as a replica writes them: lazily (no fsync), and every third one durably. Closing
    // the store is no power loss, so all of them must be recovered.
    for (index, commands) in history.enumerated() {
        try store.commit(shell.choose(commands), durable: index % 3 == 0)
    }
    try store.commit(shell.accept([transfer(1, 1, 9, 1)], in: shell.durable.appliedThrough + 2))
    return shell
}

@Suite("Replica store")
struct ReplicaStoreTests {
    @Test("a new file, in a directory that does not exist yet, starts empty")
    func createsAFile() throws {
        let directory = StoreDirectory()
        let path = directory.path("nested/C1/S1.sqlite")
        let (_, recovered) = try openS1(path)
        #expect(recovered.durable == DurableState())
        #expect(recovered.state == LedgerState(cluster: "C1", minBalance: 0))
        #expect(FileManager.default.fileExists(atPath: path))
        let (_, again) = try openS1(path)
        #expect(again.durable == DurableState())
    }

    @Test("everything committed is recovered after closing")
    func recoversEverything() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        let shell = try buildHistory(at: path)
        #expect(
            shell.state.locks == [
                AccountID(4): TransactionID(client: 2, sequence: 1),
                AccountID(13): TransactionID(client: 3, sequence: 3),
            ])
        #expect(shell.state.transactions.count == 14)
        #expect(shell.state.movedOut == [AccountID(10): "C2"])
        #expect(shell.state.balances[AccountID(10)] == nil && shell.state.balances[AccountID(12)] == 3)

        let (store, recovered) = try openS1(path)
        #expect(recovered.state == shell.state)
        #expect(recovered.state.balances == shell.state.balances)
        #expect(recovered.state.locks == shell.state.locks)
        #expect(recovered.state.movedOut == shell.state.movedOut)
        #expect(recovered.durable == shell.durable)
        #expect(recovered.durable.promised == Ballot(round: 3, replica: ReplicaID(1)))
        #expect(recovered.durable.appliedThrough == Slot(history.count))
        #expect(recovered.durable.entries[Slot(history.count + 2)]?.isChosen == false)
        #expect(try store.walRecords() == shell.wal)
        #expect(try store.datastoreRecords() == shell.datastore)
        #expect(shell.wal.count == 40)
        #expect(shell.datastore.count == 7)
        let snapshot = try store.snapshot(of: recovered.state, historyAfter: nil)
        #expect(snapshot.state == shell.state && snapshot.historyAfter == nil)
        #expect(snapshot.wal == shell.wal && snapshot.datastore == shell.datastore)

        // The Paxos core accepts what was recovered and applies nothing twice.
        var replica = Replica<LedgerCommand, LedgerSnapshot>(
            configuration: Paxos.Configuration(
                me: ReplicaID(1), members: [ReplicaID(1)], leaderTimeoutTicks: 10, heartbeatIntervalTicks: 3,
                consensusTimeoutTicks: 30),
            durable: recovered.durable, seed: 1)
        #expect(replica.appliedThrough == Slot(history.count))
        #expect(replica.takeReady().apply.isEmpty)
    }

    @Test("batches committed together are one transaction: all of them in order, or none when SQLite refuses one")
    func batchesCommitTogether() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        var shell = Shell()
        do {
            let (store, _) = try openS1(path)
            // A replica's lazy writes go with its next durable one: the promise, two chosen slots, an acceptance.
            let batches = [
                shell.promise(Ballot(round: 2, replica: ReplicaID(1))), shell.choose(history[0]),
                shell.choose(history[1]), shell.accept([transfer(1, 1, 9, 1)], in: 4),
            ]
            try store.commit(batches, durable: true)
        }
        let before = shell
        do {
            let (store, recovered) = try openS1(path)
            #expect(recovered.state == shell.state)
            #expect(recovered.durable == shell.durable)
            #expect(try store.walRecords() == shell.wal)
            #expect(try store.datastoreRecords() == shell.datastore)
            #expect(shell.datastore.count == 2, "the second slot's two committed transfers")
        }

        // SQLite refuses the first datastore row, in the second batch: nothing of the three batches is written.
        try tamper(
            path,
            """
            CREATE TRIGGER refuse_datastore BEFORE INSERT ON datastore
            BEGIN SELECT RAISE(ABORT, 'refused by the test'); END
            """)
        do {
            let (store, _) = try openS1(path)
            let refused = storeErrorDescription { () throws(StoreError) in
                try store.commit([shell.choose(history[2]), shell.choose(history[3]), shell.choose(history[5])])
            }
            #expect(refused?.contains(path) == true, "\(refused ?? "no error")")
            #expect(refused?.contains("refused by the test") == true, "\(refused ?? "no error")")
            // The caller's memory is ahead of the file now: every later call says so, until it is opened again.
            #expect(storeErrorDescription { () throws(StoreError) in _ = try store.walRecords() } == refused)
            #expect(
                storeErrorDescription { () throws(StoreError) in try store.enqueue(shell.promise(shell.ballot)) }
                    == refused)
        }
        let (store, _) = try openS1(path)
        #expect(try store.walRecords() == before.wal)
        #expect(try store.datastoreRecords() == before.datastore)
    }

    @Test("a snapshot commit stores the snapshot and truncates the log at and below it")
    func snapshotTruncatesTheLog() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        var shell = try buildHistory(at: path)
        do {
            let (store, _) = try openS1(path)
            var batch = shell.compact()
            // Entries at or below the snapshot in the same batch are dropped with the rest.
            batch.persist.entries[1] = LogEntry(
                ballot: shell.ballot, value: .noop(ballot: shell.ballot), isChosen: true)
            try store.commit(batch)
            try store.commit(shell.choose([transfer(3, 1, 2, 1)]))
        }
        let (store, recovered) = try openS1(path)
        #expect(recovered.durable == shell.durable)
        #expect(recovered.durable.snapshot?.slot == Slot(history.count))
        #expect(recovered.durable.entries.keys.sorted() == [Slot(history.count + 1), Slot(history.count + 2)])
        #expect(recovered.state == shell.state)
        #expect(try store.walRecords() == shell.wal)
        let replica = Replica<LedgerCommand, LedgerSnapshot>(
            configuration: Paxos.Configuration(
                me: ReplicaID(1), members: [ReplicaID(1)], leaderTimeoutTicks: 10, heartbeatIntervalTicks: 3,
                consensusTimeoutTicks: 30),
            durable: recovered.durable, seed: 1)
        #expect(replica.snapshotSlot == Slot(history.count))
    }

    @Test("a schema 5 file gains the snapshot's configurations: none for its stored snapshot, the first one governs")
    func migratesFromSchema5() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        var shell = try buildHistory(at: path)
        do {
            let (store, _) = try openS1(path)
            try store.commit(shell.compact())
        }
        try tamper(path, "ALTER TABLE paxos_snapshot DROP COLUMN memberships; PRAGMA user_version = 5")
        shell.durable.snapshot?.memberships = nil
        do {
            let (_, recovered) = try openS1(path)
            #expect(recovered.migratedFrom == 5)
            #expect(recovered.durable == shell.durable)
            #expect(recovered.state == shell.state)
        }
        let version = try DatabaseQueue(path: path).read { try Int.fetchOne($0, sql: "PRAGMA user_version") }
        #expect(version == 6)
        let (_, again) = try openS1(path)
        #expect(again.migratedFrom == nil)
    }

    @Test("an installed snapshot replaces the ledger state and its history")
    func installedSnapshotReplacesHistory() throws {
        let directory = StoreDirectory()
        // A peer with a different, longer history ships its snapshot.
        var peer = Shell()
        let (peerStore, _) = try ReplicaStore.open(
            path: directory.path("S2.sqlite"), cluster: "C1", replica: "S2", minBalance: 0)
        for commands in history + [[transfer(4, 2, 3, 2)], [transfer(4, 3, 10, 1)], [], []] {
            try peerStore.commit(peer.choose(commands))
        }
        let shipped = Snapshot(
            slot: peer.durable.appliedThrough, state: try peerStore.snapshot(of: peer.state, historyAfter: nil),
            memberships: changedMemberships)
        #expect(shipped.state.historyAfter == nil)

        let path = directory.path("S1.sqlite")
        var shell = try buildHistory(at: path)
        do {
            let (store, _) = try openS1(path)
            var batch = StoreBatch(installedSnapshot: shipped.state, appliedThrough: shipped.slot)
            batch.persist.snapshot = shipped
            try store.commit(batch)
            shell.state = shipped.state.state
            shell.wal = shipped.state.wal
            shell.datastore = shipped.state.datastore
            // The history goes into the tables; the Paxos snapshot is kept without it.
            shell.durable = DurableState(
                promised: shell.durable.promised,
                snapshot: Snapshot(
                    slot: shipped.slot, state: shipped.state.withoutHistory, memberships: shipped.memberships),
                appliedThrough: shipped.slot)
            try store.commit(shell.choose([transfer(5, 1, 2, 1)]))
        }
        let (store, recovered) = try openS1(path)
        #expect(recovered.durable == shell.durable)
        #expect(recovered.state == shell.state)
        #expect(try store.walRecords() == shell.wal)
        #expect(try store.datastoreRecords() == shell.datastore)
        #expect(try store.walRecords().count == peer.wal.count + 4)
        // Its history up to the installed slot carries that slot, not each row's own: a laggard behind it gets the
        // whole history from this replica; one at or past it, only the rows after.
        #expect(try store.snapshot(of: recovered.state, historyAfter: 1).historyAfter == nil)
        #expect(try store.snapshot(of: recovered.state, historyAfter: shipped.slot).walEntries.count == 1)
    }

    @Test("a laggard that installs a snapshot gets only the history it lacks, and ends with the same")
    func installedSnapshotAddsTheHistoryALaggardLacks() throws {
        let directory = StoreDirectory()
        // The peer applied the same slots as the laggard, then four more.
        var peer = Shell()
        let (peerStore, _) = try ReplicaStore.open(
            path: directory.path("S2.sqlite"), cluster: "C1", replica: "S2", minBalance: 0)
        var laggard = Shell()
        let path = directory.path("S1.sqlite")
        let (store, _) = try openS1(path)
        for commands in history {
            try peerStore.commit(peer.choose(commands))
            try store.commit(laggard.choose(commands))
        }
        let applied = laggard.durable.appliedThrough
        for commands in [[transfer(4, 2, 3, 2)], [transfer(4, 3, 10, 1)], [], [transfer(5, 1, 2, 1)]] {
            try peerStore.commit(peer.choose(commands))
        }
        let shipped = try peerStore.snapshot(of: peer.state, historyAfter: applied)
        let whole = try peerStore.snapshot(of: peer.state, historyAfter: nil)
        #expect(shipped.historyAfter == applied)
        #expect(!shipped.walEntries.isEmpty && shipped.walEntries == whole.walEntries.filter { $0.slot > applied })
        #expect(!shipped.datastore.isEmpty && shipped.datastore == whole.datastore.filter { $0.slot > applied })

        var batch = StoreBatch(installedSnapshot: shipped, appliedThrough: peer.durable.appliedThrough)
        batch.persist.snapshot = Snapshot(
            slot: peer.durable.appliedThrough, state: shipped, memberships: changedMemberships)
        try store.commit(batch)
        #expect(try store.walRecords() == (try peerStore.walRecords()))
        #expect(try store.datastoreRecords() == (try peerStore.datastoreRecords()))
    }

    @Test("a real Paxos replica runs on the store, takes snapshots and restarts where it stopped")
    func drivesARealReplica() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        let configuration = Paxos.Configuration(
            me: ReplicaID(1), members: [ReplicaID(1)], leaderTimeoutTicks: 4, heartbeatIntervalTicks: 1,
            consensusTimeoutTicks: 30, snapshotIntervalSlots: 3)
        var expected = LedgerState(cluster: "C1", minBalance: 0)
        var sequence: UInt64 = 0

        func run(_ commands: [[LedgerCommand]]) throws {
            let (store, recovered) = try openS1(path)
            var state = recovered.state
            #expect(state == expected)
            var replica = Replica(configuration: configuration, durable: recovered.durable, seed: 7)
            var pending = commands
            for _ in 0..<200 {
                if replica.role == .leader, !pending.isEmpty {
                    for command in pending.removeFirst() {
                        sequence += 1
                        replica.submit(Request(id: RequestID(client: 1, sequence: sequence), command: command))
                    }
                }
                replica.tick()
                let ready = replica.takeReady()
                var batch = StoreBatch(persist: ready.persist)
                for step in ready.apply {
                    switch step {
                    case .installSnapshot(let snapshot):
                        state = snapshot.state.state
                        batch.installedSnapshot = snapshot.state
                        batch.applied = []
                        batch.appliedThrough = snapshot.slot
                    case .slot(let slot, let ballot, let value):
                        for request in value.requests {
                            batch.applied.append(state.apply(request.command, slot: slot, ballot: ballot))
                        }
                        batch.appliedThrough = slot
                    }
                }
                try store.commit(batch)
                if ready.snapshotDue { replica.compact(state: LedgerSnapshot(state: state)) }
            }
            #expect(pending.isEmpty)
            expected = state
        }

        try run(history)
        try run([
            [transfer(6, 1, 2, 1)], [transfer(6, 2, 3, 1)],
            [
                .decideCommit(
                    TransactionID(client: 2, sequence: 1),
                    agreed: .transfer(
                        CrossShardTransfer(
                            from: AccountID(4), to: AccountID(5000), amount: Amount(5), home: "C1",
                            participants: ["C1", "C2"]))),
                .follow(TransactionID(client: 3, sequence: 3), committed: true),
            ],
        ])
        let (_, recovered) = try openS1(path)
        #expect(recovered.state == expected)
        #expect(recovered.state.locks.isEmpty)
        #expect(recovered.durable.snapshot != nil)
    }

    // MARK: - Refusals

    @Test("a directory is refused")
    func refusesADirectory() throws {
        let directory = StoreDirectory()
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        let path = directory.url.path
        #expect(
            storeErrorDescription { () throws(StoreError) in try openS1(path) }
                == "\(path): is a directory; expected a replica's database file")
    }

    @Test("a file of garbage bytes is refused, and left as it was")
    func refusesGarbage() throws {
        let directory = StoreDirectory()
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        let path = directory.path("S1.sqlite")
        let garbage = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: path))
        #expect(
            storeErrorDescription { () throws(StoreError) in try openS1(path) }
                == "\(path): is not a SQLite database (file is not a database); restore it from a backup, or move it "
                + "away to rebuild this replica from its peers")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == garbage)
    }

    @Test("a truncated database file is refused")
    func refusesATruncatedFile() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        do {
            var shell = try buildHistory(at: path)
            let (store, _) = try openS1(path)
            for client in UInt64(10)..<20 {
                try store.commit(shell.choose((1...9).map { transfer(client, $0, $0 + 1, 1) }))
            }
        }
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        #expect(size > 4 * 4096)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()
        #expect(
            storeErrorDescription { () throws(StoreError) in try openS1(path) }
                == "\(path): is corrupt (database disk image is malformed); restore it from a backup, or move it away "
                + "to rebuild this replica from its peers")
    }

    @Test("a file of another replica, another cluster or another minimum balance is refused")
    func refusesAForeignFile() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        _ = try openS1(path)
        #expect(
            storeErrorDescription { () throws(StoreError) in
                try ReplicaStore.open(path: path, cluster: "C1", replica: "S2", minBalance: 0)
            }
                == "\(path): belongs to replica S1 of cluster C1, not to replica S2 of cluster C1; check data_dir and "
                + "the replica name")
        #expect(
            storeErrorDescription { () throws(StoreError) in
                try ReplicaStore.open(path: path, cluster: "C2", replica: "S1", minBalance: 0)
            }
                == "\(path): belongs to replica S1 of cluster C1, not to replica S1 of cluster C2; check data_dir and "
                + "the replica name")
        #expect(
            storeErrorDescription { () throws(StoreError) in
                try ReplicaStore.open(path: path, cluster: "C1", replica: "S1", minBalance: -5)
            }
                == "\(path): was created with min_balance 0, but the configuration says -5; the minimum balance "
                + "cannot change once a cluster has started")
    }

    @Test("a SQLite database that is not a replica store is refused")
    func refusesAnotherDatabase() throws {
        let directory = StoreDirectory()
        try FileManager.default.createDirectory(at: directory.url, withIntermediateDirectories: true)
        let path = directory.path("catalog.sqlite")
        try tamper(path, "CREATE TABLE shards (name TEXT); CREATE TABLE accounts (id INTEGER)")
        #expect(
            storeErrorDescription { () throws(StoreError) in try openS1(path) }
                == "\(path): is a SQLite database but not a replica store (it has tables accounts, shards and no "
                + "schema version); check data_dir")
    }

    @Test("a newer schema version is refused")
    func refusesANewerSchema() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        _ = try openS1(path)
        try tamper(path, "PRAGMA user_version = 7")
        #expect(
            storeErrorDescription { () throws(StoreError) in try openS1(path) }
                == "\(path): was written by a newer ledger (store schema 7; this build reads 6); run a newer build")
    }

    @Test("a file in use by a running replica is refused")
    func refusesAFileInUse() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        let (running, _) = try openS1(path)
        #expect(
            storeErrorDescription { () throws(StoreError) in try openS1(path) }
                == "\(path): is in use by another process (database is locked); is this replica already running?")
        withExtendedLifetime(running) {}
    }

    /// A stored row changed behind the store's back, and the error that must name it.
    struct Corruption: Sendable, CustomTestStringConvertible {
        var name: String
        var sql: String
        var problem: String
        var testDescription: String { name }
    }

    static let corruptions: [Corruption] = [
        Corruption(
            name: "an undecodable snapshot",
            sql: "INSERT INTO paxos_snapshot (id, slot, snapshot) VALUES (1, 2, x'030409')",
            problem: "the snapshot in table paxos_snapshot does not decode (malformed encoding at byte 1: holds a "
                + "transaction status; expected a ledger snapshot)"),
        Corruption(
            name: "a slot value of another kind", sql: "UPDATE paxos_log SET value = x'030301' WHERE slot = 2",
            problem: "the value of log slot 2 in table paxos_log does not decode (malformed encoding at byte 1: holds "
                + "a ballot; expected a slot value)"),
        Corruption(
            name: "a truncated WAL row", sql: "UPDATE wal SET records = substr(records, 1, 5) WHERE position = 2",
            problem: "the WAL records at position 2 in table wal does not decode (malformed encoding at byte 2: 4 "
                + "WAL records cannot fit in the 2 bytes left)"),
        Corruption(
            name: "a datastore record with trailing bytes",
            sql: "UPDATE datastore SET record = CAST(record || x'00' AS BLOB) WHERE position = 1",
            problem: "the datastore record at position 1 in table datastore does not decode (malformed encoding at "
                + "byte 12: 1 trailing byte after a datastore record)"),
        Corruption(
            name: "a log slot at the snapshot", sql: "UPDATE paxos_log SET slot = 0 WHERE slot = 1",
            problem: "log slot 0 is at or below the snapshot at slot 0"),
        Corruption(
            name: "an applied slot that is not chosen", sql: "UPDATE paxos_log SET chosen = 0 WHERE slot = 3",
            problem: "slot 3 is applied but not stored as chosen"),
        Corruption(
            name: "an applied slot missing from the log", sql: "UPDATE meta SET applied_through = 8",
            problem: "slot 8 is applied but not stored as chosen"),
        Corruption(
            name: "a chosen flag that is not 0 or 1", sql: "UPDATE paxos_log SET chosen = 2 WHERE slot = 1",
            problem: "log slot 1 has chosen flag 2, expected 0 or 1"),
        Corruption(
            name: "a text where a number belongs",
            sql: "ALTER TABLE meta RENAME TO old_meta; "
                + "CREATE TABLE meta AS SELECT id, cluster, replica, min_balance, 'three' AS promised_round, "
                + "promised_replica, applied_through FROM old_meta",
            problem: "column promised_round of table meta holds text, expected an integer"),
    ]

    @Test("a corrupted row is refused with the file, the row and what is wrong", arguments: corruptions)
    func refusesACorruptedRow(_ corruption: Corruption) throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        _ = try buildHistory(at: path)
        try tamper(path, corruption.sql)
        #expect(
            storeErrorDescription { () throws(StoreError) in try openS1(path) }
                == "\(path): is corrupt: \(corruption.problem); restore it from a backup, or move it away to rebuild "
                + "this replica from its peers")
    }

    @Test("the ledger state has no tables: a slot writes its log entry and history, and an open replays the log")
    func theStateIsTheSnapshotAndTheLog() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        let shell = try buildHistory(at: path)
        let tables = try DatabaseQueue(path: path).read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        }
        #expect(tables == ["datastore", "meta", "paxos_log", "paxos_snapshot", "wal"])
        let (_, recovered) = try openS1(path)
        #expect(recovered.durable.snapshot == nil)
        #expect(recovered.state == shell.state, "every slot applied again from the log")
    }

    @Test("a stored snapshot of another cluster is refused before anything is replayed on it")
    func refusesASnapshotOfAnotherCluster() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        _ = try buildHistory(at: path)
        let other = directory.path("S4.sqlite")
        do {
            let (store, _) = try ReplicaStore.open(path: other, cluster: "C2", replica: "S4", minBalance: 0)
            var shell = Shell(state: LedgerState(cluster: "C2", minBalance: 0))
            try store.commit(shell.choose([.createAccounts([AccountID(1)...AccountID(10)], balance: 10)]))
            try store.commit(shell.compact())
        }
        try tamper(
            path,
            "ATTACH DATABASE '\(other)' AS other; INSERT INTO paxos_snapshot SELECT * FROM other.paxos_snapshot; "
                + "DELETE FROM paxos_log WHERE slot <= 1")
        #expect(
            storeErrorDescription { () throws(StoreError) in try openS1(path) }
                == "\(path): is corrupt: the snapshot holds cluster C2 with min_balance 0, not C1 with 0; "
                + "restore it from a backup, or move it away to rebuild this replica from its peers")
    }

    @Test("a snapshot with another minimum balance is not installed")
    func refusesAForeignSnapshot() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        let (store, _) = try openS1(path)
        let foreign = LedgerSnapshot(state: LedgerState(cluster: "C1", minBalance: 5), wal: [], datastore: [])
        #expect(
            storeErrorDescription { () throws(StoreError) in
                try store.commit(StoreBatch(installedSnapshot: foreign, appliedThrough: 4))
            }
                == "\(path): cannot install a snapshot with min_balance 5 in a replica with min_balance 0")
    }

    // MARK: - Throughput

    @Test("throughput: batches of 100 transfers, one commit each (printed, not asserted)")
    func throughput() throws {
        let directory = StoreDirectory()
        let path = directory.path("S1.sqlite")
        let (store, _) = try openS1(path)
        var shell = Shell()
        try store.commit(shell.choose([.createAccounts([AccountID(1)...AccountID(10_000)], balance: 1_000)]))
        let batches = 100
        var batchesToCommit: [StoreBatch] = []
        for batch in 0..<batches {
            batchesToCommit.append(
                shell.choose(
                    (0..<100).map { index in
                        let from = UInt64((batch * 100 + index) % 10_000) + 1
                        return .transfer(
                            TransactionID(client: 7, sequence: UInt64(batch * 100 + index)), from: AccountID(from),
                            to: AccountID(from % 10_000 + 1), amount: Amount(1))
                    }))
        }
        let clock = ContinuousClock()
        let elapsed = try clock.measure {
            for batch in batchesToCommit { try store.commit(batch) }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = Int(Double(batches * 100) / seconds)
        print("ReplicaStore throughput: \(batches) commits of 100 transfers in \(elapsed): \(rate) transfers/s")
        #expect(try store.datastoreRecords().count == batches * 100)
    }
}
