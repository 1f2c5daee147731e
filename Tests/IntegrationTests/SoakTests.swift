import Foundation
import LedgerClient
import LedgerCore
import Testing

/// The short soak of issue 22 (`scripts/soak.sh` runs the long one): three clusters under a steady load of intra- and
/// cross-shard transfers from clients that come and go, sampled every 10 s. What a replica remembers must stay within
/// its window and far below what the run did, its memory must stop growing once warm, and no money moves. It needs
/// the machine alone: beside it, the nemesis would fit fewer faults in its time and a cross-shard commit could miss
/// its deadline.
@Suite("Soak") struct SoakTests {
    /// What one replica holds at one sample.
    struct Sample: Sendable {
        var residentBytes: Int
        var remembered: Int
        var sessions: Int
    }

    /// Short enough that a test waiting for the machine keeps its own time limit (each allows about 2 minutes).
    static let load = Duration.seconds(100)
    static let samples = 10

    @Test(.needsMachineAlone, .timeLimit(.minutes(20))) func stateAndMemoryStayFlatUnderSteadyLoad() async throws {
        let deployment = try TestDeployment(clusters: 3, accountsPerCluster: 200, metrics: true)
        defer { deployment.stopAll() }
        try deployment.startAll()
        let replicas = deployment.clusterNames.flatMap(deployment.replicas(of:))
        let options = BenchOptions(
            duration: Self.load, warmup: .zero, concurrency: 32, crossShard: 0.1, accounts: nil, amount: 1, skew: 0,
            seed: 22, sessionSeconds: 15)
        enum Part: Sendable {
            case bench(BenchResult)
            case samples([[String: Sample]])
        }
        let (result, samples) = try await LedgerConnection.with(
            deployment: try deployment.deployment(), catalog: try deployment.catalog()
        ) { connection in
            try await connection.waitUntilServing(within: .seconds(30))
            return await withTaskGroup(of: Part.self) { group in
                group.addTask { .bench(await Bench(connection: connection, options: options).run()) }
                group.addTask {
                    // On a fixed schedule, whatever one round of sampling takes.
                    var samples: [[String: Sample]] = []
                    let start = ContinuousClock.now
                    for round in 1...Self.samples {
                        try? await Task.sleep(until: start + Self.load * round / Self.samples)
                        samples.append(Self.sample(replicas, of: deployment))
                    }
                    return .samples(samples)
                }
                var result: BenchResult?
                var samples: [[String: Sample]] = []
                for await part in group {
                    switch part {
                    case .bench(let bench): result = bench
                    case .samples(let taken): samples = taken
                    }
                }
                return (result!, samples)
            }
        }
        #expect(result.committed > 1_000)
        #expect(
            result.totalOK,
            "total money \(String(describing: result.totalBefore)) before, \(String(describing: result.totalAfter)) after"
        )
        // Every replica answered every sample.
        #expect(samples.allSatisfy { $0.count == replicas.count })

        // The window: a replica remembers what its clients still wait on (a straggler holds a client's floor, so up
        // to a client's share of 4,096 for a moment), not what the run did (over 100,000 transfers on a quiet
        // machine). Sessions: the client ids the run used (a new one every 15 s), at most.
        let remembered = samples.flatMap { $0.values.map(\.remembered) }
        #expect(remembered.max()! < min(10_000, result.committed / 10), "remembered transactions: \(remembered)")
        #expect(samples.flatMap { $0.values.map(\.sessions) }.max()! <= 10)

        // Memory: the total RSS of the last third of the run is within 20% of the middle third's (a short run on a
        // shared machine: scripts/soak.sh holds the long run to 10%).
        let totals = samples.map { $0.values.reduce(0) { $0 + $1.residentBytes } }
        let third = totals.count / 3
        let middle = totals[third..<(2 * third)].max()!
        let last = totals[(2 * third)...].max()!
        #expect(
            Double(last) < Double(middle) * 1.2,
            "total RSS per sample (MB): \(totals.map { $0 >> 20 })")
    }

    /// Each running replica's RSS (from /proc) and window gauges (from its /metrics).
    static func sample(_ replicas: [String], of deployment: TestDeployment) -> [String: Sample] {
        var samples: [String: Sample] = [:]
        for replica in replicas {
            guard let pid = deployment.pid(of: replica),
                let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kilobytes = Int(line.split(separator: " ")[1]),
                let metrics = deployment.metrics(of: replica),
                let remembered = metrics["ledger_transactions_remembered"],
                let sessions = metrics["ledger_client_sessions"]
            else { continue }
            samples[replica] = Sample(residentBytes: kilobytes * 1024, remembered: remembered, sessions: sessions)
        }
        return samples
    }
}
