import Foundation
import Histogram
import LedgerCore
import LedgerRPC
import Paxos
import Synchronization

/// What `client bench` runs: a closed loop of `concurrency` transfers in flight for `duration` after `warmup`.
public struct BenchOptions: Sendable, Codable {
    public var duration: Duration
    public var warmup: Duration
    public var concurrency: Int
    /// The fraction of transfers between accounts of two clusters, 0 to 1.
    public var crossShard: Double
    /// How many accounts take part, spread evenly over the clusters; nil: every account of the catalog.
    public var accounts: Int?
    public var amount: Int64
    /// Zipf exponent of the account choice inside a cluster; 0 is uniform.
    public var skew: Double
    public var seed: UInt64
    /// Seconds between two client sessions: the load goes on under a new client id each time, as clients come and go
    /// (`LedgerConnection.startNewSession`); nil: one client id for the whole run.
    public var sessionSeconds: Int?

    public init(
        duration: Duration, warmup: Duration, concurrency: Int, crossShard: Double, accounts: Int?, amount: Int64,
        skew: Double, seed: UInt64, sessionSeconds: Int? = nil
    ) {
        self.duration = duration
        self.warmup = warmup
        self.concurrency = concurrency
        self.crossShard = crossShard
        self.accounts = accounts
        self.amount = amount
        self.skew = skew
        self.seed = seed
        self.sessionSeconds = sessionSeconds
    }
}

/// Latency percentiles of one kind of transfer, in milliseconds.
public struct LatencySummary: Sendable, Codable, Equatable {
    public var count: UInt64
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double

    init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        func milliseconds(_ microseconds: UInt64) -> Double { Double(microseconds) / 1000 }
        p50 = count == 0 ? 0 : milliseconds(histogram.valueAtPercentile(50))
        p90 = count == 0 ? 0 : milliseconds(histogram.valueAtPercentile(90))
        p99 = count == 0 ? 0 : milliseconds(histogram.valueAtPercentile(99))
        p999 = count == 0 ? 0 : milliseconds(histogram.valueAtPercentile(99.9))
        max = count == 0 ? 0 : milliseconds(histogram.max)
    }
}

/// What a bench run measured; `line` is the one line scripts read.
public struct BenchResult: Sendable, Codable {
    public var options: BenchOptions
    public var measuredSeconds: Double
    public var committed: Int
    /// Transfers committed in each whole second of the measured window, in order: a stall shows as a low second
    /// that the average over the run hides.
    public var committedEachSecond: [Int]
    public var aborted: Int
    public var unknown: Int
    public var abortsByReason: [String: Int]
    public var intraShard: LatencySummary
    public var crossShard: LatencySummary
    public var all: LatencySummary
    /// Total money over every account of the catalog before and after the run (nil: an account could not be read).
    public var totalBefore: Int64?
    public var totalAfter: Int64?

    public var committedPerSecond: Double { Double(committed) / measuredSeconds }
    public var abortedPerSecond: Double { Double(aborted) / measuredSeconds }
    /// The fewest transfers committed in one second of the measured window.
    public var slowestSecond: Int { committedEachSecond.min() ?? 0 }
    public var totalOK: Bool { totalBefore != nil && totalBefore == totalAfter }

    /// `committed_per_s=... aborted_per_s=... p50_ms=... p99_ms=... cross_p99_ms=... slowest_second=...
    /// total_ok=true|false`.
    public var line: String {
        "committed_per_s=\(String(format2: committedPerSecond)) aborted_per_s=\(String(format2: abortedPerSecond)) "
            + "p50_ms=\(String(format2: all.p50)) p99_ms=\(String(format2: all.p99)) "
            + "cross_p99_ms=\(String(format2: crossShard.p99)) slowest_second=\(slowestSecond) total_ok=\(totalOK)"
    }

    /// The human table.
    public var table: String {
        func row(_ name: String, _ summary: LatencySummary) -> String {
            let cells = [summary.p50, summary.p90, summary.p99, summary.p999, summary.max].map { String(format2: $0) }
            return "| \(name) | \(summary.count) | " + cells.joined(separator: " | ") + " |"
        }
        var lines = [
            "concurrency \(options.concurrency), cross-shard \(options.crossShard), skew \(options.skew), "
                + "\(String(format2: measuredSeconds)) s measured",
            "committed \(committed) (\(String(format2: committedPerSecond))/s; \(slowestSecond) in the slowest second), "
                + "aborted \(aborted) (\(String(format2: abortedPerSecond))/s), unknown \(unknown)",
        ]
        for (reason, count) in abortsByReason.sorted(by: { $0.value > $1.value }) {
            lines.append("  aborted: \(reason): \(count)")
        }
        lines += [
            "| transfers | count | p50 ms | p90 ms | p99 ms | p999 ms | max ms |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            row("intra-shard", intraShard), row("cross-shard", crossShard), row("all", all),
            "total money before \(totalBefore.map(String.init) ?? "unreadable"), after "
                + "\(totalAfter.map(String.init) ?? "unreadable")",
        ]
        return lines.joined(separator: "\n")
    }
}

