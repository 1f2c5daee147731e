import Paxos

/// The replicated state of one cluster's shard: balances, the lock table and every transaction seen.
///
/// The state knows which cluster it is, so that each participant of a cross-shard transaction derives and checks its
/// own part of it, and applies a decision only from where it may come: the home decides, after every other participant
/// reported the same terms (`decideCommit`); the others follow the home (`follow`). Whatever commands a client sends,
/// no cluster credits what its home did not debit (DESIGN §5.5).
///
/// Applying is deterministic and identical on every replica: the same commands in the same order give the same
/// state, the same `Effects` and the same results. Invariants (checked by the tests and the simulator):
/// - no balance is below `minBalance`;
/// - an account is locked only by a transaction recorded as prepared, and that transaction's changes (or move) touch
///   it; a locked account exists, unless a prepared move into this cluster reserves it;
/// - an account moved out (`movedOut`) has no balance here;
/// - a transaction id takes effect at most once: a retried command returns the recorded result, changing nothing; the
///   same id with other content is refused (`openings` keeps what each id was first used for); a command for a
///   transaction no longer remembered (below its client's floor, or of a retired client) is `expired`, never applied;
/// - what is remembered stays bounded (`WindowLimits`): per client, the transactions at or above its floor; pinned
///   records (prepared, or committed here as home and not yet `delivered`) stay until they are not pinned.
public struct LedgerState: Hashable, Sendable {
    /// A transaction as this cluster knows it.
    public enum Status: Hashable, Sendable {
        /// Intra-shard transfer applied, or cross-shard transaction committed.
        case committed
        /// Intra-shard transfer rejected, or cross-shard transaction aborted (a no vote, or an abort).
        case aborted(AbortReason)
        /// Cross-shard transaction prepared here (vote yes): its accounts are locked until commit or abort.
        case prepared(Prepared)

        /// Committed or aborted.
        public var isFinal: Bool {
            if case .prepared = self { return false }
            return true
        }
    }

    /// A prepared cross-shard transaction: what commit will do and who decides.
    public struct Prepared: Hashable, Sendable {
        public var home: String
        public var participants: [String]
        public var changes: [AccountChange]
        /// This cluster's part of an account move; `changes` is empty then.
        public var move: MovePart?
        /// The slot whose prepare locked the accounts (recovery measures how long a transaction stays in doubt).
        public var slot: Slot

        public init(home: String, participants: [String], changes: [AccountChange], move: MovePart? = nil, slot: Slot) {
            self.home = home
            self.participants = participants
            self.changes = changes
            self.move = move
            self.slot = slot
        }

        /// Every account the transaction locks here.
        public var accounts: [AccountID] { move.map { [$0.account] } ?? changes.map(\.account) }
    }

    /// The cluster whose shard this is.
    public let cluster: String
    public let minBalance: Int64
    public private(set) var balances: [AccountID: Int64] = [:]
    public private(set) var locks: [AccountID: TransactionID] = [:]
    public private(set) var transactions: [TransactionID: Status] = [:]
    /// The command that opened each transaction (a transfer, a prepare or a move's prepare); absent for a transaction
    /// an abort recorded before any prepare arrived.
    public private(set) var openings: [TransactionID: LedgerCommand] = [:]
    /// Accounts moved out of this cluster by a rebalance, with the cluster each went to.
    public private(set) var movedOut: [AccountID: String] = [:]
    /// What is remembered of each client that has transactions here (DESIGN §3).
    public private(set) var sessions: [UInt64: Session] = [:]
    /// Every client id up to this one is retired unless it has a session: a session was evicted at this id, and client
    /// ids are time-ordered, so a command from a retired client without a session is `expired`.
    public private(set) var retiredClients: UInt64 = 0
    /// Transactions this cluster committed as their home whose other participant was not yet seen to apply the commit:
    /// the decision is kept for it (`delivered` ends that).
    public private(set) var undelivered: Set<TransactionID> = []
    public let limits: WindowLimits
    /// The sequences of each session's remembered transactions (derived from `transactions`; the index that lets a
    /// release or an eviction find a client's records).
    private var remembered: [UInt64: Set<UInt64>] = [:]

    /// What the state remembers of one client besides its transactions.
    public struct Session: Hashable, Sendable {
        /// The client's acknowledged floor: it waits on none of its transactions below this sequence, and this cluster
        /// remembers none of them that is not pinned.
        public var floor: UInt64
        /// The slot of the client's last command here: the session idle longest is evicted first.
        public var lastSlot: Slot

        public init(floor: UInt64, lastSlot: Slot) {
            self.floor = floor
            self.lastSlot = lastSlot
        }
    }

    public init(cluster: String, minBalance: Int64, limits: WindowLimits = .standard) {
        self.cluster = cluster
        self.minBalance = minBalance
        self.limits = limits
    }

    /// Total money held by the accounts of this shard. In `Int128`: each balance fits in `Int64` but their sum may
    /// not (many accounts near the limit), and an audit must never trap; `Int64.max` times 2^64 accounts still fits.
    public var total: Int128 { balances.values.reduce(0) { $0 + Int128($1) } }

