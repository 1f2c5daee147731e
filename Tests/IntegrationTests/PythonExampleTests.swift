import Foundation
import Testing

/// The Python example (`examples/python`), a client written from `Protos/ledger.proto` alone, against real replica
/// processes with mutual TLS: leader discovery, an intra-shard transfer, balances, a cross-shard transfer by hand with
/// 2PC, TransactionStatus, a refused reuse of a transaction id and an aborted 2PC, each checked by the example itself.
/// `run.sh` builds its virtualenv (`LEDGER_PY_VENV`, default `.build/python-venv`) on first use, from PyPI.
@Suite("Python example", .serialized)
struct PythonExampleTests {
    static let packageDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = packageDirectory.appendingPathComponent("examples/python/run.sh")
    static let successLine = "ledger example: all checks passed"

    @Test(.timeLimit(.minutes(8))) func pythonExamplePassesAgainstATwoClusterDeployment() async throws {
        try await TestDeployment.withRunning(clusters: 2, accountsPerCluster: 10, consensusTimeout: "1500ms") {
            deployment, _ in
            // C1 owns accounts 1...10, C2 owns 11...20 (TestDeployment's layout).
            let perCluster = deployment.accountsPerCluster
            let run = try Self.runExample(
                [
                    "--hosts", deployment.hostsPath,
                    "--certs", deployment.directory.appendingPathComponent("certs").path,
                    "--identity", "client",
                    "--from", "1", "--intra-to", "2", "--to", "\(perCluster + 1)",
                ],
                in: deployment.directory, within: .seconds(420))
            #expect(run.status == 0, "run.sh exited \(run.status):\n\(run.output)\n\(run.errors)")
            #expect(run.output.contains(Self.successLine), "stdout:\n\(run.output)\nstderr:\n\(run.errors)")
            #expect(run.output.contains("account 1 is in C1, 2 in C1, \(perCluster + 1) in C2"), "\(run.output)")
        }
    }

    /// Runs `examples/python/run.sh` to its end, or stops it after `limit` (the first run installs grpcio); returns
    /// its exit status, its standard output and its standard error.
    static func runExample(_ arguments: [String], in directory: URL, within limit: Duration) throws -> (
        status: Int32, output: String, errors: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path] + arguments
        process.currentDirectoryURL = directory
        let output = directory.appendingPathComponent("python-\(UUID().uuidString).out")
        let errors = directory.appendingPathComponent("python-\(UUID().uuidString).err")
        for file in [output, errors] { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
        let outputHandle = try FileHandle(forWritingTo: output)
        let errorHandle = try FileHandle(forWritingTo: errors)
        process.standardOutput = outputHandle
        process.standardError = errorHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < deadline { usleep(50_000) }
        var timedOut = false
        if process.isRunning {
            timedOut = true
            process.terminate()
            let grace = ContinuousClock.now + .seconds(5)
            while process.isRunning && ContinuousClock.now < grace { usleep(50_000) }
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        try outputHandle.close()
        try errorHandle.close()
        let stderr = try String(contentsOf: errors, encoding: .utf8)
        return (
            process.terminationStatus, try String(contentsOf: output, encoding: .utf8),
            timedOut ? stderr + "\n(stopped after \(limit))" : stderr
        )
    }
}
