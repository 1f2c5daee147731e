import Foundation
import LedgerClient
import LedgerCore
import LedgerRPC
import Paxos
import SwiftProtobuf
import Testing

/// Raw bytes on the gRPC port of running replicas: garbage, truncated and oversized frames at the TLS, HTTP/2 and
/// gRPC layers, and connections dropped mid-frame or left hanging. Each attacked replica must stay up and keep
/// serving: it answers its status, and the cluster commits a transfer afterwards.
@Suite("Raw frames", .serialized, .sharesMachine)
struct RawFrameTests {
    @Test(.timeLimit(.minutes(5))) func plaintextPortSurvivesMalformedHTTP2AndGRPCFrames() async throws {
        try await attack(tls: false, with: Attack.http2)
    }

    @Test(.timeLimit(.minutes(5))) func tlsPortSurvivesGarbageAndBrokenHandshakes() async throws {
        try await attack(tls: true, with: Attack.tls)
    }

    @Test(.timeLimit(.minutes(5))) func plaintextPeerPortSurvivesMalformedFrames() async throws {
        try await attack(tls: false, with: Attack.peerFrames, on: \.peerPorts)
    }

    @Test(.timeLimit(.minutes(5))) func tlsPeerPortSurvivesGarbageAndBrokenHandshakes() async throws {
        try await attack(tls: true, with: Attack.tls, on: \.peerPorts)
    }

    /// Sends each attack to the leader's, then a follower's, port of the kind `ports` gives (the replica port by
    /// default).
    private func attack(
        tls: Bool, with attacks: [Attack], on ports: KeyPath<TestDeployment, [String: Int]> = \.ports
    ) async throws {
        let deployment = try TestDeployment(clusters: 1, accountsPerCluster: 10, tls: tls)
        defer { deployment.stopAll() }
        try deployment.startAll()
        try await LedgerConnection.with(deployment: try deployment.deployment(), catalog: try deployment.catalog()) {
            connection in
            try await deployment.waitUntilServing(connection)
            let cluster = connection.cluster("C1")!
            let leader = try await deployment.waitForLeader(cluster, within: .seconds(30))
            let follower = cluster.replicas.first { $0 != leader }!
            for (round, target) in [leader, follower].enumerated() {
                let port = deployment[keyPath: ports][target.description]!
                // Held open, half a preface sent, while the others attack and the cluster is checked.
                let hanging = RawSocket(port: port)
                hanging?.send(Array("PRI * HTTP/2.0\r\n".utf8))
                defer { hanging?.close() }
                for attack in attacks {
                    let socket = try #require(
                        RawSocket(port: port),
                        "\(target) does not accept connections (running: \(deployment.isRunning(target)))")
                    socket.send(attack.bytes)
                    let answer = socket.receive(upTo: 1 << 16, within: .milliseconds(300))
                    socket.close()
                    let seen =
                        "\(answer.bytes.count) bytes (HTTP/2 frame types \(Attack.frameTypes(answer.bytes))"
                        + "\(answer.closed ? ", then closed" : ""))"
                    #expect(
                        attack.expected.matches(answer),
                        "\(target) answered \(attack.name) with \(seen), not \(attack.expected)")
                    #expect(deployment.isRunning(target), "\(target) stopped after \(attack.name)")
                }
                for _ in 0..<200 { RawSocket(port: port)?.close() }

                #expect(deployment.isRunning(target), "\(target) stopped after the attacks")
                let status = try await cluster.status(of: target)
                #expect(status.replica == target, "\(target) answers its status after the attacks")
                // On a starved machine one step's time may pass first: after an unknown outcome another transfer is
                // sent, for up to 30 s (either may commit; the total stays).
                let transfer = try Transfer(
                    from: AccountID(UInt64(1 + 2 * round)), to: AccountID(10), amount: Amount(1))
                let patience = ContinuousClock.now + .seconds(30)
                var outcome = await connection.transfer(transfer)
                while case .unknown = outcome, ContinuousClock.now < patience {
                    outcome = await connection.transfer(transfer)
                }
                #expect(outcome == .committed, "the cluster commits after \(target) was attacked")
                print("raw frames: \(target) survived \(attacks.count) attacks and 200 dropped connections")
            }
            try await deployment.expectConsistent(connection, total: 10 * deployment.initialBalance)
        }
    }
}

