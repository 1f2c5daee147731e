import ArgumentParser
import Foundation
import LedgerClient
import LedgerCore
import LedgerStore

/// `shardctl cluster`: clusters joining and leaving a running deployment. Argument parsing and wiring; the work is
/// `ClusterTool`.
struct Cluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add a cluster to the deployment, or drain one and take it out.",
        discussion: """
            A cluster added owns nothing: `shardctl rebalance --fill C4` plans the moves that give it its share, and \
            `client rebalance` applies them. Draining a cluster moves every account it holds to the others while \
            transfers go on, waits until nothing waits on it, and takes it out of the catalog, hosts.ini and the \
            configs; its replicas may be stopped then. Both can be run again: what is done already is not done twice.
            """,
        subcommands: [Add.self, Drain.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a cluster that owns nothing: its config, its lines in hosts.ini and its certificates.",
            discussion: """
                Writes <cluster>.yaml beside hosts.ini with the settings of the last cluster there (ports shifted by \
                the difference of the first replica indexes, unless given), appends the cluster to hosts.ini, and \
                makes the replicas' certificates when the deployment uses TLS. Running nodes read hosts.ini again \
                within a second and reach the new cluster. Then start it and fill it, as the command prints.
                """
        )

        @Argument(help: "The new cluster's name, like C4.") var cluster: String

        @Option(help: "Its replicas, consecutive new names separated by \":\", like S10:S11:S12.")
        var replicas: String

        @Option(help: "The host its replicas listen on (default: the last cluster's).")
        var host: String?

        @Option(help: "The first replica's port; the others follow (default: the last cluster's rule).")
        var port: Int?

        @Option(help: "The first replica's peer port, 0 for none (default: the last cluster's rule).")
        var peerPort: Int?

        @Option(help: "The first replica's metrics port, 0 for none (default: the last cluster's rule).")
        var metricsPort: Int?

        @Option(help: "The address book; the cluster configs <cluster>.yaml sit beside it.")
        var hosts = "configs/hosts.ini"

        func run() throws {
            let added = try ClusterTool.add(
                ClusterTool.NewCluster(
                    name: cluster, replicas: replicas.split(separator: ":").map(String.init), host: host, port: port,
                    peerPort: peerPort, metricsPort: metricsPort),
                hostsPath: hosts)
            for line in added.lines { print(line) }
            print("start it:  cluster \(added.configPath) \(hosts)")
            print(
                "fill it:   shardctl rebalance --fill \(cluster) --hosts \(hosts)  then  client rebalance new-schema.txt"
            )
        }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move every account of a cluster to the others, then take it out of the deployment.",
            discussion: """
                Plans moves from the committed history (accounts go, busiest first, to the cluster they transacted \
                with most; the rest even the others out), refused if the others cannot take them within \
                --max-imbalance. Marks the cluster draining in the catalog (no plan moves accounts into it), applies \
                the moves while transfers go on, waits until the cluster holds nothing and no cluster waits on it, \
                then removes it from the catalog and hosts.ini and renames its config <cluster>.yaml.drained.
                """
        )

        @Argument(help: "The cluster to drain, like C2.") var cluster: String

        @Option(help: "How far a remaining cluster's size may end above the mean size, as a fraction of it.")
        var maxImbalance = 0.05

        @Option(help: "How long to wait, after the moves, for the transactions that involve the cluster to settle.")
        var timeout: Int = 60

        @Option(help: "The address book; the cluster configs <cluster>.yaml sit beside it.")
        var hosts = "configs/hosts.ini"

        @Option(help: "The certificate to present (an operator's).")
        var identity = LedgerConnection.operatorIdentity

        func validate() throws {
            try checkImbalance(maxImbalance)
            guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        }

        func run() async throws {
            let deployment = try Deployment.load(hostsPath: hosts)
            let catalog = try CatalogFile.read(path: deployment.catalogPath)
            let progress = ProgressLine()
            let lines = try await LedgerConnection.with(deployment: deployment, catalog: catalog, as: identity) {
                connection in
                try await ClusterTool.drain(
                    cluster, connection: connection, options: RebalancePlanner.Options(maxImbalance: maxImbalance),
                    within: .seconds(timeout)
                ) { progress.show($0) }
            }
            progress.clear()
            for line in lines { print(line) }
        }
    }
}
