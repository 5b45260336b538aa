#!/usr/bin/env bash
# Starts Azurite's blob service on 127.0.0.1 for the io/blobs conformance tests
# and prints the variables the tests read. Idempotent: does nothing if the port
# already answers. Azurite 3.35.0 (later versions need Node 22) comes from
# .ci/node/package-lock.json.
#
#   eval "$(.ci/services/azurite.sh)"   # exports SHELF_TEST_AZURITE, AZURE_STORAGE_*
#   .ci/services/azurite.sh stop        # stops the instance this script started
set -euo pipefail

HOST="${AZURITE_HOST:-127.0.0.1}"
PORT="${AZURITE_PORT:-10000}"
STATE_DIR="${AZURITE_STATE_DIR:-${TMPDIR:-/tmp}/shelf-azurite}"
PID_FILE="$STATE_DIR/azurite.pid"
LOG_FILE="$STATE_DIR/azurite.log"

log() { echo "azurite.sh: $*" >&2; }

port_open() {
  (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

print_env() {
  # The well-known development account of Azurite; not a secret.
  cat <<ENV
export SHELF_TEST_AZURITE=http://$HOST:$PORT
export AZURE_STORAGE_ACCOUNT=devstoreaccount1
export AZURE_STORAGE_KEY=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
ENV
}

if [[ "${1:-start}" == "stop" ]]; then
  if [[ -f "$PID_FILE" ]]; then
    pid="$(cat "$PID_FILE")"
    kill "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    log "stopped pid $pid"
  fi
  exit 0
fi

if port_open; then
  log "something already listens on $HOST:$PORT; assuming Azurite"
  print_env
  exit 0
fi

# Installed into the repository's .ci/node (pinned with the other Node
# tools in its package-lock.json), never globally.
NODE_DIR="$(cd "$(dirname "$0")/../node" && pwd)"
AZURITE="$NODE_DIR/node_modules/.bin/azurite-blob"
if [[ ! -x "$AZURITE" ]]; then
  command -v npm >/dev/null 2>&1 || { log "npm not found: install Node.js 20+ first"; exit 1; }
  log "installing the pinned Node tools into $NODE_DIR/node_modules (npm ci)"
  npm ci --prefix "$NODE_DIR" --no-audit --no-fund >&2
fi

mkdir -p "$STATE_DIR/data"
nohup "$AZURITE" --blobHost "$HOST" --blobPort "$PORT" \
  --location "$STATE_DIR/data" --silent --skipApiVersionCheck --loose \
  >"$LOG_FILE" 2>&1 &
echo $! >"$PID_FILE"

for _ in $(seq 1 100); do
  if port_open; then
    log "ready on $HOST:$PORT (pid $(cat "$PID_FILE"), log $LOG_FILE)"
    print_env
    echo "export SHELF_TEST_AZURITE_STARTED=1"  # this call started it: the caller's cleanup stops it
    exit 0
  fi
  if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    log "azurite exited early:"; cat "$LOG_FILE" >&2; exit 1
  fi
  sleep 0.2
done
log "timed out waiting for $HOST:$PORT"; cat "$LOG_FILE" >&2
exit 1
