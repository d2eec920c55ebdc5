"""What the parts of bench/run share: the names it gives things, running
commands, processes and their memory, mounts and cgroups, and the Timer
(hyperfine, or one run timed here)."""

import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

import stack as stackdef

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
IMAGE = "berthbench-busybox"  # docker and podman
RUNC_ID = "berthbench-runc"
PODMAN_MEM = "berthbench-mem"
LONG_RUNNING = stackdef.COMMAND
# Groups of steps `--only` can pick (full mode).
GROUPS = ("run", "stacks", "scale", "images", "build", "exec", "net", "dockerapi")
# Stack sizes: the targets are set at 20 and 200; --quick only proves that
# every step works, at sizes that take seconds.
SIZES = (20, 200)
QUICK_SIZES = (5, 10)
# One network of N (issue 23): growth from 200 to 1000 must stay linear.
SCALE_SIZES = (200, 1000)
QUICK_SCALE_SIZES = (20,)
# docker-compose is measured at the smaller size only (1000 takes it minutes).
SCALE_PEER_MAX = 200


class StepFailed(Exception):
    pass


def settled(cmd, seconds=0.5):
    """cmd, then a pause: the prepare step before a timed stop. "Running" means
    the process has started, not that its shell has installed its TERM trap
    yet; a SIGTERM in between is ignored (PID 1) and the stop waits out the
    whole grace period, for any engine."""
    return ["sh", "-c", f"{shlex.join(cmd)} >/dev/null 2>&1 && sleep {seconds}"]


def log(*parts):
    print("bench:", *parts, file=sys.stderr, flush=True)


def tail(text, lines=8):
    return "\n".join((text or "").strip().splitlines()[-lines:])


def sh(cmd, check=True, timeout=300, **kw):
    """Runs cmd (a list), capturing its output; raises StepFailed on failure."""
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, **kw)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StepFailed(f"{shlex.join(cmd)}: {e}") from None
    if check and p.returncode != 0:
        raise StepFailed(f"{shlex.join(cmd)}: exit {p.returncode}: {tail(p.stderr or p.stdout)}")
    return p


def ok(cmd, timeout=60):
    try:
        return sh(cmd, check=False, timeout=timeout).returncode == 0
    except StepFailed:
        return False


def processes():
    """(pid, ppid, comm, argv) of every process."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        out.append((int(d), ppid, comm, argv))
    return out


def memory_of(pid):
    """(VmRSS, Pss) of pid in KiB; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        pss = None
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
        return rss, pss
    except (OSError, StopIteration):
        return None


def sample_memory(find_pids, what, combine="sum", samples=3):
    """Samples the RSS (and PSS) of find_pids() `samples` times, 0.5 s apart.
    combine="sum" adds the processes up (a daemon and its helper);
    combine="median" takes the median process (one shim out of twenty).
    Returns the median sample, in MiB."""
    rss_s, pss_s, pids = [], [], []
    for i in range(samples):
        if i:
            time.sleep(0.5)
        pids = find_pids()
        mems = [m for m in (memory_of(p) for p in pids) if m]
        if not mems:
            raise StepFailed(f"no process found for {what}")
        rss = [m[0] for m in mems]
        pss = [m[1] or 0 for m in mems]
        pick = sum if combine == "sum" else statistics.median
        rss_s.append(pick(rss) / 1024)
        pss_s.append(pick(pss) / 1024)
    return {
        "median": round(statistics.median(rss_s), 2),
        "pss": round(statistics.median(pss_s), 2),
        "processes": len(pids),
        "what": what,
        "samples": samples,
    }