    /// What one command changed, for the storage layer to write in the same transaction as the applied slot.
    public struct Effects: Hashable, Sendable {
        public var result: CommandResult
        /// The slot that applied the command (the history rows carry it).
        public var slot: Slot = 0
        /// New balances of the accounts this command changed (created accounts included).
        public var balances: [AccountID: Int64] = [:]
        /// Accounts locked (with their transaction) and unlocked by this command.
        public var locked: [AccountID: TransactionID] = [:]
        public var unlocked: [AccountID] = []
        /// Accounts that left (the cluster they went to; their balance is gone) or arrived (nil) by a move.
        public var movedOut: [AccountID: String?] = [:]
        /// The transaction's new status, when it changed.
        public var transaction: TransactionUpdate?
        public var wal: [WALRecord] = []
        public var datastore: DatastoreRecord?
        /// Transactions forgotten by this command, after `transaction` was updated.
        public var forgotten: [TransactionID] = []
        /// Sessions changed by this command (nil: evicted), and the new `retiredClients` when it rose.
        public var sessions: [UInt64: Session?] = [:]
        public var retiredClients: UInt64?
        /// Transactions that became (true) or stopped being (false) `undelivered`.
        public var undelivered: [TransactionID: Bool] = [:]

        init(result: CommandResult) {
            self.result = result
        }
    }

    /// A transaction's new status, with the command that opened it.
    public struct TransactionUpdate: Hashable, Sendable {
        public var id: TransactionID
        public var status: Status
        public var opening: LedgerCommand?

        public init(id: TransactionID, status: Status, opening: LedgerCommand?) {
            self.id = id
            self.status = status
            self.opening = opening
        }
    }

    /// Applies one chosen command. `slot` is the slot that chose it and `ballot` the ballot of the leader that
    /// proposed it (`ApplyStep.slot`'s, the same on every replica); the datastore keeps both.
    public mutating func apply(_ command: LedgerCommand, slot: Slot, ballot: Ballot) -> Effects {
        var effects = windowed(command, slot: slot, ballot: ballot)
        effects.slot = slot
        return effects
    }

    /// Applies a command within the window: a command for a forgotten transaction is expired; any other updates its
    /// client's session, and what nobody needs any more is forgotten.
    private mutating func windowed(_ command: LedgerCommand, slot: Slot, ballot: Ballot) -> Effects {
        guard let id = command.transaction else {
            if case .release(let client, let floor) = command { return release(client, below: floor, slot: slot) }
            return perform(command, slot: slot, ballot: ballot)
        }
        if let reason = expiry(of: id) { return Effects(result: .expired(reason)) }
        let existed = transactions[id] != nil
        var effects = perform(command, slot: slot, ballot: ballot)
        settle(id, existed: existed, slot: slot, effects: &effects)
        return effects
    }

    private mutating func perform(_ command: LedgerCommand, slot: Slot, ballot: Ballot) -> Effects {
        switch command {
        case .transfer(let id, let from, let to, let amount):
            return transfer(id, from: from, to: to, amount: amount, slot: slot, ballot: ballot)
        case .prepare(let id, let transfer):
            return prepare(id, transfer, slot: slot)
        case .prepareMove(let id, let home, let participants, let part):
            return prepareMove(id, home: home, participants: participants, part: part, slot: slot)
        case .commit(let id):
            return clientCommit(id)
        case .abort(let id):
            return abort(id)
        case .decideCommit(let id, let agreed):
            return decideCommit(id, agreed: agreed, slot: slot, ballot: ballot)
        case .follow(let id, let committed):
            return follow(id, committed: committed, slot: slot, ballot: ballot)
        case .createAccounts(let ranges, let balance):
            return createAccounts(ranges, balance: balance)
        case .delivered(let id):
            return deliver(id)
        case .release:
            preconditionFailure("a release is applied by apply")
        }
    }

    /// The result a transaction recorded, for answering a retried command.
    public func recordedResult(of id: TransactionID) -> CommandResult? {
        switch transactions[id] {
        case .committed: return .committed
        case .aborted(let reason): return .aborted(reason)
        case .prepared(let prepared):
            if case .out(let account, _) = prepared.move { return .preparedMove(balance: balances[account]!) }
            return .preparedYes
        case nil: return nil
        }
    }

    /// What this cluster knows of a transaction, for `TransactionStatus` and for the other participants.
    public enum Report: Hashable, Sendable {
        case committed
        case aborted(AbortReason)
        /// Prepared here and undecided; `terms` as this cluster prepared them.
        case prepared(TransactionTerms, home: String)
        case unknown
        /// Below its client's window here, and not remembered: decided long ago (a record that could still change is
        /// pinned), its fate is in the history (PrintDatastore, the WAL).
        case expired

        /// Committed or aborted: final wherever it is read.
        public var isDecided: Bool {
            switch self {
            case .committed, .aborted: return true
            case .prepared, .unknown, .expired: return false
            }
        }

        /// Committed, aborted or expired: it never changes, whichever replica reports it (a home's delivery check
        /// acts only on these).
        public var isFinal: Bool { isDecided || self == .expired }
    }

    public func report(of id: TransactionID) -> Report {
        switch transactions[id] {
        case .committed: return .committed
        case .aborted(let reason): return .aborted(reason)
        case .prepared(let prepared): return .prepared(terms(of: id)!, home: prepared.home)
        case nil: return expiry(of: id) == nil ? .unknown : .expired
        }
    }

    /// The terms of a transaction prepared here, computed from what opened it: the home and the other participant
    /// compute equal terms exactly when they prepared the same transaction (a move's source contributes the balance it
    /// locked, its target the balance it was told).
    public func terms(of id: TransactionID) -> TransactionTerms? {
        guard case .prepared = transactions[id] else { return nil }
        switch openings[id] {
        case .prepare(_, let transfer)?:
            return .transfer(transfer)
        case .prepareMove(_, let home, _, .out(let account, let to))?:
            return .move(account, balance: balances[account]!, source: home, target: to)
        case .prepareMove(_, _, _, .into(let account, let balance, let from))?:
            return .move(account, balance: balance, source: from, target: cluster)
        default:
            return nil
        }
    }

