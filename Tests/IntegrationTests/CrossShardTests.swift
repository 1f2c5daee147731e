import Foundation
import LedgerCore
import LedgerRPC
import LedgerStore
import Paxos
import Testing

@testable import LedgerClient

/// Cross-shard transfers and the test-set runner on real replica processes: the shipped test file against a
/// sequential reference model, the same file run concurrently, and a 2PC coordinator that dies or loses a
/// participant's leader half-way.
extension ClusterProcessTests {
    static let packageDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shippedTests = packageDirectory.appendingPathComponent("tests-data/tests.csv").path

    /// The demo path exactly as a user runs it (`client --local --batch --sequential`, catalog built from
    /// shards.csv), compared outcome by outcome with `ReferenceLedger`; then the replicas are started again from
    /// their files and every account the file names must hold the model's balance on every replica, with total money
    /// unchanged.
    @Test(.timeLimit(.minutes(6))) func shippedTestSetsMatchTheSequentialModel() async throws {
        let deployment = try TestDeployment(clusters: 3, accountsPerCluster: 1000)
        defer { deployment.stopAll() }
        try FileManager.default.removeItem(atPath: try deployment.deployment().catalogPath)
        let file = try ConfigFiles.loadTestSets(path: Self.shippedTests)

        let run = try runClient(
            [
                "run", Self.shippedTests, "--hosts", deployment.hostsPath, "--local", "--batch", "--sequential",
                "--shards", deployment.directory.appendingPathComponent("shards.csv").path,
            ],
            in: deployment.directory, within: .seconds(180))
        #expect(run.status == 0, "client exited \(run.status):\n\(run.output)")
        #expect(run.output.contains("built from"), "the catalog was not built:\n\(run.output)")
        let lines = run.output.split(separator: "\n").filter { $0.hasPrefix("(") }.map(String.init)

        var model = ReferenceLedger(deployment: deployment)
        var expected: [String] = []
        for set in file.sets {
            for item in set.transfers {
                expected.append("\(item.transfer) \(model.apply(item.transfer, live: Set(set.liveServers)))")
            }
        }
        #expect(lines == expected)
        #expect(run.output.contains("Performance: \(expected.count) transfers"))
        // The demo stopped every replica it started: nothing listens on their ports any more.
        for port in deployment.ports.values {
            #expect(!TestDeployment.isListening(port), "a replica still listens on \(port)")
        }

        try await deployment.expectRestartedToHold(model, file: file)
        print("integration: tests.csv sequential: \(expected.count) transfers matched the reference model")
    }

    /// The same file with each set's transfers issued at once: outcomes may differ from the sequential order
    /// (locks), but money is conserved, every replica of a cluster holds the same balances and no lock is left.
    @Test(.timeLimit(.minutes(6))) func concurrentTestSetsConserveMoney() async throws {
        try await TestDeployment.withRunning(clusters: 3, accountsPerCluster: 1000, consensusTimeout: "1500ms") {
            deployment, connection in
            let run = try runClient(
                ["run", Self.shippedTests, "--hosts", deployment.hostsPath, "--batch"], in: deployment.directory,
                within: .seconds(180))
            #expect(run.status == 0, "client exited \(run.status):\n\(run.output)")
            let lines = run.output.split(separator: "\n").filter { $0.hasPrefix("(") }
            #expect(lines.count == 23)
            #expect(lines.allSatisfy { $0.hasSuffix(" committed") || $0.contains(" aborted: ") }, "\(lines)")
            let total = Int64(deployment.accounts.count) * deployment.initialBalance
            try await deployment.expectConsistent(connection, total: total)
            print(
                "integration: tests.csv concurrent: \(lines.filter { $0.hasSuffix("committed") }.count) of 23 committed"
            )
        }
    }

