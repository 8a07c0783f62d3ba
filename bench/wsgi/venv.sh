# Sourced by bench/ab_wsgi.sh and bench/alt_wsgi.sh: sets ROOT (the repository), APPS
# (bench/wsgi, the apps) and VENV, a virtualenv with granian and flask made from the
# interpreter towergate embeds (PYO3_PYTHON, else /usr/bin/python3, as in bench/compare.sh);
# VENV defaults to target/ab-wsgi-venv, made on first use.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
APPS=$ROOT/bench/wsgi
VENV=${VENV:-$ROOT/target/ab-wsgi-venv}
if [ ! -x "$VENV/bin/granian" ]; then
  "${PYO3_PYTHON:-/usr/bin/python3}" -m venv "$VENV" && "$VENV/bin/pip" install -q granian flask ||
    { echo "cannot make the virtualenv $VENV" >&2; exit 1; }
fi
