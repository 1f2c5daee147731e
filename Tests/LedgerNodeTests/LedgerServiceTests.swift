import Foundation
import GRPCCore
import GRPCInProcessTransport
import LedgerCore
import LedgerRPC
import LedgerStore
import Logging
import Paxos
import Synchronization
import Testing

@testable import LedgerNode

/// The client API of a real `ReplicaNode` (a one-replica cluster over a real SQLite store), served in process: no
/// sockets. The node's ticks are driven by the test.
@Suite struct LedgerServiceTests {
    /// Sends nothing: a one-replica cluster has no peers.
    struct NoPeers: PeerSender {
        func send(_ messages: [LedgerMessage], to peer: ReplicaID) {}
    }

    /// A one-replica C1 owning accounts 1-10 at balance 10 (shards.csv also has C2 with 11-20).
    static func withService(
        testControls: Bool = false,
        _ body: (Ledger_V1_Ledger.Client<InProcessTransport.Client>, ReplicaNode) async throws -> Void
    ) async throws {
        try await withNodes(["C1"]) { nodes in
            let service = LedgerService(
                node: nodes[0], catalog: Catalog(version: 1, shards: shards), testControlsEnabled: testControls,
                linkFaults: LinkFaultLayer(peers: [ReplicaID(2), ReplicaID(3)]), logger: Logger(label: "test"))
            try await serve([service]) { try await body($0, nodes[0]) }
        }
    }

    static let shards = try! ShardMap.parse("D1, C1, 1-10\nD2, C2, 11-20\n", source: "shards.csv")

    /// Runs `body` with a one-replica cluster per name (`C1`: replica S1 owning accounts 1-10; `C2`: S2 owning 11-20),
    /// each leading and holding its accounts, its ticks driven by the test, over a real SQLite store.
    static func withNodes(_ clusters: [String], _ body: ([ReplicaNode]) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ledger-node-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var nodes: [ReplicaNode] = []
        for cluster in clusters {
            let index = Int(cluster.dropFirst())!
            let (store, recovered) = try ReplicaStore.open(
                path: directory.appendingPathComponent("S\(index).sqlite").path, cluster: cluster,
                replica: "S\(index)", minBalance: 0)
            nodes.append(
                ReplicaNode(
                    cluster: cluster,
                    configuration: Configuration(
                        me: ReplicaID(index), members: [ReplicaID(index)], leaderTimeoutTicks: 3,
                        heartbeatIntervalTicks: 1, consensusTimeoutTicks: 50),
                    store: store, recovered: recovered, peers: NoPeers(), accounts: shards.accounts(of: cluster),
                    initialBalance: 10, seed: 1, logger: Logger(label: "test"), onFailure: { _ in }))
        }
        let ticker = Task { [nodes] in
            while !Task.isCancelled {
                for node in nodes { await node.tick() }
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
        defer { ticker.cancel() }
        // Wait until each replica leads and created its accounts.
        for (node, cluster) in zip(nodes, clusters) {
            let first = shards.accounts(of: cluster)[0].lowerBound
            for _ in 0..<2_000 where await node.localBalance(of: first).balance == nil {
                try await Task.sleep(for: .milliseconds(2))
            }
        }
        try await body(nodes)
    }

    /// Serves `services` in process for the duration of `body`.
    static func serve(
        _ services: [any RegistrableRPCService],
        _ body: (Ledger_V1_Ledger.Client<InProcessTransport.Client>) async throws -> Void
    ) async throws {
        let transport = InProcessTransport()
        try await withGRPCServer(transport: transport.server, services: services) { _ in
            try await withGRPCClient(transport: transport.client) { client in
                try await body(Ledger_V1_Ledger.Client(wrapping: client))
            }
        }
    }

    @Test func aNodeRoutesEachCallToTheReplicaOfItsCluster() async throws {
        try await Self.withNodes(["C1", "C2"]) { nodes in
            let endpoints = nodes.map { node in
                ReplicaEndpoint(
                    node: node, catalog: Catalog(version: 1, shards: Self.shards), testControlsEnabled: false,
                    linkFaults: LinkFaultLayer(peers: []), logger: Logger(label: "test"))
            }
            try await Self.serve([LedgerService(endpoints: endpoints)]) { ledger in
                for (cluster, from, to) in [("C1", 1, 2), ("C2", 11, 12)] {
                    let reply = try await ledger.transfer(
                        Ledger_V1_TransferRequest(
                            cluster: cluster, transaction: TransactionID(client: 9, sequence: UInt64(from)),
                            from: AccountID(UInt64(from)), to: AccountID(UInt64(to)), amount: Amount(3)))
                    #expect(try CommandOutcome(wire: reply) == .applied(.committed))
                }
                #expect(await nodes[0].state.balances[AccountID(1)] == 7)
                #expect(await nodes[1].state.balances[AccountID(11)] == 7)
                let status = try await ledger.status(.with { $0.cluster = "C2" })
                #expect(status.replica == "S2")
                await #expect {
                    _ = try await ledger.status(.with { $0.cluster = "C3" })
                } throws: { error in
                    let error = error as? RPCError
                    return error?.code == .failedPrecondition
                        && error?.message == "this node hosts S1 of C1, S2 of C2; the request is for cluster C3"
                }
            }
        }
    }

    static let t1 = TransactionID(client: 9, sequence: 1)

    @Test func transferCommitsAndIsReadBackLinearizably() async throws {
        try await Self.withService { ledger, node in
            let reply = try await ledger.transfer(
                Ledger_V1_TransferRequest(
                    cluster: "C1", transaction: Self.t1, from: AccountID(1), to: AccountID(2), amount: Amount(3)))
            #expect(try CommandOutcome(wire: reply) == .applied(.committed))
            let balance = try await ledger.balance(Ledger_V1_BalanceRequest(cluster: "C1", account: AccountID(1)))
            #expect(try Result<Int64, RequestFailure>(wire: balance) == .success(7))
            // The same transaction id again: the recorded result, nothing applied twice.
            let retry = try await ledger.transfer(
                Ledger_V1_TransferRequest(
                    cluster: "C1", transaction: Self.t1, from: AccountID(1), to: AccountID(2), amount: Amount(3)))
            #expect(try CommandOutcome(wire: retry) == .applied(.committed))
            #expect(await node.state.balances[AccountID(1)] == 7)
            #expect(await node.state.total == 100)
            let logs = try await ledger.logs(.with { $0.cluster = "C1" })
            #expect(
                try RecordPage<WALRecord>(wire: logs).records.map(\.description) == [
                    "<T9.1, Start>", "<T9.1, Update, 1, 7>", "<T9.1, Update, 2, 13>", "<T9.1, Commit>",
                ])
        }
    }

