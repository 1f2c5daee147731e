import LedgerCore
import Paxos
import Testing

/// Filling a cluster that joined and draining one that leaves (`RebalancePlanner.fill`, `.drain`): the sizes they
/// reach, the accounts they choose, and what they refuse.
struct ClusterChangePlannerTests {
    static func transfers(_ pairs: [(UInt64, UInt64)], times: Int = 3) -> TransferHistory {
        TransferHistory(
            pairs.flatMap { pair in
                (0..<times).map { _ in try! Transfer(from: AccountID(pair.0), to: AccountID(pair.1), amount: Amount(1))
                }
            })
    }

    static func sizes(_ plan: RebalancePlan) -> [String: Int] {
        Dictionary(uniqueKeysWithValues: plan.shards.map { ($0.cluster, $0.after) })
    }

    @Test func fillTakesItsShareFromTheLargestClusters() throws {
        var catalog = RebalanceWorkload.catalog(clusters: 3, size: 100)
        // C1 gave C2 ten accounts: C2 is the largest donor.
        for account in 1...10 { catalog.move(AccountID(UInt64(account)), to: "C2") }
        let plan = try RebalancePlanner.fill(
            "C4", history: TransferHistory(), catalog: catalog, clusters: ["C1", "C2", "C3", "C4"],
            options: .init(maxImbalance: 0.1))
        #expect(Self.sizes(plan) == ["C1": 75, "C2": 75, "C3": 75, "C4": 75])
        #expect(plan.moves.allSatisfy { $0.to == "C4" } && plan.moves.count == 75)
        #expect(Set(plan.moves.map(\.account)).count == 75)
        // With no history, the accounts come off the top of each donor's accounts: contiguous ranges.
        let fromC3 = plan.moves.filter { $0.from == "C3" }.map(\.account.value)
        #expect(fromC3 == Array(276...300))
        #expect(plan.shards.first { $0.cluster == "C4" }?.allowed == 68...82)
        // Applied, the plan leaves nothing to do.
        var filled = catalog
        for move in plan.moves { filled.move(move.account, to: move.to) }
        let again = try RebalancePlanner.fill(
            "C4", history: TransferHistory(), catalog: filled, clusters: ["C1", "C2", "C3", "C4"])
        #expect(again.moves.isEmpty)
    }

    @Test func fillPrefersAccountsThatNeverTransactedAndFollowsPartners() throws {
        let catalog = RebalanceWorkload.catalog(clusters: 2, size: 10)
        // C1's 1-4 and C2's 11-12 transact inside their cluster; C1's 9 with C2's 19 only; the rest never.
        let history = Self.transfers([(1, 2), (2, 3), (3, 4), (9, 19), (11, 12)])
        let plan = try RebalancePlanner.fill("C3", history: history, catalog: catalog, clusters: ["C1", "C2", "C3"])
        let moved = Set(plan.moves.map(\.account.value))
        #expect(plan.moves.count == 6)
        // 9, which leaves no traffic behind, and 19, whose partner went first; then idle accounts from the top of
        // each donor; none of the accounts that transact inside their cluster.
        #expect(moved == [8, 9, 10, 18, 19, 20], "\(moved.sorted())")
        #expect(plan.crossShardAfter <= plan.crossShardBefore)
    }

    @Test func fillRefusesADrainingCluster() {
        var catalog = RebalanceWorkload.catalog(clusters: 2, size: 10)
        catalog.draining = ["C2"]
        #expect(throws: RebalancePlanner.Refusal.self) {
            try RebalancePlanner.fill("C2", history: TransferHistory(), catalog: catalog, clusters: ["C1", "C2"])
        }
    }

    @Test func drainMovesEveryAccountToThePartnersClusterFirst() throws {
        let catalog = RebalanceWorkload.catalog(clusters: 3, size: 10)
        // C2's 11 transacts with C3's 21, its 12 with C1's 1.
        let history = Self.transfers([(11, 21), (12, 1)])
        let plan = try RebalancePlanner.drain(
            "C2", history: history, catalog: catalog, clusters: ["C1", "C2", "C3"])
        #expect(plan.moves.count == 10 && plan.moves.allSatisfy { $0.from == "C2" && $0.to != "C2" })
        #expect(plan.moves.first { $0.account == AccountID(11) }?.to == "C3")
        #expect(plan.moves.first { $0.account == AccountID(12) }?.to == "C1")
        #expect(Self.sizes(plan) == ["C1": 15, "C2": 0, "C3": 15])
        #expect(plan.crossShardAfter == 0 && plan.crossShardBefore == 6)
        // The idle accounts go as contiguous ranges.
        let idleToC1 = plan.moves.filter { $0.to == "C1" && $0.account != AccountID(12) }.map(\.account.value)
        #expect(idleToC1 == Array(13...16))
    }

    @Test func drainIsRefusedWithNoClusterToTakeTheAccounts() {
        let only = RebalanceWorkload.catalog(clusters: 1, size: 10)
        #expect(throws: RebalancePlanner.Refusal.self) {
            try RebalancePlanner.drain("C1", history: TransferHistory(), catalog: only, clusters: ["C1"])
        }
        var both = RebalanceWorkload.catalog(clusters: 2, size: 10)
        both.draining = ["C1"]
        #expect(throws: RebalancePlanner.Refusal.self) {
            try RebalancePlanner.drain("C2", history: TransferHistory(), catalog: both, clusters: ["C1", "C2"])
        }
    }

    @Test func drainKeepsTheOthersWithinTheBound() throws {
        var catalog = RebalanceWorkload.catalog(clusters: 4, size: 10)
        // C1 holds 16 (C4 gave it 6): the drained C2's accounts even C3 and C4 out first.
        for account in 31...36 { catalog.move(AccountID(UInt64(account)), to: "C1") }
        let plan = try RebalancePlanner.drain(
            "C2", history: TransferHistory(), catalog: catalog, clusters: ["C1", "C2", "C3", "C4"],
            options: .init(maxImbalance: 0))
        #expect(Self.sizes(plan) == ["C1": 16, "C2": 0, "C3": 12, "C4": 12])
    }

    @Test func aScheduleIntoADrainingClusterIsRefused() throws {
        var catalog = RebalanceWorkload.catalog(clusters: 2, size: 10)
        catalog.draining = ["C2"]
        let schema = try RebalanceSchema.parse("{move: 3, from: C1, to: C2}\n", source: "new-schema.txt")
        #expect(throws: InputError.self) { try schema.check(against: catalog, clusters: ["C1", "C2"]) }
    }
}
