#!/usr/bin/env bash
# Installs what berth needs to build, test and run its examples on Debian.
set -euo pipefail
need=()
for pkg in busybox-static libseccomp-dev pkg-config iproute2 procps file docker-registry skopeo umoci gcc libc6-dev attr; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
