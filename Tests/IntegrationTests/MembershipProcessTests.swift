import Foundation
import LedgerClient
import LedgerCore
import LedgerRPC
import Paxos
import Testing

/// Membership changes on real processes, made with `shardctl member` while transfers run: a replica that died with
/// its disk is replaced by a new one (added as a learner, caught up from the others, swapped in by one change), the
/// cluster grows to four voters, and then loses its leader, which hands over and whose process exits on its own.
/// Afterwards hosts.ini records every change, the replicas still in the cluster hold identical balances, and no money
/// was made or lost.
@Suite(.serialized, .sharesMachine) struct MembershipProcessTests {
    static let accounts = 40
    static let initialBalance: Int64 = 10

    /// Runs `shardctl` (a change waits at most 60 s) and expects it to succeed; returns what it printed.
    static func shardctl(_ arguments: [String], _ deployment: TestDeployment) throws -> String {
        let run = try deployment.tool("shardctl", arguments + ["--timeout", "60"])
        #expect(run.status == 0, "shardctl \(arguments.joined(separator: " ")) exited \(run.status):\n\(run.output)")
        return run.output
    }

    /// C1 of three replicas (S1, S2, S3) running, with two spare replicas (S4, S5).
    static func startedCluster() throws -> TestDeployment {
        let deployment = try TestDeployment(
            clusters: 1, accountsPerCluster: accounts, initialBalance: initialBalance, consensusTimeout: "2000ms",
            spareReplicas: 2)
        try deployment.start(["S1", "S2", "S3"])
        return deployment
    }

    /// Once `replicas` applied all the leader knows chosen, each holds every account, the same balances as the others,
    /// and all the money.
    static func expectIdenticalBalances(
        _ client: ClusterClient, replicas: [ReplicaID], _ deployment: TestDeployment
    ) async throws {
        let leader = try await deployment.waitForLeader(client, within: .seconds(30))
        let chosen = try await client.status(of: leader).chosenThrough
        var balances: [ReplicaID: [Int64?]] = [:]
        for replica in replicas {
            try await deployment.waitUntilApplied(client, replica: replica, through: chosen, within: .seconds(30))
            for account in 1...accounts {
                balances[replica, default: []].append(
                    try await client.localBalance(of: AccountID(UInt64(account)), at: replica).balance)
            }
        }
        let first = try #require(balances[replicas[0]])
        #expect(first.allSatisfy { $0 != nil })
        #expect(first.compactMap { $0 }.reduce(0, +) == Int64(accounts) * initialBalance)
        for replica in replicas.dropFirst() { #expect(balances[replica] == first, "\(replica) differs") }
    }

    @Test(.timeLimit(.minutes(5))) func replaceAWipedReplicaGrowAndRemoveTheLeaderUnderLoad() async throws {
        let deployment = try Self.startedCluster()
        defer { deployment.stopAll() }
        func shardctl(_ arguments: [String]) throws -> String { try Self.shardctl(arguments, deployment) }

        try await ClusterClient.with(
            cluster: "C1", addresses: deployment.addresses(of: "C1"), security: try deployment.security()
        ) { client in
            _ = try await deployment.waitForLeader(client, within: .seconds(30))
            try await deployment.waitForAccounts(client, replicas: client.replicas, within: .seconds(30))
            let load = Load(client: client, accounts: Self.accounts)
            let transfers = Task { await load.run() }

            // S3 dies with its disk; S4 takes its place.
            deployment.kill(ReplicaID(3))
            try FileManager.default.removeItem(at: deployment.directory.appendingPathComponent("data/C1/S3.sqlite"))
            let port4 = deployment.ports["S4"]!
            let added = try shardctl(["member", "add", "S4", "--cluster", "C1", "--address", "127.0.0.1:\(port4)"])
            #expect(added.contains("C1: S4 is a learner"), "\(added)")
            try deployment.start(["S4"])
            let replaced = try shardctl(["member", "replace", "S3", "--with", "S4"])
            #expect(replaced.contains("C1: S4 votes in S3's place"), "\(replaced)")
            #expect(replaced.contains("epoch 3: voters S1 S2 S4"), "\(replaced)")

            // Grow to four voters, then remove whichever replica leads.
            let port5 = deployment.ports["S5"]!
            _ = try shardctl(["member", "add", "S5", "--cluster", "C1", "--address", "127.0.0.1:\(port5)"])
            try deployment.start(["S5"])
            let promoted = try shardctl(["member", "promote", "S5"])
            #expect(promoted.contains("epoch 5: voters S1 S2 S4 S5"), "\(promoted)")
            let leader = try await deployment.waitForLeader(
                client, among: [ReplicaID(1), ReplicaID(2)], within: .seconds(30))
            let removed = try shardctl(["member", "remove", leader.description])
            #expect(removed.contains("C1: \(leader) is removed"), "\(removed)")
            let exit = deployment.waitForExit(leader, within: .seconds(30))
            #expect(
                exit?.status == 0, "the removed leader \(leader) did not stop by itself: \(String(describing: exit))")

            // The cluster keeps committing with its new voters.
            let before = load.committed
            try await Task.sleep(for: .seconds(2))
            transfers.cancel()
            let totals = await transfers.value
            #expect(load.committed > before, "no transfer committed after the leader's removal")
            print("membership: \(totals.committed) transfers committed, \(totals.failed) not, during the changes")
        }

        // hosts.ini says who is in the cluster now; every process started from it reaches the new members.
        let cluster = try #require(try deployment.deployment().hosts.cluster(named: "C1"))
        #expect(cluster.added == ["S4", "S5"])
        #expect(cluster.removed.count == 2 && cluster.removed.first == "S3")
        let remaining = cluster.reachable.map { ReplicaID(Int($0.dropFirst())!) }
        #expect(remaining.count == 3)
        let listing = try shardctl(["member", "list"])
        let lines = listing.split(separator: "\n")
        for replica in remaining {
            #expect(lines.contains { $0.hasPrefix("\(replica) ") && $0.contains(" voter ") }, "\(listing)")
        }
        let addresses = remaining.map {
            ClusterClient.Address(replica: $0, host: "127.0.0.1", port: deployment.ports[$0.description]!)
        }
        try await ClusterClient.with(cluster: "C1", addresses: addresses, security: try deployment.security()) {
            client in
            try await Self.expectIdenticalBalances(client, replicas: remaining, deployment)
        }
    }
}

