import LedgerCore
import Paxos
import Testing

/// DESIGN §5.5: a cluster conserves money whatever a client sends. Two ledgers, C1 and C2, each applying commands as
/// its replicas would order them; every attack a client can make with the commands it may send is refused or changes
/// nothing, and the money of both clusters together stays the same.
@Suite("integrity of cross-shard transactions")
struct IntegrityTests {
    static let ballot = Ballot(round: 1, replica: ReplicaID(1))
    /// C1 holds accounts 1 and 2, C2 accounts 1001 and 1002, each with 10.
    static func clusters() throws -> (LedgerState, LedgerState) {
        let c1 = try LedgerState(
            cluster: "C1", minBalance: 0, balances: [AccountID(1): 10, AccountID(2): 10], locks: [:], transactions: [:])
        let c2 = try LedgerState(
            cluster: "C2", minBalance: 0, balances: [AccountID(1001): 10, AccountID(1002): 10], locks: [:],
            transactions: [:])
        return (c1, c2)
    }

    static func id(_ sequence: UInt64) -> TransactionID { TransactionID(client: 5, sequence: sequence) }

    static func transfer(
        _ from: UInt64, _ to: UInt64, _ amount: Int64, home: String = "C1", participants: [String] = ["C1", "C2"]
    ) -> CrossShardTransfer {
        CrossShardTransfer(
            from: AccountID(from), to: AccountID(to), amount: Amount(amount), home: home, participants: participants)
    }

    static func total(_ ledgers: LedgerState...) -> Int128 { ledgers.reduce(0) { $0 + $1.total } }

    @Test("the whole transfer commits at the home on agreed terms, then at the other participant by following it")
    func honestTransfer() throws {
        var (c1, c2) = try Self.clusters()
        let id = Self.id(1)
        let transfer = Self.transfer(1, 1001, 4)
        #expect(c1.apply(.prepare(id, transfer), slot: 1, ballot: Self.ballot).result == .preparedYes)
        #expect(c2.apply(.prepare(id, transfer), slot: 1, ballot: Self.ballot).result == .preparedYes)
        // The home's replicas route a client's commit to the participants' confirmation; the other's to its home.
        #expect(c1.route(.commit(id)) == .confirm(id, terms: .transfer(transfer), participants: ["C2"]))
        #expect(c2.route(.commit(id)) == .learn(id, home: "C1", aborting: false))
        #expect(c2.report(of: id) == .prepared(.transfer(transfer), home: "C1"))
        let agreed = try #require(c1.terms(of: id))
        #expect(c1.apply(.decideCommit(id, agreed: agreed), slot: 2, ballot: Self.ballot).result == .committed)
        #expect(c1.report(of: id) == .committed)
        #expect(c2.apply(.follow(id, committed: true), slot: 2, ballot: Self.ballot).result == .committed)
        #expect(c1.balances[AccountID(1)] == 6 && c2.balances[AccountID(1001)] == 14)
        #expect(Self.total(c1, c2) == 40)
        #expect(c1.locks.isEmpty && c2.locks.isEmpty)
    }

    /// One attack: the commands a hostile client sends to each cluster, in order, and the results each must get.
    struct Attack: Sendable, CustomTestStringConvertible {
        var name: String
        var c1: [LedgerCommand]
        var c2: [LedgerCommand]
        var testDescription: String { name }
    }

