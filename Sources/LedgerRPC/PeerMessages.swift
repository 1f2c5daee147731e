import Foundation
import LedgerCore
import Paxos

// Conversions of the Paxos messages replicas exchange. Slot values and the ledger snapshot inside a catch-up reply
// travel as bytes in `LedgerCodec`'s format, the same one the store keeps them in.

/// A Paxos message between the replicas of a ledger cluster.
public typealias LedgerMessage = Message<LedgerCommand, LedgerSnapshot>

/// Reads a log slot: 1 or more (slot 0 means "none" and names no entry).
func logSlot(_ slot: UInt64, field: String) throws(WireError) -> Slot {
    guard slot >= 1 else { throw WireError(field: field, "is 0; slots start at 1") }
    return slot
}

// MARK: - Requests and slot values

extension Ledger_V1_Request {
    public init(_ request: Request<LedgerCommand>) {
        self.init()
        id = Ledger_V1_RequestId(request.id)
        command = Ledger_V1_Command(request.command)
    }
}

extension Request where Command == LedgerCommand {
    /// Reads a client request: an id and a command, both present.
    public init(wire: Ledger_V1_Request) throws(WireError) {
        guard wire.hasID else { throw WireError(field: "id", "is missing") }
        guard wire.hasCommand else { throw WireError(field: "command", "is missing") }
        let command = try within("command") { () throws(WireError) in try LedgerCommand(wire: wire.command) }
        self.init(id: RequestID(wire: wire.id), command: command)
    }
}

extension SlotValue where Command == LedgerCommand {
    /// The wire form of a slot value: its `LedgerCodec` encoding, the one the store keeps.
    var wire: Data { Data(LedgerCodec.encode(self)) }

    /// Reads a slot's value from its `LedgerCodec` encoding: a no-op or a batch of at most
    /// `WireLimits.requestsPerSlotMax` requests, either stamped with the ballot (round >= 1) of the leader that first
    /// proposed it. The codec refuses truncated or trailing bytes, another format version, and every field the
    /// store would refuse, naming the offset.
    init(wire: Data, field: String) throws(WireError) {
        guard !wire.isEmpty else { throw WireError(field: field, "is missing") }
        do {
            self = try LedgerCodec.decodeSlotValue([UInt8](wire))
        } catch {
            throw WireError(field: field, "does not decode as a slot value: \(error)")
        }
    }

    /// Refuses a value stamped above the ballot it is proposed or accepted under: its first proposer's ballot can
    /// only be that ballot or a lower one.
    func checkStamp(atMost ballot: Ballot, field: String) throws(WireError) {
        guard self.ballot <= ballot else {
            throw WireError(
                field: field,
                "is stamped with \(self.ballot), above the ballot \(ballot) the value is proposed or accepted under")
        }
    }
}

extension Ledger_V1_SlotEntry {
    public init(_ entry: SlotEntry<LedgerCommand>) {
        self.init()
        slot = entry.slot
        ballot = Ledger_V1_Ballot(entry.entry.ballot)
        value = entry.entry.value.wire
        chosen = entry.entry.isChosen
    }
}

extension SlotEntry where Command == LedgerCommand {
    /// Reads a slot entry: slot >= 1, the ballot it was accepted under, its value stamped with that ballot or a
    /// lower one.
    public init(wire: Ledger_V1_SlotEntry) throws(WireError) {
        let slot = try logSlot(wire.slot, field: "slot")
        let ballot = try Ballot.required(wire: wire.ballot, isPresent: wire.hasBallot, field: "ballot")
        let value = try SlotValue(wire: wire.value, field: "value")
        try value.checkStamp(atMost: ballot, field: "value")
        self.init(slot: slot, entry: LogEntry(ballot: ballot, value: value, isChosen: wire.chosen))
    }
}

/// Reads the entries of a Phase1b or catch-up reply.
func slotEntries(_ wire: [Ledger_V1_SlotEntry], field: String) throws(WireError) -> [SlotEntry<LedgerCommand>] {
    try decodeEach(
        wire, field: field, atMost: WireLimits.entriesPerMessageMax, limitName: "entriesPerMessageMax"
    ) { (entry) throws(WireError) in try SlotEntry(wire: entry) }
}

