import LedgerCore
import Paxos
import Testing

/// Seeded histories with a known shape, and an independent recount of what a plan does to them.
struct RebalanceWorkload {
    var transfers: [Transfer] = []
    private var random: SeededRandom

    init(seed: UInt64) {
        random = SeededRandom(seed: seed)
    }

    /// The catalog of `count` clusters of `size` accounts each: C1 holds 1...size, C2 the next `size`, and so on.
    static func catalog(clusters count: Int, size: UInt64) -> Catalog {
        let rows = (0..<UInt64(count)).map { "D\($0 + 1), C\($0 + 1), \($0 * size + 1)-\(($0 + 1) * size)" }
        return Catalog(version: 1, shards: try! ShardMap.parse(rows.joined(separator: "\n"), source: "shards.csv"))
    }

    mutating func number(_ range: ClosedRange<UInt64>) -> UInt64 {
        UInt64.random(in: range, using: &random)
    }

    /// `count` transfers between `one` and `other`, in random directions and amounts.
    mutating func transact(_ one: UInt64, _ other: UInt64, count: Int) {
        for _ in 0..<count {
            let (from, to) = number(0...1) == 0 ? (one, other) : (other, one)
            transfers.append(
                try! Transfer(from: AccountID(from), to: AccountID(to), amount: Amount(Int64(number(1...20)))))
        }
    }

    /// Communities over the accounts `1...accounts`, each drawn at random (so spread over the clusters), until
    /// `share` of the accounts belong to one: pairs, chains `a-b-c-d`, cliques of 5 to 8 and sparse groups of 12 to
    /// 24 (a ring with chords). A community whose members all start in one cluster of `catalog` is dropped, so every
    /// community kept crosses clusters. Then `noise` times as many transfers again between uniformly random
    /// accounts. Returns the communities kept.
    mutating func communities(
        accounts: UInt64, share: Double, noise: Double, catalog: Catalog
    ) -> [[UInt64]] {
        var pool = Array(1...accounts)
        pool.shuffle(using: &random)
        var kept: [[UInt64]] = []
        var kind = 0
        while Double(accounts) - Double(pool.count) < share * Double(accounts) {
            let size: Int
            switch kind % 4 {
            case 0: size = 2
            case 1: size = 4
            case 2: size = Int(number(5...8))
            default: size = Int(number(12...24))
            }
            guard pool.count >= size else { break }
            let members = Array(pool.suffix(size))
            pool.removeLast(size)
            defer { kind += 1 }
            guard Set(members.map { catalog.cluster(of: AccountID($0))! }).count > 1 else { continue }
            kept.append(members)
            switch kind % 4 {
            case 0, 1:
                // A pair, or a chain: each account transacts with the next.
                for (one, other) in zip(members, members.dropFirst()) {
                    transact(one, other, count: Int(number(2...5)))
                }
            case 2:
                for (position, one) in members.enumerated() {
                    for other in members[(position + 1)...] { transact(one, other, count: Int(number(1...3))) }
                }
            default:
                for (position, one) in members.enumerated() {
                    transact(one, members[(position + 1) % size], count: Int(number(2...4)))
                    let chord = (position + Int(number(2...UInt64(size - 1)))) % size
                    transact(one, members[chord], count: Int(number(1...3)))
                }
            }
        }
        let community = transfers.count
        uniform(accounts: accounts, transfers: Int(noise * Double(community)))
        return kept
    }

    /// `count` transfers between uniformly random accounts of `1...accounts`.
    mutating func uniform(accounts: UInt64, transfers count: Int) {
        for _ in 0..<count {
            let one = number(1...accounts)
            var other = number(1...accounts)
            while other == one { other = number(1...accounts) }
            transact(one, other, count: 1)
        }
    }

