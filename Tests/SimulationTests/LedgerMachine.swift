import LedgerCore
import Paxos

/// One shard's ledger as the simulator replicates it: the real `LedgerState`, and the WAL and datastore records
/// appended from each applied command's `Effects`, the way a replica writes them. Installing a Paxos snapshot
/// replaces all three, as a `LedgerSnapshot` does in a deployment.
///
/// Invariants checked after every applied slot: no balance below the minimum; every lock is held by a transaction
/// prepared on that account; the total is the money created plus the net of committed cross-shard changes; what the
/// state remembers stays within its `WindowLimits` (small ones, drawn per seed, so trims and evictions happen); no
/// command of a transaction takes effect after a command of it was answered `expired`.
///
/// Replicas are compared in full, datastore ballots included: Paxos applies every slot under the ballot of the leader
/// that first proposed its value, the same on every replica.
struct LedgerMachine: SimulatedMachine {
    typealias Command = LedgerCommand
    typealias Result = CommandResult

    /// The accounts the workload's `createAccounts` creates, and their balance: small, so transfers collide on
    /// accounts and locks, and amounts of up to `amountMax` run out of funds.
    static let accounts = AccountID(1)...AccountID(20)
    static let initialBalance: Int64 = 10
    static let amountMax: Int64 = 12
    /// An account this shard does not hold.
    static let foreignAccount = AccountID(21)
    /// Accounts of the other cluster that moves bring here.
    static let arrivals = [AccountID(22), AccountID(23), AccountID(24)]
    /// This cluster, and the other participant of its cross-shard transactions.
    static let cluster = "C1"
    static let otherCluster = "C2"

    /// The ledger, WAL and datastore exactly as `LedgerState.apply` produced them, ballots included.
    var ledger: LedgerSnapshot
    var slot: Slot = 0
    var digest: UInt64 = StableDigest().value
    /// The money created plus the net of committed cross-shard changes, from the commands applied (not from their
    /// effects): what `ledger.state.total` must equal after every slot.
    var expectedTotal: Int128 = 0
    /// Transactions a command of which was answered `expired`, and the commands that took effect on one later.
    var expired: Set<TransactionID> = []
    var appliedAfterExpiry: [String] = []

    static func initial(random: inout SeededRandom) -> LedgerMachine {
        let minBalance: Int64 = Bool.random(using: &random) ? 0 : -5
        let perClient = Int.random(in: 6...32, using: &random)
        let limits = WindowLimits(
            transactionsPerClient: perClient, clientSessions: Int.random(in: 2...8, using: &random),
            transactionsRemembered: Int.random(in: perClient...64, using: &random))
        return LedgerMachine(
            ledger: LedgerSnapshot(
                state: LedgerState(cluster: LedgerMachine.cluster, minBalance: minBalance, limits: limits), wal: [],
                datastore: []))
    }

    /// The Paxos request id of a ledger command: a transaction's commands are distinct requests (kind in the low
    /// two bits), a retry keeps the id: the ids a deployment gives ledger commands.
    static func requestID(for command: LedgerCommand) -> RequestID { command.requestID }

    mutating func apply(slot: Slot, ballot: Ballot, value: SlotValue<LedgerCommand>) -> [AppliedRequest<CommandResult>]
    {
        var digest = StableDigest(self.digest)
        digest.add(slot)
        var applied: [AppliedRequest<CommandResult>] = []
        for request in value.requests {
            let before = request.command.transaction.flatMap { ledger.state.transactions[$0] }
            // What an account leaving by this command holds before it goes.
            var leaving: Int64 = 0
            if case .prepared(let prepared)? = before, case .out(let account, _)? = prepared.move {
                leaving = ledger.state.balances[account] ?? 0
            }
            let effects = ledger.state.apply(request.command, slot: slot, ballot: ballot)
            if let id = request.command.transaction {
                if case .expired = effects.result {
                    expired.insert(id)
                } else if expired.contains(id), effects.transaction != nil || !effects.wal.isEmpty {
                    appliedAfterExpiry.append("\(request.command.summary) took effect in slot \(slot) after expiring")
                }
            }
            if !effects.wal.isEmpty { ledger.walEntries.append(WALEntry(slot: slot, records: effects.wal)) }
            if let record = effects.datastore { ledger.datastore.append(record) }
            switch (request.command, effects.result, before) {
            case (.createAccounts(_, let balance), .accountsCreated(let created), _):
                expectedTotal += Int128(created) * Int128(balance)
            case (.commit, .committed, .prepared(let prepared)?), (.decideCommit, .committed, .prepared(let prepared)?),
                (.follow, .committed, .prepared(let prepared)?):
                switch prepared.move {
                case nil: expectedTotal += prepared.changes.reduce(0) { $0 + Int128($1.delta) }
                case .out?: expectedTotal -= Int128(leaving)
                case .into(_, let balance, _)?: expectedTotal += Int128(balance)
                }
            default:
                break
            }
            let tookEffect =
                effects.transaction != nil || !effects.balances.isEmpty || !effects.wal.isEmpty
                || effects.datastore != nil || !effects.locked.isEmpty || !effects.unlocked.isEmpty
            digest.add(request.id.client)
            digest.add(request.id.sequence)
            Self.add(effects.result, to: &digest)
            for record in effects.wal { Self.add(record, to: &digest) }
            if let record = effects.datastore { Self.add(record, to: &digest) }
            digest.addUnordered(
                effects.balances.lazy.map { StableDigest.mix($0.key.value) ^ UInt64(bitPattern: $0.value) })
            digest.addUnordered(effects.locked.lazy.map { StableDigest.mix($0.key.value) ^ Self.word($0.value) })
            for account in effects.unlocked { digest.add(account.value) }
            applied.append(AppliedRequest(id: request.id, result: effects.result, tookEffect: tookEffect))
        }
        self.slot = slot
        self.digest = digest.value
        return applied
    }

