import Paxos

/// Clusters whose replicas share nodes, as the node layout runs them: node k hosts the replica Sk of every cluster,
/// and its replicas share one store file (`StoreFile`).
///
/// Each cluster is a `Simulation` of its own (its clients, network draws and checks), stepped in lockstep. Per tick
/// every cluster delivers, ticks and lets its clients act; then each node performs a pass over its replicas, as the
/// node's group commit does: every hosted replica's `Ready` sends what waits for nothing, then one write carries
/// all their writes, fsynced when any of them must be durable, and that fsync makes every write the node's replicas
/// made before it durable too; then each replica sends the rest, applies and answers. Faults strike nodes, not
/// replicas: a crash (in the middle of the node's write, or between ticks) takes every hosted replica down and back
/// together, and a power loss loses every hosted replica's writes since the node's last fsync; a partition cuts
/// nodes apart, every cluster's links between them at once (isolating a node that leads some cluster, or cutting one
/// direction between two nodes). Message loss, duplication and delay stay per cluster.
struct NodeSimulation<Machine: SimulatedMachine> {
    let seed: UInt64
    var clusters: [Simulation<Machine>]
    var random: SeededRandom
    let faultTicks: Int
    let livenessTicks: Int
    let nodeCount: Int
    var now = 0
    var healed = false
    var report: NodeReport

    struct NodeReport {
        var seed: UInt64
        var clusters: [SimulationReport] = []
        var nodeCrashes = 0
        var crashesMidWrite = 0
        var partitions = 0
        /// Fsyncs of a node that made another hosted replica's lazy writes durable.
        var sharedSyncs = 0

        var violations: [String] { Self.violations(clusters) }

        static func violations(_ clusters: [SimulationReport]) -> [String] {
            clusters.enumerated().flatMap { index, report in report.violations.map { "C\(index + 1): \($0)" } }
        }
    }

    init(seed: UInt64, steps: Int, fault: InjectedFault? = nil) {
        self.seed = seed
        var random = SeededRandom(seed: seed ^ 0x0DE5_0DE5)
        let nodeCount = Bool.random(using: &random) ? 3 : 5
        let clusterCount = Int.random(in: 2...3, using: &random)
        self.nodeCount = nodeCount
        clusters = (0..<clusterCount).map { index in
            Simulation(seed: seed &* 8 &+ UInt64(index), steps: steps, fault: fault, replicaCount: nodeCount)
        }
        self.random = random
        faultTicks = steps * 3 / 5
        livenessTicks = steps - faultTicks
        report = NodeReport(seed: seed)
    }

    var parameters: String {
        "\(nodeCount) nodes x \(clusters.count) clusters; "
            + clusters.enumerated().map { "C\($0.offset + 1): \($0.element.parameters)" }.joined(separator: "; ")
    }

    mutating func run() -> NodeReport {
        let settleTicksMax = clusters[0].settleTicksMax
        while now < faultTicks + livenessTicks, violations.isEmpty {
            if now == faultTicks { heal() }
            step()
        }
        while violations.isEmpty, !clusters.allSatisfy(\.settled),
            now < faultTicks + livenessTicks + settleTicksMax
        {
            step()
            for index in clusters.indices { clusters[index].report.settleTicks += 1 }
        }
        report.clusters = clusters.indices.map { clusters[$0].finish() }
        return report
    }

    /// The violations found so far, by cluster.
    var violations: [String] { NodeReport.violations(clusters.map(\.report)) }

    mutating func step() {
        now += 1
        for index in clusters.indices { clusters[index].beginTick() }
        for node in 1...nodeCount { pass(ReplicaID(node)) }
        if !healed {
            injectFaults()
        } else {
            for index in clusters.indices { clusters[index].restartDue() }
        }
        for index in clusters.indices { clusters[index].checkAfterStep() }
    }