extension Ledger_V1_SlotProposal {
    public init(_ proposal: SlotProposal<LedgerCommand>) {
        self.init()
        slot = proposal.slot
        value = proposal.value.wire
    }
}

extension SlotProposal where Command == LedgerCommand {
    /// Reads a proposal: slot >= 1 and its value.
    public init(wire: Ledger_V1_SlotProposal) throws(WireError) {
        let slot = try logSlot(wire.slot, field: "slot")
        self.init(slot: slot, value: try SlotValue(wire: wire.value, field: "value"))
    }
}

// MARK: - Messages

/// A cluster's configurations as `LedgerCodec` encodes them; empty or malformed bytes are refused.
func decodeMemberships(_ bytes: Data, field: String) throws(WireError) -> Memberships {
    do {
        return try LedgerCodec.decodeMemberships([UInt8](bytes))
    } catch {
        throw WireError(field: field, "does not decode as a cluster's configurations: \(error)")
    }
}

extension Ledger_V1_PeerMessage {
    /// The wire form of `message`; a catch-up reply's snapshot state is encoded with `LedgerCodec`.
    public init(_ message: LedgerMessage) {
        self.init()
        switch message {
        case .phase1a(let ballot, let firstSlot):
            kind = .phase1A(
                .with {
                    $0.ballot = Ledger_V1_Ballot(ballot)
                    $0.firstSlot = firstSlot
                })
        case .phase1b(let ballot, let snapshotSlot, let chosenThrough, let entries, let memberships):
            kind = .phase1B(
                .with {
                    $0.ballot = Ledger_V1_Ballot(ballot)
                    $0.snapshotSlot = snapshotSlot
                    $0.chosenThrough = chosenThrough
                    $0.entries = entries.map(Ledger_V1_SlotEntry.init)
                    $0.memberships = Data(LedgerCodec.encode(memberships))
                })
        case .phase2a(let ballot, let proposals, let chosenThrough):
            kind = .phase2A(
                .with {
                    $0.ballot = Ledger_V1_Ballot(ballot)
                    $0.proposals = proposals.map(Ledger_V1_SlotProposal.init)
                    $0.chosenThrough = chosenThrough
                })
        case .phase2b(let ballot, let slots, let chosenThrough):
            kind = .phase2B(
                .with {
                    $0.ballot = Ledger_V1_Ballot(ballot)
                    $0.slots = slots
                    $0.chosenThrough = chosenThrough
                })
        case .chosen(let ballot, let chosenThrough):
            kind = .chosen(
                .with {
                    $0.ballot = Ledger_V1_Ballot(ballot)
                    $0.chosenThrough = chosenThrough
                })
        case .heartbeat(let ballot, let chosenThrough, let round):
            kind = .heartbeat(
                .with {
                    $0.ballot = Ledger_V1_Ballot(ballot)
                    $0.chosenThrough = chosenThrough
                    $0.round = round
                })
        case .heartbeatAck(let ballot, let round, let chosenThrough):
            kind = .heartbeatAck(
                .with {
                    $0.ballot = Ledger_V1_Ballot(ballot)
                    $0.round = round
                    $0.chosenThrough = chosenThrough
                })
        case .rejected(let promised):
            kind = .rejected(.with { $0.promised = Ledger_V1_Ballot(promised) })
        case .catchUpRequest(let firstSlot):
            kind = .catchUpRequest(.with { $0.firstSlot = firstSlot })
        case .catchUpReply(let snapshot, let entries):
            kind = .catchUpReply(
                .with {
                    if let snapshot {
                        $0.snapshot = .with {
                            $0.slot = snapshot.slot
                            $0.state = Data(LedgerCodec.encode(snapshot.state))
                            if let memberships = snapshot.memberships {
                                $0.memberships = Data(LedgerCodec.encode(memberships))
                            }
                        }
                    }
                    $0.entries = entries.map(Ledger_V1_SlotEntry.init)
                })
        case .forward(let requests):
            kind = .forward(.with { $0.requests = requests.map(Ledger_V1_Request.init) })
        case .handover(let ballot):
            kind = .handover(.with { $0.ballot = Ledger_V1_Ballot(ballot) })
        }
    }
}

