import Crypto
import Foundation
import LedgerCore
import LedgerStore
import Testing
import X509

/// The `InputError` that `body` throws, or nil when it returns normally.
func thrownInputError<Value>(_ body: () throws(InputError) -> Value) -> InputError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

@Suite("Certificates for mutual TLS")
struct CertificatesTests {
    /// Two clusters; hosts by name, IPv4, bracketed IPv6 and DNS name.
    static let hostsText = """
        S1-localhost:6001
        S2-127.0.0.1:6002
        S3-[::1]:6003
        S4-node4.example:6004
        EC1-S1:S2:S3
        EC2-S4

        """

    static let names = ["S1", "S2", "S3", "S4", "client", "operator"]

    /// A scratch directory and the deployment's files in a subdirectory that does not exist yet.
    struct Setup {
        let scratch: ScratchDirectory
        let hosts: HostsFile
        let files: ClusterConfig.TLS.Files

        init() throws {
            scratch = try ScratchDirectory()
            hosts = try HostsFile.parse(CertificatesTests.hostsText, source: "hosts.ini")
            let directory = scratch.url.appendingPathComponent("tls/certs").path
            files = ClusterConfig.TLS.Files(
                ca: "\(directory)/ca.pem", certificate: "\(directory)/{name}.pem", key: "\(directory)/{name}-key.pem")
        }

        var caKey: String { Certificates.caKeyPath(of: files) }

        /// Every file the deployment has: the CA's two, then each identity's two.
        var allPaths: [String] {
            [files.ca, caKey] + CertificatesTests.names.flatMap { [files.certificate(of: $0), files.key(of: $0)] }
        }

        func contents() -> [String: Data] {
            var result: [String: Data] = [:]
            for path in allPaths { result[path] = FileManager.default.contents(atPath: path) }
            return result
        }

        @discardableResult
        func issue(force: Bool = false, now: Date = Date()) throws(InputError) -> CertificatesReport {
            try Certificates.issueDeployment(hosts: hosts, files: files, force: force, now: now)
        }

        /// The CA as written to disk.
        func authority() throws -> Certificates.Issued {
            let certificate = try Certificate(pemEncoded: try String(contentsOfFile: files.ca, encoding: .utf8))
            let key = try Certificate.PrivateKey(pemEncoded: try String(contentsOfFile: caKey, encoding: .utf8))
            return (certificate, key)
        }

        func certificate(of name: String) throws -> Certificate {
            try Certificate(pemEncoded: try String(contentsOfFile: files.certificate(of: name), encoding: .utf8))
        }

        /// Replaces the files of `name` with `issued`, the key with mode 0600.
        func overwrite(_ name: String, with issued: Certificates.Issued) throws {
            try Data(issued.certificate.serializeAsPEM().pemString.utf8).write(
                to: URL(fileURLWithPath: files.certificate(of: name)))
            try writeKey(issued.key.serializeAsPEM().pemString, to: files.key(of: name))
        }

        func writeKey(_ text: String, to path: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            #expect(chmod(path, 0o600) == 0)
        }

        func load(_ name: String, now: Date = Date()) -> InputError? {
            thrownInputError { () throws(InputError) in try TLSMaterial.load(files: files, name: name, now: now) }
        }
    }

    static func mode(_ path: String) -> mode_t {
        var status = stat()
        #expect(stat(path, &status) == 0, "stat \(path)")
        return status.st_mode & 0o777
    }

    static func loopback4() -> GeneralName { .ipAddress(.init(contentBytes: [127, 0, 0, 1])) }
    static func loopback6() -> GeneralName {
        .ipAddress(.init(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))
    }

    @Test("the CA key sits beside the CA certificate")
    func caKeyPath() {
        func key(_ ca: String) -> String {
            Certificates.caKeyPath(of: ClusterConfig.TLS.Files(ca: ca, certificate: "{name}.pem", key: "{name}-k"))
        }
        #expect(key("certs/ca.pem") == "certs/ca-key.pem")
        #expect(key("/etc/ledger/root") == "/etc/ledger/root-key.pem")
        #expect(key("ca.crt") == "ca.crt-key.pem")
    }

