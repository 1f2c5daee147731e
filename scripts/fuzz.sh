#!/usr/bin/env bash
# Seeded mutation fuzzing of every input surface: runs the FuzzTests target (Tests/FuzzTests) with FUZZ_ITERATIONS
# inputs per surface (default 10000) and FUZZ_SEED (default 1), and prints one line per surface: inputs tried,
# accepted, refused with a located error, and failures (a broken promise; a trap or hang kills the run instead, which
# the exit status and the timeout report). A failure prints its seed, iteration and escaped input; rerun with
# FUZZ_SEED=<seed> FUZZ_ITERATIONS=<iteration + 1> to replay it.
#
# Debug build by default (the one `swift build --build-tests` makes). CONFIGURATION=release builds the tests
# optimized, with testing enabled (the service surface uses @testable), into SCRATCH_PATH (default .build-fuzz) so the
# debug build is left alone. TIMEOUT (seconds, default 1800) bounds the run. With 10,000 inputs per surface a debug
# run on 2 cores takes about 6 minutes after the build; 300 (the default of `swift test`) about 15 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_ITERATIONS=${FUZZ_ITERATIONS:-10000}
export FUZZ_SEED=${FUZZ_SEED:-1}
TIMEOUT=${TIMEOUT:-1800}

args=(--filter FuzzTests)
if [ "${CONFIGURATION:-debug}" = release ]; then
    args+=(-c release -Xswiftc -enable-testing --scratch-path "${SCRATCH_PATH:-.build-fuzz}")
elif [ -n "${SCRATCH_PATH:-}" ]; then
    args+=(--scratch-path "$SCRATCH_PATH")
fi

echo "== fuzzing: $FUZZ_ITERATIONS inputs per surface, seed $FUZZ_SEED"
log=$(mktemp /tmp/ledger-fuzz.XXXXXX)
status=0
timeout "$TIMEOUT" swift test "${args[@]}" > "$log" 2>&1 || status=$?
echo "== figures"
grep '^fuzz ' "$log" || true
if [ "$status" -ne 0 ]; then
    echo "== FAILED (exit status $status$([ "$status" -eq 124 ] && echo ', timed out')); the log: $log"
    grep -E 'fuzz .*:|seed [0-9]+, iteration|input:|error|fatal|Fatal' "$log" | head -60 || true
    exit "$status"
fi
rm -f "$log"
echo "== no failures"
