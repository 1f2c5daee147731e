import LedgerCore
import Testing

@Suite("Access policy")
struct AccessPolicyTests {
    /// Replica S1 of C1 (S1-S3) in a deployment of S1-S6, each replica its own node, test controls on unless said
    /// otherwise.
    static func policy(testControls: Bool = true) throws -> AccessPolicy {
        let hosts = try HostsFile.parse(
            (1...6).map { "S\($0)-localhost:600\($0)" }.joined(separator: "\n") + "\nEC1-S1:S2:S3\nEC2-S4:S5:S6",
            source: "hosts.ini")
        return AccessPolicy(hosts: hosts, node: hosts.node(of: "S1")!, testControlsEnabled: testControls)
    }

    static let member = NodeIdentity(role: .replica, name: "S2")
    static let itself = NodeIdentity(role: .replica, name: "S1")
    static let otherCluster = NodeIdentity(role: .replica, name: "S4")
    static let stranger = NodeIdentity(role: .replica, name: "S9")
    static let client = NodeIdentity(role: .client, name: "client")
    static let operatorIdentity = NodeIdentity(role: .operator, name: "operator")

    /// Every identity against every call: who may do what.
    static let table: [(NodeIdentity, AccessPolicy.Call, Bool)] = [
        (member, .peerStream, true), (itself, .peerStream, false), (otherCluster, .peerStream, false),
        (stranger, .peerStream, false), (client, .peerStream, false), (operatorIdentity, .peerStream, false),
        (member, .decision, true), (otherCluster, .decision, true), (stranger, .decision, false),
        (client, .decision, false), (operatorIdentity, .decision, false),
        (member, .transactionStatus, true), (otherCluster, .transactionStatus, true),
        (stranger, .transactionStatus, false), (client, .transactionStatus, true),
        (operatorIdentity, .transactionStatus, true),
        (member, .command, false), (otherCluster, .command, false), (client, .command, true),
        (operatorIdentity, .command, true),
        (otherCluster, .inspection, false), (client, .inspection, true), (operatorIdentity, .inspection, true),
        (member, .testControl, false), (client, .testControl, false), (operatorIdentity, .testControl, true),
        (member, .membership, false), (client, .membership, false), (operatorIdentity, .membership, true),
    ]

    @Test("each role may make exactly its calls", arguments: table)
    func roles(identity: NodeIdentity, call: AccessPolicy.Call, allowed: Bool) throws {
        let refusal = try Self.policy().refusal(of: call, by: identity)
        #expect((refusal == nil) == allowed, "\(identity) \(call): \(refusal?.reason ?? "allowed")")
        if let refusal { #expect(refusal.kind == .permissionDenied) }
    }

    @Test("a replica added to the cluster (an AC line) may send peer messages, and still may once removed")
    func addedReplica() throws {
        let hosts = try HostsFile.parse(
            (1...7).map { "S\($0)-localhost:600\($0)" }.joined(separator: "\n")
                + "\nEC1-S1:S2:S3\nEC2-S4:S5:S6\nAC1-S7\nRC1-S7",
            source: "hosts.ini")
        let policy = AccessPolicy(hosts: hosts, node: hosts.node(of: "S1")!, testControlsEnabled: false)
        // A removed replica's last messages (its farewell as a removed leader) still arrive; the log refuses the rest.
        #expect(policy.refusal(of: .peerStream, by: NodeIdentity(role: .replica, name: "S7")) == nil)
        #expect(
            policy.refusal(of: .membership, by: Self.client)?.reason
                == "client client may not change a cluster's membership; only an operator may")
    }

