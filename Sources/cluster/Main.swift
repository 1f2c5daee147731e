import ArgumentParser
import Foundation
import LedgerCore
import LedgerNode
import LedgerStore

#if canImport(Glibc)
    // `stdout` is a C global, which Swift 6 refuses to read from concurrent code unless its module is imported so.
    @preconcurrency import SwiftGlibc
#endif

/// `cluster configs/C1.yaml configs/hosts.ini`: starts every replica of a cluster as its own process and stops
/// them on Ctrl-C; `--replica S2` (or `cluster replica ... --name S2`) runs one replica in this process.
/// `cluster node configs/nodes/hosts.ini`: starts every node of the deployment (the replicas sharing an address, one
/// of each cluster) as its own process; `--name N1` runs one node in this process.
/// Argument parsing and wiring only.
@main
struct Cluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the replicas of a cluster.",
        subcommands: [Start.self, RunReplica.self, RunNode.self],
        defaultSubcommand: Start.self
    )

    /// Line-buffers standard output before anything is printed: redirected to a file or a pipe, it would otherwise
    /// be block-buffered, and the banner of where each replica listens would arrive only when the cluster exits.
    static func main() async {
        setvbuf(stdout, nil, _IOLBF, 0)
        await main(nil)
    }

    /// The files every replica reads.
    struct Files: ParsableArguments {
        @Argument(help: "The cluster config, e.g. configs/C1.yaml.")
        var config: String

        @Argument(help: "The address book, e.g. configs/hosts.ini.")
        var hosts: String

        /// Reads and cross-checks the files, the shard catalog the config names (`shardctl shard` writes it) and each
        /// replica's certificate (`shardctl certs`), so a bad file stops everything before any replica starts.
        func load(replica: String?) throws -> (ClusterConfig, HostsFile, Catalog) {
            let cluster = try ConfigFiles.loadCluster(path: config)
            let addressBook = try ConfigFiles.loadHosts(path: hosts)
            try cluster.check(against: addressBook)
            let catalog = try CatalogFile.read(path: cluster.catalogPath)
            try catalog.shards.check(against: addressBook)
            let names = addressBook.cluster(named: cluster.clusterName)!.reachable
            if let replica, !names.contains(replica) {
                throw ValidationError(
                    "\(replica) is not a replica of \(cluster.clusterName) (\(names.joined(separator: ", ")))")
            }
            for name in replica.map({ [$0] }) ?? names {
                _ = try ReplicaProcess(cluster: cluster, hosts: addressBook, catalog: catalog, replicaName: name)
            }
            return (cluster, addressBook, catalog)
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
            let (cluster, addressBook, catalog) = try files.load(replica: replica)
            if check {
                print(
                    "\(cluster.clusterName): configuration valid (\(files.config), \(files.hosts), catalog "
                        + "\(cluster.catalogPath) version \(catalog.version), tls \(cluster.tls.summary))")
                return
            }
            if let replica {
                try await RunReplica.run(files: files, name: replica)
                return
            }
            guard let executable = Bundle.main.executablePath else {
                throw ValidationError("cannot find this program's own path to start the replicas")
            }
            let names = addressBook.cluster(named: cluster.clusterName)!.reachable
            let children = names.map { name in
                Supervisor.Child(
                    name: name, executable: executable,
                    arguments: ["replica", files.config, files.hosts, "--name", name],
                    logFile: "\(cluster.dataDirectory)/\(name).log")
            }
            for name in names {
                let address = addressBook.replica(named: name)!.address
                let index = addressBook.replica(named: name)!.index
                let metrics = cluster.metricsPort(ofReplica: index).map { port in
                    MetricsServer.url(host: cluster.metricsHost, port: port, machine: address.host)
                }
                let peers = cluster.peerPort(ofReplica: index).map { "\(address.host):\($0)" } ?? "on the gRPC port"
                print(
                    "\(name): gRPC \(address), peers \(peers), metrics \(metrics ?? "off"), "
                        + "data \(cluster.dataDirectory)/\(name).sqlite")
            }
            switch cluster.tls {
            case .off: print("TLS is off (\(files.config) says tls: off): anyone who reaches a port may call anything")
            case .mutual(let tls): print("mutual TLS: CA \(tls.ca), certificates \(tls.certificate)")
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
            try await ReplicaProcess.main(configPath: files.config, hostsPath: files.hosts, name: name)
        }
    }

    struct RunNode: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "node",
            abstract:
                "Start every node of the deployment (the replicas sharing an address) as its own process, or only "
                + "--name, in this process.")

        @Argument(help: "The address book, e.g. configs/nodes/hosts.ini; every cluster's config is beside it.")
        var hosts: String

        @Option(help: "Run only this node (N1, N2, ...: numbered by their first replica), in this process.")
        var name: String?

        @Flag(help: "Only check the configuration.")
        var check = false

        func run() async throws {
            // Every node this command runs is read and checked before any starts.
            let deployment = try Deployment.load(hostsPath: hosts)
            let catalog = try CatalogFile.read(path: deployment.catalogPath)
            let processes = try (name.map { [$0] } ?? deployment.hosts.nodes.map(\.name)).map { node in
                try NodeProcess(deployment: deployment, catalog: catalog, name: node)
            }
            if check {
                for process in processes {
                    print(
                        "\(process.node.name): \(process.node.address) hosts \(process.node.replicas.joined(separator: ", "))"
                    )
                }
                print(
                    "configuration valid (\(hosts), catalog \(deployment.catalogPath), tls \(deployment.tls.summary))")
                return
            }
            if name != nil {
                try await processes[0].runAsMain()
                return
            }
            guard let executable = Bundle.main.executablePath else {
                throw ValidationError("cannot find this program's own path to start the nodes")
            }
            let children = Supervisor.Child.nodes(of: deployment, executable: executable)
            for (process, child) in zip(processes, children) {
                let node = process.node
                let peers = process.peerPort.map { "\(node.address.host):\($0)" } ?? "on the gRPC port"
                print(
                    "\(node.name): gRPC \(node.address), peers \(peers), replicas \(node.replicas.joined(separator: ", ")), "
                        + "log \(child.logFile)")
            }
            let failures = try Supervisor(children: children).run()
            if failures > 0 { throw ExitCode(1) }
        }
    }
}
