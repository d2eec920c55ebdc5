"""The host's networking state a dockerd with its default settings changes,
recorded before bench/run starts one and put back after it stopped.

dockerd with iptables on (its default) creates the docker0 bridge, the
`ip filter`/`ip nat` tables of iptables-nft with its DOCKER* chains (and a
FORWARD policy of DROP), and sets net.ipv4.ip_forward. None of that goes away
when dockerd stops, so the bench undoes it: iptables tables that existed
before get their saved rules back (iptables-restore), ip/ip6 tables that did
not exist are deleted, docker0 goes if it was absent, the sysctls get their
values back. berth's own tables (family inet) and every table that existed
before are never deleted.
"""

import json
import re
import shutil
import subprocess

# Sysctls dockerd sets: forwarding, and bridged traffic through iptables
# (it loads br_netfilter where that is a module).
SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables")
# The nft families iptables-nft and ip6tables-nft make their tables in.
FAMILIES = ("ip", "ip6")
SAVERS = {"iptables": ("iptables-save", "iptables-restore"), "ip6tables": ("ip6tables-save", "ip6tables-restore")}
BRIDGE = "docker0"


def _run(cmd, stdin=None):
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)


def nft_tables():
    """{(family, name)} of every nft table; None when nft cannot list them."""
    if not shutil.which("nft"):
        return None
    p = _run(["nft", "-j", "list", "tables"])
    if p.returncode != 0:
        return None
    return {(o["table"]["family"], o["table"]["name"])
            for o in json.loads(p.stdout or "{}").get("nftables", []) if "table" in o}


def _save(tool):
    exe = shutil.which(SAVERS[tool][0])
    if not exe:
        return None
    p = _run([exe])
    return p.stdout if p.returncode == 0 else None


def _tables(text):
    """iptables-save output as {table: its lines}, without comments and
    packet counters: what restoring it would change."""
    out, table = {}, None
    for line in (text or "").splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("*"):
            table = line[1:]
            out[table] = []
        elif table is not None:
            out[table].append(re.sub(r"\s*\[\d+:\d+\]$", "", line))
    return out


def _changed(tool, saved):
    """The tables of a saved dump whose rules are no longer those."""
    before, now = _tables(saved), _tables(_save(tool))
    return sorted(t for t, lines in before.items() if now.get(t) != lines)


def _sysctl(name):
    try:
        with open(f"/proc/sys/{name}") as f:
            return f.read().strip()
    except OSError:
        return None


def _links():
    # `ip`, not /sys/class/net: sysfs shows the netns it was mounted in.
    p = _run(["ip", "-j", "link", "show"])
    return {link["ifname"] for link in json.loads(p.stdout or "[]")} if p.returncode == 0 else set()


class HostNetwork:
    """A snapshot of the state above; restore() puts it back."""

    def __init__(self):
        self.tables = nft_tables()
        self.saved = {tool: _save(tool) for tool in SAVERS}
        self.bridge = BRIDGE in _links()
        self.sysctls = {name: _sysctl(name) for name in SYSCTLS}

    def describe(self):
        return {"nft_tables": sorted(f"{f} {n}" for f, n in self.tables or ()),
                "docker0": self.bridge, "sysctls": self.sysctls,
                "iptables_tables": {t: sorted(_tables(s)) for t, s in self.saved.items() if s is not None}}

    def restore(self):
        """Puts the snapshot back; returns (what it did, what failed)."""
        done, failed = [], []
        # Tables that existed before: their rules as they were (this drops
        # the DOCKER* chains and the FORWARD policy dockerd added to them).
        for tool, text in self.saved.items():
            changed = _changed(tool, text) if text else []
            if not changed:
                continue
            # Only the tables in the dump are replaced, each as a whole.
            p = _run([SAVERS[tool][1]], stdin=text)
            what = f"{SAVERS[tool][1]} of the saved {', '.join(changed)}"
            (done if p.returncode == 0 else failed).append(
                what + ("" if p.returncode == 0 else f": {p.stderr.strip()}"))
        # Tables that did not: gone, with whatever chains dockerd made in them.
        now = nft_tables()
        if self.tables is not None and now is not None:
            for family, name in sorted(now - self.tables):
                if family not in FAMILIES:
                    continue  # berth's (inet) and any other tool's
                p = _run(["nft", "delete", "table", family, name])
                (done if p.returncode == 0 else failed).append(
                    f"nft delete table {family} {name}" + ("" if p.returncode == 0 else f": {p.stderr.strip()}"))
        if not self.bridge and BRIDGE in _links():
            p = _run(["ip", "link", "delete", BRIDGE])
            (done if p.returncode == 0 else failed).append(
                f"ip link delete {BRIDGE}" + ("" if p.returncode == 0 else f": {p.stderr.strip()}"))
        for name, value in self.sysctls.items():
            now_value = _sysctl(name)
            if value is None or now_value == value:
                continue
            try:
                with open(f"/proc/sys/{name}", "w") as f:
                    f.write(value)
                done.append(f"{name.replace('/', '.')} {now_value} -> {value}")
            except OSError as e:
                failed.append(f"{name.replace('/', '.')} back to {value}: {e}")
        return done, failed

    def differences(self):
        """What is still not as in the snapshot (after restore())."""
        out = []
        now = nft_tables()
        if self.tables is not None and now is not None:
            extra = sorted(f"{f} {n}" for f, n in now - self.tables if f in FAMILIES)
            missing = sorted(f"{f} {n}" for f, n in self.tables - now if f in FAMILIES)
            if extra:
                out.append(f"nft tables not there before: {', '.join(extra)}")
            if missing:
                out.append(f"nft tables gone: {', '.join(missing)}")
        for tool, text in self.saved.items():
            changed = _changed(tool, text) if text else []
            if changed:
                out.append(f"{SAVERS[tool][0]}: {', '.join(changed)} not as before")
        if (BRIDGE in _links()) != self.bridge:
            out.append(f"{BRIDGE} {'appeared' if not self.bridge else 'disappeared'}")
        for name, value in self.sysctls.items():
            if _sysctl(name) != value:
                out.append(f"{name.replace('/', '.')} is {_sysctl(name)}, was {value}")
        return out
