import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerClient
import LedgerCore
import LedgerRPC
import LedgerStore
import NIOCore
import Paxos
import Testing
import X509

@testable import LedgerNode

/// Real replica processes with mutual TLS on, called by every kind of caller that must be refused: each refusal gets
/// its gRPC status, changes no state, and is logged by the replica with the caller's address.
@Suite("Mutual TLS", .serialized, .sharesMachine)
struct TLSTests {
    static let s1 = ReplicaID(1)

    @Test(.timeLimit(.minutes(6))) func everyCallerWithoutTheRightCertificateIsRefused() async throws {
        let deployment = try TestDeployment(clusters: 2, accountsPerCluster: 10)
        defer { deployment.stopAll() }
        try deployment.startAll()
        let s1Only = [deployment.addresses(of: "C1")[0]]

        try await ClusterClient.with(
            cluster: "C1", addresses: deployment.addresses(of: "C1"), security: try deployment.security(as: "client")
        ) { client in
            _ = try await deployment.waitForLeader(client, within: .seconds(60))
            try await deployment.waitForAccounts(client, replicas: client.replicas, within: .seconds(60))

            // No certificate at all: the handshake fails, the call never reaches the replica.
            let plaintext = await Self.statusError(s1Only, security: .plaintext)
            #expect(plaintext.map(Self.isTransportRefusal) == true, "plaintext: \(String(describing: plaintext))")

            // A certificate from another CA (the caller trusts ours, so it is the replica that refuses).
            let ours = try TestCertificates(files: deployment.certificateFiles)
            let elsewhere = try TestCertificates(directory: deployment.directory.appendingPathComponent("other-ca"))
            let foreign = await Self.statusError(s1Only, security: try ours.trusting(elsewhere.material(as: "client")))
            #expect(foreign.map(Self.isTransportRefusal) == true, "other CA: \(String(describing: foreign))")

            // Certificates of this CA outside their validity.
            let now = Date()
            let expired = try ours.issue(
                NodeIdentity(role: .client, name: "client"), from: now - 2 * 86_400, until: now - 86_400)
            let early = try ours.issue(
                NodeIdentity(role: .client, name: "client"), from: now + 86_400, until: now + 2 * 86_400)
            for (name, security) in [("expired", expired), ("not yet valid", early)] {
                let error = await Self.statusError(s1Only, security: security)
                #expect(error.map(Self.isTransportRefusal) == true, "\(name): \(String(describing: error))")
            }

            // The client's own certificate works for client calls...
            let status = try await client.status(of: Self.s1)
            #expect(status.isDisconnected == false)

            // ...but not for peer messages, nor test controls.
            let clientSecurity = try deployment.security(as: "client")
            let peerByClient = await Self.answered {
                await Self.peerStreamError(
                    port: deployment.ports["S1"]!, security: clientSecurity,
                    batch: Self.phase2a(cluster: "C1", from: ReplicaID(2)))
            }
            #expect(peerByClient?.code == .permissionDenied, "\(String(describing: peerByClient))")
            let controlByClient = await Self.answered {
                await Self.error { try await client.setConnected(false, replica: Self.s1) }
            }
            #expect(controlByClient?.code == .permissionDenied, "\(String(describing: controlByClient))")
            #expect(try await client.status(of: Self.s1).isDisconnected == false)

            // A replica of another cluster sending Phase 2a to S1, and a member speaking for another member.
            let s4 = try deployment.security(as: "S4")
            let fromOtherCluster = await Self.answered {
                await Self.peerStreamError(
                    port: deployment.ports["S1"]!, security: s4, batch: Self.phase2a(cluster: "C1", from: ReplicaID(4)))
            }
            #expect(fromOtherCluster?.code == .permissionDenied, "\(String(describing: fromOtherCluster))")
            let s2 = try deployment.security(as: "S2")
            let impersonation = await Self.answered {
                await Self.peerStreamError(
                    port: deployment.ports["S1"]!, security: s2, batch: Self.phase2a(cluster: "C1", from: ReplicaID(3)))
            }
            #expect(impersonation?.code == .permissionDenied, "\(String(describing: impersonation))")

            // A replica's certificate making client calls (an inspection here).
            let inspectionByReplica = await Self.answered { await Self.statusError(s1Only, security: s4) }
            #expect(inspectionByReplica?.code == .permissionDenied, "\(String(describing: inspectionByReplica))")

            // Through the client library, a refused caller learns why, and that nothing was applied.
            try await LedgerConnection.with(
                deployment: try deployment.deployment(), catalog: try deployment.catalog(), as: "S4"
            ) { connection in
                let reason = "replica S4 may not make client calls; use a client or operator certificate"
                let transfer = try Transfer(from: AccountID(1), to: AccountID(2), amount: Amount(1))
                #expect(await connection.transfer(transfer) == .aborted(.forbidden(reason, cluster: "C1")))
                #expect(await connection.balance(of: AccountID(1)) == .failure(.forbidden(reason)))
            }
            #expect(try await client.localBalance(of: AccountID(1), at: Self.s1).balance == 10)

            // None of the forged Phase 2a messages was taken: S1 never adopted their ballot.
            #expect(try await client.status(of: Self.s1).ballot.round < Self.forgedRound)

            // The operator may use the test controls (on in this deployment's configs).
            try await ClusterClient.with(cluster: "C1", addresses: s1Only, security: try deployment.security()) {
                operatorClient in
                try await operatorClient.setConnected(false, replica: Self.s1)
                #expect(try await operatorClient.status(of: Self.s1).isDisconnected)
                try await operatorClient.setConnected(true, replica: Self.s1)
                #expect(try await operatorClient.status(of: Self.s1).isDisconnected == false)
            }
        }

        // Every refusal is in S1's log with the caller's address and the reason: the handshakes that S1 refused
        // (plaintext; another CA, expired, not yet valid), then each call.
        let log = try String(contentsOf: deployment.directory.appendingPathComponent("S1.log"), encoding: .utf8)
        func count(_ text: String) -> Int { log.components(separatedBy: text).count - 1 }
        #expect(count("peer=[IPv4]127.0.0.1") >= 4, "\(log.suffix(4000))")
        #expect(count("WRONG_VERSION_NUMBER") >= 1, "\(log.suffix(4000))")
        #expect(count("CERTIFICATE_VERIFY_FAILED") >= 3, "\(log.suffix(4000))")
        for reason in [
            "client client may not send peer messages", "client client may not use the test controls",
            "replica S4 is not a member of C1", "a peer batch from S3 refused: the caller's certificate names S2",
            "replica S4 may not make client calls",
        ] {
            #expect(log.contains("reason=\(reason)") && log.contains("peer=ipv4:127.0.0.1:"), "\(reason)")
        }
    }

