import LedgerCore
import LedgerRPC
import LedgerStore

/// How an account move ended.
public enum MoveOutcome: Hashable, Sendable, CustomStringConvertible {
    /// The source removed the account and the target holds it with `balance` (or will, once its recovery learns the
    /// decision, if its commit answer was lost).
    case moved(balance: Int64)
    /// The account already lives in the target (a plan applied before).
    case alreadyThere
    /// Nothing changed: the account stays in the source.
    case aborted(String)
    /// The source's decision could not be learned in time; its replicas settle it, and the account ends in exactly
    /// one of the two clusters.
    case unknown(String)

    public var description: String {
        switch self {
        case .moved(let balance): return "moved (balance \(balance))"
        case .alreadyThere: return "already there"
        case .aborted(let why): return "aborted: \(why)"
        case .unknown(let why): return "unknown: \(why)"
        }
    }
}

extension LedgerConnection {
    /// Moves one account between clusters with the 2PC of transfers (DESIGN §6): the source is the home.
    ///
    /// 1. Prepare at the source: it locks the account and votes yes with its balance (transfers that touch it now are
    ///    answered `moving` and try again later). 2. Prepare at the target with that balance: it reserves the
    ///    account. 3. Commit at the source, the commit point: the account leaves, and the source answers `wrongShard`
    ///    with the target from then on. 4. Commit at the target: the account arrives. A no, or a source that cannot
    ///    vote, aborts everywhere that can answer. If the client dies, the participants' in-doubt recovery asks the
    ///    source, which aborts what it has not committed: the account is in exactly one cluster whatever happens,
    ///    and money is only in flight between steps 3 and 4, as for a cross-shard transfer.
    ///
    /// An account locked by a cross-shard transfer (or another move) is tried again, with a new transaction and a
    /// growing pause, up to `reroutesMax` times: under load a move must not give up at the first lock it meets.
    public func move(_ move: AccountMove) async -> MoveOutcome {
        guard move.from != move.to else {
            return .aborted("account \(move.account) cannot move from \(move.from) to itself")
        }
        var pause = Self.movingPause
        var why = "not tried"
        for _ in 0..<Self.reroutesMax {
            switch await attempt(move) {
            case .done(let outcome): return outcome
            case .locked(let reason): why = reason
            }
            try? await Task.sleep(for: pause)
            pause *= 2
        }
        return .aborted(why)
    }

    private enum Attempt {
        case done(MoveOutcome)
        /// The source refused because the account is locked: nothing changed, worth trying again.
        case locked(String)
    }

    private func attempt(_ move: AccountMove) async -> Attempt {
        let id = nextTransaction()
        defer { finish(id) }
        let participants = [move.from, move.to].sorted()
        let account = move.account
        let balance: Int64
        switch await submit(
            .prepareMove(id, home: move.from, participants: participants, part: .out(account, to: move.to)),
            to: move.from)
        {
        case .applied(.preparedMove(let value)):
            balance = value
        case .wrongShard(_, let owner?) where owner == move.to:
            // The source committed this move before (a re-run); the target finishes it if it has not yet.
            recordMove(account, to: move.to)
            return .done(.alreadyThere)
        case .wrongShard(_, let owner):
            return .done(.aborted("\(move.from) does not hold account \(account) (owner: \(owner ?? "unknown"))"))
        case .applied(.aborted(let reason)):
            switch reason {
            case .locked, .moving: return .locked("\(move.from) refused: \(reason)")
            default: return .done(.aborted("\(move.from) refused: \(reason)"))
            }
        case .unavailable:
            // Its prepare may still be applied; being the home, the source then aborts it on its own.
            return .done(.aborted("no quorum in \(move.from)"))
        case let answer:
            return .done(
                await abortMove(id, move, because: "unexpected answer from \(move.from): \(answer)", skipping: nil))
        }

        switch await submit(
            .prepareMove(
                id, home: move.from, participants: participants,
                part: .into(account, balance: balance, from: move.from)),
            to: move.to)
        {
        case .applied(.preparedYes):
            break
        case .applied(.aborted(let reason)):
            return .done(await abortMove(id, move, because: "\(move.to) refused: \(reason)", skipping: nil))
        case .unavailable:
            return .done(await abortMove(id, move, because: "no quorum in \(move.to)", skipping: move.to))
        case let answer:
            return .done(
                await abortMove(id, move, because: "unexpected answer from \(move.to): \(answer)", skipping: nil))
        }

        var decision = await submit(.commit(id), to: move.from)
        if decision == .unavailable { decision = await askStatus(id, of: move.from) }
        switch decision {
        case .applied(.committed):
            recordMove(account, to: move.to)
            // A target that misses this commit learns the decision from the source when its recovery timer fires.
            _ = await submit(.commit(id), to: move.to)
            return .done(.moved(balance: balance))
        case .applied(.aborted), .applied(.refused):
            return .done(await abortMove(id, move, because: "aborted by the source \(move.from)", skipping: move.from))
        default:
            return .done(.unknown("the source \(move.from) did not answer with its decision"))
        }
    }