    static func word(_ id: TransactionID) -> UInt64 { StableDigest.mix(id.client) ^ id.sequence }

    static func add(_ result: CommandResult, to digest: inout StableDigest) {
        switch result {
        case .committed: digest.add(UInt64(1))
        case .preparedYes: digest.add(UInt64(2))
        case .preparedMove(let balance):
            digest.add(UInt64(6))
            digest.add(balance)
        case .accountsCreated(let count): digest.add(UInt64(3) << 32 | UInt64(count))
        case .released(let count): digest.add(UInt64(7) << 32 | UInt64(count))
        case .expired(let text):
            digest.add(UInt64(8))
            digest.add(text)
        case .refused(let text):
            digest.add(UInt64(4))
            digest.add(text)
        case .aborted(let reason):
            digest.add(UInt64(5))
            digest.add(reason.description)
        }
    }

    static func add(_ record: WALRecord, to digest: inout StableDigest) {
        digest.add(word(record.transaction))
        switch record.kind {
        case .start: digest.add(UInt64(1))
        case .commit: digest.add(UInt64(2))
        case .abort: digest.add(UInt64(3))
        case .update(let account, let old, let new):
            digest.add(UInt64(4))
            digest.add(account.value)
            digest.add(old)
            digest.add(new)
        case .moveOut(let account, let balance, let cluster):
            digest.add(UInt64(5))
            digest.add(account.value)
            digest.add(balance)
            digest.add(cluster)
        case .moveIn(let account, let balance, let cluster):
            digest.add(UInt64(6))
            digest.add(account.value)
            digest.add(balance)
            digest.add(cluster)
        }
    }

    static func add(_ record: DatastoreRecord, to digest: inout StableDigest) {
        digest.add(word(record.transaction))
        digest.add(record.slot)
        digest.add(record.ballot.round)
        digest.add(UInt64(record.ballot.replica.index))
        switch record.kind {
        case .transfer(let from, let to, let amount):
            digest.add(from.value)
            digest.add(to.value)
            digest.add(amount.value)
        case .crossShard(let changes):
            for change in changes {
                digest.add(change.account.value)
                digest.add(change.delta)
            }
        case .moveOut(let account, let balance, let cluster), .moveIn(let account, let balance, let cluster):
            digest.add(account.value)
            digest.add(balance)
            digest.add(cluster)
        }
    }

    func violations() -> [String] {
        let state = ledger.state
        var found: [String] = []
        for (account, balance) in state.balances where balance < state.minBalance {
            found.append("account \(account) has balance \(balance), below the minimum \(state.minBalance)")
        }
        for (account, owner) in state.locks {
            guard case .prepared(let prepared) = state.transactions[owner], prepared.accounts.contains(account) else {
                found.append("account \(account) is locked by \(owner), which is not prepared on it")
                continue
            }
        }
        if state.total != expectedTotal {
            found.append("the shard holds \(state.total), but the commands applied make \(expectedTotal)")
        }
        found += appliedAfterExpiry
        found += windowViolations()
        return found.sorted()
    }

    /// What the state remembers is within its limits: pinned records (prepared, or committed here as home and not
    /// delivered) aside, at most `transactionsPerClient` per client and `transactionsRemembered` in all; at most
    /// `clientSessions` sessions, besides those that hold pinned records (they cannot be evicted).
    func windowViolations() -> [String] {
        let state = ledger.state
        let limits = state.limits
        func pinned(_ id: TransactionID) -> Bool {
            if case .prepared = state.transactions[id] { return true }
            return state.undelivered.contains(id)
        }
        var found: [String] = []
        var unpinned: [UInt64: Int] = [:]
        var holdsPinned: Set<UInt64> = []
        for id in state.transactions.keys {
            if pinned(id) { holdsPinned.insert(id.client) } else { unpinned[id.client, default: 0] += 1 }
            if let session = state.sessions[id.client], id.sequence < session.floor, !pinned(id) {
                found.append("\(id) is decided and below its client's floor \(session.floor), yet remembered")
            }
        }
        for (client, count) in unpinned where count > limits.transactionsPerClient {
            found.append("client \(client) has \(count) transactions remembered, over \(limits.transactionsPerClient)")
        }
        let total = unpinned.values.reduce(0, +)
        if total > limits.transactionsRemembered {
            found.append("\(total) transactions remembered, over \(limits.transactionsRemembered)")
        }
        if state.sessions.count > limits.clientSessions + holdsPinned.count {
            found.append(
                "\(state.sessions.count) sessions remembered, over \(limits.clientSessions) and the "
                    + "\(holdsPinned.count) holding pinned records")
        }
        return found
    }

