//! Root tests of GitOps against real repositories and containers: numbered
//! revisions of CLI applies with rollback and `diff --to`; git sources
//! (file:// and `git daemon` on loopback) followed commit by commit, a
//! broken commit keeping the last good one running, rollback pinning the
//! source until resume, and the poller following on its own.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::sync::wait_until;
use common::Env;

fn container(name: &str, marker: &str) -> String {
    format!(
        "---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: busybox\n  command: [\"sleep\", \"3600\"]\n  env: {{MARK: \"{marker}\"}}\n"
    )
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Tess Ter")
        .env("GIT_AUTHOR_EMAIL", "tess@example.com")
        .env("GIT_COMMITTER_NAME", "Tess Ter")
        .env("GIT_COMMITTER_EMAIL", "tess@example.com")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// A repository under the env's dir with `deploy/` for manifests.
fn repo(env: &Env, name: &str) -> PathBuf {
    let dir = env.dir.join(name);
    std::fs::create_dir_all(dir.join("deploy")).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    dir
}

/// Writes `files` (name, text; empty text removes it) under deploy/ and commits.
fn commit(repo: &Path, files: &[(&str, &str)], subject: &str) -> String {
    for (name, text) in files {
        let p = repo.join("deploy").join(name);
        if text.is_empty() {
            let _ = std::fs::remove_file(&p);
        } else {
            std::fs::write(&p, text).unwrap();
        }
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "--allow-empty", "-m", subject]);
    git(repo, &["rev-parse", "HEAD"])
}

fn exists(env: &Env, name: &str) -> bool {
    env.berth(&["get", "container", name, "-o", "json"]).status.success()
}

fn mark(env: &Env, name: &str) -> String {
    env.ok(&["exec", name, "sh", "-c", "echo $MARK"]).trim().to_string()
}

fn running(env: &Env, name: &str) {
    env.wait_for("container", name, 60, |v| v["status"] == "Running");
}

fn sources(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["source", "ls", "-o", "json"])).unwrap()
}

fn revisions(env: &Env, source: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&env.ok(&["revisions", source, "-o", "json"])).unwrap()
}

fn with_image(env: &Env) {
    let image = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", image.to_str().unwrap()]);
}

