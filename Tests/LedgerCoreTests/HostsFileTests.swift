import LedgerCore
import Testing

@Suite("hosts.ini")
struct HostsFileTests {
    static let deployment = """
        # replicas
        S1-localhost:6001
        S2-localhost:6002
        S3-localhost:6003
        S4-localhost:6004
        S5-localhost:6005
        S6-localhost:6006
        S7-localhost:6007   # last cluster
        S8-localhost:6008
        S9-localhost:6009

        client-localhost:5001
        C1-S1
        C2-S5
        EC1-S1:S2:S3
        EC2-S4:S5:S6
        EC3-S7:S8:S9
        all-S1:S2:S3:S4:S5:S6:S7:S8:S9

        """

    @Test("replicas of different clusters sharing an address form a node")
    func nodes() throws {
        let hosts = try HostsFile.parse(
            """
            S1-localhost:6001
            S2-localhost:6002
            S3-localhost:6003
            S4-localhost:6001
            S5-localhost:6002
            S6-localhost:6004
            EC1-S1:S2:S3
            EC2-S4:S5:S6
            """, source: "hosts.ini")
        let local = { (port: Int) in HostsFile.Address(host: "localhost", port: port) }
        #expect(
            hosts.nodes == [
                HostsFile.Node(name: "N1", index: 1, address: local(6001), replicas: ["S1", "S4"]),
                HostsFile.Node(name: "N2", index: 2, address: local(6002), replicas: ["S2", "S5"]),
                HostsFile.Node(name: "N3", index: 3, address: local(6003), replicas: ["S3"]),
                HostsFile.Node(name: "N4", index: 4, address: local(6004), replicas: ["S6"]),
            ])
        #expect(hosts.node(of: "S5")?.name == "N2")
        #expect(hosts.node(named: "N3")?.replicas == ["S3"])
        #expect(hosts.node(named: "N5") == nil)
        // Every replica on its own address: one node per replica.
        let apart = try HostsFile.parse(Self.deployment, source: "hosts.ini")
        #expect(apart.nodes.map(\.replicas) == apart.replicas.map { [$0.name] })
    }

    @Test("a full deployment")
    func deploymentValues() throws {
        let hosts = try HostsFile.parse(Self.deployment, source: "hosts.ini")
        #expect(hosts.replicas.map(\.name) == ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9"])
        #expect(hosts.replicas[6] == HostsFile.Replica(name: "S7", index: 7, host: "localhost", port: 6007, line: 8))
        #expect(hosts.clientAddress == HostsFile.Address(host: "localhost", port: 5001))
        #expect(hosts.clusterNames == ["C1", "C2", "C3"])
        #expect(
            hosts.clusters[0]
                == HostsFile.Cluster(name: "C1", index: 1, members: ["S1", "S2", "S3"], contact: "S1", line: 15))
        #expect(hosts.cluster(named: "C2")?.contact == "S5")
        // Without a contact line, the first member is the contact.
        #expect(hosts.cluster(named: "C3")?.contact == "S7")
        #expect(hosts.cluster(of: "S8")?.name == "C3")
        #expect(hosts.cluster(of: "S10") == nil)
        #expect(hosts.cluster(named: "C4") == nil)
        #expect(hosts.replica(named: "S4")?.address.description == "localhost:6004")
        #expect(hosts.replica(named: "S10") == nil)
    }

    @Test("CRLF line endings and a byte-order mark read the same")
    func windowsLineEndings() throws {
        let unix = try HostsFile.parse(Self.deployment, source: "hosts.ini")
        let windows = try HostsFile.parse(windowsText(Self.deployment), source: "hosts.ini")
        #expect(windows == unix)
    }

    @Test("each line splits on the first dash; spaces around parts are dropped; order of lines is free")
    func firstDash() throws {
        let hosts = try HostsFile.parse(
            "EC1-S1\n  S1 -  my-host.example : 7001  # comment\nclient-[::1]:5001", source: "hosts.ini")
        #expect(
            hosts.replicas == [HostsFile.Replica(name: "S1", index: 1, host: "my-host.example", port: 7001, line: 2)])
        #expect(hosts.clientAddress == HostsFile.Address(host: "[::1]", port: 5001))
        #expect(hosts.clusters[0].members == ["S1"])
    }

    static let three = "S1-localhost:6001\nS2-localhost:6002\nS3-localhost:6003\nEC1-S1:S2:S3\n"
    static let keys =
        "expected S<n> (a replica), C<n> (a cluster's contact), EC<n> (a cluster's members), AC<n> or RC<n> "
        + "(replicas added to or removed from it), DC<n> (a drained cluster), client or all"

    /// Three replicas of C1, and the lines `shardctl member` appends when S4 replaces S3.
    static let changed = """
        S1-localhost:6001
        S2-localhost:6002
        S3-localhost:6003
        C1-S3
        EC1-S1:S2:S3
        S4-localhost:6004
        AC1-S4
        RC1-S3
        """

    @Test("AC and RC lines: added replicas belong to the cluster, removed ones are not reachable")
    func membershipChanges() throws {
        let hosts = try HostsFile.parse(Self.changed, source: "hosts.ini")
        let cluster = try #require(hosts.cluster(named: "C1"))
        #expect(cluster.members == ["S1", "S2", "S3"])
        #expect(cluster.added == ["S4"])
        #expect(cluster.removed == ["S3"])
        #expect(cluster.replicas == ["S1", "S2", "S3", "S4"])
        #expect(cluster.reachable == ["S1", "S2", "S4"])
        // The contact was removed: the first replica still reachable stands in.
        #expect(cluster.contact == "S1")
        #expect(hosts.cluster(of: "S4")?.name == "C1")
        #expect(hosts.cluster(of: "S3")?.name == "C1")
        // Several lines add up.
        let more = try HostsFile.parse(Self.changed + "\nS5-localhost:6005\nAC1-S5\nRC1-S1", source: "hosts.ini")
        #expect(more.cluster(named: "C1")?.added == ["S4", "S5"])
        #expect(more.cluster(named: "C1")?.reachable == ["S2", "S4", "S5"])
    }

    static let badChanges: [(String, String)] = [
        (
            "S1-localhost:6001\nEC1-S1\nAC1-S1",
            "hosts.ini:3: replica S1 is in cluster C1 (line 2) and is added to cluster C1; a replica belongs to one "
                + "cluster, and ids are never reused"
        ),
        (
            "S1-localhost:6001\nS2-localhost:6002\nEC1-S1\nEC2-S2\nRC1-S2",
            "hosts.ini:5: replica S2 is removed from cluster C1, but it is not one of its members or added replicas"
        ),
        (
            "S1-localhost:6001\nEC1-S1\nRC1-S1",
            "hosts.ini:3: every replica of cluster C1 is removed; a cluster keeps at least one"
        ),
        (
            "S1-localhost:6001\nS2-localhost:6002\nEC1-S1\nAC1-S2\nRC1-S2\nRC1-S2",
            "hosts.ini:6: replica S2 is removed twice (first at line 5)"
        ),
        (
            "S1-localhost:6001\nS2-localhost:6002\nEC1-S1\nAC2-S2",
            "hosts.ini:4: replicas are added to cluster C2, which has no members line; add a line like EC2-S1:S2:S3 "
                + "or remove this one"
        ),
        (
            "S1-localhost:6001\nEC1-S1\nAC1-S9",
            "hosts.ini:3: added replica S9 is not defined; add a line like S9-host:port"
        ),
        (
            "S1-localhost:6001\nS2-localhost:6001\nEC1-S1\nAC1-S2",
            "hosts.ini:2: replica S2 has the address localhost:6001 of S1 (line 1), and both are members of cluster "
                + "C1 (line 3); replicas sharing an address are one node, which hosts at most one replica of a cluster"
        ),
        (
            "S1-localhost:6001\nEC1-S1\nACx-S1",
            "hosts.ini:3: unknown key \"ACx\"; \(keys)"
        ),
        (
            "S1-localhost:6001\nEC1-S1\nAC0-S2",
            "hosts.ini:3: bad cluster name \"AC0\"; a line of replicas added to a cluster starts with AC and a cluster "
                + "number from 1, like AC1-S10"
        ),
    ]

    @Test("DC lines: a drained cluster's names are kept from use")
    func drainedClusters() throws {
        let hosts = try HostsFile.parse(
            "S1-localhost:6001\nEC1-S1\nDC2-S4:S5:S6   # drained\nall-S1", source: "hosts.ini")
        #expect(hosts.drained == ["C2": ["S4", "S5", "S6"]])
        #expect(hosts.clusterNames == ["C1"])
        #expect(hosts.isUsed("S5") && hosts.isUsed("C2") && hosts.isUsed("S1") && hosts.isUsed("C1"))
        #expect(!hosts.isUsed("S7") && !hosts.isUsed("C3"))
    }

    static let badDrained: [(String, String)] = [
        (
            "S1-localhost:6001\nEC1-S1\nDC1-S9",
            "hosts.ini:2: cluster C1 was drained and removed (line 3); cluster names are never used again"
        ),
        (
            "S1-localhost:6001\nS4-localhost:6004\nEC1-S1\nEC3-S4\nDC2-S4",
            "hosts.ini:2: replica S4 belonged to cluster C2, drained and removed (line 5); replica ids are never reused"
        ),
        (
            "S1-localhost:6001\nEC1-S1\nDC2-S4\nDC2-S5",
            "hosts.ini:4: cluster C2 is drained twice (first at line 3)"
        ),
        (
            "S1-localhost:6001\nEC1-S1\nDCx-S4",
            "hosts.ini:3: unknown key \"DCx\"; \(keys)"
        ),
        (
            "S1-localhost:6001\nEC1-S1\nDC0-S4",
            "hosts.ini:3: bad cluster name \"DC0\"; a drained cluster's line starts with DC and a cluster number from 1, "
                + "like DC2-S4:S5:S6"
        ),
    ]

    @Test("bad DC lines", arguments: badDrained)
    func badDrainedLine(text: String, expected: String) {
        #expect(
            thrownDescription { () throws(InputError) in try HostsFile.parse(text, source: "hosts.ini") } == expected)
    }

    @Test("bad AC and RC lines", arguments: badChanges)
    func badChange(text: String, expected: String) {
        #expect(
            thrownDescription { () throws(InputError) in try HostsFile.parse(text, source: "hosts.ini") } == expected)
    }

    static let badFiles: [(String, String)] = [
        ("", "hosts.ini: no replicas defined; add lines like S1-localhost:6001"),
        ("# only a comment\n\n   \n", "hosts.ini: no replicas defined; add lines like S1-localhost:6001"),
        (
            "S1 localhost:6001\n",
            "hosts.ini:1: line \"S1 localhost:6001\" has no \"-\"; write KEY-VALUE, like S1-localhost:6001"
        ),
        ("\n\nX1-localhost:6001", "hosts.ini:3: unknown key \"X1\"; \(keys)"),
        ("Client-localhost:5001", "hosts.ini:1: unknown key \"Client\"; \(keys)"),
        (
            "-localhost",
            "hosts.ini:1: line \"-localhost\" has nothing before \"-\"; write KEY-VALUE, like S1-localhost:6001"
        ),
        (
            "S0-localhost:6001",
            "hosts.ini:1: bad replica name \"S0\"; replica names are S followed by a number from 1, like S1"
        ),
        (
            "S01-localhost:6001",
            "hosts.ini:1: bad replica name \"S01\"; replica names are S followed by a number from 1, like S1"
        ),
        ("Sx-localhost:6001", "hosts.ini:1: unknown key \"Sx\"; \(keys)"),
        ("ECx-S1", "hosts.ini:1: unknown key \"ECx\"; \(keys)"),
        ("S1-localhost:6001\nS1-localhost:6002", "hosts.ini:2: replica S1 is defined twice (first at line 1)"),
        ("S1-", "hosts.ini:1: replica S1 has no address; write host:port, like localhost:6001"),
        (
            "S1-localhost",
            "hosts.ini:1: replica S1 address \"localhost\" has no port; write host:port, like localhost:6001"
        ),
        ("S1-:6001", "hosts.ini:1: replica S1 address \":6001\" has no host; write host:port, like localhost:6001"),
        (
            "S1-local host:6001",
            "hosts.ini:1: replica S1 host \"local host\" contains a space; write host:port, like localhost:6001"
        ),
        ("S1-localhost:abc", "hosts.ini:1: replica S1 port \"abc\" is not a number; write a port from 1 to 65535"),
        ("S1-localhost:-1", "hosts.ini:1: replica S1 port \"-1\" is not a number; write a port from 1 to 65535"),
        ("S1-localhost:", "hosts.ini:1: replica S1 port \"\" is not a number; write a port from 1 to 65535"),
        ("S1-localhost:0", "hosts.ini:1: replica S1 port 0 is out of range; write a port from 1 to 65535"),
        ("S1-localhost:65536", "hosts.ini:1: replica S1 port 65536 is out of range; write a port from 1 to 65535"),
        (
            "S1-localhost:99999999999999999999",
            "hosts.ini:1: replica S1 port 99999999999999999999 is out of range; write a port from 1 to 65535"
        ),
        (
            "S1-localhost:6001\nS2-localhost:6001\nS3-localhost:6003\nEC1-S1:S2:S3",
            "hosts.ini:2: replica S2 has the address localhost:6001 of S1 (line 1), and both are members of cluster C1 "
                + "(line 4); replicas sharing an address are one node, which hosts at most one replica of a cluster"
        ),
        (
            three + "client-localhost:6002",
            "hosts.ini:5: address localhost:6002 of the client is already used by S2 (line 2); the client needs a "
                + "host:port no replica uses"
        ),
        (
            "client-localhost:6001\n" + three,
            "hosts.ini:2: address localhost:6001 of S1 is already used by the client (line 1); the client needs a "
                + "host:port no replica uses"
        ),
        (
            three + "client-localhost:5001\nclient-localhost:5002",
            "hosts.ini:6: the client address is given twice (first at line 5)"
        ),
        (
            "client-localhost",
            "hosts.ini:1: the client address \"localhost\" has no port; write host:port, like localhost:6001"
        ),
        (
            "S1-localhost:6001\nEC1-S1:S2:S3",
            "hosts.ini:2: cluster C1 member S2 is not defined; add a line like S2-host:port"
        ),
        (
            three + "S4-localhost:6004\nS5-localhost:6005\nEC2-S3:S4:S5",
            "hosts.ini:7: replica S3 is in cluster C1 (line 4) and in cluster C2; a replica belongs to one cluster"
        ),
        (
            "S1-localhost:6001\nS2-localhost:6002\nEC1-S1:S2",
            "hosts.ini:3: cluster C1 has 2 members; Paxos needs an odd number (3, 5, ...)"
        ),
        (three + "C1-S5", "hosts.ini:5: contact S5 of cluster C1 is not one of its members (S1, S2, S3)"),
        (
            three + "C2-S1",
            "hosts.ini:5: cluster C2 has a contact but no members; add a line like EC2-S1:S2:S3 or remove this one"
        ),
        (
            three + "C1-S1:S2",
            "hosts.ini:5: contact \"S1:S2\" of cluster C1 is not a replica name; write one replica, like C1-S1"
        ),
        (three + "C1-S1\nC1-S2", "hosts.ini:6: the contact of cluster C1 is given twice (first at line 5)"),
        (
            three + "C0-S1",
            "hosts.ini:5: bad cluster name \"C0\"; cluster names are C followed by a number from 1, like C1"
        ),
        (
            "S1-localhost:6001\nEC0-S1",
            "hosts.ini:2: bad cluster name \"EC0\"; a members line starts with EC and a cluster number from 1, "
                + "like EC1-S1:S2:S3"
        ),
        ("S1-localhost:6001\nEC1-", "hosts.ini:2: cluster C1 lists no replicas; write EC1-S1:S2:S3"),
        (
            "S1-localhost:6001\nEC1-S1::S3",
            "hosts.ini:2: cluster C1 list \"S1::S3\" has an empty name; separate replica names with one \":\""
        ),
        ("S1-localhost:6001\nEC1-S1:S1:S2", "hosts.ini:2: cluster C1 lists S1 twice"),
        (
            "S1-localhost:6001\nEC1-S1:X:S2",
            "hosts.ini:2: cluster C1 names \"X\", which is not a replica name; write EC1-S1:S2:S3"
        ),
        (three + "EC1-S1:S2:S3", "hosts.ini:5: the members of cluster C1 are given twice (first at line 4)"),
        (three + "all-S1:S2", "hosts.ini:5: \"all\" does not match the replicas defined: it leaves out S3"),
        (
            three + "all-S1:S2:S3:S4",
            "hosts.ini:5: \"all\" does not match the replicas defined: it names S4, which no S line defines"
        ),
        (
            three + "all-S1:S4",
            "hosts.ini:5: \"all\" does not match the replicas defined: it leaves out S2 and S3; it names S4, which no "
                + "S line defines"
        ),
        (three + "all-S1:S2:S3\nall-S1:S2:S3", "hosts.ini:6: \"all\" is given twice (first at line 5)"),
        ("S1-localhost:6001\nall-", "hosts.ini:2: \"all\" lists no replicas; write all-S1:S2:S3"),
        (
            three + "S4-localhost:6004",
            "hosts.ini:5: replica S4 is in no cluster; list it in a members line like EC1-S1:S2:S3"
        ),
        (
            // Two problems: the earlier line is reported, whatever kind it is.
            "S4-localhost:6004\nS1-localhost:6001\nEC1-S1:S2:S3",
            "hosts.ini:1: replica S4 is in no cluster; list it in a members line like EC1-S1:S2:S3"
        ),
        (
            "S1-localhost:6001\r\nS2 localhost:6002\r\n",
            "hosts.ini:2: line \"S2 localhost:6002\" has no \"-\"; write KEY-VALUE, like S1-localhost:6001"
        ),
    ]

    @Test("bad hosts files", arguments: badFiles)
    func badFile(text: String, expected: String) {
        #expect(
            thrownDescription { () throws(InputError) in try HostsFile.parse(text, source: "hosts.ini") } == expected)
    }
}
