import Foundation
import GRPCCore
import GRPCInProcessTransport
import LedgerCore
import LedgerRPC
import LedgerStore
import Logging
import Paxos
import SwiftProtobuf
import Synchronization
import Testing

@testable import LedgerNode

/// Mutated requests of every `Ledger` method and mutated peer batches, sent in process to real `ReplicaNode`s over
/// real SQLite stores. Every call is answered with a well-formed reply or refused with `INVALID_ARGUMENT` (a message
/// naming the field), `FAILED_PRECONDITION` or `PERMISSION_DENIED`; a refused call changes nothing; the money of the
/// ledger is what its datastore records say; and the nodes still answer afterwards.
@Suite("Fuzzing the services", .serialized)
struct ServiceFuzzTests {
    /// Sends nothing: the fuzzer plays every peer.
    struct NoPeers: PeerSender {
        func send(_ messages: [LedgerMessage], to peer: ReplicaID) {}
    }

    /// Records a replica's storage failure, which must never happen.
    final class Failures: Sendable {
        let reasons = Mutex<[String]>([])
        func record(_ reason: String) { reasons.withLock { $0.append(reason) } }
        var all: [String] { reasons.withLock { $0 } }
    }

    /// A replica `me` of C1 (members `members`) over a fresh store in `directory`, owning accounts 1-10 at 10.
    static func node(
        me: Int, members: [Int], directory: URL, failures: Failures
    ) throws -> ReplicaNode {
        let (store, recovered) = try ReplicaStore.open(
            path: directory.appendingPathComponent("S\(me).sqlite").path, cluster: "C1", replica: "S\(me)",
            minBalance: 0)
        return ReplicaNode(
            cluster: "C1",
            configuration: Configuration(
                me: ReplicaID(me), members: members.map(ReplicaID.init), leaderTimeoutTicks: 3,
                heartbeatIntervalTicks: 1, consensusTimeoutTicks: 50),
            store: store, recovered: recovered, peers: NoPeers(), accounts: [AccountID(1)...AccountID(10)],
            initialBalance: 10, seed: 1, logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }),
            onFailure: { failures.record($0) })
    }

    static let shards = try! ShardMap.parse("D1, C1, 1-10\nD2, C2, 11-20\n", source: "shards.csv")

    /// Runs `body` with S1, the only replica of C1 and its leader (ticked until it created its accounts), and S2, a
    /// follower of a three-replica C1 that is never ticked (so it only ever reacts to the fuzzer's batches).
    static func withNodes(
        _ body: (
            _ ledger: Ledger_V1_Ledger.Client<InProcessTransport.Client>,
            _ leaderPeer: Ledger_V1_Peer.Client<InProcessTransport.Client>,
            _ followerPeer: Ledger_V1_Peer.Client<InProcessTransport.Client>,
            _ leader: ReplicaNode, _ follower: ReplicaNode
        ) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-fuzz-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let failures = Failures()
        let leader = try node(me: 1, members: [1], directory: directory, failures: failures)
        let follower = try node(me: 2, members: [1, 2, 3], directory: directory, failures: failures)
        // Logical time only until S1 leads and created its accounts; then no timer runs, so what changes the nodes
        // is the fuzzer's calls alone.
        for _ in 0..<10_000 where await leader.localBalance(of: AccountID(10)).balance == nil {
            await leader.tick()
            await Task.yield()
        }
        #expect(await leader.state.total == 100, "S1 created accounts 1-10 at 10")

        let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        let ledgerTransport = InProcessTransport()
        let leaderPeerTransport = InProcessTransport()
        let followerPeerTransport = InProcessTransport()
        let ledgerService = LedgerService(
            node: leader, catalog: Catalog(version: 1, shards: shards), testControlsEnabled: false,
            linkFaults: LinkFaultLayer(peers: []), logger: logger)
        let leaderPeerService = PeerService(
            node: leader, members: [ReplicaID(1)], linkFaults: LinkFaultLayer(peers: []), authenticatesSenders: false,
            logger: logger)
        let followerPeerService = PeerService(
            node: follower, members: [1, 2, 3].map(ReplicaID.init),
            linkFaults: LinkFaultLayer(peers: [1, 3].map(ReplicaID.init)), authenticatesSenders: false, logger: logger)
        try await withGRPCServer(transport: ledgerTransport.server, services: [ledgerService]) { _ in
            try await withGRPCServer(transport: leaderPeerTransport.server, services: [leaderPeerService]) { _ in
                try await withGRPCServer(transport: followerPeerTransport.server, services: [followerPeerService]) {
                    _ in
                    try await withGRPCClient(transport: ledgerTransport.client) { ledgerClient in
                        try await withGRPCClient(transport: leaderPeerTransport.client) { leaderPeerClient in
                            try await withGRPCClient(transport: followerPeerTransport.client) { followerPeerClient in
                                try await body(
                                    Ledger_V1_Ledger.Client(wrapping: ledgerClient),
                                    Ledger_V1_Peer.Client(wrapping: leaderPeerClient),
                                    Ledger_V1_Peer.Client(wrapping: followerPeerClient), leader, follower)
                            }
                        }
                    }
                }
            }
        }
        #expect(failures.all.isEmpty, "no replica stopped on a storage failure")
    }

    // MARK: - The Ledger service

    /// Valid requests of every method, as protobuf bytes: the corpus of each method.
    static let ledgerCorpus: [(method: String, samples: [[UInt8]])] = {
        func bytes(_ messages: [some SwiftProtobuf.Message]) -> [[UInt8]] { messages.map { try! $0.serializedBytes() } }
        let t = TransactionID(client: 11, sequence: 1)
        let batch = bytes([
            Ledger_V1_CommandBatchRequest(
                cluster: "C1",
                commands: [
                    .transfer(t, from: AccountID(5), to: AccountID(6), amount: Amount(2)),
                    .commit(WireSamples.transaction),
                ])
        ])
        return [
            (
                "Transfer",
                bytes([
                    Ledger_V1_TransferRequest(
                        cluster: "C1", transaction: t, from: AccountID(1), to: AccountID(2), amount: Amount(3)),
                    Ledger_V1_TransferRequest(
                        cluster: "C1", transaction: TransactionID(client: 11, sequence: 2), from: AccountID(4),
                        to: AccountID(15), amount: Amount(1)),
                ])
            ),
            ("Balance", bytes([Ledger_V1_BalanceRequest(cluster: "C1", account: AccountID(1))])),
            ("Prepare", bytes(WireSamples.prepareRequests)),
            ("Commit", bytes([Ledger_V1_CommitRequest(cluster: "C1", transaction: WireSamples.other)])),
            ("Abort", bytes([Ledger_V1_AbortRequest(cluster: "C1", transaction: WireSamples.other)])),
            (
                "Decision",
                bytes([Ledger_V1_DecisionRequest(cluster: "C1", transaction: WireSamples.other, asker: "C2")])
            ),
            ("SubmitBatch", batch),
            // One mutated batch on a stream of its own.
            ("SubmitStream", batch),
            (
                "LocalBalance",
                bytes([
                    Ledger_V1_LocalBalanceRequest.with {
                        $0.cluster = "C1"
                        $0.replica = "S1"
                        $0.account = 3
                    }
                ])
            ),
            (
                "Logs",
                bytes([
                    Ledger_V1_LogsRequest.with {
                        $0.cluster = "C1"
                        $0.start = 1
                        $0.limit = 5
                    }
                ])
            ),
            (
                "Datastore",
                bytes([
                    Ledger_V1_DatastoreRequest.with {
                        $0.cluster = "C1"
                        $0.replica = "S1"
                    }
                ])
            ),
            ("Status", bytes([Ledger_V1_StatusRequest.with { $0.cluster = "C1" }])),
            (
                "SetConnectivity",
                bytes([
                    Ledger_V1_SetConnectivityRequest.with {
                        $0.cluster = "C1"
                        $0.connected = false
                    }
                ])
            ),
            (
                "SetLinkFaults",
                bytes([
                    Ledger_V1_SetLinkFaultsRequest.with {
                        $0.cluster = "C1"
                        $0.faults = [Ledger_V1_LinkFault(.cut())]
                    }
                ])
            ),
        ]
    }()

    @Test("Ledger calls to a real replica, and peer batches from strangers")
    func ledgerService() async throws {
        try await Self.withNodes { ledger, leaderPeer, _, leader, _ in
            let corpus = Self.ledgerCorpus
            let initialTotal = await leader.state.total
            try await fuzzAsync(
                "Ledger service",
                generate: { mutator, iteration in
                    let method = iteration % corpus.count
                    let sample = mutator.pick(corpus[method].samples)
                    let bytes =
                        mutator.chance(60)
                        ? mutator.mutate(fields: sample) : mutator.mutate(bytes: sample, corpus: corpus[method].samples)
                    return (method, bytes)
                },
                describe: { "\(corpus[$0.0].method) \(escaped($0.1))" },
                check: { method, bytes in
                    let before = await leader.state
                    let verdict = await Self.call(corpus[method].method, bytes, ledger)
                    if verdict == .refused, await leader.state != before {
                        return .failed("a refused call changed the ledger")
                    }
                    if case .failed = verdict { return verdict }
                    return await Self.moneyIsAccounted(leader, initialTotal: initialTotal) ?? verdict
                })

            // Peer batches to the leader from strangers: other replicas, other clusters, malformed ones.
            let batches = Self.strangerBatches
            try await fuzzAsync(
                "Peer service (strangers)",
                generate: { mutator, _ in
                    let sample = mutator.pick(batches)
                    return mutator.chance(60)
                        ? mutator.mutate(fields: sample) : mutator.mutate(bytes: sample, corpus: batches)
                },
                describe: { escaped($0) },
                check: { bytes in
                    let before = await leader.state
                    let statusBefore = await leader.status()
                    guard let batch = try? Ledger_V1_PeerBatch(serializedBytes: bytes) else { return .refused }
                    do {
                        _ = try await leaderPeer.stream { writer in try await writer.write(batch) }
                        return .failed("a stranger's batch was taken")
                    } catch let error as RPCError {
                        if let problem = Self.wrongRefusal(error) { return .failed(problem) }
                    }
                    guard await leader.state == before, await leader.status() == statusBefore else {
                        return .failed("a refused batch changed the replica")
                    }
                    return .refused
                })

            // Afterwards the replica still answers, and every coin is accounted for.
            let status = try await ledger.status(.with { $0.cluster = "C1" })
            #expect(try ReplicaStatus(wire: status).role == .leader)
            let balance = try await ledger.balance(Ledger_V1_BalanceRequest(cluster: "C1", account: AccountID(1)))
            #expect(
                try Result<Int64, RequestFailure>(wire: balance) == .success(await leader.state.balances[AccountID(1)]!)
            )
            #expect(await Self.moneyIsAccounted(leader, initialTotal: initialTotal) == nil)
        }
    }

    // MARK: - The Peer service of a follower

    @Test("peer batches from the members of a three-replica cluster to a follower")
    func peerService() async throws {
        try await Self.withNodes { _, _, followerPeer, _, follower in
            let batches = Self.memberBatches
            try await fuzzAsync(
                "Peer service (members)",
                generate: { mutator, _ in
                    let sample = mutator.pick(batches)
                    return mutator.chance(60)
                        ? mutator.mutate(fields: sample) : mutator.mutate(bytes: sample, corpus: batches)
                },
                describe: { escaped($0) },
                check: { bytes in
                    let before = await follower.state
                    let statusBefore = await follower.status()
                    guard let batch = try? Ledger_V1_PeerBatch(serializedBytes: bytes) else { return .refused }
                    do {
                        let summary = try await followerPeer.stream { writer in try await writer.write(batch) }
                        guard summary.batches == 1, summary.messages == UInt64(batch.messages.count) else {
                            return .failed("the summary \(summary) does not count the batch")
                        }
                    } catch let error as RPCError {
                        if let problem = Self.wrongRefusal(error) { return .failed(problem) }
                        guard await follower.state == before, await follower.status() == statusBefore else {
                            return .failed("a refused batch changed the replica")
                        }
                        return .refused
                    }
                    let status = await follower.status()
                    guard status.appliedThrough <= status.chosenThrough, status.role == .follower else {
                        return .failed("the follower is in an impossible state: \(status)")
                    }
                    return .accepted
                })
            // The follower still answers a valid batch: a heartbeat of a new leader.
            let ballot = Ballot(round: UInt64.max - 1, replica: ReplicaID(3))
            let summary = try await followerPeer.stream { writer in
                try await writer.write(
                    Ledger_V1_PeerBatch(
                        PeerBatch(
                            cluster: "C1", from: ReplicaID(3), to: ReplicaID(2),
                            messages: [.heartbeat(ballot: ballot, chosenThrough: 0, round: 1)])))
            }
            #expect(summary.messages == 1)
            #expect(await follower.status().cluster == "C1")
        }
    }

    /// Batches from S1 and S3 to S2, a follower of C1: every kind of message a member sends.
    static let memberBatches: [[UInt8]] = {
        let ballot = Ballot(round: 3, replica: ReplicaID(1))
        let requests = WireSamples.requests
        let messages: [[LedgerMessage]] = [
            [.phase1a(ballot: ballot, firstSlot: 1)],
            [
                .phase2a(
                    ballot: ballot,
                    proposals: [
                        SlotProposal(slot: 1, value: .batch(requests, ballot: ballot)),
                        SlotProposal(slot: 2, value: .noop(ballot: ballot)),
                    ], chosenThrough: 0)
            ],
            [.chosen(ballot: ballot, chosenThrough: 2), .heartbeat(ballot: ballot, chosenThrough: 2, round: 4)],
            [
                .catchUpReply(
                    snapshot: Snapshot(slot: 4, state: CodecSamples.snapshot, memberships: WireSamples.memberships),
                    entries: WireSamples.entries)
            ],
            [.catchUpRequest(firstSlot: 1), .rejected(promised: WireSamples.highBallot)],
            [.forward(requests: requests)],
            [
                .phase1b(
                    ballot: ballot, snapshotSlot: 0, chosenThrough: 0, entries: WireSamples.entries,
                    memberships: WireSamples.memberships),
                .phase2b(ballot: ballot, slots: [1], chosenThrough: 0),
            ],
        ]
        return messages.enumerated().map { index, messages in
            try! Ledger_V1_PeerBatch(
                PeerBatch(cluster: "C1", from: ReplicaID(index % 2 == 0 ? 1 : 3), to: ReplicaID(2), messages: messages)
            ).serializedBytes()
        }
    }()

    /// Sends one mutated request of `method`; checks the reply converts or the refusal is one a client may get.
    static func call(
        _ method: String, _ bytes: [UInt8], _ ledger: Ledger_V1_Ledger.Client<InProcessTransport.Client>
    ) async -> Verdict {
        func decoded<Request: SwiftProtobuf.Message>(_ type: Request.Type) -> Request? {
            try? Request(serializedBytes: bytes)
        }
        do {
            switch method {
            case "Transfer":
                guard let request = decoded(Ledger_V1_TransferRequest.self) else { return .refused }
                let reply = try await ledger.transfer(request)
                return wellFormed { () throws(WireError) in try CommandOutcome(wire: reply) }
            case "Balance":
                guard let request = decoded(Ledger_V1_BalanceRequest.self) else { return .refused }
                let reply = try await ledger.balance(request)
                return wellFormed { () throws(WireError) in try Result<Int64, RequestFailure>(wire: reply) }
            case "Prepare":
                guard let request = decoded(Ledger_V1_PrepareRequest.self) else { return .refused }
                let reply = try await ledger.prepare(request)
                return wellFormed { () throws(WireError) in try CommandOutcome(wire: reply) }
            case "Commit":
                guard let request = decoded(Ledger_V1_CommitRequest.self) else { return .refused }
                let reply = try await ledger.commit(request)
                return wellFormed { () throws(WireError) in try CommandOutcome(wire: reply) }
            case "Abort":
                guard let request = decoded(Ledger_V1_AbortRequest.self) else { return .refused }
                let reply = try await ledger.abort(request)
                return wellFormed { () throws(WireError) in try CommandOutcome(wire: reply) }
            case "Decision":
                guard let request = decoded(Ledger_V1_DecisionRequest.self) else { return .refused }
                let reply = try await ledger.decision(request)
                return wellFormed { () throws(WireError) in try CommandOutcome(wire: reply) }
            case "SubmitBatch":
                guard let request = decoded(Ledger_V1_CommandBatchRequest.self) else { return .refused }
                let reply = try await ledger.submitBatch(request)
                return wellFormed { () throws(WireError) in
                    try CommandOutcome.batch(wire: reply, count: request.commands.count)
                }
            case "SubmitStream":
                guard let request = decoded(Ledger_V1_CommandBatchRequest.self) else { return .refused }
                let replies = try await ledger.submitStream { writer in
                    try await writer.write(request)
                } onResponse: { response in
                    try await response.messages.reduce(into: []) { $0.append($1) }
                }
                guard replies.count == 1 else { return .failed("\(replies.count) replies to one batch on a stream") }
                return wellFormed { () throws(WireError) in
                    try CommandOutcome.batch(wire: replies[0], count: request.commands.count)
                }
            case "LocalBalance":
                guard let request = decoded(Ledger_V1_LocalBalanceRequest.self) else { return .refused }
                let reply = try await ledger.localBalance(request)
                return wellFormed { () throws(WireError) in try LocalBalance(wire: reply) }
            case "Logs":
                guard let request = decoded(Ledger_V1_LogsRequest.self) else { return .refused }
                let reply = try await ledger.logs(request)
                return wellFormed { () throws(WireError) in try RecordPage<WALRecord>(wire: reply) }
            case "Datastore":
                guard let request = decoded(Ledger_V1_DatastoreRequest.self) else { return .refused }
                let reply = try await ledger.datastore(request)
                return wellFormed { () throws(WireError) in try RecordPage<DatastoreRecord>(wire: reply) }
            case "Status":
                guard let request = decoded(Ledger_V1_StatusRequest.self) else { return .refused }
                let reply = try await ledger.status(request)
                return wellFormed { () throws(WireError) in try ReplicaStatus(wire: reply) }
            case "SetConnectivity":
                guard let request = decoded(Ledger_V1_SetConnectivityRequest.self) else { return .refused }
                _ = try await ledger.setConnectivity(request)
                return .failed("a test control was obeyed with test controls off")
            case "SetLinkFaults":
                guard let request = decoded(Ledger_V1_SetLinkFaultsRequest.self) else { return .refused }
                _ = try await ledger.setLinkFaults(request)
                return .failed("a test control was obeyed with test controls off")
            default:
                return .failed("no method \(method)")
            }
        } catch let error as RPCError {
            return wrongRefusal(error).map(Verdict.failed) ?? .refused
        } catch {
            return .failed("not an RPCError: \(error)")
        }
    }

    /// `.accepted` when the reply a replica sent converts: replies are well-formed too.
    static func wellFormed<Value>(_ convert: () throws(WireError) -> Value) -> Verdict {
        do {
            _ = try convert()
            return .accepted
        } catch {
            return .failed("the replica's reply is malformed: \(error)")
        }
    }

    /// Nil when `error` is a refusal a malformed, misrouted or forbidden call may get; else what is wrong with it.
    static func wrongRefusal(_ error: RPCError) -> String? {
        switch error.code {
        case .invalidArgument:
            return error.message.hasPrefix("malformed ") ? nil : "INVALID_ARGUMENT without a field: \(error)"
        case .failedPrecondition, .permissionDenied:
            return error.message.isEmpty ? "a refusal without a reason: \(error)" : nil
        default:
            return "unexpected refusal: \(error)"
        }
    }

    /// Nil when the money of `node` is its starting total plus what its datastore records moved in and out.
    static func moneyIsAccounted(_ node: ReplicaNode, initialTotal: Int128) async -> Verdict? {
        guard let records = try? await node.datastoreRecords() else { return .failed("the datastore is unreadable") }
        var expected = initialTotal
        for record in records {
            switch record.kind {
            case .transfer: break
            case .crossShard(let changes): expected += changes.reduce(Int128(0)) { $0 + Int128($1.delta) }
            case .moveOut(_, let balance, _): expected -= Int128(balance)
            case .moveIn(_, let balance, _): expected += Int128(balance)
            }
        }
        let total = await node.state.total
        return total == expected
            ? nil : .failed("the ledger holds \(total), its datastore records account for \(expected)")
    }

    /// Batches to S1 of a one-replica C1, from replicas it does not have and clusters it is not.
    static let strangerBatches: [[UInt8]] = [
        PeerBatch(cluster: "C1", from: ReplicaID(2), to: ReplicaID(1), messages: WireSamples.messages),
        PeerBatch(
            cluster: "C2", from: ReplicaID(4), to: ReplicaID(1),
            messages: [.phase1a(ballot: WireSamples.highBallot, firstSlot: 1)]),
        PeerBatch(
            cluster: "C1", from: ReplicaID(1), to: ReplicaID(1),
            messages: [.chosen(ballot: WireSamples.highBallot, chosenThrough: 9)]),
        PeerBatch(
            cluster: "C1", from: ReplicaID(3), to: ReplicaID(1),
            messages: [.phase1a(ballot: WireSamples.highBallot, firstSlot: 1)],
            protocolVersion: LedgerRPC.protocolVersion + 1),
    ].map { try! Ledger_V1_PeerBatch($0).serializedBytes() }
}