    /// A coordinator that dies after collecting the votes leaves no lock once the in-doubt timeout passes: the
    /// transaction is aborted everywhere and a late commit is refused. One that dies after the home cluster chose
    /// commit still commits everywhere. The consensus timeout is 2 s so that the in-doubt recovery (five of them) does
    /// not release the locks before a starved machine has read them.
    @Test(.timeLimit(.minutes(5))) func deadCoordinatorsLeaveNoTransactionInDoubt() async throws {
        try await TestDeployment.withRunning(clusters: 2, accountsPerCluster: 20, consensusTimeout: "2000ms") {
            deployment, connection in

            // Dies with both votes in hand, before any decision.
            let undecided = connection.nextTransaction()
            var first = Coordinator(id: undecided, transfer: crossShard(1, 21, 3))
            let next = await drive(&first, connection, stopBefore: isCommit)
            #expect(next == [.submit(.commit(undecided), to: "C1")], "both voted yes; the commit was next")
            // Read at every replica that answers: on a starved machine one may not, in time.
            var held = 0
            for cluster in connection.clusters {
                for replica in cluster.replicas { held += (try? await cluster.status(of: replica).locksHeld) ?? 0 }
            }
            #expect(held > 0, "the prepares locked their accounts")
            let started = ContinuousClock.now
            try await deployment.waitUntilNoLocks(connection, within: .seconds(30))
            let recovery = ContinuousClock.now - started
            #expect(await connection.balance(of: AccountID(1)) == .success(10))
            #expect(await connection.balance(of: AccountID(21)) == .success(10))
            for cluster in ["C1", "C2"] {
                for replica in deployment.replicas(of: cluster) {
                    let wal = try await connection.cluster(cluster)!.logs(of: ReplicaID(Int(replica.dropFirst())!))
                    #expect(wal.contains(WALRecord(transaction: undecided, kind: .abort)), "\(replica) has no abort")
                }
            }
            let late = await connection.submit(.commit(undecided), to: "C1")
            guard case .applied(.refused) = late else {
                Issue.record("a late commit after the recovery abort was not refused: \(late)")
                return
            }

            // Dies right after the commit point: the home chose commit, C2 was never told.
            let decided = connection.nextTransaction()
            var second = Coordinator(id: decided, transfer: crossShard(2, 22, 3))
            _ = await drive(&second, connection, stopBefore: { $0 == .submit(.commit(decided), to: "C2") })
            #expect(second.outcome == .committed)
            try await deployment.waitUntilNoLocks(connection, within: .seconds(30))
            #expect(await connection.balance(of: AccountID(2)) == .success(7))
            #expect(await connection.balance(of: AccountID(22)) == .success(13))
            try await deployment.expectConsistent(connection, total: Int64(40) * deployment.initialBalance)
            print("integration: dead coordinator: in-doubt transaction aborted by recovery after \(recovery)")
        }
    }

    /// The leader of a participant cluster is killed between prepare and commit: the transaction still completes
    /// on every participant, and the killed replica, restarted, agrees.
    @Test(.timeLimit(.minutes(5))) func participantLeaderKilledBetweenPrepareAndCommit() async throws {
        try await TestDeployment.withRunning(clusters: 2, accountsPerCluster: 20, consensusTimeout: "1000ms") {
            deployment, connection in
            let id = connection.nextTransaction()
            var coordinator = Coordinator(id: id, transfer: crossShard(5, 25, 4))
            let pending = await drive(&coordinator, connection, stopBefore: isCommit)
            #expect(pending == [.submit(.commit(id), to: "C1")], "both voted yes; the commit was next")
            let c2 = connection.cluster("C2")!
            let leader = try await deployment.waitForLeader(c2, within: .seconds(10))
            deployment.kill(leader)
            let killedAt = ContinuousClock.now
            _ = await drive(&coordinator, connection, resuming: pending, stopBefore: { _ in false })
            let completion = ContinuousClock.now - killedAt
            #expect(coordinator.outcome == .committed)
            try await deployment.waitUntilNoLocks(connection, within: .seconds(30), skipping: [leader])
            #expect(await connection.balance(of: AccountID(5)) == .success(6))
            #expect(await connection.balance(of: AccountID(25)) == .success(14))
            try deployment.start([leader.description])
            try await deployment.expectConsistent(connection, total: Int64(40) * deployment.initialBalance)
            print("integration: participant leader \(leader) killed mid-2PC; committed \(completion) later")
        }
    }
}

/// A client that dies once it holds every vote: before it sends the first commit.
func isCommit(_ action: Coordinator.Action) -> Bool {
    if case .submit(.commit, _) = action { return true }
    return false
}

/// A transfer of `amount` from account `from` of C1 (the home) to account `to` of C2.
func crossShard(_ from: UInt64, _ to: UInt64, _ amount: Int64) -> CrossShardTransfer {
    CrossShardTransfer(
        from: AccountID(from), to: AccountID(to), amount: Amount(amount), home: "C1", participants: ["C1", "C2"])
}

