#!/usr/bin/env python3
"""A client of the ledger written from Protos/ledger.proto alone, as an outside developer would.

It finds each cluster's leader, makes an intra-shard transfer, reads balances, makes a cross-shard transfer by
hand with two-phase commit, reads TransactionStatus at both clusters, and checks every answer; it exits 1 with
a message on the first mismatch. docs/CLIENT-PROTOCOL.md explains each step; the section names below refer to it.

Run it with examples/python/run.sh, which generates the stubs (ledger_pb2, ledger_pb2_grpc) first:
    examples/python/run.sh --hosts configs/hosts.ini --certs certs --identity client
"""
import argparse
import concurrent.futures
import os
import random
import sys
import time

import grpc

import ledger_pb2 as pb
import ledger_pb2_grpc as pb_grpc

SUCCESS_LINE = "ledger example: all checks passed"

# Answers that say "not done here, nothing applied" or "outcome unknown": send the same request again.
RETRY_REASONS = {
    pb.ABORT_REASON_NOT_LEADER,
    pb.ABORT_REASON_NO_QUORUM,
    pb.ABORT_REASON_BUSY,
    pb.ABORT_REASON_TIMED_OUT,
}


class Failed(Exception):
    """A check failed or the deployment did not answer: the example exits 1 with this message."""


class Unknown(Failed):
    """No final answer within the patience: the outcome of the request is unknown."""


def check(condition, message):
    if not condition:
        raise Failed(message)


def describe(result):
    text = pb.Outcome.Name(result.outcome)
    if result.outcome == pb.OUTCOME_ABORTED:
        text += " " + pb.AbortReason.Name(result.reason)
    if result.owner_cluster:
        text += f" owner={result.owner_cluster}"
    return text + (f" ({result.message})" if result.message else "")


