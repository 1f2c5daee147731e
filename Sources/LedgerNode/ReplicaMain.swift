import LedgerClient
import LedgerCore
import LedgerStore
import Logging
import Metrics
import Prometheus

extension ReplicaProcess {
    /// The whole life of a replica process, shared by `cluster replica` and the local demo's `client replica`: reads
    /// and cross-checks the files (the config, hosts.ini, the catalog the config names), sets up this process's
    /// logging and metrics, and runs the replica until SIGINT/SIGTERM. Only an executable's entry point calls it.
    public static func main(configPath: String, hostsPath: String, name: String) async throws {
        ProcessRuntime.adoptOneEventLoop()
        let cluster = try ConfigFiles.loadCluster(path: configPath)
        let hosts = try ConfigFiles.loadHosts(path: hostsPath)
        let catalog = try CatalogFile.read(path: cluster.catalogPath)
        let process = try ReplicaProcess(cluster: cluster, hosts: hosts, catalog: catalog, replicaName: name)
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