/// Performs a coordinator's actions one at a time, as a client would, until `stopBefore` says the client dies
/// before an action; returns the actions not performed.
func drive(
    _ coordinator: inout Coordinator, _ connection: LedgerConnection, resuming: [Coordinator.Action]? = nil,
    stopBefore: (Coordinator.Action) -> Bool
) async -> [Coordinator.Action] {
    var queue = resuming ?? coordinator.start()
    while !queue.isEmpty {
        let action = queue.removeFirst()
        if stopBefore(action) { return [action] + queue }
        let answer: Coordinator.Answer
        switch action {
        case .submit(let command, let cluster): answer = await connection.submit(command, to: cluster)
        case .askStatus(let id, let cluster): answer = await connection.askStatus(id, of: cluster)
        }
        queue += coordinator.receive(answer, for: action)
    }
    return []
}

/// The expected outcome of each transfer of a test file run one at a time: a cluster without a live majority
/// answers no quorum, a debit below zero is refused, anything else commits.
struct ReferenceLedger {
    let clusters: Int
    let accountsPerCluster: Int
    let initialBalance: Int64
    private var balances: [AccountID: Int64] = [:]

    /// Clusters of 3 replicas named as `TestDeployment` names them, `C<n>` owning the n-th range of
    /// `accountsPerCluster` accounts.
    init(clusters: Int, accountsPerCluster: Int, initialBalance: Int64) {
        self.clusters = clusters
        self.accountsPerCluster = accountsPerCluster
        self.initialBalance = initialBalance
    }

    init(deployment: TestDeployment) {
        self.init(
            clusters: deployment.clusterNames.count, accountsPerCluster: deployment.accountsPerCluster,
            initialBalance: deployment.initialBalance)
    }

    var total: Int64 { Int64(clusters * accountsPerCluster) * initialBalance }

    func balance(of account: AccountID) -> Int64 { balances[account] ?? initialBalance }

    func cluster(of account: AccountID) -> String {
        "C\((Int(account.value) - 1) / accountsPerCluster + 1)"
    }

    mutating func apply(_ transfer: Transfer, live: Set<String>) -> String {
        let source = cluster(of: transfer.from)
        let target = cluster(of: transfer.to)
        func hasQuorum(_ cluster: String) -> Bool {
            let number = Int(cluster.dropFirst())!
            return (1...3).map { "S\(3 * (number - 1) + $0)" }.filter(live.contains).count >= 2
        }
        if !hasQuorum(source) { return "aborted: no quorum in \(source)" }
        if balance(of: transfer.from) - transfer.amount.value < 0 { return "aborted: insufficient funds" }
        if !hasQuorum(target) { return "aborted: no quorum in \(target)" }
        balances[transfer.from] = balance(of: transfer.from) - transfer.amount.value
        balances[transfer.to] = balance(of: transfer.to) + transfer.amount.value
        return "committed"
    }
}

/// Runs the built `client` executable; its output (stdout and stderr) and exit status.
func runClient(_ arguments: [String], in directory: URL, within limit: Duration) throws -> (
    status: Int32, output: String
) {
    try runTool("client", arguments, in: directory, within: limit)
}

/// Runs a built executable of this package (`client`, `shardctl`) to its end, or stops it after `limit`; returns its
/// exit status and its output (standard output and error together).
func runTool(_ name: String, _ arguments: [String], in directory: URL, within limit: Duration) throws -> (
    status: Int32, output: String
) {
    let run = try runProcess(
        TestDeployment.executable(name), arguments, in: directory, within: limit, mergeErrors: true)
    return (run.status, run.output)
}

