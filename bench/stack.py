#!/usr/bin/env python3
"""The benchmark's N-container stacks, written from ONE list for both engines.

    bench/stack.py OUT_DIR BUSYBOX_TAR [N]

writes OUT_DIR/stack/*.yaml (berth: an Image importing BUSYBOX_TAR plus one
Container per entry) and OUT_DIR/compose.yaml (docker-compose: the same
containers on the image `berthbench-busybox`, which bench/run imports from
the same tar), N containers (20 by default). The Image needs the absolute
path of that run's tar, so the files are generated per run rather than kept
in the tree; bench/run copies them into its results directory.

For the "one container changed" step it also writes two variants of the
first container, OUT_DIR/changed/{a,b}.yaml and compose-{a,b}.yaml, which
differ from the stack and from each other only in that container's env:
copying one over the stack's file changes exactly one container.

Every container runs a shell that exits at once on SIGTERM, so that stopping
measures the engine, not a grace period. Both sides get the same limits, the
same restart policy and no network.
"""

import json
import os
import sys

BERTH_IMAGE = "bench-busybox"
DOCKER_IMAGE = "berthbench-busybox"
COMPOSE_PROJECT = "berthbench"  # bench/run adds -N: one project per stack size

# sh is PID 1 in the container: without the trap it would ignore SIGTERM and
# every stop would wait out the grace period.
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def containers(n=20):
    """The one list: (name, memory MiB, cpus, pids) for a stack of n.
    Names carry n (bench200-001), so two stack sizes never share a name."""
    width = len(str(n))
    return [(f"bench{n}-{i:0{width}d}", 32 if i % 2 else 16, 0.1, 20) for i in range(1, n + 1)]


CONTAINERS = containers(20)

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


def berth_container(name, mem, cpus, pids, env=None):
    return (
        "apiVersion: berth/v1\n"
        "kind: Container\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  labels: {app: berthbench}\n"
        "spec:\n"
        f"  image: {BERTH_IMAGE}\n"
        f"  command: {flow_list(COMMAND)}\n"
        + (f"  env: {{{', '.join(f'{k}: {q(v)}' for k, v in env.items())}}}\n" if env else "")
        + f"  resources: {{memory: {mem}Mi, cpus: {cpus}, pids: {pids}}}\n"
        "  restartPolicy: always\n"
        f"  stopGracePeriod: {STOP_GRACE_SECONDS}s\n"
    )


def compose(entries, changed_env=None):
    """changed_env: an env for the first entry only (the changed variants)."""
    # Format 2.4: the last one whose resource keys (mem_limit, cpus,
    # pids_limit) docker-compose honours outside swarm.
    out = ['version: "2.4"', "services:"]
    for i, (name, mem, cpus, pids) in enumerate(entries):
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
        if changed_env and i == 0:
            out.append(f"    environment: {{{', '.join(f'{k}: {q(v)}' for k, v in changed_env.items())}}}")
    return "\n".join(out) + "\n"


# The env that tells the two changed variants apart.
CHANGED_ENV = {"a": {"BENCH_REV": "a"}, "b": {"BENCH_REV": "b"}}


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def write(out_dir, tar, n=20):
    """Returns the paths bench/run needs: stack dir, compose file, the changed
    container's file in the stack, and its variants for berth and compose."""
    entries = containers(n)
    stack = os.path.join(out_dir, "stack")
    changed = os.path.join(out_dir, "changed")
    os.makedirs(stack, exist_ok=True)
    os.makedirs(changed, exist_ok=True)
    _write(os.path.join(stack, "00-image.yaml"), berth_image(os.path.abspath(tar)))
    for entry in entries:
        _write(os.path.join(stack, f"{entry[0]}.yaml"), berth_container(*entry))
    compose_file = os.path.join(out_dir, "compose.yaml")
    _write(compose_file, compose(entries))
    variants, compose_variants = {}, {}
    for v, env in CHANGED_ENV.items():
        variants[v] = os.path.join(changed, f"{v}.yaml")
        _write(variants[v], berth_container(*entries[0], env=env))
        compose_variants[v] = os.path.join(changed, f"compose-{v}.yaml")
        _write(compose_variants[v], compose(entries, changed_env=env))
    return {
        "stack": stack,
        "compose": compose_file,
        "names": [e[0] for e in entries],
        "changed_name": entries[0][0],
        "changed_file": os.path.join(stack, f"{entries[0][0]}.yaml"),
        "variants": variants,
        "compose_variants": compose_variants,
    }


NETWORK = "scale"
NETWORK_SUBNET = "10.231.0.0/20"  # room for 4000 addresses


def write_network(out_dir, tar, n):
    """The scale stack (issue 23): n containers on ONE bridge network, so
    every start touches every peer's /etc/hosts and the network's DNS
    records. berth: OUT_DIR/net/*.yaml; docker-compose: OUT_DIR/compose-net.yaml
    (the project's default network, Docker's embedded DNS)."""
    width = len(str(n))
    names = [f"net{n}-{i:0{width}d}" for i in range(1, n + 1)]
    stack = os.path.join(out_dir, "net")
    os.makedirs(stack, exist_ok=True)
    _write(os.path.join(stack, "00-image.yaml"), berth_image(os.path.abspath(tar)) +
           f"---\napiVersion: berth/v1\nkind: Network\nmetadata:\n  name: {NETWORK}\n"
           f"spec: {{subnet: {NETWORK_SUBNET}}}\n")
    for name in names:
        _write(os.path.join(stack, f"{name}.yaml"), (
            "apiVersion: berth/v1\nkind: Container\nmetadata:\n"
            f"  name: {name}\n  labels: {{app: berthbench}}\nspec:\n  image: {BERTH_IMAGE}\n"
            f"  command: {flow_list(COMMAND)}\n  networks: [{NETWORK}]\n  restartPolicy: always\n"
            f"  stopGracePeriod: {STOP_GRACE_SECONDS}s\n"))
    compose_file = os.path.join(out_dir, "compose-net.yaml")
    lines = ['version: "2.4"', "services:"]
    for name in names:
        lines += [f"  {name}:", f"    image: {DOCKER_IMAGE}", f"    command: {flow_list(COMMAND)}",
                  "    restart: always", f"    stop_grace_period: {STOP_GRACE_SECONDS}s"]
    _write(compose_file, "\n".join(lines) + "\n")
    return {"stack": stack, "compose": compose_file, "names": names}


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR BUSYBOX_TAR [N]")
    made = write(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 20)
    for path in (made["stack"], made["compose"]):
        print(path)
