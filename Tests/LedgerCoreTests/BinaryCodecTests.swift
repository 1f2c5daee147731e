import LedgerCore
import Paxos
import Testing

// MARK: - Sample values: every case of every encoded type

private let maxAccount = AccountID(UInt64.max)
private let lastTransaction = TransactionID(client: UInt64.max, sequence: UInt64.max)

private let commands: [LedgerCommand] = [
    .transfer(TransactionID(client: 7, sequence: 1), from: AccountID(21), to: AccountID(700), amount: Amount(2)),
    .transfer(lastTransaction, from: maxAccount, to: AccountID(1), amount: Amount(Int64.max)),
    .transfer(TransactionID(client: 0, sequence: 0), from: AccountID(3), to: AccountID(3), amount: Amount(1)),
    .prepare(
        TransactionID(client: 9, sequence: 300),
        CrossShardTransfer(
            from: AccountID(12), to: maxAccount, amount: Amount(Int64.max), home: "C1", participants: ["C1", "C2"])),
    .prepare(
        TransactionID(client: 1, sequence: 2),
        CrossShardTransfer(from: AccountID(1), to: AccountID(2), amount: Amount(1), home: "Zürich-é", participants: [])),
    .decideCommit(
        TransactionID(client: 9, sequence: 302),
        agreed: .move(maxAccount, balance: Int64.min, source: "C2", target: "C1")),
    .follow(TransactionID(client: 9, sequence: 303), committed: true),
    .follow(TransactionID(client: 9, sequence: 303), committed: false),
    .prepareMove(
        TransactionID(client: 9, sequence: 301), home: "C2", participants: ["C1", "C2"],
        part: .out(maxAccount, to: "C1")),
    .prepareMove(
        TransactionID(client: 9, sequence: 301), home: "C2", participants: ["C1", "C2"],
        part: .into(AccountID(1997), balance: Int64.min, from: "C2")),
    .commit(TransactionID(client: 4, sequence: 5)),
    .abort(lastTransaction),
    .createAccounts([AccountID(1)...AccountID(1000), AccountID(5000)...AccountID(5000)], balance: 10),
    .createAccounts([], balance: -5),
]

private let slotValues: [SlotValue<LedgerCommand>] = [
    .noop(ballot: Ballot(round: 1, replica: ReplicaID(1))),
    .batch([], ballot: Ballot(round: 7, replica: ReplicaID(3))),
    .batch(
        commands.enumerated().map { Request(id: RequestID(client: 3, sequence: UInt64($0)), command: $1) },
        ballot: Ballot(round: UInt64.max, replica: ReplicaID(Int.max))),
    .reconfigure(
        Reconfiguration(
            id: RequestID(client: 2, sequence: 9),
            membership: Membership(
                epoch: 4, voters: [ReplicaID(1), ReplicaID(2), ReplicaID(7)], learners: [ReplicaID(8)])),
        ballot: Ballot(round: 3, replica: ReplicaID(2))),
]

/// The first configuration alone, and a history of two changes (a learner added, then swapped in for a voter).
private let membershipHistories: [Memberships] = {
    let first = Memberships(initial: Membership(epoch: 1, voters: [ReplicaID(1), ReplicaID(2), ReplicaID(3)]))
    var changed = first
    let learning = Membership(epoch: 2, voters: [ReplicaID(1), ReplicaID(2), ReplicaID(3)], learners: [ReplicaID(4)])
    precondition(changed.record(learning, chosenAt: 10, delay: 16) == nil)
    let swapped = Membership(epoch: 3, voters: [ReplicaID(1), ReplicaID(2), ReplicaID(4)])
    precondition(changed.record(swapped, chosenAt: 30, delay: 16) == nil)
    return [first, changed]
}()

private let ballots: [Ballot] = [
    .zero, Ballot(round: 5, replica: ReplicaID(3)), Ballot(round: UInt64.max, replica: ReplicaID(Int.max)),
    Ballot(round: 1, replica: ReplicaID(-1)),
]

private let prepared = LedgerState.Prepared(
    home: "C2", participants: ["C1", "C2"],
    changes: [AccountChange(account: AccountID(1402), delta: 4)], slot: 17)

