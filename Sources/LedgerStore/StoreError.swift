import GRDB

/// A replica's store file cannot be used: it cannot be created or opened, it is not a database or is corrupt, it
/// belongs to another replica or a newer version, or a read or write failed.
///
/// Invariant: `path` is the file exactly as the caller named it, and `message` says what is wrong and, where there is
/// one, what to do about it.
public struct StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The store file, as the caller gave its path.
    public var path: String
    /// What is wrong.
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// `<path>: <message>`.
    public var description: String { "\(path): \(message)" }

    /// What an operator can do with a file that cannot be trusted: the replica's peers still hold every chosen slot.
    static let corruptAdvice = "restore it from a backup, or move it away to rebuild this replica from its peers"

    /// A file whose contents break the store's rules.
    static func corrupt(_ path: String, _ problem: String) -> StoreError {
        StoreError(path: path, message: "is corrupt: \(problem); \(corruptAdvice)")
    }

    /// The error SQLite reported while `doing` something, in words.
    static func sqlite(_ path: String, _ error: DatabaseError, doing: String) -> StoreError {
        let detail = error.message ?? "SQLite error \(error.extendedResultCode.rawValue)"
        switch error.resultCode {
        case .SQLITE_NOTADB:
            return StoreError(path: path, message: "is not a SQLite database (\(detail)); \(corruptAdvice)")
        case .SQLITE_CORRUPT:
            return StoreError(path: path, message: "is corrupt (\(detail)); \(corruptAdvice)")
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return StoreError(
                path: path,
                message: "is in use by another process (\(detail)); is this replica already running?")
        case .SQLITE_CANTOPEN:
            return StoreError(path: path, message: "cannot be opened (\(detail)); check the path and its permissions")
        case .SQLITE_FULL:
            return StoreError(path: path, message: "cannot grow while \(doing): the disk is full (\(detail))")
        case .SQLITE_READONLY, .SQLITE_PERM:
            return StoreError(path: path, message: "cannot be written while \(doing) (\(detail)); check permissions")
        default:
            return StoreError(
                path: path,
                message: "SQLite failed while \(doing): \(detail) (code \(error.extendedResultCode.rawValue))")
        }
    }
}
