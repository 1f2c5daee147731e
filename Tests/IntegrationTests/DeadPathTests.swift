import Foundation
import LedgerCore
import NIOCore
import NIOPosix
import Paxos
import Synchronization
import Testing

@testable import LedgerClient
@testable import LedgerNode

/// A path that goes dead under an open connection (`DeadPaths`): an iptables rule on loopback drops every packet to a
/// listener's port, as a partition in the kernel does, while data waits unacknowledged on the connection. TCP alone
/// would retransmit it for about 15 minutes (`tcp_retries2`), backing off to minutes apart; `TCP_USER_TIMEOUT` closes
/// the connection after `DeadPaths.userTimeout`, so that its owner dials a new one. Needs root and `iptables` (CI runs
/// as root; `.ci/run` installs iptables). The rules name only the test's own ephemeral ports.
@Suite("Dead paths", .serialized, .timeLimit(.minutes(5)))
struct DeadPathTests {
    /// Long enough for `DeadPaths.userTimeout` on a loaded machine, far below what TCP alone takes.
    static let closedWithin = Duration.seconds(40)

    /// A client channel (`ClusterConnections`) whose questions stop arriving: its connection is closed, and once the
    /// path is back a question is answered again on a new one.
    @Test func aClientChannelGivesUpOnADeadPathAndComesBack() async throws {
        try #require(getuid() == 0, "iptables needs root; CI runs as root (.ci/run)")
        let standIn = StatusQuestionTests.StandIn { ids in
            ids.map { StatusQuestionTests.answer($0, by: 1, leader: nil, linearizable: true) }
        }
        try await StatusQuestionTests.withCluster(of: [standIn]) { client, port in
            func ask(within limit: Duration) async -> Bool {
                await client.transactionStatusBatch(
                    of: [StatusQuestionTests.prepared], contact: ReplicaID(1), deadline: .now + limit,
                    linearizable: true) != nil
            }
            #expect(await ask(within: .seconds(10)), "the stand-in did not answer before the path died")
            #expect(try Self.established(toPort: port) == 1)

            let blackhole = try Blackhole(port: port)
            defer { blackhole.remove() }
            // The question waits unacknowledged on the connection, then its cancellation behind it.
            #expect(await !ask(within: .seconds(2)), "a question crossed a path that drops every packet")
            let deadline = ContinuousClock.now + Self.closedWithin
            while try Self.established(toPort: port) > 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(
                try Self.established(toPort: port) == 0,
                "the connection over the dead path was still open after \(Self.closedWithin)")

            blackhole.remove()
            var answered = false
            let healed = ContinuousClock.now
            while !answered, ContinuousClock.now - healed < .seconds(30) { answered = await ask(within: .seconds(5)) }
            #expect(answered, "no question was answered within 30 s of the path coming back")
        }
    }

    /// A peer link (`PeerFrame.connect`) whose frames stop arriving is closed; `PeerLinks` then dials again.
    @Test func aPeerLinkGivesUpOnADeadPath() async throws {
        try #require(getuid() == 0, "iptables needs root; CI runs as root (.ci/run)")
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { listener.close(promise: nil) }
        let port = try #require(listener.localAddress?.port)
        let link = try await PeerFrame.connect(host: "127.0.0.1", port: port, tls: nil)
        defer { link.close(promise: nil) }
        // What the bytes say does not matter: the listener reads and drops them.
        let frame = link.allocator.buffer(repeating: 7, count: 1024)
        try await link.writeAndFlush(frame).get()

        let blackhole = try Blackhole(port: port)
        defer { blackhole.remove() }
        try await link.writeAndFlush(frame).get()
        let deadline = ContinuousClock.now + Self.closedWithin
        while link.isActive, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        #expect(!link.isActive, "the peer link over the dead path was still open after \(Self.closedWithin)")
    }

    /// A peer link whose other end went away while the path was dead (the reset lost) holds nothing unacknowledged:
    /// only keepalive finds out, when its probe draws a reset from the other host.
    @Test func aHalfOpenPeerLinkIsFoundByKeepalive() async throws {
        try #require(getuid() == 0, "iptables needs root; CI runs as root (.ci/run)")
        let accepted = Mutex<[any Channel]>([])
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in
                accepted.withLock { $0.append(child) }
                return child.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { listener.close(promise: nil) }
        let port = try #require(listener.localAddress?.port)
        let link = try await PeerFrame.connect(host: "127.0.0.1", port: port, tls: nil)
        defer { link.close(promise: nil) }
        try await link.writeAndFlush(link.allocator.buffer(repeating: 7, count: 64)).get()
        try await Task.sleep(for: .milliseconds(200))

        // The other end closes while every packet between them is dropped, then the path comes back.
        let blackhole = try Blackhole(port: port, bothWays: true)
        for child in accepted.withLock({ $0 }) {
            // A reset, as a killed process's kernel sends: unlike a FIN, TCP does not send it again.
            let sockets = try #require(child as? any SocketOptionProvider)
            try await sockets.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            try? await child.close()
        }
        try await Task.sleep(for: .seconds(1))
        blackhole.remove()
        #expect(link.isActive, "the link saw its other end close through a dead path")

        let deadline = ContinuousClock.now + Self.closedWithin
        while link.isActive, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        #expect(!link.isActive, "the half-open peer link was still open after \(Self.closedWithin)")
    }

    /// How many client-side connections to `port` on loopback are established (`ss`).
    static func established(toPort port: Int) throws -> Int {
        let run = try command(["ss", "-Htn", "state", "established", "dport", "= :\(port)"])
        guard run.status == 0 else { throw ClusterTimeout("ss exited \(run.status): \(run.errors)") }
        return run.output.split(separator: "\n").count
    }

    /// Runs a short command in a directory of its own, removed afterwards.
    static func command(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try runProcess(URL(fileURLWithPath: "/usr/bin/env"), arguments, in: directory, within: .seconds(10))
    }
}

/// Drops every packet to a port (and with `bothWays` from it) on loopback until `remove()` (idempotent).
final class Blackhole: Sendable {
    let rules: [[String]]

    /// To the port; with `bothWays`, from it too.
    init(port: Int, bothWays: Bool = false) throws {
        rules = (bothWays ? ["--dport", "--sport"] : ["--dport"]).map {
            ["INPUT", "-i", "lo", "-p", "tcp", $0, "\(port)", "-j", "DROP"]
        }
        for rule in rules { try Self.iptables(["-I"] + rule) }
    }

    func remove() {
        // Deleting a rule that is gone already fails harmlessly.
        for rule in rules { _ = try? Self.iptables(["-D"] + rule) }
    }

    private static func iptables(_ arguments: [String]) throws {
        let run = try DeadPathTests.command(["iptables", "-w"] + arguments)
        guard run.status == 0 else {
            throw ClusterTimeout("iptables \(arguments.joined(separator: " ")) exited \(run.status): \(run.errors)")
        }
    }
}
