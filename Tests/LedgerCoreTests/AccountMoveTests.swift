import LedgerCore
import Paxos
import Testing

/// Account moves (DESIGN §6) as the ledger applies them at the source and at the target: each step's result, the
/// account's whereabouts, what transfers that race the move are told, and the records written.
@Suite("account moves")
struct AccountMoveTests {
    static let ballot = Ballot(round: 2, replica: ReplicaID(1))
    static let move = TransactionID(client: 9, sequence: 1)
    static let a = AccountID(5)
    static let b = AccountID(6)

    /// C1, the source of the moves; C2 is their target.
    static func ledger(_ pairs: [AccountID: Int64] = [a: 12, b: 10], cluster: String = "C1") throws -> LedgerState {
        try LedgerState(cluster: cluster, minBalance: 0, balances: pairs, locks: [:], transactions: [:])
    }

    /// The source's commit, on the terms it prepared (its replicas propose it once the target reported the same).
    static func decide(_ ledger: LedgerState, _ id: TransactionID = move) -> LedgerCommand {
        .decideCommit(id, agreed: ledger.terms(of: id)!)
    }

    static func out(_ id: TransactionID = move, _ account: AccountID = a, to: String = "C2") -> LedgerCommand {
        .prepareMove(id, home: "C1", participants: ["C1", "C2"], part: .out(account, to: to))
    }

    static func into(_ id: TransactionID = move, _ account: AccountID = a, balance: Int64 = 12) -> LedgerCommand {
        .prepareMove(id, home: "C1", participants: ["C1", "C2"], part: .into(account, balance: balance, from: "C1"))
    }

    static func transfer(_ sequence: UInt64, _ from: AccountID, _ to: AccountID) -> LedgerCommand {
        .transfer(TransactionID(client: 4, sequence: sequence), from: from, to: to, amount: Amount(1))
    }

