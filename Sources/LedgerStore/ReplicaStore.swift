import Foundation
import GRDB
import GRDBSQLite
import LedgerCore
import Paxos
import Synchronization

/// What one `ReplicaStore.commit(_:durable:)` writes, in this order, in one SQLite transaction.
public struct StoreBatch: Sendable {
    /// The Paxos writes of a `Ready`: the promise, a snapshot (kept without its history; the log at or below its slot
    /// is deleted), log entries.
    public var persist: Persist<LedgerCommand, LedgerSnapshot>
    /// A snapshot received from a peer that replaces the state machine: its state is the Paxos snapshot `persist`
    /// carries, and its history replaces or extends the WAL and datastore. Installed before the applied slots below, so `applied` holds only the
    /// effects of slots after it (the snapshot supersedes any applied before it in the same `Ready`).
    public var installedSnapshot: LedgerSnapshot?
    /// The effects of every command applied, in slot order and command order within a slot: their WAL and datastore
    /// records are written (the rest of the state is replayed from the log).
    public var applied: [LedgerState.Effects]
    /// The applied slot after this batch, when it moved.
    public var appliedThrough: Slot?

    public init(
        persist: Persist<LedgerCommand, LedgerSnapshot> = Persist(),
        installedSnapshot: LedgerSnapshot? = nil,
        applied: [LedgerState.Effects] = [],
        appliedThrough: Slot? = nil
    ) {
        self.persist = persist
        self.installedSnapshot = installedSnapshot
        self.applied = applied
        self.appliedThrough = appliedThrough
    }

    /// True when committing would write nothing.
    public var isEmpty: Bool {
        persist.isEmpty && installedSnapshot == nil && applied.isEmpty && appliedThrough == nil
    }
}

/// The durable state of one ledger replica: its Paxos state (promise, log, snapshot, applied slot) and the history
/// users print (WAL, datastore), in a SQLite file of its own or, for the replicas of a node,
/// under tables of its own in the node's file (`open(path:replicas:)`), which they share for group commit
/// (`StoreFile`). The ledger state (balances, locks, transactions, sessions) is the snapshot's with the chosen log
/// entries after it applied again when the file is opened (`ReplicaStoreSchema`).
///
/// The file runs in WAL journal mode with `synchronous=FULL`, so a durable commit survives a crash or power loss (a
/// lazy one survives a crash of the process, and a power loss only with the next durable commit), and in exclusive
/// locking mode, so a second process cannot open a replica that is running. Every commit is one transaction: the
/// history on disk always matches the applied slot on disk. The file records which replicas of which clusters
/// it holds and with which minimum balance each was created, and is refused to any other.
///
/// After a commit throws, the file is unchanged but the caller's memory is ahead of it: the replica (and every
/// replica sharing its file) must stop and restart from the file. Synchronous calls block the calling thread on disk
/// I/O; every call is serialized on the file's storage thread.
public final class ReplicaStore: Sendable {
    /// The file, as the caller named it.
    public var path: String { file.path }
    public let cluster: String
    public let replica: String
    public let minBalance: Int64

    private let file: StoreFile
    let tables: StoreTables
    private let lastSnapshot = Mutex<SnapshotWrite?>(nil)

    /// The last snapshot this store wrote at a compaction: its encoded size, and how long encoding and writing it
    /// took (in the storage transaction, so the compaction's cost on the replica's writes).
    public struct SnapshotWrite: Sendable, Equatable {
        public var slot: Slot
        public var bytes: Int
        public var seconds: Double
    }

    public var lastSnapshotWrite: SnapshotWrite? { lastSnapshot.withLock { $0 } }

    /// What recovery found in the file: the Paxos replica's durable state and the ledger state at its applied slot.
    public struct Recovered: Sendable {
        /// For `Replica(configuration:durable:seed:)`: every slot from the snapshot's through `appliedThrough` is
        /// stored as chosen.
        public var durable: DurableState<LedgerCommand, LedgerSnapshot>
        /// The ledger state after applying every slot through `durable.appliedThrough`.
        public var state: LedgerState
        /// The store schema this open migrated the file from; nil when it was current (or new).
        public var migratedFrom: Int32?
        /// The replica's own file this open imported into its node's file (`open(path:replicas:importing:)`).
        public var importedFrom: String?
    }

    /// Which replica of which cluster a store belongs to, and the minimum balance it was created with.
    public struct Identity: Sendable, Equatable {
        public var cluster: String
        public var replica: String
        public var minBalance: Int64

        public init(cluster: String, replica: String, minBalance: Int64) {
            self.cluster = cluster
            self.replica = replica
            self.minBalance = minBalance
        }
    }

    private init(file: StoreFile, identity: Identity, tables: StoreTables) {
        self.file = file
        self.cluster = identity.cluster
        self.replica = identity.replica
        self.minBalance = identity.minBalance
        self.tables = tables
    }

    // MARK: - Opening

    /// The store schema this build writes (`PRAGMA user_version`).
    public static var schemaVersion: Int32 { ReplicaStoreSchema.version }

    /// Opens or creates a replica's own file; recovers exactly where it was. A missing file is created (with its
    /// parent directory) for this replica; an unreadable, corrupt (not a database, failed `PRAGMA quick_check`,
    /// undecodable rows, broken ledger or Paxos invariants), newer or foreign file throws a `StoreError` naming the
    /// file — never a silent re-initialisation.
    ///
    /// - Parameters:
    ///   - cluster: the cluster name, like `C1`.
    ///   - replica: the replica name, like `S1`.
    ///   - minBalance: the cluster's minimum balance; it cannot change after the file is created.
    public static func open(path: String, cluster: String, replica: String, minBalance: Int64) throws(StoreError)
        -> (ReplicaStore, Recovered)
    {
        try open(path: path, replicas: [Identity(cluster: cluster, replica: replica, minBalance: minBalance)])[0]
    }

