import Paxos
import Testing

/// The at-most-once memory a state machine keeps of applied requests.
@Suite struct ClientSessionsTests {
    func id(_ client: UInt64, _ sequence: UInt64) -> RequestID {
        RequestID(client: client, sequence: sequence)
    }

    // DESIGN §3: the replicated state remembers applied ids, so a retried command is applied at most once.
    @Test func admitsOnceThenReportsDuplicate() {
        var sessions = ClientSessions()
        #expect(sessions.admit(id(1, 1), slot: 1) == .new)
        #expect(sessions.admit(id(1, 1), slot: 2) == .duplicate)
        // Sequences are per client.
        #expect(sessions.admit(id(2, 1), slot: 2) == .new)
        #expect(sessions.count == 2)
    }

    // Limits.sessionSequencesRemembered: past that many sequences above the floor the floor rises, and a sequence
    // at or below it can no longer be told apart, so it expires.
    @Test func floorRisesPastSequencesRememberedAndOlderExpire() {
        var sessions = ClientSessions(sequencesRemembered: 2, clientsMax: 10)
        #expect(sessions.admit(id(1, 1), slot: 1) == .new)
        #expect(sessions.admit(id(1, 2), slot: 2) == .new)
        #expect(sessions.admit(id(1, 1), slot: 3) == .duplicate)

        #expect(sessions.admit(id(1, 3), slot: 3) == .new)  // floor rises to 1
        #expect(sessions.admit(id(1, 1), slot: 4) == .expired)
        #expect(sessions.admit(id(1, 2), slot: 4) == .duplicate)

        // Out of order: 5 before 4.
        #expect(sessions.admit(id(1, 5), slot: 4) == .new)  // floor rises to 2
        #expect(sessions.admit(id(1, 2), slot: 5) == .expired)
        #expect(sessions.admit(id(1, 4), slot: 5) == .new)  // floor rises to 3
        #expect(sessions.admit(id(1, 3), slot: 6) == .expired)
        #expect(sessions.admit(id(1, 4), slot: 6) == .duplicate)
        #expect(sessions.admit(id(1, 5), slot: 6) == .duplicate)
        #expect(sessions.admit(id(1, 6), slot: 6) == .new)
    }

    // Limits.clientSessionsMax: past that many clients, the one that applied least recently is forgotten.
    @Test func clientsMaxEvictsLeastRecentlyApplied() {
        var sessions = ClientSessions(sequencesRemembered: 8, clientsMax: 2)
        #expect(sessions.admit(id(1, 1), slot: 1) == .new)
        #expect(sessions.admit(id(2, 1), slot: 2) == .new)
        #expect(sessions.admit(id(1, 2), slot: 3) == .new)  // client 1 is now the more recent
        #expect(sessions.admit(id(3, 1), slot: 4) == .new)  // client 2 is forgotten
        #expect(sessions.count == 2)

        #expect(sessions.admit(id(1, 1), slot: 5) == .duplicate)
        #expect(sessions.admit(id(3, 1), slot: 5) == .duplicate)
        // A forgotten client's retry looks new; it now evicts client 1, the idlest.
        #expect(sessions.admit(id(2, 1), slot: 5) == .new)
        #expect(sessions.count == 2)
        #expect(sessions.admit(id(1, 2), slot: 6) == .new)
    }

    // Limits.clientSessionsMax, "the one that applied least recently is forgotten first": within one slot the
    // requests apply in batch order, so the client applied last is the most recent and must be kept.
    @Test func clientsMaxKeepsClientJustAppliedWithinOneSlot() {
        var sessions = ClientSessions(sequencesRemembered: 8, clientsMax: 2)
        // One slot carries requests of clients 3, 2 and 1, applied in that order.
        #expect(sessions.admit(id(3, 1), slot: 5) == .new)
        #expect(sessions.admit(id(2, 1), slot: 5) == .new)
        #expect(sessions.admit(id(1, 1), slot: 5) == .new)
        #expect(sessions.count == 2)
        // A retry of the request just applied must not be applied again.
        #expect(sessions.admit(id(1, 1), slot: 6) == .duplicate)
    }
}