def stop_child(child, timeout):
    """SIGTERM a child we started, SIGKILL after timeout; returns its exit status."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode


def signal_and_wait(pid, timeout):
    """SIGTERM a process that is not our child, SIGKILL after timeout."""
    def alive():
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while alive() and time.time() < deadline:
            time.sleep(0.1)
        if not alive():
            return


def has_capability(bit):
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(eff >> bit & 1)


def free_subnet():
    """A /24 under 10.213.0.0/16 that no host route covers (so not another engine's bench network).

    Each engine's bench network gets its own: when two engines pick the same
    subnet from their default pools (berth's and podman's both start at
    10.89.0.0/24), their bridges shadow each other's routes, and a container's
    DNS query reaches the other engine's server, which refuses it.
    """
    import ipaddress
    routed = []
    for line in sh(["ip", "-4", "route", "show", "table", "all"], check=False).stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        try:
            routed.append(ipaddress.ip_network(first if "/" in first else first + "/32", strict=False))
        except ValueError:
            continue
    for third in range(256):
        net = ipaddress.ip_network(f"10.213.{third}.0/24")
        if not any(net.overlaps(r) for r in routed if r.prefixlen > 0):
            return str(net)
    raise StepFailed("no free /24 under 10.213.0.0/16 for a bench network")


def place(path):
    """A directory and the filesystem it is on, for the notes."""
    fs = sh(["findmnt", "-n", "-o", "FSTYPE,SOURCE,TARGET", "--target", path], check=False).stdout.split() if path else []
    return f"{path or '?'} ({fs[0]} on {fs[1]}, mounted at {fs[2]})" if len(fs) == 3 else f"{path or '?'}"


def mountpoints():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            out.append(mp.encode().decode("unicode_escape"))  # \040 and friends
    return out


def cgroup_hierarchies():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                out.append(fields[4])
    return out


def remove_cgroup_tree(path):
    """Kills what is in a cgroup tree and removes it, deepest first."""
    for dirpath, _, _ in sorted(os.walk(path), key=lambda w: -w[0].count("/")):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                for pid in f.read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        except OSError:
            pass
        for _ in range(50):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


class Timer:
    """hyperfine in full mode; one run timed here in quick mode (or when
    hyperfine could not be installed)."""

    def __init__(self, results_dir, quick):
        self.dir = results_dir
        self.hyperfine = None if quick else shutil.which("hyperfine")
        self.quick = quick

    def measure(self, key, name, cmd, prepare=None, warmup=3, min_runs=15):
        """Times cmd (a list); prepare (a list) runs untimed before every run.
        Returns the summary stored in results.json."""
        raw = os.path.join(self.dir, f"{'hyperfine' if self.hyperfine else 'timing'}-{key}.json")
        if self.hyperfine:
            hf = [self.hyperfine, "-N", "--style", "basic", "--warmup", str(warmup), "--min-runs", str(min_runs),
                  "--export-json", raw, "--command-name", name]
            if prepare:
                hf += ["--prepare", shlex.join(prepare)]
            log(f"{name}: hyperfine --warmup {warmup} --min-runs {min_runs}")
            p = subprocess.run(hf + [shlex.join(cmd)], stdin=subprocess.DEVNULL, stdout=sys.stderr, text=True)
            if p.returncode != 0:
                # hyperfine hides the command's output: run it once to show why.
                if prepare:
                    sh(prepare, check=False)
                again = sh(cmd, check=False)
                raise StepFailed(f"{shlex.join(cmd)}: hyperfine failed; a run by hand exited "
                                 f"{again.returncode}: {tail(again.stderr or again.stdout)}")
            with open(raw) as f:
                r = json.load(f)["results"][0]
            times = r["times"]
            tool = "hyperfine"
        else:
            runs = 1 if self.quick else max(min_runs, 5)
            warm = 0 if self.quick else warmup
            times = []
            for i in range(warm + runs):
                if prepare:
                    sh(prepare)
                t0 = time.perf_counter()
                p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
                t = time.perf_counter() - t0
                if p.returncode != 0:
                    raise StepFailed(f"{shlex.join(cmd)}: exit {p.returncode}: {tail(p.stderr or p.stdout)}")
                if i >= warm:
                    times.append(t)
            with open(raw, "w") as f:
                json.dump({"results": [{"command": name, "times": times, "median": statistics.median(times)}]}, f)
            tool = "bench/run (time.perf_counter)"
            log(f"{name}: {statistics.median(times) * 1000:.1f} ms ({len(times)} run(s))")
        ms = [t * 1000 for t in times]
        return {
            "median": round(statistics.median(ms), 2),
            "mean": round(statistics.mean(ms), 2),
            "stddev": round(statistics.stdev(ms), 2) if len(ms) > 1 else None,
            "min": round(min(ms), 2),
            "max": round(max(ms), 2),
            "runs": len(ms),
            "warmup": 0 if self.quick else warmup,
            "command": shlex.join(cmd),
            "prepare": shlex.join(prepare) if prepare else None,
            "tool": tool,
            "raw": os.path.basename(raw),
        }
