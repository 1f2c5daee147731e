import GRPCNIOTransportHTTP2

/// How every connection of the deployment notices that its peer went silent: a partition in the kernel leaves a TCP
/// connection open but dead (nothing arrives, nothing is refused), and TCP's retransmissions back off to many seconds
/// apart, so a connection that waited out a long partition could stay silent long after it healed. Both ends of a
/// gRPC connection ping when it has been quiet for `time` and close it when no answer comes within `timeout`; the
/// client's connection then reconnects with its backoff. The peer frame links (`PeerFrames`) get the same bound from
/// TCP keepalive and TCP_USER_TIMEOUT.
public enum Liveness {
    /// Quiet this long, a connection is pinged.
    public static let time = Duration.seconds(1)
    /// A ping unanswered this long closes the connection.
    public static let timeout = Duration.seconds(2)

    public static var client: HTTP2ClientTransport.Config.Keepalive {
        .init(time: time, timeout: timeout, allowWithoutCalls: true)
    }

    /// The server pings too (a client on a host cut off leaves a dead connection behind), and lets clients ping
    /// as often as `client` does, calls or none.
    public static var server: HTTP2ServerTransport.Config.Keepalive {
        .init(
            time: time, timeout: timeout,
            clientBehavior: .init(minPingIntervalWithoutCalls: time / 2, allowWithoutCalls: true))
    }
}
