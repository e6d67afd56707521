#!/usr/bin/env bash
# The shared kit's harness, then a wait until the server is quiet, so that a step's server CPU-s
# includes its own teardown (the closes of the sockets it held, the wakes they cause) instead of
# leaving it to the next step. bench/run.sh puts this script where the kit expects its harness.
#
# Environment: BENCH_HARNESS (the real harness binary), BENCH_SETTLE_LOG (optional: one JSON line
# per step, {"kind":"settle","label","cpu_s","wall_s"}, for the part after the harness exited).
# The server is the process listening on the port of the harness's --url. Quiet: two consecutive
# half-seconds of at most 2 clock ticks each (4% of a core); at most 60 s.
set -uo pipefail

rc=0
"$BENCH_HARNESS" "$@" || rc=$?

url="" label=""
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url=$2; shift ;;
    --url=*) url=${1#*=} ;;
    --label) label=$2; shift ;;
    --label=*) label=${1#*=} ;;
  esac
  shift
done
port=${url##*:}
port=${port%%/*}
pid=$(ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
[ -n "$pid" ] || exit "$rc"

ticks() { # utime+stime of the listener and its descendants
  local sum=0 p
  for p in $(tree "$pid"); do
    sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}
tree() {
  local c
  [ -d "/proc/$1" ] || return 0
  echo "$1"
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done
}

start=$(ticks) t0=$(date +%s.%N) last=$start quiet=0
for _ in $(seq 1 120); do
  sleep 0.5
  now=$(ticks)
  if [ $((now - last)) -le 2 ]; then quiet=$((quiet + 1)); else quiet=0; fi
  last=$now
  [ "$quiet" -ge 2 ] && break
done
if [ -n "${BENCH_SETTLE_LOG:-}" ]; then
  awk -v l="$label" -v c="$((last - start))" -v hz="$(getconf CLK_TCK)" -v a="$t0" -v b="$(date +%s.%N)" \
    'BEGIN{printf "{\"kind\":\"settle\",\"label\":\"%s\",\"cpu_s\":%.3f,\"wall_s\":%.3f}\n", l, c/hz, b-a}' >> "$BENCH_SETTLE_LOG"
fi
exit "$rc"
