import LedgerCore
import Paxos

// Conversions of identifiers, ballots, amounts and ledger commands. Encoding is `Ledger_V1_X(value)` and never
// fails; decoding is `Value(wire:)` and throws a `WireError` naming the field for a message that breaks a rule.

// MARK: - Names

/// The most digits of `n` in a name `S<n>` or `C<n>`.
private let nameDigitsMax = String(ClusterConfig.Limits.replicaIndexMax).count

/// Reads a name `<prefix><n>` with `n` in 1...`ClusterConfig.Limits.replicaIndexMax`, written without leading
/// zeros (so every replica and cluster has exactly one name on the wire), and returns `n`. Runs for every ballot
/// of every Paxos message, so it reads the bytes in place and builds the error text only on failure.
func nameIndex(_ name: String, prefix: UInt8, kind: String, example: String, field: String) throws(WireError) -> Int {
    var index = 0
    var digits = 0
    var isWellFormed = false
    var bytes = name.utf8.makeIterator()
    if bytes.next() == prefix {
        isWellFormed = true
        while let byte = bytes.next() {
            let isDigit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
            guard isDigit, digits < nameDigitsMax, digits > 0 || byte != UInt8(ascii: "0") else {
                isWellFormed = false
                break
            }
            index = index * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
        }
    }
    if isWellFormed, digits >= 1, index <= ClusterConfig.Limits.replicaIndexMax { return index }
    let rule =
        "a \(kind) is named \(Character(UnicodeScalar(prefix)))<n> with n from 1 to "
        + "\(ClusterConfig.Limits.replicaIndexMax) and no leading zeros, like \(example)"
    throw WireError(field: field, name.isEmpty ? "is empty; \(rule)" : "is \(quoted(name)); \(rule)")
}

/// Checks a cluster name `C<n>` and returns it.
func clusterName(_ name: String, field: String) throws(WireError) -> String {
    _ = try nameIndex(name, prefix: UInt8(ascii: "C"), kind: "cluster", example: "C1", field: field)
    return name
}

/// A cluster name or nothing (the wire's empty string).
func optionalClusterName(_ name: String, field: String) throws(WireError) -> String? {
    name.isEmpty ? nil : try clusterName(name, field: field)
}

extension ReplicaID {
    /// Reads a replica name `S<n>` (n >= 1, no leading zeros); `field` names it in the error.
    public init(wireName name: String, field: String = "replica") throws(WireError) {
        self.init(try nameIndex(name, prefix: UInt8(ascii: "S"), kind: "replica", example: "S4", field: field))
    }

    /// Reads an optional replica name: empty means none.
    static func optional(wireName name: String, field: String) throws(WireError) -> ReplicaID? {
        name.isEmpty ? nil : try ReplicaID(wireName: name, field: field)
    }
}

// MARK: - Ballots

extension Ledger_V1_Ballot {
    /// The wire form of `ballot`; the zero ballot is round 0 with an empty replica.
    public init(_ ballot: Ballot) {
        self.init()
        round = ballot.round
        replica = ballot == .zero ? "" : ballot.replica.description
    }
}

extension Ballot {
    /// Reads a ballot: the zero ballot (round 0, no replica), or round >= 1 with a replica `S<n>`.
    public init(wire: Ledger_V1_Ballot) throws(WireError) {
        if wire.round == 0 {
            guard wire.replica.isEmpty else {
                throw WireError(
                    field: "replica",
                    "is \(quoted(wire.replica)) in a ballot of round 0; the zero ballot names no replica")
            }
            self = .zero
            return
        }
        self.init(round: wire.round, replica: try ReplicaID(wireName: wire.replica, field: "replica"))
    }

    /// Reads the ballot of a proposal (Phase1a, Phase1b, Phase2a/2b, chosen, heartbeat): present, round >= 1.
    static func proposal(wire: Ledger_V1_Ballot, isPresent: Bool, field: String) throws(WireError) -> Ballot {
        guard isPresent else { throw WireError(field: field, "is missing") }
        if wire.round == 0 {
            throw WireError(field: field + ".round", "is 0; a proposal's ballot has round 1 or more")
        }
        return try within(field) { () throws(WireError) in try Ballot(wire: wire) }
    }

