/// How much of the transactions' past a cluster's replicated state remembers, each with the reason for its value. The
/// state keeps what a retry could still ask about and what another cluster still needs; everything else about a
/// decided transaction is in the WAL and datastore on disk only (DESIGN §3). Equal on every replica of a cluster:
/// applying the same commands under the same limits gives the same state.
public struct WindowLimits: Hashable, Sendable {
    /// Transactions remembered per client above its floor. A client's library keeps at most its concurrency open (64
    /// in the benchmark); a client that never releases has its oldest decided transactions forgotten past this, as if
    /// it had released them, so one client cannot make the state grow. 4,096 is ample for any honest client, and
    /// small enough that trimming one session costs little.
    public var transactionsPerClient: Int
    /// Client sessions remembered. Past this the session used longest ago (in slots) is evicted, and every client id
    /// up to its id is retired (`LedgerState.retiredClients`): ids are time-ordered, so only clients older than it
    /// without a session here are refused, and a late retry from the evicted one is `expired`, never applied again.
    /// Clients come and go; 10,000 sessions of a few dozen bytes each is little memory, and more than any deployment
    /// has clients alive at once.
    public var clientSessions: Int
    /// Transactions remembered in all, pinned ones excluded (prepared, or committed at their home and not yet
    /// delivered to the other participant: those are bounded by the locks and by the transactions in flight). Past
    /// this the idlest sessions are evicted. 100,000 records (about 30 MB, and the bulk of a snapshot) is some 15
    /// seconds of transfers at the rate two cores reach, far longer than a retry waits.
    public var transactionsRemembered: Int

    public init(transactionsPerClient: Int, clientSessions: Int, transactionsRemembered: Int) {
        precondition(transactionsPerClient >= 1 && clientSessions >= 1, "a window remembers something")
        precondition(transactionsPerClient <= transactionsRemembered, "one client's share fits in the whole")
        self.transactionsPerClient = transactionsPerClient
        self.clientSessions = clientSessions
        self.transactionsRemembered = transactionsRemembered
    }

    public static let standard = WindowLimits(
        transactionsPerClient: 4_096, clientSessions: 10_000, transactionsRemembered: 100_000)
}