#[test]
fn cli_applies_are_numbered_revisions_that_diff_and_roll_back() {
    let env = Env::new("gitops-revs");
    with_image(&env);
    let stack = env.dir.join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    let s = stack.to_str().unwrap();
    std::fs::write(stack.join("a.yaml"), container("rev-a", "one")).unwrap();
    std::fs::write(stack.join("b.yaml"), container("rev-b", "one")).unwrap();
    env.ok(&["apply", "-f", s, "--prune"]);
    running(&env, "rev-a");
    running(&env, "rev-b");
    let first = revisions(&env, s);
    assert_eq!(first.len(), 1, "{first:?}");
    let r1 = first[0]["id"].as_i64().unwrap();
    assert_eq!(first[0]["status"], "applied");
    assert!(first[0]["origin"]["hash"].as_str().unwrap().starts_with("sha256:"));

    // Revision 2: a changes, b goes, c comes.
    std::fs::write(stack.join("a.yaml"), container("rev-a", "two")).unwrap();
    std::fs::remove_file(stack.join("b.yaml")).unwrap();
    std::fs::write(stack.join("c.yaml"), container("rev-c", "two")).unwrap();
    env.ok(&["apply", "-f", s, "--prune"]);
    running(&env, "rev-c");
    assert!(!exists(&env, "rev-b"));
    assert_eq!(mark(&env, "rev-a"), "two");
    let second = revisions(&env, s);
    assert_eq!(second.len(), 2);
    assert!(second[0]["id"].as_i64().unwrap() > r1);

    // The preview says what a rollback would change, and changes nothing.
    let diff = env.berth(&["diff", "--to", &r1.to_string(), "--source", s]);
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let text = stdout(&diff);
    assert!(
        text.contains("rev-b") && text.contains("rev-c") && text.contains("rev-a"),
        "{text}"
    );
    assert!(exists(&env, "rev-c") && !exists(&env, "rev-b"));

    // Rollback without --to goes to the last good revision before the newest.
    env.ok(&["rollback", s, "--reason", "c misbehaves"]);
    running(&env, "rev-b");
    assert!(!exists(&env, "rev-c"), "what revision 2 added is pruned");
    assert_eq!(mark(&env, "rev-a"), "one");
    let after = revisions(&env, s);
    assert_eq!(after.len(), 3);
    assert_eq!(after[0]["origin"]["kind"], "rollback");
    assert_eq!(after[0]["origin"]["rollbackOf"].as_i64(), Some(r1));
    assert_eq!(after[1]["status"], "failed");
    assert_eq!(after[1]["reason"], "c misbehaves");
    // describe shows the revision as an event.
    let describe = env.ok(&["describe", "container/rev-b"]);
    assert!(describe.contains(&format!("rollback to revision {r1}")), "{describe}");

    // Hostile: an unknown revision or source names what it looked for; nothing changes.
    let bad = env.berth(&["rollback", s, "--to", "99999"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("revision 99999"), "{}", stderr(&bad));
    let bad = env.berth(&["rollback", "apply:/no/such/stack"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("/no/such/stack"), "{}", stderr(&bad));
    let bad = env.berth(&["diff", "--to", "99999", "--source", s]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(exists(&env, "rev-b") && exists(&env, "rev-a"));

    env.ok(&["delete", "container/rev-a", "container/rev-b"]);
}

#[test]
fn a_git_source_follows_commits_keeps_the_last_good_one_and_pins_on_rollback() {
    let env = Env::new("gitops-file");
    with_image(&env);
    let repo = repo(&env, "repo");
    let c1 = commit(&repo, &[("a.yaml", &container("git-a", "one"))], "first");
    let url = format!("file://{}", repo.display());
    env.ok(&[
        "source",
        "add",
        "site",
        "--git",
        &url,
        "--branch",
        "main",
        "--path",
        "deploy",
        "--interval",
        "1h",
    ]);
    env.ok(&["source", "sync", "site"]);
    running(&env, "git-a");
    let ls = sources(&env);
    assert_eq!(ls[0]["commit"].as_str(), Some(c1.as_str()), "{ls}");
    assert!(ls[0]["fetchedAt"].is_i64() && ls[0]["appliedAt"].is_i64(), "{ls}");

    // Change and add.
    commit(
        &repo,
        &[
            ("a.yaml", &container("git-a", "two")),
            ("b.yaml", &container("git-b", "two")),
        ],
        "second",
    );
    env.ok(&["source", "sync", "site"]);
    running(&env, "git-b");
    assert_eq!(mark(&env, "git-a"), "two");
    // Remove.
    let c3 = commit(&repo, &[("b.yaml", "")], "drop b");
    env.ok(&["source", "sync", "site"]);
    wait_until(30, "git-b is deleted", || !exists(&env, "git-b"));
    let revs = revisions(&env, "site");
    assert_eq!(revs.len(), 3);
    assert_eq!(revs[0]["origin"]["commit"].as_str(), Some(c3.as_str()));
    assert_eq!(revs[0]["origin"]["subject"], "drop b");
    assert!(revs[0]["origin"]["author"].as_str().unwrap().contains("Tess Ter"));

    // A broken commit: nothing of it applies, the error names commit, file, line and field.
    let broken = container("git-a", "three").replace("command:", "comand:") + &container("git-d", "three");
    let c4 = commit(&repo, &[("a.yaml", &broken)], "typo");
    let out = env.berth(&["source", "sync", "site"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("deploy/a.yaml:"), "{}", stderr(&out));
    let ls = sources(&env);
    let error = ls[0]["error"].as_str().unwrap();
    assert!(error.contains(&c4[..12]), "{error}");
    assert!(error.contains("deploy/a.yaml:") && error.contains("comand"), "{error}");
    assert_eq!(ls[0]["commit"].as_str(), Some(c3.as_str()));
    assert_eq!(mark(&env, "git-a"), "two");
    assert!(!exists(&env, "git-d"));
    // The preview of the next commit shows what it would change.
    commit(&repo, &[("a.yaml", &container("git-a", "five"))], "fix");
    let preview = env.berth(&["source", "diff", "site"]);
    assert_eq!(preview.status.code(), Some(1), "{}", stderr(&preview));
    assert!(stdout(&preview).contains("git-a"), "{}", stdout(&preview));
    assert_eq!(mark(&env, "git-a"), "two");
    env.ok(&["source", "sync", "site"]);
    wait_until(60, "git-a runs commit 5", || {
        env.berth(&["exec", "git-a", "sh", "-c", "echo $MARK"]).stdout == b"five\n"
    });
    assert!(sources(&env)[0]["error"].is_null());

    // Rollback pins: the source is suspended, a new commit is not applied.
    env.ok(&["rollback", "site"]);
    wait_until(60, "git-a runs commit 3 again", || {
        env.berth(&["exec", "git-a", "sh", "-c", "echo $MARK"]).stdout == b"two\n"
    });
    let ls = sources(&env);
    assert_eq!(ls[0]["suspended"], true, "{ls}");
    assert_eq!(ls[0]["commit"].as_str(), Some(c3.as_str()));
    commit(&repo, &[("a.yaml", &container("git-a", "six"))], "six");
    let refused = env.berth(&["source", "sync", "site"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("resume"), "{}", stderr(&refused));
    assert_eq!(mark(&env, "git-a"), "two");
    // Resume follows again.
    env.ok(&["source", "resume", "site"]);
    env.ok(&["source", "sync", "site"]);
    wait_until(60, "git-a runs commit 6", || {
        env.berth(&["exec", "git-a", "sh", "-c", "echo $MARK"]).stdout == b"six\n"
    });

    // rm without --prune leaves what runs; with --prune it goes.
    env.ok(&["source", "rm", "site", "--prune"]);
    wait_until(30, "git-a is deleted", || !exists(&env, "git-a"));
    assert!(!env.root.join("sources/site").exists());
    assert_eq!(sources(&env), serde_json::json!([]));
}

#[test]
fn a_git_source_refuses_bad_specs_by_field_and_the_poller_follows_on_its_own() {
    let env = Env::new("gitops-poll");
    with_image(&env);
    // Hostile specs: each names its field, nothing is stored.
    for (args, field) in [
        (vec!["source", "add", "Bad_Name", "--git", "file:///x"], "name"),
        (
            vec!["source", "add", "s", "--git", "https://u:secret@example.com/r.git"],
            "--token-file",
        ),
        (
            vec!["source", "add", "s", "--git", "file:///x", "--path", "../etc"],
            "path",
        ),
        (
            vec!["source", "add", "s", "--git", "file:///x", "--interval", "soon"],
            "interval",
        ),
        (
            vec!["source", "add", "s", "--git", "file:///x", "--commit", "xyz"],
            "commit",
        ),
        (
            vec![
                "source",
                "add",
                "s",
                "--git",
                "file:///x",
                "--token-file",
                "/no/such/token",
            ],
            "tokenFile",
        ),
    ] {
        let out = env.berth(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(field), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("secret"),
            "a password is never echoed: {}",
            stderr(&out)
        );
    }
    assert_eq!(sources(&env), serde_json::json!([]));
    let missing = env.berth(&["source", "sync", "ghost"]);
    assert!(stderr(&missing).contains("ghost not found"), "{}", stderr(&missing));
    // A repository that is not there: the error is recorded, nothing applied.
    env.ok(&["source", "add", "gone", "--git", "file:///no/such/repo"]);
    let out = env.berth(&["source", "sync", "gone"]);
    assert!(!out.status.success());
    assert!(sources(&env)[0]["error"].as_str().unwrap().contains("fetch"));
    env.ok(&["source", "rm", "gone"]);

    // The poller: a 1s interval picks up commits with no sync by hand.
    let repo = repo(&env, "polled");
    commit(&repo, &[("p.yaml", &container("poll-a", "one"))], "one");
    let url = format!("file://{}", repo.display());
    env.ok(&[
        "source",
        "add",
        "polled",
        "--git",
        &url,
        "--path",
        "deploy",
        "--interval",
        "1s",
    ]);
    running(&env, "poll-a");
    commit(&repo, &[("p.yaml", &container("poll-a", "two"))], "two");
    wait_until(60, "the poller applies commit two", || {
        env.berth(&["exec", "poll-a", "sh", "-c", "echo $MARK"]).stdout == b"two\n"
    });
    env.ok(&["source", "suspend", "polled"]);
    env.ok(&["source", "rm", "polled", "--prune"]);
    wait_until(30, "poll-a is deleted", || !exists(&env, "poll-a"));
}

/// `git daemon` serving `base` on a free loopback port; killed on drop.
struct GitDaemon(Child, u16);

impl GitDaemon {
    fn start(base: &Path) -> GitDaemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // git-daemon itself, not `git daemon`: killing the `git` wrapper
        // would leave the server running.
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git --exec-path");
        let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_string();
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        wait_until(20, "git daemon listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        GitDaemon(child, port)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_git_source_over_git_daemon_on_loopback_follows_a_tag() {
    let env = Env::new("gitops-daemon");
    with_image(&env);
    let repo = repo(&env, "served");
    commit(&repo, &[("s.yaml", &container("served-a", "v1"))], "v1");
    git(&repo, &["tag", "v1"]);
    commit(&repo, &[("s.yaml", &container("served-a", "v2"))], "v2");
    let daemon = GitDaemon::start(&env.dir);
    let url = format!("git://127.0.0.1:{}/served", daemon.1);
    env.ok(&[
        "source",
        "add",
        "served",
        "--git",
        &url,
        "--tag",
        "v1",
        "--path",
        "deploy",
        "--interval",
        "1h",
    ]);
    env.ok(&["source", "sync", "served"]);
    running(&env, "served-a");
    assert_eq!(mark(&env, "served-a"), "v1");
    env.ok(&["source", "rm", "served", "--prune"]);
    wait_until(30, "served-a is deleted", || !exists(&env, "served-a"));
    drop(daemon);
}
