//! The per-container shim: `berth shim <shim.json>`. One per container,
//! single-threaded (libcontainer's `build()` deadlocks if other threads
//! allocate meanwhile), and the parent of the container's init so that it can
//! reap it and record its exit. It outlives the daemon.
//!
//! Protocol with the daemon: the shim writes one JSON line ([`ShimReport`]) to
//! its stdout once the container runs or setup failed, then closes it. When
//! the init exits it writes `exit.json` and exits; the daemon watches the
//! shim's pidfd.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::network::link;

use super::logs::{timestamp_now, LineSplitter, LogWriter};
use super::{
    cgroup, now_millis, pidfd_open, proc, profile, write_atomic, ExitRecord, RunRecord, ShimConfig, ShimReport,
};

/// The socket in the run dir where a container with a tty or an open stdin
/// is attached. With a tty, on each connection the shim sends the pty master
/// (SCM_RIGHTS, for resizes) and then relays the pty's bytes both ways until
/// either side closes. Without one (`stdin`), it sends stdout and stderr
/// apart in `wire::exec_frame` frames and feeds the raw bytes it reads into
/// the container's stdin; the client's EOF (a half-close) closes that stdin.
/// A foreground `run` with neither (`wait_attach` alone) gets the same
/// frames, its stdin being /dev/null: the one byte-exact path for output.
/// Output made before the first client connects is replayed to it (up to
/// [`EARLY_OUTPUT`]), so the first prompt of `run -t`, which attaches just
/// after the start, reaches the terminal and not only the log.
pub const ATTACH_SOCKET: &str = "attach.sock";

/// Output kept for the first attached client.
const EARLY_OUTPUT: usize = 64 * 1024;

/// Entry point of `berth shim`. Returns the process exit code.
pub fn main(shim_json: &Path) -> i32 {
    profile::shim_mark("main");
    let cfg: ShimConfig = match std::fs::read(shim_json)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(cfg) => cfg,
        Err(e) => {
            report(&ShimReport::Error {
                error: format!("shim cannot read {}: {e}", shim_json.display()),
                exit_code: None,
            });
            return 1;
        }
    };
    if std::env::var_os("BERTH_SHIM_DEBUG").is_some() {
        // Goes to shim.log in the run dir; no threads are started.
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::DEBUG)
            .try_init();
    }
    // Started from the daemon's memfd, the kernel names us after its fd
    // number; give ps, top and pgrep a name to find.
    // SAFETY: PR_SET_NAME reads a nul-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"berth-shim".as_ptr()) };
    // Leave the daemon's session so that its terminal's signals never reach us.
    let _ = nix::unistd::setsid();
    // libcontainer reads these from the caller's environment and would hand
    // the daemon's sockets to the container.
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"] {
        std::env::remove_var(var);
    }
    let me = std::process::id() as i32;
    if let Some(dir) = shim_json.parent() {
        let _ = std::fs::write(
            dir.join("shim.pid"),
            format!("{me} {}", proc::start_time(me).unwrap_or(0)),
        );
    }
    match setup(&cfg) {
        Ok(running) => {
            if !running.reported {
                profile::shim_mark("reporting");
                report(&ShimReport::Ready { record: running.record });
            }
            // The daemon has its answer; nothing more goes to that pipe.
            if let Ok(null) = File::open("/dev/null") {
                let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
            }
            release_setup_memory();
            supervise(&cfg, running);
            0
        }
        Err(error) => {
            let _ = umount2(&cfg.rootfs, MntFlags::MNT_DETACH);
            let exit_code = super::cannot_execute_code(&error);
            if cfg.io.wait_attach {
                // Ready may have been reported (a start that failed after
                // the attach): the exit record is what the daemon reads.
                eprintln!("berth-shim: {error}");
                let exit = ExitRecord {
                    code: exit_code.unwrap_or(255),
                    signal: None,
                    oom_killed: false,
                    finished_at: now_millis(),
                };
                if let Ok(bytes) = serde_json::to_vec(&exit) {
                    let _ = write_atomic(&cfg.exit_file, &bytes);
                }
            }
            report(&ShimReport::Error { error, exit_code });
            1
        }
    }
}

