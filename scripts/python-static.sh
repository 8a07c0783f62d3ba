#!/usr/bin/env bash
# Prints the environment that links the Python interpreter statically into what cargo
# builds (the `python` feature), for `eval`:
#
#   eval "$(scripts/python-static.sh)"            # the interpreter: $PYO3_PYTHON or python3
#   cargo build --release --features cli,python --bin towergate
#   # the program: target/<host triple>/release/towergate
#
# Why: a distribution's libpython3.X.so is compiled as position-independent code for a
# shared library, and Python code runs measurably slower in it than in the distribution's
# own `python3` executable, which links the interpreter statically and without
# position-independent code (Debian's does; see BENCHMARKS.md). Linking the same static
# library (`libpython3.X.a`, from the python3.X-dev package on Debian) into a non-PIE Rust
# program gives it that speed for most code (a Flask request through its test client:
# 193-216 us in both), though not all: `sum(range(3000))` ran 1.4x slower than in
# /usr/bin/python3 (Debian 12), whose build is optimized further than the library's
# (BENCHMARKS.md, 2026-12-02).
#
# What it sets:
# - PYO3_CONFIG_FILE: a PyO3 build configuration (written under target/python-static/)
#   naming the static library, so PyO3 links it instead of the shared one;
# - CARGO_BUILD_TARGET: the host triple, so that RUSTFLAGS reach the program and not the
#   build scripts and proc-macros;
# - RUSTFLAGS (appended to any already set): `-C relocation-model=static` (a non-PIE
#   program, as the library needs), `-Wl,--export-dynamic`, so that extension
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

# The non-PIC library: position-independent code is what makes libpython3.X.so slow, so
# the PIC archive (libpython3.X-pic.a) gains little. It links only into a non-PIE program:
# relocation-model=static, applied to the target alone (CARGO_BUILD_TARGET), since build
# scripts and proc-macros must stay position-independent.
lib="python$ldversion"
if [ ! -f "$libpl/lib$lib.a" ]; then
  echo "python-static.sh: no static libpython in $libpl (on Debian: apt install python$version-dev)" >&2
  exit 1
fi
target=$(rustc -vV | sed -n 's/^host: //p')

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

flags="-C relocation-model=static -C link-arg=-Wl,--export-dynamic"
for l in $libs; do
  flags+=" -C link-arg=$l"
done
printf 'export PYO3_CONFIG_FILE=%q\n' "$dir/pyo3.cfg"
printf 'export RUSTFLAGS=%q\n' "${RUSTFLAGS:+$RUSTFLAGS }$flags"
printf 'export CARGO_BUILD_TARGET=%q\n' "$target"
