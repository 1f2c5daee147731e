import NIOCore
import NIOPosix
import ServiceLifecycle

/// Drives a replica's logical time: calls `ReplicaNode.tick()` every `interval`. The only code of a replica that
/// reads the clock; the Paxos core sees ticks, never time.
///
/// The wait is a timer of the event loop, not `Task.sleep`: a sleeping task is woken by a thread of Swift's
/// concurrency pool, one more thread wake-up per tick on each of the replicas sharing the machine.
public struct Ticker: Service {
    public let node: ReplicaNode
    public let interval: Duration

    public init(node: ReplicaNode, interval: Duration) {
        self.node = node
        self.interval = interval
    }

    public func run() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let step = TimeAmount.nanoseconds(
            interval.components.seconds * 1_000_000_000 + interval.components.attoseconds / 1_000_000_000)
        var next = NIODeadline.now()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            next = next + step
            // A late wake-up does not fire a burst of ticks: time the core cannot see was simply lost.
            let now = NIODeadline.now()
            if next < now { next = now }
            try? await loop.scheduleTask(deadline: next) {}.futureResult.get()
            await node.tick()
        }
        // What a crash could have lost is kept by a clean stop.
        await node.writeQueuedWrites()
    }
}
