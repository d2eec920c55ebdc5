//! The image store under damage and at its edges: a corrupt reference index
//! (refs.json) must fail loudly or recover from its backup, and never lead
//! to deletion; failed imports leave no blob. Run as root.

mod common;

use std::path::{Path, PathBuf};

use common::{busybox_tar, Env};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The names of the files in `dir` (empty if it is missing), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// What a prune could delete: records, snapshots and blobs.
fn store_contents(env: &Env) -> Vec<Vec<String>> {
    ["images/images", "images/snapshots", "images/blobs/sha256"]
        .iter()
        .map(|d| names(&env.root.join(d)))
        .collect()
}

/// Cuts a file to half its length, as a full disk or a torn copy does.
fn truncate_half(path: &PathBuf) {
    let len = std::fs::metadata(path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
}

#[test]
fn a_corrupt_image_index_recovers_from_its_backup_or_fails_loudly_and_never_deletes() {
    let env = Env::new("img-index");
    let tar = busybox_tar().display().to_string();
    env.ok(&["import", &tar, "localhost/kept:1"]);
    let id = env.ok(&["images", "-q"]).trim().to_string();
    let refs = env.root.join("images/refs.json");
    let before = store_contents(&env);
    assert!(before.iter().all(|d| !d.is_empty()), "{before:?}");

    // Cut short: read from the backup, with a warning naming both files.
    truncate_half(&refs);
    let listed = env.ok(&["images"]);
    assert!(
        listed.contains("localhost/kept:1"),
        "recovered from the backup: {listed}"
    );
    let log = env.daemon_log();
    assert!(
        log.contains(&refs.display().to_string()) && log.contains("refs.json.bak"),
        "the daemon says it used the backup: {log}"
    );
    env.ok(&["image", "prune"]);
    assert_eq!(store_contents(&env), before, "a named image is not pruned");
    // A tag writes the recovered index back, with the new reference.
    env.ok(&["tag", "localhost/kept:1", "localhost/kept:2"]);
    let listed = env.ok(&["images"]);
    assert!(
        listed.contains("localhost/kept:1") && listed.contains("localhost/kept:2"),
        "{listed}"
    );
    assert!(serde_json::from_slice::<serde_json::Value>(&std::fs::read(&refs).unwrap()).is_ok());

    // Both unreadable: every command that needs the index says so, names the
    // file and what to do, and changes nothing.
    truncate_half(&refs);
    std::fs::write(env.root.join("images/refs.json.bak"), b"\0\x1b[2Jgarbage").unwrap();
    let damaged = std::fs::read(&refs).unwrap();
    let out = env.berth(&["images"]);
    assert!(!out.status.success(), "images fails rather than list all as <none>");
    let msg = stderr(&out);
    assert!(
        msg.contains(&refs.display().to_string()) && msg.contains("refs.json.bak") && msg.contains("Restore"),
        "{msg}"
    );
    assert!(!msg.contains('\x1b'), "{msg:?}");
    let out = env.berth(&["image", "prune"]);
    assert!(
        !out.status.success(),
        "prune refuses: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr(&out).contains("refs.json"), "{}", stderr(&out));
    assert_eq!(store_contents(&env), before, "nothing deleted");
    for source in ["localhost/kept:1", id.as_str()] {
        let out = env.berth(&["tag", source, "localhost/kept:3"]);
        assert!(!out.status.success(), "tag {source} refuses");
        assert!(stderr(&out).contains("refs.json"), "{}", stderr(&out));
    }
    let out = env.berth(&["rmi", "localhost/kept:1"]);
    assert!(!out.status.success(), "rmi refuses");
    assert_eq!(std::fs::read(&refs).unwrap(), damaged, "the index is not overwritten");
    assert_eq!(store_contents(&env), before, "nothing deleted");
    assert!(
        env.daemon_log().contains("refs.json.bak"),
        "the daemon logs the error: {}",
        env.daemon_log()
    );
}

#[test]
fn a_failed_import_names_the_users_file_and_leaves_no_blob() {
    let env = Env::new("img-import-fail");
    let tar = busybox_tar();
    env.ok(&["import", &tar.display().to_string(), "localhost/kept:1"]);
    let blobs = env.root.join("images/blobs/sha256");
    let before = store_contents(&env);

    let good = std::fs::read(tar).unwrap();
    // Cut inside a file's data: the tar ends early.
    let truncated = env.dir.join("truncated.tar");
    std::fs::write(&truncated, &good[..good.len() / 2 + 100]).unwrap();
    // A well-formed tar with an entry that climbs out of the layer.
    let mut hostile = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..8].copy_from_slice(b"../evil\0");
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(1);
    h.set_cksum();
    hostile.append(&h, &b"x"[..]).unwrap();
    let hostile_path = env.dir.join("hostile.tar");
    std::fs::write(&hostile_path, hostile.into_inner().unwrap()).unwrap();
    // Gzip magic, then garbage.
    let garbage = env.dir.join("garbage.tar.gz");
    std::fs::write(&garbage, b"\x1f\x8b\x08\x00garbage that does not inflate").unwrap();

    for file in [&truncated, &hostile_path, &garbage] {
        let out = env.berth(&["import", file.to_str().unwrap(), "localhost/broken:1"]);
        assert!(!out.status.success(), "{} imports", file.display());
        let msg = stderr(&out);
        assert!(
            msg.contains(&file.display().to_string()),
            "names the user's file: {msg}"
        );
        assert!(
            !msg.contains(&blobs.display().to_string()),
            "not the store's copy: {msg}"
        );
        assert_eq!(store_contents(&env), before, "{}: nothing kept", file.display());
        assert_eq!(names(&env.root.join("images/tmp")), Vec::<String>::new());
    }
    // The image that was there still runs.
    env.ok(&["run", "--rm", "localhost/kept:1", "true"]);
}

/// The only directory matching `parent/*/leaf`, for a test with one container.
fn only_dir(parent: &Path, leaf: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(parent)
        .unwrap()
        .flatten()
        .map(|e| e.path().join(leaf))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().unwrap()
}

fn run_tool(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .expect("run a tool (scripts/install-deps.sh installs attr)");
    assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// cap_net_raw+ep as the kernel stores it (VFS_CAP_REVISION_2, effective).
const NET_RAW_EP: &str = "0x0100000200200000000000000000000000000000";

/// Every entry of the committed image's top layer: its name and the PAX
/// records of its extended attributes.
fn top_layer(env: &Env, reference: &str) -> Vec<(String, Vec<String>)> {
    let detail: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", reference])).unwrap();
    let digest = detail["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = env.root.join("images/blobs/sha256").join(&digest[7..]);
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(blob).unwrap());
    let mut archive = tar::Archive::new(gz);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let attrs = e
                .pax_extensions()
                .unwrap()
                .map(|x| {
                    x.flatten()
                        .map(|x| x.key().unwrap().to_string())
                        .filter(|k| k.starts_with("SCHILY.xattr."))
                        .collect()
                })
                .unwrap_or_default();
            (name, attrs)
        })
        .collect()
}

