#!/usr/bin/env bash
# Where a WSGI server's CPU goes, thread by thread: starts one server, loads it with
# `wrk -t2 -c64` for 1 s (so that lazily started threads exist), then for SECS (5) seconds,
# and prints, for each of its threads that ran, the CPU time per request (user and system,
# from /proc/PID/task/TID/stat) and the context switches per request, then the sums by
# thread name and in all. The runtime threads and the Python threads of towergate and
# Granian show apart this way (BENCHMARKS.md, 2026-12-02, fifth session).
#
#   SPEC is `granian` (from the virtualenv VENV) or the path of a towergate binary.
#   bash bench/threads_wsgi.sh target/release/towergate
#   WORKERS=1 APP=bench_flask:app bash bench/threads_wsgi.sh granian
#
# APP is a `module:attr` of bench/wsgi (bench_apps:hello, bench_flask:app); WORKERS (2) the
# server's processes; THREADS (8) each process's Python threads (Granian: --blocking-threads).
# VENV as in bench/ab_wsgi.sh. The server binds 127.0.0.1 and is stopped by its pid.
set -u
[ $# -ge 1 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
SPEC=$1
SECS=${SECS:-5}
THREADS=${THREADS:-8}
WORKERS=${WORKERS:-2}
APP=${APP:-bench_apps:hello}
. "$(dirname "$0")/wsgi/venv.sh"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
wsgi_start "$SPEC" "$port"
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
wrk -t2 -c64 -d1s "http://127.0.0.1:$port/" >/dev/null
# The server's processes: its own and its workers'.
procs="$pid $(ps -o pid= --ppid "$pid" | tr '\n' ' ')"

# snapshot -> "PID/TID NAME USER_TICKS SYSTEM_TICKS SWITCHES" for every thread
snapshot() {
  for p in $procs; do
    for t in /proc/"$p"/task/*; do
      read -r name <"$t/comm" 2>/dev/null || continue
      awk -v id="$p/${t##*/}" -v name="${name// /_}" '{ print id, name, $14, $15 }' "$t/stat"
    done
  done | while read -r id name user system; do
    switches=$(awk '/ctxt_switches/ { s += $2 } END { print s + 0 }' "/proc/${id%/*}/task/${id#*/}/status" 2>/dev/null)
    echo "$id $name $user $system ${switches:-0}"
  done | sort
}

before=$(snapshot)
out=$(wrk -t2 -c64 -d"${SECS}s" "http://127.0.0.1:$port/")
after=$(snapshot)
requests=$(awk '/requests in/ { print $1 }' <<<"$out")
echo "$SPEC, $APP, $WORKERS workers x $THREADS threads: $requests requests in ${SECS}s ($(awk '/Requests\/sec/ { print $2 }' <<<"$out") a second)"
echo "thread                   name              CPU µs a request (user, system)  switches a request"
join <(echo "$before") <(echo "$after") | awk -v n="$requests" -v hz="$(getconf CLK_TCK)" '
  function us(ticks) { return ticks * 1e6 / hz / n }
  {
    u = $7 - $3; s = $8 - $4
    if (u + s == 0) next
    printf "%-24s %-16s %6.2f (%5.2f, %5.2f)                %.3f\n", $1, $2, us(u + s), us(u), us(s), ($9 - $5) / n
    U[$2] += u; S[$2] += s; tu += u; ts += s
  }
  END {
    for (k in U) printf "sum %-37s %6.2f (%5.2f, %5.2f)\n", k, us(U[k] + S[k]), us(U[k]), us(S[k])
    printf "sum %-37s %6.2f (%5.2f, %5.2f)\n", "all", us(tu + ts), us(tu), us(ts)
  }'
