#!/usr/bin/env bash
# Makes a root filesystem tar from Debian's static busybox: /bin/busybox, a
# symlink per applet, and the directories a container expects.
# Usage: scripts/busybox-rootfs.sh OUT.tar
set -euo pipefail
out=${1:?usage: $0 OUT.tar}
bb=/bin/busybox
[ -x "$bb" ] || { echo "missing $bb: apt-get install busybox-static" >&2; exit 1; }
file -L "$bb" 2>/dev/null | grep -q 'statically linked' || ldd "$bb" 2>&1 | grep -q 'not a dynamic' \
  || { echo "$bb is not static: apt-get install busybox-static" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var,www,data}
chmod 1777 "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/etc/passwd"
echo 'root:x:0:' > "$dir/etc/group"
echo '<h1>hello from berth</h1>' > "$dir/www/index.html"
mkdir -p "$(dirname "$out")"
# Sorted, fixed mtimes and owners: the same busybox gives the same digest.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir" -cf "$out.tmp" .
mv "$out.tmp" "$out"
