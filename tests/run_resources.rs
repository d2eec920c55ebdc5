//! `berth run`'s resource flags (issue 20) against the real kernel: the
//! container's cgroup files hold what was asked, in Docker's units, and a bad
//! value or one the host's cgroups cannot hold is refused by name. Root only.

mod common;

use std::path::{Path, PathBuf};

use common::Env;

fn running(v: &serde_json::Value) -> bool {
    v["status"] == "Running"
}

/// The container's directory in the hierarchy of `subsystem`: a v1 mount
/// naming it (`cpu`, `cpu,cpuacct`), else the unified one.
fn cgroup_dir(env: &Env, subsystem: &str, name: &str) -> PathBuf {
    let rel = format!("{}/{name}", env.cgroup_prefix());
    let root = Path::new("/sys/fs/cgroup");
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let dir_name = entry.file_name().to_string_lossy().into_owned();
        if dir_name.split(',').any(|s| s == subsystem) {
            return entry.path().join(&rel);
        }
    }
    root.join(rel)
}

fn read(dir: &Path, file: &str) -> String {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn is_v1() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

/// The block device holding `/` (`/dev/vda`) and its `major:minor`, read
/// from mountinfo and sysfs: a real device of this host for the I/O limits.
fn root_disk() -> (String, String) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let numbers = info
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 4 && f[4] == "/")
        .map(|f| f[2].to_string())
        .expect("/ in mountinfo");
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{numbers}/uevent"))
        .unwrap_or_else(|e| panic!("/ is on {numbers}, not a block device: {e}"));
    let name = uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .expect("DEVNAME in uevent");
    (format!("/dev/{name}"), numbers)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_flags_set_the_cgroup_files_in_docker_units() {
    let env = Env::new("res-flags");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let (disk, numbers) = root_disk();
    let read_bps = format!("{disk}:1mb");
    let write_iops = format!("{disk}:100");
    let write_bps = format!("{disk}:512k");
    let read_iops = format!("{disk}:250");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "limited",
        "--memory=100m",
        "--memory-swap=200m",
        "--memory-reservation=50m",
        "--oom-kill-disable",
        "--cpu-shares=512",
        "--cpu-period=50000",
        "--cpu-quota=25000",
        "--cpuset-cpus=0",
        "--cpuset-mems=0",
        "--pids-limit=64",
        "--device-read-bps",
        &read_bps,
        "--device-write-bps",
        &write_bps,
        "--device-read-iops",
        &read_iops,
        "--device-write-iops",
        &write_iops,
        "busybox",
        "sleep",
        "1000",
    ]);
    env.wait_for("container", "limited", 10, running);

    let cpuset = cgroup_dir(&env, "cpuset", "limited");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(&cpuset, "cpuset.mems"), "0");
    let pids = cgroup_dir(&env, "pids", "limited");
    assert_eq!(read(&pids, "pids.max"), "64");
    if is_v1() {
        let memory = cgroup_dir(&env, "memory", "limited");
        assert_eq!(read(&memory, "memory.limit_in_bytes"), "104857600");
        assert_eq!(read(&memory, "memory.memsw.limit_in_bytes"), "209715200");
        assert_eq!(read(&memory, "memory.soft_limit_in_bytes"), "52428800");
        assert!(
            read(&memory, "memory.oom_control").contains("oom_kill_disable 1"),
            "{}",
            read(&memory, "memory.oom_control")
        );
        let cpu = cgroup_dir(&env, "cpu", "limited");
        assert_eq!(read(&cpu, "cpu.cfs_period_us"), "50000");
        assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "25000");
        assert_eq!(read(&cpu, "cpu.shares"), "512");
        let blkio = cgroup_dir(&env, "blkio", "limited");
        assert_eq!(
            read(&blkio, "blkio.throttle.read_bps_device"),
            format!("{numbers} 1048576")
        );
        assert_eq!(
            read(&blkio, "blkio.throttle.write_bps_device"),
            format!("{numbers} 524288")
        );
        assert_eq!(
            read(&blkio, "blkio.throttle.read_iops_device"),
            format!("{numbers} 250")
        );
        assert_eq!(
            read(&blkio, "blkio.throttle.write_iops_device"),
            format!("{numbers} 100")
        );
    } else {
        let dir = cgroup_dir(&env, "", "limited");
        assert_eq!(read(&dir, "memory.max"), "104857600");
        assert_eq!(read(&dir, "memory.swap.max"), "104857600");
        assert_eq!(read(&dir, "memory.low"), "52428800");
        assert_eq!(read(&dir, "cpu.max"), "25000 50000");
        let io_max = read(&dir, "io.max");
        assert!(
            io_max.contains(&format!("{numbers} rbps=1048576 wbps=524288 riops=250 wiops=100")),
            "{io_max}"
        );
    }
}