private let statuses: [LedgerState.Status] = [
    .committed,
    .aborted(.insufficientFunds(AccountID(12), balance: -3)),
    .aborted(.locked(AccountID(5), by: TransactionID(client: 8, sequence: 1))),
    .aborted(.unknownAccount(maxAccount)),
    .aborted(.balanceOverflow(AccountID(2))),
    .aborted(.aborted),
    .aborted(.invalid("transfer from 3 to itself")),
    .aborted(.invalid("")),
    .aborted(.moving(AccountID(7), to: "C3")),
    .aborted(.moved(maxAccount, to: "C1")),
    .prepared(prepared),
    .prepared(
        LedgerState.Prepared(
            home: "C1", participants: ["C1", "C2"], changes: [], move: .out(AccountID(9), to: "C2"), slot: 3)),
    .prepared(
        LedgerState.Prepared(
            home: "C2", participants: ["C1", "C2"], changes: [], move: .into(AccountID(9), balance: 12, from: "C2"),
            slot: Slot.max)),
]

private let walRecords: [WALRecord] = [
    WALRecord(transaction: TransactionID(client: 7, sequence: 1), kind: .start),
    WALRecord(transaction: TransactionID(client: 7, sequence: 1), kind: .update(AccountID(100), old: 10, new: 2)),
    WALRecord(transaction: lastTransaction, kind: .update(maxAccount, old: Int64.min, new: Int64.max)),
    WALRecord(transaction: TransactionID(client: 7, sequence: 1), kind: .commit),
    WALRecord(transaction: TransactionID(client: 7, sequence: 2), kind: .abort),
    WALRecord(transaction: lastTransaction, kind: .moveOut(maxAccount, balance: Int64.max, to: "C2")),
    WALRecord(transaction: TransactionID(client: 7, sequence: 3), kind: .moveIn(AccountID(1), balance: -4, from: "C1")),
]

private let datastoreRecords: [DatastoreRecord] = [
    DatastoreRecord(
        transaction: TransactionID(client: 7, sequence: 1),
        kind: .transfer(from: AccountID(21), to: AccountID(700), amount: Amount(2)),
        slot: 1, ballot: Ballot(round: 1, replica: ReplicaID(1))),
    DatastoreRecord(
        transaction: lastTransaction, kind: .crossShard(prepared.changes), slot: Slot.max,
        ballot: Ballot(round: UInt64.max, replica: ReplicaID(9))),
    DatastoreRecord(
        transaction: TransactionID(client: 1, sequence: 1), kind: .crossShard([]), slot: 0, ballot: .zero),
    DatastoreRecord(
        transaction: TransactionID(client: 1, sequence: 2), kind: .moveOut(AccountID(5), balance: 3, to: "C3"), slot: 4,
        ballot: Ballot(round: 2, replica: ReplicaID(1))),
    DatastoreRecord(
        transaction: TransactionID(client: 1, sequence: 3), kind: .moveIn(maxAccount, balance: Int64.min, from: "C1"),
        slot: 5, ballot: Ballot(round: 2, replica: ReplicaID(1))),
]