/// Runs `executable` to its end, or stops it after `limit` (SIGTERM, then SIGKILL 5 s later); returns its exit status,
/// its standard output, and its standard error (with `mergeErrors`, empty: the errors are in the output). Output goes
/// to files in `directory`, so a chatty process never blocks on a full pipe.
func runProcess(
    _ executable: URL, _ arguments: [String], in directory: URL, within limit: Duration, mergeErrors: Bool = false
) throws -> (status: Int32, output: String, errors: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = directory
    let output = directory.appendingPathComponent("run-\(UUID().uuidString).out")
    let errors = directory.appendingPathComponent("run-\(UUID().uuidString).err")
    for file in [output, errors] { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
    let outputHandle = try FileHandle(forWritingTo: output)
    let errorHandle = try FileHandle(forWritingTo: errors)
    process.standardOutput = outputHandle
    process.standardError = mergeErrors ? outputHandle : errorHandle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = ContinuousClock.now + limit
    while process.isRunning && ContinuousClock.now < deadline { usleep(50_000) }
    let timedOut = process.isRunning
    if timedOut {
        process.terminate()
        let grace = ContinuousClock.now + .seconds(5)
        while process.isRunning && ContinuousClock.now < grace { usleep(50_000) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
    try outputHandle.close()
    try errorHandle.close()
    let stderr = try String(contentsOf: errors, encoding: .utf8)
    return (
        process.terminationStatus, try String(contentsOf: output, encoding: .utf8),
        timedOut ? stderr + "\n(stopped after \(limit))" : stderr
    )
}

extension TestDeployment {
    func catalog() throws -> Catalog { try CatalogFile.read(path: try deployment().catalogPath) }

    /// Starts `clusters` clusters of real replicas, runs `body` with a connection once every cluster serves, and
    /// stops every replica afterwards.
    static func withRunning(
        clusters: Int, accountsPerCluster: Int, consensusTimeout: String,
        _ body: (TestDeployment, LedgerConnection) async throws -> Void
    ) async throws {
        let deployment = try TestDeployment(
            clusters: clusters, accountsPerCluster: accountsPerCluster, consensusTimeout: consensusTimeout)
        defer { deployment.stopAll() }
        try deployment.startAll()
        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: try deployment.catalog()) {
            connection in
            try await deployment.waitUntilServing(connection)
            try await body(deployment, connection)
        }
    }

    /// After a test file's run stopped every replica: they start again from their files, and every account the file
    /// names (including those of transfers reported not done: none may have been applied after all) holds `model`'s
    /// balance, with the money all there and every replica of a cluster alike.
    func expectRestartedToHold(_ model: ReferenceLedger, file: TestSetFile) async throws {
        try startAll()
        try await LedgerConnection.with(deployment: try deployment(), catalog: try catalog()) { connection in
            try await waitUntilServing(connection)
            // A participant that voted yes while its home had no quorum stays prepared until it learns the home's
            // decision: its in-doubt recovery asks the home once the home serves again.
            try await waitUntilNoLocks(connection, within: .seconds(60))
            let named = Set(
                file.sets.flatMap { set in set.transfers.flatMap { [$0.transfer.from, $0.transfer.to] } + set.reads })
            for account in named.sorted() {
                #expect(
                    await connection.balance(of: account) == .success(model.balance(of: account)), "account \(account)")
            }
            try await expectConsistent(connection, total: model.total)
        }
    }

    func waitUntilServing(_ connection: LedgerConnection) async throws {
        do {
            try await connection.waitUntilServing(within: .seconds(60))
        } catch {
            throw ClusterTimeout("\(error); logs in \(directory.path)")
        }
    }

    func waitUntilNoLocks(
        _ connection: LedgerConnection, within limit: Duration, skipping: Set<ReplicaID> = []
    ) async throws {
        do {
            try await connection.waitUntilNoLocks(within: limit, skipping: skipping)
        } catch {
            throw ClusterTimeout("\(error); logs in \(directory.path)")
        }
    }

    /// Every replica of each cluster applies the same slots and holds the same balances, no lock is held, and the
    /// accounts of all clusters add up to `total`.
    func expectConsistent(_ connection: LedgerConnection, total: Int64) async throws {
        try await waitUntilNoLocks(connection, within: .seconds(60))
        var sum: Int64 = 0
        for cluster in connection.clusters {
            let leader = try await waitForLeader(cluster, within: .seconds(10))
            let target = try await patiently { try await cluster.status(of: leader) }.appliedThrough
            let accounts = accounts.filter { connection.catalog.cluster(of: $0) == cluster.cluster }
            for replica in cluster.replicas {
                try await waitUntilApplied(cluster, replica: replica, through: target, within: .seconds(30))
            }
            // Every replica's balances, read side by side.
            let values = try await withThrowingTaskGroup(of: (ReplicaID, [Int64?]).self) { group in
                for replica in cluster.replicas {
                    group.addTask {
                        var values: [Int64?] = []
                        for account in accounts {
                            values.append(
                                try await patiently { try await cluster.localBalance(of: account, at: replica) }.balance
                            )
                        }
                        return (replica, values)
                    }
                }
                var all: [ReplicaID: [Int64?]] = [:]
                for try await (replica, balances) in group { all[replica] = balances }
                return all
            }
            let reference = try #require(values[cluster.replicas[0]])
            #expect(reference.allSatisfy { $0 != nil && $0! >= 0 }, "missing or negative balances")
            for replica in cluster.replicas {
                #expect(
                    values[replica] == reference, "\(replica) differs from the other replicas of \(cluster.cluster)")
            }
            sum += reference.compactMap { $0 }.reduce(0, +)
        }
        #expect(sum == total, "total money \(sum), expected \(total)")
    }
}