fn report(r: &ShimReport) {
    let mut line = serde_json::to_string(r).unwrap_or_else(|_| "{\"error\":\"unserializable report\"}".into());
    line.push('\n');
    let _ = std::io::stdout().write_all(line.as_bytes());
    let _ = std::io::stdout().flush();
}

struct Running {
    /// libcontainer's state dir of this container, removed after the exit.
    state_dir: std::path::PathBuf,
    record: RunRecord,
    init_pidfd: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// With a tty: the pty master, and the listener `berth attach` connects to.
    pty: Option<(OwnedFd, std::os::unix::net::UnixListener)>,
    /// Without a tty, attachable (an open stdin, or a foreground `run`):
    /// the stdin pipe's write end if stdin is open, and the listener.
    piped: Option<(Option<OwnedFd>, std::os::unix::net::UnixListener)>,
    /// The client that attached before the start (`wait_attach`).
    first_client: Option<std::os::unix::net::UnixStream>,
    /// Ready was reported before the start.
    reported: bool,
}

/// How long a created container waits for its client before it starts anyway.
const ATTACH_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// The first client on `listener`, waited for up to [`ATTACH_WAIT`].
fn wait_for_client(listener: &std::os::unix::net::UnixListener) -> Option<std::os::unix::net::UnixStream> {
    let deadline = std::time::Instant::now() + ATTACH_WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            eprintln!("berth-shim: no client attached within {ATTACH_WAIT:?}; starting anyway");
            return None;
        }
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
        if let Ok((c, _)) = listener.accept() {
            return Some(c);
        }
    }
}

/// The image's layers as the container's root sees them: mounted again
/// (read-only, in the shim's own mount namespace) through an idmapped mount
/// that shows on-disk 0 as the range's first id; see `userns`. When every
/// layer is a short link of one store, the store is mounted once (the
/// links are relative, so they resolve inside the idmapped mount).
fn idmapped_lowers(
    lower_dirs: &[std::path::PathBuf],
    range: &super::userns::IdRange,
    run_dir: &Path,
) -> Result<Vec<std::path::PathBuf>, String> {
    use std::os::fd::AsFd;
    let ns = super::userns::namespace_fd(range).map_err(|e| format!("cannot make the id mapping: {e}"))?;
    let mount_at = |source: &Path, target: std::path::PathBuf| -> Result<std::path::PathBuf, String> {
        std::fs::create_dir_all(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
        super::userns::mount_idmapped(source, &target, ns.as_fd()).map_err(|e| {
            format!("cannot idmap the image's layers ({e}); the user namespace needs a file system that supports idmapped mounts")
        })?;
        Ok(target)
    };
    let common = common_parent(lower_dirs);
    if let (Some(links), Some(store)) = (&common, common.as_deref().and_then(Path::parent)) {
        let mounted = mount_at(store, run_dir.join("idmapped"))?;
        let links = mounted.join(links.file_name().unwrap_or_default());
        return Ok(lower_dirs
            .iter()
            .map(|d| links.join(d.file_name().unwrap_or_default()))
            .collect());
    }
    lower_dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| mount_at(dir, run_dir.join(format!("idmapped-{i}"))))
        .collect()
}