/// A state reached by applying real commands: balances, a lock held by a prepared transaction, and committed and
/// aborted transactions; plus the WAL and datastore records those commands wrote.
private func appliedSnapshot() -> LedgerSnapshot {
    var state = LedgerState(cluster: "C1", minBalance: -100)
    let ballot = Ballot(round: 2, replica: ReplicaID(3))
    let applied: [LedgerCommand] = [
        .createAccounts([AccountID(1)...AccountID(20)], balance: 10),
        .transfer(TransactionID(client: 1, sequence: 1), from: AccountID(1), to: AccountID(2), amount: Amount(5)),
        .transfer(TransactionID(client: 1, sequence: 2), from: AccountID(1), to: AccountID(2), amount: Amount(500)),
        .prepare(
            TransactionID(client: 2, sequence: 1),
            CrossShardTransfer(
                from: AccountID(3), to: AccountID(5000), amount: Amount(110), home: "C1", participants: ["C1", "C2"])),
        .prepare(
            TransactionID(client: 2, sequence: 2),
            CrossShardTransfer(
                from: AccountID(5000), to: AccountID(4), amount: Amount(7), home: "C2", participants: ["C1", "C2"])),
        .follow(TransactionID(client: 2, sequence: 2), committed: true),
        .abort(TransactionID(client: 2, sequence: 3)),
        // Account 5 leaves for C2; account 30 arrives from C3; account 6 is on its way out (locked).
        .prepareMove(
            TransactionID(client: 3, sequence: 1), home: "C1", participants: ["C1", "C2"],
            part: .out(AccountID(5), to: "C2")),
        .decideCommit(
            TransactionID(client: 3, sequence: 1), agreed: .move(AccountID(5), balance: 10, source: "C1", target: "C2")),
        .prepareMove(
            TransactionID(client: 3, sequence: 2), home: "C3", participants: ["C1", "C3"],
            part: .into(AccountID(30), balance: 4, from: "C3")),
        .follow(TransactionID(client: 3, sequence: 2), committed: true),
        .prepareMove(
            TransactionID(client: 3, sequence: 3), home: "C1", participants: ["C1", "C3"],
            part: .out(AccountID(6), to: "C3")),
        .prepareMove(
            TransactionID(client: 3, sequence: 4), home: "C2", participants: ["C1", "C2"],
            part: .into(AccountID(31), balance: 1, from: "C2")),
        // Client 1 waits on nothing below 2: T1.1 is forgotten, and client 1's floor is in the snapshot.
        .release(client: 1, floor: 2),
    ]
    var wal: [WALRecord] = []
    var datastore: [DatastoreRecord] = []
    for (index, command) in applied.enumerated() {
        let effects = state.apply(command, slot: Slot(index + 1), ballot: ballot)
        wal += effects.wal
        datastore += effects.datastore.map { [$0] } ?? []
    }
    return LedgerSnapshot(state: state, wal: wal, datastore: datastore)
}

private let snapshots: [LedgerSnapshot] = [
    LedgerSnapshot(state: LedgerState(cluster: "C1", minBalance: 0), wal: [], datastore: []),
    appliedSnapshot(),
]

// MARK: - Helpers

/// The error `body` throws, or nil when it decodes.
private func decodingError<Value>(_ body: () throws(CodecError) -> Value) -> CodecError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// Checks that `value` survives encoding, that no proper prefix of its encoding decodes (each is refused at or
/// before its end), and that a trailing byte is refused.
private func checkRoundTrip<Value: Equatable>(
    _ value: Value, kind: String, encode: (Value) -> [UInt8], decode: ([UInt8]) throws(CodecError) -> Value,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let bytes = encode(value)
    #expect(bytes.prefix(1) == [LedgerCodec.formatVersion], sourceLocation: sourceLocation)
    do {
        #expect(try decode(bytes) == value, sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(error)", sourceLocation: sourceLocation)
    }
    for length in 0..<bytes.count {
        guard let error = decodingError({ () throws(CodecError) in try decode(Array(bytes.prefix(length))) }) else {
            Issue.record("the first \(length) of \(bytes.count) bytes decoded", sourceLocation: sourceLocation)
            continue
        }
        #expect(error.offset <= length, "\(error)", sourceLocation: sourceLocation)
    }
    #expect(
        decodingError({ () throws(CodecError) in try decode(bytes + [0, 0]) })
            == CodecError("2 trailing bytes after \(kind)", offset: bytes.count),
        sourceLocation: sourceLocation)
}

/// Decodes bytes and encodes the result again: for a canonical encoding, the same bytes.
private func reencoding<Value>(
    _ encode: @escaping (Value) -> [UInt8], _ decode: @escaping ([UInt8]) throws(CodecError) -> Value
) -> ([UInt8]) throws(CodecError) -> [UInt8] {
    { bytes throws(CodecError) in encode(try decode(bytes)) }
}

// MARK: - Round trips

@Suite struct BinaryCodecRoundTripTests {
    @Test(arguments: commands) func command(_ command: LedgerCommand) {
        checkRoundTrip(command, kind: "a ledger command", encode: LedgerCodec.encode, decode: LedgerCodec.decodeCommand)
    }

    @Test(arguments: slotValues) func slotValue(_ value: SlotValue<LedgerCommand>) {
        checkRoundTrip(value, kind: "a slot value", encode: LedgerCodec.encode, decode: LedgerCodec.decodeSlotValue)
    }