    /// How many of `transfers` cross clusters once `moves` are applied to `catalog`.
    static func crossShard(_ transfers: [Transfer], catalog: Catalog, moves: [AccountMove] = []) -> Int {
        var after = catalog
        for move in moves { after.move(move.account, to: move.to) }
        return transfers.count { after.cluster(of: $0.from) != after.cluster(of: $0.to) }
    }

    /// The number of accounts each cluster owns once `moves` are applied to `catalog`, for clusters of `size`.
    static func sizes(catalog: Catalog, moves: [AccountMove], size: Int) -> [String: Int] {
        var sizes = Dictionary(uniqueKeysWithValues: catalog.clusters.map { ($0, size) })
        for move in moves {
            sizes[move.from]! -= 1
            sizes[move.to]! += 1
        }
        return sizes
    }
}

@Suite("rebalance planner")
struct RebalancePlannerTests {
    static let catalog = RebalanceWorkload.catalog(clusters: 3, size: 1000)

    static func history(_ pairs: [(UInt64, UInt64, Int)]) -> TransferHistory {
        var history = TransferHistory()
        for (one, other, count) in pairs {
            for _ in 0..<count { history.add(from: AccountID(one), to: AccountID(other), amount: Amount(2)) }
        }
        return history
    }

    static func moves(_ plan: RebalancePlan) -> [String] {
        plan.moves.map { "\($0.account) \($0.from)->\($0.to)" }
    }

    @Test(
        "communities spread over the shards come together: cross-shard transfers cut by at least 80%, within the bound",
        arguments: [(UInt64(1), 0.0), (2, 0.05), (3, 0.1)])
    func communities(seed: UInt64, noise: Double) {
        var workload = RebalanceWorkload(seed: seed)
        let communities = workload.communities(accounts: 3000, share: 0.8, noise: noise, catalog: Self.catalog)
        let plan = RebalancePlanner.plan(history: TransferHistory(workload.transfers), catalog: Self.catalog)

        // The plan's figures, recounted from the transfers and the moves.
        let before = RebalanceWorkload.crossShard(workload.transfers, catalog: Self.catalog)
        let after = RebalanceWorkload.crossShard(workload.transfers, catalog: Self.catalog, moves: plan.moves)
        #expect(plan.transfers == workload.transfers.count)
        #expect(plan.crossShardBefore == before)
        #expect(plan.crossShardAfter == after)
        #expect(Double(before) > 0.6 * Double(workload.transfers.count))
        #expect(Double(after) <= 0.2 * Double(before), "cut \(before) -> \(after) of \(workload.transfers.count)")

        // Every shard within 5% of the mean (1000), and the sizes reported are the sizes the moves give.
        let sizes = RebalanceWorkload.sizes(catalog: Self.catalog, moves: plan.moves, size: 1000)
        for shard in plan.shards {
            #expect(shard.allowed == 950...1050)
            #expect((950...1050).contains(shard.after))
            #expect(shard.after == sizes[shard.cluster])
        }
        #expect(Set(plan.moves.map(\.account)).count == plan.moves.count)

        // Communities end whole: at least 80% of them entirely in one cluster.
        let whole = communities.count { members in
            Set(members.map { plan.cluster(of: AccountID($0), in: Self.catalog) }).count == 1
        }
        #expect(Double(whole) >= 0.8 * Double(communities.count), "\(whole) of \(communities.count) whole")
    }

    @Test("a uniform random history proposes few or no moves and never more cross-shard transfers")
    func uniform() {
        var workload = RebalanceWorkload(seed: 7)
        workload.uniform(accounts: 3000, transfers: 60_000)
        let plan = RebalancePlanner.plan(history: TransferHistory(workload.transfers), catalog: Self.catalog)
        #expect(plan.moves.count <= 30, "\(plan.moves.count) moves")
        #expect(plan.crossShardAfter <= plan.crossShardBefore)
        #expect(plan.crossShardBefore == RebalanceWorkload.crossShard(workload.transfers, catalog: Self.catalog))
    }

