import ArgumentParser
import LedgerCore
import LedgerStore

/// `cluster configs/C1.yaml configs/hosts.ini`: checks a cluster's configuration against the address book and
/// (once the replica runtime lands) starts its replicas. Argument parsing and wiring only.
@main
struct Cluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a cluster's configuration and start its replicas.",
        discussion: """
            This build checks the configuration only: the replica runtime (SQLite, gRPC, supervisor) is not part \
            of it yet. With --check the command validates and exits 0; without it, it validates and then says so.
            """
    )

    @Argument(help: "The cluster config, e.g. configs/C1.yaml.")
    var config: String

    @Argument(help: "The address book, e.g. configs/hosts.ini.")
    var hosts: String

    @Option(help: "Run only this replica of the cluster, e.g. S2.")
    var replica: String?

    @Flag(help: "Only validate the configuration.")
    var check = false

    func run() throws {
        let cluster = try ConfigFiles.loadCluster(path: config)
        let addressBook = try ConfigFiles.loadHosts(path: hosts)
        try cluster.check(against: addressBook)
        if let replica, !cluster.replicaNames.contains(replica) {
            throw ValidationError(
                "--replica \(replica) is not a replica of \(cluster.clusterName) (\(cluster.replicaNames.joined(separator: ", ")))"
            )
        }
        print("\(cluster.clusterName): configuration valid (\(config), \(hosts))")
        for index in cluster.replicaIndexes where replica == nil || replica == "S\(index)" {
            let address = addressBook.replica(named: "S\(index)")!.address
            let metrics = cluster.metricsPort(ofReplica: index).map { "metrics :\($0)" } ?? "metrics off"
            print("  S\(index)  \(address)  \(metrics)  data \(cluster.dataDirectory)/S\(index)")
        }
        if !check {
            print("The replica runtime is not part of this build yet; nothing was started.")
            throw ExitCode(2)
        }
    }
}
