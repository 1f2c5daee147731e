import Foundation
import LedgerCore
import LedgerRPC
import Paxos
import Synchronization
import Testing

@testable import LedgerClient

/// The bank workload against real replica processes while a nemesis injects faults on a seeded schedule, then a
/// check of the whole history and the final state (Jepsen's bank test, on this ledger).
///
/// `NEMESIS_SEED` (default 1) picks the schedule and the workload; `NEMESIS_DURATION` (seconds of faults, default
/// 30 here) scales the run; `scripts/nemesis.sh` runs it longer and with several seeds. Every run prints its seed,
/// the faults it injected and its figures; a failing run prints how to replay it.
@Suite("Nemesis", .serialized, .sharesMachine)
struct NemesisTests {
    static let environment = ProcessInfo.processInfo.environment
    static let seed = UInt64(environment["NEMESIS_SEED"] ?? "") ?? 1
    static let duration = Duration.seconds(Int(environment["NEMESIS_DURATION"] ?? "") ?? 30)

    /// On one process per replica, and on three nodes each hosting one replica of both clusters (where a kill or a
    /// pause takes a replica of every cluster at once, and a disconnection or a link fault one replica only).
    @Test(.timeLimit(.minutes(30)), arguments: [false, true])
    func bankWorkloadSurvivesTheNemesis(onNodes nodes: Bool) async throws {
        // Two spare replicas a cluster for the membership fault (one process per replica only: a running node takes
        // no new replica).
        let deployment = try TestDeployment(
            clusters: 2, accountsPerCluster: 20, consensusTimeout: "1500ms", nodes: nodes,
            spareReplicas: nodes ? 0 : 2)
        defer { deployment.stopAll() }
        try deployment.startAll()
        let report = try await NemesisRun(deployment: deployment, seed: Self.seed, duration: Self.duration).run()
        for fault in report.faults { print("nemesis fault: \(fault)") }
        print("nemesis\(nodes ? " on nodes" : ""): \(report.summary)")
        for violation in report.violations.prefix(20) { print("nemesis violation: \(violation)") }
        let replay =
            "replay with NEMESIS_SEED=\(Self.seed) NEMESIS_DURATION=\(Self.duration.components.seconds); "
            + "logs in \(deployment.directory.path)"
        #expect(report.violations.isEmpty, "\(report.violations.count) violations; \(replay)")
        #expect(report.committed > 0, "no transfer committed: the workload did not run")
        #expect(report.faults.count >= RunEnd.faultsMin, "the nemesis injected \(report.faults.count) faults")
        #expect(report.coordinatorDeaths >= RunEnd.deathsMin, "no coordinator died mid-transaction")
    }
}

/// The nemesis on hosts made of network namespaces, alone on the machine: its three nodes, workload and checker run in
/// a second test process, whose load would starve the other suites' time-bound checks.
@Suite("Nemesis on hosts", .serialized)
struct KernelPartitionTests {
    /// On three hosts made of network namespaces (`scripts/hosts.sh`), with the kernel's faults: a host's packets all
    /// dropped, the leader's host cut off from the other servers but not from the client, one direction between two
    /// hosts dropped, SYNs to a host dropped while another host's node restarts, a host's link down. After each heal
    /// the workload's own channels and the peers must come back by themselves within a bound. The test makes the hosts,
    /// then runs itself again inside the client host (`NEMESIS_HOSTS` names them), where the workload and the checker
    /// run: the only way onto the hosts' subnet.
    @Test(.timeLimit(.minutes(30)), .needsMachineAlone) func bankWorkloadSurvivesKernelPartitions() async throws {
        if let prefix = NemesisTests.environment["NEMESIS_HOSTS"] {
            let deployment = try TestDeployment(
                clusters: 2, accountsPerCluster: 20, consensusTimeout: "1500ms", nodes: true,
                hosts: HostNetwork.servers(prefix: prefix, count: 3))
            defer { deployment.stopAll() }
            try deployment.startAll()
            let report = try await NemesisRun(
                deployment: deployment, seed: NemesisTests.seed, duration: NemesisTests.duration
            ).run()
            for fault in report.faults { print("nemesis fault: \(fault)") }
            print("nemesis on hosts: \(report.summary)")
            for violation in report.violations.prefix(20) { print("nemesis violation: \(violation)") }
            #expect(
                report.violations.isEmpty,
                "\(report.violations.count) violations; replay with NEMESIS_SEED=\(NemesisTests.seed)")
            #expect(report.committed > 0, "no transfer committed: the workload did not run")
            #expect(report.faults.count >= RunEnd.faultsMin, "the nemesis injected \(report.faults.count) faults")
            #expect(report.reconnections.count == report.faults.count, "a fault was not followed by a reconnection")
            return
        }
        try #require(getuid() == 0, "network namespaces need root; CI runs as root (.ci/run)")
        let hosts = try HostNetwork(count: 3)
        defer { hosts.remove() }
        let run = try runProcess(
            URL(fileURLWithPath: "/usr/bin/env"),
            [
                "NEMESIS_HOSTS=\(hosts.prefix)", "ip", "netns", "exec", hosts.client.namespace,
                CommandLine.arguments[0],
                "--testing-library", "swift-testing", "--filter", "bankWorkloadSurvivesKernelPartitions",
            ], in: hosts.directory, within: NemesisTests.duration * 4 + .seconds(600), mergeErrors: true)
        let lines = run.output.split(separator: "\n")
        for line in lines where line.hasPrefix("nemesis") { print(line) }
        #expect(run.status == 0, "the run inside the client host failed:\n\(lines.suffix(60).joined(separator: "\n"))")
        #expect(lines.contains { $0.hasPrefix("nemesis on hosts: ") }, "the run inside the client host did not report")
    }
}