/// Moves this (single-threaded) shim into the network namespace a user
/// namespace container runs in, so that libcontainer's processes are born
/// there (see `spec::JOIN_NETNS_ANNOTATION`); with the container's range,
/// also sets what its root could not: ICMP sockets for its groups (in host
/// ids) and ports below 1024, as Docker's defaults.
pub(crate) fn join_netns_for_userns(path: &Path, range: Option<&super::userns::IdRange>) -> Result<(), String> {
    let ns = File::open(path).map_err(|e| format!("open network namespace {}: {e}", path.display()))?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("join network namespace {}: {e}", path.display()))?;
    if let Some(r) = range {
        let groups = format!("{} {}", r.gid, r.gid as u64 + r.size as u64 - 1);
        std::fs::write("/proc/sys/net/ipv4/ping_group_range", groups)
            .map_err(|e| format!("set net.ipv4.ping_group_range: {e}"))?;
        // The container's root has no capability over a namespace the host's
        // user namespace owns: ports below 1024 are opened to every user of
        // it instead, as Docker does for every container.
        std::fs::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0")
            .map_err(|e| format!("set net.ipv4.ip_unprivileged_port_start: {e}"))?;
    }
    Ok(())
}

/// The directory every one of `dirs` is directly in, if there is one and
/// the names alone are shorter (two or more dirs).
fn common_parent(dirs: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    let first = dirs.first()?.parent()?;
    (dirs.len() > 1
        && dirs
            .iter()
            .all(|d| d.parent() == Some(first) && d.file_name().is_some()))
    .then(|| first.to_path_buf())
}

/// The socket the daemon connects to for `attach` (a pty's or a stdin
/// pipe's relay), non-blocking for the shim's poll loop.
fn bind_attach_socket(run_dir: &Path) -> Result<std::os::unix::net::UnixListener, String> {
    let path = run_dir.join(ATTACH_SOCKET);
    let _ = std::fs::remove_file(&path);
    let attach =
        std::os::unix::net::UnixListener::bind(&path).map_err(|e| format!("attach socket {}: {e}", path.display()))?;
    attach
        .set_nonblocking(true)
        .map_err(|e| format!("attach socket: {e}"))?;
    Ok(attach)
}

