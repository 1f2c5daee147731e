import LedgerCore
import LedgerRPC
import Paxos
import SwiftProtobuf
import Testing

/// Mutated protobuf messages of every kind the wire carries, through their conversions: each returns a value, or
/// throws a `WireError` that names a field and says what is wrong. What converts survives the way back: its wire
/// message converts to an equal value.
@Suite("Fuzzing the wire conversions")
struct WireFuzzTests {
    @Test("every wire message, mutated in its bytes and in its field values")
    func conversions() {
        let surfaces = WireSurface.all
        fuzz(
            "wire messages",
            generate: { mutator, iteration in
                let surface = surfaces[iteration % surfaces.count]
                let sample = mutator.pick(surface.samples)
                let bytes =
                    mutator.chance(50)
                    ? mutator.mutate(fields: sample) : mutator.mutate(bytes: sample, corpus: surface.samples)
                return (surface, bytes)
            },
            describe: { "\($0.0.name) \(escaped($0.1))" },
            check: { surface, bytes in surface.check(bytes) })
    }
}

/// One kind of wire message: valid encodings, and the check of any bytes.
struct WireSurface: Sendable {
    let name: String
    let samples: [[UInt8]]
    /// `.refused` when protobuf or the conversion refuses the bytes properly.
    let check: @Sendable ([UInt8]) -> Verdict

    static func of<Wire: SwiftProtobuf.Message, Value: Equatable & Sendable>(
        _ name: String, _ samples: [Wire], convert: @escaping @Sendable (Wire) throws(WireError) -> Value,
        back: (@Sendable (Value) -> Wire)? = nil
    ) -> WireSurface {
        WireSurface(
            name: name, samples: samples.map { try! $0.serializedBytes() },
            check: { bytes in
                guard let wire = try? Wire(serializedBytes: bytes) else { return .refused }
                return converting(wire, convert: convert, back: back)
            })
    }

    static let all: [WireSurface] = [
        .of("Command", WireSamples.commands.map(Ledger_V1_Command.init), convert: LedgerCommand.init(wire:)) {
            Ledger_V1_Command($0)
        },
        .of(
            "PeerMessage", WireSamples.messages.map(Ledger_V1_PeerMessage.init), convert: LedgerMessage.init(wire:)
        ) { Ledger_V1_PeerMessage($0) },
        .of(
            "PeerBatch",
            [
                Ledger_V1_PeerBatch(
                    PeerBatch(cluster: "C1", from: ReplicaID(2), to: ReplicaID(1), messages: WireSamples.messages)),
                Ledger_V1_PeerBatch(PeerBatch(cluster: "C3", from: ReplicaID(7), to: ReplicaID(9), messages: [])),
            ], convert: PeerBatch.init(wire:)
        ) { Ledger_V1_PeerBatch($0) },
        .of("TransferRequest", WireSamples.transferRequests, convert: LedgerCommand.init(wire:)),
        .of("PrepareRequest", WireSamples.prepareRequests, convert: LedgerCommand.init(wire:)),
        .of(
            "CommitRequest", [Ledger_V1_CommitRequest(cluster: "C1", transaction: WireSamples.transaction)],
            convert: LedgerCommand.init(wire:)),
        .of(
            "AbortRequest", [Ledger_V1_AbortRequest(cluster: "C2", transaction: WireSamples.other)],
            convert: LedgerCommand.init(wire:)),
        .of(
            "DecisionRequest",
            [Ledger_V1_DecisionRequest(cluster: "C1", transaction: WireSamples.other, asker: "C2")],
            convert: TransactionID.init(wire:)),
        .of(
            "CommandBatchRequest",
            [Ledger_V1_CommandBatchRequest(cluster: "C1", commands: WireSamples.commands)],
            convert: LedgerCommand.batch(wire:)
        ) { Ledger_V1_CommandBatchRequest(cluster: "C1", commands: $0) },
        .of(
            "CommandReply", WireSamples.outcomes.map(Ledger_V1_CommandReply.init), convert: CommandOutcome.init(wire:)
        ) { Ledger_V1_CommandReply($0) },
        .of(
            "CommandBatchReply", [Ledger_V1_CommandBatchReply(WireSamples.outcomes, leader: ReplicaID(2))],
            convert: { (wire) throws(WireError) in try CommandOutcome.batch(wire: wire, count: wire.results.count) }
        ) { Ledger_V1_CommandBatchReply($0, leader: nil) },
        .of(
            "BalanceReply",
            [Ledger_V1_BalanceReply(.success(7)), Ledger_V1_BalanceReply(.success(Int64.min))]
                + WireSamples.failures.map { Ledger_V1_BalanceReply(.failure($0)) },
            convert: Result<Int64, RequestFailure>.init(wire:)
        ) { Ledger_V1_BalanceReply($0) },
        .of("WalRecord", WireSamples.walRecords.map(Ledger_V1_WalRecord.init), convert: WALRecord.init(wire:)) {
            Ledger_V1_WalRecord($0)
        },
        .of(
            "DatastoreRecord", WireSamples.datastoreRecords.map(Ledger_V1_DatastoreRecord.init),
            convert: DatastoreRecord.init(wire:)
        ) { Ledger_V1_DatastoreRecord($0) },
        .of(
            "LogsReply",
            [Ledger_V1_LogsReply(RecordPage(replica: ReplicaID(4), records: WireSamples.walRecords, nextStart: 5))],
            convert: RecordPage<WALRecord>.init(wire:)
        ) { Ledger_V1_LogsReply($0) },
        .of(
            "DatastoreReply",
            [
                Ledger_V1_DatastoreReply(
                    RecordPage(replica: ReplicaID(1), records: WireSamples.datastoreRecords, nextStart: nil))
            ],
            convert: RecordPage<DatastoreRecord>.init(wire:)
        ) { Ledger_V1_DatastoreReply($0) },
        .of(
            "LinkFault",
            [
                Ledger_V1_LinkFault(
                    LinkFault(
                        peer: ReplicaID(2), direction: .outbound, loss: 0.3, duplicate: 0.1, delay: .milliseconds(20),
                        jitter: .milliseconds(5))),
                Ledger_V1_LinkFault(.cut()),
            ],
            convert: LinkFault.init(wire:)
        ) { Ledger_V1_LinkFault($0) },
        .of(
            "StatusReply",
            [
                Ledger_V1_StatusReply(
                    ReplicaStatus(
                        cluster: "C2", replica: ReplicaID(5), role: .leader, ballot: WireSamples.leaderBallot,
                        leader: ReplicaID(5), chosenThrough: 12, appliedThrough: 11, locksHeld: 2, snapshotSlot: 10,
                        isDisconnected: false))
            ],
            convert: ReplicaStatus.init(wire:)
        ) { Ledger_V1_StatusReply($0) },
        .of(
            "LocalBalanceReply",
            [
                Ledger_V1_LocalBalanceReply(
                    LocalBalance(replica: ReplicaID(2), balance: 8, isDisconnected: false, appliedThrough: 40)),
                Ledger_V1_LocalBalanceReply(
                    LocalBalance(replica: ReplicaID(2), balance: nil, isDisconnected: true, appliedThrough: 0)),
            ],
            convert: LocalBalance.init(wire:)
        ) { Ledger_V1_LocalBalanceReply($0) },
    ]
}

