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
            abstract:
                "Check a shards.csv against the address book (writing the SQLite catalog comes with the catalog work)."
        )

        @Argument(help: "The shard map, e.g. tests-data/shards.csv.")
        var shards: String

        @Option(help: "The address book.")
        var hosts = "configs/hosts.ini"

        func run() throws {
            let addressBook = try ConfigFiles.loadHosts(path: hosts)
            let map = try ConfigFiles.loadShards(path: shards)
            try map.check(against: addressBook)
            print("\(shards): \(map.shards.count) shards valid against \(hosts)")
            for shard in map.shards {
                let count = shard.accounts.upperBound.value - shard.accounts.lowerBound.value + 1
                print(
                    "  \(shard.name)  \(shard.cluster)  accounts \(shard.accounts.lowerBound)-\(shard.accounts.upperBound) (\(count))"
                )
            }
            print("The SQLite catalog is not part of this build yet; nothing was written.")
        }
    }
}