fn setup(cfg: &ShimConfig) -> Result<Running, String> {
    // The overlay is mounted in a mount namespace of the shim's own (a slave
    // of the host's, so nothing propagates back): the host's mount table does
    // not grow by one long overlay line per container. libcgroups and
    // libcontainer parse /proc/self/mountinfo a dozen times per start, so
    // with the mounts on the host every start got slower as containers were
    // added (an apply of 200 cost 15x an apply of 20). The mount also goes
    // away by itself once the shim and its container are gone.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("cannot make the shim's mount namespace: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the shim's mounts slaves of the host's: {e}"))?;
    // The options must fit in one page. Many layers of long absolute paths
    // do not, so when every lower dir sits in one directory (the image
    // store's short links) the mount is made from there with bare names, as
    // Docker's overlay2 does; the shim is single-threaded here, so changing
    // its working directory affects nothing else.
    let run_dir = cfg.state_file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let lower_dirs = match &cfg.userns {
        Some(range) => idmapped_lowers(&cfg.lower_dirs, range, &run_dir)?,
        None => cfg.lower_dirs.clone(),
    };
    let common = common_parent(&lower_dirs);
    let lower = lower_dirs
        .iter()
        .map(|p| match &common {
            Some(_) => p.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            None => p.to_string_lossy().into_owned(),
        })
        .collect::<Vec<_>>()
        .join(":");
    let opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        cfg.upper.display(),
        cfg.work.display()
    );
    let previous = std::env::current_dir().ok();
    if let Some(dir) = &common {
        std::env::set_current_dir(dir).map_err(|e| format!("cannot enter {}: {e}", dir.display()))?;
    }
    let mounted = mount(
        Some("overlay"),
        &cfg.rootfs,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    );
    if common.is_some() {
        let _ = std::env::set_current_dir(previous.as_deref().unwrap_or(std::path::Path::new("/")));
    }
    mounted.map_err(|e| {
        let from = common
            .as_ref()
            .map(|d| format!(" from {}", d.display()))
            .unwrap_or_default();
        format!("cannot mount the root filesystem (overlay {opts}{from}): {e}")
    })?;
    profile::shim_mark("overlay mounted");

    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (stdin, stdin_w): (OwnedFd, Option<OwnedFd>) = if cfg.io.stdin && !cfg.io.tty {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        // Written from the poll loop: a container that does not read must
        // not stop the shim from draining its output.
        nix::fcntl::fcntl(
            w.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| format!("stdin pipe: {e}"))?;
        (r, Some(w))
    } else {
        let null = File::open("/dev/null").map_err(|e| format!("open /dev/null: {e}"))?;
        (null.into(), None)
    };
    let console = cfg.io.tty.then(|| run_dir.join("console.sock"));
    let console_listener = match &console {
        Some(path) => {
            let _ = std::fs::remove_file(path);
            Some(
                std::os::unix::net::UnixListener::bind(path)
                    .map_err(|e| format!("console socket {}: {e}", path.display()))?,
            )
        }
        None => None,
    };

    if let Some(path) = &cfg.join_netns {
        join_netns_for_userns(path, cfg.userns.as_ref())?;
    }
    let builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_executor(super::workload::DefaultSignals)
        .validate_id()
        .map_err(|e| format!("invalid container id {:?}: {e}", cfg.id))?
        .with_root_path(&cfg.lc_root)
        .map_err(|e| format!("runtime root {}: {e}", cfg.lc_root.display()))?
        .with_stdin(stdin)
        .with_stdout(out_w)
        .with_stderr(err_w)
        .with_console_socket(console.as_deref())
        .as_init(&cfg.bundle)
        .with_systemd(false)
        .with_detach(true);
    // The init is born in its own cgroups of the hierarchies libcontainer
    // leaves alone, so that it mounts those and not the host's root.
    let (back, errors) = cgroup::enter_unmanaged(&cfg.cgroup_path);
    for e in errors {
        eprintln!("berth-shim: {e}");
    }
    profile::shim_mark("building");
    let built = builder.build();
    profile::shim_mark("built");
    // Out again: the container's cgroups are removed only once empty.
    for e in cgroup::leave_unmanaged(&back) {
        eprintln!("berth-shim: {e}");
    }
    let mut container = built.map_err(|e| format!("cannot create container: {}", describe_error(&e)))?;
    tracing::debug!("container built");
    if let Some(pid) = container.pid() {
        // Before start: everything the init forks is then in them too.
        for e in cgroup::join_unmanaged(&cfg.cgroup_path, pid.as_raw()) {
            eprintln!("berth-shim: {e}");
        }
    }
    profile::shim_mark("unmanaged cgroups joined");
    if let Some(pid) = container.pid() {
        if let Err(e) = bring_up_loopback(pid.as_raw()) {
            let _ = container.delete(true);
            return Err(format!("cannot bring up lo in the container's network namespace: {e}"));
        }
    }
    if let Some(pid) = container.pid() {
        // libcontainer drops bind propagation options (see propagation.rs).
        let spec = std::fs::read(cfg.bundle.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if let Err(e) = super::propagation::apply(pid.as_raw(), &super::propagation::wanted(&spec)) {
            let _ = container.delete(true);
            return Err(format!("cannot set mount propagation: {e}"));
        }
        // libcontainer drops disableOOMKiller too.
        let oom_off = spec["linux"]["resources"]["memory"]["disableOOMKiller"] == true;
        if oom_off {
            if let Err(e) = cgroup::disable_oom_killer(&cfg.cgroup_path) {
                let _ = container.delete(true);
                return Err(format!("cannot disable the OOM killer: {e}"));
            }
        }
    }
    profile::shim_mark("lo up, propagation set");
    let pid = container.pid().ok_or("container has no pid after create")?.as_raw();
    let pty = match console_listener {
        Some(listener) => {
            // The init sent its pty master before it exec'd; it waits in the backlog.
            let master = super::exec::receive_master(&listener);
            if let Some(path) = &console {
                let _ = std::fs::remove_file(path);
            }
            let master = master?;
            let attach = bind_attach_socket(&run_dir)?;
            Some((master, attach))
        }
        None => None,
    };
    let piped = match stdin_w {
        Some(w) => Some((Some(w), bind_attach_socket(&run_dir)?)),
        // A foreground `run` without -i/-t: its client gets the output
        // alone, framed, byte for byte (the log is line-oriented text).
        None if cfg.io.wait_attach && !cfg.io.tty => Some((None, bind_attach_socket(&run_dir)?)),
        None => None,
    };
    let init_pidfd = pidfd_open(pid).map_err(|e| format!("pidfd_open({pid}): {e}"))?;
    let me = std::process::id() as i32;
    let record = RunRecord {
        shim_pid: me,
        shim_start: proc::start_time(me).unwrap_or(0),
        init_pid: pid,
        init_start: proc::start_time(pid).unwrap_or(0),
        started_at: now_millis(),
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    write_atomic(&cfg.state_file, &bytes).map_err(|e| format!("write {}: {e}", cfg.state_file.display()))?;
    // Create, attach, start (as Docker's `run -t`/`-i`): the daemon has its
    // answer now, its client attaches, and only then does the init exec, so
    // its first output (a shell's prompt) reaches the client.
    let mut first_client = None;
    let reported = cfg.io.wait_attach;
    if cfg.io.wait_attach {
        report(&ShimReport::Ready { record });
        let listener = pty.as_ref().map(|(_, l)| l).or(piped.as_ref().map(|(_, l)| l));
        first_client = listener.and_then(wait_for_client);
        profile::shim_mark("client attached");
    }
    profile::shim_mark("exec'ing the command");
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(format!("cannot start container: {}", describe_error(&e)));
    }
    profile::shim_mark("command exec'd");
    tracing::debug!("container started");
    Ok(Running {
        state_dir: container.root.clone(),
        record,
        init_pidfd,
        stdout: out_r,
        stderr: err_r,
        pty,
        piped,
        first_client,
        reported,
    })
}

