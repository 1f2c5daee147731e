import LedgerCore
import Paxos

// Conversions of what the inspection calls return: WAL and datastore records, their pages, a replica's status
// and its local balance.

// MARK: - WAL records

extension Ledger_V1_WalRecord {
    public init(_ record: WALRecord) {
        self.init()
        transaction = Ledger_V1_TransactionId(record.transaction)
        switch record.kind {
        case .start: kind = .start
        case .update(let account, let old, let new):
            kind = .update
            self.account = account.value
            oldBalance = old
            newBalance = new
        case .commit: kind = .commit
        case .abort: kind = .abort
        case .moveOut(let account, let balance, let to):
            kind = .moveOut
            self.account = account.value
            newBalance = balance
            cluster = to
        case .moveIn(let account, let balance, let from):
            kind = .moveIn
            self.account = account.value
            newBalance = balance
            cluster = from
        }
    }
}

extension WALRecord {
    /// Reads a WAL record: a valid transaction id and a known kind; an update names an account.
    public init(wire: Ledger_V1_WalRecord) throws(WireError) {
        let id = try TransactionID.required(
            wire: wire.transaction, isPresent: wire.hasTransaction, field: "transaction")
        switch wire.kind {
        case .start: self.init(transaction: id, kind: .start)
        case .update:
            let account = try AccountID(wire: wire.account)
            self.init(transaction: id, kind: .update(account, old: wire.oldBalance, new: wire.newBalance))
        case .commit: self.init(transaction: id, kind: .commit)
        case .abort: self.init(transaction: id, kind: .abort)
        case .moveOut:
            let account = try AccountID(wire: wire.account)
            let to = try clusterName(wire.cluster, field: "cluster")
            self.init(transaction: id, kind: .moveOut(account, balance: wire.newBalance, to: to))
        case .moveIn:
            let account = try AccountID(wire: wire.account)
            let from = try clusterName(wire.cluster, field: "cluster")
            self.init(transaction: id, kind: .moveIn(account, balance: wire.newBalance, from: from))
        case .unspecified: throw WireError(field: "kind", "is not set (WAL_RECORD_KIND_UNSPECIFIED)")
        case .UNRECOGNIZED(let value): throw WireError(field: "kind", "is \(value), not a known WAL record kind")
        }
    }
}

// MARK: - Datastore records

extension Ledger_V1_DatastoreRecord {
    public init(_ record: DatastoreRecord) {
        self.init()
        transaction = Ledger_V1_TransactionId(record.transaction)
        switch record.kind {
        case .transfer(let from, let to, let amount):
            kind = .transfer(
                Ledger_V1_TransferDetails.with {
                    $0.from = from.value
                    $0.to = to.value
                    $0.amount = UInt64(amount.value)
                })
        case .crossShard(let changes):
            kind = .crossShard(
                Ledger_V1_CrossShardChanges.with { $0.changes = changes.map(Ledger_V1_AccountChange.init) })
        case .moveOut(let account, let balance, let to):
            kind = .moveOut(Ledger_V1_MoveDetails(account: account, balance: balance, cluster: to))
        case .moveIn(let account, let balance, let from):
            kind = .moveIn(Ledger_V1_MoveDetails(account: account, balance: balance, cluster: from))
        }
        slot = record.slot
        ballot = Ledger_V1_Ballot(record.ballot)
    }
}

