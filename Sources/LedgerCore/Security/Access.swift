/// Who is on the other end of a connection, as its certificate names it: the role in the subject's
/// organizational unit (`OU=replica`), the name in its common name (`CN=S4`).
///
/// Invariants: a replica's name is a replica name, `S<n>`; a client's or an operator's name is a non-empty word.
public struct NodeIdentity: Sendable, Hashable, CustomStringConvertible {
    /// What a certificate allows its holder to do.
    public enum Role: String, Sendable, CaseIterable {
        /// A replica: Paxos traffic within its own cluster, 2PC recovery questions to other clusters.
        case replica
        /// A client: commands and the inspection calls.
        case client
        /// An operator: what a client may do, and the test controls where a cluster allows them.
        case `operator`
    }

    /// The organization every certificate of a deployment names (`O=Ledger`).
    public static let organization = "Ledger"

    public var role: Role
    public var name: String

    public init(role: Role, name: String) {
        self.role = role
        self.name = name
    }

    /// The identity a certificate's subject gives, or why it gives none.
    public static func parse(organizationalUnit: String?, commonName: String?) -> Result<NodeIdentity, AccessRefusal> {
        guard let unit = organizationalUnit, let role = Role(rawValue: unit) else {
            let roles = Role.allCases.map(\.rawValue).joined(separator: ", ")
            return .failure(
                AccessRefusal(
                    .permissionDenied,
                    "the certificate's subject has \(organizationalUnit.map { "OU=\($0)" } ?? "no OU"); "
                        + "expected one of the roles \(roles)"))
        }
        guard let name = commonName, !name.isEmpty, name.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            return .failure(AccessRefusal(.permissionDenied, "the certificate's subject has no usable CN"))
        }
        if role == .replica, TextInput.nameNumber(Substring(name), prefix: "S") == nil {
            return .failure(
                AccessRefusal(
                    .permissionDenied, "the replica certificate names \"\(name)\", which is not a replica name"))
        }
        return .success(NodeIdentity(role: role, name: name))
    }

    public var description: String { "\(role.rawValue) \(name)" }
}

/// A call refused before it ran, with the reason given to the caller and the log.
public struct AccessRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The caller proved no identity.
        case unauthenticated
        /// The caller's identity may not make this call.
        case permissionDenied
    }

    public var kind: Kind
    public var reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { reason }
}

/// Which calls of a node (the process hosting one or more replicas, at most one per cluster) each identity may make.
/// Pure: the node asks it for every call when TLS is on.
///
/// A node's connections carry the certificate of one of its replicas, and a replica's certificate speaks for every
/// replica of its node (they are one process, which holds all their keys).
///
/// - Peer streams (Paxos, catch-up): nodes hosting a member of a cluster hosted here, never this node itself.
/// - Decision (2PC recovery, which aborts an undecided transaction at its home): replicas of the deployment only (a
///   participant resolving doubt asks its home cluster). A client reads a transaction's fate with TransactionStatus.
/// - TransactionStatus (read-only): any replica of the deployment (a home confirming what its participants prepared,
///   a participant learning its home's decision), clients and operators.
/// - Commands and the inspection calls: clients and operators.
/// - Test controls: operators, and only where a hosted cluster's config enables them (the service checks the
///   cluster of each call).
/// - Membership changes: operators only.
public struct AccessPolicy: Sendable {
    /// The calls, grouped by who may make them.
    public enum Call: Sendable, Equatable {
        case peerStream
        case decision
        case transactionStatus
        case command
        case inspection
        case testControl
        case membership
    }

    /// The clusters hosted here, `C<n>`, for messages.
    public let clusters: [String]
    /// The replicas hosted here.
    public let hosted: Set<String>
    /// Every replica that is or was in a hosted cluster (first members and added ones).
    public let members: Set<String>
    /// Every replica of the deployment, with the replicas its certificate speaks for (those of its node).
    public let nodeOf: [String: Set<String>]
    public let testControlsEnabled: Bool

    public init(
        clusters: [String], hosted: Set<String>, members: Set<String>, nodeOf: [String: Set<String>],
        testControlsEnabled: Bool
    ) {
        self.clusters = clusters
        self.hosted = hosted
        self.members = members
        self.nodeOf = nodeOf
        self.testControlsEnabled = testControlsEnabled
    }

    /// The policy of `node` of `hosts`: its replicas' clusters, and who shares a node with whom.
    public init(hosts: HostsFile, node: HostsFile.Node, testControlsEnabled: Bool) {
        let clusters = node.replicas.compactMap { hosts.cluster(of: $0) }
        var nodeOf: [String: Set<String>] = [:]
        for other in hosts.nodes {
            for replica in other.replicas { nodeOf[replica] = Set(other.replicas) }
        }
        self.init(
            clusters: clusters.map(\.name), hosted: Set(node.replicas), members: Set(clusters.flatMap(\.replicas)),
            nodeOf: nodeOf, testControlsEnabled: testControlsEnabled)
    }

    /// Whether a caller presenting `identity`'s certificate may send as `replica`.
    public func speaks(as replica: String, identity: String) -> Bool {
        nodeOf[identity]?.contains(replica) == true
    }

    /// Nil when `identity` may make `call`; otherwise why not.
    public func refusal(of call: Call, by identity: NodeIdentity) -> AccessRefusal? {
        func denied(_ reason: String) -> AccessRefusal { AccessRefusal(.permissionDenied, reason) }
        let clusterList = clusters.joined(separator: ", ")
        switch call {
        case .peerStream:
            guard identity.role == .replica else {
                return denied("\(identity) may not send peer messages; only replicas of \(clusterList) may")
            }
            let node = nodeOf[identity.name] ?? []
            guard !node.isDisjoint(with: members) else {
                return denied(
                    "replica \(identity.name) is not a member of \(clusterList), nor is any replica of its node; only "
                        + "their members send peer messages here")
            }
            guard node.isDisjoint(with: hosted) else {
                return denied("replica \(identity.name) may not send peer messages to its own node")
            }
            return nil
        case .decision:
            guard identity.role == .replica else {
                return denied(
                    "\(identity) may not call Decision, which aborts an undecided transaction: only replicas resolving "
                        + "doubt may; read a transaction's fate with TransactionStatus")
            }
            guard nodeOf[identity.name] != nil else {
                return denied("replica \(identity.name) is not a replica of this deployment")
            }
            return nil
        case .transactionStatus:
            if identity.role == .replica, nodeOf[identity.name] == nil {
                return denied("replica \(identity.name) is not a replica of this deployment")
            }
            return nil
        case .command, .inspection:
            guard identity.role != .replica else {
                return denied("\(identity) may not make client calls; use a client or operator certificate")
            }
            return nil
        case .testControl:
            guard identity.role == .operator else {
                return denied("\(identity) may not use the test controls; only an operator may")
            }
            guard testControlsEnabled else {
                return denied(
                    "test controls are off for \(clusterList); set test_controls: true in its config to use them")
            }
            return nil
        case .membership:
            guard identity.role == .operator else {
                return denied("\(identity) may not change a cluster's membership; only an operator may")
            }
            return nil
        }
    }
}