/// The shim stays resident for the container's whole life, but after setup
/// it only runs a poll loop. Most of what setup touched (libcontainer, serde,
/// libseccomp, the relocation tables) is read-only pages of mapped files: drop
/// them from our page tables so the kernel faults back only what the loop
/// uses, and return freed heap to the kernel.
fn release_setup_memory() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms), Some(offset)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        // Only mappings of files (the executable and shared libraries).
        let path = fields.nth(2).unwrap_or("");
        if !path.starts_with('/') {
            continue;
        }
        // Only pages never written: the text, and the first read-only segment
        // (headers, rodata, relocation tables). The RELRO segment (also r--p,
        // at a later offset) holds relocated pointers in private copies that
        // dropping would revert to the file's unrelocated bytes.
        let never_written = perms == "r-xp" || (perms == "r--p" && offset.trim_start_matches('0').is_empty());
        if !never_written {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) else {
            continue;
        };
        // SAFETY: the range is a file mapping that is never written (W^X
        // text, or a file's first read-only segment); MADV_DONTNEED on it only
        // drops page-table entries, and later accesses fault the same bytes
        // back in from the file (the sealed memfd, or a library on disk).
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
}

/// A new network namespace has `lo` down; Docker brings it up. A socket
/// belongs to the namespace it was created in, so the shim steps into the
/// init's namespace just long enough to create one, steps back, and sets the
/// flag through it (no helper process; the shim is single-threaded here).
/// The socket and the ioctl are the network module's, which owns links.
fn bring_up_loopback(init_pid: i32) -> Result<(), String> {
    let target = File::open(format!("/proc/{init_pid}/ns/net")).map_err(|e| format!("open netns: {e}"))?;
    let own = File::open("/proc/self/ns/net").map_err(|e| format!("open own netns: {e}"))?;
    nix::sched::setns(&target, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
    let sock = link::netns_socket();
    if let Err(e) = nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWNET) {
        // Staying in the container's namespace would be worse than failing.
        eprintln!("berth-shim: cannot return to the host network namespace: {e}");
        std::process::exit(1);
    }
    let sock = sock.map_err(|e| format!("socket: {e}"))?;
    link::set_lo_up(sock.as_fd()).map_err(|e| format!("lo up: {e}"))
}

