import LedgerCore
import Synchronization
import Testing

@testable import LedgerClient

/// The accounts of commits reported before they reached the other participant: who waits, and until when.
@Suite("Reported commits") struct ReportedCommitsTests {
    final class Ends: Sendable {
        let names = Mutex<[String]>([])
        func add(_ name: String) { names.withLock { $0.append(name) } }
        var all: [String] { names.withLock { $0 } }
    }

    @Test func aWaitOnAnAccountEndsWhenTheLastCommitHoldingItEnds() async throws {
        let commits = ReportedCommits()
        let (a, b, c) = (AccountID(1), AccountID(2), AccountID(3))
        await commits.wait(for: [a, b])  // Nothing holds them: returns at once.
        commits.hold([a, b])
        commits.hold([b, c])
        let done = Ends()
        let onA = Task {
            await commits.wait(for: [a])
            done.add("a")
        }
        let onC = Task {
            await commits.wait(for: [c])
            done.add("c")
        }
        let idle = Task {
            await commits.waitUntilNone()
            done.add("idle")
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(done.all.isEmpty)
        commits.release([a, b])
        await onA.value
        try await Task.sleep(for: .milliseconds(50))
        #expect(done.all == ["a"], "b and c are still held by the second commit")
        commits.release([b, c])
        await onC.value
        await idle.value
        #expect(Set(done.all) == ["a", "c", "idle"])
        await commits.wait(for: [a, b, c])
        await commits.waitUntilNone()
    }
}
