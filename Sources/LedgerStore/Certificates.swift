import Crypto
import Foundation
import LedgerCore
import SwiftASN1
import X509

/// The deployment's certificate authority and the certificates of its identities, for mutual TLS: `shardctl certs`
/// makes them, and every replica, client and operator checks its own with `TLSMaterial.load` before it listens or
/// dials.
///
/// One CA signs everything. Each identity (every replica of hosts.ini, `client` and `operator`) gets a P-256 key and a
/// certificate whose subject names it the way `NodeIdentity` reads it: `O=Ledger, OU=<role>, CN=<name>`.
public enum Certificates {
    /// A certificate and the private key of its public key: the CA's, or one identity's.
    public typealias Issued = (certificate: Certificate, key: Certificate.PrivateKey)

    /// How long a CA made by `issueDeployment` is valid, in years: long, because replacing it replaces every
    /// certificate of the deployment.
    public static let authorityLifetimeYears = 10

    /// How long an identity's certificate made by `issueDeployment` is valid, in years.
    public static let identityLifetimeYears = 1

    /// How far before `now` the certificates of `issueDeployment` become valid, so that a machine whose clock is a
    /// little behind accepts a certificate made a moment ago.
    public static let clockSkew: TimeInterval = 5 * 60

    /// The common name of the CA that `issueDeployment` makes.
    public static let authorityCommonName = "Ledger CA"

    /// What `--force` does, for messages that refuse to touch existing files.
    static let forceAdvice =
        "run `shardctl certs --force` to make the CA and every certificate and key anew (this replaces every key)"

    /// Where the CA's private key is: beside the CA certificate, `certs/ca.pem` -> `certs/ca-key.pem` (a path without
    /// `.pem` gets `-key.pem` appended). The configs name only the certificate, which every identity needs; only
    /// `shardctl certs` needs the key.
    public static func caKeyPath(of files: ClusterConfig.TLS.Files) -> String {
        if files.ca.hasSuffix(".pem") {
            return String(files.ca.dropLast(".pem".count)) + "-key.pem"
        }
        return files.ca + "-key.pem"
    }

    /// The identities `issueDeployment` makes certificates for: every replica of `hosts`, then `client` and
    /// `operator`.
    public static func identities(of hosts: HostsFile) -> [NodeIdentity] {
        hosts.replicas.map { NodeIdentity(role: .replica, name: $0.name) }
            + [NodeIdentity(role: .client, name: "client"), NodeIdentity(role: .operator, name: "operator")]
    }

