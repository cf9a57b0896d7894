#!/usr/bin/env bash
# The API against its own OpenAPI document: builds the debug server, starts it on a free
# loopback port in a temporary data directory, validates /api/v1/openapi.json with
# openapi-spec-validator, then runs schemathesis with every check over every operation,
# authenticated as a fresh administrator (.ci/schemathesis_hooks.py), with the
# exceptions in .ci/schemathesis.toml. `GET /api/v1/ws` is left out: it answers only a
# WebSocket upgrade (tests/api/live.rs and the others test it). Exits non-zero
# on an invalid document or on any schemathesis failure; the failures, each with a curl
# line to reproduce it, are printed, and the server's log is printed on failure.
#
# Deterministic and bounded: a fixed seed and a fixed number of examples per operation.
# Rerun alone with `bash .ci/schemathesis.sh`. PALAVER_FUZZ_EXAMPLES, PALAVER_FUZZ_SEED and
# PALAVER_FUZZ_PHASES override the defaults; PALAVER_BIN tests that binary instead of
# building one; extra arguments go to `schemathesis run` (e.g. `--include-path-regex /rooms`
# or `--max-failures 5`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SCHEMATHESIS_VERSION=4.32.5
SPEC_VALIDATOR_VERSION=0.9.0
EXAMPLES=${PALAVER_FUZZ_EXAMPLES:-25}
SEED=${PALAVER_FUZZ_SEED:-13}
PHASES=${PALAVER_FUZZ_PHASES:-examples,coverage,fuzzing,stateful}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/palaver-ci/target}"

# curl reaches the server below; install it from Debian's archive if this machine lacks it.
if ! command -v curl >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ||
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl; }
fi

# A virtualenv of its own, so these pins never meet the other Python tools' dependencies.
VENV="${PALAVER_CI_VENV:-$HOME/.cache/palaver-ci/venv-schemathesis}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$SPEC_VALIDATOR_VERSION"

# PALAVER_BIN: a server binary to test instead of building the debug one.
if [ -n "${PALAVER_BIN:-}" ]; then
  BIN=$PALAVER_BIN
else
  # The path cargo reports, wherever the target directory is.
  BIN=$(cargo build -p palaver-server --bin palaver --locked --message-format=json-render-diagnostics |
    "$VENV/bin/python" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])')
fi
[ -x "$BIN" ] || { echo "no palaver binary to test (got '$BIN')"; exit 1; }

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
# The per-IP and login limits are lifted (max = 0 disables a limit): every generated
# request comes from one address, and a refused request tests nothing. 429 stays
# documented on every /api/v1 route, and the limits themselves have their own tests.
cat >"$WORK/palaver.toml" <<'TOML'
[rate_limits.requests_per_ip]
max = 0
[rate_limits.registrations_per_ip]
max = 0
[rate_limits.login_failures_per_ip]
max = 0
[rate_limits.login_failures_per_account]
max = 0
[rate_limits.login_failures_per_account_global]
max = 0
TOML
# The fuzzing user, an administrator so the admin routes are exercised too; the hooks log
# in as it (and again after a generated logout).
export PALAVER_FUZZ_BASE="$BASE" PALAVER_FUZZ_LOGIN=fuzzer PALAVER_FUZZ_PASSWORD=fuzzer-password-1
(cd "$WORK" && "$BIN" admin --config "$WORK/palaver.toml" --data-dir "$WORK/data" create-user \
  --username "$PALAVER_FUZZ_LOGIN" --email fuzzer@example.com --password "$PALAVER_FUZZ_PASSWORD" \
  --admin) >"$WORK/admin.log" 2>&1 || { cat "$WORK/admin.log"; exit 1; }
(cd "$WORK" && exec "$BIN" serve --config "$WORK/palaver.toml" --host 127.0.0.1 --port "$PORT" \
  --data-dir "$WORK/data") >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
server_log() {
  echo "---- server log (last 80 lines) ----"
  tail -n 80 "$WORK/server.log" || true
}
for _ in $(seq 1 150); do
  if curl -fsS "$BASE/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the server exited before serving"
    server_log
    exit 1
  fi
  sleep 0.2
done
curl -fsS "$BASE/healthz" >/dev/null || { echo "the server does not answer on $BASE"; server_log; exit 1; }

echo "== OpenAPI document: openapi-spec-validator $SPEC_VALIDATOR_VERSION"
curl -fsS "$BASE/api/v1/openapi.json" -o "$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"

echo "== schemathesis $SCHEMATHESIS_VERSION: --checks all, $EXAMPLES examples per operation, seed $SEED, phases $PHASES"
start=$(date +%s)
status=0
# From the temporary directory, where schemathesis keeps its cache of past failures.
(cd "$WORK" && SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$ROOT/.ci" \
  "$VENV/bin/schemathesis" --config-file "$ROOT/.ci/schemathesis.toml" \
  run "$BASE/api/v1/openapi.json" \
  --checks all \
  --exclude-path /api/v1/ws \
  --phases "$PHASES" \
  --max-examples "$EXAMPLES" \
  --seed "$SEED" \
  --workers 1 \
  --request-timeout 30 \
  --no-color \
  "$@") || status=$?
echo "schemathesis finished in $(($(date +%s) - start)) s with status $status"
if [ "$status" -ne 0 ]; then
  server_log
fi
exit "$status"
