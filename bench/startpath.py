"""The start-path profile (issue 23): where each millisecond of a
`berth run --rm` goes, from the daemon's `berth::startpath` debug events
(src/runtime/profile.rs). Each event carries its wall-clock time in
microseconds (t_us), the daemon's and the shim's alike, so the stages of
both processes line up with the bench's own clock around the CLI."""

import re
import statistics
import subprocess
import time

from common import StepFailed, log, tail

EVENT = re.compile(r'berth::startpath: .*?stage="([^"]*)" t_us=(\d+)')
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The daemon's log filter that turns the events on (bench/peers.py).
LOG_FILTER = "info,berth::startpath=debug"


def events(log_path, offset):
    """(t_us, stage) of every start-path event after byte `offset`."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        text = ANSI.sub("", f.read().decode("utf-8", "replace"))
    return [(int(m.group(2)), m.group(1)) for m in map(EVENT.search, text.splitlines()) if m]


def profile(cmd, log_path, runs, warmup=2):
    """Runs cmd (a `berth run --rm`) runs + warmup times, one at a time, and
    returns ([{stage, at_ms, step_ms, seen}], median CLI wall ms, runs): each
    stage's median time since the CLI was exec'd, in that order, and the
    step from the stage before. Stages of the daemon and the shim overlap on
    the way out, so a step is the time between medians, not one process's."""
    per_run = []
    walls = []
    for i in range(warmup + runs):
        with open(log_path, "rb") as f:
            offset = f.seek(0, 2)
        t0 = time.time_ns() // 1000
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        t1 = time.time_ns() // 1000
        if p.returncode != 0:
            raise StepFailed(f"start-path profile: exit {p.returncode}: {tail(p.stderr or p.stdout)}")
        time.sleep(0.05)  # the daemon's log is written by now
        if i < warmup:
            continue
        marks = [e for e in events(log_path, offset) if t0 <= e[0] <= t1]
        if not marks:
            raise StepFailed("start-path profile: the daemon logged no berth::startpath events "
                             f"(is it started with BERTH_LOG={LOG_FILTER}?)")
        # A stage reached twice (a second cleanup) counts at its first.
        first = {}
        for t, stage in sorted(marks):
            first.setdefault(stage, (t - t0) / 1000)
        first["cli returned"] = (t1 - t0) / 1000
        per_run.append(first)
        walls.append((t1 - t0) / 1000)
    stages = {}
    for run in per_run:
        for stage, at in run.items():
            stages.setdefault(stage, []).append(at)
    rows = sorted((statistics.median(ats), stage, len(ats)) for stage, ats in stages.items())
    out, before = [], 0.0
    for at, stage, seen in rows:
        out.append({"stage": stage, "at_ms": round(at, 2), "step_ms": round(at - before, 2), "seen": seen})
        before = at
    return out, statistics.median(walls), len(per_run)


def print_profile(prof):
    steps, wall, runs = prof["steps"], prof["wall_ms"], prof["runs"]
    print()
    print(f"Start path of berth run --rm --network none busybox /bin/true: medians of {runs} runs, "
          f"CLI wall time {wall:.1f} ms (at: ms since the CLI was exec'd; step: since the line above)")
    print(f"  {'at':>7}  {'step':>6}  stage")
    for s in steps:
        seen = "" if s["seen"] == runs else f"  (in {s['seen']} of {runs} runs)"
        print(f"  {s['at_ms']:7.2f}  {s['step_ms']:6.2f}  {s['stage']}{seen}")
    log(f"start path: {len(steps)} stages")