    @Test func insufficientFundsAndForeignAccountsAreAnswered() async throws {
        try await Self.withService { ledger, _ in
            let poor = try await ledger.transfer(
                Ledger_V1_TransferRequest(
                    cluster: "C1", transaction: Self.t1, from: AccountID(1), to: AccountID(2), amount: Amount(11)))
            #expect(try CommandOutcome(wire: poor) == .applied(.aborted(.insufficientFunds(AccountID(1), balance: 10))))
            let foreign = try await ledger.transfer(
                Ledger_V1_TransferRequest(
                    cluster: "C1", transaction: TransactionID(client: 9, sequence: 2), from: AccountID(1),
                    to: AccountID(15), amount: Amount(1)))
            #expect(try CommandOutcome(wire: foreign) == .failed(.wrongShard(AccountID(15), owner: "C2")))
        }
    }

    @Test func misroutedMalformedAndForbiddenCallsAreRefused() async throws {
        try await Self.withService { ledger, _ in
            await #expect {
                _ = try await ledger.status(.with { $0.cluster = "C2" })
            } throws: { ($0 as? RPCError)?.code == .failedPrecondition }
            await #expect {
                _ = try await ledger.transfer(.with { $0.cluster = "C1" })
            } throws: { ($0 as? RPCError)?.code == .invalidArgument }
            await #expect {
                _ = try await ledger.setConnectivity(.with { $0.cluster = "C1" })
            } throws: { ($0 as? RPCError)?.code == .permissionDenied }
            await #expect {
                _ = try await ledger.setLinkFaults(.with { $0.cluster = "C1" })
            } throws: { ($0 as? RPCError)?.code == .permissionDenied }
        }
    }

    @Test func linkFaultsAreSetCheckedAndHealed() async throws {
        try await Self.withService(testControls: true) { ledger, _ in
            func request(_ faults: [Ledger_V1_LinkFault]) -> Ledger_V1_SetLinkFaultsRequest {
                .with {
                    $0.cluster = "C1"
                    $0.faults = faults
                }
            }
            // Cut from S2 both ways (2 links), lossy to every peer (2 more, S2's outbound replaced).
            var reply = try await ledger.setLinkFaults(
                request([
                    Ledger_V1_LinkFault(.cut(ReplicaID(2))),
                    Ledger_V1_LinkFault(LinkFault(direction: .outbound, loss: 0.5)),
                ]))
            #expect(reply.faultyLinks == 3)

            let refused: [(Ledger_V1_LinkFault, String)] = [
                (Ledger_V1_LinkFault(.cut(ReplicaID(7))), "faults[0].peer: S7 is not a peer of this replica"),
                (Ledger_V1_LinkFault(.cut(ReplicaID(1))), "faults[0].peer: S1 is not a peer of this replica"),
                (
                    .with {
                        $0.direction = .both; $0.loss = 1.5
                    }, "faults[0].loss: is 1.5"
                ),
                (
                    .with {
                        $0.direction = .both; $0.duplicate = .nan
                    }, "faults[0].duplicate: is nan"
                ),
                (
                    .with {
                        $0.direction = .inbound; $0.delayMs = 10_001
                    }, "faults[0].delay_ms: is 10001 ms"
                ),
                (.with { $0.peer = "S2" }, "faults[0].direction: is unspecified"),
                (
                    .with {
                        $0.peer = "node2"; $0.direction = .both
                    }, "faults[0].peer"
                ),
            ]
            for (fault, message) in refused {
                await #expect {
                    _ = try await ledger.setLinkFaults(request([fault]))
                } throws: { error in
                    let error = error as? RPCError
                    return error?.code == .invalidArgument && error?.message.contains(message) == true
                }
            }
            await #expect {
                _ = try await ledger.setLinkFaults(request(Array(repeating: Ledger_V1_LinkFault(.cut()), count: 7)))
            } throws: { ($0 as? RPCError)?.code == .invalidArgument }

            reply = try await ledger.setLinkFaults(request([]))
            #expect(reply.faultyLinks == 0, "an empty list heals every link")
        }
    }

    @Test func aBatchIsAnsweredInOrderAndRefusesWhatNoClientMaySend() async throws {
        try await Self.withService { ledger, node in
            let commands: [LedgerCommand] = [
                .transfer(
                    TransactionID(client: 5, sequence: 1), from: AccountID(1), to: AccountID(2), amount: Amount(3)),
                .transfer(
                    TransactionID(client: 5, sequence: 2), from: AccountID(3), to: AccountID(4), amount: Amount(30)),
                .transfer(
                    TransactionID(client: 5, sequence: 3), from: AccountID(1), to: AccountID(15), amount: Amount(1)),
                .createAccounts([AccountID(100)...AccountID(100)], balance: 1_000),
                .transfer(
                    TransactionID(client: 5, sequence: 1), from: AccountID(1), to: AccountID(2), amount: Amount(3)),
            ]
            let before = await node.status().appliedThrough
            let reply = try await ledger.submitBatch(Ledger_V1_CommandBatchRequest(cluster: "C1", commands: commands))
            #expect(
                await node.status().appliedThrough == before + 1,
                "the batch reaches the log at once: one slot holds all its commands")
            #expect(
                try CommandOutcome.batch(wire: reply, count: commands.count) == [
                    .applied(.committed),
                    .applied(.aborted(.insufficientFunds(AccountID(3), balance: 10))),
                    .failed(.wrongShard(AccountID(15), owner: "C2")),
                    .applied(.refused("only replicas propose an account creation")),
                    .applied(.committed),  // the same transaction again: applied once
                ])
            #expect(reply.leaderHint.isEmpty, "the only replica leads")
            let balance = try await ledger.balance(Ledger_V1_BalanceRequest(cluster: "C1", account: AccountID(1)))
            #expect(try Result(wire: balance) == .success(7))

            await #expect {
                _ = try await ledger.submitBatch(Ledger_V1_CommandBatchRequest(cluster: "C1", commands: []))
            } throws: { ($0 as? RPCError)?.code == .invalidArgument }
        }
    }

    /// `TransactionStatusBatch` answers each transaction in order from the replica's applied state; an empty or
    /// oversized batch, or an invalid id, is refused as a whole with the field named.
    @Test func aStatusBatchIsAnsweredInOrderAndMalformedOnesAreRefused() async throws {
        try await Self.withService { ledger, _ in
            _ = try await ledger.transfer(
                Ledger_V1_TransferRequest(
                    cluster: "C1", transaction: Self.t1, from: AccountID(1), to: AccountID(2), amount: Amount(11)))
            let committed = TransactionID(client: 9, sequence: 2)
            _ = try await ledger.transfer(
                Ledger_V1_TransferRequest(
                    cluster: "C1", transaction: committed, from: AccountID(1), to: AccountID(2), amount: Amount(1)))
            let ids = [committed, TransactionID(client: 9, sequence: 3), Self.t1]
            let reply = try await ledger.transactionStatusBatch(
                Ledger_V1_TransactionStatusBatchRequest(cluster: "C1", transactions: ids))
            let answers = try TransactionStatusAnswer.batch(wire: reply, count: ids.count)
            #expect(
                answers.map(\.report) == [
                    .committed, .unknown, .aborted(.insufficientFunds(AccountID(1), balance: 10)),
                ])
            #expect(answers.allSatisfy { $0.replica == ReplicaID(1) && !$0.linearizable })

            for bad in [[], Array(repeating: committed, count: WireLimits.commandsPerBatchMax + 1)] {
                await #expect {
                    _ = try await ledger.transactionStatusBatch(
                        Ledger_V1_TransactionStatusBatchRequest(cluster: "C1", transactions: bad))
                } throws: { ($0 as? RPCError)?.code == .invalidArgument }
            }
            var invalid = Ledger_V1_TransactionStatusBatchRequest(cluster: "C1", transactions: [committed])
            invalid.transactions[0].sequence = 1 << 62
            await #expect {
                _ = try await ledger.transactionStatusBatch(invalid)
            } throws: { error in
                let error = error as? RPCError
                return error?.code == .invalidArgument && error?.message.contains("transactions[0].sequence") == true
            }
        }
    }

    /// The status stream answers each batch in order, as `TransactionStatus` would when asked `linearizable`: the
    /// leader's UNKNOWN is confirmed by a read index and so speaks for the cluster; without it, as applied.
    @Test func aStatusStreamAnswersEachBatchInOrder() async throws {
        try await Self.withService { ledger, _ in
            _ = try await ledger.transfer(
                Ledger_V1_TransferRequest(
                    cluster: "C1", transaction: Self.t1, from: AccountID(1), to: AccountID(2), amount: Amount(1)))
            let unknown = TransactionID(client: 9, sequence: 3)
            let batches = [
                Ledger_V1_TransactionStatusBatchRequest(
                    cluster: "C1", transactions: [Self.t1, unknown], linearizable: true),
                Ledger_V1_TransactionStatusBatchRequest(cluster: "C1", transactions: [unknown]),
            ]
            let answers = try await ledger.transactionStatusStream { writer in
                for batch in batches { try await writer.write(batch) }
            } onResponse: { response in
                var answers: [[TransactionStatusAnswer]] = []
                for try await reply in response.messages {
                    answers.append(
                        try TransactionStatusAnswer.batch(wire: reply, count: batches[answers.count].transactions.count)
                    )
                }
                return answers
            }
            #expect(answers.map { $0.map(\.report) } == [[.committed, .unknown], [.unknown]])
            #expect(answers.map { $0.map(\.linearizable) } == [[true, true], [false]])
            #expect(answers[0][1].clusterReport == .unknown && answers[1][0].clusterReport == nil)
        }
    }

    @Test func aStreamAnswersBatchesInOrderUntilOneIsRefused() async throws {
        try await Self.withService { ledger, _ in
            func transfer(_ sequence: UInt64, from: UInt64 = 1, amount: Int64) -> LedgerCommand {
                .transfer(
                    TransactionID(client: 6, sequence: sequence), from: AccountID(from), to: AccountID(5),
                    amount: Amount(amount))
            }
            let batches = [
                Ledger_V1_CommandBatchRequest(cluster: "C1", commands: [transfer(1, amount: 4)]),
                Ledger_V1_CommandBatchRequest(
                    cluster: "C1", commands: [transfer(2, amount: 4), transfer(3, amount: 4)]),
                Ledger_V1_CommandBatchRequest(cluster: "C2", commands: [transfer(4, amount: 1)]),
                Ledger_V1_CommandBatchRequest(cluster: "C1", commands: [transfer(5, from: 3, amount: 1)]),
            ]
            let (replies, failure) = try await ledger.submitStream { writer in
                // Every batch goes out before any reply is read.
                for batch in batches { try await writer.write(batch) }
            } onResponse: { response in
                var replies: [[CommandOutcome]] = []
                do {
                    for try await reply in response.messages {
                        replies.append(
                            try CommandOutcome.batch(wire: reply, count: batches[replies.count].commands.count))
                    }
                    return (replies, nil as RPCError?)
                } catch let error as RPCError {
                    return (replies, error)
                }
            }
            #expect(
                replies == [
                    [.applied(.committed)],
                    [.applied(.committed), .applied(.aborted(.insufficientFunds(AccountID(1), balance: 2)))],
                ], "the replies of the batches before the refused one, in order")
            #expect(failure?.code == .failedPrecondition, "the batch for another cluster ends the stream")
            let balance = try await ledger.balance(Ledger_V1_BalanceRequest(cluster: "C1", account: AccountID(1)))
            #expect(try Result(wire: balance) == .success(2))
        }
    }

    @Test func disconnectedReplicaRefusesClientsUntilReconnected() async throws {
        try await Self.withService(testControls: true) { ledger, node in
            _ = try await ledger.setConnectivity(
                .with {
                    $0.cluster = "C1"
                    $0.connected = false
                })
            #expect(await node.status().isDisconnected)
            await #expect {
                _ = try await ledger.transfer(
                    Ledger_V1_TransferRequest(
                        cluster: "C1", transaction: Self.t1, from: AccountID(1), to: AccountID(2), amount: Amount(1)))
            } throws: { ($0 as? RPCError)?.code == .failedPrecondition }  // refused before it was taken
            _ = try await ledger.setConnectivity(
                .with {
                    $0.cluster = "C1"
                    $0.connected = true
                })
            let reply = try await ledger.transfer(
                Ledger_V1_TransferRequest(
                    cluster: "C1", transaction: Self.t1, from: AccountID(1), to: AccountID(2), amount: Amount(1)))
            #expect(try CommandOutcome(wire: reply) == .applied(.committed))
        }
    }

    /// Found by the fuzzer (Tests/FuzzTests, FUZZ_SEED=1 FUZZ_ITERATIONS=10000, "Peer service (members)"): a catch-up
    /// snapshot with another min_balance reached the core, the store refused to install it, and the replica stopped.
    /// It is refused as a message now, and nothing changes.
    @Test func aSnapshotWithAnotherMinimumBalanceIsRefusedWithoutStopping() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ledger-node-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let (store, recovered) = try ReplicaStore.open(
            path: directory.appendingPathComponent("S2.sqlite").path, cluster: "C1", replica: "S2", minBalance: 0)
        let stopped = Mutex<[String]>([])
        let node = ReplicaNode(
            cluster: "C1",
            configuration: Configuration(
                me: ReplicaID(2), members: [ReplicaID(1), ReplicaID(2), ReplicaID(3)], leaderTimeoutTicks: 3,
                heartbeatIntervalTicks: 1, consensusTimeoutTicks: 50),
            store: store, recovered: recovered, peers: NoPeers(), accounts: [AccountID(1)...AccountID(10)],
            initialBalance: 10, seed: 1, logger: Logger(label: "test"),
            onFailure: { reason in stopped.withLock { $0.append(reason) } })
        var state = LedgerState(cluster: "C1", minBalance: -100)
        _ = state.apply(.createAccounts([AccountID(1)...AccountID(20)], balance: 10), slot: 1, ballot: Self.ballot)
        let snapshot = Snapshot(slot: 4, state: LedgerSnapshot(state: state, wal: [], datastore: []), memberships: nil)
        let rejections = await node.receive([.catchUpReply(snapshot: snapshot, entries: [])], from: ReplicaID(1))
        #expect(rejections.map(\.reason) == ["a snapshot of C1 with min_balance -100; this replica's are C1 and 0"])
        // A message that follows is still taken: the replica did not stop.
        #expect(await node.receive([.phase1a(ballot: Self.ballot, firstSlot: 1)], from: ReplicaID(1)).isEmpty)
        #expect(await node.status().ballot == Self.ballot)
        #expect(await node.state.balances.isEmpty)
        #expect(stopped.withLock { $0 }.isEmpty)
    }

    static let ballot = Ballot(round: 3, replica: ReplicaID(1))
}
