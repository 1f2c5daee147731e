/// Who votes and who only learns in one configuration of a cluster. `epoch` numbers the configurations in the order
/// the log chose them, from the deployment's first (epoch 1).
///
/// A voter is an acceptor whose acceptance counts towards a majority; a learner receives every chosen value (and
/// accepts proposals, so it is ready to vote once promoted) but is never counted and never campaigns.
public struct Membership: Sendable, Hashable, CustomStringConvertible {
    public var epoch: UInt64
    public private(set) var voters: [ReplicaID]
    public private(set) var learners: [ReplicaID]

    /// - Parameters: `voters` and `learners` in any order; they are kept sorted.
    public init(epoch: UInt64, voters: [ReplicaID], learners: [ReplicaID] = []) {
        self.epoch = epoch
        self.voters = voters.sorted()
        self.learners = learners.sorted()
    }

    /// The smallest number of voters that forms a majority.
    public var majority: Int { voters.count / 2 + 1 }

    /// Voters and learners, sorted.
    public var members: [ReplicaID] { (voters + learners).sorted() }

    public func isVoter(_ replica: ReplicaID) -> Bool { voters.contains(replica) }

    public func contains(_ replica: ReplicaID) -> Bool { voters.contains(replica) || learners.contains(replica) }

    /// Whether `replicas` hold a majority of the voters (learners and strangers among them count for nothing).
    public func isQuorum(_ replicas: Set<ReplicaID>) -> Bool {
        voters.reduce(0) { $0 + (replicas.contains($1) ? 1 : 0) } >= majority
    }

    public var description: String {
        let learning = learners.isEmpty ? "" : ", learners \(learners.map(\.description).joined(separator: " "))"
        return "epoch \(epoch): voters \(voters.map(\.description).joined(separator: " "))\(learning)"
    }
}

/// What an operator asks of a cluster's membership, one replica at a time (`shardctl member`). A new replica joins
/// as a learner, is promoted once it caught up, and takes a removed voter's place in one change (`replace`).
public enum MembershipChange: Sendable, Equatable, CustomStringConvertible {
    case addLearner(ReplicaID)
    case promote(ReplicaID)
    case remove(ReplicaID)
    /// The voter `old` leaves and the learner `new` becomes a voter, in one configuration.
    case replace(ReplicaID, with: ReplicaID)

    public var description: String {
        switch self {
        case .addLearner(let replica): "add \(replica) as a learner"
        case .promote(let replica): "promote \(replica) to voter"
        case .remove(let replica): "remove \(replica)"
        case .replace(let old, let new): "replace \(old) with \(new)"
        }
    }
}

extension Memberships {
    /// The configuration `change` asks for after the latest one: `.success(nil)` when the change is in effect
    /// already (asked again), `.failure(reason)` when it cannot be made. Checks only what the change names; the
    /// configuration it gives is checked by `problem(with:)` and the leader's safety checks as any other.
    public func applying(_ change: MembershipChange) -> Result<Membership?, MembershipChangeRefusal> {
        let current = latest
        func refused(_ reason: String) -> Result<Membership?, MembershipChangeRefusal> {
            .failure(MembershipChangeRefusal(reason: reason))
        }
        func next(voters: [ReplicaID], learners: [ReplicaID]) -> Result<Membership?, MembershipChangeRefusal> {
            .success(Membership(epoch: current.epoch + 1, voters: voters, learners: learners))
        }
        switch change {
        case .addLearner(let new):
            if current.learners.contains(new) { return .success(nil) }
            if current.isVoter(new) { return refused("\(new) is a voter already") }
            if retired.contains(new) { return refused("\(new) was removed before; a replica id is never reused") }
            if let other = current.learners.first {
                return refused("\(other) is learning already; promote or remove it first (one learner at a time)")
            }
            return next(voters: current.voters, learners: [new])
        case .promote(let learner):
            if current.isVoter(learner) { return .success(nil) }
            guard current.learners.contains(learner) else {
                return refused("\(learner) is not a learner of \(current); add it first")
            }
            return next(voters: current.voters + [learner], learners: current.learners.filter { $0 != learner })
        case .remove(let old):
            if retired.contains(old) { return .success(nil) }
            guard current.contains(old) else { return refused("\(old) is not a member of \(current)") }
            return next(voters: current.voters.filter { $0 != old }, learners: current.learners.filter { $0 != old })
        case .replace(let old, let new):
            if retired.contains(old), current.isVoter(new) { return .success(nil) }
            guard current.isVoter(old) else { return refused("\(old) is not a voter of \(current)") }
            guard current.learners.contains(new) else {
                return refused("\(new) is not a learner of \(current); add it and let it catch up first")
            }
            return next(
                voters: current.voters.filter { $0 != old } + [new], learners: current.learners.filter { $0 != new })
        }
    }
}