    /// Reads a ballot that must be present but may be the zero ballot.
    static func required(wire: Ledger_V1_Ballot, isPresent: Bool, field: String) throws(WireError) -> Ballot {
        guard isPresent else { throw WireError(field: field, "is missing") }
        return try within(field) { () throws(WireError) in try Ballot(wire: wire) }
    }
}

// MARK: - Identifiers

extension Ledger_V1_TransactionId {
    public init(_ id: TransactionID) {
        self.init()
        client = id.client
        sequence = id.sequence
    }
}

extension TransactionID {
    /// Reads a transaction id that can name a transaction (`TransactionID.isValid`): client 0 is the cluster's
    /// own, and sequences stay below 2^60 (`LedgerCommand.sequenceMax`).
    public init(wire: Ledger_V1_TransactionId) throws(WireError) {
        let id = TransactionID(client: wire.client, sequence: wire.sequence)
        if wire.client == LedgerCommand.clusterClient {
            throw WireError(field: "client", "is \(wire.client), which is reserved for a cluster's own commands")
        }
        guard id.isValid else {
            throw WireError(field: "sequence", "is \(wire.sequence); transaction sequences stay below 2^60")
        }
        self = id
    }

    /// Reads a transaction id field that must be present.
    static func required(wire: Ledger_V1_TransactionId, isPresent: Bool, field: String) throws(WireError)
        -> TransactionID
    {
        guard isPresent else { throw WireError(field: field, "is missing") }
        return try within(field) { () throws(WireError) in try TransactionID(wire: wire) }
    }
}

extension Ledger_V1_RequestId {
    public init(_ id: RequestID) {
        self.init()
        client = id.client
        sequence = id.sequence
    }
}

extension RequestID {
    /// Reads a request id. Every value is valid (client 0 is the cluster's own requests).
    public init(wire: Ledger_V1_RequestId) {
        self.init(client: wire.client, sequence: wire.sequence)
    }
}

extension AccountID {
    /// Reads an account id: 1 or more. `field` names it in the error.
    public init(wire: UInt64, field: String = "account") throws(WireError) {
        guard wire >= 1 else { throw WireError(field: field, "is 0; account ids start at 1") }
        self.init(wire)
    }
}

extension Amount {
    /// Reads an amount: 1 ... `Int64.max`. `field` names it in the error.
    public init(wire: UInt64, field: String = "amount") throws(WireError) {
        guard wire >= 1 else { throw WireError(field: field, "is 0; a transfer moves at least 1") }
        guard wire <= UInt64(Int64.max) else {
            throw WireError(field: field, "is \(wire), which overflows; the largest amount is \(Int64.max)")
        }
        self.init(Int64(wire))
    }
}

// MARK: - Account changes and ranges

extension Ledger_V1_AccountChange {
    public init(_ change: AccountChange) {
        self.init()
        account = change.account.value
        delta = change.delta
    }
}

extension AccountChange {
    /// Reads an account change: an account id >= 1 and a delta other than 0.
    public init(wire: Ledger_V1_AccountChange) throws(WireError) {
        let account = try AccountID(wire: wire.account)
        guard wire.delta != 0 else { throw WireError(field: "delta", "is 0; a change moves money") }
        self.init(account: account, delta: wire.delta)
    }
}

/// Reads the account changes of one transaction at one cluster.
func accountChanges(_ wire: [Ledger_V1_AccountChange], field: String) throws(WireError) -> [AccountChange] {
    try decodeEach(
        wire, field: field, atMost: WireLimits.changesPerTransactionMax, limitName: "changesPerTransactionMax"
    ) { (change) throws(WireError) in try AccountChange(wire: change) }
}

extension Ledger_V1_AccountRange {
    public init(_ range: ClosedRange<AccountID>) {
        self.init()
        first = range.lowerBound.value
        last = range.upperBound.value
    }
}

/// Reads an account range: `first` and `last` are account ids, `first <= last`.
func accountRange(_ wire: Ledger_V1_AccountRange) throws(WireError) -> ClosedRange<AccountID> {
    let first = try AccountID(wire: wire.first, field: "first")
    let last = try AccountID(wire: wire.last, field: "last")
    guard first <= last else {
        throw WireError(field: "last", "is \(last), below first \(first); a range runs from first up to last")
    }
    return first...last
}

