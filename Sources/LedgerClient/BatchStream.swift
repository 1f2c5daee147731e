import GRPCCore
import GRPCNIOTransportHTTP2
import LedgerRPC
import Synchronization

/// One long-lived bidirectional call to one replica, which carries every batch a client sends there: a batch costs
/// one message each way instead of a call of its own (a new HTTP/2 stream, its headers and its handlers on both
/// sides). `SubmitStream` carries commands (`BatchStream.commands`), `TransactionStatusStream` a replica's questions
/// to another cluster (`BatchStream.statuses`).
///
/// The call opens with the first batch and again with the first batch after it ended. Replies come in the order the
/// batches were written. The call ends, and every batch it has not answered fails, when the replica ends it (a batch
/// it refused as a whole, or it stopped), when the connection breaks, when a batch is not answered by its deadline,
/// or on `close`. A failed batch says whether it was written: if so, the replica may have taken it.
final class BatchStream<Request: Sendable, Reply: Sendable>: Sendable {
    /// Runs one call: writes what `request` produces, and hands the replies to the response handler.
    typealias Open =
        @Sendable (
            _ request: StreamingClientRequest<Request>, _ options: CallOptions,
            _ onResponse: @Sendable @escaping (StreamingClientResponse<Reply>) async throws -> Void
        ) async throws -> Void

    /// What became of one batch.
    enum Answer: Sendable {
        case reply(Reply)
        /// No reply. `written`: the batch went out on the call, so the replica may have taken it.
        case failed(any Error, written: Bool)
    }

    private struct Waiter {
        let request: Request
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<Answer, Never>
    }

    private struct State {
        /// Batches not answered yet, in the order they were sent; the first `written` of them went out on the call.
        var waiters: [Waiter] = []
        var written = 0
        /// The call's request writer, waiting for the next batch.
        var writer: CheckedContinuation<Request?, Never>?
        /// The running call; nil when there is none.
        var call: Task<Void, Never>?
        var closed = false
    }

    /// How often the call checks for a batch past its deadline.
    static var deadlineCheckInterval: Duration { .milliseconds(50) }

    private let open: Open
    private let state = Mutex(State())

    init(open: @escaping Open) {
        self.open = open
    }

    /// Sends `request` on the call (opening it if none is running) and waits for its reply, until `deadline`.
    func send(_ request: Request, deadline: ContinuousClock.Instant) async -> Answer {
        await withCheckedContinuation { continuation in
            let writer = state.withLock { state -> CheckedContinuation<Request?, Never>?? in
                guard !state.closed else { return nil }
                state.waiters.append(Waiter(request: request, deadline: deadline, continuation: continuation))
                if state.call == nil { state.call = Task { await self.run() } }
                guard let writer = state.writer else { return .some(nil) }
                state.writer = nil
                state.written += 1
                return writer
            }
            switch writer {
            case nil:
                continuation.resume(
                    returning: .failed(
                        RPCError(code: .unavailable, message: "the client is shutting down"), written: false))
            case .some(let writer):
                writer?.resume(returning: request)
            }
        }
    }

    /// Ends the call, if one runs, and refuses later batches; a batch not answered yet fails.
    func close() {
        let (call, writer) = state.withLock { state in
            state.closed = true
            defer { state.writer = nil }
            return (state.call, state.writer)
        }
        writer?.resume(returning: nil)
        call?.cancel()
    }

    /// Runs one call until it ends, then fails every batch it did not answer.
    private func run() async {
        var failure: any Error = RPCError(code: .unavailable, message: "the replica ended the batch stream")
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.call() }
                group.addTask { try await self.watchDeadlines() }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            failure = error
        }
        let (waiters, written) = state.withLock { state in
            defer {
                state.waiters = []
                state.written = 0
                state.call = nil
            }
            return (state.waiters, state.written)
        }
        // The first batch not answered is the one the replica's error is about; the others were cut off by it.
        let cutOff = RPCError(
            code: .unavailable, message: "the batch stream ended before this batch was answered: \(failure)")
        for (index, waiter) in waiters.enumerated() {
            waiter.continuation.resume(returning: .failed(index == 0 ? failure : cutOff, written: index < written))
        }
    }

    private func call() async throws {
        let request = StreamingClientRequest<Request> { writer in
            while let batch = await self.nextBatch() { try await writer.write(batch) }
        }
        var options = CallOptions.defaults
        options.timeout = nil
        try await open(request, options) { response in
            for try await reply in response.messages { try self.deliver(reply) }
        }
    }

    /// The next batch to write; nil once closed, or when the call's request side is cancelled (the call ended).
    private func nextBatch() async -> Request? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Request?, Never>) in
                let immediate: Request?? = state.withLock { state in
                    if state.closed || Task.isCancelled { return .some(nil) }
                    if state.written < state.waiters.count {
                        state.written += 1
                        return .some(state.waiters[state.written - 1].request)
                    }
                    state.writer = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let writer = state.withLock { state in
                defer { state.writer = nil }
                return state.writer
            }
            writer?.resume(returning: nil)
        }
    }

    /// Answers the oldest written batch.
    private func deliver(_ reply: Reply) throws {
        let waiter = state.withLock { state -> Waiter? in
            guard state.written > 0 else { return nil }
            state.written -= 1
            return state.waiters.removeFirst()
        }
        guard let waiter else {
            throw RPCError(code: .internalError, message: "the replica answered a batch the client did not send")
        }
        waiter.continuation.resume(returning: .reply(reply))
    }

    /// Ends the call when a batch is past its deadline: the replica may be stopped or cut off.
    private func watchDeadlines() async throws {
        while true {
            try await Task.sleep(for: Self.deadlineCheckInterval)
            let now = ContinuousClock.now
            if state.withLock({ state in state.waiters.contains { $0.deadline <= now } }) {
                throw RPCError(code: .deadlineExceeded, message: "a batch was not answered before its deadline")
            }
        }
    }
}

extension BatchStream where Request == Ledger_V1_CommandBatchRequest, Reply == Ledger_V1_CommandBatchReply {
    /// A stream of command batches (`SubmitStream`).
    static func commands(_ api: Ledger_V1_Ledger.Client<HTTP2ClientTransport.Posix>) -> BatchStream {
        BatchStream { request, options, onResponse in
            try await api.submitStream(request: request, options: options, onResponse: onResponse)
        }
    }
}

extension BatchStream
where Request == Ledger_V1_TransactionStatusBatchRequest, Reply == Ledger_V1_TransactionStatusBatchReply {
    /// A stream of status questions (`TransactionStatusStream`).
    static func statuses(_ api: Ledger_V1_Ledger.Client<HTTP2ClientTransport.Posix>) -> BatchStream {
        BatchStream { request, options, onResponse in
            try await api.transactionStatusStream(request: request, options: options, onResponse: onResponse)
        }
    }
}
