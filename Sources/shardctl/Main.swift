import ArgumentParser
import Foundation
import LedgerClient
import LedgerCore
import LedgerStore

/// `shardctl`: the shard catalog's tools. Argument parsing and wiring only.
@main
struct ShardControl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shardctl",
        abstract: "Build the shard catalog, plan rebalancing, make the TLS certificates and change memberships.",
        subcommands: [Shard.self, Rebalance.self, Certs.self, Member.self, Cluster.self]
    )

    struct Shard: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build the shard catalog (which cluster owns which account) from a shards.csv.",
            discussion: """
                The catalog is the SQLite file the cluster configs name (`catalog:`); clusters create their \
                accounts from it on first start and clients route with it. Running the command again with the same \
                ranges changes nothing; other ranges are refused unless --replace is given.
                """
        )

        @Argument(help: "The shard map, e.g. tests-data/shards.csv.")
        var shards: String

        @Option(help: "The address book; the cluster configs <cluster>.yaml sit beside it.")
        var hosts = "configs/hosts.ini"

        @Option(help: "Where to write the catalog (default: the `catalog` of the cluster configs).")
        var catalog: String?

        @Flag(help: "Replace a catalog that holds other ranges (only before any cluster has created its accounts).")
        var replace = false

        func run() throws {
            let deployment = try Deployment.load(hostsPath: hosts)
            let map = try ConfigFiles.loadShards(path: shards)
            try map.check(against: deployment.hosts)
            let path = catalog ?? deployment.catalogPath
            let written: Catalog
            switch try CatalogFile.write(map, to: path, replace: replace) {
            case .created(let catalog):
                written = catalog
                print("\(path): catalog created from \(shards) (version \(catalog.version))")
            case .unchanged(let catalog):
                written = catalog
                print("\(path): already holds these ranges (version \(catalog.version)); nothing changed")
            case .replaced(let catalog):
                written = catalog
                print("\(path): ranges replaced from \(shards) (version \(catalog.version))")
            }
            for shard in written.shards.shards {
                let count = shard.accounts.upperBound.value - shard.accounts.lowerBound.value + 1
                print(
                    "  \(shard.name)  \(shard.cluster)  accounts \(shard.accounts.lowerBound)-\(shard.accounts.upperBound) (\(count))"
                )
            }
        }
    }

    struct Rebalance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Plan account moves that cut cross-shard transfers, and write them to new-schema.txt.",
            discussion: """
                Reads the committed transfers from one replica of every cluster (or, with --from, the transfers of a \
                test-set file), weighs each pair of accounts by how often it transacted, and moves accounts so that \
                groups that transact together share a cluster, keeping every cluster within --max-imbalance of the \
                mean size. Writes the co-located pairs and the moves; `client rebalance` applies them.
                """
        )

        @Option(help: "The address book; the cluster configs <cluster>.yaml sit beside it.")
        var hosts = "configs/hosts.ini"

        @Option(help: "The shard catalog (default: the `catalog` of the cluster configs).")
        var catalog: String?

        @Option(help: "Plan from the transfers of this test-set file instead of the clusters' committed history.")
        var from: String?

        @Option(help: "Where to write the plan.")
        var out = "new-schema.txt"

        @Option(help: "How far a cluster's size (its accounts) may end from the mean size, as a fraction of it.")
        var maxImbalance = 0.05

        @Option(help: "Ignore pairs of accounts that transacted fewer times than this.")
        var minTransactions = 1

        @Option(
            help: ArgumentHelp(
                "Instead: bring this cluster (one `shardctl cluster add` made) to its share of the accounts.",
                discussion:
                    "Takes accounts from the largest clusters, none going below --max-imbalance of the mean: first "
                    + "those that transact with it, then accounts that never transacted, then the least busy."))
        var fill: String?

        func validate() throws {
            try checkImbalance(maxImbalance)
            guard minTransactions >= 1 else { throw ValidationError("--min-transactions must be at least 1") }
        }

        func run() async throws {
            let deployment = try Deployment.load(hostsPath: hosts)
            let catalog = try CatalogFile.read(path: self.catalog ?? deployment.catalogPath)
            try catalog.shards.check(against: deployment.hosts)
            let progress = ProgressLine()

            let history: TransferHistory
            var origin: String
            if let from {
                let tests = try ConfigFiles.loadTestSets(path: from)
                try tests.check(against: deployment.hosts, shards: catalog.shards)
                history = TransferHistory(tests.sets.flatMap { $0.transfers.map(\.transfer) })
                origin = from
            } else {
                let read = try await LedgerConnection.with(deployment: deployment, catalog: catalog) { connection in
                    try await HistoryReader(connection: connection).read { progress.show("reading: \($0)") }
                }
                history = read.history
                origin = "the datastores of \(read.replicas.map(\.description).joined(separator: ", "))"
                if history.unmatchedTransactions > 0 {
                    origin +=
                        " (\(history.unmatchedTransactions) cross-shard transactions found at only some of their "
                        + "participants were left out)"
                }
            }

            let options = RebalancePlanner.Options(maxImbalance: maxImbalance, minTransactions: minTransactions)
            let plan: RebalancePlan
            if let fill {
                guard deployment.hosts.cluster(named: fill) != nil else {
                    throw ValidationError(
                        "--fill \(fill): \(hosts) has no such cluster; add it with `shardctl cluster add \(fill)`")
                }
                plan = try RebalancePlanner.fill(
                    fill, history: history, catalog: catalog, clusters: deployment.hosts.clusterNames,
                    options: options)
            } else {
                guard catalog.draining.isEmpty else {
                    throw ValidationError(
                        "\(catalog.draining.sorted().joined(separator: ", ")) is being drained; finish "
                            + "`shardctl cluster drain` before planning other moves")
                }
                plan = RebalancePlanner.plan(
                    history: history, catalog: catalog, clusters: deployment.hosts.clusterNames, options: options
                ) { progress.show("planning: \($0)") }
            }
            progress.clear()

            let schema = RebalanceSchema(plan: plan, origin: origin, source: out)
            do {
                try schema.text.write(toFile: out, atomically: true, encoding: .utf8)
            } catch {
                throw StoreError(path: out, message: "cannot write the plan: \(error.localizedDescription)")
            }
            print("History: \(history.transfers) transfers from \(origin).")
            for line in plan.summary { print(line) }
            print("\(out): written; apply it with `client rebalance \(out)`")
        }
    }

    struct Certs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Make the deployment's CA and the certificate and key of every replica, the client and the operator.",
            discussion: """
                Writes the files the cluster configs name (`tls:`; by default certs/ca.pem, certs/{name}.pem and \
                certs/{name}-key.pem), or those in --out: a CA (valid 10 years, its key beside it as ca-key.pem) and, \
                for every replica of hosts.ini (naming its host, which peers check), client and operator, a \
                certificate (valid 1 year) and a private key (mode 0600). Running the command again keeps every file \
                that is already there and makes only the missing ones; files that do not fit together are refused \
                unless --force is given, which makes everything anew, the CA included.
                """
        )

        @Option(help: "The address book; the cluster configs <cluster>.yaml sit beside it.")
        var hosts = "configs/hosts.ini"

        @Option(help: "Write ca.pem, <name>.pem and <name>-key.pem into this directory instead of the configs' files.")
        var out: String?

        @Flag(help: "Make the CA and every certificate and key anew, replacing the existing files and keys.")
        var force = false

        func run() throws {
            let files: ClusterConfig.TLS.Files
            let hostsFile: HostsFile
            if let out {
                let directory = out.hasSuffix("/") && out.count > 1 ? String(out.dropLast()) : out
                files = ClusterConfig.TLS.Files(
                    ca: "\(directory)/ca.pem", certificate: "\(directory)/{name}.pem",
                    key: "\(directory)/{name}-key.pem")
                hostsFile = try ConfigFiles.loadHosts(path: hosts)
            } else {
                let deployment = try Deployment.load(hostsPath: hosts)
                hostsFile = deployment.hosts
                switch deployment.tls {
                case .mutual(let configured):
                    files = configured
                case .off:
                    files = .defaults
                    print(
                        "note: the cluster configs beside \(hosts) have tls: off; writing the default files, "
                            + "which take effect with tls: on")
                }
            }
            let report = try Certificates.issueDeployment(hosts: hostsFile, files: files, force: force)
            for entry in report.entries {
                let until = entry.notValidAfter.formatted(.iso8601)
                print(
                    "\(entry.certificatePath), \(entry.keyPath): \(entry.outcome.rawValue) for \(entry.holder), "
                        + "valid until \(until)")
            }
        }
    }
}

/// Refuses a `--max-imbalance` that is not a fraction.
func checkImbalance(_ value: Double) throws {
    guard (0...1).contains(value) else {
        throw ValidationError("--max-imbalance must be a fraction from 0 to 1, like 0.05")
    }
}

/// One line of progress on standard error, rewritten in place; nothing when standard error is not a terminal.
struct ProgressLine: Sendable {
    let isShown = isatty(STDERR_FILENO) == 1

    func show(_ text: String) {
        guard isShown else { return }
        try? FileHandle.standardError.write(contentsOf: Data("\r\u{1B}[K  \(text)".utf8))
    }

    func clear() {
        guard isShown else { return }
        try? FileHandle.standardError.write(contentsOf: Data("\r\u{1B}[K".utf8))
    }
}
