/// Named limits of the Paxos core, each with the reason for its value. `Configuration` starts from these; a
/// deployment may lower them (the simulator does, to exercise snapshots and pipelining on short runs).
public enum Limits {
    /// Requests carried by one slot. Batching amortises one consensus round and one fsync over many requests;
    /// 512 keeps a slot's encoded size well under 64 KiB for ledger commands, so one message stays small.
    public static let batchSizeMax = 512

    /// Slots proposed but not yet chosen at once. Pipelining hides the round trip; 16 in flight with full batches
    /// already exceeds what 2 cores can apply, and a small window bounds the work a new leader must recover.
    public static let slotsInFlightMax = 16

    /// Applied slots kept in the log before the replica takes a snapshot and truncates. Bounds the log's memory
    /// and the size of a Phase1b; 10,000 slots of catch-up by entries is cheaper than shipping a snapshot.
    public static let snapshotIntervalSlots: UInt64 = 10_000

    /// Chosen entries in one catch-up reply. Keeps one reply bounded (about 10,000 x batch); a replica further
    /// behind asks again.
    public static let catchUpEntriesMax = 256

    /// How far behind the leader's chosen slot a replica may be and still count as caught up: a learner is promoted,
    /// and a change is proposed, only when a majority of the new voters are live and at most this far behind (a
    /// voter further behind would stall the cluster while it catches up). A few hundred slots is well under a second.
    public static let caughtUpSlotsMax: UInt64 = 256

    /// How many times a leader tells a removed replica that it was removed, a heartbeat interval apart. A lost notice
    /// leaves the replica running, harmless (it is refused) but not stopped; three lost in a row is rare.
    public static let farewellsMax = 3

    /// Entries in one Phase2a or Phase1b message. A message beyond this is malformed, not merely large.
    public static let entriesPerMessageMax = 20_000

    /// Requests waiting at a leader for a slot. Past this the leader answers `busy` instead of queueing without
    /// bound; 64 full slots is several seconds of work on this hardware.
    public static let queuedRequestsMax = 64 * 512

    /// Requests one replica waits on for its clients (submitted locally, answered when applied or timed out).
    public static let waitingRequestsMax = 64 * 512

    /// Sequence numbers remembered per client above its floor. A client must never have more requests
    /// outstanding than this, or a very late retry could be taken for new; the client library keeps far fewer.
    public static let sessionSequencesRemembered = 4_096

    /// Client sessions remembered. Past this the session applied longest ago is forgotten: a retry from such an
    /// idle client would be applied again, so the state machine must also be idempotent by its own ids (the
    /// ledger's transaction ids).
    public static let clientSessionsMax = 100_000
}
