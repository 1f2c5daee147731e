import ArgumentParser
import Foundation
import LedgerClient
import LedgerCore
import LedgerNode
import LedgerRPC
import LedgerStore
import Paxos

#if canImport(Glibc)
    // `stdout` is a C global, which Swift 6 refuses to read from concurrent code unless its module is imported so.
    @preconcurrency import SwiftGlibc
#endif

/// `client`: runs test-set files against the ledger, single transfers and reads for scripts, and the inspection
/// commands of the prompt. Argument parsing and wiring only.
@main
struct Client: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run test sets, transfers and inspections against the ledger.",
        subcommands: [
            Run.self, Transfer.self, Balance.self, PrintBalance.self, PrintLogs.self, PrintDatastore.self,
            Status.self, BenchCommand.self, RebalanceCommand.self, LocalReplica.self, LocalNode.self,
        ],
        defaultSubcommand: Run.self
    )

    /// Line-buffers standard output before anything is printed: redirected to a file or a pipe, it would otherwise
    /// be block-buffered, and a script or test reading the client's answers would see them only at exit.
    static func main() async {
        setvbuf(stdout, nil, _IOLBF, 0)
        await main(nil)
    }
}

/// The files every client command reads.
struct Deploy: ParsableArguments {
    @Option(
        name: .customLong("hosts"),
        help: """
            The address book; the cluster configs <cluster>.yaml sit beside it (default: configs/hosts.ini; with \
            --local, configs/nodes/hosts.ini: three nodes, each hosting one replica of every cluster).
            """)
    var hostsOption: String?

    /// The address book this command reads: the one given, else the replica layout's, or with `local` the node
    /// layout's; for a test file in the Fall 2025 format, the layout of that course (`configs/fall2025/`).
    func hosts(local: Bool = false, format: TestSetFile.Format = .original) -> String {
        hostsOption
            ?? (format == .fall2025 ? Self.fall2025Hosts : local ? "configs/nodes/hosts.ini" : "configs/hosts.ini")
    }

    /// The Fall 2025 course's layout: replicas n1..n9 (`S1`..`S9`), one process each, accounts 1..9000.
    static let fall2025Hosts = "configs/fall2025/hosts.ini"

    @Option(help: "The shard catalog (default: the `catalog` of the cluster configs).")
    var catalog: String?

    @Option(
        help: """
            The certificate presented when the deployment uses TLS: client, or operator, which may also use the test \
            controls (default: operator for test-set runs, client otherwise).
            """)
    var identity: String?

    func deployment(local: Bool = false, format: TestSetFile.Format = .original) throws -> Deployment {
        try Deployment.load(hostsPath: hosts(local: local, format: format))
    }

    func readCatalog(_ deployment: Deployment) throws -> Catalog {
        let catalog = try CatalogFile.read(path: self.catalog ?? deployment.catalogPath)
        try catalog.shards.check(against: deployment.hosts)
        return catalog
    }

    /// Connects to every cluster for the duration of `body`, as `identity` or else `defaultIdentity`.
    func connect<Result: Sendable>(
        deployment: Deployment? = nil, catalog: Catalog? = nil,
        defaultIdentity: String = LedgerConnection.clientIdentity,
        _ body: (LedgerConnection) async throws -> Result
    ) async throws -> Result {
        let deployment = try deployment ?? self.deployment()
        return try await LedgerConnection.with(
            deployment: deployment, catalog: try catalog ?? readCatalog(deployment), as: identity ?? defaultIdentity,
            body)
    }
}