// MARK: - Commands

extension Ledger_V1_TransferCommand {
    public init(transaction: TransactionID, from: AccountID, to: AccountID, amount: Amount) {
        self.init()
        self.transaction = Ledger_V1_TransactionId(transaction)
        self.from = from.value
        self.to = to.value
        self.amount = UInt64(amount.value)
    }
}

extension Ledger_V1_PrepareCommand {
    public init(transaction: TransactionID, _ transfer: CrossShardTransfer) {
        self.init()
        self.transaction = Ledger_V1_TransactionId(transaction)
        home = transfer.home
        participants = transfer.participants
        from = transfer.from.value
        to = transfer.to.value
        amount = UInt64(transfer.amount.value)
    }
}

extension Ledger_V1_TransactionTerms {
    public init(_ terms: TransactionTerms) {
        self.init()
        switch terms {
        case .transfer(let transfer):
            kind = .transfer(
                Ledger_V1_TransferTerms.with {
                    $0.from = transfer.from.value
                    $0.to = transfer.to.value
                    $0.amount = UInt64(transfer.amount.value)
                    $0.home = transfer.home
                    $0.participants = transfer.participants
                })
        case .move(let account, let balance, let source, let target):
            kind = .move(
                Ledger_V1_MoveTerms.with {
                    $0.account = account.value
                    $0.balance = balance
                    $0.source = source
                    $0.target = target
                })
        }
    }
}

extension TransactionTerms {
    /// Reads terms: a transfer (as a prepare names it) or a move, every field valid.
    public init(wire: Ledger_V1_TransactionTerms) throws(WireError) {
        switch wire.kind {
        case .transfer(let terms):
            self = .transfer(
                try within("transfer") { () throws(WireError) in
                    try CrossShardTransfer(
                        from: terms.from, to: terms.to, amount: terms.amount, home: terms.home,
                        participants: terms.participants)
                })
        case .move(let terms):
            self = try within("move") { () throws(WireError) in
                .move(
                    try AccountID(wire: terms.account, field: "account"), balance: terms.balance,
                    source: try clusterName(terms.source, field: "source"),
                    target: try clusterName(terms.target, field: "target"))
            }
        case nil:
            throw WireError(field: "kind", "is not set; terms are a transfer or a move")
        }
    }
}

extension CrossShardTransfer {
    /// Reads a cross-shard transfer's fields: accounts >= 1, an amount, cluster names `C<n>`, bounded participants.
    init(from: UInt64, to: UInt64, amount: UInt64, home: String, participants: [String]) throws(WireError) {
        self.init(
            from: try AccountID(wire: from, field: "from"), to: try AccountID(wire: to, field: "to"),
            amount: try Amount(wire: amount, field: "amount"), home: try clusterName(home, field: "home"),
            participants: try participantNames(participants))
    }
}

/// Reads the participants of a transaction: cluster names `C<n>`, at most `participantsPerTransactionMax`.
func participantNames(_ names: [String]) throws(WireError) -> [String] {
    try decodeEach(
        names, field: "participants", atMost: WireLimits.participantsPerTransactionMax,
        limitName: "participantsPerTransactionMax"
    ) { (name) throws(WireError) in try clusterName(name, field: "") }
}

extension Ledger_V1_PrepareMoveCommand {
    public init(transaction: TransactionID, home: String, participants: [String], part: MovePart) {
        self.init()
        self.transaction = Ledger_V1_TransactionId(transaction)
        self.home = home
        self.participants = participants
        self.part = Ledger_V1_MovePart.with {
            $0.account = part.account.value
            switch part {
            case .out(_, let to):
                $0.direction = .outTo(to)
            case .into(_, let balance, let from):
                $0.direction = .inFrom(from)
                $0.balance = balance
            }
        }
    }
}

extension Ledger_V1_CommitCommand {
    public init(transaction: TransactionID) {
        self.init()
        self.transaction = Ledger_V1_TransactionId(transaction)
    }
}

extension Ledger_V1_AbortCommand {
    public init(transaction: TransactionID) {
        self.init()
        self.transaction = Ledger_V1_TransactionId(transaction)
    }
}

