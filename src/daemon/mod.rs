//! `berth daemon`: opens the store (one daemon per root), adopts running
//! containers, then serves the API, runs the control loop and watches the
//! manifest directory. Containers outlive it.

pub mod watch;

use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::image::ImageStore;
use crate::reconcile::Engine;
use crate::runtime::sealed::SealedExe;
use crate::runtime::{Layout, Runtime};
use crate::settings::DaemonSettings;
use crate::store::Store;

/// Reaps every exited child: shims (their exits are seen through pidfds, which
/// do not need the zombie) and orphaned container processes. The daemon waits
/// on no child itself, so nothing else needs these exit statuses.
async fn reap_children(child_waits: std::sync::Arc<crate::network::ChildWaits>) {
    let Ok(mut sigchld) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()) else {
        tracing::warn!("cannot watch SIGCHLD; exited shims stay zombies until the daemon exits");
        return;
    };
    while sigchld.recv().await.is_some() {
        // Not waitpid(-1): it would also take the exit of an `nft` a network
        // call is waiting for (see network::ChildWaits).
        let nft = child_waits.lock();
        let git = crate::source::waits().lock();
        let waited = |pid: &i32| nft.contains(pid) || git.contains(pid);
        let reap = |pid: i32| {
            if !waited(&pid) {
                let _ = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
            }
        };
        // Bounded: a child that cannot be reaped must not spin the loop.
        for _ in 0..4096 {
            match exited_child() {
                Some(pid) if !waited(&pid) => reap(pid),
                // The kernel names one exited child at a time; past one
                // that someone waits for, only /proc shows the others.
                Some(_) => {
                    zombie_children().into_iter().for_each(reap);
                    break;
                }
                None => break,
            }
        }
    }
}

/// An exited, unreaped child, left unreaped (`WNOWAIT`): cheaper than
/// reading every process's stat in /proc, which each shim's exit did.
fn exited_child() -> Option<i32> {
    // SAFETY: siginfo_t is plain data; waitid fills it or leaves it zeroed.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid siginfo_t out-pointer; WNOHANG never blocks.
    let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    // SAFETY: si_pid is set by waitid for WEXITED (0 when none has exited).
    let pid = unsafe { info.si_pid() };
    (r == 0 && pid > 0).then_some(pid)
}

/// Exited, unreaped children of this process, from /proc.
fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the parenthesized command name: state, then ppid.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            fields.next() == Some("Z") && fields.next() == Some(me.as_str())
        })
        .collect()
}

/// Gives freed heap back to the kernel once things settle after a change, so
/// the idle daemon's RSS returns to its idle size.
async fn trim_after_changes(mut changes: tokio::sync::watch::Receiver<u64>) {
    while changes.changed().await.is_ok() {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        changes.borrow_and_update();
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe { libc::malloc_trim(0) };
    }
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub root: PathBuf,
    pub run: PathBuf,
    pub socket: PathBuf,
    pub watch: Option<PathBuf>,
    /// Registries besides loopback that pulls may reach over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Log rotation for containers whose manifest sets none (`100Mi`, 3).
    pub log_max_size: Option<String>,
    pub log_max_files: Option<u32>,
    /// `base=CIDR,size=N`: where networks without a subnet get theirs.
    pub default_address_pools: Vec<String>,
    /// `IP[:PORT]`: where embedded DNS forwards other names (default: the
    /// host's /etc/resolv.conf).
    pub dns_upstream: Vec<String>,
    /// `default` or a user: the range containers without a `userns` of
    /// their own run in (Docker's `--userns-remap`).
    pub userns_remap: Option<String>,
    /// Where Docker's Engine API is served (`<run-dir>/docker.sock`);
    /// none turns it off.
    pub docker_socket: Option<PathBuf>,
}

