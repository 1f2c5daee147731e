import Foundation
import LedgerCore
import LedgerRPC
import LedgerStore
import Paxos

/// What `shardctl cluster add` and `shardctl cluster drain` do: a cluster joins the deployment owning nothing (its
/// config, its hosts.ini lines, its certificates), and a cluster leaves it once every account it held lives elsewhere
/// and no other cluster waits on it.
public enum ClusterTool {
    // MARK: - Adding a cluster

    /// A cluster to add: its name, its replicas (consecutive new names, like `S10 S11 S12`), and where they listen.
    /// Ports not given follow the last cluster of hosts.ini, shifted by the difference of their first replica indexes
    /// (`configs/`: C3's S7 on 6007, peer port 7007, metrics 9107 gives C4's S10 6010, 7010, 9110).
    public struct NewCluster: Sendable {
        public var name: String
        public var replicas: [String]
        public var host: String?
        public var port: Int?
        public var peerPort: Int?
        public var metricsPort: Int?

        public init(
            name: String, replicas: [String], host: String? = nil, port: Int? = nil, peerPort: Int? = nil,
            metricsPort: Int? = nil
        ) {
            self.name = name
            self.replicas = replicas
            self.host = host
            self.port = port
            self.peerPort = peerPort
            self.metricsPort = metricsPort
        }
    }

    /// What `add` did, as lines to print, and the deployment as it reads afterwards.
    public struct Addition: Sendable {
        public var deployment: Deployment
        public var configPath: String
        public var lines: [String]
    }

