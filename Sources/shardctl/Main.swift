import ArgumentParser
import LedgerCore
import LedgerStore

/// `shardctl`: the shard catalog's tools. Argument parsing and wiring only.
@main
struct ShardControl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shardctl",
        abstract: "Build the shard catalog and plan rebalancing.",
        subcommands: [Shard.self]
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
}