    func differences(from other: LedgerMachine) -> String {
        var parts: [String] = []
        let mine = ledger.state
        let theirs = other.ledger.state
        if slot != other.slot { parts.append("slot \(slot) vs \(other.slot)") }
        if mine.minBalance != theirs.minBalance {
            parts.append("min balance \(mine.minBalance) vs \(theirs.minBalance)")
        }
        for account in Set(mine.balances.keys).union(theirs.balances.keys).sorted()
        where mine.balances[account] != theirs.balances[account] {
            parts.append(
                "balance of \(account) \(mine.balances[account].map(String.init) ?? "-") vs "
                    + "\(theirs.balances[account].map(String.init) ?? "-")")
        }
        if mine.locks != theirs.locks { parts.append("locks \(mine.locks.count) vs \(theirs.locks.count)") }
        if mine.sessions != theirs.sessions || mine.retiredClients != theirs.retiredClients {
            parts.append("sessions \(mine.sessions.count) vs \(theirs.sessions.count)")
        }
        if mine.undelivered != theirs.undelivered { parts.append("undelivered commits differ") }
        for id in Set(mine.transactions.keys).union(theirs.transactions.keys).sorted()
        where mine.transactions[id] != theirs.transactions[id] {
            parts.append("transaction \(id) differs")
            break
        }
        if let index = Self.firstDifference(ledger.wal, other.ledger.wal) {
            parts.append(
                "WAL (\(ledger.wal.count) vs \(other.ledger.wal.count) records) from record \(index): "
                    + "\(Self.item(ledger.wal, index)) vs \(Self.item(other.ledger.wal, index))")
        }
        if let index = Self.firstDifference(ledger.datastore, other.ledger.datastore) {
            parts.append(
                "datastore (\(ledger.datastore.count) vs \(other.ledger.datastore.count) records) "
                    + "from record \(index): "
                    + "\(Self.item(ledger.datastore, index)) vs \(Self.item(other.ledger.datastore, index))")
        }
        if expectedTotal != other.expectedTotal {
            parts.append("expected total \(expectedTotal) vs \(other.expectedTotal)")
        }
        if digest != other.digest { parts.append("digest differs") }
        return parts.isEmpty ? "nothing" : parts.joined(separator: "; ")
    }

    static func firstDifference<Element: Equatable>(_ left: [Element], _ right: [Element]) -> Int? {
        for index in 0..<max(left.count, right.count)
        where index >= left.count || index >= right.count || left[index] != right[index] {
            return index
        }
        return nil
    }

    static func item<Element>(_ items: [Element], _ index: Int) -> String {
        index < items.count ? String(describing: items[index]) : "none"
    }

    /// Every ledger answer is definite; `expired` says the command was not applied (its transaction is below its
    /// client's window), so it acknowledges nothing.
    static func acknowledges(_ result: CommandResult, appliedByLog: Bool) -> Bool {
        if case .expired = result { return false }
        return true
    }

    static func tally(_ command: LedgerCommand, _ result: CommandResult, into tally: inout [String: Int]) {
        let kind: String
        switch command {
        case .transfer: kind = "transfer"
        case .prepare: kind = "prepare"
        case .prepareMove: kind = "move"
        case .commit: kind = "commit"
        case .abort: kind = "abort"
        case .decideCommit: kind = "decide"
        case .follow: kind = "follow"
        case .createAccounts: kind = "create"
        case .release: kind = "release"
        case .delivered: kind = "delivered"
        }
        let outcome: String
        switch result {
        case .committed: outcome = "committed"
        case .preparedYes, .preparedMove: outcome = "yes"
        case .refused: outcome = "refused"
        case .accountsCreated: outcome = "created"
        case .released: outcome = "released"
        case .expired: outcome = "expired"
        case .aborted(let reason):
            switch reason {
            case .insufficientFunds: outcome = "insufficient funds"
            case .locked: outcome = "locked"
            case .unknownAccount: outcome = "unknown account"
            case .balanceOverflow: outcome = "overflow"
            case .aborted: outcome = "aborted"
            case .invalid: outcome = "invalid"
            case .moving: outcome = "moving"
            case .moved: outcome = "moved"
            }
        }
        tally[kind, default: 0] += 1
        tally["\(kind) \(outcome)", default: 0] += 1
    }

    // MARK: - Final checks

