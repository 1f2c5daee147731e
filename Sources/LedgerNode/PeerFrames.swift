import LedgerClient
import LedgerCore
import LedgerRPC
import LedgerStore
import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Paxos
import ServiceLifecycle
import SwiftProtobuf
import Synchronization
import X509

/// The peer transport of nodes whose clusters give a `peer_port`: every `PeerBatch` one node sends another, as a
/// length-prefixed protobuf frame (4 bytes, big endian, then a `Ledger_V1_PeerBatch`) on one long-lived TCP
/// connection per pair of nodes, under the deployment's mutual TLS. The receiving node decodes and delivers each frame
/// on its event loop, which is also its replicas' executor: no HTTP/2, gRPC or Swift-concurrency hop per message
/// (measured cheaper than the gRPC stream: issue 23, `transport-probe`).
enum PeerFrame {
    /// The largest frame either side takes: a catch-up snapshot travels in one message.
    static let sizeMax = ReplicaProcess.requestPayloadMax

    /// `batches` as frames, in order, in one buffer: one write and one flush for everything queued.
    static func encode(_ batches: [PeerBatch], allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 512 * batches.count)
        for batch in batches {
            let bytes: [UInt8] = try Ledger_V1_PeerBatch(batch).serializedBytes()
            buffer.writeInteger(UInt32(bytes.count))
            buffer.writeBytes(bytes)
        }
        return buffer
    }

    /// The TLS context of the peer port (`server`) or of a node dialling one, from the node's identity; nil for
    /// plaintext.
    static func tls(_ security: ConnectionSecurity, server: Bool) throws -> NIOSSLContext? {
        guard case .mutual(let material) = security else { return nil }
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(material.certificatePEM.utf8)).map {
            NIOSSLCertificateSource.certificate($0)
        }
        let key = NIOSSLPrivateKeySource.privateKey(
            try NIOSSLPrivateKey(bytes: Array(material.keyPEM.utf8), format: .pem))
        var configuration =
            server
            ? TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: key)
            : TLSConfiguration.makeClientConfiguration()
        // A dialling node presents its identity too (mutual TLS).
        configuration.certificateChain = chain
        configuration.privateKey = key
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(material.caPEM.utf8)))
        // Every identity of the deployment is a certificate of its CA; who may send what is `AccessPolicy`'s and
        // the sender check's business, not the host name's.
        configuration.certificateVerification = .noHostnameVerification
        configuration.minimumTLSVersion = .tlsv12
        return try NIOSSLContext(configuration: configuration)
    }

    /// A connection to the peer port at `host:port`, under `tls` (from `tls(_:server: false)`) when given.
    static func connect(host: String, port: Int, tls: NIOSSLContext?) async throws -> any Channel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(1))
            .channelInitializer { channel in
                DeadPaths.bound(channel).flatMapThrowing {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: nil))
                    }
                }
            }
            .connect(host: host, port: port).get()
    }
}

/// Splits a connection's bytes into frames; a frame declaring more than `PeerFrame.sizeMax` ends the connection.
struct PeerFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length <= PeerFrame.sizeMax else { throw PeerFrameTooLarge(declared: Int(length)) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

struct PeerFrameTooLarge: Error, CustomStringConvertible {
    let declared: Int

    var description: String { "a peer frame declares \(declared) bytes; at most \(PeerFrame.sizeMax) are taken" }
}

/// Where a node's peer batches go, whichever transport brought them: the checks every batch passes (a hosted
/// replica is its addressee, the sender is a member of its cluster, the protocol matches, and with TLS the caller's
/// certificate speaks for the sender), then the replica's inbound link faults, then the replica.
struct PeerInbox: Sendable {
    /// A hosted replica, as its peers reach it.
    struct Hosted: Sendable {
        let node: ReplicaNode
        let linkFaults: LinkFaultLayer
    }

    /// The hosted replicas by cluster.
    let replicas: [String: Hosted]
    /// Whether `replica` is or was in `cluster` (the address book's word, which membership changes extend).
    let isMember: @Sendable (_ replica: ReplicaID, _ cluster: String) -> Bool
    /// With TLS on, whether a caller whose certificate names `identity` may send as `replica`: a node's certificate
    /// speaks for its own replicas only, so a member may not speak for another. Nil without TLS.
    let speaks: (@Sendable (_ replica: String, _ identity: String) -> Bool)?
    let logger: Logger

