#!/usr/bin/env bash
# The soak test of issue 22 (bounded state): a replica's memory, snapshots and compaction must stay flat however
# long it runs. Starts the three clusters of configs/ fresh (a copy in a temporary folder, release build, fsync on,
# mutual TLS with certificates made by `shardctl certs`, as scripts/bench.sh does), runs one `client bench` at
# concurrency 64 with 10% cross-shard transfers for the whole soak (with `--session-seconds 60` when the bench has
# it: a new client session every minute), and every 10 seconds samples each of the 9 replicas: its RSS (VmRSS of
# /proc/<pid>/status; the `ledger_resident_memory_bytes` metric when the pid is unknown) and, from its /metrics,
# the transactions it remembers, its client sessions, the size of its last snapshot, the duration of its last
# compaction and the commands it applied. A metric a replica does not export yet is left empty.
#
#   scripts/soak.sh [--minutes N]
#
# Default 30 minutes (1 to 60: the bench measures at most an hour), plus the build and about a minute to start
# and to audit. Writes bench-results/<UTC time>-soak.md (setup, a table per minute, the verdicts), -soak.csv (every
# sample of every replica) and -soak.png (total RSS and committed transfers per second over time; needs gnuplot,
# Debian package gnuplot-nox: without it there is no plot). The verdicts compare minutes 5-10 with the last
# 5 minutes (runs shorter than 15 minutes: the second quarter with the last quarter): total RSS grows by less than
# 10%; remembered transactions and snapshot bytes stay within REMEMBERED_MAX and SNAPSHOT_BYTES_MAX (env, optional);
# the longest compaction does not grow past 1.5 times the earlier one (or stays under 50 ms); throughput falls by
# no more than 10%; the slowest second stays above half the mean; the total money is unchanged; every replica is
# still running at the end. Exit status 1 when a verdict fails, 2 on a usage or setup error. Needs the ports of
# configs/hosts.ini (6001-6009) and the metrics ports (9101-9109) free; SCRATCH_PATH names another build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

minutes=30
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes=${2:-}; shift 2 || { echo "--minutes needs a value" >&2; exit 2; } ;;
        -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [ "$minutes" -lt 1 ] || [ "$minutes" -gt 60 ]; then
    echo "--minutes must be a whole number from 1 to 60" >&2
    exit 2
fi
for limit in REMEMBERED_MAX SNAPSHOT_BYTES_MAX; do
    [[ "${!limit:-0}" =~ ^[0-9]+$ ]] || { echo "$limit must be a whole number" >&2; exit 2; }
done

concurrency=64
cross=0.1
warmup=2
session_seconds=60
sample_every=10                    # seconds between two samples of every replica
duration=$((minutes * 60))
# The bench waits up to 30 s for the clusters to serve, audits 3000 balances before and after the load (30 s
# each at most) and waits up to 30 s for the locks to clear: past this, it is stuck and the soak stops.
bench_deadline=$((duration + warmup + 180))
# The window compared with the end of the run: minutes 5-10 and the last 5 minutes, or for a short run the second
# quarter and the last quarter (seconds since the load started, end excluded).
if [ "$minutes" -ge 15 ]; then
    early_from=300; early_to=600; late_from=$((duration - 300)); late_to=$duration
    windows="minutes 5-10 against the last 5 minutes"
else
    early_from=$((duration / 4)); early_to=$((duration / 2)); late_from=$((duration * 3 / 4)); late_to=$duration
    windows="the second quarter (${early_from}-${early_to} s) against the last quarter (${late_from}-${late_to} s)"
fi

# The metrics of issue 22, in the order of the CSV's columns; ledger_commands_applied_total was there before.
metric_names="ledger_transactions_remembered ledger_client_sessions ledger_snapshot_bytes ledger_compaction_seconds"
metric_names+=" ledger_commands_applied_total ledger_resident_memory_bytes"

command -v curl > /dev/null || { echo "missing: curl (apt-get install curl)" >&2; exit 2; }
plot=yes
if ! command -v gnuplot > /dev/null; then
    plot="no: gnuplot is missing (apt-get install gnuplot-nox)"
    echo "note: gnuplot is missing (apt-get install gnuplot-nox): the soak runs, but without a plot" >&2
fi

# A port already taken would send the bench to someone else's replicas.
ports=$(sed -n 's/^S[0-9]*-[^:]*:\([0-9]*\).*/\1/p' configs/hosts.ini)
for config in configs/C*.yaml; do
    base=$(sed -n 's/^metrics_port: *\([0-9]*\).*/\1/p' "$config")
    count=$(sed -n 's/^  count: *\([0-9]*\).*/\1/p' "$config")
    if [ "${base:-0}" -gt 0 ]; then ports+=" $(seq "$base" $((base + ${count:-3} - 1)) | tr '\n' ' ')"; fi