    @Test(arguments: membershipHistories) func memberships(_ memberships: Memberships) {
        checkRoundTrip(
            memberships, kind: "a cluster's configurations", encode: LedgerCodec.encode,
            decode: LedgerCodec.decodeMemberships)
    }

    @Test(arguments: ballots) func ballot(_ ballot: Ballot) {
        checkRoundTrip(ballot, kind: "a ballot", encode: LedgerCodec.encode, decode: LedgerCodec.decodeBallot)
    }

    @Test(arguments: statuses) func status(_ status: LedgerState.Status) {
        for opening in [nil, commands[0]] {
            let bytes = LedgerCodec.encode(status, opening: opening)
            let decoded = try? LedgerCodec.decodeStatus(bytes)
            #expect(decoded?.status == status && decoded?.opening == opening)
        }
    }

    @Test(arguments: walRecords) func walRecord(_ record: WALRecord) {
        checkRoundTrip(record, kind: "a WAL record", encode: LedgerCodec.encode, decode: LedgerCodec.decodeWALRecord)
    }

    @Test(arguments: [[], walRecords]) func walRecordList(_ records: [WALRecord]) {
        checkRoundTrip(
            records, kind: "a list of WAL records", encode: LedgerCodec.encode, decode: LedgerCodec.decodeWALRecords)
    }

    @Test(arguments: datastoreRecords) func datastoreRecord(_ record: DatastoreRecord) {
        checkRoundTrip(
            record, kind: "a datastore record", encode: LedgerCodec.encode,
            decode: LedgerCodec.decodeDatastoreRecord)
    }

    @Test(arguments: snapshots) func snapshot(_ snapshot: LedgerSnapshot) {
        checkRoundTrip(
            snapshot, kind: "a ledger snapshot", encode: LedgerCodec.encode, decode: LedgerCodec.decodeSnapshot)
    }

    @Test func theAppliedSnapshotCoversEveryStatus() {
        let snapshot = appliedSnapshot()
        let statuses = Set(snapshot.state.transactions.values.map { "\($0)".prefix(5) })
        #expect(statuses == ["commi", "abort", "prepa"])
        #expect(
            snapshot.state.locks == [
                AccountID(3): TransactionID(client: 2, sequence: 1),
                AccountID(6): TransactionID(client: 3, sequence: 3),
                AccountID(31): TransactionID(client: 3, sequence: 4),
            ])
        #expect(snapshot.state.movedOut == [AccountID(5): "C2"])
        #expect(snapshot.state.balances[AccountID(5)] == nil && snapshot.state.balances[AccountID(30)] == 4)
        #expect(snapshot.state.balances[AccountID(31)] == nil)
        #expect(snapshot.datastore.count == 4)
    }

    @Test func equalSnapshotsEncodeToEqualBytes() {
        // Dictionaries iterate in a per-instance order; the encoding sorts their keys.
        let snapshot = appliedSnapshot()
        let rebuilt = try! LedgerState(
            cluster: "C1", minBalance: snapshot.state.minBalance, balances: snapshot.state.balances,
            locks: snapshot.state.locks,
            transactions: snapshot.state.transactions, openings: snapshot.state.openings,
            movedOut: snapshot.state.movedOut, sessions: snapshot.state.sessions,
            retiredClients: snapshot.state.retiredClients, undelivered: snapshot.state.undelivered)
        let copy = LedgerSnapshot(state: rebuilt, wal: snapshot.wal, datastore: snapshot.datastore)
        #expect(LedgerCodec.encode(copy) == LedgerCodec.encode(snapshot))
    }

    @Test func smallValuesStaySmall() {
        #expect(LedgerCodec.encode(commands[0]) == [4, 1, 1, 7, 1, 21, 0xBC, 0x05, 2])
        #expect(LedgerCodec.encode(Ballot(round: 5, replica: ReplicaID(3))) == [4, 3, 5, 6])
        #expect(LedgerCodec.encode(LedgerState.Status.committed, opening: nil) == [4, 4, 1, 0])
    }
}

// MARK: - Malformed input

/// One malformed input and the exact error its decoder must throw.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    var decode: @Sendable ([UInt8]) throws(CodecError) -> Void
    var expected: CodecError

    var testDescription: String { name }
}