extension MembershipProcessTests {
    /// A cluster grows from three voters to five and back to its first three while transfers run: each new replica is
    /// added as a learner, caught up and promoted; then both are removed. The three first replicas end identical, the
    /// removed ones stop by themselves, and no money was made or lost.
    @Test(.timeLimit(.minutes(5))) func growFromThreeToFiveAndBackUnderLoad() async throws {
        let deployment = try Self.startedCluster()
        defer { deployment.stopAll() }
        func shardctl(_ arguments: [String]) throws -> String { try Self.shardctl(arguments, deployment) }
        try await ClusterClient.with(
            cluster: "C1", addresses: deployment.addresses(of: "C1"), security: try deployment.security()
        ) { client in
            _ = try await deployment.waitForLeader(client, within: .seconds(30))
            try await deployment.waitForAccounts(client, replicas: client.replicas, within: .seconds(30))
            let load = Load(client: client, accounts: Self.accounts)
            let transfers = Task { await load.run() }
            for replica in ["S4", "S5"] {
                let port = deployment.ports[replica]!
                _ = try shardctl(["member", "add", replica, "--cluster", "C1", "--address", "127.0.0.1:\(port)"])
                try deployment.start([replica])
                _ = try shardctl(["member", "promote", replica])
            }
            let five = try shardctl(["member", "list"])
            #expect(five.contains("voters S1 S2 S3 S4 S5"), "\(five)")
            for replica in ["S4", "S5"] {
                let removed = try shardctl(["member", "remove", replica])
                #expect(removed.contains("C1: \(replica) is removed"), "\(removed)")
                let exit = deployment.waitForExit(ReplicaID(Int(replica.dropFirst())!), within: .seconds(30))
                #expect(exit?.status == 0, "\(replica) did not stop by itself: \(String(describing: exit))")
            }
            let three = try shardctl(["member", "list"])
            #expect(three.contains("epoch 7: voters S1 S2 S3;"), "\(three)")
            let before = load.committed
            try await Task.sleep(for: .seconds(1))
            transfers.cancel()
            let totals = await transfers.value
            #expect(load.committed > before, "no transfer committed once the cluster was back to three")
            print("membership 3-5-3: \(totals.committed) transfers committed, \(totals.failed) not, during the changes")

            try await Self.expectIdenticalBalances(client, replicas: client.replicas, deployment)
        }
    }
}

/// Transfers between random accounts, one at a time per worker, until cancelled.
private final class Load: @unchecked Sendable {
    let client: ClusterClient
    let accounts: Int
    private let lock = NSLock()
    private var counts = (committed: 0, failed: 0)

    init(client: ClusterClient, accounts: Int) {
        self.client = client
        self.accounts = accounts
    }

    var committed: Int { lock.withLock { counts.committed } }

    func run() async -> (committed: Int, failed: Int) {
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    var random = SeededRandom(seed: UInt64(worker) + 1)
                    var sequence: UInt64 = 0
                    while !Task.isCancelled {
                        sequence += 1
                        let from = UInt64.random(in: 1...UInt64(self.accounts), using: &random)
                        let to = from % UInt64(self.accounts) + 1
                        let outcome = await self.client.transfer(
                            TransactionID(client: 500 + UInt64(worker), sequence: sequence), from: AccountID(from),
                            to: AccountID(to), amount: Amount(1), contact: self.client.replicas[worker % 2],
                            deadline: .now + .seconds(10))
                        self.lock.withLock {
                            if case .applied(.committed) = outcome {
                                self.counts.committed += 1
                            } else {
                                self.counts.failed += 1
                            }
                        }
                    }
                }
            }
        }
        return lock.withLock { counts }
    }
}
