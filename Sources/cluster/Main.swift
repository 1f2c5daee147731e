import ArgumentParser
import Foundation
import LedgerCore
import LedgerNode
import LedgerStore
import Logging
import Metrics
import Prometheus

/// `cluster configs/C1.yaml configs/hosts.ini`: starts every replica of a cluster as its own process and stops
/// them on Ctrl-C; `--replica S2` (or `cluster replica ... --name S2`) runs one replica in this process.
/// Argument parsing and wiring only.
@main
struct Cluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the replicas of a cluster.",
        subcommands: [Start.self, RunReplica.self],
        defaultSubcommand: Start.self
    )

    /// The files every replica reads.
    struct Files: ParsableArguments {
        @Argument(help: "The cluster config, e.g. configs/C1.yaml.")
        var config: String

        @Argument(help: "The address book, e.g. configs/hosts.ini.")
        var hosts: String

        @Option(help: "The shard map: which accounts this cluster creates and owns.")
        var shards = "tests-data/shards.csv"

        func load(replica: String?) throws -> (ClusterConfig, HostsFile, ShardMap) {
            let cluster = try ConfigFiles.loadCluster(path: config)
            let addressBook = try ConfigFiles.loadHosts(path: hosts)
            try cluster.check(against: addressBook)
            let map = try ConfigFiles.loadShards(path: shards)
            try map.check(against: addressBook)
            if let replica, !cluster.replicaNames.contains(replica) {
                throw ValidationError(
                    "\(replica) is not a replica of \(cluster.clusterName) "
                        + "(\(cluster.replicaNames.joined(separator: ", ")))")
            }
            return (cluster, addressBook, map)
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Start each replica of the cluster as its own process (or only --replica) and stop them on Ctrl-C."
        )

        @OptionGroup var files: Files

        @Option(help: "Run only this replica, in this process (one machine per replica).")
        var replica: String?

        @Flag(help: "Only check the configuration.")
        var check = false

        func run() async throws {
            let (cluster, addressBook, _) = try files.load(replica: replica)
            if check {
                print("\(cluster.clusterName): configuration valid (\(files.config), \(files.hosts), \(files.shards))")
                return
            }
            if let replica {
                try await RunReplica.run(files: files, name: replica)
                return
            }
            guard let executable = Bundle.main.executablePath else {
                throw ValidationError("cannot find this program's own path to start the replicas")
            }
            let children = cluster.replicaNames.map { name in
                Supervisor.Child(
                    name: name, executable: executable,
                    arguments: ["replica", files.config, files.hosts, "--shards", files.shards, "--name", name],
                    logFile: "\(cluster.dataDirectory)/\(name).log")
            }
            for name in cluster.replicaNames {
                let address = addressBook.replica(named: name)!.address
                let index = addressBook.replica(named: name)!.index
                let metrics = cluster.metricsPort(ofReplica: index).map { "http://\(address.host):\($0)/metrics" }
                print(
                    "\(name): gRPC \(address), metrics \(metrics ?? "off"), data \(cluster.dataDirectory)/\(name).sqlite"
                )
            }
            let failures = try Supervisor(children: children).run()
            if failures > 0 { throw ExitCode(1) }
        }
    }

    struct RunReplica: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "replica", abstract: "Run one replica in this process (what `cluster` starts per replica).")

        @OptionGroup var files: Files

        @Option(help: "The replica to run, e.g. S1.")
        var name: String

        func run() async throws {
            try await Self.run(files: files, name: name)
        }

        static func run(files: Files, name: String) async throws {
            let (cluster, addressBook, map) = try files.load(replica: name)
            let process = try ReplicaProcess(cluster: cluster, hosts: addressBook, shards: map, replicaName: name)
            let level = Logger.Level(rawValue: cluster.logLevel.rawValue) ?? .info
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            var logger = Logger(label: "ledger.replica")
            logger[metadataKey: "replica"] = "\(name)"
            logger[metadataKey: "cluster"] = "\(cluster.clusterName)"
            try await process.run(logger: logger, registry: registry)
        }
    }
}