    init(
        replicas: [Hosted], isMember: @escaping @Sendable (_ replica: ReplicaID, _ cluster: String) -> Bool,
        speaks: (@Sendable (_ replica: String, _ identity: String) -> Bool)?, logger: Logger
    ) {
        self.replicas = Dictionary(uniqueKeysWithValues: replicas.map { ($0.node.cluster, $0) })
        self.isMember = isMember
        self.speaks = speaks
        self.logger = logger
    }

    /// Why a batch is refused.
    enum Refusal: Error {
        /// No hosted replica is its addressee, its sender is no member of that replica's cluster, or it speaks
        /// another protocol version: a stale or misconfigured peer.
        case misaddressed(String)
        /// The caller's certificate does not speak for the batch's sender.
        case impersonation(AccessRefusal)
    }

    /// Why `batch`, from a caller whose certificate names `sender` (nil without TLS), is refused; nil when it is
    /// taken.
    func refusal(of batch: PeerBatch, sender: String?) -> Refusal? {
        guard let hosted = replicas[batch.cluster], batch.to == hosted.node.me,
            batch.protocolVersion == LedgerRPC.protocolVersion,
            isMember(batch.from, batch.cluster), batch.from != hosted.node.me
        else {
            let here = replicas.values.map { "\($0.node.me) of \($0.node.cluster)" }
                .sorted().joined(separator: "; ")
            return .misaddressed(
                "peer stream from \(batch.from) of \(batch.cluster) to \(batch.to) (protocol \(batch.protocolVersion)) "
                    + "refused: this is \(here), protocol \(LedgerRPC.protocolVersion)")
        }
        if let sender, let speaks, !speaks(batch.from.description, sender) {
            return .impersonation(
                AccessRefusal(
                    .permissionDenied,
                    "a peer batch from \(batch.from) refused: the caller's certificate names \(sender)"))
        }
        return nil
    }

    /// The replica a taken batch is for, and the batch's messages that pass the replica's inbound link faults now
    /// (delayed ones are delivered on their own, later).
    func pass(_ batch: PeerBatch) -> (node: ReplicaNode, messages: [LedgerMessage]) {
        let hosted = replicas[batch.cluster]!
        let (node, logger, from) = (hosted.node, logger, batch.from)
        let now = hosted.linkFaults.pass(batch.messages, peer: from, inbound: true) { delayed in
            for rejection in await node.receive(delayed, from: from) { logger.warning("\(rejection)") }
        }
        return (node, now)
    }
}

/// The receiving end of one peer connection: learns the caller's identity when the TLS handshake completes (refusing
/// identities that may not send peer batches), then checks and delivers each frame. A malformed or refused frame ends
/// the connection; the sender opens another and Paxos retransmits whatever still matters.
final class PeerFrameHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let inbox: PeerInbox
    /// The node's access policy as of now (nil without TLS).
    let policy: (@Sendable () -> AccessPolicy)?
    private var sender: String?
    /// Set when this end closed the connection: frames already read after a refusal are dropped too.
    private var ended = false