    /// How a replica must handle a client's command before it proposes it: most go to the log as they are; a commit at
    /// the home of a prepared transaction waits for the other participants to confirm the same terms; a commit or abort
    /// at another participant of a prepared transaction waits for the home's decision. From this replica's applied
    /// state, which may lag: the ledger refuses a command that arrives in the log on the wrong path.
    public enum Route: Hashable, Sendable {
        case propose
        /// Ask each of `participants` for its report; propose `decideCommit(id, agreed: terms)` if all report `terms`.
        case confirm(TransactionID, terms: TransactionTerms, participants: [String])
        /// Ask `home` for its decision; propose `follow` once it has one. `aborting`: a client's abort, which may
        /// have the home decide now (it may abort at the home itself).
        case learn(TransactionID, home: String, aborting: Bool)
    }

    public func route(_ command: LedgerCommand) -> Route {
        switch command {
        case .commit(let id):
            guard case .prepared(let prepared) = transactions[id] else { return .propose }
            guard prepared.home == cluster else { return .learn(id, home: prepared.home, aborting: false) }
            return .confirm(id, terms: terms(of: id)!, participants: prepared.participants.filter { $0 != cluster })
        case .abort(let id):
            guard case .prepared(let prepared) = transactions[id], prepared.home != cluster else { return .propose }
            return .learn(id, home: prepared.home, aborting: true)
        default:
            return .propose
        }
    }

    // MARK: - Commands

    /// The answer to a command that opens a transaction whose id is known here: the recorded result when it is the
    /// same command (a retry), a refusal naming both when it is another. Nil for a new id.
    private func repeated(_ command: LedgerCommand, _ id: TransactionID) -> Effects? {
        guard let recorded = recordedResult(of: id) else { return nil }
        if let first = openings[id], first != command {
            return Effects(
                result: .refused(
                    "transaction \(id) was first used for \(first.summary); this request is \(command.summary): one id "
                        + "names one transaction"))
        }
        return Effects(result: recorded)
    }

    private mutating func transfer(
        _ id: TransactionID, from: AccountID, to: AccountID, amount: Amount, slot: Slot, ballot: Ballot
    ) -> Effects {
        let command = LedgerCommand.transfer(id, from: from, to: to, amount: amount)
        if let answer = repeated(command, id) { return answer }
        let reason: AbortReason?
        if from == to {
            reason = .invalid("transfer from \(from) to itself")
        } else {
            reason = refusal(for: [
                AccountChange(account: from, delta: -amount.value),
                AccountChange(account: to, delta: amount.value),
            ])
        }
        var effects: Effects
        if let reason {
            effects = Effects(result: .aborted(reason))
            effects.wal = [WALRecord(transaction: id, kind: .start), WALRecord(transaction: id, kind: .abort)]
            record(id, .aborted(reason), opening: command, in: &effects)
            return effects
        }
        effects = Effects(result: .committed)
        effects.wal.append(WALRecord(transaction: id, kind: .start))
        adjust(from, by: -amount.value, transaction: id, effects: &effects)
        adjust(to, by: amount.value, transaction: id, effects: &effects)
        effects.wal.append(WALRecord(transaction: id, kind: .commit))
        effects.datastore = DatastoreRecord(
            transaction: id, kind: .transfer(from: from, to: to, amount: amount), slot: slot, ballot: ballot)
        record(id, .committed, opening: command, in: &effects)
        return effects
    }

    private mutating func prepare(_ id: TransactionID, _ transfer: CrossShardTransfer, slot: Slot) -> Effects {
        let command = LedgerCommand.prepare(id, transfer)
        if let answer = repeated(command, id) { return answer }
        let isHome = transfer.home == cluster
        let change =
            isHome
            ? AccountChange(account: transfer.from, delta: -transfer.amount.value)
            : AccountChange(account: transfer.to, delta: transfer.amount.value)
        let reason: AbortReason?
        if transfer.from == transfer.to {
            reason = .invalid("a transfer from \(transfer.from) to itself")
        } else if transfer.participants.count != 2 || transfer.participants[0] == transfer.participants[1] {
            reason = .invalid(
                "a cross-shard transfer has two participants, the clusters of its accounts; this one names "
                    + "\(transfer.participants)")
        } else if !transfer.participants.contains(cluster) {
            reason = .invalid("\(cluster) is not among the participants \(transfer.participants)")
        } else if !transfer.participants.contains(transfer.home) {
            reason = .invalid("the home \(transfer.home) is not among the participants \(transfer.participants)")
        } else if balances[change.account] == nil {
            // The home debits `from`, which must be here; the other participant credits `to`, which must be here.
            reason = absence(of: change.account)
        } else if isHome, balances[transfer.to] != nil {
            // Both accounts are here (the client's catalog is out of date: one of them moved here): an intra-shard
            // transfer, which the client sends once it knows where the account lives.
            reason = .moved(transfer.to, to: cluster)
        } else if !isHome, balances[transfer.from] != nil {
            // `from` lives here, so this cluster is the home: the client is told so, as for a moved account.
            reason = .moved(transfer.from, to: cluster)
        } else {
            reason = refusal(for: [change])
        }
        var effects = Effects(result: reason.map { .aborted($0) } ?? .preparedYes)
        effects.wal.append(WALRecord(transaction: id, kind: .start))
        if let reason {
            effects.wal.append(WALRecord(transaction: id, kind: .abort))
            record(id, .aborted(reason), opening: command, in: &effects)
            return effects
        }
        let old = balances[change.account]!
        locks[change.account] = id
        effects.locked[change.account] = id
        effects.wal.append(WALRecord(transaction: id, kind: .update(change.account, old: old, new: old + change.delta)))
        let prepared = Prepared(
            home: transfer.home, participants: transfer.participants, changes: [change], slot: slot)
        record(id, .prepared(prepared), opening: command, in: &effects)
        return effects
    }

