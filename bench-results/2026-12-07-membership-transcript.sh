#!/usr/bin/env bash
# Transcript: replace a dead replica and remove the leader of C1 under client bench.
set -u
B=/tmp/rel-scratch/release
cd /tmp/demo
t0=$(date +%s.%N)
ts() { printf "[t=%5.1fs] " "$(echo "$(date +%s.%N) - $t0" | bc)"; }
$B/shardctl shard tests-data/shards.csv > /dev/null && $B/shardctl certs > /dev/null
for c in C1 C2 C3; do $B/cluster configs/$c.yaml configs/hosts.ini > $c.out 2>&1 & done
sleep 8
$B/client bench --duration 70 --warmup 2 --concurrency 32 --cross-shard 0.1 --json bench.json > bench.out 2>&1 &
bench=$!
tb=$(date +%s.%N); echo "bench starts at t=$(echo "$tb - $t0" | bc)"
sleep 14
ts; echo "kill -9 S3 and delete its data (a dead machine)"
pkill -9 -f -- "--name S3\b"; rm -f data/C1/S3.sqlite*
ts; echo "$ shardctl member add S10 --cluster C1 --address localhost:6010"
$B/shardctl member add S10 --cluster C1 --address localhost:6010
ts; echo "$ cluster configs/C1.yaml configs/hosts.ini --replica S10 &"
$B/cluster configs/C1.yaml configs/hosts.ini --replica S10 > s10.out 2>&1 &
ts; echo "$ shardctl member replace S3 --with S10"
$B/shardctl member replace S3 --with S10
ts; echo "$ shardctl member list --cluster C1"
$B/shardctl member list --cluster C1
sleep 10
ts; echo "$ shardctl member add S11 --cluster C1 --address localhost:6011; start it; promote"
$B/shardctl member add S11 --cluster C1 --address localhost:6011 | grep C1
$B/cluster configs/C1.yaml configs/hosts.ini --replica S11 > s11.out 2>&1 &
$B/shardctl member promote S11
sleep 5
leader=$($B/shardctl member list --cluster C1 | grep -E "^S[0-9]+ .* leader " | awk "{print \$1}")
ts; echo "$ shardctl member remove $leader   (the leader)"
$B/shardctl member remove $leader
sleep 3
ts; echo "$ shardctl member list --cluster C1"
$B/shardctl member list --cluster C1
wait $bench
ts; echo "bench done"; tail -4 bench.out
echo "bench started at t=$(echo "$tb - $t0" | bc)"