done
for port in $ports; do
    if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
        echo "port $port is in use: stop what listens there (another cluster, a bench) first" >&2
        exit 2
    fi
done

echo "== release build"
scratch=()
if [ -n "${SCRATCH_PATH:-}" ]; then scratch=(--scratch-path "$SCRATCH_PATH"); fi
swift build -c release "${scratch[@]}"
bin=$(swift build -c release "${scratch[@]}" --show-bin-path)
commit=$(git rev-parse --short HEAD)

session_option=()
session_note="a new one every $session_seconds s (--session-seconds $session_seconds)"
if "$bin/client" bench --help 2>&1 | grep -q -- '--session-seconds'; then
    session_option=(--session-seconds "$session_seconds")
else
    session_note="one for the whole run (this \`client bench\` has no --session-seconds)"
    echo "note: this client bench has no --session-seconds: the whole run is one client session" >&2
fi

work=$(mktemp -d /tmp/ledger-soak.XXXXXX)
cp -r configs tests-data "$work/"
cd "$work"
"$bin/shardctl" certs > /dev/null
"$bin/shardctl" shard tests-data/shards.csv > /dev/null

cluster_pids=()
bench_pid=""
# Replica pids, names and metrics addresses, from the banners of `cluster`, in the same order.
replica_pids=()
replica_names=()
replica_urls=()

# Is this pid a running process of this soak (started in its folder; not one that exited, nor a later process that
# reuses the number)? "-" (a pid not known) is none.
ours() { [ "$(readlink "/proc/$1/cwd" 2> /dev/null)" = "$work" ]; }

