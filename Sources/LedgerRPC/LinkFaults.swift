import Paxos

/// A fault on a replica's peer link, switched on by the `SetLinkFaults` test control: each message the link carries
/// is dropped with probability `loss`, or else held `delay` plus up to `jitter` (so later messages may overtake it)
/// and delivered a second time with probability `duplicate`.
public struct LinkFault: Hashable, Sendable, CustomStringConvertible {
    /// Which of a replica's messages a fault acts on.
    public enum Direction: Hashable, Sendable {
        /// Messages the replica sends to the peer.
        case outbound
        /// Messages the replica receives from the peer.
        case inbound
        case both
    }

    /// Longest `delay` and `jitter`: a fault is a few heartbeats of trouble, not a message parked for good.
    public static let delayMax = Duration.seconds(10)

    /// The peer; nil for every peer.
    public var peer: ReplicaID?
    public var direction: Direction
    public var loss: Double
    public var duplicate: Double
    public var delay: Duration
    public var jitter: Duration

    public init(
        peer: ReplicaID? = nil, direction: Direction = .both, loss: Double = 0, duplicate: Double = 0,
        delay: Duration = .zero, jitter: Duration = .zero
    ) {
        self.peer = peer
        self.direction = direction
        self.loss = loss
        self.duplicate = duplicate
        self.delay = delay
        self.jitter = jitter
    }

    /// Every message of the link lost: half of a partition (`.both`) or a one-way loss.
    public static func cut(_ peer: ReplicaID? = nil, _ direction: Direction = .both) -> LinkFault {
        LinkFault(peer: peer, direction: direction, loss: 1)
    }

    public var description: String {
        var effects: [String] = []
        if loss > 0 { effects.append("loss \(loss)") }
        if duplicate > 0 { effects.append("duplicate \(duplicate)") }
        if delay > .zero || jitter > .zero {
            effects.append("delay \(delay.wholeMilliseconds) ms + up to \(jitter.wholeMilliseconds) ms")
        }
        let arrow =
            switch direction {
            case .outbound: "to"
            case .inbound: "from"
            case .both: "to and from"
            }
        let effect = effects.isEmpty ? "none" : effects.joined(separator: ", ")
        return "\(effect) \(arrow) \(peer.map { "\($0)" } ?? "every peer")"
    }
}

extension Ledger_V1_LinkFault {
    public init(_ fault: LinkFault) {
        self.init()
        peer = fault.peer.map { "\($0)" } ?? ""
        direction =
            switch fault.direction {
            case .outbound: .outbound
            case .inbound: .inbound
            case .both: .both
            }
        loss = fault.loss
        duplicate = fault.duplicate
        delayMs = UInt32(clamping: fault.delay.wholeMilliseconds)
        jitterMs = UInt32(clamping: fault.jitter.wholeMilliseconds)
    }
}

extension Duration {
    /// The duration in milliseconds, rounded: how the wire and the descriptions give link delays.
    fileprivate var wholeMilliseconds: Int { Int((self / .milliseconds(1)).rounded()) }
}

extension LinkFault {
    /// Reads a fault: a peer name or empty, a direction, probabilities from 0 to 1, delays up to `delayMax`.
    public init(wire: Ledger_V1_LinkFault) throws(WireError) {
        let peer = try ReplicaID.optional(wireName: wire.peer, field: "peer")
        let direction: Direction
        switch wire.direction {
        case .outbound: direction = .outbound
        case .inbound: direction = .inbound
        case .both: direction = .both
        case .unspecified, .UNRECOGNIZED:
            throw WireError(field: "direction", "is \(wire.direction); one of OUTBOUND, INBOUND, BOTH is required")
        }
        func probability(_ value: Double, _ field: String) throws(WireError) -> Double {
            guard value >= 0, value <= 1 else {
                throw WireError(field: field, "is \(value); a probability from 0 to 1 is required")
            }
            return value
        }
        func milliseconds(_ value: UInt32, _ field: String) throws(WireError) -> Duration {
            let duration = Duration.milliseconds(value)
            guard duration <= Self.delayMax else {
                throw WireError(field: field, "is \(value) ms; at most \(Self.delayMax) is allowed")
            }
            return duration
        }
        self.init(
            peer: peer, direction: direction, loss: try probability(wire.loss, "loss"),
            duplicate: try probability(wire.duplicate, "duplicate"), delay: try milliseconds(wire.delayMs, "delay_ms"),
            jitter: try milliseconds(wire.jitterMs, "jitter_ms"))
    }

    /// Reads the faults of a request; `members` bound how many there can be (one per peer and direction, and one
    /// per direction for every peer).
    public static func list(wire: Ledger_V1_SetLinkFaultsRequest, members: Int) throws(WireError) -> [LinkFault] {
        let limit = 2 * members
        guard wire.faults.count <= limit else {
            throw WireError(
                field: "faults", "has \(wire.faults.count) elements; at most \(limit) (two per member) are allowed")
        }
        var faults: [LinkFault] = []
        for (index, fault) in wire.faults.enumerated() {
            faults.append(try within("faults[\(index)]") { () throws(WireError) in try LinkFault(wire: fault) })
        }
        return faults
    }
}
