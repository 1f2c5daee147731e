import LedgerCore
import LedgerRPC
import Paxos

/// Values covering every case the wire carries, shared by the round-trip and malformed-input tests.
enum Samples {
    static let transaction = TransactionID(client: 7, sequence: 1)
    static let other = TransactionID(client: 9, sequence: LedgerCommand.sequenceMax)  // the largest valid sequence

    static let transfer = LedgerCommand.transfer(
        transaction, from: AccountID(21), to: AccountID(700), amount: Amount(2))
    static let largestTransfer = LedgerCommand.transfer(
        other, from: AccountID(UInt64.max), to: AccountID(1), amount: Amount(Int64.max))
    static let prepare = LedgerCommand.prepare(
        other,
        CrossShardTransfer(
            from: AccountID(12), to: AccountID(1013), amount: Amount(640), home: "C1", participants: ["C1", "C2"]))
    static let decideCommit = LedgerCommand.decideCommit(
        other, agreed: .move(AccountID(1997), balance: Int64.min, source: "C2", target: "C1"))
    static let decideCommitTransfer = LedgerCommand.decideCommit(
        transaction,
        agreed: .transfer(
            CrossShardTransfer(
                from: AccountID(UInt64.max), to: AccountID(1), amount: Amount(Int64.max), home: "C3",
                participants: ["C3", "C1"])))
    static let followCommit = LedgerCommand.follow(transaction, committed: true)
    static let followAbort = LedgerCommand.follow(other, committed: false)
    static let moveOut = LedgerCommand.prepareMove(
        other, home: "C2", participants: ["C1", "C2"], part: .out(AccountID(1997), to: "C1"))
    static let moveIn = LedgerCommand.prepareMove(
        other, home: "C2", participants: ["C1", "C2"], part: .into(AccountID(1997), balance: Int64.min, from: "C2"))
    static let commit = LedgerCommand.commit(transaction)
    static let abort = LedgerCommand.abort(other)
    static let createAccounts = LedgerCommand.createAccounts(
        [AccountID(1)...AccountID(1000), AccountID(2001)...AccountID(2001)], balance: 10)

    /// Every kind of command, with extreme values where a field has a range.
    static let commands = [
        transfer, largestTransfer, prepare, moveOut, moveIn, commit, abort, decideCommit, decideCommitTransfer,
        followCommit, followAbort, createAccounts,
    ]

    static let requests = commands.map { Request(id: $0.requestID, command: $0) }

    static let leaderBallot = Ballot(round: 3, replica: ReplicaID(2))
    static let highBallot = Ballot(round: UInt64.max, replica: ReplicaID(999_999))
    /// The lowest proposal ballot: the stamp of a value an early leader proposed and later leaders re-proposed.
    static let firstBallot = Ballot(round: 1, replica: ReplicaID(1))

    /// Values accepted under their own stamp and under higher ballots (re-proposed).
    static let entries = [
        SlotEntry(
            slot: 1,
            entry: LogEntry(ballot: leaderBallot, value: .batch(requests, ballot: leaderBallot), isChosen: true)),
        SlotEntry(slot: 2, entry: LogEntry(ballot: highBallot, value: .noop(ballot: leaderBallot), isChosen: false)),
        SlotEntry(
            slot: UInt64.max,
            entry: LogEntry(ballot: leaderBallot, value: .batch([], ballot: firstBallot), isChosen: false)),
    ]

    /// A ledger snapshot with balances, a lock, every transaction status and history.
    static let snapshot: LedgerSnapshot = {
        var state = LedgerState(cluster: "C1", minBalance: 0)
        var wal: [WALRecord] = []
        var datastore: [DatastoreRecord] = []
        let commands: [LedgerCommand] = [
            .createAccounts([AccountID(1)...AccountID(30)], balance: 10),
            .transfer(TransactionID(client: 1, sequence: 1), from: AccountID(1), to: AccountID(2), amount: Amount(3)),
            .transfer(TransactionID(client: 1, sequence: 2), from: AccountID(1), to: AccountID(2), amount: Amount(300)),
            .prepare(
                TransactionID(client: 2, sequence: 1),
                CrossShardTransfer(
                    from: AccountID(5), to: AccountID(5000), amount: Amount(4), home: "C1",
                    participants: ["C1", "C2"])),
        ]
        for (index, command) in commands.enumerated() {
            let effects = state.apply(command, slot: Slot(index + 1), ballot: leaderBallot)
            wal += effects.wal
            if let record = effects.datastore { datastore.append(record) }
        }
        return LedgerSnapshot(state: state, wal: wal, datastore: datastore)
    }()

