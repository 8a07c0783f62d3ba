#!/usr/bin/env bash
# Side-by-side WSGI A/B (issue 11: `towergate wsgi` >= 1.0x Granian): two servers loaded
# *at once*, each by its own `wrk -t1 -c32`, so that both run under the same machine noise
# (on a shared 2-core VM, sequential runs swing by +-20% from one to the next). Each round
# prints both servers' requests/s and CPU time per request (utime + stime from /proc,
# children included, divided by the requests served), then swaps the ports' order.
#
#   SPEC is `granian` (from the virtualenv VENV) or the path of a towergate binary.
#   bash bench/ab_wsgi.sh granian target/release/towergate [ROUNDS]
#   APP=bench_flask:app bash bench/ab_wsgi.sh granian /tmp/before/towergate
#
# APP is a `module:attr` of bench/wsgi (bench_apps:hello, bench_flask:app); THREADS (8)
# each server's Python thread budget; SECS (8) the length of a run. VENV, a virtualenv
# with granian and flask made from the interpreter towergate embeds, defaults to
# target/ab-wsgi-venv, made on first use from PYO3_PYTHON (/usr/bin/python3, as in
# bench/compare.sh). Servers bind 127.0.0.1 and are stopped by their pid.
set -u
A=$1
B=$2
ROUNDS=${3:-3}
SECS=${SECS:-8}
THREADS=${THREADS:-8}
APP=${APP:-bench_apps:hello}
. "$(dirname "$0")/wsgi/venv.sh"

PIDS=()
cleanup() { for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done; }
trap cleanup EXIT

# start SPEC PORT -> pid
start() {
  WORKERS=1 wsgi_start "$1" "$2"
  echo $!
}
ticks() { local t=0 p; for p in "$1" $(pgrep -P "$1"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
HZ=$(getconf CLK_TCK)
OUT=$(mktemp -d /tmp/towergate-ab-wsgi.XXXXXX)

# round SPEC1 SPEC2 -> one line
round() {
  local p1 p2 c1 c2 w1 w2 d1 d2
  p1=$(start "$1" 18881); PIDS+=("$p1")
  p2=$(start "$2" 18882); PIDS+=("$p2")
  for port in 18881 18882; do
    for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  done
  c1=$(ticks "$p1"); c2=$(ticks "$p2")
  timeout $((SECS + 10)) wrk -t1 -c32 -d"${SECS}s" http://127.0.0.1:18881/ >"$OUT/1" & w1=$!
  timeout $((SECS + 10)) wrk -t1 -c32 -d"${SECS}s" http://127.0.0.1:18882/ >"$OUT/2" & w2=$!
  wait "$w1" "$w2"
  d1=$(($(ticks "$p1") - c1)); d2=$(($(ticks "$p2") - c2))
  kill "$p1" "$p2"; wait "$p1" "$p2" 2>/dev/null
  for i in 1 2; do
    local spec=$1 d=$d1; [ $i = 2 ] && { spec=$2; d=$d2; }
    awk -v s="$(basename "$spec")" -v d="$d" -v hz="$HZ" '
      /requests in/ { n = $1 } /Requests\/sec/ { r = $2 }
      END { printf "%-12s %9.0f req/s %6.1f us/req   ", s, r, d / hz / n * 1e6 }' "$OUT/$i"
  done
  echo
}

echo "$APP, $THREADS threads, both servers loaded at once (wrk -t1 -c32 each, ${SECS}s)"
for i in $(seq 1 "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then round "$A" "$B"; else round "$B" "$A"; fi
done
rm -rf "$OUT"
