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
        abstract: "Build the shard catalog and plan rebalancing.",
        subcommands: [Shard.self, Rebalance.self]
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

        func validate() throws {
            guard (0...1).contains(maxImbalance) else {
                throw ValidationError("--max-imbalance must be a fraction from 0 to 1, like 0.05")
            }
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

            let plan = RebalancePlanner.plan(
                history: history, catalog: catalog, clusters: deployment.hosts.clusterNames,
                options: RebalancePlanner.Options(maxImbalance: maxImbalance, minTransactions: minTransactions)
            ) { progress.show("planning: \($0)") }
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
