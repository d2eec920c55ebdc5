//! `berth run`'s storage flags against the real kernel (issue 20, Storage):
//! each `-v` form, `--mount`, `--tmpfs`, `--read-only`, `--shm-size`,
//! `--volumes-from`, `volume create -o` and `volume ls -f`. Assertions are
//! on effects: files on the host, a write refused, `df` inside.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::Env;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An Env with the busybox image.
fn env_with_image(name: &str) -> Env {
    let env = Env::new(name);
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env
}

fn volume_data(env: &Env, name: &str) -> PathBuf {
    env.root.join("volumes").join(name).join("_data")
}

/// Polls until `cond` holds (a condition, not a fixed sleep), or panics.
fn wait_until(what: &str, secs: u64, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A host directory of the test's own (removed with the Env's dir).
fn host_dir(env: &Env, name: &str) -> PathBuf {
    let dir = env.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The anonymous volumes' data directories (64-hex names).
fn anonymous_dirs(env: &Env) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(env.root.join("volumes")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().len() == 64)
        .map(|e| e.path().join("_data"))
        .collect()
}

#[test]
fn named_volumes_are_made_on_first_use_and_filled_from_the_image_unless_nocopy() {
    let env = env_with_image("sto-named");
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(
        std::fs::read_to_string(volume_data(&env, "data").join("f")).unwrap(),
        "kept\n"
    );
    let (out, _) = text(&env.berth(&["run", "--rm", "-v", "data:/data:ro", "busybox", "cat", "/data/f"]));
    assert_eq!(out, "kept\n");
    // Listed as Docker lists it, made by the run.
    assert!(env.ok(&["volume", "ls"]).contains("data"));

    // The image's /www goes into a new, empty volume; not with nocopy.
    env.ok(&["run", "--rm", "-v", "web:/www", "busybox", "true"]);
    assert!(volume_data(&env, "web").join("index.html").is_file());
    env.ok(&["run", "--rm", "-v", "bare:/www:nocopy", "busybox", "true"]);
    assert!(volume_data(&env, "bare").is_dir());
    assert!(!volume_data(&env, "bare").join("index.html").exists());
    env.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=bare2,dst=/www,volume-nocopy",
        "busybox",
        "true",
    ]);
    assert!(!volume_data(&env, "bare2").join("index.html").exists());
}

#[test]
fn host_binds_show_host_files_and_a_read_only_one_refuses_writes() {
    let env = env_with_image("sto-bind");
    let dir = host_dir(&env, "shared");
    std::fs::write(dir.join("hello"), "from host\n").unwrap();
    let bind = format!("{}:/mnt", dir.display());
    let (out, _) = text(&env.berth(&["run", "--rm", "-v", &bind, "busybox", "cat", "/mnt/hello"]));
    assert_eq!(out, "from host\n");
    // rw: a write reaches the host; z/Z are accepted (no SELinux here).
    env.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{bind}:rw,z"),
        "busybox",
        "sh",
        "-c",
        "echo in > /mnt/w",
    ]);
    assert_eq!(std::fs::read_to_string(dir.join("w")).unwrap(), "in\n");
    // ro: the write is refused by the kernel and nothing reaches the host.
    let out = env.berth(&[
        "run",
        "--rm",
        "-v",
        &format!("{bind}:ro,Z"),
        "busybox",
        "sh",
        "-c",
        "echo x > /mnt/ro-write",
    ]);
    let (_, err) = text(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!dir.join("ro-write").exists());
    // --mount type=bind,readonly: the same.
    let mount = format!("type=bind,source={},target=/m,readonly", dir.display());
    let out = env.berth(&["run", "--rm", "--mount", &mount, "busybox", "sh", "-c", "touch /m/y"]);
    assert!(text(&out).1.contains("Read-only file system"));
    assert!(!dir.join("y").exists());
}

#[test]
fn an_anonymous_volume_lives_as_long_as_its_container() {
    let env = env_with_image("sto-anon");
    env.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "anon",
        "-v",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        // TERM ends it at once (PID 1 ignores it by default).
        "trap 'exit 0' TERM; echo x > /scratch/f; sleep 60 & wait",
    ]);
    wait_until("the anonymous volume's file", 20, || {
        anonymous_dirs(&env).iter().any(|d| d.join("f").is_file())
    });
    env.ok(&["rm", "-f", "anon"]);
    wait_until("the anonymous volume to go with its container", 20, || {
        anonymous_dirs(&env).is_empty()
    });
}