    /// Opens or creates the file of a node hosting `replicas` (of different clusters), each under tables of its own,
    /// and recovers each; the stores share the file, and with it one transaction and one fsync for the writes they
    /// queue together (`enqueue`, `commitDurably`). One replica gets a file of its own (`open(path:cluster:...)`).
    /// A file is refused unless it holds exactly these replicas, as each was created.
    public static func open(path: String, replicas: [Identity]) throws(StoreError) -> [(ReplicaStore, Recovered)] {
        precondition(!replicas.isEmpty, "a store file holds at least one replica")
        try prepareLocation(path)
        let file = try StoreFile(
            path: path, label: replicas.map { "replica \($0.cluster)/\($0.replica)" }.joined(separator: ", "))
        let stores = replicas.map { identity in
            ReplicaStore(
                file: file, identity: identity,
                tables: StoreTables(
                    prefix: replicas.count == 1 ? "" : StoreTables.prefix(ofReplica: identity.replica)))
        }
        return try file.access { db throws(StoreError) in
            try checkIntegrity(db, path: path)
            let migratedFrom = try createOrCheckSchema(db, stores: stores)
            return try stores.map { store throws(StoreError) in
                try store.checkIdentity(db)
                var recovered = try store.recover(db)
                recovered.migratedFrom = migratedFrom
                return (store, recovered)
            }
        }
    }

    /// Opens a node's file as `open(path:replicas:)` does; before it exists, builds it from the replicas' own files
    /// (`ownFiles`, one per replica, as a build that kept a file per replica left them, missing ones skipped): each
    /// is opened as its replica would open it (checked, migrated), copied into a new file, which then takes `path`,
    /// and renamed `<file>.imported`. A node's file beside a replica's own file is refused: which one holds the
    /// replica is for the operator to say.
    public static func open(path: String, replicas: [Identity], importing ownFiles: [String]) throws(StoreError)
        -> [(ReplicaStore, Recovered)]
    {
        precondition(ownFiles.count == replicas.count, "one own file per replica")
        let found = zip(replicas, ownFiles).filter { FileManager.default.fileExists(atPath: $0.1) }
        if FileManager.default.fileExists(atPath: path), let (identity, own) = found.first {
            throw StoreError(
                path: own,
                message: "is the own store of \(identity.replica), but its node keeps \(identity.replica) in \(path); "
                    + "if \(path) was imported from it (an import renames the files it took), move \(own) away, "
                    + "otherwise move \(path) away to import \(own) again")
        }
        var imported = false
        if !FileManager.default.fileExists(atPath: path), !found.isEmpty {
            let building = path + ".importing"
            try removeFile(building)
            try importStores(found, into: building, replicas: replicas)
            try moveFile(building, to: path)
            for (_, own) in found { try moveFile(own, to: own + ".imported") }
            imported = true
        }
        return try open(path: path, replicas: replicas).map { store, recovered in
            var recovered = recovered
            if imported, let own = found.first(where: { $0.0.replica == store.replica })?.1 {
                recovered.importedFrom = own
            }
            return (store, recovered)
        }
    }

    /// Creates a node's file at `path` for `replicas` and copies every table of each found replica's own file into
    /// that replica's tables, in one transaction.
    private static func importStores(
        _ found: [(Identity, String)], into path: String, replicas: [Identity]
    ) throws(StoreError) {
        for (identity, own) in found {
            // Checked, recovered and migrated as its replica would open it; closed when the stores are released.
            _ = try open(path: own, replicas: [identity])
        }
        let stores = try open(path: path, replicas: replicas)
        try stores[0].0.file.access { db throws(StoreError) in
            for (index, (_, own)) in found.enumerated() {
                try StoreFile.run(path, "attaching \(own)") {
                    try db.execute(sql: "ATTACH DATABASE ? AS own\(index)", arguments: [own])
                }
            }
            try StoreFile.run(path, "importing \(found.map(\.1).joined(separator: ", "))") {
                try db.inTransaction(.immediate) {
                    for (index, (identity, _)) in found.enumerated() {
                        let tables = stores.first { $0.0.replica == identity.replica }!.0.tables
                        for table in ReplicaStoreSchema.tables {
                            let columns = try Row.fetchAll(db, sql: "PRAGMA own\(index).table_info(\(table))")
                                .map { $0["name"] as String }.joined(separator: ", ")
                            try db.execute(sql: tables.sql("DELETE FROM \(table)"))
                            try db.execute(
                                sql: "INSERT INTO \(tables.sql(table)) (\(columns)) SELECT \(columns) "
                                    + "FROM own\(index).\(table)")
                        }
                    }
                    return .commit
                }
            }
            for index in found.indices {
                try StoreFile.run(path, "detaching") { try db.execute(sql: "DETACH DATABASE own\(index)") }
            }
        }
    }

