import Paxos

/// One input the simulator gave a replica, kept to explain a run that ends unhealed: what each replica last saw.
enum SimInput<Command: Sendable & Equatable, State: Sendable & Equatable> {
    /// Consecutive ticks, from `first` through `last` (simulation time).
    case ticks(first: Int, last: Int)
    case received(at: Int, from: ReplicaID, message: Message<Command, State>)
    case submitted(at: Int, id: RequestID, attempt: Int)
    case read(at: Int, id: RequestID)
    /// The process started from its disk (after a crash, or at the heal).
    case started(at: Int)

    var description: String {
        switch self {
        case .ticks(let first, let last):
            return first == last ? "t\(first) tick" : "t\(first)-\(last) ticks"
        case .received(let at, let from, let message):
            return "t\(at) from \(from): \(Self.summary(message))"
        case .submitted(let at, let id, let attempt):
            return "t\(at) submit \(id) (attempt \(attempt))"
        case .read(let at, let id):
            return "t\(at) read \(id)"
        case .started(let at):
            return "t\(at) started from disk"
        }
    }

    /// A message in one short line: its kind, ballot and slots, without the values.
    static func summary(_ message: Message<Command, State>) -> String {
        switch message {
        case .phase1a(let ballot, let firstSlot):
            return "phase1a \(ballot) from slot \(firstSlot)"
        case .phase1b(let ballot, let snapshotSlot, _, let entries, _):
            return "phase1b \(ballot) snapshot \(snapshotSlot) slots \(slots(entries.map(\.slot)))"
        case .phase2a(let ballot, let proposals, let chosenThrough):
            return "phase2a \(ballot) slots \(slots(proposals.map(\.slot))) chosen through \(chosenThrough)"
        case .phase2b(let ballot, let accepted, let chosenThrough):
            return "phase2b \(ballot) slots \(slots(accepted)) chosen through \(chosenThrough)"
        case .chosen(let ballot, let chosenThrough):
            return "chosen \(ballot) through \(chosenThrough)"
        case .heartbeat(let ballot, let chosenThrough, let round):
            return "heartbeat \(ballot) chosen through \(chosenThrough) round \(round)"
        case .heartbeatAck(let ballot, let round, let chosenThrough):
            return "heartbeatAck \(ballot) round \(round) chosen through \(chosenThrough)"
        case .rejected(let promised):
            return "rejected, promised \(promised)"
        case .catchUpRequest(let firstSlot):
            return "catchUpRequest from slot \(firstSlot)"
        case .catchUpReply(let snapshot, let entries):
            let shipped = snapshot.map { "snapshot \($0.slot), " } ?? ""
            return "catchUpReply \(shipped)slots \(slots(entries.map(\.slot)))"
        case .forward(let requests):
            let ids = requests.prefix(4).map(String.init(describing:)).joined(separator: ", ")
            return "forward \(requests.count) [\(ids)\(requests.count > 4 ? ", ..." : "")]"
        case .handover(let ballot):
            return "handover \(ballot)"
        }
    }

    /// Slots as ranges: [3...5, 9].
    static func slots(_ slots: [Slot]) -> String {
        var ranges: [String] = []
        var index = 0
        while index < slots.count {
            var end = index
            while end + 1 < slots.count, slots[end + 1] == slots[end] + 1 { end += 1 }
            ranges.append(end == index ? "\(slots[index])" : "\(slots[index])...\(slots[end])")
            index = end + 1
        }
        return "[\(ranges.joined(separator: ", "))]"
    }
}

/// The last `capacity` inputs of one replica, oldest first; consecutive ticks take one place.
struct InputRing<Command: Sendable & Equatable, State: Sendable & Equatable> {
    typealias Input = SimInput<Command, State>

    let capacity: Int
    private var items: [Input] = []
    /// Where the next input goes once the ring is full.
    private var next = 0

    init(capacity: Int) {
        self.capacity = capacity
        items.reserveCapacity(capacity)
    }

    mutating func tick(_ now: Int) {
        let last = items.isEmpty ? nil : (items.count < capacity ? items.count - 1 : (next + capacity - 1) % capacity)
        if let last, case .ticks(let first, let through) = items[last], through + 1 == now {
            items[last] = .ticks(first: first, last: now)
        } else {
            append(.ticks(first: now, last: now))
        }
    }

    mutating func append(_ input: Input) {
        if items.count < capacity {
            items.append(input)
        } else {
            items[next] = input
            next = (next + 1) % capacity
        }
    }

    /// Oldest first.
    var inputs: [Input] { Array(items[next...] + items[..<next]) }
}