    init(inbox: PeerInbox, policy: (@Sendable () -> AccessPolicy)?) {
        self.inbox = inbox
        self.policy = policy
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent, let policy {
            switch Self.identity(context) {
            case .success(let identity):
                if let refusal = policy().refusal(of: .peerStream, by: identity) { return refuse(refusal, context) }
                sender = identity.name
            case .failure(let refusal):
                return refuse(refusal, context)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !ended else { return }
        if policy != nil && sender == nil {
            return refuse(AccessRefusal(.unauthenticated, "a peer frame before the TLS handshake completed"), context)
        }
        let frame = unwrapInboundIn(data)
        let batch: PeerBatch
        do {
            batch = try PeerBatch(wire: try Ledger_V1_PeerBatch(serializedBytes: Array(frame.readableBytesView)))
        } catch {
            inbox.logger.warning(
                "malformed peer frame refused", metadata: ["peer": peer(context), "reason": "\(error)"])
            return end(context)
        }
        switch inbox.refusal(of: batch, sender: sender) {
        case .misaddressed(let reason)?:
            inbox.logger.warning("\(reason)", metadata: ["peer": peer(context)])
            return end(context)
        case .impersonation(let refusal)?:
            return refuse(refusal, context)
        case nil:
            break
        }
        let (node, messages) = inbox.pass(batch)
        guard !messages.isEmpty else { return }
        let (logger, from) = (inbox.logger, batch.from)
        if node.loop === context.eventLoop {
            for rejection in node.assumeIsolated({ $0.receive(messages, from: from) }) {
                logger.warning("\(rejection)")
            }
        } else {
            Task { for rejection in await node.receive(messages, from: from) { logger.warning("\(rejection)") } }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // TLS refusals are logged and counted by `HandshakeRefusals`; anything else ends the connection too.
        inbox.logger.debug("peer connection closed", metadata: ["peer": peer(context), "reason": "\(error)"])
        end(context)
    }

    private func end(_ context: ChannelHandlerContext) {
        ended = true
        context.close(promise: nil)
    }

    /// The identity the caller's certificate gives (the handshake verified it against the deployment's CA).
    private static func identity(_ context: ChannelHandlerContext) -> Result<NodeIdentity, AccessRefusal> {
        let certificate: Certificate
        do {
            guard let presented = try context.pipeline.syncOperations.nioSSL_peerCertificate() else {
                return .failure(AccessRefusal(.unauthenticated, "the caller presented no client certificate"))
            }
            certificate = try Certificate(derEncoded: presented.toDERBytes())
        } catch {
            return .failure(AccessRefusal(.unauthenticated, "the caller's certificate is unreadable: \(error)"))
        }
        return Certificates.identity(of: certificate)
    }

    private func refuse(_ refusal: AccessRefusal, _ context: ChannelHandlerContext) {
        inbox.logger.warning(
            "peer connection refused", metadata: ["peer": peer(context), "reason": "\(refusal.reason)"])
        Counter(label: "ledger_rpc_refused_total", dimensions: [("reason", refusal.metricReason)]).increment()
        end(context)
    }

    private func peer(_ context: ChannelHandlerContext) -> Logger.MetadataValue {
        "\(context.remoteAddress.map { "\($0)" } ?? "unknown")"
    }
}

/// A node's peer port: accepts the other nodes' peer connections until the node stops, then closes them all.
final class PeerFrameServer: Service {
    let host: String
    let port: Int
    let inbox: PeerInbox
    let policy: (@Sendable () -> AccessPolicy)?
    let tls: NIOSSLContext?
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])

    init(host: String, port: Int, inbox: PeerInbox, policy: (@Sendable () -> AccessPolicy)?, tls: NIOSSLContext?) {
        self.host = host
        self.port = port
        self.inbox = inbox
        self.policy = policy
        self.tls = tls
    }

    func run() async throws {
        let tls = tls
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] child in
                DeadPaths.bound(child).flatMapThrowing { [self] in
                    let pipeline = child.pipeline.syncOperations
                    if let tls {
                        try pipeline.addHandler(NIOSSLServerHandler(context: tls))
                        try pipeline.addHandler(HandshakeRefusals(logger: inbox.logger))
                    }
                    try pipeline.addHandler(ByteToMessageHandler(PeerFrameDecoder()))
                    try pipeline.addHandler(PeerFrameHandler(inbox: inbox, policy: policy))
                    let id = ObjectIdentifier(child)
                    connections.withLock { $0[id] = child }
                    child.closeFuture.whenComplete { _ in self.connections.withLock { _ = $0.removeValue(forKey: id) } }
                }
            }
            .bind(host: host, port: port).get()
        await withGracefulShutdownHandler {
            try? await listener.closeFuture.get()
        } onGracefulShutdown: {
            listener.close(promise: nil)
            for connection in self.connections.withLock({ Array($0.values) }) { connection.close(promise: nil) }
        }
    }
}