private func command(_ bytes: [UInt8]) throws(CodecError) { _ = try LedgerCodec.decodeCommand(bytes) }
private func slotValue(_ bytes: [UInt8]) throws(CodecError) { _ = try LedgerCodec.decodeSlotValue(bytes) }
private func ballot(_ bytes: [UInt8]) throws(CodecError) { _ = try LedgerCodec.decodeBallot(bytes) }
private func memberships(_ bytes: [UInt8]) throws(CodecError) { _ = try LedgerCodec.decodeMemberships(bytes) }
private func status(_ bytes: [UInt8]) throws(CodecError) { _ = try LedgerCodec.decodeStatus(bytes) }
private func walRecord(_ bytes: [UInt8]) throws(CodecError) { _ = try LedgerCodec.decodeWALRecord(bytes) }
private func walRecordList(_ bytes: [UInt8]) throws(CodecError) { _ = try LedgerCodec.decodeWALRecords(bytes) }
private func datastoreRecord(_ bytes: [UInt8]) throws(CodecError) {
    _ = try LedgerCodec.decodeDatastoreRecord(bytes)
}
private func snapshot(_ bytes: [UInt8]) throws(CodecError) { _ = try LedgerCodec.decodeSnapshot(bytes) }

private let c1: [UInt8] = [2, 0x43, 0x31]  // "C1" with its length

