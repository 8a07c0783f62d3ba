#!/usr/bin/env bash
# Builds `towergate` with the interpreter linked statically (scripts/python-static.sh) and
# serves one request of a WSGI app that imports C extension modules (the standard
# library's lib-dynload), so that a static build that no longer links or loads fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYO3_PYTHON="${PYO3_PYTHON:-/usr/bin/python3}"
eval "$(scripts/python-static.sh "$PYO3_PYTHON")"
export CARGO_TARGET_DIR="$PWD/target/python-static"
cargo build -q --features cli,python --bin towergate
bin="$CARGO_TARGET_DIR/$CARGO_BUILD_TARGET/debug/towergate"
if ldd "$bin" | grep -q libpython; then
  echo "python-static-smoke: $bin still loads libpython" >&2
  exit 1
fi

dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cat >"$dir/smoke.py" <<'PY'
import _json, _socket, ssl, sys

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"static %d.%d" % sys.version_info[:2]]
PY
port=$("$PYO3_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" wsgi smoke:app --python-path "$dir" --addr "127.0.0.1:$port" >"$dir/log" 2>&1 &
pid=$!
got=$("$PYO3_PYTHON" - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=5).read().decode())
        break
    except OSError:
        time.sleep(0.05)
PY
)
want="static $("$PYO3_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$got" != "$want" ]; then
  echo "python-static-smoke: got '$got', want '$want'; the server said:" >&2
  cat "$dir/log" >&2
  exit 1
fi
echo "python-static-smoke: $want"
