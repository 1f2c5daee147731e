import GRPCCore
import LedgerCore
import Paxos

/// Reads the committed history of the deployment for the rebalance planner: the datastore of one replica per cluster
/// (its contact first, then the other members in turn), joined into one `TransferHistory`.
public struct HistoryReader: Sendable {
    public let connection: LedgerConnection

    public init(connection: LedgerConnection) {
        self.connection = connection
    }

    /// A cluster none of whose replicas gave its datastore: without it the history would be lopsided.
    public struct Unreachable: Error, CustomStringConvertible {
        public var description: String
    }

    /// The history, and the replica read in each cluster, in hosts.ini order. `progress` gets one line per cluster.
    public func read(progress: (String) -> Void = { _ in }) async throws(Unreachable) -> (
        history: TransferHistory, replicas: [ReplicaID]
    ) {
        var datastores: [String: [DatastoreRecord]] = [:]
        var replicas: [ReplicaID] = []
        for cluster in connection.clusters {
            let contact = connection.contact(of: cluster.cluster)
            var problems: [String] = []
            for replica in [contact].compactMap(\.self) + cluster.replicas.filter({ $0 != contact }) {
                do {
                    datastores[cluster.cluster] = try await cluster.datastore(of: replica)
                    replicas.append(replica)
                    progress("\(cluster.cluster): \(datastores[cluster.cluster]!.count) records from \(replica)")
                    break
                } catch let error as RPCError {
                    // The code says enough (`unavailable`, `deadlineExceeded`); the transport's text runs long.
                    problems.append("\(replica): \(error.code)")
                } catch {
                    problems.append("\(replica): \(error)")
                }
            }
            guard datastores[cluster.cluster] != nil else {
                throw Unreachable(
                    description:
                        "cluster \(cluster.cluster): no replica gave its committed history "
                        + "(\(problems.joined(separator: "; ")))")
            }
        }
        return (TransferHistory(datastores: datastores), replicas)
    }
}
