"""Test images for the pull and layered-run benchmarks, and the loopback
registry they are pulled from.

- A real Debian root filesystem (mmdebstrap, about 200 MB) split into
  several layers by directory, as an OCI layout: built once and cached under
  /var/cache/berthbench, since mmdebstrap needs the Debian mirror and half a
  minute.
- A 20-layer image from the static busybox: the first layer is the busybox
  root, each further one adds a small file, so a container's rootfs is an
  overlay of 20 lower dirs (the mount cost shows).
- A Debian `docker-registry` on a free loopback port, its storage in the
  benchmark's work dir, into which skopeo pushes both.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time

CACHE = "/var/cache/berthbench"
DEBIAN_SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Layers of the Debian image, by path prefix (first match wins); everything
# else, and every directory, goes into the base layer.
DEBIAN_SPLIT = [
    "usr/lib/x86_64-linux-gnu/",
    "usr/lib/python3",
    "usr/share/",
    "usr/bin/",
    "var/",
    "usr/sbin/",
]


def _blob(layout, data, media_type):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    if not os.path.exists(path):
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.rename(path + ".tmp", path)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _layer_bytes(members, source):
    """A tar of `members` (TarInfo from `source`), and its gzip."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as out:
        for m in members:
            out.addfile(m, source.extractfile(m) if m.isreg() else None)
    plain = raw.getvalue()
    return plain, gzip.compress(plain, compresslevel=6, mtime=0)


def _write_layout(layout, tag, layers, config_extra):
    """An OCI layout at `layout` with one image `tag` of `layers` (a list of
    (uncompressed tar, gzip) bytes)."""
    shutil.rmtree(layout, ignore_errors=True)
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    descriptors, diff_ids = [], []
    for plain, gz in layers:
        descriptors.append(_blob(layout, gz, "application/vnd.oci.image.layer.v1.tar+gzip"))
        diff_ids.append("sha256:" + hashlib.sha256(plain).hexdigest())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], **config_extra},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"bench layer {i}"} for i in range(len(layers))],
    }
    config_desc = _blob(layout, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": descriptors}
    manifest_desc = _blob(layout, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [manifest_desc]}, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return sum(len(gz) for _, gz in layers), sum(len(plain) for plain, _ in layers)


def debian_layout(log, sh):
    """The cached multi-layer Debian image: (layout dir, tag, layer count,
    compressed bytes, unpacked bytes)."""
    layout = os.path.join(CACHE, "debian-oci")
    stamp = os.path.join(layout, "bench.json")
    if os.path.exists(stamp):
        with open(stamp) as f:
            s = json.load(f)
        return layout, s["tag"], s["layers"], s["compressed"], s["unpacked"]
    os.makedirs(CACHE, exist_ok=True)
    rootfs_tar = os.path.join(CACHE, "debian.tar")
    if not os.path.exists(rootfs_tar):
        log(f"mmdebstrap {DEBIAN_SUITE} (once; cached in {CACHE})")
        # What an interrupted (or older, directory-making) run left there.
        tmp = rootfs_tar + ".tmp"
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            with open("/proc/self/mountinfo") as f:
                mounted = [line.split()[4] for line in f if line.split()[4].startswith(tmp + "/")]
            if mounted:
                # Never rm -rf through a mount (an interrupted chroot's /proc, /dev).
                raise RuntimeError(f"{tmp} has mounts under it ({', '.join(mounted)}): unmount them and remove it")
            shutil.rmtree(tmp)
        elif os.path.lexists(tmp):
            os.remove(tmp)
        # mmdebstrap picks its output format from the target's name, and
        # ".tmp" is no tar extension (it made a directory): say tar.
        sh(["mmdebstrap", "--variant=apt", "--format=tar", "--include=python3-minimal,curl", DEBIAN_SUITE,
            tmp, MIRROR], timeout=1200)
        os.rename(tmp, rootfs_tar)
    log("splitting the Debian root into layers (once)")
    groups = [[] for _ in range(len(DEBIAN_SPLIT) + 1)]
    where = {}
    with tarfile.open(rootfs_tar) as src:
        members = src.getmembers()
        for m in members:
            name = m.name.lstrip("./")
            if m.islnk():
                # A hardlink lives in its target's layer.
                i = where.get(m.linkname.lstrip("./"), 0)
            elif m.isdir():
                i = 0
            else:
                i = next((k + 1 for k, p in enumerate(DEBIAN_SPLIT) if name.startswith(p)), 0)
            where[name] = i
            groups[i].append(m)
        layers = [_layer_bytes(g, src) for g in groups if g]
    compressed, unpacked = _write_layout(layout, "v1", layers, {"Cmd": ["/bin/bash"]})
    with open(stamp, "w") as f:
        json.dump({"tag": "v1", "layers": len(layers), "compressed": compressed, "unpacked": unpacked}, f)
    return layout, "v1", len(layers), compressed, unpacked


def many_layers_layout(work, busybox_tar, count=20):
    """A `count`-layer busybox image in `work`: (layout dir, tag)."""
    layout = os.path.join(work, "layers-oci")
    with tarfile.open(busybox_tar) as src:
        layers = [_layer_bytes(src.getmembers(), src)]
    for i in range(1, count):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as out:
            data = f"layer {i}\n".encode()
            info = tarfile.TarInfo(f"etc/layer-{i:02d}")
            info.size = len(data)
            info.mode = 0o644
            out.addfile(info, io.BytesIO(data))
        plain = raw.getvalue()
        layers.append((plain, gzip.compress(plain, mtime=0)))
    _write_layout(layout, "v1", layers, {"Cmd": ["/bin/sh"]})
    return layout, "v1"


class Registry:
    """Debian's docker-registry on a free loopback port, storage under `work`."""

    def __init__(self, work, log_path):
        self.dir = os.path.join(work, "registry")
        os.makedirs(os.path.join(self.dir, "storage"), exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog: {{level: error}}\n"
                    f"storage: {{filesystem: {{rootdirectory: {self.dir}/storage}}, delete: {{enabled: true}}}}\n"
                    f"http: {{addr: 127.0.0.1:{self.port}}}\n")
        with open(log_path, "w") as logf:
            self.child = subprocess.Popen(["docker-registry", "serve", config], stdin=subprocess.DEVNULL,
                                          stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.child.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"docker-registry did not come up (see {log_path})")
                time.sleep(0.05)
        self.host = f"127.0.0.1:{self.port}"

    def push(self, sh, layout, tag, repo):
        ref = f"{self.host}/{repo}:{tag}"
        sh(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{ref}"],
           timeout=600)
        return ref

    def stop(self):
        self.child.terminate()
        try:
            self.child.wait(10)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
