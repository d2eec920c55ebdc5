//! The `ContainerHost` conformance suite (`reconcile::conformance`) against
//! the real runtime: the same assertions the fake passes in the unit tests.

mod common;

use std::path::PathBuf;

use berth::reconcile::conformance::{container_lifecycle, Subject};
use berth::runtime::{ContainerConfig, Layout, Runtime};

/// Everything of the test's runtime, removed even when an assertion fails.
struct Cleanup {
    dir: PathBuf,
    runtime: Runtime,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in self.runtime.list_run_dirs() {
            let _ = self.runtime.remove(&id);
        }
        berth::runtime::cgroup::remove_parent(&format!("/{}", self.runtime.layout.prefix));
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            for mp in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
                if mp.starts_with(self.dir.to_str().unwrap()) {
                    let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn the_linux_runtime_passes_the_container_host_conformance_suite() {
    common::require_root();
    let dir = PathBuf::from(format!("/tmp/berth-test-conformance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let layer = dir.join("layer");
    std::fs::create_dir_all(&layer).unwrap();
    let untar = std::process::Command::new("tar")
        .arg("-xf")
        .arg(common::busybox_tar())
        .arg("-C")
        .arg(&layer)
        .status()
        .unwrap();
    assert!(untar.success());
    let layout = Layout::new(dir.join("root"), dir.join("run"));
    let cleanup = Cleanup {
        dir: dir.clone(),
        runtime: Runtime::new(layout, PathBuf::from(common::BERTH)),
    };
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    container_lifecycle(Subject {
        host: &cleanup.runtime,
        config: ContainerConfig {
            id: "conformance".into(),
            hostname: "conformance".into(),
            args: vec!["sleep".into(), "1000".into()],
            env: vec!["PATH=/bin:/usr/bin".into()],
            cwd: "/".into(),
            lower_dirs: vec![layer],
            ..Default::default()
        },
        file: ("/www/index.html", "<h1>hello from berth</h1>\n"),
        scratch: &scratch,
    })
    .await;
}
