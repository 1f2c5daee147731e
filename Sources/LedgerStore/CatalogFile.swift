import Foundation
import GRDB
import LedgerCore

/// The shard catalog on disk: one SQLite file (path from the cluster configs' `catalog` key) that `shardctl shard`
/// writes and the replicas and clients read. Tables: `meta` (version), `shards` (the ranges of `shards.csv`) and
/// `overrides` (accounts moved by a rebalance). Account ids are stored as their 64-bit pattern.
public enum CatalogFile {
    /// The schema this build writes and reads (`PRAGMA user_version`).
    static let schemaVersion: Int32 = 1

    /// What `write` did.
    public enum WriteResult: Equatable, Sendable {
        case created(Catalog)
        case unchanged(Catalog)
        case replaced(Catalog)
    }

    /// Writes `shards` as the catalog at `path`. An existing catalog with the same ranges is left as it is (running
    /// `shardctl shard` twice is harmless); one with other ranges is replaced only with `replace`, since clusters
    /// that already created their accounts would disagree with it. Nothing is half-written: one transaction.
    public static func write(_ shards: ShardMap, to path: String, replace: Bool = false) throws(StoreError)
        -> WriteResult
    {
        let existing = FileManager.default.fileExists(atPath: path) ? try read(path: path) : nil
        if let existing, existing.shards.shards.map(\.identity) == shards.shards.map(\.identity) {
            return .unchanged(existing)
        }
        if existing != nil, !replace {
            throw StoreError(
                path: path,
                message:
                    "already holds other shard ranges (version \(existing!.version)); clusters that created their "
                    + "accounts from it would disagree with new ones. Move it away with their data, or pass --replace")
        }
        let catalog = Catalog(version: (existing?.version ?? 0) + 1, shards: shards)
        do {
            let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            let database = try DatabaseQueue(path: path)
            try database.write { db in
                try createTables(db)
                try db.execute(sql: "DELETE FROM shards")
                try db.execute(sql: "DELETE FROM overrides")
                try db.execute(sql: "DELETE FROM meta")
                try db.execute(
                    sql: "INSERT INTO meta (version, source) VALUES (?, ?)",
                    arguments: [Int64(catalog.version), shards.source])
                for shard in shards.shards {
                    try db.execute(
                        sql: "INSERT INTO shards (name, cluster, first, last, line) VALUES (?, ?, ?, ?, ?)",
                        arguments: [
                            shard.name, shard.cluster, Int64(bitPattern: shard.accounts.lowerBound.value),
                            Int64(bitPattern: shard.accounts.upperBound.value), shard.line,
                        ])
                }
            }
            try database.close()
        } catch {
            throw storeError(error, path: path, doing: "writing the catalog")
        }
        return existing == nil ? .created(catalog) : .replaced(catalog)
    }

    /// Records that each account now lives in its cluster (moves a rebalance committed) and bumps the version once, in
    /// one transaction. An account back in the cluster of its range loses its override. Returns the new catalog; an
    /// account no range or override knows is refused and nothing is written.
    public static func recordMoves(_ moves: [AccountID: String], at path: String) throws(StoreError) -> Catalog {
        var catalog = try read(path: path)
        for account in moves.keys.sorted() where catalog.cluster(of: account) == nil {
            throw StoreError(path: path, message: "account \(account) is in no shard of the catalog; it cannot move")
        }
        let changed = moves.filter { catalog.cluster(of: $0.key) != $0.value }
        guard !changed.isEmpty else { return catalog }
        for (account, cluster) in changed {
            catalog.overrides[account] = catalog.shards.cluster(of: account) == cluster ? nil : cluster
        }
        catalog.version += 1
        try update(path: path, doing: "recording moved accounts", version: catalog.version) { db in
            let upsert = try db.cachedStatement(
                sql: "INSERT OR REPLACE INTO overrides (account, cluster) VALUES (?, ?)")
            let delete = try db.cachedStatement(sql: "DELETE FROM overrides WHERE account = ?")
            for account in changed.keys.sorted() {
                let stored = Int64(bitPattern: account.value)
                if let cluster = catalog.overrides[account] {
                    try upsert.execute(arguments: [stored, cluster])
                } else {
                    try delete.execute(arguments: [stored])
                }
            }
        }
        return catalog
    }

    /// Marks `cluster` as draining (`shardctl cluster drain`): plans move no account into it and `client rebalance`
    /// refuses to. Bumps the version; marking it again changes nothing.
    public static func markDraining(_ cluster: String, at path: String) throws(StoreError) -> Catalog {
        var catalog = try read(path: path)
        guard !catalog.draining.contains(cluster) else { return catalog }
        catalog.draining.insert(cluster)
        catalog.version += 1
        try update(path: path, doing: "marking \(cluster) as draining", version: catalog.version) { db in
            try db.execute(sql: "INSERT INTO draining (cluster) VALUES (?)", arguments: [cluster])
        }
        return catalog
    }

