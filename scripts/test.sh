#!/usr/bin/env bash
# Runs every test: unit tests, the root-only tests against the real kernel,
# the schema check, then the leak check. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the tests drive real containers" >&2; exit 1; }
scripts/install-deps.sh
cargo build --all-targets
status=0
cargo test --all-targets -- --test-threads=4 || status=$?
scripts/leak-check.sh || status=1
exit $status
