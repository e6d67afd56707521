#!/usr/bin/env bash
# Issue #13: large rooms. One room fan-out per configuration, each on a fresh production-like
# server (bench/serve.mjs: workerd through Miniflare, fresh state), driven by the shared kit's
# harness (`fanout`: N members connect — the join phase, `setup_s` —, then one more member sends
# at RATE msg/s for SECS s; every member gets every message, checked for loss, duplicates and
# order), interleaved over RUNS runs:
#
#   sharded-N   ROOM_SHARD_SOCKETS=1000 (the default): the room's object holds 1,000 sockets,
#               shards hold the rest
#   single-N    ROOM_SHARD_SOCKETS=30000 (its maximum): one object holds every socket, as before
#
# The room and its members are made before the step (internal API, `notify:false`); the step
# is the members connecting (the join phase, the harness's `setup_s`) and the fan-out.
#
#   bench/rooms.sh [--runs 3] [--sharded "1000 10000 19500"] [--single "1000"]
#                  [--rate 5] [--secs 20] [--out DIR]
#
# As the shared kit does, the server's whole process tree runs on CPU 1 and the harness on CPU 0.
# Per step: the harness's JSON line plus the server tree's CPU-s in the join phase, in the
# fan-out (until the harness exits) and in the teardown (the closes, until quiet: bench/settle.sh's
# rule), and the fan-out's per message sent. `node bench/rooms-report.mjs DIR` prints the medians. Environment: SHARED_BENCH as for bench/run.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED_BENCH=$(cd "${SHARED_BENCH:-$ROOT/../shared/bench}" && pwd)
RUNS=3 SHARDED="1000 10000 19500" SINGLE="1000" RATE=5 SECS=20 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --sharded) SHARDED=$2; shift 2 ;;
    --single) SINGLE=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$ROOT/bench/results/rooms-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
HARNESS="$SHARED_BENCH/harness/target/release/harness"
[ -x "$HARNESS" ] || (cd "$SHARED_BENCH/harness" && cargo build --release --quiet)

export JWT_SECRET=${JWT_SECRET:-$(openssl rand -hex 32)}
export INTERNAL_API_TOKEN=${INTERNAL_API_TOKEN:-$(openssl rand -hex 32)}
export MAX_ROOM_MEMBERS=100000 MAX_SOCKETS_PER_USER=1000
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
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

tree() { # a pid and its descendants
  [ -d "/proc/$1" ] || return 0
  echo "$1"
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done
}
ticks() {
  local sum=0 p
  for p in $(tree "$SERVER_PID"); do
    sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}
quiet() { # two consecutive half-seconds of at most 2 ticks, at most 60 s
  local calm=0 a b
  for _ in $(seq 1 120); do
    a=$(ticks); sleep 0.5; b=$(ticks)
    if [ $((b - a)) -le 2 ]; then calm=$((calm + 1)); else calm=0; fi
    [ "$calm" -ge 2 ] && return 0
  done
}

step() { # step NAME SHARD_SOCKETS MEMBERS
  local name=$1 shard=$2 members=$3 port
  port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  ROOM_SHARD_SOCKETS=$shard taskset -c 1 node "$ROOT/bench/serve.mjs" --target switchboard --port "$port" > "$OUT/$name.serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do grep -q '"pid"' "$OUT/$name.serve.log" && break; sleep 0.2; done
  quiet
  # The room and its members, added quietly (`notify:false`: no `room.added` in 20,000 streams,
  # which would wake as many UserHubs), 1,000 ids per call, under the harness's own names.
  local run_id room
  run_id=$(openssl rand -hex 6)
  room="bench-$run_id-room"
  node -e '
    const [base, token, runId, room, n] = process.argv.slice(1);
    const post = async (path, body) => {
      const res = await fetch(base + path, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    };
    (async () => {
      await post("/internal/v1/rooms", { id: room, name: room });
      const users = Array.from({ length: Number(n) }, (_, i) => `bench-${runId}-m${i}`);
      users.push(`bench-${runId}-s0`);
      for (let i = 0; i < users.length; i += 1000) await post(`/internal/v1/rooms/${room}/members`, { users: users.slice(i, i + 1000), notify: false });
    })().catch((err) => { console.error(err.message); process.exit(1); });
  ' "http://127.0.0.1:$port" "$INTERNAL_API_TOKEN" "$run_id" "$room" "$members"
  quiet
  local t0 t1
  t0=$(ticks)
  taskset -c 0 "$HARNESS" --proto raw --url "ws://127.0.0.1:$port" --label "$name" --setup-timeout 900 --handshake-timeout 60 \
    --run-id "$run_id" fanout --room "$room" --members "$members" --rate "$RATE" --duration "$SECS" \
    > "$OUT/$name.json" 2> "$OUT/$name.log" &
  local harness=$! tm="" te
  # The harness logs "members up" when the join phase ends and sending starts: the CPU before
  # it is the join's, after it the fan-out's (and the teardown's).
  while kill -0 "$harness" 2>/dev/null; do
    if [ -z "$tm" ] && grep -q "members up" "$OUT/$name.log" 2>/dev/null; then tm=$(ticks); fi
    sleep 0.1
  done
  wait "$harness" || true
  te=$(ticks)
  quiet
  t1=$(ticks)
  tm=${tm:-$te}
  node -e '
    const [file, joinTicks, name, shard, fanTicks, downTicks] = process.argv.slice(1);
    const r = JSON.parse(require("fs").readFileSync(file, "utf8").trim().split("\n").pop());
    const fanout = Number(fanTicks) / 100;
    console.log(JSON.stringify({ step: name, shard_sockets: Number(shard), members: r.members, members_up: r.members_up,
      join_s: r.setup_s, sent: r.messages_sent, lost: r.lost, dup: r.dup, reorder: r.reorder, incomplete: r.messages_incomplete,
      last_p50_ms: r.latency_last_recipient?.p50_ms, last_p99_ms: r.latency_last_recipient?.p99_ms,
      per_recipient_p50_ms: r.latency_per_recipient?.p50_ms, join_cpu_s: Number(joinTicks) / 100, fanout_cpu_s: fanout,
      teardown_cpu_s: Number(downTicks) / 100,
      cpu_ms_per_message: r.messages_sent ? Math.round(fanout * 1000 / r.messages_sent) : null, error: r.first_error ?? r.error ?? null }));
  ' "$OUT/$name.json" "$((tm - t0))" "$name" "$shard" "$((te - tm))" "$((t1 - te))" | tee -a "$OUT/results.jsonl"
  stop_server
}

{ echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"; nproc; lscpu | head -n 15; free -m; } > "$OUT/machine.txt"
for run in $(seq 1 "$RUNS"); do
  for n in $SINGLE; do log "run $run: single-$n"; step "single-$n-r$run" 30000 "$n"; done
  for n in $SHARDED; do log "run $run: sharded-$n"; step "sharded-$n-r$run" 1000 "$n"; done
done
log "results: $OUT/results.jsonl"
