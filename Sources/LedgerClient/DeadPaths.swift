import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// How every TCP connection of the deployment gives up on a path that went dead under it. A partition in the kernel
/// drops packets without refusing anything: a connection with data in flight retransmits it, and TCP backs its
/// retransmissions off to 6, 13, 26 s apart, so a connection that waited out a 15 s partition may stay silent long
/// after it healed. `TCP_USER_TIMEOUT` closes a connection whose sent data the other host's kernel has not
/// acknowledged for `userTimeout`; its owner then dials again (peer links within a second, gRPC channels with their
/// backoff), and a new connection works as soon as the path does. After a heal a connection sends again at its next
/// retransmission or is closed at the 10 s mark, whichever comes first: at most 3.8 s later (the retransmissions fall
/// 3 and 6.2 s after the first unacknowledged byte; the next one, at 12.6 s, is after the mark). A dial under way
/// retries its SYN within 4 s.
///
/// It is the kernel of the other host that must answer, not its process: a process that is slow, starved or stopped
/// keeps its connections (its kernel acknowledges what arrives), unless it leaves a full receive window unread for
/// `userTimeout`. Pings at the application level (gRPC keepalive) would close those too, failing the calls under way
/// on a connection whose process is merely late; they are not used.
public enum DeadPaths {
    /// Sent data unacknowledged this long closes the connection. Longer than any SIGSTOP of the nemesis and any stall
    /// seen on a starved machine, in case a stalled process's receive window fills.
    public static let userTimeout = Duration.seconds(10)

    /// Quiet this long, a connection is probed by TCP keepalive (then every `keepaliveIdle`): a probe on a connection
    /// whose other end is gone (its host restarted the process and the reset was lost in a partition) draws a reset,
    /// and one unanswered past `userTimeout` closes it. Without probes such a connection, with nothing of its own in
    /// flight, would wait forever for an answer (a TLS handshake's, a call's).
    public static let keepaliveIdle = Duration.seconds(5)

    /// The socket options, with their values: `TCP_USER_TIMEOUT` and keepalive.
    static let options: [(ChannelOptions.Types.SocketOption, SocketOptionValue)] = [
        (.init(level: .tcp, name: .init(rawValue: CInt(TCP_USER_TIMEOUT))), milliseconds(userTimeout)),
        (.init(level: .socket, name: .so_keepalive), 1),
        (.init(level: .tcp, name: .init(rawValue: CInt(TCP_KEEPIDLE))), seconds(keepaliveIdle)),
        (.init(level: .tcp, name: .init(rawValue: CInt(TCP_KEEPINTVL))), seconds(keepaliveIdle)),
    ]

    /// Sets the options on a connection, before it connects or once it is accepted (a bootstrap's initializer, or a
    /// gRPC transport's `onCreateTCPConnection` or `onAcceptTCPConnection` callback).
    ///
    /// On the channel's event loop, where all of these call it, the options are set at once, so the handlers added
    /// after them (the TLS handler, the logger of refused handshakes) are added in the same step.
    @Sendable public static func bound(_ channel: any Channel) -> EventLoopFuture<Void> {
        let set: @Sendable () throws -> Void = {
            guard let socket = channel.syncOptions else { throw ChannelError.operationUnsupported }
            for (option, value) in options { try socket.setOption(option, value: value) }
        }
        if channel.eventLoop.inEventLoop { return channel.eventLoop.makeCompletedFuture(withResultOf: set) }
        return channel.eventLoop.submit(set)
    }

    private static func milliseconds(_ duration: Duration) -> SocketOptionValue {
        SocketOptionValue(duration.components.seconds * 1000)
    }

    private static func seconds(_ duration: Duration) -> SocketOptionValue {
        SocketOptionValue(duration.components.seconds)
    }
}