impl DaemonConfig {
    /// These settings as `berthd` arguments, every one explicit: what a
    /// daemon started later by the CLI must run with (see [`crate::settings`]).
    pub fn to_settings(&self) -> DaemonSettings {
        let mut args = vec!["daemon".to_string()];
        let mut flag = |name: &str, value: String| args.extend([name.to_string(), value]);
        flag("--root", self.root.display().to_string());
        flag("--run-dir", self.run.display().to_string());
        flag("--socket", self.socket.display().to_string());
        if let Some(watch) = &self.watch {
            flag("--watch", watch.display().to_string());
        }
        self.insecure_registries
            .iter()
            .for_each(|r| flag("--insecure-registry", r.clone()));
        if let Some(size) = &self.log_max_size {
            flag("--log-max-size", size.clone());
        }
        if let Some(files) = self.log_max_files {
            flag("--log-max-files", files.to_string());
        }
        self.default_address_pools
            .iter()
            .for_each(|p| flag("--default-address-pool", p.clone()));
        self.dns_upstream.iter().for_each(|u| flag("--dns-upstream", u.clone()));
        if let Some(remap) = &self.userns_remap {
            flag("--userns-remap", remap.clone());
        }
        // Always explicit: empty is "off", which a default would undo.
        flag(
            "--docker-socket",
            self.docker_socket
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
        DaemonSettings {
            args,
            socket: self.socket.clone(),
        }
    }
}

/// The listening socket systemd passed (socket activation, `berth.socket`):
/// fd 3 when `LISTEN_PID` is this process and `LISTEN_FDS` is at least 1,
/// as sd_listen_fds(3) defines it.
fn activated_listener() -> anyhow::Result<Option<std::os::unix::net::UnixListener>> {
    use std::os::fd::FromRawFd;
    let ours = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    if !ours || fds < 1 {
        return Ok(None);
    }
    const SD_LISTEN_FDS_START: i32 = 3;
    let is_socket =
        nix::sys::stat::fstat(SD_LISTEN_FDS_START).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK);
    if !is_socket {
        anyhow::bail!("LISTEN_FDS is set for this process but fd 3 is not a socket");
    }
    // SAFETY: systemd hands this process fd 3 open and owned by it (checked
    // above through LISTEN_PID); nothing else in the daemon has taken it.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(SD_LISTEN_FDS_START) };
    // The children (shims, nft) must not see these: they are the daemon's.
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: called before the daemon starts any thread that reads the environment.
        unsafe { std::env::remove_var(var) };
    }
    listener.set_nonblocking(true).context("socket passed by systemd")?;
    Ok(Some(listener))
}

/// The Docker API's socket: mode 0660 and, when the host has a `docker`
/// group, that group (as dockerd makes it), so its members can use it.
fn bind_docker_socket(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    // We hold the root's lock; a socket file left here is stale. Anything
    // else at that path is not ours to remove.
    if std::fs::symlink_metadata(path).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type())) {
        let _ = std::fs::remove_file(path);
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("--docker-socket: listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name("docker") {
        nix::unistd::chown(path, None, Some(group.gid))
            .with_context(|| format!("--docker-socket: give {} to group docker", path.display()))?;
    }
    Ok(listener)
}

