#!/usr/bin/env bash
# The test command: installs what the tests need (lighttpd, nginx + fcgiwrap, apache2 with
# mod_fcgid, spawn-fcgi, Perl, Python, cargo-nextest), builds the example and CLI binaries
# the integration tests execute, and runs every test, doctests included.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v lighttpd >/dev/null 2>&1 || need_apt+=(lighttpd)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v fcgiwrap >/dev/null 2>&1 || [ -x /usr/sbin/fcgiwrap ] || need_apt+=(fcgiwrap)
[ -x /usr/sbin/apache2 ] || need_apt+=(apache2)
command -v perl >/dev/null 2>&1 || need_apt+=(perl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The FastCGI client's tests: Debian's php-fpm (php-fpm8.2) and php-cgi.
[ -x /usr/sbin/php-fpm8.2 ] || command -v php-fpm >/dev/null 2>&1 || need_apt+=(php-fpm)
command -v php-cgi >/dev/null 2>&1 || need_apt+=(php-cgi)
# The FastCGI application tests: spawn-fcgi, and Apache's mod_fcgid (mod_proxy_fcgi comes
# with apache2).
command -v spawn-fcgi >/dev/null 2>&1 || need_apt+=(spawn-fcgi)
[ -e /usr/lib/apache2/modules/mod_fcgid.so ] || need_apt+=(libapache2-mod-fcgid)
# The `python` feature embeds Debian's Python: its headers and venv module.
dpkg -s python3-dev >/dev/null 2>&1 || need_apt+=(python3-dev)
dpkg -s python3-venv >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked

# The `python` feature builds against the interpreter it will load (PyO3 picks the first
# python3 on PATH otherwise), and the Python tests use Flask and Django from a virtualenv
# made from that same interpreter, under target/ (see tests/python.rs).
export PYO3_PYTHON="${PYO3_PYTHON:-/usr/bin/python3}"
venv="${TOWERGATE_PYTHON_VENV:-target/python-venv}"
if ! "$venv/bin/python" -c 'import flask, django' >/dev/null 2>&1; then
  "$PYO3_PYTHON" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check flask django
fi

cargo build --all-features --examples --bins
cargo nextest run --all-features --no-fail-fast
cargo test --all-features --doc
