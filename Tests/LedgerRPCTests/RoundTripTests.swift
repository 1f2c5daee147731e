import Foundation
import LedgerCore
import LedgerRPC
import Paxos
import SwiftProtobuf
import Testing

/// Every value survives encoding to its wire message, serializing to protobuf bytes, parsing and decoding.
@Suite struct RoundTripTests {
    /// Serializes a message to protobuf bytes and parses it back, as gRPC does between two processes.
    func overTheWire<Wire: SwiftProtobuf.Message>(_ message: Wire) throws -> Wire {
        let bytes: [UInt8] = try message.serializedBytes()
        return try Wire(serializedBytes: bytes)
    }

    @Test(arguments: Samples.messages)
    func peerMessage(_ message: LedgerMessage) throws {
        let wire = try overTheWire(Ledger_V1_PeerMessage(message))
        #expect(try LedgerMessage(wire: wire) == message)
    }

    @Test func peerBatch() throws {
        let batch = PeerBatch(cluster: "C3", from: ReplicaID(7), to: ReplicaID(9), messages: Samples.messages)
        let wire = try overTheWire(Ledger_V1_PeerBatch(batch))
        #expect(wire.protocolVersion == UInt32(LedgerRPC.protocolVersion))
        #expect(try PeerBatch(wire: wire) == batch)
    }

    @Test func zeroBallotHasNoReplica() throws {
        let wire = Ledger_V1_Ballot(.zero)
        #expect(wire.round == 0 && wire.replica.isEmpty)
        #expect(try Ballot(wire: wire) == .zero)
        #expect(Ledger_V1_Ballot(Samples.leaderBallot).replica == "S2")
    }

    @Test(arguments: Samples.commands)
    func command(_ command: LedgerCommand) throws {
        #expect(try LedgerCommand(wire: overTheWire(Ledger_V1_Command(command))) == command)
    }

    @Test func clientRequests() throws {
        let transfer = Ledger_V1_TransferRequest(
            cluster: "C1", transaction: Samples.transaction, from: AccountID(21), to: AccountID(700), amount: Amount(2))
        #expect(transfer.cluster == "C1")
        #expect(try LedgerCommand(wire: overTheWire(transfer)) == Samples.transfer)

        guard case .prepare(let id, let crossShard) = Samples.prepare else {
            Issue.record("the sample prepare is not a prepare")
            return
        }
        let prepare = Ledger_V1_PrepareRequest(cluster: "C2", transaction: id, crossShard)
        #expect(try LedgerCommand(wire: overTheWire(prepare)) == Samples.prepare)

        var moveRequest = Ledger_V1_PrepareRequest()
        moveRequest.cluster = "C2"
        moveRequest.prepareMove = Ledger_V1_Command(Samples.moveOut).prepareMove
        #expect(try LedgerCommand(wire: overTheWire(moveRequest)) == Samples.moveOut)
        moveRequest.prepare = prepare.prepare
        #expect(throws: WireError(field: "prepare_move", "is set with prepare; a request carries one of them")) {
            try LedgerCommand(wire: moveRequest)
        }

        let commit = Ledger_V1_CommitRequest(cluster: "C2", transaction: Samples.transaction)
        #expect(try LedgerCommand(wire: overTheWire(commit)) == .commit(Samples.transaction))

        let abort = Ledger_V1_AbortRequest(cluster: "C2", transaction: Samples.other)
        #expect(try LedgerCommand(wire: overTheWire(abort)) == .abort(Samples.other))

        let decision = Ledger_V1_DecisionRequest(cluster: "C1", transaction: Samples.other, asker: "C2")
        #expect(decision.asker == "C2")
        #expect(try TransactionID(wire: overTheWire(decision)) == Samples.other)