/// `client tests.csv`: runs a test-set file set by set, with the prompt between sets.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a test-set file against the clusters (the default command).",
        discussion: """
            Before each set, the servers not in its live list are disconnected and the others reconnected; its \
            transfers then run concurrently (--sequential: one at a time) and each prints its outcome. A file in the \
            Fall 2025 format (header Set Number,Transactions,Live Nodes; nodes n1..n9) may also read balances, \
            printed with their result, and fail and recover nodes between its transfers; such a file runs against \
            configs/fall2025/ unless --hosts says otherwise. Between sets \
            a prompt takes PrintBalance <account>, PrintLogs <server>, PrintDatastore [server], Performance, next, \
            exit. With --batch, or when standard input is not a terminal, every set runs without prompting. \
            --local first starts every cluster of the address book as child processes (building the catalog from \
            --shards if it is missing) and stops them at the end: the one-command demo.
            """
    )

    @Argument(help: "The test-set file, e.g. tests-data/tests.csv.")
    var file: String

    @OptionGroup var deploy: Deploy

    @Flag(help: "Run every set without prompting, then print the Performance summary.")
    var batch = false

    @Flag(help: "Issue the transfers of a set one at a time, in file order.")
    var sequential = false

    @Flag(help: "Start every cluster on this machine as child processes first, and stop them at the end.")
    var local = false

    @Option(
        help: """
            With --local: the shard map the catalog is built from when it is missing (default: \
            tests-data/shards.csv; for a file in the Fall 2025 format, configs/fall2025/shards.csv).
            """)
    var shards: String?

    @Flag(help: "Only check the file against the address book and the catalog.")
    var check = false

    func run() async throws {
        let tests = try ConfigFiles.loadTestSets(path: file)
        let deployment = try deploy.deployment(local: local, format: tests.format)
        if tests.format == .fall2025 && deploy.hostsOption == nil {
            say("\(file) is in the Fall 2025 format: using \(deployment.hostsPath)")
        }
        if local {
            let shards =
                shards ?? (tests.format == .fall2025 ? "configs/fall2025/shards.csv" : "tests-data/shards.csv")
            try LocalDeployment.prepareCatalog(deployment, catalogPath: deploy.catalog, shards: shards)
            try LocalDeployment.prepareCertificates(deployment)
        }
        let catalog = try deploy.readCatalog(deployment)
        try tests.check(against: deployment.hosts, shards: catalog.shards)
        if check {
            print(
                "\(file): \(tests.sets.count) sets valid against \(deployment.hostsPath) and catalog version \(catalog.version)"
            )
            return
        }
        let clusters = local ? try LocalDeployment.start(deployment) : nil
        defer {
            // Every replica the demo started is stopped and waited for, however the run ended.
            if let clusters {
                clusters.stopAll(reason: "demo finished")
                _ = clusters.waitForAll()
            }
        }
        let interactive = !batch && isatty(STDIN_FILENO) == 1
        // The test sets disconnect and reconnect servers: the test controls are an operator's.
        try await deploy.connect(
            deployment: deployment, catalog: catalog, defaultIdentity: LedgerConnection.operatorIdentity
        ) { connection in
            if local { try await LocalDeployment.waitUntilServing(connection) }
            let runner = TestSetRunner(connection: connection, sequential: sequential)
            let inspector = Inspector(connection: connection)
            var stats = PerformanceStats()
            for (position, set) in tests.sets.enumerated() {
                say("Set \(set.number) (\(position + 1) of \(tests.sets.count)): \(Self.summary(of: set))")
                let operations = set.operationCount
                let showProgress = isatty(STDOUT_FILENO) == 1 && operations >= Self.progressThreshold
                let reports = await runner.run(
                    set, stats: &stats, note: { say("  note: \($0)") },
                    progress: { done in
                        guard showProgress, done % 50 == 0 || done == operations else { return }
                        Supervisor.write("\r  \(done) of \(operations) answered")
                        if done == operations { say("") }
                    })
                for report in reports { say(report.line) }
                guard interactive else { continue }
                if await !prompt(inspector, stats: stats, last: position == tests.sets.count - 1) { break }
            }
            say(stats.summary)
        }
    }

    /// Sets with at least this many transfers and reads show a progress line on a terminal while they run.
    static let progressThreshold = 200

    /// `3 transfers; live [S1, S2, S3]; contacts [S1]`, or in the Fall 2025 format `3 transfers, 1 read, 2 fail or
    /// recover rows; live [n1, n2, n3]`.
    static func summary(of set: TestSet) -> String {
        let reads = set.reads.count
        let changes = set.steps.count - set.operationCount
        func names(_ replicas: [String]) -> String { replicas.map(set.name(of:)).joined(separator: ", ") }
        return "\(set.transfers.count) transfers"
            + (reads == 0 ? "" : ", \(reads) read\(reads == 1 ? "" : "s")")
            + (changes == 0 ? "" : ", \(changes) fail or recover row\(changes == 1 ? "" : "s")")
            + "; live [\(names(set.liveServers))]"
            + (set.contacts.isEmpty ? "" : "; contacts [\(names(set.contacts))]")
    }

    /// The prompt between sets; false when the user asked to exit.
    private func prompt(_ inspector: Inspector, stats: PerformanceStats, last: Bool) async -> Bool {
        while true {
            Supervisor.write(last ? "end of file> " : "next set> ")
            guard let line = readLine() else { return false }
            let command: PromptCommand
            do {
                command = try PromptCommand.parse(line)
            } catch {
                say(error.message)
                continue
            }
            switch command {
            case .next: return !last
            case .exit: return false
            case .help: say(PromptCommand.usage)
            case .performance: say(stats.summary)
            case .printBalance(let account): say(await inspector.balanceLine(of: account))
            case .printLogs(let replica): for line in await inspector.logLines(of: replica) { say(line) }
            case .printDatastore(let replica): for line in await inspector.datastoreLines(of: replica) { say(line) }
            }
        }
    }
}

