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

    /// `TCP_USER_TIMEOUT`, for a bootstrap's `channelOption`.
    public static let option = ChannelOptions.Types.SocketOption(
        level: .tcp, name: .init(rawValue: CInt(TCP_USER_TIMEOUT)))

    /// The option's value: `userTimeout` in milliseconds.
    public static let milliseconds = SocketOptionValue(userTimeout.components.seconds * 1000)

    /// Sets the option on a connection a transport made (a gRPC transport's `onCreateTCPConnection` or
    /// `onAcceptTCPConnection` callback).
    @Sendable public static func bound(_ channel: any Channel) -> EventLoopFuture<Void> {
        channel.setOption(option, value: milliseconds)
    }
}