    private func abortMove(_ id: TransactionID, _ move: AccountMove, because why: String, skipping: String?) async
        -> MoveOutcome
    {
        // The source (the home) first: a target that prepared follows it, and learns the abort once the source chose it.
        for cluster in [move.from, move.to] where cluster != skipping { _ = await submit(.abort(id), to: cluster) }
        return .aborted(why)
    }
}

/// What applying a plan did, move by move.
public struct RebalanceReport: Sendable {
    public var outcomes: [(move: AccountMove, outcome: MoveOutcome)] = []
    /// The catalog as written after the last recorded move (nil: nothing recorded).
    public var catalog: Catalog?

    public var moved: Int { outcomes.filter { if case .moved = $0.outcome { true } else { false } }.count }
    public var alreadyThere: Int { outcomes.filter { $0.outcome == .alreadyThere }.count }
    /// The moves that did not end with the account in its target.
    public var failed: [(move: AccountMove, outcome: MoveOutcome)] {
        outcomes.filter {
            switch $0.outcome {
            case .moved, .alreadyThere: return false
            case .aborted, .unknown: return true
            }
        }
    }
}

extension LedgerConnection {
    /// The most moves in flight at once when applying a plan.
    public static let movesInFlightMax = 16
    /// Recorded moves are written to the catalog file in batches of at most this many.
    static let catalogBatch = 64

    /// Applies `moves` (distinct accounts) with at most `concurrency` in flight, while transfers may keep running.
    /// Every account that ends in its target is written to the catalog at `catalogPath` (overrides, version bumped
    /// once per batch), so clients that start later route to it at once; a client killed half-way leaves some moves
    /// unrecorded, which running the plan again records (`alreadyThere`). `progress` gets the moves done so far.
    public func apply(
        _ moves: [AccountMove], concurrency: Int = movesInFlightMax, catalogPath: String,
        progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws(StoreError) -> RebalanceReport {
        precondition(concurrency >= 1, "at least one move in flight")
        var report = RebalanceReport()
        var unrecorded: [AccountID: String] = [:]
        var storeError: StoreError?
        func record() {
            guard !unrecorded.isEmpty, storeError == nil else { return }
            do {
                report.catalog = try CatalogFile.recordMoves(unrecorded, at: catalogPath)
                unrecorded = [:]
            } catch {
                storeError = error
            }
        }
        await withTaskGroup(of: (AccountMove, MoveOutcome).self) { group in
            var next = 0
            func launch() {
                let move = moves[next]
                next += 1
                group.addTask { (move, await self.move(move)) }
            }
            while next < min(concurrency, moves.count) { launch() }
            while let (move, outcome) = await group.next() {
                report.outcomes.append((move, outcome))
                switch outcome {
                case .moved, .alreadyThere: unrecorded[move.account] = move.to
                case .aborted, .unknown: break
                }
                if unrecorded.count >= Self.catalogBatch { record() }
                progress(report.outcomes.count)
                if next < moves.count { launch() }
            }
        }
        record()
        if let storeError { throw storeError }
        return report
    }
}