    /// Adds `cluster` to the deployment of `hostsPath`: writes `<name>.yaml` beside it (the settings of the last
    /// cluster, with the new name, replicas, ports and data directory), appends its lines to hosts.ini (checked with
    /// the config before it replaces the file), and makes its replicas' certificates when the deployment uses TLS.
    /// The catalog needs nothing: a cluster of hosts.ini that owns no range owns nothing until accounts move to it.
    /// Running it again once done changes nothing; a name used before (by a replica or cluster, drained ones too) is
    /// refused with where.
    public static func add(_ cluster: NewCluster, hostsPath: String) throws(InputError) -> Addition {
        let deployment = try Deployment.load(hostsPath: hostsPath)
        let hosts = deployment.hosts
        guard number(of: cluster.name, prefix: "C") != nil else {
            throw InputError(
                source: "cluster add", message: "bad cluster name \"\(cluster.name)\"; write C and a number, like C4")
        }
        let indexes = try replicaIndexes(cluster.replicas)
        let configPath = Deployment.configPath(of: cluster.name, hostsPath: hostsPath)
        var lines: [String] = []
        var updated = deployment
        if let existing = hosts.cluster(named: cluster.name) {
            guard existing.members == cluster.replicas else {
                throw InputError(
                    source: hostsPath, line: existing.line,
                    message:
                        "cluster \(cluster.name) exists already, of \(existing.members.joined(separator: ", ")); "
                        + "a new cluster needs a new name")
            }
            lines.append("\(hostsPath): cluster \(cluster.name) is there already; nothing changed")
        } else {
            for name in [cluster.name] + cluster.replicas where hosts.isUsed(name) {
                let place = hosts.replica(named: name).map { " (line \($0.line))" } ?? ""
                throw InputError(
                    source: hostsPath,
                    message:
                        "\(name) is used already\(place) or was drained; names are never used again, so pick a new one")
            }
            guard !FileManager.default.fileExists(atPath: configPath) else {
                throw InputError(
                    source: configPath,
                    message: "exists already, but hosts.ini names no cluster \(cluster.name); move it away first")
            }
            let template = deployment.clusters.last!
            let shift = indexes[0] - template.replicaStart
            let host =
                cluster.host ?? hosts.replica(named: template.replicaNames[0])?.host ?? "localhost"
            let port = cluster.port ?? template.portBase + shift
            let peerPort = cluster.peerPort ?? (template.peerPortBase == 0 ? 0 : template.peerPortBase + shift)
            let metricsPort =
                cluster.metricsPort ?? (template.metricsPortBase == 0 ? 0 : template.metricsPortBase + shift)
            let text = try configText(
                from: template, name: cluster.name, start: indexes[0], count: indexes.count, port: port,
                peerPort: peerPort, metricsPort: metricsPort)
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: configPath), options: .withoutOverwriting)
            } catch {
                throw InputError(source: configPath, message: "cannot be written: \(error.localizedDescription)")
            }
            do {
                updated = try HostsFileEdit.add(
                    cluster: cluster.name,
                    replicas: cluster.replicas.enumerated().map { offset, name in
                        (name, HostsFile.Address(host: host, port: port + offset))
                    }, path: hostsPath)
            } catch {
                try? FileManager.default.removeItem(atPath: configPath)
                throw error
            }
            lines.append("\(configPath): written (replicas \(cluster.replicas.joined(separator: ", ")))")
            lines.append(
                "\(hostsPath): cluster \(cluster.name) added: "
                    + cluster.replicas.enumerated().map { "\($1) at \(host):\(port + $0)" }.joined(separator: ", "))
        }
        if case .mutual(let files) = updated.tls {
            let report = try Certificates.issueDeployment(hosts: updated.hosts, files: files, force: false)
            for entry in report.entries where cluster.replicas.contains(entry.holder) && entry.outcome != .kept {
                lines.append(
                    "\(entry.certificatePath), \(entry.keyPath): \(entry.outcome.rawValue) for \(entry.holder)")
            }
        }
        return Addition(deployment: updated, configPath: configPath, lines: lines)
    }

    /// The number of a name like `S10` or `C4` (from 1, no leading zero); nil for anything else.
    static func number(of name: String, prefix: String) -> Int? {
        guard name.hasPrefix(prefix) else { return nil }
        let digits = name.dropFirst(prefix.count)
        guard digits.first != "0", digits.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(digits),
            number >= 1
        else {
            return nil
        }
        return number
    }

    /// The indexes of `names`, which must be consecutive replica names (`S10 S11 S12`), an odd number of them.
    static func replicaIndexes(_ names: [String]) throws(InputError) -> [Int] {
        var indexes: [Int] = []
        for name in names {
            guard let index = number(of: name, prefix: "S") else {
                throw InputError(
                    source: "--replicas", message: "bad replica name \"\(name)\"; write S and a number, like S10")
            }
            indexes.append(index)
        }
        guard !indexes.isEmpty, indexes.count % 2 == 1 else {
            throw InputError(
                source: "--replicas",
                message: "a cluster has an odd number of replicas (1, 3, 5, ...), not \(indexes.count)")
        }
        guard zip(indexes, indexes.dropFirst()).allSatisfy({ $0 + 1 == $1 }) else {
            throw InputError(
                source: "--replicas",
                message:
                    "\(names.joined(separator: ":")) are not consecutive; a cluster's replicas are, like S10:S11:S12")
        }
        return indexes
    }

    /// The config of a new cluster: the text of `template`'s file with the keys that make it another cluster
    /// rewritten (their comments dropped, since they describe the template), under a header of its own.
    static func configText(
        from template: ClusterConfig, name: String, start: Int, count: Int, port: Int, peerPort: Int, metricsPort: Int
    ) throws(InputError) -> String {
        var lines = try ConfigFiles.readText(path: template.source).components(separatedBy: "\n")
        let directory = URL(fileURLWithPath: template.dataDirectory)
        let dataDirectory =
            directory.lastPathComponent == template.clusterName
            ? directory.deletingLastPathComponent().appendingPathComponent(name).relativePath(
                from: template.dataDirectory) : "\(template.dataDirectory)-\(name)"
        let values: [String: String] = [
            "cluster": name, "replicas.count": "\(count)", "replicas.start": "\(start)", "replicas.subnet": "\(port)",
            "data_dir": dataDirectory, "metrics_port": "\(metricsPort)", "peer_port": "\(peerPort)",
        ]
        for (key, value) in values {
            guard let line = template.keyLines[key], lines.indices.contains(line - 1) else { continue }
            let text = lines[line - 1]
            let indent = text.prefix { $0 == " " }
            lines[line - 1] = "\(indent)\(key.split(separator: ".").last!): \(value)"
        }
        let body = lines.drop { $0.hasPrefix("#") || $0.trimmingCharacters(in: .whitespaces).isEmpty }
        let names = (start..<start + count).map { "S\($0)" }.joined(separator: ", ")
        return """
            # Cluster \(name): replicas \(names), added by `shardctl cluster add` with the settings of \
            \(template.clusterName)'s config.
            # hosts.ini is the authority on addresses; the replica count, first index and base port here must agree with it.

            """ + body.joined(separator: "\n")
    }
}

