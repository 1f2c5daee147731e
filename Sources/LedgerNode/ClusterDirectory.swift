import LedgerClient
import LedgerCore
import LedgerRPC
import Paxos
import ServiceLifecycle
import Synchronization

/// The other clusters of the deployment, as a replica reaches them about the cross-shard transactions it shares with
/// them (DESIGN §5.3, §5.5). One set of long-lived connections per cluster, run as a service of the replica's group.
final class ClusterDirectory: OtherClusters, Service {
    private let asker: String
    private let connections: [String: ClusterConnections]
    private let contacts: [String: ReplicaID]
    /// How long one question may take: the home cluster answers within its consensus timeout when it has a quorum.
    private let patience: Duration
    /// The replicas of other clusters that this process hosts.
    private let neighbours: Neighbours

    init(
        asker: String, hosts: HostsFile, patience: Duration, security: ConnectionSecurity,
        neighbours: Neighbours = Neighbours()
    ) throws {
        self.asker = asker
        self.patience = patience
        self.neighbours = neighbours
        var connections: [String: ClusterConnections] = [:]
        var contacts: [String: ReplicaID] = [:]
        for cluster in hosts.clusters where cluster.name != asker {
            let addresses = cluster.reachable.compactMap { name in
                hosts.replica(named: name).map {
                    ClusterClient.Address(replica: ReplicaID($0.index), host: $0.host, port: $0.port)
                }
            }
            connections[cluster.name] = try ClusterConnections(
                cluster: cluster.name, addresses: addresses, security: security)
            contacts[cluster.name] = hosts.replica(named: cluster.contact).map { ReplicaID($0.index) }
        }
        self.connections = connections
        self.contacts = contacts
    }

    func reports(of ids: [TransactionID], at cluster: String) async -> [TransactionID: LedgerState.Report]? {
        guard let client = connections[cluster]?.client, let contact = contacts[cluster] ?? client.replicas.first else {
            return nil
        }
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
        guard let client = connections[cluster]?.client, let contact = contacts[cluster] ?? client.replicas.first else {
            return nil
        }
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
        guard let client = connections[home]?.client, let contact = contacts[home] ?? client.replicas.first else {
            return nil
        }
        let outcome = await client.decision(
            of: id, asker: asker, contact: contact, deadline: .now + patience)
        switch outcome {
        case .applied(.committed): return .committed
        case .applied(.aborted(let reason)): return .aborted(reason)
        default: return nil
        }
    }

    /// Keeps the connections up until the replica shuts down (with no other cluster, it just waits: ending early
    /// would end the replica's whole service group).
    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in connections.values { group.addTask { try await connection.run() } }
            try? await gracefulShutdown()
            for connection in connections.values { connection.shutdown() }
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