    /// A client's commit applied as it is: it answers what is decided and decides nothing (`route` sends a commit of a
    /// prepared transaction on its way to `decideCommit` or `follow`).
    private func clientCommit(_ id: TransactionID) -> Effects {
        switch transactions[id] {
        case .committed:
            return Effects(result: .committed)
        case .aborted:
            return Effects(result: .refused("\(id) was aborted; it cannot commit"))
        case nil:
            return Effects(result: .refused("\(id) is unknown here; commit needs a prepare first"))
        case .prepared(let prepared) where prepared.home == cluster:
            return Effects(
                result: .refused(
                    "\(id) is prepared and undecided; \(cluster), its home, commits it only once every other "
                        + "participant confirms the same terms: send the commit again"))
        case .prepared(let prepared):
            return Effects(
                result: .refused(
                    "\(id) is prepared here and follows its home \(prepared.home), which had not chosen commit: send "
                        + "the commit again once the home committed"))
        }
    }

    /// The home's commit, once every other participant reported `agreed` prepared.
    private mutating func decideCommit(
        _ id: TransactionID, agreed: TransactionTerms, slot: Slot, ballot: Ballot
    ) -> Effects {
        guard case .prepared(let prepared) = transactions[id] else { return clientCommit(id) }
        guard prepared.home == cluster else {
            return Effects(result: .refused("\(cluster) is not the home of \(id); it follows \(prepared.home)"))
        }
        let own = terms(of: id)!
        guard own == agreed else {
            return Effects(
                result: .refused("\(id) was prepared here as a \(own), but the participants agreed on a \(agreed)"))
        }
        return commitPrepared(id, prepared, slot: slot, ballot: ballot)
    }

    /// A participant other than the home applies the home's decision.
    private mutating func follow(_ id: TransactionID, committed: Bool, slot: Slot, ballot: Ballot) -> Effects {
        switch transactions[id] {
        case .prepared(let prepared) where prepared.home == cluster:
            return Effects(result: .refused("\(cluster) is the home of \(id): it decides and follows no one"))
        case .prepared(let prepared):
            return committed ? commitPrepared(id, prepared, slot: slot, ballot: ballot) : abortPrepared(id, prepared)
        case .committed, .aborted, nil:
            // A decided transaction keeps its decision; an abort of one never prepared here is recorded.
            return committed ? clientCommit(id) : abort(id)
        }
    }

    private mutating func commitPrepared(_ id: TransactionID, _ prepared: Prepared, slot: Slot, ballot: Ballot)
        -> Effects
    {
        var effects = Effects(result: .committed)
        if let move = prepared.move {
            effects = commitMove(id, move, slot: slot, ballot: ballot)
        } else {
            for change in prepared.changes {
                // The prepare checked the debit and nothing else could touch the locked account since.
                adjust(change.account, by: change.delta, transaction: id, effects: &effects, logged: false)
                locks[change.account] = nil
                effects.unlocked.append(change.account)
            }
            effects.wal.append(WALRecord(transaction: id, kind: .commit))
            effects.datastore = DatastoreRecord(
                transaction: id, kind: .crossShard(prepared.changes), slot: slot, ballot: ballot)
            record(id, .committed, in: &effects)
        }
        if prepared.home == cluster {
            // The other participant, still prepared, may ask for the decision until it is seen to have applied it.
            undelivered.insert(id)
            effects.undelivered[id] = true
        }
        return effects
    }

    private mutating func deliver(_ id: TransactionID) -> Effects {
        guard undelivered.remove(id) != nil else {
            return Effects(result: .refused("\(id) is not a commit of \(cluster) awaiting delivery"))
        }
        var effects = Effects(result: .committed)
        effects.undelivered[id] = false
        return effects
    }

    private mutating func abortPrepared(_ id: TransactionID, _ prepared: Prepared) -> Effects {
        var effects = Effects(result: .aborted(.aborted))
        for account in prepared.accounts {
            locks[account] = nil
            effects.unlocked.append(account)
        }
        effects.wal.append(WALRecord(transaction: id, kind: .abort))
        record(id, .aborted(.aborted), in: &effects)
        return effects
    }

    private mutating func abort(_ id: TransactionID) -> Effects {
        switch transactions[id] {
        case .aborted(let reason):
            return Effects(result: .aborted(reason))
        case .committed:
            return Effects(result: .refused("\(id) is committed; it cannot abort"))
        case .prepared(let prepared) where prepared.home != cluster:
            return Effects(
                result: .refused(
                    "\(id) is prepared here and follows its home \(prepared.home): abort it there, and this cluster "
                        + "learns the decision"))
        case .prepared(let prepared):
            return abortPrepared(id, prepared)
        case nil:
            // Remember the abort so that a prepare or commit arriving late is refused.
            var effects = Effects(result: .aborted(.aborted))
            effects.wal = [WALRecord(transaction: id, kind: .start), WALRecord(transaction: id, kind: .abort)]
            record(id, .aborted(.aborted), in: &effects)
            return effects
        }
    }

