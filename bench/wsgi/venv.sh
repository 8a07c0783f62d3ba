# Sourced by bench/ab_wsgi.sh, bench/alt_wsgi.sh and bench/threads_wsgi.sh: sets ROOT (the
# repository), APPS (bench/wsgi, the apps) and VENV, a virtualenv with granian and flask
# made from the interpreter towergate embeds (PYO3_PYTHON, else /usr/bin/python3, as in
# bench/compare.sh); VENV defaults to target/ab-wsgi-venv, made on first use. Defines
# wsgi_start.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
APPS=$ROOT/bench/wsgi
VENV=${VENV:-$ROOT/target/ab-wsgi-venv}
if [ ! -x "$VENV/bin/granian" ]; then
  "${PYO3_PYTHON:-/usr/bin/python3}" -m venv "$VENV" && "$VENV/bin/pip" install -q granian flask ||
    { echo "cannot make the virtualenv $VENV" >&2; exit 1; }
fi

# wsgi_start SPEC PORT: starts SPEC (`granian`, from VENV, or the path of a towergate
# binary) in the background, serving APP on 127.0.0.1:PORT with WORKERS (1) processes of
# THREADS (8) Python threads each (Granian: --blocking-threads), its output discarded;
# `$!` is then its pid.
wsgi_start() {
  if [ "$1" = granian ]; then
    env -i PATH="$PATH" PYTHONPATH="$APPS" "$VENV/bin/granian" --interface wsgi --workers "${WORKERS:-1}" \
      --blocking-threads "${THREADS:-8}" --log-level warning --host 127.0.0.1 --port "$2" "$APP" \
      >/dev/null 2>&1 &
  else
    env -i PATH="$PATH" VIRTUAL_ENV="$VENV" RUST_LOG=warn "$1" wsgi "$APP" --python-path "$APPS" \
      --threads "${THREADS:-8}" --workers "${WORKERS:-1}" --addr "127.0.0.1:$2" >/dev/null 2>&1 &
  fi
}
