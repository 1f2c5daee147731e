/// The graph of accounts the planner partitions: nodes `0..<count`, each with its original cluster, and weighted
/// undirected edges stored in both directions as compressed rows.
///
/// Invariants: `offsets.count == count + 1`; the neighbors of `node` are `neighbors[offsets[node]..<offsets[node +
/// 1]]` with the matching `weights`, each weight `>= 1`, no self-loop and no edge twice; `traffic[node]` is at least
/// the sum of its weights (it also counts the pairs left out of the graph); every `original` cluster is in
/// `0..<clusterCount`.
struct PlanningGraph: Sendable {
    let clusterCount: Int
    let original: [Int32]
    let offsets: [Int]
    let neighbors: [Int32]
    let weights: [Int]
    /// Every transfer of the node's account, pairs below `minTransactions` included: what moving it puts at stake.
    let traffic: [Int]

    var count: Int { original.count }

    /// The graph of `edges` `(one, other, weight)`, each pair of nodes at most once.
    init(clusterCount: Int, original: [Int32], edges: [(Int32, Int32, Int)], traffic: [Int]) {
        precondition(traffic.count == original.count, "every node has its traffic")
        self.clusterCount = clusterCount
        self.original = original
        self.traffic = traffic
        var offsets = Array(repeating: 0, count: original.count + 1)
        for (one, other, _) in edges {
            offsets[Int(one) + 1] += 1
            offsets[Int(other) + 1] += 1
        }
        for node in original.indices { offsets[node + 1] += offsets[node] }
        var fill = offsets
        var neighbors = Array(repeating: Int32(0), count: offsets[original.count])
        var weights = Array(repeating: 0, count: offsets[original.count])
        for (one, other, weight) in edges {
            precondition(one != other && weight >= 1, "an edge joins two accounts that transacted")
            neighbors[fill[Int(one)]] = other
            weights[fill[Int(one)]] = weight
            fill[Int(one)] += 1
            neighbors[fill[Int(other)]] = one
            weights[fill[Int(other)]] = weight
            fill[Int(other)] += 1
        }
        self.offsets = offsets
        self.neighbors = neighbors
        self.weights = weights
    }
}

/// An assignment of the graph's nodes to clusters, with what the planner needs to change it quickly: each node's
/// weight of edges into each cluster, the cluster sizes, the weight of cross-cluster edges and the moved count.
///
/// Invariants: `connection[node * k + cluster]` is the weight of `node`'s edges to nodes in `cluster`; `cut` is the
/// weight of edges whose ends are in different clusters; `moved` counts nodes away from their original cluster;
/// `sizes` are the catalog's sizes changed by every move; `outOfBounds` counts clusters outside `lowest...highest`
/// (only in the middle of a refinement pass); `versions[node]` changes whenever the node or a neighbor moves.
struct Partition {
    let graph: PlanningGraph
    let lowest: [Int]
    let highest: [Int]
    private(set) var part: [Int32]
    private(set) var sizes: [Int]
    private(set) var cut = 0
    private(set) var moved = 0
    private var connection: [Int]
    private var outOfBounds = 0
    private var versions: [UInt32]

    init(graph: PlanningGraph, sizes: [Int], lowest: [Int], highest: [Int]) {
        precondition(sizes.indices.allSatisfy { (lowest[$0]...highest[$0]).contains(sizes[$0]) }, "sizes in bounds")
        self.graph = graph
        self.lowest = lowest
        self.highest = highest
        self.sizes = sizes
        part = graph.original
        versions = Array(repeating: 0, count: graph.count)
        let k = graph.clusterCount
        connection = Array(repeating: 0, count: graph.count * k)
        var twiceCut = 0
        for node in 0..<graph.count {
            let own = part[node]
            for edge in graph.offsets[node]..<graph.offsets[node + 1] {
                let neighbor = Int(graph.neighbors[edge])
                connection[node * k + Int(part[neighbor])] += graph.weights[edge]
                if part[neighbor] != own { twiceCut += graph.weights[edge] }
            }
        }
        cut = twiceCut / 2
    }

    var isWithinBounds: Bool { outOfBounds == 0 }

    /// What a pass compares: the weight of cross-cluster edges first, then the number of moved accounts.
    var score: (cut: Int, moved: Int) { (cut, moved) }

    private func isOut(_ cluster: Int) -> Bool {
        sizes[cluster] < lowest[cluster] || sizes[cluster] > highest[cluster]
    }

    /// The weight of `node`'s edges into `cluster` minus those into its own: what moving it there removes from `cut`.
    func gain(_ node: Int, to cluster: Int) -> Int {
        let row = node * graph.clusterCount
        return connection[row + cluster] - connection[row + Int(part[node])]
    }

