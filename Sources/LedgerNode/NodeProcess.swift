import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerClient
import LedgerCore
import LedgerRPC
import LedgerStore
import Logging
import Metrics
import Paxos
import Prometheus
import ServiceLifecycle

/// Everything one node process runs: a node hosts the replicas that hosts.ini gives one address (at most one per
/// cluster; a replica with an address of its own is a node of one). Per replica: its store, its `ReplicaNode`, its
/// ticker, its view of the other clusters and its metrics endpoint. Shared by all of them: one gRPC server on the
/// node's address (client and peer APIs, each request routed by the cluster it names), the peer port when the
/// clusters give one (`PeerFrameServer`), one outbound connection to each other node carrying every hosted replica's
/// peer messages (`PeerLinks`), one event loop, which is also every hosted replica's executor. All under one
/// `ServiceGroup` that shuts down gracefully on SIGINT or SIGTERM.
public struct NodeProcess: Sendable {
    public let hosts: HostsFile
    /// The node, with the replicas this process runs.
    public let node: HostsFile.Node
    public let replicas: [ReplicaProcess]
    /// The certificate of the node's first replica, which speaks for all of them (`AccessPolicy`).
    public var security: ConnectionSecurity { replicas[0].security }

    /// Checks that the replicas share one address of `hosts` and one TLS setting.
    public init(replicas: [ReplicaProcess]) throws(InputError) {
        guard let first = replicas.first, let node = first.hosts.node(of: first.replica.name) else {
            throw InputError(source: "", message: "a node needs at least one replica")
        }
        for replica in replicas.dropFirst() {
            guard node.replicas.contains(replica.replica.name) else {
                throw InputError(
                    source: first.hosts.source, line: replica.replica.line,
                    message:
                        "\(replica.replica.name) listens on \(replica.replica.address), not on \(node.address) with "
                        + "\(first.replica.name); one process hosts the replicas of one address")
            }
            guard replica.cluster.tls == first.cluster.tls else {
                throw InputError(
                    source: replica.cluster.source, line: replica.cluster.keyLines["tls"],
                    message:
                        "gives tls \(replica.cluster.tls.summary), but \(first.cluster.source) gives "
                        + "\(first.cluster.tls.summary); the replicas of a node share its connections")
            }
        }
        self.hosts = first.hosts
        self.replicas = replicas.sorted { $0.replica.index < $1.replica.index }
        self.node = HostsFile.Node(
            name: node.name, index: node.index, address: node.address, replicas: self.replicas.map(\.replica.name))
    }

    /// The file of the node's replica stores: a replica's own (`<data_dir>/S<n>.sqlite`) in a node of one; for a node
    /// of several, one file in its first replica's `data_dir`, `<data_dir>/N<k>.sqlite`, whose one transaction and
    /// fsync carry the writes of every replica it hosts (group commit, `StoreFile`).
    public var databasePath: String {
        replicas.count == 1 ? replicas[0].databasePath : "\(replicas[0].cluster.dataDirectory)/\(node.name).sqlite"
    }

    /// The node's peer port, when its clusters give one.
    public var peerPort: Int? {
        replicas.first.flatMap { $0.cluster.peerPort(ofReplica: $0.replica.index) }
    }

    /// The other nodes this node's replicas talk to, with the replicas of each they talk to: every other replica that
    /// `hosts` puts in a hosted cluster, added ones included (the log decides who votes; a replica it no longer
    /// counts is simply sent nothing).
    func destinations(in hosts: HostsFile) -> [PeerLinks.Destination] {
        var destinations: [PeerLinks.Destination] = []
        for replica in replicas {
            let names = hosts.cluster(named: replica.cluster.clusterName)?.replicas ?? []
            for address in names.compactMap(hosts.replica(named:)) where address.name != replica.replica.name {
                let peer = ReplicaID(address.index)
                let host = ReplicaProcess.numericHost(address.host)
                if let index = destinations.firstIndex(where: { $0.host == host && $0.port == address.port }) {
                    destinations[index].replicas.append(peer)
                } else {
                    destinations.append(
                        PeerLinks.Destination(
                            host: host, port: address.port,
                            peerPort: replica.cluster.peerPort(ofReplica: peer.index), replicas: [peer]))
                }
            }
        }
        return destinations
    }

