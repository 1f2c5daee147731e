import Foundation
import LedgerCore
import Paxos
import Testing

/// Runs the real `Paxos.Replica` under the deterministic simulator, replicating an opaque payload (`SimState`) and
/// whole ledger shards (`LedgerMachine`).
///
/// `SIM_SEED=n` replays one seed exactly; `SIM_SEEDS` (default 200 for the payload, `ledgerSeedsDefault` for the
/// ledger) and `SIM_STEPS` (default 2000 ticks) scale the run; `SIM_FIRST_SEED` moves the window of seeds. Every
/// failing run prints its seed and how to replay it.
///
/// The tests run one at a time, each on every core but one, on threads of their own (`onThreadsOfTheirOwn`): a seed
/// never suspends, so on the shared executor's threads it would starve the suites that run beside it.
@Suite(.serialized) struct SimulationTests {
    static let environment = ProcessInfo.processInfo.environment
    static let steps = Int(environment["SIM_STEPS"] ?? "") ?? 2_000
    static let seeds = seeds(defaultCount: 200)
    /// Ledger seeds by default. Measured in a debug build on 2 cores, with membership changes in two thirds of the
    /// seeds (each added replica applies the whole log again, with every invariant checked): the ledger's 200 seeds
    /// take about 140 s of CPU, the simulation tests together about 10 minutes on the one core they get.
    static let ledgerSeedsDefault: UInt64 = 200
    static let ledgerSeeds = seeds(defaultCount: ledgerSeedsDefault)

    static func seeds(defaultCount: UInt64) -> [UInt64] {
        if let one = environment["SIM_SEED"].flatMap(UInt64.init) { return [one] }
        let count = UInt64(environment["SIM_SEEDS"] ?? "") ?? defaultCount
        let first = UInt64(environment["SIM_FIRST_SEED"] ?? "") ?? 1
        return Array(first..<(first + count))
    }

    @Test func protocolHoldsUnderFaults() async {
        let reports = await Self.run(SimState.self, seeds: Self.seeds, steps: Self.steps, fault: nil)
        let failed = reports.filter { !$0.violations.isEmpty }
        for report in failed {
            Issue.record(
                """
                seed \(report.seed) violated the protocol (\(report.parameters)); replay with \
                SIM_SEED=\(report.seed) swift test --filter SimulationTests:
                \(report.details)
                """)
        }
        let leaderTicks = reports.compactMap(\.ticksToLeaderAfterHeal)
        print(
            """
            simulation: \(reports.count) seeds x \(Self.steps) ticks, \(reports.map(\.ticks).reduce(0, +)) ticks in all; \
            faults injected \(reports.map(\.faultsInjected).reduce(0, +)) (messages dropped \
            \(reports.map(\.messagesDropped).reduce(0, +)), duplicated \(reports.map(\.messagesDuplicated).reduce(0, +)), \
            crashes \(reports.map(\.crashes).reduce(0, +)) (lazy writes lost \(reports.map(\.lazyWritesLost).reduce(0, +))), \
            partitions \(reports.map(\.partitions).reduce(0, +)), \
            leader isolations \(reports.map(\.leaderIsolations).reduce(0, +))); requests submitted \
            \(reports.map(\.requestsSubmitted).reduce(0, +)), acknowledged \(reports.map(\.requestsAcknowledged).reduce(0, +)), \
            refused \(reports.map(\.requestsRefused).reduce(0, +)); reads issued \(reports.map(\.readsIssued).reduce(0, +)), \
            answered \(reports.map(\.readsAnswered).reduce(0, +)), refused \(reports.map(\.readsRefused).reduce(0, +)); \
            slots chosen \(reports.map(\.slotsChosen).reduce(0, +)); \(SimulationReport.membership(reports)); \
            snapshots installed \(reports.map(\.snapshotsInstalled).reduce(0, +)); leader after heal within \
            \(leaderTicks.max() ?? 0) ticks (worst); settled within \(reports.map(\.settleTicks).max() ?? 0) ticks \
            past the end (worst); violations found \(failed.count)
            """)
        // The run must have exercised what it claims to.
        if Self.seeds.count >= 50 {
            #expect(reports.map(\.crashes).reduce(0, +) > 0)
            #expect(reports.map(\.lazyWritesLost).reduce(0, +) > 0)
            #expect(reports.map(\.snapshotsInstalled).reduce(0, +) > 0)
            #expect(reports.map(\.requestsAcknowledged).reduce(0, +) > reports.count * 10)
            #expect(reports.map(\.readsAnswered).reduce(0, +) > reports.count * 10)
            SimulationReport.expectMembershipExercised(reports)
        }
    }