def read_hosts(path):
    """hosts.ini: `S1-127.0.0.1:6001` (replica), `C1-S1` (contact), `EC1-S1:S2:S3` (members). Split on the first '-'."""
    replicas, contacts, members = {}, {}, {}
    with open(path, encoding="utf-8-sig") as file:
        for number, line in enumerate(file, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            key, dash, value = line.partition("-")
            check(dash, f"{path}:{number}: expected NAME-VALUE, got {line!r}")
            if key.startswith("EC"):
                members["C" + key[2:]] = value.split(":")
            elif key.startswith("C"):
                contacts[key] = value
            elif key.startswith("S"):
                replicas[key] = value
    check(members, f"{path}: no cluster (EC<n>-...) lines")
    for cluster, names in members.items():
        contacts.setdefault(cluster, names[0])
    return replicas, contacts, members


class Ledger:
    """Channels to every replica (mutual TLS), and each cluster's believed leader (see "Finding the leader")."""

    def __init__(self, hosts, certs, identity, call_timeout, patience):
        self.replicas, contacts, self.members = read_hosts(hosts)

        def read(name):
            with open(os.path.join(certs, name), "rb") as file:
                return file.read()

        # Section "Certificates": the deployment's CA, and this program's certificate and key (role client).
        # Replica certificates name their host from hosts.ini (127.0.0.1, localhost...), so the host dialled is
        # the name verified and no grpc.ssl_target_name_override is needed.
        self.credentials = grpc.ssl_channel_credentials(
            root_certificates=read("ca.pem"),
            private_key=read(f"{identity}-key.pem"),
            certificate_chain=read(f"{identity}.pem"),
        )
        self.stubs = {}
        self.leader = dict(contacts)
        self.call_timeout = call_timeout
        self.patience = patience

    def clusters(self):
        return sorted(self.members, key=lambda name: int(name[1:]))

    def stub(self, replica):
        if replica not in self.stubs:
            channel = grpc.secure_channel(self.replicas[replica], self.credentials)
            self.stubs[replica] = pb_grpc.LedgerStub(channel)
        return self.stubs[replica]

    def next_member(self, cluster, replica):
        names = self.members[cluster]
        return names[(names.index(replica) + 1) % len(names)] if replica in names else names[0]

    def call(self, cluster, method, request):
        """Sends `request` to the leader of `cluster` until a final answer, following `leader_hint` (NOT_LEADER)
        and trying the next member when a replica is down. A timeout, TIMED_OUT, NO_QUORUM or BUSY sends the SAME
        request again: with the same transaction id it is applied at most once (section "Transaction ids")."""
        deadline = time.monotonic() + self.patience
        replica, last = self.leader[cluster], "no answer"
        while True:
            try:
                reply = getattr(self.stub(replica), method)(request, timeout=self.call_timeout)
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    # FAILED_PRECONDITION (wrong cluster), PERMISSION_DENIED, INVALID_ARGUMENT: retrying won't help.
                    raise Failed(f"{method} at {replica} ({cluster}): {error.code().name}: {error.details()}")
                last, hint, move_on = f"{error.code().name} from {replica}", None, True
            else:
                result, hint = reply.result, reply.result.leader_hint
                if not (result.outcome == pb.OUTCOME_ABORTED and result.reason in RETRY_REASONS):
                    self.leader[cluster] = hint or replica
                    return reply
                last, move_on = f"{describe(result)} from {replica}", result.reason == pb.ABORT_REASON_NOT_LEADER
            if time.monotonic() > deadline:
                raise Unknown(f"{method} at {cluster}: no final answer within {self.patience}s (last: {last})")
            if hint and hint != replica:
                print(f"  {cluster}: {replica} says the leader is {hint}")
                replica = hint
                continue
            if move_on:  # down, or not leading and knowing no leader: try the next member
                replica = self.next_member(cluster, replica)
            time.sleep(0.2)

    def balance(self, cluster, account):
        """The committed balance (a linearizable read at the leader); LOCKED waits for the 2PC holding the account."""
        deadline = time.monotonic() + self.patience
        while True:
            reply = self.call(cluster, "Balance", pb.BalanceRequest(cluster=cluster, account=account))
            if reply.result.outcome == pb.OUTCOME_COMMITTED:
                return reply.balance
            check(reply.result.reason == pb.ABORT_REASON_LOCKED and time.monotonic() < deadline,
                  f"Balance of {account} at {cluster}: {describe(reply.result)}")
            time.sleep(0.2)

    def cluster_of(self, account):
        """Which cluster holds `account`: ask one, and follow WRONG_SHARD's owner_cluster (section "Answers")."""
        for cluster in self.clusters():
            reply = self.call(cluster, "Balance", pb.BalanceRequest(cluster=cluster, account=account))
            result = reply.result
            if result.outcome == pb.OUTCOME_COMMITTED or result.reason == pb.ABORT_REASON_LOCKED:
                return cluster
            check(result.reason == pb.ABORT_REASON_WRONG_SHARD, f"Balance of {account}: {describe(result)}")
            if result.owner_cluster in self.members:
                return result.owner_cluster
        raise Failed(f"no cluster of the deployment holds account {account}")

    def transaction_status(self, cluster, transaction):
        """TransactionStatus at the leader (PREPARED and UNKNOWN may be stale elsewhere); waits briefly for a final
        state, which the other participant reaches once it applied the home's decision."""
        deadline = time.monotonic() + self.patience
        replica = self.leader[cluster]
        while True:
            request = pb.TransactionStatusRequest(cluster=cluster, replica=replica, transaction=transaction)
            try:
                reply = self.stub(replica).TransactionStatus(request, timeout=self.call_timeout)
            except grpc.RpcError as error:
                check(error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED),
                      f"TransactionStatus at {replica}: {error.code().name}: {error.details()}")
                reply, replica = None, self.next_member(cluster, replica)
            if reply is not None:
                final = reply.state in (pb.TRANSACTION_STATE_COMMITTED, pb.TRANSACTION_STATE_ABORTED)
                if final or time.monotonic() > deadline:
                    return reply
                replica = reply.leader_hint or replica
            check(time.monotonic() < deadline, f"TransactionStatus at {cluster}: no answer within {self.patience}s")
            time.sleep(0.2)