    @Test("issueDeployment writes the CA and a certificate and key for every replica, client and operator")
    func writesEveryFile() throws {
        let setup = try Setup()
        let now = Date()
        let report = try setup.issue(now: now)

        #expect(report.authority.outcome == .created)
        #expect(report.authority.identity == nil)
        #expect(report.authority.certificatePath == setup.files.ca)
        #expect(report.authority.keyPath == setup.caKey)
        #expect(report.identities.map { $0.identity?.name } == Self.names)
        #expect(
            report.identities.map { $0.identity?.role }
                == [.replica, .replica, .replica, .replica, .client, .operator])
        #expect(report.entries.allSatisfy { $0.outcome == .created })
        for entry in report.identities {
            let name = entry.identity!.name
            #expect(entry.certificatePath == setup.files.certificate(of: name))
            #expect(entry.keyPath == setup.files.key(of: name))
            #expect(abs(entry.notValidBefore.timeIntervalSince(now) + 300) < 2)
            let year = entry.notValidAfter.timeIntervalSince(now) / 86400
            #expect(year > 364.99 && year < 366.01, "\(name) valid for \(year) days")
        }
        let caYears = report.authority.notValidAfter.timeIntervalSince(now) / 86400 / 365
        #expect(caYears > 9.99 && caYears < 10.01)

