import LedgerCore
import Paxos
import Testing

/// The rules of DESIGN.md section 4, one at a time: each test applies commands to a small ledger and checks the
/// exact result, balances, locks, WAL records and datastore records.
@Suite("ledger state machine")
struct LedgerStateTests {
    static let slot: Slot = 7
    static let ballot = Ballot(round: 3, replica: ReplicaID(2))

    static func id(_ client: UInt64, _ sequence: UInt64) -> TransactionID {
        TransactionID(client: client, sequence: sequence)
    }

    static func account(_ value: UInt64) -> AccountID { AccountID(value) }

    static func balances(_ pairs: KeyValuePairs<UInt64, Int64>) -> [AccountID: Int64] {
        Dictionary(uniqueKeysWithValues: pairs.map { (AccountID($0.key), $0.value) })
    }

    /// A ledger holding exactly these balances (restored, so any balance at or above `minBalance` is possible).
    static func ledger(minBalance: Int64 = 0, _ pairs: KeyValuePairs<UInt64, Int64>) throws -> LedgerState {
        try LedgerState(cluster: "C1", minBalance: minBalance, balances: balances(pairs), locks: [:], transactions: [:])
    }

    static func transfer(_ id: TransactionID, _ from: UInt64, _ to: UInt64, _ amount: Int64) -> LedgerCommand {
        .transfer(id, from: AccountID(from), to: AccountID(to), amount: Amount(amount))
    }

    /// The whole transfer of a cross-shard prepare as this cluster (C1) takes it: a debit of `account` makes C1 the home
    /// of a transfer to account 5000 of C2; a credit makes C2 the home of a transfer from account 5000.
    static func prepare(
        _ id: TransactionID, _ change: KeyValuePairs<UInt64, Int64>, home: String? = nil,
        participants: [String] = ["C1", "C2"]
    ) -> LedgerCommand {
        let (account, delta) = change.first!
        let other = AccountID(5000)
        return .prepare(
            id,
            CrossShardTransfer(
                from: delta < 0 ? AccountID(account) : other, to: delta < 0 ? other : AccountID(account),
                amount: Amount(delta.magnitude == 0 ? 1 : Int64(delta.magnitude)),
                home: home ?? (delta < 0 ? "C1" : "C2"),
                participants: participants))
    }

    /// The home's commit on its own terms, as its replicas propose it once the other participant reported the same.
    static func decideCommit(_ ledger: LedgerState, _ id: TransactionID) -> LedgerCommand {
        .decideCommit(id, agreed: ledger.terms(of: id)!)
    }

    // MARK: - Creating accounts

    @Test("createAccounts creates the missing accounts, counts them, and is idempotent")
    func createAccounts() {
        var ledger = LedgerState(cluster: "C1", minBalance: 0)
        let first = ledger.apply(
            .createAccounts([Self.account(1)...Self.account(3)], balance: 10), slot: 1, ballot: Self.ballot)
        #expect(first.result == .accountsCreated(3))
        #expect(first.balances == Self.balances([1: 10, 2: 10, 3: 10]))
        #expect(first.wal.isEmpty && first.datastore == nil && first.transaction == nil)
        #expect(ledger.balances == Self.balances([1: 10, 2: 10, 3: 10]))

        let again = ledger.apply(
            .createAccounts([Self.account(1)...Self.account(3)], balance: 10), slot: 2, ballot: Self.ballot)
        #expect(again.result == .accountsCreated(0))
        #expect(again.balances.isEmpty)

        // Overlapping ranges and a one-account range: existing accounts keep their balance, whatever the new one.
        let overlap = ledger.apply(
            .createAccounts([Self.account(3)...Self.account(5), Self.account(9)...Self.account(9)], balance: 4),
            slot: 3, ballot: Self.ballot)
        #expect(overlap.result == .accountsCreated(3))
        #expect(overlap.balances == Self.balances([4: 4, 5: 4, 9: 4]))
        #expect(ledger.balances == Self.balances([1: 10, 2: 10, 3: 10, 4: 4, 5: 4, 9: 4]))
        #expect(ledger.total == 42)
        #expect(ledger.locks.isEmpty && ledger.transactions.isEmpty)
    }

    @Test(
        "createAccounts refuses an initial balance below the minimum",
        arguments: [
            (Int64(0), Int64(-1), CommandResult.refused("initial balance -1 is below the minimum 0")),
            (0, 0, .accountsCreated(2)),
            (-5, -5, .accountsCreated(2)),
            (-5, -6, .refused("initial balance -6 is below the minimum -5")),
        ])
    func createAccountsBelowMinimum(minBalance: Int64, balance: Int64, expected: CommandResult) {
        var ledger = LedgerState(cluster: "C1", minBalance: minBalance)
        let effects = ledger.apply(
            .createAccounts([Self.account(1)...Self.account(2)], balance: balance), slot: 1, ballot: Self.ballot)
        #expect(effects.result == expected)
        if case .refused = expected {
            #expect(ledger.balances.isEmpty && effects.balances.isEmpty)
        } else {
            #expect(ledger.balances == Self.balances([1: balance, 2: balance]))
        }
    }

    // MARK: - Intra-shard transfers

