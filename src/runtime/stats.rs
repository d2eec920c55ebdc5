//! What `stats` and `top` read: a container's cgroup counters (v1 and v2)
//! and its processes from /proc. Raw counters only: rates (CPU %) are the
//! difference of two samples, computed by whoever shows them.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::cgroup;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One reading of a container's counters (the API's type: it is sent as read).
pub use crate::wire::StatsSample as Sample;

fn read(path: PathBuf) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn number(text: Option<String>) -> Option<u64> {
    text?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Reads the counters of the container at cgroup `path` whose init is `init_pid`.
pub fn sample(path: &str, init_pid: i32) -> Sample {
    let rel = path.trim_start_matches('/');
    let host_memory = host_memory_bytes();
    let mut s = if cgroup::is_unified() {
        let dir = PathBuf::from(CGROUP_ROOT).join(rel);
        let cpu = read(dir.join("cpu.stat"))
            .and_then(|t| keyed(&t, "usage_usec"))
            .unwrap_or(0);
        let usage = number(read(dir.join("memory.current"))).unwrap_or(0);
        let inactive = read(dir.join("memory.stat"))
            .and_then(|t| keyed(&t, "inactive_file"))
            .unwrap_or(0);
        let limit = number(read(dir.join("memory.max"))).unwrap_or(host_memory);
        let (r, w) = read(dir.join("io.stat")).map(|t| io_stat(&t)).unwrap_or_default();
        Sample {
            cpu_ns: cpu * 1000,
            memory_bytes: usage.saturating_sub(inactive),
            memory_limit_bytes: limit.min(host_memory),
            pids: number(read(dir.join("pids.current"))).unwrap_or(0),
            block_read_bytes: r,
            block_write_bytes: w,
            ..Default::default()
        }
    } else {
        let at = |ctrl: &str, file: &str| PathBuf::from(CGROUP_ROOT).join(ctrl).join(rel).join(file);
        let usage = number(read(at("memory", "memory.usage_in_bytes"))).unwrap_or(0);
        let inactive = read(at("memory", "memory.stat"))
            .and_then(|t| keyed(&t, "total_inactive_file"))
            .unwrap_or(0);
        let limit = number(read(at("memory", "memory.limit_in_bytes"))).unwrap_or(host_memory);
        let (r, w) = read(at("blkio", "blkio.throttle.io_service_bytes_recursive"))
            .map(|t| blkio_v1(&t))
            .unwrap_or_default();
        Sample {
            cpu_ns: number(read(at("cpuacct", "cpuacct.usage"))).unwrap_or(0),
            memory_bytes: usage.saturating_sub(inactive),
            memory_limit_bytes: limit.min(host_memory),
            pids: number(read(at("pids", "pids.current"))).unwrap_or(0),
            block_read_bytes: r,
            block_write_bytes: w,
            ..Default::default()
        }
    };
    let (system_ns, cpus) = system_cpu();
    s.system_ns = system_ns;
    s.online_cpus = cpus;
    let (rx, tx) = read(PathBuf::from(format!("/proc/{init_pid}/net/dev")))
        .map(|t| net_dev(&t))
        .unwrap_or_default();
    s.net_rx_bytes = rx;
    s.net_tx_bytes = tx;
    s
}

/// v2 `io.stat`: `maj:min rbytes=N wbytes=N …` per device.
fn io_stat(text: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for field in text.split_whitespace() {
        if let Some(v) = field.strip_prefix("rbytes=") {
            total.0 += v.parse::<u64>().unwrap_or(0);
        } else if let Some(v) = field.strip_prefix("wbytes=") {
            total.1 += v.parse::<u64>().unwrap_or(0);
        }
    }
    total
}

/// v1 `blkio.throttle.io_service_bytes_recursive`: `maj:min Read N` lines.
fn blkio_v1(text: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [_, op, n] = f[..] {
            let n: u64 = n.parse().unwrap_or(0);
            match op {
                "Read" => total.0 += n,
                "Write" => total.1 += n,
                _ => {}
            }
        }
    }
    total
}

/// /proc/PID/net/dev: bytes received and sent on every interface but `lo`.
fn net_dev(text: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if f.len() >= 9 {
            total.0 += f[0];
            total.1 += f[8];
        }
    }
    total
}

/// Host CPU time (ns, all CPUs) and the number of CPUs, from /proc/stat.
fn system_cpu() -> (u64, u32) {
    let Some(text) = read(PathBuf::from("/proc/stat")) else {
        return (0, 1);
    };
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks: u64 = text
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|x| x.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let cpus = text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
        .max(1) as u32;
    (ticks * (1_000_000_000 / hz), cpus)
}

fn host_memory_bytes() -> u64 {
    read(PathBuf::from("/proc/meminfo"))
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX)
}

/// One process of a container, as `top` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    /// Host pid.
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    /// User + system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory in bytes.
    pub rss_bytes: u64,
    pub command: String,
}

/// The processes in the cgroup at `path`, by pid.
pub fn processes(path: &str) -> Vec<ProcessInfo> {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let mut out: Vec<ProcessInfo> = cgroup::pids(path)
        .into_iter()
        .filter_map(|pid| {
            let stat = read(PathBuf::from(format!("/proc/{pid}/stat")))?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            // `rest` starts at field 3 (state): ppid 4, utime 14, stime 15, rss 24.
            let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let status = read(PathBuf::from(format!("/proc/{pid}/status"))).unwrap_or_default();
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let mut command = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            if command.is_empty() {
                let open = stat.find('(')?;
                command = format!("[{}]", &stat[open + 1..stat.rfind(')')?]);
            }
            Some(ProcessInfo {
                pid,
                ppid: field(4) as i32,
                uid,
                cpu_seconds: (field(14) + field(15)) as f64 / hz,
                rss_bytes: field(24) * page,
                command,
            })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_counters_parse_in_both_cgroup_versions() {
        assert_eq!(
            io_stat("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n8:16 rbytes=1 wbytes=2\n"),
            (4097, 8194)
        );
        assert_eq!(
            blkio_v1("8:0 Read 100\n8:0 Write 50\n8:0 Sync 150\n8:0 Total 150\nTotal 150\n"),
            (100, 50)
        );
    }

    #[test]
    fn net_dev_skips_lo() {
        let text = "Inter-|   Receive\n face |bytes\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 300 3 0 0 0 0 0 0 700 5 0 0 0 0 0 0\n";
        assert_eq!(net_dev(text), (300, 700));
    }

    #[test]
    fn host_cpu_time_is_read() {
        let (ns, cpus) = system_cpu();
        assert!(ns > 0 && cpus >= 1);
        assert!(host_memory_bytes() > 0);
    }
}