        for path in setup.allPaths {
            #expect(FileManager.default.fileExists(atPath: path), "\(path) is missing")
            let isKey = path.hasSuffix("-key.pem")
            #expect(Self.mode(path) == (isKey ? 0o600 : 0o644), "\(path) has mode \(String(Self.mode(path), radix: 8))")
            let text = try String(contentsOfFile: path, encoding: .utf8)
            #expect(text.hasPrefix(isKey ? "-----BEGIN PRIVATE KEY-----" : "-----BEGIN CERTIFICATE-----"))
        }
        // No temporary file is left behind.
        let directory = URL(fileURLWithPath: setup.files.ca).deletingLastPathComponent().path
        let listed = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(listed.count == setup.allPaths.count, "\(listed)")
    }

    @Test("every certificate verifies against the CA and names its identity, uses and hosts")
    func certificatesVerify() async throws {
        let setup = try Setup()
        try setup.issue()
        let authority = try setup.authority()

        let ca = authority.certificate
        #expect(try ca.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(ca.extensions[oid: .X509ExtensionID.basicConstraints]?.critical == true)
        let caUsage = try #require(try ca.extensions.keyUsage)
        #expect(caUsage.keyCertSign && caUsage.cRLSign && !caUsage.digitalSignature)
        #expect(ca.extensions[oid: .X509ExtensionID.keyUsage]?.critical == true)
        #expect(ca.subject.description.contains("O=Ledger"))
        let caKeyIdentifier = try #require(try ca.extensions.subjectKeyIdentifier).keyIdentifier
        #expect(ca.issuer == ca.subject)
        #expect(authority.key.publicKey == ca.publicKey)

        let expectedNames: [String: [GeneralName]] = [
            "S1": [.dnsName("localhost"), Self.loopback4(), Self.loopback6()],
            "S2": [Self.loopback4()],
            "S3": [Self.loopback6()],
            "S4": [.dnsName("node4.example")],
            "client": [],
            "operator": [],
        ]
        var serials: Set<Certificate.SerialNumber> = []
        for name in Self.names {
            let leaf = try setup.certificate(of: name)
            var verifier = Verifier(rootCertificates: CertificateStore([ca])) { RFC5280Policy() }
            let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
            guard case .validCertificate = result else {
                Issue.record("\(name) does not verify against the CA: \(result)")
                continue
            }

            let identity = try Certificates.identity(of: leaf).get()
            #expect(identity.name == name)
            #expect(identity.role == (name.hasPrefix("S") ? .replica : NodeIdentity.Role(rawValue: name)!))
            #expect(leaf.subject.description.contains("O=Ledger"))

            let usages = try #require(try leaf.extensions.extendedKeyUsage)
            #expect(usages.contains(.clientAuth))
            #expect(usages.contains(.serverAuth) == (identity.role == .replica), "\(name): \(usages)")
            let keyUsage = try #require(try leaf.extensions.keyUsage)
            #expect(keyUsage.digitalSignature && !keyUsage.keyCertSign)
            #expect(leaf.extensions[oid: .X509ExtensionID.keyUsage]?.critical == true)
            #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
            #expect(try leaf.extensions.authorityKeyIdentifier?.keyIdentifier == caKeyIdentifier)

            let alternativeNames = try leaf.extensions.subjectAlternativeNames.map { Array($0) } ?? []
            #expect(alternativeNames == expectedNames[name], "\(name)")
            serials.insert(leaf.serialNumber)

            let key = try Certificate.PrivateKey(
                pemEncoded: try String(contentsOfFile: setup.files.key(of: name), encoding: .utf8))
            #expect(key.publicKey == leaf.publicKey, "\(name)'s key is not its certificate's")
        }
        #expect(serials.count == Self.names.count, "serial numbers repeat")
    }

    @Test("issue gives IP addresses for literals and both loopbacks for localhost")
    func alternativeNames() throws {
        let now = Date()
        let authority = try Certificates.makeAuthority(
            commonName: "Test CA", notValidBefore: now, notValidAfter: now + 3600)
        let issued = try Certificates.issue(
            identity: NodeIdentity(role: .replica, name: "S9"), hostnames: ["10.1.2.3", "fd00::7", "LocalHost"],
            authority: authority, notValidBefore: now, notValidAfter: now + 3600)
        let names = try issued.certificate.extensions.subjectAlternativeNames.map { Array($0) }
        #expect(
            names == [
                .ipAddress(.init(contentBytes: [10, 1, 2, 3])),
                .ipAddress(.init(contentBytes: [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7])),
                .dnsName("LocalHost"), Self.loopback4(), Self.loopback6(),
            ])
    }

    @Test("running again without --force keeps every file byte for byte")
    func rerunKeeps() throws {
        let setup = try Setup()
        try setup.issue()
        let before = setup.contents()
        let report = try setup.issue()
        #expect(report.entries.allSatisfy { $0.outcome == .kept })
        #expect(report.entries.count == 1 + Self.names.count)
        #expect(setup.contents() == before)
    }

    @Test("a key or a CA file that is missing while its partner exists is refused, naming it, and nothing is written")
    func missingPartnerRefused() throws {
        let setup = try Setup()
        try setup.issue()
        let keyPath = setup.files.key(of: "S2")
        try FileManager.default.removeItem(atPath: keyPath)
        var before = setup.contents()
        let error = thrownInputError { () throws(InputError) in try setup.issue() }
        #expect(error?.source == keyPath)
        #expect(error?.message.contains("--force") == true, "\(String(describing: error))")
        #expect(setup.contents() == before)

        try FileManager.default.removeItem(atPath: setup.caKey)
        before = setup.contents()
        let caError = thrownInputError { () throws(InputError) in try setup.issue() }
        #expect(caError?.source == setup.caKey)
        #expect(caError?.message.contains("--force") == true)
        #expect(setup.contents() == before)
    }

    @Test("an identity's certificate from another CA is refused when running again")
    func foreignCertificateRefused() throws {
        let setup = try Setup()
        try setup.issue()
        let now = Date()
        let other = try Certificates.makeAuthority(
            commonName: "Other CA", notValidBefore: now, notValidAfter: now + 86400)
        try setup.overwrite(
            "S3",
            with: try Certificates.issue(
                identity: NodeIdentity(role: .replica, name: "S3"), hostnames: ["[::1]"], authority: other,
                notValidBefore: now - 60, notValidAfter: now + 3600))
        let error = thrownInputError { () throws(InputError) in try setup.issue() }
        #expect(error?.source == setup.files.certificate(of: "S3"))
        #expect(error?.message.contains("not signed by the CA") == true, "\(String(describing: error))")
        #expect(error?.message.contains("--force") == true)
    }

    @Test("--force makes everything anew, the CA included")
    func forceReplaces() throws {
        let setup = try Setup()
        try setup.issue()
        let before = setup.contents()
        let report = try setup.issue(force: true)
        #expect(report.entries.allSatisfy { $0.outcome == .created })
        let after = setup.contents()
        for path in setup.allPaths {
            #expect(after[path] != nil && after[path] != before[path], "\(path) was not replaced")
        }
        for name in Self.names {
            #expect(
                thrownInputError { () throws(InputError) in try TLSMaterial.load(files: setup.files, name: name) }
                    == nil)
        }
    }

    @Test("TLSMaterial.load reads and checks a good identity")
    func loadGood() throws {
        let setup = try Setup()
        try setup.issue()
        let material = try TLSMaterial.load(files: setup.files, name: "S1")
        #expect(material.identity == NodeIdentity(role: .replica, name: "S1"))
        #expect(material.caPEM == (try String(contentsOfFile: setup.files.ca, encoding: .utf8)))
        #expect(
            material.certificatePEM == (try String(contentsOfFile: setup.files.certificate(of: "S1"), encoding: .utf8)))
        #expect(material.keyPEM == (try String(contentsOfFile: setup.files.key(of: "S1"), encoding: .utf8)))
        #expect(material.notValidAfter == (try setup.certificate(of: "S1")).notValidAfter)
        let operatorMaterial = try TLSMaterial.load(files: setup.files, name: "operator")
        #expect(operatorMaterial.identity == NodeIdentity(role: .operator, name: "operator"))
    }

    @Test("TLSMaterial.load refuses a missing file, naming it")
    func loadMissing() throws {
        let setup = try Setup()
        try setup.issue()
        try FileManager.default.removeItem(atPath: setup.files.certificate(of: "S1"))
        let error = setup.load("S1")
        #expect(error?.source == setup.files.certificate(of: "S1"))
        #expect(error?.message.contains("shardctl certs") == true, "\(String(describing: error))")

        try FileManager.default.removeItem(atPath: setup.files.ca)
        #expect(setup.load("S2")?.source == setup.files.ca)
    }

    @Test("TLSMaterial.load refuses a file that is not PEM")
    func loadNotPEM() throws {
        let setup = try Setup()
        try setup.issue()
        try Data("hello".utf8).write(to: URL(fileURLWithPath: setup.files.certificate(of: "S1")))
        let error = setup.load("S1")
        #expect(error?.source == setup.files.certificate(of: "S1"))
        #expect(error?.message.contains("is not a PEM certificate") == true, "\(String(describing: error))")

        // A certificate where the key should be.
        try setup.writeKey(try String(contentsOfFile: setup.files.ca, encoding: .utf8), to: setup.files.key(of: "S2"))
        let keyError = setup.load("S2")
        #expect(keyError?.source == setup.files.key(of: "S2"))
        #expect(keyError?.message.contains("is not a PEM private key") == true, "\(String(describing: keyError))")
    }

    @Test("TLSMaterial.load refuses a certificate from another CA")
    func loadOtherCA() throws {
        let setup = try Setup()
        try setup.issue()
        let now = Date()
        let other = try Certificates.makeAuthority(
            commonName: Certificates.authorityCommonName, notValidBefore: now - 60, notValidAfter: now + 86400)
        try setup.overwrite(
            "S1",
            with: try Certificates.issue(
                identity: NodeIdentity(role: .replica, name: "S1"), hostnames: ["localhost"], authority: other,
                notValidBefore: now - 60, notValidAfter: now + 3600))
        let error = setup.load("S1")
        #expect(error?.source == setup.files.certificate(of: "S1"))
        #expect(
            error?.message.contains("not signed by the CA \(setup.files.ca)") == true, "\(String(describing: error))")
    }

    @Test("TLSMaterial.load refuses an expired certificate and one not valid yet, with their dates")
    func loadOutOfDate() throws {
        let setup = try Setup()
        try setup.issue()
        let authority = try setup.authority()
        let now = Date()
        let identity = NodeIdentity(role: .replica, name: "S1")
        let path = setup.files.certificate(of: "S1")

        let expired = try Certificates.issue(
            identity: identity, hostnames: ["localhost"], authority: authority, notValidBefore: now - 7200,
            notValidAfter: now - 3600)
        try setup.overwrite("S1", with: expired)
        let expiredError = setup.load("S1", now: now)
        #expect(expiredError?.source == path)
        #expect(expiredError?.message.contains("expired on") == true, "\(String(describing: expiredError))")
        #expect(
            expiredError?.message.contains(expired.certificate.notValidAfter.formatted(.iso8601)) == true)

        let early = try Certificates.issue(
            identity: identity, hostnames: ["localhost"], authority: authority, notValidBefore: now + 3600,
            notValidAfter: now + 7200)
        try setup.overwrite("S1", with: early)
        let earlyError = setup.load("S1", now: now)
        #expect(earlyError?.source == path)
        #expect(earlyError?.message.contains("not valid yet") == true, "\(String(describing: earlyError))")
        #expect(earlyError?.message.contains(early.certificate.notValidBefore.formatted(.iso8601)) == true)

        // The same certificate is accepted once its time has come.
        #expect(setup.load("S1", now: now + 5400) == nil)
    }

    @Test("TLSMaterial.load refuses a key that belongs to another certificate")
    func loadForeignKey() throws {
        let setup = try Setup()
        try setup.issue()
        let otherKey = try String(contentsOfFile: setup.files.key(of: "S2"), encoding: .utf8)
        try setup.writeKey(otherKey, to: setup.files.key(of: "S1"))
        let error = setup.load("S1")
        #expect(error?.source == setup.files.key(of: "S1"))
        #expect(error?.message.contains("is not the private key") == true, "\(String(describing: error))")
    }

    @Test("TLSMaterial.load refuses another identity's certificate, saying whose it is")
    func loadNameMismatch() throws {
        let setup = try Setup()
        try setup.issue()
        let manager = FileManager.default
        for (from, to) in [
            (setup.files.certificate(of: "S1"), setup.files.certificate(of: "S2")),
            (setup.files.key(of: "S1"), setup.files.key(of: "S2")),
        ] {
            try manager.removeItem(atPath: to)
            try manager.copyItem(atPath: from, toPath: to)
        }
        #expect(chmod(setup.files.key(of: "S2"), 0o600) == 0)
        let error = setup.load("S2")
        #expect(error?.source == setup.files.certificate(of: "S2"))
        #expect(error?.message.contains("replica S1") == true, "\(String(describing: error))")
    }

    @Test("TLSMaterial.load refuses a key its group may read, giving the chmod")
    func loadGroupReadable() throws {
        let setup = try Setup()
        try setup.issue()
        let path = setup.files.key(of: "client")
        #expect(chmod(path, 0o640) == 0)
        let error = setup.load("client")
        #expect(error?.source == path)
        #expect(error?.message.contains("chmod 600 \(path)") == true, "\(String(describing: error))")
    }

    @Test("identity(of:) requires O=Ledger")
    func identityNeedsOrganization() throws {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let now = Date()
        let subject = try DistinguishedName {
            OrganizationName("Elsewhere")
            OrganizationalUnitName("replica")
            CommonName("S1")
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey, notValidBefore: now,
            notValidAfter: now + 60, issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: Certificate.Extensions(), issuerPrivateKey: key)
        guard case .failure(let refusal) = Certificates.identity(of: certificate) else {
            Issue.record("a certificate of O=Elsewhere gave an identity")
            return
        }
        #expect(refusal.reason.contains("O=Elsewhere"))
    }
}
