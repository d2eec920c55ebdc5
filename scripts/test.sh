#!/usr/bin/env bash
# Runs every test: unit tests (also once as an unprivileged user, since they
# must need no root), the root-only tests against the real kernel, the schema
# check, then the leak check. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the tests drive real containers" >&2; exit 1; }
scripts/install-deps.sh
cargo build --all-targets
status=0
# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo test --all-targets --no-fail-fast -- --test-threads=4 || status=$?
# The unit tests (reconcile decisions over the fake host among them) must
# pass without root: run the same test binary as `nobody`.
lib_test=$(cargo test --lib --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | head -1)
if [ -n "$lib_test" ]; then
  unprivileged=$(mktemp -d)
  cp "$lib_test" "$unprivileged/unit-tests"
  chmod -R a+rx "$unprivileged"
  (cd "$unprivileged" && runuser -u nobody -- ./unit-tests -q) || status=1
  rm -rf "$unprivileged"
else
  echo "cannot find the unit test binary" >&2
  status=1
fi
scripts/leak-check.sh || status=1
exit $status
