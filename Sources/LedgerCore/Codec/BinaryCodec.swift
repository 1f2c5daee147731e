import Paxos

/// Bytes that do not decode: truncated, an unknown tag, a length over its limit, trailing bytes, or a value that
/// breaks an invariant (account id 0, an amount that is not positive, a change of zero...).
///
/// Invariant: `offset` is the byte offset in the decoded input where the problem was found (for truncation, the
/// input's length: the offset of the byte that is missing).
public struct CodecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is malformed, in words.
    public var message: String
    /// The byte offset where the problem was found.
    public var offset: Int

    public init(_ message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }

    /// `malformed encoding at byte 7: <message>`.
    public var description: String { "malformed encoding at byte \(offset): \(message)" }
}

/// Named limits of the binary codec, each with the reason for its value. A length above its limit is refused before
/// anything is allocated, so a corrupt or hostile length cannot claim memory; a count is also refused when it exceeds
/// the bytes left (every element takes at least one byte). Encoding a value over a limit is a programming error:
/// callers that accept commands from outside (the RPC layer) check them first with `LedgerCodec.checkLimits(_:)`.
public enum CodecLimits {
    /// Bytes of a cluster name (a command's home cluster and participants). Names are short words like `C1`; 255
    /// leaves room for any naming scheme and keeps an abort explanation that quotes one well under `textBytesMax`.
    public static let clusterNameBytesMax = 255

    /// Bytes of a free text (the explanation of an `invalid` abort). The ledger writes these itself, quoting at most
    /// one cluster name and a few numbers; 4 KiB is far above that.
    public static let textBytesMax = 4_096

    /// Clusters taking part in one cross-shard transaction. A transfer touches two; a rebalance move two. 1,024 is
    /// more clusters than any deployment has.
    public static let participantsMax = 1_024

    /// Account changes in one prepare. A transfer changes one account per cluster, a rebalance move one; 4,096 leaves
    /// room for batched moves while bounding one command.
    public static let changesPerPrepareMax = 4_096

    /// Account ranges in one createAccounts command. The catalog gives one range per shard plus overrides; 4,096
    /// bounds one command.
    public static let rangesPerCommandMax = 4_096

    /// Requests in one slot: the Paxos batch limit, which no leader exceeds.
    public static let requestsPerSlotMax = Paxos.Limits.batchSizeMax

    /// Voters, and learners, of one configuration. Clusters have 3 or 5 voters; 255 bounds a hostile count.
    public static let replicasPerMembershipMax = 255

    /// Configurations in one history: one governs the next slot, the others were chosen for later slots (one change
    /// at a time keeps it to two or three); 1,024 bounds a hostile count.
    public static let membershipErasMax = 1_024

    /// Replicas ever removed from one cluster (their ids are never reused). 65,536 removals is decades of changes.
    public static let retiredReplicasMax = 65_536

    /// WAL records in one encoded list (the records one command writes): a start, an update per change of a prepare
    /// and an end.
    public static let walRecordsPerListMax = changesPerPrepareMax + 2

    /// Entries in each table of a snapshot (balances, locks, transactions, WAL, datastore). The count is also bounded
    /// by the bytes left; this bound keeps counts in `Int` on every platform and refuses absurd ones early.
    public static let snapshotEntriesMax = Int(UInt32.max)
}

/// Appends values to a byte buffer: unsigned integers as LEB128 varints (7 bits a byte, low bits first), signed
/// integers zigzag-mapped first, strings and arrays prefixed with their length.
struct BinaryWriter {
    private(set) var bytes: [UInt8] = []

    mutating func byte(_ value: UInt8) {
        bytes.append(value)
    }

    mutating func unsigned(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    /// Zigzag: 0, -1, 1, -2... become 0, 1, 2, 3..., so small magnitudes stay short whatever their sign.
    mutating func signed(_ value: Int64) {
        unsigned(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    mutating func bool(_ value: Bool) {
        bytes.append(value ? 1 : 0)
    }

    /// A count of elements that follow; `limit` and `what` name the decoder's bound, which the encoder must respect.
    mutating func count(_ count: Int, limit: Int, _ what: String) {
        precondition(count <= limit, "\(what): \(count) is over the codec limit of \(limit)")
        unsigned(UInt64(count))
    }

    mutating func string(_ value: String, limit: Int, _ what: String) {
        let utf8 = value.utf8
        count(utf8.count, limit: limit, what)
        bytes.append(contentsOf: utf8)
    }
}

/// Reads what `BinaryWriter` wrote, refusing anything malformed with a `CodecError` at the offending offset. Only the
/// shortest varint form of each number is accepted, so every value has exactly one encoding.
struct BinaryReader {
    let bytes: [UInt8]
    private(set) var offset = 0
    /// The format version of what is read, for readers of several (`LedgerCodec.oldestReadableVersion`).
    var version: UInt8 = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    var remaining: Int { bytes.count - offset }

    func failure(_ message: String, at offset: Int) -> CodecError {
        CodecError(message, offset: offset)
    }

    func truncated(_ what: String) -> CodecError {
        CodecError("the input ends inside \(what)", offset: bytes.count)
    }

    mutating func byte(_ what: String) throws(CodecError) -> UInt8 {
        guard offset < bytes.count else { throw truncated(what) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func unsigned(_ what: String) throws(CodecError) -> UInt64 {
        let start = offset
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try self.byte(what)
            if shift == 63, byte > 1 {
                throw failure("\(what) does not fit in 64 bits", at: start)
            }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                if byte == 0, shift > 0 {
                    throw failure("\(what) is not in its shortest form", at: start)
                }
                return value
            }
            shift += 7
        }
    }

    mutating func signed(_ what: String) throws(CodecError) -> Int64 {
        let zigzag = try unsigned(what)
        return Int64(bitPattern: (zigzag >> 1) ^ (0 &- (zigzag & 1)))
    }

    mutating func bool(_ what: String) throws(CodecError) -> Bool {
        let start = offset
        switch try byte(what) {
        case 0: return false
        case 1: return true
        case let other: throw failure("\(what) is \(other); expected 0 or 1", at: start)
        }
    }

    /// A count of elements, refused over `limit` (named `limitName` in the error) or over the bytes left (every
    /// element takes at least one byte), so a corrupt count never reserves memory the input cannot fill.
    mutating func count(_ what: String, limit: Int, limitName: String) throws(CodecError) -> Int {
        let start = offset
        let value = try unsigned("the count of \(what)")
        guard value <= UInt64(limit) else {
            throw failure("\(value) \(what) exceed the limit of \(limit) (\(limitName))", at: start)
        }
        let count = Int(value)
        guard count <= remaining else {
            throw failure("\(count) \(what) cannot fit in the \(remaining) bytes left", at: start)
        }
        return count
    }

    mutating func string(_ what: String, limit: Int, limitName: String) throws(CodecError) -> String {
        let length = try count("bytes of \(what)", limit: limit, limitName: limitName)
        let start = offset
        let utf8 = bytes[offset..<offset + length]
        offset += length
        guard let text = String(validating: utf8, as: UTF8.self) else {
            throw failure("\(what) is not valid UTF-8", at: start)
        }
        return text
    }

    /// Refuses bytes left after a complete value.
    func finish(_ what: String) throws(CodecError) {
        guard remaining == 0 else {
            throw failure("\(remaining) trailing byte\(remaining == 1 ? "" : "s") after \(what)", at: offset)
        }
    }
}
