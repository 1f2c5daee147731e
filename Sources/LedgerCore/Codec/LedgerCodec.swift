import Paxos

/// The compact binary encoding of the ledger's values, for storage and for shipping snapshots.
///
/// Every encoding starts with two bytes: the format version (`formatVersion`) and the kind of value that follows,
/// so a stored blob of one kind is never read as another. Integers are varints (signed ones zigzag-mapped), strings
/// and arrays carry their length, enums a one-byte tag starting at 1, and maps are written in ascending key order,
/// so equal values encode to equal bytes. Decoding checks everything a type's initializer would trap on, and refuses
/// truncated input, unknown tags, lengths over `CodecLimits`, non-shortest varints and trailing bytes with a
/// `CodecError` naming the offset: bytes from a disk or a peer never crash the process.
public enum LedgerCodec {
    /// The format this build writes. A change to any encoding gets a new version.
    public static let formatVersion: UInt8 = 4
    /// The oldest format this build reads: format 3 differs only in its snapshots, which have no sessions, retired
    /// clients or undelivered commits (read as none), and lacks the commands `release` and `delivered`. A store of
    /// schema 3 is migrated with it.
    public static let oldestReadableVersion: UInt8 = 3

    /// What an encoding holds (its second byte).
    enum Kind: UInt8, CaseIterable {
        case command = 1
        case slotValue
        case ballot
        case status
        case walRecord
        case walRecords
        case datastoreRecord
        case snapshot
        case memberships

        var name: String {
            switch self {
            case .command: return "a ledger command"
            case .slotValue: return "a slot value"
            case .ballot: return "a ballot"
            case .status: return "a transaction status"
            case .walRecord: return "a WAL record"
            case .walRecords: return "a list of WAL records"
            case .datastoreRecord: return "a datastore record"
            case .snapshot: return "a ledger snapshot"
            case .memberships: return "a cluster's configurations"
            }
        }
    }

    // MARK: - Encoding

    public static func encode(_ command: LedgerCommand) -> [UInt8] {
        encoding(.command) { $0.command(command) }
    }

    public static func encode(_ value: SlotValue<LedgerCommand>) -> [UInt8] {
        encoding(.slotValue) { $0.slotValue(value) }
    }

    public static func encode(_ ballot: Ballot) -> [UInt8] {
        encoding(.ballot) { $0.ballot(ballot) }
    }

    /// A transaction's status and the command that opened it (nil for an abort recorded before any prepare).
    public static func encode(_ status: LedgerState.Status, opening: LedgerCommand?) -> [UInt8] {
        encoding(.status) { $0.transactionRecord(status, opening: opening) }
    }

    public static func encode(_ record: WALRecord) -> [UInt8] {
        encoding(.walRecord) { $0.walRecord(record) }
    }

    /// The WAL records of one command, at most `CodecLimits.walRecordsPerListMax`.
    public static func encode(_ records: [WALRecord]) -> [UInt8] {
        encoding(.walRecords) { writer in
            writer.count(records.count, limit: CodecLimits.walRecordsPerListMax, "WAL records")
            for record in records { writer.walRecord(record) }
        }
    }

    public static func encode(_ record: DatastoreRecord) -> [UInt8] {
        encoding(.datastoreRecord) { $0.datastoreRecord(record) }
    }

    public static func encode(_ snapshot: LedgerSnapshot) -> [UInt8] {
        encoding(.snapshot) { $0.snapshot(snapshot) }
    }

    public static func encode(_ memberships: Memberships) -> [UInt8] {
        encoding(.memberships) { $0.memberships(memberships) }
    }

    // MARK: - Decoding

    public static func decodeCommand(_ bytes: [UInt8]) throws(CodecError) -> LedgerCommand {
        try decoding(bytes, .command) { reader throws(CodecError) in try reader.command() }
    }

    public static func decodeSlotValue(_ bytes: [UInt8]) throws(CodecError) -> SlotValue<LedgerCommand> {
        try decoding(bytes, .slotValue) { reader throws(CodecError) in try reader.slotValue() }
    }

    public static func decodeBallot(_ bytes: [UInt8]) throws(CodecError) -> Ballot {
        try decoding(bytes, .ballot) { reader throws(CodecError) in try reader.ballot("the ballot") }
    }

    public static func decodeStatus(_ bytes: [UInt8]) throws(CodecError) -> (
        status: LedgerState.Status, opening: LedgerCommand?
    ) {
        try decoding(bytes, .status) { reader throws(CodecError) in try reader.transactionRecord() }
    }

    public static func decodeWALRecord(_ bytes: [UInt8]) throws(CodecError) -> WALRecord {
        try decoding(bytes, .walRecord) { reader throws(CodecError) in try reader.walRecord() }
    }

