#!/usr/bin/env bash
# End-to-end check of the deployments, as an operator would run them: a fresh local Prefect server on a free
# loopback port, `python -m flows.deployments` serving, the real `prefect deployment run ... --watch` CLI on
# the sample input (data/raw, 2 articles), then the Parquet rows. Exit 0 only if all of it worked.
# Every process it starts is stopped by pid on exit, also on failure. KEEP_TMP=1 keeps the temp folders.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

if [ -x .venv/bin/prefect ]; then BIN="$ROOT/.venv/bin/"; else BIN=""; fi
PYTHON="${BIN}python"; [ -n "$BIN" ] || PYTHON="$(command -v python3 || command -v python)"
PREFECT="${BIN}prefect"

# Nothing inherited: this server, this home, telemetry off, serve polls every second.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(PREFECT_[A-Za-z0-9_]*\)=.*/\1/p')
PREFECT_HOME="$(mktemp -d -t boilerstrip-e2e-home.XXXXXX)"
OUT="$(mktemp -d -t boilerstrip-e2e-out.XXXXXX)"
PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PREFECT_HOME PORT UI=0 PREFECT_API_URL="http://127.0.0.1:$PORT/api"
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_RUNNER_POLL_FREQUENCY=1
INPUT="$ROOT/data/raw"
EXPECTED_ROWS="${EXPECTED_ROWS:-2}"

SERVE_PID=""
RUN_PID=""
started=$(date +%s)
cleanup() {
  rc=$?
  set +e
  if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then kill -TERM "$RUN_PID"; wait "$RUN_PID" 2>/dev/null; fi
  if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID"
    for _ in $(seq 1 60); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$SERVE_PID" 2>/dev/null && kill -KILL "$SERVE_PID"
    wait "$SERVE_PID" 2>/dev/null
  fi
  scripts/server.sh stop >/dev/null
  if [ "$rc" -ne 0 ]; then
    echo "--- serve log ($PREFECT_HOME/serve.log)"; tail -n 60 "$PREFECT_HOME/serve.log" 2>/dev/null
    echo "--- server log ($PREFECT_HOME/server.log)"; tail -n 30 "$PREFECT_HOME/server.log" 2>/dev/null
    echo "e2e deployment run FAILED (exit $rc) after $(( $(date +%s) - started )) s"
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept: $PREFECT_HOME $OUT"; else rm -rf "$PREFECT_HOME" "$OUT"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/server.sh start

# set -m: serve gets its own process group and default signal handling (a background job of a
# non-interactive shell otherwise ignores SIGINT, which Prefect's shutdown path relies on).
set -m
"$PYTHON" -m flows.deployments >"$PREFECT_HOME/serve.log" 2>&1 &
SERVE_PID=$!
set +m

deadline=$(( $(date +%s) + 180 ))
until "$PREFECT" deployment inspect 'clean-articles/adhoc' >/dev/null 2>&1; do
  kill -0 "$SERVE_PID" 2>/dev/null || { echo "serve exited before registering the deployments"; exit 1; }
  [ "$(date +%s)" -lt "$deadline" ] || { echo "clean-articles/adhoc not registered after 180 s"; exit 1; }
  sleep 0.5
done
echo "deployments registered after $(( $(date +%s) - started )) s"

# In the background + wait: a signal to this script then runs the trap at once, not after the watch ends.
"$PREFECT" deployment run 'clean-articles/adhoc' \
  -p input="[\"$INPUT\"]" -p output="\"$OUT\"" \
  --watch --watch-interval 1 --watch-timeout 300 &
RUN_PID=$!
wait "$RUN_PID"   # its exit status: non-zero (Failed, Crashed, refused, watch timeout) stops the script here
RUN_PID=""

"$PYTHON" - "$OUT" "$EXPECTED_ROWS" <<'EOF'
import sys
import pyarrow.dataset as ds

out, expected = sys.argv[1], int(sys.argv[2])
articles = ds.dataset(f"{out}/articles", format="parquet").count_rows()
rejects = ds.dataset(f"{out}/rejects", format="parquet").count_rows()
print(f"parquet: {articles} articles, {rejects} rejects in {out}")
if (articles, rejects) != (expected, 0):
    sys.exit(f"expected {expected} articles and 0 rejects")
EOF
echo "e2e deployment run OK in $(( $(date +%s) - started )) s"
