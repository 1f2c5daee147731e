import Testing

/// How a test of this target uses the machine. The suites that start replica processes run beside each other and
/// share it; the soak needs it alone, since its load would cut what their time-bound checks can do beside it (the
/// nemesis's faults in 30 s, a cross-shard commit's answer within its deadline). A trait, so every test of a suite
/// takes its share around its whole run: `@Suite(.sharesMachine)`, `@Test(.needsMachineAlone)`.
struct MachineShare: SuiteTrait, TestTrait, TestScoping {
    let alone: Bool

    var isRecursive: Bool { true }

    /// One scope per test case: a suite holds no share of its own, so tests of other suites start between its own.
    func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        testCase == nil ? nil : self
    }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        await MachineGate.shared.enter(alone: alone)
        do {
            try await function()
        } catch {
            await MachineGate.shared.leave(alone: alone)
            throw error
        }
        await MachineGate.shared.leave(alone: alone)
    }
}

extension Trait where Self == MachineShare {
    static var sharesMachine: Self { MachineShare(alone: false) }
    static var needsMachineAlone: Self { MachineShare(alone: true) }
}

/// A readers-writer gate that favours sharers: a test that needs the machine alone waits until no sharer runs (at the
/// start of a run, or between two tests of the last serialized suite), so a sharer waits at most one such test. A
/// test's time limit counts that wait: every sharer's limit allows about 2 minutes of it beside its own run.
actor MachineGate {
    static let shared = MachineGate()

    private var sharers = 0
    private var aloneRunning = false
    private var waitingSharers: [CheckedContinuation<Void, Never>] = []
    private var waitingAlone: [CheckedContinuation<Void, Never>] = []

    func enter(alone: Bool) async {
        if alone {
            guard aloneRunning || sharers > 0 else {
                aloneRunning = true
                return
            }
            await withCheckedContinuation { waitingAlone.append($0) }
        } else {
            guard aloneRunning else {
                sharers += 1
                return
            }
            await withCheckedContinuation { waitingSharers.append($0) }
        }
    }

    func leave(alone: Bool) {
        if alone { aloneRunning = false } else { sharers -= 1 }
        guard !aloneRunning else { return }
        if !waitingSharers.isEmpty {
            sharers += waitingSharers.count
            for sharer in waitingSharers { sharer.resume() }
            waitingSharers = []
        } else if sharers == 0, !waitingAlone.isEmpty {
            aloneRunning = true
            waitingAlone.removeFirst().resume()
        }
    }
}