        let balance = Ledger_V1_BalanceRequest(cluster: "C1", account: AccountID(21))
        #expect(try AccountID(wire: overTheWire(balance).account) == AccountID(21))
    }

    @Test func commandBatches() throws {
        let request = try overTheWire(Ledger_V1_CommandBatchRequest(cluster: "C2", commands: Samples.commands))
        #expect(try LedgerCommand.batch(wire: request) == Samples.commands)
        let outcomes = Samples.results.map(CommandOutcome.applied) + Samples.failures.map(CommandOutcome.failed)
        let reply = try overTheWire(Ledger_V1_CommandBatchReply(outcomes, leader: ReplicaID(5)))
        #expect(reply.leaderHint == "S5")
        #expect(try CommandOutcome.batch(wire: reply, count: outcomes.count) == outcomes)
        #expect(throws: WireError(field: "results", "holds \(outcomes.count) results for 2 commands")) {
            try CommandOutcome.batch(wire: reply, count: 2)
        }
        #expect(throws: WireError(field: "commands", "is empty; a batch has a command")) {
            try LedgerCommand.batch(wire: Ledger_V1_CommandBatchRequest(cluster: "C2", commands: []))
        }
    }

    @Test(arguments: Samples.results)
    func result(_ result: CommandResult) throws {
        let wire = try overTheWire(Ledger_V1_CommandReply(.applied(result)))
        #expect(try CommandOutcome(wire: wire) == .applied(result))
        #expect(wire.result.message == CommandOutcome.applied(result).description)
    }

    @Test(arguments: Samples.failures)
    func failure(_ failure: RequestFailure) throws {
        let wire = try overTheWire(Ledger_V1_CommandReply(.failed(failure)))
        #expect(wire.result.outcome == .aborted)
        #expect(try CommandOutcome(wire: wire) == .failed(failure))
    }

    @Test func abortReasonsOnTheWire() {
        // The reason codes of the proto, for the cases a client switches on.
        #expect(Ledger_V1_Result(.aborted(.insufficientFunds(AccountID(21), balance: 1))).reason == .insufficientFunds)
        #expect(Ledger_V1_Result(.aborted(.locked(AccountID(21), by: Samples.transaction))).lockedBy.client == 7)
        #expect(Ledger_V1_Result(RequestFailure.wrongShard(AccountID(1500), owner: "C2")).ownerCluster == "C2")
        #expect(Ledger_V1_Result(RequestFailure.notLeader(hint: ReplicaID(3))).leaderHint == "S3")
        #expect(Ledger_V1_Result(RequestFailure.timedOut).reason == .timedOut)
        #expect(Ledger_V1_Result(CommandResult.accountsCreated(3000)).accountsCreated == 3000)
    }

    @Test func paxosOutcomes() {
        #expect(RequestFailure(Paxos.Outcome.chosen(slot: 3)) == nil)
        // A read that may be answered is not a failure either: the replica answers it from its applied state.
        #expect(RequestFailure(Paxos.Outcome.readable(slot: 3)) == nil)
        #expect(RequestFailure(Paxos.Outcome.notLeader(hint: ReplicaID(2))) == .notLeader(hint: ReplicaID(2)))
        #expect(RequestFailure(Paxos.Outcome.noQuorum) == .noQuorum)
        #expect(RequestFailure(Paxos.Outcome.timedOut) == .timedOut)
        #expect(RequestFailure(Paxos.Outcome.busy) == .busy)
    }

    @Test func balanceReply() throws {
        let read = try overTheWire(Ledger_V1_BalanceReply(.success(-12)))
        #expect(try Result<Int64, RequestFailure>(wire: read) == .success(-12))
        // A read of an account a prepared transaction holds says which transaction (only reads answer this).
        let held = RequestFailure.inDoubt(AccountID(21), by: Samples.transaction)
        for failure in Samples.failures + [held] {
            let wire = try overTheWire(Ledger_V1_BalanceReply(.failure(failure)))
            #expect(try Result<Int64, RequestFailure>(wire: wire) == .failure(failure))
        }
        #expect(
            held.description
                == "account 21 is held by transaction \(Samples.transaction), not yet decided here; ask again")
    }

    @Test(arguments: Samples.walRecords)
    func walRecord(_ record: WALRecord) throws {
        #expect(try WALRecord(wire: overTheWire(Ledger_V1_WalRecord(record))) == record)
    }

    @Test(arguments: Samples.datastoreRecords)
    func datastoreRecord(_ record: DatastoreRecord) throws {
        #expect(try DatastoreRecord(wire: overTheWire(Ledger_V1_DatastoreRecord(record))) == record)
    }

    @Test func pages() throws {
        let logs = RecordPage(replica: ReplicaID(4), records: Samples.walRecords, nextStart: 5)
        #expect(try RecordPage(wire: overTheWire(Ledger_V1_LogsReply(logs))) == logs)
        let lastLogs = RecordPage<WALRecord>(replica: ReplicaID(4), records: [], nextStart: nil)
        #expect(try RecordPage(wire: overTheWire(Ledger_V1_LogsReply(lastLogs))) == lastLogs)
        let datastore = RecordPage(replica: ReplicaID(1), records: Samples.datastoreRecords, nextStart: 0)
        #expect(try RecordPage(wire: overTheWire(Ledger_V1_DatastoreReply(datastore))) == datastore)
        let lastDatastore = RecordPage(replica: ReplicaID(1), records: Samples.datastoreRecords, nextStart: nil)
        #expect(try RecordPage(wire: overTheWire(Ledger_V1_DatastoreReply(lastDatastore))) == lastDatastore)
    }

    @Test(arguments: [Role.follower, .candidate, .leader])
    func status(_ role: Role) throws {
        let status = ReplicaStatus(
            cluster: "C2", replica: ReplicaID(5), role: role, ballot: role == .follower ? .zero : Samples.leaderBallot,
            leader: role == .leader ? ReplicaID(5) : nil, chosenThrough: 12, appliedThrough: 11, locksHeld: 2,
            snapshotSlot: 10, isDisconnected: role == .candidate)
        #expect(try ReplicaStatus(wire: overTheWire(Ledger_V1_StatusReply(status))) == status)
        // With its configuration, each member's progress (a leader's) and retirement.
        var member = status
        member.membership = Membership(
            epoch: 3, voters: [ReplicaID(5), ReplicaID(6), ReplicaID(7)], learners: [ReplicaID(9)])
        member.progress = role == .leader ? [ReplicaID(6): 12, ReplicaID(7): 3, ReplicaID(9): 0] : [:]
        member.isRetired = role == .candidate
        #expect(try ReplicaStatus(wire: overTheWire(Ledger_V1_StatusReply(member))) == member)
    }

    @Test(arguments: [
        MembershipChange.addLearner(ReplicaID(10)), .promote(ReplicaID(10)), .remove(ReplicaID(3)),
        .replace(ReplicaID(3), with: ReplicaID(10)),
    ])
    func membershipChange(_ change: MembershipChange) throws {
        let request = try overTheWire(Ledger_V1_ChangeMembershipRequest(cluster: "C1", change: change))
        #expect(request.cluster == "C1")
        #expect(try MembershipChange(wire: request) == change)
    }

    @Test func membershipChangeReplies() throws {
        let now = Membership(epoch: 2, voters: [ReplicaID(1), ReplicaID(2), ReplicaID(3)], learners: [ReplicaID(10)])
        for answer in [
            MembershipChangeOutcome(outcome: .applied(.committed), membership: now, slot: 41),
            MembershipChangeOutcome(outcome: .applied(.committed), membership: now, slot: nil),
            MembershipChangeOutcome(
                outcome: .failed(.membershipRefused(MembershipChangeRefusal.inProgress)), membership: now, slot: nil),
            MembershipChangeOutcome(outcome: .failed(.notLeader(hint: ReplicaID(2))), membership: nil, slot: nil),
        ] {
            #expect(try MembershipChangeOutcome(wire: overTheWire(Ledger_V1_ChangeMembershipReply(answer))) == answer)
        }
    }

    @Test func localBalance() throws {
        for local in [
            LocalBalance(replica: ReplicaID(2), balance: 8, isDisconnected: false, appliedThrough: 40),
            LocalBalance(replica: ReplicaID(2), balance: 0, isDisconnected: true, appliedThrough: 0),
            LocalBalance(replica: ReplicaID(2), balance: nil, isDisconnected: false, appliedThrough: 40),
        ] {
            #expect(try LocalBalance(wire: overTheWire(Ledger_V1_LocalBalanceReply(local))) == local)
        }
    }
}
