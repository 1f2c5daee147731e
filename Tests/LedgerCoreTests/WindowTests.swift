import LedgerCore
import Paxos
import Testing

/// The window of DESIGN §3: what a cluster remembers of its clients' transactions, and the exact answer to a command
/// for one it forgot.
@Suite("exactly-once window")
struct WindowTests {
    typealias Base = LedgerStateTests
    static let ballot = Base.ballot

    /// C1 with accounts 1-10 at balance 10, applied at slot 1, and `limits`.
    static func ledger(_ limits: WindowLimits = .standard) -> LedgerState {
        var ledger = LedgerState(cluster: "C1", minBalance: 0, limits: limits)
        _ = ledger.apply(.createAccounts([AccountID(1)...AccountID(10)], balance: 10), slot: 1, ballot: ballot)
        return ledger
    }

    /// Applies `commands` from slot `first` on; the last one's effects.
    @discardableResult
    static func apply(_ ledger: inout LedgerState, _ commands: [LedgerCommand], from first: Slot) -> LedgerState.Effects
    {
        var last: LedgerState.Effects?
        for (offset, command) in commands.enumerated() {
            last = ledger.apply(command, slot: first + Slot(offset), ballot: ballot)
        }
        return last!
    }

    @Test("new, duplicate, expired: a retry within the window gets the recorded result; below it, expired")
    func newDuplicateExpired() {
        var ledger = Self.ledger()
        let first = Base.transfer(Base.id(1, 1), 1, 2, 3)
        #expect(ledger.apply(first, slot: 2, ballot: Self.ballot).result == .committed)
        #expect(ledger.apply(first, slot: 3, ballot: Self.ballot).result == .committed)
        #expect(ledger.sessions[1] == LedgerState.Session(floor: 0, lastSlot: 2))

        let release = ledger.apply(.release(client: 1, floor: 2), slot: 4, ballot: Self.ballot)
        #expect(release.result == .released(forgotten: 1))
        #expect(release.forgotten == [Base.id(1, 1)])
        #expect(ledger.transactions[Base.id(1, 1)] == nil && ledger.openings[Base.id(1, 1)] == nil)
        #expect(ledger.report(of: Base.id(1, 1)) == .expired)

        let before = ledger
        let retry = ledger.apply(first, slot: 5, ballot: Self.ballot)
        #expect(
            retry.result
                == .expired(
                    "T1.1 is below client 1's floor 2 at C1, which no longer remembers it: nothing was applied; read "
                        + "its fate with TransactionStatus at its home, or in PrintDatastore"))
        #expect(retry.wal.isEmpty && retry.balances.isEmpty && retry.transaction == nil)
        #expect(ledger == before)
        #expect(ledger.balances[AccountID(1)] == 7)

