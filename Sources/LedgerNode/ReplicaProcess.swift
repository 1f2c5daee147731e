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

/// Everything one replica process runs, assembled from its config files: the store, the `ReplicaNode`, the gRPC
/// server (client and peer APIs), the outbound peer streams, the ticker and the metrics endpoint, under one
/// `ServiceGroup` that shuts down gracefully on SIGINT or SIGTERM.
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
        guard cluster.replicaNames.contains(replicaName), let replica = hosts.replica(named: replicaName) else {
            throw InputError(
                source: cluster.source,
                message:
                    "\(replicaName) is not a replica of \(cluster.clusterName) (\(cluster.replicaNames.joined(separator: ", ")))"
            )
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

    /// Who may call this replica when TLS is on.
    var accessPolicy: AccessPolicy {
        AccessPolicy(
            cluster: cluster.clusterName, me: replica.name, members: Set(cluster.replicaNames),
            replicas: Set(hosts.replicas.map(\.name)), testControlsEnabled: cluster.testControlsEnabled)
    }

    /// The replica's SQLite file.
    public var databasePath: String { "\(cluster.dataDirectory)/\(replica.name).sqlite" }

    /// The Paxos timings of the config, in ticks.
    public var configuration: Configuration { cluster.paxosConfiguration(ofReplica: replica.index) }

    /// Runs until SIGINT/SIGTERM, or until the replica's storage fails (then throws).
    public func run(logger: Logger, registry: PrometheusCollectorRegistry) async throws {
        let (store, recovered) = try ReplicaStore.open(
            path: databasePath, cluster: cluster.clusterName, replica: replica.name, minBalance: cluster.balanceMin)
        if let version = recovered.migratedFrom {
            logger.notice(
                "store migrated",
                metadata: [
                    "file": "\(databasePath)", "from schema": "\(version)",
                    "to schema": "\(ReplicaStore.schemaVersion)",
                ])
        }
        logger.info(
            "recovered",
            metadata: [
                "file": "\(databasePath)", "applied": "\(recovered.durable.appliedThrough)",
                "promised": "\(recovered.durable.promised)",
            ])
        let configuration = self.configuration
        let linkFaults = LinkFaultLayer(peers: configuration.peers)
        let peers = PeerLinks(
            cluster: cluster.clusterName, me: configuration.me,
            peers: configuration.peers.map { peer in
                let address = hosts.replica(named: peer.description)!
                return PeerLinks.Peer(replica: peer, host: Self.numericHost(address.host), port: address.port)
            },
            security: security, faults: linkFaults, logger: logger)
        let failure = FailureSignal()
        let otherClusters = try ClusterDirectory(
            asker: cluster.clusterName, hosts: hosts, patience: cluster.paxos.consensusTimeout * 2, security: security)
        let node = ReplicaNode(
            cluster: cluster.clusterName, configuration: configuration, store: store, recovered: recovered,
            peers: peers, accounts: accounts, initialBalance: cluster.balanceInitial,
            seed: UInt64.random(in: .min ... .max), logger: logger, otherClusters: otherClusters,
            inDoubtTicksMax: configuration.consensusTimeoutTicks * Self.inDoubtTimeoutsMax,
            onFailure: { failure.fire($0) })
        let server = GRPCServer(
            transport: .http2NIOPosix(
                address: .ipv4(host: Self.numericHost(replica.host), port: replica.port),
                transportSecurity: security.server,
                config: .defaults {
                    $0.rpc.maxRequestPayloadSize = Self.requestPayloadMax
                    $0.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
                        HandshakeRefusals.install(on: channel, logger: logger)
                    }
                }),
            services: [
                LedgerService(
                    node: node, catalog: catalog, testControlsEnabled: cluster.testControlsEnabled,
                    linkFaults: linkFaults, logger: logger),
                PeerService(
                    node: node, members: configuration.members, linkFaults: linkFaults,
                    authenticatesSenders: security.identity != nil, logger: logger),
            ],
            interceptors: security.identity == nil ? [] : [AccessControl(policy: accessPolicy, logger: logger)])
        if security.identity == nil {
            logger.warning(
                """
                TLS is off: this replica accepts every call, Paxos messages and test controls included, from anyone \
                who reaches its port. Turn it on with a tls: section in \(cluster.source)
                """)
        }
        var services: [any Service] = [peers, otherClusters, Ticker(node: node, interval: cluster.paxos.tick), failure]
        if let metricsPort = cluster.metricsPort(ofReplica: replica.index) {
            services.append(MetricsServer(host: cluster.metricsHost, port: metricsPort, registry: registry))
        }
        // The group stops its services last to first, each after the one before has returned: the server first, so
        // the calls under way are answered while the peer links and the ticker still run.
        services.append(ServerService(server: server))
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        let metricsURL = cluster.metricsPort(ofReplica: replica.index).map { port in
            MetricsServer.url(host: cluster.metricsHost, port: port, machine: replica.host)
        }
        logger.notice(
            "listening",
            metadata: [
                "address": "\(replica.host):\(replica.port)",
                "metrics": "\(metricsURL ?? "off")",
            ])
        try await group.run()
        if let reason = failure.reason { throw ReplicaStopped(description: reason) }
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

/// Ends the service group when the replica reports a fatal failure.
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