extension DatastoreRecord {
    /// Reads a datastore record: a valid transaction, a transfer or cross-shard changes, slot >= 1, a ballot.
    public init(wire: Ledger_V1_DatastoreRecord) throws(WireError) {
        let id = try TransactionID.required(
            wire: wire.transaction, isPresent: wire.hasTransaction, field: "transaction")
        let kind: Kind
        switch wire.kind {
        case .transfer(let transfer):
            kind = try within("transfer") { () throws(WireError) in
                .transfer(
                    from: try AccountID(wire: transfer.from, field: "from"),
                    to: try AccountID(wire: transfer.to, field: "to"),
                    amount: try Amount(wire: transfer.amount))
            }
        case .crossShard(let crossShard):
            kind = .crossShard(
                try within("cross_shard") { () throws(WireError) in
                    try accountChanges(crossShard.changes, field: "changes")
                })
        case .moveOut(let move):
            let (account, balance, cluster) = try within("move_out") { () throws(WireError) in try move.decoded() }
            kind = .moveOut(account, balance: balance, to: cluster)
        case .moveIn(let move):
            let (account, balance, cluster) = try within("move_in") { () throws(WireError) in try move.decoded() }
            kind = .moveIn(account, balance: balance, from: cluster)
        case nil:
            throw WireError(
                field: "kind", "is not set; a datastore record is a transfer, cross_shard, move_out or move_in")
        }
        let slot = try logSlot(wire.slot, field: "slot")
        let ballot = try Ballot.required(wire: wire.ballot, isPresent: wire.hasBallot, field: "ballot")
        self.init(transaction: id, kind: kind, slot: slot, ballot: ballot)
    }
}

extension Ledger_V1_MoveDetails {
    init(account: AccountID, balance: Int64, cluster: String) {
        self.init()
        self.account = account.value
        self.balance = balance
        self.cluster = cluster
    }

    func decoded() throws(WireError) -> (AccountID, Int64, String) {
        (try AccountID(wire: account, field: "account"), balance, try clusterName(cluster, field: "cluster"))
    }
}

// MARK: - Pages

/// One page of a replica's records (WAL or datastore), as the `Logs` and `Datastore` calls return them.
public struct RecordPage<Record: Hashable & Sendable>: Hashable, Sendable {
    /// The replica that answered.
    public var replica: ReplicaID
    /// At most `WireLimits.recordsPerPageMax` records, in log order.
    public var records: [Record]
    /// The position of the first record of the next page; nil when this page ends the history.
    public var nextStart: UInt64?

    public init(replica: ReplicaID, records: [Record], nextStart: UInt64?) {
        self.replica = replica
        self.records = records
        self.nextStart = nextStart
    }
}

extension Ledger_V1_LogsReply {
    public init(_ page: RecordPage<WALRecord>) {
        self.init()
        replica = page.replica.description
        records = page.records.map(Ledger_V1_WalRecord.init)
        if let next = page.nextStart { nextStart = next }
    }
}

extension Ledger_V1_DatastoreReply {
    public init(_ page: RecordPage<DatastoreRecord>) {
        self.init()
        replica = page.replica.description
        records = page.records.map(Ledger_V1_DatastoreRecord.init)
        if let next = page.nextStart { nextStart = next }
    }
}

extension RecordPage where Record == WALRecord {
    /// Reads a page of `Logs`.
    public init(wire: Ledger_V1_LogsReply) throws(WireError) {
        let replica = try ReplicaID(wireName: wire.replica)
        let records = try decodeEach(
            wire.records, field: "records", atMost: WireLimits.recordsPerPageMax, limitName: "recordsPerPageMax"
        ) { (record) throws(WireError) in try WALRecord(wire: record) }
        self.init(replica: replica, records: records, nextStart: wire.hasNextStart ? wire.nextStart : nil)
    }
}

extension RecordPage where Record == DatastoreRecord {
    /// Reads a page of `Datastore`.
    public init(wire: Ledger_V1_DatastoreReply) throws(WireError) {
        let replica = try ReplicaID(wireName: wire.replica)
        let records = try decodeEach(
            wire.records, field: "records", atMost: WireLimits.recordsPerPageMax, limitName: "recordsPerPageMax"
        ) { (record) throws(WireError) in try DatastoreRecord(wire: record) }
        self.init(replica: replica, records: records, nextStart: wire.hasNextStart ? wire.nextStart : nil)
    }
}

// MARK: - Status

