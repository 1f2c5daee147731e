import Paxos

/// The command the simulated clients submit: an opaque payload.
typealias SimCommand = UInt64

/// The simulated replicated state machine: at-most-once application through `ClientSessions`, and a digest of
/// every command applied, in order. Two replicas that applied the same commands in the same order have equal digests.
struct SimState: SimulatedMachine {
    typealias Command = SimCommand
    /// The session's verdict: `.new` applied it now; `.duplicate` answers the earlier result; `.expired` cannot tell.
    typealias Result = ClientSessions.Verdict

    var sessions = ClientSessions(sequencesRemembered: 64, clientsMax: 16)
    var digest: UInt64 = 0
    var appliedCount = 0
    var slot: Slot = 0

    static func initial(random: inout SeededRandom) -> SimState { SimState() }

    /// Applies one chosen slot; duplicates and expired requests are answered without being applied.
    mutating func apply(slot: Slot, ballot: Ballot, value: SlotValue<SimCommand>) -> [AppliedRequest<Result>] {
        var applied: [AppliedRequest<Result>] = []
        for request in value.requests {
            let verdict = sessions.admit(request.id, slot: slot)
            if verdict == .new {
                digest = SimState.mix(digest, request)
                appliedCount += 1
            }
            applied.append(AppliedRequest(id: request.id, result: verdict, tookEffect: verdict == .new))
        }
        self.slot = slot
        return applied
    }

    static func mix(_ digest: UInt64, _ request: Request<SimCommand>) -> UInt64 {
        var random = SeededRandom(
            seed: digest ^ (request.id.client &* 0x9E37_79B9) ^ (request.id.sequence << 20) ^ request.command)
        return random.next()
    }

    /// The payload has no invariant of its own; the Paxos checks are the simulator's.
    func violations() -> [String] { [] }

    func differences(from other: SimState) -> String {
        "slot \(slot) vs \(other.slot), \(appliedCount) vs \(other.appliedCount) applied, digest \(digest) vs "
            + "\(other.digest)\(sessions == other.sessions ? "" : ", client sessions differ")"
    }

    /// A request the log applied is acknowledged even when a later copy is answered `.expired`.
    static func acknowledges(_ result: Result, appliedByLog: Bool) -> Bool { appliedByLog }

    static func tally(_ command: SimCommand, _ result: Result, into tally: inout [String: Int]) {}

    static func finalViolations(_ run: FinalRun<SimState>) -> [String] { [] }

    /// Clients submit random payloads, numbered from 1 per client.
    struct Workload: SimulatedWorkload {
        typealias Command = SimCommand
        typealias Result = ClientSessions.Verdict

        var nextSequence: [UInt64: UInt64] = [:]

        init(clients: [UInt64]) {
            for client in clients { nextSequence[client] = 1 }
        }

        mutating func nextRequest(client: UInt64, random: inout SeededRandom) -> Request<SimCommand>? {
            let sequence = nextSequence[client]!
            nextSequence[client] = sequence + 1
            return Request(id: RequestID(client: client, sequence: sequence), command: random.next())
        }
    }
}
