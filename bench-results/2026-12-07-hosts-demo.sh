#!/usr/bin/env bash
# Transcript: the README's multi-host demo (three hosts made of network namespaces, a node on each, the client on its
# own host), then a kernel partition under load: host h2 isolated for 14 s while a bench runs, how soon after the heal
# every replica answers a fresh client, and how the bench's (long-lived) connection's per-second commits come back. Run as root from the checkout; BIN
# names the built binaries (default: a release build).
set -u
export BIN=${BIN:-$(swift build -c release --show-bin-path)}
dir=/tmp/hosts-demo
bash scripts/deploy-hosts.sh down "$dir" > /dev/null 2>&1
bash scripts/hosts.sh down --prefix demo > /dev/null 2>&1
rm -rf "$dir"
t0=$(date +%s.%N)
ts() { printf "[t=%5.1fs] " "$(echo "$(date +%s.%N) - $t0" | bc)"; }
ts; echo "$ scripts/hosts.sh up 3 --prefix demo --out $dir"
bash scripts/hosts.sh up 3 --prefix demo --out "$dir"
ts; echo "$ scripts/deploy-hosts.sh up $dir"
bash scripts/deploy-hosts.sh up "$dir" | grep -v "^certs/"
ts; echo "$ ip netns exec demo-client ss -tn | grep -c ESTAB   # the client host's connections (none yet)"
ip netns exec demo-client ss -tn | grep -c ESTAB
ts; echo "$ ip netns exec demo-h1 ss -tn state established '( sport = :6101 or sport = :7101 )' | tail -n +2 | awk '{print \$4}' | cut -d: -f1 | sort | uniq -c"
ip netns exec demo-h1 ss -tn state established '( sport = :6101 or sport = :7101 )' | tail -n +2 | awk '{print $4}' \
    | cut -d: -f1 | sort | uniq -c
ts; echo "$ scripts/deploy-hosts.sh client $dir run tests-data/tests.csv --batch"
bash scripts/deploy-hosts.sh client "$dir" run tests-data/tests.csv --batch
ts; echo "$ scripts/deploy-hosts.sh client $dir status"
bash scripts/deploy-hosts.sh client "$dir" status
ts; echo "$ scripts/deploy-hosts.sh client $dir bench --duration 40 --concurrency 16 --cross-shard 0.1 --json bench.json &"
bash scripts/deploy-hosts.sh client "$dir" bench --duration 40 --warmup 1 --concurrency 16 --cross-shard 0.1 \
    --json "$dir/bench.json" > "$dir/bench.out" 2>&1 &
bench=$!
sleep 15
ns=demo-h2
ts; echo "isolating $ns (every packet in or out dropped) for 14 s under the bench"
ip netns exec $ns iptables -A INPUT -i eth0 -j DROP
ip netns exec $ns iptables -A OUTPUT -o eth0 -j DROP
sleep 14
ip netns exec $ns iptables -F
healed=$(date +%s.%N)
ts; echo "healed; a fresh client asks every replica's status until all answer and name their cluster's leader:"
for ((i = 0; i < 60; i++)); do
    out=$(bash scripts/deploy-hosts.sh client "$dir" status 2>&1)
    answered=$(echo "$out" | grep -c ': \(leader\|follower\) ')
    printf "  +%4.1fs: %s of 9 replicas answer as leader or follower\n" "$(echo "$(date +%s.%N) - $healed" | bc)" "$answered"
    [ "$answered" = 9 ] && break
    sleep 0.5
done
echo "$out"
wait $bench
ts; echo "$ tail -4 bench.out; per-second commits:"
tail -4 "$dir/bench.out"
python3 -c "import json; print(json.load(open('$dir/bench.json'))['committedEachSecond'])"
ts; echo "$ scripts/deploy-hosts.sh down $dir; scripts/hosts.sh down --prefix demo"
bash scripts/deploy-hosts.sh down "$dir"
bash scripts/hosts.sh down --prefix demo