    private mutating func prepareMove(
        _ id: TransactionID, home: String, participants: [String], part: MovePart, slot: Slot
    ) -> Effects {
        let command = LedgerCommand.prepareMove(id, home: home, participants: participants, part: part)
        if let answer = repeated(command, id) { return answer }
        let account = part.account
        var reason: AbortReason?
        let other: String
        switch part {
        case .out(_, let to): other = to
        case .into(_, _, let from): other = from
        }
        if participants.count != 2 || !participants.contains(home) || !participants.contains(other) {
            reason = .invalid("a move names the participants \(participants) and the home \(home); it has two")
        } else if !participants.contains(cluster) {
            reason = .invalid("\(cluster) is not among the participants \(participants)")
        } else if case .out = part, home != cluster {
            reason = .invalid("a move of \(account) out of \(cluster) has \(cluster) as its home, not \(home)")
        } else if case .into = part, home == cluster {
            reason = .invalid("a move of \(account) into \(cluster) has its source as the home, not \(cluster)")
        } else if case .out(_, let to) = part, to == home {
            reason = .invalid("a move of \(account) from \(home) to itself")
        } else if case .into(_, _, let from) = part, from != home {
            reason = .invalid("a move of \(account) into this cluster must have its source \(from) as the home")
        } else if case .into(_, let balance, _) = part, balance < minBalance {
            reason = .invalid(
                "account \(account) would arrive with balance \(balance), below the minimum \(minBalance)")
        } else if let owner = locks[account] {
            reason = lockRefusal(account, owner: owner)
        } else if case .out = part {
            reason = balances[account] == nil ? absence(of: account) : nil
        } else if balances[account] != nil {
            reason = .invalid("account \(account) already exists here")
        }
        var effects = Effects(result: .preparedYes)
        effects.wal.append(WALRecord(transaction: id, kind: .start))
        if let reason {
            effects.result = .aborted(reason)
            effects.wal.append(WALRecord(transaction: id, kind: .abort))
            record(id, .aborted(reason), opening: command, in: &effects)
            return effects
        }
        locks[account] = id
        effects.locked[account] = id
        switch part {
        case .out(_, let to):
            let balance = balances[account]!
            effects.result = .preparedMove(balance: balance)
            effects.wal.append(WALRecord(transaction: id, kind: .moveOut(account, balance: balance, to: to)))
        case .into(_, let balance, let from):
            effects.wal.append(WALRecord(transaction: id, kind: .moveIn(account, balance: balance, from: from)))
        }
        let prepared = Prepared(home: home, participants: participants, changes: [], move: part, slot: slot)
        record(id, .prepared(prepared), opening: command, in: &effects)
        return effects
    }

    private mutating func commitMove(_ id: TransactionID, _ move: MovePart, slot: Slot, ballot: Ballot) -> Effects {
        var effects = Effects(result: .committed)
        let account = move.account
        locks[account] = nil
        effects.unlocked.append(account)
        switch move {
        case .out(_, let to):
            let balance = balances.removeValue(forKey: account)!
            movedOut[account] = to
            effects.movedOut[account] = .some(to)
            effects.datastore = DatastoreRecord(
                transaction: id, kind: .moveOut(account, balance: balance, to: to), slot: slot, ballot: ballot)
        case .into(_, let balance, let from):
            balances[account] = balance
            effects.balances[account] = balance
            movedOut[account] = nil
            effects.movedOut.updateValue(nil, forKey: account)
            effects.datastore = DatastoreRecord(
                transaction: id, kind: .moveIn(account, balance: balance, from: from), slot: slot, ballot: ballot)
        }
        effects.wal.append(WALRecord(transaction: id, kind: .commit))
        record(id, .committed, in: &effects)
        return effects
    }

    private mutating func createAccounts(_ ranges: [ClosedRange<AccountID>], balance: Int64) -> Effects {
        guard balance >= minBalance else {
            return Effects(result: .refused("initial balance \(balance) is below the minimum \(minBalance)"))
        }
        var effects = Effects(result: .accountsCreated(0))
        var created = 0
        for range in ranges {
            var value = range.lowerBound.value
            while true {
                let account = AccountID(value)
                // An account moved away (or being moved in) is not created again.
                if balances[account] == nil, movedOut[account] == nil, locks[account] == nil {
                    balances[account] = balance
                    effects.balances[account] = balance
                    created += 1
                }
                if value == range.upperBound.value { break }
                value += 1
            }
        }
        effects.result = .accountsCreated(created)
        return effects
    }

    // MARK: - Rules

    /// Why these changes cannot be applied now, or nil when they can: every account exists here and is unlocked,
    /// no debit goes below the minimum balance and no credit overflows.
    private func refusal(for changes: [AccountChange]) -> AbortReason? {
        for change in changes {
            if let owner = locks[change.account] { return lockRefusal(change.account, owner: owner) }
            guard let balance = balances[change.account] else { return absence(of: change.account) }
            let (new, overflow) = balance.addingReportingOverflow(change.delta)
            if overflow {
                return change.delta > 0
                    ? .balanceOverflow(change.account) : .insufficientFunds(change.account, balance: balance)
            }
            if change.delta < 0, new < minBalance { return .insufficientFunds(change.account, balance: balance) }
        }
        return nil
    }

    /// Why a locked account cannot be used: locked by a cross-shard transaction, or by a move in progress.
    private func lockRefusal(_ account: AccountID, owner: TransactionID) -> AbortReason {
        guard case .prepared(let prepared) = transactions[owner], let move = prepared.move else {
            return .locked(account, by: owner)
        }
        switch move {
        case .out(_, let to): return .moving(account, to: to)
        case .into: return .moving(account, to: prepared.participants.first { $0 != prepared.home } ?? prepared.home)
        }
    }