/// What the `Status` call reports about one replica.
public struct ReplicaStatus: Equatable, Sendable {
    /// The cluster, `C<n>`.
    public var cluster: String
    public var replica: ReplicaID
    public var role: Role
    /// The ballot this replica leads or campaigns with, else the one it promised.
    public var ballot: Ballot
    /// The leader this replica knows of.
    public var leader: ReplicaID?
    /// Every slot up to here is known chosen.
    public var chosenThrough: Slot
    /// Every slot up to here is applied.
    public var appliedThrough: Slot
    /// Accounts locked by prepared cross-shard transactions.
    public var locksHeld: Int
    /// The slot of the latest snapshot; 0 when there is none.
    public var snapshotSlot: Slot
    /// Whether the replica is disconnected (test sets).
    public var isDisconnected: Bool
    /// `LedgerRPC.protocolVersion` of the replica.
    public var protocolVersion: Int
    /// The latest configuration the replica knows (nil from a replica that does not say).
    public var membership: Membership?
    /// The leader only: each other member's chosen prefix as it last reported it.
    public var progress: [ReplicaID: Slot]
    /// The replica was removed from its cluster and stopped taking part.
    public var isRetired: Bool
    /// Accounts the replica's ledger holds.
    public var accountsHeld: Int
    /// The other clusters its cross-shard transactions still wait on (homes of those it holds prepared, participants
    /// of those it committed as their home and has not seen applied there), sorted.
    public var waitingOn: [String]

    public init(
        cluster: String, replica: ReplicaID, role: Role, ballot: Ballot, leader: ReplicaID?, chosenThrough: Slot,
        appliedThrough: Slot, locksHeld: Int, snapshotSlot: Slot, isDisconnected: Bool,
        protocolVersion: Int = LedgerRPC.protocolVersion, membership: Membership? = nil,
        progress: [ReplicaID: Slot] = [:], isRetired: Bool = false, accountsHeld: Int = 0, waitingOn: [String] = []
    ) {
        precondition(accountsHeld >= 0, "counts are never negative")
        self.accountsHeld = accountsHeld
        self.waitingOn = waitingOn
        self.membership = membership
        self.progress = progress
        self.isRetired = isRetired
        self.cluster = cluster
        self.replica = replica
        self.role = role
        self.ballot = ballot
        self.leader = leader
        self.chosenThrough = chosenThrough
        self.appliedThrough = appliedThrough
        self.locksHeld = locksHeld
        self.snapshotSlot = snapshotSlot
        self.isDisconnected = isDisconnected
        self.protocolVersion = protocolVersion
    }
}

extension Ledger_V1_Role {
    public init(_ role: Role) {
        switch role {
        case .follower: self = .follower
        case .candidate: self = .candidate
        case .leader: self = .leader
        }
    }
}

extension Role {
    /// Reads a role; an unset or unknown one is refused.
    public init(wire: Ledger_V1_Role) throws(WireError) {
        switch wire {
        case .follower: self = .follower
        case .candidate: self = .candidate
        case .leader: self = .leader
        case .unspecified: throw WireError(field: "role", "is not set (ROLE_UNSPECIFIED)")
        case .UNRECOGNIZED(let value): throw WireError(field: "role", "is \(value), not a known role")
        }
    }
}

extension Ledger_V1_StatusReply {
    public init(_ status: ReplicaStatus) {
        self.init()
        cluster = status.cluster
        replica = status.replica.description
        role = Ledger_V1_Role(status.role)
        ballot = Ledger_V1_Ballot(status.ballot)
        leader = status.leader?.description ?? ""
        chosenThrough = status.chosenThrough
        appliedThrough = status.appliedThrough
        precondition(status.locksHeld >= 0 && status.protocolVersion >= 0, "counts are never negative")
        locksHeld = UInt64(status.locksHeld)
        snapshotSlot = status.snapshotSlot
        disconnected = status.isDisconnected
        protocolVersion = UInt32(status.protocolVersion)
        if let membership = status.membership { configuration = Ledger_V1_MembershipConfiguration(membership) }
        progress = status.progress.sorted { $0.key < $1.key }.map { replica, slot in
            .with {
                $0.replica = replica.description
                $0.chosenThrough = slot
            }
        }
        retired = status.isRetired
        accountsHeld = UInt64(status.accountsHeld)
        waitingOn = status.waitingOn
    }
}