    @Test("a chain split in the middle comes together by a zero-gain move, then a gain")
    func chain() {
        let plan = RebalancePlanner.plan(
            history: Self.history([(1, 2, 3), (2, 1001, 3), (1001, 1002, 3)]), catalog: Self.catalog)
        #expect(Self.moves(plan) == ["1 C1->C2", "2 C1->C2"])
        #expect(plan.crossShardBefore == 3)
        #expect(plan.crossShardAfter == 0)
        #expect(
            plan.pairs == [
                ColocatedPair(
                    first: AccountID(1001), second: AccountID(2), into: "C2", from: "C1", transactions: 3, total: 6)
            ])
    }

    @Test("a clique spread over three clusters ends in one")
    func clique() {
        let members: [UInt64] = [1, 2, 1001, 1002, 2001, 2002]
        var pairs: [(UInt64, UInt64, Int)] = []
        for (position, one) in members.enumerated() {
            for other in members[(position + 1)...] { pairs.append((one, other, 2)) }
        }
        let plan = RebalancePlanner.plan(history: Self.history(pairs), catalog: Self.catalog)
        #expect(plan.moves.count == 4)
        #expect(Set(members.map { plan.cluster(of: AccountID($0), in: Self.catalog) }).count == 1)
        #expect(plan.crossShardBefore == 24)
        #expect(plan.crossShardAfter == 0)
        // 12 of the 15 pairs were split (2 x 2 across each of the 3 pairs of clusters); all are together now.
        #expect(plan.pairs.count == 12)
    }

    @Test("a star moves its hub, not its leaves")
    func star() {
        let plan = RebalancePlanner.plan(
            history: Self.history([(1, 1001, 2), (1, 1002, 2), (1, 1003, 2), (1, 1004, 2), (1, 1005, 2)]),
            catalog: Self.catalog)
        #expect(Self.moves(plan) == ["1 C1->C2"])
    }

    @Test("of a pair, the account with fewer other ties moves")
    func lighterMoves() {
        let plan = RebalancePlanner.plan(
            history: Self.history([(1, 1001, 2), (1, 2, 5), (1, 3, 5)]), catalog: Self.catalog)
        #expect(Self.moves(plan) == ["1001 C2->C1"])
        #expect(
            plan.pairs == [
                ColocatedPair(
                    first: AccountID(1), second: AccountID(1001), into: "C1", from: "C2", transactions: 2, total: 4)
            ])
    }

    @Test("pairs seen fewer than --min-transactions times are ignored, yet counted in the fractions")
    func minTransactions() {
        let history = Self.history([(1, 1001, 3), (2, 1002, 1)])
        let all = RebalancePlanner.plan(history: history, catalog: Self.catalog)
        #expect(Self.moves(all) == ["1 C1->C2", "2 C1->C2"])
        #expect((all.crossShardBefore, all.crossShardAfter, all.transfers) == (4, 0, 4))

        let frequent = RebalancePlanner.plan(
            history: history, catalog: Self.catalog, options: RebalancePlanner.Options(minTransactions: 2))
        #expect(Self.moves(frequent) == ["1 C1->C2"])
        #expect((frequent.crossShardBefore, frequent.crossShardAfter, frequent.transfers) == (4, 1, 4))
        #expect(frequent.pairs.map(\.second) == [AccountID(1)])

        let none = RebalancePlanner.plan(
            history: history, catalog: Self.catalog, options: RebalancePlanner.Options(minTransactions: 4))
        #expect(none.moves.isEmpty)
        #expect(none.crossShardAfter == 4)
    }

    @Test("an account's ignored pairs still weigh: the one with fewer transfers in all moves")
    func ignoredPairsWeigh() {
        // With --min-transactions 2 only 1-1001 is in the graph, but moving 1 would split it from 2, 3 and 4.
        let history = Self.history([(1, 1001, 2), (1, 2, 1), (1, 3, 1), (1, 4, 1)])
        let plan = RebalancePlanner.plan(
            history: history, catalog: Self.catalog, options: RebalancePlanner.Options(minTransactions: 2))
        #expect(Self.moves(plan) == ["1001 C2->C1"])
        #expect((plan.crossShardBefore, plan.crossShardAfter, plan.transfers) == (2, 0, 5))
    }

    @Test("with every shard at its bound, pairs come together by swaps")
    func swaps() {
        // 40 pairs between C1 and C2 and no room at all: each move into C1 needs one out of it.
        let catalog = RebalanceWorkload.catalog(clusters: 2, size: 100)
        let pairs = (1...40).map { (UInt64($0), UInt64(100 + $0), 3) }
        let plan = RebalancePlanner.plan(
            history: Self.history(pairs), catalog: catalog, options: RebalancePlanner.Options(maxImbalance: 0))
        #expect(plan.crossShardAfter == 0)
        #expect(plan.moves.count == 40)
        #expect(plan.shards.map(\.after) == [100, 100])
        #expect(plan.moves.count { $0.to == "C1" } == 20)
    }

    @Test("when every pair wants the same shard, the bound stops it")
    func boundUnderPressure() {
        // 50 pairs between C1 and C2 whose C1 accounts are all tied to one hub of C1: only the C2 accounts should
        // move, and 5% of 200 accounts per shard means 10 of them, the first 10 on a tie.
        let catalog = RebalanceWorkload.catalog(clusters: 2, size: 200)
        let pairs: [(UInt64, UInt64, Int)] = (UInt64(1)...50).flatMap { [($0, 200 + $0, 2), ($0, 100, 5)] }
        let plan = RebalancePlanner.plan(history: Self.history(pairs), catalog: catalog)
        #expect(plan.shards.map(\.allowed) == [190...210, 190...210])
        #expect(plan.shards.map(\.after) == [210, 190])
        #expect(Self.moves(plan) == (201...210).map { "\($0) C2->C1" })
        #expect(plan.crossShardAfter == plan.crossShardBefore - 20)
    }

    @Test("a shard already outside the bound may not get further from it")
    func alreadyOutside() {
        // C1 holds 1200 accounts and C2 800: the bound 950...1050 widens to 950...1200 and 800...1050.
        let catalog = Catalog(version: 1, shards: try! ShardMap.parse("D1, C1, 1-1200\nD2, C2, 1201-2000", source: "s"))
        let pairs: [(UInt64, UInt64, Int)] = (UInt64(1)...50).flatMap { [($0, 1200 + $0, 2), ($0, 100 + $0, 5)] }
        let plan = RebalancePlanner.plan(history: Self.history(pairs), catalog: catalog)
        #expect(plan.shards.map(\.allowed) == [950...1200, 800...1050])
        #expect(plan.shards[0].after <= 1200)
        #expect(plan.shards[1].after >= 800)
        #expect(plan.crossShardAfter < plan.crossShardBefore)
    }

    @Test("an empty cluster of hosts.ini counts in the mean, so the others may only shrink")
    func emptyCluster() {
        let plan = RebalancePlanner.plan(
            history: Self.history([(1, 1001, 3)]), catalog: Self.catalog, clusters: ["C4"])
        #expect(plan.shards.map(\.cluster) == ["C1", "C2", "C3", "C4"])
        #expect(plan.shards.map(\.before) == [1000, 1000, 1000, 0])
        #expect(plan.shards.map(\.allowed) == [713...1000, 713...1000, 713...1000, 0...787])
        // Moving 1 into C2 or 1001 into C1 would grow a cluster already above the bound.
        #expect(plan.moves.isEmpty)
        #expect(plan.crossShardAfter == 3)
    }

    @Test("the same history gives the same plan, whatever order its transfers came in")
    func deterministic() {
        var workload = RebalanceWorkload(seed: 11)
        _ = workload.communities(accounts: 3000, share: 0.6, noise: 0.1, catalog: Self.catalog)
        let first = RebalancePlanner.plan(history: TransferHistory(workload.transfers), catalog: Self.catalog)
        var random = SeededRandom(seed: 5)
        let shuffled = workload.transfers.shuffled(using: &random)
        let second = RebalancePlanner.plan(history: TransferHistory(shuffled), catalog: Self.catalog)
        #expect(first == second)
        #expect(!first.moves.isEmpty)
    }

    @Test("accounts no cluster owns are left out of the graph and of the fractions")
    func unowned() {
        let plan = RebalancePlanner.plan(
            history: Self.history([(1, 1001, 2), (5000, 1002, 3)]), catalog: Self.catalog)
        #expect(plan.unownedTransfers == 3)
        #expect(plan.transfers == 2)
        #expect(Self.moves(plan) == ["1 C1->C2"])
    }

    @Test("progress reaches every phase and ends complete")
    func progress() {
        var phases: [RebalanceProgress] = []
        _ = RebalancePlanner.plan(history: Self.history([(1, 1001, 2)]), catalog: Self.catalog) { phases.append($0) }
        #expect(phases.first?.phase == .graph)
        #expect(phases.contains(RebalanceProgress(phase: .graph, done: 1, total: 1)))
        #expect(phases.contains { $0.phase == .refine })
        // The one move keeps all of its transfers: no account is weak, and pruning ends at once.
        #expect(phases.last == RebalanceProgress(phase: .prune, done: 0, total: 0))
        #expect(RebalanceProgress(phase: .graph, done: 45, total: 100).description == "graph 45%")
        #expect(RebalanceProgress(phase: .refine, done: 3, total: 16).description == "refine pass 3")
    }
}