    /// A new self-signed CA with a fresh P-256 key: subject `O=Ledger, CN=<commonName>`, allowed to sign leaf
    /// certificates only (path length 0) and nothing but certificates and CRLs.
    public static func makeAuthority(commonName: String, notValidBefore: Date, notValidAfter: Date) throws -> Issued {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName(NodeIdentity.organization)
            CommonName(commonName)
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: key.publicKey)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: notValidBefore, notValidAfter: notValidAfter, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: key)
        return (certificate, key)
    }

    /// A new certificate for `identity` with a fresh P-256 key, signed by `authority`: subject
    /// `O=Ledger, OU=<role>, CN=<name>`; a replica's may serve and dial (serverAuth, clientAuth), a client's or an
    /// operator's may only dial (clientAuth). `hostnames` become its subject alternative names: a DNS name, or an IP
    /// address for an IPv4 or IPv6 literal; `localhost` also gives 127.0.0.1 and ::1, so that a peer dialling either
    /// loopback address accepts it.
    public static func issue(
        identity: NodeIdentity, hostnames: [String], authority: Issued, notValidBefore: Date, notValidAfter: Date
    ) throws -> Issued {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName {
            OrganizationName(NodeIdentity.organization)
            OrganizationalUnitName(identity.role.rawValue)
            CommonName(identity.name)
        }
        let authorityKeyIdentifier =
            try authority.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: authority.certificate.publicKey).keyIdentifier
        let usages: [ExtendedKeyUsage.Usage] = identity.role == .replica ? [.serverAuth, .clientAuth] : [.clientAuth]
        let names = subjectAlternativeNames(hostnames)
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage(usages)
            SubjectKeyIdentifier(hash: key.publicKey)
            AuthorityKeyIdentifier(keyIdentifier: authorityKeyIdentifier)
            if !names.isEmpty {
                SubjectAlternativeNames(names)
            }
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: notValidBefore, notValidAfter: notValidAfter, issuer: authority.certificate.subject,
            subject: subject, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerPrivateKey: authority.key)
        return (certificate, key)
    }

    /// The subject alternative names that `hostnames` give, without repeats, in order: an IP address for an IPv4 or
    /// IPv6 literal (brackets allowed, `[::1]`), a DNS name otherwise, and both loopback addresses after `localhost`.
    public static func subjectAlternativeNames(_ hostnames: [String]) -> [GeneralName] {
        var names: [GeneralName] = []
        func add(_ name: GeneralName) {
            if !names.contains(name) { names.append(name) }
        }
        for hostname in hostnames {
            var host = Substring(hostname)
            if host.hasPrefix("["), host.hasSuffix("]") {
                host = host.dropFirst().dropLast()
            }
            if let address = ipAddress(String(host)) {
                add(.ipAddress(ASN1OctetString(contentBytes: address[...])))
                continue
            }
            add(.dnsName(String(host)))
            if host.lowercased() == "localhost" {
                add(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])))
                add(.ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])))
            }
        }
        return names
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 literal, or nil when `text` is not one.
    static func ipAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    /// The identity a certificate names: its role in the subject's OU and its name in the CN (`NodeIdentity.parse`),
    /// provided the subject's organization is `O=Ledger`, so a certificate made for something else is never taken
    /// for one of the deployment's.
    public static func identity(of certificate: Certificate) -> Result<NodeIdentity, AccessRefusal> {
        let subject = certificate.subject
        let organizations = values(of: .RDNAttributeType.organizationName, in: subject)
        guard organizations == [NodeIdentity.organization] else {
            let written = organizations.isEmpty ? "no O" : organizations.map { "O=\($0)" }.joined(separator: ", ")
            return .failure(
                AccessRefusal(
                    .permissionDenied,
                    "the certificate's subject has \(written); expected O=\(NodeIdentity.organization)"))
        }
        let units = values(of: .RDNAttributeType.organizationalUnitName, in: subject)
        let names = values(of: .RDNAttributeType.commonName, in: subject)
        guard units.count <= 1, names.count <= 1 else {
            return .failure(
                AccessRefusal(.permissionDenied, "the certificate's subject has more than one OU or CN; expected one"))
        }
        return NodeIdentity.parse(organizationalUnit: units.first, commonName: names.first)
    }

    /// The text of every attribute of type `type` in `name`, in order (a value that is not text is left out).
    static func values(of type: ASN1ObjectIdentifier, in name: DistinguishedName) -> [String] {
        name.flatMap { rdn in rdn.filter { $0.type == type }.compactMap { String($0.value) } }
    }

    // MARK: The deployment's files

    /// Makes the CA and every identity's certificate and key of a deployment (`shardctl certs`), where `files` says,
    /// creating missing directories: the CA (valid 10 years) with its key at `caKeyPath(of:)`, and for every replica
    /// of `hosts` (with its host as subject alternative name), `client` and `operator`, a certificate at
    /// `files.certificate(of:)` and a key at `files.key(of:)` (valid 1 year). Validity starts `clockSkew` before `now`.
    ///
    /// Without `force` nothing is overwritten: an existing CA is reused, and an identity whose certificate and key both
    /// exist, match, are valid at `now`, were issued by that CA to that identity for its hosts are kept. Anything
    /// else that exists (one of a pair, a certificate of another CA, ...) is refused before any file is written, with
    /// the file named: replacing a key breaks whoever uses it, so only `force` does that, and then it makes everything
    /// anew, the CA included.
    ///
    /// Keys are written PEM (PKCS#8) with mode 0600 from the moment the file exists, certificates with mode 0644;
    /// each file is written beside its final path and renamed into place, so a crash leaves the old file or the new
    /// one, never a part of one.
    public static func issueDeployment(
        hosts: HostsFile, files: ClusterConfig.TLS.Files, force: Bool, now: Date = Date()
    ) throws(InputError) -> CertificatesReport {
        let notValidBefore = now.addingTimeInterval(-clockSkew)
        let caKey = caKeyPath(of: files)

        // Decide everything before writing anything: a refusal leaves the files as they were.
        let authority: Issued
        let authorityOutcome: CertificatesReport.Outcome
        if !force, let existing = try existingPair(certificate: files.ca, key: caKey, what: "the CA") {
            authority = try checkedAuthority(existing, files: files, now: now)
            authorityOutcome = .kept
        } else {
            do {
                authority = try makeAuthority(
                    commonName: authorityCommonName, notValidBefore: notValidBefore,
                    notValidAfter: years(authorityLifetimeYears, after: now))
            } catch {
                throw InputError(source: files.ca, message: "the CA cannot be made: \(error)")
            }
            authorityOutcome = .created
        }

        var leaves: [(identity: NodeIdentity, issued: Issued, outcome: CertificatesReport.Outcome)] = []
        for identity in identities(of: hosts) {
            let certificatePath = files.certificate(of: identity.name)
            let keyPath = files.key(of: identity.name)
            let hostnames = hosts.replica(named: identity.name).map { [$0.host] } ?? []
            if !force,
                let existing = try existingPair(certificate: certificatePath, key: keyPath, what: "\(identity)")
            {
                if authorityOutcome == .created {
                    throw InputError(
                        source: certificatePath,
                        message:
                            "exists, but the CA that issued it does not (\(files.ca) and \(caKey) are missing), so it "
                            + "cannot be kept with a new CA; \(forceAdvice)")
                }
                do throws(InputError) {
                    try checkIdentity(
                        existing, name: identity.name, certificatePath: certificatePath, keyPath: keyPath,
                        authority: authority.certificate, authorityPath: files.ca, now: now)
                    try checkNames(existing.certificate, hostnames: hostnames, path: certificatePath)
                } catch {
                    throw InputError(source: error.source, message: "\(error.message); \(forceAdvice)")
                }
                leaves.append((identity, existing, .kept))
                continue
            }
            do {
                let issued = try issue(
                    identity: identity, hostnames: hostnames, authority: authority, notValidBefore: notValidBefore,
                    notValidAfter: years(identityLifetimeYears, after: now))
                leaves.append((identity, issued, .created))
            } catch {
                throw InputError(source: certificatePath, message: "the certificate cannot be made: \(error)")
            }
        }

        // Write: keys before certificates, so a crash between the two leaves a key without a certificate, which the
        // next run refuses, never a certificate whose key is lost.
        if authorityOutcome == .created {
            try writePair(authority, certificatePath: files.ca, keyPath: caKey)
        }
        for entry in leaves where entry.outcome == .created {
            try writePair(
                entry.issued, certificatePath: files.certificate(of: entry.identity.name),
                keyPath: files.key(of: entry.identity.name))
        }

        func entry(
            _ issued: Issued, _ identity: NodeIdentity?, _ outcome: CertificatesReport.Outcome, _ path: String,
            _ key: String
        ) -> CertificatesReport.Entry {
            CertificatesReport.Entry(
                outcome: outcome, identity: identity, certificatePath: path, keyPath: key,
                notValidBefore: issued.certificate.notValidBefore, notValidAfter: issued.certificate.notValidAfter)
        }
        return CertificatesReport(
            authority: entry(authority, nil, authorityOutcome, files.ca, caKey),
            identities: leaves.map {
                entry(
                    $0.issued, $0.identity, $0.outcome, files.certificate(of: $0.identity.name),
                    files.key(of: $0.identity.name))
            })
    }

    /// `years` calendar years after `date`, in UTC.
    static func years(_ years: Int, after date: Date) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(byAdding: .year, value: years, to: date)
            ?? date.addingTimeInterval(Double(years) * 365 * 86400)
    }

    /// The certificate and key at the two paths when both exist, nil when neither does; refuses one without the
    /// other, naming the missing one.
    static func existingPair(certificate: String, key: String, what: String) throws(InputError) -> Issued? {
        let manager = FileManager.default
        switch (manager.fileExists(atPath: certificate), manager.fileExists(atPath: key)) {
        case (false, false):
            return nil
        case (true, false):
            throw InputError(
                source: key,
                message: "is missing, but the certificate \(certificate) of \(what) exists; its key cannot be made "
                    + "again, so \(forceAdvice)")
        case (false, true):
            throw InputError(
                source: certificate,
                message: "is missing, but the key \(key) of \(what) exists; \(forceAdvice)")
        case (true, true):
            return (try readCertificate(certificate, what: "the certificate of \(what)"), try readKey(key))
        }
    }

    /// The CA of existing files, after checking it can sign for the deployment.
    static func checkedAuthority(_ authority: Issued, files: ClusterConfig.TLS.Files, now: Date) throws(InputError)
        -> Issued
    {
        do throws(InputError) {
            try checkAuthority(authority.certificate, path: files.ca, now: now)
            guard authority.key.publicKey == authority.certificate.publicKey else {
                throw InputError(
                    source: caKeyPath(of: files), message: "is not the private key of the CA certificate \(files.ca)")
            }
        } catch {
            throw InputError(source: error.source, message: "\(error.message); \(forceAdvice)")
        }
        return authority
    }

    /// Refuses a kept certificate whose subject alternative names are not those `hostnames` give (hosts.ini moved
    /// the replica): a peer dialling the new host would refuse it at every handshake.
    static func checkNames(_ certificate: Certificate, hostnames: [String], path: String) throws(InputError) {
        let expected = subjectAlternativeNames(hostnames)
        let actual: [GeneralName]
        do {
            actual = Array(try certificate.extensions.subjectAlternativeNames ?? SubjectAlternativeNames())
        } catch {
            throw InputError(source: path, message: "has unreadable subject alternative names (\(error))")
        }
        guard Set(actual) == Set(expected) else {
            throw InputError(
                source: path,
                message: "names the hosts \(describe(actual)), but hosts.ini gives \(describe(expected))")
        }
    }

    /// Subject alternative names as text: `localhost, 127.0.0.1, ::1`.
    static func describe(_ names: [GeneralName]) -> String {
        guard !names.isEmpty else { return "none" }
        return names.map { name in
            switch name {
            case .dnsName(let host): return host
            case .ipAddress(let bytes): return addressText(Array(bytes.bytes))
            default: return "\(name)"
            }
        }.joined(separator: ", ")
    }

    /// An IP address's bytes as text, `127.0.0.1` or `::1`.
    static func addressText(_ bytes: [UInt8]) -> String {
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard bytes.count == 4 || bytes.count == 16 else { return bytes.map { String($0) }.joined(separator: ".") }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let text = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count))
        }
        guard text != nil else { return bytes.map { String($0) }.joined(separator: ".") }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Checks shared with TLSMaterial

    /// Refuses a CA certificate that is not a CA or is not valid at `now`.
    static func checkAuthority(_ certificate: Certificate, path: String, now: Date) throws(InputError) {
        let constraints: BasicConstraints?
        do {
            constraints = try certificate.extensions.basicConstraints
        } catch {
            throw InputError(source: path, message: "has an unreadable basic constraints extension (\(error))")
        }
        guard case .isCertificateAuthority = constraints else {
            throw InputError(
                source: path,
                message: "is not a CA certificate (its basic constraints do not allow signing certificates); "
                    + "tls.ca names the deployment's CA, like certs/ca.pem")
        }
        try checkValidity(certificate, path: path, now: now)
    }

    /// Refuses a certificate that is not yet valid or has expired at `now`, with its dates.
    static func checkValidity(_ certificate: Certificate, path: String, now: Date) throws(InputError) {
        if now < certificate.notValidBefore {
            throw InputError(
                source: path,
                message: "is not valid yet: valid from \(text(certificate.notValidBefore)) to "
                    + "\(text(certificate.notValidAfter)), and it is \(text(now)); check this machine's clock")
        }
        if now > certificate.notValidAfter {
            throw InputError(
                source: path,
                message: "expired on \(text(certificate.notValidAfter)) (valid from "
                    + "\(text(certificate.notValidBefore))); it is \(text(now)); issue a new one")
        }
    }

    /// Refuses an identity's certificate and key unless the key is the certificate's, the CA signed the certificate,
    /// it is valid at `now`, names identity `name`, and allows the role's TLS uses.
    static func checkIdentity(
        _ issued: Issued, name: String, certificatePath: String, keyPath: String, authority: Certificate,
        authorityPath: String, now: Date
    ) throws(InputError) {
        let certificate = issued.certificate
        guard issued.key.publicKey == certificate.publicKey else {
            throw InputError(
                source: keyPath, message: "is not the private key of the certificate \(certificatePath)")
        }
        guard certificate.issuer == authority.subject,
            authority.publicKey.isValidSignature(certificate.signature, for: certificate)
        else {
            throw InputError(
                source: certificatePath,
                message: "is not signed by the CA \(authorityPath) (it was issued by \(certificate.issuer), "
                    + "the CA is \(authority.subject)); issue it again with the deployment's CA")
        }
        try checkValidity(certificate, path: certificatePath, now: now)
        let identity: NodeIdentity
        switch Certificates.identity(of: certificate) {
        case .success(let named): identity = named
        case .failure(let refusal):
            throw InputError(source: certificatePath, message: "names no identity: \(refusal.reason)")
        }
        guard identity.name == name else {
            throw InputError(
                source: certificatePath,
                message: "is the certificate of \(identity), not of \(name); check tls.certificate and the files")
        }
        let usages: ExtendedKeyUsage?
        do {
            usages = try certificate.extensions.extendedKeyUsage
        } catch {
            throw InputError(source: certificatePath, message: "has an unreadable extended key usage (\(error))")
        }
        let needed: [ExtendedKeyUsage.Usage] = identity.role == .replica ? [.serverAuth, .clientAuth] : [.clientAuth]
        if let usages, let missing = needed.first(where: { !usages.contains($0) }) {
            throw InputError(
                source: certificatePath,
                message: "does not allow \(missing == .serverAuth ? "serverAuth" : "clientAuth"), which a "
                    + "\(identity.role.rawValue) certificate needs for mutual TLS")
        }
    }

    /// A date as messages give it: `2026-12-02T08:14:08Z`.
    static func text(_ date: Date) -> String { date.formatted(.iso8601) }

    // MARK: Reading

    /// What to do when a certificate file is missing.
    static let creationAdvice = "create the deployment's certificates with `swift run shardctl certs`"

    /// The bytes of `path` as text; refuses a missing file, a directory and an unreadable file.
    static func readText(_ path: String, what: String) throws(InputError) -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw InputError(source: path, message: "no such file (\(what)); \(creationAdvice)")
        }
        if isDirectory.boolValue {
            throw InputError(source: path, message: "is a directory; expected \(what), a PEM file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError(source: path, message: "cannot be read (\(what)); check its permissions")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw InputError(source: path, message: "is not text (\(what)); expected a PEM file, -----BEGIN ...-----")
        }
        return text
    }

    /// The certificate in PEM file `path`.
    static func readCertificate(_ path: String, what: String) throws(InputError) -> Certificate {
        try parseCertificate(try readText(path, what: what), path: path, what: what)
    }

    static func parseCertificate(_ pem: String, path: String, what: String) throws(InputError) -> Certificate {
        do {
            return try Certificate(pemEncoded: pem)
        } catch {
            throw InputError(
                source: path,
                message: "is not a PEM certificate (\(what)): \(error); expected -----BEGIN CERTIFICATE-----")
        }
    }

    /// The private key in PEM file `path`, after refusing a file that its group or others may read.
    static func readKey(_ path: String) throws(InputError) -> Certificate.PrivateKey {
        try parseKey(try readKeyText(path), path: path)
    }

    /// The text of key file `path`; refuses, like ssh, a key that its group or others may read or write.
    static func readKeyText(_ path: String) throws(InputError) -> String {
        var status = stat()
        if stat(path, &status) == 0, status.st_mode & 0o077 != 0 {
            let mode = "0" + String(status.st_mode & 0o777, radix: 8)
            throw InputError(
                source: path,
                message: "is a private key that others may read (mode \(mode)); allow only its owner: chmod 600 \(path)"
            )
        }
        return try readText(path, what: "a private key")
    }

    static func parseKey(_ pem: String, path: String) throws(InputError) -> Certificate.PrivateKey {
        do {
            return try Certificate.PrivateKey(pemEncoded: pem)
        } catch {
            throw InputError(
                source: path, message: "is not a PEM private key: \(error); expected -----BEGIN PRIVATE KEY-----")
        }
    }

    // MARK: Writing

    /// Writes a key (mode 0600), then its certificate (mode 0644).
    static func writePair(_ issued: Issued, certificatePath: String, keyPath: String) throws(InputError) {
        let keyPEM: String
        let certificatePEM: String
        do {
            keyPEM = try issued.key.serializeAsPEM().pemString
            certificatePEM = try issued.certificate.serializeAsPEM().pemString
        } catch {
            throw InputError(source: certificatePath, message: "cannot be encoded as PEM: \(error)")
        }
        try writeFile(keyPEM + "\n", to: keyPath, mode: 0o600)
        try writeFile(certificatePEM + "\n", to: certificatePath, mode: 0o644)
    }

    /// Writes `text` to `path` with permissions `mode`: into a new file in the same directory, created with `mode`
    /// (never wider), synced, then renamed over `path`. Creates missing directories.
    static func writeFile(_ text: String, to path: String, mode: mode_t) throws(InputError) {
        func failure(_ doing: String, _ file: String = path) -> InputError {
            InputError(source: file, message: "cannot be written (\(doing): \(String(cString: strerror(errno))))")
        }
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw InputError(source: directory, message: "cannot be created: \(error.localizedDescription)")
        }
        let temporary = "\(directory)/.\(url.lastPathComponent).\(UUID().uuidString).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw failure("creating \(temporary)") }
        var closed = false
        defer {
            if !closed { close(descriptor) }
        }
        // The umask can only narrow `mode`; a certificate should still be readable by all.
        guard fchmod(descriptor, mode) == 0 else {
            unlink(temporary)
            throw failure("setting its permissions")
        }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                unlink(temporary)
                throw failure("writing")
            }
            written += count
        }
        guard fsync(descriptor) == 0 else {
            unlink(temporary)
            throw failure("syncing")
        }
        closed = true
        guard close(descriptor) == 0 else {
            unlink(temporary)
            throw failure("closing")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw failure("renaming \(temporary) to it")
        }
        // Make the rename itself durable; a failure here loses nothing written.
        let directoryDescriptor = open(directory, O_RDONLY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }
}

