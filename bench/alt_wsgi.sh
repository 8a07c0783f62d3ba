#!/usr/bin/env bash
# Alternating WSGI A/B: every server runs at once, idle but for its turn, and one `wrk -t2
# -c64` run of SECS (2) seconds goes to each in turn, ROUNDS (20) times, the order rotating.
# The runs of one round are seconds apart, so the drift of a shared machine's speed (10–25%
# within a minute here) mostly cancels in a round's ratios. Prints each server's median
# requests/s and the median of its per-round ratios to the last server named.
#
#   SPEC is NAME=granian (from the virtualenv VENV) or NAME=BINARY (a towergate binary).
#   bash bench/alt_wsgi.sh new=target/release/towergate old=/tmp/old/towergate granian=granian
#   WORKERS=1 APP=bench_flask:app ROUNDS=12 bash bench/alt_wsgi.sh tg=target/release/towergate granian=granian
#
# APP is a `module:attr` of bench/wsgi (bench_apps:hello, bench_flask:app); WORKERS (2) each
# server's processes; THREADS (8) each process's Python threads (Granian:
# --blocking-threads). VENV as in bench/ab_wsgi.sh. Servers bind 127.0.0.1 and are stopped
# by their pid.
set -u
[ $# -ge 2 ] || { sed -n '2,14p' "$0" >&2; exit 2; }
ROUNDS=${ROUNDS:-20}
SECS=${SECS:-2}
THREADS=${THREADS:-8}
WORKERS=${WORKERS:-2}
APP=${APP:-bench_apps:hello}
. "$(dirname "$0")/wsgi/venv.sh"

PIDS=()
cleanup() { for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done; }
trap cleanup EXIT

names=() ports=()
port=18900
for spec in "$@"; do
  name=${spec%%=*} bin=${spec#*=} port=$((port + 1))
  wsgi_start "$bin" "$port"
  PIDS+=("$!") names+=("$name") ports+=("$port")
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  timeout 20 wrk -t2 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null # warm-up
done

n=${#names[@]}
echo "$APP, $WORKERS worker(s) × $THREADS threads, wrk -t2 -c64 ${SECS}s each in turn, $ROUNDS rounds"
for round in $(seq 1 "$ROUNDS"); do
  got=()
  for k in $(seq 0 $((n - 1))); do
    i=$(((k + round) % n))
    got[$i]=$(timeout $((SECS + 20)) wrk -t2 -c64 -d"${SECS}s" "http://127.0.0.1:${ports[$i]}/" |
      awk '/Requests\/sec/ { print $2 }')
  done
  for i in $(seq 0 $((n - 1))); do printf '%s=%s ' "${names[$i]}" "${got[$i]:-0}"; done
  echo
done | awk -v last="${names[$((n - 1))]}" '
  { for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2]; if (!(kv[1] in seen)) { seen[kv[1]] = 1; order[++m] = kv[1] } }
    for (j = 1; j <= m; j++) { k = order[j]; all[k] = all[k] " " v[k]; if (v[last] > 0) rat[k] = rat[k] sprintf(" %.2f", v[k] / v[last]) } }
  function median(s,   a, c, i, j, t) {
    c = split(s, a, " ")
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
  }
  END {
    for (j = 1; j <= m; j++) {
      k = order[j]
      printf "%-10s %8.0f req/s (median)   ÷ %s: %.2f (median of rounds)   rounds:%s\n", k, median(all[k]), last, median(rat[k]), rat[k]
    }
  }'
