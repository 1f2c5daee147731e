import LedgerCore
import Testing

@Suite("Access policy")
struct AccessPolicyTests {
    /// Replica S1 of C1 (S1-S3) in a deployment of S1-S6, test controls on unless said otherwise.
    static func policy(testControls: Bool = true) -> AccessPolicy {
        AccessPolicy(
            cluster: "C1", me: "S1", members: ["S1", "S2", "S3"], replicas: ["S1", "S2", "S3", "S4", "S5", "S6"],
            testControlsEnabled: testControls)
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
    ]

    @Test("each role may make exactly its calls", arguments: table)
    func roles(identity: NodeIdentity, call: AccessPolicy.Call, allowed: Bool) {
        let refusal = Self.policy().refusal(of: call, by: identity)
        #expect((refusal == nil) == allowed, "\(identity) \(call): \(refusal?.reason ?? "allowed")")
        if let refusal { #expect(refusal.kind == .permissionDenied) }
    }

    @Test("the reasons say who was refused and why")
    func reasons() {
        let policy = Self.policy()
        #expect(
            policy.refusal(of: .peerStream, by: Self.otherCluster)?.reason
                == "replica S4 is not a member of C1; only its members send it peer messages")
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
    func testControlsOff() {
        let refusal = Self.policy(testControls: false).refusal(of: .testControl, by: Self.operatorIdentity)
        #expect(
            refusal
                == AccessRefusal(
                    .permissionDenied,
                    "test controls are off for C1; set test_controls: true in its config to use them"))
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
