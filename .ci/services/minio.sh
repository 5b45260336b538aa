#!/usr/bin/env bash
# Starts a real MinIO server on 127.0.0.1 for the S3 tests (conformance,
# faults, crashes) and prints the variables they read. The server is built
# from the Go module proxy at a pinned version and cached between runs:
#
#   eval "$(.ci/services/minio.sh)"   # exports SHELF_TEST_MINIO, SHELF_TEST_MINIO_USER/_PASSWORD
#   .ci/services/minio.sh stop        # stops the instance this script started
#
# Idempotent: does nothing if the port already answers as MinIO.
set -euo pipefail

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
HOST="${MINIO_HOST:-127.0.0.1}"
PORT="${MINIO_PORT:-9900}"
CONSOLE_PORT="${MINIO_CONSOLE_PORT:-9901}"
CACHE="${SHELF_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shelf-ci}"
BIN_DIR="$CACHE/minio-$MINIO_VERSION"
STATE_DIR="${MINIO_STATE_DIR:-${TMPDIR:-/tmp}/shelf-minio}"
PID_FILE="$STATE_DIR/minio.pid"
LOG_FILE="$STATE_DIR/minio.log"
# Development credentials of this throw-away local server; not a secret.
USER_NAME=shelfminio
PASSWORD=shelfminio-local-only

log() { echo "minio.sh: $*" >&2; }

print_env() {
  cat <<ENV
export SHELF_TEST_MINIO=http://$HOST:$PORT
export SHELF_TEST_MINIO_USER=$USER_NAME
export SHELF_TEST_MINIO_PASSWORD=$PASSWORD
ENV
}

healthy() {
  (exec 3<>"/dev/tcp/$HOST/$PORT" && printf 'GET /minio/health/live HTTP/1.0\r\nHost: %s\r\n\r\n' "$HOST" >&3 &&
    head -c 12 <&3 | grep -q ' 200') 2>/dev/null
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

if healthy; then
  log "MinIO already answers on $HOST:$PORT"
  print_env
  exit 0
fi

if [[ ! -x "$BIN_DIR/minio" ]]; then
  log "building $MINIO_MODULE@$MINIO_VERSION into $BIN_DIR (once; cached for later runs)"
  mkdir -p "$BIN_DIR"
  GOBIN="$BIN_DIR" GOFLAGS=-mod=mod go install "$MINIO_MODULE@$MINIO_VERSION" >&2
fi

mkdir -p "$STATE_DIR/data"
MINIO_ROOT_USER=$USER_NAME MINIO_ROOT_PASSWORD=$PASSWORD MINIO_BROWSER=off MINIO_UPDATE=off \
  nohup "$BIN_DIR/minio" server --quiet --address "$HOST:$PORT" --console-address "$HOST:$CONSOLE_PORT" "$STATE_DIR/data" \
  >"$LOG_FILE" 2>&1 &
echo $! >"$PID_FILE"

for _ in $(seq 1 150); do
  if healthy; then
    log "ready on $HOST:$PORT (pid $(cat "$PID_FILE"), log $LOG_FILE)"
    print_env
    echo "export SHELF_TEST_MINIO_STARTED=1"  # this call started it: the caller's cleanup stops it
    exit 0
  fi
  if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    log "minio exited early:"; cat "$LOG_FILE" >&2; exit 1
  fi
  sleep 0.2
done
log "timed out waiting for $HOST:$PORT"; cat "$LOG_FILE" >&2
exit 1