    /// Moves `node` to `target`, keeping every derived figure exact.
    mutating func move(_ node: Int, to target: Int) {
        let source = Int(part[node])
        guard source != target else { return }
        let k = graph.clusterCount
        for edge in graph.offsets[node]..<graph.offsets[node + 1] {
            let neighbor = Int(graph.neighbors[edge])
            let weight = graph.weights[edge]
            connection[neighbor * k + source] -= weight
            connection[neighbor * k + target] += weight
            versions[neighbor] &+= 1
            // The edge was cross-cluster unless the neighbor was in the source; it is unless it is in the target.
            let other = Int(part[neighbor])
            if other == source {
                cut += weight
            } else if other == target {
                cut -= weight
            }
        }
        let home = Int(graph.original[node])
        if source == home { moved += 1 } else if target == home { moved -= 1 }
        let wasOut = (isOut(source) ? 1 : 0) + (isOut(target) ? 1 : 0)
        sizes[source] -= 1
        sizes[target] += 1
        outOfBounds += (isOut(source) ? 1 : 0) + (isOut(target) ? 1 : 0) - wasOut
        part[node] = Int32(target)
        versions[node] &+= 1
    }

    /// Sends every node back to its original cluster.
    mutating func undoAll() {
        for node in 0..<graph.count { move(node, to: Int(graph.original[node])) }
    }

    // MARK: - Refinement

    /// A candidate move of a refinement pass, ranked by `outranks`.
    struct Candidate {
        var gain: Int
        /// +1 for a move back to the node's original cluster, -1 for a move away from it, 0 between two others.
        var preference: Int8
        /// When the candidate was made: a node whose neighbor just moved is tried first (chains are followed).
        var stamp: Int
        /// The node's traffic: of two equal moves, the lighter account's puts less at stake.
        var traffic: Int
        var node: Int32
        var target: Int32
        /// The node's version when the candidate was made; a different version means the candidate is stale.
        var version: UInt32

        func outranks(_ other: Candidate) -> Bool {
            if gain != other.gain { return gain > other.gain }
            if preference != other.preference { return preference > other.preference }
            if stamp != other.stamp { return stamp > other.stamp }
            if traffic != other.traffic { return traffic < other.traffic }
            return node < other.node
        }
    }

    /// Runs refinement passes until one improves nothing, one cuts less than `1 / cutShareMin` of the cut it
    /// started from, or `passesMax` ran; `progress` gets each pass number.
    mutating func refine(passesMax: Int, stallMovesMax: Int, cutShareMin: Int, progress: (Int) -> Void) {
        guard graph.clusterCount > 1 else { return }
        var locked = Array(repeating: Int32(0), count: graph.count)
        for pass in 1...passesMax {
            progress(pass)
            let before = score
            refinePass(number: Int32(pass), locked: &locked, stallMovesMax: stallMovesMax)
            guard score < before, (before.cut - cut) * cutShareMin >= before.cut else { return }
        }
    }

    /// One Fiduccia-Mattheyses pass: moves nodes best candidate first, each at most once, and keeps the best prefix
    /// of moves that leaves every cluster within its bounds.
    private mutating func refinePass(number: Int32, locked: inout [Int32], stallMovesMax: Int) {
        let k = graph.clusterCount
        // One heap per (source, target) cluster, so that a full cluster can be told to shed and an empty one to take.
        var heaps = Array(repeating: CandidateHeap(), count: k * k)
        var stamp = 0

        func offer(_ node: Int, stamp: Int) {
            let source = Int(part[node])
            let home = graph.original[node]
            let row = node * k
            for target in 0..<k where target != source && connection[row + target] > 0 {
                let preference: Int8 = target == home ? 1 : (source == home ? -1 : 0)
                heaps[source * k + target].push(
                    Candidate(
                        gain: connection[row + target] - connection[row + source], preference: preference,
                        stamp: stamp, traffic: graph.traffic[node], node: Int32(node), target: Int32(target),
                        version: versions[node]))
            }
        }
        func best(sources: Range<Int>, targets: Range<Int>, allowed: (Int, Int) -> Bool) -> Candidate? {
            var chosen: Candidate?
            for source in sources {
                for target in targets where source != target && allowed(source, target) {
                    let heap = source * k + target
                    while let top = heaps[heap].top,
                        locked[Int(top.node)] == number || versions[Int(top.node)] != top.version
                    {
                        heaps[heap].pop()
                    }
                    if let top = heaps[heap].top, chosen.map({ top.outranks($0) }) ?? true {
                        chosen = top
                    }
                }
            }
            return chosen
        }
        func next() -> Candidate? {
            let all = 0..<k
            if let over = all.first(where: { sizes[$0] > highest[$0] }) {
                return best(sources: over..<over + 1, targets: all) { _, target in sizes[target] < highest[target] }
            }
            if let under = all.first(where: { sizes[$0] < lowest[$0] }) {
                return best(sources: all, targets: under..<under + 1) { source, _ in sizes[source] > lowest[source] }
            }
            // Within bounds, any move: one that overfills its target or underfills its source by one account is
            // answered by the next move, and only prefixes within bounds are kept.
            return best(sources: all, targets: all) { _, _ in true }
        }

        for node in 0..<graph.count { offer(node, stamp: 0) }
        var bestScore = score
        var log: [(node: Int, from: Int)] = []
        var bestLength = 0
        while let candidate = next() {
            let node = Int(candidate.node)
            log.append((node, Int(part[node])))
            move(node, to: Int(candidate.target))
            locked[node] = number
            stamp += 1
            for edge in graph.offsets[node]..<graph.offsets[node + 1] {
                let neighbor = Int(graph.neighbors[edge])
                if locked[neighbor] != number { offer(neighbor, stamp: stamp) }
            }
            if isWithinBounds && score < bestScore {
                bestScore = score
                bestLength = log.count
            } else if log.count - bestLength >= stallMovesMax {
                break
            }
        }
        for (node, from) in log[bestLength...].reversed() { move(node, to: from) }
    }