/// One operation of the history: when it started and ended (as the client saw it) and what it got.
struct HistoryEntry: Sendable {
    enum Kind: Sendable {
        case transfer(Transfer, id: TransactionID?, outcome: TransferOutcome)
        /// A linearizable read; nil value when it failed.
        case read(AccountID, value: Int64?)
    }

    var start: ContinuousClock.Instant
    var end: ContinuousClock.Instant
    var kind: Kind
}

/// The history, appended to by every client of the run.
final class HistoryLog: Sendable {
    private let state = Mutex<[HistoryEntry]>([])

    func append(_ entry: HistoryEntry) { state.withLock { $0.append(entry) } }

    var entries: [HistoryEntry] { state.withLock { $0 } }
}

/// A fault the nemesis can inject, and how it heals.
enum Fault: String, CaseIterable, Sendable {
    case killFollower = "kill -9 a follower"
    case killLeader = "kill -9 the leader"
    case killMajority = "kill -9 a majority"
    case pauseLeader = "SIGSTOP the leader"
    /// Cut off from peers and clients (the test control's disconnect).
    case isolateReplica = "disconnect a replica"
    /// Cut off from its followers, still reached by clients: it must neither commit nor answer reads.
    case isolateLeader = "cut the leader off from its followers"
    case oneWayLoss = "drop one direction of a peer link"
    case flakyLinks = "lose, duplicate and delay peer messages"
    /// Jepsen's member nemesis, etcd's `MemberReplace`: a follower dies with its disk, and a new replica (a spare of
    /// the deployment) is added as a learner, caught up and swapped in by one change (`shardctl member`). The
    /// cluster shrinks to two live voters and grows back; the wiped replica never returns.
    case replaceWiped = "wipe a follower's disk and replace it"
    /// The kernel's faults, on hosts made of network namespaces (iptables and `ip link` inside a host): every packet
    /// in and out of a host dropped (connections stay open, half-dead, until the partition heals).
    case isolateHost = "drop every packet of a host"
    /// The leader's host drops what comes from or goes to the other servers' hosts; the client still reaches it.
    case cutLeaderHost = "cut the leader's host off from the other hosts"
    /// One host's packets to another are dropped, the other way they flow.
    case oneWayHosts = "drop one direction between two hosts"
    /// A host drops incoming SYNs: established connections live, new ones fail. Another host's node is killed and
    /// restarted meanwhile, so its connections to that host must be made anew.
    case dropSYNs = "drop SYNs to a host and restart another host's node"
    /// A host's interface goes down and up again.
    case linkDown = "take a host's link down"

    /// The faults of a deployment on one machine: processes, test controls and our transport's link faults.
    static let process: [Fault] = [
        .killFollower, .killLeader, .killMajority, .pauseLeader, .isolateReplica, .isolateLeader, .oneWayLoss,
        .flakyLinks, .replaceWiped,
    ]
    /// The faults of a deployment on hosts: the kernel drops the packets.
    static let kernel: [Fault] = [.isolateHost, .cutLeaderHost, .oneWayHosts, .dropSYNs, .linkDown]
}

/// Where a dying coordinator stops: after the votes, before any decision is sent; or after the home cluster chose
/// commit, before the other participants are told.
enum CoordinatorDeath: CaseIterable, Sendable {
    case afterVotes
    case afterHomeCommit
}

struct NemesisReport {
    var seed: UInt64
    var operations = 0
    var committed = 0
    var aborted = 0
    /// Aborts by reason, as `TransferAbort` describes it.
    var abortReasons: [String: Int] = [:]
    var unknown = 0
    var unknownCommitted = 0
    var reads = 0
    var readsChecked = 0
    var faults: [String] = []
    var coordinatorDeaths = 0
    var recovery = Duration.zero
    /// On hosts: after each healed fault, how long until every replica answered the workload's own channels, every
    /// cluster's replicas named one leader and its followers applied what it had chosen at the heal.
    var reconnections: [Duration] = []
    /// On hosts: after each healed fault, how long until every follower applied what its leader had chosen then.
    var catchUps: [Duration] = []
    var violations: [String] = []

