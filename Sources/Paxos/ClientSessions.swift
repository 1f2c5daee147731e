/// Remembers which requests a replicated state machine has applied, so that a retried request is applied at most
/// once. A state machine embeds it in its replicated state (and so in its snapshots): every replica updates it in
/// log order and holds the same value.
///
/// Per client it keeps a floor (every sequence at or below it counts as applied) and the applied sequences above
/// it, at most `Limits.sessionSequencesRemembered`; past that the floor rises. At most `Limits.clientSessionsMax`
/// clients are remembered; the one that applied least recently is forgotten first.
public struct ClientSessions: Sendable, Equatable {
    struct Session: Sendable, Equatable {
        var floor: UInt64 = 0
        /// Applied sequences above `floor`, ascending.
        var applied: [UInt64] = []
        /// When this client last had a request admitted (counts admissions, so the latest is always the largest).
        var lastAdmission: UInt64 = 0
    }

    private var sessions: [UInt64: Session] = [:]
    private var admissions: UInt64 = 0
    private let sequencesRemembered: Int
    private let clientsMax: Int

    public init(
        sequencesRemembered: Int = Limits.sessionSequencesRemembered,
        clientsMax: Int = Limits.clientSessionsMax
    ) {
        precondition(sequencesRemembered >= 1 && clientsMax >= 1)
        self.sequencesRemembered = sequencesRemembered
        self.clientsMax = clientsMax
    }

    /// Number of clients remembered.
    public var count: Int { sessions.count }

    /// What the state machine must do with a request it is about to apply.
    public enum Verdict: Sendable, Equatable {
        /// First time: apply it (it is now recorded).
        case new
        /// Applied before: do not apply again; answer with the result recorded then.
        case duplicate
        /// Older than anything remembered for its client: do not apply; its fate cannot be told, so the client
        /// is answered that the request expired.
        case expired
    }

    /// Records the request as applied in `slot` when it is new; says what to do with it.
    public mutating func admit(_ id: RequestID, slot: Slot) -> Verdict {
        var session = sessions[id.client] ?? Session()
        if id.sequence <= session.floor { return .expired }
        let (found, position) = session.binarySearch(id.sequence)
        if found { return .duplicate }
        session.applied.insert(id.sequence, at: position)
        if session.applied.count > sequencesRemembered {
            session.floor = session.applied.removeFirst()
        }
        admissions += 1
        session.lastAdmission = admissions
        sessions[id.client] = session
        if sessions.count > clientsMax {
            let idlest = sessions.min { $0.value.lastAdmission < $1.value.lastAdmission }!
            sessions[idlest.key] = nil
        }
        return .new
    }
}

extension ClientSessions.Session {
    func binarySearch(_ sequence: UInt64) -> (found: Bool, position: Int) {
        var low = 0
        var high = applied.count
        while low < high {
            let middle = (low + high) / 2
            if applied[middle] < sequence { low = middle + 1 } else { high = middle }
        }
        return (low < applied.count && applied[low] == sequence, low)
    }
}
