#!/usr/bin/env bash
# Installs what berth needs to build, test and run its examples on Debian.
set -euo pipefail
need=()
for pkg in busybox-static libseccomp-dev pkg-config iproute2 procps file docker-registry skopeo umoci gcc libc6-dev attr docker-compose podman; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Docker's own default seccomp profile, which a unit test checks berth's
# filter against: only that file, taken from Debian's Docker source package
# (installing the package would pull in hundreds of Go source packages).
profile=/var/cache/berth-test/docker-seccomp-default.json
if [ ! -s "$profile" ]; then
  echo "fetching Docker's default seccomp profile (golang-github-docker-docker-dev)"
  mkdir -p "$(dirname "$profile")"
  dl=$(mktemp -d)
  (cd "$dl" && { apt-get download -qq golang-github-docker-docker-dev 2>/dev/null \
    || { apt-get update -qq && apt-get download -qq golang-github-docker-docker-dev; }; })
  dpkg-deb --fsys-tarfile "$dl"/golang-github-docker-docker-dev_*.deb \
    | tar -xO ./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json > "$profile.tmp"
  mv "$profile.tmp" "$profile"
  rm -rf "$dl"
fi

# docker-py (PyPI's `docker` package), which tests/docker_py.rs drives
# berth's Docker socket with: in a venv of its own, so that the system's
# python3-docker (docker-compose's, an older major) is left alone.
venv=/var/cache/berth-test/docker-py
if ! "$venv/bin/python" -c 'import docker' >/dev/null 2>&1; then
  echo "installing docker-py into $venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'docker>=7,<8'
fi

# Subordinate ids for `--userns=auto` (as podman, the `containers` user's
# entry): the range podman's documentation suggests, added once.
for f in /etc/subuid /etc/subgid; do
  grep -q '^containers:' "$f" 2>/dev/null || echo 'containers:2147483647:2147483648' >> "$f"
done
