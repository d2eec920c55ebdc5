//! Shared harness for the root-only tests: a daemon of its own per test (own
//! root, run dir, socket, watch dir and so own cgroup prefix), the busybox
//! test image, and a teardown that leaves nothing behind.

#![allow(dead_code)]

pub mod pty;
pub mod sync;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// Path of the busybox rootfs tar, made once per test binary.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("busybox.tar");
        if !out.exists() {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/busybox-rootfs.sh");
            // Each test binary makes its own copy under a unique name, then renames.
            let tmp = out.with_extension(format!("{}.tar", std::process::id()));
            let st = Command::new(script).arg(&tmp).status().expect("run busybox-rootfs.sh");
            assert!(st.success(), "busybox-rootfs.sh failed");
            std::fs::rename(&tmp, &out).unwrap();
        }
        out
    })
}

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests drive real containers and must run as root"
    );
}

pub struct Env {
    pub name: String,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub run: PathBuf,
    pub socket: PathBuf,
    pub watch: PathBuf,
    pub daemon: Option<Child>,
    /// More environment for every berth this env runs (a test sets it, then
    /// restarts the daemon, e.g. `DOCKER_CONFIG`).
    pub extra_env: Vec<(String, String)>,
}

impl Env {
    /// A fresh environment with its daemon started.
    pub fn new(name: &str) -> Env {
        require_root();
        become_subreaper();
        let dir = PathBuf::from(format!("/tmp/berth-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut env = Env {
            name: name.to_string(),
            root: dir.join("root"),
            run: dir.join("run"),
            socket: dir.join("run/berth.sock"),
            watch: dir.join("watch"),
            dir,
            daemon: None,
            extra_env: Vec::new(),
        };
        env.start_daemon();
        env
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(BERTH);
        c.env("BERTH_ROOT", &self.root)
            .env("BERTH_RUN", &self.run)
            .env("BERTH_SOCKET", &self.socket)
            .env("BERTH_WATCH", &self.watch)
            .env("BERTH_LOG", "info");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    pub fn start_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let child = self
            .command()
            .arg("daemon")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start daemon");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon did not come up: {}",
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILLs the daemon (containers must survive).
    pub fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Runs `berth ARGS`, returns the output.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }

    /// Runs `berth ARGS` and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a manifest file into the env's dir and returns its path.
    pub fn manifest(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The Image document for the busybox test image.
    pub fn image_doc(&self) -> String {
        format!(
            "apiVersion: berth/v1\nkind: Image\nmetadata: {{name: busybox}}\nspec: {{import: {}}}\n",
            busybox_tar().display()
        )
    }

    /// `get -o json` of one object.
    pub fn view(&self, kind: &str, name: &str) -> serde_json::Value {
        let out = self.ok(&["get", kind, name, "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }

    /// Polls `get` until `pred` holds for the object, or panics after `secs`.
    pub fn wait_for(
        &self,
        kind: &str,
        name: &str,
        secs: u64,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.berth(&["get", kind, name, "-o", "json"]);
            if out.status.success() {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                    if pred(&v[0]) {
                        return v[0].clone();
                    }
                    assert!(Instant::now() < deadline, "timed out waiting on {kind}/{name}: {v}");
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting on {kind}/{name}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// This daemon's cgroup prefix (as runtime::Layout derives it).
    pub fn cgroup_prefix(&self) -> String {
        berth::runtime::Layout::new(self.root.clone(), self.run.clone()).prefix
    }

    /// Live (not zombie) shims of this env, found by their command line.
    pub fn shim_pids(&self) -> Vec<i32> {
        live_shims(&self.run)
    }

    pub fn log_text(&self, name: &str) -> String {
        self.ok(&["logs", name])
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Delete everything through the daemon, as a user would, then make
        // sure: kill what a failed test may have left and remove the dirs.
        if self.daemon.is_some() {
            if let Ok(out) = Command::new(BERTH)
                .env("BERTH_ROOT", &self.root)
                .env("BERTH_RUN", &self.run)
                .env("BERTH_SOCKET", &self.socket)
                .env("BERTH_WATCH", &self.watch)
                .args(["get", "-o", "json"])
                .output()
            {
                if let Ok(views) = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout) {
                    let keys: Vec<String> = views
                        .iter()
                        .map(|v| {
                            format!(
                                "{}/{}",
                                v["kind"].as_str().unwrap_or("").to_lowercase(),
                                v["name"].as_str().unwrap_or("")
                            )
                        })
                        .collect();
                    if !keys.is_empty() {
                        let _ = self.command().arg("delete").args(&keys).output();
                    }
                }
            }
        }
        self.kill_daemon();
        kill_stray_daemons(self);
        force_cleanup(self);
        reap_orphans(&self.run);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Shims outlive the daemon that started them; when a test kills a daemon,
/// its shims are re-parented to the nearest subreaper. On a host whose PID 1
/// does not reap (as in some CI sandboxes) they would stay zombies, so the
/// test process takes that role and reaps them (see `reap_orphans`).
fn become_subreaper() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and affects only this process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
        // An orphaned container process killed by a daemon pins its cgroup
        // until reaped, so reap orphans promptly, as a real init would.
        std::thread::spawn(|| loop {
            reap_orphan_zombies();
            std::thread::sleep(Duration::from_millis(20));
        });
    });
}

/// Reaps zombies re-parented to this process, except `berth` processes: those
/// are the tests' own children, which other threads wait for.
/// Programs tests run as their own children and wait for: never reaped here
/// (comm names, at most 15 bytes).
const OWN_CHILDREN: &[&str] = &[
    "berth",
    "skopeo",
    "umoci",
    "podman",
    "docker",
    "docker-registry",
    "tar",
    "cp",
    "nft",
    "ip",
    "cc",
    "busybox-rootfs.",
    "nsenter",
    "python3",
    "setfattr",
    "git",
    "git-daemon",
    "getfattr",
];

fn reap_orphan_zombies() {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let mut rest = stat[close + 2..].split(' ');
        let state = rest.next().unwrap_or("");
        let ppid: i32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == me && state == "Z" && !OWN_CHILDREN.contains(&comm) {
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
    }
}

/// Waits (briefly) for this env's shims to end, reaping as they do.
fn reap_orphans(run: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        reap_orphan_zombies();
        if live_shims(run).is_empty() || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live processes whose command line names `run`: the shims of that env.
fn live_shims(run: &Path) -> Vec<i32> {
    let run = run.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid: &i32| berth::runtime::proc::start_time(*pid).is_some())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.starts_with("berth-shim") && cmdline.contains(run)
        })
        .collect()
}

/// Last resort after a failed test: kill the cgroups' processes, unmount,
/// remove cgroups, so one failure does not fail the leak check for all.
/// A CLI started while this env's daemon was down starts one of its own
/// (with explicit flags); it is not the env's child, so it is found by its
/// command line, killed, and reported with what it logged.
fn kill_stray_daemons(env: &Env) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let root = env.root.display().to_string();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "daemon") && args.contains(&root) {
            eprintln!(
                "warning: {}: a daemon the CLI started (pid {pid}) outlived the test; killing it.\n\
                 its log:\n{}\nthe env daemon's log:\n{}",
                env.name,
                std::fs::read_to_string(env.root.join("daemon.log")).unwrap_or_default(),
                env.daemon_log()
            );
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
    }
}

fn force_cleanup(env: &Env) {
    let layout = berth::runtime::Layout::new(env.root.clone(), env.run.clone());
    let rt = berth::runtime::Runtime::new(layout.clone(), PathBuf::from(BERTH));
    for id in rt.list_run_dirs() {
        // Shims of this env die with their containers.
        let _ = rt.remove(&id);
    }
    berth::runtime::cgroup::remove_parent(&format!("/{}", layout.prefix));
    // Network objects of this env only: its bridges and veths (named with its
    // tag) and its nftables table.
    let nets = berth::network::Networks::new(&env.run, &layout.prefix);
    for id in nets.list() {
        let _ = nets.remove_container(&id, 4);
    }
    let tag = &nets.bridge_name("")[2..8];
    for name in berth::network::link::link_names().unwrap_or_default() {
        if name.len() > 8 && (name.starts_with("bb") || name.starts_with("bv")) && &name[2..8] == tag {
            let _ = berth::network::link::delete_link(&name);
        }
    }
    let _ = berth::network::nat::remove_table(&nets.child_waits, nets.table());
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mounts.lines() {
            if let Some(mp) = line.split(' ').nth(4) {
                if mp.starts_with(env.dir.to_str().unwrap()) {
                    let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
    }
}
