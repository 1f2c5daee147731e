import Foundation
import LedgerClient
import LedgerCore
import Testing

/// The short soak of issue 22 (`scripts/soak.sh` runs the long one): three clusters under a steady load of intra- and
/// cross-shard transfers from clients that come and go, sampled every 10 s. What a replica remembers must stay within
/// its window and far below what the run did, its memory must stop growing once warm, and no money moves. Part of
/// the serialized nemesis suite: the nemesis counts the faults it fits in a fixed time, which this load would cut.
extension NemesisTests {
    /// What one replica holds at one sample.
    struct Sample: Sendable {
        var residentBytes: Int
        var remembered: Int
        var sessions: Int
    }

    static let load = Duration.seconds(120)
    static let sampleEvery = Duration.seconds(10)

    @Test func stateAndMemoryStayFlatUnderSteadyLoad() async throws {
        let deployment = try TestDeployment(clusters: 3, accountsPerCluster: 200, metrics: true)
        defer { deployment.stopAll() }
        try deployment.startAll()
        let replicas = deployment.clusterNames.flatMap(deployment.replicas(of:))
        let options = BenchOptions(
            duration: Self.load, warmup: .zero, concurrency: 16, crossShard: 0.1, accounts: nil, amount: 1, skew: 0,
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
                    var samples: [[String: Sample]] = []
                    let end = ContinuousClock.now + Self.load
                    while ContinuousClock.now < end {
                        try? await Task.sleep(for: Self.sampleEvery)
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
        try #require(samples.count >= 9, "only \(samples.count) samples")
        // Every replica answered every sample.
        #expect(samples.allSatisfy { $0.count == replicas.count })

        // The window: a replica remembers what its clients still wait on (a straggler holds a client's floor, so up
        // to a client's share of 4,096 for a moment), not what the run did (over 100,000 transfers on a quiet
        // machine). Sessions: the 9 client ids the run used, at most.
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
            guard let pid = deployment.pid(of: replica), let port = deployment.metricsPorts[replica],
                let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kilobytes = Int(line.split(separator: " ")[1]),
                let metrics = scrape(port),
                let remembered = metrics["ledger_transactions_remembered"],
                let sessions = metrics["ledger_client_sessions"]
            else { continue }
            samples[replica] = Sample(residentBytes: kilobytes * 1024, remembered: remembered, sessions: sessions)
        }
        return samples
    }

    /// The unlabelled gauges and counters of a replica's /metrics, as whole numbers.
    static func scrape(_ port: Int) -> [String: Int]? {
        guard let socket = RawSocket(port: port) else { return nil }
        defer { socket.close() }
        socket.send(Array("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        let (bytes, _) = socket.receive(upTo: 1 << 20, within: .milliseconds(500))
        var values: [String: Int] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else { continue }
            values[String(parts[0])] = Int(value)
        }
        return values
    }
}
