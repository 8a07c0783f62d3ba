#!/usr/bin/env bash
# Side by side: `towergate serve` against lighttpd mod_cgi running the same minimal C CGI
# program, measured with wrk (keep-alive, 8 connections). Prints requests/s and latency
# percentiles for each; quote them as ratios from one run.
#
#   bash scripts/bench_host.sh [SECONDS]      (default 10 per run, two rounds, interleaved)
#
# Needs gcc, lighttpd and wrk (apt-get install gcc lighttpd wrk). Binds 127.0.0.1 only and
# stops every server it starts by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"

cargo build --release --quiet --features cli --bin towergate
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/www/cgi-bin"
cat >"$work/hello.c" <<'EOF'
#include <stdio.h>
int main(void) {
    fputs("Content-Type: text/plain\r\n\r\nHello, world!", stdout);
    return 0;
}
EOF
gcc -O2 -o "$work/www/cgi-bin/hello" "$work/hello.c"
cat >"$work/lighttpd.conf" <<EOF
server.document-root = "$work/www"
server.port = 18801
server.bind = "127.0.0.1"
server.modules = ("mod_cgi", "mod_alias")
alias.url = ("/cgi-bin/" => "$work/www/cgi-bin/")
\$HTTP["url"] =~ "^/cgi-bin/" { cgi.assign = ("" => "") }
server.errorlog = "$work/lighttpd.err"
EOF

lighttpd -D -f "$work/lighttpd.conf" &
pids+=($!)
RUST_LOG=warn target/release/towergate serve "$work/www" --addr 127.0.0.1:18802 >/dev/null &
pids+=($!)
sleep 1
curl -sf http://127.0.0.1:18801/cgi-bin/hello >/dev/null
curl -sf http://127.0.0.1:18802/cgi-bin/hello >/dev/null

for round in 1 2; do
  for target in "lighttpd 18801" "towergate 18802"; do
    set -- $target
    echo "== round $round: $1"
    wrk -t2 -c8 -d"${secs}s" --latency "http://127.0.0.1:$2/cgi-bin/hello" |
      grep -E "Requests/sec|Latency |50%|99%|Non-2xx|Socket errors"
  done
done