/// The closed-loop load generator of `client bench` (DESIGN §8).
public struct Bench: Sendable {
    public let connection: LedgerConnection
    public let options: BenchOptions

    public init(connection: LedgerConnection, options: BenchOptions) {
        self.connection = connection
        self.options = options
    }

    /// One worker's tallies, merged at the end (no sharing while the load runs).
    struct Tally: Sendable {
        var committed = 0
        var committedEachSecond: [Int]
        var aborted = 0
        var unknown = 0
        var reasons: [String: Int] = [:]
        var intra = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var cross = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)

        init(seconds: Int) {
            committedEachSecond = Array(repeating: 0, count: seconds)
        }

        mutating func add(_ other: Tally) {
            committed += other.committed
            for (second, count) in other.committedEachSecond.enumerated() { committedEachSecond[second] += count }
            aborted += other.aborted
            unknown += other.unknown
            reasons.merge(other.reasons, uniquingKeysWith: +)
            intra.add(other.intra)
            cross.add(other.cross)
        }
    }

    /// Runs the load; `progress` receives the transfers committed so far about once a second.
    public func run(progress: @escaping @Sendable (Int) -> Void = { _ in }) async -> BenchResult {
        let workload = Workload(catalog: connection.catalog, options: options)
        let totalBefore = await total()
        let committedSoFar = SharedCount()
        let start = ContinuousClock.now
        let measureFrom = start + options.warmup
        let end = measureFrom + options.duration
        // Whole seconds only: a last partial second would look like a stall.
        let seconds = max(1, Int(options.duration.components.seconds))
        var tally = Tally(seconds: seconds)
        let workerSeeds = Self.workerSeeds(options.seed, count: options.concurrency)
        await withTaskGroup(of: Tally?.self) { group in
            for worker in 0..<options.concurrency {
                group.addTask {
                    var random = SeededRandom(seed: workerSeeds[worker])
                    var tally = Tally(seconds: seconds)
                    while ContinuousClock.now < end {
                        let (transfer, isCross) = workload.next(using: &random)
                        let sent = ContinuousClock.now
                        let outcome = await connection.transfer(transfer)
                        let answered = ContinuousClock.now
                        guard sent >= measureFrom, answered <= end else { continue }
                        let elapsed = answered - sent
                        let microseconds = UInt64(
                            max(
                                1,
                                elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds
                                    / 1_000_000_000_000))
                        if isCross {
                            _ = tally.cross.record(microseconds)
                        } else {
                            _ = tally.intra.record(microseconds)
                        }
                        switch outcome {
                        case .committed:
                            tally.committed += 1
                            let second = Int((answered - measureFrom) / .seconds(1))
                            if second < seconds { tally.committedEachSecond[second] += 1 }
                            committedSoFar.value.add(1, ordering: .relaxed)
                        case .aborted(let reason):
                            tally.aborted += 1
                            tally.reasons[Self.reasonKey(reason), default: 0] += 1
                        case .unknown:
                            tally.unknown += 1
                        }
                    }
                    return tally
                }
            }
            group.addTask {
                while ContinuousClock.now < end {
                    try? await Task.sleep(for: .seconds(1))
                    progress(committedSoFar.value.load(ordering: .relaxed))
                }
                return nil
            }
            if let sessionSeconds = options.sessionSeconds {
                group.addTask {
                    var next = start + .seconds(sessionSeconds)
                    while next < end {
                        try? await Task.sleep(until: next)
                        connection.startNewSession()
                        next += .seconds(sessionSeconds)
                    }
                    return nil
                }
            }
            for await result in group { if let result { tally.add(result) } }
        }
        // Let the commits reported reach their other participants, and recovery settle anything a transfer left in
        // doubt, before the audit.
        await connection.settle()
        try? await connection.waitUntilNoLocks(within: .seconds(30))
        let totalAfter = await total()
        var all = tally.intra
        all.add(tally.cross)
        return BenchResult(
            options: options, measuredSeconds: Double(options.duration.components.seconds), committed: tally.committed,
            committedEachSecond: tally.committedEachSecond, aborted: tally.aborted, unknown: tally.unknown,
            abortsByReason: tally.reasons,
            intraShard: LatencySummary(tally.intra), crossShard: LatencySummary(tally.cross), all: LatencySummary(all),
            totalBefore: totalBefore, totalAfter: totalAfter)
    }

    /// Each worker's seed: an output of a generator seeded with the bench's seed. (SplitMix streams seeded a fixed
    /// step apart are one stream shifted, so the workers would all send the same transfers.)
    static func workerSeeds(_ seed: UInt64, count: Int) -> [UInt64] {
        var seeds = SeededRandom(seed: seed)
        return (0..<count).map { _ in seeds.next() }
    }

    /// The kind of an abort, without the account-specific details, for counting.
    static func reasonKey(_ reason: TransferAbort) -> String {
        switch reason {
        case .refused(.insufficientFunds, _): return "insufficient funds"
        case .refused(.locked, _): return "locked"
        case .refused(let other, _): return "\(other)"
        case .noQuorum: return "no quorum"
        case .wrongShard: return "wrong shard"
        case .abortedAtHome: return "aborted by the home cluster"
        case .forbidden: return "refused the caller"
        }
    }

    /// How long the audit may take to read every account, transient refusals included.
    static let auditTimeout = Duration.seconds(30)

    /// The sum of every account's committed balance (linearizable reads, 32 at a time); nil if one could not be read
    /// within `auditTimeout`.
    func total() async -> Int64? {
        // Every account of a range, and every account moved outside the ranges (into a range removed with a drained
        // cluster): each once.
        let catalog = connection.catalog
        let ranged = catalog.shards.shards.flatMap { shard in
            (shard.accounts.lowerBound.value...shard.accounts.upperBound.value).map(AccountID.init)
        }
        let accounts = ranged + catalog.overrides.keys.filter { catalog.shards.cluster(of: $0) == nil }.sorted()
        let deadline = ContinuousClock.now + Self.auditTimeout
        return await withTaskGroup(of: Int64?.self) { group in
            var sum: Int64? = 0
            var next = 0
            func launch() {
                guard next < accounts.count else { return }
                let account = accounts[next]
                next += 1
                group.addTask { await balance(of: account, until: deadline) }
            }
            for _ in 0..<32 { launch() }
            for await balance in group {
                sum = sum.flatMap { total in balance.map { total + $0 } }
                launch()
            }
            return sum
        }
    }

    /// One account's committed balance. A read the cluster could not answer this time (a leader change, no quorum
    /// yet, a machine too busy to answer within a step) is asked again until `deadline`; one refused for good (the
    /// wrong shard, the caller's certificate) is not.
    private func balance(of account: AccountID, until deadline: ContinuousClock.Instant) async -> Int64? {
        while true {
            switch await connection.balance(of: account) {
            case .success(let balance): return balance
            case .failure(.wrongShard), .failure(.forbidden): return nil
            case .failure: guard ContinuousClock.now < deadline else { return nil }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// A count the workers share with the progress task.
final class SharedCount: Sendable {
    let value = Atomic<Int>(0)
}

/// The accounts a bench draws from: per cluster, the first accounts it holds by the catalog (moves included), chosen
/// with a Zipf law.
struct Workload: Sendable {
    let clusters: [[AccountID]]
    /// Cumulative Zipf weights of ranks 1...n for the largest cluster (each cluster uses its prefix).
    let cumulative: [Double]
    let crossShard: Double
    let amount: Amount

    init(catalog: Catalog, options: BenchOptions) {
        let names = catalog.clusters.filter { !catalog.accounts(of: $0).isEmpty }
        let perCluster = options.accounts.map { max(2, $0 / max(1, names.count)) } ?? Int.max
        clusters = names.map { name in
            var accounts: [AccountID] = []
            for range in catalog.accounts(of: name) where accounts.count < perCluster {
                var value = range.lowerBound.value
                while accounts.count < perCluster {
                    accounts.append(AccountID(value))
                    if value == range.upperBound.value { break }
                    value += 1
                }
            }
            return accounts
        }
        let largest = clusters.map(\.count).max() ?? 0
        var running = 0.0
        cumulative = (0..<largest).map { rank in
            running += 1 / Foundation.pow(Double(rank + 1), options.skew)
            return running
        }
        crossShard = clusters.count > 1 ? options.crossShard : 0
        amount = Amount(options.amount)
    }

    /// The next transfer, and whether it crosses shards.
    func next(using random: inout SeededRandom) -> (Transfer, Bool) {
        let isCross = Double.random(in: 0..<1, using: &random) < crossShard
        let source = Int.random(in: 0..<clusters.count, using: &random)
        var target = source
        if isCross {
            target = Int.random(in: 0..<(clusters.count - 1), using: &random)
            if target >= source { target += 1 }
        }
        while true {
            let from = pick(in: clusters[source], using: &random)
            let to = pick(in: clusters[target], using: &random)
            // A transfer to itself is refused by the ledger; draw again.
            if from != to, let transfer = try? Transfer(from: from, to: to, amount: amount) {
                return (transfer, isCross)
            }
        }
    }

    private func pick(in accounts: [AccountID], using random: inout SeededRandom) -> AccountID {
        let limit = cumulative[accounts.count - 1]
        let point = Double.random(in: 0..<limit, using: &random)
        var low = 0
        var high = accounts.count - 1
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] <= point { low = middle + 1 } else { high = middle }
        }
        return accounts[low]
    }
}