extension ReplicaStatus {
    /// Reads a `Status` reply.
    public init(wire: Ledger_V1_StatusReply) throws(WireError) {
        let cluster = try clusterName(wire.cluster, field: "cluster")
        let replica = try ReplicaID(wireName: wire.replica)
        let role = try Role(wire: wire.role)
        let ballot = try Ballot.required(wire: wire.ballot, isPresent: wire.hasBallot, field: "ballot")
        let leader = try ReplicaID.optional(wireName: wire.leader, field: "leader")
        guard let locksHeld = Int(exactly: wire.locksHeld) else {
            throw WireError(field: "locks_held", "is \(wire.locksHeld), more than a count can be")
        }
        guard let accountsHeld = Int(exactly: wire.accountsHeld) else {
            throw WireError(field: "accounts_held", "is \(wire.accountsHeld), more than a count can be")
        }
        let waitingOn = try wire.waitingOn.enumerated().map { index, name throws(WireError) in
            try clusterName(name, field: "waiting_on[\(index)]")
        }
        let membership =
            wire.hasConfiguration ? try Membership(wire: wire.configuration, field: "configuration") : nil
        var progress: [ReplicaID: Slot] = [:]
        for (index, peer) in wire.progress.enumerated() {
            let replica = try ReplicaID(wireName: peer.replica, field: "progress[\(index)].replica")
            guard progress.updateValue(peer.chosenThrough, forKey: replica) == nil else {
                throw WireError(field: "progress[\(index)].replica", "names \(replica) twice")
            }
        }
        self.init(
            cluster: cluster, replica: replica, role: role, ballot: ballot, leader: leader,
            chosenThrough: wire.chosenThrough, appliedThrough: wire.appliedThrough, locksHeld: locksHeld,
            snapshotSlot: wire.snapshotSlot, isDisconnected: wire.disconnected,
            protocolVersion: Int(wire.protocolVersion), membership: membership, progress: progress,
            isRetired: wire.retired, accountsHeld: accountsHeld, waitingOn: waitingOn)
    }
}

// MARK: - Membership

extension Ledger_V1_MembershipConfiguration {
    public init(_ membership: Membership) {
        self.init()
        epoch = membership.epoch
        voters = membership.voters.map(\.description)
        learners = membership.learners.map(\.description)
    }
}

extension Membership {
    /// Reads a configuration: an epoch from 1, at least one voter, no replica named twice.
    public init(wire: Ledger_V1_MembershipConfiguration, field: String) throws(WireError) {
        guard wire.epoch >= 1 else { throw WireError(field: "\(field).epoch", "is 0; epochs count from 1") }
        var voters: [ReplicaID] = []
        var learners: [ReplicaID] = []
        for (index, name) in wire.voters.enumerated() {
            voters.append(try ReplicaID(wireName: name, field: "\(field).voters[\(index)]"))
        }
        for (index, name) in wire.learners.enumerated() {
            learners.append(try ReplicaID(wireName: name, field: "\(field).learners[\(index)]"))
        }
        guard !voters.isEmpty else {
            throw WireError(field: "\(field).voters", "is empty; a configuration has a voter")
        }
        guard Set(voters + learners).count == voters.count + learners.count else {
            throw WireError(field: field, "names a replica twice")
        }
        self.init(epoch: wire.epoch, voters: voters, learners: learners)
    }
}