    /// How many faults of each kind.
    var faultCounts: String {
        Fault.allCases.map { kind in (kind, faults.filter { $0.hasPrefix(kind.rawValue) }.count) }.filter { $0.1 > 0 }
            .map { "\($0.0.rawValue): \($0.1)" }.joined(separator: ", ")
    }

    /// `reconnected after healing in median 0.3s, max 1.2s; caught up in median 0.4s, max 2.5s (11 faults)`, on hosts.
    var reconnectionSummary: String {
        guard !reconnections.isEmpty else { return "" }
        func spread(_ values: [Duration]) -> String {
            let sorted = values.sorted()
            return "median \(sorted[sorted.count / 2]), max \(sorted.last!)"
        }
        return ", reconnected after healing in \(spread(reconnections)); caught up in \(spread(catchUps)) "
            + "(\(reconnections.count) faults)"
    }

    var summary: String {
        "seed \(seed): operations \(operations), committed \(committed), aborted \(aborted) "
            + "(\(abortReasons.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), "
            + "unknown \(unknown) "
            + "(resolved: \(unknownCommitted) committed, \(unknown - unknownCommitted) aborted), reads \(reads) "
            + "(checked \(readsChecked)), faults \(faults.count) (\(faultCounts)), "
            + "coordinator deaths \(coordinatorDeaths), recovered in \(recovery)\(reconnectionSummary), "
            + "violations \(violations.count)"
    }
}

/// When a nemesis run ends: once its duration passed and it did what the test checks it did (3 faults, a coordinator
/// death), and at 4 times its duration in any case. A slow machine gets a longer run, not a run that tested less.
final class RunEnd: Sendable {
    private let started = ContinuousClock.now
    private let duration: Duration
    private let done = Mutex((faults: 0, deaths: 0))

    static let faultsMin = 3
    static let deathsMin = 1

    init(duration: Duration) {
        self.duration = duration
    }

    var isOver: Bool {
        let elapsed = ContinuousClock.now - started
        let (faults, deaths) = done.withLock { ($0.faults, $0.deaths) }
        return elapsed >= duration * 4
            || (elapsed >= duration && faults >= Self.faultsMin && deaths >= Self.deathsMin)
    }

    func faultInjected() { done.withLock { $0.faults += 1 } }
    func coordinatorDied() { done.withLock { $0.deaths += 1 } }
}

/// One nemesis run over a started deployment.
struct NemesisRun {
    let deployment: TestDeployment
    let seed: UInt64
    let duration: Duration
    /// Transfer loops and read loops running at once.
    let transferClients = 4
    let readClients = 1
    /// Clients whose cross-shard transfers die mid-2PC (`CoordinatorDeath`), one at a time.
    let dyingCoordinators = 1

