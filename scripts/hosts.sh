#!/usr/bin/env bash
# Hosts made of network namespaces: N server hosts and one client host, each with its own address on a private
# subnet, joined by veth pairs to a bridge that lives in a switch namespace of its own. Nothing of the subnet exists in
# the namespace the script runs in: the only way onto it is `ip netns exec <prefix>-<host>`. Packets between hosts
# cross the kernel's network stack, so iptables rules inside a host's namespace are real partitions (the nemesis's
# `--hosts` mode uses them).
#
#   scripts/hosts.sh up N [--prefix P] [--subnet A.B.C] [--out DIR]   N hosts (default prefix ledger, 10.77.0)
#   scripts/hosts.sh down [--prefix P]                                  removes what `up` made with that prefix
#   scripts/hosts.sh list [--prefix P]                                  the hosts and their addresses
#
# Hosts are namespaces <prefix>-h1 .. <prefix>-hN at A.B.C.11 .. A.B.C.(10+N), the client <prefix>-client at
# A.B.C.100, the switch <prefix>-sw. With --out, `up` also writes DIR/hosts.ini: the three clusters of configs/nodes
# (S1..S9, ports 6101-6103) with replica S<i> on host ((i-1) mod N)+1, so that on 3 hosts each host runs one node of
# three replicas (one of every cluster), and on 9 hosts one replica each; and DIR/namespaces, each host's namespace
# and address (what `list` prints), by which scripts/deploy-hosts.sh finds the hosts of this prefix and no other's:
# two prefixes may use the same subnet, each on a switch of its own. Running `up` again changes nothing that is
# there and makes what is missing. Needs root, `ip` (iproute2) and, for faults, `iptables`.
set -euo pipefail

usage() {
    echo "usage: scripts/hosts.sh up N [--prefix P] [--subnet A.B.C] [--out DIR] | down [--prefix P] | list [--prefix P]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
command=$1
shift
count=""
if [ "$command" = up ]; then
    [ $# -ge 1 ] || usage
    count=$1
    shift
    [[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 1 ] && [ "$count" -le 60 ] \
        || { echo "hosts.sh: host count \"$count\" must be a whole number from 1 to 60" >&2; exit 2; }
fi
prefix=ledger
subnet=10.77.0
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --subnet) subnet=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "hosts.sh: unknown option $1" >&2; usage ;;
    esac
done
[[ "$prefix" =~ ^[a-z][a-z0-9]{0,11}$ ]] \
    || { echo "hosts.sh: prefix \"$prefix\" must be a lowercase letter and up to 11 letters or digits" >&2; exit 2; }
[[ "$subnet" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] \
    || { echo "hosts.sh: subnet \"$subnet\" must be three numbers, like 10.77.0" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then echo "hosts.sh: needs root (network namespaces)" >&2; exit 1; fi
command -v ip > /dev/null || { echo "hosts.sh: needs ip from iproute2 (apt-get install -y iproute2)" >&2; exit 1; }

switch="$prefix-sw"
exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# One host: its namespace, a veth pair whose one end is eth0 inside it and the other a port of the bridge, and its
# address. Each step is skipped when already done.
make_host() {
    local name=$1 port=$2 address=$3
    exists "$prefix-$name" || ip netns add "$prefix-$name"
    ip -n "$prefix-$name" link set lo up
    if ! ip -n "$switch" link show "$port" > /dev/null 2>&1; then
        ip -n "$switch" link add "$port" type veth peer name eth0 netns "$prefix-$name"
    fi
    ip -n "$switch" link set "$port" master br0 up
    ip -n "$prefix-$name" addr replace "$address/24" dev eth0
    ip -n "$prefix-$name" link set eth0 up
}

case "$command" in
    up)
        exists "$switch" || ip netns add "$switch"
        ip -n "$switch" link show br0 > /dev/null 2>&1 || ip -n "$switch" link add br0 type bridge
        ip -n "$switch" link set br0 up
        for ((host = 1; host <= count; host++)); do
            make_host "h$host" "h$host" "$subnet.$((10 + host))"
        done
        make_host client client "$subnet.100"
        if [ -n "$out" ]; then
            mkdir -p "$out"
            {
                echo "# Written by scripts/hosts.sh up $count --prefix $prefix: replica S<i> on host h((i-1) mod $count + 1)"
                echo "# (namespace $prefix-h<k>, address $subnet.(10+k)); the clusters of configs/nodes/hosts.ini."
                for ((index = 1; index <= 9; index++)); do
                    host=$(((index - 1) % count + 1))
                    echo "S$index-$subnet.$((10 + host)):$((6100 + (index - 1) % 3 + 1))"
                done
                echo "client-$subnet.100:5101"
                echo "C1-S1"
                echo "C2-S5"
                echo "C3-S9"
                echo "EC1-S1:S2:S3"
                echo "EC2-S4:S5:S6"
                echo "EC3-S7:S8:S9"
                echo "all-S1:S2:S3:S4:S5:S6:S7:S8:S9"
            } > "$out/hosts.ini"
            "$0" list --prefix "$prefix" > "$out/namespaces"
        fi
        "$0" list --prefix "$prefix"
        ;;
    down)
        # Every namespace named <prefix>-sw, <prefix>-client or <prefix>-h<number>; deleting a namespace deletes its
        # veth ends, and with them their peers.
        for name in $(ip netns list | awk '{print $1}'); do
            if [ "$name" = "$switch" ] || [ "$name" = "$prefix-client" ] || [[ "$name" =~ ^$prefix-h[0-9]+$ ]]; then
                ip netns pids "$name" 2> /dev/null | xargs -r kill -9 2> /dev/null || true
                ip netns del "$name"
            fi
        done
        ;;
    list)
        for name in $(ip netns list | awk '{print $1}' | sort -V); do
            if [ "$name" = "$prefix-client" ] || [[ "$name" =~ ^$prefix-h[0-9]+$ ]]; then
                address=$(ip -n "$name" -4 -o addr show dev eth0 2> /dev/null | awk '{print $4}' | cut -d/ -f1)
                echo "$name ${address:-no address}"
            fi
        done
        ;;
    *) usage ;;
esac