/// Why a membership change cannot be made as asked.
public struct MembershipChangeRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }

    public init(reason: String) {
        self.reason = reason
    }

    /// A leader's refusal while another change is asked, proposed, or chosen and not yet governing.
    public static let inProgress = "reconfiguration in progress"

    /// A leader's refusal while fewer than a majority of the new voters are live and caught up.
    public static func notReady(ready: Int, voters: Int) -> String {
        "only \(ready) of the \(voters) new voters are live and within \(Limits.caughtUpSlotsMax) slots of the leader; "
            + "a majority must be"
    }

    /// Whether a refusal holds for now only (`inProgress`, `notReady`): asking again later may succeed. Every other
    /// refusal is about the change itself and stands.
    public static func isTransient(_ reason: String) -> Bool {
        reason == inProgress || (reason.hasPrefix("only ") && reason.hasSuffix("a majority must be"))
    }
}

/// A request to change a cluster's membership, replicated as one slot of its own (`SlotValue.reconfigure`).
public struct Reconfiguration: Sendable, Equatable {
    /// Identifies the request, so its submitter gets the outcome and a retry is recognised.
    public var id: RequestID
    /// The configuration asked for; its epoch must be the current one plus one.
    public var membership: Membership

    public init(id: RequestID, membership: Membership) {
        self.id = id
        self.membership = membership
    }
}

/// A cluster's configurations, each with the slot that chose it and the first slot it governs (Lamport's alpha
/// window: a configuration chosen at slot j governs the slots from j + alpha on, alpha being the pipeline depth, so a
/// leader that proposes slot s has every slot up to s - alpha chosen and knows the configuration that counts the
/// votes of s). Derived from the chosen log alone, so every replica derives the same; carried in snapshots, because
/// the log below a snapshot is gone.
///
/// Invariants: `eras` is not empty and ascends in `from`, `chosenAt` and epoch (by one); each era's `retired` holds
/// every replica that was a member of an earlier configuration and is not in its own: such an id is never used
/// again.
public struct Memberships: Sendable, Equatable, CustomStringConvertible {
    public struct Era: Sendable, Equatable {
        /// The slot whose reconfiguration chose this configuration (0 for the deployment's first).
        public var chosenAt: Slot
        /// The first slot it governs.
        public var from: Slot
        public var membership: Membership
        /// The replicas removed by this configuration or an earlier one, sorted.
        public var retired: [ReplicaID]

        public init(chosenAt: Slot, from: Slot, membership: Membership, retired: [ReplicaID] = []) {
            self.chosenAt = chosenAt
            self.from = from
            self.membership = membership
            self.retired = retired.sorted()
        }
    }

    public private(set) var eras: [Era]
    /// The replicas removed so far (the last era's `retired`): never members again.
    public private(set) var retired: [ReplicaID] = []

    /// A deployment's first configuration, governing every slot from 1.
    public init(initial: Membership) {
        eras = [Era(chosenAt: 0, from: 1, membership: initial)]
    }