    /// The canary: a replica that answers Phase 1 without persisting its promise must be caught.
    @Test func canaryReplicaIsCaught() async {
        await Self.expectCaught(.promiseNotPersisted, "promise not persisted")
    }

    /// The second canary: a shell that writes acceptances lazily must be caught: a power loss makes the replica
    /// forget a vote a majority was counted with.
    @Test func lazyAcceptanceIsCaught() async {
        await Self.expectCaught(.acceptanceNotDurable, "acceptance not durable")
    }

    /// The third canary: a configuration that governs the very next slot while slots proposed under the old one are
    /// still in flight (no alpha window) must be caught.
    @Test func reconfigurationWithoutAlphaIsCaught() async {
        // 100 seeds: about a third catch it, and 400 would add a minute and a half to every `swift test`.
        await Self.expectCaught(.reconfigurationAtOnce, "reconfiguration at once", seeds: 100)
    }

    /// Runs `seeds` harsh seeds with `fault` planted; some must report a violation.
    static func expectCaught(_ fault: InjectedFault, _ name: String, seeds count: UInt64 = 400) async {
        let seeds = Array(UInt64(1)...count)
        let reports = await run(SimState.self, seeds: seeds, steps: steps, fault: fault)
        let caught = reports.filter { !$0.violations.isEmpty }
        print(
            """
            simulation canary (\(name)): caught by \(caught.count) of \(reports.count) seeds; \
            first: seed \(caught.first.map { String($0.seed) } ?? "none"): \(caught.first?.violations.first ?? "")
            """)
        #expect(!caught.isEmpty, "the simulator did not catch the canary: \(name)")
    }

    /// Node seeds by default: each runs two or three clusters.
    static let nodeSeeds = seeds(defaultCount: 50)

    /// Clusters sharing nodes (`NodeSimulation`): a node's replicas write in one pass with one fsync, and crash,
    /// lose power and get cut off together; every cluster must hold as it does alone.
    @Test func clustersOnSharedNodesHoldUnderNodeFaults() async {
        let reports = await Self.runNodes(SimState.self, seeds: Self.nodeSeeds, steps: Self.steps, fault: nil)
        let failed = reports.filter { !$0.violations.isEmpty }
        for report in failed {
            Issue.record(
                """
                node seed \(report.seed) violated the protocol; replay with \
                SIM_SEED=\(report.seed) swift test --filter SimulationTests.clustersOnSharedNodesHoldUnderNodeFaults:
                \(report.details)
                """)
        }
        func sum(_ field: KeyPath<NodeSimulation<SimState>.NodeReport, Int>) -> Int {
            reports.map { $0[keyPath: field] }.reduce(0, +)
        }
        let clusters = reports.flatMap(\.clusters)
        print(
            """
            node simulation: \(reports.count) seeds x \(Self.steps) ticks, \
            \(reports.map { $0.clusters[0].ticks }.reduce(0, +)) ticks in all, \(clusters.count) clusters; node crashes \
            \(sum(\.nodeCrashes)) (in the middle of a write \(sum(\.crashesMidWrite)), replicas' lazy writes lost \
            \(clusters.map(\.lazyWritesLost).reduce(0, +))), node partitions \(sum(\.partitions)), fsyncs that made \
            another replica's lazy writes durable \(sum(\.sharedSyncs)); requests acknowledged \
            \(clusters.map(\.requestsAcknowledged).reduce(0, +)); slots chosen \(clusters.map(\.slotsChosen).reduce(0, +)); \
            violations found \(failed.count)
            """)
        if Self.nodeSeeds.count >= 20 {
            #expect(sum(\.nodeCrashes) > 0)
            #expect(sum(\.crashesMidWrite) > 0)
            #expect(sum(\.partitions) > 0)
            #expect(sum(\.sharedSyncs) > 0)
            #expect(clusters.map(\.lazyWritesLost).reduce(0, +) > 0)
            #expect(clusters.map(\.requestsAcknowledged).reduce(0, +) > clusters.count * 10)
        }
    }

