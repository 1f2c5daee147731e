import LedgerCore
import Testing

@Suite("Cluster configs: metrics_address")
struct MetricsAddressConfigTests {
    /// The required keys and metrics on; line 9 is free for `metrics_address`.
    static let withMetrics = ClusterConfigTests.minimal + "metrics_port: 9101\n"

    static func validate(_ text: String) throws(InputError) -> ClusterConfig {
        try ClusterConfig.validate(configTree(text), source: "C1.yaml")
    }

    @Test("without metrics_address the endpoints bind the loopback address")
    func loopbackByDefault() throws {
        let config = try Self.validate(Self.withMetrics)
        #expect(config.metricsAddress == nil)
        #expect(config.metricsHost == "127.0.0.1")
        #expect(config.metricsHost == ClusterConfig.metricsAddressDefault)
        #expect(config.metricsPort(ofReplica: 1) == 9101)
    }

    @Test(
        "an IPv4 or IPv6 address or a host name is kept as written",
        arguments: [
            "127.0.0.1", "0.0.0.0", "10.20.30.40", "255.255.255.255", "::1", "::", "fe80::1",
            "2001:db8::8:800:200c:417a", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::ffff:192.0.2.1",
            "1:2:3:4:5:6:192.0.2.1", "localhost", "metrics-1.example.org", "node7",
        ])
    func goodAddress(address: String) throws {
        let config = try Self.validate(Self.withMetrics + "metrics_address: \(address)\n")
        #expect(config.metricsAddress == address)
        #expect(config.metricsHost == address)
        #expect(config.keyLines["metrics_address"] == 9)
    }

    static let hostHint = "write one like 127.0.0.1 (this machine only), 0.0.0.0 (every interface), ::1 or localhost"

    static let badAddresses: [(String, String)] = [
        (
            "300.1.1.1",
            "C1.yaml:9: metrics_address \"300.1.1.1\" is not an IPv4 address; write four numbers from 0 to 255, "
                + "like 127.0.0.1"
        ),
        (
            "10.0.0",
            "C1.yaml:9: metrics_address \"10.0.0\" is not an IPv4 address; write four numbers from 0 to 255, "
                + "like 127.0.0.1"
        ),
        (
            "127.000.0.1",
            "C1.yaml:9: metrics_address \"127.000.0.1\" is not an IPv4 address; write four numbers from 0 to 255, "
                + "like 127.0.0.1"
        ),
        (
            "1::2::3",
            "C1.yaml:9: metrics_address \"1::2::3\" is not an IPv6 address; write one like ::1, or \"::\" in quotes"
        ),
        (
            "1:2:3:4:5:6:7:8:9",
            "C1.yaml:9: metrics_address \"1:2:3:4:5:6:7:8:9\" is not an IPv6 address; write one like ::1, or \"::\" "
                + "in quotes"
        ),
        (
            "12345::1",
            "C1.yaml:9: metrics_address \"12345::1\" is not an IPv6 address; write one like ::1, or \"::\" in quotes"
        ),
        (
            "[::1]",
            "C1.yaml:9: metrics_address \"[::1]\" has brackets; write the address without them (in quotes if it has "
                + "colons), like \"::1\""
        ),
        (
            "localhost:9101",
            "C1.yaml:9: metrics_address \"localhost:9101\" has a port; write only the address, localhost, as "
                + "metrics_port gives the ports"
        ),
        (
            "10.0.0.5:9101",
            "C1.yaml:9: metrics_address \"10.0.0.5:9101\" has a port; write only the address, 10.0.0.5, as "
                + "metrics_port gives the ports"
        ),
        (
            "[::1]:9101",
            "C1.yaml:9: metrics_address \"[::1]:9101\" has a port; write only the address, \"::1\", as metrics_port "
                + "gives the ports"
        ),
        (
            "my_host",
            "C1.yaml:9: metrics_address \"my_host\" is not an address or a host name (letters, digits, "
                + "hyphens and dots); \(hostHint)"
        ),
        (
            "-metrics.example",
            "C1.yaml:9: metrics_address \"-metrics.example\" is not an address or a host name "
                + "(letters, digits, hyphens and dots); \(hostHint)"
        ),
        (
            "fe80::1%eth0",
            "C1.yaml:9: metrics_address \"fe80::1%eth0\" is not an address or a host name (letters, "
                + "digits, hyphens and dots); \(hostHint)"
        ),
        (
            "http://metrics",
            "C1.yaml:9: metrics_address \"http://metrics\" is not an address or a host name "
                + "(letters, digits, hyphens and dots); \(hostHint)"
        ),
        (
            String(repeating: "a", count: 64) + ".example",
            "C1.yaml:9: metrics_address \"\(String(repeating: "a", count: 64)).example\" is not an address or a host "
                + "name (letters, digits, hyphens and dots); \(hostHint)"
        ),
    ]

    @Test("a malformed address is refused with the file's line and a fix", arguments: badAddresses)
    func badAddress(address: String, expected: String) {
        #expect(
            thrownDescription { () throws(InputError) in
                try Self.validate(Self.withMetrics + "metrics_address: \(address)\n")
            } == expected)
    }

    @Test("an empty address or a list is refused like any other value")
    func notAValue() {
        #expect(
            thrownDescription { () throws(InputError) in try Self.validate(Self.withMetrics + "metrics_address:\n") }
                == "C1.yaml:9: metrics_address is empty; write a value, like 127.0.0.1")
        let listed = configTree(Self.withMetrics).appending(
            ConfigEntry(key: "metrics_address", keyLine: 9, value: .sequence([.scalar("::1", line: 9)], line: 9)))
        #expect(
            thrownDescription { () throws(InputError) in try ClusterConfig.validate(listed, source: "C1.yaml") }
                == "C1.yaml:9: metrics_address is a list; expected a value, like 127.0.0.1")
    }

    @Test("an address for metrics that are off is refused")
    func addressWithoutMetrics() {
        #expect(
            thrownDescription { () throws(InputError) in
                try Self.validate(ClusterConfigTests.minimal + "metrics_address: 0.0.0.0\n")
            }
                == "C1.yaml:8: metrics_address is 0.0.0.0 but metrics are off (metrics_port is 0, the default); "
                + "set metrics_port, like metrics_port: 9101, or remove metrics_address")
        #expect(
            thrownDescription { () throws(InputError) in
                try Self.validate(ClusterConfigTests.minimal + "metrics_port: 0\nmetrics_address: 0.0.0.0\n")
            }
                == "C1.yaml:9: metrics_address is 0.0.0.0 but metrics are off (metrics_port is 0); "
                + "set metrics_port, like metrics_port: 9101, or remove metrics_address")
    }

    @Test("the unknown-key message lists metrics_address")
    func listedAmongTheKeys() {
        #expect(
            thrownDescription { () throws(InputError) in
                try Self.validate(ClusterConfigTests.minimal + "metrics_host: x")
            }
                == "C1.yaml:8: unknown key \"metrics_host\"; expected one of: cluster, replicas, data_dir, catalog, "
                + "log_level, min_balance, initial_balance, metrics_port, metrics_address, peer_port, test_controls, paxos, "
                + "batching, tls")
    }
}

extension ConfigNode {
    /// The mapping with `entry` added at its end; a test builds a value the test-only YAML reader cannot write.
    fileprivate func appending(_ entry: ConfigEntry) -> ConfigNode {
        guard case .mapping(let entries, let line) = self else { return self }
        return .mapping(entries + [entry], line: line)
    }
}
