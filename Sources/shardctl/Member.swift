import ArgumentParser
import Foundation
import LedgerClient
import LedgerCore
import LedgerRPC
import LedgerStore
import Paxos

/// `shardctl member`: a cluster's membership while it runs. Argument parsing and wiring; the work is `MemberTool`
/// (the calls) and `HostsFileEdit` (hosts.ini).
struct Member: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, add, promote, remove and replace the replicas of a running cluster.",
        discussion: """
            A new replica joins as a learner (it receives the log and votes nowhere), catches up, and becomes a voter \
            by `promote` or by taking a removed voter's place in one change (`replace`). The cluster's leader makes \
            each change through its log, one at a time, and refuses one after which fewer than a majority of the \
            voters would be live and caught up. hosts.ini records each replica added (`AC` lines) and removed (`RC` \
            lines), so every process started later, and every running node, knows where the members are; a removed \
            replica's name is never used again. Every command can be run again: a change in effect already is \
            reported as done.
            """,
        subcommands: [List.self, Add.self, Promote.self, Remove.self, Replace.self]
    )

    /// The options every member command takes.
    struct Common: ParsableArguments {
        @Option(help: "The address book; the cluster configs <cluster>.yaml sit beside it.")
        var hosts = "configs/hosts.ini"

        @Option(help: "How long to wait for a change (a learner catching up, an election, a change in progress).")
        var timeout: Int = 60

        @Option(help: "The certificate to present (an operator's).")
        var identity = LedgerConnection.operatorIdentity

        func validate() throws {
            guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        }

        var deadline: ContinuousClock.Instant { .now + .seconds(timeout) }

        /// Runs `body` with a member tool connected to every cluster of `deployment`.
        func withTool<Result: Sendable>(
            _ deployment: Deployment, _ body: (MemberTool) async throws -> Result
        ) async throws -> Result {
            let catalog = try CatalogFile.read(path: deployment.catalogPath)
            let progress = ProgressLine()
            defer { progress.clear() }
            return try await LedgerConnection.with(deployment: deployment, catalog: catalog, as: identity) {
                try await body(MemberTool(connection: $0) { progress.show($0) })
            }
        }

        /// The cluster `replica` belongs to in hosts.ini, or `cluster` when given (which must agree).
        func cluster(of replica: String, given cluster: String?, in deployment: Deployment) throws -> String {
            let owner = deployment.hosts.cluster(of: replica)?.name
            if let cluster, let owner, cluster != owner {
                throw ValidationError("\(replica) is a replica of \(owner) in \(hosts), not of \(cluster)")
            }
            guard let name = cluster ?? owner else {
                throw ValidationError("\(replica) is not a replica of \(hosts); add it first (`shardctl member add`)")
            }
            return name
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each replica of a cluster: voter or learner, role, applied slot, and how far behind it is.")

        @OptionGroup var common: Common

        @Option(help: "Only this cluster (default: every cluster).")
        var cluster: String?

        func run() async throws {
            let deployment = try Deployment.load(hostsPath: common.hosts)
            let names = cluster.map { [$0] } ?? deployment.hosts.clusterNames
            try await common.withTool(deployment) { tool in
                for name in names {
                    let listing = try await tool.list(cluster: name)
                    print(listing.lines.joined(separator: "\n"))
                }
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a new replica to a cluster as a learner, and print the command that starts it.",
            discussion: """
                Appends the replica and its address to hosts.ini (an S line and an AC line), makes its certificate \
                when the deployment uses TLS, and asks the cluster's leader to add it as a learner. Start it with the \
                command printed; once it caught up, `member promote` makes it a voter, or `member replace` swaps it \
                for a voter that leaves.
                """)

        @OptionGroup var common: Common

        @Argument(help: "The new replica's name, never used before, like S10.")
        var replica: String

        @Option(help: "The cluster it joins, like C1.")
        var cluster: String

        @Option(help: "Where it listens, host:port; the port follows the cluster config's replicas.subnet.")
        var address: String

        func run() async throws {
            let deployment = try Member.addToHosts(
                replica: replica, cluster: cluster, address: address, hostsPath: common.hosts)
            let ok = try await common.withTool(deployment) { tool in
                try await Member.report(
                    tool.change(.addLearner(try id(replica)), cluster: cluster, deadline: common.deadline),
                    cluster: cluster, done: "\(replica) is a learner")
            }
            let config = Deployment.configPath(of: cluster, hostsPath: common.hosts)
            print("start it where \(address) is: swift run cluster \(config) \(common.hosts) --replica \(replica)")
            print("then make it a voter: swift run shardctl member promote \(replica) --hosts \(common.hosts)")
            if !ok { throw ExitCode(1) }
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a learner a voter once it has caught up with the leader.")

        @OptionGroup var common: Common

        @Argument(help: "The learner, like S10.")
        var replica: String

        @Option(help: "Its cluster (default: the one hosts.ini gives it).")
        var cluster: String?

        func run() async throws {
            let deployment = try Deployment.load(hostsPath: common.hosts)
            let cluster = try common.cluster(of: replica, given: cluster, in: deployment)
            let learner = try id(replica)
            let ok = try await common.withTool(deployment) { tool in
                let deadline = common.deadline
                _ = try await tool.waitCaughtUp(learner, cluster: cluster, deadline: deadline)
                return try await Member.report(
                    tool.change(.promote(learner), cluster: cluster, deadline: deadline), cluster: cluster,
                    done: "\(replica) is a voter")
            }
            if !ok { throw ExitCode(1) }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a replica from its cluster for good (a leader hands over first).",
            discussion: """
                Refused when the voters left would be two, or fewer than a majority of them live and caught up. \
                Removing a replica that is down needs neither. The removed replica stops once it learns of its \
                removal; hosts.ini records it (an RC line), and its name is never used again.
                """)

        @OptionGroup var common: Common

        @Argument(help: "The replica, like S3.")
        var replica: String

        @Option(help: "Its cluster (default: the one hosts.ini gives it).")
        var cluster: String?

        func run() async throws {
            let deployment = try Deployment.load(hostsPath: common.hosts)
            let cluster = try common.cluster(of: replica, given: cluster, in: deployment)
            let ok = try await common.withTool(deployment) { tool in
                try await Member.report(
                    tool.change(.remove(try id(replica)), cluster: cluster, deadline: common.deadline),
                    cluster: cluster, done: "\(replica) is removed")
            }
            guard ok else { throw ExitCode(1) }
            try Member.recordRemoval(of: replica, from: cluster, in: deployment)
        }
    }

    struct Replace: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace a voter (a dead one, say) by a new replica: add it as a learner, wait, swap.",
            discussion: """
                With --address, adds the new replica first (as `member add`) and waits, up to --timeout, for it to be \
                started and catch up; without, the new replica must be a learner already. Then one change makes it a \
                voter in the old one's place, and hosts.ini records the removal.
                """)

        @OptionGroup var common: Common

        @Argument(help: "The voter that leaves, like S3.")
        var replica: String

        @Option(name: .customLong("with"), help: "The replica that takes its place, like S10.")
        var replacement: String

        @Option(help: "Where the new replica listens, when it is not in hosts.ini yet.")
        var address: String?

        @Option(help: "The cluster (default: the one hosts.ini gives the leaving replica).")
        var cluster: String?

        func run() async throws {
            var deployment = try Deployment.load(hostsPath: common.hosts)
            let cluster = try common.cluster(of: replica, given: cluster, in: deployment)
            if let address {
                deployment = try Member.addToHosts(
                    replica: replacement, cluster: cluster, address: address, hostsPath: common.hosts)
            } else {
                _ = try common.cluster(of: replacement, given: cluster, in: deployment)
            }
            let (old, new) = (try id(replica), try id(replacement))
            let deadline = common.deadline
            let ok = try await common.withTool(deployment) { tool in
                if address != nil {
                    let added = try await tool.change(.addLearner(new), cluster: cluster, deadline: deadline)
                    guard Member.report(added, cluster: cluster, done: "\(replacement) is a learner") else {
                        return false
                    }
                    let config = Deployment.configPath(of: cluster, hostsPath: common.hosts)
                    print(
                        "start it where \(address!) is, if it is not running: swift run cluster \(config) "
                            + "\(common.hosts) --replica \(replacement)")
                }
                let lag = try await tool.waitCaughtUp(new, cluster: cluster, deadline: deadline)
                guard let lag, lag <= Limits.caughtUpSlotsMax else {
                    print(
                        "\(replacement) has not caught up within \(common.timeout) s ("
                            + (lag.map { "\($0) slots behind" } ?? "never heard from")
                            + "); is it running? Nothing else changed; run the command again once it runs")
                    return false
                }
                return try Member.report(
                    await tool.change(.replace(old, with: new), cluster: cluster, deadline: deadline),
                    cluster: cluster, done: "\(replacement) votes in \(replica)'s place")
            }
            guard ok else { throw ExitCode(1) }
            try Member.recordRemoval(of: replica, from: cluster, in: deployment)
        }
    }

    /// Puts `replica` at `address` into `cluster` in hosts.ini, unless it is there already with that address; its
    /// certificate too, when the deployment uses TLS. Returns the deployment as it reads afterwards.
    static func addToHosts(replica: String, cluster: String, address text: String, hostsPath: String) throws
        -> Deployment
    {
        let deployment = try Deployment.load(hostsPath: hostsPath)
        _ = try id(replica)
        guard deployment.hosts.cluster(named: cluster) != nil else {
            throw ValidationError(
                "\(hostsPath) has no cluster \(cluster); its clusters are "
                    + deployment.hosts.clusterNames.joined(separator: ", "))
        }
        // The address as hosts.ini would read it, with the same checks and messages.
        let address = try HostsFile.parse("\(replica)-\(text)\nEC1-\(replica)", source: "--address").replicas[0]
            .address
        var updated = deployment
        if let existing = deployment.hosts.replica(named: replica) {
            guard deployment.hosts.cluster(named: cluster)?.added.contains(replica) == true,
                existing.address == address
            else {
                throw ValidationError(
                    "\(replica) is in \(hostsPath) already (line \(existing.line): \(existing.address), cluster "
                        + "\(deployment.hosts.cluster(of: replica)?.name ?? "none")); a new replica needs a new name")
            }
            print("\(replica) at \(address) is in \(hostsPath) already")
        } else {
            if let node = deployment.hosts.nodes.first(where: { $0.address == address }) {
                throw ValidationError(
                    "\(address) is node \(node.name)'s (\(node.replicas.joined(separator: ", "))), and a running node "
                        + "takes no new replica; give \(replica) an address of its own")
            }
            updated = try HostsFileEdit.add(
                replica: replica, address: address, to: cluster, path: hostsPath)
            print("\(hostsPath): \(replica) at \(address) added to \(cluster)")
        }
        if case .mutual(let files) = updated.tls {
            let report = try Certificates.issueDeployment(hosts: updated.hosts, files: files, force: false)
            for entry in report.entries where entry.holder == replica && entry.outcome != .kept {
                print("\(entry.certificatePath), \(entry.keyPath): \(entry.outcome.rawValue) for \(entry.holder)")
            }
        }
        return updated
    }

    /// Writes the removal of `replica` into hosts.ini, unless it is recorded already.
    static func recordRemoval(of replica: String, from cluster: String, in deployment: Deployment) throws {
        guard deployment.hosts.cluster(named: cluster)?.removed.contains(replica) != true else { return }
        _ = try HostsFileEdit.remove(replica: replica, from: cluster, path: deployment.hostsPath)
        print("\(deployment.hostsPath): \(replica) recorded as removed from \(cluster)")
    }

    /// Prints what became of a change; true when it is in effect.
    static func report(_ answer: MembershipChangeOutcome, cluster: String, done: String) -> Bool {
        let now = answer.membership.map { "; \(cluster) is now \($0)" } ?? ""
        switch answer.outcome {
        case .applied(.committed):
            print(answer.slot.map { "\(cluster): \(done) (slot \($0))\(now)" } ?? "\(cluster): \(done) already\(now)")
            return true
        case .failed(.membershipRefused(let reason)):
            print("\(cluster): refused: \(reason); nothing changed\(now)")
        case .failed(let failure):
            print("\(cluster): \(failure)\(now)")
        case .applied(let result):
            print("\(cluster): \(result)\(now)")
        }
        return false
    }
}

/// A replica name as a replica id; a bad name is a usage error.
private func id(_ name: String) throws -> ReplicaID {
    do {
        return try ReplicaID(wireName: name)
    } catch {
        throw ValidationError("\"\(name)\" is not a replica name; write S and a number from 1, like S10")
    }
}
