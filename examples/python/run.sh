#!/usr/bin/env bash
# Runs examples/python/ledger_example.py with its arguments, e.g.
#   examples/python/run.sh --hosts configs/hosts.ini --certs certs --identity client
# It creates a virtualenv (if missing) at ${LEDGER_PY_VENV:-.build/python-venv} (a relative path is taken from the
# repository's root) with grpcio and grpcio-tools, generates the Python stubs from Protos/ledger.proto into a
# temporary folder (they are not committed), and exits with the example's status. Setup messages go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${LEDGER_PY_VENV:-.build/python-venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
REQUIREMENTS="grpcio==1.85.1 grpcio-tools==1.85.1 protobuf==7.36.2"

if [ ! -x "$VENV/bin/python" ]; then
    echo "run.sh: creating the virtualenv $VENV" >&2
    if ! "$PYTHON" -m venv "$VENV" >&2; then
        echo "run.sh: '$PYTHON -m venv' failed; on Debian: apt-get install python3 python3-venv python3-pip" >&2
        rm -rf "$VENV"
        exit 1
    fi
fi
# (Re)install when the pins changed or an earlier install was cut short.
if [ "$(cat "$VENV/.ledger-requirements" 2>/dev/null)" != "$REQUIREMENTS" ] \
    || ! "$VENV/bin/python" -c "import grpc, grpc_tools" 2>/dev/null; then
    echo "run.sh: installing $REQUIREMENTS" >&2
    # shellcheck disable=SC2086  # the pins are separate words
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $REQUIREMENTS >&2
    echo "$REQUIREMENTS" >"$VENV/.ledger-requirements"
fi

STUBS="$(mktemp -d "${TMPDIR:-/tmp}/ledger-py-stubs.XXXXXX")"
trap 'rm -rf "$STUBS"' EXIT
"$VENV/bin/python" -m grpc_tools.protoc -I "$ROOT/Protos" --python_out="$STUBS" --grpc_python_out="$STUBS" \
    "$ROOT/Protos/ledger.proto" >&2

status=0
PYTHONPATH="$STUBS" "$VENV/bin/python" "$ROOT/examples/python/ledger_example.py" "$@" || status=$?
exit "$status"
