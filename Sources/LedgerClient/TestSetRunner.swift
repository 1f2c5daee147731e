import LedgerCore
import LedgerRPC
import Paxos

/// The figures of `Performance`: transfers run so far, with the wall-clock time of the sets that ran them and each
/// transfer's latency from send to answer.
public struct PerformanceStats: Sendable {
    public private(set) var committed = 0
    public private(set) var aborted = 0
    public private(set) var unknown = 0
    public private(set) var wallClock: Duration = .zero
    public private(set) var latencies: [Duration] = []

    public init() {}

    mutating func record(_ outcome: TransferOutcome, latency: Duration) {
        switch outcome {
        case .committed: committed += 1
        case .aborted: aborted += 1
        case .unknown: unknown += 1
        }
        latencies.append(latency)
    }

    mutating func addWallClock(_ duration: Duration) { wallClock += duration }

    /// The latency below which `fraction` of the transfers answered (nearest rank).
    public func latency(percentile fraction: Double) -> Duration? {
        guard !latencies.isEmpty else { return nil }
        let sorted = latencies.sorted()
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count - 1, max(0, rank - 1))]
    }

    public var summary: String {
        let total = committed + aborted + unknown
        guard total > 0 else { return "Performance: no transfers yet" }
        let seconds = Double(wallClock.components.seconds) + Double(wallClock.components.attoseconds) / 1e18
        let mean = latencies.reduce(Duration.zero, +) / latencies.count
        let throughput = seconds > 0 ? Double(committed) / seconds : 0
        return "Performance: \(total) transfers (\(committed) committed, \(aborted) aborted, \(unknown) unknown) in "
            + "\(Self.format(wallClock)); \(String(format2: throughput)) committed/s; latency mean "
            + "\(Self.format(mean)), p50 \(Self.format(latency(percentile: 0.5)!)), p99 \(Self.format(latency(percentile: 0.99)!))"
    }

    public static func format(_ duration: Duration) -> String {
        let milliseconds = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return milliseconds >= 1000
            ? "\(String(format2: milliseconds / 1000)) s" : "\(String(format2: milliseconds)) ms"
    }
}

extension String {
    /// A number with two decimals, without Foundation.
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let fraction = abs(hundredths % 100)
        self = "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

/// One transfer of a set and how it ended.
public struct TransferReport: Sendable {
    public var transfer: Transfer
    public var outcome: TransferOutcome
    public var latency: Duration

    /// `(21, 700, 2) committed` or `(21, 700, 2) aborted: insufficient funds`.
    public var line: String { "\(transfer) \(outcome)" }
}

/// One balance read of a set (`(2001)` in the Fall 2025 format) and what it returned.
public struct ReadReport: Sendable {
    public var account: AccountID
    public var result: Result<Int64, RequestFailure>
    public var latency: Duration

    /// `(2001) balance 10`, or `(2001) read failed: no leader with a live majority; nothing was applied`.
    public var line: String {
        switch result {
        case .success(let balance): return "(\(account)) balance \(balance)"
        case .failure(let failure): return "(\(account)) read failed: \(failure)"
        }
    }
}

/// What one row of a set did, in file order: a transfer, a read, or a replica failed or recovered.
public enum StepReport: Sendable {
    case transfer(TransferReport)
    case read(ReadReport)
    /// A fail or recover row: `F(n3): n3 failed`, or why the test control could not be applied.
    case change(TestStep, line: String)

    /// The line the client prints.
    public var line: String {
        switch self {
        case .transfer(let report): return report.line
        case .read(let report): return report.line
        case .change(_, let line): return line
        }
    }
}

/// Runs the sets of a test file against the deployment (DESIGN §1): before each set, the servers not in its live
/// list are disconnected and the others reconnected, and its contact servers are used; then its transfers and reads
/// run, concurrently or one at a time. A set with fail and recover rows (Fall 2025 format) runs in segments: every
/// transfer and read before such a row is answered, and its commits have reached their participants, before the
/// replica is disconnected or reconnected, then the next segment runs.
public struct TestSetRunner: Sendable {
    public let connection: LedgerConnection
    public let sequential: Bool

    public init(connection: LedgerConnection, sequential: Bool) {
        self.connection = connection
        self.sequential = sequential
    }

