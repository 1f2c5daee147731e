import Foundation
import GRDB
import LedgerCore
import Paxos
import Synchronization

/// The tables of a replica store, schema version 6 (kept in `PRAGMA user_version`): the Paxos state (promise,
/// applied slot, snapshot, log) and the history users print (WAL and datastore rows, each with the slot that
/// applied it). The ledger state (balances, locks, transactions, sessions) is not kept in tables: it is the Paxos
/// snapshot's state, at the snapshot's slot, with the chosen log entries after it applied again at recovery, so a
/// transfer writes no row of its own but its WAL and datastore rows (the log entry of its slot holds it). Versions 3
/// and 4 kept the state in tables, written with every slot; they are migrated when opened (`migrateFrom3`,
/// `migrateFrom4`); version 5 lacked the snapshot's configurations (`migrateFrom5`); files of version 2 are refused.
///
/// Unsigned 64-bit numbers (slots, client ids, sequence numbers, rounds) are stored as the `Int64` with the same
/// bits, so every value fits; slots stay below 2^63 in any real run, which keeps `ORDER BY slot` right. Values with
/// structure (slot values, WAL records, datastore records, the snapshot) are `LedgerCodec` blobs, which carry their
/// own format version.
enum ReplicaStoreSchema {
    /// The schema this build writes and reads. A file with another version is refused, never migrated silently.
    static let version: Int32 = 6

    static let create = """
        CREATE TABLE meta (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            cluster TEXT NOT NULL,
            replica TEXT NOT NULL,
            min_balance INTEGER NOT NULL,
            promised_round INTEGER NOT NULL,
            promised_replica INTEGER NOT NULL,
            applied_through INTEGER NOT NULL,
            history_slots_from INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        CREATE TABLE paxos_snapshot (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            slot INTEGER NOT NULL,
            snapshot BLOB NOT NULL,
            memberships BLOB
        ) STRICT;
        CREATE TABLE paxos_log (
            slot INTEGER PRIMARY KEY,
            ballot_round INTEGER NOT NULL,
            ballot_replica INTEGER NOT NULL,
            chosen INTEGER NOT NULL,
            value BLOB NOT NULL
        ) STRICT;
        CREATE TABLE wal (
            position INTEGER PRIMARY KEY,
            records BLOB NOT NULL,
            slot INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        CREATE TABLE datastore (
            position INTEGER PRIMARY KEY,
            record BLOB NOT NULL,
            slot INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        """ + historyIndexes

    /// `meta.history_slots_from`: history rows at or below this slot may carry it instead of their own (rows migrated
    /// from version 3, or installed from a snapshot), so only the history after it can be told apart by slot.
    static let historyIndexes = """
        CREATE INDEX wal_slot ON wal (slot);
        CREATE INDEX datastore_slot ON datastore (slot);
        """

    /// Version 3 to 4, in the transaction that opens the file: the new columns and tables of the window (DESIGN §3);
    /// every history row labelled with the applied slot. The remembered transactions are cut to the window afterwards
    /// (`LedgerState.upgradedFromFormat3`).
    static let migrateFrom3 = """
        ALTER TABLE meta ADD COLUMN retired_clients INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE meta ADD COLUMN history_slots_from INTEGER NOT NULL DEFAULT 0;
        UPDATE meta SET history_slots_from = applied_through;
        ALTER TABLE wal ADD COLUMN slot INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE datastore ADD COLUMN slot INTEGER NOT NULL DEFAULT 0;
        UPDATE wal SET slot = (SELECT applied_through FROM meta);
        UPDATE datastore SET slot = (SELECT applied_through FROM meta);
        CREATE TABLE sessions (
            client INTEGER PRIMARY KEY,
            floor INTEGER NOT NULL,
            last_slot INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE undelivered (
            client INTEGER NOT NULL,
            sequence INTEGER NOT NULL,
            PRIMARY KEY (client, sequence)
        ) STRICT, WITHOUT ROWID;
        """ + historyIndexes

    /// Version 4 to 5, once the state the tables held is the Paxos snapshot's: the tables of the ledger state go.
    static let migrateFrom4 = """
        DROP TABLE balances;
        DROP TABLE moved_out;
        DROP TABLE locks;
        DROP TABLE transactions;
        DROP TABLE sessions;
        DROP TABLE undelivered;
        ALTER TABLE meta DROP COLUMN retired_clients;
        """

    /// Version 5 to 6: the snapshot's configurations (`Paxos.Memberships`, a `LedgerCodec` blob), NULL in a
    /// snapshot stored before: the deployment's first configuration governs it.
    static let migrateFrom5 = """
        ALTER TABLE paxos_snapshot ADD COLUMN memberships BLOB;
        """

