#!/usr/bin/env python3
"""The benchmark's 20-container stack, written from ONE list for both engines.

    bench/stack.py OUT_DIR BUSYBOX_TAR

writes OUT_DIR/stack/*.yaml (berth: an Image importing BUSYBOX_TAR plus one
Container per entry) and OUT_DIR/compose.yaml (docker-compose: the same
containers on the image `berthbench-busybox`, which bench/run imports from
the same tar). The Image needs the absolute path of that run's tar, so the
files are generated per run rather than kept in the tree; bench/run copies
them into its results directory.

Every container runs a shell that exits at once on SIGTERM, so that stopping
measures the engine, not a grace period. Both sides get the same limits, the
same restart policy and no network.
"""

import json
import os
import sys

BERTH_IMAGE = "bench-busybox"
DOCKER_IMAGE = "berthbench-busybox"
COMPOSE_PROJECT = "berthbench"

# sh is PID 1 in the container: without the trap it would ignore SIGTERM and
# every stop would wait out the grace period.
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]

# The one list: (name, memory MiB, cpus, pids).
CONTAINERS = [(f"bench-{i:02d}", 32 if i % 2 else 16, 0.1, 20) for i in range(1, 21)]

STOP_GRACE_SECONDS = 2


def q(s):
    """A YAML double-quoted scalar (JSON's string syntax is valid YAML)."""
    return json.dumps(s)


def flow_list(items):
    return "[" + ", ".join(q(i) for i in items) + "]"


def berth_image(tar):
    return (
        "apiVersion: berth/v1\n"
        "kind: Image\n"
        "metadata:\n"
        f"  name: {BERTH_IMAGE}\n"
        "spec:\n"
        f"  import: {q(tar)}\n"
    )


def berth_container(name, mem, cpus, pids):
    return (
        "apiVersion: berth/v1\n"
        "kind: Container\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  labels: {app: berthbench}\n"
        "spec:\n"
        f"  image: {BERTH_IMAGE}\n"
        f"  command: {flow_list(COMMAND)}\n"
        f"  resources: {{memory: {mem}Mi, cpus: {cpus}, pids: {pids}}}\n"
        "  restartPolicy: always\n"
        f"  stopGracePeriod: {STOP_GRACE_SECONDS}s\n"
    )


def compose():
    # Format 2.4: the last one whose resource keys (mem_limit, cpus,
    # pids_limit) docker-compose honours outside swarm.
    out = ['version: "2.4"', "services:"]
    for name, mem, cpus, pids in CONTAINERS:
        out += [
            f"  {name}:",
            f"    image: {DOCKER_IMAGE}",
            f"    command: {flow_list(COMMAND)}",
            "    network_mode: none",
            f"    mem_limit: {mem}m",
            f"    cpus: {cpus}",
            f"    pids_limit: {pids}",
            "    restart: always",
            f"    stop_grace_period: {STOP_GRACE_SECONDS}s",
            "    labels: {app: berthbench}",
        ]
    return "\n".join(out) + "\n"


def write(out_dir, tar):
    stack = os.path.join(out_dir, "stack")
    os.makedirs(stack, exist_ok=True)
    with open(os.path.join(stack, "00-image.yaml"), "w") as f:
        f.write(berth_image(os.path.abspath(tar)))
    for entry in CONTAINERS:
        with open(os.path.join(stack, f"{entry[0]}.yaml"), "w") as f:
            f.write(berth_container(*entry))
    with open(os.path.join(out_dir, "compose.yaml"), "w") as f:
        f.write(compose())
    return stack, os.path.join(out_dir, "compose.yaml")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR BUSYBOX_TAR")
    for path in write(sys.argv[1], sys.argv[2]):
        print(path)