private let malformedCases: [MalformedCase] = [
    // Framing.
    MalformedCase(
        name: "empty input", bytes: [], decode: command,
        expected: CodecError("the input ends inside the format version", offset: 0)),
    MalformedCase(
        name: "newer format version", bytes: [5, 1, 3, 7, 1], decode: command,
        expected: CodecError("format version 5 is not supported; this build reads versions 3 to 4", offset: 0)),
    MalformedCase(
        name: "no kind", bytes: [3], decode: command,
        expected: CodecError("the input ends inside the kind of value", offset: 1)),
    MalformedCase(
        name: "another kind", bytes: [3, 3, 0, 0], decode: command,
        expected: CodecError("holds a ballot; expected a ledger command", offset: 1)),
    MalformedCase(
        name: "unknown kind", bytes: [3, 99], decode: snapshot,
        expected: CodecError("has unknown kind 99; expected a ledger snapshot", offset: 1)),
    MalformedCase(
        name: "one trailing byte", bytes: [3, 3, 1, 2, 0], decode: ballot,
        expected: CodecError("1 trailing byte after a ballot", offset: 4)),

    // Tags.
    MalformedCase(
        name: "command tag 0", bytes: [3, 1, 0], decode: command,
        expected: CodecError("unknown tag 0 of a command", offset: 2)),
    MalformedCase(
        name: "command tag 9", bytes: [3, 1, 9, 7, 1], decode: command,
        expected: CodecError("unknown tag 9 of a command", offset: 2)),
    MalformedCase(
        name: "slot value tag 4", bytes: [3, 2, 4], decode: slotValue,
        expected: CodecError("unknown tag 4 of a slot value", offset: 2)),
    MalformedCase(
        name: "configurations: none", bytes: [4, 9, 0], decode: memberships,
        expected: CodecError("a history of no configuration", offset: 2)),
    MalformedCase(
        name: "configurations: replica 0 among the voters", bytes: [4, 9, 1, 0, 1, 1, 1, 0, 0, 0], decode: memberships,
        expected: CodecError("replica index 0 among the voters; indices start at 1", offset: 7)),
    MalformedCase(
        name: "configurations: a voter named twice", bytes: [4, 9, 1, 0, 1, 1, 2, 1, 1, 0, 0], decode: memberships,
        expected: CodecError("the voters are not in ascending order, each once: S1 after S1", offset: 8)),
    MalformedCase(
        name: "configurations: voters out of order", bytes: [4, 9, 1, 0, 1, 1, 2, 3, 2, 0, 0], decode: memberships,
        expected: CodecError("the voters are not in ascending order, each once: S2 after S3", offset: 8)),
    MalformedCase(
        name: "configurations: the second does not follow the first",
        bytes: [4, 9, 2, 0, 1, 1, 1, 1, 0, 0, 5, 21, 3, 1, 1, 0, 0], decode: memberships,
        expected: CodecError(
            "the configurations do not ascend in slot and epoch by one, or forget a retired replica: epoch 1: voters "
                + "S1 from slot 1; epoch 3: voters S1 from slot 21", offset: 2)),
    MalformedCase(
        name: "status tag 5", bytes: [3, 4, 5], decode: status,
        expected: CodecError("unknown tag 5 of a transaction status", offset: 2)),
    MalformedCase(
        name: "abort reason tag 9", bytes: [3, 4, 2, 9], decode: status,
        expected: CodecError("unknown tag 9 of an abort reason", offset: 3)),
    MalformedCase(
        name: "WAL record tag 7", bytes: [3, 5, 7, 1, 7], decode: walRecord,
        expected: CodecError("unknown tag 7 of a WAL record", offset: 4)),
    MalformedCase(
        name: "datastore record tag 5", bytes: [3, 7, 7, 1, 5], decode: datastoreRecord,
        expected: CodecError("unknown tag 5 of a datastore record", offset: 4)),

    // Varints.
    MalformedCase(
        name: "varint over 64 bits", bytes: [3, 3] + Array(repeating: 0xFF, count: 9) + [0x02, 0], decode: ballot,
        expected: CodecError("the round of the ballot does not fit in 64 bits", offset: 2)),
    MalformedCase(
        name: "varint with 11 bytes", bytes: [3, 3] + Array(repeating: 0x80, count: 10) + [0x01, 0], decode: ballot,
        expected: CodecError("the round of the ballot does not fit in 64 bits", offset: 2)),
    MalformedCase(
        name: "varint not in shortest form", bytes: [3, 3, 0x85, 0x00, 1], decode: ballot,
        expected: CodecError("the round of the ballot is not in its shortest form", offset: 2)),
    MalformedCase(
        name: "truncated varint", bytes: [3, 3, 0x85], decode: ballot,
        expected: CodecError("the input ends inside the round of the ballot", offset: 3)),

    // Invalid values.
    MalformedCase(
        name: "account id 0", bytes: [3, 1, 1, 7, 1, 0, 2, 5], decode: command,
        expected: CodecError("the from account of a transfer is 0; account ids start at 1", offset: 5)),
    MalformedCase(
        name: "amount 0", bytes: [3, 1, 1, 7, 1, 3, 4, 0], decode: command,
        expected: CodecError("the amount of a transfer is 0; amounts are positive", offset: 7)),
    MalformedCase(
        name: "amount over Int64.max", bytes: [3, 1, 1, 7, 1, 3, 4] + Array(repeating: 0x80, count: 9) + [1],
        decode: command,
        expected: CodecError(
            "the amount of a transfer 9223372036854775808 is over the largest amount 9223372036854775807", offset: 7)
    ),
    MalformedCase(
        name: "zero amount in a prepare", bytes: [3, 1, 2, 7, 1, 5, 6, 0] + c1 + [1] + c1, decode: command,
        expected: CodecError("the amount of a cross-shard transfer is 0; amounts are positive", offset: 7)),
    MalformedCase(
        name: "followed decision neither commit nor abort", bytes: [3, 1, 8, 7, 1, 2], decode: command,
        expected: CodecError("decision 2 is neither 0 (abort) nor 1 (commit)", offset: 5)),
    MalformedCase(
        name: "zero delta in a datastore record", bytes: [3, 7, 7, 1, 2, 1, 5, 0, 1, 1, 1], decode: datastoreRecord,
        expected: CodecError("the change to account 5 is 0; a change moves money", offset: 7)),
    MalformedCase(
        name: "account 0 in a WAL update", bytes: [3, 5, 7, 1, 2, 0, 20, 4], decode: walRecord,
        expected: CodecError("the account of a WAL update is 0; account ids start at 1", offset: 5)),
    MalformedCase(
        name: "reversed account range", bytes: [3, 1, 5, 1, 9, 3, 20], decode: command,
        expected: CodecError("account range 9...3 ends before it starts", offset: 4)),
    MalformedCase(
        name: "no-op without its proposer's ballot", bytes: [3, 2, 1], decode: slotValue,
        expected: CodecError("the input ends inside the round of the ballot that proposed a slot value", offset: 3)),
    MalformedCase(
        name: "slot value stamped with round 0", bytes: [3, 2, 1, 0, 2], decode: slotValue,
        expected: CodecError(
            "the round of the ballot that proposed a slot value is 0; proposals have round 1 or more", offset: 3)),
    MalformedCase(
        name: "slot value stamped by replica 0", bytes: [3, 2, 2, 4, 0, 0], decode: slotValue,
        expected: CodecError(
            "the replica of the ballot that proposed a slot value is 0; replica indices start at 1", offset: 3)),
    MalformedCase(
        name: "cluster name not UTF-8", bytes: [3, 1, 2, 7, 1, 5, 6, 1, 2, 0xFF, 0xFE, 0], decode: command,
        expected: CodecError("the home cluster is not valid UTF-8", offset: 9)),

    // Lengths over their limits, or over the bytes left.
    MalformedCase(
        name: "batch over the slot limit", bytes: [3, 2, 2, 1, 2, 0x81, 0x04], decode: slotValue,
        expected: CodecError("513 requests of a slot exceed the limit of 512 (requestsPerSlotMax)", offset: 5)),
    MalformedCase(
        name: "batch longer than the input", bytes: [3, 2, 2, 1, 2, 3, 0, 0], decode: slotValue,
        expected: CodecError("3 requests of a slot cannot fit in the 2 bytes left", offset: 5)),
    MalformedCase(
        name: "cluster name over its limit", bytes: [3, 1, 2, 7, 1, 5, 6, 1, 0x80, 0x02], decode: command,
        expected: CodecError(
            "256 bytes of the home cluster exceed the limit of 255 (clusterNameBytesMax)", offset: 8)),
    MalformedCase(
        name: "participants over their limit", bytes: [3, 1, 2, 7, 1, 5, 6, 1] + c1 + [0x81, 0x08], decode: command,
        expected: CodecError("1025 participants exceed the limit of 1024 (participantsMax)", offset: 11)),
    MalformedCase(
        name: "changes over their limit", bytes: [3, 4, 3] + c1 + [0] + [0x81, 0x20], decode: status,
        expected: CodecError("4097 account changes exceed the limit of 4096 (changesPerPrepareMax)", offset: 7)),
    MalformedCase(
        name: "ranges over their limit", bytes: [3, 1, 5, 0x81, 0x20], decode: command,
        expected: CodecError("4097 account ranges exceed the limit of 4096 (rangesPerCommandMax)", offset: 3)),
    MalformedCase(
        name: "WAL list over its limit", bytes: [3, 6, 0x83, 0x20], decode: walRecordList,
        expected: CodecError("4099 WAL records exceed the limit of 4098 (walRecordsPerListMax)", offset: 2)),
    MalformedCase(
        name: "abort explanation over its limit", bytes: [3, 4, 2, 6, 0x81, 0x20], decode: status,
        expected: CodecError(
            "4097 bytes of the abort explanation exceed the limit of 4096 (textBytesMax)", offset: 4)),
    MalformedCase(
        name: "snapshot count over its limit", bytes: [3, 8] + c1 + [0, 0x80, 0x80, 0x80, 0x80, 0x10],
        decode: snapshot,
        expected: CodecError("4294967296 balances exceed the limit of 4294967295 (snapshotEntriesMax)", offset: 6)),

    // Snapshot maps and invariants.
    MalformedCase(
        name: "an account twice", bytes: [3, 8] + c1 + [0, 2, 5, 20, 5, 20, 0, 0, 0, 0], decode: snapshot,
        expected: CodecError("account 5 appears twice in the balances", offset: 9)),
    MalformedCase(
        name: "accounts out of order", bytes: [3, 8] + c1 + [0, 2, 7, 20, 5, 20, 0, 0, 0, 0], decode: snapshot,
        expected: CodecError("account 5 follows account 7 in the balances; keys must ascend", offset: 9)),
    MalformedCase(
        name: "transactions out of order", bytes: [3, 8] + c1 + [0, 0, 0, 2, 7, 2, 1, 0, 7, 1, 1, 0, 0, 0, 0],
        decode: snapshot,
        expected: CodecError(
            "transaction T7.1 follows transaction T7.2 in the transactions; keys must ascend", offset: 13)
    ),
    MalformedCase(
        name: "a balance below the minimum", bytes: [3, 8] + c1 + [0, 1, 5, 1, 0, 0, 0, 0], decode: snapshot,
        expected: CodecError(
            "the ledger state breaks an invariant: account 5 has balance -1, below the minimum 0", offset: 2)),
    MalformedCase(
        name: "a lock without its prepare", bytes: [3, 8] + c1 + [0, 1, 5, 20, 1, 5, 7, 1, 0, 0, 0],
        decode: snapshot,
        expected: CodecError(
            "the ledger state breaks an invariant: account 5 is locked by T7.1, which is not prepared on it",
            offset: 2)),
]

