"""berth and its peers: installing, building and starting them, the
processes each one is made of, and stopping them and deleting what they
made (mixed into bench/run's Bench)."""

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

import hostnet
import startpath
import stack as stackdef
from common import (IMAGE, LONG_RUNNING, PODMAN_MEM, REPO, RUNC_ID, SCALE_PEER_MAX, StepFailed, cgroup_hierarchies,
                    has_capability, log, mountpoints, ok, place, processes, remove_cgroup_tree, sample_memory, sh,
                    signal_and_wait, stop_child, tail)

PACKAGES = ["docker.io", "podman", "runc", "docker-compose", "hyperfine", "docker-registry", "skopeo", "umoci",
            "mmdebstrap", "wrk"]
# The flags of the kernel floor: the namespaces berth gives a container with
# no network (pid, mount, uts, ipc, net), a chroot into the same rootfs, and
# the same /bin/true: what any engine costs at least on this kernel.
FLOOR = ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "chroot"]


class Peers:
    def install_peers(self):
        missing = [p for p in PACKAGES
                   if sh(["dpkg-query", "-W", "-f=${Status}", p], check=False).stdout != "install ok installed"]
        if not missing:
            return
        log(f"installing {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            sh(["apt-get", "update", "-qq"], env=env, timeout=600)
            sh(["apt-get", "install", "-y", "-qq", *missing], env=env, timeout=1800)
        except StepFailed as e:
            log(f"installing peers failed, carrying on with what is there: {e}")
            self.notes.append(f"apt-get install {' '.join(missing)} failed: {e}")

    def build_berth(self):
        if self.berth_bin:
            # A given build (e.g. an older commit's, for a before/after pair).
            self.berth = os.path.abspath(self.berth_bin)
            log(f"using {self.berth}")
            return
        log("cargo build --release")
        p = subprocess.run(["cargo", "build", "--release"], cwd=REPO, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise StepFailed("cargo build --release failed")
        self.berth = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "berth")

    def make_workdir(self):
        self.work = tempfile.mkdtemp(prefix="berthbench.")
        os.chmod(self.work, 0o755)
        self.on_exit("remove the work dir", self.remove_workdir)
        self.tar = os.path.join(self.work, "busybox.tar")
        sh([os.path.join(REPO, "scripts", "busybox-rootfs.sh"), self.tar])
        gen = os.path.join(self.work, "gen")
        # One stack per size, each with its own compose project.
        self.stacks = {n: stackdef.write(os.path.join(gen, f"n{n}"), self.tar, n) for n in self.sizes}
        self.net_stacks = {n: stackdef.write_network(os.path.join(gen, f"net{n}"), self.tar, n)
                           for n in self.scale_sizes}
        shutil.rmtree(os.path.join(self.results_dir, "generated"), ignore_errors=True)
        shutil.copytree(gen, os.path.join(self.results_dir, "generated"), dirs_exist_ok=True)
        if not self.quick:
            # The unpacked rootfs runc's bundle and the kernel floor both use.
            self.rootfs = os.path.join(self.work, "rootfs")
            os.makedirs(self.rootfs)
            sh(["tar", "-C", self.rootfs, "-xf", self.tar])

    def remove_workdir(self):
        self.remove_tree(self.work)

    def remove_tree(self, path):
        under = [m for m in mountpoints() if m.startswith(path + "/")]
        if under:
            # Never rm -rf through a mount: it could reach into the host.
            self.leaks.append(f"mounts still under {path}, left in place: {under}")
            return
        shutil.rmtree(path, ignore_errors=True)

    def berth_cmd(self, *args):
        return [self.berth, *args]

    def start_berth(self):
        w = self.work
        # The run dir lives on tmpfs under /run, as berth's default (and
        # dockerd's /run/docker) does. The root goes under /var/lib, as
        # Docker's and Podman's do, so that images and layers land on the
        # same filesystem as theirs (the temp dir may be a tmpfs).
        run_dir = self.run_dir = os.path.join("/run", os.path.basename(w))
        os.makedirs(run_dir, exist_ok=True)
        self.on_exit("remove the berth run dir", lambda: shutil.rmtree(run_dir, ignore_errors=True))
        self.var_dir = tempfile.mkdtemp(prefix="berthbench.", dir="/var/lib")
        os.chmod(self.var_dir, 0o755)
        self.on_exit("remove berth's root", lambda: self.remove_tree(self.var_dir))
        root = f"{self.var_dir}/root"
        os.environ.update(BERTH_ROOT=root, BERTH_RUN=run_dir,
                          BERTH_SOCKET=f"{run_dir}/berth.sock", BERTH_WATCH=f"{w}/berth/watch")
        os.makedirs(root)
        os.makedirs(f"{w}/berth/watch", exist_ok=True)
        self.notes.append(f"berth: root {place(root)}, run dir {place(run_dir)}")
        self.berth_prefix = "berth-" + hashlib.sha256(os.environ["BERTH_ROOT"].encode()).hexdigest()[:8]
        self.daemon_log = os.path.join(self.results_dir, "berth-daemon.log")
        with open(self.daemon_log, "w") as logf:
            # The start-path events (bench/startpath.py) cost a clock read
            # and a log line each: on for every row.
            env = {**os.environ, "BERTH_LOG": os.environ.get("BERTH_LOG", startpath.LOG_FILTER)}
            self.daemon = subprocess.Popen(self.berth_cmd("daemon"), stdin=subprocess.DEVNULL, stdout=logf, env=env,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        self.on_exit("stop berth and delete what it made", self.stop_berth)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.daemon.poll() is not None:
                raise StepFailed(f"berth daemon exited {self.daemon.returncode}: {tail(open(self.daemon_log).read())}")
            if "daemon: berth" in sh(self.berth_cmd("version"), check=False).stdout:
                break
            time.sleep(0.05)
        else:
            raise StepFailed("berth daemon did not answer within 20 s")
        self.peers["berth"] = {"available": True, "version": sh(self.berth_cmd("--version")).stdout.strip()}
        image = os.path.join(self.work, "busybox-image.yaml")
        with open(image, "w") as f:
            f.write(f"apiVersion: berth/v1\nkind: Image\nmetadata:\n  name: busybox\nspec:\n  import: {self.tar}\n")
        sh(self.berth_cmd("apply", "-f", image, "--wait"))

    def berth_shims(self):
        run = os.environ["BERTH_RUN"] + "/"
        return [pid for pid, _, _, argv in processes()
                if argv and argv[0] == "berth-shim" and any(a.startswith(run) for a in argv)]

    def stop_berth(self):
        # Containers outlive the daemon: delete them (and the images) first.
        try:
            views = json.loads(sh(self.berth_cmd("get", "-o", "json"), timeout=30).stdout or "[]")
            keys = [f"{v['kind'].lower()}/{v['name']}" for v in views]
            keys.sort(key=lambda k: not k.startswith("container/"))
            if keys:
                sh(self.berth_cmd("delete", *keys), timeout=120)
        except (StepFailed, ValueError) as e:
            self.errors.append(f"delete what was left in berth: {e}")
        code = stop_child(self.daemon, 15)
        if code not in (0, -signal.SIGTERM):
            self.errors.append(f"berth daemon exited {code} on SIGTERM")
        self.sweep_berth()

    def sweep_berth(self):
        """What berth should not have left: processes, mounts, cgroups."""
        me = os.getpid()
        places = [self.work] + [d for d in (getattr(self, "run_dir", None), getattr(self, "var_dir", None)) if d]
        for pid, _, comm, argv in processes():
            if pid != me and any(p in a for a in argv for p in places):
                self.leaks.append(f"process {pid} {shlex.join(argv)[:200]}")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for mp in sorted((m for m in mountpoints() if any(m.startswith(p + "/") for p in places)), key=len, reverse=True):
            self.leaks.append(f"mount {mp}")
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        for h in cgroup_hierarchies():
            cg = os.path.join(h, self.berth_prefix)
            if os.path.isdir(cg):
                self.leaks.append(f"cgroup {cg}")
                remove_cgroup_tree(cg)

    def peer(self, name, available=True, reason=None, **info):
        self.peers[name] = {"available": available, "reason": reason, **info}
        if not available:
            log(f"{name} UNAVAILABLE: {reason}")

    def start_docker(self, was_running):
        self.docker = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
        dockerd = shutil.which("dockerd")
        if not (self.docker and dockerd):
            return self.peer("docker", False, "docker.io is not installed (no dockerd or docker)")
        self.peer("docker", started_by_bench=False, cli=self.docker)
        if was_running:
            log("dockerd was running: using it and leaving it running")
            self.notes.append("docker: dockerd was already running: used with the settings it had")
        elif self.systemd:
            log("starting docker with systemctl (stopped again at the end)")
            self.hostnet = hostnet.HostNetwork()
            units = ["docker.service"]
            if not ok(["systemctl", "is-active", "--quiet", "docker.socket"]):
                units.append("docker.socket")  # started along with docker.service
            self.on_exit("stop docker", lambda: sh(["systemctl", "stop", *units]))
            self.peers["docker"]["started_by_bench"] = "systemctl"
            try:
                sh(["systemctl", "start", "docker.service"], timeout=120)
            except StepFailed as e:
                return self.peer("docker", False, f"systemctl start docker: {e}")
        else:
            # No systemd here: run dockerd for the run only, with its default
            # networking (docker0, iptables, ip_forward, userland proxy), as
            # users run it: its published ports and embedded DNS need them.
            # What it changes on the host is put back after it stopped.
            args = [dockerd]
            self.hostnet = hostnet.HostNetwork()
            log(f"starting {shlex.join(args)} (stopped again at the end)")
            with open(self.dockerd_log, "w") as logf:
                self.dockerd = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                                stderr=subprocess.STDOUT, start_new_session=True)
            self.on_exit("stop dockerd", self.stop_dockerd)
            self.peers["docker"].update(started_by_bench=shlex.join(args))
        deadline = time.time() + 60
        while not ok([self.docker, "info"], timeout=10):
            died = self.dockerd is not None and self.dockerd.poll() is not None
            if died or time.time() > deadline:
                why = tail(open(self.dockerd_log).read(), 5) if self.dockerd else "docker info fails"
                return self.peer("docker", False, f"dockerd did not come up: {why}")
            time.sleep(0.25)
        self.peers["docker"]["version"] = sh([self.docker, "version", "--format", "{{.Server.Version}}"]).stdout.strip()
        if self.hostnet:
            self.peers["docker"]["host_network_before"] = self.hostnet.describe()
            self.notes.append("docker: dockerd with its default networking (docker0, iptables on, ip forwarding on, "
                              "userland proxy on); the host's nft tables, iptables rules, docker0 and sysctls are "
                              "put back after it stops")
        root = sh([self.docker, "info", "-f", "{{.DockerRootDir}}"], check=False).stdout.strip()
        self.notes.append(f"docker: root {place(root)}, run dir {place('/var/run/docker')} (dockerd's default "
                          "exec root; containerd's state under it)")
        self.on_exit("remove the docker image", lambda: sh([self.docker, "rmi", "-f", IMAGE], check=False))
        sh([self.docker, "import", self.tar, IMAGE], timeout=120)
        sh([self.docker, "run", "--rm", "--pull", "never", "--network", "none", IMAGE, "/bin/true"], timeout=120)

    def restore_host(self):
        """After dockerd stopped (and berth, whose accepts may sit in
        dockerd's FORWARD chain): the host's networking as it was before."""
        if not self.hostnet:
            return
        done, failed = self.hostnet.restore()
        left = self.hostnet.differences()
        self.peers["docker"]["host_network_restored"] = {"done": done, "failed": failed, "differences": left}
        self.notes.append("host networking after dockerd: " + ("; ".join(done) if done else "nothing to put back"))
        for what in failed + left:
            log(f"host networking NOT put back: {what}")
            self.notes.append(f"host networking NOT put back: {what}")
        if not failed and not left:
            self.notes.append("host networking checked: ip/ip6 nft tables, iptables rules, docker0 and "
                              f"{', '.join(n.replace('/', '.') for n in hostnet.SYSCTLS)} as before dockerd")

    def stop_dockerd(self):
        stop_child(self.dockerd, 30)
        # A dockerd killed hard leaves its containerd behind.
        for pid, _, comm, argv in processes():
            if comm == "containerd" and any("/var/run/docker/containerd" in a for a in argv):
                signal_and_wait(pid, 10)

    def dockerd_pids(self):
        procs = processes()
        dockerd = [p for p, _, comm, _ in procs if comm == "dockerd"]
        children = [p for p, pp, comm, _ in procs if comm == "containerd" and pp in dockerd]
        containerd = children or [p for p, _, comm, _ in procs if comm == "containerd"]
        return dockerd + containerd

    def docker_shims(self):
        return [p for p, _, comm, argv in processes()
                if comm == "containerd-shim" and "moby" in argv and any("runc.v2" in a or "runc-v2" in a for a in argv)]

    def start_compose(self):
        exe = shutil.which("docker-compose")
        if not exe:
            return self.peer("compose", False, "docker-compose is not installed")
        if not self.peers["docker"]["available"]:
            return self.peer("compose", False, "needs docker, which is unavailable")
        # docker-compose 1.x holds one slot of its global parallel limit (64
        # by default) per service while it waits for that service's
        # containers, which need slots too: with more than ~32 services it
        # deadlocks (docker/compose#7486, #8161). 2 slots per service never
        # block, which is what it does with 20 services anyway.
        limit = max(64, 2 * max(self.sizes))
        os.environ["COMPOSE_PARALLEL_LIMIT"] = str(limit)
        # 200 requests at once can keep dockerd busy past compose's default
        # 60 s HTTP timeout ("An HTTP request took too long to complete").
        os.environ["COMPOSE_HTTP_TIMEOUT"] = "600"
        self.compose = {n: [exe, "-p", f"{stackdef.COMPOSE_PROJECT}-{n}", "-f", st["compose"]]
                        for n, st in self.stacks.items()}
        # The one-network stacks' peer, at the sizes it is measured at.
        self.compose_net = {n: [exe, "-p", f"{stackdef.COMPOSE_PROJECT}-net{n}", "-f", st["compose"]]
                            for n, st in self.net_stacks.items() if n <= SCALE_PEER_MAX}
        self.peer("compose", version=sh([exe, "version", "--short"]).stdout.strip(),
                  env={"COMPOSE_PARALLEL_LIMIT": str(limit), "COMPOSE_HTTP_TIMEOUT": "600"})
        for cmd in [*self.compose.values(), *self.compose_net.values()]:
            self.on_exit("docker-compose down", lambda cmd=cmd: sh(cmd + ["down", "-t", "5"], check=False,
                                                                   timeout=600))

    def start_podman(self):
        exe = shutil.which("podman")
        if not exe:
            return self.peer("podman", False, "podman is not installed")
        self.podman = [exe]
        if not self.systemd:
            # Without systemd, podman's defaults (systemd cgroup manager,
            # journald events) cannot work.
            self.podman += ["--cgroup-manager=cgroupfs", "--events-backend=file"]
        version = sh([exe, "version", "--format", "{{.Client.Version}}"], check=False).stdout.strip()
        self.peer("podman", version=version, global_flags=self.podman[1:])
        self.on_exit("remove the podman image", lambda: sh(self.podman + ["rmi", "-f", IMAGE], check=False))
        self.on_exit("remove the podman container", lambda: sh(self.podman + ["rm", "-f", "-t", "2", PODMAN_MEM],
                                                              check=False))
        sh(self.podman + ["import", "--quiet", self.tar, IMAGE], timeout=120)
        self.podman_run = ["run", "--pull", "never", "--network", "none"]
        probe = sh(self.podman + self.podman_run + ["--rm", IMAGE, "/bin/true"], check=False, timeout=120)
        if probe.returncode != 0 and "rlimit" in probe.stderr:
            # podman sets RLIMIT_NOFILE/NPROC above the current hard limits
            # for root, which needs CAP_SYS_RESOURCE; some VMs' root lacks it.
            self.podman_run += ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
            note = "podman's default rlimits could not be set"
            if not has_capability(24):  # CAP_SYS_RESOURCE
                note += " (root has no CAP_SYS_RESOURCE here)"
            self.peers["podman"]["note"] = note + ": ran with --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
            self.peers["podman"]["default_rlimits_error"] = tail(probe.stderr, 1)
            self.notes.append(self.peers["podman"]["note"])
            probe = sh(self.podman + self.podman_run + ["--rm", IMAGE, "/bin/true"], check=False, timeout=120)
        if probe.returncode != 0:
            raise StepFailed(f"podman run: exit {probe.returncode}: {tail(probe.stderr)}")
        info = sh(self.podman + ["info", "--format", "{{.Host.OCIRuntime.Name}}"], check=False).stdout.strip()
        self.peers["podman"]["oci_runtime"] = info
        store = sh(self.podman + ["info", "--format", "{{.Store.GraphRoot}} {{.Store.RunRoot}}"],
                   check=False).stdout.split()
        if len(store) == 2:
            self.notes.append(f"podman: root {place(store[0])}, run dir {place(store[1])}")

    def start_runc(self):
        exe = shutil.which("runc")
        if not exe:
            return self.peer("runc", False, "runc is not installed")
        self.peer("runc", version=sh([exe, "--version"]).stdout.splitlines()[0])
        bundle = os.path.join(self.work, "runc", "bundle")
        state = os.path.join(self.work, "runc", "state")
        os.makedirs(bundle)
        os.makedirs(state)
        sh([exe, "spec"], cwd=bundle)
        cfg_path = os.path.join(bundle, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["/bin/true"]
        cfg["root"]["path"] = self.rootfs  # the one the kernel floor uses too
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2)
        # `runc run` without --detach deletes the container when its process
        # exits, so one fixed id serves every sequential run.
        self.runc_run = [exe, "--root", state, "run", "-b", bundle, RUNC_ID]
        self.on_exit("delete the runc container", lambda: sh([exe, "--root", state, "delete", "-f", RUNC_ID],
                                                           check=False))
        sh(self.runc_run)
        # A second bundle, same rootfs, whose process keeps running: what
        # `runc exec` (the exec group's reference) goes into.
        exec_bundle = os.path.join(self.work, "runc", "exec-bundle")
        os.makedirs(exec_bundle)
        cfg["process"]["args"] = list(LONG_RUNNING)
        with open(os.path.join(exec_bundle, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        self.runc_exec_bundle = exec_bundle
        self.runc_root = state

    def start_floor(self):
        missing = [c for c in ("unshare", "chroot") if not shutil.which(c)]
        if missing:
            return self.peer("floor", False, f"{' and '.join(missing)} not found (util-linux, coreutils)")
        version = sh(["unshare", "--version"], check=False).stdout.strip()
        self.peer("floor", version=version or "unshare")
        self.floor_run = [*FLOOR, self.rootfs, "/bin/true"]
        sh(self.floor_run)

    def berth_daemon_pids(self):
        """berthd and, once an exec started it, its exec zygote."""
        zygote = [p for p, pp, comm, _ in processes() if comm == "berth-zygote" and pp == self.daemon.pid]
        return [self.daemon.pid] + zygote

    def daemon_rss(self, engine, samples=3):
        if engine == "berth":
            return sample_memory(self.berth_daemon_pids, "berthd + its exec zygote", samples=samples)
        return sample_memory(self.dockerd_pids, "dockerd + containerd", samples=samples)

    def top_cgroups(self):
        return [os.path.join(h, d) for h in cgroup_hierarchies() for d in os.listdir(h)
                if os.path.isdir(os.path.join(h, d))]