    /// Rebuilds a stored or received history; nil when it breaks an invariant (see the type).
    public init?(eras: [Era]) {
        guard !eras.isEmpty else { return nil }
        for (earlier, later) in zip(eras, eras.dropFirst())
        where later.from <= earlier.from || later.chosenAt <= earlier.chosenAt
            || later.membership.epoch != earlier.membership.epoch + 1
            || !Set(earlier.retired).isSubset(of: later.retired)
        {
            return nil
        }
        self.eras = eras
        self.retired = eras[eras.count - 1].retired
    }

    /// The history as a replica that applied through `slot` knows it (the configurations chosen after it left out).
    public func asOf(_ slot: Slot) -> Memberships {
        var known = self
        while known.eras.count > 1, known.eras[known.eras.count - 1].chosenAt > slot { known.eras.removeLast() }
        known.retired = known.eras[known.eras.count - 1].retired
        return known
    }

    /// The configuration chosen last, whether it governs a slot yet or not.
    public var latest: Membership { eras[eras.count - 1].membership }

    /// The configuration that counts the votes of `slot`.
    public func governing(_ slot: Slot) -> Membership {
        eras.last { $0.from <= slot }?.membership ?? eras[0].membership
    }

    /// The configuration chosen last by the end of `slot` (the one a replica that applied through `slot` knows).
    public func latest(asOf slot: Slot) -> Membership {
        eras.last { $0.chosenAt <= slot }?.membership ?? eras[0].membership
    }

    /// The configurations that govern some slot from `slot` on: the governing one, then those chosen for later slots.
    public func governingFrom(_ slot: Slot) -> [Membership] {
        let first = eras.lastIndex { $0.from <= slot } ?? 0
        return eras[first...].map(\.membership)
    }

    /// Whether a configuration chosen already governs only later slots (a change in progress).
    public func hasPending(at slot: Slot) -> Bool { eras[eras.count - 1].from > slot }

    /// Why `next` cannot follow the latest configuration, or nil. Checked when a reconfiguration is applied, so
    /// every replica refuses the same ones: the epoch must be the next, the voters neither empty nor two (a majority
    /// of two tolerates no failure), at most one learner, nobody both, and no retired id back.
    public func problem(with next: Membership) -> String? {
        let current = latest
        if next.epoch != current.epoch + 1 {
            return "epoch \(next.epoch) does not follow the current epoch \(current.epoch)"
        }
        if next.voters.isEmpty { return "a configuration needs a voter" }
        if next.voters.count == 2 { return "two voters tolerate no failure; add or remove one more" }
        if Set(next.voters).count != next.voters.count || Set(next.learners).count != next.learners.count {
            return "a replica is named twice"
        }
        if next.learners.count > 1 { return "at most one learner at a time" }
        if let both = next.voters.first(where: next.learners.contains) { return "\(both) is both voter and learner" }
        if let back = next.members.first(where: retired.contains) {
            return "\(back) was removed before; a replica id is never reused"
        }
        return nil
    }

    /// Records the reconfiguration chosen at `slot`; it governs slots from `slot + delay` on. Returns why it was
    /// refused (`problem(with:)`), or nil once recorded.
    public mutating func record(_ next: Membership, chosenAt slot: Slot, delay: Slot) -> String? {
        if let problem = problem(with: next) { return problem }
        let from = max(slot + delay, eras[eras.count - 1].from + 1)
        let leaving = latest.members.filter { !next.contains($0) }
        eras.append(Era(chosenAt: slot, from: from, membership: next, retired: retired + leaving))
        retired = eras[eras.count - 1].retired
        return nil
    }

    /// Drops the configurations that govern no slot from `slot` on.
    public mutating func forget(before slot: Slot) {
        guard let first = eras.lastIndex(where: { $0.from <= slot }), first > 0 else { return }
        eras.removeFirst(first)
    }

    public var description: String {
        eras.map { "\($0.membership) from slot \($0.from)" }.joined(separator: "; ")
    }
}
