import Dispatch
import Foundation
import GRDB
import Synchronization

/// One SQLite file and the one thread that writes it. The replicas a node hosts keep their stores in one file, each
/// under tables of its own, so that one transaction and at most one fsync carry the writes every hosted replica
/// queued since the last one (group commit across the node, as a TiKV store or a CockroachDB node shares one log
/// among its Raft groups).
///
/// Writes are queued in order: a lazy one (`enqueue`) waits for the next transaction; a durable one (`commit`)
/// starts one, fsynced, that carries everything queued before it, every replica's. The transactions run one after
/// another on the file's storage thread, so a power loss can only drop a suffix of them, and with it a suffix of each
/// replica's writes. After a failed transaction the caller's memory is ahead of the file: every later call throws the
/// same error, and the node must stop.
final class StoreFile: Sendable {
    let path: String
    private let database: DatabaseQueue
    private let queue: DispatchQueue
    private let pending = Mutex<Pending>(Pending())

    /// One replica's batches, in its order.
    struct Write: Sendable {
        var store: ReplicaStore
        var batches: [StoreBatch]
    }

    private struct Pending: ~Copyable {
        var writes: [Write] = []
        var waiters: [CheckedContinuation<Result<Void, StoreError>, Never>] = []
        /// A durable write is queued: the next transaction fsyncs.
        var durable = false
        /// The lazy writes are to go now, without an fsync.
        var flush = false
        /// A transaction is queued on the storage thread (`schedule`).
        var scheduled = false
        var failure: StoreError?
        var transactions = Transactions()
    }

    /// How many transactions the file committed since it was opened.
    struct Transactions: Sendable, Equatable {
        /// Fsynced: each carried at least one durable write.
        var durable = 0
        var lazy = 0
    }

    var transactions: Transactions { pending.withLock { $0.transactions } }

    /// Opens (or creates) the file in WAL mode, locked for this process, `synchronous=FULL`.
    init(path: String, label: String) throws(StoreError) {
        self.path = path
        var configuration = GRDB.Configuration()
        configuration.label = label
        configuration.prepareDatabase { db in
            // Exclusive locking must come before WAL mode: the WAL index then lives in memory, not in a shared file.
            try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE")
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            guard mode == "wal" else {
                throw StoreError(path: path, message: "cannot use WAL journal mode (SQLite chose \(mode ?? "none"))")
            }
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            database = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw Self.storeError(error, path: path, doing: "opening")
        }
        queue = DispatchQueue(label: "ledger.storage.\(label)")
    }

    // MARK: - Writing

    /// Queues a write that a crash may lose: it goes with the next transaction (`commit`, `flush`, a read).
    func enqueue(_ write: Write) throws(StoreError) {
        try pending.withLock { pending throws(StoreError) in
            if let failure = pending.failure { throw failure }
            pending.writes.append(write)
        }
    }

    /// Writes `write` durably, with everything queued before it, in one transaction on the storage thread; returns
    /// once it is on disk.
    func commit(_ write: Write) async throws(StoreError) {
        let result: Result<Void, StoreError> = await withCheckedContinuation { continuation in
            let failure: StoreError? = pending.withLock { pending in
                if let failure = pending.failure { return failure }
                pending.writes.append(write)
                pending.waiters.append(continuation)
                pending.durable = true
                schedule(&pending)
                return nil
            }
            if let failure { continuation.resume(returning: .failure(failure)) }
        }
        try result.get()
    }

    /// Writes what is queued, without an fsync, unless a transaction is under way or queued already (it takes
    /// them); true when this starts one.
    func flush() throws(StoreError) -> Bool {
        try pending.withLock { pending throws(StoreError) in
            if let failure = pending.failure { throw failure }
            guard !pending.writes.isEmpty, !pending.scheduled else { return false }
            pending.flush = true
            schedule(&pending)
            return true
        }
    }

    /// Writes `write` (and everything queued before it) before returning, on the storage thread; durably unless
    /// `durable` is false.
    func commitNow(_ write: Write, durable: Bool) throws(StoreError) {
        try pending.withLock { pending throws(StoreError) in
            if let failure = pending.failure { throw failure }
            pending.writes.append(write)
            pending.durable = pending.durable || durable
        }
        try writeQueued()
    }

    /// Writes everything queued before returning, without an fsync unless a durable write is queued.
    func writeQueued() throws(StoreError) {
        try onStorageThread { () throws(StoreError) in }
    }

    /// Runs `body` on the connection once everything queued is written, on the storage thread.
    func read<Value>(_ body: (Database) throws(StoreError) -> Value) throws(StoreError) -> Value {
        try onStorageThread { () throws(StoreError) in try access(body) }
    }

