import Foundation
import GRDB
import LedgerCore
import LedgerStore
import Paxos
import Testing

/// A store written by the previous release (schema 3, `LedgerCodec` format 3) opens in this one: migrated once, in
/// one transaction, to the window of DESIGN §3.
@Suite("store migration from schema 3")
struct StoreMigrationTests {
    /// The tables of schema 3, as that release created them.
    static let schema3 = """
        CREATE TABLE meta (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            cluster TEXT NOT NULL,
            replica TEXT NOT NULL,
            min_balance INTEGER NOT NULL,
            promised_round INTEGER NOT NULL,
            promised_replica INTEGER NOT NULL,
            applied_through INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE paxos_snapshot (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            slot INTEGER NOT NULL,
            snapshot BLOB NOT NULL
        ) STRICT;
        CREATE TABLE paxos_log (
            slot INTEGER PRIMARY KEY,
            ballot_round INTEGER NOT NULL,
            ballot_replica INTEGER NOT NULL,
            chosen INTEGER NOT NULL,
            value BLOB NOT NULL
        ) STRICT;
        CREATE TABLE balances (account INTEGER PRIMARY KEY, balance INTEGER NOT NULL) STRICT;
        CREATE TABLE moved_out (account INTEGER PRIMARY KEY, cluster TEXT NOT NULL) STRICT;
        CREATE TABLE locks (
            account INTEGER PRIMARY KEY,
            transaction_client INTEGER NOT NULL,
            transaction_sequence INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE transactions (
            client INTEGER NOT NULL,
            sequence INTEGER NOT NULL,
            status BLOB NOT NULL,
            PRIMARY KEY (client, sequence)
        ) STRICT, WITHOUT ROWID;
        CREATE TABLE wal (position INTEGER PRIMARY KEY, records BLOB NOT NULL) STRICT;
        CREATE TABLE datastore (position INTEGER PRIMARY KEY, record BLOB NOT NULL) STRICT;
        """

    static let ballot = Ballot(round: 1, replica: ReplicaID(1))
    static let transfer = TransactionID(client: 6, sequence: 4)
    static let prepared = TransactionID(client: 7, sequence: 1)
    static let homeCommit = TransactionID(client: 7, sequence: 2)
    static let followed = TransactionID(client: 8, sequence: 1)

    /// Format 3 bytes of a value whose layout format 4 kept: the same with the old version byte.
    static func format3(_ bytes: [UInt8]) -> [UInt8] { [3] + bytes.dropFirst() }

    /// Writes a schema 3 file as that release left it after slot 7: an intra-shard transfer, a prepared transaction,
    /// a commit this cluster made as the home, and a commit it followed; its snapshot at slot 7.
    static func writeSchema3(at path: String) throws -> (state: LedgerState, wal: Int, datastore: Int) {
        var applied = LedgerState(cluster: "C1", minBalance: 0)
        var wal: [[WALRecord]] = []
        var datastore: [DatastoreRecord] = []
        func apply(_ command: LedgerCommand, _ slot: Slot) {
            let effects = applied.apply(command, slot: slot, ballot: ballot)
            if !effects.wal.isEmpty { wal.append(effects.wal) }
            if let record = effects.datastore { datastore.append(record) }
        }
        apply(.createAccounts([AccountID(1)...AccountID(5)], balance: 10), 1)
        apply(.transfer(transfer, from: AccountID(1), to: AccountID(2), amount: Amount(1)), 2)
        for (id, from, to, home, slot) in [
            (prepared, AccountID(3), AccountID(900), "C1", Slot(3)),
            (homeCommit, AccountID(4), AccountID(900), "C1", 4),
            (followed, AccountID(900), AccountID(5), "C2", 6),
        ] {
            apply(
                .prepare(
                    id,
                    CrossShardTransfer(
                        from: from, to: to, amount: Amount(1), home: home, participants: ["C1", "C2"])), slot)
        }
        apply(.decideCommit(homeCommit, agreed: applied.terms(of: homeCommit)!), 5)
        apply(.follow(followed, committed: true), 7)
        // What a schema 3 store held: every transaction, no sessions.
        let state = try LedgerState(
            cluster: "C1", minBalance: 0, balances: applied.balances, locks: applied.locks,
            transactions: applied.transactions, openings: applied.openings)

        let database = try DatabaseQueue(path: path)
        try database.write { db in
            try db.execute(sql: schema3)
            try db.execute(
                sql: "INSERT INTO meta VALUES (1, 'C1', 'S1', 0, 1, 1, 7)")
            for (account, balance) in state.balances {
                try db.execute(
                    sql: "INSERT INTO balances VALUES (?, ?)", arguments: [Int64(account.value), balance])
            }
            for (account, owner) in state.locks {
                try db.execute(
                    sql: "INSERT INTO locks VALUES (?, ?, ?)",
                    arguments: [Int64(account.value), Int64(owner.client), Int64(owner.sequence)])
            }
            for (id, status) in state.transactions {
                try db.execute(
                    sql: "INSERT INTO transactions VALUES (?, ?, ?)",
                    arguments: [
                        Int64(id.client), Int64(id.sequence),
                        Data(format3(LedgerCodec.encode(status, opening: state.openings[id]))),
                    ])
            }
            for records in wal {
                try db.execute(
                    sql: "INSERT INTO wal (records) VALUES (?)", arguments: [Data(format3(LedgerCodec.encode(records)))]
                )
            }
            for record in datastore {
                try db.execute(
                    sql: "INSERT INTO datastore (record) VALUES (?)",
                    arguments: [Data(format3(LedgerCodec.encode(record)))])
            }
            // A format 3 snapshot ends with the moved-out accounts, the WAL and the datastore; format 4 has the
            // sessions, the retired clients, the undelivered commits and the history flag (four zeros here) before
            // the last two.
            var snapshot = format3(LedgerCodec.encode(LedgerSnapshot(state: state)))
            #expect(Array(snapshot.suffix(6)) == [0, 0, 0, 0, 0, 0])
            snapshot.removeSubrange((snapshot.count - 6)..<(snapshot.count - 2))
            try db.execute(sql: "INSERT INTO paxos_snapshot VALUES (1, 7, ?)", arguments: [Data(snapshot)])
            try db.execute(sql: "PRAGMA user_version = 3")
        }
        return (state, wal.reduce(0) { $0 + $1.count }, datastore.count)
    }