extension Ledger_V1_Command {
    public init(_ command: LedgerCommand) {
        self.init()
        switch command {
        case .transfer(let id, let from, let to, let amount):
            kind = .transfer(Ledger_V1_TransferCommand(transaction: id, from: from, to: to, amount: amount))
        case .prepare(let id, let transfer):
            kind = .prepare(Ledger_V1_PrepareCommand(transaction: id, transfer))
        case .prepareMove(let id, let home, let participants, let part):
            kind = .prepareMove(
                Ledger_V1_PrepareMoveCommand(transaction: id, home: home, participants: participants, part: part))
        case .commit(let id):
            kind = .commit(Ledger_V1_CommitCommand(transaction: id))
        case .abort(let id):
            kind = .abort(Ledger_V1_AbortCommand(transaction: id))
        case .decideCommit(let id, let agreed):
            kind = .decideCommit(
                Ledger_V1_DecideCommitCommand.with {
                    $0.transaction = Ledger_V1_TransactionId(id)
                    $0.agreed = Ledger_V1_TransactionTerms(agreed)
                })
        case .follow(let id, let committed):
            kind = .follow(
                Ledger_V1_FollowCommand.with {
                    $0.transaction = Ledger_V1_TransactionId(id)
                    $0.committed = committed
                })
        case .createAccounts(let ranges, let balance):
            kind = .createAccounts(
                Ledger_V1_CreateAccountsCommand.with {
                    $0.ranges = ranges.map(Ledger_V1_AccountRange.init)
                    $0.balance = balance
                })
        case .release(let client, let floor):
            kind = .release(
                Ledger_V1_ReleaseCommand.with {
                    $0.client = client
                    $0.floor = floor
                })
        case .delivered(let id):
            kind = .delivered(Ledger_V1_DeliveredCommand.with { $0.transaction = Ledger_V1_TransactionId(id) })
        }
    }
}

extension LedgerCommand {
    /// Reads a command: exactly one kind set, each field valid.
    public init(wire: Ledger_V1_Command) throws(WireError) {
        switch wire.kind {
        case .transfer(let transfer):
            self = try within("transfer") { () throws(WireError) in try LedgerCommand(wire: transfer) }
        case .prepare(let prepare):
            self = try within("prepare") { () throws(WireError) in try LedgerCommand(wire: prepare) }
        case .prepareMove(let prepare):
            self = try within("prepare_move") { () throws(WireError) in try LedgerCommand(wire: prepare) }
        case .commit(let commit):
            let id = try within("commit") { () throws(WireError) in
                try TransactionID.required(
                    wire: commit.transaction, isPresent: commit.hasTransaction, field: "transaction")
            }
            self = .commit(id)
        case .abort(let abort):
            let id = try within("abort") { () throws(WireError) in
                try TransactionID.required(
                    wire: abort.transaction, isPresent: abort.hasTransaction, field: "transaction")
            }
            self = .abort(id)
        case .decideCommit(let decide):
            self = try within("decide_commit") { () throws(WireError) in
                let id = try TransactionID.required(
                    wire: decide.transaction, isPresent: decide.hasTransaction, field: "transaction")
                guard decide.hasAgreed else { throw WireError(field: "agreed", "is missing") }
                let agreed = try within("agreed") { () throws(WireError) in
                    try TransactionTerms(wire: decide.agreed)
                }
                return .decideCommit(id, agreed: agreed)
            }
        case .follow(let follow):
            self = .follow(
                try within("follow") { () throws(WireError) in
                    try TransactionID.required(
                        wire: follow.transaction, isPresent: follow.hasTransaction, field: "transaction")
                }, committed: follow.committed)
        case .createAccounts(let create):
            let ranges = try within("create_accounts") { () throws(WireError) in
                try decodeEach(
                    create.ranges, field: "ranges", atMost: WireLimits.accountRangesPerCommandMax,
                    limitName: "accountRangesPerCommandMax", accountRange)
            }
            self = .createAccounts(ranges, balance: create.balance)
        case .release(let release):
            self = try within("release") { () throws(WireError) in
                guard release.client != LedgerCommand.clusterClient else {
                    throw WireError(field: "client", "is 0, the cluster's own client id")
                }
                guard release.floor <= LedgerCommand.sequenceMax else {
                    throw WireError(
                        field: "floor", "is \(release.floor), above the largest sequence \(LedgerCommand.sequenceMax)")
                }
                return .release(client: release.client, floor: release.floor)
            }
        case .delivered(let delivered):
            self = .delivered(
                try within("delivered") { () throws(WireError) in
                    try TransactionID.required(
                        wire: delivered.transaction, isPresent: delivered.hasTransaction, field: "transaction")
                })
        case nil:
            throw WireError(
                field: "kind",
                "is not set; a command is one of transfer, prepare, prepare_move, commit, abort, release, decide_commit, "
                    + "follow, delivered, create_accounts")
        }
    }

