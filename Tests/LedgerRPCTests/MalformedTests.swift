import Foundation
import LedgerCore
import LedgerRPC
import Paxos
import Testing

/// The error `body` throws, or nil when it returns: lets a test compare the exact `WireError`.
func wireError<Value>(_ body: () throws(WireError) -> Value) -> WireError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// A peer message decoded from `wire`, for the tests that break one field of a valid message.
func decodeMessage(_ wire: Ledger_V1_PeerMessage) throws(WireError) -> LedgerMessage {
    try LedgerMessage(wire: wire)
}

/// Malformed wire messages are refused with a `WireError` that names the field and the rule.
@Suite struct MalformedTests {
    let phase2a = Ledger_V1_PeerMessage(
        .phase2a(
            ballot: Samples.leaderBallot,
            proposals: [SlotProposal(slot: 4, value: .batch(Samples.requests, ballot: Samples.leaderBallot))],
            chosenThrough: 3))

    /// The error for `phase2a` with its proposal's value replaced by `bytes`.
    func valueError(_ bytes: some Sequence<UInt8>) -> WireError? {
        var message = phase2a
        message.phase2A.proposals[0].value = Data(bytes)
        return wireError { () throws(WireError) in try decodeMessage(message) }
    }

    @Test func missingOneof() {
        #expect(
            wireError { () throws(WireError) in try decodeMessage(Ledger_V1_PeerMessage()) }
                == WireError(
                    field: "kind",
                    "is not set; a peer message is one of phase1a, phase1b, phase2a, phase2b, chosen, heartbeat, "
                        + "heartbeat_ack, rejected, catch_up_request, catch_up_reply, forward, handover"))
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: Ledger_V1_Command()) }
                == WireError(
                    field: "kind",
                    "is not set; a command is one of transfer, prepare, prepare_move, commit, abort, release, "
                        + "decide_commit, follow, delivered, create_accounts"))
        #expect(valueError([]) == WireError(field: "phase2a.proposals[0].value", "is missing"))
        var record = Ledger_V1_DatastoreRecord(Samples.datastoreRecords[0])
        record.kind = nil
        #expect(
            wireError { () throws(WireError) in try DatastoreRecord(wire: record) }
                == WireError(
                    field: "kind", "is not set; a datastore record is a transfer, cross_shard, move_out or move_in"))
    }

    @Test func missingFields() {
        var heartbeat = Ledger_V1_PeerMessage(.heartbeat(ballot: Samples.leaderBallot, chosenThrough: 1, round: 2))
        heartbeat.heartbeat.clearBallot()
        #expect(
            wireError { () throws(WireError) in try decodeMessage(heartbeat) }
                == WireError(field: "heartbeat.ballot", "is missing"))
        var commit = Ledger_V1_Command(.commit(Samples.transaction))
        commit.commit.clearTransaction()
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: commit) }
                == WireError(field: "commit.transaction", "is missing"))
        var message = Ledger_V1_PeerMessage(.forward(requests: Samples.requests))
        message.forward.requests[1].clearCommand()
        #expect(
            wireError { () throws(WireError) in try decodeMessage(message) }
                == WireError(field: "forward.requests[1].command", "is missing"))
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: Ledger_V1_TransferRequest()) }
                == WireError(field: "transfer", "is missing"))
        #expect(
            wireError { () throws(WireError) in try CommandOutcome(wire: Ledger_V1_CommandReply()) }
                == WireError(field: "result", "is missing"))
    }

    @Test func accountZero() {
        var transfer = Ledger_V1_Command(Samples.transfer)
        transfer.transfer.to = 0
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: transfer) }
                == WireError(field: "transfer.to", "is 0; account ids start at 1"))
        var result = Ledger_V1_Result(CommandResult.aborted(.unknownAccount(AccountID(5))))
        result.account = 0
        #expect(
            wireError { () throws(WireError) in try CommandOutcome(wire: result) }
                == WireError(field: "account", "is 0; account ids start at 1"))
        var create = Ledger_V1_Command(Samples.createAccounts)
        create.createAccounts.ranges[1].first = 0
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: create) }
                == WireError(field: "create_accounts.ranges[1].first", "is 0; account ids start at 1"))
    }

    @Test func badAmounts() {
        var transfer = Ledger_V1_Command(Samples.transfer)
        transfer.transfer.amount = 0
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: transfer) }
                == WireError(field: "transfer.amount", "is 0; a transfer moves at least 1"))
        transfer.transfer.amount = UInt64(Int64.max) + 1
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: transfer) }
                == WireError(
                    field: "transfer.amount",
                    "is 9223372036854775808, which overflows; the largest amount is 9223372036854775807"))
    }

    @Test func zeroPrepareAmount() {
        var prepare = Ledger_V1_Command(Samples.prepare)
        prepare.prepare.amount = 0
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: prepare) }
                == WireError(field: "prepare.amount", "is 0; a transfer moves at least 1"))
    }

    @Test func backwardsRange() {
        var create = Ledger_V1_Command(Samples.createAccounts)
        create.createAccounts.ranges[0].last = 0
        create.createAccounts.ranges[0].first = 9
        create.createAccounts.ranges[0].last = 5
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: create) }
                == WireError(
                    field: "create_accounts.ranges[0].last", "is 5, below first 9; a range runs from first up to last"))
    }

    @Test func reservedTransactionIDs() {
        var transfer = Ledger_V1_Command(Samples.transfer)
        transfer.transfer.transaction.client = 0
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: transfer) }
                == WireError(
                    field: "transfer.transaction.client", "is 0, which is reserved for a cluster's own commands"))
        transfer.transfer.transaction.client = 1
        transfer.transfer.transaction.sequence = 1 << 60
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: transfer) }
                == WireError(
                    field: "transfer.transaction.sequence",
                    "is 1152921504606846976; transaction sequences stay below 2^60"))
    }

    @Test func unknownEnumValues() {
        var result = Ledger_V1_Result(CommandResult.committed)
        result.outcome = .UNRECOGNIZED(42)
        #expect(
            wireError { () throws(WireError) in try CommandOutcome(wire: result) }
                == WireError(field: "outcome", "is 42, not a known outcome"))
        result.outcome = .unspecified
        #expect(
            wireError { () throws(WireError) in try CommandOutcome(wire: result) }
                == WireError(field: "outcome", "is not set (OUTCOME_UNSPECIFIED)"))
        result.outcome = .aborted
        result.reason = .UNRECOGNIZED(12)
        #expect(
            wireError { () throws(WireError) in try CommandOutcome(wire: result) }
                == WireError(field: "reason", "is 12, not a known abort reason"))
        result.reason = .unspecified
        #expect(
            wireError { () throws(WireError) in try CommandOutcome(wire: result) }
                == WireError(
                    field: "reason", "is not set (ABORT_REASON_UNSPECIFIED); an aborted outcome needs a reason"))

        var record = Ledger_V1_WalRecord(Samples.walRecords[0])
        record.kind = .UNRECOGNIZED(9)
        #expect(
            wireError { () throws(WireError) in try WALRecord(wire: record) }
                == WireError(field: "kind", "is 9, not a known WAL record kind"))

        var status = Ledger_V1_StatusReply(
            ReplicaStatus(
                cluster: "C1", replica: ReplicaID(1), role: .leader, ballot: Samples.leaderBallot, leader: nil,
                chosenThrough: 0, appliedThrough: 0, locksHeld: 0, snapshotSlot: 0, isDisconnected: false))
        status.role = .UNRECOGNIZED(7)
        #expect(
            wireError { () throws(WireError) in try ReplicaStatus(wire: status) }
                == WireError(field: "role", "is 7, not a known role"))
    }

    @Test func ballotRoundZeroInAProposal() {
        var prepare = Ledger_V1_PeerMessage(.phase1a(ballot: Samples.leaderBallot, firstSlot: 1))
        prepare.phase1A.ballot.round = 0
        #expect(
            wireError { () throws(WireError) in try decodeMessage(prepare) }
                == WireError(field: "phase1a.ballot.round", "is 0; a proposal's ballot has round 1 or more"))
        var message = phase2a
        message.phase2A.ballot = Ledger_V1_Ballot(.zero)
        #expect(
            wireError { () throws(WireError) in try decodeMessage(message) }
                == WireError(field: "phase2a.ballot.round", "is 0; a proposal's ballot has round 1 or more"))
        var ballot = Ledger_V1_Ballot(Samples.leaderBallot)
        ballot.round = 0
        #expect(
            wireError { () throws(WireError) in try Ballot(wire: ballot) }
                == WireError(field: "replica", "is \"S2\" in a ballot of round 0; the zero ballot names no replica"))
    }

    // A slot value is stamped with the ballot of the leader that first proposed it: round >= 1, and never above the
    // ballot the value is proposed or accepted under.
    @Test func slotValueStamps() {
        let zero = valueError(LedgerCodec.encode(SlotValue.noop(ballot: .zero)))
        #expect(zero?.field == "phase2a.proposals[0].value")
        #expect(
            zero?.problem
                == "does not decode as a slot value: malformed encoding at byte 3: the round of the ballot that "
                + "proposed a slot value is 0; proposals have round 1 or more")
        #expect(
            valueError(LedgerCodec.encode(SlotValue.batch(Samples.requests, ballot: Samples.highBallot)))
                == WireError(
                    field: "phase2a.proposals[0].value",
                    "is stamped with \(Samples.highBallot), above the ballot \(Samples.leaderBallot) the value is "
                        + "proposed or accepted under"))
        var entry = Ledger_V1_PeerMessage(.catchUpReply(snapshot: nil, entries: Samples.entries))
        entry.catchUpReply.entries[1].value = Data(LedgerCodec.encode(SlotValue.noop(ballot: Samples.highBallot)))
        entry.catchUpReply.entries[1].ballot = Ledger_V1_Ballot(Samples.leaderBallot)
        #expect(
            wireError { () throws(WireError) in try decodeMessage(entry) }
                == WireError(
                    field: "catch_up_reply.entries[1].value",
                    "is stamped with \(Samples.highBallot), above the ballot \(Samples.leaderBallot) the value is "
                        + "proposed or accepted under"))
    }

    // A slot value travels in the store's encoding: bytes the codec refuses are refused with its words and offset.
    @Test func undecodableSlotValue() throws {
        let valid = phase2a.phase2A.proposals[0].value
        let cases: [(Data, String)] = [
            (valid.dropLast(), "malformed encoding at byte \(valid.count - 1)"),
            (valid + [0], "malformed encoding at byte \(valid.count): 1 trailing byte"),
            (Data([LedgerCodec.formatVersion + 1]) + valid.dropFirst(), "malformed encoding at byte 0"),
            (Data(LedgerCodec.encode(Samples.leaderBallot)), "malformed encoding at byte 1"),
        ]
        for (bytes, prefix) in cases {
            let error = try #require(valueError(bytes))
            #expect(error.field == "phase2a.proposals[0].value")
            #expect(error.problem.hasPrefix("does not decode as a slot value: " + prefix), "\(error.problem)")
        }
    }

    @Test(arguments: ["", "S0", "s1", "S01", "S", "X1", "S-1", "S 1", "S1000000", "S1a", "S١"])
    func badReplicaNames(_ name: String) {
        var message = phase2a
        message.phase2A.ballot.replica = name
        let rule = "a replica is named S<n> with n from 1 to 999999 and no leading zeros, like S4"
        let problem = name.isEmpty ? "is empty; \(rule)" : "is \"\(name)\"; \(rule)"
        #expect(
            wireError { () throws(WireError) in try decodeMessage(message) }
                == WireError(field: "phase2a.ballot.replica", problem))
    }

    @Test func goodReplicaNames() throws {
        #expect(try ReplicaID(wireName: "S1") == ReplicaID(1))
        #expect(try ReplicaID(wireName: "S999999") == ReplicaID(999_999))
    }

    @Test func badNamesElsewhere() {
        var batch = Ledger_V1_PeerBatch(PeerBatch(cluster: "C1", from: ReplicaID(1), to: ReplicaID(2), messages: []))
        batch.from = "T1"
        #expect(
            wireError { () throws(WireError) in try PeerBatch(wire: batch) }
                == WireError(
                    field: "from",
                    "is \"T1\"; a replica is named S<n> with n from 1 to 999999 and no leading zeros, like S4"))
        batch.from = "S1"
        batch.cluster = "cluster-1"
        #expect(
            wireError { () throws(WireError) in try PeerBatch(wire: batch) }
                == WireError(
                    field: "cluster",
                    "is \"cluster-1\"; a cluster is named C<n> with n from 1 to 999999 and no leading zeros, like C1"))
        var prepare = Ledger_V1_Command(Samples.prepare)
        prepare.prepare.participants[1] = String(repeating: "C", count: 100)
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: prepare) }
                == WireError(
                    field: "prepare.participants[1]",
                    "is \"\(String(repeating: "C", count: 40))...\"; a cluster is named C<n> with n from 1 to 999999 "
                        + "and no leading zeros, like C1"))
        var result = Ledger_V1_Result(RequestFailure.notLeader(hint: ReplicaID(2)))
        result.leaderHint = "leader"
        #expect(
            wireError { () throws(WireError) in try CommandOutcome(wire: result) }
                == WireError(
                    field: "leader_hint",
                    "is \"leader\"; a replica is named S<n> with n from 1 to 999999 and no leading zeros, like S4"))
    }

    @Test func slotZero() {
        var message = phase2a
        message.phase2A.proposals[0].slot = 0
        #expect(
            wireError { () throws(WireError) in try decodeMessage(message) }
                == WireError(field: "phase2a.proposals[0].slot", "is 0; slots start at 1"))
        let accepted = Ledger_V1_PeerMessage(.phase2b(ballot: Samples.leaderBallot, slots: [3, 0], chosenThrough: 0))
        #expect(
            wireError { () throws(WireError) in try decodeMessage(accepted) }
                == WireError(field: "phase2b.slots[1]", "is 0; slots start at 1"))
        var request = Ledger_V1_PeerMessage(.catchUpRequest(firstSlot: 1))
        request.catchUpRequest.firstSlot = 0
        #expect(
            wireError { () throws(WireError) in try decodeMessage(request) }
                == WireError(field: "catch_up_request.first_slot", "is 0; slots start at 1"))
    }

    @Test func oversizedRepeatedFields() {
        let heartbeat = Ledger_V1_PeerMessage(.heartbeat(ballot: Samples.leaderBallot, chosenThrough: 0, round: 0))
        var batch = Ledger_V1_PeerBatch(PeerBatch(cluster: "C1", from: ReplicaID(1), to: ReplicaID(2), messages: []))
        batch.messages = Array(repeating: heartbeat, count: WireLimits.messagesPerBatchMax + 1)
        #expect(
            wireError { () throws(WireError) in try PeerBatch(wire: batch) }
                == WireError(
                    field: "messages", "has 4097 elements; at most 4096 are allowed (WireLimits.messagesPerBatchMax)"))
        batch.messages.removeLast()
        #expect(wireError { () throws(WireError) in try PeerBatch(wire: batch) } == nil)

        let slots = Array(1...UInt64(Paxos.Limits.entriesPerMessageMax + 1))
        let accepted = Ledger_V1_PeerMessage(.phase2b(ballot: Samples.leaderBallot, slots: slots, chosenThrough: 0))
        #expect(
            wireError { () throws(WireError) in try decodeMessage(accepted) }
                == WireError(
                    field: "phase2b.slots",
                    "has 20001 elements; at most 20000 are allowed (WireLimits.entriesPerMessageMax)"))

        // A full slot's request count is written 0x80 0x04 (512) after the version, kind, tag and stamp (bytes 0-4);
        // one more request than the limit is 0x81 0x04.
        let requests = Array(repeating: Samples.requests[0], count: WireLimits.requestsPerSlotMax)
        var bytes = LedgerCodec.encode(SlotValue.batch(requests, ballot: Samples.leaderBallot))
        #expect(WireLimits.requestsPerSlotMax == 512 && bytes[5...6] == [0x80, 0x04])
        bytes[5] = 0x81
        #expect(
            valueError(bytes)
                == WireError(
                    field: "phase2a.proposals[0].value",
                    "does not decode as a slot value: malformed encoding at byte 5: 513 requests of a slot exceed the "
                        + "limit of 512 (requestsPerSlotMax)"))

        var prepare = Ledger_V1_Command(Samples.prepare)
        prepare.prepare.participants = Array(repeating: "C1", count: WireLimits.participantsPerTransactionMax + 1)
        #expect(
            wireError { () throws(WireError) in try LedgerCommand(wire: prepare) }
                == WireError(
                    field: "prepare.participants",
                    "has \(WireLimits.participantsPerTransactionMax + 1) elements; at most "
                        + "\(WireLimits.participantsPerTransactionMax) are allowed "
                        + "(WireLimits.participantsPerTransactionMax)"))
    }

    @Test func nestedPathInABatch() {
        var message = Ledger_V1_PeerMessage(.forward(requests: Samples.requests))
        message.forward.requests[2].command.prepare.from = 0
        var batch = Ledger_V1_PeerBatch(
            PeerBatch(
                cluster: "C1", from: ReplicaID(1), to: ReplicaID(2),
                messages: [.heartbeat(ballot: Samples.leaderBallot, chosenThrough: 0, round: 0)]))
        batch.messages.append(message)
        let error = wireError { () throws(WireError) in try PeerBatch(wire: batch) }
        #expect(
            error
                == WireError(
                    field: "messages[1].forward.requests[2].command.prepare.from",
                    "is 0; account ids start at 1"))
        #expect(
            error?.description
                == "malformed messages[1].forward.requests[2].command.prepare.from: is 0; account ids "
                + "start at 1")
    }

    @Test func accountZeroInASlotValue() throws {
        // Account 127 is the one byte 0x7F in this encoding; 0 is not an AccountID, so it is written over it.
        let transfer = LedgerCommand.transfer(
            Samples.transaction, from: AccountID(127), to: AccountID(2), amount: Amount(1))
        var bytes = LedgerCodec.encode(
            SlotValue.batch(
                [Request(id: RequestID(client: 7, sequence: 1), command: transfer)], ballot: Samples.leaderBallot))
        let at = try #require(bytes.firstIndex(of: 0x7F))
        #expect(bytes.filter { $0 == 0x7F }.count == 1)
        bytes[at] = 0
        #expect(
            valueError(bytes)
                == WireError(
                    field: "phase2a.proposals[0].value",
                    "does not decode as a slot value: malformed encoding at byte \(at): the from account of a "
                        + "transfer is 0; account ids start at 1"))
    }

    @Test func undecodableSnapshot() {
        var reply = Ledger_V1_PeerMessage(
            .catchUpReply(snapshot: Snapshot(slot: 4, state: Samples.snapshot, memberships: nil), entries: []))
        reply.catchUpReply.snapshot.state = Data([LedgerCodec.formatVersion + 1])
        let error = wireError { () throws(WireError) in try decodeMessage(reply) }
        #expect(error?.field == "catch_up_reply.snapshot.state")
        #expect(error?.problem.hasPrefix("does not decode as a ledger snapshot: malformed encoding at byte 0") == true)
    }

    @Test func balanceReplyWithTheWrongOutcome() {
        var reply = Ledger_V1_BalanceReply(.success(3))
        reply.result = Ledger_V1_Result(CommandResult.preparedYes)
        #expect(
            wireError { () throws(WireError) in try Result<Int64, RequestFailure>(wire: reply) }
                == WireError(
                    field: "result",
                    "is \"prepared (vote yes)\"; a balance read is committed or fails with a request failure"))
    }

    @Test func badMembershipChanges() {
        func change(_ edit: (inout Ledger_V1_ChangeMembershipRequest) -> Void) -> WireError? {
            var request = Ledger_V1_ChangeMembershipRequest(
                cluster: "C1", change: .replace(ReplicaID(3), with: ReplicaID(10)))
            edit(&request)
            return wireError { () throws(WireError) in try MembershipChange(wire: request) }
        }
        #expect(
            change { $0.kind = .unspecified }
                == WireError(field: "kind", "is not set (MEMBERSHIP_CHANGE_KIND_UNSPECIFIED)"))
        #expect(change { $0.kind = .UNRECOGNIZED(9) } == WireError(field: "kind", "is 9, not a known change"))
        #expect(change { $0.replacement = "S3" } == WireError(field: "replacement", "is S3, the replica it replaces"))
        #expect(
            change { $0.kind = .promote } == WireError(field: "replacement", "is given, but only REPLACE takes one"))
        #expect(change { $0.replica = "" }?.field == "replica")
        #expect(change { $0.replacement = "" }?.field == "replacement")
    }

    @Test func badMembershipConfigurations() {
        func configuration(_ edit: (inout Ledger_V1_MembershipConfiguration) -> Void) -> WireError? {
            var wire = Ledger_V1_MembershipConfiguration(
                Membership(epoch: 2, voters: [ReplicaID(1)], learners: [ReplicaID(2)]))
            edit(&wire)
            return wireError { () throws(WireError) in try Membership(wire: wire, field: "configuration") }
        }
        #expect(configuration { $0.epoch = 0 } == WireError(field: "configuration.epoch", "is 0; epochs count from 1"))
        #expect(
            configuration { $0.voters = [] }
                == WireError(field: "configuration.voters", "is empty; a configuration has a voter"))
        #expect(
            configuration { $0.learners = ["S1"] } == WireError(field: "configuration", "names a replica twice"))
        #expect(configuration { $0.learners = ["T2"] }?.field == "configuration.learners[0]")
        var status = Ledger_V1_StatusReply(
            ReplicaStatus(
                cluster: "C1", replica: ReplicaID(1), role: .leader, ballot: Samples.leaderBallot, leader: ReplicaID(1),
                chosenThrough: 5, appliedThrough: 5, locksHeld: 0, snapshotSlot: 0, isDisconnected: false,
                progress: [ReplicaID(2): 5]))
        status.progress.append(status.progress[0])
        #expect(
            wireError { () throws(WireError) in try ReplicaStatus(wire: status) }
                == WireError(field: "progress[1].replica", "names S2 twice"))
        status.progress.removeLast()
        status.waitingOn = ["C2", "shard 3"]
        #expect(wireError { () throws(WireError) in try ReplicaStatus(wire: status) }?.field == "waiting_on[1]")
    }
}
