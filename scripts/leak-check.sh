#!/usr/bin/env bash
# Fails if the test suite left anything behind: mounts (netns too), cgroups,
# processes, links (bridges and veths carry a `berth-…` alias, which
# `ip -o link` prints) or nft tables of berth test environments.
set -u
fail=0
report() { echo "LEAK: $*" >&2; fail=1; }

mounts=$(grep -E '/tmp/berth-test-|berth-shim' /proc/self/mountinfo || true)
[ -n "$mounts" ] && report "mounts:"$'\n'"$mounts"

# berth's network namespaces are nsfs mounts under its run dirs.
netns=$(awk '$0 ~ / - nsfs / && $5 ~ /berth/ {print $5}' /proc/self/mountinfo || true)
[ -n "$netns" ] && report "netns mounts:"$'\n'"$netns"

cgroups=$(find /sys/fs/cgroup -maxdepth 2 -type d -name 'berth-*' 2>/dev/null || true)
[ -n "$cgroups" ] && report "cgroups:"$'\n'"$cgroups"

procs=$(ps -eo pid,args | grep -E 'berth-shim|berth-exec|berth-zygote|/tmp/berth-test-' | grep -v grep || true)
[ -n "$procs" ] && report "processes:"$'\n'"$procs"

dirs=$(ls -d /tmp/berth-test-* 2>/dev/null || true)
[ -n "$dirs" ] && report "test dirs:"$'\n'"$dirs"

if command -v ip >/dev/null; then
  links=$(ip -o link show 2>/dev/null | grep -E 'berth' || true)
  [ -n "$links" ] && report "links:"$'\n'"$links"
fi
if command -v nft >/dev/null; then
  tables=$(nft list tables 2>/dev/null | grep -E 'berth' || true)
  [ -n "$tables" ] && report "nft tables:"$'\n'"$tables"
fi

[ $fail = 0 ] && echo "leak check: clean (mounts, netns, cgroups, processes, dirs, links, nft tables)"
exit $fail
