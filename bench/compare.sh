#!/usr/bin/env bash
# Side-by-side comparison of towergate against the anchors of DESIGN.md, measured in one run
# on this machine. Prints one markdown table of ratios (paste it into BENCHMARKS.md).
#
#   bash bench/compare.sh            # everything (section 7, WSGI, alone about 20 minutes)
#   QUICK=1 bash bench/compare.sh    # fewer runs, shorter wrk runs
#   SECTIONS="1 3" bash bench/compare.sh   # only those sections (numbered below)
#
# It installs what it needs from apt (wrk, lighttpd, nginx, fcgiwrap, hyperfine, golang-go,
# time, curl), builds the baselines (a minimal C CGI program, a Go net/http/cgi hello built
# offline with the standard library only, a Python wsgiref CGIHandler hello) and towergate's
# examples (release, statically linked where glibc allows: see the `cgi` module docs), then
# measures. Every server binds 127.0.0.1, is stopped by its pid, and every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/nginx_head.sh
# The `python` feature (built by --all-features) embeds this interpreter (section 7).
export PYO3_PYTHON=${PYO3_PYTHON:-/usr/bin/python3}

QUICK=${QUICK:-}
RUNS=${RUNS:-$([ -n "$QUICK" ] && echo 200 || echo 1000)}
PY_RUNS=${PY_RUNS:-$([ -n "$QUICK" ] && echo 30 || echo 200)}
WRK_SECS=${WRK_SECS:-$([ -n "$QUICK" ] && echo 3 || echo 10)}
BIG=${BIG:-1073741824}
gib=$(awk -v b="$BIG" 'BEGIN { printf "%.2f", b / 1073741824 }')

log() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- setup
need=()
for pair in wrk:wrk lighttpd:lighttpd nginx:nginx-light fcgiwrap:fcgiwrap hyperfine:hyperfine \
            go:golang-go /usr/bin/time:time curl:curl gcc:gcc python3:python3; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

WORK=$(mktemp -d /tmp/towergate-compare.XXXXXX)
PIDS=()
cleanup() {
  if [ -n "${fpid:-}" ]; then kill -- "-$fpid" 2>/dev/null || true; fi
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

log "building baselines in $WORK"
gcc -O2 -o "$WORK/spawnbench" bench/baselines/spawnbench.c
gcc -O2 -o "$WORK/hello_c" bench/baselines/hello.c
gcc -O2 -o "$WORK/echo_c" bench/baselines/echo.c
(cd "$WORK" && cp "$ROOT/bench/baselines/hello.go" . && \
  GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=off GOCACHE="$WORK/gocache" go build -o hello_go hello.go)
install -m 755 bench/baselines/hello.py "$WORK/hello_py"

log "building towergate (release)"
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" cargo build -q --release --target "$TRIPLE" \
  --features fastcgi --example cgi_hello --example cgi_axum
STATIC="$ROOT/target/$TRIPLE/release/examples"
cargo build -q --release --all-features --bin towergate --example bench_gateway --example cgi_hello
REL="$ROOT/target/release"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  log "port $1 did not open"; return 1
}
start() { "$@" >>"$WORK/server.log" 2>&1 & LAST=$!; PIDS+=("$LAST"); }
# big_file: the 1 GiB source of the uploads, made once and read through before each use:
# the first read of it fills the page cache, and on this VM (guest memory that the host backs
# on first touch) an upload read from a cold cache ran at 0.18-0.46 GiB/s, against ~0.9 warm.
big_file() { [ -f "$WORK/big.bin" ] || truncate -s "$BIG" "$WORK/big.bin"; cat "$WORK/big.bin" >/dev/null; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wrk URL CONNECTIONS -> "req/s p50_ms p99_ms"
wrk_run() {
  local out
  out=$(timeout $((WRK_SECS + 30)) wrk -t2 -c"$2" -d"${WRK_SECS}s" --latency "$1")
  # The requests served, for CPU time per request (wrk_requests).
  awk '/requests in/ {print $1}' <<<"$out" >"$WORK/wrk.requests"
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  [ -n "$errors" ] && log "wrk $1: $errors"
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else print v }'
}
wrk_requests() { cat "$WORK/wrk.requests"; }
# cpu_ticks PID... -> utime + stime of those processes, in clock ticks (/proc/PID/stat)
cpu_ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{ s += $1 } END { print s + 0 }'; }
# us_per_request TICKS REQUESTS -> CPU microseconds per request
us_per_request() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

