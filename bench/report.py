"""The report: the table's rows, ratios to berth, the targets, scaling,
the printed table and results.json (mixed into bench/run's Bench)."""

import datetime
import json
import os
import platform

import startpath
from common import SCALE_SIZES, SIZES, log, sh

ENGINES = ["berth", "docker", "podman", "runc", "floor", "compose", "skopeo"]
LEGEND = {
    "docker": "docker run; daemon rows: dockerd + containerd; shim: containerd-shim-runc-v2",
    "podman": "podman run; shim: conmon",
    "runc": "runc run on an OCI bundle (no daemon, no seccomp, no limits)",
    "floor": "the kernel floor: unshare --fork --pid --mount --uts --ipc --net chroot ROOTFS /bin/true",
    "compose": "docker-compose up -d / up -d again / up -d with 1 service changed / down",
    "skopeo": "skopeo copy docker://REF oci:DIR + umoci unpack (download, verify, unpack; no daemon)",
}


class Report:
    def metric_rows(self):
        """(key, title, unit, peer labels) of every row, in table order: each
        stack step at both sizes next to each other, so growth shows."""
        rows = [("run", "run --rm busybox /bin/true", "ms", {"floor": "unshare + chroot"}),
                ("run_userns", "run --rm --userns=auto busybox /bin/true", "ms",
                 {"podman": "podman run --userns=auto (runc)"})]
        steps = [
            ("apply", "apply {n} containers (until Running)", "ms", {"compose": "docker-compose up -d"}),
            ("noop", "no-op re-apply of the {n}", "ms", {"compose": "docker-compose up -d (again)"}),
            ("change", "re-apply, 1 of {n} changed (until Running)", "ms",
             {"compose": "docker-compose up -d, 1 service changed"}),
            ("delete", "delete the {n}", "ms", {"compose": "docker-compose down"}),
        ]
        for step, title, unit, labels in steps:
            rows += [(f"{step}_{n}", title.format(n=n), unit, labels) for n in self.sizes]
        net_steps = [
            ("netapply", "apply {n} containers on ONE network (until Running)", "ms",
             {"compose": "docker-compose up -d, project network"}),
            ("netnoop", "no-op re-apply of the {n} on one network", "ms", {"compose": "docker-compose up -d (again)"}),
            ("netdelete", "delete the {n} on one network", "ms", {"compose": "docker-compose down"}),
            ("netrss", "daemon RSS, {n} running on one network", "MiB", {"docker": "dockerd+containerd"}),
        ]
        for step, title, unit, labels in net_steps:
            rows += [(f"{step}_{n}", title.format(n=n), unit, labels) for n in self.scale_sizes]
        rows += [
            ("pull", "pull a multi-layer Debian image (~200 MB), cold", "ms",
             {"skopeo": "skopeo copy + umoci unpack"}),
            ("run_pulled", "run --rm on the pulled Debian image", "ms", {}),
            ("run_layers", "run --rm on a 20-layer busybox image", "ms", {}),
            ("build_cold", "build: Debian base, 2 RUN, COPY of 2000 files, no cache", "ms", {}),
            ("build_noop", "build again, nothing changed", "ms", {}),
            ("build_change", "build again, one source file changed", "ms", {}),
            ("exec", "exec CONTAINER /bin/true", "ms",
             {"runc": "runc exec (no daemon)", "floor": "nsenter -a into runc's container"}),
            ("update", "update --memory 96m of a running container", "ms", {}),
            ("gitops_sync", "git commit to its container running, via source sync (berth only)", "ms", {}),
            ("run_bridge", "run --rm on a bridge network", "ms", {}),
            ("port_req", "published port on 127.0.0.1: time per HTTP request (wrk, 16 conns)", "us", {}),
            ("port_mib", "published port on 127.0.0.1: time per MiB transferred (wrk, 8 MiB file)", "ms", {}),
            ("dns", "DNS lookup of a peer's name from a container (busybox nslookup)", "ms",
             {"docker": "embedded DNS, 127.0.0.11", "podman": "aardvark-dns"}),
        ]
        rows.append(("dapi_run", "docker run --rm busybox /bin/true, the docker CLI on each socket", "ms",
                     {"docker": "dockerd"}))
        small = self.sizes[0]
        rows += [(f"dapi_up_{small}", f"docker-compose up -d of {small}, on each socket", "ms",
                  {"compose": "dockerd"}),
                 (f"dapi_down_{small}", f"docker-compose down of {small}, on each socket", "ms",
                  {"compose": "dockerd"})]
        rows.append(("rss_idle", "daemon RSS, idle", "MiB", {"docker": "dockerd+containerd"}))
        rows += [(f"rss_{n}", f"daemon RSS, {n} running", "MiB", {"docker": "dockerd+containerd, compose stack"})
                 for n in self.sizes]
        rows += [
            ("rss_shim", "RSS of one shim", "MiB", {"docker": "containerd-shim-runc-v2", "podman": "conmon"}),
            ("rss_after", "daemon RSS, idle after the runs", "MiB", {"docker": "dockerd+containerd"}),
        ]
        return rows

    def ratio(self, metric, engine):
        vals = self.metrics.get(metric, {}).get("values", {})
        if "berth" not in vals or engine not in vals or not vals["berth"]["median"]:
            return None
        return round(vals[engine]["median"] / vals["berth"]["median"], 2)

    def targets(self):
        def med(metric, engine):
            v = self.metrics.get(metric, {}).get("values", {}).get(engine)
            return v and v["median"]

        out = []

        def target(text, needs, check, detail):
            missing = [f"{e} {m}" for m, e in needs if med(m, e) is None]
            if missing:
                why = ("quick mode measures berth only, at N=" + " and ".join(map(str, self.sizes))
                       if self.quick else "not measured: " + ", ".join(missing))
                out.append({"target": text, "met": None, "detail": why})
            else:
                out.append({"target": text, "met": bool(check()), "detail": detail()})

        r = self.ratio
        small, large = SIZES

        def times(metric, other):
            """How many times berth's median is other's (berth / other)."""
            return round(med(metric, "berth") / med(metric, other), 2)

        target("berth run --rm is >= 8x faster than docker run --rm", [("run", "berth"), ("run", "docker")],
               lambda: r("run", "docker") >= 8, lambda: f"{r('run', 'docker')}x")
        target("berth run --rm is no slower than runc run", [("run", "berth"), ("run", "runc")],
               lambda: med("run", "berth") <= med("run", "runc"),
               lambda: f"berth {med('run', 'berth')} ms, runc {med('run', 'runc')} ms ({r('run', 'runc')}x)")
        target("berth run --rm takes <= 3x the kernel floor (unshare + chroot)", [("run", "berth"), ("run", "floor")],
               lambda: times("run", "floor") <= 3,
               lambda: f"berth {med('run', 'berth')} ms / floor {med('run', 'floor')} ms = {times('run', 'floor')}x")
        target("berth run --rm takes <= half of runc run", [("run", "berth"), ("run", "runc")],
               lambda: times("run", "runc") <= 0.5,
               lambda: f"berth {med('run', 'berth')} ms / runc {med('run', 'runc')} ms = {times('run', 'runc')}x")
        def fastest_peer(metric):
            vals = {e: v["median"] for e, v in self.metrics.get(metric, {}).get("values", {}).items()
                    if e != "berth" and v and v.get("median")}
            return min(vals.items(), key=lambda kv: kv[1]) if vals else (None, None)

        for metric, factor, what in (("build_cold", 1.2, "a cold build"), ("build_noop", 2, "a no-op rebuild"),
                                     ("build_change", 2, "a rebuild after one file changed")):
            peer, _ = fastest_peer(metric)
            target(f"berth build is >= {factor}x faster than the fastest peer on {what}",
                   [(metric, "berth")] + ([(metric, peer)] if peer else [(metric, "docker")]),
                   lambda metric=metric, factor=factor: r(metric, fastest_peer(metric)[0]) >= factor,
                   lambda metric=metric: f"{r(metric, fastest_peer(metric)[0])}x {fastest_peer(metric)[0]} "
                                         f"(berth {med(metric, 'berth')} ms, {fastest_peer(metric)[0]} "
                                         f"{fastest_peer(metric)[1]} ms)")
        target("the docker CLI's run --rm is >= 5x faster on berth's socket than on dockerd's",
               [("dapi_run", "berth"), ("dapi_run", "docker")],
               lambda: r("dapi_run", "docker") >= 5, lambda: f"{r('dapi_run', 'docker')}x")
        for step in ("up", "down"):
            target(f"docker-compose {step} of {small} is >= 5x faster on berth's socket than on dockerd's",
                   [(f"dapi_{step}_{small}", "berth"), (f"dapi_{step}_{small}", "compose")],
                   lambda step=step: r(f"dapi_{step}_{small}", "compose") >= 5,
                   lambda step=step: f"{r(f'dapi_{step}_{small}', 'compose')}x (berth "
                                     f"{med(f'dapi_{step}_{small}', 'berth')} ms, dockerd "
                                     f"{med(f'dapi_{step}_{small}', 'compose')} ms)")
        target(f"{small}-container apply is >= 10x faster than docker-compose up -d",
               [(f"apply_{small}", "berth"), (f"apply_{small}", "compose")],
               lambda: r(f"apply_{small}", "compose") >= 10, lambda: f"{r(f'apply_{small}', 'compose')}x")
        target(f"{large}-container apply is >= 15x faster than docker-compose up -d",
               [(f"apply_{large}", "berth"), (f"apply_{large}", "compose")],
               lambda: r(f"apply_{large}", "compose") >= 15,
               lambda: f"{r(f'apply_{large}', 'compose')}x (berth {med(f'apply_{large}', 'berth')} ms, "
                       f"docker-compose {med(f'apply_{large}', 'compose')} ms)")
        big, huge = SCALE_SIZES
        target(f"{huge} containers on one network: apply grows at most linearly from {big} (< 5.5x for 5x)",
               [(f"netapply_{big}", "berth"), (f"netapply_{huge}", "berth")],
               lambda: med(f"netapply_{huge}", "berth") / med(f"netapply_{big}", "berth") < 5.5,
               lambda: f"{round(med(f'netapply_{huge}', 'berth') / med(f'netapply_{big}', 'berth'), 2)}x "
                       f"({med(f'netapply_{big}', 'berth')} ms -> {med(f'netapply_{huge}', 'berth')} ms)")
        target(f"no-op re-apply of {huge} on one network takes < 50 ms", [(f"netnoop_{huge}", "berth")],
               lambda: med(f"netnoop_{huge}", "berth") < 50, lambda: f"{med(f'netnoop_{huge}', 'berth')} ms")
        target(f"daemon RSS with {huge} on one network < 40 MiB", [(f"netrss_{huge}", "berth")],
               lambda: med(f"netrss_{huge}", "berth") < 40, lambda: f"{med(f'netrss_{huge}', 'berth')} MiB")
        target(f"delete of {huge} on one network grows at most linearly from {big} (< 5.5x)",
               [(f"netdelete_{big}", "berth"), (f"netdelete_{huge}", "berth")],
               lambda: med(f"netdelete_{huge}", "berth") / med(f"netdelete_{big}", "berth") < 5.5,
               lambda: f"{round(med(f'netdelete_{huge}', 'berth') / med(f'netdelete_{big}', 'berth'), 2)}x")
        target("daemon RSS, idle, < 15 MiB", [("rss_idle", "berth")],
               lambda: med("rss_idle", "berth") < 15, lambda: f"{med('rss_idle', 'berth')} MiB")
        target(f"no-op re-apply of {small} takes < 20 ms", [(f"noop_{small}", "berth")],
               lambda: med(f"noop_{small}", "berth") < 20, lambda: f"{med(f'noop_{small}', 'berth')} ms")
        target(f"no-op re-apply of {large} takes < 30 ms", [(f"noop_{large}", "berth")],
               lambda: med(f"noop_{large}", "berth") < 30, lambda: f"{med(f'noop_{large}', 'berth')} ms")
        target(f"1 changed container of {large} is Running again in < 100 ms", [(f"change_{large}", "berth")],
               lambda: med(f"change_{large}", "berth") < 100,
               lambda: f"{med(f'change_{large}', 'berth')} ms" + (
                   f" (docker-compose {med(f'change_{large}', 'compose')} ms, {r(f'change_{large}', 'compose')}x)"
                   if med(f"change_{large}", "compose") else ""))
        target(f"delete of {small} is >= 10x faster than docker-compose down",
               [(f"delete_{small}", "berth"), (f"delete_{small}", "compose")],
               lambda: r(f"delete_{small}", "compose") >= 10, lambda: f"{r(f'delete_{small}', 'compose')}x")
        fastest_pull = min((med("pull", e), e) for e in ("docker", "podman", "skopeo")
                           if med("pull", e)) if any(med("pull", e) for e in ("docker", "podman", "skopeo")) else None
        target("berth pull (cold) is >= 1.5x faster than the fastest of docker pull, podman pull, skopeo + umoci",
               [("pull", "berth"), ("pull", "docker"), ("pull", "podman"), ("pull", "skopeo")],
               lambda: fastest_pull[0] / med("pull", "berth") >= 1.5,
               lambda: f"berth {med('pull', 'berth')} ms; fastest peer {fastest_pull[1]} {fastest_pull[0]} ms "
                       f"({round(fastest_pull[0] / med('pull', 'berth'), 2)}x)")
        target("layers do not slow run --rm: 20-layer and pulled images start as fast as the imported one (<= 1.2x)",
               [("run", "berth"), ("run_layers", "berth"), ("run_pulled", "berth")],
               lambda: max(med("run_layers", "berth"), med("run_pulled", "berth")) <= 1.2 * med("run", "berth"),
               lambda: f"imported {med('run', 'berth')} ms, 20 layers {med('run_layers', 'berth')} ms, "
                       f"pulled Debian {med('run_pulled', 'berth')} ms")
        target("a user namespace (--userns=auto, idmapped layers) adds at most 2 ms to berth run --rm",
               [("run", "berth"), ("run_userns", "berth")],
               lambda: med("run_userns", "berth") - med("run", "berth") <= 2,
               lambda: f"berth +{med('run_userns', 'berth') - med('run', 'berth'):.1f} ms "
                       f"({med('run', 'berth')} -> {med('run_userns', 'berth')} ms)")
        target("berth exec is >= 8x faster than docker exec", [("exec", "berth"), ("exec", "docker")],
               lambda: r("exec", "docker") >= 8,
               lambda: f"{r('exec', 'docker')}x (berth {med('exec', 'berth')} ms, docker {med('exec', 'docker')} ms)")
        target("berth update --memory is >= 10x faster than docker update --memory",
               [("update", "berth"), ("update", "docker")],
               lambda: r("update", "docker") >= 10,
               lambda: f"{r('update', 'docker')}x (berth {med('update', 'berth')} ms, docker {med('update', 'docker')} ms)")
        def added(engine):
            return med("run_bridge", engine) - med("run", engine)
        target("bridge networking adds < 1/5 of what it adds to docker run (run on a bridge minus run --network none)",
               [("run", "berth"), ("run_bridge", "berth"), ("run", "docker"), ("run_bridge", "docker")],
               lambda: added("berth") < added("docker") / 5,
               lambda: f"berth +{added('berth'):.1f} ms, docker +{added('docker'):.1f} ms")
        target("a published port serves at least as many requests/s as docker's (userland proxy)",
               [("port_req", "berth"), ("port_req", "docker")],
               lambda: med("port_req", "berth") <= med("port_req", "docker"),
               lambda: f"berth {1e6 / med('port_req', 'berth'):.0f} req/s, docker {1e6 / med('port_req', 'docker'):.0f}")
        target("berth daemon idle RSS < 15 MiB", [("rss_idle", "berth")], lambda: med("rss_idle", "berth") < 15,
               lambda: f"{med('rss_idle', 'berth')} MiB")
        target(f"berth daemon RSS with {large} running < 30 MiB", [(f"rss_{large}", "berth")],
               lambda: med(f"rss_{large}", "berth") < 30,
               lambda: f"{med(f'rss_{large}', 'berth')} MiB" + (
                   f" (dockerd+containerd {med(f'rss_{large}', 'docker')} MiB, {r(f'rss_{large}', 'docker')}x)"
                   if med(f"rss_{large}", "docker") else ""))
        target("a berth shim's RSS <= conmon's", [("rss_shim", "berth"), ("rss_shim", "podman")],
               lambda: med("rss_shim", "berth") <= med("rss_shim", "podman"),
               lambda: f"berth-shim {med('rss_shim', 'berth')} MiB, conmon {med('rss_shim', 'podman')} MiB")
        return out

    def scaling(self):
        """For each stack step, how much the median grew from the small stack
        to the large one, per engine: above the size factor, the cost per
        container grows with the number of containers."""
        small, large = self.sizes
        out = {"containers": f"{small} -> {large} ({large / small:g}x)", "steps": {}}
        for step in ("apply", "noop", "change", "delete", "rss"):
            a = self.metrics.get(f"{step}_{small}", {}).get("values", {})
            b = self.metrics.get(f"{step}_{large}", {}).get("values", {})
            for engine in a.keys() & b.keys():
                if a[engine]["median"]:
                    out["steps"].setdefault(step, {})[engine] = round(b[engine]["median"] / a[engine]["median"], 2)
        # Memory per extra running container, in KiB.
        for engine in ("berth", "docker"):
            a = self.metrics[f"rss_{small}"]["values"].get(engine)
            b = self.metrics[f"rss_{large}"]["values"].get(engine)
            if a and b:
                out.setdefault("rss_kib_per_container", {})[engine] = round(
                    (b["median"] - a["median"]) * 1024 / (large - small), 1)
        return out

    def print_report(self, targets):
        cols = [e for e in ENGINES if any(e in m["values"] for m in self.metrics.values())]
        rows = [["", *cols]]
        for key, m in self.metrics.items():
            row = [f"{m['title']} ({m['unit']})"]
            for e in cols:
                v = m["values"].get(e)
                if v is None:
                    row.append("-")
                elif e == "berth":
                    row.append(f"{v['median']:.1f}")
                else:
                    row.append(f"{v['median']:.1f} ({self.ratio(key, e)}x)")
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        print()
        print("Medians; (Nx) = peer / berth, so > 1 means berth is faster or lighter.")
        for r in rows:
            print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
        for e in cols:
            if e in LEGEND:
                print(f"  {e}: {LEGEND[e]}")
        sc = self.scaling()
        if sc["steps"]:
            print()
            print(f"Scaling, {sc['containers']} containers: how many times the median grew")
            names = {"apply": "apply", "noop": "no-op re-apply", "change": "1 changed", "delete": "delete",
                     "rss": "daemon RSS"}
            for step, by in sc["steps"].items():
                print(f"  {names[step]:<15}" + ", ".join(f"{e} {by[e]}x" for e in ENGINES if e in by))
            for e, kib in sc.get("rss_kib_per_container", {}).items():
                print(f"  daemon RSS per extra running container: {e} {kib} KiB")
        if self.startpath:
            startpath.print_profile(self.startpath)
        if self.checks:
            print()
            print("Checks:")
            for c in self.checks:
                print(f"  - {c}")
        print()
        print("Peers:")
        for name in ENGINES:
            p = self.peers.get(name)
            if p is None:
                continue
            state = f"ok, {p.get('version', '?')}" if p["available"] else f"UNAVAILABLE: {p['reason']}"
            print(f"  {name}: {state}")
        print()
        print("Targets:")
        for t in targets:
            mark = {True: "met    ", False: "NOT met", None: "n/a    "}[t["met"]]
            print(f"  [{mark}] {t['target']}: {t['detail']}")
        for title, items in (("Notes", self.notes), ("berth errors", self.errors), ("Left behind", self.leaks)):
            if items:
                print(f"\n{title}:")
                for i in items:
                    print(f"  - {i}")

    def host(self):
        cg = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else (
            "hybrid (v1 + v2 at /sys/fs/cgroup/unified)" if os.path.ismount("/sys/fs/cgroup/unified") else "v1")
        mem = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal:")), "0")
        model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                      if line.startswith("model name")), platform.machine())
        debian = open("/etc/debian_version").read().strip() if os.path.exists("/etc/debian_version") else None
        return {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu": model,
                "memory_mib": int(mem) // 1024, "cgroups": cg, "debian": debian, "systemd": self.systemd,
                "hyperfine": sh(["hyperfine", "--version"], check=False).stdout.strip()
                if self.timer.hyperfine else None}

    def write_results(self, targets):
        results = {
            "mode": "quick" if self.quick else "full",
            "started": self.started,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": self.host(),
            "peers": self.peers,
            "metrics": {k: {**m, "ratios": {e: self.ratio(k, e) for e in m["values"] if e != "berth"}}
                        for k, m in self.metrics.items()},
            "targets": targets,
            "sizes": list(self.sizes),
            "scaling": self.scaling(),
            "checks": self.checks,
            "startpath": self.startpath,
            "memory_note": "VmRSS from /proc/PID/status (PSS from smaps_rollup alongside), MiB; "
                           "median of 3 samples 0.5 s apart; for shims, the median process",
            "errors": self.errors,
            "left_behind": self.leaks,
            "notes": self.notes,
        }
        path = os.path.join(self.results_dir, "results.json")
        with open(path, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
        log(f"wrote {path}")