    public static func decodeWALRecords(_ bytes: [UInt8]) throws(CodecError) -> [WALRecord] {
        try decoding(bytes, .walRecords) { reader throws(CodecError) in
            let count = try reader.count(
                "WAL records", limit: CodecLimits.walRecordsPerListMax, limitName: "walRecordsPerListMax")
            var records: [WALRecord] = []
            records.reserveCapacity(count)
            for _ in 0..<count { records.append(try reader.walRecord()) }
            return records
        }
    }

    public static func decodeDatastoreRecord(_ bytes: [UInt8]) throws(CodecError) -> DatastoreRecord {
        try decoding(bytes, .datastoreRecord) { reader throws(CodecError) in try reader.datastoreRecord() }
    }

    /// Decodes a snapshot and rebuilds its state through `LedgerState`'s restoring initializer, so a snapshot whose
    /// state breaks a ledger invariant is refused like any other malformed input.
    public static func decodeSnapshot(_ bytes: [UInt8]) throws(CodecError) -> LedgerSnapshot {
        try decoding(bytes, .snapshot) { reader throws(CodecError) in try reader.snapshot() }
    }

    /// Decodes a cluster's configurations, refusing a history that breaks `Memberships`' invariants.
    public static func decodeMemberships(_ bytes: [UInt8]) throws(CodecError) -> Memberships {
        try decoding(bytes, .memberships) { reader throws(CodecError) in try reader.memberships() }
    }

    // MARK: - Limits

    /// Why `command` cannot be encoded (a string or a list over `CodecLimits`), or nil when it can. Commands from
    /// outside the process are checked with this before they are proposed; encoding one over a limit traps.
    public static func limitViolation(in command: LedgerCommand) -> String? {
        switch command {
        case .transfer, .commit, .abort, .follow, .decideCommit(_, .move), .release, .delivered:
            return nil
        case .prepareMove(_, let home, let participants, let part):
            let other: String
            switch part {
            case .out(_, let to): other = to
            case .into(_, _, let from): other = from
            }
            for name in [home, other] + participants where name.utf8.count > CodecLimits.clusterNameBytesMax {
                return
                    "cluster name of \(name.utf8.count) bytes is over the limit of \(CodecLimits.clusterNameBytesMax)"
            }
            if participants.count > CodecLimits.participantsMax {
                return "\(participants.count) participants are over the limit of \(CodecLimits.participantsMax)"
            }
            return nil
        case .prepare(_, let transfer), .decideCommit(_, .transfer(let transfer)):
            for name in [transfer.home] + transfer.participants
            where name.utf8.count > CodecLimits.clusterNameBytesMax {
                return
                    "cluster name of \(name.utf8.count) bytes is over the limit of \(CodecLimits.clusterNameBytesMax)"
            }
            if transfer.participants.count > CodecLimits.participantsMax {
                return
                    "\(transfer.participants.count) participants are over the limit of \(CodecLimits.participantsMax)"
            }
            return nil
        case .createAccounts(let ranges, _):
            if ranges.count > CodecLimits.rangesPerCommandMax {
                return "\(ranges.count) account ranges are over the limit of \(CodecLimits.rangesPerCommandMax)"
            }
            return nil
        }
    }

    // MARK: - Framing

    private static func encoding(_ kind: Kind, _ body: (inout BinaryWriter) -> Void) -> [UInt8] {
        var writer = BinaryWriter()
        writer.byte(formatVersion)
        writer.byte(kind.rawValue)
        body(&writer)
        return writer.bytes
    }

    private static func decoding<Value>(
        _ bytes: [UInt8], _ kind: Kind, _ body: (inout BinaryReader) throws(CodecError) -> Value
    ) throws(CodecError) -> Value {
        var reader = BinaryReader(bytes)
        let version = try reader.byte("the format version")
        guard (oldestReadableVersion...formatVersion).contains(version) else {
            throw CodecError(
                "format version \(version) is not supported; this build reads versions \(oldestReadableVersion) to "
                    + "\(formatVersion)", offset: 0)
        }
        reader.version = version
        let tag = try reader.byte("the kind of value")
        guard tag == kind.rawValue else {
            let found = Kind(rawValue: tag).map { "holds \($0.name)" } ?? "has unknown kind \(tag)"
            throw CodecError("\(found); expected \(kind.name)", offset: 1)
        }
        let value = try body(&reader)
        try reader.finish(kind.name)
        return value
    }
}

// MARK: - Writing values

extension BinaryWriter {
    mutating func account(_ account: AccountID) {
        unsigned(account.value)
    }

    mutating func amount(_ amount: Amount) {
        unsigned(UInt64(amount.value))
    }

    mutating func transaction(_ id: TransactionID) {
        unsigned(id.client)
        unsigned(id.sequence)
    }

    mutating func ballot(_ ballot: Ballot) {
        unsigned(ballot.round)
        signed(Int64(ballot.replica.index))
    }

    mutating func clusterName(_ name: String) {
        string(name, limit: CodecLimits.clusterNameBytesMax, "cluster name")
    }