/// Prints a line at once, even when standard output is a pipe.
func say(_ line: String) {
    Supervisor.say(line)
}

/// `client transfer 21 700 2`: prints `committed` (exit 0) or `aborted: <reason>` (exit 1); 2 for anything else.
struct Transfer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Transfer an amount between two accounts.")

    @Argument(help: "The account debited.") var from: String
    @Argument(help: "The account credited.") var to: String
    @Argument(help: "The amount, a positive whole number.") var amount: String
    @OptionGroup var deploy: Deploy

    func run() async throws {
        let transfer = try LedgerCore.Transfer(
            from: try AccountID.parse(from, source: "from"), to: try AccountID.parse(to, source: "to"),
            amount: try Amount.parse(amount, source: "amount"), source: "command line")
        let outcome = try await deploy.connect { await $0.transfer(transfer) }
        say(outcome.description)
        switch outcome {
        case .committed: return
        case .aborted: throw ExitCode(1)
        case .unknown: throw ExitCode(2)
        }
    }
}

/// `client balance 21`: the committed balance, read linearizably through the leader, as a plain integer.
struct Balance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print an account's committed balance.")

    @Argument(help: "The account.") var account: String
    @OptionGroup var deploy: Deploy

    func run() async throws {
        let account = try AccountID.parse(account, source: "account")
        switch try await deploy.connect({ await $0.balance(of: account) }) {
        case .success(let balance):
            say("\(balance)")
        case .failure(let failure):
            Supervisor.write("balance of \(account): \(failure)\n", to: .standardError)
            throw ExitCode(2)
        }
    }
}

struct PrintBalance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print-balance", abstract: "Every replica's own (possibly stale) value of an account.")

    @Argument(help: "The account.") var account: String
    @OptionGroup var deploy: Deploy

    func run() async throws {
        let account = try AccountID.parse(account, source: "account")
        say(try await deploy.connect { await Inspector(connection: $0).balanceLine(of: account) })
    }
}

struct PrintLogs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print-logs", abstract: "A replica's WAL records, like <T7, Update, 100, 2>.")

    @Argument(help: "The server, e.g. S1.") var server: String
    @OptionGroup var deploy: Deploy

    func run() async throws {
        for line in try await deploy.connect({ await Inspector(connection: $0).logLines(of: server) }) { say(line) }
    }
}

struct PrintDatastore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "print-datastore",
        abstract: "The committed transactions of one server (or of every server), with slot and ballot.")

    @Argument(help: "The server, e.g. S4; every server when left out.") var server: String?
    @OptionGroup var deploy: Deploy

    func run() async throws {
        for line in try await deploy.connect({ await Inspector(connection: $0).datastoreLines(of: server) }) {
            say(line)
        }
    }
}

/// `client status`: every replica's role, ballot, leader, chosen and applied slots and locks.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the status of every replica.")

    @OptionGroup var deploy: Deploy

    @Option(help: "Only this cluster, e.g. C1.")
    var cluster: String?

    func run() async throws {
        try await deploy.connect { connection in
            for client in connection.clusters where cluster == nil || cluster == client.cluster {
                for replica in client.replicas {
                    do {
                        let status = try await client.status(of: replica)
                        let leader = status.leader.map(String.init(describing:)) ?? "-"
                        say(
                            "\(client.cluster) \(replica): \(status.role) ballot \(status.ballot) leader \(leader) "
                                + "chosen \(status.chosenThrough) applied \(status.appliedThrough) "
                                + "snapshot \(status.snapshotSlot) locks \(status.locksHeld)"
                                + (status.isDisconnected ? " (disconnected)" : ""))
                    } catch {
                        say("\(client.cluster) \(replica): unreachable (\(error))")
                    }
                }
            }
        }
    }
}

