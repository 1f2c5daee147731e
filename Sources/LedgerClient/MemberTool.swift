import Foundation
import LedgerCore
import LedgerRPC
import Paxos

/// What `shardctl member` asks of a running cluster, as an operator: its members with their progress, one
/// membership change at a time (asked again while the leader refuses it for now only: another change in progress,
/// the new voters not caught up yet, an election), and waiting for a learner to catch up.
public struct MemberTool: Sendable {
    public let connection: LedgerConnection
    /// Where a line of progress goes while a command waits.
    let progress: @Sendable (String) -> Void

    public init(connection: LedgerConnection, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.connection = connection
        self.progress = progress
    }

    /// How often a waiting command asks again.
    static let pollInterval = Duration.milliseconds(200)

    /// One replica of `member list`.
    public struct Row: Sendable, Equatable {
        public var replica: String
        public var address: String
        /// `voter`, `learner`, `removed`, or `-` (not in the latest configuration, never removed: added to hosts.ini
        /// but not to the log yet).
        public var member: String
        /// Its status, nil when it did not answer.
        public var status: ReplicaStatus?
        /// How many slots its chosen prefix is behind the leader's (nil when unknown).
        public var lag: UInt64?
    }

    /// A cluster as `member list` shows it.
    public struct Listing: Sendable, Equatable {
        public var cluster: String
        /// The latest configuration, as the leader (else the best-informed replica that answered) knows it.
        public var membership: Membership?
        public var leader: ReplicaStatus?
        public var rows: [Row]

        /// The table `member list` prints.
        public var lines: [String] {
            var header = "\(cluster): " + (membership.map { "\($0)" } ?? "no replica answered")
            if let leader { header += "; leader \(leader.replica), chosen through \(leader.chosenThrough)" }
            let table =
                [["replica", "address", "member", "role", "applied", "lag"]]
                + rows.map { row in
                    [
                        row.replica, row.address, row.member,
                        row.status.map { $0.isRetired ? "retired" : "\($0.role)" } ?? "unreachable",
                        row.status.map { "\($0.appliedThrough)" } ?? "-", row.lag.map(String.init) ?? "-",
                    ]
                }
            let widths = (0..<6).map { column in table.map { $0[column].count }.max()! }
            return [header]
                + table.map { cells in
                    zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
                        .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
                }
        }
    }

    /// Every replica hosts.ini puts in `cluster` (first members and added ones), each asked for its status.
    public func list(cluster name: String) async throws(InputError) -> Listing {
        let (client, entry) = try cluster(name)
        let hosts = connection.deployment.hosts
        let statuses = await withTaskGroup(of: (String, ReplicaStatus?).self) { group in
            for replica in entry.replicas {
                group.addTask {
                    guard let id = try? ReplicaID(wireName: replica) else { return (replica, nil) }
                    return (replica, try? await client.status(of: id))
                }
            }
            var statuses: [String: ReplicaStatus] = [:]
            for await (replica, status) in group { statuses[replica] = status }
            return statuses
        }
        let leader = statuses.values.filter { $0.role == .leader && !$0.isRetired }.max { $0.ballot < $1.ballot }
        let informed = leader ?? statuses.values.max { $0.chosenThrough < $1.chosenThrough }
        let membership = informed?.membership
        let rows = entry.replicas.map { replica -> Row in
            let status = statuses[replica]
            let id = try? ReplicaID(wireName: replica)
            let member =
                if let id, membership?.isVoter(id) == true {
                    "voter"
                } else if let id, membership?.learners.contains(id) == true {
                    "learner"
                } else if entry.removed.contains(replica) || status?.isRetired == true {
                    "removed"
                } else {
                    "-"
                }
            var lag: UInt64?
            if let leader, let id, member != "removed" {
                let chosen = id == leader.replica ? leader.chosenThrough : leader.progress[id] ?? status?.chosenThrough
                lag = chosen.map { leader.chosenThrough - min(leader.chosenThrough, $0) }
            }
            return Row(
                replica: replica, address: hosts.replica(named: replica).map { "\($0.address)" } ?? "?",
                member: member, status: status, lag: lag)
        }
        return Listing(cluster: name, membership: membership, leader: leader, rows: rows)
    }

    /// Makes `change` at `cluster`: asks the leader, and asks again while it refuses for now only, no leader answers,
    /// or the outcome is unknown, until `deadline`. Returns the last answer, which is final unless the deadline came.
    public func change(_ change: MembershipChange, cluster name: String, deadline: ContinuousClock.Instant)
        async throws(InputError) -> MembershipChangeOutcome
    {
        let (client, entry) = try cluster(name)
        let contact = connection.contact(of: name) ?? (try? ReplicaID(wireName: entry.contact)) ?? client.replicas[0]
        var last = MembershipChangeOutcome(outcome: .failed(.noQuorum), membership: nil, slot: nil)
        while ContinuousClock.now < deadline {
            if let answer = await client.changeMembership(change, contact: contact, deadline: deadline) {
                last = answer
                switch answer.outcome {
                case .failed(.membershipRefused(let reason)) where MembershipChangeRefusal.isTransient(reason):
                    progress("\(change): \(reason); asking again")
                case .failed(.noQuorum), .failed(.timedOut), .failed(.notLeader), .failed(.busy):
                    progress("\(change): \(answer.outcome); asking again")
                default:
                    return answer
                }
            }
            try? await Task.sleep(for: Self.pollInterval)
        }
        return last
    }

    /// Waits until the leader of `cluster` reports `replica` within `Limits.caughtUpSlotsMax` slots of its chosen
    /// prefix (what a promotion needs), showing the lag meanwhile. Returns the last lag seen (nil: never known).
    public func waitCaughtUp(_ replica: ReplicaID, cluster name: String, deadline: ContinuousClock.Instant)
        async throws(InputError) -> UInt64?
    {
        var lag: UInt64?
        while ContinuousClock.now < deadline {
            let listing = try await list(cluster: name)
            lag = listing.rows.first { $0.replica == replica.description }?.lag
            if let lag, lag <= Limits.caughtUpSlotsMax { return lag }
            progress("\(replica) catching up: " + (lag.map { "\($0) slots behind the leader" } ?? "lag unknown yet"))
            try? await Task.sleep(for: Self.pollInterval)
        }
        return lag
    }

    private func cluster(_ name: String) throws(InputError) -> (ClusterClient, HostsFile.Cluster) {
        guard let client = connection.cluster(name), let entry = connection.deployment.hosts.cluster(named: name) else {
            throw InputError(
                source: connection.deployment.hostsPath,
                message:
                    "has no cluster \(name); its clusters are \(connection.deployment.hosts.clusterNames.joined(separator: ", "))"
            )
        }
        return (client, entry)
    }
}
