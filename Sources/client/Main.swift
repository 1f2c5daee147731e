import ArgumentParser
import LedgerClient
import LedgerCore
import LedgerStore
import Paxos

/// `client tests.csv`: runs a test-set file against the clusters. Argument parsing and wiring only.
@main
struct Client: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a test-set file against the ledger.",
        subcommands: [Run.self, Status.self],
        defaultSubcommand: Run.self
    )

    /// `client status`: every replica's role, ballot, leader, chosen and applied slots and locks.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the status of every replica.")

        @Option(help: "The address book.")
        var hosts = "configs/hosts.ini"

        @Option(help: "Only this cluster, e.g. C1.")
        var cluster: String?

        func run() async throws {
            let addressBook = try ConfigFiles.loadHosts(path: hosts)
            for entry in addressBook.clusters where cluster == nil || cluster == entry.name {
                let addresses = entry.members.compactMap { name in
                    addressBook.replica(named: name).map {
                        ClusterClient.Address(replica: ReplicaID($0.index), host: $0.host, port: $0.port)
                    }
                }
                try await ClusterClient.with(cluster: entry.name, addresses: addresses) { client in
                    for replica in client.replicas {
                        do {
                            let status = try await client.status(of: replica)
                            let leader = status.leader.map(String.init(describing:)) ?? "-"
                            print(
                                "\(entry.name) \(replica): \(status.role) ballot \(status.ballot) leader \(leader) "
                                    + "chosen \(status.chosenThrough) applied \(status.appliedThrough) "
                                    + "snapshot \(status.snapshotSlot) locks \(status.locksHeld)"
                                    + (status.isDisconnected ? " (disconnected)" : ""))
                        } catch {
                            print("\(entry.name) \(replica): unreachable (\(error))")
                        }
                    }
                }
            }
        }
    }
}

/// `client tests.csv`: checks (and, once the client work lands, runs) a test-set file.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a test-set file against the ledger.",
        discussion: """
            This build checks the file only: talking to replicas needs the replica runtime, which is not part of \
            it yet. With --check the command validates and exits 0; without it, it validates and then says so.
            """
    )

    @Argument(help: "The test-set file, e.g. tests-data/tests.csv.")
    var file: String

    @Option(help: "The address book.")
    var hosts = "configs/hosts.ini"

    @Option(help: "The shard map used to route accounts.")
    var shards = "tests-data/shards.csv"

    @Flag(help: "Only validate the file.")
    var check = false

    func run() throws {
        let addressBook = try ConfigFiles.loadHosts(path: hosts)
        let map = try ConfigFiles.loadShards(path: shards)
        try map.check(against: addressBook)
        let tests = try ConfigFiles.loadTestSets(path: file)
        try tests.check(against: addressBook, shards: map)
        print("\(file): \(tests.sets.count) sets valid against \(hosts) and \(shards)")
        for set in tests.sets {
            let live = set.liveServers.joined(separator: ", ")
            print("  set \(set.number): \(set.transfers.count) transfers; live [\(live)]")
            for item in set.transfers {
                let transfer = item.transfer
                let from = map.cluster(of: transfer.from) ?? "?"
                let to = map.cluster(of: transfer.to) ?? "?"
                let kind = from == to ? "intra-shard \(from)" : "cross-shard \(from)->\(to)"
                print("    (\(transfer.from), \(transfer.to), \(transfer.amount))  \(kind)")
            }
        }
        if !check {
            print("Running transfers needs the replica runtime, which is not part of this build yet.")
            throw ExitCode(2)
        }
    }
}
