//! The seams' conformance suites (`reconcile::conformance`) against the
//! real host: the runtime, the image store, volume directories and the
//! kernel's links. The same assertions the fake passes in the unit tests.

mod common;

use std::path::PathBuf;

use berth::image::ImageStore;
use berth::network::{link, Networks};
use berth::reconcile::conformance::{
    container_lifecycle, image_lifecycle, network_lifecycle, volume_lifecycle, ImageSubject, NetworkSubject, Subject,
    VolumeSubject,
};
use berth::reconcile::linux::VolumeDirs;
use berth::reconcile::seams::NetworkHost;
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
        // Through the init's own stdout: the shim logs it as the container's.
        write_log: &|_, init_pid, line| {
            use std::io::Write;
            let mut stdout = std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/{init_pid}/fd/1"))
                .expect("the init's stdout");
            stdout
                .write_all(format!("{line}\n").as_bytes())
                .expect("write to the init's stdout");
        },
    })
    .await;
}

/// A directory removed even when an assertion fails.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new(what: &str) -> TempRoot {
        let dir = PathBuf::from(format!("/tmp/berth-test-conformance-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempRoot(dir)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn volume_directories_pass_the_volume_host_conformance_suite() {
    let root = TempRoot::new("volumes");
    let host = VolumeDirs {
        dir: root.0.join("volumes"),
    };
    // A regular file where the volume's directory goes makes its create fail.
    let obstacle = |name: &str| host.dir.join(name);
    volume_lifecycle(VolumeSubject {
        host: &host,
        break_create: &|name| {
            std::fs::create_dir_all(&host.dir).unwrap();
            std::fs::write(obstacle(name), "in the way").unwrap();
        },
        heal: &|name| std::fs::remove_file(obstacle(name)).unwrap(),
    });
}

#[test]
fn the_kernel_passes_the_network_host_conformance_suite() {
    common::require_root();
    let root = TempRoot::new("network");
    let host = Networks::new(&root.0, &format!("berth-conf{}", std::process::id()));
    let (network, id) = ("conf", "conformance");
    /// The suite's links and namespace, removed even when it fails.
    struct Links<'a>(&'a Networks, &'a str, &'a str);
    impl Drop for Links<'_> {
        fn drop(&mut self) {
            let _ = link::delete_link(&self.0.veth_name(self.2, 0));
            let _ = NetworkHost::remove_container(self.0, self.2, 1);
            let _ = link::delete_link(&self.0.bridge_name(self.1));
        }
    }
    let _links = Links(&host, network, id);
    network_lifecycle(NetworkSubject {
        host: &host,
        network,
        id,
        subnet: "10.89.251.0/24".parse().unwrap(),
    });
}

#[test]
fn the_image_store_passes_the_image_host_conformance_suite() {
    common::require_root();
    let root = TempRoot::new("images");
    let host = ImageStore::open(root.0.join("images")).unwrap();
    // Cut short mid-archive: the import fails while reading it.
    let broken = root.0.join("broken.tar");
    let whole = std::fs::read(common::busybox_tar()).unwrap();
    std::fs::write(&broken, &whole[..whole.len() / 2]).unwrap();
    image_lifecycle(ImageSubject {
        host: &host,
        tar: common::busybox_tar(),
        broken_tar: &broken,
        references: ["localhost/conformance:1", "localhost/conformance:2"],
    });
    // Nothing of the broken import is left for a prune to find.
    assert!(host.prune(&Default::default()).unwrap().is_empty());
}
