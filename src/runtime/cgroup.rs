//! What berth does to cgroups itself, beside libcontainer: find the
//! hierarchies, read OOM kills, kill and remove a container's cgroups and the
//! per-daemon parent (libcontainer removes only the leaf).

use std::fs;
use std::path::{Path, PathBuf};

use super::spec::{CgroupFeatures, HostInfo};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The host's cgroup mounts, read from mountinfo once per process: they are
/// set up at boot and do not change under a running daemon, and reading
/// mountinfo was a third of the daemon's work per exec (see [`warm`]).
struct Mounts {
    /// Mount points of every cgroup hierarchy (v1 ones and a v2 one).
    all: Vec<(String, bool)>,
    /// On a hybrid host, those libcontainer's v1 manager leaves alone:
    /// named ones (`name=systemd`) and the cgroup2 mount beside the v1 ones,
    /// each with its key in /proc/PID/cgroup (`name=systemd`, or empty).
    unmanaged: Vec<(PathBuf, String)>,
    /// cgroup2 mounted at /sys/fs/cgroup itself.
    unified: bool,
}

fn mounts() -> &'static Mounts {
    static MOUNTS: std::sync::OnceLock<Mounts> = std::sync::OnceLock::new();
    MOUNTS.get_or_init(|| {
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut all = Vec::new();
        let mut unmanaged = Vec::new();
        for line in info.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = left.split(' ').nth(4).map(super::proc::unescape).unwrap_or_default();
            if !mount_point.starts_with(CGROUP_ROOT) {
                continue;
            }
            let mut fields = right.split(' ');
            let fstype = fields.next().unwrap_or("");
            let options = fields.nth(1).unwrap_or("");
            let v2 = match fstype {
                "cgroup" => false,
                "cgroup2" => true,
                _ => continue,
            };
            let named = options.split(',').find(|o| o.starts_with("name="));
            if v2 || named.is_some() {
                unmanaged.push((PathBuf::from(&mount_point), named.unwrap_or_default().to_string()));
            }
            all.push((mount_point, v2));
        }
        let unified = all.iter().any(|(mp, v2)| *v2 && mp == CGROUP_ROOT);
        if unified {
            unmanaged.clear();
        }
        Mounts {
            all,
            unmanaged,
            unified,
        }
    })
}

/// Reads the cgroup mounts now, so that processes forked from this one
/// (the exec zygote's shims) find them read: berth's, and those of
/// libcontainer's v1 cgroup manager, which keeps them once read
/// (vendor/libcgroups/BERTH-PATCH.md) and is built by every exec's
/// intermediate process.
pub fn warm() {
    if !mounts().unified {
        let _ = libcgroups::v1::manager::Manager::new(Path::new("/berth-warm"));
    }
}

/// Whether the host is unified (cgroup2 mounted at /sys/fs/cgroup itself).
pub fn is_unified() -> bool {
    mounts().unified
}

pub fn host_info() -> HostInfo {
    let v1_cgroup_mounts = if is_unified() {
        Vec::new()
    } else {
        mounts()
            .all
            .iter()
            .filter(|(_, v2)| !v2)
            .map(|(mp, _)| mp.clone())
            .collect()
    };
    let cgroup = features(&v1_cgroup_mounts);
    HostInfo {
        v1_cgroup_mounts,
        cgroup,
        ..Default::default()
    }
}

