import LedgerClient
import LedgerCore
import LedgerStore
import Logging
import Metrics
import Prometheus

extension ReplicaProcess {
    /// The whole life of a replica process, shared by `cluster replica` and the local demo's `client replica`: reads
    /// and cross-checks the files (the config, hosts.ini, the catalog the config names), sets up this process's
    /// logging and metrics, and runs the replica, as a node of its own, until SIGINT/SIGTERM. Only an executable's
    /// entry point calls it.
    public static func main(configPath: String, hostsPath: String, name: String) async throws {
        ProcessRuntime.adoptOneEventLoop()
        let cluster = try ConfigFiles.loadCluster(path: configPath)
        let hosts = try ConfigFiles.loadHosts(path: hostsPath)
        let catalog = try CatalogFile.read(path: cluster.catalogPath)
        let process = try NodeProcess(
            replicas: [ReplicaProcess(cluster: cluster, hosts: hosts, catalog: catalog, replicaName: name)])
        try await process.runAsMain(label: "ledger.replica")
    }
}

extension NodeProcess {
    /// The node called `name` (`N1`) of the deployment whose address book is `hostsPath`, with every cluster config
    /// beside it: each replica checked as `cluster replica` checks it.
    public static func load(hostsPath: String, name: String) throws -> NodeProcess {
        let deployment = try Deployment.load(hostsPath: hostsPath)
        guard let node = deployment.hosts.node(named: name) else {
            let names = deployment.hosts.nodes.map(\.name)
            throw InputError(
                source: hostsPath,
                message:
                    "has no node \(name); its nodes (replicas sharing an address, numbered by their first replica) "
                    + "are \(names.joined(separator: ", "))")
        }
        let catalog = try CatalogFile.read(path: deployment.catalogPath)
        var replicas: [ReplicaProcess] = []
        for replica in node.replicas {
            let cluster = deployment.clusters.first { $0.replicaNames.contains(replica) }!
            replicas.append(
                try ReplicaProcess(cluster: cluster, hosts: deployment.hosts, catalog: catalog, replicaName: replica))
        }
        return try NodeProcess(replicas: replicas)
    }

    /// The whole life of a node process (`cluster node --name N1`, and the local demo's `client node`): reads and
    /// checks the files, sets up logging and metrics, and runs every replica of the node until SIGINT/SIGTERM.
    public static func main(hostsPath: String, name: String) async throws {
        ProcessRuntime.adoptOneEventLoop()
        try await load(hostsPath: hostsPath, name: name).runAsMain(label: "ledger.node")
    }

    /// Sets up this process's logging and metrics and runs the node. Each replica logs at its own cluster's level.
    func runAsMain(label: String) async throws {
        LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: replicas[0].cluster.logLevel.rawValue) ?? .info
        if replicas.count == 1 {
            logger[metadataKey: "replica"] = "\(replicas[0].replica.name)"
            logger[metadataKey: "cluster"] = "\(replicas[0].cluster.clusterName)"
        } else {
            logger[metadataKey: "node"] = "\(node.name)"
        }
        try await run(logger: logger, registry: registry)
    }
}