/// `client bench`: closed-loop load against running clusters (DESIGN §8).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Closed-loop load against the running clusters, with latency percentiles and a money audit.",
        discussion: """
            Keeps --concurrency transfers in flight for --duration seconds after --warmup seconds, prints a table \
            (committed and aborted per second, aborts by reason, latency p50/p90/p99/p999/max for intra- and \
            cross-shard transfers) and last one line for scripts. total_ok compares the sum of every account's \
            committed balance before and after the run.
            """)

    @OptionGroup var deploy: Deploy
    @Option(help: "Seconds measured.") var duration = 20
    @Option(help: "Seconds of load before measuring.") var warmup = 2
    @Option(help: "Transfers in flight.") var concurrency = 8
    @Option(name: .customLong("cross-shard"), help: "Fraction of cross-shard transfers, 0 to 1.") var crossShard = 0.1
    @Option(help: "Accounts taking part, spread over the clusters (default: all of the catalog).") var accounts: Int?
    @Option(help: "Amount of each transfer.") var amount: Int64 = 1
    @Option(help: "Zipf exponent of the account choice; 0 is uniform.") var skew = 0.0
    @Option(help: "Seed of the workload.") var seed: UInt64 = 1
    @Option(
        name: .customLong("session-seconds"),
        help: "Start a new client session (a new client id) every N seconds, as clients come and go.")
    var sessionSeconds: Int?
    @Option(help: "Also write the full result as JSON to this file.") var json: String?

    func validate() throws {
        guard duration >= 1, duration <= 3600 else { throw ValidationError("--duration must be 1 to 3600 seconds") }
        guard warmup >= 0, warmup <= 600 else { throw ValidationError("--warmup must be 0 to 600 seconds") }
        guard concurrency >= 1, concurrency <= 4096 else { throw ValidationError("--concurrency must be 1 to 4096") }
        guard (0...1).contains(crossShard) else { throw ValidationError("--cross-shard must be between 0 and 1") }
        guard accounts.map({ $0 >= 2 }) ?? true else { throw ValidationError("--accounts must be at least 2") }
        guard amount >= 1 else { throw ValidationError("--amount must be a positive whole number") }
        guard skew >= 0, skew <= 10 else { throw ValidationError("--skew must be 0 to 10") }
        guard sessionSeconds.map({ $0 >= 1 }) ?? true else {
            throw ValidationError("--session-seconds must be at least 1")
        }
    }

    func run() async throws {
        // The load generator shares the cores with the replicas: one thread for its network and tasks wastes least.
        ProcessRuntime.adoptOneEventLoop()
        let options = BenchOptions(
            duration: .seconds(duration), warmup: .seconds(warmup), concurrency: concurrency, crossShard: crossShard,
            accounts: accounts, amount: amount, skew: skew, seed: seed, sessionSeconds: sessionSeconds)
        let showProgress = isatty(STDOUT_FILENO) == 1
        let result = try await deploy.connect { connection in
            try await connection.waitUntilServing(within: .seconds(30))
            return await Bench(connection: connection, options: options).run { committed in
                if showProgress { Supervisor.write("\r  \(committed) committed") }
            }
        }
        if showProgress { say("") }
        say(result.table)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: json))
        }
        say(result.line)
        if !result.totalOK { throw ExitCode(1) }
    }
}

