import LedgerCore
import Paxos
import Testing

/// Mutated encodings fed to every `LedgerCodec.decode*`: each returns or throws a `CodecError` with a message and an
/// offset inside the input. What decodes is canonical: it re-encodes to the very bytes it came from.
@Suite("Fuzzing the binary codec")
struct CodecFuzzTests {
    /// Valid encodings of every kind and case: the corpus.
    static let corpus: [[UInt8]] = {
        let samples = CodecSamples.self
        return samples.commands.map(LedgerCodec.encode) + samples.slotValues.map(LedgerCodec.encode)
            + samples.ballots.map(LedgerCodec.encode)
            + samples.statuses.map { LedgerCodec.encode($0, opening: samples.commands[0]) }
            + samples.walRecords.map { LedgerCodec.encode($0) } + [LedgerCodec.encode(samples.walRecords)]
            + samples.datastoreRecords.map(LedgerCodec.encode) + [LedgerCodec.encode(samples.snapshot)]
    }()

    @Test("every decoder, on mutated encodings")
    func decoders() {
        fuzz(
            "codec",
            generate: { mutator, _ in mutator.mutate(bytes: mutator.pick(Self.corpus), corpus: Self.corpus) },
            describe: { escaped($0) },
            check: Self.check)
    }

    /// Decodes `bytes` as every kind: accepted when one decoder takes it.
    static func check(_ bytes: [UInt8]) -> Verdict {
        let verdicts = [
            decoding(bytes, LedgerCodec.decodeCommand, LedgerCodec.encode),
            decoding(bytes, LedgerCodec.decodeSlotValue, LedgerCodec.encode),
            decoding(bytes, LedgerCodec.decodeBallot, LedgerCodec.encode),
            decoding(bytes, LedgerCodec.decodeStatus) { LedgerCodec.encode($0.status, opening: $0.opening) },
            decoding(bytes, LedgerCodec.decodeWALRecord, { LedgerCodec.encode($0) }),
            decoding(bytes, LedgerCodec.decodeWALRecords, { LedgerCodec.encode($0) }),
            decoding(bytes, LedgerCodec.decodeDatastoreRecord, LedgerCodec.encode),
            decoding(bytes, LedgerCodec.decodeSnapshot, LedgerCodec.encode),
        ]
        if let failure = verdicts.first(where: { if case .failed = $0 { true } else { false } }) {
            return failure
        }
        return verdicts.contains(.accepted) ? .accepted : .refused
    }

    static func decoding<Value>(
        _ bytes: [UInt8], _ decode: ([UInt8]) throws(CodecError) -> Value, _ encode: (Value) -> [UInt8]
    ) -> Verdict {
        do {
            let value = try decode(bytes)
            let again = encode(value)
            guard again == bytes else {
                return .failed("\(Value.self) decoded, but re-encodes to other bytes: \(escaped(again))")
            }
            return .accepted
        } catch {
            guard (0...bytes.count).contains(error.offset), !error.message.isEmpty else {
                return .failed("\(Value.self): error outside the input or empty: \(error)")
            }
            return .refused
        }
    }
}

/// Values of every case of every encoded type (as in the LedgerCore codec tests).
enum CodecSamples {
    static let maxAccount = AccountID(UInt64.max)
    static let lastTransaction = TransactionID(client: UInt64.max, sequence: UInt64.max)

    static let commands: [LedgerCommand] = [
        .transfer(TransactionID(client: 7, sequence: 1), from: AccountID(21), to: AccountID(700), amount: Amount(2)),
        .transfer(lastTransaction, from: maxAccount, to: AccountID(1), amount: Amount(Int64.max)),
        .prepare(
            TransactionID(client: 9, sequence: 300),
            CrossShardTransfer(
                from: AccountID(12), to: maxAccount, amount: Amount(Int64.max), home: "C1", participants: ["C1", "C2"])
        ),
        .prepare(
            TransactionID(client: 1, sequence: 2),
            CrossShardTransfer(
                from: AccountID(1), to: AccountID(2), amount: Amount(1), home: "Zürich-é", participants: [])),
        .decideCommit(
            TransactionID(client: 9, sequence: 302), agreed: .move(maxAccount, balance: -1, source: "C2", target: "C1")
        ),
        .follow(TransactionID(client: 9, sequence: 303), committed: true),
        .prepareMove(
            TransactionID(client: 9, sequence: 301), home: "C2", participants: ["C1", "C2"],
            part: .out(maxAccount, to: "C1")),
        .prepareMove(
            TransactionID(client: 9, sequence: 301), home: "C2", participants: ["C1", "C2"],
            part: .into(AccountID(1997), balance: Int64.min, from: "C2")),
        .commit(TransactionID(client: 4, sequence: 5)),
        .abort(lastTransaction),
        .createAccounts([AccountID(1)...AccountID(1000), AccountID(5000)...AccountID(5000)], balance: 10),
    ]