    /// Runs until SIGINT/SIGTERM, or until a replica's storage fails (then throws: the node stops, and with it every
    /// replica it hosts, as a crash of the machine would).
    public func run(logger: Logger, registry: PrometheusCollectorRegistry) async throws {
        let links = try PeerLinks(
            destinations: destinations(in: hosts), hostedCount: replicas.count, security: security, logger: logger)
        let book = AddressBook(
            hosts: hosts, node: node, testControlsEnabled: replicas.contains { $0.cluster.testControlsEnabled })
        let failure = FailureSignal()
        // A node of one replica ends when the log removes it; a node of several keeps serving the others.
        let retirement = FailureSignal()
        var endpoints: [ReplicaEndpoint] = []
        var peerEndpoints: [PeerInbox.Hosted] = []
        var services: [any Service] = [links]
        let identities = replicas.map {
            ReplicaStore.Identity(
                cluster: $0.cluster.clusterName, replica: $0.replica.name, minBalance: $0.cluster.balanceMin)
        }
        let stores =
            replicas.count == 1
            ? try ReplicaStore.open(path: databasePath, replicas: identities)
            : try ReplicaStore.open(
                path: databasePath, replicas: identities, importing: replicas.map(\.databasePath))
        let neighbours = Neighbours()
        var directories: [ClusterDirectory] = []
        for (index, replica) in replicas.enumerated() {
            let cluster = replica.cluster
            var logger = logger
            logger[metadataKey: "replica"] = "\(replica.replica.name)"
            logger[metadataKey: "cluster"] = "\(cluster.clusterName)"
            logger.logLevel = Logger.Level(rawValue: cluster.logLevel.rawValue) ?? .info
            // A node of one replica keeps the metrics in the process's registry, unlabelled, as they always were; a
            // node of several gives each replica a registry of its own, served on its own metrics port.
            let own = replicas.count == 1 ? registry : PrometheusCollectorRegistry()
            let factory = PrometheusMetricsFactory(registry: own)
            let (store, recovered) = stores[index]
            if let own = recovered.importedFrom {
                logger.notice(
                    "store imported",
                    metadata: ["file": "\(store.path)", "from": "\(own)", "renamed": "\(own).imported"])
            }
            if let version = recovered.migratedFrom {
                logger.notice(
                    "store migrated",
                    metadata: [
                        "file": "\(store.path)", "from schema": "\(version)",
                        "to schema": "\(ReplicaStore.schemaVersion)",
                    ])
            }
            logger.info(
                "recovered",
                metadata: [
                    "file": "\(store.path)", "applied": "\(recovered.durable.appliedThrough)",
                    "promised": "\(recovered.durable.promised)",
                ])
            let configuration = replica.configuration
            let linkFaults = LinkFaultLayer(peers: configuration.peers, factory: factory)
            let otherClusters = try ClusterDirectory(
                asker: cluster.clusterName, hosts: hosts, patience: cluster.paxos.consensusTimeout * 2,
                security: security, neighbours: neighbours)
            let node = ReplicaNode(
                cluster: cluster.clusterName, configuration: configuration, store: store, recovered: recovered,
                peers: links.sender(cluster: cluster.clusterName, me: configuration.me, faults: linkFaults),
                accounts: replica.accounts, initialBalance: cluster.balanceInitial,
                seed: UInt64.random(in: .min ... .max), logger: logger, otherClusters: otherClusters,
                inDoubtTicksMax: configuration.consensusTimeoutTicks * ReplicaProcess.inDoubtTimeoutsMax,
                metricsFactory: factory, onFailure: { failure.fire($0) },
                onRetired: { [count = replicas.count] reason in if count == 1 { retirement.fire(reason) } })
            neighbours.add(node)
            directories.append(otherClusters)
            endpoints.append(
                ReplicaEndpoint(
                    node: node, catalog: replica.catalog, testControlsEnabled: cluster.testControlsEnabled,
                    linkFaults: linkFaults, logger: logger))
            peerEndpoints.append(PeerInbox.Hosted(node: node, linkFaults: linkFaults))
            services += [otherClusters, Ticker(node: node, interval: cluster.paxos.tick)]
            if let port = cluster.metricsPort(ofReplica: replica.replica.index) {
                services.append(
                    MetricsServer(
                        host: cluster.metricsHost, port: port, registries: own === registry ? [own] : [own, registry]))
            }
        }
        let policy: @Sendable () -> AccessPolicy = { book.policy }
        let speaks: @Sendable (String, String) -> Bool = { replica, identity in
            book.policy.speaks(as: replica, identity: identity)
        }
        let inbox = PeerInbox(
            replicas: peerEndpoints, isMember: { book.isReplica($0, of: $1) },
            speaks: security.identity == nil ? nil : speaks, logger: logger)
        let process = self
        services.append(
            AddressBookWatcher(path: hosts.source, clusters: replicas.map(\.cluster), logger: logger) {
                [directories] hosts in
                book.replace(with: hosts)
                links.update(destinations: process.destinations(in: hosts))
                for directory in directories {
                    do {
                        try directory.update(hosts: hosts)
                    } catch {
                        logger.error("cannot connect to the clusters of \(hosts.source): \(error)")
                    }
                }
            })
        let server = GRPCServer(
            transport: .http2NIOPosix(
                address: .ipv4(host: ReplicaProcess.numericHost(node.address.host), port: node.address.port),
                transportSecurity: security.server,
                config: .defaults {
                    $0.rpc.maxRequestPayloadSize = ReplicaProcess.requestPayloadMax
                    // Every reply is a whole batch already: holding its flush only delays it (`transport-probe`).
                    $0.connection.flushCoalescing = nil
                    $0.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
                        DeadPaths.bound(channel).flatMap { HandshakeRefusals.install(on: channel, logger: logger) }
                    }
                }),
            services: [
                LedgerService(endpoints: endpoints),
                PeerService(inbox: inbox),
            ],
            interceptors: security.identity == nil ? [] : [AccessControl(policy: policy, logger: logger)])
        if security.identity == nil {
            logger.warning(
                """
                TLS is off: this node accepts every call, Paxos messages and test controls included, from anyone \
                who reaches its port. Turn it on with a tls: section in \(replicas[0].cluster.source)
                """)
        }
        // The group stops its services last to first, each after the one before has returned: the server first, so
        // the calls under way are answered while the peer links and the tickers still run.
        services += [failure, retirement, ServerService(server: server)]
        if let peerPort {
            // Before the gRPC server in the list, so it stops after it: the peers' connections end with the node.
            services.insert(
                PeerFrameServer(
                    host: ReplicaProcess.numericHost(node.address.host), port: peerPort, inbox: inbox,
                    policy: security.identity == nil ? nil : policy,
                    tls: try PeerFrame.tls(security, server: true)),
                at: services.count - 1)
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        logger.notice(
            "listening",
            metadata: [
                "address": "\(node.address)", "peer port": "\(peerPort.map(String.init) ?? "off")",
                "replicas": "\(node.replicas.joined(separator: ", "))",
                "metrics": "\(metricsURLs.joined(separator: ", "))",
            ])
        try await group.run()
        if let reason = failure.reason { throw ReplicaStopped(description: reason) }
        if let reason = retirement.reason { logger.notice("stopped: \(reason)") }
    }

    /// Where each hosted replica serves its metrics.
    var metricsURLs: [String] {
        replicas.map { replica in
            replica.cluster.metricsPort(ofReplica: replica.replica.index).map { port in
                MetricsServer.url(host: replica.cluster.metricsHost, port: port, machine: replica.replica.host)
            } ?? "off"
        }
    }
}