/// The optional cgroup files of the host's root cgroups (a container's
/// cgroup has the same ones).
fn features(v1_mounts: &[String]) -> CgroupFeatures {
    let v1 = |subsystem: &str, files: &[&str]| {
        v1_mounts
            .iter()
            .filter(|mp| {
                mp.rsplit('/')
                    .next()
                    .is_some_and(|n| n.split(',').any(|s| s == subsystem))
            })
            .any(|mp| files.iter().any(|f| Path::new(mp).join(f).exists()))
    };
    if v1_mounts.is_empty() {
        let controllers = fs::read_to_string(Path::new(CGROUP_ROOT).join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        return CgroupFeatures {
            oom_control: false,
            swap_limit: has("memory"),
            io_weight: has("io"),
        };
    }
    CgroupFeatures {
        oom_control: v1("memory", &["memory.oom_control"]),
        swap_limit: v1("memory", &["memory.memsw.limit_in_bytes"]),
        io_weight: v1("blkio", &["blkio.weight", "blkio.bfq.weight"]),
    }
}

/// The container's directory in the v1 hierarchy of `subsystem`, if the host
/// has one.
fn v1_dir(subsystem: &str, path: &str) -> Option<PathBuf> {
    mounts()
        .all
        .iter()
        .find(|(mp, v2)| {
            !v2 && mp
                .rsplit('/')
                .next()
                .is_some_and(|n| n.split(',').any(|s| s == subsystem))
        })
        .map(|(mp, _)| Path::new(mp).join(path.trim_start_matches('/')))
}

/// Turns the OOM killer off in the container's v1 memory cgroup:
/// libcontainer 0.7 writes memory.oom_control as 0 whatever the spec's
/// `disableOOMKiller` says. Call after create, before the init starts.
pub fn disable_oom_killer(path: &str) -> Result<(), String> {
    let dir = v1_dir("memory", path).ok_or("the host has no cgroup v1 memory hierarchy")?;
    let file = dir.join("memory.oom_control");
    fs::write(&file, "1").map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// Directories of `path` in every hierarchy a container has one in: those
/// libcontainer manages, and on a hybrid host also the named v1 ones
/// (`name=systemd`) and the v2 one beside them (see [`join_unmanaged`]).
fn dirs_of(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    if is_unified() {
        return vec![PathBuf::from(CGROUP_ROOT).join(rel)];
    }
    mounts().all.iter().map(|(mp, _)| PathBuf::from(mp).join(rel)).collect()
}

/// Moves `pid` into the container's cgroup `path` of the hierarchies
/// libcontainer does not manage, so that the container's
/// `/proc/self/cgroup` shows its own cgroup there too, as with runc (and not
/// the host's root). Returns what failed; a container runs without it.
pub fn join_unmanaged(path: &str, pid: i32) -> Vec<String> {
    let rel = path.trim_start_matches('/');
    let mut errors = Vec::new();
    for (mp, _) in &mounts().unmanaged {
        let dir = mp.join(rel);
        if let Err(e) = fs::create_dir_all(&dir).and_then(|()| fs::write(dir.join("cgroup.procs"), pid.to_string())) {
            errors.push(format!("join {}: {e}", dir.display()));
        }
    }
    errors
}

/// Moves the calling process into the container's cgroup `path` of the
/// hierarchies libcontainer does not manage, so that the container's
/// processes, forked from it, are born there. libcontainer bind-mounts each
/// hierarchy at /sys/fs/cgroup/<name> from the init's own cgroup at the
/// time it mounts (before [`join_unmanaged`] could move it), so an init
/// created from the host's root saw the whole `name=systemd` tree: every
/// other container's cgroup and other engines'. Returns the cgroup dirs to
/// go back to with [`leave_unmanaged`] (the container's cgroup can only be
/// removed once the caller left it), and what failed.
pub fn enter_unmanaged(path: &str) -> (Vec<PathBuf>, Vec<String>) {
    let rel = path.trim_start_matches('/');
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let me = std::process::id().to_string();
    let mut back = Vec::new();
    let mut errors = Vec::new();
    for (mp, key) in &mounts().unmanaged {
        // `ID:KEY:PATH`; the key of the cgroup2 hierarchy is empty.
        let Some(current) = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, k, p) = (f.next()?, f.next()?, f.next()?);
            (k == key).then(|| p.trim_start_matches('/').to_string())
        }) else {
            continue;
        };
        let dir = mp.join(rel);
        match fs::create_dir_all(&dir).and_then(|()| fs::write(dir.join("cgroup.procs"), &me)) {
            Ok(()) => back.push(mp.join(current)),
            Err(e) => errors.push(format!("enter {}: {e}", dir.display())),
        }
    }
    (back, errors)
}

/// Moves the calling process back to the cgroups [`enter_unmanaged`] took
/// it from; returns what failed.
pub fn leave_unmanaged(back: &[PathBuf]) -> Vec<String> {
    let me = std::process::id().to_string();
    back.iter()
        .filter_map(|dir| {
            fs::write(dir.join("cgroup.procs"), &me)
                .err()
                .map(|e| format!("return to {}: {e}", dir.display()))
        })
        .collect()
}