pub async fn run(cfg: DaemonConfig) -> anyhow::Result<()> {
    // A glibc arena per blocking-pool thread keeps memory the daemon used
    // once (an image import, a burst of deletes) resident for good; two
    // arenas are plenty for a mostly single-threaded daemon.
    // SAFETY: mallopt only tunes the allocator; called before other threads exist.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    let activated = activated_listener()?;
    let store = Store::open(&cfg.root)?;
    // We hold the root's lock: this daemon's settings are the ones to
    // restart with (a CLI that starts a daemon itself reads them).
    crate::settings::write(&cfg.root, &cfg.to_settings())?;
    std::fs::create_dir_all(&cfg.run).with_context(|| format!("create run dir {}", cfg.run.display()))?;
    // The shim binary is executed from a sealed copy: see runtime::sealed.
    let sealed = SealedExe::new().context("cannot make a sealed copy of the berth binary for the shims")?;
    let layout = Layout::new(cfg.root.clone(), cfg.run.clone());
    let log_max_bytes = cfg
        .log_max_size
        .as_deref()
        .map(|s| s.parse::<crate::manifest::Memory>().map(|m| m.0))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--log-max-size: {}", e.0))?;
    if cfg.log_max_files == Some(0) {
        anyhow::bail!("--log-max-files must be at least 1");
    }
    let remap = cfg
        .userns_remap
        .as_deref()
        .map(crate::runtime::userns::remap_range)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--userns-remap: {e}"))?;
    let runtime = Runtime::new(layout, sealed.path())
        .with_log_defaults(log_max_bytes, cfg.log_max_files)
        .with_userns_remap(remap);
    let images = ImageStore::open(cfg.root.join("images"))
        .context("open the image store")?
        .with_insecure(cfg.insecure_registries.clone());
    // We hold the root's lock: nothing else can be importing.
    for failure in images.sweep() {
        tracing::warn!("cannot remove image store leftover {failure}");
    }
    let pools = cfg
        .default_address_pools
        .iter()
        .map(|p| p.parse::<crate::network::Pool>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--default-address-pool: {e}"))?;
    let upstream = cfg
        .dns_upstream
        .iter()
        .map(|u| crate::network::dns::parse_upstream(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--dns-upstream: {e}"))?;
    let child_waits = std::sync::Arc::new(crate::network::ChildWaits::default());
    let host = crate::reconcile::linux::host(runtime, images, pools, upstream, child_waits.clone());
    let engine = Engine::new(store, host, cfg.root.clone());
    engine.set_image_builder(std::sync::Arc::new(crate::commands::build::DeclarativeBuilder));
    engine.set_revision_rollback(std::sync::Arc::new(crate::commands::revisions::RolloutRevisionRollback));
    engine.restore().await.context("restore running containers")?;
    crate::commands::build::forget_orphan_steps(&engine).await;

    // The watch directory exists before the socket answers: a client that
    // sees the daemon up may write a manifest into it at once.
    let watch_dir = cfg.watch.clone().filter(|dir| match std::fs::create_dir_all(dir) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("not watching {}: {e}", dir.display());
            false
        }
    });
    if let Some(parent) = cfg.socket.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    // Docker's socket is bound before berth's: a client that sees berth's
    // answer finds Docker's there too (connections wait until it serves).
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let docker = match &cfg.docker_socket {
        Some(path) => {
            let listener = bind_docker_socket(path)?;
            let mut stopping = stopping.clone();
            let shutdown = async move {
                let _ = stopping.wait_for(|s| *s).await;
            };
            tracing::info!(socket = %path.display(), "serving Docker's Engine API");
            Some(tokio::spawn(crate::docker::serve(engine.clone(), listener, shutdown)))
        }
        None => None,
    };

    let owns_socket = activated.is_none();
    let listener = match activated {
        // systemd made the socket (berth.socket sets its mode and owner) and keeps it.
        Some(l) => tokio::net::UnixListener::from_std(l).context("socket passed by systemd")?,
        None => {
            // We hold the root's lock, so a socket file left here is stale.
            let _ = std::fs::remove_file(&cfg.socket);
            let l = tokio::net::UnixListener::bind(&cfg.socket)
                .with_context(|| format!("listen on {}", cfg.socket.display()))?;
            std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(0o660))?;
            l
        }
    };
    tracing::info!(root = %cfg.root.display(), socket = %cfg.socket.display(), "berth daemon ready");

    // A container whose shim died is re-parented to us rather than to PID 1,
    // so its cgroup is freed as soon as we kill and reap it.
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and affects only this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    tokio::spawn(reap_children(child_waits));
    tokio::spawn(engine.clone().run_loop());
    tokio::spawn(trim_after_changes(engine.changes()));
    tokio::spawn(crate::commands::sources::poll(engine.clone()));
    if let Some(dir) = watch_dir {
        tokio::spawn(watch::watch(engine.clone(), dir));
    }

    let app = crate::api::router(engine.clone());
    let shutdown = async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutting down; containers keep running");
        let _ = stopping_tx.send(true);
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    if owns_socket {
        let _ = std::fs::remove_file(&cfg.socket);
    }
    if let (Some(task), Some(path)) = (docker, &cfg.docker_socket) {
        let _ = std::fs::remove_file(path);
        // Its open connections (an attach) do not hold the daemon up.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
    }
    drop(sealed);
    Ok(())
}