        // At and above the floor, transactions are new.
        #expect(ledger.apply(Base.transfer(Base.id(1, 2), 1, 2, 3), slot: 6, ballot: Self.ballot).result == .committed)
        #expect(ledger.balances[AccountID(1)] == 4)
        // A floor never goes down; a lower release forgets nothing.
        #expect(
            ledger.apply(.release(client: 1, floor: 1), slot: 7, ballot: Self.ballot).result == .released(forgotten: 0))
        #expect(ledger.sessions[1]?.floor == 2)
    }

    @Test("a prepared transaction below the floor stays until decided, then goes")
    func preparedIsPinned() {
        var ledger = Self.ledger()
        let id = Base.id(4, 1)
        Self.apply(&ledger, [Base.prepare(id, [5: 3]), .release(client: 4, floor: 9)], from: 2)
        guard case .prepared = ledger.transactions[id] else {
            Issue.record("the prepared transaction was forgotten")
            return
        }
        // Still answered, not expired: it holds a lock and awaits its home's decision.
        let follow = ledger.apply(.follow(id, committed: true), slot: 4, ballot: Self.ballot)
        #expect(follow.result == .committed)
        #expect(follow.forgotten == [id])
        #expect(ledger.transactions[id] == nil && ledger.locks.isEmpty && ledger.balances[AccountID(5)] == 13)
        #expect(ledger.apply(.follow(id, committed: true), slot: 5, ballot: Self.ballot).result.isExpired)
    }

    @Test("the home keeps its commit until the other participant applied it, whatever the client releases")
    func decisionsLiveUntilDelivered() {
        var ledger = Self.ledger()
        let id = Base.id(5, 1)
        Self.apply(&ledger, [Base.prepare(id, [1: -4])], from: 2)
        let commit = ledger.apply(Base.decideCommit(ledger, id), slot: 3, ballot: Self.ballot)
        #expect(commit.result == .committed)
        #expect(commit.undelivered == [id: true] && ledger.undelivered == [id])

        // The client releases it (a hostile one might before the participant followed): the home still answers.
        #expect(
            ledger.apply(.release(client: 5, floor: 2), slot: 4, ballot: Self.ballot).result == .released(forgotten: 0))
        #expect(ledger.report(of: id) == .committed)
        // The participant's acknowledgement was lost: asked again, the home gives the same decision, and its
        // recovery's abort is refused as before.
        #expect(ledger.report(of: id) == .committed)
        #expect(
            ledger.apply(.abort(id), slot: 5, ballot: Self.ballot).result
                == .refused("T5.1 is committed; it cannot abort"))

        let delivered = ledger.apply(.delivered(id), slot: 6, ballot: Self.ballot)
        #expect(delivered.result == .committed)
        #expect(delivered.undelivered == [id: false] && delivered.forgotten == [id])
        #expect(ledger.undelivered.isEmpty && ledger.transactions[id] == nil)
        #expect(ledger.report(of: id) == .expired)
        #expect(ledger.apply(.delivered(id), slot: 7, ballot: Self.ballot).result.isExpired)
    }

    @Test("a delivered commit within its client's window stays until released")
    func deliveredWithinTheWindowStays() {
        var ledger = Self.ledger()
        let id = Base.id(5, 1)
        Self.apply(&ledger, [Base.prepare(id, [1: -4])], from: 2)
        Self.apply(&ledger, [Base.decideCommit(ledger, id), .delivered(id)], from: 3)
        #expect(ledger.undelivered.isEmpty && ledger.transactions[id] == .committed)
        #expect(
            ledger.apply(.delivered(id), slot: 5, ballot: Self.ballot).result
                == .refused("T5.1 is not a commit of C1 awaiting delivery"))
        #expect(ledger.apply(.release(client: 5, floor: 2), slot: 6, ballot: Self.ballot).forgotten == [id])
    }

    @Test("a client over its share has its oldest decided transactions forgotten, and its floor rises past them")
    func perClientLimit() {
        var ledger = Self.ledger(
            WindowLimits(transactionsPerClient: 4, clientSessions: 10, transactionsRemembered: 100))
        for sequence in UInt64(1)...5 {
            _ = ledger.apply(Base.transfer(Base.id(2, sequence), 1, 2, 1), slot: 1 + sequence, ballot: Self.ballot)
        }
        // Over 4, it went down to 3: the two oldest are forgotten.
        #expect(ledger.transactions.keys.sorted() == [Base.id(2, 3), Base.id(2, 4), Base.id(2, 5)])
        #expect(ledger.sessions[2]?.floor == 3)
        #expect(ledger.apply(Base.transfer(Base.id(2, 2), 1, 2, 1), slot: 9, ballot: Self.ballot).result.isExpired)
        #expect(ledger.balances[AccountID(1)] == 5)
    }

    @Test("past the sessions limit the idlest is evicted and every older client id without a session is retired")
    func sessionsLimit() {
        var ledger = Self.ledger(
            WindowLimits(transactionsPerClient: 10, clientSessions: 2, transactionsRemembered: 100))
        Self.apply(
            &ledger,
            [
                Base.transfer(Base.id(10, 1), 1, 2, 1), Base.transfer(Base.id(20, 1), 1, 2, 1),
                Base.transfer(Base.id(30, 1), 1, 2, 1),
            ], from: 2)
        // Three sessions are over 2: down to three quarters (1), the idlest first (10, then 20); never 30, which is
        // applying.
        #expect(ledger.sessions.keys.sorted() == [30])
        #expect(ledger.retiredClients == 20)
        #expect(ledger.transactions.keys.sorted() == [Base.id(30, 1)])
        // A retired client's retry, and its new transactions, are expired; a younger client is welcome.
        let retry = ledger.apply(Base.transfer(Base.id(10, 1), 1, 2, 1), slot: 5, ballot: Self.ballot)
        #expect(
            retry.result
                == .expired(
                    "client 10 has no session at C1 (client ids up to 20 are retired: their sessions were evicted): "
                        + "nothing was applied; read the fate of T10.1 in PrintDatastore, and use a new client id"))
        #expect(ledger.apply(Base.transfer(Base.id(15, 1), 1, 2, 1), slot: 6, ballot: Self.ballot).result.isExpired)
        #expect(ledger.apply(.release(client: 19, floor: 4), slot: 7, ballot: Self.ballot).result.isExpired)
        #expect(ledger.apply(Base.transfer(Base.id(40, 1), 1, 2, 1), slot: 8, ballot: Self.ballot).result == .committed)
    }

    @Test("a session holding a prepared transaction is never evicted")
    func pinnedSessionsStay() {
        var ledger = Self.ledger(
            WindowLimits(transactionsPerClient: 10, clientSessions: 1, transactionsRemembered: 100))
        Self.apply(&ledger, [Base.prepare(Base.id(10, 1), [5: 3]), Base.transfer(Base.id(20, 1), 1, 2, 1)], from: 2)
        #expect(ledger.sessions[10] != nil)
        #expect(ledger.retiredClients == 0)
        #expect(
            ledger.apply(.follow(Base.id(10, 1), committed: false), slot: 4, ballot: Self.ballot).result
                == .aborted(.aborted))
    }

    @Test("past the transactions in all, idle sessions are evicted")
    func transactionsLimit() {
        var ledger = Self.ledger(WindowLimits(transactionsPerClient: 2, clientSessions: 10, transactionsRemembered: 4))
        var slot: Slot = 2
        for client in UInt64(1)...3 {
            for sequence in UInt64(1)...2 {
                _ = ledger.apply(Base.transfer(Base.id(client, sequence), 1, 2, 1), slot: slot, ballot: Self.ballot)
                slot += 1
            }
        }
        #expect(ledger.transactions.count <= 4)
        #expect(ledger.sessions[3] != nil && ledger.sessions[1] == nil)
        #expect(ledger.retiredClients >= 1)
    }

    @Test("a store of format 3 keeps only what another cluster may ask, under sessions that retire nothing")
    func upgradeFromFormat3() throws {
        var old = Self.ledger()
        let prepared = Base.id(7, 1)
        let homeCommit = Base.id(7, 2)
        let followed = Base.id(8, 1)
        Self.apply(
            &old,
            [
                Base.transfer(Base.id(6, 4), 1, 2, 1), Base.prepare(prepared, [3: -1]),
                Base.prepare(homeCommit, [4: -1]),
            ], from: 2)
        Self.apply(
            &old,
            [Base.decideCommit(old, homeCommit), Base.prepare(followed, [5: 1]), .follow(followed, committed: true)],
            from: 5)
        // As a format 3 store holds it: no sessions, no undelivered commits.
        let stored = try LedgerState(
            cluster: "C1", minBalance: 0, balances: old.balances, locks: old.locks, transactions: old.transactions,
            openings: old.openings, movedOut: old.movedOut)
        var upgraded = stored.upgradedFromFormat3()
        #expect(upgraded.transactions.keys.sorted() == [prepared, homeCommit])
        #expect(upgraded.undelivered == [homeCommit])
        #expect(
            upgraded.sessions == [
                6: LedgerState.Session(floor: 5, lastSlot: 0), 7: LedgerState.Session(floor: 3, lastSlot: 0),
                8: LedgerState.Session(floor: 2, lastSlot: 0),
            ])
        // The participant dropped its followed commit: it reports it expired, so the home can forget its own.
        #expect(upgraded.report(of: followed) == .expired)
        #expect(upgraded.apply(.delivered(homeCommit), slot: 9, ballot: Self.ballot).forgotten == [homeCommit])
        // Carried-over sessions are evicted first and retire no client id.
        var tight = try LedgerState(
            cluster: "C1", minBalance: 0, balances: upgraded.balances, locks: upgraded.locks,
            transactions: upgraded.transactions, openings: upgraded.openings, sessions: upgraded.sessions,
            undelivered: upgraded.undelivered,
            limits: WindowLimits(transactionsPerClient: 10, clientSessions: 2, transactionsRemembered: 100))
        _ = tight.apply(Base.transfer(Base.id(9, 1), 1, 2, 1), slot: 10, ballot: Self.ballot)
        #expect(tight.retiredClients == 0)
        #expect(tight.sessions[9] != nil && tight.sessions[7] != nil)
    }
}

extension CommandResult {
    var isExpired: Bool {
        if case .expired = self { return true }
        return false
    }
}
