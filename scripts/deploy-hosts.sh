#!/usr/bin/env bash
# The ledger across hosts: one node process per address of DIR/hosts.ini, each started inside the network namespace
# that owns the address (the hosts of scripts/hosts.sh), and the client in the client host's namespace. On real
# machines the same files serve: copy DIR to every machine and run `cluster node hosts.ini --name N<k>` there, in DIR.
#
#   scripts/deploy-hosts.sh up DIR [--shards FILE]               certificates, catalog, one node per address; waits
#                                                                 until every cluster has a leader (60 s at most)
#   scripts/deploy-hosts.sh client DIR [ARGUMENTS...]            `client ARGUMENTS --hosts hosts.ini` on the client host
#   scripts/deploy-hosts.sh down DIR                              stops the nodes (SIGTERM, then SIGKILL after 10 s)
#
# DIR holds hosts.ini and namespaces (from `scripts/hosts.sh up N --out DIR`: the namespace of each address, so that
# another prefix's hosts on the same subnet are never taken for these); `up` adds C1.yaml .. C3.yaml from configs/nodes (their
# relative paths resolve in DIR: data/nodes/, certs/), the certificates (each replica's host in its subject alternative
# names, so peers check the address they dial), the catalog from FILE (default tests-data/shards.csv), logs/N<k>.log
# and run/N<k>.pid. BIN names the folder of the built `cluster`, `client` and `shardctl` (default: a release build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    echo "usage: scripts/deploy-hosts.sh up DIR [--shards FILE] | client DIR [ARGUMENTS...] | down DIR" >&2
    exit 2
}
[ $# -ge 2 ] || usage
command=$1
dir=$(cd "$2" && pwd)
shift 2
shards="$root/tests-data/shards.csv"
if [ "$command" = up ]; then
    while [ $# -gt 0 ]; do
        case "$1" in
            --shards) shards=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
            *) echo "deploy-hosts.sh: unknown option $1" >&2; usage ;;
        esac
    done
fi
for file in hosts.ini namespaces; do
    [ "$command:$file" != down:namespaces ] || continue
    [ -f "$dir/$file" ] || { echo "deploy-hosts.sh: $dir/$file: no such file; run scripts/hosts.sh up N --out $dir" >&2; exit 1; }
done
if [ -z "${BIN:-}" ]; then
    (cd "$root" && swift build -c release -q)
    BIN=$(cd "$root" && swift build -c release --show-bin-path)
fi
# The namespace of an address, as DIR/namespaces names it, provided it still holds the address.
namespace_of() {
    local address=$1 name
    name=$(awk -v address="$address" '$2 == address { print $1; exit }' "$dir/namespaces")
    [ -n "$name" ] || return 0
    if ip -n "$name" -4 -o addr show 2> /dev/null | awk '{print $4}' | cut -d/ -f1 | grep -qx "$address"; then
        echo "$name"
    fi
}
# The nodes of hosts.ini in the order `cluster node` numbers them (by first replica): "N<k> host".
nodes() {
    grep -E '^S[0-9]+-' "$dir/hosts.ini" | sed -E 's/^S([0-9]+)-(.*)$/\1 \2/' | sort -n \
        | awk '{ if (!($2 in seen)) { seen[$2] = 1; n++; split($2, part, ":"); print "N" n, part[1] } }'
}
client_namespace() {
    local address
    address=$(grep -E '^client-' "$dir/hosts.ini" | sed -E 's/^client-([^:]*):.*$/\1/')
    namespace_of "$address"
}

case "$command" in
    up)
        cd "$dir"
        mkdir -p logs run
        for cluster in C1 C2 C3; do
            [ -f "$cluster.yaml" ] || cp "$root/configs/nodes/$cluster.yaml" .
        done
        "$BIN/shardctl" certs --hosts hosts.ini
        "$BIN/shardctl" shard "$shards" --hosts hosts.ini
        while read -r node host; do
            namespace=$(namespace_of "$host")
            [ -n "$namespace" ] || { echo "deploy-hosts.sh: no host of $dir/namespaces has $host (node $node); run scripts/hosts.sh up N --out $dir" >&2; exit 1; }
            if [ -f "run/$node.pid" ] && kill -0 "$(cat "run/$node.pid")" 2> /dev/null; then
                echo "$node already runs on $host ($namespace), pid $(cat "run/$node.pid")"
                continue
            fi
            # `ip netns exec` execs the node in place: the pid is the node's. The node keeps no descriptor of this
            # script's caller but its log (a caller that waits for the script's end may watch an inherited one).
            (
                for fd in /proc/$BASHPID/fd/*; do
                    fd=${fd##*/}
                    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
                done
                exec ip netns exec "$namespace" "$BIN/cluster" node hosts.ini --name "$node"
            ) < /dev/null >> "logs/$node.log" 2>&1 &
            echo $! > "run/$node.pid"
            echo "$node on $host ($namespace), pid $!, log $dir/logs/$node.log"
        done < <(nodes)
        namespace=$(client_namespace)
        [ -n "$namespace" ] || { echo "deploy-hosts.sh: no host of $dir/namespaces has the client's address of hosts.ini" >&2; exit 1; }
        for ((attempt = 0; attempt < 120; attempt++)); do
            leaders=$(ip netns exec "$namespace" "$BIN/client" status --hosts hosts.ini 2> /dev/null | grep -c ': leader ' || true)
            if [ "$leaders" -ge 3 ]; then
                echo "every cluster has a leader"
                exit 0
            fi
            sleep 0.5
        done
        echo "deploy-hosts.sh: the clusters have no leader after 60 s; logs in $dir/logs" >&2
        exit 1
        ;;
    client)
        namespace=$(client_namespace)
        [ -n "$namespace" ] || { echo "deploy-hosts.sh: no host of $dir/namespaces has the client's address of hosts.ini" >&2; exit 1; }
        # Files named relative to where the script was run (a test-set file) are given to the client as absolute paths.
        arguments=()
        for argument in "$@"; do
            if [ -f "$argument" ]; then argument=$(cd "$(dirname "$argument")" && pwd)/$(basename "$argument"); fi
            arguments+=("$argument")
        done
        cd "$dir"
        exec ip netns exec "$namespace" "$BIN/client" "${arguments[@]}" --hosts hosts.ini
        ;;
    down)
        pids=()
        for file in "$dir"/run/N*.pid; do
            [ -f "$file" ] || continue
            pid=$(cat "$file")
            if kill -0 "$pid" 2> /dev/null; then
                kill -TERM "$pid" 2> /dev/null || true
                pids+=("$pid")
            fi
            rm -f "$file"
        done
        for ((attempt = 0; attempt < 100; attempt++)); do
            alive=0
            for pid in "${pids[@]}"; do kill -0 "$pid" 2> /dev/null && alive=1; done
            [ "$alive" = 0 ] && break
            sleep 0.1
        done
        for pid in "${pids[@]}"; do kill -KILL "$pid" 2> /dev/null || true; done
        echo "stopped ${#pids[@]} nodes"
        ;;
    *) usage ;;
esac