    @Test("the reasons say who was refused and why")
    func reasons() throws {
        let policy = try Self.policy()
        #expect(
            policy.refusal(of: .peerStream, by: Self.otherCluster)?.reason
                == "replica S4 is not a member of C1, nor is any replica of its node; only their members send peer "
                + "messages here")
        #expect(
            policy.refusal(of: .peerStream, by: Self.itself)?.reason
                == "replica S1 may not send peer messages to its own node")
        #expect(
            policy.refusal(of: .peerStream, by: Self.client)?.reason
                == "client client may not send peer messages; only replicas of C1 may")
        #expect(
            policy.refusal(of: .testControl, by: Self.client)?.reason
                == "client client may not use the test controls; only an operator may")
        #expect(
            policy.refusal(of: .command, by: Self.member)?.reason
                == "replica S2 may not make client calls; use a client or operator certificate")
    }

    @Test("test controls are refused even to an operator where the config turns them off")
    func testControlsOff() throws {
        let refusal = try Self.policy(testControls: false).refusal(of: .testControl, by: Self.operatorIdentity)
        #expect(
            refusal
                == AccessRefusal(
                    .permissionDenied,
                    "test controls are off for C1; set test_controls: true in its config to use them"))
    }

    @Test("a node's certificate speaks for every replica of its node, and for no other")
    func nodes() throws {
        // Three nodes, each hosting one replica of C1 and one of C2.
        let hosts = try HostsFile.parse(
            "S1-localhost:6001\nS2-localhost:6002\nS3-localhost:6003\nS4-localhost:6001\nS5-localhost:6002\n"
                + "S6-localhost:6003\nEC1-S1:S2:S3\nEC2-S4:S5:S6",
            source: "hosts.ini")
        let policy = AccessPolicy(hosts: hosts, node: hosts.node(named: "N1")!, testControlsEnabled: false)
        #expect(policy.clusters == ["C1", "C2"])
        #expect(policy.refusal(of: .peerStream, by: NodeIdentity(role: .replica, name: "S2")) == nil)
        #expect(policy.refusal(of: .peerStream, by: NodeIdentity(role: .replica, name: "S6")) == nil)
        #expect(
            policy.refusal(of: .peerStream, by: NodeIdentity(role: .replica, name: "S4"))?.reason
                == "replica S4 may not send peer messages to its own node")
        #expect(policy.speaks(as: "S5", identity: "S2"))
        #expect(policy.speaks(as: "S2", identity: "S2"))
        #expect(!policy.speaks(as: "S3", identity: "S2"))
        #expect(!policy.speaks(as: "S2", identity: "S9"))
        #expect(
            policy.refusal(of: .testControl, by: Self.operatorIdentity)?.reason
                == "test controls are off for C1, C2; set test_controls: true in its config to use them")
    }

    @Test("an identity comes from the subject's OU and CN, and odd subjects are refused")
    func parsing() {
        #expect(
            NodeIdentity.parse(organizationalUnit: "replica", commonName: "S12")
                == .success(NodeIdentity(role: .replica, name: "S12")))
        #expect(
            NodeIdentity.parse(organizationalUnit: "operator", commonName: "operator")
                == .success(NodeIdentity(role: .operator, name: "operator")))
        #expect(
            NodeIdentity.parse(organizationalUnit: "admin", commonName: "root")
                == .failure(
                    AccessRefusal(
                        .permissionDenied,
                        "the certificate's subject has OU=admin; expected one of the roles replica, client, operator")))
        #expect(
            NodeIdentity.parse(organizationalUnit: nil, commonName: "S1")
                == .failure(
                    AccessRefusal(
                        .permissionDenied,
                        "the certificate's subject has no OU; expected one of the roles replica, client, operator")))
        #expect(
            NodeIdentity.parse(organizationalUnit: "replica", commonName: "client")
                == .failure(
                    AccessRefusal(
                        .permissionDenied, "the replica certificate names \"client\", which is not a replica name")))
        #expect(
            NodeIdentity.parse(organizationalUnit: "client", commonName: "a b")
                == .failure(AccessRefusal(.permissionDenied, "the certificate's subject has no usable CN")))
    }
}