    static func finalViolations(_ run: FinalRun<LedgerMachine>) -> [String] {
        var found: [String] = []
        let canonical = run.canonical.ledger.state
        // Money: created, plus credits minus debits of the cross-shard transactions committed here. The changes come
        // from the prepares the clients sent, the fate from the canonical state: both independent of the effects.
        var created: Int128 = 0
        if case .createAccounts(let ranges, let balance)? = run.submitted[
            requestID(for: .createAccounts([], balance: 0))]
        {
            // Accounts moved away were created here too. (No shard account arrives by a move before the creation is
            // answered: see `Workload`.)
            let accounts = Set(canonical.balances.keys).union(canonical.movedOut.keys).filter { account in
                ranges.contains { $0.contains(account) }
            }
            created = Int128(accounts.count) * Int128(balance)
        }
        // Committed transactions are known from the history: the state forgets them once their client released them.
        let committed = Set(run.canonical.ledger.datastore.map(\.transaction))
        var crossShardNet: Int128 = 0
        for command in run.submitted.values {
            guard let id = command.transaction, committed.contains(id) else { continue }
            switch command {
            case .prepare(_, let transfer):
                crossShardNet += Int128(transfer.home == cluster ? -transfer.amount.value : transfer.amount.value)
            case .prepareMove(_, _, _, .into(_, let balance, _)):
                crossShardNet += Int128(balance)
            case .prepareMove(_, _, _, .out(let account, _)):
                // The balance an account left with is the one the canonical application recorded for its move.
                let left = run.canonical.ledger.datastore.first { $0.transaction == id }
                guard case .moveOut(account, let balance, _)? = left?.kind else {
                    found.append(
                        "committed move \(id) of \(account) left no move-out record in the canonical datastore")
                    continue
                }
                crossShardNet -= Int128(balance)
            default:
                break
            }
        }
        for (member, state) in run.replicas where state.ledger.state.total != created + crossShardNet {
            found.append(
                "\(member) holds \(state.ledger.state.total) in all; created \(created) plus committed cross-shard "
                    + "changes \(crossShardNet) make \(created + crossShardNet): money was created or destroyed")
        }
        found += agreementViolations(run)
        for (member, state) in run.replicas {
            found += state.prepareViolations(member: member)
            found += state.walViolations(member: member)
            found += state.datastoreViolations(member: member, run: run)
        }
        return found
    }

    /// The request id of a transaction's prepare (a cross-shard transfer's or a move's): a command's request id
    /// depends on its kind and transaction only.
    static func prepareRequestID(_ id: TransactionID) -> RequestID {
        LedgerCommand.prepare(id, Workload.anyTransfer).requestID
    }

    /// Money across the two clusters: a cross-shard transaction committed here was committed by the home's own
    /// decision on the terms the other participant reported (`decideCommit` with this cluster's terms, this cluster
    /// being the home), or by following the home's commit. The workload plays the other cluster `C2` and proposes those
    /// only as its replicas would (`Workload.otherPrepared`), so a commit here without one of them, or with other terms,
    /// is money the other cluster never moved.
    static func agreementViolations(_ run: FinalRun<LedgerMachine>) -> [String] {
        var found: [String] = []
        for id in Set(run.canonical.ledger.datastore.map(\.transaction)).sorted() {
            let prepare = run.submitted[prepareRequestID(id)]
            let home: String
            switch prepare {
            case .prepare(_, let transfer)?: home = transfer.home
            case .prepareMove(_, let moveHome, _, _)?: home = moveHome
            default: continue
            }
            if home == cluster {
                guard
                    case .decideCommit(_, let agreed)? = run.submitted[
                        LedgerCommand.decideCommit(id, agreed: .transfer(Workload.anyTransfer)).requestID]
                else {
                    found.append("\(id) committed at its home \(cluster) without the other participant's agreement")
                    continue
                }
                let own: TransactionTerms?
                switch prepare {
                case .prepare(_, let transfer)?: own = .transfer(transfer)
                case .prepareMove(_, _, _, .out(let account, let to))?:
                    let left = run.canonical.ledger.datastore.first { $0.transaction == id }
                    guard case .moveOut(account, let balance, _)? = left?.kind else { continue }
                    own = .move(account, balance: balance, source: cluster, target: to)
                default: own = nil
                }
                if agreed != own {
                    found.append(
                        "\(id) committed at \(cluster) as \(String(describing: own)); \(otherCluster) agreed on \(agreed)"
                    )
                }
            } else if run.submitted[LedgerCommand.follow(id, committed: true).requestID] == nil {
                found.append("\(id) committed at \(cluster) although its home \(home) never chose commit")
            }
        }
        return found
    }

    /// Every prepared transaction holds the locks of all its accounts (the converse is checked after every slot).
    func prepareViolations(member: ReplicaID) -> [String] {
        var found: [String] = []
        for (id, status) in ledger.state.transactions.sorted(by: { $0.key < $1.key }) {
            guard case .prepared(let prepared) = status else { continue }
            for account in prepared.accounts where ledger.state.locks[account] != id {
                found.append("\(member): prepared \(id) does not hold the lock on \(account)")
            }
        }
        return found
    }

    /// Each transaction's WAL reads `Start, Update*, (Commit | Abort)?` and agrees with its status; every
    /// transaction the state remembers has one, and every one the WAL leaves prepared is remembered (a prepared
    /// transaction is never forgotten).
    func walViolations(member: ReplicaID) -> [String] {
        enum Phase: Equatable {
            case started
            case ended(committed: Bool)
        }
        var phases: [TransactionID: Phase] = [:]
        var found: [String] = []
        for record in ledger.wal {
            let id = record.transaction
            switch (record.kind, phases[id]) {
            case (.start, nil): phases[id] = .started
            case (.update, .started?), (.moveOut, .started?), (.moveIn, .started?): break
            case (.commit, .started?): phases[id] = .ended(committed: true)
            case (.abort, .started?): phases[id] = .ended(committed: false)
            default: found.append("\(member): WAL record \(record) out of order for \(id)")
            }
        }
        for (id, status) in ledger.state.transactions.sorted(by: { $0.key < $1.key }) {
            let expected: Phase
            switch status {
            case .committed: expected = .ended(committed: true)
            case .aborted: expected = .ended(committed: false)
            case .prepared: expected = .started
            }
            if phases[id] != expected {
                found.append(
                    "\(member): \(id) is \(status) but its WAL says \(phases[id].map { "\($0)" } ?? "nothing")")
            }
        }
        for (id, phase) in phases.sorted(by: { $0.key < $1.key })
        where phase == .started && ledger.state.transactions[id] == nil {
            found.append("\(member): \(id) is prepared by its WAL but forgotten by the state")
        }
        return found
    }