#[test]
fn read_only_root_takes_writes_only_on_tmpfs_and_shm_has_the_asked_size() {
    let env = env_with_image("sto-ro");
    let out = env.berth(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch:size=1m",
        "--shm-size",
        "32m",
        "--tmpfs",
        "/noexec",
        "--tmpfs",
        "/exec:exec",
        "busybox",
        "sh",
        "-c",
        "touch /rootfile; touch /scratch/ok && echo tmpfs-took-it; df -k /dev/shm /scratch; \
         cp /bin/busybox /noexec/busybox; /noexec/busybox true || echo noexec-refused; \
         cp /bin/busybox /exec/busybox && /exec/busybox true && echo exec-ran",
    ]);
    let (out_text, err) = text(&out);
    // --tmpfs is noexec unless `exec`, as Docker's.
    assert!(
        out_text.contains("noexec-refused") && out_text.contains("exec-ran"),
        "{out_text}{err}"
    );
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(out_text.contains("tmpfs-took-it"), "{out_text}");
    let blocks = |mount: &str| -> u64 {
        out_text
            .lines()
            .find(|l| l.ends_with(mount))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("no df line for {mount}: {out_text}"))
    };
    assert_eq!(blocks("/dev/shm"), 32 * 1024);
    assert_eq!(blocks("/scratch"), 1024);
    // Without --read-only the root takes writes (the flag did it).
    env.ok(&["run", "--rm", "busybox", "touch", "/rootfile"]);
}

#[test]
fn volumes_from_shares_a_data_containers_volumes() {
    let env = env_with_image("sto-from");
    // Docker's data volume container: created, never started.
    env.ok(&["create", "--name", "dbstore", "-v", "/dbdata", "busybox", "true"]);
    env.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "dbstore",
        "busybox",
        "sh",
        "-c",
        "echo shared > /dbdata/f",
    ]);
    let out = env.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "dbstore:ro",
        "busybox",
        "sh",
        "-c",
        "cat /dbdata/f; touch /dbdata/g",
    ]);
    let (out_text, err) = text(&out);
    assert_eq!(out_text, "shared\n");
    assert!(err.contains("Read-only file system"), "{err}");
    // The data lives in dbstore's anonymous volume, on the host.
    let dirs = anonymous_dirs(&env);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert_eq!(std::fs::read_to_string(dirs[0].join("f")).unwrap(), "shared\n");
    assert!(!dirs[0].join("g").exists());
    // Through a container that only takes them from dbstore, as Docker.
    env.ok(&[
        "create",
        "--name",
        "mid",
        "--volumes-from",
        "dbstore",
        "busybox",
        "true",
    ]);
    let (out_text, _) = text(&env.berth(&["run", "--rm", "--volumes-from", "mid", "busybox", "cat", "/dbdata/f"]));
    assert_eq!(out_text, "shared\n");
    env.ok(&["rm", "-f", "mid"]);
    // A container that does not exist is refused by name.
    let out = env.berth(&["run", "--rm", "--volumes-from", "nowhere", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out).1.contains("nowhere"));
    env.ok(&["rm", "-f", "dbstore"]);
    wait_until("dbstore's volume to go with it", 20, || anonymous_dirs(&env).is_empty());
}