    @Test("a transfer moves the amount and writes Start, Update, Update, Commit and a datastore record")
    func transferCommits() throws {
        var ledger = try Self.ledger([21: 10, 8: 10, 5: 3])
        let id = Self.id(1, 1)
        let effects = ledger.apply(Self.transfer(id, 21, 8, 2), slot: Self.slot, ballot: Self.ballot)
        #expect(effects.result == .committed)
        #expect(ledger.balances == Self.balances([21: 8, 8: 12, 5: 3]))
        #expect(effects.balances == Self.balances([21: 8, 8: 12]))
        #expect(
            effects.wal.map(\.description) == [
                "<T1.1, Start>", "<T1.1, Update, 21, 8>", "<T1.1, Update, 8, 12>", "<T1.1, Commit>",
            ])
        #expect(
            effects.wal.map(\.kind) == [
                .start, .update(Self.account(21), old: 10, new: 8), .update(Self.account(8), old: 10, new: 12), .commit,
            ])
        let record = DatastoreRecord(
            transaction: id, kind: .transfer(from: Self.account(21), to: Self.account(8), amount: Amount(2)),
            slot: Self.slot, ballot: Self.ballot)
        #expect(effects.datastore == record)
        #expect(record.description == "T1.1 (21, 8, 2) slot 7 ballot (3,S2)")
        #expect(effects.transaction?.id == id && effects.transaction?.status == .committed)
        #expect(effects.locked.isEmpty && effects.unlocked.isEmpty)
        #expect(ledger.transactions == [id: .committed])
        #expect(ledger.recordedResult(of: id) == .committed)
        #expect(ledger.locks.isEmpty)
    }

    /// One row: the minimum balance, the transfer, and the result.
    struct TransferCase: Sendable, CustomTestStringConvertible {
        var minBalance: Int64
        var from: UInt64
        var to: UInt64
        var amount: Int64
        var expected: CommandResult
        var testDescription: String { "min \(minBalance): \(from) -> \(to) amount \(amount)" }
    }

    @Test(
        "a transfer is valid when both accounts exist, differ, and the debit stays at or above the minimum",
        arguments: [
            TransferCase(minBalance: 0, from: 1, to: 2, amount: 10, expected: .committed),
            TransferCase(
                minBalance: 0, from: 1, to: 2, amount: 11,
                expected: .aborted(.insufficientFunds(AccountID(1), balance: 10))),
            TransferCase(minBalance: -5, from: 1, to: 2, amount: 15, expected: .committed),
            TransferCase(
                minBalance: -5, from: 1, to: 2, amount: 16,
                expected: .aborted(.insufficientFunds(AccountID(1), balance: 10))),
            TransferCase(minBalance: 0, from: 99, to: 2, amount: 1, expected: .aborted(.unknownAccount(AccountID(99)))),
            TransferCase(minBalance: 0, from: 1, to: 99, amount: 1, expected: .aborted(.unknownAccount(AccountID(99)))),
            TransferCase(
                minBalance: 0, from: 1, to: 1, amount: 1, expected: .aborted(.invalid("transfer from 1 to itself"))),
            // The debit is judged before the credit's account.
            TransferCase(
                minBalance: 0, from: 1, to: 99, amount: 11,
                expected: .aborted(.insufficientFunds(AccountID(1), balance: 10))),
        ])
    func transferRules(row: TransferCase) throws {
        var ledger = try Self.ledger(minBalance: row.minBalance, [1: 10, 2: 10])
        let id = Self.id(3, 4)
        let effects = ledger.apply(
            Self.transfer(id, row.from, row.to, row.amount), slot: Self.slot, ballot: Self.ballot)
        #expect(effects.result == row.expected)
        if row.expected == .committed {
            #expect(ledger.balances == Self.balances([1: 10 - row.amount, 2: 10 + row.amount]))
            #expect(ledger.total == 20)
        } else if case .aborted(let reason) = row.expected {
            #expect(ledger.balances == Self.balances([1: 10, 2: 10]))
            #expect(effects.wal.map(\.description) == ["<T3.4, Start>", "<T3.4, Abort>"])
            #expect(effects.datastore == nil && effects.balances.isEmpty)
            #expect(ledger.transactions == [id: .aborted(reason)])
        }
        #expect(ledger.balances.values.allSatisfy { $0 >= row.minBalance })
    }

    @Test("a retried transfer changes nothing and answers the result recorded the first time")
    func retriedTransfer() throws {
        var ledger = try Self.ledger([1: 10, 2: 10])
        let committed = Self.transfer(Self.id(1, 1), 1, 2, 4)
        _ = ledger.apply(committed, slot: 1, ballot: Self.ballot)
        let after = ledger
        let retry = ledger.apply(committed, slot: 2, ballot: Self.ballot)
        #expect(retry.result == .committed)
        #expect(retry.wal.isEmpty && retry.datastore == nil && retry.balances.isEmpty && retry.transaction == nil)
        #expect(ledger == after)

        // Refused for lack of funds, then retried once the funds are there: still the recorded abort.
        let refused = Self.transfer(Self.id(1, 2), 1, 2, 7)
        let first = ledger.apply(refused, slot: 3, ballot: Self.ballot)
        #expect(first.result == .aborted(.insufficientFunds(Self.account(1), balance: 6)))
        _ = ledger.apply(Self.transfer(Self.id(1, 3), 2, 1, 5), slot: 4, ballot: Self.ballot)
        let before = ledger
        let second = ledger.apply(refused, slot: 5, ballot: Self.ballot)
        #expect(second.result == first.result)
        #expect(second.wal.isEmpty && second.transaction == nil)
        #expect(ledger == before)
        #expect(ledger.balances == Self.balances([1: 11, 2: 9]))
    }

    @Test("a credit that would overflow is refused; a debit that would overflow is insufficient funds")
    func overflow() throws {
        var ledger = try Self.ledger(minBalance: Int64.min, [1: 10, 2: Int64.max - 1, 3: Int64.min + 1])
        let credit = ledger.apply(Self.transfer(Self.id(1, 1), 1, 2, 2), slot: 1, ballot: Self.ballot)
        #expect(credit.result == .aborted(.balanceOverflow(Self.account(2))))
        let exact = ledger.apply(Self.transfer(Self.id(1, 2), 1, 2, 1), slot: 2, ballot: Self.ballot)
        #expect(exact.result == .committed)
        #expect(ledger.balances[Self.account(2)] == Int64.max)
        let debit = ledger.apply(Self.transfer(Self.id(1, 3), 3, 1, 2), slot: 3, ballot: Self.ballot)
        #expect(debit.result == .aborted(.insufficientFunds(Self.account(3), balance: Int64.min + 1)))
        let prepare = ledger.apply(Self.prepare(Self.id(1, 4), [2: 1]), slot: 4, ballot: Self.ballot)
        #expect(prepare.result == .aborted(.balanceOverflow(Self.account(2))))
        #expect(ledger.locks.isEmpty)
        #expect(ledger.balances == Self.balances([1: 9, 2: Int64.max, 3: Int64.min + 1]))
    }

    @Test(
        "money is conserved by every intra-shard transfer",
        arguments: [(UInt64(1), Int64(0)), (2, 0), (3, -5), (4, -20)])
    func moneyIsConserved(seed: UInt64, minBalance: Int64) {
        var random = SeededRandom(seed: seed)
        var ledger = LedgerState(cluster: "C1", minBalance: minBalance)
        _ = ledger.apply(
            .createAccounts([Self.account(1)...Self.account(8)], balance: 10), slot: 1, ballot: Self.ballot)
        var committed = 0
        for sequence in UInt64(1)...400 {
            let command = Self.transfer(
                Self.id(1, sequence), UInt64.random(in: 1...9, using: &random),
                UInt64.random(in: 1...9, using: &random),
                Int64.random(in: 1...15, using: &random))
            let effects = ledger.apply(command, slot: sequence + 1, ballot: Self.ballot)
            if effects.result == .committed { committed += 1 }
            #expect(ledger.total == 80)
            #expect(ledger.balances.values.allSatisfy { $0 >= minBalance })
        }
        #expect(committed > 50)
    }

    // MARK: - 2PC participant

    @Test("prepare at the home locks the debited account, records the planned update, and blocks transfers on it")
    func prepareLocks() throws {
        var ledger = try Self.ledger([21: 10, 8: 10, 5: 10])
        let id = Self.id(2, 1)
        let effects = ledger.apply(Self.prepare(id, [21: -3]), slot: 9, ballot: Self.ballot)
        #expect(effects.result == .preparedYes)
        #expect(effects.wal.map(\.description) == ["<T2.1, Start>", "<T2.1, Update, 21, 7>"])
        #expect(effects.wal.map(\.kind) == [.start, .update(Self.account(21), old: 10, new: 7)])
        #expect(effects.locked == [Self.account(21): id])
        #expect(effects.balances.isEmpty && effects.datastore == nil)
        #expect(ledger.balances == Self.balances([21: 10, 8: 10, 5: 10]))
        #expect(ledger.locks == [Self.account(21): id])
        guard case .prepared(let prepared) = ledger.transactions[id] else {
            Issue.record("\(id) is not prepared: \(String(describing: ledger.transactions[id]))")
            return
        }
        #expect(prepared.home == "C1" && prepared.participants == ["C1", "C2"])
        #expect(prepared.changes == [AccountChange(account: Self.account(21), delta: -3)] && prepared.slot == 9)
        #expect(ledger.recordedResult(of: id) == .preparedYes)
        #expect(ledger.openings[id] == Self.prepare(id, [21: -3]))

        // A transfer touching a locked account, as debit or credit, is rejected without waiting.
        let debit = ledger.apply(Self.transfer(Self.id(3, 1), 21, 5, 1), slot: 10, ballot: Self.ballot)
        #expect(debit.result == .aborted(.locked(Self.account(21), by: id)))
        #expect(debit.wal.map(\.description) == ["<T3.1, Start>", "<T3.1, Abort>"])
        let credit = ledger.apply(Self.transfer(Self.id(3, 2), 5, 21, 1), slot: 10, ballot: Self.ballot)
        #expect(credit.result == .aborted(.locked(Self.account(21), by: id)))
        #expect(credit.balances.isEmpty && credit.datastore == nil)
        #expect(ledger.balances == Self.balances([21: 10, 8: 10, 5: 10]))
        // A retried prepare answers its vote again and changes nothing.
        let before = ledger
        #expect(ledger.apply(Self.prepare(id, [21: -3]), slot: 11, ballot: Self.ballot).result == .preparedYes)
        #expect(ledger == before)
    }

    @Test("the clusters a ledger waits on: homes of what it holds prepared, participants of what it has to deliver")
    func clustersWaitedOn() throws {
        var ledger = try Self.ledger([21: 10, 8: 10])
        #expect(ledger.clustersWaitedOn(by: "C1").isEmpty)
        // A credit prepared for C2's transaction: C1 waits on C2's decision.
        let credit = Self.id(2, 1)
        _ = ledger.apply(Self.prepare(credit, [8: 5]), slot: 1, ballot: Self.ballot)
        #expect(ledger.clustersWaitedOn(by: "C1") == ["C2"])
        // C1's own transaction with C3: prepared, nothing to wait on but its own decision; committed, C3 until it
        // is delivered there.
        let debit = Self.id(2, 2)
        _ = ledger.apply(Self.prepare(debit, [21: -3], participants: ["C1", "C3"]), slot: 2, ballot: Self.ballot)
        #expect(ledger.clustersWaitedOn(by: "C1") == ["C2"])
        _ = ledger.apply(Self.decideCommit(ledger, debit), slot: 3, ballot: Self.ballot)
        #expect(ledger.undelivered == [debit])
        #expect(ledger.clustersWaitedOn(by: "C1") == ["C2", "C3"])
        _ = ledger.apply(.delivered(debit), slot: 4, ballot: Self.ballot)
        _ = ledger.apply(.follow(credit, committed: false), slot: 5, ballot: Self.ballot)
        #expect(ledger.clustersWaitedOn(by: "C1").isEmpty)
    }

    @Test("prepare at the other participant locks the credited account")
    func prepareCredit() throws {
        var ledger = try Self.ledger([8: 10])
        let id = Self.id(2, 2)
        let effects = ledger.apply(Self.prepare(id, [8: 5]), slot: 3, ballot: Self.ballot)
        #expect(effects.result == .preparedYes)
        #expect(effects.wal.map(\.description) == ["<T2.2, Start>", "<T2.2, Update, 8, 15>"])
        #expect(ledger.locks == [Self.account(8): id])
        #expect(ledger.route(.commit(id)) == .learn(id, home: "C2", aborting: false))
        #expect(ledger.route(.abort(id)) == .learn(id, home: "C2", aborting: true))
    }

    /// One row: a prepare against a ledger of C1 where account 1 (balance 10) is locked by T1.1, and its vote.
    struct PrepareCase: Sendable, CustomTestStringConvertible {
        var name: String
        var command: LedgerCommand
        var expected: CommandResult
        var testDescription: String { name }
    }

    static func crossShard(
        _ from: UInt64, _ to: UInt64, _ amount: Int64, home: String = "C1", participants: [String] = ["C1", "C2"]
    ) -> LedgerCommand {
        .prepare(
            id(4, 1),
            CrossShardTransfer(
                from: AccountID(from), to: AccountID(to), amount: Amount(amount), home: home,
                participants: participants))
    }

    @Test(
        "a prepare that cannot hold votes no and remembers the abort",
        arguments: [
            PrepareCase(
                name: "debits a locked account", command: crossShard(1, 5000, 1),
                expected: .aborted(.locked(AccountID(1), by: id(1, 1)))),
            PrepareCase(
                name: "credits a locked account", command: crossShard(5000, 1, 1, home: "C2"),
                expected: .aborted(.locked(AccountID(1), by: id(1, 1)))),
            PrepareCase(
                name: "debit not covered", command: crossShard(2, 5000, 11),
                expected: .aborted(.insufficientFunds(AccountID(2), balance: 10))),
            PrepareCase(
                name: "debit of an account not here", command: crossShard(77, 5000, 5),
                expected: .aborted(.unknownAccount(AccountID(77)))),
            PrepareCase(
                name: "credit of an account not here", command: crossShard(5000, 77, 5, home: "C2"),
                expected: .aborted(.unknownAccount(AccountID(77)))),
            PrepareCase(
                name: "a transfer to itself", command: crossShard(2, 2, 1),
                expected: .aborted(.invalid("a transfer from 2 to itself"))),
            PrepareCase(
                name: "one participant", command: crossShard(2, 5000, 1, participants: ["C1"]),
                expected: .aborted(
                    .invalid(
                        "a cross-shard transfer has two participants, the clusters of its accounts; this one names "
                            + "[\"C1\"]"))),
            PrepareCase(
                name: "the same participant twice", command: crossShard(2, 5000, 1, participants: ["C1", "C1"]),
                expected: .aborted(
                    .invalid(
                        "a cross-shard transfer has two participants, the clusters of its accounts; this one names "
                            + "[\"C1\", \"C1\"]"))),
            PrepareCase(
                name: "this cluster not a participant",
                command: crossShard(5000, 2, 1, home: "C2", participants: ["C2", "C3"]),
                expected: .aborted(.invalid("C1 is not among the participants [\"C2\", \"C3\"]"))),
            PrepareCase(
                name: "home not a participant", command: crossShard(5000, 2, 1, home: "C3"),
                expected: .aborted(.invalid("the home C3 is not among the participants [\"C1\", \"C2\"]"))),
            PrepareCase(
                // The debit lives here: the client is told so (`wrongShard` with this cluster as the owner).
                name: "the debit's cluster is not the home", command: crossShard(2, 1, 1, home: "C2"),
                expected: .aborted(.moved(AccountID(2), to: "C1"))),
            PrepareCase(
                name: "a credit here under a home that is this cluster", command: crossShard(5000, 2, 1),
                expected: .aborted(.unknownAccount(AccountID(5000)))),
            PrepareCase(
                // Both live here (a stale catalog): the client learns where the credited account is and sends an
                // intra-shard transfer.
                name: "both accounts here", command: crossShard(2, 1, 1),
                expected: .aborted(.moved(AccountID(1), to: "C1"))),
        ])
    func prepareVotesNo(row: PrepareCase) throws {
        var ledger = try Self.ledger([1: 10, 2: 10])
        _ = ledger.apply(Self.prepare(Self.id(1, 1), [1: -4]), slot: 1, ballot: Self.ballot)
        let before = ledger
        let effects = ledger.apply(row.command, slot: 2, ballot: Self.ballot)
        #expect(effects.result == row.expected)
        #expect(effects.wal.map(\.description) == ["<T4.1, Start>", "<T4.1, Abort>"])
        #expect(effects.locked.isEmpty && effects.balances.isEmpty && effects.datastore == nil)
        #expect(ledger.locks == before.locks && ledger.balances == before.balances)
        guard case .aborted(let reason) = row.expected else { return }
        #expect(ledger.transactions[Self.id(4, 1)] == .aborted(reason))
        // The abort is remembered: a commit is refused.
        #expect(
            ledger.apply(.commit(Self.id(4, 1)), slot: 3, ballot: Self.ballot).result
                == .refused("T4.1 was aborted; it cannot commit"))
    }

    @Test("the home commits on the agreed terms: the change applies, the lock goes, and a repeat changes nothing")
    func commit() throws {
        var ledger = try Self.ledger([21: 10, 8: 10])
        let id = Self.id(2, 1)
        _ = ledger.apply(Self.prepare(id, [21: -3]), slot: 4, ballot: Self.ballot)
        let commitBallot = Ballot(round: 5, replica: ReplicaID(1))
        // A client's commit as it is decides nothing: the home commits only on the participants' agreement.
        let bare = ledger.apply(.commit(id), slot: 8, ballot: commitBallot)
        guard case .refused = bare.result else {
            Issue.record("a bare commit of a prepared transaction was not refused: \(bare.result)")
            return
        }
        #expect(ledger.locks == [Self.account(21): id])
        let effects = ledger.apply(Self.decideCommit(ledger, id), slot: 9, ballot: commitBallot)
        #expect(effects.result == .committed)
        #expect(ledger.balances == Self.balances([21: 7, 8: 10]))
        #expect(effects.balances == Self.balances([21: 7]))
        #expect(ledger.locks.isEmpty)
        #expect(effects.unlocked == [Self.account(21)])
        // The updates were logged at prepare; commit adds only its mark.
        #expect(effects.wal.map(\.description) == ["<T2.1, Commit>"])
        let changes = [AccountChange(account: Self.account(21), delta: -3)]
        let record = DatastoreRecord(transaction: id, kind: .crossShard(changes), slot: 9, ballot: commitBallot)
        #expect(effects.datastore == record)
        #expect(record.description == "T2.1 21 -3 slot 9 ballot (5,S1)")
        #expect(ledger.transactions == [id: .committed])

        let after = ledger
        let again = ledger.apply(.commit(id), slot: 10, ballot: commitBallot)
        #expect(again.result == .committed)
        #expect(again.wal.isEmpty && again.datastore == nil && again.balances.isEmpty && again.unlocked.isEmpty)
        #expect(ledger == after)
        // The account is free again.
        #expect(
            ledger.apply(Self.transfer(Self.id(3, 1), 8, 21, 10), slot: 11, ballot: Self.ballot).result == .committed)
    }

    @Test("commit of an unknown or aborted transaction is refused and changes nothing")
    func commitRefused() throws {
        var ledger = try Self.ledger([1: 10, 2: 10])
        let before = ledger
        let unknown = ledger.apply(.commit(Self.id(9, 9)), slot: 1, ballot: Self.ballot)
        #expect(unknown.result == .refused("T9.9 is unknown here; commit needs a prepare first"))
        #expect(unknown.wal.isEmpty && unknown.transaction == nil)
        #expect(ledger == before)

        _ = ledger.apply(Self.prepare(Self.id(1, 1), [1: -2]), slot: 2, ballot: Self.ballot)
        let terms = try #require(ledger.terms(of: Self.id(1, 1)))
        _ = ledger.apply(.abort(Self.id(1, 1)), slot: 3, ballot: Self.ballot)
        let afterAbort = ledger
        let aborted = ledger.apply(.commit(Self.id(1, 1)), slot: 4, ballot: Self.ballot)
        #expect(aborted.result == .refused("T1.1 was aborted; it cannot commit"))
        #expect(aborted.wal.isEmpty && aborted.datastore == nil)
        let decided = ledger.apply(.decideCommit(Self.id(1, 1), agreed: terms), slot: 5, ballot: Self.ballot)
        #expect(decided.result == .refused("T1.1 was aborted; it cannot commit"))
        #expect(ledger == afterAbort)
        #expect(ledger.balances == Self.balances([1: 10, 2: 10]))
    }

    @Test("abort of a prepared transaction at its home releases its lock and drops its change")
    func abortPrepared() throws {
        var ledger = try Self.ledger([1: 10, 2: 10])
        let id = Self.id(1, 1)
        _ = ledger.apply(Self.prepare(id, [1: -2]), slot: 1, ballot: Self.ballot)
        let effects = ledger.apply(.abort(id), slot: 2, ballot: Self.ballot)
        #expect(effects.result == .aborted(.aborted))
        #expect(effects.wal.map(\.description) == ["<T1.1, Abort>"])
        #expect(effects.unlocked == [Self.account(1)])
        #expect(effects.balances.isEmpty && effects.datastore == nil)
        #expect(ledger.locks.isEmpty)
        #expect(ledger.balances == Self.balances([1: 10, 2: 10]))
        #expect(ledger.transactions == [id: .aborted(.aborted)])
        let after = ledger
        let again = ledger.apply(.abort(id), slot: 3, ballot: Self.ballot)
        #expect(again.result == .aborted(.aborted) && again.wal.isEmpty && again.unlocked.isEmpty)
        #expect(ledger == after)
    }

    @Test("a participant other than the home applies only the home's decision, learned from the home")
    func participantFollowsItsHome() throws {
        var ledger = try Self.ledger([1: 10])
        let id = Self.id(1, 1)
        _ = ledger.apply(Self.prepare(id, [1: 4]), slot: 1, ballot: Self.ballot)
        let prepared = ledger
        // A client's abort or commit, and a forged home's commit, are refused: the home C2 decides.
        for command in [LedgerCommand.abort(id), .commit(id), Self.decideCommit(ledger, id)] {
            guard case .refused = ledger.apply(command, slot: 2, ballot: Self.ballot).result else {
                Issue.record("\(command.summary) was not refused at a participant")
                return
            }
            #expect(ledger == prepared)
        }
        let effects = ledger.apply(.follow(id, committed: true), slot: 3, ballot: Self.ballot)
        #expect(effects.result == .committed)
        #expect(ledger.balances == Self.balances([1: 14]) && ledger.locks.isEmpty)
        // The decision stands: following the opposite is refused.
        #expect(
            ledger.apply(.follow(id, committed: false), slot: 4, ballot: Self.ballot).result
                == .refused("T1.1 is committed; it cannot abort"))
        // At the home, following is refused: it decides.
        var home = try Self.ledger([2: 10])
        _ = home.apply(Self.prepare(Self.id(1, 2), [2: -1]), slot: 1, ballot: Self.ballot)
        #expect(
            home.apply(.follow(Self.id(1, 2), committed: true), slot: 2, ballot: Self.ballot).result
                == .refused("C1 is the home of T1.2: it decides and follows no one"))
    }

    @Test("abort of an unknown transaction records it, so a late prepare and commit are refused")
    func abortUnknown() throws {
        var ledger = try Self.ledger([1: 10, 2: 10])
        let id = Self.id(5, 5)
        let effects = ledger.apply(.abort(id), slot: 1, ballot: Self.ballot)
        #expect(effects.result == .aborted(.aborted))
        #expect(effects.wal.map(\.description) == ["<T5.5, Start>", "<T5.5, Abort>"])
        #expect(ledger.transactions == [id: .aborted(.aborted)])
        let late = ledger.apply(Self.prepare(id, [1: -2]), slot: 2, ballot: Self.ballot)
        #expect(late.result == .aborted(.aborted))
        #expect(late.wal.isEmpty && late.locked.isEmpty)
        #expect(ledger.locks.isEmpty)
        #expect(
            ledger.apply(.commit(id), slot: 3, ballot: Self.ballot).result
                == .refused("T5.5 was aborted; it cannot commit"))
        #expect(ledger.balances == Self.balances([1: 10, 2: 10]))
    }

    @Test("abort of a committed transaction is refused and changes nothing")
    func abortCommitted() throws {
        var ledger = try Self.ledger([1: 10, 2: 10])
        let id = Self.id(1, 1)
        _ = ledger.apply(Self.prepare(id, [1: -2]), slot: 1, ballot: Self.ballot)
        _ = ledger.apply(Self.decideCommit(ledger, id), slot: 2, ballot: Self.ballot)
        let before = ledger
        let effects = ledger.apply(.abort(id), slot: 3, ballot: Self.ballot)
        #expect(effects.result == .refused("T1.1 is committed; it cannot abort"))
        #expect(effects.wal.isEmpty && effects.unlocked.isEmpty)
        #expect(ledger == before)
        #expect(ledger.balances == Self.balances([1: 8, 2: 10]))
    }

    @Test("an id used again with other content is refused, naming both; the same content gets the first outcome")
    func idempotencyKeys() throws {
        var ledger = try Self.ledger([1: 10, 2: 10])
        let id = Self.id(6, 1)
        #expect(ledger.apply(Self.transfer(id, 1, 2, 2), slot: 1, ballot: Self.ballot).result == .committed)
        let before = ledger
        #expect(ledger.apply(Self.transfer(id, 1, 2, 2), slot: 2, ballot: Self.ballot).result == .committed)
        let other = ledger.apply(Self.transfer(id, 1, 2, 3), slot: 3, ballot: Self.ballot)
        #expect(
            other.result
                == .refused(
                    "transaction T6.1 was first used for a transfer of 2 from 1 to 2; this request is a transfer of 3 "
                        + "from 1 to 2: one id names one transaction"))
        guard case .refused = ledger.apply(Self.prepare(id, [1: -1]), slot: 4, ballot: Self.ballot).result else {
            Issue.record("a prepare reusing a transfer's id was not refused")
            return
        }
        #expect(ledger == before)
    }

    // MARK: - Restoring

    @Test("restoring from parts gives back the same state")
    func restoreRoundTrip() throws {
        var ledger = LedgerState(cluster: "C1", minBalance: -5)
        _ = ledger.apply(
            .createAccounts([Self.account(1)...Self.account(4)], balance: 10), slot: 1, ballot: Self.ballot)
        _ = ledger.apply(Self.transfer(Self.id(1, 1), 1, 2, 15), slot: 2, ballot: Self.ballot)
        _ = ledger.apply(Self.prepare(Self.id(1, 2), [3: -4]), slot: 3, ballot: Self.ballot)
        _ = ledger.apply(.abort(Self.id(1, 3)), slot: 4, ballot: Self.ballot)
        _ = ledger.apply(.release(client: 1, floor: 3), slot: 5, ballot: Self.ballot)
        #expect(ledger.sessions[1] == LedgerState.Session(floor: 3, lastSlot: 5))
        #expect(ledger.transactions[Self.id(1, 1)] == nil)
        let restored = try LedgerState(
            cluster: "C1", minBalance: ledger.minBalance, balances: ledger.balances, locks: ledger.locks,
            transactions: ledger.transactions, openings: ledger.openings, sessions: ledger.sessions,
            retiredClients: ledger.retiredClients, undelivered: ledger.undelivered)
        #expect(restored == ledger)
    }

    /// One row: stored parts that break an invariant, and the error's description.
    struct BrokenPartsCase: Sendable, CustomTestStringConvertible {
        var name: String
        var balances: [AccountID: Int64]
        var locks: [AccountID: TransactionID]
        var transactions: [TransactionID: LedgerState.Status]
        var error: String
        var testDescription: String { name }
    }

    /// T1.1 prepared with a debit of 2 on account 1, as applying its prepare records it.
    static let prepared: LedgerState.Status = {
        var ledger = LedgerState(cluster: "C1", minBalance: 0)
        _ = ledger.apply(.createAccounts([AccountID(1)...AccountID(1)], balance: 10), slot: 1, ballot: ballot)
        _ = ledger.apply(prepare(id(1, 1), [1: -2]), slot: 3, ballot: ballot)
        return ledger.transactions[id(1, 1)]!
    }()

    @Test(
        "restoring refuses parts that break an invariant",
        arguments: [
            BrokenPartsCase(
                name: "lock without a transaction", balances: balances([1: 10]), locks: [AccountID(1): id(1, 1)],
                transactions: [:], error: "account 1 is locked by T1.1, which is not prepared on it"),
            BrokenPartsCase(
                name: "lock by a committed transaction", balances: balances([1: 10]),
                locks: [AccountID(1): id(1, 1)], transactions: [id(1, 1): .committed],
                error: "account 1 is locked by T1.1, which is not prepared on it"),
            BrokenPartsCase(
                name: "lock on an account the transaction does not touch", balances: balances([1: 10, 2: 10]),
                locks: [AccountID(1): id(1, 1), AccountID(2): id(1, 1)], transactions: [id(1, 1): prepared],
                error: "account 2 is locked by T1.1, which is not prepared on it"),
            BrokenPartsCase(
                name: "balance below the minimum", balances: balances([1: -1]), locks: [:], transactions: [:],
                error: "account 1 has balance -1, below the minimum 0"),
            BrokenPartsCase(
                name: "prepared without its lock", balances: balances([1: 10]), locks: [:],
                transactions: [id(1, 1): prepared], error: "prepared T1.1 does not hold the lock on 1"),
            BrokenPartsCase(
                name: "locked account that does not exist", balances: [:], locks: [AccountID(1): id(1, 1)],
                transactions: [id(1, 1): prepared], error: "locked account 1 does not exist"),
        ])
    func restoreRefusesBrokenParts(row: BrokenPartsCase) {
        #expect(throws: LedgerStateError(row.error)) {
            try LedgerState(
                cluster: "C1", minBalance: 0, balances: row.balances, locks: row.locks, transactions: row.transactions)
        }
    }

    /// A prepared transaction with these planned changes, locking their accounts.
    static func prepared(_ changes: KeyValuePairs<UInt64, Int64>) -> LedgerState.Status {
        .prepared(
            LedgerState.Prepared(
                home: "C1", participants: ["C1", "C2"],
                changes: changes.map { AccountChange(account: AccountID($0.key), delta: $0.value) }, slot: 3))
    }

    static func locks(_ pairs: KeyValuePairs<UInt64, TransactionID>) -> [AccountID: TransactionID] {
        Dictionary(uniqueKeysWithValues: pairs.map { (AccountID($0.key), $0.value) })
    }

    // Commit applies a prepared transaction's changes without checking them again (the prepare did), so stored
    // parts must not hold a prepare that the ledger itself would have refused.
    @Test(
        "restoring refuses a prepared transaction whose commit could not be applied",
        arguments: [
            BrokenPartsCase(
                name: "debit below the minimum", balances: balances([1: 1, 2: 10]),
                locks: locks([1: id(1, 1), 2: id(1, 1)]),
                transactions: [id(1, 1): prepared([2: 3, 1: -2])],
                error: "prepared T1.1 would debit account 1 by 2 from balance 1, below the minimum 0"),
            BrokenPartsCase(
                name: "debit of Int64.min", balances: balances([1: 0]), locks: locks([1: id(1, 1)]),
                transactions: [id(1, 1): prepared([1: Int64.min])],
                error: "prepared T1.1 would debit account 1 by 9223372036854775808 from balance 0, below the minimum 0"),
            BrokenPartsCase(
                name: "credit that overflows", balances: balances([1: Int64.max - 1]), locks: locks([1: id(1, 1)]),
                transactions: [id(1, 1): prepared([1: 2])],
                error: "prepared T1.1 would credit account 1 with 2, overflowing its balance 9223372036854775806"),
            BrokenPartsCase(
                name: "an account named twice", balances: balances([1: 10]), locks: locks([1: id(1, 1)]),
                transactions: [id(1, 1): prepared([1: 1, 1: 1])], error: "prepared T1.1 names account 1 twice"),
        ])
    func restoreRefusesUnapplicablePrepare(row: BrokenPartsCase) {
        #expect(throws: LedgerStateError(row.error)) {
            try LedgerState(
                cluster: "C1", minBalance: 0, balances: row.balances, locks: row.locks, transactions: row.transactions)
        }
    }

    @Test("restoring accepts a prepared debit down to the minimum and a credit up to Int64.max")
    func restoreAcceptsPrepareAtTheLimits() throws {
        let (debit, credit) = (Self.id(1, 1), Self.id(1, 2))
        let debitPrepare = Self.prepare(debit, [1: -5])
        let creditPrepare = Self.prepare(credit, [2: 3])
        let restored = try LedgerState(
            cluster: "C1", minBalance: -5, balances: Self.balances([1: 0, 2: Int64.max - 3]),
            locks: Self.locks([1: debit, 2: credit]),
            transactions: [
                debit: .prepared(
                    LedgerState.Prepared(
                        home: "C1", participants: ["C1", "C2"],
                        changes: [AccountChange(account: AccountID(1), delta: -5)], slot: 3)),
                credit: .prepared(
                    LedgerState.Prepared(
                        home: "C2", participants: ["C1", "C2"],
                        changes: [AccountChange(account: AccountID(2), delta: 3)], slot: 3)),
            ],
            openings: [debit: debitPrepare, credit: creditPrepare])
        var ledger = restored
        #expect(ledger.apply(Self.decideCommit(ledger, debit), slot: 4, ballot: Self.ballot).result == .committed)
        #expect(ledger.apply(.follow(credit, committed: true), slot: 5, ballot: Self.ballot).result == .committed)
        #expect(ledger.balances == Self.balances([1: -5, 2: Int64.max]))
        // A prepared transaction must come with the prepare that opened it.
        #expect(throws: LedgerStateError("prepared T1.1 has no prepare that opened it")) {
            try LedgerState(
                cluster: "C1", minBalance: -5, balances: Self.balances([1: 0]), locks: Self.locks([1: debit]),
                transactions: [debit: restored.transactions[debit]!])
        }
    }

    // Dictionaries iterate in an order seeded per process: with several faults, the error must still be the same
    // in every process (a replica's log, a test's expectation).
    @Test("restoring reports the fault of the lowest account or transaction, whatever the dictionary order")
    func restoreErrorsAreDeterministic() {
        let low = Dictionary(uniqueKeysWithValues: (1...50).map { (AccountID(UInt64($0)), Int64(-$0)) })
        #expect(throws: LedgerStateError("account 1 has balance -1, below the minimum 0")) {
            try LedgerState(cluster: "C1", minBalance: 0, balances: low, locks: [:], transactions: [:])
        }
        let orphans = Dictionary(uniqueKeysWithValues: (1...50).map { (AccountID(UInt64($0)), Self.id(9, UInt64($0))) })
        #expect(throws: LedgerStateError("account 1 is locked by T9.1, which is not prepared on it")) {
            try LedgerState(
                cluster: "C1", minBalance: 0, balances: Dictionary(uniqueKeysWithValues: orphans.keys.map { ($0, 10) }),
                locks: orphans,
                transactions: [:])
        }
        // Fifty prepared transactions, each debiting its own account below the minimum; changes listed backwards.
        var balances: [AccountID: Int64] = [:]
        var locks: [AccountID: TransactionID] = [:]
        var transactions: [TransactionID: LedgerState.Status] = [:]
        for index in UInt64(1)...50 {
            let id = Self.id(index, 1)
            for account in [2 * index, 2 * index - 1] {
                balances[AccountID(account)] = 1
                locks[AccountID(account)] = id
            }
            transactions[id] = .prepared(
                LedgerState.Prepared(
                    home: "C1", participants: ["C1"],
                    changes: [
                        AccountChange(account: AccountID(2 * index), delta: -2),
                        AccountChange(account: AccountID(2 * index - 1), delta: -2),
                    ], slot: 1))
        }
        #expect(
            throws: LedgerStateError("prepared T1.1 would debit account 1 by 2 from balance 1, below the minimum 0")
        ) {
            try LedgerState(cluster: "C1", minBalance: 0, balances: balances, locks: locks, transactions: transactions)
        }
    }

    @Test("the total of a shard never traps, even when it does not fit in Int64")
    func totalBeyondInt64() throws {
        let ledger = try Self.ledger([1: Int64.max, 2: Int64.max, 3: 2])
        #expect(ledger.total == Int128(Int64.max) * 2 + 2)
        #expect(try Self.ledger(minBalance: Int64.min, [1: Int64.min, 2: Int64.min]).total == Int128(Int64.min) * 2)
    }
}
