import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// Serves `GET /metrics` in the Prometheus text format from its registries (a replica's own, then its process's);
/// any other path is 404.
///
/// It is plain HTTP, without the mutual TLS of the replica's gRPC port, and anyone who reaches it learns the
/// replica's load and whom it refused. So the replica binds it to the loopback address unless the cluster config's
/// `metrics_address` names another (`ClusterConfig.metricsHost`): a scraper on another machine is a choice the
/// operator writes down. Serving it behind the same mutual TLS would need a certificate in every scraper; loopback
/// needs nothing from one on the replica's machine.
public struct MetricsServer: Service {
    /// The address to bind: an IPv4 or IPv6 address, or a host name.
    public let host: String
    public let port: Int
    public let registries: [PrometheusCollectorRegistry]

    public init(host: String, port: Int, registries: [PrometheusCollectorRegistry]) {
        self.host = host
        self.port = port
        self.registries = registries
    }

    /// Where a person reads the metrics of a server bound to `host` and `port` on the machine hosts.ini calls
    /// `machine`: a wildcard address (`0.0.0.0`, `::`) is reached through the machine's own address, and an IPv6
    /// address goes in brackets.
    public static func url(host: String, port: Int, machine: String) -> String {
        let reached = host == "0.0.0.0" || host == "::" ? machine : host
        let bracketed = reached.contains(":") && !reached.hasPrefix("[") ? "[\(reached)]" : reached
        return "http://\(bracketed):\(port)/metrics"
    }

    public func run() async throws {
        let registries = self.registries
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(MetricsHandler(registries: registries))
                }
            }
            .bind(host: host, port: port).get()
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// Answers one HTTP request per message with the registries' current text.
final class MetricsHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registries: [PrometheusCollectorRegistry]
    private var path = ""

    init(registries: [PrometheusCollectorRegistry]) {
        self.registries = registries
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.uri
        case .body:
            break
        case .end:
            let found = path == "/metrics"
            let body = found ? registries.flatMap { $0.emitToBuffer() } : Array("not found; try /metrics\n".utf8)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4" : "text/plain")
            headers.add(name: "Content-Length", value: String(body.count))
            let head = HTTPResponseHead(version: .http1_1, status: found ? .ok : .notFound, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
