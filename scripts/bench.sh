#!/usr/bin/env bash
# The benchmark matrix: starts the three clusters fresh (a copy of configs/ in a temporary folder, release build,
# fsync on), runs `client bench` for concurrency 1 / 8 / 64 x cross-shard 0 / 0.1 / 1, writes
# bench-results/<date>.md and .csv, and stops everything. Every run starts from fresh clusters (3000 accounts at
# balance 10), as the peer scripts of ../shared/peers do, since balances random-walk to zero over a run.
# LAYOUT=nodes (the default) runs configs/nodes/: 3 node processes, each hosting one replica of every cluster (ports
# 6101-6103, metrics 9201-9209); LAYOUT=replicas runs configs/: 9 replica processes (ports 6001-6009, metrics
# 9101-9109). Those ports must be free. DURATION (seconds measured per run, default 20) and WARMUP (default 2) scale it;
# the default matrix takes about 5 minutes after the build. SCRATCH_PATH names another build folder (.build-NAME).
# CONCURRENCY (default "1 8 64") and CROSS (default "0 0.1 1") pick the matrix. Mutual TLS is on, as configs/ ship
# (certificates made by `shardctl certs` in the temporary folder); TLS=off runs plaintext, to measure what TLS costs.
# BIN names a folder of prebuilt `cluster`, `client` and `shardctl` instead (an A/B of two commits built alike).
# Besides the client's figures, each row gives the CPU the cluster processes used over the measured seconds (cores)
# and per committed transfer (µs): where the cores are saturated, the CPU per transfer is what a change moves.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-2}
CONCURRENCY=${CONCURRENCY:-1 8 64}
CROSS=${CROSS:-0 0.1 1}
TLS=${TLS:-on}
LAYOUT=${LAYOUT:-nodes}
case "$LAYOUT" in
    nodes) hosts=configs/nodes/hosts.ini ;;
    replicas) hosts=configs/hosts.ini ;;
    *) echo "LAYOUT is nodes or replicas, not $LAYOUT" >&2; exit 2 ;;
esac

if [ -n "${BIN:-}" ]; then
    bin=$(cd "$BIN" && pwd)
else
    echo "== release build"
    scratch=()
    if [ -n "${SCRATCH_PATH:-}" ]; then scratch=(--scratch-path "$SCRATCH_PATH"); fi
    swift build -c release "${scratch[@]}"
    bin=$(swift build -c release "${scratch[@]}" --show-bin-path)
fi

work=$(mktemp -d /tmp/ledger-bench.XXXXXX)
cp -r configs tests-data "$work/"
cd "$work"
if [ "$TLS" = off ]; then
    for config in configs/C*.yaml configs/nodes/C*.yaml; do
        sed -i '/^tls:/,/^  key:/d' "$config"
        echo "tls: off" >> "$config"
    done
else
    "$bin/shardctl" certs --hosts "$hosts" > /dev/null
fi
pids=()
stop() {
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap stop EXIT

# CPU ticks (user + system) of every running process of this build's `cluster` binary.
cluster_ticks() {
    local total=0 pid
    for pid in $(pgrep -f "^$bin/cluster" || true); do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p "$repo/bench-results"
csv="$repo/bench-results/$stamp.csv"
md="$repo/bench-results/$stamp.md"
echo "concurrency,cross_shard,committed_per_s,aborted_per_s,p50_ms,p99_ms,cross_p99_ms,slowest_second,total_ok,cluster_cores,cpu_us_per_transfer" > "$csv"
{
    echo "# Ledger benchmark $stamp"
    echo
    echo "3 clusters x 3 replicas on one machine ($(nproc) cores), layout $LAYOUT, release build, SQLite synchronous=FULL, TLS $TLS;"
    echo "3000 accounts at balance 10, uniform pairs, amount 1, closed loop, ${DURATION} s measured after ${WARMUP} s."
    echo
    echo "| concurrency | cross-shard | committed/s | aborted/s | p50 ms | p99 ms | cross p99 ms | slowest second | total ok | cluster cores | CPU µs per transfer |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
} > "$md"

for concurrency in $CONCURRENCY; do
    for cross in $CROSS; do
        echo "== concurrency $concurrency, cross-shard $cross"
        rm -rf data
        "$bin/shardctl" shard tests-data/shards.csv --hosts "$hosts" > /dev/null
        pids=()
        if [ "$LAYOUT" = nodes ]; then
            "$bin/cluster" node "$hosts" > cluster-nodes.out 2>&1 &
            pids+=($!)
        else
            for cluster in C1 C2 C3; do
                "$bin/cluster" "configs/$cluster.yaml" "$hosts" > "cluster-$cluster.out" 2>&1 &
                pids+=($!)
            done
        fi
        "$bin/client" bench --hosts "$hosts" --duration "$DURATION" --warmup "$WARMUP" --concurrency "$concurrency" \
            --cross-shard "$cross" --json "bench-$concurrency-$cross.json" > "bench-$concurrency-$cross.out" &
        client=$!
        # The cluster processes' CPU over the measured seconds, less one at each end.
        window=$((DURATION > 2 ? DURATION - 2 : 1))
        sleep "$((WARMUP + 1))"
        first=$(cluster_ticks)
        sleep "$window"
        last=$(cluster_ticks)
        wait "$client"
        line=$(tail -n 1 "bench-$concurrency-$cross.out")
        echo "$line" >&2
        value() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
        cores=$(awk -v t=$((last - first)) -v w="$window" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz / w }')
        per_transfer=$(awk -v c="$cores" -v r="$(value committed_per_s)" 'BEGIN { printf "%.0f", (r > 0 ? c * 1e6 / r : 0) }')
        echo "$concurrency,$cross,$(value committed_per_s),$(value aborted_per_s),$(value p50_ms),$(value p99_ms),$(value cross_p99_ms),$(value slowest_second),$(value total_ok),$cores,$per_transfer" >> "$csv"
        echo "| $concurrency | $cross | $(value committed_per_s) | $(value aborted_per_s) | $(value p50_ms) | $(value p99_ms) | $(value cross_p99_ms) | $(value slowest_second) | $(value total_ok) | $cores | $per_transfer |" >> "$md"
        stop
    done
done
echo "== results: $md"
cat "$md"
