import Foundation
import LedgerCore
import LedgerStore
import Testing

/// The description of the `InputError` that `body` throws, or nil when it returns normally.
func thrownDescription<Value>(_ body: () throws(InputError) -> Value) -> String? {
    do {
        _ = try body()
        return nil
    } catch {
        return error.description
    }
}

/// A fresh directory for one test's files, removed when the test ends.
final class ScratchDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-formats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    /// Writes `bytes` to `name` in the directory and returns the file's path.
    func write(_ name: String, _ bytes: Data) throws -> String {
        let file = url.appendingPathComponent(name)
        try bytes.write(to: file)
        return file.path
    }

    func write(_ name: String, _ text: String) throws -> String {
        try write(name, Data(text.utf8))
    }
}

@Suite("Config files on disk")
struct ConfigFilesTests {
    static let minimal = """
        cluster: C1
        replicas:
          count: 3
          start: 1
          subnet: 6001
        data_dir: data/C1
        catalog: data/catalog.sqlite

        """

    @Test("a missing file, a directory and bytes that are not UTF-8 are named")
    func unreadable() throws {
        let scratch = try ScratchDirectory()
        let missing = scratch.url.appendingPathComponent("nowhere.ini").path
        #expect(
            thrownDescription { () throws(InputError) in try ConfigFiles.loadHosts(path: missing) }
                == "\(missing): no such file; check the path")
        #expect(
            thrownDescription { () throws(InputError) in try ConfigFiles.loadCluster(path: scratch.url.path) }
                == "\(scratch.url.path): is a directory; expected a file")
        let latin1 = try scratch.write(
            "hosts.ini", Data("S1-localhost:6001\nS2-caf".utf8) + Data([0xE9]) + Data("\n".utf8))
        #expect(
            thrownDescription { () throws(InputError) in try ConfigFiles.loadHosts(path: latin1) }
                == "\(latin1):2: the file is not UTF-8 text; save it as UTF-8")
    }

    @Test("a valid cluster config")
    func validConfig() throws {
        let scratch = try ScratchDirectory()
        let path = try scratch.write("C1.yaml", Self.minimal + "paxos:\n  leader_timeout: 2s\ntest_controls: true\n")
        let config = try ConfigFiles.loadCluster(path: path)
        #expect(config.source == path)
        #expect(config.clusterName == "C1")
        #expect(config.replicaNames == ["S1", "S2", "S3"])
        #expect(config.paxos.leaderTimeout == .seconds(2))
        #expect(config.testControlsEnabled)
        #expect(config.keyLines["paxos.leader_timeout"] == 9)
    }

    @Test("Yams' tree becomes a ConfigNode with the line of every key and value")
    func tree() throws {
        let tree = try ConfigFiles.configTree(
            yaml: "# comment\ncluster: C1\nreplicas:\n  count: 3\nempty:\nnull: ~\nquoted: \"null\"\nlist: [a, b]\n",
            source: "C1.yaml")
        let expected = ConfigNode.mapping(
            [
                ConfigEntry(key: "cluster", keyLine: 2, value: .scalar("C1", line: 2)),
                ConfigEntry(
                    key: "replicas", keyLine: 3,
                    value: .mapping([ConfigEntry(key: "count", keyLine: 4, value: .scalar("3", line: 4))], line: 4)),
                ConfigEntry(key: "empty", keyLine: 5, value: .scalar("", line: 5)),
                ConfigEntry(key: "null", keyLine: 6, value: .scalar("", line: 6)),
                ConfigEntry(key: "quoted", keyLine: 7, value: .scalar("null", line: 7)),
                ConfigEntry(
                    key: "list", keyLine: 8, value: .sequence([.scalar("a", line: 8), .scalar("b", line: 8)], line: 8)),
            ], line: 2)
        #expect(tree == expected)
    }

    @Test("CRLF line endings and a byte-order mark read the same")
    func windowsText() throws {
        let windows = "\u{FEFF}" + Self.minimal.replacing("\n", with: "\r\n")
        #expect(
            try ConfigFiles.parseCluster(yaml: windows, source: "C1.yaml")
                == ConfigFiles.parseCluster(yaml: Self.minimal, source: "C1.yaml"))
    }

    static let badYAML: [(String, String)] = [
        ("", "C1.yaml: the file is empty; expected settings, like cluster: C1"),
        ("# nothing but a comment\n", "C1.yaml: the file is empty; expected settings, like cluster: C1"),
        ("- a\n- b\n", "C1.yaml:1: the file holds a list; expected settings, one per line, like cluster: C1"),
        (
            "cluster: C1\nreplicas:\n  count: 3\n   start: 1\n",
            "C1.yaml:4: not valid YAML: mapping values are not allowed in this context"
        ),
        (
            "cluster: C1\nreplicas:\n  count: 3\n start: 1\n",
            "C1.yaml:4: not valid YAML: did not find expected key (while parsing a block mapping at line 1)"
        ),
        (
            "cluster: C1\ndata_dir: [a, b\ncatalog: c\n",
            "C1.yaml:3: not valid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 2)"
        ),
        (
            "cluster: \"C1\nreplicas: 3\n",
            "C1.yaml:3: not valid YAML: found unexpected end of stream (while scanning a quoted scalar at line 1)"
        ),
        (
            "cluster: C1\nreplicas:\n\tcount: 3\n",
            "C1.yaml:3: not valid YAML: found character that cannot start any token (while scanning for the next token "
                + "at line 3)"
        ),
        (
            "cluster: C1\nreplicas: \u{01}\n",
            "C1.yaml:2: not valid YAML: control characters are not allowed"
        ),
        (minimal + "cluster: C2\n", "C1.yaml:8: duplicate key \"cluster\" (first at line 1)"),
        (
            minimal + "paxos:\n  tick: 10ms\n  leader_timeout: 2s\n  tick: 20ms\n",
            "C1.yaml:11: duplicate key \"tick\" (first at line 9)"
        ),
        ("? [a, b]\n: c\n", "C1.yaml:1: a key is a mapping or a list; keys are plain words, like cluster"),
        (
            minimal.replacing("data_dir: data/C1", with: "data_dir:"),
            "C1.yaml:6: data_dir is empty; write a value, like data/C1"
        ),
        (
            minimal.replacing("data_dir: data/C1", with: "data_dir: ~"),
            "C1.yaml:6: data_dir is empty; write a value, like data/C1"
        ),
        (
            minimal.replacing("data_dir: data/C1", with: "data_dir: [a, b]"),
            "C1.yaml:6: data_dir is a list; expected a value, like data/C1"
        ),
        (
            minimal.replacing("count: 3", with: "count: {value: 3}"),
            "C1.yaml:3: replicas.count is a mapping; expected a value, like 3"
        ),
        (
            minimal + "paxos:\n  leader_timeout: 300ms\n  leader_ping_interval: 500ms\n",
            "C1.yaml:10: paxos.leader_ping_interval (500ms) must be shorter than paxos.leader_timeout (300ms)"
        ),
        (
            minimal + "replica: 3\n",
            "C1.yaml:8: unknown key \"replica\"; expected one of: cluster, replicas, data_dir, "
                + "catalog, log_level, min_balance, initial_balance, metrics_port, metrics_address, peer_port, test_controls, paxos, batching, tls"
        ),
    ]

    @Test("YAML mistakes are located", arguments: badYAML)
    func badFile(text: String, expected: String) {
        #expect(
            thrownDescription { () throws(InputError) in try ConfigFiles.parseCluster(yaml: text, source: "C1.yaml") }
                == expected)
    }

    @Test("a YAML error from a file names the file")
    func badFileOnDisk() throws {
        let scratch = try ScratchDirectory()
        let path = try scratch.write("C1.yaml", "cluster: C1\nreplicas:\n  count: 3\n   start: 1\n")
        #expect(
            thrownDescription { () throws(InputError) in try ConfigFiles.loadCluster(path: path) }
                == "\(path):4: not valid YAML: mapping values are not allowed in this context")
    }
}