    /// Reads an intra-shard transfer.
    public init(wire: Ledger_V1_TransferCommand) throws(WireError) {
        let id = try TransactionID.required(
            wire: wire.transaction, isPresent: wire.hasTransaction, field: "transaction")
        let from = try AccountID(wire: wire.from, field: "from")
        let to = try AccountID(wire: wire.to, field: "to")
        let amount = try Amount(wire: wire.amount, field: "amount")
        self = .transfer(id, from: from, to: to, amount: amount)
    }

    /// Reads a 2PC prepare of a cross-shard transfer: accounts, an amount, cluster names `C<n>`, bounded
    /// participants.
    public init(wire: Ledger_V1_PrepareCommand) throws(WireError) {
        let id = try TransactionID.required(
            wire: wire.transaction, isPresent: wire.hasTransaction, field: "transaction")
        self = .prepare(
            id,
            try CrossShardTransfer(
                from: wire.from, to: wire.to, amount: wire.amount, home: wire.home, participants: wire.participants))
    }

    /// Reads a 2PC prepare of an account move: cluster names `C<n>`, bounded participants, one direction set.
    public init(wire: Ledger_V1_PrepareMoveCommand) throws(WireError) {
        let (id, home, participants) = try Self.prepareHeader(
            wire.transaction, isPresent: wire.hasTransaction, home: wire.home, participants: wire.participants)
        guard wire.hasPart else { throw WireError(field: "part", "is missing") }
        let part = try within("part") { () throws(WireError) -> MovePart in
            let account = try AccountID(wire: wire.part.account, field: "account")
            switch wire.part.direction {
            case .outTo(let to): return .out(account, to: try clusterName(to, field: "out_to"))
            case .inFrom(let from):
                return .into(account, balance: wire.part.balance, from: try clusterName(from, field: "in_from"))
            case nil: throw WireError(field: "direction", "is not set; a move part is out_to or in_from")
            }
        }
        self = .prepareMove(id, home: home, participants: participants, part: part)
    }

    /// What every prepare names: the transaction, its home cluster and its participants.
    private static func prepareHeader(
        _ transaction: Ledger_V1_TransactionId, isPresent: Bool, home: String, participants: [String]
    ) throws(WireError) -> (TransactionID, String, [String]) {
        let id = try TransactionID.required(wire: transaction, isPresent: isPresent, field: "transaction")
        return (id, try clusterName(home, field: "home"), try participantNames(participants))
    }
}

// MARK: - Client requests

extension Ledger_V1_TransferRequest {
    public init(cluster: String, transaction: TransactionID, from: AccountID, to: AccountID, amount: Amount) {
        self.init()
        self.cluster = cluster
        transfer = Ledger_V1_TransferCommand(transaction: transaction, from: from, to: to, amount: amount)
    }
}

extension Ledger_V1_PrepareRequest {
    public init(cluster: String, transaction: TransactionID, _ transfer: CrossShardTransfer) {
        self.init()
        self.cluster = cluster
        prepare = Ledger_V1_PrepareCommand(transaction: transaction, transfer)
    }
}

extension Ledger_V1_TransactionStatusRequest {
    public init(cluster: String, replica: String = "", transaction: TransactionID) {
        self.init()
        self.cluster = cluster
        self.replica = replica
        self.transaction = Ledger_V1_TransactionId(transaction)
    }
}

