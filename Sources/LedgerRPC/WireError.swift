import GRPCCore
import LedgerCore
import Paxos

/// A wire message that breaks a rule of the protocol, refused before it reaches the core.
///
/// `field` is the path from the decoded message to the offending field, in the `.proto` file's names, like
/// `messages[2].phase2a.proposals[0].value.batch.requests[1].command.transfer.amount`; `problem` says what is wrong
/// and what the rule is. A replica answers such a request with gRPC status `INVALID_ARGUMENT`.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The path of the offending field (empty when the decoded value itself is wrong).
    public var field: String
    /// What is wrong, and the rule.
    public var problem: String

    public init(field: String, _ problem: String) {
        self.field = field
        self.problem = problem
    }

    /// `malformed <field>: <problem>`.
    public var description: String { field.isEmpty ? "malformed: \(problem)" : "malformed \(field): \(problem)" }

    /// The same error seen from the message that contains `parent`.
    func within(_ parent: String) -> WireError {
        if field.isEmpty { return WireError(field: parent, problem) }
        let separator = field.hasPrefix("[") ? "" : "."
        return WireError(field: parent + separator + field, problem)
    }
}

extension RPCError {
    /// The status a service answers a malformed request with: `INVALID_ARGUMENT` and the error's description.
    public init(_ error: WireError) {
        self.init(code: .invalidArgument, message: error.description)
    }
}

/// The bounds on repeated fields of wire messages, each with its reason. A message beyond one is malformed, not
/// merely large: decoding refuses it before allocating the core's values. Where a decoded value is persisted, the
/// bound is `LedgerCodec`'s own (`CodecLimits`), so a command the wire accepts never exceeds what the store can
/// write.
public enum WireLimits {
    /// Paxos messages in one `PeerBatch`. A sender drains its queue for one peer into one stream message; a leader
    /// adds a few messages per peer per step, so 4,096 only cuts off a sender that has stopped draining.
    public static let messagesPerBatchMax = 4_096

    /// Entries of a Phase1b or catch-up reply, proposals of a Phase2a, slots of a Phase2b: the Paxos core's own
    /// bound on one message (`Paxos.Limits.entriesPerMessageMax`).
    public static let entriesPerMessageMax = Paxos.Limits.entriesPerMessageMax

    /// Requests in one slot's batch. Every accepted value is persisted with `LedgerCodec`, which refuses more
    /// (`CodecLimits.requestsPerSlotMax`, the default `Paxos.Limits.batchSizeMax`).
    public static let requestsPerSlotMax = CodecLimits.requestsPerSlotMax

    /// Requests in one `Forward`: a follower forwards what its clients wait on, which `Paxos.Limits`
    /// bounds by `waitingRequestsMax`.
    public static let forwardedRequestsMax = Paxos.Limits.waitingRequestsMax

    /// Account changes in one prepare (and one datastore record): what `LedgerCodec` can persist
    /// (`CodecLimits.changesPerPrepareMax`).
    public static let changesPerTransactionMax = CodecLimits.changesPerPrepareMax

    /// Clusters taking part in one transaction: what `LedgerCodec` can persist (`CodecLimits.participantsMax`).
    public static let participantsPerTransactionMax = CodecLimits.participantsMax

    /// Account ranges in one create-accounts command: what `LedgerCodec` can persist
    /// (`CodecLimits.rangesPerCommandMax`).
    public static let accountRangesPerCommandMax = CodecLimits.rangesPerCommandMax

    /// Records in one page of `Logs` or `Datastore`. About 100 bytes a record keeps a page near 1 MiB, under gRPC's
    /// default 4 MiB message limit.
    public static let recordsPerPageMax = 10_000
    /// Commands in one `SubmitBatch` call: one leader's slot.
    public static let commandsPerBatchMax = CodecLimits.requestsPerSlotMax
}

// MARK: - Decoding helpers

/// Runs `body`, adding `parent` (built only on failure) in front of the field of any error.
@inline(__always)
func within<Value>(
    _ parent: @autoclosure () -> String, _ body: () throws(WireError) -> Value
) throws(WireError) -> Value {
    do {
        return try body()
    } catch {
        throw error.within(parent())
    }
}

/// Refuses a repeated field with more than `limit` elements.
@inline(__always)
func checkCount(_ count: Int, atMost limit: Int, limitName: String, field: String) throws(WireError) {
    if count > limit {
        throw WireError(field: field, "has \(count) elements; at most \(limit) are allowed (WireLimits.\(limitName))")
    }
}

/// Decodes every element of a repeated field, naming the element's index in any error.
@inline(__always)
func decodeEach<Element, Value>(
    _ elements: [Element], field: String, atMost limit: Int, limitName: String,
    _ decode: (Element) throws(WireError) -> Value
) throws(WireError) -> [Value] {
    try checkCount(elements.count, atMost: limit, limitName: limitName, field: field)
    var values: [Value] = []
    values.reserveCapacity(elements.count)
    for (index, element) in elements.enumerated() {
        values.append(try within("\(field)[\(index)]") { () throws(WireError) in try decode(element) })
    }
    return values
}

/// A wire string shown in an error, shortened so a huge malformed field does not flood the logs.
func quoted(_ text: String) -> String {
    let shown = text.count > 40 ? text.prefix(40) + "..." : Substring(text)
    return "\"\(shown)\""
}