    /// The peer port (frames) refuses whom the gRPC peer stream refuses, by closing the connection, and takes a
    /// member's batch under its own certificate.
    @Test(.timeLimit(.minutes(6))) func thePeerPortRefusesWhomThePeerStreamRefuses() async throws {
        let deployment = try TestDeployment(clusters: 2, accountsPerCluster: 10)
        defer { deployment.stopAll() }
        try deployment.startAll()
        let port = deployment.peerPorts["S1"]!
        try await ClusterClient.with(
            cluster: "C1", addresses: deployment.addresses(of: "C1"), security: try deployment.security(as: "client")
        ) { client in
            _ = try await deployment.waitForLeader(client, within: .seconds(60))
            for (caller, identity, sender) in [
                ("a client", "client", 2), ("a replica of another cluster", "S4", 4),
                ("a member speaking for another", "S2", 3),
            ] {
                let closed = try await Self.peerFrameClosed(
                    port: port, security: try deployment.security(as: identity),
                    batch: Self.phase2a(cluster: "C1", from: ReplicaID(sender)))
                #expect(closed, "S1 kept the peer connection of \(caller)")
            }
            let plaintext = try await Self.peerFrameClosed(
                port: port, security: .plaintext, batch: Self.phase2a(cluster: "C1", from: ReplicaID(2)))
            #expect(plaintext, "S1 kept a plaintext peer connection")
            #expect(try await client.status(of: Self.s1).ballot.round < Self.forgedRound)

            // A member's own certificate speaking for itself: the batch is taken (S1 adopts its ballot).
            let refused = try await Self.peerFrameClosed(
                port: port, security: try deployment.security(as: "S2"),
                batch: Self.phase2a(cluster: "C1", from: ReplicaID(2)), within: .seconds(1))
            #expect(!refused, "S1 closed the peer connection of S2")
            let deadline = ContinuousClock.now + .seconds(10)
            while try await client.status(of: Self.s1).ballot.round < Self.forgedRound, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await client.status(of: Self.s1).ballot.round >= Self.forgedRound)
        }
        let log = try String(contentsOf: deployment.directory.appendingPathComponent("S1.log"), encoding: .utf8)
        for reason in [
            "client client may not send peer messages", "replica S4 is not a member of C1",
            "a peer batch from S3 refused: the caller's certificate names S2", "TLS handshake refused",
        ] {
            #expect(log.contains(reason), "\(reason) not in S1's log: \(log.suffix(3000))")
        }
    }

    @Test(.timeLimit(.minutes(6))) func aClusterWithTLSOffServesPlaintextAndWarns() async throws {
        let deployment = try TestDeployment(clusters: 1, accountsPerCluster: 5, tls: false)
        defer { deployment.stopAll() }
        try deployment.startAll()
        try await ClusterClient.with(
            cluster: "C1", addresses: deployment.addresses(of: "C1"), security: .plaintext
        ) { client in
            _ = try await deployment.waitForLeader(client, within: .seconds(60))
        }
        let log = try String(contentsOf: deployment.directory.appendingPathComponent("S1.log"), encoding: .utf8)
        #expect(log.contains("TLS is off"))
    }

    // MARK: - Callers

    /// A ballot far above any the cluster reaches in a test: adopting it would show in S1's status.
    static let forgedRound: UInt64 = 1_000_000

    static func phase2a(cluster: String, from sender: ReplicaID) -> PeerBatch {
        PeerBatch(
            cluster: cluster, from: sender, to: s1,
            messages: [.phase2a(ballot: Ballot(round: forgedRound, replica: sender), proposals: [], chosenThrough: 0)])
    }

    static func isTransportRefusal(_ error: RPCError) -> Bool {
        error.code == .unavailable || error.code == .deadlineExceeded
    }

    /// The error of `call`, tried again (at most five times) while it is only that the replica did not answer in time:
    /// on a loaded machine a call may miss its deadline, and the answer under test is the replica's own.
    static func answered(_ call: () async -> RPCError?) async -> RPCError? {
        var last: RPCError?
        for _ in 0..<5 {
            last = await call()
            guard let error = last, isTransportRefusal(error) else { return last }
        }
        return last
    }

    static func error(_ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            return RPCError(code: .unknown, message: "\(error)")
        }
    }

    /// The error of a Status call to the first address with `security`, nil if it succeeded.
    static func statusError(_ addresses: [ClusterClient.Address], security: ConnectionSecurity) async -> RPCError? {
        await error {
            try await ClusterClient.with(cluster: "C1", addresses: addresses, security: security) { client in
                _ = try await client.status(of: addresses[0].replica)
            }
        }
    }

    /// Whether the replica closed a connection to its peer port 127.0.0.1:`port` within `limit` of taking `batch` as a
    /// frame from `security`'s identity.
    static func peerFrameClosed(
        port: Int, security: ConnectionSecurity, batch: PeerBatch, within limit: Duration = .seconds(5)
    ) async throws -> Bool {
        let channel = try await PeerFrame.connect(
            host: "127.0.0.1", port: port, tls: try PeerFrame.tls(security, server: false))
        defer { channel.close(promise: nil) }
        try? await channel.writeAndFlush(try PeerFrame.encode([batch], allocator: channel.allocator)).get()
        let deadline = ContinuousClock.now + limit
        while channel.isActive, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        return !channel.isActive
    }

    /// The error of a peer stream carrying `batch` to 127.0.0.1:`port`, nil if the replica took it.
    static func peerStreamError(port: Int, security: ConnectionSecurity, batch: PeerBatch) async -> RPCError? {
        await error {
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: security.client)
            try await withGRPCClient(transport: transport) { grpc in
                var options = CallOptions.defaults
                options.timeout = .seconds(10)
                let request = StreamingClientRequest<Ledger_V1_PeerBatch> { writer in
                    try await writer.write(Ledger_V1_PeerBatch(batch))
                }
                _ = try await Ledger_V1_Peer.Client(wrapping: grpc).stream(request: request, options: options)
            }
        }
    }
}

