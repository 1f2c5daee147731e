import LedgerClient
import LedgerCore
import LedgerRPC
import Paxos
import ServiceLifecycle
import Synchronization

/// The other clusters of the deployment, as a replica reaches them about the cross-shard transactions it shares with
/// them (DESIGN §5.3, §5.5). One set of long-lived connections per cluster, run as a service of the replica's group.
/// It follows the address book (`update`): a cluster added by `shardctl cluster add` gets connections while the
/// replica runs, and a cluster whose replicas changed gets new ones (the old ones close).
final class ClusterDirectory: OtherClusters, Service {
    private let asker: String
    /// How long one question may take: the home cluster answers within its consensus timeout when it has a quorum.
    private let patience: Duration
    private let security: ConnectionSecurity
    /// The replicas of other clusters that this process hosts.
    private let neighbours: Neighbours
    private let entries: Mutex<[String: Entry]>
    /// Connections made by `update`, for `run` to run.
    private let added = AsyncStream.makeStream(of: ClusterConnections.self)

    private struct Entry {
        var addresses: [ClusterClient.Address]
        var connections: ClusterConnections
        var contact: ReplicaID?
    }

    init(
        asker: String, hosts: HostsFile, patience: Duration, security: ConnectionSecurity,
        neighbours: Neighbours = Neighbours()
    ) throws {
        self.asker = asker
        self.patience = patience
        self.security = security
        self.neighbours = neighbours
        var entries: [String: Entry] = [:]
        for cluster in hosts.clusters where cluster.name != asker {
            entries[cluster.name] = try Self.entry(of: cluster, in: hosts, security: security)
        }
        self.entries = Mutex(entries)
    }

    private static func entry(of cluster: HostsFile.Cluster, in hosts: HostsFile, security: ConnectionSecurity)
        throws -> Entry
    {
        let addresses = self.addresses(of: cluster, in: hosts)
        return Entry(
            addresses: addresses,
            connections: try ClusterConnections(cluster: cluster.name, addresses: addresses, security: security),
            contact: hosts.replica(named: cluster.contact).map { ReplicaID($0.index) })
    }

    private static func addresses(of cluster: HostsFile.Cluster, in hosts: HostsFile) -> [ClusterClient.Address] {
        cluster.reachable.compactMap { name in
            hosts.replica(named: name).map {
                ClusterClient.Address(replica: ReplicaID($0.index), host: $0.host, port: $0.port)
            }
        }
    }

    /// Takes the address book as it reads now: connects to clusters not known yet, and anew to clusters whose
    /// reachable replicas changed. A cluster no longer in it keeps its connections: transactions it shares with this
    /// one may still need its answers (a drained cluster is removed only once it has none, and stops later).
    func update(hosts: HostsFile) throws {
        var replaced: [ClusterConnections] = []
        var made: [ClusterConnections] = []
        try entries.withLock { entries in
            for cluster in hosts.clusters where cluster.name != asker {
                if let known = entries[cluster.name], known.addresses == Self.addresses(of: cluster, in: hosts) {
                    entries[cluster.name]?.contact = hosts.replica(named: cluster.contact).map { ReplicaID($0.index) }
                    continue
                }
                let entry = try Self.entry(of: cluster, in: hosts, security: security)
                if let known = entries[cluster.name] { replaced.append(known.connections) }
                entries[cluster.name] = entry
                made.append(entry.connections)
            }
        }
        for connections in made { added.continuation.yield(connections) }
        for connections in replaced { connections.shutdown() }
    }

    /// The client of `cluster` and the replica to ask first.
    private func client(of cluster: String) -> (client: ClusterClient, contact: ReplicaID)? {
        entries.withLock { entries in
            guard let entry = entries[cluster], let contact = entry.contact ?? entry.connections.client.replicas.first
            else { return nil }
            return (entry.connections.client, contact)
        }
    }

    func reports(of ids: [TransactionID], at cluster: String) async -> [TransactionID: LedgerState.Report]? {
        guard let (client, contact) = client(of: cluster) else { return nil }
        var reports: [TransactionID: LedgerState.Report] = [:]
        for start in stride(from: 0, to: ids.count, by: WireLimits.commandsPerBatchMax) {
            let chunk = Array(ids[start..<min(start + WireLimits.commandsPerBatchMax, ids.count)])
            guard
                let answers = await client.transactionStatusBatch(
                    of: chunk, contact: contact, deadline: .now + patience, linearizable: true)
            else { return nil }
            for (id, answer) in zip(chunk, answers) { reports[id] = answer.clusterReport }
        }
        return reports
    }

    func finalReports(of ids: [TransactionID], at cluster: String) async -> [TransactionID: LedgerState.Report]? {
        guard let (client, contact) = client(of: cluster) else { return nil }
        guard let answers = await client.transactionStatusBatch(of: ids, contact: contact, deadline: .now + patience)
        else { return nil }
        var reports: [TransactionID: LedgerState.Report] = [:]
        for (id, answer) in zip(ids, answers) where answer.report.isFinal { reports[id] = answer.report }
        return reports
    }

    func neighbourReports(of ids: [TransactionID], at cluster: String) async -> [TransactionID: LedgerState.Report] {
        await neighbours.replica(of: cluster)?.settledReports(of: ids) ?? [:]
    }

    func decision(of id: TransactionID, home: String) async -> CommandResult? {
        guard let (client, contact) = client(of: home) else { return nil }
        let outcome = await client.decision(
            of: id, asker: asker, contact: contact, deadline: .now + patience)
        switch outcome {
        case .applied(.committed): return .committed
        case .applied(.aborted(let reason)): return .aborted(reason)
        default: return nil
        }
    }

    /// Keeps the connections up until the replica shuts down, those `update` makes included (with no other cluster,
    /// it just waits: ending early would end the replica's whole service group).
    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for entry in entries.withLock({ Array($0.values) }) {
                group.addTask { try await entry.connections.run() }
            }
            await withGracefulShutdownHandler {
                for await connections in added.stream { group.addTask { try await connections.run() } }
            } onGracefulShutdown: {
                self.added.continuation.finish()
            }
            for entry in entries.withLock({ Array($0.values) }) { entry.connections.shutdown() }
            try await group.waitForAll()
        }
    }
}

/// The replicas one node process hosts, by cluster: where a replica's questions about another cluster's transactions
/// are answered first (`OtherClusters.neighbourReports`). Held weakly: each replica holds its directory, which holds
/// this.
final class Neighbours: Sendable {
    private let replicas = Mutex<[String: Weak]>([:])

    private struct Weak {
        weak var replica: ReplicaNode?
    }

    func add(_ replica: ReplicaNode) {
        replicas.withLock { $0[replica.cluster] = Weak(replica: replica) }
    }

    func replica(of cluster: String) -> ReplicaNode? {
        replicas.withLock { $0[cluster]?.replica }
    }
}
