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
