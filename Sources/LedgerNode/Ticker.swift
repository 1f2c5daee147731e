import ServiceLifecycle

/// Drives a replica's logical time: calls `ReplicaNode.tick()` every `interval`. The only code of a replica that
/// reads the clock; the Paxos core sees ticks, never time.
public struct Ticker: Service {
    public let node: ReplicaNode
    public let interval: Duration

    public init(node: ReplicaNode, interval: Duration) {
        self.node = node
        self.interval = interval
    }

    public func run() async throws {
        let clock = ContinuousClock()
        var next = clock.now
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            next = next.advanced(by: interval)
            // A late wake-up does not fire a burst of ticks: time the core cannot see was simply lost.
            if next < clock.now { next = clock.now }
            try? await Task.sleep(until: next, clock: clock)
            await node.tick()
        }
        // What a crash could have lost is kept by a clean stop.
        await node.commitLazyWrites()
    }
}