    /// The second canary on shared nodes: another replica's fsync sometimes saves a lazy acceptance, but not always.
    @Test func lazyAcceptanceIsCaughtOnSharedNodes() async {
        let reports = await Self.runNodes(
            SimState.self, seeds: Array(UInt64(1)...150), steps: Self.steps, fault: .acceptanceNotDurable)
        let caught = reports.filter { !$0.violations.isEmpty }
        print(
            """
            node simulation canary (acceptance not durable): caught by \(caught.count) of \(reports.count) seeds; \
            first: seed \(caught.first.map { String($0.seed) } ?? "none"): \(caught.first?.violations.first ?? "")
            """)
        #expect(!caught.isEmpty, "the node simulator did not catch the canary: acceptance not durable")
    }

    /// Same seed, same run: the simulator is deterministic, so a failing seed replays exactly.
    @Test func runsReplayExactly() {
        var first = Simulation<SimState>(seed: 42, steps: 600)
        var second = Simulation<SimState>(seed: 42, steps: 600)
        let a = first.run()
        let b = second.run()
        #expect(a.messagesDelivered == b.messagesDelivered && a.slotsChosen == b.slotsChosen)
        #expect(a.crashes == b.crashes && a.requestsAcknowledged == b.requestsAcknowledged)
        #expect(a.readsIssued == b.readsIssued && a.readsAnswered == b.readsAnswered)
        #expect(first.canonicalState == second.canonicalState)
    }

    /// Whole ledger shards under faults: every replica keeps the ledger's invariants after every slot and ends with
    /// the same balances, locks, transactions, WAL and datastore as the canonical application of the chosen log;
    /// money is conserved, here and across the two clusters (a cross-shard transaction commits here only on the home's
    /// decision, on the terms the other cluster prepared, whatever hostile clients send); every transfer acknowledged as
    /// committed is in every replica's datastore.
    @Test func ledgerShardsHoldUnderFaults() async {
        let reports = await Self.run(LedgerMachine.self, seeds: Self.ledgerSeeds, steps: Self.steps, fault: nil)
        let failed = reports.filter { !$0.violations.isEmpty }
        for report in failed {
            Issue.record(
                """
                seed \(report.seed) broke the ledger (\(report.parameters)); replay with \
                SIM_SEED=\(report.seed) swift test --filter SimulationTests.ledgerShardsHoldUnderFaults:
                \(report.details)
                """)
        }
        var tally: [String: Int] = [:]
        for report in reports { tally.merge(report.tally, uniquingKeysWith: +) }
        func count(_ key: String) -> Int { tally[key, default: 0] }
        func outcomes(_ kind: String, _ names: [String]) -> String {
            names.map { "\($0) \(count("\(kind) \($0)"))" }.joined(separator: ", ")
        }
        func sum(_ field: KeyPath<SimulationReport, Int>) -> Int { reports.map { $0[keyPath: field] }.reduce(0, +) }
        let faults =
            "faults injected \(sum(\.faultsInjected)) (messages dropped \(sum(\.messagesDropped)), duplicated "
            + "\(sum(\.messagesDuplicated)), crashes \(sum(\.crashes)) (lazy writes lost \(sum(\.lazyWritesLost))), partitions \(sum(\.partitions)), leader "
            + "isolations \(sum(\.leaderIsolations)))"
        let reasons = ["insufficient funds", "locked", "unknown account", "invalid", "overflow"]
        let transfers =
            "transfers committed \(count("transfer committed")), aborted "
            + "\(count("transfer") - count("transfer committed")) (\(outcomes("transfer", reasons)))"
        let twoPhase =
            "prepares \(count("prepare")) (yes \(count("prepare yes")), no "
            + "\(count("prepare") - count("prepare yes"))); moves prepared \(count("move")) (yes \(count("move yes")), "
            + "\(outcomes("move", ["moving", "moved", "invalid", "locked"]))); home commits \(count("decide")) "
            + "(\(outcomes("decide", ["committed", "refused"]))); followed decisions \(count("follow")) "
            + "(\(outcomes("follow", ["committed", "aborted", "refused"]))); client commits \(count("commit")) "
            + "(\(outcomes("commit", ["committed", "refused"]))); aborts \(count("abort")) "
            + "(\(outcomes("abort", ["aborted", "refused"])))"
        let reads =
            "reads issued \(sum(\.readsIssued)), answered \(sum(\.readsAnswered)), refused \(sum(\.readsRefused))"
        let expiredFirst = tally.filter { $0.key.hasSuffix(" expired") }.values.reduce(0, +)
        let window =
            "releases \(count("release")) (\(outcomes("release", ["released", "expired"]))), commands expired "
            + "\(expiredFirst), requests answered expired \(sum(\.requestsExpired)), delivered \(count("delivered"))"
        print(
            "ledger simulation: \(reports.count) seeds x \(Self.steps) ticks, \(sum(\.ticks)) ticks in all; \(faults); "
                + "\(transfers); \(twoPhase); \(window); requests acknowledged \(sum(\.requestsAcknowledged)); \(reads); "
                + "\(SimulationReport.membership(reports)); "
                + "snapshots installed \(sum(\.snapshotsInstalled)); settled within "
                + "\(reports.map(\.settleTicks).max() ?? 0) ticks past the end (worst); violations found \(failed.count)"
        )
        // The run must have exercised what it claims to.
        if Self.ledgerSeeds.count >= 50 {
            #expect(sum(\.crashes) > 0)
            #expect(sum(\.lazyWritesLost) > 0)
            #expect(sum(\.readsAnswered) > reports.count * 10)
            #expect(sum(\.snapshotsInstalled) > 0)
            SimulationReport.expectMembershipExercised(reports)
            for key in [
                "transfer committed", "transfer insufficient funds", "transfer locked", "transfer unknown account",
                "transfer invalid", "prepare yes", "prepare locked", "prepare invalid", "decide committed",
                "decide refused", "follow committed", "follow aborted", "follow refused", "commit refused",
                "abort aborted", "abort refused", "move yes", "move moving", "move moved", "transfer moving",
                "transfer moved", "release released", "transfer expired", "commit expired", "delivered committed",
            ] {
                #expect(count(key) > 0, "no \(key) in \(reports.count) seeds")
            }
        }
    }