    func run() async throws -> NemesisReport {
        var report = NemesisReport(seed: seed)
        let history = HistoryLog()
        let accounts = deployment.accounts
        let initialTotal = Int64(accounts.count) * deployment.initialBalance
        let operatorSecurity = try deployment.security()
        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: try deployment.catalog()) {
            connection in
            try await deployment.waitUntilServing(connection)
            let end = RunEnd(duration: duration)
            // The workload and the nemesis run side by side until `end`.
            // Each task returns the faults it injected and the coordinators it let die.
            let nemesis = Nemesis(deployment: deployment, security: operatorSecurity, seed: seed, workload: connection)
            let (faults, deaths) = try await withThrowingTaskGroup(of: ([String], Int).self) { group in
                for client in 0..<transferClients {
                    group.addTask {
                        var random = SeededRandom(seed: seed &* 1_000 &+ UInt64(client))
                        while !end.isOver {
                            let from = accounts[Int(random.next() % UInt64(accounts.count))]
                            var to = accounts[Int(random.next() % UInt64(accounts.count))]
                            if to == from { to = accounts[(Int(to.value) % accounts.count)] }
                            let transfer = try Transfer(
                                from: from, to: to, amount: Amount(Int64(1 + random.next() % 3)))
                            let start = ContinuousClock.now
                            let (outcome, id) = await connection.tracedTransfer(transfer)
                            let entry = HistoryEntry(
                                start: start, end: .now, kind: .transfer(transfer, id: id, outcome: outcome))
                            history.append(entry)
                        }
                        return ([], 0)
                    }
                }
                for client in 0..<readClients {
                    group.addTask {
                        var random = SeededRandom(seed: seed &* 1_000 &+ 500 &+ UInt64(client))
                        while !end.isOver {
                            let account = accounts[Int(random.next() % UInt64(accounts.count))]
                            let start = ContinuousClock.now
                            let value = try? await connection.balance(of: account).get()
                            history.append(HistoryEntry(start: start, end: .now, kind: .read(account, value: value)))
                            try await Task.sleep(for: .milliseconds(20))
                        }
                        return ([], 0)
                    }
                }
                for client in 0..<dyingCoordinators {
                    group.addTask {
                        var random = SeededRandom(seed: seed &* 1_000 &+ 700 &+ UInt64(client))
                        var deaths = 0
                        while !end.isOver {
                            try await Task.sleep(for: .milliseconds(200 + Int64(random.next() % 500)))
                            let from = accounts[Int(random.next() % UInt64(accounts.count))]
                            let others = accounts.filter {
                                connection.catalog.cluster(of: $0) != connection.catalog.cluster(of: from)
                            }
                            guard let to = others.isEmpty ? nil : others[Int(random.next() % UInt64(others.count))]
                            else { continue }
                            let death = CoordinatorDeath.allCases[Int(random.next() % 2)]
                            let transfer = try Transfer(from: from, to: to, amount: Amount(1))
                            let start = ContinuousClock.now
                            let (outcome, id, died) = await Self.dyingTransfer(transfer, death, connection)
                            if died {
                                deaths += 1
                                end.coordinatorDied()
                            }
                            let entry = HistoryEntry(
                                start: start, end: .now, kind: .transfer(transfer, id: id, outcome: outcome))
                            history.append(entry)
                        }
                        return ([], deaths)
                    }
                }
                group.addTask { (try await nemesis.run(until: end), 0) }
                var faults: [String] = []
                var deaths = 0
                for try await (injected, died) in group {
                    faults += injected
                    deaths += died
                }
                return (faults, deaths)
            }
            report.faults = faults
            report.coordinatorDeaths = deaths
            report.reconnections = nemesis.reconnections.withLock { $0 }
            report.catchUps = nemesis.catchUps.withLock { $0 }
            report.violations += nemesis.stuck.withLock { $0 }

        }
        // Healed (the nemesis heals each fault before the next): wait until every cluster serves and every
        // transaction in doubt is settled, then check, on the members hosts.ini names now (a replaced replica is gone).
        try await LedgerConnection.with(
            deployment: try deployment.deployment(), catalog: try deployment.catalog(),
            as: LedgerConnection.operatorIdentity
        ) { connection in
            let healed = ContinuousClock.now
            try await deployment.waitUntilServing(connection)
            try await deployment.waitUntilNoLocks(connection, within: .seconds(120))
            report.recovery = ContinuousClock.now - healed
            try await HistoryChecker(
                connection: connection, deployment: deployment, history: history.entries,
                initialTotal: initialTotal
            ).check(into: &report)
        }
        return report
    }

    /// A cross-shard transfer whose coordinator dies at `death` (`drive` stops before the next action), unless a
    /// participant voted no first and it aborted. The outcome is what the client knew when it died: committed once
    /// the home cluster chose commit (a final decision the other participants must learn by recovery), unknown
    /// before.
    static func dyingTransfer(
        _ transfer: Transfer, _ death: CoordinatorDeath, _ connection: LedgerConnection
    ) async -> (outcome: TransferOutcome, id: TransactionID, died: Bool) {
        let catalog = connection.catalog
        let (home, target) = (catalog.cluster(of: transfer.from)!, catalog.cluster(of: transfer.to)!)
        let id = connection.nextTransaction()
        var coordinator = Coordinator(
            id: id,
            transfer: CrossShardTransfer(
                from: transfer.from, to: transfer.to, amount: transfer.amount, home: home, participants: [home, target])
        )
        let left = await drive(&coordinator, connection) { action in
            switch death {
            case .afterVotes: isCommit(action)
            case .afterHomeCommit: action == .submit(.commit(id), to: target)
            }
        }
        guard left.isEmpty else {
            return (coordinator.outcome == .committed ? .committed : .unknown("the coordinator died"), id, true)
        }
        return (coordinator.outcome ?? .unknown("the transaction ended without a decision"), id, false)
    }
}

/// Injects one fault at a time on a seeded schedule and heals it before the next. On hosts (`deployment.hosts`) the
/// faults are the kernel's (`Fault.kernel`), and after each one it measures how long the workload's own connections
/// and the peers take to come back (`reconnections`; not back within `reconnectionLimit`: `stuck`).
final class Nemesis: Sendable {
    let deployment: TestDeployment
    let security: ConnectionSecurity
    let seed: UInt64
    /// The workload's connection, whose channels must come back by themselves after a partition heals.
    let workload: LedgerConnection
    let reconnections = Mutex<[Duration]>([])
    let catchUps = Mutex<[Duration]>([])
    let stuck = Mutex<[String]>([])
    static let reconnectionLimit = Duration.seconds(90)

