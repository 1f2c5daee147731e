import LedgerCore
import LedgerRPC
import Synchronization

/// Gathers the commands a client sends one cluster at the same time into batches (each one message on the batch
/// stream, `BatchStream`), so that many concurrent transfers cost one message and one pass through the leader instead
/// of one each.
///
/// No command waits for a timer: with fewer than `callsInFlightMax` calls in flight a command goes at once (alone, if
/// nothing else is queued); otherwise it joins the next batch, which leaves as soon as a call returns. So a lone
/// client sees no added latency, and under load the batches grow with the load.
final class CommandBatcher: Sendable {
    /// A command waiting for its outcome.
    struct Pending: Sendable {
        let command: LedgerCommand
        let continuation: CheckedContinuation<CommandOutcome, Never>

        func resume(_ outcome: CommandOutcome) { continuation.resume(returning: outcome) }
    }

    /// Calls in flight to one cluster at a time. One: the next batch forms while a call is out, and the leader
    /// pipelines the batches of many clients. With two, each batch was half as big, and a slot costs the cluster
    /// about as much CPU as eight commands: one call was 11-40% faster at concurrency 8 and 64 (issue 6 notes).
    static let callsInFlightMax = 1

    private struct State {
        var queue: [Pending] = []
        var callsInFlight = 0
    }

    private let state = Mutex(State())
    /// Sends one batch and resumes every command of it (now, or later for those it retries on their own).
    private let send: @Sendable ([Pending]) async -> Void

    init(send: @escaping @Sendable ([Pending]) async -> Void) {
        self.send = send
    }

    func submit(_ command: LedgerCommand) async -> CommandOutcome {
        await withCheckedContinuation { continuation in
            let batch = state.withLock { state -> [Pending]? in
                state.queue.append(Pending(command: command, continuation: continuation))
                guard state.callsInFlight < Self.callsInFlightMax else { return nil }
                state.callsInFlight += 1
                return Self.take(&state)
            }
            if let batch { Task { await self.run(batch) } }
        }
    }

    /// Sends `batch`, then whatever queued meanwhile, until the queue is empty.
    private func run(_ batch: [Pending]) async {
        var next = batch
        while !next.isEmpty {
            await send(next)
            next = state.withLock { state in
                let taken = Self.take(&state)
                if taken.isEmpty { state.callsInFlight -= 1 }
                return taken
            }
        }
    }

    /// Commands waiting for the next call (tests).
    var queuedCount: Int { state.withLock { $0.queue.count } }

    private static func take(_ state: inout State) -> [Pending] {
        let count = min(state.queue.count, WireLimits.commandsPerBatchMax)
        let taken = Array(state.queue.prefix(count))
        state.queue.removeFirst(count)
        return taken
    }
}
