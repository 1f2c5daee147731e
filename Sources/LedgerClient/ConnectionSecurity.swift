import GRPCNIOTransportHTTP2
import LedgerCore
import LedgerStore

/// How a process secures its gRPC connections: plaintext (only where a config says `tls: off`), or mutual TLS
/// presenting one identity's certificate and trusting only the deployment's CA.
public enum ConnectionSecurity: Sendable {
    case plaintext
    case mutual(TLSMaterial)

    /// The security the deployment's `tls:` setting asks for, presenting identity `name` (a replica, `client` or
    /// `operator`). The files are read and checked now, so a missing or wrong one is refused before any connection.
    public static func load(_ tls: ClusterConfig.TLS, as name: String) throws(InputError) -> ConnectionSecurity {
        switch tls {
        case .off: return .plaintext
        case .mutual(let files): return .mutual(try TLSMaterial.load(files: files, name: name))
        }
    }

    /// The identity this process presents, nil for plaintext.
    public var identity: NodeIdentity? {
        switch self {
        case .plaintext: return nil
        case .mutual(let material): return material.identity
        }
    }

    /// For outgoing connections. The server's certificate must chain to the deployment's CA; host names are not
    /// checked, since every replica of a machine shares its name, and client certificates cannot pose as servers
    /// (their extended key usage is client authentication only).
    public var client: HTTP2ClientTransport.Posix.TransportSecurity {
        guard case .mutual(let material) = self else { return .plaintext }
        let (chain, key, roots) = Self.sources(material)
        return .mTLS(certificateChain: chain, privateKey: key) { config in
            config.trustRoots = roots
            config.serverCertificateVerification = .noHostnameVerification
        }
    }

    /// For a listener: a client without a certificate signed by the deployment's CA is refused during the handshake;
    /// what a verified identity may call is decided per call (`AccessPolicy`).
    public var server: HTTP2ServerTransport.Posix.TransportSecurity {
        guard case .mutual(let material) = self else { return .plaintext }
        let (chain, key, roots) = Self.sources(material)
        return .mTLS(certificateChain: chain, privateKey: key) { config in
            config.trustRoots = roots
            config.clientCertificateVerification = .noHostnameVerification
        }
    }

    /// The certificate chain, key and trust roots both ends present and trust.
    private static func sources(_ material: TLSMaterial) -> (
        [TLSConfig.CertificateSource], TLSConfig.PrivateKeySource, TLSConfig.TrustRootsSource
    ) {
        (
            [.bytes(Array(material.certificatePEM.utf8), format: .pem)],
            .bytes(Array(material.keyPEM.utf8), format: .pem),
            .certificates([.bytes(Array(material.caPEM.utf8), format: .pem)])
        )
    }
}
