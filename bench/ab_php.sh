#!/usr/bin/env bash
# Interleaved A/B of the PHP row (issue 10: `towergate serve --php` → php-fpm hello.php at
# >= 1.0x nginx → the same php-fpm pool): one php-fpm pool (4 static workers on a Unix
# socket, the pool of bench/compare.sh section 6), and per round nginx, a BEFORE towergate
# and an AFTER towergate in rotating order, each alone in front of the pool under
# `wrk -t2 -c16 -d5s`. Prints each run's requests/s, its ratio to nginx's run of the same
# round, and CPU time per request (utime + stime from /proc, divided by the requests served)
# of the front end and of the php-fpm workers: figures less sensitive than requests/s to
# other load on the machine.
#
#   cargo build --release --all-features --bin towergate
#   cp target/release/towergate /tmp/towergate_before   # on the old commit
#   bash bench/ab_php.sh /tmp/towergate_before target/release/towergate 6
#
# Both front ends are configured alike: nginx with one worker process, an upstream with
# `keepalive 4` and `fastcgi_keep_conn on`; towergate with `--max-processes 4`, its pool
# keeping its connections to php-fpm. Servers bind 127.0.0.1 and are stopped by their pid;
# every run is bounded.
set -u
BEFORE=$1
AFTER=$2
ROUNDS=${3:-3}
SECS=${SECS:-5}

FPM=""
for candidate in /usr/sbin/php-fpm8.2 "$(command -v php-fpm 2>/dev/null || true)"; do
  [ -n "$candidate" ] && [ -x "$candidate" ] && { FPM=$candidate; break; }
done
[ -n "$FPM" ] || { echo "php-fpm not found" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

DIR=$(mktemp -d /tmp/towergate-ab-php.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$DIR"
}
trap cleanup EXIT

NPORT=18461
root_flag=$(bash "$(dirname "$0")/php_confs.sh" "$DIR" "$NPORT")
"$FPM" -F $root_flag -y "$DIR/fpm.conf" 2>>"$DIR/fpm.log" &
FPM_PID=$!
PIDS+=("$FPM_PID")
for _ in $(seq 1 100); do [ -S "$DIR/fpm.sock" ] && break; sleep 0.05; done

HZ=$(getconf CLK_TCK)
# ticks PID... -> utime + stime of those processes
ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{ s += $1 } END { print s + 0 }'; }
workers() { ps -o pid= --ppid "$FPM_PID" | tr -d ' '; }

# measure PORT PID -> "requests/s front_cpu_us_per_request php_cpu_us_per_request"
measure() {
  local port=$1 pid=$2
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  curl -s -o /dev/null "http://127.0.0.1:$port/hello.php" # the pool's first connections
  local w f0 p0 out f1 p1
  w=$(workers)
  f0=$(ticks "$pid"); p0=$(ticks $w)
  out=$(timeout $((SECS + 10)) wrk -t2 -c16 -d"${SECS}s" "http://127.0.0.1:$port/hello.php")
  f1=$(ticks "$pid"); p1=$(ticks $w)
  kill "$pid"; wait "$pid" 2>/dev/null
  local rps reqs
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  awk -v r="$rps" -v n="$reqs" -v f=$((f1 - f0)) -v p=$((p1 - p0)) -v hz="$HZ" \
    'BEGIN { printf "%s %.1f %.1f\n", r, f * 1e6 / hz / n, p * 1e6 / hz / n }'
}
run_nginx() { "$NGINX" -c "$DIR/nginx.conf" 2>/dev/null & measure "$NPORT" $!; }
run_tg() {
  RUST_LOG=warn "$1" serve "$DIR/www" --php "unix:$DIR/fpm.sock" --max-processes 4 \
    --addr "127.0.0.1:$2" >/dev/null 2>&1 &
  measure "$2" $!
}

echo "front end: req/s, front-end CPU us/request, php-fpm CPU us/request"
for i in $(seq 1 "$ROUNDS"); do
  case $((i % 3)) in
    1) n=$(run_nginx); b=$(run_tg "$BEFORE" 18462); a=$(run_tg "$AFTER" 18463) ;;
    2) b=$(run_tg "$BEFORE" 18462); a=$(run_tg "$AFTER" 18463); n=$(run_nginx) ;;
    0) a=$(run_tg "$AFTER" 18463); n=$(run_nginx); b=$(run_tg "$BEFORE" 18462) ;;
  esac
  read -r n_rps n_cpu n_php <<<"$n"
  read -r b_rps b_cpu b_php <<<"$b"
  read -r a_rps a_cpu a_php <<<"$a"
  r() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
  echo "round $i: nginx $n_rps req/s ${n_cpu}/${n_php} us" \
    "| before $b_rps (x$(r "$b_rps" "$n_rps")) ${b_cpu}/${b_php} us" \
    "| after $a_rps (x$(r "$a_rps" "$n_rps")) ${a_cpu}/${a_php} us"
done