    /// A cluster of S1, S2, S3 that added S4 as a learner at slot 2, then promoted it at slot 40.
    static let memberships: Memberships = {
        let voters = [ReplicaID(1), ReplicaID(2), ReplicaID(3)]
        var memberships = Memberships(initial: Membership(epoch: 1, voters: voters))
        let learning = Membership(epoch: 2, voters: voters, learners: [ReplicaID(4)])
        precondition(memberships.record(learning, chosenAt: 2, delay: 16) == nil)
        let promoted = Membership(epoch: 3, voters: voters + [ReplicaID(4)])
        precondition(memberships.record(promoted, chosenAt: 40, delay: 16) == nil)
        return memberships
    }()

    /// Every case of `Paxos.Message`, with and without optional parts.
    static let messages: [LedgerMessage] = [
        .phase1a(ballot: leaderBallot, firstSlot: 1),
        .phase1b(ballot: leaderBallot, snapshotSlot: 0, chosenThrough: 0, entries: [], memberships: memberships),
        .phase1b(
            ballot: highBallot, snapshotSlot: 10_000, chosenThrough: 0, entries: entries,
            memberships: Memberships(initial: Membership(epoch: 1, voters: [ReplicaID(1)]))),
        .phase2a(ballot: leaderBallot, proposals: [], chosenThrough: 0),
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
                            membership: Membership(
                                epoch: 4, voters: [ReplicaID(1), ReplicaID(2), ReplicaID(4)],
                                learners: [ReplicaID(5)])),
                        ballot: leaderBallot)),
            ],
            chosenThrough: 3),
        .phase2b(ballot: leaderBallot, slots: [4, 5, UInt64.max], chosenThrough: 2),
        .chosen(ballot: leaderBallot, chosenThrough: 5),
        .heartbeat(ballot: leaderBallot, chosenThrough: 0, round: 0),
        .heartbeat(ballot: highBallot, chosenThrough: UInt64.max, round: UInt64.max),
        .heartbeatAck(ballot: highBallot, round: 0, chosenThrough: 0),
        .heartbeatAck(ballot: leaderBallot, round: 7, chosenThrough: 12),
        .rejected(promised: highBallot),
        .rejected(promised: .zero),
        .catchUpRequest(firstSlot: 6),
        .catchUpReply(snapshot: nil, entries: entries),
        .catchUpReply(snapshot: Snapshot(slot: 4, state: snapshot, memberships: memberships), entries: []),
        .catchUpReply(snapshot: Snapshot(slot: 4, state: snapshot, memberships: nil), entries: []),
        .forward(requests: requests),
        .forward(requests: []),
        .handover(ballot: highBallot),
    ]

    /// Every result of applying a command, every abort reason among them.
    static let results: [CommandResult] = [
        .committed,
        .preparedYes,
        .preparedMove(balance: 0),
        .preparedMove(balance: Int64.min),
        .refused("T7.1 is unknown here; commit needs a prepare first"),
        .accountsCreated(0),
        .accountsCreated(3000),
        .aborted(.insufficientFunds(AccountID(21), balance: -5)),
        .aborted(.locked(AccountID(21), by: transaction)),
        .aborted(.unknownAccount(AccountID(4000))),
        .aborted(.balanceOverflow(AccountID(UInt64.max))),
        .aborted(.aborted),
        .aborted(.invalid("transfer from 21 to itself")),
        .aborted(.invalid("")),
        .aborted(.moving(AccountID(1997), to: "C1")),
        .aborted(.moved(AccountID(UInt64.max), to: "C3")),
    ]

    /// Every way a replica can fail to apply a request.
    static let failures: [RequestFailure] = [
        .wrongShard(AccountID(1500), owner: "C2"),
        .wrongShard(AccountID(1500), owner: nil),
        .notLeader(hint: ReplicaID(3)),
        .notLeader(hint: nil),
        .noQuorum,
        .busy,
        .timedOut,
    ]

    static let walRecords = [
        WALRecord(transaction: transaction, kind: .start),
        WALRecord(transaction: transaction, kind: .update(AccountID(100), old: 10, new: 2)),
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
            transaction: other,
            kind: .crossShard([AccountChange(account: AccountID(12), delta: -640)]),
            slot: UInt64.max, ballot: highBallot),
        DatastoreRecord(
            transaction: other, kind: .moveOut(AccountID(1997), balance: 12, to: "C1"), slot: 4, ballot: leaderBallot),
        DatastoreRecord(
            transaction: other, kind: .moveIn(AccountID(1997), balance: -3, from: "C2"), slot: 5, ballot: leaderBallot),
    ]
}