/// Converts `wire`: a value must come back equal through `back`; an error must name a field and a problem.
func converting<Wire, Value: Equatable>(
    _ wire: Wire, convert: (Wire) throws(WireError) -> Value, back: ((Value) -> Wire)?
) -> Verdict {
    do {
        let value = try convert(wire)
        if let back {
            do {
                let again = try convert(back(value))
                guard again == value else { return .failed("converted, but reads back as \(again), not \(value)") }
            } catch {
                return .failed("converted to \(value), but its own wire message is refused: \(error)")
            }
        }
        return .accepted
    } catch {
        guard !error.field.isEmpty, !error.problem.isEmpty, error.description.hasPrefix("malformed \(error.field):")
        else { return .failed("refused without naming a field: \(error)") }
        return .refused
    }
}

/// Valid values of every kind the wire carries (as in the LedgerRPC tests).
enum WireSamples {
    static let transaction = TransactionID(client: 7, sequence: 1)
    static let other = TransactionID(client: 9, sequence: 2_305_843_009_213_693_951)  // the largest valid sequence

    static let commands: [LedgerCommand] = [
        .transfer(transaction, from: AccountID(21), to: AccountID(700), amount: Amount(2)),
        .transfer(other, from: AccountID(UInt64.max), to: AccountID(1), amount: Amount(Int64.max)),
        .prepare(
            other,
            CrossShardTransfer(
                from: AccountID(12), to: AccountID(1013), amount: Amount(640), home: "C1", participants: ["C1", "C2"])),
        .follow(other, committed: false),
        .prepareMove(other, home: "C2", participants: ["C1", "C2"], part: .out(AccountID(1997), to: "C1")),
        .prepareMove(
            other, home: "C2", participants: ["C1", "C2"], part: .into(AccountID(1997), balance: Int64.min, from: "C2")),
        .commit(transaction),
        .abort(other),
        .createAccounts([AccountID(1)...AccountID(1000), AccountID(2001)...AccountID(2001)], balance: 10),
    ]

    static let requests = commands.map { Request(id: $0.requestID, command: $0) }

    static let leaderBallot = Ballot(round: 3, replica: ReplicaID(2))
    static let highBallot = Ballot(round: UInt64.max, replica: ReplicaID(999_999))
    static let firstBallot = Ballot(round: 1, replica: ReplicaID(1))

    static let entries = [
        SlotEntry(
            slot: 1,
            entry: LogEntry(ballot: leaderBallot, value: .batch(requests, ballot: leaderBallot), isChosen: true)),
        SlotEntry(slot: 2, entry: LogEntry(ballot: highBallot, value: .noop(ballot: leaderBallot), isChosen: false)),
    ]

