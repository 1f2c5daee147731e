#!/usr/bin/env bash
# Runs the simulations of Tests/SimulationTests over many fresh seeds before a change to the Paxos core lands:
# the payload simulation (protocolHoldsUnderFaults), the ledger simulation (ledgerShardsHoldUnderFaults) and the
# clusters on shared nodes (clustersOnSharedNodesHoldUnderNodeFaults), each over seeds FIRST ... FIRST + SEEDS - 1,
# on every core (one test process per core, each on its own chunks of the window). Prints progress per chunk, then the totals (seeds, ticks, faults by kind, violations) and every failing
# seed with the command that replays it.
#
#   scripts/simulate.sh [--seeds N] [--first-seed S] [--steps T] [--jobs J] [--chunk C] [--only payload|ledger|nodes]
#
# Defaults: 10,000 seeds per simulation from seed 1,000,000 (clear of the 200 that `swift test` runs), 2,000 ticks
# per seed, `nproc` processes, chunks of 500 seeds. The tests are built once, optimized with testing enabled, into
# SCRATCH_PATH (default .build-sim, so the debug build is left alone); the first build takes about 15 minutes on
# 2 cores. CONFIGURATION=debug uses the debug build instead. Exit status 1 when a seed failed or a chunk did not finish (a trap in the core kills its process: the
# chunk's log says where).
set -euo pipefail
cd "$(dirname "$0")/.."

seeds=10000
first=1000000
steps=2000
jobs=$(nproc 2>/dev/null || echo 2)
chunk=500
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) seeds=$2; shift 2 ;;
        --first-seed) first=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --chunk) chunk=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
for value in "$seeds" "$first" "$steps" "$jobs" "$chunk"; do
    [[ "$value" =~ ^[0-9]+$ ]] && [ "$value" -gt 0 ] || { echo "not a positive number: $value" >&2; exit 2; }
done

if [ "${CONFIGURATION:-release}" = debug ]; then
    scratch=()  # The debug build `swift build --build-tests` makes: no long build, slower seeds.
else
    scratch=(-c release -Xswiftc -enable-testing --scratch-path "${SCRATCH_PATH:-.build-sim}")
fi
logs=$(mktemp -d /tmp/ledger-simulate.XXXXXX)
echo "== ${CONFIGURATION:-release} build of the tests"
if ! swift build --build-tests ${scratch[@]+"${scratch[@]}"} > "$logs/build.txt" 2>&1; then
    grep -E 'error' "$logs/build.txt" | head -30 || tail -30 "$logs/build.txt"
    echo "== the build failed; its log: $logs/build.txt"
    exit 2
fi
tail -1 "$logs/build.txt"
# The test binary itself, one per lane: `swift test` would hold the build folder's lock for its whole run, and the
# lanes would take turns instead of running side by side.
tests="$(swift build ${scratch[@]+"${scratch[@]}"} --show-bin-path)/LedgerPackageTests.xctest"
simulations=()
case "$only" in
    "") simulations=(payload ledger nodes) ;;
    payload | ledger | nodes) simulations=("$only") ;;
    *) echo "--only takes payload, ledger or nodes" >&2; exit 2 ;;
esac
test_of() {
    case "$1" in
        payload) echo protocolHoldsUnderFaults ;;
        ledger) echo ledgerShardsHoldUnderFaults ;;
        nodes) echo clustersOnSharedNodesHoldUnderNodeFaults ;;
    esac
}
# The summary line each simulation prints per chunk.
prefix_of() {
    case "$1" in
        payload) echo "simulation" ;;
        ledger) echo "ledger simulation" ;;
        nodes) echo "node simulation" ;;
    esac
}

# The chunks, as "simulation first count", dealt round-robin to the job lanes.
chunks=()
for simulation in "${simulations[@]}"; do
    start=$first
    end=$((first + seeds))
    while [ "$start" -lt "$end" ]; do
        count=$((end - start < chunk ? end - start : chunk))
        chunks+=("$simulation $start $count")
        start=$((start + count))
    done