class TransactionIds:
    """A fresh time-ordered client id for this run (milliseconds since 1970 above 20 random bits) and sequences counted
    up from 1 (section "Transaction ids and retries")."""

    def __init__(self):
        self.client = (int(time.time() * 1000) << 20) | random.SystemRandom().randrange(0, 2**20)
        self.sequence = 0

    def next(self):
        self.sequence += 1
        return pb.TransactionId(client=self.client, sequence=self.sequence)


def transfer_command(transaction, source, target, amount):
    return pb.TransferCommand(transaction=transaction, to=target, amount=amount, **{"from": source})


def cross_shard_transfer(ledger, transaction, home, other, source, target, amount):
    """Two-phase commit by hand (section "Cross-shard transfers"). True when committed, False when aborted."""
    prepare = pb.PrepareCommand(transaction=transaction, home=home, participants=[home, other], to=target,
                                amount=amount, **{"from": source})
    # 1. Prepare the SAME whole transfer at both participants, in parallel; each checks its own part and votes.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        votes = dict(zip((home, other), pool.map(
            lambda c: ledger.call(c, "Prepare", pb.PrepareRequest(cluster=c, prepare=prepare)).result, (home, other))))
    for cluster, vote in votes.items():
        print(f"  prepare at {cluster}: {describe(vote)}")
    if all(vote.outcome == pb.OUTCOME_PREPARED for vote in votes.values()):
        # 2. Commit at the home first: the commit point. If its answer is lost, TransactionStatus at the home tells.
        commit = pb.CommitCommand(transaction=transaction)
        try:
            decided = ledger.call(home, "Commit", pb.CommitRequest(cluster=home, commit=commit)).result
            committed = decided.outcome == pb.OUTCOME_COMMITTED
            print(f"  commit at {home} (home): {describe(decided)}")
        except Unknown:
            state = ledger.transaction_status(home, transaction).state
            committed = state == pb.TRANSACTION_STATE_COMMITTED
            print(f"  commit at {home} (home): answer lost; status {pb.TransactionState.Name(state)}")
        if committed:
            # 3. Then the other participant, which learns the home's decision and applies it.
            learned = ledger.call(other, "Commit", pb.CommitRequest(cluster=other, commit=commit)).result
            print(f"  commit at {other}: {describe(learned)}")
            check(learned.outcome == pb.OUTCOME_COMMITTED, f"commit at {other} after the home's: {describe(learned)}")
            return True
    # A no-vote, or the home refused the commit: abort at the home first, then at the other participant.
    for cluster in (home, other):
        aborted = ledger.call(cluster, "Abort", pb.AbortRequest(cluster=cluster, abort=pb.AbortCommand(
            transaction=transaction))).result
        print(f"  abort at {cluster}: {describe(aborted)}")
        check(aborted.outcome != pb.OUTCOME_REFUSED, f"abort at {cluster} refused: {describe(aborted)}")
    return False


