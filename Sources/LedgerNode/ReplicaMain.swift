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
        let cluster = try ConfigFiles.loadCluster(path: configPath)
        let hosts = try ConfigFiles.loadHosts(path: hostsPath)
        let catalog = try CatalogFile.read(path: cluster.catalogPath)
        let process = try NodeProcess(
            replicas: [ReplicaProcess(cluster: cluster, hosts: hosts, catalog: catalog, replicaName: name)])
        try await process.runAsMain(label: "ledger.replica")
    }
}

extension NodeProcess {
    /// The node called `name` (`N1`) of `deployment`, each replica checked as `cluster replica` checks it.
    public init(deployment: Deployment, catalog: Catalog, name: String) throws(InputError) {
        guard let node = deployment.hosts.node(named: name) else {
            let names = deployment.hosts.nodes.map(\.name)
            throw InputError(
                source: deployment.hostsPath,
                message:
                    "has no node \(name); its nodes (replicas sharing an address, numbered by their first replica) "
                    + "are \(names.joined(separator: ", "))")
        }
        var replicas: [ReplicaProcess] = []
        for replica in node.replicas {
            let name = deployment.hosts.cluster(of: replica)!.name
            let cluster = deployment.clusters.first { $0.clusterName == name }!
            replicas.append(
                try ReplicaProcess(cluster: cluster, hosts: deployment.hosts, catalog: catalog, replicaName: replica))
        }
        try self.init(replicas: replicas)
    }

    /// The whole life of a node process (`cluster node --name N1`, the local demo's `client node`, and `cluster
    /// replica` for a node of one): sets up this process's runtime, logging and metrics, and runs every replica of the
    /// node until SIGINT/SIGTERM. Each replica logs at its own cluster's level. Only an executable's entry point calls
    /// it, once, before any networking.
    public func runAsMain(label: String = "ledger.node") async throws {
        ProcessRuntime.adoptOneEventLoop()
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