/// Starts paying, off the critical path, the RCU grace period that the
/// next cgroup migration of any process on the host would wait for.
///
/// Why: every write to a `cgroup.procs` file takes the kernel's global
/// `cgroup_threadgroup_rwsem` for writing, and the first such write after
/// an idle moment waits for an RCU grace period (`rcu_sync_enter`): 6–21 ms
/// here (notes/libcontainer.md §7), the largest part of a container's start.
/// Writers that come while one waits wait only for the rest of that grace
/// period, and those that come within about a grace period after it wait
/// for nothing. So as soon as a start (or an exec) is asked for, a thread
/// of the caller moves its own process into the cgroup it is already in (a
/// migration that changes nothing, but takes the lock), and the grace
/// period runs while the caller prepares the bundle, forks the shim and
/// mounts the overlay; the migrations of the container's processes come
/// after it. Without `favordynmods`, the host as it is.
///
/// One kick at a time: a kick while another waits is dropped (it would
/// wait for the same grace period).
pub fn prewarm_migration() {
    use std::sync::mpsc::{sync_channel, SyncSender};
    static KICKS: std::sync::OnceLock<Option<std::sync::Mutex<SyncSender<()>>>> = std::sync::OnceLock::new();
    let kicks = KICKS.get_or_init(|| {
        let file = own_procs_file()?;
        let (tx, rx) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("cgroup-prewarm".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // "0" is the writing process; an error (a v2 cgroup
                    // with controllers on) comes after the lock was taken.
                    let _ = fs::write(&file, "0");
                }
            })
            .ok()?;
        Some(std::sync::Mutex::new(tx))
    });
    if let Some(tx) = kicks {
        let _ = tx.lock().map(|tx| tx.try_send(()));
    }
}

/// The `cgroup.procs` file of this process's own cgroup in one hierarchy
/// (the v2 one when there is one: it has no controllers of libcontainer's).
fn own_procs_file() -> Option<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let m = mounts();
    let mut candidates: Vec<&(String, bool)> = m.all.iter().collect();
    // The v2 mount first.
    candidates.sort_by_key(|(_, v2)| !v2);
    for (mp, v2) in candidates {
        let name = mp.rsplit('/').next().unwrap_or("");
        let found = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, key, path) = (f.next()?, f.next()?, f.next()?);
            let matches = if *v2 {
                key.is_empty()
            } else {
                !key.is_empty() && key.split(',').all(|k| name.split(',').any(|n| n == k))
            };
            matches.then(|| path.trim_start_matches('/').to_string())
        });
        if let Some(path) = found {
            let file = Path::new(mp).join(path).join("cgroup.procs");
            if file.exists() {
                return Some(file);
            }
        }
    }
    None
}

/// Whether the cgroup at `path` is frozen (v1 freezer, or v2 `cgroup.freeze`).
pub fn is_frozen(path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    if is_unified() {
        let file = PathBuf::from(CGROUP_ROOT).join(rel).join("cgroup.freeze");
        return fs::read_to_string(file).is_ok_and(|s| s.trim() == "1");
    }
    let file = PathBuf::from(CGROUP_ROOT)
        .join("freezer")
        .join(rel)
        .join("freezer.state");
    fs::read_to_string(file).is_ok_and(|s| s.trim() != "THAWED")
}

/// Whether the kernel OOM-killed a process of the cgroup at `path`.
pub fn oom_killed(path: &str) -> bool {
    let rel = path.trim_start_matches('/');
    let (file, key) = if is_unified() {
        (PathBuf::from(CGROUP_ROOT).join(rel).join("memory.events"), "oom_kill")
    } else {
        (
            PathBuf::from(CGROUP_ROOT)
                .join("memory")
                .join(rel)
                .join("memory.oom_control"),
            "oom_kill",
        )
    };
    let Ok(text) = fs::read_to_string(file) else {
        return false;
    };
    text.lines().any(|l| {
        l.split_once(' ')
            .is_some_and(|(k, v)| k == key && v.trim().parse::<u64>().is_ok_and(|n| n > 0))
    })
}

/// Pids in the cgroup at `path` (read from the first hierarchy that has it).
pub fn pids(path: &str) -> Vec<i32> {
    for dir in dirs_of(path) {
        if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
            return text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        }
    }
    Vec::new()
}

/// SIGKILLs every process in the cgroup and waits briefly for them to go.
pub fn kill_all(path: &str) {
    for _ in 0..100 {
        let pids = pids(path);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Removes the cgroup `path` in every hierarchy; returns what could not be removed.
pub fn remove(path: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for dir in dirs_of(path) {
        if let Err(e) = rmdir_retry(&dir) {
            errors.push(format!("remove cgroup {}: {e}", dir.display()));
        }
    }
    errors
}

/// Removes the per-daemon parent cgroup where it has no children left.
pub fn remove_parent(path: &str) {
    for dir in dirs_of(path) {
        let _ = fs::remove_dir(&dir);
    }
}

fn rmdir_retry(dir: &std::path::Path) -> std::io::Result<()> {
    // A cgroup whose last process just died can be busy for a moment.
    let mut last = None;
    for _ in 0..50 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EBUSY)))
}