    /// The datastore holds each committed transaction once, with the slot of its commit; every transfer or commit a
    /// client was told is committed is there, as the client sent it.
    func datastoreViolations(member: ReplicaID, run: FinalRun<LedgerMachine>) -> [String] {
        var found: [String] = []
        let committedByWAL = Set(ledger.wal.filter { $0.kind == .commit }.map(\.transaction))
        var records: [TransactionID: DatastoreRecord] = [:]
        for record in ledger.datastore {
            if records.updateValue(record, forKey: record.transaction) != nil {
                found.append("\(member): \(record.transaction) is in the datastore twice")
            }
            if !committedByWAL.contains(record.transaction) {
                found.append("\(member): datastore record \(record) of a transaction its WAL does not commit")
            }
            let chosenHere = run.chosen[record.slot]?.requests.contains { $0.command.transaction == record.transaction }
            if chosenHere != true {
                found.append("\(member): datastore record \(record) names a slot that does not hold its transaction")
            }
        }
        if records.count != committedByWAL.count {
            found.append(
                "\(member): \(committedByWAL.count) transactions committed by the WAL, \(records.count) in the datastore"
            )
        }
        for (id, answer) in run.acknowledged.sorted(by: { $0.key < $1.key }) where answer.result == .committed {
            let expected: DatastoreRecord.Kind
            switch run.submitted[id] {
            case .transfer(let transaction, let from, let to, let amount)?:
                guard records[transaction] != nil else {
                    found.append(
                        "\(member): transfer \(transaction) was acknowledged committed but is not in the datastore")
                    continue
                }
                expected = .transfer(from: from, to: to, amount: amount)
            case .commit(let transaction)?, .decideCommit(let transaction, _)?, .follow(let transaction, true)?:
                let prepare = run.submitted[Self.prepareRequestID(transaction)]
                guard let record = records[transaction] else {
                    found.append("\(member): commit of \(transaction) was acknowledged but is not in the datastore")
                    continue
                }
                switch prepare {
                case .prepare(_, let transfer)?:
                    expected = .crossShard([
                        transfer.home == LedgerMachine.cluster
                            ? AccountChange(account: transfer.from, delta: -transfer.amount.value)
                            : AccountChange(account: transfer.to, delta: transfer.amount.value)
                    ])
                case .prepareMove(_, _, _, .into(let account, let balance, let from))?:
                    expected = .moveIn(account, balance: balance, from: from)
                case .prepareMove(_, _, _, .out(let account, let to))?:
                    // The balance is the account's when the move was prepared; the state machine tests check it.
                    guard case .moveOut(account, let balance, to) = record.kind else {
                        found.append("\(member): datastore record \(record) is not the move the client sent")
                        continue
                    }
                    expected = .moveOut(account, balance: balance, to: to)
                default:
                    found.append("\(member): commit of \(transaction) was acknowledged without a prepare sent")
                    continue
                }
            default:
                continue
            }
            let record = records[run.submitted[id]!.transaction!]!
            if record.kind != expected {
                found.append("\(member): datastore record \(record) is not what the client sent")
            }
            if record.slot > answer.slot {
                found.append("\(member): datastore record \(record) is after the slot \(answer.slot) acknowledged")
            }
        }
        return found
    }

    // MARK: - Workload

    /// Each client sends, from the seed: intra-shard transfers between random accounts (some to itself, some with a
    /// foreign account, amounts above the balance), cross-shard prepares of whole transfers with the other cluster
    /// (some malformed: a wrong home, participants that leave this cluster out or name one cluster, accounts on the
    /// wrong side) and account moves, then decisions: mostly as the replicas would propose them (the home's commit on
    /// the terms the other cluster reported, or this cluster following the other cluster's decision), and also as a
    /// hostile client would (a bare commit or abort of a prepared transaction, a commit on terms the other cluster did
    /// not prepare, following a decision at the home, deciding where the other cluster is the home). Aborts of
    /// transactions never prepared here, late decisions against the earlier one, and re-sends of answered requests
    /// under their id. The first request of the run creates the accounts.
    ///
    /// The window (DESIGN §3): clients release their floor now and then (a few lie, releasing past transactions they
    /// still decide), re-send very old requests (answered `expired` once forgotten, never applied again), and die
    /// without releasing: the client then goes on under a new client id, above every id before it as time-ordered ids
    /// are, and one whose session was evicted does the same when it is answered `expired`.
    ///
    /// The workload plays the other cluster `C2`: for each cross-shard transaction it records what `C2` prepared (the
    /// client may have told it something else than this cluster) and, where `C2` is the home, what `C2` decided: it
    /// commits only when both clusters voted yes on the same terms, as its replicas would check.
    struct Workload: SimulatedWorkload {
        /// A prepare answered (or given up) whose decision the client has not sent yet.
        struct Undecided {
            var id: TransactionID
            /// This cluster's terms when it voted yes (nil: it voted no, or the prepare was given up).
            var terms: TransactionTerms?
            var homeHere: Bool
        }

