import NIOCore
import NIOPosix
import Synchronization

/// How a ledger process schedules its work.
public enum ProcessRuntime {
    private static let adopted = Atomic(false)

    /// Runs every task of this process on one NIO event loop, the thread that also does its network I/O, instead of
    /// handing each message between NIO's threads and Swift's concurrency pool. A replica's work is serialized by its
    /// actor anyway, and many replicas share a machine's cores, so each hand-off only added a thread wake-up; the
    /// blocking fsync has a thread of its own (`ReplicaNode`). Call it first thing in `main`, before any networking;
    /// calls after the first do nothing.
    public static func adoptOneEventLoop() {
        guard adopted.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        NIOSingletons.groupLoopCountSuggestion = 1
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
