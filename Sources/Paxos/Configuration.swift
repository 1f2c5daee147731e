/// How one replica runs: who it is, who its peers are, its timings in ticks and its limits.
///
/// Invariants (checked by `init`): members are unique and odd in number (a majority of an even count tolerates no
/// more failures than the odd count below it); `laggardFlushTicks < heartbeatIntervalTicks < leaderTimeoutTicks`.
public struct Configuration: Sendable, Equatable {
    public var me: ReplicaID
    /// The voters of the deployment's first configuration (epoch 1). The log may change them since
    /// (`Replica.memberships`); a replica that joins later is not among them, and learns who votes from the log or
    /// a snapshot.
    public var members: [ReplicaID]
    /// A follower that hears nothing from the leader for a random time in [leaderTimeoutTicks, 2 x leaderTimeoutTicks)
    /// starts Phase 1; a leader that hears from no majority for leaderTimeoutTicks steps down.
    public var leaderTimeoutTicks: Tick
    /// The leader sends a heartbeat when it has sent nothing else for this long; also the retransmission interval.
    public var heartbeatIntervalTicks: Tick
    /// A client request not applied within this many ticks is answered `noQuorum` or `timedOut`.
    public var consensusTimeoutTicks: Tick
    public var batchSizeMax: Int
    public var slotsInFlightMax: Int
    public var snapshotIntervalSlots: Slot
    public var catchUpEntriesMax: Int
    /// A follower forwards a client request to the leader it knows (true) or answers with a leader hint (false).
    public var forwardsRequests: Bool
    /// Thrifty Phase 2. Zero: the leader sends each proposal to every peer at once. Above zero: only to the peers a
    /// majority needs besides the leader (the `majority - 1` it picked as prompt); each other peer, a laggard, gets
    /// its slots in one Phase2a at most this many ticks later, or sooner with any other message to it. A proposal two
    /// ticks old and still not chosen goes to every peer, and a prompt peer that did not accept it becomes a laggard,
    /// as one does when a laggard's acceptance completes a majority before it: a slow or dead prompt peer costs at
    /// most two ticks, never a stall. Must stay below `heartbeatIntervalTicks`, so a laggard still hears from the
    /// leader between heartbeats.
    public var laggardFlushTicks: Tick
    /// The member that should lead when it can (nil: none). It draws its election timeouts from
    /// [leaderTimeoutTicks / 2, leaderTimeoutTicks) (at least a heartbeat interval), below every other member's, so at
    /// a fresh start, and whenever a leader is gone, it usually campaigns first; it cannot depose a live leader
    /// (acceptors that heard from one within `leaderTimeoutTicks` refuse). A deployment whose nodes host a replica of
    /// every cluster prefers a different node for each cluster, so that no node leads them all.
    public var preferredLeader: ReplicaID?
    /// Deliberately broken behaviour for the simulator's canary test. Always `nil` in a real deployment.
    public var fault: InjectedFault?

    public init(
        me: ReplicaID,
        members: [ReplicaID],
        leaderTimeoutTicks: Tick,
        heartbeatIntervalTicks: Tick,
        consensusTimeoutTicks: Tick,
        batchSizeMax: Int = Limits.batchSizeMax,
        slotsInFlightMax: Int = Limits.slotsInFlightMax,
        snapshotIntervalSlots: Slot = Limits.snapshotIntervalSlots,
        catchUpEntriesMax: Int = Limits.catchUpEntriesMax,
        forwardsRequests: Bool = true,
        laggardFlushTicks: Tick = 0,
        preferredLeader: ReplicaID? = nil,
        fault: InjectedFault? = nil
    ) {
        precondition(Set(members).count == members.count, "duplicate members in \(members)")
        precondition(members.count % 2 == 1, "a cluster needs an odd number of members, not \(members.count)")
        precondition(heartbeatIntervalTicks >= 1 && heartbeatIntervalTicks < leaderTimeoutTicks)
        precondition(consensusTimeoutTicks >= 1 && batchSizeMax >= 1 && slotsInFlightMax >= 1)
        precondition(snapshotIntervalSlots >= 1 && catchUpEntriesMax >= 1)
        precondition(
            laggardFlushTicks < heartbeatIntervalTicks, "laggards must hear from the leader between heartbeats")
        precondition(preferredLeader.map(members.contains) ?? true, "the preferred leader is not a member")
        self.me = me
        self.members = members.sorted()
        self.leaderTimeoutTicks = leaderTimeoutTicks
        self.heartbeatIntervalTicks = heartbeatIntervalTicks
        self.consensusTimeoutTicks = consensusTimeoutTicks
        self.batchSizeMax = batchSizeMax
        self.slotsInFlightMax = slotsInFlightMax
        self.snapshotIntervalSlots = snapshotIntervalSlots
        self.catchUpEntriesMax = catchUpEntriesMax
        self.forwardsRequests = forwardsRequests
        self.laggardFlushTicks = laggardFlushTicks
        self.preferredLeader = preferredLeader
        self.fault = fault
    }

    /// The deployment's first configuration.
    public var bootstrap: Membership { Membership(epoch: 1, voters: members) }

    /// Every member of the first configuration except this replica.
    public var peers: [ReplicaID] { members.filter { $0 != me } }

    /// The ticks a follower waits for a leader before it campaigns, drawn from this range: [T, 2T) for T =
    /// `leaderTimeoutTicks`, or below T for the preferred leader.
    public var electionTimeoutTicks: Range<Tick> {
        let timeout = leaderTimeoutTicks
        guard preferredLeader == me else { return timeout..<(2 * timeout) }
        return min(max(heartbeatIntervalTicks + 1, timeout / 2), timeout - 1)..<timeout
    }
}

/// A deliberate protocol bug, used only to prove that the simulator catches broken replicas.
public enum InjectedFault: Sendable, Equatable {
    /// Answers Phase1a without making its promise durable, so a restart forgets it.
    case promiseNotPersisted
    /// Marks every `Ready` lazy (`persistMustBeDurable` false), so a crash may lose acceptances it already sent.
    case acceptanceNotDurable
    /// A chosen configuration governs the very next slot instead of `slotsInFlightMax` slots later, while the leader
    /// still keeps that many slots in flight: slots proposed under the old configuration are counted by the new one.
    case reconfigurationAtOnce
}