    mutating func clusterNames(_ names: [String]) {
        count(names.count, limit: CodecLimits.participantsMax, "participants")
        for name in names { clusterName(name) }
    }

    mutating func changes(_ changes: [AccountChange]) {
        count(changes.count, limit: CodecLimits.changesPerPrepareMax, "account changes")
        for change in changes {
            account(change.account)
            signed(change.delta)
        }
    }

    mutating func command(_ command: LedgerCommand) {
        switch command {
        case .transfer(let id, let from, let to, let amount):
            byte(1)
            transaction(id)
            account(from)
            account(to)
            self.amount(amount)
        case .prepare(let id, let transfer):
            byte(2)
            transaction(id)
            crossShardTransfer(transfer)
        case .prepareMove(let id, let home, let participants, let part):
            byte(6)
            transaction(id)
            clusterName(home)
            clusterNames(participants)
            movePart(part)
        case .commit(let id):
            byte(3)
            transaction(id)
        case .abort(let id):
            byte(4)
            transaction(id)
        case .decideCommit(let id, let agreed):
            byte(7)
            transaction(id)
            terms(agreed)
        case .follow(let id, let committed):
            byte(8)
            transaction(id)
            byte(committed ? 1 : 0)
        case .createAccounts(let ranges, let balance):
            byte(5)
            count(ranges.count, limit: CodecLimits.rangesPerCommandMax, "account ranges")
            for range in ranges {
                account(range.lowerBound)
                account(range.upperBound)
            }
            signed(balance)
        case .release(let client, let floor):
            byte(9)
            unsigned(client)
            unsigned(floor)
        case .delivered(let id):
            byte(10)
            transaction(id)
        }
    }

    mutating func crossShardTransfer(_ transfer: CrossShardTransfer) {
        account(transfer.from)
        account(transfer.to)
        amount(transfer.amount)
        clusterName(transfer.home)
        clusterNames(transfer.participants)
    }

    mutating func terms(_ terms: TransactionTerms) {
        switch terms {
        case .transfer(let transfer):
            byte(1)
            crossShardTransfer(transfer)
        case .move(let account, let balance, let source, let target):
            byte(2)
            self.account(account)
            signed(balance)
            clusterName(source)
            clusterName(target)
        }
    }

    mutating func transactionRecord(_ status: LedgerState.Status, opening: LedgerCommand?) {
        self.status(status)
        if let opening {
            byte(1)
            command(opening)
        } else {
            byte(0)
        }
    }

    mutating func movePart(_ part: MovePart) {
        switch part {
        case .out(let account, let to):
            byte(1)
            self.account(account)
            clusterName(to)
        case .into(let account, let balance, let from):
            byte(2)
            self.account(account)
            signed(balance)
            clusterName(from)
        }
    }

    /// A slot value: its tag, the ballot of the leader that first proposed it, then a batch's requests or a
    /// reconfiguration's request id and configuration.
    mutating func slotValue(_ value: SlotValue<LedgerCommand>) {
        switch value {
        case .noop(let proposer):
            byte(1)
            ballot(proposer)
        case .batch(let requests, let proposer):
            byte(2)
            ballot(proposer)
            count(requests.count, limit: CodecLimits.requestsPerSlotMax, "requests of a slot")
            for request in requests {
                unsigned(request.id.client)
                unsigned(request.id.sequence)
                command(request.command)
            }
        case .reconfigure(let change, let proposer):
            byte(3)
            ballot(proposer)
            unsigned(change.id.client)
            unsigned(change.id.sequence)
            membership(change.membership)
        }
    }

    mutating func replicas(_ replicas: [ReplicaID], limit: Int, _ what: String) {
        count(replicas.count, limit: limit, what)
        for replica in replicas { unsigned(UInt64(replica.index)) }
    }

    /// A configuration: its epoch, voters and learners.
    mutating func membership(_ membership: Membership) {
        unsigned(membership.epoch)
        replicas(membership.voters, limit: CodecLimits.replicasPerMembershipMax, "voters")
        replicas(membership.learners, limit: CodecLimits.replicasPerMembershipMax, "learners")
    }

    /// A cluster's configurations: each with the slot that chose it, the first slot it governs, and the replicas
    /// retired by then.
    mutating func memberships(_ memberships: Memberships) {
        count(memberships.eras.count, limit: CodecLimits.membershipErasMax, "configurations")
        for era in memberships.eras {
            unsigned(era.chosenAt)
            unsigned(era.from)
            membership(era.membership)
            replicas(era.retired, limit: CodecLimits.retiredReplicasMax, "retired replicas")
        }
    }

