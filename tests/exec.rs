//! Working with running containers, against real containers: the runtime's
//! Docker defaults (exit codes, seccomp, no-new-privileges) and `exec`.
//! Run as root; each test has its own daemon and root.

mod common;

use std::time::{Duration, Instant};

use common::Env;

fn with_image(env: &Env) {
    let file = env.manifest("image.yaml", &env.image_doc());
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
}

/// The value of `key:` in a container's /proc/self/status, as printed by `run`.
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

#[test]
fn a_command_that_cannot_run_exits_127_or_126_as_in_docker() {
    let env = Env::new("exitcodes");
    with_image(&env);
    let missing = env.berth(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_eq!(missing.status.code(), Some(127), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/binary"));
    let in_path = env.berth(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(in_path.status.code(), Some(127), "{in_path:?}");
    let not_executable = env.berth(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(not_executable.status.code(), Some(126), "{not_executable:?}");
    // A failed run leaves no container behind.
    assert!(!env.ok(&["ps", "-a"]).contains("run-"));
}

#[test]
fn no_new_privileges_is_off_by_default_and_works_with_seccomp_either_way() {
    let env = Env::new("nnp");
    with_image(&env);
    let default = env.ok(&["run", "--rm", "busybox", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&default, "NoNewPrivs"), "0", "Docker's default");
    assert_eq!(status_field(&default, "Seccomp"), "2", "filtered all the same");
    let on = env.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(status_field(&on, "NoNewPrivs"), "1");
    assert_eq!(status_field(&on, "Seccomp"), "2");
    // The capability set is the same either way (the filter was loaded
    // before the capabilities were dropped, not instead of dropping them).
    assert_eq!(status_field(&on, "CapEff"), status_field(&default, "CapEff"));

    // The manifest field, explicitly false, with seccomp: libcontainer alone
    // fails this combination.
    let doc = format!(
        "{}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: nnp}}\nspec:\n  image: busybox\n  command: [\"sh\", \"-c\", \"grep -E 'NoNewPrivs|Seccomp:' /proc/self/status; sleep 1000\"]\n  stopGracePeriod: 1s\n  securityContext: {{noNewPrivileges: false}}\n",
        env.image_doc()
    );
    let file = env.manifest("nnp.yaml", &doc);
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait", "--timeout", "30s"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = env.log_text("nnp");
        if log.lines().count() >= 2 {
            assert_eq!(status_field(&log, "NoNewPrivs"), "0", "{log}");
            assert_eq!(status_field(&log, "Seccomp"), "2", "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "no output: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn seccomp_allows_what_docker_allows_and_refuses_the_rest() {
    let env = Env::new("seccomp");
    with_image(&env);
    // Docker refuses sethostname without CAP_SYS_ADMIN; berth did not.
    let out = env.berth(&["run", "--rm", "busybox", "hostname", "other"]);
    assert_ne!(out.status.code(), Some(0), "sethostname must be refused");
    // unshare is refused (EPERM), mkdir is allowed.
    let out = env.berth(&["run", "--rm", "busybox", "sh", "-c", "mkdir /tmp/d && unshare -n true"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );
}