    /// Runs one set; returns a report per row, in file order. `note` receives remarks (an unreachable server);
    /// `progress` the number of transfers and reads answered so far, after each answer.
    public func run(
        _ set: TestSet, stats: inout PerformanceStats, note: (String) -> Void, progress: (Int) -> Void = { _ in }
    ) async -> [StepReport] {
        for problem in await applyConnectivity(live: Set(set.liveServers)) { note(problem) }
        await settle(live: Set(set.liveServers))
        for contact in set.contacts {
            do { try connection.setContact(contact) } catch { note("\(error)") }
        }
        let started = ContinuousClock.now
        var reports: [StepReport] = []
        var answered = 0
        for segment in set.segments {
            for change in segment.changes {
                reports.append(await apply(change, of: set))
            }
            if !segment.changes.isEmpty { await settle(live: Set(segment.liveServers)) }
            let done = await run(segment.operations) { progress(answered + $0) }
            answered += done.count
            reports += done
            // The segment's commits reach their other participants before a replica fails or recovers, anything is
            // printed, or the next set starts.
            await connection.settle()
        }
        stats.addWallClock(ContinuousClock.now - started)
        for case .transfer(let report) in reports { stats.record(report.outcome, latency: report.latency) }
        return reports
    }

    /// Runs transfers and reads together (or one at a time when `sequential`); their reports in the given order.
    private func run(_ operations: [TestStep], progress: (Int) -> Void) async -> [StepReport] {
        var reports: [StepReport?] = Array(repeating: nil, count: operations.count)
        if sequential {
            for (index, step) in operations.enumerated() {
                reports[index] = await run(step)
                progress(index + 1)
            }
        } else {
            await withTaskGroup(of: (Int, StepReport).self) { group in
                for (index, step) in operations.enumerated() {
                    group.addTask { (index, await run(step)) }
                }
                var answered = 0
                for await (index, report) in group {
                    reports[index] = report
                    answered += 1
                    progress(answered)
                }
            }
        }
        return reports.map { $0! }
    }

    private func run(_ step: TestStep) async -> StepReport {
        let started = ContinuousClock.now
        switch step.action {
        case .transfer(let transfer):
            let outcome = await connection.transfer(transfer)
            return .transfer(
                TransferReport(transfer: transfer, outcome: outcome, latency: ContinuousClock.now - started))
        case .read(let account):
            let result = await read(account)
            return .read(ReadReport(account: account, result: result, latency: ContinuousClock.now - started))
        case .fail, .recover:
            preconditionFailure("a segment's operations are transfers and reads")
        }
    }