    mutating func abortReason(_ reason: AbortReason) {
        switch reason {
        case .insufficientFunds(let account, let balance):
            byte(1)
            self.account(account)
            signed(balance)
        case .locked(let account, let owner):
            byte(2)
            self.account(account)
            transaction(owner)
        case .unknownAccount(let account):
            byte(3)
            self.account(account)
        case .balanceOverflow(let account):
            byte(4)
            self.account(account)
        case .aborted:
            byte(5)
        case .invalid(let text):
            byte(6)
            string(text, limit: CodecLimits.textBytesMax, "abort explanation")
        case .moving(let account, let cluster):
            byte(7)
            self.account(account)
            clusterName(cluster)
        case .moved(let account, let cluster):
            byte(8)
            self.account(account)
            clusterName(cluster)
        }
    }

    mutating func status(_ status: LedgerState.Status) {
        switch status {
        case .committed:
            byte(1)
        case .aborted(let reason):
            byte(2)
            abortReason(reason)
        case .prepared(let prepared):
            byte(prepared.move == nil ? 3 : 4)
            clusterName(prepared.home)
            clusterNames(prepared.participants)
            if let move = prepared.move { movePart(move) } else { changes(prepared.changes) }
            unsigned(prepared.slot)
        }
    }

    mutating func walRecord(_ record: WALRecord) {
        transaction(record.transaction)
        switch record.kind {
        case .start:
            byte(1)
        case .update(let account, let old, let new):
            byte(2)
            self.account(account)
            signed(old)
            signed(new)
        case .commit:
            byte(3)
        case .abort:
            byte(4)
        case .moveOut(let account, let balance, let cluster):
            byte(5)
            self.account(account)
            signed(balance)
            clusterName(cluster)
        case .moveIn(let account, let balance, let cluster):
            byte(6)
            self.account(account)
            signed(balance)
            clusterName(cluster)
        }
    }

    mutating func datastoreRecord(_ record: DatastoreRecord) {
        transaction(record.transaction)
        switch record.kind {
        case .transfer(let from, let to, let amount):
            byte(1)
            account(from)
            account(to)
            self.amount(amount)
        case .crossShard(let changes):
            byte(2)
            self.changes(changes)
        case .moveOut(let account, let balance, let cluster):
            byte(3)
            self.account(account)
            signed(balance)
            clusterName(cluster)
        case .moveIn(let account, let balance, let cluster):
            byte(4)
            self.account(account)
            signed(balance)
            clusterName(cluster)
        }
        unsigned(record.slot)
        ballot(record.ballot)
    }

    mutating func snapshot(_ snapshot: LedgerSnapshot) {
        let state = snapshot.state
        let entriesMax = CodecLimits.snapshotEntriesMax
        clusterName(state.cluster)
        signed(state.minBalance)
        count(state.balances.count, limit: entriesMax, "balances")
        for (account, balance) in state.balances.sorted(by: { $0.key < $1.key }) {
            self.account(account)
            signed(balance)
        }
        count(state.locks.count, limit: entriesMax, "locks")
        for (account, owner) in state.locks.sorted(by: { $0.key < $1.key }) {
            self.account(account)
            transaction(owner)
        }
        count(state.transactions.count, limit: entriesMax, "transactions")
        for (id, status) in state.transactions.sorted(by: { $0.key < $1.key }) {
            transaction(id)
            transactionRecord(status, opening: state.openings[id])
        }
        count(state.movedOut.count, limit: entriesMax, "moved-out accounts")
        for (account, cluster) in state.movedOut.sorted(by: { $0.key < $1.key }) {
            self.account(account)
            clusterName(cluster)
        }
        count(state.sessions.count, limit: entriesMax, "client sessions")
        for (client, session) in state.sessions.sorted(by: { $0.key < $1.key }) {
            unsigned(client)
            unsigned(session.floor)
            unsigned(session.lastSlot)
        }
        unsigned(state.retiredClients)
        count(state.undelivered.count, limit: entriesMax, "undelivered commits")
        for id in state.undelivered.sorted() { transaction(id) }
        if let after = snapshot.historyAfter {
            byte(1)
            unsigned(after)
        } else {
            byte(0)
        }
        count(snapshot.walEntries.count, limit: entriesMax, "WAL rows")
        for entry in snapshot.walEntries {
            unsigned(entry.slot)
            count(entry.records.count, limit: CodecLimits.walRecordsPerListMax, "WAL records of a row")
            for record in entry.records { walRecord(record) }
        }
        count(snapshot.datastore.count, limit: entriesMax, "datastore records")
        for record in snapshot.datastore { datastoreRecord(record) }
    }
}

// MARK: - Reading values

extension BinaryReader {
    mutating func account(_ what: String) throws(CodecError) -> AccountID {
        let start = offset
        let value = try unsigned(what)
        guard value >= 1 else { throw failure("\(what) is 0; account ids start at 1", at: start) }
        return AccountID(value)
    }

    mutating func amount(_ what: String) throws(CodecError) -> Amount {
        let start = offset
        let value = try unsigned(what)
        guard value >= 1 else { throw failure("\(what) is 0; amounts are positive", at: start) }
        guard value <= UInt64(Int64.max) else {
            throw failure("\(what) \(value) is over the largest amount \(Int64.max)", at: start)
        }
        return Amount(Int64(value))
    }