extension ClusterTool {
    // MARK: - Draining a cluster

    /// How many times `drain` plans and applies the moves that are left (a move that meets a busy account gives up
    /// after its own retries; the next round takes it again).
    static let drainRoundsMax = 5
    /// How long `drain` waits for each cluster to show a leader before it refuses to start.
    static let leaderPatience = Duration.seconds(10)
    /// How often `drain` asks whether anything still waits on the drained cluster.
    static let drainPollInterval = Duration.milliseconds(200)

    /// Takes `cluster` out of the deployment that `connection` reaches (as an operator), while transfers go on:
    /// 1. refuses, changing nothing, unless every cluster shows a leader; plans moves of all its accounts to the
    ///    other clusters (`RebalancePlanner.drain`, from the committed history), refused with the reason when no
    ///    other cluster may take accounts;
    /// 2. marks it draining in the catalog, so no plan moves accounts into it, and applies the moves (recording
    ///    each in the catalog), planning again for what is left, up to `drainRoundsMax` rounds;
    /// 3. waits until its replicas hold no account and nothing prepared, and no replica of any cluster waits on it
    ///    (a transaction it is home of, undecided or not yet applied at another participant, or the other way round);
    /// 4. removes it from the catalog, then from hosts.ini (a `DC` line keeps its names from being used again), and
    ///    renames its config `<cluster>.yaml.drained`. Its replicas may then be stopped.
    /// Each step can be run again: a drain interrupted anywhere finishes when it is run again.
    public static func drain(
        _ cluster: String, connection: LedgerConnection, options: RebalancePlanner.Options, within limit: Duration,
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> [String] {
        let deployment = connection.deployment
        let catalogPath = deployment.catalogPath
        guard deployment.hosts.cluster(named: cluster) != nil else {
            if deployment.hosts.drained[cluster] != nil {
                return ["\(cluster) was drained and removed already; nothing changed"]
            }
            throw InputError(
                source: deployment.hostsPath,
                message:
                    "names no cluster \(cluster); its clusters are \(deployment.hosts.clusterNames.joined(separator: ", "))"
            )
        }
        var lines: [String] = []
        var catalog = try CatalogFile.read(path: catalogPath)
        if catalog.accountCount(of: cluster) > 0 {
            // Before anything changes: every cluster that takes part must have a leader.
            for client in connection.clusters
            where !catalog.draining.contains(client.cluster) || client.cluster == cluster {
                guard await hasLeader(client, within: leaderPatience) else {
                    throw InputError(
                        source: deployment.hostsPath,
                        message:
                            "cluster \(client.cluster) has no leader that answers; nothing changed (start its replicas, "
                            + "or wait for the election, and drain again)")
                }
            }
        }
        for round in 1...drainRoundsMax where catalog.accountCount(of: cluster) > 0 {
            let history = try await HistoryReader(connection: connection).read { progress("reading history: \($0)") }
                .history
            let plan = try RebalancePlanner.drain(
                cluster, history: history, catalog: catalog, clusters: deployment.hosts.clusterNames, options: options)
            if round == 1 {
                lines += plan.summary
                catalog = try CatalogFile.markDraining(cluster, at: catalogPath)
                lines.append("\(catalogPath): \(cluster) marked draining (version \(catalog.version))")
            }
            let total = plan.moves.count
            let report = try await connection.apply(plan.moves, catalogPath: catalogPath) { done in
                progress("round \(round): \(done) of \(total) accounts moved")
            }
            lines.append(
                "round \(round): \(report.moved) accounts moved, \(report.alreadyThere) there already, "
                    + "\(report.failed.count) not moved")
            catalog = try CatalogFile.read(path: catalogPath)
        }
        let left = catalog.accountCount(of: cluster)
        guard left == 0 else {
            throw InputError(
                source: catalogPath,
                message:
                    "\(cluster) still holds \(left) accounts after \(drainRoundsMax) rounds of moves; run the drain again "
                    + "(it goes on from here)")
        }
        try await waitUntilNothingWaits(on: cluster, connection: connection, within: limit, progress: progress)
        lines.append("\(cluster): holds no account and nothing prepared; no cluster waits on it")
        catalog = try CatalogFile.remove(cluster: cluster, at: catalogPath)
        lines.append("\(catalogPath): \(cluster) removed (version \(catalog.version))")
        _ = try HostsFileEdit.remove(cluster: cluster, path: deployment.hostsPath)
        lines.append("\(deployment.hostsPath): \(cluster) removed; its names are never used again")
        let config = Deployment.configPath(of: cluster, hostsPath: deployment.hostsPath)
        if FileManager.default.fileExists(atPath: config) {
            guard rename(config, config + ".drained") == 0 else {
                throw InputError(source: config, message: "cannot be renamed: \(String(cString: strerror(errno)))")
            }
            lines.append("\(config): renamed \(config).drained")
        }
        lines.append("\(cluster)'s replicas may be stopped now")
        return lines
    }

    /// Whether a replica of `client`'s cluster names a leader (itself or another) within `limit`.
    static func hasLeader(_ client: ClusterClient, within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            for replica in client.replicas {
                if let status = try? await client.status(of: replica), status.leader != nil { return true }
            }
            try? await Task.sleep(for: drainPollInterval)
        }
        return false
    }