    // MARK: - Pruning

    /// Whether moved `node` keeps too little of its traffic in its new cluster, net of its old one, to be worth
    /// moving: less than `benefitMin` of all its transfers.
    private func isWeak(_ node: Int, benefitMin: Double) -> Bool {
        let home = Int(graph.original[node])
        guard Int(part[node]) != home else { return false }
        return Double(-gain(node, to: home)) < benefitMin * Double(graph.traffic[node])
    }

    /// Sends weak moved nodes back to their original clusters, weakest first, until every moved node pays for
    /// itself. A node whose return the bounds forbid goes back together with a weak node moved the opposite way.
    /// `progress` gets `(0, weak)` and, at the end, `(weak, weak)`, where `weak` counts the nodes weak at first.
    mutating func prune(benefitMin: Double, progress: (Int, Int) -> Void) {
        let k = graph.clusterCount
        let traffic = graph.traffic
        var queue = (0..<graph.count).filter { isWeak($0, benefitMin: benefitMin) }
        // Weakest first: the smallest share of its traffic kept net.
        queue.sort { left, right in
            let keptLeft = -gain(left, to: Int(graph.original[left]))
            let keptRight = -gain(right, to: Int(graph.original[right]))
            return (keptLeft * traffic[right], left) < (keptRight * traffic[left], right)
        }
        let total = queue.count
        // Blocked nodes wait here until the queue runs dry, then are tried again if anything went back meanwhile.
        var parked: [Int] = []
        var changed = false

        // Sends `node` home and queues its moved neighbors, whose benefit just shrank.
        func sendBack(_ node: Int, queueing next: inout [Int]) {
            changed = true
            move(node, to: Int(graph.original[node]))
            for edge in graph.offsets[node]..<graph.offsets[node + 1] {
                let neighbor = Int(graph.neighbors[edge])
                if part[neighbor] != graph.original[neighbor] { next.append(neighbor) }
            }
        }
        progress(0, total)
        while !queue.isEmpty {
            var next: [Int] = []
            var blocked = Array(repeating: [Int](), count: k * k)
            for node in queue where isWeak(node, benefitMin: benefitMin) {
                let source = Int(part[node])
                let home = Int(graph.original[node])
                if sizes[home] < highest[home] && sizes[source] > lowest[source] {
                    sendBack(node, queueing: &next)
                } else {
                    blocked[source * k + home].append(node)
                }
            }
            // Weak nodes moved in opposite directions go back together: the sizes do not change.
            var left: [Int] = []
            for source in 0..<k {
                for home in source + 1..<k {
                    // Reversed, so that the weakest come off the end first.
                    var forth = Array(blocked[source * k + home].reversed())
                    var back = Array(blocked[home * k + source].reversed())
                    while !forth.isEmpty && !back.isEmpty {
                        let one = forth.removeLast()
                        let other = back.removeLast()
                        // A node listed twice may have gone back already.
                        guard isWeak(one, benefitMin: benefitMin) else {
                            back.append(other)
                            continue
                        }
                        guard isWeak(other, benefitMin: benefitMin) else {
                            forth.append(one)
                            continue
                        }
                        sendBack(one, queueing: &next)
                        sendBack(other, queueing: &next)
                    }
                    left += forth
                    left += back
                }
            }
            parked += left
            if next.isEmpty && changed {
                (next, parked, changed) = (parked, [], false)
            }
            queue = next
        }
        progress(total, total)
    }
}

/// A binary max-heap of candidates ordered by `Candidate.outranks`.
struct CandidateHeap {
    private var items: [Partition.Candidate] = []

    var top: Partition.Candidate? { items.first }

    mutating func push(_ candidate: Partition.Candidate) {
        items.append(candidate)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].outranks(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var first = parent
            if left < items.count && items[left].outranks(items[first]) { first = left }
            if right < items.count && items[right].outranks(items[first]) { first = right }
            guard first != parent else { return }
            items.swapAt(parent, first)
            parent = first
        }
    }
}