extension MembershipChange {
    /// Reads a `ChangeMembership` request's change.
    public init(wire: Ledger_V1_ChangeMembershipRequest) throws(WireError) {
        let replica = try ReplicaID(wireName: wire.replica)
        switch wire.kind {
        case .addLearner: self = .addLearner(replica)
        case .promote: self = .promote(replica)
        case .remove: self = .remove(replica)
        case .replace:
            let replacement = try ReplicaID(wireName: wire.replacement, field: "replacement")
            guard replacement != replica else {
                throw WireError(field: "replacement", "is \(replica), the replica it replaces")
            }
            self = .replace(replica, with: replacement)
        case .unspecified: throw WireError(field: "kind", "is not set (MEMBERSHIP_CHANGE_KIND_UNSPECIFIED)")
        case .UNRECOGNIZED(let value): throw WireError(field: "kind", "is \(value), not a known change")
        }
        if case .replace = self {
        } else if !wire.replacement.isEmpty {
            throw WireError(field: "replacement", "is given, but only REPLACE takes one")
        }
    }
}

extension Ledger_V1_ChangeMembershipRequest {
    public init(cluster: String, change: MembershipChange) {
        self.init()
        self.cluster = cluster
        switch change {
        case .addLearner(let replica):
            (kind, self.replica) = (.addLearner, replica.description)
        case .promote(let replica):
            (kind, self.replica) = (.promote, replica.description)
        case .remove(let replica):
            (kind, self.replica) = (.remove, replica.description)
        case .replace(let old, let new):
            (kind, self.replica, replacement) = (.replace, old.description, new.description)
        }
    }
}

/// What became of a membership change: its outcome as a command's (`.applied(.committed)` when it is in effect), the
/// configuration after it (the current one when refused; nil when the replica could not tell), and the slot that
/// chose it (nil: nothing chosen).
public struct MembershipChangeOutcome: Sendable, Equatable {
    public var outcome: CommandOutcome
    public var membership: Membership?
    public var slot: Slot?

    public init(outcome: CommandOutcome, membership: Membership?, slot: Slot?) {
        self.outcome = outcome
        self.membership = membership
        self.slot = slot
    }
}

extension Ledger_V1_ChangeMembershipReply {
    public init(_ answer: MembershipChangeOutcome) {
        self.init()
        result = Ledger_V1_Result(answer.outcome)
        if let membership = answer.membership { configuration = Ledger_V1_MembershipConfiguration(membership) }
        slot = answer.slot ?? 0
    }
}

extension MembershipChangeOutcome {
    /// Reads a `ChangeMembership` reply.
    public init(wire: Ledger_V1_ChangeMembershipReply) throws(WireError) {
        guard wire.hasResult else { throw WireError(field: "result", "is missing") }
        self.init(
            outcome: try within("result") { () throws(WireError) in try CommandOutcome(wire: wire.result) },
            membership: wire.hasConfiguration ? try Membership(wire: wire.configuration, field: "configuration") : nil,
            slot: wire.slot == 0 ? nil : wire.slot)
    }
}

// MARK: - Local balance

/// What the `LocalBalance` call (PrintBalance) reports: one replica's own, possibly stale, value of an account.
public struct LocalBalance: Hashable, Sendable {
    /// The replica that answered.
    public var replica: ReplicaID
    /// The balance, nil when this replica has no such account.
    public var balance: Int64?
    /// Whether the replica is disconnected (its value may be stale).
    public var isDisconnected: Bool
    /// The value reflects every slot up to here.
    public var appliedThrough: Slot

    public init(replica: ReplicaID, balance: Int64?, isDisconnected: Bool, appliedThrough: Slot) {
        self.replica = replica
        self.balance = balance
        self.isDisconnected = isDisconnected
        self.appliedThrough = appliedThrough
    }
}

extension Ledger_V1_LocalBalanceReply {
    public init(_ local: LocalBalance) {
        self.init()
        replica = local.replica.description
        found = local.balance != nil
        balance = local.balance ?? 0
        disconnected = local.isDisconnected
        appliedThrough = local.appliedThrough
    }
}

extension LocalBalance {
    /// Reads a `LocalBalance` reply.
    public init(wire: Ledger_V1_LocalBalanceReply) throws(WireError) {
        self.init(
            replica: try ReplicaID(wireName: wire.replica), balance: wire.found ? wire.balance : nil,
            isDisconnected: wire.disconnected, appliedThrough: wire.appliedThrough)
    }
}