    /// S1, S2, S3, with S4 added as a learner at slot 2.
    static let memberships: Memberships = {
        let voters = [ReplicaID(1), ReplicaID(2), ReplicaID(3)]
        var memberships = Memberships(initial: Membership(epoch: 1, voters: voters))
        precondition(
            memberships.record(
                Membership(epoch: 2, voters: voters, learners: [ReplicaID(4)]), chosenAt: 2, delay: 16) == nil)
        return memberships
    }()

    static let messages: [LedgerMessage] = [
        .phase1a(ballot: leaderBallot, firstSlot: 1),
        .phase1b(
            ballot: highBallot, snapshotSlot: 10_000, chosenThrough: 0, entries: entries, memberships: memberships),
        .phase2a(
            ballot: leaderBallot,
            proposals: [
                SlotProposal(slot: 4, value: .batch(requests, ballot: firstBallot)),
                SlotProposal(slot: 5, value: .noop(ballot: leaderBallot)),
                SlotProposal(
                    slot: 6,
                    value: .reconfigure(
                        Reconfiguration(
                            id: RequestID(client: 9, sequence: 1),
                            membership: Membership(epoch: 3, voters: [ReplicaID(1), ReplicaID(2), ReplicaID(4)])),
                        ballot: leaderBallot)),
            ],
            chosenThrough: 3),
        .phase2b(ballot: leaderBallot, slots: [4, 5, UInt64.max], chosenThrough: 3),
        .chosen(ballot: leaderBallot, chosenThrough: 5),
        .heartbeat(ballot: highBallot, chosenThrough: UInt64.max, round: UInt64.max),
        .heartbeatAck(ballot: leaderBallot, round: 7, chosenThrough: 0),
        .rejected(promised: highBallot),
        .catchUpRequest(firstSlot: 6),
        .catchUpReply(snapshot: nil, entries: entries),
        .catchUpReply(
            snapshot: Snapshot(slot: 4, state: CodecSamples.snapshot, memberships: memberships), entries: []),
        .forward(requests: requests),
        .handover(ballot: highBallot),
    ]

    static let results: [CommandResult] = [
        .committed, .preparedYes, .preparedMove(balance: Int64.min), .refused("T7.1 is unknown here"),
        .accountsCreated(3000), .aborted(.insufficientFunds(AccountID(21), balance: -5)),
        .aborted(.locked(AccountID(21), by: transaction)), .aborted(.unknownAccount(AccountID(4000))),
        .aborted(.balanceOverflow(AccountID(UInt64.max))), .aborted(.aborted), .aborted(.invalid("")),
        .aborted(.moving(AccountID(1997), to: "C1")), .aborted(.moved(AccountID(UInt64.max), to: "C3")),
    ]

    static let failures: [RequestFailure] = [
        .wrongShard(AccountID(1500), owner: "C2"), .wrongShard(AccountID(1500), owner: nil),
        .notLeader(hint: ReplicaID(3)), .notLeader(hint: nil), .noQuorum, .busy, .timedOut,
    ]

    static let outcomes: [CommandOutcome] = results.map(CommandOutcome.applied) + failures.map(CommandOutcome.failed)

    static let transferRequests = [
        Ledger_V1_TransferRequest(
            cluster: "C1", transaction: transaction, from: AccountID(1), to: AccountID(2), amount: Amount(3)),
        Ledger_V1_TransferRequest(
            cluster: "C1", transaction: other, from: AccountID(UInt64.max), to: AccountID(9), amount: Amount(Int64.max)),
    ]

    static let prepareRequests: [Ledger_V1_PrepareRequest] = [
        Ledger_V1_PrepareRequest(
            cluster: "C1", transaction: other,
            CrossShardTransfer(
                from: AccountID(3), to: AccountID(1003), amount: Amount(4), home: "C1", participants: ["C1", "C2"])),
        {
            var request = Ledger_V1_PrepareRequest()
            request.cluster = "C1"
            request.prepareMove = Ledger_V1_Command(commands[3]).prepareMove
            return request
        }(),
    ]

    static let walRecords = [
        WALRecord(transaction: transaction, kind: .start),
        WALRecord(transaction: other, kind: .update(AccountID(UInt64.max), old: Int64.min, new: Int64.max)),
        WALRecord(transaction: transaction, kind: .commit),
        WALRecord(transaction: other, kind: .abort),
        WALRecord(transaction: other, kind: .moveOut(AccountID(1997), balance: 12, to: "C1")),
        WALRecord(transaction: other, kind: .moveIn(AccountID(1997), balance: Int64.min, from: "C2")),
    ]

    static let datastoreRecords = [
        DatastoreRecord(
            transaction: transaction, kind: .transfer(from: AccountID(21), to: AccountID(700), amount: Amount(2)),
            slot: 3, ballot: leaderBallot),
        DatastoreRecord(
            transaction: other, kind: .crossShard([AccountChange(account: AccountID(12), delta: -640)]),
            slot: UInt64.max, ballot: highBallot),
        DatastoreRecord(
            transaction: other, kind: .moveOut(AccountID(1997), balance: 12, to: "C1"), slot: 4, ballot: leaderBallot),
        DatastoreRecord(
            transaction: other, kind: .moveIn(AccountID(1997), balance: -3, from: "C2"), slot: 5, ballot: leaderBallot),
    ]
}