    init(deployment: TestDeployment, security: ConnectionSecurity, seed: UInt64, workload: LedgerConnection) {
        self.deployment = deployment
        self.security = security
        self.seed = seed
        self.workload = workload
    }

    func run(until end: RunEnd) async throws -> [String] {
        var random = SeededRandom(seed: seed)
        var injected: [String] = []
        var replaced = 0
        let kinds = deployment.hosts.isEmpty ? Fault.process : Fault.kernel
        while !end.isOver {
            try await Task.sleep(for: .milliseconds(300 + Int64(random.next() % 1_200)))
            guard !end.isOver else { break }
            let name = deployment.clusterNames[Int(random.next() % UInt64(deployment.clusterNames.count))]
            var fault = kinds[Int(random.next() % UInt64(kinds.count))]
            // Every run with spares replaces a replica at least once: the third fault is one if none came before.
            if !deployment.nodes, replaced == 0, injected.count == 2 { fault = .replaceWiped }
            // The members hosts.ini names now: a replaced replica is gone, its replacement in.
            try await ClusterClient.with(
                cluster: name, addresses: try deployment.reachableAddresses(of: name), security: security
            ) { cluster in
                // On hosts, partitions long enough for TCP's retransmissions to back off (seconds apart) on the
                // connections they leave open.
                let hold =
                    deployment.hosts.isEmpty
                    ? Duration.milliseconds(800 + Int64(random.next() % 2_200))
                    : Duration.milliseconds(1_000 + Int64(random.next() % 14_000))
                let leader = await Self.leader(of: cluster)
                let members = cluster.replicas
                if !deployment.hosts.isEmpty {
                    let leading = leader ?? members[Int(random.next() % UInt64(members.count))]
                    let detail = try await partition(fault, leader: leading, of: name, for: hold, random: &random)
                    let back = await waitUntilReconnected(after: "\(fault.rawValue): \(detail)")
                    injected.append("\(fault.rawValue): \(detail) for \(hold), \(back)")
                    end.faultInjected()
                    return
                }
                let victim: ReplicaID
                switch fault {
                case .killLeader, .pauseLeader, .isolateLeader:
                    victim = leader ?? members[Int(random.next() % UInt64(members.count))]
                default:
                    let others = members.filter { $0 != leader }
                    victim = others[Int(random.next() % UInt64(others.count))]
                }
                var detail = ""
                switch fault {
                case .killFollower, .killLeader:
                    deployment.kill(victim)
                    try await Task.sleep(for: hold)
                    try deployment.start([victim.description])
                case .killMajority:
                    let majority = Array(([victim] + members.filter { $0 != victim }).prefix(members.count / 2 + 1))
                    for replica in majority { deployment.kill(replica) }
                    try await Task.sleep(for: hold)
                    try deployment.start(majority.map(\.description))
                case .replaceWiped:
                    guard let spare = deployment.takeSpare(of: name) else { return }
                    deployment.kill(victim)
                    try deployment.wipe(victim, of: name)
                    try Self.shardctl(
                        [
                            "member", "add", spare, "--cluster", name, "--address",
                            "127.0.0.1:\(deployment.ports[spare]!)",
                        ],
                        deployment)
                    try deployment.start([spare])
                    try Self.shardctl(["member", "replace", victim.description, "--with", spare], deployment)
                    replaced += 1
                    detail = " by \(spare)"
                case .pauseLeader:
                    deployment.signal(victim, SIGSTOP)
                    try await Task.sleep(for: hold)
                    deployment.signal(victim, SIGCONT)
                case .isolateReplica:
                    // A replica restarted by the last fault may not listen yet: then there is nothing to disconnect.
                    guard (try? await cluster.setConnected(false, replica: victim)) != nil else { return }
                    try await Task.sleep(for: hold)
                    try await Self.retrying { try await cluster.setConnected(true, replica: victim) }
                case .isolateHost, .cutLeaderHost, .oneWayHosts, .dropSYNs, .linkDown:
                    preconditionFailure("\(fault.rawValue) needs hosts")
                case .isolateLeader, .oneWayLoss, .flakyLinks:
                    let faulty: [ReplicaID: [LinkFault]]
                    switch fault {
                    case .isolateLeader:
                        faulty = [victim: [.cut()]]
                        detail = " (\(victim): \(LinkFault.cut()))"
                    case .oneWayLoss:
                        let peers = members.filter { $0 != victim }
                        let peer = peers[Int(random.next() % UInt64(peers.count))]
                        let cut = LinkFault.cut(peer, random.next() % 2 == 0 ? .outbound : .inbound)
                        faulty = [victim: [cut]]
                        detail = " (\(victim): \(cut))"
                    default:
                        let flaky = LinkFault(
                            loss: Double(random.next() % 30) / 100, duplicate: Double(random.next() % 30) / 100,
                            delay: .milliseconds(random.next() % 20), jitter: .milliseconds(random.next() % 60))
                        faulty = Dictionary(uniqueKeysWithValues: members.map { ($0, [flaky]) })
                        detail = " (every replica: \(flaky))"
                    }
                    var set: [ReplicaID] = []
                    for (replica, faults) in faulty
                    where (try? await cluster.setLinkFaults(faults, replica: replica)) != nil {
                        set.append(replica)
                    }
                    guard !set.isEmpty else { return }
                    try await Task.sleep(for: hold)
                    for replica in set {
                        try await Self.retrying { try await cluster.setLinkFaults([], replica: replica) }
                    }
                }
                let target = fault == .flakyLinks ? name : "\(victim) of \(name)"
                injected.append("\(fault.rawValue): \(target)\(fault == .replaceWiped ? "" : " for \(hold)")\(detail)")
                end.faultInjected()
            }
        }
        return injected
    }