    /// Why an account without a balance here cannot be used: moved away, or never here.
    private func absence(of account: AccountID) -> AbortReason {
        movedOut[account].map { .moved(account, to: $0) } ?? .unknownAccount(account)
    }

    private mutating func adjust(
        _ account: AccountID, by delta: Int64, transaction: TransactionID, effects: inout Effects, logged: Bool = true
    ) {
        let old = balances[account]!
        let new = old + delta
        balances[account] = new
        effects.balances[account] = new
        if logged {
            effects.wal.append(WALRecord(transaction: transaction, kind: .update(account, old: old, new: new)))
        }
    }

    // MARK: - The window (DESIGN §3)

    /// Why a command for `id` is not applied because its record was forgotten; nil when it is remembered or new.
    private func expiry(of id: TransactionID) -> String? {
        guard transactions[id] == nil else { return nil }
        if let session = sessions[id.client] {
            guard id.sequence < session.floor else { return nil }
            return
                "\(id) is below client \(id.client)'s floor \(session.floor) at \(cluster), which no longer remembers it: "
                + "nothing was applied; read its fate with TransactionStatus at its home, or in PrintDatastore"
        }
        guard id.client <= retiredClients else { return nil }
        return
            "client \(id.client) has no session at \(cluster) (client ids up to \(retiredClients) are retired: their "
            + "sessions were evicted): nothing was applied; read the fate of \(id) in PrintDatastore, and use a new "
            + "client id"
    }

    /// Whether a record must stay whatever its client's floor: prepared (it holds locks and awaits a decision), or
    /// committed here as the home and not yet delivered to the other participant.
    private func isPinned(_ id: TransactionID) -> Bool {
        if case .prepared = transactions[id] { return true }
        return undelivered.contains(id)
    }

    /// After a command of `id` was applied: when it changed the transaction's record, its client's session notes the
    /// command (a command that changed nothing, like a retry or a refusal, changes no session either), and the record
    /// is forgotten if nothing needs it any more. A record that existed without a session (kept from a store of
    /// format 3, whose clients cannot speak this protocol) opens none, and goes once it is not pinned.
    private mutating func settle(_ id: TransactionID, existed: Bool, slot: Slot, effects: inout Effects) {
        let client = id.client
        guard effects.transaction != nil || !effects.undelivered.isEmpty else { return }
        if sessions[client] != nil || !existed {
            var session = sessions[client] ?? Session(floor: 0, lastSlot: slot)
            session.lastSlot = slot
            sessions[client] = session
            effects.sessions[client] = session
        }
        guard transactions[id] != nil else { return }
        if let session = sessions[client] {
            remembered[client, default: []].insert(id.sequence)
            if id.sequence < session.floor, !isPinned(id) { forget(id, &effects) }
        } else if !isPinned(id) {
            forget(id, &effects)
        }
        trim(client, slot: slot, effects: &effects)
    }

    /// A client's acknowledged floor: its decided transactions below it are forgotten.
    private mutating func release(_ client: UInt64, below floor: UInt64, slot: Slot) -> Effects {
        if sessions[client] == nil, client <= retiredClients {
            return Effects(
                result: .expired(
                    "client \(client) has no session at \(cluster) (client ids up to \(retiredClients) are retired): "
                        + "use a new client id"))
        }
        var session = sessions[client] ?? Session(floor: 0, lastSlot: slot)
        session.lastSlot = slot
        var effects = Effects(result: .released(forgotten: 0))
        if floor > session.floor {
            session.floor = floor
            for sequence in remembered[client] ?? [] where sequence < floor {
                let id = TransactionID(client: client, sequence: sequence)
                if !isPinned(id) { forget(id, &effects) }
            }
        }
        sessions[client] = session
        effects.sessions[client] = session
        trim(client, slot: slot, effects: &effects)
        effects.result = .released(forgotten: effects.forgotten.count)
        return effects
    }

    private mutating func forget(_ id: TransactionID, _ effects: inout Effects) {
        transactions[id] = nil
        openings[id] = nil
        remembered[id.client]?.remove(id.sequence)
        effects.forgotten.append(id)
    }

