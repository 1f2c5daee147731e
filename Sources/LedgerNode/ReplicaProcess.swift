import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerClient
import LedgerCore
import LedgerRPC
import LedgerStore
import Logging
import Paxos
import Prometheus
import ServiceLifecycle

/// One replica as its node runs it, checked against its config files: its cluster's config, the address book, the
/// catalog, and its certificate. `NodeProcess` runs one or more of them.
public struct ReplicaProcess: Sendable {
    public let cluster: ClusterConfig
    public let hosts: HostsFile
    public let catalog: Catalog
    /// The accounts this cluster creates if it starts with an empty ledger: the catalog's view, moves included.
    let accounts: [ClosedRange<AccountID>]
    public let replica: HostsFile.Replica
    /// This replica's certificate and the CA, read and checked at start; plaintext only where the config says so.
    public let security: ConnectionSecurity

    /// Checks the files against each other and picks the replica; every problem is an `InputError` naming the file.
    public init(cluster: ClusterConfig, hosts: HostsFile, catalog: Catalog, replicaName: String) throws(InputError) {
        try cluster.check(against: hosts)
        try catalog.shards.check(against: hosts)
        let entry = hosts.cluster(named: cluster.clusterName)
        let names = entry?.replicas ?? cluster.replicaNames
        guard names.contains(replicaName), let replica = hosts.replica(named: replicaName) else {
            throw InputError(
                source: cluster.source,
                message: "\(replicaName) is not a replica of \(cluster.clusterName) (\(names.joined(separator: ", ")))")
        }
        guard entry?.removed.contains(replicaName) != true else {
            throw InputError(
                source: hosts.source,
                message:
                    "\(replicaName) was removed from \(cluster.clusterName) (an RC line); a removed replica never comes "
                    + "back: add a new one under a new name with `shardctl member add`")
        }
        accounts = catalog.accounts(of: cluster.clusterName)
        guard accounts.count <= CodecLimits.rangesPerCommandMax else {
            throw InputError(
                source: cluster.catalogPath,
                message:
                    "gives \(cluster.clusterName) \(accounts.count) separate account ranges; a cluster that starts empty "
                    + "creates at most \(CodecLimits.rangesPerCommandMax). Start it with its data, or rebuild the catalog"
            )
        }
        self.cluster = cluster
        self.hosts = hosts
        self.catalog = catalog
        self.replica = replica
        security = try ConnectionSecurity.load(cluster.tls, as: replica.name)
    }

    /// The replica's SQLite file.
    public var databasePath: String { "\(cluster.dataDirectory)/\(replica.name).sqlite" }

    /// The Paxos timings of the config, in ticks, with the cluster's contact as its preferred leader.
    public var configuration: Configuration {
        var configuration = cluster.paxosConfiguration(ofReplica: replica.index)
        // The cluster's contact in hosts.ini leads when it can: clients try it first, and contacts on different nodes
        // spread the leaders over the nodes.
        configuration.preferredLeader = hosts.cluster(named: cluster.clusterName)
            .flatMap { hosts.replica(named: $0.contact) }.map { ReplicaID($0.index) }
        return configuration
    }

    /// A prepared transaction is in doubt after this many consensus timeouts. A live coordinator needs at most two
    /// steps (prepare, then commit at the home), each at most `LedgerConnection.stepTimeoutsMax` consensus
    /// timeouts, so recovery never races a coordinator that is only slow.
    static let inDoubtTimeoutsMax: Tick = 5

    /// Catch-up snapshots travel in one message; the default 4 MiB would refuse a large shard's history.
    static let requestPayloadMax = 256 * 1024 * 1024

    /// NIO's IPv4 target wants an address: the config's `localhost` means the loopback address.
    static func numericHost(_ host: String) -> String { host == "localhost" ? "127.0.0.1" : host }
}

/// The replica stopped because it could not continue (its storage failed).
public struct ReplicaStopped: Error, CustomStringConvertible {
    public var description: String
}

/// Runs a gRPC server as a service of the group.
struct ServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}

/// Ends the service group when fired: a replica's fatal failure, or the retirement of a node's only replica.
final class FailureSignal: Service, @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Void, Never>?
    private var fired: String?
    private var released = false

    var reason: String? { lock.withLock { fired } }

    func fire(_ reason: String) {
        lock.withLock {
            guard fired == nil else { return }
            fired = reason
        }
        release()
    }

    private func release() {
        lock.withLock {
            continuation?.resume()
            continuation = nil
        }
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await withCheckedContinuation { continuation in
                lock.withLock {
                    if fired != nil || released { continuation.resume() } else { self.continuation = continuation }
                }
            }
        } onGracefulShutdown: {
            self.lock.withLock { self.released = true }
            self.release()
        }
    }
}