extension Message where Command == LedgerCommand, State == LedgerSnapshot {
    /// Reads a Paxos message: exactly one kind set; proposal ballots of round >= 1; entry and proposal slots >= 1,
    /// first slots >= 1; values stamped no higher than the ballot they are proposed or accepted under; repeated
    /// fields within `WireLimits`. A catch-up reply's snapshot state is decoded with
    /// `LedgerCodec`, whose error is reported as a `WireError` on `catch_up_reply.snapshot.state`.
    public init(wire: Ledger_V1_PeerMessage) throws(WireError) {
        switch wire.kind {
        case .phase1A(let phase1a):
            self = try within("phase1a") { () throws(WireError) in
                .phase1a(
                    ballot: try Ballot.proposal(wire: phase1a.ballot, isPresent: phase1a.hasBallot, field: "ballot"),
                    firstSlot: try logSlot(phase1a.firstSlot, field: "first_slot"))
            }
        case .phase1B(let phase1b):
            self = try within("phase1b") { () throws(WireError) in
                .phase1b(
                    ballot: try Ballot.proposal(wire: phase1b.ballot, isPresent: phase1b.hasBallot, field: "ballot"),
                    snapshotSlot: phase1b.snapshotSlot,
                    chosenThrough: phase1b.chosenThrough,
                    entries: try slotEntries(phase1b.entries, field: "entries"),
                    memberships: try decodeMemberships(phase1b.memberships, field: "memberships"))
            }
        case .phase2A(let phase2a):
            self = try within("phase2a") { () throws(WireError) in
                let ballot = try Ballot.proposal(wire: phase2a.ballot, isPresent: phase2a.hasBallot, field: "ballot")
                let proposals = try decodeEach(
                    phase2a.proposals, field: "proposals", atMost: WireLimits.entriesPerMessageMax,
                    limitName: "entriesPerMessageMax"
                ) { (proposal) throws(WireError) in
                    let proposal = try SlotProposal(wire: proposal)
                    try proposal.value.checkStamp(atMost: ballot, field: "value")
                    return proposal
                }
                return .phase2a(ballot: ballot, proposals: proposals, chosenThrough: phase2a.chosenThrough)
            }
        case .phase2B(let phase2b):
            self = try within("phase2b") { () throws(WireError) in
                .phase2b(
                    ballot: try Ballot.proposal(wire: phase2b.ballot, isPresent: phase2b.hasBallot, field: "ballot"),
                    slots: try decodeEach(
                        phase2b.slots, field: "slots", atMost: WireLimits.entriesPerMessageMax,
                        limitName: "entriesPerMessageMax"
                    ) { (slot) throws(WireError) in try logSlot(slot, field: "") },
                    chosenThrough: phase2b.chosenThrough)
            }
        case .chosen(let chosen):
            self = try within("chosen") { () throws(WireError) in
                .chosen(
                    ballot: try Ballot.proposal(wire: chosen.ballot, isPresent: chosen.hasBallot, field: "ballot"),
                    chosenThrough: chosen.chosenThrough)
            }
        case .heartbeat(let heartbeat):
            self = try within("heartbeat") { () throws(WireError) in
                .heartbeat(
                    ballot: try Ballot.proposal(
                        wire: heartbeat.ballot, isPresent: heartbeat.hasBallot, field: "ballot"),
                    chosenThrough: heartbeat.chosenThrough, round: heartbeat.round)
            }
        case .heartbeatAck(let acknowledgement):
            self = try within("heartbeat_ack") { () throws(WireError) in
                .heartbeatAck(
                    ballot: try Ballot.proposal(
                        wire: acknowledgement.ballot, isPresent: acknowledgement.hasBallot, field: "ballot"),
                    round: acknowledgement.round, chosenThrough: acknowledgement.chosenThrough)
            }
        case .rejected(let rejected):
            self = try within("rejected") { () throws(WireError) in
                .rejected(
                    promised: try Ballot.required(
                        wire: rejected.promised, isPresent: rejected.hasPromised, field: "promised"))
            }
        case .catchUpRequest(let request):
            self = try within("catch_up_request") { () throws(WireError) in
                .catchUpRequest(firstSlot: try logSlot(request.firstSlot, field: "first_slot"))
            }
        case .catchUpReply(let reply):
            self = try within("catch_up_reply") { () throws(WireError) in
                var snapshot: Snapshot<LedgerSnapshot>?
                if reply.hasSnapshot {
                    let state: LedgerSnapshot
                    do {
                        state = try LedgerCodec.decodeSnapshot([UInt8](reply.snapshot.state))
                    } catch {
                        throw WireError(field: "snapshot.state", "does not decode as a ledger snapshot: \(error)")
                    }
                    snapshot = Snapshot(
                        slot: reply.snapshot.slot, state: state,
                        memberships: reply.snapshot.memberships.isEmpty
                            ? nil : try decodeMemberships(reply.snapshot.memberships, field: "snapshot.memberships"))
                }
                return .catchUpReply(snapshot: snapshot, entries: try slotEntries(reply.entries, field: "entries"))
            }
        case .forward(let forward):
            self = try within("forward") { () throws(WireError) in
                .forward(
                    requests: try decodeEach(
                        forward.requests, field: "requests", atMost: WireLimits.forwardedRequestsMax,
                        limitName: "forwardedRequestsMax"
                    ) { (request) throws(WireError) in try Request(wire: request) })
            }
        case .handover(let handover):
            self = try within("handover") { () throws(WireError) in
                .handover(
                    ballot: try Ballot.proposal(wire: handover.ballot, isPresent: handover.hasBallot, field: "ballot"))
            }
        case nil:
            throw WireError(
                field: "kind",
                "is not set; a peer message is one of phase1a, phase1b, phase2a, phase2b, chosen, heartbeat, "
                    + "heartbeat_ack, rejected, catch_up_request, catch_up_reply, forward, handover")
        }
    }
}