    /// Injects a kernel fault on the hosts for `hold` (the cluster `name`'s leader decides which host where it matters),
    /// then heals every host: filters flushed, links up. Returns what it did.
    func partition(
        _ fault: Fault, leader: ReplicaID, of name: String, for hold: Duration, random: inout SeededRandom
    ) async throws -> String {
        let hosts = deployment.hosts
        let leaderHost = deployment.host(of: leader)!
        let others = hosts.filter { $0 != leaderHost }
        let any = hosts[Int(random.next() % UInt64(hosts.count))]
        let description: String
        switch fault {
        case .isolateHost:
            try Self.ip(any, ["iptables", "-w", "-A", "INPUT", "-i", "eth0", "-j", "DROP"])
            try Self.ip(any, ["iptables", "-w", "-A", "OUTPUT", "-o", "eth0", "-j", "DROP"])
            description = any.namespace
        case .cutLeaderHost:
            for other in others {
                try Self.ip(leaderHost, ["iptables", "-w", "-A", "INPUT", "-s", other.address, "-j", "DROP"])
                try Self.ip(leaderHost, ["iptables", "-w", "-A", "OUTPUT", "-d", other.address, "-j", "DROP"])
            }
            description = "\(leaderHost.namespace), leader \(leader) of \(name)'s host"
        case .oneWayHosts:
            let other = others[Int(random.next() % UInt64(others.count))]
            let (from, to) = random.next() % 2 == 0 ? (leaderHost, other) : (other, leaderHost)
            try Self.ip(from, ["iptables", "-w", "-A", "OUTPUT", "-d", to.address, "-j", "DROP"])
            description =
                "\(from.namespace) to \(to.namespace) (leader \(leader) of \(name) on \(leaderHost.namespace))"
        case .dropSYNs:
            try Self.ip(any, ["iptables", "-w", "-A", "INPUT", "-p", "tcp", "--syn", "-j", "DROP"])
            let restarted = hosts.firstIndex(of: hosts.filter { $0 != any }[Int(random.next() % 2)])! + 1
            // Node N<k> hosts replica S<k> (of C1), so killing and starting S<k> restarts the node.
            deployment.kill(ReplicaID(restarted))
            try deployment.start(["S\(restarted)"])
            description = "\(any.namespace), N\(restarted) restarted"
        case .linkDown:
            try Self.ip(any, ["ip", "link", "set", "eth0", "down"])
            description = any.namespace
        default:
            preconditionFailure("\(fault.rawValue) is not a kernel fault")
        }
        try await Task.sleep(for: hold)
        for host in hosts {
            try Self.ip(host, ["iptables", "-w", "-F"])
            try Self.ip(host, ["ip", "link", "set", "eth0", "up"])
        }
        return description
    }

    /// Runs a command inside a host's namespace; a failure ends the run.
    static func ip(_ host: NetworkHost, _ command: [String]) throws {
        let run = try runProcess(
            URL(fileURLWithPath: "/usr/bin/env"), ["ip", "netns", "exec", host.namespace] + command,
            in: FileManager.default.temporaryDirectory, within: .seconds(10), mergeErrors: true)
        guard run.status == 0 else {
            throw ClusterTimeout(
                "\(command.joined(separator: " ")) in \(host.namespace) exited \(run.status): \(run.output)")
        }
    }