    mutating func transaction(_ what: String) throws(CodecError) -> TransactionID {
        let client = try unsigned("the client of \(what)")
        let sequence = try unsigned("the sequence number of \(what)")
        return TransactionID(client: client, sequence: sequence)
    }

    mutating func ballot(_ what: String) throws(CodecError) -> Ballot {
        let round = try unsigned("the round of \(what)")
        let start = offset
        let index = try signed("the replica of \(what)")
        guard let replica = Int(exactly: index) else {
            throw failure("the replica of \(what) is \(index), which does not fit in Int", at: start)
        }
        return Ballot(round: round, replica: ReplicaID(replica))
    }

    /// A ballot some leader proposed under: round 1 or more, replica index 1 or more (`Ballot.zero` is below every
    /// proposal).
    mutating func proposalBallot(_ what: String) throws(CodecError) -> Ballot {
        let start = offset
        let ballot = try self.ballot(what)
        guard ballot.round >= 1 else {
            throw failure("the round of \(what) is 0; proposals have round 1 or more", at: start)
        }
        guard ballot.replica.index >= 1 else {
            throw failure("the replica of \(what) is \(ballot.replica.index); replica indices start at 1", at: start)
        }
        return ballot
    }

    mutating func tag(_ what: String, max: UInt8) throws(CodecError) -> UInt8 {
        let start = offset
        let tag = try byte("the tag of \(what)")
        guard (1...max).contains(tag) else { throw failure("unknown tag \(tag) of \(what)", at: start) }
        return tag
    }

    mutating func clusterName(_ what: String) throws(CodecError) -> String {
        try string(what, limit: CodecLimits.clusterNameBytesMax, limitName: "clusterNameBytesMax")
    }

    mutating func clusterNames() throws(CodecError) -> [String] {
        let count = try self.count("participants", limit: CodecLimits.participantsMax, limitName: "participantsMax")
        var names: [String] = []
        names.reserveCapacity(count)
        for _ in 0..<count { names.append(try clusterName("a participant")) }
        return names
    }

    mutating func changes() throws(CodecError) -> [AccountChange] {
        let count = try self.count(
            "account changes", limit: CodecLimits.changesPerPrepareMax, limitName: "changesPerPrepareMax")
        var changes: [AccountChange] = []
        changes.reserveCapacity(count)
        for _ in 0..<count {
            let account = try self.account("the account of a change")
            let start = offset
            let delta = try signed("the change to account \(account)")
            guard delta != 0 else {
                throw failure("the change to account \(account) is 0; a change moves money", at: start)
            }
            changes.append(AccountChange(account: account, delta: delta))
        }
        return changes
    }

    mutating func crossShardTransfer() throws(CodecError) -> CrossShardTransfer {
        let from = try account("the from account of a cross-shard transfer")
        let to = try account("the to account of a cross-shard transfer")
        let amount = try self.amount("the amount of a cross-shard transfer")
        let home = try clusterName("the home cluster")
        return CrossShardTransfer(from: from, to: to, amount: amount, home: home, participants: try clusterNames())
    }

    mutating func terms() throws(CodecError) -> TransactionTerms {
        guard try tag("the terms of a transaction", max: 2) == 2 else { return .transfer(try crossShardTransfer()) }
        let account = try self.account("the account of a move")
        let balance = try signed("the balance of moving account \(account)")
        let source = try clusterName("the source of a move")
        return .move(account, balance: balance, source: source, target: try clusterName("the target of a move"))
    }

    mutating func transactionRecord() throws(CodecError) -> (status: LedgerState.Status, opening: LedgerCommand?) {
        let status = try self.status()
        let start = offset
        switch try byte("whether a transaction has its opening") {
        case 0: return (status, nil)
        case 1:
            let opening = try command()
            switch opening {
            case .transfer, .prepare, .prepareMove: return (status, opening)
            default: throw failure("a transaction is opened by \(opening.summary)", at: start)
            }
        case let flag: throw failure("flag \(flag) of a transaction's opening is neither 0 nor 1", at: start)
        }
    }