    /// Seeds that once failed, each replayed exactly (at the default 2,000 ticks) by every `swift test`, whatever
    /// `SIM_SEED`, `SIM_SEEDS` and `SIM_STEPS` say. Add a seed here when its failure is fixed.
    /// 1007820: five replicas, delays up to 6, one slot in flight, one request per slot: the 100 ticks of the drain
    /// were too few for its clients' outstanding requests; it settles 19 ticks past the end (`settleTicksMax`).
    static let payloadRegressionSeeds: [UInt64] = [1_007_820]
    /// 77751 (issue 26) and 1000098: one slot in flight, one request per slot; the run ended while the leader still
    /// worked through its clients' retries (and, for 77751, stale forwarded requests the leader no longer proposes).
    static let ledgerRegressionSeeds: [UInt64] = [77751, 1_000_098]

    @Test(arguments: payloadRegressionSeeds) func protocolRegressionSeedHolds(seed: UInt64) {
        Self.expectHolds(Simulation<SimState>(seed: seed, steps: 2_000))
    }

    @Test(arguments: ledgerRegressionSeeds) func ledgerRegressionSeedHolds(seed: UInt64) {
        Self.expectHolds(Simulation<LedgerMachine>(seed: seed, steps: 2_000))
    }

    static func expectHolds<Machine: SimulatedMachine>(_ simulation: Simulation<Machine>) {
        var simulation = simulation
        let report = simulation.run()
        #expect(
            report.violations.isEmpty,
            """
            seed \(report.seed) (\(report.parameters)):
            \(report.details)
            """)
    }

    /// Same seed, same ledger run, down to every replica's WAL and datastore.
    @Test func ledgerRunsReplayExactly() {
        var first = Simulation<LedgerMachine>(seed: 42, steps: 600)
        var second = Simulation<LedgerMachine>(seed: 42, steps: 600)
        let a = first.run()
        let b = second.run()
        #expect(a.violations.isEmpty && b.violations.isEmpty)
        #expect(a.messagesDelivered == b.messagesDelivered && a.slotsChosen == b.slotsChosen && a.tally == b.tally)
        #expect(a.readsIssued == b.readsIssued && a.readsAnswered == b.readsAnswered)
        #expect(first.canonicalState == second.canonicalState)
        #expect(first.canonicalState.ledger.datastore.count > 0)
    }

    /// Runs seeds on every core but one; each run is independent and deterministic.
    static func run<Machine: SimulatedMachine>(
        _ machine: Machine.Type, seeds: [UInt64], steps: Int, fault: InjectedFault?
    ) async -> [SimulationReport] {
        await onThreadsOfTheirOwn(seeds) { seed in
            var simulation = Simulation<Machine>(seed: seed, steps: steps, fault: fault)
            return simulation.run()
        }
        .sorted { $0.seed < $1.seed }
    }

    static func runNodes<Machine: SimulatedMachine>(
        _ machine: Machine.Type, seeds: [UInt64], steps: Int, fault: InjectedFault?
    ) async -> [NodeSimulation<Machine>.NodeReport] {
        await onThreadsOfTheirOwn(seeds) { seed in
            var simulation = NodeSimulation<Machine>(seed: seed, steps: steps, fault: fault)
            return simulation.run()
        }
        .sorted { $0.seed < $1.seed }
    }

    /// Runs `body` for every seed on threads of their own, one per core but one: a seed never suspends, so on the
    /// shared executor's threads it would starve the suites that run beside it (the integration tests' clients, whose
    /// calls then miss their deadlines against replicas that are fine) for as long as the seed runs.
    static func onThreadsOfTheirOwn<Report: Sendable>(
        _ seeds: [UInt64], _ body: @escaping @Sendable (UInt64) -> Report
    ) async -> [Report] {
        let workers = max(1, ProcessInfo.processInfo.activeProcessorCount - 1)
        return await withTaskGroup(of: [Report].self) { group in
            for worker in 0..<workers {
                group.addTask {
                    await withCheckedContinuation { continuation in
                        Thread.detachNewThread {
                            let mine = seeds.enumerated().filter { $0.offset % workers == worker }.map(\.element)
                            continuation.resume(returning: mine.map(body))
                        }
                    }
                }
            }
            var all: [Report] = []
            for await reports in group { all += reports }
            return all
        }
    }
}