done
total_chunks=${#chunks[@]}
echo "== ${simulations[*]}: $seeds seeds each from $first, $steps ticks; $total_chunks chunks on $jobs processes;" \
    "logs in $logs"

run_lane() {
    local lane=$1 index=0 simulation start count log status
    for item in "${chunks[@]}"; do
        if [ $((index % jobs)) -eq "$lane" ]; then
            read -r simulation start count <<< "$item"
            log="$logs/$simulation-$start.log"
            status=0
            SIM_FIRST_SEED=$start SIM_SEEDS=$count SIM_STEPS=$steps \
                "$tests" --testing-library swift-testing --filter "SimulationTests.$(test_of "$simulation")" \
                > "$log" 2>&1 || status=$?
            local line failed
            line=$(grep -E "^$(prefix_of "$simulation"): " "$log" | tail -1 || true)
            failed=$(grep -oE 'violations found [0-9]+' <<< "$line" | grep -oE '[0-9]+' || true)
            if [ -z "$line" ]; then
                echo "  $simulation seeds $start-$((start + count - 1)): DID NOT FINISH (exit $status), see $log"
            else
                echo "  $simulation seeds $start-$((start + count - 1)): ${failed:-?} failing seeds" \
                    "($(date +%H:%M:%S))"
            fi
        fi
        index=$((index + 1))
    done
}

started=$(date +%s)
pids=()
for lane in $(seq 0 $((jobs - 1))); do
    run_lane "$lane" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
elapsed=$(($(date +%s) - started))

# The summary lines of one simulation (`prefix_of`, one per finished chunk).
summaries() {
    cat "$logs"/"$1"-*.log | grep -E "^$(prefix_of "$1"): " || true
}

# Sums, over those lines, the number that follows `label` (or precedes it, with `--before`).
sum() {
    local simulation=$1 label=$2 pattern
    if [ "${3:-}" = --before ]; then pattern="[0-9]+ $label"; else pattern="$label [0-9]+"; fi
    summaries "$simulation" | grep -oE "$pattern" | grep -oE '[0-9]+' | awk '{ total += $1 } END { print total + 0 }'
}

status=0
echo "== totals ($((elapsed / 60)) min $((elapsed % 60)) s)"
for simulation in "${simulations[@]}"; do
    expected=$(printf '%s\n' "${chunks[@]}" | grep -c "^$simulation ")
    finished=$(summaries "$simulation" | wc -l)
    violations=$(sum "$simulation" 'violations found')
    echo "$simulation: $(sum "$simulation" 'seeds' --before) seeds x $steps ticks," \
        "$(sum "$simulation" 'ticks in all' --before) ticks in all; $finished of $expected chunks finished"
    if [ "$simulation" = nodes ]; then
        echo "  $(sum nodes 'clusters' --before) clusters; node crashes $(sum nodes 'node crashes') (in the middle" \
            "of a write $(sum nodes 'in the middle of a write'), lazy writes lost $(sum nodes 'lazy writes lost'))," \
            "node partitions $(sum nodes 'node partitions'), fsyncs that carried another replica's lazy writes" \
            "$(sum nodes 'lazy writes durable')"
    else
        echo "  faults injected $(sum "$simulation" 'faults injected'): messages dropped" \
            "$(sum "$simulation" 'messages dropped'), duplicated $(sum "$simulation" 'duplicated'), crashes" \
            "$(sum "$simulation" 'crashes') (lazy writes lost $(sum "$simulation" 'lazy writes lost')), partitions" \
            "$(sum "$simulation" 'partitions'), leader isolations $(sum "$simulation" 'leader isolations')"
    fi
    worst=$(summaries "$simulation" | grep -oE 'settled within [0-9]+' | grep -oE '[0-9]+' | sort -n | tail -1)
    echo "  settled within ${worst:-?} ticks past the end (worst); violations: $violations failing seeds"
    [ "$violations" -eq 0 ] && [ "$finished" -eq "$expected" ] || status=1
done

failing=$(cat "$logs"/*.log | grep -oE '(node )?seed [0-9]+ (violated the protocol|broke the ledger)' \
    | sed 's/^node seed/node/; s/^seed/one/' | sort -u -k2,2n || true)
if [ -n "$failing" ]; then
    echo "== failing seeds"
    while read -r kind seed what _; do
        if [ "$kind" = node ]; then
            test=clustersOnSharedNodesHoldUnderNodeFaults
        elif [ "$what" = violated ]; then
            test=protocolHoldsUnderFaults
        else
            test=ledgerShardsHoldUnderFaults
        fi
        echo "  seed $seed: SIM_SEED=$seed SIM_STEPS=$steps swift test --filter SimulationTests.$test"
    done <<< "$failing"
    echo "  (each chunk's log in $logs has the violations and every replica's last inputs)"
fi
unfinished=$(grep -LE '^((ledger|node) )?simulation: ' "$logs"/*.log || true)
if [ -n "$unfinished" ]; then
    echo "== chunks that did not finish (a trap or crash): $unfinished"
fi
exit "$status"
