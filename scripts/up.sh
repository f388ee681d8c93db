#!/usr/bin/env bash
# Runs the whole stack on loopback: Valkey :6379, the One-Frame emulator :8080
# (unless ONE_FRAME_URL points elsewhere), `refresher run`, runtime-shim :3000
# with its metrics on :9465, and the exporter's metrics on :9464. Ctrl-C
# stops every process this script started. Called by `make up` after
# `make build`.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=target/debug
RUN=.run
VALKEY_PORT=6379
ONE_FRAME_PORT=8080
EDGE_PORT=3000
EDGE_METRICS_PORT=9465
EXPORTER_PORT=9464
mkdir -p "$RUN"

fail() { echo "make up: $*" >&2; exit 1; }
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if command -v valkey-server >/dev/null; then VALKEY=valkey-server
elif command -v redis-server >/dev/null; then VALKEY=redis-server
else fail "neither valkey-server nor redis-server is installed (Debian: sudo apt-get install redis-server)"; fi
command -v curl >/dev/null || fail "curl is not installed (Debian: sudo apt-get install curl); it checks that the edge is ready"
for b in refresher one-frame runtime-shim; do
  [ -x "$BIN/$b" ] || fail "$BIN/$b is missing: run 'make build'"
done
ports="$VALKEY_PORT $EDGE_PORT $EDGE_METRICS_PORT $EXPORTER_PORT"
[ -z "${ONE_FRAME_URL:-}" ] && ports="$ports $ONE_FRAME_PORT"
for p in $ports; do
  port_taken "$p" && fail "port $p is taken: stop whatever listens there (e.g. 'ss -ltnp | grep :$p') and retry"
done

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "make up: stopping ${#pids[@]} processes" >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
# Ctrl-C is the normal way to stop: clean up and exit 0.
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

# start NAME CMD...: runs CMD in the background, its output prefixed by NAME.
start() {
  local name=$1; shift
  "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
  pids+=($!)
}

start valkey "$VALKEY" --port "$VALKEY_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN"
if [ -z "${ONE_FRAME_URL:-}" ]; then
  start one-frame "$BIN/one-frame" --listen "127.0.0.1:$ONE_FRAME_PORT"
  export ONE_FRAME_URL="http://127.0.0.1:$ONE_FRAME_PORT"
fi
export VALKEY_URL="redis://127.0.0.1:$VALKEY_PORT"
for _ in $(seq 50); do port_taken "$VALKEY_PORT" && break; sleep 0.1; done
start refresher "$BIN/refresher" run --every "${REFRESH_EVERY:-4m}"
start exporter "$BIN/refresher" exporter --listen "127.0.0.1:$EXPORTER_PORT"
start edge "$BIN/runtime-shim" up -f spin.toml --listen "127.0.0.1:$EDGE_PORT" \
  --metrics-listen "127.0.0.1:$EDGE_METRICS_PORT" \
  --variable "valkey_url=$VALKEY_URL" --variable "valkey_host=127.0.0.1:$VALKEY_PORT"

for _ in $(seq 600); do
  if curl -fsS "http://127.0.0.1:$EDGE_PORT/readyz" >/dev/null 2>&1; then
    echo
    echo "make up: ready. Try:  curl 'localhost:$EDGE_PORT/rates?from=USD&to=JPY'   (Ctrl-C stops everything)"
    echo "make up: metrics:     http://127.0.0.1:$EXPORTER_PORT/metrics (the promises, from Valkey)"
    echo "                      http://127.0.0.1:$EDGE_METRICS_PORT/metrics (runtime-shim)"
    echo
    wait -n "${pids[@]}" || true
    fail "a process exited; stopping the stack"
  fi
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a process exited during start-up (see its lines above)"; done
  sleep 0.1
done
fail "the edge did not become ready within 60 s"