    /// Runs `body` on the storage thread after a transaction for everything queued, unless a transaction failed.
    private func onStorageThread<Value>(_ body: () throws(StoreError) -> Value) throws(StoreError) -> Value {
        let result: Result<Value, StoreError> = queue.sync {
            Self.give(transact(force: true))
            if let failure = pending.withLock({ $0.failure }) { return .failure(failure) }
            return Result { () throws(StoreError) in try body() }
        }
        return try result.get()
    }

    /// A durable write's waiter and what its transaction came to.
    private typealias Answer = (
        waiter: CheckedContinuation<Result<Void, StoreError>, Never>, result: Result<Void, StoreError>
    )

    private static func give(_ answers: [Answer]) {
        for answer in answers { answer.waiter.resume(returning: answer.result) }
    }

    /// Queues a transaction on the storage thread. The closure holds the file weakly and answers the waiters only
    /// once it let go of it: a caller that resumes and releases its stores then closes the file at once, and can open
    /// it again.
    private func schedule(_ pending: inout Pending) {
        guard !pending.scheduled else { return }
        pending.scheduled = true
        queue.async { [weak self] in Self.give(self?.transact(force: false) ?? []) }
    }

    /// On the storage thread: one transaction for what is queued when a durable write or a flush asks for one
    /// (`force`: whatever is queued), then, for a scheduled one, another scheduled while more is asked for. Returns
    /// the answers of the durable writes it carried (after a failure, every waiter's).
    private func transact(force: Bool) -> [Answer] {
        let taken: (writes: [Write], waiters: [CheckedContinuation<Result<Void, StoreError>, Never>], durable: Bool)? =
            pending.withLock { pending in
                guard pending.failure == nil, pending.durable || pending.flush || force, !pending.writes.isEmpty
                else {
                    if !force { pending.scheduled = false }
                    return nil
                }
                defer {
                    pending.writes = []
                    pending.waiters = []
                    pending.durable = false
                    pending.flush = false
                }
                return (pending.writes, pending.waiters, pending.durable)
            }
        guard let taken else { return [] }
        let result = Result { () throws(StoreError) in try write(taken.writes, durable: taken.durable) }
        return pending.withLock { pending in
            var answers = taken.waiters.map { Answer(waiter: $0, result: result) }
            switch result {
            case .success:
                if taken.durable { pending.transactions.durable += 1 } else { pending.transactions.lazy += 1 }
            case .failure(let error):
                pending.failure = error
                answers += pending.waiters.map { Answer(waiter: $0, result: .failure(error)) }
                pending.waiters = []
            }
            if !force {
                pending.scheduled = false
                if pending.durable || pending.flush { schedule(&pending) }
            }
            return answers
        }
    }

    /// One SQLite transaction holding `writes` in order, fsynced when `durable`.
    private func write(_ writes: [Write], durable: Bool) throws(StoreError) {
        try access { db throws(StoreError) in
            try Self.run(path, "committing") {
                func transaction() throws {
                    try db.inTransaction(.immediate) {
                        for write in writes {
                            for batch in write.batches { try write.store.write(batch, db) }
                        }
                        return .commit
                    }
                }
                guard !durable else { return try transaction() }
                // `synchronous` belongs to the connection and changes outside a transaction: lowered for this
                // commit only. If it cannot be raised again the commit throws and the node stops, so no later
                // commit is taken for durable when it is not.
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                do {
                    try transaction()
                } catch {
                    try db.execute(sql: "PRAGMA synchronous = FULL")
                    throw error
                }
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
        }
    }

    // MARK: - Access

    /// Runs `body` on the connection (serialized with every other use of it).
    func access<Value>(_ body: (Database) throws(StoreError) -> Value) throws(StoreError) -> Value {
        let result: Result<Value, StoreError> = database.inDatabase { db in
            do throws(StoreError) {
                return .success(try body(db))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Runs SQLite work, turning its error into a `StoreError` about `path`.
    static func run<Value>(_ path: String, _ doing: String, _ body: () throws -> Value) throws(StoreError) -> Value {
        do {
            return try body()
        } catch {
            throw storeError(error, path: path, doing: doing)
        }
    }

    static func storeError(_ error: any Error, path: String, doing: String) -> StoreError {
        switch error {
        case let error as StoreError: return error
        case let error as DatabaseError: return .sqlite(path, error, doing: doing)
        default: return StoreError(path: path, message: "failed while \(doing): \(error)")
        }
    }
}
