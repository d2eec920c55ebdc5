//! One conformance suite for [`ContainerHost`], run against the recording
//! fake in unit tests (`reconcile::tests`) and against the real runtime in
//! `tests/conformance.rs`, so the fake cannot drift from the kernel's
//! answers (as containerd's `core/content/testsuite`). Only what is cheap
//! and the same on both is asserted: the fake serves the engine's logic,
//! not the kernel's details.
//!
//! Public (not `cfg(test)`) because the root-only integration test calls it.

use std::path::Path;

use nix::sys::signal::Signal;

use super::seams::ContainerHost;
use crate::runtime::exec::{ExecReport, ExecSpec};
use crate::runtime::{ContainerConfig, Probe};

/// What a subject of the suite provides.
pub struct Subject<'a> {
    pub host: &'a dyn ContainerHost,
    /// A container that runs until killed (`sleep`), with an unused id.
    pub config: ContainerConfig,
    /// A regular file its root filesystem holds, and that file's text.
    pub file: (&'a str, &'a str),
    /// A scratch directory on the host.
    pub scratch: &'a Path,
}

fn running(host: &dyn ContainerHost, id: &str) -> crate::runtime::RunRecord {
    match host.probe(id) {
        Probe::Running(run) => run,
        other => panic!("{id}: expected running, the host says {other:?}"),
    }
}

/// Start, observe, freeze, read, copy, exec, kill, remove: each answer as
/// the seam documents it. Panics naming the first that differs.
pub async fn container_lifecycle(s: Subject<'_>) {
    let host = s.host;
    let id = s.config.id.as_str();
    assert!(matches!(host.probe(id), Probe::Absent), "{id} exists before its start");
    assert!(!host.list().iter().any(|i| i == id));
    assert!(host.oci_spec(id).is_none());
    assert!(host.processes(id).is_empty());
    assert!(!host.is_frozen(id));
    // Hostile: nothing of an absent container can be frozen or exec'd in.
    // An exec is refused in its first report (the caller reads it to learn
    // whether the process runs), as Docker answers 126.
    assert!(host.freeze(id, true).is_err(), "froze an absent container");
    let mut refused = host.exec(id, exec_true(), false, false).expect("exec");
    match refused.next_report().await {
        Some(ExecReport::Failed { exit_code, .. }) => assert_eq!(exit_code, 126),
        other => panic!("exec in an absent container: {other:?}"),
    }

    let run = host.start(&s.config).await.expect("start");
    assert_eq!(running(host, id), run);
    assert!(host.list().iter().any(|i| i == id), "{:?}", host.list());

    let stats = host.stats(id, run.init_pid).expect("stats of a running container");
    assert!(stats.pids >= 1, "{stats:?}");
    assert!(stats.memory_limit_bytes > 0, "{stats:?}");
    let processes = host.processes(id);
    assert!(processes.iter().any(|p| p.pid == run.init_pid), "{processes:?}");
    let spec = host.oci_spec(id).expect("the OCI spec of a running container");
    let args = spec.process().as_ref().and_then(|p| p.args().clone());
    assert_eq!(args.as_ref(), Some(&s.config.args), "{spec:?}");

    assert!(!host.is_frozen(id));
    host.freeze(id, true).expect("freeze");
    assert!(host.is_frozen(id));
    host.freeze(id, false).expect("thaw");
    assert!(!host.is_frozen(id));

    let (path, text) = s.file;
    assert_eq!(host.read_file(run.init_pid, Path::new(path)).expect("read_file"), text);
    let missing = host.read_file(run.init_pid, Path::new("/no/such/file")).unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound, "{missing}");
    // Hostile: a pid that is no container's init reads nothing.
    assert!(host.read_file(i32::MAX, Path::new(path)).is_err());

    let out = s.scratch.join("copied-out");
    let n = host.copy(run.init_pid, false, Path::new(path), &out).expect("copy out");
    assert_eq!(
        (n, std::fs::read_to_string(&out).unwrap().as_str()),
        (text.len() as u64, text)
    );
    let source = s.scratch.join("to-copy-in");
    std::fs::write(&source, "copied in\n").unwrap();
    let n = host
        .copy(run.init_pid, true, Path::new("/copied-in"), &source)
        .expect("copy in");
    assert_eq!(n, 10);
    assert_eq!(
        host.read_file(run.init_pid, Path::new("/copied-in")).unwrap(),
        "copied in\n"
    );

    let mut process = host.exec(id, exec_true(), false, false).expect("exec");
    assert!(matches!(process.next_report().await, Some(ExecReport::Started { .. })));
    assert_eq!(process.next_report().await, Some(ExecReport::Exited { code: 0 }));

    host.signal(id, Signal::SIGKILL).expect("SIGKILL");
    host.wait_shim(run).await;
    match host.probe(id) {
        Probe::Exited(exit) => assert_eq!(exit.code, 137, "{exit:?}"),
        other => panic!("{id}: expected exited after SIGKILL, the host says {other:?}"),
    }
    assert!(host.processes(id).is_empty());
    assert!(!host.is_frozen(id));

    host.remove(id).expect("remove");
    assert!(matches!(host.probe(id), Probe::Absent));
    assert!(!host.list().iter().any(|i| i == id));
    assert!(host.oci_spec(id).is_none());
    // "Already gone" is success.
    host.remove(id).expect("a second remove");
}

fn exec_true() -> ExecSpec {
    ExecSpec {
        args: vec!["true".into()],
        ..Default::default()
    }
}