    /// Waits until, through the workload's own channels, every replica answers and every cluster's replicas name one
    /// leader (reconnected: the client's channels and the peer links carry messages again), then until every follower
    /// applied what its leader had chosen when first seen (caught up). Records both times, or that it did not happen
    /// within `reconnectionLimit`; says which.
    func waitUntilReconnected(after fault: String) async -> String {
        let healed = ContinuousClock.now
        var targets: [String: Slot] = [:]
        var connected: Duration?
        var last = ""
        while ContinuousClock.now - healed < Self.reconnectionLimit {
            var agreed = true
            var caughtUp = true
            for cluster in workload.clusters {
                var statuses: [ReplicaStatus] = []
                var silent: [String] = []
                for replica in cluster.replicas {
                    do {
                        statuses.append(try await cluster.status(of: replica))
                    } catch {
                        silent.append("\(replica): \(error)")
                    }
                }
                let leaders = Set(statuses.compactMap(\.leader))
                guard statuses.count == cluster.replicas.count, leaders.count == 1,
                    statuses.allSatisfy({ $0.leader != nil }),
                    let leading = statuses.first(where: { $0.role == .leader })
                else {
                    (agreed, caughtUp) = (false, false)
                    last =
                        "\(cluster.cluster): \(statuses.count) of \(cluster.replicas.count) answered, "
                        + "roles \(statuses.map { "\($0.replica) \($0.role) \($0.ballot)" })"
                        + (silent.isEmpty ? "" : ", silent \(silent)")
                    continue
                }
                let target = targets[cluster.cluster] ?? leading.chosenThrough
                targets[cluster.cluster] = target
                if !statuses.allSatisfy({ $0.appliedThrough >= target }) {
                    caughtUp = false
                    last = "\(cluster.cluster): applied \(statuses.map(\.appliedThrough)), target \(target)"
                }
            }
            if agreed, connected == nil { connected = ContinuousClock.now - healed }
            if caughtUp, let connected {
                let took = ContinuousClock.now - healed
                reconnections.withLock { $0.append(connected) }
                catchUps.withLock { $0.append(took) }
                return "reconnected in \(connected), caught up in \(took)"
                    + (last.isEmpty ? "" : " (the last wait: \(last))")
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let failure = "not \(connected == nil ? "reconnected" : "caught up") within \(Self.reconnectionLimit) (\(last))"
        stuck.withLock { $0.append("after healing \(fault): \(failure)") }
        return failure
    }

    /// Heals a fault, asking again for up to 30 s: a replica left disconnected or with faulty links would fail the
    /// checks.
    static func retrying(_ heal: () async throws -> Void) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            do {
                return try await heal()
            } catch  where ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Runs `shardctl` on the deployment (a membership change: it asks again while the cluster refuses for now, 60 s
    /// at most); a failure ends the run.
    static func shardctl(_ arguments: [String], _ deployment: TestDeployment) throws {
        let run = try deployment.tool("shardctl", arguments + ["--timeout", "60"])
        guard run.status == 0 else {
            throw ClusterTimeout("shardctl \(arguments.joined(separator: " ")) exited \(run.status): \(run.output)")
        }
    }

    /// The replica that believes it leads, if one answers in time.
    static func leader(of cluster: ClusterClient) async -> ReplicaID? {
        for replica in cluster.replicas {
            if let status = try? await cluster.status(of: replica), status.role == .leader { return replica }
        }
        return nil
    }
}

/// Checks a history against the final state of every replica.
struct HistoryChecker {
    let connection: LedgerConnection
    let deployment: TestDeployment
    let history: [HistoryEntry]
    let initialTotal: Int64
    /// Reads whose window holds more concurrent transfers of their account than this are not checked (the check
    /// enumerates subsets).
    static let concurrentTransfersMax = 14

    func check(into report: inout NemesisReport) async throws {
        // How many times each transaction is in each replica's datastore, and every replica's balances.
        var counts: [String: [ReplicaID: [TransactionID: Int]]] = [:]
        var balances: [AccountID: Int64] = [:]
        for cluster in connection.clusters {
            let owned = deployment.accounts.filter { connection.catalog.cluster(of: $0) == cluster.cluster }
            var reference: [AccountID: Int64]?
            var referenceRecords: [DatastoreRecord]?
            for replica in cluster.replicas {
                var seen: [TransactionID: Int] = [:]
                let records = try await patiently { try await cluster.datastore(of: replica) }
                for record in records { seen[record.transaction, default: 0] += 1 }
                counts[cluster.cluster, default: [:]][replica] = seen
                // Every replica applies the same log: the same commits in the same order.
                if let referenceRecords, referenceRecords != records {
                    let first =
                        zip(referenceRecords, records).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                        ?? min(records.count, referenceRecords.count)
                    report.violations.append(
                        "\(replica) of \(cluster.cluster) has another datastore than its peers (\(records.count) records, "
                            + "\(referenceRecords.count) at the first replica; they differ from record \(first))")
                }
                referenceRecords = referenceRecords ?? records
                var values: [AccountID: Int64] = [:]
                for account in owned {
                    values[account] = try await patiently { try await cluster.localBalance(of: account, at: replica) }
                        .balance
                }
                if let reference, reference != values {
                    report.violations.append("\(replica) of \(cluster.cluster) holds other balances than its peers")
                }
                reference = reference ?? values
            }
            balances.merge(reference ?? [:]) { first, _ in first }
        }
        for (cluster, replicas) in counts {
            for (replica, seen) in replicas {
                for (id, count) in seen where count > 1 {
                    report.violations.append("\(id) is \(count) times in the datastore of \(replica) of \(cluster)")
                }
            }
        }

        // Every transfer: acknowledged commits applied once everywhere, aborts nowhere, unknowns one way.
        var applied: [(transfer: Transfer, entry: HistoryEntry)] = []
        for entry in history {
            report.operations += 1
            guard case .transfer(let transfer, let id, let outcome) = entry.kind else {
                report.reads += 1
                continue
            }
            let participants = Set([transfer.from, transfer.to].compactMap { connection.catalog.cluster(of: $0) })
            var presence: [Int] = []
            for cluster in participants.sorted() {
                for seen in (counts[cluster] ?? [:]).values { presence.append(id.map { seen[$0] ?? 0 } ?? 0) }
            }
            let everywhere = !presence.isEmpty && presence.allSatisfy { $0 == 1 }
            let nowhere = presence.allSatisfy { $0 == 0 }
            switch outcome {
            case .committed:
                report.committed += 1
                if !everywhere {
                    report.violations.append("\(transfer) (\(idText(id))) acknowledged committed, applied \(presence)")
                }
            case .aborted(let reason):
                report.aborted += 1
                report.abortReasons["\(reason)".split(separator: " (").first.map(String.init) ?? "", default: 0] += 1
                if !nowhere {
                    report.violations.append(
                        "\(transfer) (\(idText(id))) acknowledged aborted (\(reason)), applied \(presence)")
                }
            case .unknown:
                report.unknown += 1
                if everywhere {
                    report.unknownCommitted += 1
                } else if !nowhere {
                    report.violations.append("\(transfer) (\(idText(id))) unknown, applied only in part: \(presence)")
                }
            }
            if everywhere { applied.append((transfer, entry)) }
        }

        // The final balances are what the applied transfers make of the initial ones, and the money is all there.
        var expected = Dictionary(uniqueKeysWithValues: deployment.accounts.map { ($0, deployment.initialBalance) })
        for (transfer, _) in applied {
            expected[transfer.from, default: 0] -= transfer.amount.value
            expected[transfer.to, default: 0] += transfer.amount.value
        }
        for account in deployment.accounts where balances[account] != expected[account] {
            report.violations.append(
                "account \(account) holds \(balances[account].map(String.init) ?? "nothing"), the applied transfers "
                    + "make it \(expected[account]!)")
        }
        let total = balances.values.reduce(0, +)
        if total != initialTotal { report.violations.append("total money \(total), expected \(initialTotal)") }
        if let negative = balances.first(where: { $0.value < 0 }) {
            report.violations.append("account \(negative.key) is below the minimum balance: \(negative.value)")
        }

        // Reads: each value is what some serial order of the transfers it could have seen gives: every applied
        // transfer of its account that ended before the read began, none that began after it ended, any subset of
        // the ones in between.
        for entry in history {
            guard case .read(let account, let value?) = entry.kind else { continue }
            var base = deployment.initialBalance
            var optional: [Int64] = []
            var recent: [String] = []
            for (transfer, other) in applied where transfer.from == account || transfer.to == account {
                let delta = transfer.from == account ? -transfer.amount.value : transfer.amount.value
                guard case .transfer(_, _, let outcome) = other.kind else { continue }
                // An acknowledged commit is seen by every read that begins after the acknowledgement. An unknown
                // outcome was acknowledged never: it may take effect at any time after it began (a proposal chosen
                // late, a transaction in doubt committed by recovery).
                let acknowledged = outcome == .committed
                if acknowledged && other.end < entry.start {
                    base += delta
                    if entry.start - other.end < .seconds(10) {
                        let cross =
                            connection.catalog.cluster(of: transfer.from)
                            != connection.catalog.cluster(of: transfer.to)
                        recent.append(
                            "\(transfer) \(cross ? "cross" : "intra") acknowledged \(entry.start - other.end) before")
                    }
                } else if other.start <= entry.end {
                    optional.append(delta)
                }
            }
            guard optional.count <= Self.concurrentTransfersMax else { continue }
            report.readsChecked += 1
            if !Self.subsetSums(optional).contains(value - base) {
                report.violations.append(
                    "read of \(account) returned \(value); a serial order gives \(base) plus a subset of \(optional) "
                        + "(recent: \(recent.joined(separator: "; ")))")
            }
        }
    }

    private func idText(_ id: TransactionID?) -> String { id.map { "\($0)" } ?? "never sent" }

    static func subsetSums(_ values: [Int64]) -> Set<Int64> {
        var sums: Set<Int64> = [0]
        for value in values { sums.formUnion(sums.map { $0 + value }) }
        return sums
    }
}
