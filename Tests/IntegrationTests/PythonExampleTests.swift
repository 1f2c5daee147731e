import Foundation
import Testing

/// The Python example (`examples/python`), a client written from `Protos/ledger.proto` alone, against real replica
/// processes with mutual TLS: leader discovery, an intra-shard transfer, balances, a cross-shard transfer by hand with
/// 2PC, TransactionStatus, a refused reuse of a transaction id and an aborted 2PC, each checked by the example itself.
/// `run.sh` builds its virtualenv (`LEDGER_PY_VENV`, default `.build/python-venv`) on first use, from PyPI.
@Suite("Python example", .serialized, .sharesMachine)
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
            let run = try runProcess(
                URL(fileURLWithPath: "/bin/bash"),
                [
                    Self.script.path,
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
}