def run(args):
    ledger = Ledger(args.hosts, args.certs, args.identity, args.call_timeout, args.patience)
    ids, amount, source, near_to, far_to = TransactionIds(), args.amount, args.source, args.intra_to, args.to
    print(f"client id {ids.client}; clusters {', '.join(ledger.clusters())}")

    home, near, far = (ledger.cluster_of(account) for account in (source, near_to, far_to))
    print(f"account {source} is in {home}, {near_to} in {near}, {far_to} in {far}")
    check(near == home, f"--intra-to {near_to} must be in the cluster of --from {source} ({home}), not {near}")
    check(far != home, f"--to {far_to} must be in another cluster than --from {source} ({home})")

    def expect_balances(expected, after_what):
        got = (ledger.balance(home, source), ledger.balance(home, near_to), ledger.balance(far, far_to))
        print(f"balances {after_what}: {source}={got[0]} {near_to}={got[1]} {far_to}={got[2]}")
        check(expected is None or got == expected, f"balances {after_what}: expected {expected}, got {got}")
        return got

    def expect_states(transaction, wanted):
        for cluster in (home, far):
            status = ledger.transaction_status(cluster, transaction)
            state = pb.TransactionState.Name(status.state)
            print(f"  TransactionStatus at {cluster} ({status.replica}, slot {status.applied_through}): {state}")
            check(status.state == wanted, f"TransactionStatus at {cluster}: expected "
                  f"{pb.TransactionState.Name(wanted)}, got {state}")

    a, b, c = expect_balances(None, "before")
    check(a >= 2 * amount, f"account {source} holds {a}, less than the {2 * amount} this run moves")

    # Intra-shard transfer: one call to the leader of the cluster holding both accounts.
    intra_id = ids.next()
    intra = pb.TransferRequest(cluster=home, transfer=transfer_command(intra_id, source, near_to, amount))
    result = ledger.call(home, "Transfer", intra).result
    print(f"transfer {source} -> {near_to} of {amount} at {home} (leader {ledger.leader[home]}): {describe(result)}")
    check(result.outcome == pb.OUTCOME_COMMITTED, f"intra-shard transfer: {describe(result)}")
    a, b, c = expect_balances((a - amount, b + amount, c), "after the intra-shard transfer")

    # A retry (same id, same content) is answered with the first outcome and applied once; the same id with other
    # content is refused.
    again = ledger.call(home, "Transfer", intra).result
    check(again.outcome == pb.OUTCOME_COMMITTED, f"retry of the transfer: expected COMMITTED, got {describe(again)}")
    other = pb.TransferRequest(cluster=home, transfer=transfer_command(intra_id, source, near_to, amount + 1))
    refused = ledger.call(home, "Transfer", other).result
    print(f"the same transaction id with amount {amount + 1}: {describe(refused)}")
    check(refused.outcome == pb.OUTCOME_REFUSED, f"reused transaction id: expected REFUSED, got {describe(refused)}")
    expect_balances((a, b, c), "after the retry and the refused reuse")

    # Cross-shard transfer by two-phase commit, the client coordinating: debit and credit of the same amount.
    cross_id = ids.next()
    print(f"cross-shard transfer {source} ({home}) -> {far_to} ({far}) of {amount}, "
          f"transaction {cross_id.client}.{cross_id.sequence}")
    check(cross_shard_transfer(ledger, cross_id, home, far, source, far_to, amount), "the cross-shard transfer aborted")
    expect_states(cross_id, pb.TRANSACTION_STATE_COMMITTED)
    total = a + c
    a, b, c = expect_balances((a - amount, b, c + amount), "after the cross-shard transfer")
    check(a + c == total, f"money not conserved: {source} and {far_to} held {total}, now {a + c}")

    # A cross-shard transfer the home votes no on (more than the account holds): both participants abort.
    no_id = ids.next()
    print(f"cross-shard transfer of {a + 1} (more than {source} holds), transaction {no_id.client}.{no_id.sequence}")
    check(not cross_shard_transfer(ledger, no_id, home, far, source, far_to, a + 1), "an uncovered transfer committed")
    expect_states(no_id, pb.TRANSACTION_STATE_ABORTED)
    expect_balances((a, b, c), "after the aborted cross-shard transfer")
    print(SUCCESS_LINE)


def main():
    parser = argparse.ArgumentParser(description="Use the ledger's gRPC API from Python (docs/CLIENT-PROTOCOL.md).")
    parser.add_argument("--hosts", default="configs/hosts.ini", help="the deployment's hosts.ini")
    parser.add_argument("--certs", default="certs", help="folder with ca.pem, <identity>.pem, <identity>-key.pem")
    parser.add_argument("--identity", default="client", help="certificate to present: client or operator")
    # Defaults suit tests-data/shards.csv: 1-1000 in C1, 1001-2000 in C2.
    parser.add_argument("--from", dest="source", type=int, default=21, help="account debited (default 21)")
    parser.add_argument("--intra-to", type=int, default=700, help="account in the same cluster (default 700)")
    parser.add_argument("--to", type=int, default=1021, help="account in another cluster (default 1021)")
    parser.add_argument("--amount", type=int, default=1, help="amount of each transfer (default 1)")
    parser.add_argument("--call-timeout", type=float, default=5.0, help="seconds per call before retrying")
    parser.add_argument("--patience", type=float, default=60.0, help="seconds of retrying before giving up")
    args = parser.parse_args()
    try:
        run(args)
    except (Failed, OSError) as error:
        print(f"ledger example: FAILED: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