#[test]
fn commit_keeps_extended_attributes_and_leaves_out_the_mount_targets_berth_made() {
    let env = Env::new("img-commit-parity");
    let tar = busybox_tar().display().to_string();
    assert!(
        !std::process::Command::new("tar")
            .args(["-tf", &tar])
            .output()
            .unwrap()
            .stdout
            .windows(9)
            .any(|w| w == b"etc/hosts"),
        "the base image has no /etc/hosts"
    );
    env.ok(&["import", &tar, "localhost/base:1"]);
    env.ok(&[
        "run",
        "--name",
        "maker",
        "localhost/base:1",
        "sh",
        "-c",
        "mkdir /opt; echo ping > /opt/pinger; chmod 755 /opt/pinger; mkdir /opt/d; echo x > /opt/plain",
    ]);
    // Extended attributes as a setcap or a program would leave them, in the
    // container's writable layer.
    let upper = only_dir(&env.root.join("containers"), "upper");
    run_tool(
        std::process::Command::new("setfattr")
            .args(["-n", "security.capability", "-v", NET_RAW_EP])
            .arg(upper.join("opt/pinger")),
    );
    for path in ["opt/pinger", "opt/d"] {
        run_tool(
            std::process::Command::new("setfattr")
                .args(["-n", "user.note", "-v", "kept"])
                .arg(upper.join(path)),
        );
    }
    env.ok(&["commit", "maker", "localhost/committed:1"]);

    let entries = top_layer(&env, "localhost/committed:1");
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    for target in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        assert!(
            !names.contains(&target),
            "{target} is berth's mount target, not a change: {names:?}"
        );
    }
    assert!(names.contains(&"opt/pinger"), "{names:?}");
    let attrs = |name: &str| {
        entries
            .iter()
            .find(|(n, _)| n.trim_end_matches('/') == name)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(
        attrs("opt/pinger"),
        ["SCHILY.xattr.security.capability", "SCHILY.xattr.user.note"],
        "{entries:?}"
    );
    assert_eq!(attrs("opt/d"), ["SCHILY.xattr.user.note"]);
    assert!(attrs("opt/plain").is_empty());
    assert!(
        entries
            .iter()
            .all(|(_, a)| a.iter().all(|k| !k.contains("trusted.overlay"))),
        "overlay's own attributes stay out: {entries:?}"
    );

    // A container of the new image shows the capability.
    env.ok(&["rm", "maker"]);
    env.ok(&["run", "-d", "--name", "user", "localhost/committed:1", "sleep", "100"]);
    // Its merged root filesystem, as its processes see it.
    let view = env.wait_for("container", "user", 10, |v| v["pid"].is_number());
    let merged = PathBuf::from(format!("/proc/{}/root", view["pid"]));
    let cap = run_tool(
        std::process::Command::new("getfattr")
            .args(["-n", "security.capability", "--only-values"])
            .arg(merged.join("opt/pinger")),
    );
    assert_eq!(cap.as_bytes(), hex::decode(&NET_RAW_EP[2..]).unwrap(), "{cap:?}");
    let note = run_tool(
        std::process::Command::new("getfattr")
            .args(["-n", "user.note", "--only-values"])
            .arg(merged.join("opt/d")),
    );
    assert_eq!(note, "kept");
    env.ok(&["rm", "-f", "user"]);
}

