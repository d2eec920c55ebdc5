"""docker-py (PyPI `docker`) against berth's Docker socket: containers,
images (build, tag, push, pull), networks and volumes. Each step asserts
on what it got; the last line printed is OK. Run by tests/docker_py.rs
with BERTH_DOCKER_SOCK (the socket) and REGISTRY (a loopback registry's
host:port)."""

import io
import os
import sys
import tarfile
import time

import docker

client = docker.DockerClient(base_url="unix://" + os.environ["BERTH_DOCKER_SOCK"], version="auto")
registry = os.environ["REGISTRY"]
IMAGE = "busybox:latest"


def step(name):
    print("step:", name, flush=True)


def until(what, check, seconds=30):
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.1)


step("ping and version")
assert client.ping() is True
assert client.version()["ApiVersion"] == "1.47", client.version()

step("run, attached, removed")
out = client.containers.run(IMAGE, ["echo", "hello-py"], remove=True)
assert out == b"hello-py\n", out
assert not client.containers.list(all=True, filters={"ancestor": IMAGE}), "run --rm left a container"

step("run detached, exec_run, logs")
c = client.containers.run(IMAGE, ["sh", "-c", "echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done"],
                          detach=True, name="py-detached", labels={"from": "docker-py"})
c.reload()
assert c.status == "running", c.status
assert c.name == "py-detached" and c.labels.get("from") == "docker-py", (c.name, c.labels)
assert [x.id for x in client.containers.list(filters={"label": "from=docker-py"})] == [c.id]
r = c.exec_run(["sh", "-c", "echo $((6*7))"])
assert (r.exit_code, r.output) == (0, b"42\n"), r
r = c.exec_run(["sh", "-c", "echo err >&2; exit 3"])
assert r.exit_code == 3, r
until("the first log line", lambda: b"started" in c.logs())
assert c.logs(stdout=True, stderr=False) == b"started\n", c.logs()

step("stop, wait, remove")
# No timeout: berth refuses a `t` other than the container's grace period.
c.stop()
assert c.wait()["StatusCode"] == 0
c.remove()
assert "py-detached" not in [x.name for x in client.containers.list(all=True)]
c = client.containers.run(IMAGE, ["sh", "-c", "exit 5"], detach=True)
assert c.wait()["StatusCode"] == 5
c.remove(force=True)

step("build from a small context")
ctx = io.BytesIO()
with tarfile.open(fileobj=ctx, mode="w") as t:
    for name, data in [("Dockerfile", b"FROM busybox:latest\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n"),
                       ("hello.txt", b"built-by-docker-py\n")]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
ctx.seek(0)
image, logs = client.images.build(fileobj=ctx, custom_context=True, tag="py-built:1", rm=True)
assert any("Successfully built" in (l.get("stream") or "") for l in logs), list(logs)
assert "py-built:1" in image.tags, image.tags
assert client.containers.run("py-built:1", remove=True) == b"built-by-docker-py\n"

step("tag, push to the registry, remove, pull back")
repo = f"{registry}/py/built"
assert image.tag(repo, "1")
lines = list(client.images.push(repo, tag="1", stream=True, decode=True))
assert not [l for l in lines if "error" in l], lines
assert any("digest" in (l.get("status") or "") for l in lines), lines
client.images.remove(f"{repo}:1")
assert f"{repo}:1" not in [t for i in client.images.list() for t in i.tags]
pulled = client.images.pull(repo, tag="1")
assert f"{repo}:1" in pulled.tags, pulled.tags
assert client.containers.run(f"{repo}:1", remove=True) == b"built-by-docker-py\n"
client.images.remove(f"{repo}:1")
client.images.remove("py-built:1")

step("networks: create, a container on it answers by name, remove")
net = client.networks.create("py-net", driver="bridge", labels={"from": "docker-py"})
assert client.networks.get("py-net").attrs["Labels"].get("from") == "docker-py"
server = client.containers.run(IMAGE, ["sh", "-c", "trap 'exit 0' TERM; while true; do echo pong | nc -l -p 7000; done"],
                               detach=True, name="py-server", network="py-net")
net.reload()
assert server.id in [x.id for x in net.containers], net.containers
out = client.containers.run(IMAGE, ["sh", "-c", "for i in $(seq 100); do nc -w 2 py-server 7000 </dev/null && break; sleep 0.1; done"],
                            network="py-net", remove=True)
assert b"pong" in out, out
server.remove(force=True)
net.remove()
assert "py-net" not in [n.name for n in client.networks.list()]

step("volumes: create, written by one container, read by another, remove")
vol = client.volumes.create("py-vol", labels={"from": "docker-py"})
assert client.volumes.get("py-vol").attrs["Labels"].get("from") == "docker-py"
# `mounts`, not `volumes`: docker-py's `volumes` also sends Config.Volumes,
# which berth refuses by name (anonymous volumes are not served yet).
rw = [docker.types.Mount("/data", "py-vol", type="volume")]
ro = [docker.types.Mount("/data", "py-vol", type="volume", read_only=True)]
client.containers.run(IMAGE, ["sh", "-c", "echo kept > /data/f"], mounts=rw, remove=True)
out = client.containers.run(IMAGE, ["cat", "/data/f"], mounts=ro, remove=True)
assert out == b"kept\n", out
vol.remove()
assert "py-vol" not in [v.name for v in client.volumes.list()]

step("errors are docker-py's exceptions")
try:
    client.containers.get("no-such-container")
    sys.exit("get of a missing container did not raise")
except docker.errors.NotFound:
    pass
try:
    client.images.get("no-such-image:1")
    sys.exit("get of a missing image did not raise")
except docker.errors.ImageNotFound:
    pass

print("OK")