// MARK: - Batches

/// Paxos messages from one replica to another of the same cluster, in the order they were sent: what one stream
/// message of the `Peer` service carries.
public struct PeerBatch: Equatable, Sendable {
    /// The cluster of both replicas, `C<n>`.
    public var cluster: String
    public var from: ReplicaID
    public var to: ReplicaID
    /// At most `WireLimits.messagesPerBatchMax`.
    public var messages: [LedgerMessage]
    /// The sender's `LedgerRPC.protocolVersion`; the receiver refuses a stream that speaks another one.
    public var protocolVersion: Int

    public init(
        cluster: String, from: ReplicaID, to: ReplicaID, messages: [LedgerMessage],
        protocolVersion: Int = LedgerRPC.protocolVersion
    ) {
        self.cluster = cluster
        self.from = from
        self.to = to
        self.messages = messages
        self.protocolVersion = protocolVersion
    }
}

extension Ledger_V1_PeerBatch {
    public init(_ batch: PeerBatch) {
        self.init()
        cluster = batch.cluster
        from = batch.from.description
        to = batch.to.description
        precondition(batch.protocolVersion >= 0, "protocol versions are never negative")
        protocolVersion = UInt32(batch.protocolVersion)
        messages = batch.messages.map(Ledger_V1_PeerMessage.init)
    }
}

extension PeerBatch {
    /// Reads a batch: names `C<n>` and `S<n>`, at most `WireLimits.messagesPerBatchMax` valid messages. The
    /// receiver still checks that the cluster, the receiver and the protocol version are its own.
    public init(wire: Ledger_V1_PeerBatch) throws(WireError) {
        let cluster = try clusterName(wire.cluster, field: "cluster")
        let from = try ReplicaID(wireName: wire.from, field: "from")
        let to = try ReplicaID(wireName: wire.to, field: "to")
        let messages = try decodeEach(
            wire.messages, field: "messages", atMost: WireLimits.messagesPerBatchMax, limitName: "messagesPerBatchMax"
        ) { (message) throws(WireError) in try Message(wire: message) }
        self.init(
            cluster: cluster, from: from, to: to, messages: messages, protocolVersion: Int(wire.protocolVersion))
    }
}
