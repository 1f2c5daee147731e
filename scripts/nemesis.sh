#!/usr/bin/env bash
# The nemesis run: real replica processes (2 clusters x 3, mutual TLS) under the bank workload (4 transfer clients,
# 1 reader, 1 client whose cross-shard coordinators die after the votes or after the home commit) while a seeded
# nemesis kills followers, leaders and majorities with SIGKILL (then restarts them from disk), pauses leaders with
# SIGSTOP past the election timeout, disconnects replicas, cuts a leader off from its followers (clients still reach
# it), drops one direction of a peer link, and makes a cluster's links lose, duplicate and delay messages; then it
# heals, waits for recovery, and checks the history and the final state (Tests/IntegrationTests/NemesisTests.swift).
# Each run prints its seed, the faults and the figures, and fails on any violation.
#
#   scripts/nemesis.sh [--seed N] [--runs N] [--duration SECONDS] [--hosts]   (defaults: seed 1, 1 run, 600 s of faults)
#
# --hosts: on three hosts made of network namespaces (scripts/hosts.sh; needs root, ip and iptables), nodes of two
# clusters, with the kernel's faults instead: a host's packets all dropped, the leader's host cut off from the other
# servers (not from the client), one direction between two hosts dropped, SYNs to a host dropped while another host's
# node restarts, a host's link down and up; after each heal it measures how long the workload's channels and the
# peers take to come back (`reconnected after healing in ...`), and fails if that exceeds 90 s.
#
# Bounded: each run lasts its duration plus about a minute of setup, recovery and checking (30 min at most).
set -euo pipefail
cd "$(dirname "$0")/.."
seed=1
runs=1
duration=600
filter=bankWorkloadSurvivesTheNemesis
while [ $# -gt 0 ]; do
    case "$1" in
        --seed) seed=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --hosts) filter=bankWorkloadSurvivesKernelPartitions; shift ;;
        *) echo "unknown option $1; use --seed N, --runs N, --duration SECONDS, --hosts" >&2; exit 2 ;;
    esac
done
# SCRATCH_PATH names another build folder (.build-NAME), so that builds in the checkout do not change the binaries
# under a long run.
scratch=()
if [ -n "${SCRATCH_PATH:-}" ]; then scratch=(--scratch-path "$SCRATCH_PATH"); fi
swift build --build-tests "${scratch[@]}"
failed=0
for ((run = 0; run < runs; run++)); do
    current=$((seed + run))
    echo "== nemesis run $((run + 1)) of $runs: seed $current, $duration s of faults"
    log=$(mktemp /tmp/nemesis.XXXXXX.log)
    status=0
    NEMESIS_SEED=$current NEMESIS_DURATION=$duration swift test --skip-build "${scratch[@]}" --filter "$filter" > "$log" 2>&1 \
        || status=$?
    grep -E '^nemesis|✘|integration data' "$log" || true
    if [ "$status" != 0 ]; then
        failed=$((failed + 1))
        echo "   run failed (exit $status); full output in $log"
    else
        rm -f "$log"
    fi
done
echo "== $runs runs, $failed failed"
[ "$failed" = 0 ]