        var accountsProposed = false
        /// Set once the creation is answered: only then may a move bring one of the shard's own accounts back.
        var accountsCreated = false
        var nextTransaction: [UInt64: UInt64] = [:]
        var undecided: [UInt64: [Undecided]] = [:]
        /// What the other cluster prepared for each cross-shard transaction (nil: it voted no). A move's source balance
        /// is filled in once this cluster, the source, answers.
        var otherPrepared: [TransactionID: TransactionTerms?] = [:]
        /// Decisions the client will send after their opposite was answered (a commit after an abort and so on).
        var lateDecisions: [UInt64: [LedgerCommand]] = [:]
        var followedByOpposite: Set<RequestID> = []
        /// Requests answered lately, for re-sends; and the re-sent ones, which were applied before.
        var answered: [UInt64: [Request<LedgerCommand>]] = [:]
        var resent: Set<RequestID> = []
        /// The first requests each client had answered, re-sent much later (mostly expired by then).
        var oldest: [UInt64: [Request<LedgerCommand>]] = [:]
        /// The client id each simulated client sends its transactions under now, and the client owning each id.
        var incarnation: [UInt64: UInt64] = [:]
        var owner: [UInt64: UInt64] = [:]
        var nextIncarnation: UInt64 = 100
        /// The highest floor each client id released.
        var released: [UInt64: UInt64] = [:]
        /// Sequences of requests sent and not answered or given up, per client id: the floor stays at or below them.
        var inFlight: [UInt64: [UInt64: Int]] = [:]

        init(clients: [UInt64]) {
            for client in clients {
                nextTransaction[client] = 1
                undecided[client] = []
                lateDecisions[client] = []
                answered[client] = []
                oldest[client] = []
                incarnation[client] = client
                owner[client] = client
            }
        }

        /// The lowest sequence client id `id` of `client` still waits on.
        func floor(_ client: UInt64, _ id: UInt64) -> UInt64 {
            var waiting = (inFlight[id] ?? [:]).keys.map { $0 }
            waiting += undecided[client]!.filter { $0.id.client == id }.map(\.id.sequence)
            waiting += lateDecisions[client]!.compactMap { $0.transaction }.filter { $0.client == id }.map(\.sequence)
            return waiting.min() ?? (incarnation[client] == id ? nextTransaction[client]! : .max >> 4)
        }

        /// Starts a new client id for `client`: a client that died and came back, or whose session was evicted.
        mutating func reincarnate(_ client: UInt64) {
            incarnation[client] = nextIncarnation
            owner[nextIncarnation] = client
            nextIncarnation += 1
            nextTransaction[client] = 1
        }

        mutating func sent(_ request: Request<LedgerCommand>) -> Request<LedgerCommand> {
            if let id = request.command.transaction { inFlight[id.client, default: [:]][id.sequence, default: 0] += 1 }
            return request
        }

        mutating func done(_ request: Request<LedgerCommand>) {
            guard let id = request.command.transaction, let count = inFlight[id.client]?[id.sequence] else { return }
            inFlight[id.client]![id.sequence] = count > 1 ? count - 1 : nil
        }

        static func request(_ command: LedgerCommand) -> Request<LedgerCommand> {
            Request(id: LedgerMachine.requestID(for: command), command: command)
        }

        mutating func nextRequest(client: UInt64, random: inout SeededRandom) -> Request<LedgerCommand>? {
            guard let request = chooseRequest(client: client, random: &random) else { return nil }
            return sent(request)
        }

