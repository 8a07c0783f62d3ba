#!/usr/bin/env bash
# Prints the environment that links the Python interpreter statically into what cargo
# builds (the `python` feature), for `eval`:
#
#   eval "$(scripts/python-static.sh)"            # the interpreter: $PYO3_PYTHON or python3
#   cargo build --release --features cli,python --bin towergate
#
# Why: a distribution's libpython3.X.so is compiled as position-independent code for a
# shared library, and Python code runs measurably slower in it than in the distribution's
# own `python3` executable, which links the interpreter statically (Debian's does; see
# BENCHMARKS.md). Linking the same static library (`libpython3.X-pic.a`, from the
# python3.X-dev package on Debian) into the Rust program gives it that speed.
#
# What it sets:
# - PYO3_CONFIG_FILE: a PyO3 build configuration (written under target/python-static/)
#   naming the static library, so PyO3 links it instead of the shared one;
# - RUSTFLAGS (appended to any already set): `-Wl,--export-dynamic`, so that extension
#   modules loaded at run time (the standard library's lib-dynload, C extensions of
#   packages) find the interpreter's symbols in the program, and the libraries the
#   static interpreter needs (sysconfig's MODLIBS and LIBS, for example -lz -lexpat).
#
# Virtualenvs and packages work as with the shared library; the program no longer needs
# libpython3.X.so at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${1:-${PYO3_PYTHON:-python3}}
read -r version libpl ldversion <<<"$("$python" -c '
import sysconfig as s
print(s.get_config_var("py_version_short"), s.get_config_var("LIBPL"), s.get_config_var("LDVERSION"))')"
libs=$("$python" -c '
import sysconfig as s
print(" ".join(dict.fromkeys(((s.get_config_var("MODLIBS") or "") + " " + (s.get_config_var("LIBS") or "")).split())))')

lib="python$ldversion-pic"
if [ ! -f "$libpl/lib$lib.a" ]; then
  lib="python$ldversion"
  if [ ! -f "$libpl/lib$lib.a" ]; then
    echo "python-static.sh: no static libpython in $libpl (on Debian: apt install python$version-dev)" >&2
    exit 1
  fi
  # A non-PIC library links only into a non-PIE program.
  echo "python-static.sh: $libpl has no lib$lib-pic.a; linking the non-PIC library needs RUSTFLAGS=-Crelocation-model=static and --target" >&2
  exit 1
fi

dir=$PWD/target/python-static
mkdir -p "$dir"
cat >"$dir/pyo3.cfg" <<CFG
implementation=CPython
version=$version
shared=false
abi3=false
lib_name=$lib
lib_dir=$libpl
executable=$(command -v "$python")
pointer_width=64
build_flags=
suppress_build_script_link_lines=false
CFG

flags="-C link-arg=-Wl,--export-dynamic"
for l in $libs; do
  flags+=" -C link-arg=$l"
done
printf 'export PYO3_CONFIG_FILE=%q\n' "$dir/pyo3.cfg"
printf 'export RUSTFLAGS=%q\n' "${RUSTFLAGS:+$RUSTFLAGS }$flags"
