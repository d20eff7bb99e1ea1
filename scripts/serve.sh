#!/usr/bin/env bash
# Serve the clean-articles deployments (daily + adhoc) in the foreground: `python -m flows.deployments`
# with the environment of scripts/server.sh. Ctrl-C or SIGTERM stops it (the daily schedule is then
# paused until served again).
#
# Environment: PORT (default 4200) or PREFECT_API_URL (default http://127.0.0.1:$PORT/api), PREFECT_HOME
# (default $PWD/.state/prefect), BOILERSTRIP_DAILY_CRON / _TIMEZONE / _INPUT / _OUTPUT,
# BOILERSTRIP_SERVE_LIMIT (see flows/deployments.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PORT:-4200}"
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.state/prefect}"
export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:$PORT/api}"
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
mkdir -p "$PREFECT_HOME"
if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="$(command -v python3 || command -v python)"; fi
echo "serving clean-articles/daily and clean-articles/adhoc on $PREFECT_API_URL (Ctrl-C stops)"
exec "$PYTHON" -m flows.deployments