    @Test("a schema 3 store keeps its history, and only the transactions another cluster may still ask about")
    func migratesOnce() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-migrate-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("S1.sqlite").path
        let old = try Self.writeSchema3(at: path)

        let state = try Self.checkMigrated(path, old)
        let database = try DatabaseQueue(path: path)
        let (version, historyFrom, labels) = try database.read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA user_version"),
                try Int.fetchOne(db, sql: "SELECT history_slots_from FROM meta"),
                try Int.fetchAll(db, sql: "SELECT DISTINCT slot FROM wal")
            )
        }
        #expect(version == 6 && historyFrom == 7 && labels == [7])
        try database.close()

        // Opened again, it is schema 5 already; the home's commit goes once the other participant is seen to have
        // applied it.
        do {
            let (again, reopened) = try ReplicaStore.open(path: path, cluster: "C1", replica: "S1", minBalance: 0)
            #expect(reopened.state == state && reopened.migratedFrom == nil)
            var next = reopened.state
            let command = LedgerCommand.delivered(Self.homeCommit)
            let effects = next.apply(command, slot: 8, ballot: Self.ballot)
            #expect(effects.forgotten == [Self.homeCommit])
            var persist = Persist<LedgerCommand, LedgerSnapshot>()
            persist.entries[8] = LogEntry(
                ballot: Self.ballot,
                value: .batch([Request(id: command.requestID, command: command)], ballot: Self.ballot), isChosen: true)
            try again.commit(StoreBatch(persist: persist, applied: [effects], appliedThrough: 8))
        }
        let (_, last) = try ReplicaStore.open(path: path, cluster: "C1", replica: "S1", minBalance: 0)
        #expect(last.state.transactions.keys.sorted() == [Self.prepared])
        #expect(last.state.undelivered.isEmpty)
    }

    /// Opens the migrated store once and checks what it recovered; the store is closed on return.
    static func checkMigrated(_ path: String, _ old: (state: LedgerState, wal: Int, datastore: Int)) throws
        -> LedgerState
    {
        let (store, recovered) = try ReplicaStore.open(path: path, cluster: "C1", replica: "S1", minBalance: 0)
        #expect(recovered.migratedFrom == 3)
        let state = recovered.state
        #expect(state.balances == old.state.balances && state.locks == old.state.locks)
        #expect(state.transactions.keys.sorted() == [prepared, homeCommit])
        #expect(state.undelivered == [homeCommit])
        #expect(
            state.sessions == [
                6: LedgerState.Session(floor: 5, lastSlot: 0), 7: LedgerState.Session(floor: 3, lastSlot: 0),
                8: LedgerState.Session(floor: 2, lastSlot: 0),
            ])
        #expect(state == old.state.upgradedFromFormat3())
        #expect(try store.walRecords().count == old.wal)
        #expect(try store.datastoreRecords().count == old.datastore)
        #expect(recovered.durable.snapshot?.state.state == old.state.upgradedFromFormat3())
        #expect(recovered.durable.appliedThrough == 7)
        return state
    }
}
