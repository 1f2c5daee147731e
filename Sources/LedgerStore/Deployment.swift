import Foundation
import LedgerCore

/// Every cluster of a `hosts.ini`, with its config read from `<cluster>.yaml` in the same folder (`configs/C1.yaml`
/// beside `configs/hosts.ini`): what the client, `shardctl` and the local demo need to know about the deployment.
///
/// Invariants: every cluster of `hosts` has a config that agrees with it, and all of them name the same catalog and
/// the same TLS settings; the replicas of one address (a node) get one peer port, or none, from every cluster, and
/// no two nodes of a host share one.
public struct Deployment: Sendable {
    public var hostsPath: String
    public var hosts: HostsFile
    /// In the order of `hosts.clusters`.
    public var clusters: [ClusterConfig]

    /// The shard catalog every cluster config names.
    public var catalogPath: String { clusters[0].catalogPath }

    /// The transport security every cluster config gives (one CA for the deployment).
    public var tls: ClusterConfig.TLS { clusters[0].tls }

    /// The config file of `cluster`, beside hosts.ini.
    public static func configPath(of cluster: String, hostsPath: String) -> String {
        URL(fileURLWithPath: hostsPath).deletingLastPathComponent().appendingPathComponent("\(cluster).yaml")
            .relativePath(from: hostsPath)
    }

    /// Reads hosts.ini and the config of each cluster it names; refuses a missing config, one that disagrees with
    /// hosts.ini, configs that name different catalogs or different TLS settings, and peer ports that disagree.
    public static func load(hostsPath: String) throws(InputError) -> Deployment {
        let hosts = try ConfigFiles.loadHosts(path: hostsPath)
        guard !hosts.clusters.isEmpty else {
            throw InputError(source: hostsPath, message: "names no cluster; add lines like EC1-S1:S2:S3 and C1-S1")
        }
        var clusters: [ClusterConfig] = []
        for entry in hosts.clusters {
            let path = configPath(of: entry.name, hostsPath: hostsPath)
            let config = try ConfigFiles.loadCluster(path: path)
            try config.check(against: hosts)
            guard config.clusterName == entry.name else {
                throw InputError(
                    source: path, message: "configures cluster \(config.clusterName), but its name says \(entry.name)")
            }
            if let first = clusters.first, first.catalogPath != config.catalogPath {
                throw InputError(
                    source: path,
                    message:
                        "names the catalog \(config.catalogPath), but \(first.source) names \(first.catalogPath); "
                        + "every cluster routes with the same catalog")
            }
            if let first = clusters.first, first.tls != config.tls {
                throw InputError(
                    source: path,
                    line: config.keyLines["tls"],
                    message:
                        "gives tls \(config.tls.summary), but \(first.source) gives \(first.tls.summary); every "
                        + "cluster of a deployment uses the same certificates")
            }
            clusters.append(config)
        }
        try checkPeerPorts(clusters, hosts: hosts)
        return Deployment(hostsPath: hostsPath, hosts: hosts, clusters: clusters)
    }

    /// A node is one process with one peer port: the clusters that put replicas on one address must give it the same
    /// peer port, or all none; and two nodes of a host cannot both take a port.
    static func checkPeerPorts(_ clusters: [ClusterConfig], hosts: HostsFile) throws(InputError) {
        var byAddress: [HostsFile.Address: (port: Int?, replica: String, source: String)] = [:]
        var byPort: [HostsFile.Address: (node: HostsFile.Address, replica: String, source: String)] = [:]
        let shown = { (port: Int?) in port.map { "peer port \($0)" } ?? "no peer port" }
        for cluster in clusters {
            let names = hosts.cluster(named: cluster.clusterName)?.replicas ?? cluster.replicaNames
            for index in names.compactMap({ hosts.replica(named: $0)?.index }) {
                guard let address = hosts.replica(named: "S\(index)")?.address else { continue }
                let port = cluster.peerPort(ofReplica: index)
                if let other = byAddress[address], other.port != port {
                    throw InputError(
                        source: cluster.source, line: cluster.keyLines["peer_port"],
                        message:
                            "gives S\(index) \(shown(port)), but \(other.source) gives \(other.replica) \(shown(other.port)); "
                            + "they share the address \(address), so one node, which takes its peers' messages on one "
                            + "port")
                }
                byAddress[address] = (port, "S\(index)", cluster.source)
                guard let port else { continue }
                let peerAddress = HostsFile.Address(host: address.host, port: port)
                if let other = byPort[peerAddress], other.node != address {
                    throw InputError(
                        source: cluster.source, line: cluster.keyLines["peer_port"],
                        message:
                            "gives S\(index) the peer port \(port) on \(address.host), which \(other.source) gives "
                            + "\(other.replica), a replica of another node (\(other.node))")
                }
                byPort[peerAddress] = (address, "S\(index)", cluster.source)
            }
        }
    }
}

extension URL {
    /// This file's path written like `reference` was: relative when the reference path was relative.
    fileprivate func relativePath(from reference: String) -> String {
        guard !reference.hasPrefix("/") else { return path }
        let base = FileManager.default.currentDirectoryPath + "/"
        return path.hasPrefix(base) ? String(path.dropFirst(base.count)) : path
    }
}