        mutating func chooseRequest(client: UInt64, random: inout SeededRandom) -> Request<LedgerCommand>? {
            if !accountsProposed {
                accountsProposed = true
                return Self.request(.createAccounts([LedgerMachine.accounts], balance: LedgerMachine.initialBalance))
            }
            let current = incarnation[client]!
            switch Int.random(in: 0..<200, using: &random) {
            case 0..<8:
                // The floor: mostly the true one; one time in ten a lie past the transactions still undecided. Each
                // is sent once (a release's request id is its client and floor).
                let lie = Int.random(in: 0..<10, using: &random) == 0
                let floor = lie ? nextTransaction[client]! : floor(client, current)
                guard floor > released[current, default: 0] else { break }
                released[current] = floor
                return Self.request(.release(client: current, floor: floor))
            case 8..<10 where !oldest[client]!.isEmpty:
                let old = oldest[client]![Int.random(in: 0..<oldest[client]!.count, using: &random)]
                resent.insert(old.id)
                return old
            case 10:
                reincarnate(client)  // Died without releasing: its session lingers until evicted.
            default:
                break
            }
            let roll = Int.random(in: 0..<100, using: &random)
            if roll < 40, !undecided[client]!.isEmpty {
                let transaction = undecided[client]!.removeFirst()
                let decision = Self.request(decision(for: transaction, random: &random))
                if Int.random(in: 0..<100, using: &random) < 15 { followedByOpposite.insert(decision.id) }
                return decision
            }
            if roll < 45, !lateDecisions[client]!.isEmpty {
                return Self.request(lateDecisions[client]!.removeFirst())
            }
            if roll < 48, !answered[client]!.isEmpty {
                let earlier = answered[client]![Int.random(in: 0..<answered[client]!.count, using: &random)]
                resent.insert(earlier.id)
                return earlier
            }
            let id = TransactionID(client: incarnation[client]!, sequence: nextTransaction[client]!)
            nextTransaction[client]! += 1
            let kind = Int.random(in: 0..<100, using: &random)
            if kind < 60 {
                let from = Self.account(random: &random)
                let to = Self.account(random: &random)
                let amount = Amount(Int64.random(in: 1...LedgerMachine.amountMax, using: &random))
                return Self.request(.transfer(id, from: from, to: to, amount: amount))
            }
            if kind < 90 {
                return Self.request(.prepare(id, crossShardTransfer(id, random: &random)))
            }
            if kind < 95 {
                // An account move: one of the shard's accounts leaves (this cluster is the home), or an account of
                // the other cluster (sometimes one of ours) arrives with a balance that may be below the minimum.
                let participants = [LedgerMachine.cluster, LedgerMachine.otherCluster]
                if Bool.random(using: &random) {
                    let part = MovePart.out(Self.account(random: &random), to: LedgerMachine.otherCluster)
                    // The other cluster prepares the arrival once this cluster answers with the balance (`answered`);
                    // until then it holds nothing.
                    otherPrepared[id] = .some(nil)
                    return Self.request(
                        .prepareMove(id, home: LedgerMachine.cluster, participants: participants, part: part))
                }
                let account =
                    accountsCreated && Int.random(in: 0..<4, using: &random) == 0
                    ? Self.account(random: &random) : LedgerMachine.arrivals.randomElement(using: &random)!
                let balance = Int64.random(in: -1...LedgerMachine.amountMax, using: &random)
                let part = MovePart.into(account, balance: balance, from: LedgerMachine.otherCluster)
                // The source locked the account with this balance (or, a hostile client, with another).
                let locked = Int.random(in: 0..<10, using: &random) == 0 ? balance + 1 : balance
                otherPrepared[id] = .some(
                    .move(account, balance: locked, source: LedgerMachine.otherCluster, target: LedgerMachine.cluster))
                return Self.request(
                    .prepareMove(id, home: LedgerMachine.otherCluster, participants: participants, part: part))
            }
            return Self.request(.abort(id))  // Never prepared here: the abort is remembered, to refuse a late prepare.
        }

        /// A cross-shard transfer between one of this shard's accounts and the other cluster's account, with the home
        /// the cluster of `from`; sometimes malformed the way a hostile client would send it. Records what the other
        /// cluster prepared: the same transfer (it votes no one time in five), or, one time in ten, a transfer of
        /// another amount the client told it instead.
        mutating func crossShardTransfer(_ id: TransactionID, random: inout SeededRandom) -> CrossShardTransfer {
            let here = Self.account(random: &random)
            let there = LedgerMachine.foreignAccount
            let amount = Amount(Int64.random(in: 1...LedgerMachine.amountMax, using: &random))
            let homeHere = Bool.random(using: &random)
            let (cluster, other) = (LedgerMachine.cluster, LedgerMachine.otherCluster)
            var transfer = CrossShardTransfer(
                from: homeHere ? here : there, to: homeHere ? there : here, amount: amount,
                home: homeHere ? cluster : other, participants: [cluster, other])
            switch Int.random(in: 0..<40, using: &random) {
            case 0: transfer.home = homeHere ? other : cluster
            case 1: transfer.participants = [other, "C3"]
            case 2: transfer.participants = [transfer.home]
            case 3: transfer.participants = [cluster, cluster]
            case 4: swap(&transfer.from, &transfer.to)
            case 5: transfer.to = transfer.from
            default: break
            }
            var toldOther = transfer
            if Int.random(in: 0..<10, using: &random) == 0 { toldOther.amount = Amount(amount.value + 1) }
            otherPrepared[id] = .some(Int.random(in: 0..<5, using: &random) == 0 ? nil : .transfer(toldOther))
            return transfer
        }

        /// The decision a client's transaction gets: what the replicas would propose (mostly), or a hostile client's.
        mutating func decision(for transaction: Undecided, random: inout SeededRandom) -> LedgerCommand {
            let id = transaction.id
            let other = otherPrepared[id] ?? nil
            let hostile = Int.random(in: 0..<100, using: &random) < 15
            if transaction.homeHere {
                if hostile {
                    switch Int.random(in: 0..<3, using: &random) {
                    case 0: return .commit(id)
                    case 1: return .follow(id, committed: true)
                    default:
                        // A commit on terms the other cluster did not report, forged.
                        if case .transfer(var forged)? = transaction.terms {
                            forged.amount = Amount(forged.amount.value + 1)
                            return .decideCommit(id, agreed: .transfer(forged))
                        }
                        return .commit(id)
                    }
                }
                // The home's replicas commit on the terms the other cluster reported, if it prepared; else abort.
                if let other, transaction.terms != nil, Int.random(in: 0..<100, using: &random) < 75 {
                    return .decideCommit(id, agreed: other)
                }
                return .abort(id)
            }
            // The other cluster is the home: it commits only when both voted yes on the same terms.
            let otherCommits =
                transaction.terms != nil && transaction.terms == other && Int.random(in: 0..<100, using: &random) < 70
            if hostile {
                switch Int.random(in: 0..<3, using: &random) {
                case 0: return .commit(id)
                case 1: return .abort(id)
                default: return .decideCommit(id, agreed: transaction.terms ?? other ?? .transfer(Self.anyTransfer))
                }
            }
            return .follow(id, committed: otherCommits)
        }

