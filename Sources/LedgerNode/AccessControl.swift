import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerCore
import LedgerRPC
import LedgerStore
import Logging
import Metrics
import NIOCore
import NIOSSL
import NIOTLS
import X509

/// Authorization of every call to a replica running with TLS: the caller's identity comes from the certificate it
/// presented in the handshake (already verified against the deployment's CA), and `AccessPolicy` says whether that
/// identity may make the call. A refusal is logged with the caller's address and counted
/// (`ledger_rpc_refused_total`), and the call never reaches a service: no state changes.
struct AccessControl: ServerInterceptor {
    /// The node's access policy as of now: the address book it follows grows with membership changes.
    let policy: @Sendable () -> AccessPolicy
    let logger: Logger

    /// Which group of the policy each method belongs to; a method missing here (a newer client's) is refused.
    static let calls: [MethodDescriptor: AccessPolicy.Call] = [
        Ledger_V1_Peer.Method.Stream.descriptor: .peerStream,
        Ledger_V1_Ledger.Method.Decision.descriptor: .decision,
        Ledger_V1_Ledger.Method.TransactionStatus.descriptor: .transactionStatus,
        Ledger_V1_Ledger.Method.TransactionStatusBatch.descriptor: .transactionStatus,
        Ledger_V1_Ledger.Method.TransactionStatusStream.descriptor: .transactionStatus,
        Ledger_V1_Ledger.Method.Transfer.descriptor: .command,
        Ledger_V1_Ledger.Method.Balance.descriptor: .command,
        Ledger_V1_Ledger.Method.Prepare.descriptor: .command,
        Ledger_V1_Ledger.Method.Commit.descriptor: .command,
        Ledger_V1_Ledger.Method.Abort.descriptor: .command,
        Ledger_V1_Ledger.Method.SubmitBatch.descriptor: .command,
        Ledger_V1_Ledger.Method.SubmitStream.descriptor: .command,
        Ledger_V1_Ledger.Method.LocalBalance.descriptor: .inspection,
        Ledger_V1_Ledger.Method.Logs.descriptor: .inspection,
        Ledger_V1_Ledger.Method.Datastore.descriptor: .inspection,
        Ledger_V1_Ledger.Method.Status.descriptor: .inspection,
        Ledger_V1_Ledger.Method.SetConnectivity.descriptor: .testControl,
        Ledger_V1_Ledger.Method.SetLinkFaults.descriptor: .testControl,
        Ledger_V1_Ledger.Method.ChangeMembership.descriptor: .membership,
    ]

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if let refusal = refusal(of: context) { throw Self.refuse(refusal, context: context, logger: logger) }
        return try await next(request, context)
    }

    /// Logs a refusal with the caller's address, counts it, and gives the error the caller gets.
    static func refuse(_ refusal: AccessRefusal, context: ServerContext, logger: Logger) -> RPCError {
        logger.warning(
            "call refused",
            metadata: [
                "peer": "\(context.remotePeer)", "method": "\(context.descriptor)", "reason": "\(refusal.reason)",
            ])
        Counter(label: "ledger_rpc_refused_total", dimensions: [("reason", refusal.metricReason)]).increment()
        return RPCError(refusal)
    }

    private func refusal(of context: ServerContext) -> AccessRefusal? {
        guard let call = Self.calls[context.descriptor] else {
            return AccessRefusal(.permissionDenied, "\(context.descriptor) is not a call this replica serves")
        }
        switch Self.identity(of: context) {
        case .success(let identity): return policy().refusal(of: call, by: identity)
        case .failure(let refusal): return refusal
        }
    }

    /// The identity the caller's certificate gives. With TLS on, the handshake already refused callers without a
    /// certificate from the CA, so a missing one here means the transport is not the TLS one.
    static func identity(of context: ServerContext) -> Result<NodeIdentity, AccessRefusal> {
        guard let tls = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
            let certificate = tls.peerCertificate
        else {
            return .failure(AccessRefusal(.unauthenticated, "the caller presented no client certificate"))
        }
        return Certificates.identity(of: certificate)
    }
}

extension AccessRefusal {
    /// The label of the refusal counter: few distinct values, so the metric stays small.
    var metricReason: String {
        switch kind {
        case .unauthenticated: return "unauthenticated"
        case .permissionDenied: return "permission_denied"
        }
    }
}

extension RPCError {
    init(_ refusal: AccessRefusal) {
        switch refusal.kind {
        case .unauthenticated: self.init(code: .unauthenticated, message: refusal.reason)
        case .permissionDenied: self.init(code: .permissionDenied, message: refusal.reason)
        }
    }
}

/// Logs and counts the connections refused during the TLS handshake (no certificate, another CA, expired, plaintext
/// spoken to a TLS port), which never become calls. It sits right after the TLS handler and passes everything on.
///
/// Only an error before the handshake completes is a refusal. Once it has completed, the caller was let in: a client
/// that closes its channel without sending close_notify (grpcio does, on every clean exit) makes NIOSSL report
/// `uncleanShutdown`, and that and any later error are no refusal, so they are logged at debug level and not counted.
/// A refused handshake may report more than one error (a failed private-key operation, then the handshake failure):
/// it is counted once.
final class HandshakeRefusals: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Any

    /// Where the connection's handshake is; only touched on the channel's event loop.
    private enum Phase {
        case handshaking
        case refused
        case established
    }

    let logger: Logger
    private var phase = Phase.handshaking

    init(logger: Logger) {
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent, phase == .handshaking {
            phase = .established
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let peer: Logger.MetadataValue = "\(context.remoteAddress.map { "\($0)" } ?? "unknown")"
        switch phase {
        case .handshaking where error is NIOSSLError || error is BoringSSLError:
            phase = .refused
            logger.warning("TLS handshake refused", metadata: ["peer": peer, "reason": "\(error)"])
            Counter(label: "ledger_rpc_refused_total", dimensions: [("reason", "handshake")]).increment()
        case .handshaking, .refused:
            // Not TLS's word (a reset connection), or the same refusal again: counted at most once.
            logger.debug("connection error during a TLS handshake", metadata: ["peer": peer, "reason": "\(error)"])
        case .established:
            // Most often `uncleanShutdown`: the client closed without close_notify, as grpcio does on every exit.
            logger.debug("TLS connection error after the handshake", metadata: ["peer": peer, "reason": "\(error)"])
        }
        context.fireErrorCaught(error)
    }

    /// Installs the handler on an accepted connection, after its TLS handler (none: plaintext, nothing to watch).
    /// The transport calls this from the accepted channel's initializer, before the handshake starts, so the
    /// handler sees the handshake's completion.
    static func install(on channel: any Channel, logger: Logger) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            guard let tls = try? pipeline.handler(type: NIOSSLServerHandler.self) else { return }
            try pipeline.addHandler(HandshakeRefusals(logger: logger), position: .after(tls))
        }
    }
}