#[test]
fn images_shows_the_unpacked_size_as_docker_does() {
    let env = Env::new("img-size");
    let plain = std::fs::read(busybox_tar()).unwrap();
    // What `docker images` counts: file and symlink bytes, a hardlink once.
    let mut unpacked = 0u64;
    for entry in tar::Archive::new(plain.as_slice()).entries().unwrap() {
        let entry = entry.unwrap();
        match entry.header().entry_type() {
            tar::EntryType::Regular => unpacked += entry.size(),
            tar::EntryType::Symlink => unpacked += entry.link_name_bytes().unwrap().len() as u64,
            _ => {}
        }
    }
    let gz = env.dir.join("rootfs.tar.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, &plain).unwrap();
    let compressed = encoder.finish().unwrap();
    std::fs::write(&gz, &compressed).unwrap();
    assert!(
        compressed.len() as u64 * 3 / 2 < unpacked,
        "gzip shrinks it well: {} {unpacked}",
        compressed.len()
    );
    env.ok(&["import", gz.to_str().unwrap(), "localhost/sized:1"]);

    let detail: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", "localhost/sized:1"])).unwrap();
    assert_eq!(detail["size"], unpacked, "{detail}");
    assert_eq!(
        detail["layers"][0]["size"],
        compressed.len(),
        "the layer's blob stays compressed"
    );
    let listed = env.ok(&["images"]);
    let mb = |n: u64| format!("{:.1}MB", n as f64 / 1e6);
    assert!(listed.contains(&mb(unpacked)), "{} in {listed}", mb(unpacked));
    assert!(!listed.contains(&mb(compressed.len() as u64)), "{listed}");
    // A second image of the same layer: all of it shared.
    env.ok(&["tag", "localhost/sized:1", "localhost/sized:2"]);
    env.ok(&["import", gz.to_str().unwrap(), "localhost/again:1"]);
    let listed = env.ok(&["images"]);
    assert_eq!(
        listed.matches(&mb(unpacked)).count(),
        2 * 3,
        "SIZE and SHARED of 3 rows: {listed}"
    );
}

#[test]
fn a_failed_load_leaves_no_blob_and_a_good_one_only_the_images() {
    let env = Env::new("img-load");
    let tar = busybox_tar().display().to_string();
    env.ok(&["import", &tar, "localhost/saved:1"]);
    let saved = env.dir.join("saved.tar");
    env.ok(&["save", "-o", saved.to_str().unwrap(), "localhost/saved:1"]);
    env.ok(&["rmi", "localhost/saved:1"]);
    let empty = store_contents(&env);
    assert!(empty.iter().all(|d| d.is_empty()), "{empty:?}");

    // Cut short after its first blobs: they went in, then the tar ends.
    let bytes = std::fs::read(&saved).unwrap();
    let cut = env.dir.join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 4 + 100]).unwrap();
    let out = env.berth(&["load", "-i", cut.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&cut.display().to_string()), "{}", stderr(&out));
    assert_eq!(store_contents(&env), empty, "nothing kept");

    env.ok(&["load", "-i", saved.to_str().unwrap()]);
    let [records, snapshots, blobs] = &store_contents(&env)[..] else {
        unreachable!()
    };
    assert_eq!((records.len(), snapshots.len()), (1, 1));
    assert_eq!(
        blobs.len(),
        3,
        "manifest, config and layer, not the archive's index files: {blobs:?}"
    );
    env.ok(&["run", "--rm", "localhost/saved:1", "true"]);
}