/// libcontainer wraps the useful message (e.g. "executable not found") in
/// several layers; show the whole chain once.
pub(crate) fn describe_error(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

fn supervise(cfg: &ShimConfig, mut running: Running) {
    let mut log = LogWriter::open(&cfg.log, cfg.io.log_max_bytes, cfg.io.log_max_files.unwrap_or(1));
    let mut splitters = [LineSplitter::default(), LineSplitter::default()];
    let mut open = [true, true];
    let mut status = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut pty_open = running.pty.is_some();
    let (stdin_pipe, piped_listener) = running.piped.take().unzip();
    let stdin_pipe = stdin_pipe.flatten();
    let piped = piped_listener.is_some();
    let master = running.pty.as_ref().map(|(m, _)| m);
    let listener = running.pty.as_ref().map(|(_, l)| l).or(piped_listener.as_ref());
    let mut client: Option<std::os::unix::net::UnixStream> = None;
    // Whether the attached client may still send input.
    let mut client_input = false;
    let mut first = running.first_client.take();
    // The container's stdin (piped mode), and input read but not yet written.
    let mut stdin_w: Option<OwnedFd> = stdin_pipe;
    let mut pending: Vec<u8> = Vec::new();
    // Output before the first client attached; None once one did.
    let mut early: Option<Vec<u8>> = listener.map(|_| Vec::new());
    if let Some(c) = first.take() {
        let _ = c.set_nonblocking(false);
        let sent = match master {
            Some(m) => super::exec::send_fd(c.as_raw_fd(), m.as_raw_fd()).is_ok(),
            None => true,
        };
        if sent {
            early = None;
            client_input = master.is_some() || stdin_w.is_some();
            client = Some(c);
        }
    }
    loop {
        if status.is_some() && !open[0] && !open[1] && !pty_open {
            break;
        }
        let streams = [running.stdout.as_fd(), running.stderr.as_fd()];
        let live = |on: bool| if on { PollFlags::POLLIN } else { PollFlags::empty() };
        let mut fds = vec![
            PollFd::new(streams[0], live(open[0])),
            PollFd::new(streams[1], live(open[1])),
            PollFd::new(running.init_pidfd.as_fd(), live(status.is_none())),
        ];
        let master_at = slot(
            &mut fds,
            master.filter(|_| pty_open).map(|m| m.as_fd()),
            PollFlags::POLLIN,
        );
        let listener_at = slot(&mut fds, listener.map(|l| l.as_fd()), PollFlags::POLLIN);
        // Input is read only once what came before is in the pipe: a
        // container that does not read slows its client down.
        let client_at = slot(
            &mut fds,
            client
                .as_ref()
                .filter(|_| client_input && pending.is_empty())
                .map(|c| c.as_fd()),
            PollFlags::POLLIN,
        );
        let stdin_at = slot(
            &mut fds,
            stdin_w.as_ref().filter(|_| !pending.is_empty()).map(|w| w.as_fd()),
            PollFlags::POLLOUT,
        );
        // After the init exited, its pid namespace is gone, so the pipes
        // close at once; the timeout only guards against a leaked writer.
        let timeout = if status.is_some() {
            PollTimeout::from(500u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        let is_ready = |at: Option<usize>| at.is_some_and(|i| ready[i]);
        for i in 0..2 {
            if !open[i] || !ready[i] {
                continue;
            }
            match nix::unistd::read(streams[i].as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => open[i] = false,
                Ok(n) => {
                    write_lines(&mut log, i, splitters[i].push(&buf[..n]));
                    if piped {
                        let mut framed = crate::wire::exec_frame::header(i as u8 + 1, n).to_vec();
                        framed.extend_from_slice(&buf[..n]);
                        to_client(&mut client, &mut early, &framed);
                    }
                }
            }
        }
        if status.is_none() && ready[2] {
            status = Some(reap(running.record.init_pid));
            profile::shim_mark("init reaped");
        }
        if let (Some(m), true) = (master, is_ready(master_at)) {
            match nix::unistd::read(m.as_raw_fd(), &mut buf) {
                // EIO: the last holder of the pty's other side is gone.
                Ok(0) | Err(_) => pty_open = false,
                Ok(n) => {
                    write_lines(&mut log, 0, splitters[0].push(&buf[..n]));
                    to_client(&mut client, &mut early, &buf[..n]);
                }
            }
        }
        if is_ready(stdin_at) {
            if let Some(w) = &stdin_w {
                match nix::unistd::write(w, &pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                    // EPIPE: the container closed its stdin.
                    Err(_) => {
                        stdin_w = None;
                        pending.clear();
                    }
                }
            }
            if pending.is_empty() && !client_input {
                // The client's EOF, now that all it sent is in the pipe.
                stdin_w = None;
            }
        }
        if let (Some(l), true) = (listener, is_ready(listener_at)) {
            if let Ok((mut c, _)) = l.accept() {
                // One attached client at a time: the newest wins.
                let _ = c.set_nonblocking(false);
                let sent = match master {
                    Some(m) => super::exec::send_fd(c.as_raw_fd(), m.as_raw_fd()).is_ok(),
                    None => true,
                };
                let replayed = match early.take() {
                    Some(out) => c.write_all(&out).is_ok(),
                    None => true,
                };
                if sent && replayed {
                    // Input goes on from the newest client while stdin is open.
                    client_input = master.is_some() || stdin_w.is_some();
                    pending.clear();
                    client = Some(c);
                }
            }
        } else if let (Some(c), true) = (&client, is_ready(client_at)) {
            match nix::unistd::read(c.as_raw_fd(), &mut buf) {
                Ok(0) if piped => {
                    // A half-close: EOF to the container; output still flows.
                    client_input = false;
                    stdin_w = None;
                }
                Ok(0) | Err(_) => client = None,
                Ok(n) => match master {
                    Some(m) => {
                        if write_all_fd(m.as_fd(), &buf[..n]).is_err() {
                            client = None;
                        }
                    }
                    None => pending.extend_from_slice(&buf[..n]),
                },
            }
        }
    }
    // The attached client sees EOF once the shim is done.
    drop(client);
    for (i, splitter) in splitters.iter_mut().enumerate() {
        if let Some(rest) = splitter.finish() {
            write_lines(&mut log, i, vec![rest]);
        }
    }
    let code = match status {
        Some(WaitStatus::Exited(_, code)) => (code, None),
        Some(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    tracing::debug!("init exited, output drained");
    profile::shim_mark("output drained");
    let oom_killed = cgroup::oom_killed(&cfg.cgroup_path);
    // The init is reaped, so only its cgroup and libcontainer's state dir
    // remain. libcontainer's delete() would rebuild a cgroup manager (a
    // mountinfo parse per controller) to do the same rmdirs; on the exit path
    // that is a millisecond the daemon (and `run --rm`) waits for.
    let errors = cgroup::remove(&cfg.cgroup_path);
    profile::shim_mark("cgroups removed");
    if !errors.is_empty() {
        // The daemon's cleanup retries; say why here for the shim log.
        eprintln!("berth-shim: {}", errors.join("; "));
    }
    let _ = std::fs::remove_dir_all(&running.state_dir);
    tracing::debug!("container deleted");
    profile::shim_mark("state dir removed");
    unmount_later(&cfg.rootfs);
    profile::shim_mark("unmounted");
    if cfg.profile {
        profile::write_shim_marks(cfg.state_file.parent().unwrap_or(Path::new("/")));
    }
    let exit = ExitRecord {
        code: code.0,
        signal: code.1,
        oom_killed,
        finished_at: now_millis(),
    };
    if let Ok(bytes) = serde_json::to_vec(&exit) {
        let _ = write_atomic(&cfg.exit_file, &bytes);
    }
    tracing::debug!("exit recorded");
}

/// Unmounts the container's root now, but leaves the end of its overlay
/// (the sync of its upper dir's file system, a journal commit: ms, and tens
/// of ms on a busy disk) to a child that does it once the shim is gone.
///
/// Why: the daemon learns the exit when the shim exits, and `run --rm`
/// answers only after that. A detached unmount takes the mount out of the
/// namespace at once; the file system is shut down when its last reference
/// goes. The child holds one (an `O_PATH` fd of the root) until the kernel
/// kills it as the shim exits (`PR_SET_PDEATHSIG`), so that work happens in
/// the child's exit, after the daemon has the exit record. Without the
/// child (a failed fork), the shim does it all itself, as before.
fn unmount_later(rootfs: &Path) {
    use std::os::fd::IntoRawFd;
    let held = nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    );
    let shim = nix::unistd::getpid();
    if let Ok(fd) = held {
        let raw = fd.into_raw_fd();
        // SAFETY: the shim is single-threaded, so the child may do anything
        // the parent could; it only makes async-signal-safe calls.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // SAFETY: prctl, getppid, dup2, close_range and pause on
                // our own fds; the child never returns into the shim.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != shim.as_raw() {
                        libc::_exit(0);
                    }
                    // Only the root's reference is kept: the daemon must see
                    // every other fd of the shim's (pipes, sockets) close.
                    libc::dup2(raw, 0);
                    libc::close_range(1, u32::MAX, 0);
                    loop {
                        libc::pause();
                    }
                }
            }
            // SAFETY: our own fd, no longer used.
            _ => unsafe {
                libc::close(raw);
            },
        }
    }
    let _ = umount2(rootfs, MntFlags::MNT_DETACH);
}

