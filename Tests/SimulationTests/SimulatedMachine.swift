import Paxos

/// A replicated state machine the simulator runs under the real `Paxos.Replica`.
///
/// A value of the conforming type is one replica's whole applied state and is also the Paxos snapshot state:
/// installing a snapshot replaces it entirely. Applying must be deterministic: the same slots in the same order give
/// equal values, equal digests and equal results on every replica.
protocol SimulatedMachine: Sendable, Equatable {
    associatedtype Command: Sendable & Equatable
    /// What applying one request answers its client.
    associatedtype Result: Sendable & Equatable
    /// What the simulated clients submit, and what they do with the answers.
    associatedtype Workload: SimulatedWorkload<Command, Result>

    /// The state every replica starts from; may draw its parameters from the run's seed.
    static func initial(random: inout SeededRandom) -> Self

    /// The last slot applied (0 before the first).
    var slot: Slot { get }

    /// Equal for two states that applied the same requests with the same effects in the same order. The simulator
    /// compares it after every slot (full equality after every slot would cost quadratic time); it must not depend
    /// on the process's hash seed.
    var digest: UInt64 { get }

    /// Applies the chosen value of `slot`, chosen under `ballot`; answers every request of the slot, in order.
    mutating func apply(slot: Slot, ballot: Ballot, value: SlotValue<Command>) -> [AppliedRequest<Result>]

    /// The invariants a state must keep after every applied slot: one line per broken one.
    func violations() -> [String]

    /// What differs between two states, for a report.
    func differences(from other: Self) -> String

    /// Whether a client answered `result` has its request acknowledged; `appliedByLog` says whether the canonical
    /// application of the chosen log applied it. Otherwise the request counts as expired.
    static func acknowledges(_ result: Result, appliedByLog: Bool) -> Bool

    /// Counts a request's first application in the chosen log, for the run's summary.
    static func tally(_ command: Command, _ result: Result, into tally: inout [String: Int])

    /// The checks after healing, once every replica applied the whole chosen log and equals `canonical`.
    static func finalViolations(_ run: FinalRun<Self>) -> [String]
}

/// The answer to one request of an applied slot.
struct AppliedRequest<Result: Sendable & Equatable>: Sendable, Equatable {
    var id: RequestID
    var result: Result
    /// The request changed the state; a request may take effect at most once in a log.
    var tookEffect: Bool
}

/// A request's answer as its client received it: the slot that applied it and the result.
struct Acknowledgement<Result: Sendable & Equatable>: Sendable, Equatable {
    var slot: Slot
    var result: Result
}

/// What the final checks of a machine may look at.
struct FinalRun<Machine: SimulatedMachine> {
    /// Every replica's state, in replica order.
    var replicas: [(member: ReplicaID, state: Machine)]
    /// The canonical application of the chosen log.
    var canonical: Machine
    /// Every request a client submitted.
    var submitted: [RequestID: Machine.Command]
    /// The requests acknowledged to their client, with the slot and the answer.
    var acknowledged: [RequestID: Acknowledgement<Machine.Result>]
    /// The chosen log.
    var chosen: [Slot: SlotValue<Machine.Command>]
}

/// The simulated clients' behaviour. Draws come from the run's seeded generator only, so a run replays exactly.
protocol SimulatedWorkload<Command, Result> {
    associatedtype Command: Sendable & Equatable
    associatedtype Result: Sendable & Equatable

    init(clients: [UInt64])

    /// The next new request of `client`, or nil when it has nothing to send now.
    mutating func nextRequest(client: UInt64, random: inout SeededRandom) -> Request<Command>?

    /// Whether a request answered `noQuorum` or `busy` on its only attempt is given up (and checked never to be
    /// applied); otherwise the client retries it with the same id.
    func abandons(_ request: Request<Command>) -> Bool

    /// The request was applied and its client answered.
    mutating func answered(_ request: Request<Command>, result: Result)

    /// The client gave the request up (see `abandons`): it was never applied.
    mutating func abandoned(_ request: Request<Command>)

    /// The request was answered with a result that acknowledges nothing (`SimulatedMachine.acknowledges`).
    mutating func expired(_ request: Request<Command>, result: Result)
}

extension SimulatedWorkload {
    func abandons(_ request: Request<Command>) -> Bool { true }
    mutating func answered(_ request: Request<Command>, result: Result) {}
    mutating func abandoned(_ request: Request<Command>) {}
    mutating func expired(_ request: Request<Command>, result: Result) {}
}

/// A digest that is the same in every process (Swift's `Hasher` is seeded per process): each word is folded in with
/// SplitMix64's finaliser, so the order of the words matters.
struct StableDigest: Sendable, Equatable {
    private(set) var value: UInt64

    init(_ value: UInt64 = 0x6A09_E667_F3BC_C908) {
        self.value = value
    }

    /// SplitMix64's finaliser: every input bit affects every output bit.
    static func mix(_ word: UInt64) -> UInt64 {
        var z = word &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func add(_ word: UInt64) {
        value = Self.mix(value ^ word)
    }

    mutating func add(_ number: Int64) {
        add(UInt64(bitPattern: number))
    }

    mutating func add(_ text: String) {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a over the bytes.
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        add(hash)
        add(UInt64(text.utf8.count))
    }

    /// Folds in an unordered collection of words (a dictionary's entries, hashed one by one) in a way that does not
    /// depend on the order of iteration.
    mutating func addUnordered(_ words: some Sequence<UInt64>) {
        var sum: UInt64 = 0
        var count: UInt64 = 0
        for word in words {
            sum &+= Self.mix(word)
            count += 1
        }
        add(sum)
        add(count)
    }
}