/// The sha256 of a file, as `sha256:<hex>`.
fn file_digest(path: &Path) -> String {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).unwrap();
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[test]
fn an_image_objects_import_is_an_unnamed_image_that_prune_keeps_and_commit_takes() {
    let env = Env::new("img-object");
    let tar = busybox_tar();
    let digest = file_digest(tar);
    let file = env.manifest(
        "stack.yaml",
        &format!(
            "apiVersion: berth/v1\nkind: Image\nmetadata: {{name: busybox}}\nspec: {{import: {}, digest: \"{digest}\"}}\n---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: maker}}\nspec:\n  image: busybox\n  restartPolicy: never\n  command: [sh, -c, \"echo made > /made\"]\n",
            tar.display()
        ),
    );
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "maker", 30, |v| v["exit"]["code"] == 0);
    // Status still shows the tar's digest.
    assert_eq!(env.view("image", "busybox")["detail"], digest.as_str());

    // No registry name: not docker.io/library/busybox, listed as <none>.
    let listed = env.ok(&["images"]);
    assert!(!listed.contains("busybox"), "{listed}");
    assert!(listed.contains("<none>"), "{listed}");
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 1, "{listed}");
    // Its snapshot is the one layer, named by the tar's diff id.
    let before = store_contents(&env);
    assert_eq!(before[1].len(), 1, "{before:?}");

    // In use by the Image object and the container: prune keeps it.
    env.ok(&["image", "prune"]);
    assert_eq!(store_contents(&env), before, "an image an Image object uses is kept");

    // Commit works on a container of an imported image.
    env.ok(&["commit", "maker", "localhost/committed:1"]);
    let out = env.ok(&["run", "--rm", "localhost/committed:1", "cat", "/made"]);
    assert!(out.contains("made"), "{out}");

    // Applied again, the same tar is the same image: nothing is added.
    env.ok(&["delete", "container/maker", "image/busybox"]);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let ids = env.ok(&["images", "-q"]);
    assert_eq!(ids.lines().count(), 2, "the import and the commit: {ids}");
    env.ok(&["delete", "-f", file.to_str().unwrap()]);
}

#[test]
fn an_image_object_whose_tar_does_not_match_its_digest_leaves_nothing() {
    let env = Env::new("img-object-bad");
    let wrong = format!("sha256:{}", "0".repeat(64));
    let file = env.manifest(
        "image.yaml",
        &format!(
            "apiVersion: berth/v1\nkind: Image\nmetadata: {{name: busybox}}\nspec: {{import: {}, digest: \"{wrong}\"}}\n",
            busybox_tar().display()
        ),
    );
    let out = env.berth(&["apply", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&wrong) && err.contains("nothing was unpacked"), "{err}");
    assert!(
        store_contents(&env).iter().all(|d| d.is_empty()),
        "{:?}",
        store_contents(&env)
    );
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
}

#[test]
fn the_old_layer_store_is_swept_at_daemon_start() {
    let mut env = Env::new("img-old-layers");
    let old = env.root.join("images/layers");
    std::fs::create_dir_all(old.join(format!("{}/bin", "a".repeat(64)))).unwrap();
    std::fs::write(old.join(format!("{}/bin/sh", "a".repeat(64))), b"old").unwrap();
    env.kill_daemon();
    env.start_daemon();
    assert!(!old.exists(), "the old layer store is gone after a start");
    // And imports never make it again.
    env.ok(&[
        "apply",
        "-f",
        env.manifest("i.yaml", &env.image_doc()).to_str().unwrap(),
        "--wait",
        "--timeout",
        "30s",
    ]);
    assert!(!old.exists());
    env.ok(&["delete", "image/busybox"]);
}

/// Unmounts its mount point when dropped, so a failed test leaves no mount.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn the_old_layer_store_is_kept_while_a_container_of_an_older_berth_still_mounts_it() {
    let mut env = Env::new("img-old-mounted");
    let tree = env.root.join("images/layers").join("b".repeat(64));
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/sh"), b"old").unwrap();
    // A read-only overlay on it, as the rootfs of a container an older
    // berth started (containers outlive the daemon).
    let other = env.dir.join("other-lower");
    let target = env.dir.join("old-rootfs");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::create_dir_all(&target).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={}:{}", tree.display(), other.display()))
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success());
    let mounted = Mounted(target.clone());
    env.kill_daemon();
    env.start_daemon();
    assert_eq!(
        std::fs::read(target.join("bin/sh")).unwrap(),
        b"old",
        "the running container's tree is kept"
    );
    assert!(env.daemon_log().contains("a running container still uses it"));
    // Once nothing mounts it, the next start sweeps it.
    drop(mounted);
    env.kill_daemon();
    env.start_daemon();
    assert!(!env.root.join("images/layers").exists());
}