    /// Takes a drained cluster out of the catalog: its ranges (every account of them lives elsewhere by an override)
    /// and its draining mark. Refused, changing nothing, while the catalog gives it any account. A cluster the
    /// catalog does not name is left as it is.
    public static func remove(cluster: String, at path: String) throws(StoreError) -> Catalog {
        var catalog = try read(path: path)
        let held = catalog.accountCount(of: cluster)
        guard held == 0 else {
            throw StoreError(
                path: path, message: "cluster \(cluster) still owns \(held) accounts; it cannot leave the catalog")
        }
        guard catalog.shards.shards.contains(where: { $0.cluster == cluster }) || catalog.draining.contains(cluster)
        else { return catalog }
        catalog.shards.shards.removeAll { $0.cluster == cluster }
        catalog.draining.remove(cluster)
        catalog.version += 1
        try update(path: path, doing: "removing cluster \(cluster)", version: catalog.version) { db in
            try db.execute(sql: "DELETE FROM shards WHERE cluster = ?", arguments: [cluster])
            try db.execute(sql: "DELETE FROM draining WHERE cluster = ?", arguments: [cluster])
        }
        return catalog
    }

    /// One transaction on the catalog at `path` that ends by setting its version.
    private static func update(
        path: String, doing: String, version: UInt64, _ body: (Database) throws -> Void
    ) throws(StoreError) {
        do {
            let database = try DatabaseQueue(path: path)
            defer { try? database.close() }
            try database.write { db in
                try createTables(db)
                try body(db)
                try db.execute(sql: "UPDATE meta SET version = ?", arguments: [Int64(version)])
            }
        } catch {
            throw storeError(error, path: path, doing: doing)
        }
    }

    /// Reads the catalog at `path`. A missing file, a file that is not a catalog and a corrupt one are refused with
    /// a message naming the file and what to do.
    public static func read(path: String) throws(StoreError) -> Catalog {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw StoreError(
                path: path, message: "no shard catalog here; build it with `shardctl shard tests-data/shards.csv`")
        }
        var configuration = GRDB.Configuration()
        configuration.readonly = true
        do {
            let database = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? database.close() }
            return try database.read { db throws -> Catalog in
                let version = try Int32.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                guard version == schemaVersion else {
                    throw StoreError(
                        path: path,
                        message: version == 0
                            ? "is not a shard catalog (no schema version); build one with `shardctl shard`"
                            : "has catalog schema \(version); this build reads schema \(schemaVersion)")
                }
                guard let meta = try Row.fetchOne(db, sql: "SELECT version, source FROM meta"),
                    let stored = meta["version"] as Int64?, stored >= 1
                else {
                    throw StoreError.corrupt(path, "the catalog has no version row")
                }
                var shards: [ShardMap.Shard] = []
                for row in try Row.fetchAll(db, sql: "SELECT name, cluster, first, last, line FROM shards") {
                    let first = AccountID(UInt64(bitPattern: row["first"] as Int64))
                    let last = AccountID(UInt64(bitPattern: row["last"] as Int64))
                    guard first <= last else { throw StoreError.corrupt(path, "a shard range ends before it starts") }
                    shards.append(
                        ShardMap.Shard(
                            name: row["name"], cluster: row["cluster"], accounts: first...last, line: row["line"]))
                }
                var overrides: [AccountID: String] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT account, cluster FROM overrides") {
                    overrides[AccountID(UInt64(bitPattern: row["account"] as Int64))] = row["cluster"]
                }
                // Catalogs written before `shardctl cluster drain` existed have no such table: nothing drains.
                let draining =
                    try db.tableExists("draining")
                    ? Set(try String.fetchAll(db, sql: "SELECT cluster FROM draining")) : []
                return Catalog(
                    version: UInt64(stored), shards: ShardMap(source: meta["source"] ?? path, shards: shards),
                    overrides: overrides, draining: draining)
            }
        } catch {
            throw storeError(error, path: path, doing: "reading the catalog")
        }
    }

    private static func createTables(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE IF NOT EXISTS meta (version INTEGER NOT NULL, source TEXT NOT NULL) STRICT;
                CREATE TABLE IF NOT EXISTS shards (
                    name TEXT NOT NULL PRIMARY KEY, cluster TEXT NOT NULL,
                    first INTEGER NOT NULL, last INTEGER NOT NULL, line INTEGER NOT NULL) STRICT;
                CREATE TABLE IF NOT EXISTS overrides (account INTEGER NOT NULL PRIMARY KEY, cluster TEXT NOT NULL) STRICT;
                CREATE TABLE IF NOT EXISTS draining (cluster TEXT NOT NULL PRIMARY KEY) STRICT;
                PRAGMA user_version = \(schemaVersion);
                """)
    }

    private static func storeError(_ error: any Error, path: String, doing: String) -> StoreError {
        switch error {
        case let error as StoreError: return error
        case let error as DatabaseError: return .sqlite(path, error, doing: doing)
        default: return StoreError(path: path, message: "failed while \(doing): \(error)")
        }
    }
}

extension ShardMap.Shard {
    /// What the catalog keeps of a shard: its line in the source file does not make it another shard.
    fileprivate var identity: [String] {
        [name, cluster, "\(accounts.lowerBound.value)", "\(accounts.upperBound.value)"]
    }
}