extension Ledger_V1_TransactionStatusBatchRequest {
    public init(cluster: String, replica: String = "", transactions: [TransactionID], linearizable: Bool = false) {
        self.init()
        self.cluster = cluster
        self.replica = replica
        self.transactions = transactions.map(Ledger_V1_TransactionId.init)
        self.linearizable = linearizable
    }
}

extension Ledger_V1_CommitRequest {
    public init(cluster: String, transaction: TransactionID) {
        self.init()
        self.cluster = cluster
        commit = Ledger_V1_CommitCommand(transaction: transaction)
    }
}

extension Ledger_V1_AbortRequest {
    public init(cluster: String, transaction: TransactionID) {
        self.init()
        self.cluster = cluster
        abort = Ledger_V1_AbortCommand(transaction: transaction)
    }
}

extension Ledger_V1_DecisionRequest {
    public init(cluster: String, transaction: TransactionID, asker: String) {
        self.init()
        self.cluster = cluster
        self.transaction = Ledger_V1_TransactionId(transaction)
        self.asker = asker
    }
}

extension Ledger_V1_BalanceRequest {
    public init(cluster: String, account: AccountID) {
        self.init()
        self.cluster = cluster
        self.account = account.value
    }
}

extension LedgerCommand {
    /// The transfer a `Transfer` call asks for. (The replica checks `cluster` against its own name.)
    public init(wire: Ledger_V1_TransferRequest) throws(WireError) {
        guard wire.hasTransfer else { throw WireError(field: "transfer", "is missing") }
        self = try within("transfer") { () throws(WireError) in try LedgerCommand(wire: wire.transfer) }
    }

    /// The prepare a `Prepare` call asks for.
    public init(wire: Ledger_V1_PrepareRequest) throws(WireError) {
        switch (wire.hasPrepare, wire.hasPrepareMove) {
        case (true, false):
            self = try within("prepare") { () throws(WireError) in try LedgerCommand(wire: wire.prepare) }
        case (false, true):
            self = try within("prepare_move") { () throws(WireError) in try LedgerCommand(wire: wire.prepareMove) }
        case (true, true): throw WireError(field: "prepare_move", "is set with prepare; a request carries one of them")
        case (false, false): throw WireError(field: "prepare", "is missing (and so is prepare_move)")
        }
    }

    /// The commit a `Commit` call asks for.
    public init(wire: Ledger_V1_CommitRequest) throws(WireError) {
        guard wire.hasCommit else { throw WireError(field: "commit", "is missing") }
        let commit = wire.commit
        self = .commit(
            try within("commit") { () throws(WireError) in
                try TransactionID.required(
                    wire: commit.transaction, isPresent: commit.hasTransaction, field: "transaction")
            })
    }

    /// The abort an `Abort` call asks for.
    public init(wire: Ledger_V1_AbortRequest) throws(WireError) {
        guard wire.hasAbort else { throw WireError(field: "abort", "is missing") }
        let abort = wire.abort
        self = .abort(
            try within("abort") { () throws(WireError) in
                try TransactionID.required(
                    wire: abort.transaction, isPresent: abort.hasTransaction, field: "transaction")
            })
    }
}

extension TransactionID {
    /// The transaction a `Decision` call asks about.
    public init(wire: Ledger_V1_DecisionRequest) throws(WireError) {
        self = try TransactionID.required(wire: wire.transaction, isPresent: wire.hasTransaction, field: "transaction")
    }

    /// The transaction a `TransactionStatus` call asks about.
    public init(wire: Ledger_V1_TransactionStatusRequest) throws(WireError) {
        self = try TransactionID.required(wire: wire.transaction, isPresent: wire.hasTransaction, field: "transaction")
    }

    /// The transactions a `TransactionStatusBatch` call asks about: at least one, at most
    /// `WireLimits.commandsPerBatchMax`.
    public static func batch(wire: Ledger_V1_TransactionStatusBatchRequest) throws(WireError) -> [TransactionID] {
        guard !wire.transactions.isEmpty else {
            throw WireError(field: "transactions", "is empty; a batch asks about a transaction")
        }
        return try decodeEach(
            wire.transactions, field: "transactions", atMost: WireLimits.commandsPerBatchMax,
            limitName: "commandsPerBatchMax"
        ) { (transaction) throws(WireError) in try TransactionID(wire: transaction) }
    }
}