extension NodeSimulation.NodeReport {
    /// The first violations of each cluster, then each failing cluster's explanation.
    var details: String {
        clusters.enumerated().filter { !$0.element.violations.isEmpty }.map { index, report in
            "C\(index + 1) (\(report.parameters)):\n\(report.details)"
        }.joined(separator: "\n")
    }
}

extension SimulationReport {
    /// The first violations, then the explanation (each replica's state, what it waits for, its last inputs).
    var details: String {
        let more = violations.count > 12 ? ["... \(violations.count - 12) more violations"] : []
        return (violations.prefix(12) + more + explanation).joined(separator: "\n")
    }
}

extension SimulationReport {
    /// The membership changes of a set of runs, in one clause of a summary line.
    static func membership(_ reports: [SimulationReport]) -> String {
        func sum(_ field: KeyPath<SimulationReport, Int>) -> Int { reports.map { $0[keyPath: field] }.reduce(0, +) }
        return "membership changes asked \(sum(\.reconfigurationsAsked)) (of the leader's removal "
            + "\(sum(\.leaderRemovalsAsked))), applied \(sum(\.reconfigurationsApplied)), refused "
            + "\(sum(\.reconfigurationsRefused)), replicas retired \(sum(\.replicasRetired))"
    }

    /// A run of 50 seeds or more must have changed memberships in every way the operator asks for.
    static func expectMembershipExercised(_ reports: [SimulationReport]) {
        func sum(_ field: KeyPath<SimulationReport, Int>) -> Int { reports.map { $0[keyPath: field] }.reduce(0, +) }
        #expect(sum(\.reconfigurationsApplied) > reports.count)
        #expect(sum(\.leaderRemovalsAsked) > 0)
        #expect(sum(\.reconfigurationsRefused) > 0)
        #expect(sum(\.replicasRetired) > 0)
    }
}