@Suite("transfer history")
struct TransferHistoryTests {
    static func record(_ sequence: UInt64, _ kind: DatastoreRecord.Kind) -> DatastoreRecord {
        DatastoreRecord(
            transaction: TransactionID(client: 9, sequence: sequence), kind: kind, slot: Slot(sequence),
            ballot: Ballot(round: 1, replica: ReplicaID(1)))
    }

    @Test("datastores join cross-shard halves by transaction id and count each transaction once")
    func datastores() {
        let one = AccountID(1)
        let two = AccountID(2)
        let thousand = AccountID(1001)
        let history = TransferHistory(datastores: [
            "C1": [
                Self.record(1, .transfer(from: one, to: two, amount: Amount(5))),
                Self.record(2, .crossShard([AccountChange(account: one, delta: -3)])),
                Self.record(3, .crossShard([AccountChange(account: two, delta: -4)])),
            ],
            "C2": [
                Self.record(2, .crossShard([AccountChange(account: thousand, delta: 3)])),
                Self.record(4, .transfer(from: thousand, to: AccountID(1002), amount: Amount(7))),
                Self.record(4, .transfer(from: thousand, to: AccountID(1002), amount: Amount(7))),
            ],
        ])
        #expect(history.transfers == 3)
        #expect(history.unmatchedTransactions == 1)
        #expect(
            history.sortedPairs.map { "\($0.pair) \($0.weight.transactions) \($0.weight.total)" } == [
                "1-2 1 5", "1-1001 1 3", "1001-1002 1 7",
            ])
    }

    @Test("a pair is unordered and counts transfers both ways")
    func pairs() throws {
        let history = TransferHistory([
            try Transfer(from: AccountID(7), to: AccountID(3), amount: Amount(2)),
            try Transfer(from: AccountID(3), to: AccountID(7), amount: Amount(5)),
        ])
        #expect(history.weights == [TransferHistory.Pair(AccountID(3), AccountID(7)): .init(transactions: 2, total: 7)])
        #expect(history.transfers == 2)
    }
}

extension RebalancePlan {
    /// Where `account` is once the plan is applied.
    fileprivate func cluster(of account: AccountID, in catalog: Catalog) -> String {
        moves.first { $0.account == account }?.to ?? catalog.cluster(of: account)!
    }
}