/// Bytes a misbehaving client sends, what they are, and how the server must answer them.
struct Attack {
    /// The server's answer: at the HTTP/2 layer (after its SETTINGS), the last frame it sends; at the TLS layer, a
    /// fatal alert or nothing.
    enum Reaction {
        /// GOAWAY: the connection is refused (HTTP/2).
        case goAway
        /// RST_STREAM: the call is refused, the connection stays (HTTP/2).
        case resetStream
        /// HEADERS: the call is answered, with a gRPC error status (HTTP/2).
        case response
        /// Nothing more: the server waits for the rest of a frame or record, and drops it when the client leaves.
        case waits
        /// A fatal TLS alert.
        case alert
        /// The connection closed without a word.
        case closes

        func matches(_ answer: (bytes: [UInt8], closed: Bool)) -> Bool {
            let last = Attack.frameTypes(answer.bytes).last
            switch self {
            case .goAway: return last == 0x7
            case .resetStream: return last == 0x3
            case .response: return last == 0x1
            case .waits: return !answer.closed && (answer.bytes.isEmpty || last == 0x4)
            case .alert: return answer.bytes.count >= 7 && answer.bytes[0] == 0x15 && answer.bytes[5] == 0x02
            case .closes: return answer.closed && answer.bytes.isEmpty
            }
        }
    }

    let name: String
    let bytes: [UInt8]
    let expected: Reaction

    static var garbage: [UInt8] {
        var random = SeededRandom(seed: 77)
        return (0..<4_096).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    // MARK: HTTP/2 and gRPC (a plaintext port)

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let settings = frame(type: 0x4, flags: 0, stream: 0, [])

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, length: Int? = nil, _ payload: [UInt8]) -> [UInt8] {
        let length = UInt32(length ?? payload.count)
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + withUnsafeBytes(of: stream.bigEndian, Array.init) + payload
    }

    /// A HEADERS frame (END_HEADERS) opening a gRPC call of `path` on stream 1, with literal header fields.
    static func call(_ path: String) -> [UInt8] {
        let fields = [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"), ("te", "trailers"),
        ]
        let block = fields.flatMap { (name: String, value: String) -> [UInt8] in
            [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        return preface + settings + frame(type: 0x1, flags: 0x4, stream: 1, block)
    }

    /// A DATA frame (END_STREAM) on stream 1 carrying one gRPC message: flag, declared length, body.
    static func message(compressed: Bool = false, declared: UInt32, _ body: [UInt8]) -> [UInt8] {
        frame(
            type: 0x0, flags: 0x1, stream: 1,
            [compressed ? 1 : 0] + withUnsafeBytes(of: declared.bigEndian, Array.init) + body)
    }

    static let http2: [Attack] = [
        Attack(name: "random bytes", bytes: garbage, expected: .goAway),
        Attack(name: "a preface, then random bytes", bytes: preface + settings + garbage, expected: .goAway),
        Attack(
            name: "a truncated frame header", bytes: preface + settings + [0x00, 0x00, 0x10, 0x01], expected: .waits),
        Attack(
            name: "a frame declaring 16 MiB",
            bytes: preface + settings
                + frame(type: 0x0, flags: 0, stream: 1, length: 0xFF_FFFF, Array(garbage[0..<512])), expected: .goAway),
        Attack(
            name: "headers with a garbage HPACK block",
            bytes: preface + settings + frame(type: 0x1, flags: 0x5, stream: 1, Array(garbage[0..<300])),
            expected: .goAway),
        Attack(
            name: "a gRPC message declaring 4 GiB",
            bytes: call("/ledger.v1.Ledger/Transfer") + message(declared: 0xFFFF_FFF0, Array(garbage[0..<100])),
            expected: .resetStream),
        Attack(
            name: "a truncated gRPC message",
            bytes: call("/ledger.v1.Ledger/Transfer") + message(declared: 100, Array(garbage[0..<10])),
            expected: .response),
        Attack(
            name: "a gRPC message of garbage protobuf",
            bytes: call("/ledger.v1.Ledger/SubmitBatch") + message(declared: 256, Array(garbage[0..<256])),
            expected: .response),
        Attack(
            name: "a compressed message without an encoding",
            bytes: call("/ledger.v1.Ledger/Balance") + message(compressed: true, declared: 16, Array(garbage[0..<16])),
            expected: .resetStream),
        Attack(
            name: "a peer stream of garbage",
            bytes: call("/ledger.v1.Peer/Stream") + message(declared: 1_024, Array(garbage[0..<1_024])),
            expected: .response),
        Attack(
            name: "a call of a method that does not exist",
            bytes: call("/ledger.v1.Ledger/DropTables") + message(declared: 0, []), expected: .response),
    ]

    /// The types of the HTTP/2 frames in `bytes`, in order (a truncated last frame counts).
    static func frameTypes(_ bytes: [UInt8]) -> [UInt8] {
        var types: [UInt8] = []
        var index = 0
        while index + 9 <= bytes.count {
            types.append(bytes[index + 3])
            index += 9 + (Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2]))
        }
        return types
    }