ROWS=()
row() { ROWS+=("| $* |"); }
# want N: whether section N runs (all of them unless SECTIONS lists some).
want() { [ -z "${SECTIONS:-}" ] || [[ " $SECTIONS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- 1. cold exec
if want 1; then
log "cold exec (median of $RUNS spawns)"
cold() { "$WORK/spawnbench" "$1" "$2" | awk '{print $1}'; }
c_us=$(cold "$RUNS" "$WORK/hello_c")
go_us=$(cold "$RUNS" "$WORK/hello_go")
py_us=$(cold "$PY_RUNS" "$WORK/hello_py")
hello_us=$(cold "$RUNS" "$STATIC/cgi_hello")
axum_us=$(cold "$RUNS" "$STATIC/cgi_axum")
hello_dyn_us=$(cold "$RUNS" "$REL/examples/cgi_hello")
row "cold exec, C hello (floor) | ${c_us} µs | 1.00 | —"
row "cold exec, Go net/http/cgi hello | ${go_us} µs | $(ratio "$go_us" "$c_us") | —"
row "cold exec, Python wsgiref CGIHandler hello | ${py_us} µs | $(ratio "$py_us" "$c_us") | —"
row "cold exec, towergate cgi_hello (static) | ${hello_us} µs | $(ratio "$hello_us" "$c_us") | ≤ 1.15 and < Go ($(ratio "$go_us" "$c_us"))"
row "cold exec, towergate cgi_axum (static) | ${axum_us} µs | $(ratio "$axum_us" "$c_us") | —"
row "cold exec, towergate cgi_hello (dynamic) | ${hello_dyn_us} µs | $(ratio "$hello_dyn_us" "$c_us") | —"
fi

# ---------------------------------------------------------------- 2. CGI host, wrk c=8
if want 2; then
log "CGI host, wrk c=8 for ${WRK_SECS}s each"
DOC="$WORK/doc"; mkdir -p "$DOC/cgi-bin"
cp "$WORK/hello_c" "$DOC/cgi-bin/hello"
cp "$WORK/echo_c" "$DOC/cgi-bin/echo"

port=$(free_port)
cat >"$WORK/lighttpd.conf" <<CONF
server.document-root = "$DOC"
server.bind = "127.0.0.1"
server.port = $port
server.modules = ( "mod_alias", "mod_cgi" )
server.errorlog = "$WORK/lighttpd.err"
server.max-keep-alive-requests = 100000
alias.url = ( "/cgi-bin/" => "$DOC/cgi-bin/" )
\$HTTP["url"] =~ "^/cgi-bin/" { cgi.assign = ( "" => "" ) }
CONF
start lighttpd -D -f "$WORK/lighttpd.conf"; pid=$LAST; wait_port "$port"
read -r l_rps l_p50 l_p99 <<<"$(wrk_run "http://127.0.0.1:$port/cgi-bin/hello" 8)"
stop "$pid"

port=$(free_port)
sock="$WORK/fcgiwrap.sock"
# fcgiwrap -c N forks workers that outlive a killed parent: run it as its own process
# group (setsid) and stop the whole group.
start setsid fcgiwrap -c 8 -s "unix:$sock"; fpid=$LAST
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.05; done
{ nginx_head "$WORK" nginx; cat <<CONF; } >"$WORK/nginx.conf"
  server {
    listen 127.0.0.1:$port;
    location /cgi-bin/ {
      fastcgi_pass unix:$sock;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $DOC\$fastcgi_script_name;
    }
  }
}
CONF
start nginx -c "$WORK/nginx.conf"; npid=$LAST; wait_port "$port"
read -r n_rps n_p50 n_p99 <<<"$(wrk_run "http://127.0.0.1:$port/cgi-bin/hello" 8)"
stop "$npid"; kill -- "-$fpid" 2>/dev/null || true; stop "$fpid"

port=$(free_port)
start env RUST_LOG=warn "$REL/towergate" serve "$DOC" --addr "127.0.0.1:$port"; tpid=$LAST; wait_port "$port"
read -r t_rps t_p50 t_p99 <<<"$(wrk_run "http://127.0.0.1:$port/cgi-bin/hello" 8)"
stop "$tpid"

row "host, lighttpd mod_cgi, C hello, c=8 | ${l_rps} req/s (p50 ${l_p50} ms, p99 ${l_p99} ms) | 1.00 | —"
row "host, nginx + fcgiwrap (-c 8), C hello, c=8 | ${n_rps} req/s (p50 ${n_p50} ms, p99 ${n_p99} ms) | $(ratio "$n_rps" "$l_rps") | —"
row "host, towergate serve, C hello, c=8 | ${t_rps} req/s (p50 ${t_p50} ms, p99 ${t_p99} ms) | $(ratio "$t_rps" "$l_rps") | ≥ 1.00, p99 ≤ ${l_p99} ms"
fi

# ---------------------------------------------------------------- 3. gateway app in hyper, c=64
if want 3; then
log "gateway app through AppService vs native hyper service_fn, c=64"
port=$(free_port)
start "$REL/examples/bench_gateway" native "127.0.0.1:$port"; gpid=$LAST; wait_port "$port"
read -r h_rps h_p50 h_p99 <<<"$(wrk_run "http://127.0.0.1:$port/" 64)"
stop "$gpid"
port=$(free_port)
start "$REL/examples/bench_gateway" gateway "127.0.0.1:$port"; gpid=$LAST; wait_port "$port"
read -r g_rps g_p50 g_p99 <<<"$(wrk_run "http://127.0.0.1:$port/" 64)"
stop "$gpid"
row "hyper service_fn hello, c=64 | ${h_rps} req/s (p99 ${h_p99} ms) | 1.00 | —"
row "gateway app via AppService, c=64 | ${g_rps} req/s (p99 ${g_p99} ms) | $(ratio "$g_rps" "$h_rps") | ≥ 0.95"
fi

# ---------------------------------------------------------------- 4. 1 GiB through child and host
if want 4; then
log "1 GiB streamed through the CGI child and the host"
read -r secs kb < <(head -c "$BIG" /dev/zero | env -i REQUEST_METHOD=POST PATH_INFO=/echo \
  CONTENT_LENGTH="$BIG" CONTENT_TYPE=application/octet-stream SERVER_PROTOCOL=HTTP/1.1 \
  /usr/bin/time -f "%e %M" -o "$WORK/time.out" "$STATIC/cgi_axum" | cat >/dev/null; cat "$WORK/time.out")
row "1 GiB POST echoed by cgi_axum (child) | $(awk -v g="$gib" -v s="$secs" 'BEGIN { printf "%.2f GiB/s", g / s }'), peak RSS $((kb / 1024)) MiB | — | ≥ 1 GiB/s, ≤ 20 MiB"

big_file
# upload URL PID -> "GiB/s server_peak_rss_mib server_cpu_s children_cpu_s". curl counts the
# echoed bytes itself (`-o /dev/null`): piping them into `wc -c` would add a copy and a
# process on the client side of a 2-core machine, competing with what is measured. The
# server's CPU (user + system) and that of its reaped children (the echo) come from
# /proc/PID/stat.
upload() {
  local start_ns end_ns got hwm cpu
  start_ns=$(date +%s%N)
  got=$(curl -s -o /dev/null -w '%{size_download}' -T "$WORK/big.bin" \
    -H "Content-Type: application/octet-stream" -X POST "$1")
  end_ns=$(date +%s%N)
  sleep 0.2 # the echo is reaped
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$2/status")
  cpu=$(awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f %.2f", ($14 + $15) / t, ($16 + $17) / t }' "/proc/$2/stat")
  [ "$got" = "$BIG" ] || log "$1 returned $got bytes, expected $BIG"
  echo "$(awk -v g="$gib" -v n=$((end_ns - start_ns)) 'BEGIN { printf "%.2f", g / (n / 1e9) }') $((hwm / 1024)) $cpu"
}

# The anchor: lighttpd mod_cgi streaming both ways (by default it spools the whole request
# body to a temporary file first).
port=$(free_port)
sed -e "s/^server.port = .*/server.port = $port/" "$WORK/lighttpd.conf" >"$WORK/lighttpd-stream.conf"
cat >>"$WORK/lighttpd-stream.conf" <<CONF
server.stream-request-body = 2
server.stream-response-body = 2
server.upload-dirs = ( "$WORK" )
CONF
start lighttpd -D -f "$WORK/lighttpd-stream.conf"; pid=$LAST; wait_port "$port"
read -r l_gibs l_rss l_cpu l_child <<<"$(upload "http://127.0.0.1:$port/cgi-bin/echo" "$pid")"
stop "$pid"

port=$(free_port)
start env RUST_LOG=warn "$REL/towergate" serve "$DOC" --addr "127.0.0.1:$port"; tpid=$LAST; wait_port "$port"
read -r t_gibs t_rss t_cpu t_child <<<"$(upload "http://127.0.0.1:$port/cgi-bin/echo" "$tpid")"
stop "$tpid"

pipe_s=$( { /usr/bin/time -f "%e" bash -c "head -c $BIG /dev/zero | cat | cat | wc -c >/dev/null"; } 2>&1 )
row "1 GiB, plain pipe chain: head -c, two cat, wc -c (the machine's pipe bandwidth) | $(awk -v g="$gib" -v s="$pipe_s" 'BEGIN { printf "%.2f GiB/s", g / s }') | — | —"
row "1 GiB POST through lighttpd mod_cgi (streaming) to a C echo | ${l_gibs} GiB/s, server peak RSS ${l_rss} MiB, CPU ${l_cpu} s (echo ${l_child} s) | 1.00 | —"
row "1 GiB POST through towergate serve to a C echo (host) | ${t_gibs} GiB/s, server peak RSS ${t_rss} MiB, CPU ${t_cpu} s (echo ${t_child} s) | $(ratio "$t_gibs" "$l_gibs") | ≥ 1 GiB/s, ≤ 20 MiB"
fi

# ---------------------------------------------------------------- 5. FastCGI application
if want 5; then
# nginx → cgi_axum as a FastCGI application (keep-alive upstream) against nginx → Go
# net/http/fcgi with the same config, nginx proxy_pass → the same axum router over native
# HTTP (native_axum), and nginx + fcgiwrap + cgi_hello (the CGI path); then 1 GiB down
# through nginx → FastCGI → /stream and 1 GiB up through nginx → FastCGI → /count, each
# with the app's peak RSS, beside nginx proxy_pass → native_axum with the same bytes. Both
# FastCGI apps get their socket on descriptor 0 from spawn-fcgi.
fastcgi_section() {
  local need_f=()
  command -v spawn-fcgi >/dev/null 2>&1 || need_f+=(spawn-fcgi)
  if [ ${#need_f[@]} -gt 0 ]; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_f[@]}" >/dev/null
  fi
  log "FastCGI: nginx keep-alive upstream, c=64 for ${WRK_SECS}s each"
  (cd "$WORK" && cp "$ROOT/bench/baselines/hello_fcgi.go" . && \
    GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=off GOCACHE="$WORK/gocache" go build -o hello_fcgi hello_fcgi.go)
  local native=""
  if [ -f examples/native_axum.rs ]; then
    cargo build -q --release --all-features --example native_axum
    native="$REL/examples/native_axum"
  fi

  # nginx_conf PORT LOCATION_BODY UPSTREAM_LINES -> config file path
  nginx_conf() {
    local conf="$WORK/nginx-fcgi-$1.conf"
    { nginx_head "$WORK" "nginx-fcgi-$1"; cat <<CONF; } >"$conf"
  # No limit on the request body (1 MiB by default): the 1 GiB upload goes through.
  client_max_body_size 0;
  # Unbuffered responses are read from the app a buffer at a time: 64 KiB, not 4 KiB.
  fastcgi_buffer_size 64k;
  fastcgi_buffers 8 64k;
  proxy_buffer_size 64k;
  proxy_buffers 8 64k;
  upstream app {
    $3
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$1;
    location / {
$2
    }
  }
}
CONF
    echo "$conf"
  }
  local fcgi_location='      fastcgi_split_path_info ^(/app)(/.*)$;
      include /etc/nginx/fastcgi_params;
      fastcgi_param PATH_INFO $fastcgi_path_info;
      fastcgi_keep_conn on;
      fastcgi_buffering off;
      fastcgi_request_buffering off;
      fastcgi_pass app;'
  # Both locations stream the request body to the app as it arrives (*_request_buffering
  # off) instead of spooling all of it to a temporary file first (nginx's default): the
  # upload row then measures the app reading a stream, not nginx's disk, and the two front
  # ends do the same work. With buffering on, nginx would write and re-read 1 GiB on both
  # sides and send the app a CONTENT_LENGTH body from its file.
  local proxy_location='      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_pass http://app;'

  # download URL PID -> "GiB/s server_peak_rss_mib server_cpu_s"
  download() {
    local start_ns end_ns got
    start_ns=$(date +%s%N)
    got=$(curl -s -o /dev/null -w '%{size_download}' "$1")
    end_ns=$(date +%s%N)
    [ "$got" = "$BIG" ] || log "$1 returned $got bytes, expected $BIG"
    echo "$(awk -v g="$gib" -v n=$((end_ns - start_ns)) 'BEGIN { printf "%.2f", g / (n / 1e9) }')" \
      "$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$2/status")" \
      "$(awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$2/stat")"
  }
  # upload URL PID -> "GiB/s server_peak_rss_mib server_cpu_s": 1 GiB POSTed to /count, which
  # reads it all before it answers the byte count (nginx stops sending a request body once a
  # response head has arrived, so /echo cannot carry it).
  upload_count() {
    local start_ns end_ns got
    start_ns=$(date +%s%N)
    got=$(curl -s -T "$WORK/big.bin" -H "Content-Type: application/octet-stream" \
      -H "Expect:" -X POST --max-time 300 "$1")
    end_ns=$(date +%s%N)
    [ "$got" = "$BIG" ] || log "$1 counted '$got' bytes, expected $BIG"
    echo "$(awk -v g="$gib" -v n=$((end_ns - start_ns)) 'BEGIN { printf "%.2f", g / (n / 1e9) }')" \
      "$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$2/status")" \
      "$(awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$2/stat")"
  }
  big_file
  # fcgi_app PROGRAM -> starts it under spawn-fcgi on a free port; sets APP_PORT, APP_PID
  fcgi_app() {
    APP_PORT=$(free_port)
    start spawn-fcgi -n -a 127.0.0.1 -p "$APP_PORT" -- "$1"; APP_PID=$LAST; wait_port "$APP_PORT"
  }
  # start_nginx LOCATION UPSTREAM -> sets NGINX_PORT, NGINX_PID (not in a subshell: the
  # cleanup must know the pid)
  start_nginx() {
    NGINX_PORT=$(free_port)
    local conf; conf=$(nginx_conf "$NGINX_PORT" "$1" "$2")
    start nginx -c "$conf"; NGINX_PID=$LAST; wait_port "$NGINX_PORT"
  }

  fcgi_app "$STATIC/cgi_axum"
  start_nginx "$fcgi_location" "server 127.0.0.1:$APP_PORT;"
  read -r ft_rps ft_p50 ft_p99 <<<"$(wrk_run "http://127.0.0.1:$NGINX_PORT/app/" 64)"
  # 1 GiB down through the same nginx and app (/stream: 1024 chunks of 1 MiB), then the
  # app's peak RSS. Not up and down through /echo: nginx stops sending a request body once
  # the response head has arrived (it closes its spooled body), so an echo of more than its
  # buffers stalls until fastcgi_read_timeout, whatever the app.
  read -r ft_gibs ft_rss ft_cpu <<<"$(download "http://127.0.0.1:$NGINX_PORT/app/stream?n=$((BIG >> 20))&bytes=1048576" "$APP_PID")"
  stop "$NGINX_PID"; stop "$APP_PID"
  # 1 GiB up, with a fresh app so that its peak RSS is the upload's alone.
  fcgi_app "$STATIC/cgi_axum"
  start_nginx "$fcgi_location" "server 127.0.0.1:$APP_PORT;"
  read -r fu_gibs fu_rss fu_cpu <<<"$(upload_count "http://127.0.0.1:$NGINX_PORT/app/count" "$APP_PID")"
  stop "$NGINX_PID"; stop "$APP_PID"

  fcgi_app "$WORK/hello_fcgi"
  start_nginx "$fcgi_location" "server 127.0.0.1:$APP_PORT;"
  read -r fg_rps fg_p50 fg_p99 <<<"$(wrk_run "http://127.0.0.1:$NGINX_PORT/app/" 64)"
  stop "$NGINX_PID"; stop "$APP_PID"

  local fp_rps="" fp_p99="" fp_gibs="" fp_rss="" fpu_gibs="" fpu_rss="" fpu_cpu=""
  if [ -n "$native" ]; then
    APP_PORT=$(free_port)
    start "$native" --addr "127.0.0.1:$APP_PORT"; APP_PID=$LAST; wait_port "$APP_PORT"
    start_nginx "$proxy_location" "server 127.0.0.1:$APP_PORT;"
    read -r fp_rps _ fp_p99 <<<"$(wrk_run "http://127.0.0.1:$NGINX_PORT/cgi-bin/app/" 64)"
    read -r fp_gibs fp_rss _ <<<"$(download "http://127.0.0.1:$NGINX_PORT/cgi-bin/app/stream?n=$((BIG >> 20))&bytes=1048576" "$APP_PID")"
    stop "$NGINX_PID"; stop "$APP_PID"
    APP_PORT=$(free_port)
    start "$native" --addr "127.0.0.1:$APP_PORT"; APP_PID=$LAST; wait_port "$APP_PORT"
    start_nginx "$proxy_location" "server 127.0.0.1:$APP_PORT;"
    read -r fpu_gibs fpu_rss fpu_cpu <<<"$(upload_count "http://127.0.0.1:$NGINX_PORT/cgi-bin/app/count" "$APP_PID")"
    stop "$NGINX_PID"; stop "$APP_PID"
  fi

  # The CGI path: nginx + fcgiwrap + cgi_hello (static), same wrk load.
  local fsock="$WORK/fcgiwrap-fcgi.sock"
  mkdir -p "$WORK/fdoc/cgi-bin"; cp "$STATIC/cgi_hello" "$WORK/fdoc/cgi-bin/hello"
  start setsid fcgiwrap -c 8 -s "unix:$fsock"; fpid=$LAST
  for _ in $(seq 1 100); do [ -S "$fsock" ] && break; sleep 0.05; done
  local cgi_location="      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $WORK/fdoc\$fastcgi_script_name;
      fastcgi_pass unix:$fsock;"
  start_nginx "$cgi_location" "server 127.0.0.1:1;"
  read -r fc_rps _ fc_p99 <<<"$(wrk_run "http://127.0.0.1:$NGINX_PORT/cgi-bin/hello" 64)"
  stop "$NGINX_PID"; kill -- "-$fpid" 2>/dev/null || true; stop "$fpid"; fpid=""

  row "FastCGI: nginx → Go net/http/fcgi hello, keep-alive upstream, c=64 | ${fg_rps} req/s (p50 ${fg_p50} ms, p99 ${fg_p99} ms) | 1.00 | —"
  row "FastCGI: nginx → towergate cgi_axum hello (FastCGI), same config, c=64 | ${ft_rps} req/s (p50 ${ft_p50} ms, p99 ${ft_p99} ms) | $(ratio "$ft_rps" "$fg_rps") | ≥ 1.00"
  if [ -n "$native" ]; then
    row "FastCGI: nginx proxy_pass → native_axum (same router over HTTP), c=64 | ${fp_rps} req/s (p99 ${fp_p99} ms) | $(ratio "$fp_rps" "$fg_rps") | towergate FastCGI ≥ 0.9× this ($(ratio "$ft_rps" "$fp_rps")×)"
  fi
  row "FastCGI: nginx + fcgiwrap + cgi_hello (the CGI path), c=64 | ${fc_rps} req/s (p99 ${fc_p99} ms) | $(ratio "$fc_rps" "$fg_rps") | towergate FastCGI is $(ratio "$ft_rps" "$fc_rps")× this"
  row "1 GiB down, nginx → towergate FastCGI → /stream | ${ft_gibs} GiB/s, app peak RSS ${ft_rss} MiB, app CPU ${ft_cpu} s | — | ≤ 20 MiB"
  if [ -n "$native" ]; then
    row "1 GiB down, nginx proxy_pass → native_axum /stream | ${fp_gibs} GiB/s, app peak RSS ${fp_rss} MiB | — | —"
  fi
  row "1 GiB up, nginx → towergate FastCGI (cgi_axum) → /count, request buffering off | ${fu_gibs} GiB/s, app peak RSS ${fu_rss} MiB, app CPU ${fu_cpu} s | $( [ -n "$native" ] && ratio "$fu_gibs" "$fpu_gibs" || echo —) | ≤ 20 MiB, beside proxy_pass"
  if [ -n "$native" ]; then
    row "1 GiB up, nginx proxy_pass → native_axum /count, request buffering off | ${fpu_gibs} GiB/s, app peak RSS ${fpu_rss} MiB, app CPU ${fpu_cpu} s | 1.00 | —"
  fi
}
fastcgi_section
fi

# ---------------------------------------------------------------- 6. FastCGI client → php-fpm
if want 6; then
# `towergate serve --php` → php-fpm hello.php against nginx → the same php-fpm pool (4
# static workers on a Unix socket; nginx with a keep-alive upstream and fastcgi_keep_conn,
# one worker process; towergate with --max-processes 4, the pool's size, as nginx keeps 4
# connections), c=16, the two interleaved over PHP_ROUNDS rounds: the median of each, and
# the spread of the ratio over the rounds; beside requests/s, the CPU time per request of
# the front end and of the php-fpm workers (utime + stime from /proc before and after each
# run), less sensitive than requests/s to other load on the machine. The comparison is
# fair: the same pool for both, the same c; both keep their connections to php-fpm
# (nginx: upstream keepalive + fastcgi_keep_conn; towergate: its pool, FCGI_KEEP_CONN).
php_section() {
  local fpm=""
  for candidate in /usr/sbin/php-fpm8.2 "$(command -v php-fpm 2>/dev/null || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { fpm=$candidate; break; }
  done
  if [ -z "$fpm" ]; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq php-fpm >/dev/null
    fpm=$(ls /usr/sbin/php-fpm* 2>/dev/null | head -n 1)
  fi
  local rounds=${PHP_ROUNDS:-$([ -n "$QUICK" ] && echo 2 || echo 3)}
  log "PHP: towergate serve --php and nginx → php-fpm hello.php, c=16, $rounds interleaved rounds"
  local dir="$WORK/php" nport tport root_flag
  nport=$(free_port)
  root_flag=$(bash bench/php_confs.sh "$dir" "$nport")
  start "$fpm" -F $root_flag -y "$dir/fpm.conf"; local ppid=$LAST
  for _ in $(seq 1 100); do [ -S "$dir/fpm.sock" ] && break; sleep 0.05; done

  # Each one's kept-alive connections hold php-fpm workers while it runs, so the two are
  # never up at the same time: each round starts and stops both, one after the other.
  local n_all=() t_all=() ratios=() n t npid tpid
  local n_cpu=() t_cpu=() n_php=() t_php=() workers f0 p0
  workers=$(ps -o pid= --ppid "$ppid" | tr -d ' ')
  tport=$(free_port)
  for _ in $(seq 1 "$rounds"); do
    start nginx -c "$dir/nginx.conf"; npid=$LAST; wait_port "$nport"
    curl -s -o /dev/null "http://127.0.0.1:$nport/hello.php"
    f0=$(cpu_ticks "$npid"); p0=$(cpu_ticks $workers)
    read -r n _ _ <<<"$(wrk_run "http://127.0.0.1:$nport/hello.php" 16)"
    n_cpu+=("$(us_per_request $(($(cpu_ticks "$npid") - f0)) "$(wrk_requests)")")
    n_php+=("$(us_per_request $(($(cpu_ticks $workers) - p0)) "$(wrk_requests)")")
    stop "$npid"
    start env RUST_LOG=warn "$REL/towergate" serve "$dir/www" --php "unix:$dir/fpm.sock" \
      --max-processes 4 --addr "127.0.0.1:$tport"; tpid=$LAST; wait_port "$tport"
    curl -s -o /dev/null "http://127.0.0.1:$tport/hello.php"
    f0=$(cpu_ticks "$tpid"); p0=$(cpu_ticks $workers)
    read -r t _ _ <<<"$(wrk_run "http://127.0.0.1:$tport/hello.php" 16)"
    t_cpu+=("$(us_per_request $(($(cpu_ticks "$tpid") - f0)) "$(wrk_requests)")")
    t_php+=("$(us_per_request $(($(cpu_ticks $workers) - p0)) "$(wrk_requests)")")
    stop "$tpid"
    n_all+=("$n"); t_all+=("$t"); ratios+=("$(ratio "$t" "$n")")
  done
  stop "$ppid"
  median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  local n_med t_med spread
  n_med=$(median "${n_all[@]}"); t_med=$(median "${t_all[@]}")
  spread=$(printf '%s\n' "${ratios[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "–" hi }')
  row "PHP: nginx → php-fpm hello.php (4 workers, keep-alive upstream), c=16 | ${n_med} req/s (median of $rounds); CPU per request: nginx $(median "${n_cpu[@]}") µs, php-fpm $(median "${n_php[@]}") µs | 1.00 | —"
  row "PHP: towergate serve --php → the same php-fpm pool, c=16 | ${t_med} req/s (median of $rounds; per-round ratio ${spread}); CPU per request: towergate $(median "${t_cpu[@]}") µs, php-fpm $(median "${t_php[@]}") µs | $(ratio "$t_med" "$n_med") | ≥ 1.00"
}
php_section
fi

# ---------------------------------------------------------------- 7. WSGI apps, c=64
if want 7; then
# towergate wsgi against Granian (`--interface wsgi`, the same number of Python threads and
# of worker processes) and gunicorn (sync, a worker per core), on a plain WSGI hello and a
# Flask hello, with one worker process and with a worker per core (WSGI_WORKERS; towergate
# also with --pin-workers, each worker bound to a core of its own);
# then 1 GiB up through wsgi.input and 1 GiB down from a generator, with the server's peak
# RSS. Flask, Granian and gunicorn come from PyPI into a virtualenv of the interpreter
# towergate embeds. Rounds interleave the servers; each towergate shape (the static
# interpreter) runs right beside the Granian of the same shape, which of the two first
# alternating, and its ratio is the median of the rounds' own ratios, followed by each of
# them: the machine's load drifts by 10-25% within a minute here, which a ratio of two
# medians taken a minute apart carries whole. req/s is the median round, with the spread
# of the rounds; the server's CPU time per request (its processes and their workers, from
# /proc) the median round.
WSGI_THREADS=${WSGI_THREADS:-8}
WSGI_WORKERS=${WSGI_WORKERS:-$(nproc)}
WSGI_ROUNDS=${WSGI_ROUNDS:-$([ -n "$QUICK" ] && echo 1 || echo 5)}
log "WSGI: virtualenv with Flask, Granian, gunicorn"
"$PYO3_PYTHON" -m venv "$WORK/wsgi-venv"
"$WORK/wsgi-venv/bin/pip" install -q --disable-pip-version-check flask granian gunicorn
WSGI_BIN="$WORK/wsgi-venv/bin"
# towergate with the interpreter linked statically, as the `python` module docs describe
# (scripts/python-static.sh): what Granian and gunicorn run on too (Debian's python3 is
# statically linked). The shared-library build is measured beside it.
log "building towergate with a static libpython"
(eval "$(scripts/python-static.sh "$PYO3_PYTHON")" && \
  CARGO_TARGET_DIR="$ROOT/target/python-static" cargo build -q --release --features cli,python --bin towergate)
STATIC_PY="$ROOT/target/python-static/$TRIPLE/release/towergate"
# The apps (bench/wsgi): two modules, the plain apps must not pay for Flask's import in
# the RSS figures.
mkdir -p "$WORK/wsgi"
cp bench/wsgi/bench_flask.py bench/wsgi/bench_apps.py "$WORK/wsgi/"

# wsgi_server NAME MODULE:APP PORT: starts one server for the app on PORT (sets LAST).
wsgi_server() {
  case $1 in
    towergate|towergate-shared|towergate-workers|towergate-pinned|towergate-pass) start env -i PATH="$PATH" VIRTUAL_ENV="$WORK/wsgi-venv" RUST_LOG=warn \
      "$([ "$1" = towergate-shared ] && echo "$REL/towergate" || echo "$STATIC_PY")" wsgi "$2" --python-path "$WORK/wsgi" \
      --threads "$WSGI_THREADS" --workers "$(case $1 in towergate-workers|towergate-pinned) echo "$WSGI_WORKERS" ;; *) echo 1 ;; esac)" \
      $([ "$1" = towergate-pinned ] && echo --pin-workers) \
      $([ "$1" = towergate-pass ] && echo --keep-gil false) --addr "127.0.0.1:$3" ;;
    granian|granian-workers) start env -i PATH="$PATH" PYTHONPATH="$WORK/wsgi" "$WSGI_BIN/granian" \
      --interface wsgi --workers "$([ "$1" = granian-workers ] && echo "$WSGI_WORKERS" || echo 1)" \
      --blocking-threads "$WSGI_THREADS" --log-level warning --host 127.0.0.1 --port "$3" "$2" ;;
    gunicorn) start env -i PATH="$PATH" "$WSGI_BIN/gunicorn" --chdir "$WORK/wsgi" -k sync \
      -w "$(nproc)" -b "127.0.0.1:$3" --log-level warning "$2" ;;
  esac
  wait_port "$3"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
spread() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (lo > 0) printf "±%.0f%%", 50 * (hi - lo) / lo; else print "n/a" }'; }

for app in hello flask; do
  target=$([ "$app" = hello ] && echo bench_apps:hello || echo bench_flask:app)
  log "WSGI $app hello, wrk c=64 for ${WRK_SECS}s, $WSGI_ROUNDS rounds"
  declare -A rps=() p99=() med=() spr=() p99m=() last=() pair=() pmed=() cpu=() cpum=()
  # Units run in an order that rotates every round; a unit of two or more records each
  # round the ratio of each of its servers to its last (the anchor), and runs its servers
  # in one order, then in the reverse order the next round.
  units=("towergate granian" "towergate-workers towergate-pinned granian-workers" "gunicorn" "towergate-shared" "towergate-pass")
  for round in $(seq 1 "$WSGI_ROUNDS"); do
    for i in "${!units[@]}"; do
      read -r -a unit <<<"${units[$(((i + round - 1) % ${#units[@]}))]}"
      order=("${unit[@]}")
      if [ $((round % 2)) = 0 ]; then
        order=(); for ((k = ${#unit[@]} - 1; k >= 0; k--)); do order+=("${unit[$k]}"); done
      fi
      for server in "${order[@]}"; do
        port=$(free_port); wsgi_server "$server" "$target" "$port"; pid=$LAST
        curl -sf -o /dev/null "http://127.0.0.1:$port/" || log "$server $app: the warm-up request failed"
        # The server's processes: its own and its workers (gunicorn's, Granian's, ours).
        procs="$pid $(ps -o pid= --ppid "$pid" | tr '\n' ' ' || true)"
        c0=$(cpu_ticks $procs)
        read -r r _ q <<<"$(wrk_run "http://127.0.0.1:$port/" 64)"
        cpu[$server]+="$(us_per_request $(($(cpu_ticks $procs) - c0)) "$(wrk_requests)") "
        stop "$pid"
        rps[$server]+="$r "; p99[$server]+="$q "; last[$server]=$r
      done
      anchor=${unit[${#unit[@]} - 1]}
      for server in "${unit[@]:0:${#unit[@]}-1}"; do
        pair[$server]+="$(ratio "${last[$server]}" "${last[$anchor]}") "
      done
    done
  done
  for server in "${!rps[@]}"; do
    med[$server]=$(tr ' ' '\n' <<<"${rps[$server]}" | grep . | median)
    spr[$server]=$(tr ' ' '\n' <<<"${rps[$server]}" | grep . | spread)
    p99m[$server]=$(tr ' ' '\n' <<<"${p99[$server]}" | grep . | median)
    cpum[$server]=$(tr ' ' '\n' <<<"${cpu[$server]}" | grep . | median)
  done
  # The median of a pair's round ratios, followed by each of them.
  for server in "${!pair[@]}"; do
    pmed[$server]="$(tr ' ' '\n' <<<"${pair[$server]}" | grep . | median) (rounds $(tr ' ' '\n' <<<"${pair[$server]}" | grep . | sort -g | paste -sd' '))"
  done
  row "WSGI $app, Granian --interface wsgi, 1 worker, $WSGI_THREADS threads (anchor) | ${med[granian]} req/s ${spr[granian]}, p99 ${p99m[granian]} ms, server CPU ${cpum[granian]} µs/request | 1.00 | —"
  row "WSGI $app, gunicorn sync, $(nproc) workers | ${med[gunicorn]} req/s ${spr[gunicorn]}, p99 ${p99m[gunicorn]} ms, server CPU ${cpum[gunicorn]} µs/request | $(ratio "${med[gunicorn]}" "${med[granian]}") | —"
  row "WSGI $app, towergate wsgi, 1 worker, $WSGI_THREADS threads, static libpython | ${med[towergate]} req/s ${spr[towergate]}, p99 ${p99m[towergate]} ms, server CPU ${cpum[towergate]} µs/request | ${pmed[towergate]} (× gunicorn $(ratio "${med[towergate]}" "${med[gunicorn]}")) | ≥ 1.0× Granian"
  row "WSGI $app, towergate wsgi, 1 worker, $WSGI_THREADS threads, libpython.so | ${med[towergate-shared]} req/s ${spr[towergate-shared]}, p99 ${p99m[towergate-shared]} ms, server CPU ${cpum[towergate-shared]} µs/request | $(ratio "${med[towergate-shared]}" "${med[granian]}") | —"
  # `--keep-gil false`: the GIL changes hands between requests (the default with --workers above 1).
  row "WSGI $app, towergate wsgi --keep-gil false, 1 worker, $WSGI_THREADS threads, static libpython | ${med[towergate-pass]} req/s ${spr[towergate-pass]}, p99 ${p99m[towergate-pass]} ms, server CPU ${cpum[towergate-pass]} µs/request | $(ratio "${med[towergate-pass]}" "${med[granian]}") | —"
  # A worker process per core for all three: the process budget gunicorn is given.
  row "WSGI $app, Granian --interface wsgi, $WSGI_WORKERS workers × $WSGI_THREADS threads (anchor) | ${med[granian-workers]} req/s ${spr[granian-workers]}, p99 ${p99m[granian-workers]} ms, server CPU ${cpum[granian-workers]} µs/request | 1.00 (× gunicorn $(ratio "${med[granian-workers]}" "${med[gunicorn]}")) | —"
  row "WSGI $app, towergate wsgi, $WSGI_WORKERS workers × $WSGI_THREADS threads, static libpython | ${med[towergate-workers]} req/s ${spr[towergate-workers]}, p99 ${p99m[towergate-workers]} ms, server CPU ${cpum[towergate-workers]} µs/request | ${pmed[towergate-workers]} (× gunicorn $(ratio "${med[towergate-workers]}" "${med[gunicorn]}")) | —"
  # --pin-workers: each worker bound to its own core (off by default: see `towergate wsgi --help`).
  row "WSGI $app, towergate wsgi --pin-workers, $WSGI_WORKERS workers × $WSGI_THREADS threads, static libpython | ${med[towergate-pinned]} req/s ${spr[towergate-pinned]}, p99 ${p99m[towergate-pinned]} ms, server CPU ${cpum[towergate-pinned]} µs/request | ${pmed[towergate-pinned]} (× gunicorn $(ratio "${med[towergate-pinned]}" "${med[gunicorn]}")) | ≥ 1.0× Granian, ≥ 3× gunicorn"
done

log "WSGI: 1 GiB up through wsgi.input, 1 GiB down from a generator"
big_file
port=$(free_port); wsgi_server towergate bench_apps:upload "$port"; pid=$LAST
start_ns=$(date +%s%N)
got=$(curl -s -T "$WORK/big.bin" -H "Content-Type: application/octet-stream" -X POST "http://127.0.0.1:$port/")
end_ns=$(date +%s%N)
[ "$got" = "$BIG" ] || log "the upload app read $got bytes, expected $BIG"
up_rss=$(( $(awk '/VmHWM/ {print $2}' "/proc/$pid/status") / 1024 ))
up_gibs=$(awk -v g="$gib" -v n=$((end_ns - start_ns)) 'BEGIN { printf "%.2f", g / (n / 1e9) }')
stop "$pid"
port=$(free_port); wsgi_server towergate bench_apps:download "$port"; pid=$LAST
start_ns=$(date +%s%N)
got=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/?$BIG")
end_ns=$(date +%s%N)
[ "$got" = "$BIG" ] || log "the download returned $got bytes, expected $BIG"
down_rss=$(( $(awk '/VmHWM/ {print $2}' "/proc/$pid/status") / 1024 ))
down_gibs=$(awk -v g="$gib" -v n=$((end_ns - start_ns)) 'BEGIN { printf "%.2f", g / (n / 1e9) }')
stop "$pid"
row "1 GiB POST read through wsgi.input in 64 KiB blocks, towergate wsgi | ${up_gibs} GiB/s, server peak RSS ${up_rss} MiB | — | ≤ 30 MiB"
row "1 GiB GET from a Python generator of 64 KiB blocks, towergate wsgi | ${down_gibs} GiB/s, server peak RSS ${down_rss} MiB | — | ≤ 30 MiB"
fi

# ---------------------------------------------------------------- table
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); $(rustc --version)."
echo
echo "| what | measured | ratio | target |"
echo "|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
