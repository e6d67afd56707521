#!/usr/bin/env bash
# `make bench`: the platform floor, Switchboard and (with BENCH_PEER=1) the NestJS + socket.io peer,
# side by side with the shared harness, RUNS times each, interleaved; one table of medians with
# every run listed (bench/report.mjs). Switchboard and the floor are served production-like by
# bench/serve.mjs (workerd through Miniflare, a fresh state directory and server per run).
#
#   bench/run.sh [--quick] [--runs N] [--targets "floor switchboard"] [--out DIR]
#
# Environment: SHARED_BENCH (the side-by-side kit, default ../shared/bench from the project root),
# BENCH_PEER=1 (add the peer, `run.sh peer --persist`; its first build takes minutes),
# JWT_SECRET / INTERNAL_API_TOKEN (default: fresh random values, given to servers and harness),
# and the kit's scenario sizes (CONNECT_N, PUSH_RATE, IDLE_N, …; see its README).
# Everything binds to and targets 127.0.0.1; each harness step is bounded by the kit's timeouts.
#
# The kit is run from a copy of its layout in <out>/kit whose harness is bench/settle.sh: the real
# harness, then a wait until the server is quiet. So each step's server CPU-s counts its own
# teardown (the closes of the sockets it held), and the next step starts on a quiet server.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_BENCH=$(cd "${SHARED_BENCH:-$ROOT/../shared/bench}" && pwd)
RUNS=3 TARGETS="floor switchboard" OUT="" QUICK=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=(--quick); shift ;;
    --runs) RUNS=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
if [ "${BENCH_PEER:-0}" = 1 ]; then TARGETS="$TARGETS peer"; fi
OUT=${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

# The kit as it lays itself out, with bench/settle.sh where it looks for its harness.
BENCH_HARNESS="$SHARED_BENCH/harness/target/release/harness"
if [ ! -x "$BENCH_HARNESS" ]; then
  (cd "$SHARED_BENCH/harness" && cargo build --release --quiet)
fi
KIT="$OUT/kit"
mkdir -p "$KIT/harness/target/release"
ln -sfn "$SHARED_BENCH/run.sh" "$KIT/run.sh"
ln -sfn "$SHARED_BENCH/report.mjs" "$KIT/report.mjs"
ln -sfn "$SHARED_BENCH/peer-nest" "$KIT/peer-nest"
ln -sfn "$ROOT/bench/settle.sh" "$KIT/harness/target/release/harness"
export BENCH_HARNESS

JWT_SECRET=${JWT_SECRET:-$(openssl rand -hex 32)}
INTERNAL_API_TOKEN=${INTERNAL_API_TOKEN:-$(openssl rand -hex 32)}
export JWT_SECRET INTERNAL_API_TOKEN
# The servers hold thousands of sockets (and Durable Object databases) in the idle step.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The scenarios go past two product limits: one user with 100 devices (MAX_SOCKETS_PER_USER is
# 20) and a room of 1,000 members plus its sender (MAX_ROOM_MEMBERS is 1,000). Raised for the
# measurement only (bench/serve.mjs takes any [vars] value from the environment).
export MAX_SOCKETS_PER_USER=${MAX_SOCKETS_PER_USER:-1000} MAX_ROOM_MEMBERS=${MAX_ROOM_MEMBERS:-2000}

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT INT TERM

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# serve TARGET LOG: starts bench/serve.mjs, waits for its JSON line, sets SERVER_PID and PORT.
serve() {
  PORT=$(free_port)
  node "$ROOT/bench/serve.mjs" --target "$1" --port "$PORT" > "$2" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    grep -q '"pid"' "$2" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.2
  done
  cat "$2" >&2
  echo "the $1 server did not start" >&2
  exit 1
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "uptime: $(uptime)"
  echo "nproc: $(nproc)"
  lscpu | head -n 15
  free -m
} > "$OUT/machine.txt"

for run in $(seq 1 "$RUNS"); do
  for target in $TARGETS; do
    dir="$OUT/$target-$run"
    log "run $run/$RUNS: $target (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    export BENCH_SETTLE_LOG="$dir/settle.jsonl"
    if [ "$target" = peer ]; then
      "$KIT/run.sh" peer --persist "${QUICK[@]}" --out "$dir"
      continue
    fi
    mkdir -p "$dir"
    serve "$target" "$dir/serve.log"
    "$KIT/run.sh" switchboard --url "ws://127.0.0.1:$PORT" --pid "$SERVER_PID" "${QUICK[@]}" --out "$dir" \
      --harness-arg=--room-create-path=/internal/v1/rooms \
      --harness-arg=--room-setup-path=/internal/v1/rooms/{room}/members
    stop_server
  done
done

node "$ROOT/bench/report.mjs" "$OUT" | tee "$OUT/table.md"
log "table: $OUT/table.md; every run: $OUT/<target>-<run>/"