#[test]
fn bad_resource_flags_are_refused_by_name() {
    let env = Env::new("res-refused");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let (disk, numbers) = root_disk();
    let flag_cases: &[(&[&str], &str)] = &[
        (&["--memory=100x"], "--memory \"100x\""),
        (&["--memory=100m", "--memory-swap=50m"], "--memory-swap \"50m\""),
        (&["--memory-swap=50m"], "needs --memory"),
        (&["--cpus=1", "--cpu-period=50000"], "conflicts with --cpus"),
        (&["--cpuset-cpus=1-0"], "--cpuset-cpus \"1-0\""),
        (&["--blkio-weight=5"], "--blkio-weight \"5\""),
        (&["--device-read-bps=vda:1mb"], "--device-read-bps \"vda:1mb\""),
    ];
    for (flags, needle) in flag_cases {
        let mut argv = vec!["run", "--rm"];
        argv.extend_from_slice(flags);
        argv.extend(["busybox", "true"]);
        let out = env.berth(&argv);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains(needle), "{flags:?}: {}", stderr_of(&out));
    }

    // Refused by the daemon: a device that is not a block device of the
    // host, and one that does not exist.
    for (value, why) in [
        ("/etc/hostname:1mb", "is not a block device"),
        ("/dev/berth-none:1mb", "cannot be read"),
    ] {
        let out = env.berth(&["run", "--rm", "--device-read-bps", value, "busybox", "true"]);
        assert!(!out.status.success(), "{value} was taken");
        let err = stderr_of(&out);
        assert!(err.contains("deviceReadBps") && err.contains(why), "{value}: {err}");
    }

    // A weight needs a weighted I/O scheduler: this host's blkio cgroup has
    // it (the value lands) or has not (refused naming the flag, never
    // dropped).
    let weighted = if is_v1() {
        ["blkio.weight", "blkio.bfq.weight"]
            .iter()
            .any(|f| Path::new("/sys/fs/cgroup/blkio").join(f).exists())
    } else {
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == "io")
    };
    let device_weight = format!("{disk}:200");
    let out = env.berth(&[
        "run",
        "-d",
        "--name",
        "weighted",
        "--blkio-weight=500",
        "--blkio-weight-device",
        &device_weight,
        "busybox",
        "sleep",
        "1000",
    ]);
    if weighted {
        assert!(out.status.success(), "{}", stderr_of(&out));
        env.wait_for("container", "weighted", 10, running);
        let _ = numbers;
    } else {
        assert!(
            !out.status.success(),
            "a blkio weight was taken on a host without weights"
        );
        let err = stderr_of(&out);
        assert!(err.contains("--blkio-weight") && err.contains("blkio.weight"), "{err}");
        let listed = env.ok(&["ps", "-a"]);
        assert!(!listed.contains("weighted"), "the refused container was left: {listed}");
    }
}

fn pid_of(env: &Env, name: &str) -> i64 {
    let v = env.view("container", name);
    v["pid"].as_i64().unwrap_or_else(|| panic!("no pid in {v}"))
}

#[test]
fn update_changes_the_limits_in_place_and_keeps_the_pid() {
    let env = Env::new("res-update");
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.ok(&["run", "-d", "--name", "web", "--memory=64m", "busybox", "sleep", "1000"]);
    env.wait_for("container", "web", 10, running);
    let pid = pid_of(&env, "web");
    let memory = cgroup_dir(&env, "memory", "web");
    let limit_file = if is_v1() { "memory.limit_in_bytes" } else { "memory.max" };
    assert_eq!(read(&memory, limit_file), (64u64 << 20).to_string());

    let out = env.ok(&[
        "update",
        "--memory=96m",
        "--pids-limit=20",
        "--restart=on-failure",
        "web",
    ]);
    assert_eq!(out.trim(), "web");
    assert_eq!(read(&memory, limit_file), (96u64 << 20).to_string());
    assert_eq!(read(&cgroup_dir(&env, "pids", "web"), "pids.max"), "20");
    assert_eq!(pid_of(&env, "web"), pid, "update restarted the container");
    assert_eq!(env.view("container", "web")["status"], "Running");
    // Recorded: a pass (run by an apply) does not replace it afterwards.
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    let inspect = env.ok(&["inspect", "web"]);
    assert!(inspect.contains("on-failure"), "{inspect}");
    assert_eq!(pid_of(&env, "web"), pid);

    // Refused, and the limit left as it was: a bad flag (by name, exit 125),
    // a value below Docker's minimum (by the daemon, naming the field), a
    // container nobody made, and nothing to change.
    let out = env.berth(&["update", "--memory=lots", "web"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("--memory \"lots\""), "{}", stderr_of(&out));
    let out = env.berth(&["update", "--memory=4m", "web"]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("memory must be at least 6Mi"),
        "{}",
        stderr_of(&out)
    );
    let out = env.berth(&["update", "--memory=96m", "nosuch"]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("container/nosuch not found"),
        "{}",
        stderr_of(&out)
    );
    let out = env.berth(&["update", "web"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr_of(&out).contains("nothing to change"), "{}", stderr_of(&out));
    assert_eq!(read(&memory, limit_file), (96u64 << 20).to_string());
    assert_eq!(pid_of(&env, "web"), pid);
}

#[test]
fn a_manifest_s_limit_change_is_applied_in_place() {
    let env = Env::new("res-apply-update");
    let stack = |memory: &str| {
        format!(
            "{}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: web}}\nspec:\n  image: busybox\n  command: [sleep, \"1000\"]\n  stopGracePeriod: 1s\n  resources: {{memory: {memory}}}\n",
            env.image_doc()
        )
    };
    let file = env.manifest("stack.yaml", &stack("64Mi"));
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "web", 10, running);
    let pid = pid_of(&env, "web");
    let memory = cgroup_dir(&env, "memory", "web");
    let limit_file = if is_v1() { "memory.limit_in_bytes" } else { "memory.max" };

    let file = env.manifest("stack.yaml", &stack("96Mi"));
    let diff = env.berth(&["diff", "-f", file.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&diff.stdout);
    assert!(
        shown.contains("update container/web (in place): spec.resources.memory: 64Mi -> 96Mi"),
        "{shown}"
    );
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(read(&memory, limit_file), (96u64 << 20).to_string());
    assert_eq!(pid_of(&env, "web"), pid, "apply replaced the container");

    // update refuses a manifest's container, naming its file.
    let out = env.berth(&["update", "--memory=128m", "web"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("stack.yaml"), "{}", stderr_of(&out));
}