    /// Renames a closed SQLite file with its WAL and shared-memory files, when they exist.
    private static func moveFile(_ path: String, to destination: String) throws(StoreError) {
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            do {
                try FileManager.default.moveItem(atPath: path + suffix, toPath: destination + suffix)
            } catch {
                throw StoreError(
                    path: path + suffix,
                    message: "cannot be renamed \(destination + suffix): \(error.localizedDescription)")
            }
        }
    }

    /// Removes a SQLite file an interrupted import left, with its WAL and shared-memory files.
    private static func removeFile(_ path: String) throws(StoreError) {
        for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            do {
                try FileManager.default.removeItem(atPath: path + suffix)
            } catch {
                throw StoreError(path: path + suffix, message: "cannot be removed: \(error.localizedDescription)")
            }
        }
    }

    /// Refuses a directory and creates a missing parent directory.
    private static func prepareLocation(_ path: String) throws(StoreError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard !isDirectory.boolValue else {
                throw StoreError(path: path, message: "is a directory; expected a replica's database file")
            }
            return
        }
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw StoreError(
                path: path, message: "cannot create its directory \(parent): \(error.localizedDescription)")
        }
    }

    private static func checkIntegrity(_ db: Database, path: String) throws(StoreError) {
        let problems = try StoreFile.run(path, "checking integrity") {
            try String.fetchAll(db, sql: "PRAGMA quick_check(5)")
        }
        guard problems == ["ok"] else {
            throw .corrupt(path, "PRAGMA quick_check reports: \(problems.joined(separator: "; "))")
        }
    }

    /// Creates the schema and identity of every store in an empty file; in an existing one, checks the schema
    /// version (migrating an older one it knows, in a replica's own file; returns that version) and that the file
    /// holds the tables of exactly these stores.
    private static func createOrCheckSchema(_ db: Database, stores: [ReplicaStore]) throws(StoreError) -> Int32? {
        let path = stores[0].path
        let version = try StoreFile.run(path, "reading the schema version") {
            try Int32.fetchOne(db, sql: "PRAGMA user_version")
        }
        let expected = ReplicaStoreSchema.version
        let tables = try StoreFile.run(path, "reading the schema") {
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        }
        if version == 0 {
            guard tables.isEmpty else {
                throw StoreError(
                    path: path,
                    message: "is a SQLite database but not a replica store (it has tables "
                        + "\(tables.joined(separator: ", ")) and no schema version); check data_dir")
            }
            try StoreFile.run(path, "creating the schema") {
                try db.inTransaction(.immediate) {
                    for store in stores {
                        try db.execute(sql: store.tables.sql(ReplicaStoreSchema.create))
                        try db.execute(
                            sql: store.tables.sql(
                                """
                                INSERT INTO meta (id, cluster, replica, min_balance, promised_round, promised_replica,
                                    applied_through)
                                VALUES (1, ?, ?, ?, 0, 0, 0)
                                """),
                            arguments: [store.cluster, store.replica, store.minBalance])
                    }
                    try db.execute(sql: "PRAGMA user_version = \(expected)")
                    return .commit
                }
            }
            return nil
        }
        var migratedFrom: Int32?
        if let version, version == 3 || version == 4, stores.count == 1 {
            if version == 3 { try stores[0].migrateFrom3(db) }
            try stores[0].migrateFrom4(db)
            try migrateFrom5(db, stores: stores)
            migratedFrom = version
        } else if version == 5 {
            try migrateFrom5(db, stores: stores)
            migratedFrom = version
        } else if version != expected {
            if let version, version > expected {
                throw StoreError(
                    path: path,
                    message: "was written by a newer ledger (store schema \(version); this build reads "
                        + "\(expected)); run a newer build")
            }
            throw StoreError(
                path: path,
                message:
                    "has unknown store schema \(version.map(String.init) ?? "NULL") (this build reads \(expected), "
                    + "and migrates 3, 4 and 5)")
        }
        // Every store's meta table, and no other: a node's file that held other replicas belongs to another layout.
        let found = tables.filter { $0 == "meta" || StoreTables.isPrefixedMeta($0) }
        let wanted = stores.map { $0.tables.sql("meta") }.sorted()
        guard found == wanted else {
            func replicas(_ metas: [String]) -> String {
                metas.map { $0 == "meta" ? "one replica in a file of its own" : $0.dropLast(5).uppercased() }
                    .joined(separator: ", ")
            }
            throw StoreError(
                path: path,
                message: "holds the store of \(replicas(found)), but this node hosts "
                    + "\(stores.count == 1 ? stores[0].replica + " in a file of its own" : replicas(wanted)); "
                    + "check hosts.ini and data_dir")
        }
        return migratedFrom
    }

    /// Checks that the meta table names this store's replica, cluster and minimum balance.
    private func checkIdentity(_ db: Database) throws(StoreError) {
        let rows = try fetchRows(db, table: "meta", sql: "SELECT cluster, replica, min_balance FROM meta")
        guard rows.count == 1 else { throw .corrupt(path, "table meta has \(rows.count) rows, expected 1") }
        let storedCluster = try rows[0].text(0, "cluster")
        let storedReplica = try rows[0].text(1, "replica")
        guard storedCluster == cluster, storedReplica == replica else {
            throw StoreError(
                path: path,
                message: "belongs to replica \(storedReplica) of cluster \(storedCluster), not to replica \(replica) "
                    + "of cluster \(cluster); check data_dir and the replica name")
        }
        let storedMinBalance = try rows[0].integer(2, "min_balance")
        guard storedMinBalance == minBalance else {
            throw StoreError(
                path: path,
                message: "was created with min_balance \(storedMinBalance), but the configuration says \(minBalance); "
                    + "the minimum balance cannot change once a cluster has started")
        }
    }

    /// Schema 3 to 4, in one transaction: the new tables and columns, then the remembered transactions cut to what
    /// the window keeps, in the tables and in the Paxos snapshot (`LedgerState.upgradedFromFormat3`).
    private func migrateFrom3(_ db: Database) throws(StoreError) {
        try access(inTransaction: db, "migrating store schema 3 to 4") { () throws(StoreError) in
            try run("adding the tables of schema 4") { try db.execute(sql: ReplicaStoreSchema.migrateFrom3) }
            let state = try ledgerState(db)
            let upgraded = state.upgradedFromFormat3()
            try run("cutting the transactions to the window") {
                let delete = try statement(db, "DELETE FROM transactions WHERE client = ? AND sequence = ?")
                for id in state.transactions.keys where upgraded.transactions[id] == nil {
                    try delete.run(.integer(Int64(storing: id.client)), .integer(Int64(storing: id.sequence)))
                }
                try writeUndelivered(upgraded.undelivered.map { ($0, true) }, db)
                try writeSessions(upgraded.sessions.mapValues { Optional($0) }, db)
            }
            let snapshots = try fetchRows(db, table: "paxos_snapshot", sql: "SELECT snapshot FROM paxos_snapshot")
            if let row = snapshots.first {
                let snapshot = try row.decoded(0, "snapshot", "the snapshot", LedgerCodec.decodeSnapshot)
                let upgraded = LedgerSnapshot(state: snapshot.state.upgradedFromFormat3())
                try run("rewriting the snapshot") {
                    try statement(db, "UPDATE paxos_snapshot SET snapshot = ? WHERE id = 1")
                        .run(.blob(LedgerCodec.encode(upgraded)))
                }
            }
            try run("setting the schema version") { try db.execute(sql: "PRAGMA user_version = 4") }
        }
    }

    /// Schema 4 to 5, in one transaction: the state the tables hold at the applied slot becomes the Paxos snapshot
    /// there (the log at or below it goes, as at a compaction), then the tables of the ledger state go. A stored
    /// snapshot beyond the applied slot (installed but not applied before a crash) stays: the replica installs it at
    /// start.
    private func migrateFrom4(_ db: Database) throws(StoreError) {
        try access(inTransaction: db, "migrating store schema 4 to 5") { () throws(StoreError) in
            let state = try ledgerState(db)
            let applied = try fetchRows(db, table: "meta", sql: "SELECT applied_through FROM meta")[0]
                .unsigned(0, "applied_through")
            let snapshotSlot = try fetchRows(db, table: "paxos_snapshot", sql: "SELECT slot FROM paxos_snapshot")
                .first?.unsigned(0, "slot")
            try run("writing the state as the snapshot") {
                if (snapshotSlot ?? 0) <= applied {
                    try statement(db, "INSERT OR REPLACE INTO paxos_snapshot (id, slot, snapshot) VALUES (1, ?, ?)")
                        .run(
                            .integer(Int64(storing: applied)), .blob(LedgerCodec.encode(LedgerSnapshot(state: state))))
                    try statement(db, "DELETE FROM paxos_log WHERE slot <= ?").run(.integer(Int64(storing: applied)))
                }
                try db.execute(sql: ReplicaStoreSchema.migrateFrom4)
                try db.execute(sql: "PRAGMA user_version = 5")
            }
        }
    }

    /// Schema 5 to 6, in one transaction for every store of the file: the snapshot's configurations, NULL in the
    /// snapshots already stored (the deployment's first configuration governs them).
    private static func migrateFrom5(_ db: Database, stores: [ReplicaStore]) throws(StoreError) {
        try stores[0].access(inTransaction: db, "migrating store schema 5 to 6") { () throws(StoreError) in
            try StoreFile.run(stores[0].path, "adding the snapshot's configurations") {
                for store in stores { try db.execute(sql: store.tables.sql(ReplicaStoreSchema.migrateFrom5)) }
                try db.execute(sql: "PRAGMA user_version = 6")
            }
        }
    }

    /// Runs `body` in one SQLite transaction, rolled back if it throws.
    fileprivate func access(inTransaction db: Database, _ doing: String, _ body: () throws(StoreError) -> Void)
        throws(StoreError)
    {
        try run(doing) { try db.execute(sql: "BEGIN IMMEDIATE") }
        do {
            try body()
        } catch {
            try? db.execute(sql: "ROLLBACK")
            throw error
        }
        try run(doing) { try db.execute(sql: "COMMIT") }
    }

    /// Reads everything back and checks the invariants `Replica` and `LedgerState` rely on.
    private func recover(_ db: Database) throws(StoreError) -> Recovered {
        let meta = try fetchRows(
            db, table: "meta", sql: "SELECT promised_round, promised_replica, applied_through FROM meta")[0]
        let promised = Ballot(
            round: try meta.unsigned(0, "promised_round"),
            replica: ReplicaID(Int(try meta.integer(1, "promised_replica"))))
        let appliedThrough = try meta.unsigned(2, "applied_through")

        var snapshot: Snapshot<LedgerSnapshot>?
        let snapshots = try fetchRows(
            db, table: "paxos_snapshot", sql: "SELECT slot, snapshot, memberships FROM paxos_snapshot")
        if let row = snapshots.first {
            let slot = try row.unsigned(0, "slot")
            snapshot = Snapshot(
                slot: slot, state: try row.decoded(1, "snapshot", "the snapshot", LedgerCodec.decodeSnapshot),
                memberships: try row.decodedIfPresent(
                    2, "memberships", "the snapshot's configurations", LedgerCodec.decodeMemberships))
        }
        let snapshotSlot = snapshot?.slot ?? 0
        guard snapshotSlot <= appliedThrough else {
            throw .corrupt(
                path, "the snapshot is at slot \(snapshotSlot) but only slots up to \(appliedThrough) are applied")
        }

        var entries: [Slot: LogEntry<LedgerCommand>] = [:]
        try forEachRow(
            db, table: "paxos_log",
            sql: "SELECT slot, ballot_round, ballot_replica, chosen, value FROM paxos_log ORDER BY slot"
        ) { row throws(StoreError) in
            let slot = try row.unsigned(0, "slot")
            guard slot > snapshotSlot else {
                throw .corrupt(path, "log slot \(slot) is at or below the snapshot at slot \(snapshotSlot)")
            }
            let ballot = Ballot(
                round: try row.unsigned(1, "ballot_round"),
                replica: ReplicaID(Int(try row.integer(2, "ballot_replica"))))
            let chosen = try row.integer(3, "chosen")
            guard chosen == 0 || chosen == 1 else {
                throw .corrupt(path, "log slot \(slot) has chosen flag \(chosen), expected 0 or 1")
            }
            let value = try row.decoded(4, "value", "the value of log slot \(slot)", LedgerCodec.decodeSlotValue)
            entries[slot] = LogEntry(ballot: ballot, value: value, isChosen: chosen == 1)
        }
        if appliedThrough > snapshotSlot {
            for slot in (snapshotSlot + 1)...appliedThrough where entries[slot]?.isChosen != true {
                throw .corrupt(path, "slot \(slot) is applied but not stored as chosen")
            }
        }

        let state = try replayed(snapshot: snapshot, entries: entries, through: appliedThrough)
        // Undecodable history is corruption too; find it now rather than when someone prints the WAL.
        _ = try walRecords(db)
        _ = try datastoreRecords(db)
        return Recovered(
            durable: DurableState(
                promised: promised, snapshot: snapshot, entries: entries, appliedThrough: appliedThrough),
            state: state)
    }

    /// The ledger state after `appliedThrough`: the snapshot's (or an empty ledger's), with every chosen slot after
    /// it applied again, as the replica applied them. A snapshot of another cluster or minimum balance is refused.
    private func replayed(
        snapshot: Snapshot<LedgerSnapshot>?, entries: [Slot: LogEntry<LedgerCommand>], through appliedThrough: Slot
    ) throws(StoreError) -> LedgerState {
        var state = snapshot?.state.state ?? LedgerState(cluster: cluster, minBalance: minBalance)
        guard state.cluster == cluster, state.minBalance == minBalance else {
            throw .corrupt(
                path,
                "the snapshot holds cluster \(state.cluster) with min_balance \(state.minBalance), not \(cluster) with "
                    + "\(minBalance)")
        }
        let from = (snapshot?.slot ?? 0) + 1
        guard from <= appliedThrough else { return state }
        for slot in from...appliedThrough {
            // Every slot through the applied one is stored as chosen (checked above).
            let value = entries[slot]!.value
            for request in value.requests { _ = state.apply(request.command, slot: slot, ballot: value.ballot) }
        }
        return state
    }

    /// The ledger state schema 3 and 4 kept in tables, at the applied slot (for their migration).
    private func ledgerState(_ db: Database) throws(StoreError) -> LedgerState {
        var balances: [AccountID: Int64] = [:]
        try forEachRow(db, table: "balances", sql: "SELECT account, balance FROM balances") { row throws(StoreError) in
            balances[try row.account(0, "account")] = try row.integer(1, "balance")
        }
        var movedOut: [AccountID: String] = [:]
        try forEachRow(db, table: "moved_out", sql: "SELECT account, cluster FROM moved_out") {
            row throws(StoreError) in
            movedOut[try row.account(0, "account")] = try row.text(1, "cluster")
        }
        var locks: [AccountID: TransactionID] = [:]
        try forEachRow(
            db, table: "locks", sql: "SELECT account, transaction_client, transaction_sequence FROM locks"
        ) { row throws(StoreError) in
            locks[try row.account(0, "account")] = TransactionID(
                client: try row.unsigned(1, "transaction_client"), sequence: try row.unsigned(2, "transaction_sequence")
            )
        }
        var sessions: [UInt64: LedgerState.Session] = [:]
        try forEachRow(db, table: "sessions", sql: "SELECT client, floor, last_slot FROM sessions") {
            row throws(StoreError) in
            sessions[try row.unsigned(0, "client")] = LedgerState.Session(
                floor: try row.unsigned(1, "floor"), lastSlot: try row.unsigned(2, "last_slot"))
        }
        var undelivered: Set<TransactionID> = []
        try forEachRow(db, table: "undelivered", sql: "SELECT client, sequence FROM undelivered") {
            row throws(StoreError) in
            undelivered.insert(
                TransactionID(client: try row.unsigned(0, "client"), sequence: try row.unsigned(1, "sequence")))
        }
        let retiredClients = try fetchRows(db, table: "meta", sql: "SELECT retired_clients FROM meta")[0]
            .unsigned(0, "retired_clients")
        var transactions: [TransactionID: LedgerState.Status] = [:]
        var openings: [TransactionID: LedgerCommand] = [:]
        try forEachRow(
            db, table: "transactions", sql: "SELECT client, sequence, status FROM transactions"
        ) { row throws(StoreError) in
            let id = TransactionID(client: try row.unsigned(0, "client"), sequence: try row.unsigned(1, "sequence"))
            let record = try row.decoded(2, "status", "the status of \(id)", LedgerCodec.decodeStatus)
            transactions[id] = record.status
            openings[id] = record.opening
        }
        do {
            return try LedgerState(
                cluster: cluster, minBalance: minBalance, balances: balances, locks: locks,
                transactions: transactions, openings: openings, movedOut: movedOut, sessions: sessions,
                retiredClients: retiredClients, undelivered: undelivered)
        } catch {
            throw .corrupt(path, "the ledger state breaks an invariant: \(error.description)")
        }
    }

    // MARK: - Writing

    /// One SQLite transaction: the Paxos writes of a `Ready`, then the history of the slots applied (and of an
    /// installed snapshot), then the applied slot.
    /// An empty batch writes nothing.
    ///
    /// A `durable` commit is on disk when this returns (an fsync). A lazy one (`durable: false`, for writes a crash
    /// may lose: chosen marks and applied slots, see `Ready`) skips the fsync: it reaches the disk with the next
    /// durable commit, and a crash before that loses it and every commit after it, never an earlier one alone (the
    /// WAL is replayed in order up to the first incomplete commit).
    public func commit(_ batch: StoreBatch, durable: Bool = true) throws(StoreError) {
        try commit([batch], durable: durable)
    }

    /// Commits `batches` in order as one SQLite transaction, as if each were committed in turn but with one fsync
    /// at most (`commit(_:durable:)`), after every write queued before them in the file.
    public func commit(_ batches: [StoreBatch], durable: Bool = true) throws(StoreError) {
        guard let write = try checked(batches) else { return }
        try file.commitNow(write, durable: durable)
    }

    /// Queues `batch` for the file's next transaction (a lazy write: a crash may lose it, see `commit`). It goes
    /// with the next durable commit of any store of the file, or at `flush()`, or before a read.
    public func enqueue(_ batch: StoreBatch) throws(StoreError) {
        guard let write = try checked([batch]) else { return }
        try file.enqueue(write)
    }

    /// Commits `batches` durably without blocking the caller: in the file's next transaction, with every write
    /// queued before them (every hosted replica's), fsynced once for all. Returns once they are on disk.
    public func commitDurably(_ batches: [StoreBatch]) async throws(StoreError) {
        guard let write = try checked(batches) else { return }
        try await file.commit(write)
    }

    /// Starts a transaction without an fsync for the writes queued in the file, unless one is under way or queued
    /// (it takes them); true when it started one. Throws the error of a failed earlier transaction.
    @discardableResult
    public func flush() throws(StoreError) -> Bool {
        try file.flush()
    }

    /// Writes the writes queued in the file before returning, without an fsync unless a durable one is queued.
    public func writeQueued() throws(StoreError) {
        try file.writeQueued()
    }

    /// How many transactions this store's file committed since it was opened, fsynced or not: every store of a
    /// node's file gives the same counts (tests and audits).
    public var fileTransactions: (durable: Int, lazy: Int) {
        let transactions = file.transactions
        return (transactions.durable, transactions.lazy)
    }

    /// The non-empty batches as one write of this store, or nil; refuses an installed snapshot of another cluster
    /// or minimum balance before it is queued, so that it stops no other store of the file.
    private func checked(_ batches: [StoreBatch]) throws(StoreError) -> StoreFile.Write? {
        let batches = batches.filter { !$0.isEmpty }
        guard !batches.isEmpty else { return nil }
        for installed in batches.compactMap(\.installedSnapshot) where installed.state.minBalance != minBalance {
            throw StoreError(
                path: path,
                message: "cannot install a snapshot with min_balance \(installed.state.minBalance) in a replica "
                    + "with min_balance \(minBalance)")
        }
        for installed in batches.compactMap(\.installedSnapshot) where installed.state.cluster != cluster {
            throw StoreError(
                path: path,
                message: "cannot install a snapshot of cluster \(installed.state.cluster) in a replica of \(cluster)")
        }
        return StoreFile.Write(store: self, batches: batches)
    }

    /// Writes one batch in the transaction the file runs (`StoreFile`).
    func write(_ batch: StoreBatch, _ db: Database) throws {
        let persist = batch.persist
        if let promised = persist.promised {
            try statement(db, "UPDATE meta SET promised_round = ?, promised_replica = ? WHERE id = 1")
                .run(.integer(Int64(storing: promised.round)), .integer(Int64(promised.replica.index)))
        }
        var snapshotSlot: Slot = 0
        if let snapshot = persist.snapshot {
            snapshotSlot = snapshot.slot
            // The history is in the wal and datastore tables already (an installed snapshot's too, below).
            let started = ContinuousClock.now
            let encoded = LedgerCodec.encode(snapshot.state.withoutHistory)
            try statement(
                db, "INSERT OR REPLACE INTO paxos_snapshot (id, slot, snapshot, memberships) VALUES (1, ?, ?, ?)"
            )
            .run(
                .integer(Int64(storing: snapshot.slot)), .blob(encoded),
                snapshot.memberships.map { .blob(LedgerCodec.encode($0)) } ?? .null)
            let elapsed = ContinuousClock.now - started
            lastSnapshot.withLock {
                $0 = SnapshotWrite(
                    slot: snapshot.slot, bytes: encoded.count,
                    seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            }
            try statement(db, "DELETE FROM paxos_log WHERE slot <= ?")
                .run(.integer(Int64(storing: snapshot.slot)))
        }
        if !persist.entries.isEmpty {
            let insert = try statement(
                db,
                """
                INSERT OR REPLACE INTO paxos_log (slot, ballot_round, ballot_replica, chosen, value)
                VALUES (?, ?, ?, ?, ?)
                """)
            for (slot, entry) in persist.entries where slot > snapshotSlot {
                try insert.run(
                    .integer(Int64(storing: slot)), .integer(Int64(storing: entry.ballot.round)),
                    .integer(Int64(entry.ballot.replica.index)), .integer(entry.isChosen ? 1 : 0),
                    .blob(LedgerCodec.encode(entry.value)))
            }
        }
        if let installed = batch.installedSnapshot {
            try replaceLedger(with: installed, label: batch.appliedThrough ?? 0, db)
        }
        if !batch.applied.isEmpty {
            try writeEffects(batch.applied, db)
        }
        if let appliedThrough = batch.appliedThrough {
            try statement(db, "UPDATE meta SET applied_through = ? WHERE id = 1")
                .run(.integer(Int64(storing: appliedThrough)))
        }
    }

    /// The history of an installed snapshot (its state is the Paxos snapshot written with it): a whole one replaces
    /// this replica's, its rows labelled `label`, the slot the snapshot brings the replica to
    /// (`meta.history_slots_from`: the rows at or below it are the history up to there, whatever slot they name); a
    /// partial one (`historyAfter`) adds the rows of the slots after this replica's applied slot, the history it
    /// lacks.
    private func replaceLedger(with snapshot: LedgerSnapshot, label: Slot, _ db: Database) throws {
        var after: Slot = 0
        if snapshot.historyAfter != nil {
            after = UInt64(bitPattern: try Int64.fetchOne(db, sql: tables.sql("SELECT applied_through FROM meta")) ?? 0)
        } else {
            for table in ["wal", "datastore"] { try db.execute(sql: tables.sql("DELETE FROM \(table)")) }
            try statement(db, "UPDATE meta SET history_slots_from = ? WHERE id = 1")
                .run(.integer(Int64(storing: label)))
        }
        let whole = snapshot.historyAfter == nil
        for entry in snapshot.walEntries where whole || entry.slot > after {
            try appendWAL(entry.records, slot: whole ? label : entry.slot, db)
        }
        for record in snapshot.datastore where whole || record.slot > after {
            try appendDatastore(record, slot: whole ? label : record.slot, db)
        }
    }

    /// Appends the WAL and datastore records of many commands, in order. The rest of their effects is the ledger
    /// state, which the log entries of their slots give again at recovery.
    private func writeEffects(_ applied: [LedgerState.Effects], _ db: Database) throws {
        for effects in applied {
            if !effects.wal.isEmpty { try appendWAL(effects.wal, slot: effects.slot, db) }
            if let record = effects.datastore { try appendDatastore(record, slot: effects.slot, db) }
        }
    }

    /// Sets each client's session, or removes it for nil (evicted): schema 3's migration.
    private func writeSessions(_ sessions: [UInt64: LedgerState.Session?], _ db: Database) throws {
        guard !sessions.isEmpty else { return }
        let upsert = try statement(
            db, "INSERT OR REPLACE INTO sessions (client, floor, last_slot) VALUES (?, ?, ?)")
        let delete = try statement(db, "DELETE FROM sessions WHERE client = ?")
        for (client, session) in sessions {
            if let session {
                try upsert.run(
                    .integer(Int64(storing: client)), .integer(Int64(storing: session.floor)),
                    .integer(Int64(storing: session.lastSlot)))
            } else {
                try delete.run(.integer(Int64(storing: client)))
            }
        }
    }

    /// Marks each transaction as awaiting delivery (true) or not (false): schema 3's migration.
    private func writeUndelivered(_ changes: [(TransactionID, Bool)], _ db: Database) throws {
        guard !changes.isEmpty else { return }
        let insert = try statement(
            db, "INSERT OR REPLACE INTO undelivered (client, sequence) VALUES (?, ?)")
        let delete = try statement(db, "DELETE FROM undelivered WHERE client = ? AND sequence = ?")
        for (id, pinned) in changes {
            try (pinned ? insert : delete).run(
                .integer(Int64(storing: id.client)), .integer(Int64(storing: id.sequence)))
        }
    }

    private func appendWAL(_ records: [WALRecord], slot: Slot, _ db: Database) throws {
        try statement(db, "INSERT INTO wal (records, slot) VALUES (?, ?)")
            .run(.blob(LedgerCodec.encode(records)), .integer(Int64(storing: slot)))
    }

    private func appendDatastore(_ record: DatastoreRecord, slot: Slot, _ db: Database) throws {
        try statement(db, "INSERT INTO datastore (record, slot) VALUES (?, ?)")
            .run(.blob(LedgerCodec.encode(record)), .integer(Int64(storing: slot)))
    }

    // MARK: - Reading

    /// The ledger snapshot at the current applied slot, as it is shipped to a replica that catches up: `state` (the
    /// caller's in-memory state, which must be the state at the stored applied slot) and the stored history that
    /// replica lacks. `after`: the replica holds the history through this slot, so only the rows of later slots go,
    /// when this store can tell them apart (`after` is at or past `meta.history_slots_from`); otherwise, or for nil,
    /// the whole history.
    public func snapshot(of state: LedgerState, historyAfter after: Slot?) throws(StoreError) -> LedgerSnapshot {
        try access { db throws(StoreError) in
            let exactFrom = try fetchRows(db, table: "meta", sql: "SELECT history_slots_from FROM meta")[0]
                .unsigned(0, "history_slots_from")
            let from = after.flatMap { $0 >= exactFrom ? $0 : nil }
            return LedgerSnapshot(
                state: state, walEntries: try walEntries(db, after: from),
                datastore: try datastoreRecords(db, after: from),
                historyAfter: from)
        }
    }

    /// Every WAL record, in the order written.
    public func walRecords() throws(StoreError) -> [WALRecord] {
        try access { db throws(StoreError) in try walRecords(db) }
    }

    /// Every datastore record (the committed transactions), in commit order.
    public func datastoreRecords() throws(StoreError) -> [DatastoreRecord] {
        try access { db throws(StoreError) in try datastoreRecords(db) }
    }

    private func walRecords(_ db: Database) throws(StoreError) -> [WALRecord] {
        try walEntries(db, after: nil).flatMap(\.records)
    }

    /// `WHERE` clause of the history rows of the slots after `after` (every row for nil).
    private static func rows(after: Slot?) -> String {
        after.map { "WHERE slot > \(Int64(storing: $0))" } ?? ""
    }

    /// The WAL rows of the slots after `after` (every row for nil), in the order written.
    private func walEntries(_ db: Database, after: Slot?) throws(StoreError) -> [WALEntry] {
        var entries: [WALEntry] = []
        try forEachRow(
            db, table: "wal",
            sql: "SELECT position, records, slot FROM wal \(Self.rows(after: after)) ORDER BY position"
        ) { row throws(StoreError) in
            let position = try row.integer(0, "position")
            let records = try row.decoded(
                1, "records", "the WAL records at position \(position)", LedgerCodec.decodeWALRecords)
            entries.append(WALEntry(slot: try row.unsigned(2, "slot"), records: records))
        }
        return entries
    }

    private func datastoreRecords(_ db: Database, after: Slot? = nil) throws(StoreError) -> [DatastoreRecord] {
        var records: [DatastoreRecord] = []
        try forEachRow(
            db, table: "datastore",
            sql: "SELECT position, record FROM datastore \(Self.rows(after: after)) ORDER BY position"
        ) {
            row throws(StoreError) in
            let position = try row.integer(0, "position")
            records.append(
                try row.decoded(
                    1, "record", "the datastore record at position \(position)", LedgerCodec.decodeDatastoreRecord))
        }
        return records
    }

    // MARK: - Access

    /// Runs `body` on the connection once every write queued in the file is written.
    private func access<Value>(_ body: (Database) throws(StoreError) -> Value) throws(StoreError) -> Value {
        try file.read(body)
    }

    /// Runs SQLite work, turning its error into a `StoreError`.
    private func run<Value>(_ doing: String, _ body: () throws -> Value) throws(StoreError) -> Value {
        try StoreFile.run(path, doing, body)
    }

    /// A cached statement of `sql`, written with the schema's names, on this store's tables.
    private func statement(_ db: Database, _ sql: String) throws -> Statement {
        try db.cachedStatement(sql: tables.sql(sql))
    }

    /// The rows of a small query (the single-row tables).
    private func fetchRows(_ db: Database, table: String, sql: String) throws(StoreError) -> [StoredRow] {
        try run("reading table \(table)") {
            try Row.fetchAll(db, sql: tables.sql(sql)).map { StoredRow(row: $0, table: table, path: path) }
        }
    }

    /// Calls `body` with each row of a query, one at a time, without loading the table into memory.
    private func forEachRow(
        _ db: Database, table: String, sql: String, _ body: (StoredRow) throws(StoreError) -> Void
    ) throws(StoreError) {
        let doing = "reading table \(table)"
        let cursor = try run(doing) { try Row.fetchCursor(db, sql: tables.sql(sql)) }
        while let row = try run(doing, { try cursor.next() }) {
            try body(StoredRow(row: row, table: table, path: path))
        }
    }
}