    /// Keeps what is remembered within `limits`: a client over its share has its oldest decided transactions
    /// forgotten (its floor rises past them); past the sessions or transactions in all, the sessions idle longest are
    /// evicted, never `client`'s (the one applying now). Both go down to three quarters of the limit, so the work is
    /// paid once per many commands.
    private mutating func trim(_ client: UInt64, slot: Slot, effects: inout Effects) {
        if let sequences = remembered[client], sequences.count > limits.transactionsPerClient,
            var session = sessions[client]
        {
            var count = sequences.count
            for sequence in sequences.sorted() where count > limits.transactionsPerClient * 3 / 4 {
                let id = TransactionID(client: client, sequence: sequence)
                guard !isPinned(id) else { continue }
                forget(id, &effects)
                count -= 1
                session.floor = max(session.floor, sequence + 1)
            }
            sessions[client] = session
            effects.sessions[client] = session
        }
        // Pinned records do not count: they cannot be evicted. Each prepared transaction holds one lock here.
        func overLimits(_ fraction: Int) -> Bool {
            sessions.count > limits.clientSessions * fraction / 4
                || transactions.count - undelivered.count - locks.count > limits.transactionsRemembered * fraction / 4
        }
        guard overLimits(4) else { return }
        let idlest = sessions.keys.filter { $0 != client }.sorted {
            (sessions[$0]!.lastSlot, $0) < (sessions[$1]!.lastSlot, $1)
        }
        for other in idlest {
            guard overLimits(3) else { break }
            let sequences = remembered[other] ?? []
            if sequences.contains(where: { isPinned(TransactionID(client: other, sequence: $0)) }) {
                // The session stays for its pinned records; its others go, and its floor rises past them.
                var session = sessions[other]!
                for sequence in sequences where !isPinned(TransactionID(client: other, sequence: sequence)) {
                    forget(TransactionID(client: other, sequence: sequence), &effects)
                    session.floor = max(session.floor, sequence + 1)
                }
                sessions[other] = session
                effects.sessions[other] = session
                continue
            }
            for sequence in sequences { forget(TransactionID(client: other, sequence: sequence), &effects) }
            remembered[other] = nil
            let carriedOver = sessions.removeValue(forKey: other)?.lastSlot == 0
            effects.sessions.updateValue(nil, forKey: other)
            // A session carried over from format 3 retires nothing: its client cannot speak this protocol.
            if other > retiredClients, !carriedOver {
                retiredClients = other
                effects.retiredClients = other
            }
        }
    }

    /// Records a transaction's new status; `opening` when the command opens the transaction.
    private mutating func record(
        _ id: TransactionID, _ status: Status, opening: LedgerCommand? = nil, in effects: inout Effects
    ) {
        transactions[id] = status
        if let opening { openings[id] = opening }
        effects.transaction = TransactionUpdate(id: id, status: status, opening: openings[id])
    }
}

extension LedgerState {
    /// Rebuilds a state from its stored parts (storage recovery, snapshot decoding). Refuses parts that break the
    /// invariants: a balance below the minimum; a lock whose transaction is not prepared or does not touch the
    /// account, or on an account that does not exist; a prepared transaction that names an account twice, does not
    /// hold the locks of all its accounts, or whose commit could not be applied (a debit below the minimum, a credit
    /// that overflows), since commit applies the planned changes without checking them again; a prepared transaction
    /// without the command that opened it, or an opening of another transaction.
    ///
    /// Accounts and transactions are checked in ascending order, so parts with several faults always report the same
    /// one.
    public init(
        cluster: String,
        minBalance: Int64,
        balances: [AccountID: Int64],
        locks: [AccountID: TransactionID],
        transactions: [TransactionID: Status],
        openings: [TransactionID: LedgerCommand] = [:],
        movedOut: [AccountID: String] = [:],
        sessions: [UInt64: Session] = [:],
        retiredClients: UInt64 = 0,
        undelivered: Set<TransactionID> = [],
        limits: WindowLimits = .standard
    ) throws(LedgerStateError) {
        self.init(cluster: cluster, minBalance: minBalance, limits: limits)
        for id in openings.keys.sorted() {
            guard transactions[id] != nil, openings[id]!.transaction == id else {
                throw LedgerStateError("the opening of \(id) belongs to no transaction of that id")
            }
            switch openings[id]! {
            case .transfer, .prepare, .prepareMove: break
            default: throw LedgerStateError("transaction \(id) was opened by \(openings[id]!.summary)")
            }
        }
        for account in balances.keys.sorted() where balances[account]! < minBalance {
            throw LedgerStateError(
                "account \(account) has balance \(balances[account]!), below the minimum \(minBalance)")
        }
        for account in movedOut.keys.sorted() where balances[account] != nil {
            throw LedgerStateError("account \(account) was moved to \(movedOut[account]!) but still has a balance here")
        }
        for account in locks.keys.sorted() {
            let owner = locks[account]!
            guard case .prepared(let prepared) = transactions[owner], prepared.accounts.contains(account)
            else { throw LedgerStateError("account \(account) is locked by \(owner), which is not prepared on it") }
            if case .into = prepared.move {
                guard balances[account] == nil else {
                    throw LedgerStateError("account \(account) is reserved for a move in by \(owner) but exists")
                }
            } else if balances[account] == nil {
                throw LedgerStateError("locked account \(account) does not exist")
            }
        }
        for id in transactions.keys.sorted() {
            guard case .prepared(let prepared) = transactions[id]! else { continue }
            if let move = prepared.move {
                guard prepared.changes.isEmpty, locks[move.account] == id else {
                    throw LedgerStateError("prepared move \(id) does not hold the lock on \(move.account)")
                }
                if case .into(_, let balance, _) = move, balance < minBalance {
                    throw LedgerStateError(
                        "prepared move \(id) would create account \(move.account) with balance \(balance), below the "
                            + "minimum \(minBalance)")
                }
                continue
            }
            var previous: AccountID?
            for change in prepared.changes.sorted(by: { $0.account < $1.account }) {
                if change.account == previous {
                    throw LedgerStateError("prepared \(id) names account \(change.account) twice")
                }
                previous = change.account
                guard locks[change.account] == id, let balance = balances[change.account] else {
                    throw LedgerStateError("prepared \(id) does not hold the lock on \(change.account)")
                }
                let (new, overflow) = balance.addingReportingOverflow(change.delta)
                if overflow, change.delta > 0 {
                    throw LedgerStateError(
                        "prepared \(id) would credit account \(change.account) with \(change.delta), overflowing its "
                            + "balance \(balance)")
                }
                if overflow || new < minBalance {
                    throw LedgerStateError(
                        "prepared \(id) would debit account \(change.account) by \(-Int128(change.delta)) from balance "
                            + "\(balance), below the minimum \(minBalance)")
                }
            }
        }
        for id in transactions.keys.sorted() {
            guard case .prepared(let prepared) = transactions[id]! else { continue }
            switch (openings[id], prepared.move) {
            case (.prepare?, nil), (.prepareMove?, _?): break
            default: throw LedgerStateError("prepared \(id) has no prepare that opened it")
            }
        }
        for id in undelivered.sorted() {
            guard transactions[id] == .committed, openings[id]?.crossShard?.home == cluster else {
                throw LedgerStateError("\(id) awaits delivery but is not a commit of \(cluster) as its home")
            }
        }
        if sessions[LedgerCommand.clusterClient] != nil {
            throw LedgerStateError("client id \(LedgerCommand.clusterClient) is the cluster's own; it has no session")
        }
        var remembered: [UInt64: Set<UInt64>] = [:]
        for id in transactions.keys.sorted() {
            guard let session = sessions[id.client] else { continue }
            if id.sequence < session.floor, transactions[id]!.isFinal, !undelivered.contains(id) {
                throw LedgerStateError(
                    "\(id) is decided and below its client's floor \(session.floor), yet still remembered")
            }
            remembered[id.client, default: []].insert(id.sequence)
        }
        self.balances = balances
        self.locks = locks
        self.transactions = transactions
        self.openings = openings
        self.movedOut = movedOut
        self.sessions = sessions
        self.retiredClients = retiredClients
        self.undelivered = undelivered
        self.remembered = remembered
    }
}