    @Test("the source locks the account, votes with its balance, and on commit remembers where it went")
    func source() throws {
        var source = try Self.ledger()
        let prepared = source.apply(Self.out(), slot: 1, ballot: Self.ballot)
        #expect(prepared.result == .preparedMove(balance: 12))
        #expect(prepared.locked == [Self.a: Self.move])
        #expect(
            prepared.wal == [
                WALRecord(transaction: Self.move, kind: .start),
                WALRecord(transaction: Self.move, kind: .moveOut(Self.a, balance: 12, to: "C2")),
            ])
        #expect(prepared.wal.map(\.description) == ["<T9.1, Start>", "<T9.1, MoveOut, 5, 12, C2>"])
        // A retried prepare answers the same; a transfer racing the move is told to wait.
        #expect(source.apply(Self.out(), slot: 2, ballot: Self.ballot).result == .preparedMove(balance: 12))
        #expect(
            source.apply(Self.transfer(1, Self.a, Self.b), slot: 3, ballot: Self.ballot).result
                == .aborted(.moving(Self.a, to: "C2")))
        #expect(source.balances[Self.a] == 12)

        let committed = source.apply(Self.decide(source), slot: 4, ballot: Self.ballot)
        #expect(committed.result == .committed)
        #expect(committed.unlocked == [Self.a] && committed.movedOut == [Self.a: "C2"])
        #expect(
            committed.datastore
                == DatastoreRecord(
                    transaction: Self.move, kind: .moveOut(Self.a, balance: 12, to: "C2"), slot: 4, ballot: Self.ballot)
        )
        #expect(source.balances == [Self.b: 10] && source.locks.isEmpty && source.movedOut == [Self.a: "C2"])
        #expect(source.total == 10)
        // From now on the account is elsewhere, for transfers, prepares and moves alike.
        #expect(
            source.apply(Self.transfer(2, Self.b, Self.a), slot: 5, ballot: Self.ballot).result
                == .aborted(.moved(Self.a, to: "C2")))
        let late = TransactionID(client: 9, sequence: 2)
        #expect(source.apply(Self.out(late), slot: 6, ballot: Self.ballot).result == .aborted(.moved(Self.a, to: "C2")))
        // The accounts of the catalog's ranges are never created again here.
        #expect(
            source.apply(.createAccounts([AccountID(5)...AccountID(6)], balance: 10), slot: 7, ballot: Self.ballot)
                .result == .accountsCreated(0))
        #expect(source.apply(.commit(Self.move), slot: 8, ballot: Self.ballot).result == .committed)
    }

    @Test("the target reserves the account, refuses transfers until the commit, then holds it")
    func target() throws {
        var target = try Self.ledger([Self.b: 10], cluster: "C2")
        let prepared = target.apply(Self.into(), slot: 1, ballot: Self.ballot)
        #expect(prepared.result == .preparedYes)
        #expect(target.locks == [Self.a: Self.move] && target.balances[Self.a] == nil)
        #expect(prepared.wal.map(\.description) == ["<T9.1, Start>", "<T9.1, MoveIn, 5, 12, C1>"])
        #expect(
            target.apply(Self.transfer(1, Self.b, Self.a), slot: 2, ballot: Self.ballot).result
                == .aborted(.moving(Self.a, to: "C2")))
        #expect(
            target.apply(.createAccounts([AccountID(5)...AccountID(5)], balance: 10), slot: 3, ballot: Self.ballot)
                .result == .accountsCreated(0))

        // The target creates the account only by following its source's commit.
        guard case .refused = target.apply(.commit(Self.move), slot: 4, ballot: Self.ballot).result else {
            Issue.record("a client's commit at the target was not refused")
            return
        }
        let committed = target.apply(.follow(Self.move, committed: true), slot: 4, ballot: Self.ballot)
        #expect(committed.result == .committed)
        #expect(committed.balances == [Self.a: 12] && committed.unlocked == [Self.a])
        #expect(committed.datastore?.kind == .moveIn(Self.a, balance: 12, from: "C1"))
        #expect(target.total == 22 && target.locks.isEmpty)
        #expect(target.apply(Self.transfer(2, Self.b, Self.a), slot: 5, ballot: Self.ballot).result == .committed)
        #expect(target.balances[Self.a] == 13)
    }

    @Test("money is conserved across the two clusters, and an account can move back")
    func roundTrip() throws {
        var c1 = try Self.ledger()
        var c2 = try Self.ledger([AccountID(100): 7], cluster: "C2")
        let there = Self.move
        guard case .preparedMove(let balance) = c1.apply(Self.out(there), slot: 1, ballot: Self.ballot).result else {
            Issue.record("the source did not vote yes")
            return
        }
        #expect(c2.apply(Self.into(there, balance: balance), slot: 1, ballot: Self.ballot).result == .preparedYes)
        #expect(c2.terms(of: there) == c1.terms(of: there))
        #expect(c1.apply(Self.decide(c1, there), slot: 2, ballot: Self.ballot).result == .committed)
        #expect(c2.apply(.follow(there, committed: true), slot: 2, ballot: Self.ballot).result == .committed)
        #expect(c1.total + c2.total == 29)

        let back = TransactionID(client: 9, sequence: 2)
        #expect(
            c2.apply(
                .prepareMove(back, home: "C2", participants: ["C1", "C2"], part: .out(Self.a, to: "C1")), slot: 3,
                ballot: Self.ballot
            ).result == .preparedMove(balance: 12))
        #expect(
            c1.apply(
                .prepareMove(
                    back, home: "C2", participants: ["C1", "C2"], part: .into(Self.a, balance: 12, from: "C2")),
                slot: 3, ballot: Self.ballot
            ).result == .preparedYes)
        #expect(c2.apply(Self.decide(c2, back), slot: 4, ballot: Self.ballot).result == .committed)
        let home = c1.apply(.follow(back, committed: true), slot: 4, ballot: Self.ballot)
        #expect(home.movedOut == [Self.a: nil] && home.movedOut.keys.contains(Self.a))
        #expect(c1.movedOut.isEmpty && c1.balances[Self.a] == 12 && c2.movedOut == [Self.a: "C1"])
        #expect(c1.total + c2.total == 29)
    }

    @Test("an abort releases the account where it was; a late commit is refused")
    func abort() throws {
        var source = try Self.ledger()
        var target = try Self.ledger([Self.b: 10], cluster: "C2")
        _ = source.apply(Self.out(), slot: 1, ballot: Self.ballot)
        _ = target.apply(Self.into(), slot: 1, ballot: Self.ballot)
        #expect(source.apply(.abort(Self.move), slot: 2, ballot: Self.ballot).unlocked == [Self.a])
        #expect(target.apply(.follow(Self.move, committed: false), slot: 2, ballot: Self.ballot).unlocked == [Self.a])
        #expect(source.balances[Self.a] == 12 && source.locks.isEmpty && source.movedOut.isEmpty)
        #expect(target.balances[Self.a] == nil && target.locks.isEmpty)
        #expect(
            source.apply(.commit(Self.move), slot: 3, ballot: Self.ballot).result
                == .refused("T9.1 was aborted; it cannot commit"))
        #expect(source.apply(Self.transfer(1, Self.a, Self.b), slot: 4, ballot: Self.ballot).result == .committed)
    }

    @Test(
        "a move that cannot be prepared votes no with the reason",
        arguments: [
            (
                AccountMoveTests.out(TransactionID(client: 9, sequence: 1), AccountID(77)),
                AbortReason.unknownAccount(AccountID(77))
            ),
            (AccountMoveTests.out(to: "C1"), .invalid("a move of 5 from C1 to itself")),
            (
                LedgerCommand.prepareMove(
                    AccountMoveTests.move, home: "C1", participants: ["C1", "C2", "C3"],
                    part: .out(AccountMoveTests.a, to: "C2")),
                .invalid("a move names the participants [\"C1\", \"C2\", \"C3\"] and the home C1; it has two")
            ),
            (AccountMoveTests.into(), .invalid("account 5 already exists here")),
            (
                AccountMoveTests.into(AccountMoveTests.move, AccountID(8), balance: -1),
                .invalid("account 8 would arrive with balance -1, below the minimum 0")
            ),
            (
                LedgerCommand.prepareMove(
                    AccountMoveTests.move, home: "C2", participants: ["C1", "C2"],
                    part: .into(AccountID(8), balance: 1, from: "C1")),
                .invalid("a move of 8 into C2 has its source as the home, not C2")
            ),
        ])
    func refused(command: LedgerCommand, reason: AbortReason) throws {
        // A move in is prepared at its target, C2 (holding the same accounts, to be refused for them).
        guard case .prepareMove(_, _, _, let part) = command else { return }
        var ledger: LedgerState
        if case .into = part { ledger = try Self.ledger(cluster: "C2") } else { ledger = try Self.ledger() }
        let effects = ledger.apply(command, slot: 1, ballot: Self.ballot)
        #expect(effects.result == .aborted(reason))
        #expect(effects.locked.isEmpty && ledger.locks.isEmpty)
        #expect(ledger.balances == [Self.a: 12, Self.b: 10])
    }

    @Test("an account locked by a cross-shard transfer cannot move until it is decided")
    func lockedByTransfer() throws {
        var ledger = try Self.ledger()
        let transfer = TransactionID(client: 4, sequence: 1)
        _ = ledger.apply(
            .prepare(
                transfer,
                CrossShardTransfer(
                    from: Self.a, to: AccountID(5000), amount: Amount(2), home: "C1", participants: ["C1", "C2"])),
            slot: 1, ballot: Self.ballot)
        #expect(
            ledger.apply(Self.out(), slot: 2, ballot: Self.ballot).result == .aborted(.locked(Self.a, by: transfer)))
    }

    @Test("restored state with a broken move is refused")
    func restoredInvariants() {
        #expect(throws: LedgerStateError("account 5 was moved to C2 but still has a balance here")) {
            try LedgerState(
                cluster: "C1", minBalance: 0, balances: [Self.a: 1], locks: [:], transactions: [:],
                movedOut: [Self.a: "C2"])
        }
        let reserving = LedgerState.Status.prepared(
            LedgerState.Prepared(
                home: "C1", participants: ["C1", "C2"], changes: [], move: .into(Self.a, balance: 3, from: "C1"),
                slot: 1))
        #expect(throws: LedgerStateError("account 5 is reserved for a move in by T9.1 but exists")) {
            try LedgerState(
                cluster: "C1", minBalance: 0, balances: [Self.a: 1], locks: [Self.a: Self.move],
                transactions: [Self.move: reserving])
        }
        #expect(throws: LedgerStateError("prepared move T9.1 does not hold the lock on 5")) {
            try LedgerState(
                cluster: "C1", minBalance: 0, balances: [:], locks: [:], transactions: [Self.move: reserving])
        }
        // A reservation holds the lock on an account that does not exist yet: that is the valid shape.
        #expect(throws: Never.self) {
            try LedgerState(
                cluster: "C2", minBalance: 0, balances: [:], locks: [Self.a: Self.move],
                transactions: [Self.move: reserving], openings: [Self.move: Self.into()])
        }
    }
}