    /// One pass of node `member`'s replicas: every `Ready`, one write for all, then the rest of each.
    mutating func pass(_ member: ReplicaID) {
        var readies: [Ready<Machine.Command, Machine>?] = []
        for index in clusters.indices {
            readies.append(clusters[index].nodes[member].replica == nil ? nil : clusters[index].startReady(member))
        }
        let writes = readies.contains { $0.map { !$0.persist.isEmpty } ?? false }
        let crashRate = clusters[0].parameters.crashRate
        if !healed, writes, Double.random(in: 0..<1, using: &random) < crashRate / 2 {
            report.crashesMidWrite += 1
            crashNode(member)
            return
        }
        let durable = readies.contains { $0?.persistMustBeDurable == true }
        if durable, readies.contains(where: { $0 != nil && !$0!.persistMustBeDurable && !$0!.persist.isEmpty }) {
            report.sharedSyncs += 1
        }
        for index in clusters.indices {
            guard let ready = readies[index] else { continue }
            clusters[index].finishReady(member, ready, synced: false)
        }
        // The node's one fsync: every hosted replica's writes so far are on disk, lazy ones included.
        if durable {
            for index in clusters.indices where clusters[index].nodes[member].replica != nil {
                clusters[index].markSynced(member)
            }
        }
    }

    /// Every replica of the node down together, for one draw of time, and one power loss or none for all.
    mutating func crashNode(_ member: ReplicaID) {
        guard clusters.contains(where: { $0.nodes[member].replica != nil }) else { return }
        report.nodeCrashes += 1
        let powerLoss = Bool.random(using: &random)
        let downFor = Int.random(in: 1...40, using: &random)
        for index in clusters.indices { clusters[index].crash(member, powerLoss: powerLoss, downFor: downFor) }
    }

    var nodes: [ReplicaID] { (1...nodeCount).map { ReplicaID($0) } }

    /// The nodes `from` cannot reach, the same in every cluster.
    mutating func block(_ blocked: [ReplicaID: Set<ReplicaID>]) {
        for index in clusters.indices { clusters[index].blocked = blocked }
    }

    mutating func injectFaults() {
        for index in clusters.indices { clusters[index].restartDue() }
        let crashRate = clusters[0].parameters.crashRate
        for node in nodes where Double.random(in: 0..<1, using: &random) < crashRate { crashNode(node) }
        guard Double.random(in: 0..<1, using: &random) < clusters[0].parameters.partitionRate else { return }
        let cluster = clusters[Int.random(in: 0..<clusters.count, using: &random)]
        let leading = cluster.members.first { cluster.nodes[$0].replica?.role == .leader }
        switch Int.random(in: 0..<5, using: &random) {
        case 0:  // symmetric split of the nodes into two groups
            let shuffled = nodes.shuffled(using: &random)
            let cut = Int.random(in: 1..<nodeCount, using: &random)
            let left = Set(shuffled[..<cut])
            var blocked: [ReplicaID: Set<ReplicaID>] = [:]
            for a in nodes {
                for b in nodes where left.contains(a) != left.contains(b) { blocked[a, default: []].insert(b) }
            }
            block(blocked)
            report.partitions += 1
        case 1:  // one direction between two nodes
            let a = nodes[Int.random(in: 0..<nodeCount, using: &random)]
            let b = nodes[Int.random(in: 0..<nodeCount, using: &random)]
            if a != b {
                var blocked = clusters[0].blocked
                blocked[a, default: []].insert(b)
                block(blocked)
                report.partitions += 1
            }
        case 2:  // isolate a node that leads some cluster
            if let leader = leading {
                var blocked: [ReplicaID: Set<ReplicaID>] = [:]
                for other in nodes where other != leader {
                    blocked[leader, default: []].insert(other)
                    blocked[other, default: []].insert(leader)
                }
                block(blocked)
                report.partitions += 1
            }
        case 3:  // crash a node that leads some cluster
            if let leader = leading { crashNode(leader) }
        default:  // heal the partitions
            block([:])
        }
    }

    mutating func heal() {
        healed = true
        for index in clusters.indices { clusters[index].heal() }
    }
}