/// What `Certificates.issueDeployment` did: for the CA and every identity, whether its files were created or kept,
/// where they are and how long the certificate is valid. `shardctl certs` prints it.
public struct CertificatesReport: Sendable, Equatable {
    /// Whether a certificate and key were made by this run or were already there and are kept.
    public enum Outcome: String, Sendable, Equatable {
        /// Made by this run and written.
        case created
        /// Already there, checked, and left as it was.
        case kept
    }

    /// One certificate and its key.
    public struct Entry: Sendable, Equatable {
        /// Created by this run, or kept.
        public var outcome: Outcome
        /// Whose certificate it is; nil for the CA.
        public var identity: NodeIdentity?
        /// The certificate's file.
        public var certificatePath: String
        /// The private key's file.
        public var keyPath: String
        /// When the certificate becomes valid.
        public var notValidBefore: Date
        /// When the certificate expires.
        public var notValidAfter: Date

        /// Gives every field.
        public init(
            outcome: Outcome, identity: NodeIdentity?, certificatePath: String, keyPath: String, notValidBefore: Date,
            notValidAfter: Date
        ) {
            self.outcome = outcome
            self.identity = identity
            self.certificatePath = certificatePath
            self.keyPath = keyPath
            self.notValidBefore = notValidBefore
            self.notValidAfter = notValidAfter
        }

