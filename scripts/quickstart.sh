#!/usr/bin/env bash
# Installs what is missing, builds berth, makes the busybox image the example
# stack imports, applies examples/manifests/hello/ and shows the result.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: berth manages namespaces and cgroups" >&2; exit 1; }
scripts/install-deps.sh
cargo build --release
scripts/busybox-rootfs.sh /opt/berth/images/busybox.tar
install -m 0755 target/release/berth target/release/berthd /usr/local/bin/
berth apply -f examples/manifests/hello/ --wait --timeout 60s
berth get -o wide
echo "hello-web is published on http://127.0.0.1:18080/counter (hostIp 127.0.0.1 only); berth logs hello-client shows it answering by name"