    // MARK: Peer frames (a plaintext peer port)

    /// A peer frame: the declared length (big endian; the body's own by default), then the body.
    static func peerFrame(declared: UInt32? = nil, _ body: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: (declared ?? UInt32(body.count)).bigEndian, Array.init) + body
    }

    /// A well-formed peer batch to S1 as a frame.
    static func peerBatch(cluster: String, from sender: Int) -> [UInt8] {
        let batch = PeerBatch(
            cluster: cluster, from: ReplicaID(sender), to: ReplicaID(1),
            messages: [.heartbeatAck(ballot: Ballot(round: 1, replica: ReplicaID(1)), round: 1, chosenThrough: 0)])
        return peerFrame(try! Ledger_V1_PeerBatch(batch).serializedBytes())
    }

    static let peerFrames: [Attack] = [
        Attack(
            name: "a frame declaring 4 GiB", bytes: peerFrame(declared: 0xFFFF_FFFF, Array(garbage[0..<100])),
            expected: .closes),
        Attack(name: "a frame of garbage protobuf", bytes: peerFrame(Array(garbage[0..<256])), expected: .closes),
        Attack(name: "an empty frame", bytes: peerFrame([]), expected: .closes),
        Attack(name: "an HTTP/2 preface", bytes: preface + settings, expected: .closes),
        Attack(name: "a truncated length", bytes: [0x00, 0x00], expected: .waits),
        Attack(name: "a truncated frame", bytes: peerFrame(declared: 1_000, Array(garbage[0..<10])), expected: .waits),
        Attack(
            name: "a batch for a cluster the replica is not in", bytes: peerBatch(cluster: "C9", from: 2),
            expected: .closes),
        Attack(
            name: "a batch from a replica of another cluster", bytes: peerBatch(cluster: "C1", from: 4),
            expected: .closes),
    ]

    // MARK: TLS (a TLS port)

    static let tls: [Attack] = [
        Attack(name: "random bytes", bytes: garbage, expected: .alert),
        Attack(name: "a plaintext HTTP/2 preface", bytes: preface + settings, expected: .alert),
        Attack(
            name: "a handshake record cut short",
            bytes: [0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x3F, 0xFC, 0x03, 0x03] + Array(garbage[0..<20]),
            expected: .waits),
        Attack(
            name: "a record declaring 64 KiB", bytes: [0x16, 0x03, 0x03, 0xFF, 0xFF] + Array(garbage[0..<1_000]),
            expected: .alert),
        Attack(
            name: "a client hello of garbage", bytes: [0x16, 0x03, 0x01, 0x01, 0x00, 0x01] + Array(garbage[0..<255]),
            expected: .alert),
        Attack(
            name: "an alert before any handshake", bytes: [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28], expected: .closes),
    ]
}

/// A blocking TCP connection to 127.0.0.1, for sending bytes no client library would.
final class RawSocket {
    private var descriptor: Int32

    init?(port: Int) {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(descriptor)
            return nil
        }
    }

    /// Sends what the peer takes; stops quietly when it has closed the connection.
    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard count > 0 else { return }
            sent += count
        }
    }

    /// What the peer sends within `limit`, until it closes the connection or `max` bytes came; `closed` when it
    /// closed the connection.
    func receive(upTo max: Int, within limit: Duration) -> (bytes: [UInt8], closed: Bool) {
        var timeout = timeval(tv_sec: 0, tv_usec: Int(limit / .microseconds(1)))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while received.count < max {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 { return (received, true) }
            guard count > 0 else { break }
            received += buffer[0..<count]
        }
        return (received, false)
    }

    func close() {
        guard descriptor >= 0 else { return }
        Glibc.close(descriptor)
        descriptor = -1
    }

    deinit { close() }
}