    @Test(
        "a hostile client's commands are refused or change nothing; no money is created or destroyed",
        arguments: [
            // A prepare of a credit alone, at a cluster that names itself home and only participant, then commit.
            Attack(
                name: "credit-only prepare with itself as home", c1: [],
                c2: [.prepare(id(1), transfer(1001, 1002, 5, home: "C2", participants: ["C2"])), .commit(id(1))]),
            // The credit side told it is the home of a transfer whose debit is elsewhere.
            Attack(
                name: "wrong home", c1: [],
                c2: [.prepare(id(2), transfer(1, 1001, 5, home: "C2")), .commit(id(2))]),
            // Participants that leave the receiving cluster out.
            Attack(
                name: "participants without the receiver", c1: [],
                c2: [.prepare(id(3), transfer(1, 1001, 5, participants: ["C1", "C3"])), .commit(id(3))]),
            // Prepared at both, the home aborts, then a commit is sent to the other participant.
            Attack(
                name: "commit at the participant after the home aborted",
                c1: [.prepare(id(4), transfer(1, 1001, 1)), .abort(id(4))],
                c2: [.prepare(id(4), transfer(1, 1001, 1)), .commit(id(4)), .follow(id(4), committed: false)]),
            // A commit at the participant before the home decided.
            Attack(
                name: "commit at the participant before the home decided", c1: [.prepare(id(5), transfer(1, 1001, 3))],
                c2: [.prepare(id(5), transfer(1, 1001, 3)), .commit(id(5))]),
            // An abort at the home after its commit point.
            Attack(
                name: "abort at the home after the commit",
                c1: [
                    .prepare(id(6), transfer(1, 1001, 2)),
                    .decideCommit(id(6), agreed: .transfer(transfer(1, 1001, 2))), .abort(id(6)),
                ],
                c2: [.prepare(id(6), transfer(1, 1001, 2)), .follow(id(6), committed: true), .abort(id(6))]),
            // Different amounts told to each participant: the home commits only on the terms it prepared.
            Attack(
                name: "different amounts at the participants",
                c1: [
                    .prepare(id(7), transfer(1, 1001, 1)),
                    .decideCommit(id(7), agreed: .transfer(transfer(1, 1001, 9))),
                ],
                c2: [.prepare(id(7), transfer(1, 1001, 9)), .commit(id(7))]),
            // A commit for a prepare never sent.
            Attack(name: "commit of an unknown transaction", c1: [.commit(id(8))], c2: [.commit(id(8))]),
            // The id of a committed transfer reused with another amount, and for a prepare.
            Attack(
                name: "transaction id reused with other content",
                c1: [
                    .transfer(id(9), from: AccountID(1), to: AccountID(2), amount: Amount(2)),
                    .transfer(id(9), from: AccountID(1), to: AccountID(2), amount: Amount(3)),
                    .prepare(id(9), transfer(1, 1001, 1)),
                ],
                c2: []),
        ])
    func attack(_ attack: Attack) throws {
        var (c1, c2) = try Self.clusters()
        var results: [String: [CommandResult]] = ["C1": [], "C2": []]
        for (slot, command) in attack.c1.enumerated() {
            results["C1"]!.append(c1.apply(command, slot: Slot(slot + 1), ballot: Self.ballot).result)
        }
        for (slot, command) in attack.c2.enumerated() {
            results["C2"]!.append(c2.apply(command, slot: Slot(slot + 1), ballot: Self.ballot).result)
        }
        // Every commit or abort that decides must be the home's, or follow the home's: so the two clusters together
        // hold what they held, with any money of an undecided transaction still locked where it was.
        #expect(Self.total(c1, c2) == 40, "results: \(results)")
        for ledger in [c1, c2] {
            for (id, status) in ledger.transactions where status == .committed {
                guard case .prepare(_, let transfer)? = ledger.openings[id] else { continue }
                let home = ledger.cluster == "C1" ? c1 : c2
                let homeLedger = transfer.home == "C1" ? c1 : c2
                #expect(
                    homeLedger.transactions[id] == .committed,
                    "\(ledger.cluster) committed \(id) but its home \(transfer.home) did not (\(home.cluster))")
            }
        }
        switch attack.name {
        case "transaction id reused with other content":
            #expect(results["C1"]![0] == .committed)
            guard case .refused(let why) = results["C1"]![1], case .refused = results["C1"]![2] else {
                Issue.record("reuse was not refused: \(results["C1"]!)")
                return
            }
            #expect(why.contains("a transfer of 2 from 1 to 2") && why.contains("a transfer of 3 from 1 to 2"))
            #expect(c1.balances[AccountID(1)] == 8)
        case "different amounts at the participants":
            #expect(c1.locks[AccountID(1)] == Self.id(7), "the home stays prepared: nothing was agreed")
            #expect(c2.locks[AccountID(1001)] == Self.id(7))
        default:
            break
        }
    }

    @Test("a move's target creates the account only by following its source's commit, with the source's balance")
    func moveFollowsTheSource() throws {
        var (c1, c2) = try Self.clusters()
        let id = Self.id(20)
        let out = LedgerCommand.prepareMove(
            id, home: "C1", participants: ["C1", "C2"], part: .out(AccountID(2), to: "C2"))
        #expect(c1.apply(out, slot: 1, ballot: Self.ballot).result == .preparedMove(balance: 10))
        // The client tells the target a larger balance: the source's commit is refused on those terms.
        let lie = LedgerCommand.prepareMove(
            id, home: "C1", participants: ["C1", "C2"], part: .into(AccountID(2), balance: 50, from: "C1"))
        #expect(c2.apply(lie, slot: 1, ballot: Self.ballot).result == .preparedYes)
        #expect(c2.apply(.commit(id), slot: 2, ballot: Self.ballot).result != .committed)
        guard case .prepared(let reported, _) = c2.report(of: id) else {
            Issue.record("the target did not prepare")
            return
        }
        guard case .refused = c1.apply(.decideCommit(id, agreed: reported), slot: 2, ballot: Self.ballot).result else {
            Issue.record("the source committed on terms it did not prepare")
            return
        }
        #expect(c2.balances[AccountID(2)] == nil)
        #expect(Self.total(c1, c2) == 40)
    }
}