        /// Who holds it, for messages: `the CA`, `replica S1`, `the client`, `the operator`.
        public var holder: String {
            guard let identity else { return "the CA" }
            return identity.role == .replica ? identity.description : "the \(identity.name)"
        }
    }

    /// The CA.
    public var authority: Entry
    /// Every identity, in the order of `Certificates.identities(of:)`.
    public var identities: [Entry]

    /// Gives every field.
    public init(authority: Entry, identities: [Entry]) {
        self.authority = authority
        self.identities = identities
    }

    /// The CA, then every identity.
    public var entries: [Entry] { [authority] + identities }
}

/// What one identity presents in mutual TLS, read from disk and checked when the process starts, so that a bad file
/// is refused with a message naming it instead of failing at the first handshake, far from its cause.
///
/// Invariants (checked by `load`): the key is the certificate's; the CA certificate is a CA and signed the
/// certificate; both were valid when loaded; the certificate names `identity`.
public struct TLSMaterial: Sendable {
    /// The deployment's CA certificate (PEM), the only root a peer's certificate may chain to.
    public var caPEM: String
    /// This identity's certificate (PEM).
    public var certificatePEM: String
    /// This identity's private key (PEM).
    public var keyPEM: String
    /// Whom the certificate names.
    public var identity: NodeIdentity
    /// When the certificate expires.
    public var notValidAfter: Date