/// A CA on disk for tests: a new one (`directory`), or the deployment's (`files`), which can issue certificates
/// with any validity.
struct TestCertificates {
    let files: ClusterConfig.TLS.Files
    let authority: (certificate: Certificate, key: Certificate.PrivateKey)

    /// A new CA and identities for the replicas S1-S9, client and operator, in `directory`.
    init(directory: URL) throws {
        let hosts = try HostsFile.parse(
            (1...9).map { "S\($0)-127.0.0.1:\(7000 + $0)" }.joined(separator: "\n")
                + "\nEC1-S1:S2:S3\nEC2-S4:S5:S6\nEC3-S7:S8:S9\nC1-S1\nC2-S4\nC3-S7\n",
            source: "hosts.ini")
        let path = directory.path
        let files = ClusterConfig.TLS.Files(
            ca: "\(path)/ca.pem", certificate: "\(path)/{name}.pem", key: "\(path)/{name}-key.pem")
        _ = try Certificates.issueDeployment(hosts: hosts, files: files, force: false)
        try self.init(files: files)
    }

    /// The CA of `files`.
    init(files: ClusterConfig.TLS.Files) throws {
        self.files = files
        authority = (
            try Certificate(pemEncoded: try String(contentsOfFile: files.ca, encoding: .utf8)),
            try Certificate.PrivateKey(
                pemEncoded: try String(contentsOfFile: Certificates.caKeyPath(of: files), encoding: .utf8))
        )
    }

    func material(as name: String) throws -> TLSMaterial {
        try TLSMaterial.load(files: files, name: name)
    }

    /// `material`, trusting this CA instead of its own: it accepts our servers and presents its own certificate.
    func trusting(_ material: TLSMaterial) throws -> ConnectionSecurity {
        var material = material
        material.caPEM = try authority.certificate.serializeAsPEM().pemString
        return .mutual(material)
    }

    /// A certificate of this CA valid from `start` to `end` only; not checked, so it may be expired.
    func issue(_ identity: NodeIdentity, from start: Date, until end: Date) throws -> ConnectionSecurity {
        let (certificate, key) = try Certificates.issue(
            identity: identity, hostnames: [], authority: authority, notValidBefore: start, notValidAfter: end)
        return .mutual(
            TLSMaterial(
                caPEM: try authority.certificate.serializeAsPEM().pemString,
                certificatePEM: try certificate.serializeAsPEM().pemString, keyPEM: try key.serializeAsPEM().pemString,
                identity: identity, notValidAfter: end))
    }
}