    mutating func command() throws(CodecError) -> LedgerCommand {
        switch try tag("a command", max: version >= 4 ? 10 : 8) {
        case 1:
            let id = try transaction("a transfer")
            let from = try account("the from account of a transfer")
            let to = try account("the to account of a transfer")
            let amount = try self.amount("the amount of a transfer")
            return .transfer(id, from: from, to: to, amount: amount)
        case 2:
            let id = try transaction("a prepare")
            return .prepare(id, try crossShardTransfer())
        case 3:
            return .commit(try transaction("a commit"))
        case 4:
            return .abort(try transaction("an abort"))
        case 6:
            let id = try transaction("a move's prepare")
            let home = try clusterName("the home cluster")
            let participants = try clusterNames()
            return .prepareMove(id, home: home, participants: participants, part: try movePart())
        case 7:
            let id = try transaction("the home's commit")
            return .decideCommit(id, agreed: try terms())
        case 8:
            let id = try transaction("a followed decision")
            let start = offset
            switch try byte("the decision followed") {
            case 0: return .follow(id, committed: false)
            case 1: return .follow(id, committed: true)
            case let flag: throw failure("decision \(flag) is neither 0 (abort) nor 1 (commit)", at: start)
            }
        case 9:
            let client = try unsigned("the client of a release")
            return .release(client: client, floor: try unsigned("the floor of a release"))
        case 10:
            return .delivered(try transaction("a delivered commit"))
        default:
            let count = try self.count(
                "account ranges", limit: CodecLimits.rangesPerCommandMax, limitName: "rangesPerCommandMax")
            var ranges: [ClosedRange<AccountID>] = []
            ranges.reserveCapacity(count)
            for _ in 0..<count {
                let start = offset
                let lower = try account("the first account of a range")
                let upper = try account("the last account of a range")
                guard lower <= upper else {
                    throw failure("account range \(lower)...\(upper) ends before it starts", at: start)
                }
                ranges.append(lower...upper)
            }
            let balance = try signed("the initial balance")
            return .createAccounts(ranges, balance: balance)
        }
    }

    mutating func movePart() throws(CodecError) -> MovePart {
        if try tag("a move", max: 2) == 1 {
            let account = try self.account("the account moving out")
            return .out(account, to: try clusterName("the cluster account \(account) moves to"))
        }
        let account = try self.account("the account moving in")
        let balance = try signed("the balance of account \(account)")
        return .into(account, balance: balance, from: try clusterName("the cluster account \(account) moves from"))
    }

    mutating func slotValue() throws(CodecError) -> SlotValue<LedgerCommand> {
        let tag = try tag("a slot value", max: 3)
        let proposer = try proposalBallot("the ballot that proposed a slot value")
        if tag == 1 { return .noop(ballot: proposer) }
        if tag == 3 {
            let client = try unsigned("the client of a reconfiguration")
            let sequence = try unsigned("the sequence number of a reconfiguration")
            let membership = try self.membership("the configuration of a reconfiguration")
            return .reconfigure(
                Reconfiguration(id: RequestID(client: client, sequence: sequence), membership: membership),
                ballot: proposer)
        }
        let count = try self.count(
            "requests of a slot", limit: CodecLimits.requestsPerSlotMax, limitName: "requestsPerSlotMax")
        var requests: [Request<LedgerCommand>] = []
        requests.reserveCapacity(count)
        for _ in 0..<count {
            let client = try unsigned("the client of a request")
            let sequence = try unsigned("the sequence number of a request")
            let command = try self.command()
            requests.append(Request(id: RequestID(client: client, sequence: sequence), command: command))
        }
        return .batch(requests, ballot: proposer)
    }

    /// Replica ids in ascending order, each once (the one encoding of a set).
    mutating func replicas(_ what: String, limit: Int, limitName: String) throws(CodecError) -> [ReplicaID] {
        let count = try self.count(what, limit: limit, limitName: limitName)
        var replicas: [ReplicaID] = []
        replicas.reserveCapacity(count)
        for _ in 0..<count {
            let start = offset
            let index = try unsigned("a replica of the \(what)")
            guard index >= 1, let replica = Int(exactly: index) else {
                throw failure("replica index \(index) among the \(what); indices start at 1", at: start)
            }
            if let previous = replicas.last, previous.index >= replica {
                throw failure(
                    "the \(what) are not in ascending order, each once: S\(replica) after \(previous)", at: start)
            }
            replicas.append(ReplicaID(replica))
        }
        return replicas
    }

    mutating func membership(_ what: String) throws(CodecError) -> Membership {
        let epoch = try unsigned("the epoch of \(what)")
        let limit = CodecLimits.replicasPerMembershipMax
        let voters = try replicas("voters", limit: limit, limitName: "replicasPerMembershipMax")
        let learners = try replicas("learners", limit: limit, limitName: "replicasPerMembershipMax")
        return Membership(epoch: epoch, voters: voters, learners: learners)
    }

    mutating func memberships() throws(CodecError) -> Memberships {
        let start = offset
        let count = try self.count(
            "configurations", limit: CodecLimits.membershipErasMax, limitName: "membershipErasMax")
        guard count > 0 else { throw failure("a history of no configuration", at: start) }
        var eras: [Memberships.Era] = []
        for _ in 0..<count {
            let chosenAt = try unsigned("the slot that chose a configuration")
            let from = try unsigned("the first slot a configuration governs")
            let membership = try membership("a configuration")
            let retired = try replicas(
                "retired replicas", limit: CodecLimits.retiredReplicasMax, limitName: "retiredReplicasMax")
            eras.append(Memberships.Era(chosenAt: chosenAt, from: from, membership: membership, retired: retired))
        }
        guard let memberships = Memberships(eras: eras) else {
            throw failure(
                "the configurations do not ascend in slot and epoch by one, or forget a retired replica: "
                    + eras.map { "\($0.membership) from slot \($0.from)" }.joined(separator: "; "), at: start)
        }
        return memberships
    }