/// `client rebalance new-schema.txt`: applies the moves of a plan online, while transfers keep running.
struct RebalanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebalance",
        abstract: "Move accounts between clusters as new-schema.txt says, online.",
        discussion: """
            Each move is a 2PC transaction (the source removes the account, the target creates it with the same \
            balance); money is conserved throughout and transfers keep running. Moved accounts are recorded in the \
            catalog. Running the same file again is harmless: accounts already in their target are skipped. Exit \
            status 1 when a move did not complete (each one is listed).
            """)

    @Argument(help: "The plan, as `shardctl rebalance` writes it.") var schema: String
    @OptionGroup var deploy: Deploy
    @Option(help: "Moves in flight at once.") var concurrency = LedgerConnection.movesInFlightMax

    func validate() throws {
        guard (1...256).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 256") }
    }

    func run() async throws {
        let deployment = try deploy.deployment()
        let catalogPath = deploy.catalog ?? deployment.catalogPath
        let catalog = try deploy.readCatalog(deployment)
        let plan = try RebalanceSchema.parse(try ConfigFiles.readText(path: schema), source: schema)
        try plan.check(against: catalog, clusters: deployment.hosts.clusters.map(\.name))
        guard !plan.moves.isEmpty else {
            say("\(schema): no moves; nothing to do")
            return
        }
        say("\(schema): \(plan.moves.count) moves; catalog \(catalogPath) version \(catalog.version)")
        let showProgress = isatty(STDOUT_FILENO) == 1
        let total = plan.moves.count
        let started = ContinuousClock.now
        let report = try await deploy.connect(deployment: deployment, catalog: catalog) { connection in
            try await connection.waitUntilServing(within: .seconds(30))
            return try await connection.apply(plan.moves, concurrency: concurrency, catalogPath: catalogPath) { done in
                if showProgress { Supervisor.write("\r  \(done) of \(total) moves") }
            }
        }
        if showProgress { say("") }
        for (move, outcome) in report.failed {
            say("account \(move.account) \(move.from) -> \(move.to): \(outcome)")
        }
        let elapsed = ContinuousClock.now - started
        say(
            "moved \(report.moved), already there \(report.alreadyThere), not moved \(report.failed.count) in "
                + "\(PerformanceStats.format(elapsed))"
                + (report.catalog.map { "; catalog version \($0.version)" } ?? ""))
        if !report.failed.isEmpty { throw ExitCode(1) }
    }
}

/// The replica process the local demo starts (`client --local`); the same code as `cluster replica`.
struct LocalReplica: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica", abstract: "Run one replica (started by --local).", shouldDisplay: false)

    @Argument var config: String
    @Argument var hosts: String
    @Option var name: String

    func run() async throws {
        try await ReplicaProcess.main(configPath: config, hostsPath: hosts, name: name)
    }
}

/// The node process the local demo starts (`client --local`) where replicas share an address; the same code as
/// `cluster node`.
struct LocalNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Run one node (started by --local).", shouldDisplay: false)

    @Argument var hosts: String
    @Option var name: String

    func run() async throws {
        let deployment = try Deployment.load(hostsPath: hosts)
        let catalog = try CatalogFile.read(path: deployment.catalogPath)
        try await NodeProcess(deployment: deployment, catalog: catalog, name: name).runAsMain()
    }
}

/// The one-command demo's clusters: every node of the address book (a replica with an address of its own, or the
/// replicas sharing one) as a child process of this client.
enum LocalDeployment {
    /// Builds the catalog from `shards` when there is none yet.
    static func prepareCatalog(_ deployment: Deployment, catalogPath: String?, shards: String) throws {
        let path = catalogPath ?? deployment.catalogPath
        guard !FileManager.default.fileExists(atPath: path) else { return }
        let map = try ConfigFiles.loadShards(path: shards)
        try map.check(against: deployment.hosts)
        if case .created(let catalog) = try CatalogFile.write(map, to: path) {
            say("catalog \(path) built from \(shards) (version \(catalog.version))")
        }
    }

    /// Creates the deployment's certificates when TLS is on and some are missing (never replacing a key).
    static func prepareCertificates(_ deployment: Deployment) throws {
        guard case .mutual(let files) = deployment.tls else { return }
        let report = try Certificates.issueDeployment(hosts: deployment.hosts, files: files, force: false)
        let created = report.entries.filter { $0.outcome == .created }
        if !created.isEmpty {
            say("certificates created for \(created.map(\.holder).joined(separator: ", ")) (CA \(files.ca))")
        }
    }

    static func start(_ deployment: Deployment) throws -> Supervisor {
        guard let executable = Bundle.main.executablePath else {
            throw ValidationError("cannot find this program's own path to start the replicas")
        }
        let supervisor = Supervisor(children: Supervisor.Child.nodes(of: deployment, executable: executable))
        try supervisor.start()
        return supervisor
    }

    static func waitUntilServing(_ connection: LedgerConnection) async throws {
        try await connection.waitUntilServing(within: .seconds(60))
        say("every cluster is serving: \(connection.deployment.hosts.clusterNames.joined(separator: ", "))")
    }
}