extension ClusterProcessTests {
    /// A client whose catalog is stale is told the owner by `wrongShard`, routes there and completes the transfer;
    /// the script commands print what the README promises, with its exit codes.
    @Test(.timeLimit(.minutes(5))) func staleRoutingAndScriptCommands() async throws {
        let deployment = try TestDeployment(clusters: 2, accountsPerCluster: 20, consensusTimeout: "1000ms")
        defer { deployment.stopAll() }
        try deployment.startAll()
        var stale = try deployment.catalog()
        stale.move(AccountID(25), to: "C1")  // Wrong: 25 lives in C2.
        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: stale) { connection in
            try await deployment.waitUntilServing(connection)
            let transfer = try Transfer(from: AccountID(5), to: AccountID(25), amount: Amount(4))
            #expect(await connection.transfer(transfer) == .committed)
            #expect(connection.catalog.cluster(of: AccountID(25)) == "C2", "the client did not learn the owner")
            #expect(await connection.balance(of: AccountID(25)) == .success(14))

            // A command sent to a follower is forwarded once; its reply names the leader, where the next one goes.
            let c1 = try #require(connection.cluster("C1"))
            let leader = try await deployment.waitForLeader(c1, within: .seconds(10))
            let follower = try #require(c1.replicas.first { $0 != leader })
            try connection.setContact(follower.description)
            #expect(c1.knownLeader == nil, "setting a contact forgets the leader learned before")
            #expect(
                await connection.transfer(try Transfer(from: AccountID(11), to: AccountID(12), amount: Amount(1)))
                    == .committed)
            #expect(c1.knownLeader == leader, "the follower's reply did not name the leader \(leader)")
        }

        let hosts = ["--hosts", deployment.hostsPath]
        let committed = try runClient(
            ["transfer", "1", "2", "3"] + hosts, in: deployment.directory, within: .seconds(30))
        #expect(committed.status == 0)
        #expect(committed.output == "committed\n")
        let refused = try runClient(
            ["transfer", "1", "2", "100"] + hosts, in: deployment.directory, within: .seconds(30))
        #expect(refused.status == 1)
        #expect(refused.output == "aborted: insufficient funds\n")
        let cross = try runClient(["transfer", "2", "21", "1"] + hosts, in: deployment.directory, within: .seconds(30))
        #expect(cross.status == 0)
        #expect(cross.output == "committed\n")
        let balance = try runClient(["balance", "1"] + hosts, in: deployment.directory, within: .seconds(30))
        #expect(balance.status == 0)
        #expect(balance.output == "7\n")
        let local = try runClient(["print-balance", "2"] + hosts, in: deployment.directory, within: .seconds(30))
        #expect(local.output.hasPrefix("S1: ") && local.output.contains(": 12"), "\(local.output)")
        let bad = try runClient(["transfer", "1", "1", "5"] + hosts, in: deployment.directory, within: .seconds(30))
        #expect(bad.status != 0)
        #expect(bad.output.contains("itself"), "\(bad.output)")
        let logs = try runClient(["print-logs", "S4"] + hosts, in: deployment.directory, within: .seconds(30))
        #expect(logs.output.contains("Update, 21, 11>"), "\(logs.output)")
    }
}

