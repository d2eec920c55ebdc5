//! The real host behind the seams: berth's runtime (shims driving
//! libcontainer), the image store, and volume directories under the root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::signal::Signal;

use super::seams::{BoxFuture, ContainerHost, Host, ImageHost, VolumeHost};
use crate::image::{self, ImageStore, Layer};
use crate::runtime::{self, ContainerConfig, Probe, RunRecord, Runtime};

impl ContainerHost for Runtime {
    fn start<'a>(&'a self, cfg: &'a ContainerConfig) -> BoxFuture<'a, runtime::Result<RunRecord>> {
        Box::pin(async move { Runtime::start(self, cfg).await.map(|s| s.record) })
    }
    fn probe(&self, id: &str) -> Probe {
        Runtime::probe(self, id)
    }
    fn signal(&self, id: &str, signal: Signal) -> runtime::Result<()> {
        Runtime::signal(self, id, signal)
    }
    fn kill_all(&self, id: &str) {
        Runtime::kill_all(self, id)
    }
    fn cleanup(&self, id: &str) -> runtime::Result<()> {
        Runtime::cleanup(self, id)
    }
    fn remove(&self, id: &str) -> runtime::Result<()> {
        Runtime::remove(self, id)
    }
    fn list(&self) -> Vec<String> {
        self.list_run_dirs()
    }
    fn log_file(&self, id: &str) -> PathBuf {
        self.layout.log_file(id)
    }
    fn wait_shim(&self, run: RunRecord) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Ok(fd) = runtime::pidfd_open(run.shim_pid) {
                // Checked after opening the pidfd: the pid cannot be reused now.
                if runtime::proc::alive_with_start(run.shim_pid, run.shim_start) {
                    let _ = runtime::wait_pidfd(fd).await;
                }
            }
            runtime::reap_shim(run.shim_pid);
        })
    }
}

impl ImageHost for ImageStore {
    fn import(&self, tar: &Path, digest: Option<&str>) -> image::Result<Layer> {
        ImageStore::import(self, tar, digest)
    }
    fn layers(&self) -> image::Result<Vec<Layer>> {
        self.list()
    }
    fn remove_layer(&self, digest: &str) -> image::Result<()> {
        self.remove(digest)
    }
    fn layer_present(&self, dir: &Path) -> bool {
        dir.is_dir()
    }
}

/// Volumes as directories: `<dir>/<name>/_data`, as Docker lays them out.
#[derive(Debug, Clone)]
pub struct VolumeDirs {
    pub dir: PathBuf,
}

impl VolumeHost for VolumeDirs {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }
    fn create(&self, name: &str) -> std::io::Result<PathBuf> {
        let path = self.path(name);
        std::fs::create_dir_all(&path)?;
        Ok(path)
    }
    fn remove(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
    fn exists(&self, name: &str) -> bool {
        self.path(name).is_dir()
    }
}

/// The host of a daemon with this runtime and image store; volumes live
/// under `<root>/volumes`.
pub fn host(runtime: Runtime, images: ImageStore) -> Host {
    let volumes = VolumeDirs {
        dir: runtime.layout.root.join("volumes"),
    };
    Host {
        containers: Arc::new(runtime),
        images: Arc::new(images),
        volumes: Arc::new(volumes),
    }
}
