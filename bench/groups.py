"""The groups of measurements `--only` picks from (run, stacks, images,
exec, net) and the quick run (mixed into bench/run's Bench)."""

import json
import os
import shlex
import shutil
import statistics
import subprocess
import time

import images as imagesdef
import startpath
from common import (IMAGE, LONG_RUNNING, PODMAN_MEM, RUNC_ID, StepFailed, free_subnet, log, processes,
                    sample_memory, settled, sh, tail)

EXEC_NAME = "berthbench-exec"
NET = "berthbench-net"
# Host ports of the published-port rows, one per engine (loopback only).
WEB_PORTS = {"berth": 18091, "docker": 18092, "podman": 18093}
# The DNS row: lookups per measurement, timed inside the container by /proc/uptime.
LOOKUPS = 300


class Groups:
    def wait_until_quiet(self, max_wait=20, idle_share=0.9):
        """Waits until the CPUs were mostly idle over one second (or
        max_wait s): a peer daemon that has just started (dockerd and
        containerd keep busy for a while after they answer) must not slow
        down whichever row is measured next."""
        def sample():
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
            return fields[3] + fields[4], sum(fields)  # idle + iowait, all
        start = time.time()
        while True:
            idle0, total0 = sample()
            time.sleep(1)
            idle1, total1 = sample()
            share = (idle1 - idle0) / max(1, total1 - total0)
            if share >= idle_share or time.time() - start >= max_wait:
                if time.time() - start > 1.5:
                    log(f"waited {time.time() - start:.0f} s for a quiet machine (idle {share:.0%})")
                return

    def measure_all(self):
        m = self.timer.measure
        single = dict(warmup=3, min_runs=20)
        self.wait_until_quiet()  # let the daemons settle before the idle sample
        self.record("rss_idle", "berth", self.berth_step("daemon RSS", lambda: self.daemon_rss("berth")))
        self.record("rss_idle", "docker", self.peer_step("docker", "dockerd RSS", lambda: self.daemon_rss("docker")))

        if "run" in self.only:
            self.wait_until_quiet()
            self.measure_run(m, single)
        if "stacks" in self.only:
            self.wait_until_quiet()
            self.measure_stacks()
        if "scale" in self.only:
            self.wait_until_quiet()
            self.measure_scale()
        if "images" in self.only:
            self.wait_until_quiet()
            self.measure_images(m)
        if "build" in self.only:
            self.wait_until_quiet()
            self.measure_build(m)
        if "exec" in self.only:
            self.wait_until_quiet()
            self.measure_exec(m, single)
        if "net" in self.only:
            self.wait_until_quiet()
            self.measure_net(m, single)
        if "dockerapi" in self.only:
            self.wait_until_quiet()
            self.measure_dockerapi(m, single)

        time.sleep(1)
        self.record("rss_after", "berth", self.berth_step("daemon RSS", lambda: self.daemon_rss("berth")))
        self.record("rss_after", "docker", self.peer_step("docker", "dockerd RSS", lambda: self.daemon_rss("docker")))

    def measure_quick(self):
        """Berth alone, each step once, at small sizes: proves every step still works."""
        m = self.timer.measure
        b = self.berth_cmd
        self.record("rss_idle", "berth", self.berth_step("daemon RSS", lambda: self.daemon_rss("berth", 1)))
        self.record("run", "berth", self.berth_step("berth run --rm", lambda: m(
            "run-berth", "berth run --rm", b("run", "--rm", "--network", "none", "busybox", "/bin/true"))))
        self.berth_step("the start-path profile", lambda: self.measure_startpath(3))
        for n in self.sizes:
            self.berth_step(f"the {n}-container stack", lambda n=n: self.cleared(
                self.stack_berth, n, self.berth_cmd("delete", "-f", self.stacks[n]["stack"])))
        self.measure_scale()
        self.berth_step("the docker CLI and docker-compose on berth's Docker socket",
                        lambda: self.measure_dockerapi(m, {}))
        self.record("rss_after", "berth", self.berth_step("daemon RSS", lambda: self.daemon_rss("berth", 1)))

    def berth_docker(self, cmd):
        """cmd (the docker CLI or docker-compose) against berth's Docker
        socket instead of dockerd's: the same binary, only DOCKER_HOST differs."""
        return ["env", f"DOCKER_HOST=unix://{self.run_dir}/docker.sock", *cmd]

    def measure_dockerapi(self, m, single):
        """Docker's own clients, unchanged, against berth's Docker API and
        against dockerd: `docker run --rm` and a compose stack up and down
        (the smallest size). Quick mode: berth's `docker run` once, when the
        CLI is installed."""
        docker = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
        if not docker:
            log("dockerapi: no docker CLI: skipped")
            return
        # The image as Docker's clients name it, in berth's store too.
        sh(self.berth_cmd("import", self.tar, f"{IMAGE}:latest", "sh"), timeout=120)
        run = [docker, "run", "--rm", "--pull", "never", "--network", "none", IMAGE, "/bin/true"]
        self.record("dapi_run", "berth", self.berth_step("docker run --rm via berth", lambda: m(
            "dapi-run-berth", "docker run --rm (berth's socket)", self.berth_docker(run), **single)))
        self.record("dapi_run", "docker", self.peer_step("docker", "docker run --rm", lambda: m(
            "dapi-run-docker", "docker run --rm (dockerd)", run, **single)))
        exe = shutil.which("docker-compose")
        if not exe:
            log("dockerapi: no docker-compose: compose rows skipped")
            return
        if self.quick:
            # Not yet in the smoke test: `docker-compose down` of this stack
            # through berth's socket exits 0 yet leaves its containers
            # running (seen at 5; see the full run's error).
            return
        n = self.sizes[0]
        # The stacks group's compose file, in a project of its own.
        c = [exe, "-p", f"berthbench-dapi-{n}", "-f", self.stacks[n]["compose"]]
        slow = dict(warmup=1, min_runs=5)

        def side(engine, wrap):
            # Plain `down`: berth refuses a stop timeout other than the
            # service's stop_grace_period (by name), and compose, which then
            # removes only the stopped containers, still exits 0.
            up, down = wrap(c + ["up", "-d"]), wrap(c + ["down"])
            self.on_exit(f"docker-compose down ({engine}'s socket)", lambda: sh(down, check=False, timeout=600))
            if not self.quick:
                sh(up, timeout=900)  # up first, so that the "down" prepared before each timed up finds it
            self.record(f"dapi_up_{n}", engine, m(f"dapi-up{n}-{engine}", f"docker-compose up -d ({n}, {engine})",
                                                   up, prepare=None if self.quick else down, **slow))
            self.record(f"dapi_down_{n}", engine, m(f"dapi-down{n}-{engine}", f"docker-compose down ({n}, {engine})",
                                                     down, prepare=None if self.quick else settled(up), **slow))
        def berth_side():
            side("berth", self.berth_docker)
            project = f"label=com.docker.compose.project=berthbench-dapi-{n}"
            ps = self.berth_docker([docker, "ps", "-a", "--format", "{{.Names}} {{.State}}", "--filter", project])
            # A removal is finished by the reconcile loop after the answer:
            # give it a moment, then whatever is still listed was left behind.
            deadline = time.time() + 20
            while (left := sh(ps).stdout.splitlines()) and time.time() < deadline:
                time.sleep(0.2)
            if left:
                raise StepFailed(f"docker-compose down through berth's socket left {len(left)} container(s): "
                                 f"{', '.join(left)}")
        self.berth_step("docker-compose via berth", berth_side)
        self.peer_step("compose", "docker-compose via dockerd", lambda: side("compose", lambda cmd: cmd))

    def measure_run(self, m, single):
        # One container, four ways, and the kernel's part alone.
        self.record("run", "berth", self.berth_step("berth run --rm", lambda: m(
            "run-berth", "berth run --rm", self.berth_cmd("run", "--rm", "--network", "none", "busybox", "/bin/true"), **single)))
        self.berth_step("the start-path profile", lambda: self.measure_startpath(20))
        self.record("run", "docker", self.peer_step("docker", "docker run --rm", lambda: m(
            "run-docker", "docker run --rm",
            [self.docker, "run", "--rm", "--pull", "never", "--network", "none", IMAGE, "/bin/true"], **single)))
        self.record("run", "podman", self.peer_step("podman", "podman run --rm", lambda: m(
            "run-podman", "podman run --rm", self.podman + self.podman_run + ["--rm", IMAGE, "/bin/true"], **single)))
        self.record("run", "runc", self.peer_step("runc", "runc run", lambda: m(
            "run-runc", "runc run", self.runc_run, **single)))
        self.record("run", "floor", self.peer_step("floor", "unshare + chroot", lambda: m(
            "run-floor", "kernel floor (unshare + chroot)", self.floor_run, **single)))
        # A user namespace of its own (idmapped image layers), against the same run without.
        self.record("run_userns", "berth", self.berth_step("berth run --rm --userns=auto", lambda: m(
            "run-userns-berth", "berth run --rm --userns=auto", self.berth_cmd(
                "run", "--rm", "--userns=auto", "--network", "none", "busybox", "/bin/true"), **single)))
        self.record("run_userns", "podman", self.peer_step("podman", "podman run --rm --userns=auto", lambda: m(
            "run-userns-podman", "podman run --rm --userns=auto",
            self.podman + self.podman_run + ["--userns=auto", "--rm", IMAGE, "/bin/true"], **single)))

    def measure_startpath(self, runs):
        """Where the milliseconds of one `run --rm` go (bench/startpath.py)."""
        cmd = self.berth_cmd("run", "--rm", "--network", "none", "busybox", "/bin/true")
        steps, wall, n = startpath.profile(cmd, self.daemon_log, runs)
        self.startpath = {"command": cmd[1:], "runs": n, "wall_ms": wall, "steps": steps}

    def measure_stacks(self):
        # The N-container stacks (and memory while they run), one size at a
        # time: each step ends with the stack deleted.
        for n in self.sizes:
            self.berth_step(f"the {n}-container stack", lambda n=n: self.cleared(
                self.stack_berth, n, self.berth_cmd("delete", "-f", self.stacks[n]["stack"])))
            self.peer_step("compose", f"the {n}-container stack", lambda n=n: self.cleared(
                self.stack_compose, n, self.compose[n] + ["down", "-t", "5"]))
        # Podman's conmon, for one detached container.
        self.record("rss_shim", "podman", self.peer_step("podman", "conmon RSS", self.conmon_rss))

    def measure_scale(self):
        # Issue 23: N containers on ONE bridge network (every start updates
        # every peer's /etc/hosts and the network's DNS records), berth at
        # each size, docker-compose (its project network, embedded DNS) at the
        # smaller one only.
        for n in self.scale_sizes:
            st = self.net_stacks[n]
            self.berth_step(f"{n} containers on one network", lambda n=n, st=st: self.cleared(
                self.scale_berth, n, self.berth_cmd("delete", "-f", st["stack"])))
            if n in self.compose_net_sizes():
                self.peer_step("compose", f"{n} containers on one network", lambda n=n: self.cleared(
                    self.scale_compose, n, self.compose_net[n] + ["down", "-t", "5"]))

    def compose_net_sizes(self):
        return set(getattr(self, "compose_net", {}))

    def scale_berth(self, n):
        """One timed apply --wait, the no-op re-apply, RSS, one timed delete,
        and the leak check of this network's kernel objects."""
        st = self.net_stacks[n]
        apply_wait = self.berth_cmd("apply", "-f", st["stack"], "--wait")
        apply = self.berth_cmd("apply", "-f", st["stack"])
        delete = self.berth_cmd("delete", "-f", st["stack"])
        # A 1000-container apply takes long enough that one run is the measure.
        once = dict(warmup=0, min_runs=1)
        self.record(f"netapply_{n}", "berth", self.timer.measure(
            f"netapply{n}-berth", f"berth apply --wait ({n} on one network)", apply_wait, **once))
        out = sh(apply).stdout
        if "no changes" not in out:
            raise StepFailed(f"re-applying the unchanged one-network stack of {n} changed things: {tail(out)}")
        self.record(f"netnoop_{n}", "berth", self.timer.measure(
            f"netnoop{n}-berth", f"berth apply (no-op, {n} on one network)", apply, warmup=1, min_runs=5))
        time.sleep(0.5 if self.quick else 2)
        shims = len(self.berth_shims())
        if shims != n:
            raise StepFailed(f"{shims} berth shims run, expected {n}")
        self.record(f"netrss_{n}", "berth", self.daemon_rss("berth", 1 if self.quick else 3))
        self.record(f"netdelete_{n}", "berth", self.timer.measure(
            f"netdelete{n}-berth", f"berth delete ({n} on one network)", delete, **once))
        left = self.berth_shims()
        if left:
            raise StepFailed(f"{len(left)} shims still run after delete")
        netns = [line for line in open("/proc/self/mountinfo") if os.path.join(self.run_dir, "net") in line]
        if netns:
            raise StepFailed(f"{len(netns)} network-namespace mounts left after deleting {n}")

    def scale_compose(self, n):
        c = self.compose_net[n]
        up, down = c + ["up", "-d"], c + ["down"]
        once = dict(warmup=0, min_runs=1)
        self.record(f"netapply_{n}", "compose", self.timer.measure(
            f"netapply{n}-compose", f"docker-compose up -d ({n} on one network)", up, **once))
        self.record(f"netnoop_{n}", "compose", self.timer.measure(
            f"netnoop{n}-compose", f"docker-compose up -d (no-op, {n} on one network)", up, warmup=0, min_runs=3))
        time.sleep(2)
        self.record(f"netrss_{n}", "docker", self.daemon_rss("docker"))
        self.record(f"netdelete_{n}", "compose", self.timer.measure(
            f"netdelete{n}-compose", f"docker-compose down ({n} on one network)", down, **once))

    @staticmethod
    def cleared(step, n, remove):
        """step(n); when it fails half-way, its stack is removed before the
        next size is applied (both sizes share the berth Image)."""
        try:
            return step(n)
        except StepFailed:
            sh(remove, check=False, timeout=600)
            raise

    @staticmethod
    def flip(dest, variants, pause=0.5):
        """A command that copies whichever of the two variants dest is not
        (the first when it is neither), so every run changes exactly one
        container; then a pause, so the container replaced last time has its
        TERM trap before it is stopped again (see settled())."""
        a, b = (shlex.quote(variants[v]) for v in ("a", "b"))
        d = shlex.quote(dest)
        return ["sh", "-c", f"if cmp -s {a} {d}; then cp {b} {d}; else cp {a} {d}; fi && sleep {pause}"]

    def berth_containers(self, names):
        """{name: (pid, created, status)} of these containers, from `berth get -o json`
        (whose keys may be snake_case or camelCase)."""
        views = json.loads(sh(self.berth_cmd("get", "-o", "json")).stdout or "[]")
        want = set(names)
        out = {}
        for v in views:
            if str(v.get("kind", "")).lower() == "container" and v.get("name") in want:
                created = v.get("created_at", v.get("createdAt"))
                out[v["name"]] = (v.get("pid"), created, v.get("status"))
        return out

    def check_one_replaced(self, n):
        """Changes one container of the running stack, re-applies and checks
        that berth replaced that one and no other: one `replace` line, a new
        pid for it, the same pid and creation time for the n-1 others."""
        st = self.stacks[n]
        name = st["changed_name"]
        before = self.berth_containers(st["names"])
        if len(before) != n:
            raise StepFailed(f"berth get shows {len(before)} of the {n} containers")
        sh(self.flip(st["changed_file"], st["variants"]))
        out = sh(self.berth_cmd("apply", "-f", st["stack"], "--wait"), timeout=300).stdout
        actions = [line for line in out.splitlines() if line.strip()]
        after = self.berth_containers(st["names"])
        problems = []
        if len(actions) != 1 or not actions[0].startswith(f"replace container/{name}"):
            problems.append(f"expected one `replace container/{name}` line, got {actions}")
        new = after.get(name)
        if not new or new[0] in (None, before[name][0]) or new[2] != "Running":
            problems.append(f"{name}: before {before[name]}, after apply --wait {new} (want a new pid, Running)")
        moved = sorted(k for k, v in before.items() if k != name and after.get(k, (None, None))[:2] != v[:2])
        if moved:
            problems.append(f"{len(moved)} unchanged container(s) got a new pid or creation time: {moved[:5]}")
        if problems:
            raise StepFailed(f"1 of {n} changed: " + "; ".join(problems))
        self.checks.append(f"berth, 1 of {n} changed: one action line ({actions[0]}); {name} Running with a new "
                           f"pid ({before[name][0]} -> {new[0]}); the other {n - 1} kept their pid and creation time")

    def stack_berth(self, n):
        st = self.stacks[n]
        b = self.berth_cmd
        apply_wait = b("apply", "-f", st["stack"], "--wait")
        apply = b("apply", "-f", st["stack"])
        delete = b("delete", "-f", st["stack"])
        fast = dict(warmup=3, min_runs=15)
        # Applying or deleting 200 takes seconds (with a second for the
        # prepare): fewer runs.
        big = dict(warmup=2, min_runs=10) if n > 50 else fast
        samples = 1 if self.quick else 3
        if not self.quick:
            # Up first, so that the "delete" prepared before each timed apply finds it.
            sh(apply_wait, timeout=300)
        self.record(f"apply_{n}", "berth", self.timer.measure(
            f"apply{n}-berth", f"berth apply --wait ({n})", apply_wait, prepare=None if self.quick else delete,
            **big))
        out = sh(apply).stdout
        if "no changes" not in out:
            raise StepFailed(f"re-applying the unchanged stack of {n} changed things: {tail(out)}")
        self.record(f"noop_{n}", "berth", self.timer.measure(f"noop{n}-berth", f"berth apply (no-op, {n})", apply,
                                                             **fast))
        self.check_one_replaced(n)
        self.record(f"change_{n}", "berth", self.timer.measure(
            f"change{n}-berth", f"berth apply --wait (1 of {n} changed)", apply_wait,
            prepare=self.flip(st["changed_file"], st["variants"]), **fast))
        time.sleep(0.5 if self.quick else 2)  # memory settles; every shell has its TERM trap
        shims = len(self.berth_shims())
        if shims != n:
            raise StepFailed(f"{shims} berth shims run, expected {n}")
        self.record(f"rss_{n}", "berth", self.daemon_rss("berth", samples))
        if n == self.sizes[0]:
            self.record("rss_shim", "berth", sample_memory(self.berth_shims, "berth-shim (median)", "median", samples))
        self.record(f"delete_{n}", "berth", self.timer.measure(
            f"delete{n}-berth", f"berth delete ({n})", delete, prepare=None if self.quick else settled(apply_wait),
            **big))
        left = self.berth_shims()
        if left:
            raise StepFailed(f"{len(left)} shims still run after delete")

    def stack_compose(self, n):
        st = self.stacks[n]
        c = self.compose[n]
        up = c + ["up", "-d"]
        down = c + ["down"]
        # Every up/down takes seconds; at 200 tens of seconds (with as long a prepare).
        slow = dict(warmup=0, min_runs=3) if n > 50 else dict(warmup=1, min_runs=5)
        again = dict(warmup=1, min_runs=5) if n > 50 else dict(warmup=3, min_runs=15)
        sh(up, timeout=900)
        self.record(f"apply_{n}", "compose", self.timer.measure(
            f"apply{n}-compose", f"docker-compose up -d ({n})", up, prepare=down, **slow))
        self.record(f"noop_{n}", "compose", self.timer.measure(
            f"noop{n}-compose", f"docker-compose up -d (no-op, {n})", up, **again))
        flip = self.flip(st["compose"], st["compose_variants"])
        sh(flip)
        # Without a tty compose prints "Recreating NAME ... " and then "... done".
        recreated = {line.split(" ... ")[0].split()[-1] for line in sh(up, timeout=900).stderr.splitlines()
                     if line.startswith("Recreating ")}
        self.checks.append(f"docker-compose, 1 of {n} changed: {len(recreated)} container(s) recreated "
                           f"({', '.join(sorted(recreated))})")
        self.record(f"change_{n}", "compose", self.timer.measure(
            f"change{n}-compose", f"docker-compose up -d (1 of {n} changed)", up, prepare=flip, **again))
        time.sleep(2)
        self.record(f"rss_{n}", "docker", self.daemon_rss("docker"))
        if n == self.sizes[0]:
            self.record("rss_shim", "docker", sample_memory(self.docker_shims, "containerd-shim-runc-v2 (median)",
                                                            combine="median"))
        self.record(f"delete_{n}", "compose", self.timer.measure(
            f"delete{n}-compose", f"docker-compose down ({n})", down, prepare=settled(up), **slow))

    def conmon_rss(self):
        sh(self.podman + self.podman_run + ["-d", "--name", PODMAN_MEM, IMAGE, *LONG_RUNNING], timeout=120)
        time.sleep(2)
        pid = int(sh(self.podman + ["inspect", "--format", "{{.State.ConmonPid}}", PODMAN_MEM]).stdout.strip())
        r = sample_memory(lambda: [pid], "conmon")
        sh(self.podman + ["rm", "-f", "-t", "2", PODMAN_MEM], timeout=120)
        return r

    def start_registry(self):
        """The loopback registry with the Debian image and the 20-layer one."""
        self.registry = imagesdef.Registry(self.work, os.path.join(self.results_dir, "registry.log"))
        self.on_exit("stop the registry", self.registry.stop)
        layout, tag, layers, compressed, unpacked = imagesdef.debian_layout(log, sh)
        self.debian_ref = self.registry.push(sh, layout, tag, "berthbench/debian")
        self.notes.append(f"pull image: Debian {imagesdef.DEBIAN_SUITE} (mmdebstrap), {layers} layers, "
                          f"{compressed / 2**20:.0f} MiB gzip, {unpacked / 2**20:.0f} MiB unpacked")
        layout, tag = imagesdef.many_layers_layout(self.work, self.tar)
        self.layers_ref = self.registry.push(sh, layout, tag, "berthbench/layers")

    def measure_images(self, m):
        """Cold pulls of the Debian image, then run --rm on it and on the
        20-layer image, each engine from the same loopback registry."""
        if not self.berth_step("start the registry", lambda: self.start_registry() or True):
            return
        ref, layers = self.debian_ref, self.layers_ref
        pulls = dict(warmup=1, min_runs=5)
        single = dict(warmup=3, min_runs=20)
        b = self.berth_cmd
        forget = shlex.join(b("rmi", ref)) + " >/dev/null 2>&1; " + shlex.join(b("image", "prune")) + " >/dev/null"
        self.on_exit("remove berth's pulled images",
                     lambda: sh(["sh", "-c", forget + "; " + shlex.join(b("rmi", layers)) + " >/dev/null 2>&1; "
                                 + shlex.join(b("image", "prune"))], check=False))
        self.record("pull", "berth", self.berth_step("berth pull", lambda: m(
            "pull-berth", "berth pull (cold)", b("pull", ref), prepare=["sh", "-c", forget], **pulls)))
        self.berth_step("berth pull", lambda: sh(b("pull", ref), timeout=600))
        self.record("run_pulled", "berth", self.berth_step("berth run --rm (pulled)", lambda: m(
            "runpulled-berth", "berth run --rm (pulled Debian)", b("run", "--rm", "--network", "none", ref, "/bin/true"), **single)))
        self.berth_step("berth pull (20 layers)", lambda: sh(b("pull", layers), timeout=600))
        self.record("run_layers", "berth", self.berth_step("berth run --rm (20 layers)", lambda: m(
            "runlayers-berth", "berth run --rm (20 layers)", b("run", "--rm", "--network", "none", layers, "/bin/true"), **single)))

        def docker():
            d = self.docker
            self.on_exit("remove docker's pulled images", lambda: sh([d, "rmi", "-f", ref, layers], check=False))
            self.record("pull", "docker", m("pull-docker", "docker pull (cold)", [d, "pull", "-q", ref],
                                            prepare=["sh", "-c", f"{d} rmi -f {ref} >/dev/null 2>&1; true"], **pulls))
            sh([d, "pull", "-q", ref], timeout=600)
            sh([d, "pull", "-q", layers], timeout=600)
            run = [d, "run", "--rm", "--pull", "never", "--network", "none"]
            self.record("run_pulled", "docker", m("runpulled-docker", "docker run --rm (pulled Debian)",
                                                  run + [ref, "/bin/true"], **single))
            self.record("run_layers", "docker", m("runlayers-docker", "docker run --rm (20 layers)",
                                                  run + [layers, "/bin/true"], **single))
        self.peer_step("docker", "pull", docker)

        def podman():
            p = self.podman
            self.on_exit("remove podman's pulled images", lambda: sh(p + ["rmi", "-f", ref, layers], check=False))
            pull = p + ["pull", "-q", "--tls-verify=false"]
            self.record("pull", "podman", m("pull-podman", "podman pull (cold)", pull + [ref],
                                            prepare=["sh", "-c", f"{shlex.join(p)} rmi -f {ref} >/dev/null 2>&1; true"],
                                            **pulls))
            sh(pull + [ref], timeout=600)
            sh(pull + [layers], timeout=600)
            run = p + self.podman_run + ["--rm"]
            self.record("run_pulled", "podman", m("runpulled-podman", "podman run --rm (pulled Debian)",
                                                  run + [ref, "/bin/true"], **single))
            self.record("run_layers", "podman", m("runlayers-podman", "podman run --rm (20 layers)",
                                                  run + [layers, "/bin/true"], **single))
        self.peer_step("podman", "pull", podman)

        def skopeo():
            out = os.path.join(self.work, "skopeo")
            self.on_exit("remove skopeo's copy", lambda: shutil.rmtree(out, ignore_errors=True))
            copy = (f"skopeo copy --quiet --src-tls-verify=false docker://{ref} oci:{out}/oci:v1 && "
                    f"umoci unpack --image {out}/oci:v1 {out}/bundle >/dev/null")
            self.record("pull", "skopeo", m("pull-skopeo", "skopeo copy + umoci unpack (cold)", ["sh", "-c", copy],
                                            prepare=["sh", "-c", f"rm -rf {out} && mkdir {out}"], **pulls))
        self.peer("skopeo", available=bool(shutil.which("skopeo") and shutil.which("umoci")),
                  reason="skopeo or umoci is not installed",
                  version=sh(["skopeo", "--version"], check=False).stdout.strip() if shutil.which("skopeo") else None)
        self.peer_step("skopeo", "copy", skopeo)

    def build_context(self):
        """The build group's context: a Dockerfile FROM the Debian image in
        the loopback registry, two RUN steps and a COPY of a ~2000-file tree."""
        ctx = os.path.join(self.work, "build-context")
        shutil.rmtree(ctx, ignore_errors=True)
        for d in range(40):
            os.makedirs(os.path.join(ctx, "src", f"pkg{d:02d}"))
            for f in range(50):
                with open(os.path.join(ctx, "src", f"pkg{d:02d}", f"mod{f:02d}.py"), "w") as out:
                    out.write(f"# module {d}.{f}\n" + "def f():\n    return %d\n" % (d * 100 + f) * 8)
        with open(os.path.join(ctx, "Dockerfile"), "w") as out:
            out.write(f"FROM {self.debian_ref}\n"
                      "RUN mkdir -p /app && echo built > /app/stamp\n"
                      "RUN useradd --system app && chown app /app\n"
                      "COPY src/ /app/src/\n"
                      'CMD ["ls", "/app/src"]\n')
        return ctx

    def measure_build(self, m):
        """The same Dockerfile built cold (no cache), again with nothing
        changed, and again after one source file changed, by each engine.
        RUN steps get no network (none needs one), so what is compared is
        the builders themselves."""
        if not getattr(self, "debian_ref", None):
            if not self.berth_step("start the registry", lambda: self.start_registry() or True):
                return
        ref = self.debian_ref
        ctx = self.berth_step("make the build context", self.build_context)
        if not ctx:
            return
        self.notes.append("build: FROM the Debian image, 2 RUN steps, COPY of 2000 files (40 dirs x 50); "
                          "RUN steps with --network none; cold = --no-cache")
        touched = os.path.join(ctx, "src", "pkg07", "mod13.py")
        change = ["sh", "-c", f"date +%s%N >> {shlex.quote(touched)}"]
        runs = dict(warmup=1, min_runs=5)
        b = self.berth_cmd
        tag = "berthbench/built:1"
        self.on_exit("remove berth's built image and build cache",
                     lambda: sh(["sh", "-c", shlex.join(b("rmi", tag)) + " >/dev/null 2>&1; "
                                 + shlex.join(b("builder", "prune")) + " >/dev/null"], check=False))
        self.berth_step("berth pull (build base)", lambda: sh(b("pull", ref), timeout=600))
        build = b("build", "-q", "--network", "none", "-t", tag, ctx)
        self.record("build_cold", "berth", self.berth_step("berth build (cold)", lambda: m(
            "buildcold-berth", "berth build --no-cache", b("build", "-q", "--no-cache", "--network", "none", "-t", tag, ctx),
            **runs)))
        self.record("build_noop", "berth", self.berth_step("berth build (no change)", lambda: m(
            "buildnoop-berth", "berth build (nothing changed)", build, prepare=build)))
        self.record("build_change", "berth", self.berth_step("berth build (one file changed)", lambda: m(
            "buildchange-berth", "berth build (one source file changed)", build, prepare=change, **runs)))

        def docker():
            d = self.docker
            self.on_exit("remove docker's built image", lambda: sh([d, "rmi", "-f", tag], check=False))
            sh([d, "pull", "-q", ref], timeout=600)
            # The legacy builder, as this docker CLI uses (no buildx).
            dbuild = ["env", "DOCKER_BUILDKIT=0", d, "build", "-q", "--network", "none", "-t", tag, ctx]
            cold = ["env", "DOCKER_BUILDKIT=0", d, "build", "-q", "--no-cache", "--network", "none", "-t", tag, ctx]
            self.record("build_cold", "docker", m("buildcold-docker", "docker build --no-cache (legacy)", cold, **runs))
            self.record("build_noop", "docker", m("buildnoop-docker", "docker build (nothing changed)", dbuild,
                                                  prepare=dbuild))
            self.record("build_change", "docker", m("buildchange-docker", "docker build (one source file changed)",
                                                    dbuild, prepare=change, **runs))
        self.peer_step("docker", "build", docker)

        def podman():
            p = self.podman
            self.on_exit("remove podman's built image", lambda: sh(p + ["rmi", "-f", tag], check=False))
            sh(p + ["pull", "-q", "--tls-verify=false", ref], timeout=600)
            runtime = ["--runtime", "runc"] if shutil.which("runc") else []
            pbuild = p + ["build", "-q", *runtime, "--network", "none", "-t", tag, ctx]
            cold = p + ["build", "-q", *runtime, "--no-cache", "--network", "none", "-t", tag, ctx]
            self.record("build_cold", "podman", m("buildcold-podman", "podman build --no-cache (buildah)", cold, **runs))
            self.record("build_noop", "podman", m("buildnoop-podman", "podman build (nothing changed)", pbuild,
                                                  prepare=pbuild))
            self.record("build_change", "podman", m("buildchange-podman", "podman build (one source file changed)",
                                                    pbuild, prepare=change, **runs))
        self.peer_step("podman", "build", podman)

    def gitops_sync(self, m, single):
        """A git source (file:// repository) with one container: each run
        commits a change to it (untimed) and times `berth source sync`, which
        fetches, applies and returns once the replaced container runs."""
        b = self.berth_cmd
        repo = os.path.join(self.results_dir, "gitops-repo")
        shutil.rmtree(repo, ignore_errors=True)
        os.makedirs(os.path.join(repo, "deploy"))
        git = ["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        doc = ("apiVersion: berth/v1\nkind: Container\nmetadata: {name: berthbench-git}\n"
               "spec: {image: busybox, command: [sleep, '3600'], env: {MARK: '%s'}}\n")
        variants = {}
        for v in ("a", "b"):
            variants[v] = os.path.join(repo, f"variant-{v}.txt")
            with open(variants[v], "w") as f:
                f.write(doc % v)
        dest = os.path.join(repo, "deploy", "c.yaml")
        shutil.copy(variants["a"], dest)
        sh(["git", "init", "-q", repo])
        sh(git + ["add", "deploy"])
        sh(git + ["commit", "-qm", "first"])
        self.on_exit("remove the gitops source", lambda: sh(b("source", "rm", "benchgit", "--prune"), check=False))
        sh(b("source", "add", "benchgit", "--git", f"file://{repo}", "--path", "deploy", "--interval", "1h"))
        sh(b("source", "sync", "benchgit"), timeout=120)
        change = self.flip(dest, variants, pause=0.5)
        change[-1] += f" && git -C {shlex.quote(repo)} -c user.name=bench -c user.email=bench@localhost commit -qam change"
        return m("gitops-berth", "berth source sync (commit to running)", b("source", "sync", "benchgit"),
                 prepare=change, **single)

    def measure_exec(self, m, single):
        """exec of /bin/true into a running container."""
        b = self.berth_cmd
        self.on_exit("remove the exec container", lambda: sh(b("delete", f"container/{EXEC_NAME}"), check=False))

        def berth():
            sh(b("run", "-d", "--network", "none", "--name", EXEC_NAME, "busybox", *LONG_RUNNING))
            return m("exec-berth", "berth exec", b("exec", EXEC_NAME, "/bin/true"), **single)
        self.record("exec", "berth", self.berth_step("berth exec", berth))
        # A running container's memory limit changed in place, on the exec container.
        update = ["--memory", "96m", "--memory-swap", "-1"]
        self.record("update", "berth", self.berth_step("berth update --memory", lambda: m(
            "update-berth", "berth update --memory", b("update", *update, EXEC_NAME), **single)))
        self.record("gitops_sync", "berth", self.berth_step("commit to running via source sync",
                                                            lambda: self.gitops_sync(m, single)))

        def docker():
            d = self.docker
            self.on_exit("remove the docker exec container", lambda: sh([d, "rm", "-f", EXEC_NAME], check=False))
            sh([d, "run", "-d", "--network", "none", "--name", EXEC_NAME, IMAGE, *LONG_RUNNING], timeout=120)
            return m("exec-docker", "docker exec", [d, "exec", EXEC_NAME, "/bin/true"], **single)
        self.record("exec", "docker", self.peer_step("docker", "docker exec", docker))
        self.record("update", "docker", self.peer_step("docker", "docker update --memory", lambda: m(
            "update-docker", "docker update --memory", [self.docker, "update", *update, EXEC_NAME], **single)))

        def podman():
            p = self.podman
            self.on_exit("remove the podman exec container",
                         lambda: sh(p + ["rm", "-f", "-t", "0", EXEC_NAME], check=False))
            sh(p + self.podman_run + ["-d", "--name", EXEC_NAME, IMAGE, *LONG_RUNNING], timeout=120)
            return m("exec-podman", "podman exec", p + ["exec", EXEC_NAME, "/bin/true"], **single)
        self.record("exec", "podman", self.peer_step("podman", "podman exec", podman))
        self.record("update", "podman", self.peer_step("podman", "podman update --memory", lambda: m(
            "update-podman", "podman update --memory", self.podman + ["update", *update, EXEC_NAME], **single)))

        runc = shutil.which("runc")
        exec_id = f"{RUNC_ID}-exec"

        def runc_exec():
            self.on_exit("delete the runc exec container",
                         lambda: sh([runc, "--root", self.runc_root, "delete", "-f", exec_id], check=False))
            # Detached, the container keeps the stdio it was given: no pipe
            # may be waited on for EOF (a stderr pipe hung this for 60 s).
            err_path = os.path.join(self.work, "runc", "exec-run.err")
            with open(err_path, "w") as err:
                p = subprocess.run([runc, "--root", self.runc_root, "run", "-d", "-b", self.runc_exec_bundle,
                                    exec_id], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                   timeout=60)
            if p.returncode != 0:
                with open(err_path) as err:
                    raise StepFailed(f"runc run -d: {err.read().strip()}")
            return m("exec-runc", "runc exec", [runc, "--root", self.runc_root, "exec", exec_id, "/bin/true"],
                     **single)
        self.record("exec", "runc", self.peer_step("runc", "runc exec", runc_exec))

        def nsenter():
            # The kernel's floor for an exec: setns into every namespace and
            # execve, no cgroup join, no capabilities, no seccomp.
            if not shutil.which("nsenter"):
                raise StepFailed("nsenter not found (util-linux)")
            state = json.loads(sh([runc, "--root", self.runc_root, "state", exec_id]).stdout)
            return m("exec-floor", "nsenter -a", ["nsenter", "-t", str(state["pid"]), "-a", "/bin/true"], **single)
        if self.metrics["exec"]["values"].get("runc"):
            self.record("exec", "floor", self.peer_step("floor", "nsenter exec", nsenter))

    def measure_net(self, m, single):
        """Start cost on a bridge, a published port's throughput, DNS latency."""
        web_cmd = ["sh", "-c", "mkdir -p /tmp/www && cp /www/index.html /tmp/www/ && "
                   "dd if=/dev/zero of=/tmp/www/big bs=1M count=8 2>/dev/null && exec httpd -f -p 80 -h /tmp/www"]
        client_cmd = list(LONG_RUNNING)
        b = self.berth_cmd

        def berth():
            self.on_exit("remove berth's network and its containers", lambda: (
                sh(b("delete", "container/berthbench-web"), check=False),
                sh(b("delete", "container/berthbench-client"), check=False),
                sh(b("network", "rm", NET), check=False)))
            sh(b("network", "create", NET))
            self.record("run_bridge", "berth", m("runbridge-berth", "berth run --rm (bridge)",
                                                 b("run", "--rm", "--network", NET, "busybox", "/bin/true"), **single))
            sh(b("run", "-d", "--network", NET, "--name", "berthbench-web", "-p", f"{WEB_PORTS['berth']}:80",
                 "busybox", *web_cmd))
            sh(b("run", "-d", "--network", NET, "--name", "berthbench-client", "busybox", *client_cmd))
            time.sleep(1)
            req, mib = self.wrk("berth", WEB_PORTS["berth"])
            self.record("port_req", "berth", req)
            self.record("port_mib", "berth", mib)
            # The client resolves the server by its container name.
            probe = b("exec", "berthbench-client")
            sh(probe + ["nslookup", "berthbench-web"])
            self.record("dns", "berth", self.dns_probe(probe))
        self.berth_step("berth networking", berth)

        def docker():
            d = self.docker
            self.on_exit("remove docker's network and its containers", lambda: (
                sh([d, "rm", "-f", "berthbench-web", "berthbench-client"], check=False),
                sh([d, "network", "rm", NET], check=False)))
            sh([d, "network", "create", "--subnet", free_subnet(), NET])
            self.record("run_bridge", "docker", m("runbridge-docker", "docker run --rm (bridge)",
                                                  [d, "run", "--rm", "--pull", "never", "--network", NET, IMAGE,
                                                   "/bin/true"], **single))
            sh([d, "run", "-d", "--network", NET, "--name", "berthbench-web", "-p", f"{WEB_PORTS['docker']}:80",
                IMAGE, *web_cmd])
            sh([d, "run", "-d", "--network", NET, "--name", "berthbench-client", IMAGE, *client_cmd])
            time.sleep(1)
            proxied = any(comm == "docker-proxy" and str(WEB_PORTS["docker"]) in argv
                          for _, _, comm, argv in processes())
            req, mib = self.wrk("docker", WEB_PORTS["docker"])
            self.record("port_req", "docker", req)
            self.record("port_mib", "docker", mib)
            # With its userland proxy on (the default), Docker's DNAT skips
            # 127.0.0.0/8: a connection to 127.0.0.1 goes through docker-proxy.
            self.notes.append(f"docker published port: {'docker-proxy ran for it' if proxied else 'no docker-proxy'}"
                              " (Docker's DNAT skips 127.0.0.0/8 while its userland proxy is on)")
            # Docker's embedded DNS (127.0.0.11 in a user-defined network's
            # containers), by the same probe as berth's and podman's.
            probe = [d, "exec", "berthbench-client"]
            sh(probe + ["nslookup", "berthbench-web"])
            self.record("dns", "docker", self.dns_probe(probe))
        self.peer_step("docker", "networking", docker)

        def podman():
            p = self.podman
            run = [a for a in self.podman_run if a not in ("--network", "none")]
            self.on_exit("remove podman's network and its containers", lambda: (
                sh(p + ["rm", "-f", "-t", "0", "berthbench-web", "berthbench-client"], check=False),
                sh(p + ["network", "rm", "-f", NET], check=False)))
            sh(p + ["network", "create", "--subnet", free_subnet(), NET])
            self.record("run_bridge", "podman", m("runbridge-podman", "podman run --rm (bridge)",
                                                  p + run + ["--rm", "--network", NET, IMAGE, "/bin/true"], **single))
            sh(p + run + ["-d", "--network", NET, "--name", "berthbench-web", "-p",
                          f"{WEB_PORTS['podman']}:80", IMAGE, *web_cmd], timeout=120)
            sh(p + run + ["-d", "--network", NET, "--name", "berthbench-client", IMAGE, *client_cmd], timeout=120)
            time.sleep(1)
            req, mib = self.wrk("podman", WEB_PORTS["podman"])
            self.record("port_req", "podman", req)
            self.record("port_mib", "podman", mib)
            probe = p + ["exec", "berthbench-client"]
            sh(probe + ["nslookup", "berthbench-web"])
            self.record("dns", "podman", self.dns_probe(probe))
        self.peer_step("podman", "networking", podman)

    def wrk(self, engine, port):
        """(µs per request, ms per MiB) through a published port on 127.0.0.1."""
        def run(path, seconds):
            out = sh(["wrk", "-t2", "-c16", f"-d{seconds}s", f"http://127.0.0.1:{port}/{path}"], timeout=120).stdout
            rps = next(float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec:"))
            tr = next(line.split()[1] for line in out.splitlines() if line.startswith("Transfer/sec:"))
            number = tr.rstrip("KMGB")
            unit = {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}[tr[len(number):]]
            return rps, float(number) * unit
        # A warm-up run, then the measured ones.
        run("index.html", 1)
        rps = [run("index.html", 3)[0] for _ in range(3)]
        mibs = [run("big", 3)[1] for _ in range(3)]
        self.notes.append(f"{engine} published port: {statistics.median(rps):.0f} req/s, "
                          f"{statistics.median(mibs):.0f} MiB/s")
        req = [1e6 / r for r in rps]
        per_mib = [1e3 / x for x in mibs]
        summary = lambda v, what: {"median": round(statistics.median(v), 2), "runs": len(v), "tool": "wrk",  # noqa: E731
                                   "command": what, "min": round(min(v), 2), "max": round(max(v), 2)}
        return (summary(req, f"wrk -t2 -c16 -d3s http://127.0.0.1:{port}/index.html"),
                summary(per_mib, f"wrk -t2 -c16 -d3s http://127.0.0.1:{port}/big"))

    @staticmethod
    def dns_probe(exec_cmd):
        """Median ms per lookup of the server's name, timed inside the container by /proc/uptime (10 ms ticks, so many lookups)."""
        loop = (f"s=$(cut -d' ' -f1 /proc/uptime); i=0; while [ $i -lt {LOOKUPS} ]; do "
                f"nslookup berthbench-web >/dev/null 2>&1 || exit 1; i=$((i+1)); done; e=$(cut -d' ' -f1 /proc/uptime); "
                "echo $s $e")
        runs = []
        for _ in range(3):
            a, b = sh(exec_cmd + ["sh", "-c", loop], timeout=300).stdout.split()
            runs.append((float(b) - float(a)) * 1000 / LOOKUPS)
        return {"median": round(statistics.median(runs), 3), "runs": len(runs), "tool": "/proc/uptime in the container",
                "command": f"{LOOKUPS} x nslookup berthbench-web", "min": round(min(runs), 3), "max": round(max(runs), 3)}