    static let slotValues: [SlotValue<LedgerCommand>] = [
        .noop(ballot: Ballot(round: 1, replica: ReplicaID(1))),
        .batch(
            commands.enumerated().map { Request(id: RequestID(client: 3, sequence: UInt64($0)), command: $1) },
            ballot: Ballot(round: UInt64.max, replica: ReplicaID(Int.max))),
    ]

    static let ballots: [Ballot] = [.zero, Ballot(round: 5, replica: ReplicaID(3))]

    static let prepared = LedgerState.Prepared(
        home: "C2", participants: ["C1", "C2"], changes: [AccountChange(account: AccountID(1402), delta: 4)], slot: 17)

    static let statuses: [LedgerState.Status] = [
        .committed,
        .aborted(.insufficientFunds(AccountID(12), balance: -3)),
        .aborted(.locked(AccountID(5), by: TransactionID(client: 8, sequence: 1))),
        .aborted(.unknownAccount(maxAccount)),
        .aborted(.balanceOverflow(AccountID(2))),
        .aborted(.aborted),
        .aborted(.invalid("transfer from 3 to itself")),
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

    static let walRecords: [WALRecord] = [
        WALRecord(transaction: TransactionID(client: 7, sequence: 1), kind: .start),
        WALRecord(transaction: lastTransaction, kind: .update(maxAccount, old: Int64.min, new: Int64.max)),
        WALRecord(transaction: TransactionID(client: 7, sequence: 1), kind: .commit),
        WALRecord(transaction: TransactionID(client: 7, sequence: 2), kind: .abort),
        WALRecord(transaction: lastTransaction, kind: .moveOut(maxAccount, balance: Int64.max, to: "C2")),
        WALRecord(
            transaction: TransactionID(client: 7, sequence: 3), kind: .moveIn(AccountID(1), balance: -4, from: "C1")),
    ]

    static let datastoreRecords: [DatastoreRecord] = [
        DatastoreRecord(
            transaction: TransactionID(client: 7, sequence: 1),
            kind: .transfer(from: AccountID(21), to: AccountID(700), amount: Amount(2)),
            slot: 1, ballot: Ballot(round: 1, replica: ReplicaID(1))),
        DatastoreRecord(
            transaction: lastTransaction, kind: .crossShard(prepared.changes), slot: Slot.max,
            ballot: Ballot(round: UInt64.max, replica: ReplicaID(9))),
        DatastoreRecord(
            transaction: TransactionID(client: 1, sequence: 2), kind: .moveOut(AccountID(5), balance: 3, to: "C3"),
            slot: 4, ballot: Ballot(round: 2, replica: ReplicaID(1))),
        DatastoreRecord(
            transaction: TransactionID(client: 1, sequence: 3),
            kind: .moveIn(maxAccount, balance: Int64.min, from: "C1"),
            slot: 5, ballot: Ballot(round: 2, replica: ReplicaID(1))),
    ]

    /// A state reached by applying real commands: balances, locks, committed and aborted transactions, moves.
    static let snapshot: LedgerSnapshot = {
        var state = LedgerState(cluster: "C1", minBalance: -100)
        let ballot = Ballot(round: 2, replica: ReplicaID(3))
        let applied: [LedgerCommand] = [
            .createAccounts([AccountID(1)...AccountID(20)], balance: 10),
            .transfer(TransactionID(client: 1, sequence: 1), from: AccountID(1), to: AccountID(2), amount: Amount(5)),
            .transfer(
                TransactionID(client: 1, sequence: 2), from: AccountID(1), to: AccountID(2), amount: Amount(500)),
            .prepare(
                TransactionID(client: 2, sequence: 1),
                CrossShardTransfer(
                    from: AccountID(3), to: AccountID(5000), amount: Amount(110), home: "C1",
                    participants: ["C1", "C2"])),
            .prepare(
                TransactionID(client: 2, sequence: 2),
                CrossShardTransfer(
                    from: AccountID(5000), to: AccountID(4), amount: Amount(7), home: "C2",
                    participants: ["C1", "C2"])),
            .follow(TransactionID(client: 2, sequence: 2), committed: true),
            .prepareMove(
                TransactionID(client: 3, sequence: 1), home: "C1", participants: ["C1", "C2"],
                part: .out(AccountID(5), to: "C2")),
            .commit(TransactionID(client: 3, sequence: 1)),
            .prepareMove(
                TransactionID(client: 3, sequence: 2), home: "C3", participants: ["C1", "C3"],
                part: .into(AccountID(30), balance: 4, from: "C3")),
            .commit(TransactionID(client: 3, sequence: 2)),
            .prepareMove(
                TransactionID(client: 3, sequence: 3), home: "C1", participants: ["C1", "C3"],
                part: .out(AccountID(6), to: "C3")),
        ]
        var wal: [WALRecord] = []
        var datastore: [DatastoreRecord] = []
        for (index, command) in applied.enumerated() {
            let effects = state.apply(command, slot: Slot(index + 1), ballot: ballot)
            wal += effects.wal
            datastore += effects.datastore.map { [$0] } ?? []
        }
        return LedgerSnapshot(state: state, wal: wal, datastore: datastore)
    }()
}