@Suite struct BinaryCodecMalformedTests {
    @Test(arguments: malformedCases) func isRefusedWithItsError(_ malformed: MalformedCase) {
        #expect(decodingError({ () throws(CodecError) in try malformed.decode(malformed.bytes) }) == malformed.expected)
    }

    @Test func errorsSayWhereAndWhat() {
        #expect(
            CodecError("unknown tag 9 of a command", offset: 2).description
                == "malformed encoding at byte 2: unknown tag 9 of a command")
    }

    /// Flips and replaces bytes of valid encodings with a seeded generator: every result either is refused or decodes
    /// to a value whose encoding is exactly those bytes (the encoding is canonical), and nothing traps.
    @Test func mutatedBytesNeverTrap() {
        var random = SeededRandom(seed: 0x5EED)
        let encodings =
            commands.map { (LedgerCodec.encode($0), reencoding(LedgerCodec.encode, LedgerCodec.decodeCommand)) }
            + slotValues.map { (LedgerCodec.encode($0), reencoding(LedgerCodec.encode, LedgerCodec.decodeSlotValue)) }
            + ballots.map { (LedgerCodec.encode($0), reencoding(LedgerCodec.encode, LedgerCodec.decodeBallot)) }
            + statuses.map { status in
                (
                    LedgerCodec.encode(status, opening: commands[0]),
                    { (bytes: [UInt8]) throws(CodecError) -> [UInt8] in
                        let record = try LedgerCodec.decodeStatus(bytes)
                        return LedgerCodec.encode(record.status, opening: record.opening)
                    }
                )
            }
            + [(LedgerCodec.encode(walRecords), reencoding(LedgerCodec.encode, LedgerCodec.decodeWALRecords))]
            + datastoreRecords.map {
                (LedgerCodec.encode($0), reencoding(LedgerCodec.encode, LedgerCodec.decodeDatastoreRecord))
            }
            + snapshots.map { (LedgerCodec.encode($0), reencoding(LedgerCodec.encode, LedgerCodec.decodeSnapshot)) }
        var decoded = 0
        var refused = 0
        for (bytes, reencode) in encodings {
            for _ in 0..<300 {
                var mutated = bytes
                let position = Int(random.next() % UInt64(mutated.count))
                switch random.next() % 3 {
                case 0: mutated[position] ^= UInt8(1 << (random.next() % 8))
                case 1: mutated[position] = UInt8(truncatingIfNeeded: random.next())
                default: mutated.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                }
                do {
                    let reencoded = try reencode(mutated)
                    // A mutation into the older format reads (as it would from an old store), and is written anew.
                    if mutated[0] == LedgerCodec.formatVersion { #expect(reencoded == mutated) }
                    decoded += 1
                } catch {
                    #expect(error.offset <= mutated.count)
                    refused += 1
                }
            }
        }
        #expect(refused > 0)
        #expect(decoded > 0)
    }

    @Test func limitViolationsAreNamedBeforeEncoding() {
        let longName = String(repeating: "x", count: 256)
        let tooLong = LedgerCommand.prepare(
            TransactionID(client: 1, sequence: 1),
            CrossShardTransfer(
                from: AccountID(1), to: AccountID(2), amount: Amount(1), home: longName, participants: [longName]))
        #expect(
            LedgerCodec.limitViolation(in: tooLong) == "cluster name of 256 bytes is over the limit of 255")
        let manyRanges = LedgerCommand.createAccounts(
            Array(repeating: AccountID(1)...AccountID(1), count: 4_097), balance: 0)
        #expect(LedgerCodec.limitViolation(in: manyRanges) == "4097 account ranges are over the limit of 4096")
        for command in commands {
            #expect(LedgerCodec.limitViolation(in: command) == nil)
        }
    }
}