extension ClusterProcessTests {
    /// A cross-shard commit is reported once the home chose it; the commit to the other participant goes on after. The
    /// client's next transfer on the credited account waits for that commit instead of finding the account locked, a
    /// read of it sees the credit, and `settle` returns once every participant applied every commit reported.
    @Test(.timeLimit(.minutes(5))) func aReportedCommitReachesItsParticipantBeforeTheClientsNextTransfer() async throws
    {
        let deployment = try TestDeployment(clusters: 2, accountsPerCluster: 20, consensusTimeout: "1000ms")
        defer { deployment.stopAll() }
        try deployment.startAll()
        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: try deployment.catalog()) {
            connection in
            try await deployment.waitUntilServing(connection)
            for round in 0..<10 {
                let credited = AccountID(UInt64(21 + round))
                let into = try Transfer(from: AccountID(UInt64(1 + round)), to: credited, amount: Amount(3))
                #expect(await connection.transfer(into) == .committed, "\(into)")
                let onward = try Transfer(from: credited, to: AccountID(40), amount: Amount(13))
                #expect(await connection.transfer(onward) == .committed, "\(onward) right after \(into)")
            }
            // A read right after the commit is reported sees the credit: the account is locked until it is applied,
            // and a read of a locked account is asked again.
            let last = try Transfer(from: AccountID(11), to: AccountID(31), amount: Amount(3))
            #expect(await connection.transfer(last) == .committed)
            #expect(await connection.balance(of: AccountID(31)) == .success(13), "a read missed the credit of \(last)")
            await connection.settle()
            // The participant's leader applied every commit reported (its followers learn them with its next message).
            let c2 = try #require(connection.cluster("C2"))
            let leader = try await deployment.waitForLeader(c2, within: .seconds(10))
            #expect(try await c2.status(of: leader).locksHeld == 0)
            #expect(try await c2.localBalance(of: AccountID(40), at: leader).balance == 10 + 10 * 13)
            try await deployment.expectConsistent(connection, total: 40 * deployment.initialBalance)
        }
    }
}

extension ClusterProcessTests {
    /// A short `client bench` run: it commits transfers of both kinds, reports latencies, and its audit finds the
    /// total unchanged. (Figures are not judged here: benchmarks are not timed tests.)
    @Test(.timeLimit(.minutes(6))) func benchSmokeRun() async throws {
        let deployment = try TestDeployment(clusters: 2, accountsPerCluster: 50, consensusTimeout: "1000ms")
        defer { deployment.stopAll() }
        try deployment.startAll()
        let json = deployment.directory.appendingPathComponent("bench.json")
        let run = try runClient(
            [
                "bench", "--hosts", deployment.hostsPath, "--duration", "2", "--warmup", "0", "--concurrency", "4",
                "--cross-shard", "0.5", "--json", json.path,
            ], in: deployment.directory, within: .seconds(90))
        #expect(run.status == 0, "\(run.output)")
        let last = try #require(run.output.split(separator: "\n").last.map(String.init))
        #expect(last.hasSuffix("total_ok=true"), "\(last)")
        let result = try JSONDecoder().decode(BenchResult.self, from: Data(contentsOf: json))
        #expect(result.committed > 0)
        // Every commit of the two measured seconds is in one of them; the line reports the smaller.
        #expect(result.committedEachSecond.count == 2)
        let counted = result.committedEachSecond.reduce(0, +)
        #expect(counted > 0 && counted <= result.committed)
        #expect(last.contains(" slowest_second=\(result.committedEachSecond.min()!) "), "\(last)")
        #expect(result.intraShard.count > 0 && result.crossShard.count > 0)
        #expect(result.totalBefore == Int64(100) * deployment.initialBalance)
        #expect(result.totalAfter == result.totalBefore)
        #expect(result.crossShard.p50 > 0 && result.crossShard.p50 <= result.crossShard.p99)
        print("integration: bench smoke: \(last)")
    }
}

/// The bench's workload is what it claims: workers draw different transfers, spread over the accounts.
@Suite(.sharesMachine) struct BenchWorkloadTests {
    @Test func workersDrawIndependentUniformTransfers() throws {
        let map = try ShardMap.parse("D1, C1, 1-1000\nD2, C2, 1001-2000\n", source: "shards.csv")
        let options = BenchOptions(
            duration: .seconds(1), warmup: .zero, concurrency: 64, crossShard: 0.5, accounts: nil, amount: 1, skew: 0,
            seed: 1)
        let workload = Workload(catalog: Catalog(version: 1, shards: map), options: options)
        var debits: [AccountID: Int] = [:]
        var firstDraws: Set<Transfer> = []
        var crossShard = 0
        for seed in Bench.workerSeeds(options.seed, count: options.concurrency) {
            var random = SeededRandom(seed: seed)
            for draw in 0..<500 {
                let (transfer, isCross) = workload.next(using: &random)
                if draw == 0 { firstDraws.insert(transfer) }
                debits[transfer.from, default: 0] += 1
                if isCross { crossShard += 1 }
            }
        }
        #expect(firstDraws.count == 64, "workers start with the same transfers")
        // 32,000 debits over 2,000 accounts: 16 each on average; a uniform draw keeps the busiest account far from
        // the hundreds a shifted-stream bug produces.
        #expect(debits.count > 1_990)
        #expect(try #require(debits.values.max()) < 40)
        #expect((14_000...18_000).contains(crossShard))
    }
}
