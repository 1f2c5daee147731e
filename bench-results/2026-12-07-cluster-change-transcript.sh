#!/usr/bin/env bash
# Transcript: add cluster C4, fill it, then drain C2, on the demo deployment of configs/ under client bench.
set -u
B=${B:-/tmp/rel-scratch/release}
rm -rf /tmp/demo && mkdir -p /tmp/demo && cp -r configs tests-data /tmp/demo/ && cd /tmp/demo
t0=$(date +%s.%N)
ts() { printf "[t=%5.1fs] " "$(echo "$(date +%s.%N) - $t0" | bc)"; }
$B/shardctl shard tests-data/shards.csv > /dev/null && $B/shardctl certs > /dev/null
for c in C1 C2 C3; do $B/cluster configs/$c.yaml configs/hosts.ini > $c.out 2>&1 & done
sleep 8
$B/client bench --duration 100 --warmup 2 --concurrency 32 --cross-shard 0.1 --accounts 1500 --json bench.json > bench.out 2>&1 &
bench=$!
tb=$(date +%s.%N); echo "bench starts at t=$(echo "$tb - $t0" | bc)"
sleep 14
ts; echo "$ shardctl cluster add C4 --replicas S10:S11:S12"
$B/shardctl cluster add C4 --replicas S10:S11:S12
ts; echo "$ cluster configs/C4.yaml configs/hosts.ini &"
$B/cluster configs/C4.yaml configs/hosts.ini > C4.out 2>&1 &
sleep 5
ts; echo "$ shardctl rebalance --fill C4"
$B/shardctl rebalance --fill C4
ts; echo "$ client rebalance new-schema.txt"
$B/client rebalance new-schema.txt
ts; echo "done"
sleep 15
ts; echo "$ shardctl cluster drain C2"
$B/shardctl cluster drain C2
ts; echo "done"
ts; echo "$ tail -3 configs/hosts.ini; ls configs"
tail -3 configs/hosts.ini; ls configs
wait $bench
ts; echo "bench done"; tail -4 bench.out
echo "bench started at t=$(echo "$tb - $t0" | bc)"
ts; echo "stop C2's replicas"
pkill -f -- "cluster configs/C2.yaml"; sleep 2
ts; echo "$ client bench --duration 10 (a new client, C1, C3 and C4 only)"
$B/client bench --duration 10 --warmup 1 --concurrency 32 --cross-shard 0.1 --accounts 1500 | tail -2
pkill -f -- "cluster configs/C"; sleep 2
python3 - <<'PY'
import json
d = json.load(open("bench.json"))
print("per_second", d.get("committedEachSecond") or d.get("committed_each_second"))
PY