        static let anyTransfer = CrossShardTransfer(
            from: LedgerMachine.foreignAccount, to: AccountID(1), amount: Amount(1), home: LedgerMachine.otherCluster,
            participants: [LedgerMachine.cluster, LedgerMachine.otherCluster])

        /// Mostly one of the shard's accounts, sometimes one that lives elsewhere.
        static func account(random: inout SeededRandom) -> AccountID {
            let roll = Int.random(in: 0..<50, using: &random)
            if roll == 0 { return LedgerMachine.foreignAccount }
            if roll == 1 { return LedgerMachine.arrivals.randomElement(using: &random)! }
            return AccountID(
                UInt64.random(
                    in: LedgerMachine.accounts.lowerBound.value...LedgerMachine.accounts.upperBound.value,
                    using: &random))
        }

        /// Transfers and prepares may be given up after a definite `noQuorum`; account creation and decisions are
        /// retried until applied, as a coordinator must; a re-send was applied before, so it is never given up.
        func abandons(_ request: Request<LedgerCommand>) -> Bool {
            guard !resent.contains(request.id) else { return false }
            switch request.command {
            case .transfer, .prepare, .prepareMove, .release: return true
            case .commit, .abort, .decideCommit, .follow, .createAccounts, .delivered: return false
            }
        }

        mutating func expired(_ request: Request<LedgerCommand>, result: CommandResult) {
            done(request)
            // The session of its client id was evicted: go on under a new one (a re-send of an old request may also
            // be expired; that says nothing of the current session).
            if let id = request.command.transaction, !resent.contains(request.id), let client = owner[id.client],
                incarnation[client] == id.client
            {
                reincarnate(client)
            }
        }

        mutating func answered(_ request: Request<LedgerCommand>, result: CommandResult) {
            if case .createAccounts = request.command { accountsCreated = true }
            done(request)
            guard let id = request.command.transaction?.client, let client = owner[id] else { return }
            answered[client]!.append(request)
            if answered[client]!.count > 8 { answered[client]!.removeFirst() }
            if oldest[client]!.count < 4 { oldest[client]!.append(request) }
            switch request.command {
            case .prepare(let id, let transfer) where !resent.contains(request.id):
                let terms: TransactionTerms? = result == .preparedYes ? .transfer(transfer) : nil
                undecided[client]!.append(
                    Undecided(id: id, terms: terms, homeHere: transfer.home == LedgerMachine.cluster))
            case .prepareMove(let id, let home, _, let part) where !resent.contains(request.id):
                var terms: TransactionTerms?
                switch (part, result) {
                case (.out(let account, let to), .preparedMove(let balance)):
                    terms = .move(account, balance: balance, source: LedgerMachine.cluster, target: to)
                    // The target prepares the arrival with the balance the source reported (a hostile client: another).
                    // (Answers carry no random source: the choice is a hash of the id, the same in every replay.)
                    let told = StableDigest.mix(id.client ^ id.sequence) % 10 == 0 ? balance + 1 : balance
                    otherPrepared[id] = .some(
                        .move(account, balance: told, source: LedgerMachine.cluster, target: to))
                case (.into(let account, let balance, let from), .preparedYes):
                    terms = .move(account, balance: balance, source: from, target: LedgerMachine.cluster)
                default:
                    terms = nil
                }
                undecided[client]!.append(Undecided(id: id, terms: terms, homeHere: home == LedgerMachine.cluster))
            case .commit(let id), .decideCommit(let id, _), .follow(let id, true):
                if followedByOpposite.remove(request.id) != nil { lateDecisions[client]!.append(.abort(id)) }
                // The home's replicas, once the other cluster applied the commit (as it does, sooner or later).
                if case .decideCommit = request.command, result == .committed {
                    lateDecisions[client]!.append(.delivered(id))
                }
            case .abort(let id), .follow(let id, false):
                if followedByOpposite.remove(request.id) != nil { lateDecisions[client]!.append(.commit(id)) }
            default:
                break
            }
        }

        /// A prepare given up was never applied: the client aborts it (an abort of a transaction unknown here).
        mutating func abandoned(_ request: Request<LedgerCommand>) {
            done(request)
            switch request.command {
            case .prepare(let id, let transfer):
                undecided[owner[id.client]!]!.append(
                    Undecided(id: id, terms: nil, homeHere: transfer.home == LedgerMachine.cluster))
            case .prepareMove(let id, let home, _, _):
                undecided[owner[id.client]!]!.append(
                    Undecided(id: id, terms: nil, homeHere: home == LedgerMachine.cluster))
            default:
                break
            }
        }
    }
}