extension Statement {
    /// A value bound to one `?` of a statement (`run(_:)`).
    enum Parameter {
        case integer(Int64)
        case blob([UInt8])
        case text(String)
        case null
    }

    /// Runs this statement, which returns no rows, with `parameters` bound in order through SQLite's C API. The
    /// replica's writes go this way: GRDB's `StatementArguments` box and check every value, which was a third of a
    /// follower's storage time under load.
    func run(_ parameters: Parameter...) throws {
        let statement = sqliteStatement
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (offset, parameter) in parameters.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch parameter {
            case .integer(let value):
                code = sqlite3_bind_int64(statement, index, value)
            case .blob(let bytes) where bytes.isEmpty:
                code = sqlite3_bind_zeroblob(statement, index, 0)
            case .blob(let bytes):
                code = bytes.withUnsafeBytes {
                    sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), sqliteTransient)
                }
            case .text(let text):
                code = sqlite3_bind_text(statement, index, text, -1, sqliteTransient)
            case .null:
                code = sqlite3_bind_null(statement, index)
            }
            guard code == SQLITE_OK else { throw error(code) }
        }
        let code = sqlite3_step(statement)
        guard code == SQLITE_DONE else { throw error(code) }
    }

    private func error(_ code: Int32) -> DatabaseError {
        DatabaseError(
            resultCode: ResultCode(rawValue: code),
            message: sqlite3_db_handle(sqliteStatement).map { String(cString: sqlite3_errmsg($0)) }, sql: sql)
    }
}

/// SQLite's `SQLITE_TRANSIENT`: it copies a bound value before the call returns. C's macro does not reach Swift.
private let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
