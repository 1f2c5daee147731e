import Foundation
import LedgerCore

/// The changes `shardctl member` makes to hosts.ini, so that every process started later (and every running node,
/// which reads the file again when it changes) knows the replicas added and removed: lines appended at the end,
/// the rest of the file kept as written, comments included. A change is checked before it is written (the new text
/// must load as a deployment with the cluster configs beside it) and written whole (a file beside it, renamed over
/// it): a reader sees the file before or after, never half of it.
public enum HostsFileEdit {
    /// Adds `replica` at `address` to `cluster` (an `S` line and an `AC` line; the `all` line, if any, gains it).
    /// Returns the deployment as it reads afterwards.
    public static func add(
        replica: String, address: HostsFile.Address, to cluster: String, path: String, now: Date = Date()
    ) throws(InputError) -> Deployment {
        let text = try ConfigFiles.readText(path: path)
        let lines = [
            "# \(stamp(now)) shardctl member add: \(replica) joins cluster \(cluster)",
            "\(replica)-\(address)",
            "A\(cluster)-\(replica)",
        ]
        return try write(appending(lines, to: withAll(text, including: replica)), to: path)
    }

    /// Records that `replica` left `cluster` for good (an `RC` line).
    public static func remove(replica: String, from cluster: String, path: String, now: Date = Date())
        throws(InputError)
        -> Deployment
    {
        let text = try ConfigFiles.readText(path: path)
        let lines = [
            "# \(stamp(now)) shardctl member remove: \(replica) left cluster \(cluster)", "R\(cluster)-\(replica)",
        ]
        return try write(appending(lines, to: text), to: path)
    }

    /// Adds the cluster `cluster` of `replicas` (names and addresses, the first its contact): `S` lines, its contact
    /// line and its `EC` line, the first configuration every replica of it derives its history from; the `all`
    /// line, if any, gains them. The cluster's config must be beside hosts.ini already (the result is checked with it).
    public static func add(
        cluster: String, replicas: [(name: String, address: HostsFile.Address)], path: String, now: Date = Date()
    ) throws(InputError) -> Deployment {
        precondition(!replicas.isEmpty, "a cluster has replicas")
        var text = try ConfigFiles.readText(path: path)
        for replica in replicas { text = withAll(text, including: replica.name) }
        let names = replicas.map(\.name)
        let lines =
            ["# \(stamp(now)) shardctl cluster add: cluster \(cluster) of \(names.joined(separator: ", "))"]
            + replicas.map { "\($0.name)-\($0.address)" }
            + ["\(cluster)-\(names[0])", "E\(cluster)-\(names.joined(separator: ":"))"]
        return try write(appending(lines, to: text), to: path)
    }

    /// Takes `cluster` out of hosts.ini (`shardctl cluster drain`, once it holds nothing): the lines of its replicas,
    /// its contact and its configuration lines, and its replicas from the `all` line. A comment records it.
    public static func remove(cluster: String, path: String, now: Date = Date()) throws(InputError) -> Deployment {
        let text = try ConfigFiles.readText(path: path)
        let hosts = try HostsFile.parse(text, source: path)
        guard let entry = hosts.cluster(named: cluster) else {
            throw InputError(source: path, message: "names no cluster \(cluster)")
        }
        let replicas = Set(entry.replicas)
        let keys = replicas.union([cluster, "E\(cluster)", "A\(cluster)", "R\(cluster)"])
        var lines: [String] = []
        for line in text.components(separatedBy: "\n") {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            guard let dash = content.firstIndex(of: "-") else {
                lines.append(line)
                continue
            }
            let key = content[..<dash].trimmingCharacters(in: .whitespaces)
            if keys.contains(key) { continue }
            if key == "all" {
                let names = content[content.index(after: dash)...].split(separator: ":").map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                let comment = line.dropFirst(content.count)
                lines.append(
                    "all-" + names.filter { !replicas.contains($0) }.joined(separator: ":")
                        + (comment.isEmpty ? "" : " " + comment))
                continue
            }
            lines.append(line)
        }
        let note = [
            "# \(stamp(now)) shardctl cluster drain: cluster \(cluster) drained and removed; its names are never reused",
            "D\(cluster)-\(entry.replicas.joined(separator: ":"))",
        ]
        return try write(appending(note, to: lines.joined(separator: "\n")), to: path)
    }

    private static func stamp(_ date: Date) -> String { date.formatted(.iso8601) }

    private static func appending(_ lines: [String], to text: String) -> String {
        let separator = text.isEmpty || text.hasSuffix("\n") ? "" : "\n"
        return text + separator + "\n" + lines.joined(separator: "\n") + "\n"
    }

    /// The text with `replica` appended to its `all-` line, when it has one (which must list every replica).
    private static func withAll(_ text: String, including replica: String) -> String {
        var lines = text.components(separatedBy: "\n")
        for (index, line) in lines.enumerated() {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            guard let dash = content.firstIndex(of: "-"),
                content[..<dash].trimmingCharacters(in: .whitespaces) == "all"
            else { continue }
            let comment = line.dropFirst(content.count)
            let list = content.trimmingCharacters(in: .whitespaces)
            lines[index] = list + ":" + replica + (comment.isEmpty ? "" : " " + comment)
        }
        return lines.joined(separator: "\n")
    }

    /// Checks `text` as a deployment (with the cluster configs beside `path`), then puts it in place.
    private static func write(_ text: String, to path: String) throws(InputError) -> Deployment {
        let url = URL(fileURLWithPath: path)
        let staged = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).new")
        do {
            try Data(text.utf8).write(to: staged)
        } catch {
            throw InputError(source: staged.path, message: "cannot be written: \(error.localizedDescription)")
        }
        do {
            _ = try Deployment.load(hostsPath: staged.path)
        } catch {
            try? FileManager.default.removeItem(at: staged)
            throw InputError(source: path, message: "the change would make it invalid, so it is unchanged: \(error)")
        }
        guard rename(staged.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: staged)
            throw InputError(source: path, message: "cannot be replaced: \(reason)")
        }
        return try Deployment.load(hostsPath: path)
    }
}