/// Hostile forms are refused by flag before anything is made: no
/// container, no volume, nothing written outside.
#[test]
fn hostile_volume_forms_are_refused_and_leave_nothing() {
    let env = env_with_image("sto-hostile");
    for (args, why) in [
        (&["-v", "../x:/y"][..], "relative host path"),
        (&["-v", "x/y:/y"], "relative host path"),
        (&["-v", "data:/"], "cannot mount over `/`"),
        (&["-v", "data:/a/../etc"], "`..`"),
        (&["-v", "/etc/../root:/y"], "`..`"),
        (&["-v", "Bad_Name:/y"], "not a volume name"),
        (&["--mount", "type=bind,source=rel,target=/y"], "relative host path"),
        (&["--tmpfs", "/"], "cannot mount over `/`"),
        (&["--volumes-from", "a/b"], "not a container name"),
    ] {
        let mut argv = vec!["run", "--rm"];
        argv.extend_from_slice(args);
        argv.extend(["busybox", "true"]);
        let out = env.berth(&argv);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert!(err.contains(args[0]) && err.contains(why), "{args:?}: {err}");
    }
    // A manifest is refused the same way, with its place.
    let doc = "apiVersion: berth/v1\nkind: Container\nmetadata: {name: bad}\nspec:\n  image: busybox\n  volumes:\n    - {hostPath: /srv, path: /}\n";
    let file = env.manifest("bad.yaml", doc);
    let out = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.yaml:7") && err.contains("spec.volumes[0].path"),
        "{err}"
    );
    assert!(!env.ok(&["ps", "-a"]).contains("bad"));
    let volumes = std::fs::read_dir(env.root.join("volumes"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(volumes, 0, "a refused run made a volume");
    assert!(!Path::new("/y").exists());
}

#[test]
fn volume_create_with_local_driver_options_mounts_a_tmpfs_or_a_host_dir() {
    let env = env_with_image("sto-create");
    // A tmpfs of the asked size, shared by the containers that mount it.
    assert_eq!(
        env.ok(&[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=100m",
            "fast"
        ]),
        "fast\n"
    );
    let data = volume_data(&env, "fast");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(data.to_str().unwrap()))
        .unwrap_or_else(|| panic!("no mount on {}", data.display()));
    assert!(line.contains(" - tmpfs ") && line.contains("size=102400k"), "{line}");
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        "fast:/fast",
        "busybox",
        "sh",
        "-c",
        "echo t > /fast/x; df -k /fast",
    ]);
    let blocks: u64 = out
        .lines()
        .find(|l| l.ends_with("/fast"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(blocks, 100 * 1024);
    assert_eq!(std::fs::read_to_string(data.join("x")).unwrap(), "t\n");

    // A bind of a host directory: its files show, and removing the volume
    // leaves them on the host.
    let dir = host_dir(&env, "hostdata");
    std::fs::write(dir.join("seen"), "on host\n").unwrap();
    let device = format!("device={}", dir.display());
    env.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "hostvol",
    ]);
    let out = env.ok(&["run", "--rm", "-v", "hostvol:/h", "busybox", "cat", "/h/seen"]);
    assert_eq!(out, "on host\n");
    env.ok(&["volume", "rm", "hostvol", "fast"]);
    assert_eq!(std::fs::read_to_string(dir.join("seen")).unwrap(), "on host\n");
    assert!(!volume_data(&env, "hostvol").exists());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(data.to_str().unwrap()), "the tmpfs stayed mounted");

    // Hostile: a name with `/`, a relative device, an unknown option.
    for (args, why) in [
        (&["volume", "create", "a/b"][..], "invalid volume name"),
        (
            &[
                "volume",
                "create",
                "-o",
                "type=none",
                "-o",
                "o=bind",
                "-o",
                "device=../etc",
                "rel",
            ],
            "absolute",
        ),
        (&["volume", "create", "-o", "colour=red", "odd"], "colour"),
    ] {
        let out = env.berth(args);
        let (_, err) = text(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    assert!(!env.root.join("volumes/rel").exists());
}

#[test]
fn volume_ls_filters_dangling_and_labels() {
    let env = env_with_image("sto-ls");
    env.ok(&["volume", "create", "--label", "tier=db", "dbdata"]);
    env.ok(&["volume", "create", "spare"]);
    env.ok(&["create", "--name", "user", "-v", "dbdata:/d", "busybox", "true"]);
    let names = |filters: &[&str]| -> Vec<String> {
        let mut argv = vec!["volume", "ls", "-q"];
        for f in filters {
            argv.extend(["-f", f]);
        }
        let mut v: Vec<String> = env.ok(&argv).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(names(&["dangling=true"]), ["spare"]);
    assert_eq!(names(&["dangling=false"]), ["dbdata"]);
    assert_eq!(names(&["label=tier"]), ["dbdata"]);
    assert_eq!(names(&["label=tier=db", "dangling=false"]), ["dbdata"]);
    assert!(names(&["label=tier=web"]).is_empty());
    let out = env.berth(&["volume", "ls", "-f", "colour=red"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("dangling, label, name and driver"));
    env.ok(&["rm", "-f", "user"]);
}

/// The same settings from a manifest (examples/manifests/storage): the
/// fields, not only the flags, reach the kernel.
#[test]
fn a_manifest_takes_the_storage_fields() {
    let env = Env::new("sto-manifest");
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/manifests/storage/stack.yaml"))
            .unwrap();
    // The example's image, from the test's busybox tar.
    let stack = example.replace("/opt/berth/images/busybox.tar", common::busybox_tar().to_str().unwrap());
    let file = env.manifest("storage.yaml", &stack);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    wait_until("the reader's output", 30, || {
        env.berth(&["logs", "reader"]).stdout.windows(6).any(|w| w == b"/dev/s")
    });
    let log = env.log_text("reader");
    assert!(log.starts_with("stored\n"), "{log}");
    let blocks = |mount: &str| -> u64 {
        log.lines()
            .find(|l| l.ends_with(mount))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|b| b.parse().ok())
            .unwrap_or_else(|| panic!("no df line for {mount}: {log}"))
    };
    assert_eq!(blocks("/dev/shm"), 256 * 1024);
    assert_eq!(blocks("/scratch"), 64 * 1024);
    let out = env.berth(&[
        "exec",
        "reader",
        "sh",
        "-c",
        "touch /rootfile || touch /store/x || touch /tmp/ok && echo tmp-ok",
    ]);
    let (out_text, err) = text(&out);
    assert_eq!(out_text, "tmp-ok\n", "{err}");
    assert_eq!(err.matches("Read-only file system").count(), 2, "{err}");
    env.ok(&["delete", "-f", file.to_str().unwrap()]);
}

#[test]
fn mount_volume_opts_make_the_volume_on_first_use() {
    let env = env_with_image("sto-volopt");
    let out = env.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=quick,dst=/q,volume-opt=type=tmpfs,volume-opt=device=tmpfs,\"volume-opt=o=size=2m,mode=1777\"",
        "busybox",
        "df",
        "-k",
        "/q",
    ]);
    let blocks: u64 = out
        .lines()
        .find(|l| l.ends_with("/q"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(blocks, 2 * 1024);
    // A bind of a host directory that is not there is refused, not waited on.
    let out = env.berth(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=nodir,dst=/n,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/nonexistent/berth",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out).1.contains("/nonexistent/berth"), "{}", text(&out).1);
    env.ok(&["volume", "rm", "quick", "nodir"]);
}
