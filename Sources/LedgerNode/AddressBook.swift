import Foundation
import LedgerCore
import LedgerStore
import Logging
import Paxos
import ServiceLifecycle
import Synchronization

/// The deployment's address book as a running node knows it: hosts.ini as read at start, replaced whole each time
/// the file changes (`AddressBookWatcher`), because `shardctl member add` appends the replicas it adds to it. The
/// node's services read it on every call: who may send peer messages (`AccessPolicy`), and which replicas belong to
/// each hosted cluster. Who votes is the log's business, not the address book's.
final class AddressBook: Sendable {
    /// The file, the policy it gives, and each cluster's replicas by id (the peer inbox asks for every batch).
    private let state: Mutex<(hosts: HostsFile, policy: AccessPolicy, replicas: [String: Set<ReplicaID>])>
    /// This node: its address and the replicas it hosts, fixed for the life of the process.
    let node: HostsFile.Node
    private let testControlsEnabled: Bool

    init(hosts: HostsFile, node: HostsFile.Node, testControlsEnabled: Bool) {
        self.node = node
        self.testControlsEnabled = testControlsEnabled
        state = Mutex(Self.entries(hosts, node: node, testControlsEnabled: testControlsEnabled))
    }

    private static func entries(_ hosts: HostsFile, node: HostsFile.Node, testControlsEnabled: Bool) -> (
        hosts: HostsFile, policy: AccessPolicy, replicas: [String: Set<ReplicaID>]
    ) {
        let replicas = Dictionary(
            uniqueKeysWithValues: hosts.clusters.map { cluster in
                (
                    cluster.name,
                    Set(cluster.replicas.compactMap { hosts.replica(named: $0).map { ReplicaID($0.index) } })
                )
            })
        return (hosts, AccessPolicy(hosts: hosts, node: node, testControlsEnabled: testControlsEnabled), replicas)
    }

    var hosts: HostsFile { state.withLock { $0.hosts } }

    var policy: AccessPolicy { state.withLock { $0.policy } }

    func replace(with hosts: HostsFile) {
        let entries = Self.entries(hosts, node: node, testControlsEnabled: testControlsEnabled)
        state.withLock { $0 = entries }
    }

    /// Whether `replica` is or was in `cluster` (a first member or an added one).
    func isReplica(_ replica: ReplicaID, of cluster: String) -> Bool {
        state.withLock { $0.replicas[cluster]?.contains(replica) == true }
    }
}

/// Reads hosts.ini again whenever it changes (its modification time or size), checks it against the configs of the
/// clusters this node hosts, and hands a good one to the node (`apply`); a bad one is logged with its file:line
/// error and the node keeps the address book it has. Polls once a second: a replica added by `shardctl member add`
/// is reachable within about a second, with no signal to send and nothing to restart.
final class AddressBookWatcher: Service {
    static let interval = Duration.seconds(1)

    private let path: String
    private let clusters: [ClusterConfig]
    private let logger: Logger
    private let apply: @Sendable (HostsFile) -> Void

    init(path: String, clusters: [ClusterConfig], logger: Logger, apply: @escaping @Sendable (HostsFile) -> Void) {
        self.path = path
        self.clusters = clusters
        self.logger = logger
        self.apply = apply
    }

    /// What tells one version of the file from the next.
    private func stamp() -> [String]? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return ["\(attributes[.modificationDate] ?? "")", "\(attributes[.size] ?? "")"]
    }

    func run() async throws {
        // Cancelled when the group shuts down, which ends the sleep at once.
        await cancelWhenGracefulShutdown { await self.watch() }
    }

    private func watch() async {
        var seen = stamp()
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.interval)
            let now = stamp()
            guard now != seen, now != nil else { continue }
            seen = now
            do throws(InputError) {
                let hosts = try ConfigFiles.loadHosts(path: path)
                for cluster in clusters { try cluster.check(against: hosts) }
                apply(hosts)
                logger.notice("address book read again", metadata: ["file": "\(path)"])
            } catch {
                logger.error("address book not taken; keeping the one before", metadata: ["error": "\(error)"])
            }
        }
    }
}