    /// The committed balance of `account`. A read that meets a prepared cross-shard transaction holding the account
    /// asks again until the transaction is decided there: a transfer of the same segment run concurrently, or a
    /// commit whose delivery to this participant failed (its home lost its majority or its contact right after) and
    /// that the participant's in-doubt recovery settles. So it asks for as long as that recovery may take, plus a step
    /// timeout.
    func read(_ account: AccountID) async -> Result<Int64, RequestFailure> {
        let consensusTimeout = connection.deployment.clusters.map(\.paxos.consensusTimeout).max() ?? .seconds(3)
        let deadline = ContinuousClock.now + consensusTimeout * Self.inDoubtTimeoutsMax + connection.stepTimeout
        while true {
            let result = await connection.balance(of: account)
            guard case .failure(.inDoubt) = result, ContinuousClock.now < deadline else { return result }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A prepared transaction is in doubt at a participant, which then has its home decide, after this many consensus
    /// timeouts (`ReplicaProcess.inDoubtTimeoutsMax` of the replicas).
    static let inDoubtTimeoutsMax = 5

    /// Disconnects (a fail row) or reconnects (a recover row) one replica: `F(n3): n3 failed`, `R(n3): n3
    /// recovered`, or what could not be done.
    private func apply(_ change: TestStep, of set: TestSet) async -> StepReport {
        let (replica, connected): (String, Bool)
        switch change.action {
        case .fail(let name): (replica, connected) = (name, false)
        case .recover(let name): (replica, connected) = (name, true)
        case .transfer, .read: preconditionFailure("a segment's changes are fail and recover rows")
        }
        let name = set.name(of: replica)
        let written = "\(connected ? "R" : "F")(\(name))"
        for cluster in connection.clusters {
            guard let id = cluster.replicas.first(where: { $0.description == replica }) else { continue }
            do {
                try await cluster.setConnected(connected, replica: id)
                return .change(change, line: "\(written): \(name) \(connected ? "recovered" : "failed")")
            } catch {
                return .change(
                    change, line: "\(written): could not \(connected ? "reconnect" : "disconnect") \(name): \(error)")
            }
        }
        return .change(change, line: "\(written): \(name) is not a replica of the deployment")
    }

    /// Waits (at most three leader timeouts) until no live replica of a cluster without a live majority still
    /// believes in a leader. Until then a leader cut off from its majority proposes, and a follower forwards to a
    /// leader it can no longer reach: a transfer sent then may be applied once the partition heals, so its outcome
    /// would be unknown where the set means "no quorum". Afterwards such a cluster holds each request and answers
    /// "no quorum" for sure.
    func settle(live: Set<String>) async {
        let deployment = connection.deployment
        let limit = (deployment.clusters.map(\.paxos.leaderTimeout).max() ?? .seconds(1)) * 3
        let deadline = ContinuousClock.now + limit
        for cluster in connection.clusters {
            let up = cluster.replicas.filter { live.contains($0.description) }
            guard up.count * 2 < cluster.replicas.count else { continue }
            for replica in up {
                while ContinuousClock.now < deadline, let status = try? await cluster.status(of: replica),
                    status.role == .leader || status.leader != nil
                {
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
        }
    }

    /// Disconnects every server not in `live` and reconnects the others; returns what could not be done.
    public func applyConnectivity(live: Set<String>) async -> [String] {
        await withTaskGroup(of: String?.self) { group in
            for cluster in connection.clusters {
                for replica in cluster.replicas {
                    let connected = live.contains(replica.description)
                    group.addTask {
                        do {
                            try await cluster.setConnected(connected, replica: replica)
                            return nil
                        } catch {
                            return "could not \(connected ? "reconnect" : "disconnect") \(replica): \(error)"
                        }
                    }
                }
            }
            var problems: [String] = []
            for await problem in group { if let problem { problems.append(problem) } }
            return problems.sorted()
        }
    }
}

/// The answers to the prompt's inspection commands, as lines to print.
public struct Inspector: Sendable {
    public let connection: LedgerConnection

    public init(connection: LedgerConnection) {
        self.connection = connection
    }

    /// `S1: 8, S2: 8, S3: 8 (disconnected)`: each replica's own, possibly stale, value of `account`.
    public func balanceLine(of account: AccountID) async -> String {
        guard let owner = connection.catalog.cluster(of: account), let cluster = connection.cluster(owner) else {
            return "account \(account) belongs to no cluster of the catalog"
        }
        var parts: [String] = []
        for replica in cluster.replicas {
            do {
                let local = try await cluster.localBalance(of: account, at: replica)
                let value = local.balance.map(String.init) ?? "no such account"
                parts.append("\(replica): \(value)" + (local.isDisconnected ? " (disconnected)" : ""))
            } catch {
                parts.append("\(replica): unreachable")
            }
        }
        return parts.joined(separator: ", ")
    }

    /// The WAL records of `replica`, one per line.
    public func logLines(of replica: String) async -> [String] {
        guard let (cluster, id) = locate(replica) else { return ["\(replica) is not a server of the deployment"] }
        do {
            let records = try await cluster.logs(of: id)
            return records.isEmpty ? ["\(replica): no WAL records"] : records.map(\.description)
        } catch {
            return ["\(replica): unreachable (\(error))"]
        }
    }

    /// The committed transactions of `replica` (every replica when nil), in commit order, with slot and ballot.
    public func datastoreLines(of replica: String?) async -> [String] {
        let names =
            replica.map { [$0] }
            ?? connection.deployment.hosts.clusters.flatMap(\.reachable)
        var lines: [String] = []
        for name in names {
            guard let (cluster, id) = locate(name) else {
                lines.append("\(name) is not a server of the deployment")
                continue
            }
            do {
                let records = try await cluster.datastore(of: id)
                lines.append("\(name): \(records.count) committed")
                lines += records.map { "  \($0)" }
            } catch {
                lines.append("\(name): unreachable (\(error))")
            }
        }
        return lines
    }

    private func locate(_ replica: String) -> (ClusterClient, ReplicaID)? {
        guard let entry = connection.deployment.hosts.replica(named: replica),
            let owner = connection.deployment.hosts.cluster(of: replica),
            let cluster = connection.cluster(owner.name)
        else { return nil }
        return (cluster, ReplicaID(entry.index))
    }
}
