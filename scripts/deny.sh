#!/usr/bin/env bash
# `cargo deny check` with the policy in deny.toml. Licences, bans and sources are checked
# always. The advisory check needs the RustSec database, which is fetched from GitHub: where
# that cannot be reached (an offline CI machine) a local copy is used if there is one, and
# otherwise the check is skipped with a notice rather than failing on the network.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo deny check bans licenses sources
if cargo deny fetch db >/dev/null 2>&1; then
  cargo deny check advisories
elif compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/*/crates" >/dev/null; then
  cargo deny check --disable-fetch advisories
else
  echo "deny.sh: advisory database unreachable and no local copy: advisories not checked"
fi
