import Foundation
import Paxos
import Testing

/// Runs the real `Paxos.Replica` under the deterministic simulator.
///
/// `SIM_SEED=n` replays one seed exactly; `SIM_SEEDS` (default 200) and `SIM_STEPS` (default 2000 ticks) scale the
/// run; `SIM_FIRST_SEED` moves the window of seeds. Every failing run prints its seed and how to replay it.
@Suite struct SimulationTests {
    static let environment = ProcessInfo.processInfo.environment
    static let steps = Int(environment["SIM_STEPS"] ?? "") ?? 2_000
    static let seeds: [UInt64] = {
        if let one = environment["SIM_SEED"].flatMap(UInt64.init) { return [one] }
        let count = UInt64(environment["SIM_SEEDS"] ?? "") ?? 200
        let first = UInt64(environment["SIM_FIRST_SEED"] ?? "") ?? 1
        return Array(first..<(first + count))
    }()

    @Test func protocolHoldsUnderFaults() async {
        let reports = await Self.run(seeds: Self.seeds, steps: Self.steps, fault: nil)
        let failed = reports.filter { !$0.violations.isEmpty }
        for report in failed {
            Issue.record(
                """
                seed \(report.seed) violated the protocol (\(report.parameters)); replay with \
                SIM_SEED=\(report.seed) swift test --filter SimulationTests:
                \(report.violations.prefix(12).joined(separator: "\n"))
                """)
        }
        let leaderTicks = reports.compactMap(\.ticksToLeaderAfterHeal)
        print(
            """
            simulation: \(reports.count) seeds x \(Self.steps) ticks, \(reports.map(\.ticks).reduce(0, +)) ticks in all; \
            faults injected \(reports.map(\.faultsInjected).reduce(0, +)) (messages dropped \
            \(reports.map(\.messagesDropped).reduce(0, +)), duplicated \(reports.map(\.messagesDuplicated).reduce(0, +)), \
            crashes \(reports.map(\.crashes).reduce(0, +)), partitions \(reports.map(\.partitions).reduce(0, +)), \
            leader isolations \(reports.map(\.leaderIsolations).reduce(0, +))); requests submitted \
            \(reports.map(\.requestsSubmitted).reduce(0, +)), acknowledged \(reports.map(\.requestsAcknowledged).reduce(0, +)), \
            refused \(reports.map(\.requestsRefused).reduce(0, +)); slots chosen \(reports.map(\.slotsChosen).reduce(0, +)); \
            snapshots installed \(reports.map(\.snapshotsInstalled).reduce(0, +)); leader after heal within \
            \(leaderTicks.max() ?? 0) ticks (worst); violations found \(failed.count)
            """)
        // The run must have exercised what it claims to.
        if Self.seeds.count >= 50 {
            #expect(reports.map(\.crashes).reduce(0, +) > 0)
            #expect(reports.map(\.snapshotsInstalled).reduce(0, +) > 0)
            #expect(reports.map(\.requestsAcknowledged).reduce(0, +) > reports.count * 10)
        }
    }

    /// The canary: a replica that answers Phase 1 without persisting its promise must be caught.
    @Test func canaryReplicaIsCaught() async {
        let seeds = Array(UInt64(1)...400)
        let reports = await Self.run(seeds: seeds, steps: Self.steps, fault: .promiseNotPersisted)
        let caught = reports.filter { !$0.violations.isEmpty }
        print(
            """
            simulation canary (promise not persisted): caught by \(caught.count) of \(reports.count) seeds; \
            first: seed \(caught.first.map { String($0.seed) } ?? "none"): \(caught.first?.violations.first ?? "")
            """)
        #expect(!caught.isEmpty, "the simulator did not catch a replica that forgets its promise")
    }

    /// Same seed, same run: the simulator is deterministic, so a failing seed replays exactly.
    @Test func runsReplayExactly() {
        var first = Simulation(seed: 42, steps: 600)
        var second = Simulation(seed: 42, steps: 600)
        let a = first.run()
        let b = second.run()
        #expect(a.messagesDelivered == b.messagesDelivered && a.slotsChosen == b.slotsChosen)
        #expect(a.crashes == b.crashes && a.requestsAcknowledged == b.requestsAcknowledged)
        #expect(first.canonicalState == second.canonicalState)
    }

    /// Runs seeds on every core; each run is independent and deterministic.
    static func run(seeds: [UInt64], steps: Int, fault: InjectedFault?) async -> [SimulationReport] {
        let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
        return await withTaskGroup(of: [SimulationReport].self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var reports: [SimulationReport] = []
                    for (index, seed) in seeds.enumerated() where index % workers == worker {
                        var simulation = Simulation(seed: seed, steps: steps, fault: fault)
                        reports.append(simulation.run())
                    }
                    return reports
                }
            }
            var all: [SimulationReport] = []
            for await reports in group { all += reports }
            return all.sorted { $0.seed < $1.seed }
        }
    }
}
