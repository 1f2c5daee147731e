import Foundation
import LedgerCore
import LedgerRPC
import LedgerStore
import Testing

@testable import LedgerClient

/// The shipped test file of the Fall 2025 format on real replica processes, run as a user runs it.
/// Alone on the machine: nine replica processes for about three minutes, beside the other suites' replicas,
/// starve their time-bound checks on two cores.
@Suite(.serialized) struct Fall2025ProcessTests {
    static let fall2025Tests = ClusterProcessTests.packageDirectory.appendingPathComponent(
        "tests-data/tests-fall2025.csv"
    ).path

    /// `client --local --batch --sequential` on the course's layout (nodes n1..n9 as replicas S1..S9, three clusters
    /// of 3000 accounts) compared line by line with `ReferenceLedger` applied segment by segment: each fail row takes
    /// its replica out of the live ones the model judges quorums by, each recover row brings it back. Every transfer's
    /// outcome, every read's balance, and the fail and recover lines must be the model's; a read in a cluster a fail
    /// row left without a majority must fail. Then the replicas start again from their files and every account the
    /// file names holds the model's balance, with the money all there and every replica of a cluster alike.
    @Test(.needsMachineAlone, .timeLimit(.minutes(20))) func fall2025TestSetsMatchTheSequentialModel() async throws {
        let deployment = try TestDeployment(clusters: 3, accountsPerCluster: 3000)
        defer { deployment.stopAll() }
        try FileManager.default.removeItem(atPath: try deployment.deployment().catalogPath)
        let file = try ConfigFiles.loadTestSets(path: Self.fall2025Tests)
        #expect(file.format == .fall2025)

        let run = try runClient(
            [
                "run", Self.fall2025Tests, "--hosts", deployment.hostsPath, "--local", "--batch", "--sequential",
                "--shards", deployment.directory.appendingPathComponent("shards.csv").path,
            ],
            in: deployment.directory, within: .seconds(300))
        #expect(run.status == 0, "client exited \(run.status):\n\(run.output)")
        let lines = run.output.split(separator: "\n").map(String.init).filter {
            $0.hasPrefix("(") || $0.hasPrefix("F(") || $0.hasPrefix("R(")
        }

        // What each row must print.
        var model = ReferenceLedger(deployment: deployment)
        var expected: [String] = []
        for set in file.sets {
            for segment in set.segments {
                let live = Set(segment.liveServers)
                for change in segment.changes {
                    switch change.action {
                    case .fail(let replica):
                        expected.append("F(\(set.name(of: replica))): \(set.name(of: replica)) failed")
                    case .recover(let replica):
                        expected.append("R(\(set.name(of: replica))): \(set.name(of: replica)) recovered")
                    case .transfer, .read: Issue.record("line \(change.line) is no change")
                    }
                }
                for operation in segment.operations {
                    switch operation.action {
                    case .transfer(let transfer):
                        expected.append("\(transfer) \(model.apply(transfer, live: live))")
                    case .read(let account):
                        let members = deployment.replicas(of: model.cluster(of: account))
                        if members.filter(live.contains).count * 2 > members.count {
                            expected.append("(\(account)) balance \(model.balance(of: account))")
                        } else {
                            expected.append("(\(account)) read failed: \(RequestFailure.noQuorum)")
                        }
                    case .fail, .recover: Issue.record("line \(operation.line) is no operation")
                    }
                }
            }
        }
        #expect(
            lines.count == expected.count, "\(lines.count) rows printed, \(expected.count) expected:\n\(run.output)")
        for (line, expectation) in zip(lines, expected) { #expect(line == expectation) }
        // The effects the file is there to show, named once more so that a change of the file cannot lose them.
        #expect(lines.contains("(1000, 1002, 3) committed"), "C1 keeps a majority after F(n3)")
        #expect(lines.contains("(1001, 1003, 1) aborted: no quorum in C1"), "F(n2) leaves C1 without a majority")
        #expect(
            lines.contains("(1001) read failed: no leader with a live majority; nothing was applied"),
            "no read without a majority")
        #expect(lines.contains("(1001, 1003, 1) committed"), "R(n2) gives C1 its majority back")
        #expect(lines.contains("(4002, 4003, 1) committed"), "R(n4) recovers a node the live nodes left out")
        #expect(lines.contains("(8999, 2, 5) committed"), "C3 elects a new leader after F(n7)")
        #expect(lines.contains("(200) balance 12") && lines.contains("(8000) balance 20"), "reads print balances")
        let operations = file.sets.flatMap(\.transfers).count
        #expect(run.output.contains("Performance: \(operations) transfers"))
        #expect(run.output.contains("Set 2 (2 of 4): 4 transfers, 3 reads, 3 fail or recover rows; live [n1, "))
        for port in deployment.ports.values {
            #expect(!TestDeployment.isListening(port), "a replica still listens on \(port)")
        }

        try await deployment.expectRestartedToHold(model, file: file)
        print("integration: tests-fall2025.csv sequential: \(expected.count) rows matched the reference model")
    }
}