extension LedgerState {
    /// The state a replica of format 3 (no window) keeps after its upgrade. Its clients cannot speak this protocol, so
    /// each gets a session that released everything (its floor above its last sequence) and is marked as carried over
    /// (`lastSlot` 0: evicted first, retiring nothing). Only what another cluster may still ask about stays: prepared
    /// transactions, and the commits this cluster made as their home, kept for the other participant until it is
    /// seen to have applied them (`undelivered`). A participant that dropped its followed commit reports it `expired`.
    public func upgradedFromFormat3() -> LedgerState {
        var upgraded = self
        upgraded.sessions = [:]
        upgraded.remembered = [:]
        for (id, status) in transactions {
            let floor = max(upgraded.sessions[id.client]?.floor ?? 0, id.sequence + 1)
            upgraded.sessions[id.client] = Session(floor: floor, lastSlot: 0)
            if status == .committed, openings[id]?.crossShard?.home == cluster { upgraded.undelivered.insert(id) }
            if upgraded.isPinned(id) {
                upgraded.remembered[id.client, default: []].insert(id.sequence)
            } else {
                upgraded.transactions[id] = nil
                upgraded.openings[id] = nil
            }
        }
        return upgraded
    }
}

/// Stored ledger state that breaks an invariant: the storage is corrupt or was written by a buggy version.
public struct LedgerStateError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// What a Paxos snapshot of a ledger replica holds: the replicated state and, when it is shipped to a replica that
/// catches up by snapshot, the history (WAL and datastore) that replica lacks, so it ends with the same records as the
/// others. A replica keeps its own snapshot without the history (`withoutHistory`): its store holds the history, and
/// copying it at every compaction would cost time and memory in proportion to all of it.
public struct LedgerSnapshot: Hashable, Sendable {
    public var state: LedgerState
    /// The WAL rows shipped, oldest first: the records each command wrote, with the slot that applied it.
    public var walEntries: [WALEntry]
    /// The datastore records shipped, in commit order (each carries its slot).
    public var datastore: [DatastoreRecord]
    /// Where the shipped history starts. Nil: it is the whole history, which replaces the receiver's. A slot: it holds
    /// only the rows of later slots, after the history the receiver has.
    public var historyAfter: Slot?

    public init(
        state: LedgerState, walEntries: [WALEntry] = [], datastore: [DatastoreRecord] = [], historyAfter: Slot? = nil
    ) {
        self.state = state
        self.walEntries = walEntries
        self.datastore = datastore
        self.historyAfter = historyAfter
    }

    /// A snapshot with the whole history given as records whose slots are not known (one row each, at slot 0).
    public init(state: LedgerState, wal: [WALRecord], datastore: [DatastoreRecord] = []) {
        self.init(state: state, walEntries: wal.map { WALEntry(slot: 0, records: [$0]) }, datastore: datastore)
    }

    /// Every shipped WAL record, in order.
    public var wal: [WALRecord] { walEntries.flatMap(\.records) }

    /// The same state with no history.
    public var withoutHistory: LedgerSnapshot { LedgerSnapshot(state: state) }
}

/// The WAL records one command wrote, with the slot that applied it: one row of a replica's WAL.
public struct WALEntry: Hashable, Sendable {
    public var slot: Slot
    public var records: [WALRecord]

    public init(slot: Slot, records: [WALRecord]) {
        self.slot = slot
        self.records = records
    }
}

extension LedgerState {
    /// The other clusters the cross-shard transactions of this ledger (of cluster `me`) still wait on: the home of
    /// each transaction it holds prepared, and the other participants of each it committed as their home and has not
    /// seen applied there. Sorted.
    public func clustersWaitedOn(by me: String) -> [String] {
        var clusters: Set<String> = []
        for id in Set(locks.values) {
            if let home = openings[id]?.crossShard?.home, home != me { clusters.insert(home) }
        }
        for id in undelivered {
            for participant in openings[id]?.crossShard?.participants ?? [] where participant != me {
                clusters.insert(participant)
            }
        }
        return clusters.sorted()
    }
}
