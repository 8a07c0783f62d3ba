#!/usr/bin/env bash
# Interleaved A/B of the gateway row (DESIGN.md: a gateway app in hyper at >= 0.95x a native
# hyper service_fn): per round, the native hello, the gateway hello of a BEFORE build and the
# gateway hello of an AFTER build, in rotating order, each under `wrk -t2 -c64 -d5s`. Prints
# each run's requests/s, its ratio to the native run of the same round, and the server's CPU
# time per request (utime + stime from /proc, divided by the requests served), a figure less
# sensitive than requests/s to other load on the machine.
#
#   cargo build --release --all-features --example bench_gateway
#   cp target/release/examples/bench_gateway /tmp/bench_gateway_before   # on the old commit
#   bash bench/ab_gateway.sh /tmp/bench_gateway_before target/release/examples/bench_gateway 6
#
# Servers bind 127.0.0.1 and are stopped by their pid; every run is bounded.
set -u
BEFORE=$1
AFTER=$2
ROUNDS=${3:-3}

# run BIN MODE PORT -> "requests/s cpu_us_per_request"
run() {
  "$1" "$2" "127.0.0.1:$3" 2>/dev/null &
  local pid=$!
  sleep 0.5
  local out ticks
  out=$(wrk -t2 -c64 -d5s "http://127.0.0.1:$3/")
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"
  wait "$pid" 2>/dev/null
  local rps reqs hz
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  hz=$(getconf CLK_TCK)
  echo "$rps $(echo "scale=3; $ticks * 1000000 / $hz / $reqs" | bc)"
}

for i in $(seq 1 "$ROUNDS"); do
  case $((i % 3)) in
    1) n=$(run "$AFTER" native 18451); b=$(run "$BEFORE" gateway 18452); a=$(run "$AFTER" gateway 18453) ;;
    2) b=$(run "$BEFORE" gateway 18452); a=$(run "$AFTER" gateway 18453); n=$(run "$AFTER" native 18451) ;;
    0) a=$(run "$AFTER" gateway 18453); n=$(run "$AFTER" native 18451); b=$(run "$BEFORE" gateway 18452) ;;
  esac
  read -r n_rps n_cpu <<<"$n"
  read -r b_rps b_cpu <<<"$b"
  read -r a_rps a_cpu <<<"$a"
  echo "round $i: native $n_rps req/s ${n_cpu}us/req" \
    "| before $b_rps (x$(echo "scale=3; $b_rps / $n_rps" | bc), cpu x$(echo "scale=3; $b_cpu / $n_cpu" | bc))" \
    "| after $a_rps (x$(echo "scale=3; $a_rps / $n_rps" | bc), cpu x$(echo "scale=3; $a_cpu / $n_cpu" | bc))"
done