    /// Waits until `cluster` holds no account and no lock on any replica that answers (a majority at least), its
    /// replicas wait on no cluster, and no replica of another cluster waits on it.
    static func waitUntilNothingWaits(
        on cluster: String, connection: LedgerConnection, within limit: Duration,
        progress: @Sendable (String) -> Void
    ) async throws {
        let deadline = ContinuousClock.now + limit
        while true {
            var waits: [String] = []
            for client in connection.clusters {
                var answered = 0
                for replica in client.replicas {
                    guard let status = try? await client.status(of: replica), !status.isRetired else { continue }
                    answered += 1
                    if client.cluster == cluster {
                        if status.accountsHeld > 0 { waits.append("\(replica) holds \(status.accountsHeld) accounts") }
                        if status.locksHeld > 0 { waits.append("\(replica) holds \(status.locksHeld) locks") }
                        if !status.waitingOn.isEmpty {
                            waits.append("\(replica) waits on \(status.waitingOn.joined(separator: ", "))")
                        }
                    } else if status.waitingOn.contains(cluster) {
                        waits.append("\(replica) of \(client.cluster) waits on \(cluster)")
                    }
                }
                if client.cluster == cluster, answered <= client.replicas.count / 2 {
                    waits.append("only \(answered) of \(client.replicas.count) replicas of \(cluster) answer")
                }
            }
            guard !waits.isEmpty else { return }
            guard ContinuousClock.now < deadline else {
                throw LedgerConnection.WaitTimedOut(
                    description: "after \(limit): \(waits.joined(separator: "; ")); run the drain again")
            }
            progress("waiting: \(waits.joined(separator: "; "))")
            try await Task.sleep(for: drainPollInterval)
        }
    }
}

extension RebalancePlanner.Refusal: LocalizedError {
    public var errorDescription: String? { description }
}

extension URL {
    /// The path of this file URL, written relative to the working directory when `original` was relative.
    fileprivate func relativePath(from original: String) -> String {
        guard !original.hasPrefix("/") else { return path }
        let base = FileManager.default.currentDirectoryPath
        return path.hasPrefix(base + "/") ? String(path.dropFirst(base.count + 1)) : path
    }
}