    mutating func abortReason() throws(CodecError) -> AbortReason {
        switch try tag("an abort reason", max: 8) {
        case 1:
            let account = try self.account("the account short of funds")
            return .insufficientFunds(account, balance: try signed("the balance of account \(account)"))
        case 2:
            let account = try self.account("the locked account")
            return .locked(account, by: try transaction("the lock owner"))
        case 3:
            return .unknownAccount(try account("the unknown account"))
        case 4:
            return .balanceOverflow(try account("the overflowing account"))
        case 5:
            return .aborted
        case 7:
            let account = try self.account("the moving account")
            return .moving(account, to: try clusterName("the cluster account \(account) moves to"))
        case 8:
            let account = try self.account("the moved account")
            return .moved(account, to: try clusterName("the cluster account \(account) moved to"))
        default:
            return .invalid(
                try string("the abort explanation", limit: CodecLimits.textBytesMax, limitName: "textBytesMax"))
        }
    }

    mutating func status() throws(CodecError) -> LedgerState.Status {
        let tag = try tag("a transaction status", max: 4)
        switch tag {
        case 1:
            return .committed
        case 2:
            return .aborted(try abortReason())
        default:
            let home = try clusterName("the home cluster")
            let participants = try clusterNames()
            let move = tag == 4 ? try movePart() : nil
            let changes = tag == 3 ? try self.changes() : []
            let slot = try unsigned("the slot of a prepare")
            return .prepared(
                LedgerState.Prepared(home: home, participants: participants, changes: changes, move: move, slot: slot))
        }
    }

    mutating func walRecord() throws(CodecError) -> WALRecord {
        let id = try transaction("a WAL record")
        let tag = try tag("a WAL record", max: 6)
        switch tag {
        case 1:
            return WALRecord(transaction: id, kind: .start)
        case 2:
            let account = try self.account("the account of a WAL update")
            let old = try signed("the old balance of account \(account)")
            let new = try signed("the new balance of account \(account)")
            return WALRecord(transaction: id, kind: .update(account, old: old, new: new))
        case 3:
            return WALRecord(transaction: id, kind: .commit)
        case 4:
            return WALRecord(transaction: id, kind: .abort)
        default:
            let (account, balance, cluster) = try moveDetails()
            return WALRecord(
                transaction: id,
                kind: tag == 5
                    ? .moveOut(account, balance: balance, to: cluster)
                    : .moveIn(account, balance: balance, from: cluster))
        }
    }

    mutating func datastoreRecord() throws(CodecError) -> DatastoreRecord {
        let id = try transaction("a datastore record")
        let kind: DatastoreRecord.Kind
        switch try tag("a datastore record", max: 4) {
        case 1:
            let from = try account("the from account of a transfer")
            let to = try account("the to account of a transfer")
            kind = .transfer(from: from, to: to, amount: try amount("the amount of a transfer"))
        case 2:
            kind = .crossShard(try changes())
        case 3:
            let (account, balance, cluster) = try moveDetails()
            kind = .moveOut(account, balance: balance, to: cluster)
        default:
            let (account, balance, cluster) = try moveDetails()
            kind = .moveIn(account, balance: balance, from: cluster)
        }
        let slot = try unsigned("the slot of a datastore record")
        let ballot = try self.ballot("a datastore record")
        return DatastoreRecord(transaction: id, kind: kind, slot: slot, ballot: ballot)
    }

    /// The account, balance and other cluster of a move record.
    private mutating func moveDetails() throws(CodecError) -> (AccountID, Int64, String) {
        let account = try self.account("the moved account")
        let balance = try signed("the balance of moved account \(account)")
        return (account, balance, try clusterName("the other cluster of moved account \(account)"))
    }

    /// A count of snapshot entries, with their keys checked to ascend (which also refuses duplicates).
    private mutating func snapshotCount(_ what: String) throws(CodecError) -> Int {
        try count(what, limit: CodecLimits.snapshotEntriesMax, limitName: "snapshotEntriesMax")
    }

    /// Refuses a map key that does not come after the previous one; `name` says it in words (`account 5`).
    private func ascending<Key: Comparable>(
        _ key: Key, after previous: Key?, name: (Key) -> String, in what: String, at start: Int
    ) throws(CodecError) {
        guard let previous else { return }
        if key == previous { throw failure("\(name(key)) appears twice in the \(what)", at: start) }
        if key < previous {
            throw failure("\(name(key)) follows \(name(previous)) in the \(what); keys must ascend", at: start)
        }
    }

