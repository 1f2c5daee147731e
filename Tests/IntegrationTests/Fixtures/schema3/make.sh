#!/usr/bin/env bash
# Makes this fixture: the six replica files (store schema 3, state format 3) of a two-cluster deployment run by the
# release before schema 4, so that MigrationTests can start today's replicas on them.
#
#   git worktree add /tmp/old 346447a && swift build -c release --package-path /tmp/old
#   Tests/IntegrationTests/Fixtures/schema3/make.sh /tmp/old/.build/release
#
# C1 owns accounts 1-20 and C2 21-40, at balance 10, plaintext, as TestDeployment(clusters: 2,
# accountsPerCluster: 20, tls: false) lays them out. The transfers: 1 -> 2 (4), 3 -> 25 (3, C1 home), 22 -> 5 (2,
# C2 home), 26 -> 27 (1), and 7 -> 8 (50), refused for insufficient funds.
set -euo pipefail
binaries=$(cd "$1" && pwd)
fixture=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/ledger-schema3.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
mkdir -p configs data
base=$((20000 + RANDOM % 20000))
{
    for n in 1 2 3 4 5 6; do echo "S$n-127.0.0.1:$((base + n))"; done
    echo "C1-S1"; echo "C2-S4"; echo "EC1-S1:S2:S3"; echo "EC2-S4:S5:S6"
} > configs/hosts.ini
for c in 1 2; do
    cat > "configs/C$c.yaml" <<YAML
cluster: C$c
replicas:
  count: 3
  start: $((3 * c - 2))
  subnet: $((base + 3 * c - 2))
data_dir: data/C$c
catalog: data/catalog.sqlite
min_balance: 0
initial_balance: 10
tls: off
YAML
done
printf 'Shard, Cluster, Range\nD1, C1, 1-20\nD2, C2, 21-40\n' > shards.csv
"$binaries/shardctl" shard shards.csv
"$binaries/cluster" configs/C1.yaml configs/hosts.ini > c1.log 2>&1 &
"$binaries/cluster" configs/C2.yaml configs/hosts.ini > c2.log 2>&1 &
sleep 5
for transfer in "1 2 4" "3 25 3" "22 5 2" "26 27 1" "7 8 50"; do
    "$binaries/client" transfer $transfer || true
done
"$binaries/client" print-datastore
kill -INT $(jobs -p)
wait || true
for n in 1 2 3; do cp "data/C1/S$n.sqlite" "$fixture/"; done
for n in 4 5 6; do cp "data/C2/S$n.sqlite" "$fixture/"; done
ls -l "$fixture"