/// Adds `fd` to the poll set, if there is one; its slot.
fn slot<'a>(fds: &mut Vec<PollFd<'a>>, fd: Option<std::os::fd::BorrowedFd<'a>>, flags: PollFlags) -> Option<usize> {
    fd.map(|fd| {
        fds.push(PollFd::new(fd, flags));
        fds.len() - 1
    })
}

/// Output for the attached client; kept for the first one while none is.
fn to_client(client: &mut Option<std::os::unix::net::UnixStream>, early: &mut Option<Vec<u8>>, data: &[u8]) {
    if let Some(c) = client {
        if c.write_all(data).is_err() {
            *client = None;
        }
    } else if let Some(kept) = early {
        // Whole chunks only: a frame is never cut.
        if kept.len() + data.len() <= EARLY_OUTPUT {
            kept.extend_from_slice(data);
        }
    }
}

fn write_all_fd(fd: std::os::fd::BorrowedFd, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn reap(pid: i32) -> WaitStatus {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return status,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return WaitStatus::StillAlive,
        }
    }
}

fn write_lines(log: &mut LogWriter, stream: usize, lines: Vec<String>) {
    if lines.is_empty() {
        return;
    }
    let name = if stream == 0 { "stdout" } else { "stderr" };
    let ts = timestamp_now();
    let mut out = String::new();
    for line in lines {
        out.push_str(&ts);
        out.push(' ');
        out.push_str(name);
        out.push(' ');
        out.push_str(&line);
        out.push('\n');
    }
    log.write(out.as_bytes());
}