    /// Gives every field; `load` is the way to get checked material.
    public init(caPEM: String, certificatePEM: String, keyPEM: String, identity: NodeIdentity, notValidAfter: Date) {
        self.caPEM = caPEM
        self.certificatePEM = certificatePEM
        self.keyPEM = keyPEM
        self.identity = identity
        self.notValidAfter = notValidAfter
    }

    /// Reads the CA certificate, and the certificate and key of identity `name` (`S1`, `client`, `operator`) from
    /// the paths `files` gives, and refuses, naming the file: a missing or unreadable file; one that is not a PEM
    /// certificate or key; a key group or others may read; a CA certificate that is not a CA or not valid at `now`;
    /// a key that is not the certificate's; a certificate the CA did not sign, not valid at `now`, naming another
    /// identity or without the TLS uses its role needs.
    public static func load(files: ClusterConfig.TLS.Files, name: String, now: Date = Date()) throws(InputError)
        -> TLSMaterial
    {
        let caPEM = try Certificates.readText(files.ca, what: "the CA certificate")
        let authority = try Certificates.parseCertificate(caPEM, path: files.ca, what: "the CA certificate")
        try Certificates.checkAuthority(authority, path: files.ca, now: now)

        let certificatePath = files.certificate(of: name)
        let certificatePEM = try Certificates.readText(certificatePath, what: "the certificate of \(name)")
        let certificate = try Certificates.parseCertificate(
            certificatePEM, path: certificatePath, what: "the certificate of \(name)")

        let keyPath = files.key(of: name)
        let keyPEM = try Certificates.readKeyText(keyPath)
        let key = try Certificates.parseKey(keyPEM, path: keyPath)

        try Certificates.checkIdentity(
            (certificate, key), name: name, certificatePath: certificatePath, keyPath: keyPath, authority: authority,
            authorityPath: files.ca, now: now)
        guard case .success(let identity) = Certificates.identity(of: certificate) else {
            throw InputError(source: certificatePath, message: "names no identity")
        }
        return TLSMaterial(
            caPEM: caPEM, certificatePEM: certificatePEM, keyPEM: keyPEM, identity: identity,
            notValidAfter: certificate.notValidAfter)
    }
}