    static let tables = ["meta", "paxos_snapshot", "paxos_log", "wal", "datastore"]
}

/// The names of one replica's tables in its file: as written in `ReplicaStoreSchema` in a file of its own, each with
/// the replica's prefix (`s4_wal`) in a node's file, which holds the tables of every replica the node hosts.
final class StoreTables: Sendable {
    /// Empty in a replica's own file; `s4_` for S4 in a node's file.
    let prefix: String
    private let rewritten = Mutex<[String: String]>([:])

    /// The names a prefix applies to: the tables and the indexes of the schema.
    private static let names = Set(ReplicaStoreSchema.tables + ["wal_slot", "datastore_slot"])

    init(prefix: String) {
        self.prefix = prefix
    }

    /// The prefix of `replica`'s tables in a node's file.
    static func prefix(ofReplica replica: String) -> String { replica.lowercased() + "_" }

    /// Whether `table` is the meta table of a replica in a node's file (`s4_meta`).
    static func isPrefixedMeta(_ table: String) -> Bool {
        let prefix = table.dropLast("_meta".count)
        return table.hasSuffix("_meta") && prefix.first == "s" && prefix.count > 1
            && prefix.dropFirst().allSatisfy(\.isNumber)
    }

    /// `sql`, written with the schema's names, naming this replica's tables and indexes.
    func sql(_ sql: String) -> String {
        guard !prefix.isEmpty else { return sql }
        if let done = rewritten.withLock({ $0[sql] }) { return done }
        var result = ""
        var word = ""
        func endWord() {
            result += Self.names.contains(word) ? prefix + word : word
            word = ""
        }
        for character in sql {
            if character.isLetter || character.isNumber || character == "_" {
                word.append(character)
            } else {
                endWord()
                result.append(character)
            }
        }
        endWord()
        rewritten.withLock { $0[sql] = result }
        return result
    }
}

/// The columns of one stored row, read with their storage class checked: a value of the wrong class is corruption,
/// reported with the table and column instead of trapping.
struct StoredRow {
    let row: Row
    let table: String
    let path: String

    private func value(_ index: Int) -> DatabaseValue {
        row[index]
    }

    private func mismatch(_ column: String, _ value: DatabaseValue, expected: String) -> StoreError {
        let found: String
        switch value.storage {
        case .null: found = "NULL"
        case .int64: found = "an integer"
        case .double: found = "a real number"
        case .string: found = "text"
        case .blob: found = "a blob"
        }
        return .corrupt(path, "column \(column) of table \(table) holds \(found), expected \(expected)")
    }

    func integer(_ index: Int, _ column: String) throws(StoreError) -> Int64 {
        let value = value(index)
        guard case .int64(let number) = value.storage else { throw mismatch(column, value, expected: "an integer") }
        return number
    }

    func unsigned(_ index: Int, _ column: String) throws(StoreError) -> UInt64 {
        UInt64(bitPattern: try integer(index, column))
    }

    func account(_ index: Int, _ column: String) throws(StoreError) -> AccountID {
        let value = try unsigned(index, column)
        guard value >= 1 else { throw .corrupt(path, "column \(column) of table \(table) holds account id 0") }
        return AccountID(value)
    }

    func text(_ index: Int, _ column: String) throws(StoreError) -> String {
        let value = value(index)
        guard case .string(let text) = value.storage else { throw mismatch(column, value, expected: "text") }
        return text
    }

    func blob(_ index: Int, _ column: String) throws(StoreError) -> [UInt8] {
        let value = value(index)
        guard case .blob(let data) = value.storage else { throw mismatch(column, value, expected: "a blob") }
        return [UInt8](data)
    }

    /// Decodes a blob column with `decode`, reporting a malformed one as corruption of `what`.
    func decoded<Value>(
        _ index: Int, _ column: String, _ what: @autoclosure () -> String,
        _ decode: ([UInt8]) throws(CodecError) -> Value
    ) throws(StoreError) -> Value {
        let bytes = try blob(index, column)
        do {
            return try decode(bytes)
        } catch {
            throw .corrupt(path, "\(what()) in table \(table) does not decode (\(error))")
        }
    }
    /// `decoded`, or nil when the column is NULL.
    func decodedIfPresent<Value>(
        _ index: Int, _ column: String, _ what: @autoclosure () -> String,
        _ decode: ([UInt8]) throws(CodecError) -> Value
    ) throws(StoreError) -> Value? {
        if case .null = value(index).storage { return nil }
        return try decoded(index, column, what(), decode)
    }
}

extension Int64 {
    /// The same 64 bits, as SQLite stores unsigned numbers.
    init(storing value: UInt64) {
        self.init(bitPattern: value)
    }
}