# Stops the bench and the clusters (SIGTERM: each `cluster` stops its replicas, SIGKILL after 10 s), waits up to
# 30 s, then kills whatever of ours is left. Runs on every exit, failures included.
stop() {
    local pid waited alive
    for pid in $bench_pid "${cluster_pids[@]}"; do if ours "$pid"; then kill -TERM "$pid" 2> /dev/null || true; fi; done
    for ((waited = 0; waited < 30; waited++)); do
        alive=0
        for pid in $bench_pid "${cluster_pids[@]}" "${replica_pids[@]}"; do if ours "$pid"; then alive=1; fi; done
        [ "$alive" = 0 ] && break
        sleep 1
    done
    for pid in $bench_pid "${cluster_pids[@]}" "${replica_pids[@]}"; do
        if ours "$pid"; then kill -KILL "$pid" 2> /dev/null || true; fi
    done
    for pid in $bench_pid "${cluster_pids[@]}"; do wait "$pid" 2> /dev/null || true; done
    bench_pid=""
    cluster_pids=()
    replica_pids=()
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "== clusters (in $work)"
for cluster in C1 C2 C3; do
    "$bin/cluster" "configs/$cluster.yaml" configs/hosts.ini > "cluster-$cluster.out" 2>&1 &
    cluster_pids+=($!)
done
# Every `cluster` prints "S1: gRPC ..., metrics http://127.0.0.1:9101/metrics, ..." and "S1 started (pid N)".
for ((waited = 0; waited < 30; waited++)); do
    [ "$(cat cluster-C*.out | grep -c 'started (pid' || true)" -ge 9 ] && break
    sleep 1
done
while read -r name url; do
    pid=$(sed -n "s/^$name started (pid \([0-9]*\)).*/\1/p" cluster-C*.out)
    replica_names+=("$name")
    replica_urls+=("$url")
    replica_pids+=("${pid:--}")
done < <(sed -n 's/^\(S[0-9]*\): gRPC .*metrics \(http[^,]*\),.*/\1 \2/p' cluster-C*.out)
if [ "${#replica_names[@]}" -ne 9 ]; then
    echo "expected 9 replicas in the banners of cluster, found ${#replica_names[@]}:" >&2
    cat cluster-C*.out >&2
    exit 2
fi
echo "replicas: $(for i in "${!replica_names[@]}"; do printf '%s (pid %s) ' "${replica_names[$i]}" "${replica_pids[$i]}"; done)"

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
mkdir -p "$repo/bench-results"
csv="$repo/bench-results/$stamp-soak.csv"
md="$repo/bench-results/$stamp-soak.md"
png="$repo/bench-results/$stamp-soak.png"
echo "t_s,utc,replica,pid,rss_bytes,rss_source,${metric_names// /,}" > "$csv"

echo "== soak: $minutes minutes, concurrency $concurrency, cross-shard $cross"
"$bin/client" bench --duration "$duration" --warmup "$warmup" --concurrency "$concurrency" --cross-shard "$cross" \
    "${session_option[@]}" --json bench.json > bench.out 2>&1 &
bench_pid=$!
start_ms=$((${EPOCHREALTIME/./} / 1000))

# One replica's sample: its metrics in the order of metric_names, comma-separated, empty when not exported.
scrape() {
    { curl -s --max-time 2 "$1" 2> /dev/null || true; } | awk -v names="$metric_names" '
        BEGIN { count = split(names, wanted, " "); for (i = 1; i <= count; i++) index_of[wanted[i]] = i }
        /^#/ { next }
        { name = $1; sub(/\{.*/, "", name); if (name in index_of) { value[name] += $NF; seen[name] = 1 } }
        END {
            for (i = 1; i <= count; i++) {
                printf "%s%s", ((wanted[i] in seen) ? sprintf("%.15g", value[wanted[i]]) : ""), (i < count ? "," : "\n")
            }
        }'
}

# Samples every 10 s while the bench runs, up to its deadline.
samples=$((bench_deadline / sample_every + 1))
for ((sample = 0; sample < samples; sample++)); do
    t=$((sample * sample_every))
    utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    rss_total=0
    for i in "${!replica_names[@]}"; do
        pid=${replica_pids[$i]}
        metrics=$(scrape "${replica_urls[$i]}")
        metrics=${metrics:-,,,,,}
        rss="" source=""
        if ours "$pid"; then
            rss=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$pid/status" 2> /dev/null || true)
            source=proc
        fi
        if [ -z "$rss" ]; then
            rss=${metrics##*,}                  # ledger_resident_memory_bytes, the last metric
            source=${rss:+metric}
        fi
        rss_total=$((rss_total + ${rss:-0}))
        echo "$t,$utc,${replica_names[$i]},$pid,$rss,$source,$metrics" >> "$csv"
    done
    echo "  $(printf '%4d' "$t") s: RSS of the replicas $((rss_total / 1048576)) MB; $(tail -n 9 "$csv" | awk -F, '
        { for (c = 7; c <= 10; c++) if ($c != "" && (max[c] == "" || $c + 0 > max[c] + 0)) max[c] = $c }
        END { printf "max remembered %s, sessions %s, snapshot bytes %s, compaction s %s",
              max[7] == "" ? "-" : max[7], max[8] == "" ? "-" : max[8], max[9] == "" ? "-" : max[9],
              max[10] == "" ? "-" : max[10] }')"
    ours "$bench_pid" || break
    next_ms=$((start_ms + (sample + 1) * sample_every * 1000))
    now_ms=$((${EPOCHREALTIME/./} / 1000))
    if [ "$next_ms" -gt "$now_ms" ]; then sleep "$(printf '%d.%03d' $(((next_ms - now_ms) / 1000)) $(((next_ms - now_ms) % 1000)))"; fi
done

# Which replicas still run, before anything is stopped.
alive=0
for pid in "${replica_pids[@]}"; do if ours "$pid"; then alive=$((alive + 1)); fi; done
bench_status=0
if ours "$bench_pid"; then
    echo "the bench is still running ${bench_deadline} s after its start: stopping it" >&2
    bench_status=124
else
    wait "$bench_pid" || bench_status=$?
fi
stop
cat bench.out

# The bench's figures: committed transfers in each second of the measured window, and the money before and after.
json=$(tr -d ' \n' < bench.json 2> /dev/null || true)
echo "$json" | sed -n 's/.*"committedEachSecond":\[\([0-9,]*\)\].*/\1/p' | tr ',' '\n' | awk 'NF { print NR - 1, $1 }' \
    > throughput.txt
total_before=$(echo "$json" | sed -n 's/.*"totalBefore":\(-\{0,1\}[0-9]*\).*/\1/p')
total_after=$(echo "$json" | sed -n 's/.*"totalAfter":\(-\{0,1\}[0-9]*\).*/\1/p')

# sampled COLUMN max|meansum FROM TO: over the samples with FROM <= t < TO, the largest value of COLUMN over every
# replica, or the mean over the samples of its sum over the replicas; empty when no sample has it.
sampled() {
    awk -F, -v column="$1" -v how="$2" -v from="$3" -v to="$4" '
        NR == 1 { for (c = 1; c <= NF; c++) if ($c == column) field = c; next }
        $1 >= from && $1 < to && $field != "" {
            if (max == "" || $field + 0 > max + 0) max = $field
            if (!($1 in sum)) samples++
            sum[$1] += $field
        }
        END {
            if (how == "max") print max
            else if (samples > 0) { for (t in sum) total += sum[t]; printf "%.0f\n", total / samples }
        }' "$csv"
}
# bench_seconds mean|min FROM TO: over the bench seconds FROM <= s < TO, the mean or the fewest committed transfers.
bench_seconds() {
    awk -v how="$1" -v from="$2" -v to="$3" '
        $1 >= from && $1 < to { n++; sum += $2; if (min == "" || $2 < min) min = $2 }
        END { if (n > 0) { if (how == "mean") printf "%.1f\n", sum / n; else print min } }' throughput.txt
}
mb() { if [ -n "$1" ]; then awk -v bytes="$1" 'BEGIN { printf "%.1f", bytes / 1048576 }'; else echo -; fi; }
dash() { echo "${1:--}"; }

failed=0
verdicts=()
verdict() { # STATUS TEXT
    verdicts+=("- $1: $2")
    if [ "$1" = FAIL ]; then failed=1; fi
}
holds() { awk "BEGIN { exit !($1) }"; }

rss_early=$(sampled rss_bytes meansum "$early_from" "$early_to")
rss_late=$(sampled rss_bytes meansum "$late_from" "$late_to")
if [ -n "$rss_early" ] && [ -n "$rss_late" ]; then
    growth=$(awk -v a="$rss_early" -v b="$rss_late" 'BEGIN { printf "%.1f", (b / a - 1) * 100 }')
    status=FAIL; if holds "$growth < 10"; then status=PASS; fi
    verdict $status "total RSS grows by less than 10%: $(mb "$rss_early") MB -> $(mb "$rss_late") MB ($growth%)"
else
    verdict FAIL "total RSS grows by less than 10%: no RSS samples in both windows"
fi

limit_verdict() { # COLUMN LIMIT_NAME WHAT
    local limit=${!2:-} most
    most=$(sampled "$1" max 0 "$duration")
    if [ -z "$limit" ]; then
        verdict SKIP "$3 within a limit: no limit given ($2); largest seen $(dash "$most")"
    elif [ -z "$most" ]; then
        verdict FAIL "$3 at most $limit ($2): no replica exports $1"
    elif holds "$most <= $limit"; then
        verdict PASS "$3 at most $limit ($2): largest seen $most"
    else
        verdict FAIL "$3 at most $limit ($2): largest seen $most"
    fi
}
limit_verdict ledger_transactions_remembered REMEMBERED_MAX "remembered transactions"
limit_verdict ledger_snapshot_bytes SNAPSHOT_BYTES_MAX "snapshot bytes"

compaction_early=$(sampled ledger_compaction_seconds max "$early_from" "$early_to")
compaction_late=$(sampled ledger_compaction_seconds max "$late_from" "$late_to")
if [ -z "$compaction_late" ]; then
    verdict SKIP "compaction time does not grow: no replica exports ledger_compaction_seconds"
elif holds "$compaction_late < 0.05 || $compaction_late <= 1.5 * ${compaction_early:-0}"; then
    verdict PASS "compaction time does not grow: longest $(dash "$compaction_early") s -> $compaction_late s (under 50 ms or at most 1.5x)"
else
    verdict FAIL "compaction time does not grow: longest $(dash "$compaction_early") s -> $compaction_late s (over 50 ms and over 1.5x)"
fi

throughput_early=$(bench_seconds mean "$early_from" "$early_to")
throughput_late=$(bench_seconds mean "$late_from" "$late_to")
if [ -n "$throughput_early" ] && [ -n "$throughput_late" ]; then
    change=$(awk -v a="$throughput_early" -v b="$throughput_late" 'BEGIN { printf "%+.1f", (a > 0 ? (b / a - 1) * 100 : 0) }')
    status=FAIL; if holds "$throughput_late >= 0.9 * $throughput_early && $throughput_late > 0"; then status=PASS; fi
    verdict $status "throughput falls by no more than 10%: $throughput_early -> $throughput_late committed/s ($change%)"
else
    verdict FAIL "throughput falls by no more than 10%: the bench reported no committed transfers per second"
fi

mean_all=$(bench_seconds mean 0 "$duration")
slowest=$(bench_seconds min 0 "$duration")
if [ -n "$mean_all" ]; then
    status=FAIL; if holds "$slowest > $mean_all / 2"; then status=PASS; fi
    verdict $status "the slowest second stays above half the mean: $slowest committed, mean $mean_all/s"
else
    verdict FAIL "the slowest second stays above half the mean: no seconds reported"
fi

if [ -n "$total_before" ] && [ "$total_before" = "$total_after" ]; then
    verdict PASS "total money unchanged: $total_before before, $total_after after"
else
    verdict FAIL "total money unchanged: $(dash "$total_before") before, $(dash "$total_after") after (bench exit $bench_status)"
fi

status=FAIL; if [ "$alive" = 9 ]; then status=PASS; fi
verdict $status "every replica still running at the end: $alive of 9"

# The table: per minute of the run, RSS (mean over the samples of the sum over the replicas; largest replica), the
# largest remembered transactions, sessions, snapshot and compaction, and the bench's committed transfers/s.
table=$(for ((minute = 1; minute <= minutes; minute++)); do
    from=$(((minute - 1) * 60)) to=$((minute * 60))
    echo "| $minute | $(mb "$(sampled rss_bytes meansum $from $to)") | $(mb "$(sampled rss_bytes max $from $to)") |" \
        "$(dash "$(sampled ledger_transactions_remembered max $from $to)") |" \
        "$(dash "$(sampled ledger_client_sessions max $from $to)") |" \
        "$(dash "$(sampled ledger_snapshot_bytes max $from $to)") |" \
        "$(dash "$(sampled ledger_compaction_seconds max $from $to)") |" \
        "$(dash "$(bench_seconds mean $from $to)") |"
done)

if [ "$plot" = yes ]; then
    awk -F, 'NR > 1 && $5 != "" { sum[$1] += $5 } END { for (t in sum) printf "%s %.1f\n", t, sum[t] / 1048576 }' \
        "$csv" | sort -n > rss.txt
    terminal=png
    if gnuplot -e 'set terminal pngcairo' 2> /dev/null; then terminal=pngcairo; fi
    # The bench's second 0 starts after its audit of the balances and the warmup: a few seconds after sample 0.
    if ! gnuplot 2> gnuplot.err <<EOF; then
set terminal $terminal size 1200,600
set output "$png"
set title "Soak $stamp: $minutes min, concurrency $concurrency, cross-shard $cross (commit $commit)"
set xlabel "minutes since the bench started"
set ylabel "RSS of the 9 replicas (MB)"
set y2label "committed transfers/s"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set key bottom right
set grid
plot "rss.txt" using (\$1 / 60):2 with linespoints lw 2 title "RSS, 9 replicas (MB)" axes x1y1, \
     "throughput.txt" using ((\$1 + $warmup) / 60):2 with lines lc rgb "#9090c0" title "committed/s (bench)" axes x1y2
EOF
        plot="no: gnuplot failed ($(head -c 300 gnuplot.err))"
    fi
fi

{
    echo "# Ledger soak $stamp"
    echo
    echo "3 clusters x 3 replicas on one machine ($(nproc) cores), release build of $commit, SQLite synchronous=FULL,"
    echo "mutual TLS; 3000 accounts at balance 10. One \`client bench\` for $minutes minutes after $warmup s of warmup:"
    echo "concurrency $concurrency, cross-shard $cross, uniform pairs, amount 1, closed loop."
    echo "Client sessions: $session_note."
    echo "Every $sample_every s, each replica's RSS (/proc, else \`ledger_resident_memory_bytes\`) and its /metrics."
    echo "A minute's row takes the samples of that minute since the bench started; its committed/s are the bench's"
    echo "seconds of that minute, which start a few seconds later (after the bench's audit of the balances and its"
    echo "warmup). \`-\`: no replica exported the metric."
    echo
    echo "| minute | RSS sum MB | RSS max MB | remembered max | sessions max | snapshot bytes max | compaction s max | committed/s |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    echo "$table"
    echo
    echo "Verdicts ($windows):"
    echo
    printf '%s\n' "${verdicts[@]}"
    echo
    echo "Samples: \`$(basename "$csv")\` (one row per replica every $sample_every s)."
    if [ "$plot" = yes ]; then
        echo "Plot: \`$(basename "$png")\`."
        echo
        echo "![total RSS and throughput]($(basename "$png"))"
    else
        echo "Plot: $plot."
    fi
    echo
    echo "The bench's report (exit status $bench_status):"
    echo
    echo '```'
    cat bench.out
    echo '```'
} > "$md"

echo "== results: $md"
cat "$md"
cd "$repo"
if [ "$failed" = 0 ]; then rm -rf "$work"; else echo "logs of the clusters and the bench: $work" >&2; fi
exit "$failed"