    mutating func snapshot() throws(CodecError) -> LedgerSnapshot {
        let stateStart = offset
        let cluster = try clusterName("the cluster of the ledger")
        let minBalance = try signed("the minimum balance")

        var balances: [AccountID: Int64] = [:]
        var previousAccount: AccountID?
        let balanceCount = try snapshotCount("balances")
        balances.reserveCapacity(balanceCount)
        for _ in 0..<balanceCount {
            let start = offset
            let account = try self.account("an account of the balances")
            try ascending(account, after: previousAccount, name: { "account \($0)" }, in: "balances", at: start)
            balances[account] = try signed("the balance of account \(account)")
            previousAccount = account
        }

        var locks: [AccountID: TransactionID] = [:]
        previousAccount = nil
        for _ in 0..<(try snapshotCount("locks")) {
            let start = offset
            let account = try self.account("a locked account")
            try ascending(account, after: previousAccount, name: { "account \($0)" }, in: "locks", at: start)
            locks[account] = try transaction("the owner of a lock")
            previousAccount = account
        }

        var transactions: [TransactionID: LedgerState.Status] = [:]
        var openings: [TransactionID: LedgerCommand] = [:]
        var previousTransaction: TransactionID?
        let transactionCount = try snapshotCount("transactions")
        transactions.reserveCapacity(transactionCount)
        for _ in 0..<transactionCount {
            let start = offset
            let id = try transaction("a transaction")
            try ascending(id, after: previousTransaction, name: { "transaction \($0)" }, in: "transactions", at: start)
            let record = try transactionRecord()
            transactions[id] = record.status
            openings[id] = record.opening
            previousTransaction = id
        }

        var movedOut: [AccountID: String] = [:]
        previousAccount = nil
        for _ in 0..<(try snapshotCount("moved-out accounts")) {
            let start = offset
            let account = try self.account("a moved-out account")
            try ascending(
                account, after: previousAccount, name: { "account \($0)" }, in: "moved-out accounts", at: start)
            movedOut[account] = try clusterName("the cluster account \(account) moved to")
            previousAccount = account
        }

        var sessions: [UInt64: LedgerState.Session] = [:]
        var retiredClients: UInt64 = 0
        var undelivered: Set<TransactionID> = []
        if version >= 4 {
            var previousClient: UInt64?
            for _ in 0..<(try snapshotCount("client sessions")) {
                let start = offset
                let client = try unsigned("the client of a session")
                try ascending(client, after: previousClient, name: { "client \($0)" }, in: "client sessions", at: start)
                let floor = try unsigned("the floor of client \(client)")
                sessions[client] = LedgerState.Session(
                    floor: floor, lastSlot: try unsigned("the last slot of client \(client)"))
                previousClient = client
            }
            retiredClients = try unsigned("the retired clients")
            previousTransaction = nil
            for _ in 0..<(try snapshotCount("undelivered commits")) {
                let start = offset
                let id = try transaction("an undelivered commit")
                try ascending(
                    id, after: previousTransaction, name: { "transaction \($0)" }, in: "undelivered commits", at: start)
                undelivered.insert(id)
                previousTransaction = id
            }
        }

        let state: LedgerState
        do {
            state = try LedgerState(
                cluster: cluster, minBalance: minBalance, balances: balances, locks: locks,
                transactions: transactions, openings: openings, movedOut: movedOut, sessions: sessions,
                retiredClients: retiredClients, undelivered: undelivered)
        } catch {
            throw failure("the ledger state breaks an invariant: \(error.description)", at: stateStart)
        }

        var historyAfter: Slot?
        var entries: [WALEntry] = []
        if version >= 4 {
            let start = offset
            switch try byte("whether the history is partial") {
            case 0: historyAfter = nil
            case 1: historyAfter = try unsigned("the slot the history follows")
            case let flag: throw failure("history flag \(flag) is neither 0 (whole) nor 1 (after a slot)", at: start)
            }
            let rows = try snapshotCount("WAL rows")
            entries.reserveCapacity(rows)
            for _ in 0..<rows {
                let slot = try unsigned("the slot of a WAL row")
                let count = try self.count(
                    "WAL records of a row", limit: CodecLimits.walRecordsPerListMax, limitName: "walRecordsPerListMax")
                var records: [WALRecord] = []
                for _ in 0..<count { records.append(try walRecord()) }
                entries.append(WALEntry(slot: slot, records: records))
            }
        } else {
            for _ in 0..<(try snapshotCount("WAL records")) {
                entries.append(WALEntry(slot: 0, records: [try walRecord()]))
            }
        }

        var datastore: [DatastoreRecord] = []
        let datastoreCount = try snapshotCount("datastore records")
        datastore.reserveCapacity(datastoreCount)
        for _ in 0..<datastoreCount { datastore.append(try datastoreRecord()) }

        return LedgerSnapshot(state: state, walEntries: entries, datastore: datastore, historyAfter: historyAfter)
    }
}
