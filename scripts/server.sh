#!/usr/bin/env bash
# A local Prefect server (SQLite in PREFECT_HOME) bound to 127.0.0.1, telemetry off.
#
#   scripts/server.sh start     start it in the background, wait until /api/ready answers (up to 180 s)
#   scripts/server.sh stop      stop the server this script started (by its pid file)
#   scripts/server.sh status    say whether it is running and ready
#
# Environment: PORT (default 4200), PREFECT_HOME (default $PWD/.state/prefect), UI (1 = serve the web UI,
# the default; 0 = API only, as CI does). Clients then use PREFECT_API_URL=http://127.0.0.1:$PORT/api.
# Files in PREFECT_HOME: prefect.db (the server's database), server.log, boilerstrip-server.pid.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PORT:-4200}"
UI="${UI:-1}"
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.state/prefect}"
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_API_URL="http://127.0.0.1:$PORT/api"   # what the UI talks to; never an inherited URL
PIDFILE="$PREFECT_HOME/boilerstrip-server.pid"
LOG="$PREFECT_HOME/server.log"

if [ -x "$ROOT/.venv/bin/prefect" ]; then PREFECT="$ROOT/.venv/bin/prefect"; PYTHON="$ROOT/.venv/bin/python"
elif command -v prefect >/dev/null 2>&1; then PREFECT="$(command -v prefect)"; PYTHON="$(command -v python3 || command -v python)"
else echo "server.sh: no prefect: run 'make test' (creates .venv) or install prefect" >&2; exit 2; fi

ready() {  # 0 when http://127.0.0.1:$PORT/api/ready answers 200 (python: curl may be missing)
  "$PYTHON" - "$PORT" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/ready", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}

port_free() {
  "$PYTHON" - "$PORT" <<'EOF' >/dev/null 2>&1
import socket, sys
with socket.socket() as s:
    s.bind(("127.0.0.1", int(sys.argv[1])))
EOF
}

our_pid() {  # the pid in the pid file, if that process is alive and is a prefect server
  [ -f "$PIDFILE" ] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "prefect.* server start" || return 1
  echo "$pid"
}

case "${1:-}" in
start)
  mkdir -p "$PREFECT_HOME"
  if pid="$(our_pid)"; then
    echo "server already running (pid $pid, PREFECT_HOME=$PREFECT_HOME)"; exit 0
  fi
  port_free || { echo "server.sh: port $PORT on 127.0.0.1 is in use; set PORT=..." >&2; exit 1; }
  if [ "$UI" = 0 ]; then ui_flag=--no-ui; else ui_flag=--ui; fi
  start=$(date +%s)
  nohup "$PREFECT" server start --host 127.0.0.1 --port "$PORT" "$ui_flag" --analytics-off >"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  for _ in $(seq 1 360); do                      # up to 180 s: a cold start (migrations) takes ~10 s
    if ready; then
      echo "server ready (pid $pid) in $(( $(date +%s) - start )) s: http://127.0.0.1:$PORT  PREFECT_HOME=$PREFECT_HOME"
      echo "clients: export PREFECT_API_URL=http://127.0.0.1:$PORT/api"
      exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "server.sh: the server exited; its log ($LOG):" >&2; cat "$LOG" >&2; rm -f "$PIDFILE"; exit 1
    fi
    sleep 0.5
  done
  echo "server.sh: not ready after 180 s; its log ($LOG):" >&2; cat "$LOG" >&2
  kill "$pid" 2>/dev/null || true; rm -f "$PIDFILE"; exit 1 ;;
stop)
  if ! pid="$(our_pid)"; then
    rm -f "$PIDFILE"; echo "server not running (PREFECT_HOME=$PREFECT_HOME)"; exit 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done   # up to 15 s
  if kill -0 "$pid" 2>/dev/null; then echo "server.sh: pid $pid ignored SIGTERM; SIGKILL" >&2; kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PIDFILE"
  echo "server stopped (pid $pid)" ;;
status)
  if pid="$(our_pid)"; then
    if ready; then echo "server running and ready (pid $pid): http://127.0.0.1:$PORT"; exit 0; fi
    echo "server running (pid $pid) but not ready on port $PORT"; exit 1
  fi
  echo "server not running (PREFECT_HOME=$PREFECT_HOME)"; exit 3 ;;
*)
  echo "usage: $0 start|stop|status   (env: PORT, PREFECT_HOME, UI=0|1)" >&2; exit 2 ;;
esac
