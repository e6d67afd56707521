#!/usr/bin/env bash
# `make profile`: V8 CPU profiles of a production-like server (bench/serve.mjs, default
# Switchboard) under the hot paths, driven by the shared harness: connect (sequential), push
# 1 user × 100 devices, room fan-out to 1,000 members. Each profile covers one harness step (set-up
# included; the summaries separate the phases by function). Writes bench/profiles/<target>-<step>.cpuprofile
# and .txt (top functions by self and total time).
#
#   bench/profiles.sh [--target switchboard|floor]
#
# Environment: SHARED_BENCH (default ../shared/bench from the project root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_BENCH=$(cd "${SHARED_BENCH:-$ROOT/../shared/bench}" && pwd)
HARNESS="$SHARED_BENCH/harness/target/release/harness"
TARGET=switchboard
if [ "${1:-}" = --target ]; then TARGET=$2; fi
OUT="$ROOT/bench/profiles"
mkdir -p "$OUT"

JWT_SECRET=${JWT_SECRET:-$(openssl rand -hex 32)}
INTERNAL_API_TOKEN=${INTERNAL_API_TOKEN:-$(openssl rand -hex 32)}
export JWT_SECRET INTERNAL_API_TOKEN
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The scenarios go past two product limits: one user with 100 devices (MAX_SOCKETS_PER_USER is
# 20) and a room of 1,000 members plus its sender (MAX_ROOM_MEMBERS is 1,000). Raised for the
# measurement only (bench/serve.mjs takes any [vars] value from the environment).
export MAX_SOCKETS_PER_USER=${MAX_SOCKETS_PER_USER:-1000} MAX_ROOM_MEMBERS=${MAX_ROOM_MEMBERS:-2000}
[ -x "$HARNESS" ] || (cd "$SHARED_BENCH/harness" && cargo build --release --quiet)

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
PORT=$(free_port)
INSPECTOR=$(free_port)
LOG="$OUT/$TARGET-serve.log"
node "$ROOT/bench/serve.mjs" --target "$TARGET" --port "$PORT" --inspector-port "$INSPECTOR" > "$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 300); do
  grep -q '"pid"' "$LOG" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.2
done

H=(timeout 240 "$HARNESS" --proto raw --url "ws://127.0.0.1:$PORT"
  --room-create-path=/internal/v1/rooms --room-setup-path=/internal/v1/rooms/{room}/members)
# Unprofiled warm-up so the JIT has compiled the hot paths.
"${H[@]}" connect -n 500 -c 20 --close-each > /dev/null 2>&1
"${H[@]}" push --users 5 --devices 5 --rate 100 --duration 3 --drain 2 > /dev/null 2>&1
"${H[@]}" fanout --members 50 --rate 20 --duration 3 --drain 2 > /dev/null 2>&1

profile() { # profile NAME harness-args...
  local name=$1; shift
  echo "== $TARGET $name" >&2
  node "$ROOT/bench/profile.mjs" --inspector-port "$INSPECTOR" --out "$OUT/$TARGET-$name.cpuprofile" -- \
    "${H[@]}" --label "$name" "$@" > "$OUT/$TARGET-$name.txt" 2> "$OUT/$TARGET-$name.log"
  head -n 40 "$OUT/$TARGET-$name.txt"
}
profile connect connect -n 1000 -c 1
profile push-1x100 push --users 1 --devices 100 --rate 200 --duration 10
profile fanout-1000 fanout --members 1000 --rate 5 --duration 10
