//! `exec`: a process in a running container, through libcontainer's tenant
//! builder, from an exec shim that the exec zygote (`runtime::zygote`) forks:
//! `build()` must run single-threaded (notes/libcontainer.md §2), and the
//! daemon is not. The exec shim is the process's parent: it reaps it and
//! reports its exit.
//!
//! File descriptors of the exec shim: 0, 1, 2 are the process's stdio (pipes
//! to the daemon, or /dev/null); 3 is the report pipe, one JSON line
//! ([`ExecReport`]) when the process runs or could not be started, and one
//! when it has exited.
//!
//! libcontainer 0.7's tenant builder rebuilds the spec's `linux` section from
//! the namespaces and cgroup path only, so the container's seccomp filter
//! would not reach an exec'd process. The shim's [`SeccompExecutor`] loads it
//! just before exec. Without no_new_privs that needs CAP_SYS_ADMIN, so the
//! process is given it for setup and drops it from every set right after the
//! filter is in (as runc loads the filter before dropping capabilities).
//!
//! Building the filter with libseccomp costs ~1 ms, so it is compiled once
//! per container: the first exec stores the BPF program in the bundle
//! ([`FILTER_FILE`]), keyed by a hash of the filter's spec and the libseccomp
//! version, and every exec loads that program with `seccomp(2)` (a stored
//! program whose key does not match is rebuilt, never loaded).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::oci_spec::runtime::{Capabilities, Capability, LinuxSeccomp, Process, Spec};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::wait::{waitpid, WaitStatus};
use serde::{Deserialize, Serialize};

use super::cannot_execute_code;

/// The report fd of the exec shim.
pub const REPORT_FD: i32 = 3;

/// What the exec shim is told (its one argument, JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecConfig {
    pub id: String,
    pub lc_root: PathBuf,
    /// The container's bundle: its config.json holds the seccomp filter.
    pub bundle: PathBuf,
    /// The container's cgroup path: the exec shim joins the hierarchies
    /// libcontainer's tenant does not (see `cgroup::join_unmanaged`).
    #[serde(default)]
    pub cgroup_path: String,
    #[serde(flatten)]
    pub process: ExecSpec,
}

/// The process to run in the container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecSpec {
    pub args: Vec<String>,
    /// `KEY=VALUE` over the container's environment.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// A pty: its master goes to the daemon over fd [`PTY_FD`].
    #[serde(default)]
    pub tty: bool,
}

/// The exec shim's socket that carries the pty master to the daemon.
pub const PTY_FD: i32 = 4;

/// One line on the report fd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ExecReport {
    /// The process runs (host pid).
    Started { pid: i32 },
    /// It could not be started; `exit_code` is 127/126 for a command that is
    /// missing or not executable, else 126 as Docker answers a failed exec.
    Failed { error: String, exit_code: i32 },
    /// It exited: its code, or 128 + the signal.
    Exited { code: i32 },
}

/// The exec shim, in a child the zygote forked for `cfg`, with what the
/// zygote prepared for its container. Returns the shim's exit code.
pub fn main(cfg: &ExecConfig, prepared: Result<std::sync::Arc<Prepared>, String>) -> i32 {
    // SAFETY: fd 3 was placed by the zygote for us and nothing else owns it.
    let mut report_fd = unsafe { File::from_raw_fd(REPORT_FD) };
    // The exec'd process must not inherit it.
    for fd in [REPORT_FD, PTY_FD] {
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    }
    let mut report = |r: &ExecReport| {
        if let Ok(mut line) = serde_json::to_string(r) {
            line.push('\n');
            let _ = report_fd.write_all(line.as_bytes());
        }
    };
    // SAFETY: PR_SET_NAME reads a nul-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"berth-exec".as_ptr()) };
    match prepared.and_then(|p| start(cfg, &p)) {
        Ok(pid) => {
            report(&ExecReport::Started { pid: pid.as_raw() });
            let code = loop {
                match waitpid(pid, None) {
                    Ok(WaitStatus::Exited(_, code)) => break code,
                    Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break 255,
                }
            };
            report(&ExecReport::Exited { code });
            0
        }
        Err(error) => {
            let command = cfg.process.args.first().cloned().unwrap_or_default();
            // Docker's words for the two common cases; the whole chain else.
            let (error, exit_code) = match cannot_execute_code(&error) {
                Some(127) => (format!("exec: {command:?}: executable file not found in $PATH"), 127),
                Some(code) => (format!("exec: {command:?}: permission denied"), code),
                None => (format!("exec failed: {error}"), 126),
            };
            report(&ExecReport::Failed { error, exit_code });
            1
        }
    }
}

/// What every exec into one container starts from, read from its bundle:
/// the container's process (with the capabilities lent for loading the
/// filter) and its seccomp filter. The zygote keeps it per bundle (see
/// `zygote::Prepared`), so that an exec's shim parses neither.
pub struct Prepared {
    process: Process,
    /// The network namespace to join before libcontainer's tenant runs
    /// (see `spec::JOIN_NETNS_ANNOTATION`).
    join_netns: Option<PathBuf>,
    /// Capabilities lent for setup, dropped by [`SeccompExecutor`].
    lent: Vec<String>,
    seccomp: Option<Filter>,
}

/// Reads the container's spec in `bundle` for [`main`].
pub fn prepare(bundle: &std::path::Path) -> Result<Prepared, String> {
    let mut spec = Spec::load(bundle.join("config.json"))
        .map_err(|e| format!("cannot read the container's spec in {}: {e}", bundle.display()))?;
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(container_filter(bundle, s)?),
        None => None,
    };
    let mut process = spec
        .process_mut()
        .take()
        .ok_or_else(|| format!("the container's spec in {} has no process", bundle.display()))?;
    let lent = lend_capabilities(&mut process, seccomp.is_some());
    let join_netns = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(super::spec::JOIN_NETNS_ANNOTATION))
        .map(PathBuf::from);
    Ok(Prepared {
        process,
        lent,
        seccomp,
        join_netns,
    })
}

/// Moves one of our stdio fds to a higher number (libcontainer dup2's the
/// fd it is given onto 0/1/2 and then closes it, which for fd 1 itself would
/// close stdout) and leaves /dev/null in its place, so that the pipe closes
/// when the process (not this shim) is done with it.
fn take_stdio(fd: i32) -> Result<OwnedFd, String> {
    let moved =
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10)).map_err(|e| format!("dup {fd}: {e}"))?;
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("open /dev/null: {e}"))?;
    nix::unistd::dup2(null.as_raw_fd(), fd).map_err(|e| format!("dup2 {fd}: {e}"))?;
    // SAFETY: fcntl just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

fn start(cfg: &ExecConfig, prepared: &Prepared) -> Result<nix::unistd::Pid, String> {
    let seccomp = prepared.seccomp.clone();
    let process = exec_process(prepared.process.clone(), &cfg.process);
    // The tenant builder takes the process whole from a file (its own
    // defaults would turn no_new_privs on for every exec): an anonymous one,
    // which never touches the disk and needs no removal.
    let mut process_file = memfd(c"berth-process")?;
    let process_bytes = serde_json::to_vec(&process).map_err(|e| format!("serialize the process spec: {e}"))?;
    process_file
        .write_all(&process_bytes)
        .map_err(|e| format!("write the process spec: {e}"))?;
    let process_json = PathBuf::from(format!("/proc/self/fd/{}", process_file.as_raw_fd()));
    let console = cfg
        .process
        .tty
        .then(|| cfg.bundle.join(format!("exec-{}.console", std::process::id())));
    let listener = match &console {
        Some(path) => {
            let _ = std::fs::remove_file(path);
            Some(
                std::os::unix::net::UnixListener::bind(path)
                    .map_err(|e| format!("console socket {}: {e}", path.display()))?,
            )
        }
        None => None,
    };
    if let Some(path) = &prepared.join_netns {
        // The exec shim is forked for this one process: joining is for it alone.
        super::shim::join_netns_for_userns(path, None)?;
    }
    let built = build(cfg, &process_json, console.as_deref(), seccomp, prepared.lent.clone());
    drop(process_file);
    if let Some(path) = &console {
        let _ = std::fs::remove_file(path);
    }
    let pid = built?;
    if let Some(listener) = listener {
        // The process sent its pty master before it exec'd; it waits in the backlog.
        let master = receive_master(&listener)?;
        send_fd(PTY_FD, master.as_raw_fd())?;
    }
    Ok(pid)
}

/// Accepts libcontainer's connection on the console socket and takes the
/// pty master it sends (SCM_RIGHTS).
pub(crate) fn receive_master(listener: &std::os::unix::net::UnixListener) -> Result<OwnedFd, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let (conn, _) = listener.accept().map_err(|e| format!("console socket: {e}"))?;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| format!("console socket: {e}"))?;
    for cmsg in msg.cmsgs().map_err(|e| format!("console socket: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err("the container sent no pty".into())
}

/// Sends `fd` over the unix socket at `socket` (SCM_RIGHTS).
pub(crate) fn send_fd(socket: i32, fd: i32) -> Result<(), String> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(b"pty")];
    let fds = [fd];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("send the pty to the daemon: {e}"))
}

/// The daemon's side of [`send_fd`]: blocks until the fd arrives.
pub fn receive_fd(socket: &OwnedFd) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 16];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(std::io::Error::other("the exec shim sent no pty"))
}

fn build(
    cfg: &ExecConfig,
    process_json: &std::path::Path,
    console: Option<&std::path::Path>,
    seccomp: Option<Filter>,
    lent: Vec<String>,
) -> Result<nix::unistd::Pid, String> {
    let stdin = take_stdio(0)?;
    let stdout = take_stdio(1)?;
    let stderr = take_stdio(2)?;
    if !cfg.cgroup_path.is_empty() {
        // The exec'd process is cloned from this shim: it inherits these.
        let _ = super::cgroup::join_unmanaged(&cfg.cgroup_path, std::process::id() as i32);
    }
    ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_executor(SeccompExecutor { seccomp, drop: lent })
        .with_root_path(&cfg.lc_root)
        .map_err(|e| format!("runtime root {}: {e}", cfg.lc_root.display()))?
        .validate_id()
        .map_err(|e| format!("invalid container id {:?}: {e}", cfg.id))?
        .with_stdin(stdin)
        .with_stdout(stdout)
        .with_stderr(stderr)
        .with_console_socket(console)
        .as_tenant()
        .with_process(Some(process_json))
        // libcontainer gives a pty only to a "detached" process with a
        // console socket; the exec shim still waits for it.
        .with_detach(console.is_some())
        .build()
        .map_err(|e| super::shim::describe_error(&e))
}

/// The exec'd process: the container's (capabilities, rlimits,
/// no_new_privs, user) with the command, environment overrides, working
/// directory and user asked for.
fn exec_process(mut p: Process, req: &ExecSpec) -> Process {
    p.set_args(Some(req.args.clone()));
    p.set_terminal(Some(req.tty));
    let overrides: Vec<&str> = req
        .env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, _)| k)
        .collect();
    let mut env: Vec<String> = p
        .env_mut()
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !overrides.contains(&e.split_once('=').map(|(k, _)| k).unwrap_or(e)))
        .collect();
    env.extend(req.env.iter().cloned());
    // As `docker exec -t`: a pty gets TERM unless the container or the
    // exec already sets one.
    if req.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &req.cwd {
        p.set_cwd(cwd.into());
    }
    if let Some(uid) = req.uid {
        p.user_mut().set_uid(uid);
    }
    if let Some(gid) = req.gid {
        p.user_mut().set_gid(gid);
    }
    p
}

/// Loading the filter needs CAP_SYS_ADMIN (without no_new_privs) and
/// dropping from the bounding set CAP_SETPCAP; lends what the container
/// lacks, for setup only, once per container rather than per exec. Returns
/// the lent capabilities by name, for [`SeccompExecutor`] to drop.
fn lend_capabilities(p: &mut Process, has_seccomp: bool) -> Vec<String> {
    if !has_seccomp {
        return Vec::new();
    }
    let bounding = p.capabilities().as_ref().and_then(|c| c.bounding().as_ref());
    let missing: Vec<(Capability, &str)> = [
        (Capability::SysAdmin, "CAP_SYS_ADMIN"),
        (Capability::Setpcap, "CAP_SETPCAP"),
    ]
    .into_iter()
    .filter(|(cap, _)| !bounding.is_some_and(|b| b.contains(cap)))
    .collect();
    if let Some(mut caps) = p.capabilities().clone() {
        let with_lent = |set: &Option<Capabilities>| {
            set.clone().map(|mut set| {
                set.extend(missing.iter().map(|(cap, _)| *cap));
                set
            })
        };
        let (bounding, effective, permitted) = (
            with_lent(caps.bounding()),
            with_lent(caps.effective()),
            with_lent(caps.permitted()),
        );
        caps.set_bounding(bounding)
            .set_effective(effective)
            .set_permitted(permitted);
        p.set_capabilities(Some(caps));
    }
    missing.into_iter().map(|(_, name)| name.to_string()).collect()
}

/// [`super::workload::DefaultSignals`], after loading the container's
/// seccomp filter and dropping the capabilities lent for it.
#[derive(Clone)]
struct SeccompExecutor {
    seccomp: Option<Filter>,
    drop: Vec<String>,
}

impl Executor for SeccompExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let loaded = match &self.seccomp {
            Some(Filter::Program(program)) => program.load(),
            Some(Filter::Spec(seccomp)) => libcontainer::seccomp::initialize_seccomp(seccomp)
                .map(drop)
                .map_err(|e| e.to_string()),
            None => Ok(()),
        };
        loaded.map_err(|e| ExecutorError::Other(format!("cannot load the container's seccomp filter: {e}")))?;
        let drop: Vec<caps::Capability> = self.drop.iter().filter_map(|c| c.parse().ok()).collect();
        // CAP_SETPCAP last from the bounding set: dropping needs it.
        let mut ordered = drop.clone();
        ordered.sort_by_key(|c| *c == caps::Capability::CAP_SETPCAP);
        for cap in &ordered {
            caps::drop(None, caps::CapSet::Bounding, *cap)
                .map_err(|e| ExecutorError::Other(format!("cannot drop {cap} from the bounding set: {e}")))?;
        }
        for set in [
            caps::CapSet::Ambient,
            caps::CapSet::Inheritable,
            caps::CapSet::Effective,
            caps::CapSet::Permitted,
        ] {
            for cap in &drop {
                caps::drop(None, set, *cap)
                    .map_err(|e| ExecutorError::Other(format!("cannot drop {cap} ({set:?}): {e}")))?;
            }
        }
        // Fail closed: never exec with a lent capability left anywhere.
        for set in [caps::CapSet::Bounding, caps::CapSet::Effective, caps::CapSet::Permitted] {
            for cap in &drop {
                if caps::has_cap(None, set, *cap).unwrap_or(true) {
                    return Err(ExecutorError::Other(format!("{cap} is still in the {set:?} set")));
                }
            }
        }
        super::workload::DefaultSignals.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// The container's seccomp filter as the exec'd process loads it.
#[derive(Clone)]
enum Filter {
    /// Compiled (stored in the bundle, or just built).
    Program(Program),
    /// What a plain program cannot express (a notify listener): built by
    /// libcontainer in the process, as before.
    Spec(LinuxSeccomp),
}

/// The compiled filter in the bundle: one header line
/// (`berth-bpf-2 <key> <flags>`; 2 is the binary-tree layout), then the `sock_filter` array as
/// libseccomp exports it (native endian).
pub const FILTER_FILE: &str = "seccomp.bpf";
const FILTER_MAGIC: &str = "berth-bpf-2";

/// A BPF program and the `seccomp(2)` flags to load it with.
#[derive(Clone)]
struct Program {
    flags: libc::c_ulong,
    code: Vec<libc::sock_filter>,
}

impl Program {
    fn from_bytes(flags: libc::c_ulong, bytes: &[u8]) -> Result<Program, String> {
        const SIZE: usize = std::mem::size_of::<libc::sock_filter>();
        if bytes.is_empty() || !bytes.len().is_multiple_of(SIZE) || bytes.len() / SIZE > libc::BPF_MAXINSNS as usize {
            return Err(format!("a BPF program of {} bytes", bytes.len()));
        }
        let code = bytes
            .chunks_exact(SIZE)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Program { flags, code })
    }

    /// Installs the program on the calling thread (the exec'd process, just
    /// before exec), as libseccomp's `seccomp_load` does with the same flags.
    fn load(&self) -> Result<(), String> {
        let prog = libc::sock_fprog {
            len: self.code.len() as libc::c_ushort,
            filter: self.code.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `self.code`, which outlives the call; the
        // kernel copies the program and validates it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok(())
    }
}

/// The filter an exec'd process gets: the stored program when its key
/// matches `seccomp`, else one compiled now (and stored for the next exec).
fn container_filter(bundle: &std::path::Path, seccomp: &LinuxSeccomp) -> Result<Filter, String> {
    let Some(flags) = plain_flags(seccomp) else {
        return Ok(Filter::Spec(seccomp.clone()));
    };
    let key = filter_key(seccomp)?;
    let path = bundle.join(FILTER_FILE);
    if let Some(program) = read_stored(&path, &key) {
        return Ok(Filter::Program(program));
    }
    let (bytes, program) = compile_filter(seccomp)
        .and_then(|bytes| Program::from_bytes(flags, &bytes).map(|program| (bytes, program)))
        .map_err(|e| format!("cannot build the container's seccomp filter: {e}"))?;
    // Best effort: an exec that cannot store it still runs with it.
    let tmp = bundle.join(format!("{FILTER_FILE}.{}", std::process::id()));
    let mut contents = format!("{FILTER_MAGIC} {key} {flags}\n").into_bytes();
    contents.extend_from_slice(&bytes);
    if std::fs::write(&tmp, &contents)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .is_err()
    {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(Filter::Program(program))
}

fn read_stored(path: &std::path::Path, key: &str) -> Option<Program> {
    let contents = std::fs::read(path).ok()?;
    let newline = contents.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&contents[..newline]).ok()?;
    let mut words = header.split(' ');
    if words.next()? != FILTER_MAGIC || words.next()? != key {
        return None;
    }
    let flags = words.next()?.parse().ok()?;
    Program::from_bytes(flags, &contents[newline + 1..]).ok()
}

/// What the stored program was built from: the filter's spec and the
/// libseccomp that compiled it (another version may compile differently).
fn filter_key(seccomp: &LinuxSeccomp) -> Result<String, String> {
    use sha2::Digest;
    let spec = serde_json::to_vec(seccomp).map_err(|e| e.to_string())?;
    let version = libseccomp::ScmpVersion::current().map_err(|e| e.to_string())?;
    let mut hash = sha2::Sha256::new();
    hash.update(format!(
        "{FILTER_MAGIC} libseccomp {}.{}.{}\n",
        version.major, version.minor, version.micro
    ));
    hash.update(&spec);
    Ok(hex::encode(hash.finalize()))
}

/// The `seccomp(2)` flags for a filter a plain program can carry, or None
/// (a notify action needs the listener fd libseccomp's load returns).
fn plain_flags(seccomp: &LinuxSeccomp) -> Option<libc::c_ulong> {
    use libcontainer::oci_spec::runtime::LinuxSeccompFilterFlag as F;
    if libcontainer::seccomp::is_notify(seccomp) {
        return None;
    }
    let mut flags = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            F::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            F::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            F::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            F::SeccompFilterFlagWaitKillableRecv => return None,
        };
    }
    Some(flags)
}

/// The filter as libcontainer's `initialize_seccomp` builds it (same
/// translation of actions, architectures and argument rules), exported as
/// BPF instead of loaded.
fn compile_filter(seccomp: &LinuxSeccomp) -> Result<Vec<u8>, String> {
    use libcontainer::oci_spec::runtime::{Arch, LinuxSeccompAction as A, LinuxSeccompOperator as O};
    use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
    let action = |action: A, errno: Option<u32>| -> Result<ScmpAction, String> {
        let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
        Ok(match action {
            A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
            A::ScmpActTrap => ScmpAction::Trap,
            A::ScmpActErrno => ScmpAction::Errno(errno),
            A::ScmpActTrace => ScmpAction::Trace(errno.try_into().map_err(|_| format!("trace errno {errno}"))?),
            A::ScmpActAllow => ScmpAction::Allow,
            A::ScmpActKillProcess => ScmpAction::KillProcess,
            A::ScmpActNotify => ScmpAction::Notify,
            A::ScmpActLog => ScmpAction::Log,
        })
    };
    let arch = |arch: Arch| match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    };
    let op = |op: O, b: Option<u64>| match op {
        O::ScmpCmpNe => ScmpCompareOp::NotEqual,
        O::ScmpCmpLt => ScmpCompareOp::Less,
        O::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        O::ScmpCmpEq => ScmpCompareOp::Equal,
        O::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        O::ScmpCmpGt => ScmpCompareOp::Greater,
        O::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(b.unwrap_or(0)),
    };
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| e.to_string())?;
    // A binary tree of the syscall numbers, not a linear list: the kernel
    // loads it in ~120 us instead of ~300 (fewer JIT passes), and each
    // syscall of the process is checked in log(n) steps.
    ctx.set_ctl_optimize(2).map_err(|e| e.to_string())?;
    for a in seccomp.architectures().iter().flatten() {
        ctx.add_arch(arch(*a)).map_err(|e| format!("architecture {a:?}: {e}"))?;
    }
    for rule in seccomp.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        for name in rule.names() {
            // A name this libseccomp does not know is skipped, as
            // libcontainer skips it.
            let Ok(sc) = ScmpSyscall::from_name(name) else { continue };
            match rule.args() {
                Some(args) => {
                    let cmps: Vec<ScmpArgCompare> = args
                        .iter()
                        .map(|a| ScmpArgCompare::new(a.index() as u32, op(a.op(), a.value_two()), a.value()))
                        .collect();
                    let mut seen = std::collections::HashSet::new();
                    let duplicate = args.iter().any(|a| !seen.insert(a.index()));
                    if duplicate {
                        for cmp in &cmps {
                            ctx.add_rule_conditional(act, sc, std::slice::from_ref(cmp))
                                .map_err(|e| format!("rule for {name}: {e}"))?;
                        }
                    } else {
                        ctx.add_rule_conditional(act, sc, &cmps)
                            .map_err(|e| format!("rule for {name}: {e}"))?;
                    }
                }
                None => {
                    ctx.add_rule(act, sc).map_err(|e| format!("rule for {name}: {e}"))?;
                }
            }
        }
    }
    let mut out = memfd(c"berth-bpf")?;
    ctx.export_bpf(&out).map_err(|e| format!("export: {e}"))?;
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    out.seek(std::io::SeekFrom::Start(0))
        .and_then(|_| out.read_to_end(&mut bytes))
        .map_err(|e| format!("export: {e}"))?;
    Ok(bytes)
}

/// An anonymous file in memory (closed on exec).
fn memfd(name: &std::ffi::CStr) -> Result<File, String> {
    let fd = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
        .map_err(|e| format!("memfd: {e}"))?;
    Ok(File::from(fd))
}

/// A started exec shim, as the daemon holds it. The zygote is the shim's
/// parent and reaps it; the report pipe tells its end.
#[derive(Debug)]
pub struct ExecProcess {
    /// The process's stdin (None unless asked for).
    pub stdin: Option<tokio::net::unix::pipe::Sender>,
    /// Its stdout and stderr (None when detached).
    pub stdout: Option<tokio::net::unix::pipe::Receiver>,
    pub stderr: Option<tokio::net::unix::pipe::Receiver>,
    /// The exec shim's report lines.
    pub reports: tokio::io::Lines<tokio::io::BufReader<tokio::net::unix::pipe::Receiver>>,
    /// With a tty: where the pty master arrives (see [`receive_fd`]).
    pub pty_socket: Option<OwnedFd>,
}

impl ExecProcess {
    /// The next report, or None when the exec shim ended without one.
    pub async fn next_report(&mut self) -> Option<ExecReport> {
        loop {
            match self.reports.next_line().await {
                Ok(Some(line)) => {
                    if let Ok(r) = serde_json::from_str(&line) {
                        return Some(r);
                    }
                }
                _ => return None,
            }
        }
    }
}

/// One end of a pipe for the exec shim (`theirs`) and, when the daemon talks
/// to it, the other end (`ours`); /dev/null else.
struct Stdio {
    ours: Option<OwnedFd>,
    theirs: OwnedFd,
}

impl Stdio {
    /// `shim_reads`: the shim's end is the read end (stdin).
    fn new(piped: bool, shim_reads: bool) -> std::io::Result<Stdio> {
        if !piped {
            let null = File::options().read(true).write(true).open("/dev/null")?;
            return Ok(Stdio {
                ours: None,
                theirs: null.into(),
            });
        }
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(if shim_reads {
            Stdio {
                ours: Some(w),
                theirs: r,
            }
        } else {
            Stdio {
                ours: Some(r),
                theirs: w,
            }
        })
    }
}

impl super::Runtime {
    /// Starts an exec shim (forked by the zygote) for a process in container
    /// `id`. With `attach` its stdout and stderr are pipes (else /dev/null),
    /// with `stdin` its stdin is one. The caller reads the first report to
    /// learn whether it runs.
    pub fn exec(&self, id: &str, process: ExecSpec, attach: bool, stdin: bool) -> super::Result<ExecProcess> {
        // The tenant's intermediate joins the container's cgroups.
        super::cgroup::prewarm_migration();
        let tty = process.tty;
        let cfg = ExecConfig {
            id: id.to_string(),
            lc_root: self.layout.lc_root(),
            bundle: self.layout.bundle(id),
            cgroup_path: self.layout.cgroup_path(id),
            process,
        };
        let json = serde_json::to_string(&cfg).map_err(|e| super::RuntimeError::Spec {
            id: id.into(),
            message: e.to_string(),
        })?;
        let spawn_err = |source| super::RuntimeError::SpawnShim { id: id.into(), source };
        // With a pty the process's stdio is the pty (libcontainer ignores the
        // fds it is given), so the shim's own stay /dev/null.
        let (attach, stdin) = if tty { (false, false) } else { (attach, stdin) };
        let input = Stdio::new(stdin, true).map_err(spawn_err)?;
        let output = Stdio::new(attach, false).map_err(spawn_err)?;
        let errors = Stdio::new(attach, false).map_err(spawn_err)?;
        let (report_r, report_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(std::io::Error::from(e)))?;
        let pty_pair = if tty {
            Some(
                nix::sys::socket::socketpair(
                    nix::sys::socket::AddressFamily::Unix,
                    nix::sys::socket::SockType::Stream,
                    None,
                    nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                )
                .map_err(|e| spawn_err(std::io::Error::from(e)))?,
            )
        } else {
            None
        };
        let mut fds = vec![
            input.theirs.as_raw_fd(),
            output.theirs.as_raw_fd(),
            errors.theirs.as_raw_fd(),
            report_w.as_raw_fd(),
        ];
        fds.extend(pty_pair.as_ref().map(|(_, theirs)| theirs.as_raw_fd()));
        self.fork_shim(json.as_bytes(), &fds).map_err(spawn_err)?;
        // The shim holds its ends now; ours must close for EOFs to come.
        drop((input.theirs, output.theirs, errors.theirs, report_w));
        let pty_socket = pty_pair.map(|(ours, _theirs)| ours);
        let receiver = |fd: Option<OwnedFd>| {
            fd.map(tokio::net::unix::pipe::Receiver::from_owned_fd)
                .transpose()
                .map_err(spawn_err)
        };
        let reports = tokio::net::unix::pipe::Receiver::from_owned_fd(report_r).map_err(spawn_err)?;
        use tokio::io::AsyncBufReadExt;
        Ok(ExecProcess {
            stdin: input
                .ours
                .map(tokio::net::unix::pipe::Sender::from_owned_fd)
                .transpose()
                .map_err(spawn_err)?,
            stdout: receiver(output.ours)?,
            stderr: receiver(errors.ours)?,
            reports: tokio::io::BufReader::new(reports).lines(),
            pty_socket,
        })
    }

    /// Hands one shim's request (an exec's or a start's) to the zygote,
    /// starting it first when there is none yet or the last one is gone.
    pub(super) fn fork_shim(&self, request: &[u8], fds: &[i32]) -> std::io::Result<()> {
        let mut zygote = self.zygote.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(z) = zygote.as_ref() {
            match z.fork_shim(request, fds) {
                Err(e) if e.kind() != std::io::ErrorKind::InvalidInput => {
                    tracing::warn!("the zygote is gone or stuck ({e}); starting another");
                }
                done => return done,
            }
        }
        let z = super::zygote::Zygote::spawn(self.shim_exe())?;
        let done = z.fork_shim(request, fds);
        *zygote = Some(z);
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(allowed: &[&str]) -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": allowed, "action": "SCMP_ACT_ALLOW"},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 38, "op": "SCMP_CMP_NE"}, {"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn the_filter_is_compiled_once_and_a_stale_one_is_never_used() {
        let dir = std::env::temp_dir().join(format!("berth-bpf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = filter(&["read", "write"]);
        let Filter::Program(first) = container_filter(&dir, &a).unwrap() else {
            panic!("not compiled")
        };
        let stored = std::fs::read(dir.join(FILTER_FILE)).unwrap();
        let key = filter_key(&a).unwrap();
        let again = read_stored(&dir.join(FILTER_FILE), &key).expect("the stored program");
        assert_eq!(again.code.len(), first.code.len());
        assert!(first.code.len() > 5);
        // Another filter has another key: the stored program is not used
        // for it, and is replaced.
        let b = filter(&["read"]);
        assert!(read_stored(&dir.join(FILTER_FILE), &filter_key(&b).unwrap()).is_none());
        let Filter::Program(second) = container_filter(&dir, &b).unwrap() else {
            panic!("not compiled")
        };
        assert_ne!(std::fs::read(dir.join(FILTER_FILE)).unwrap(), stored);
        assert!(second.code.len() < first.code.len());
        // A damaged file is compiled again, not loaded.
        std::fs::write(dir.join(FILTER_FILE), format!("{FILTER_MAGIC} {key} 0\nxyz")).unwrap();
        assert!(read_stored(&dir.join(FILTER_FILE), &key).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The process of a container berth builds, as `prepare` keeps it.
    fn container_process(no_new_privileges: bool) -> Process {
        let cfg = super::super::ContainerConfig {
            id: "web".into(),
            args: vec!["/bin/sh".into()],
            env: vec!["PATH=/bin".into(), "HOME=/root".into(), "TERM=vt100".into()],
            cwd: "/".into(),
            uid: 1000,
            gid: 100,
            no_new_privileges,
            ..Default::default()
        };
        let spec = super::super::spec::build(&cfg, "/r", "/c", &Default::default()).unwrap();
        spec.process().clone().unwrap()
    }

    /// Capability sets are sets; their order in the JSON means nothing.
    fn sorted(mut process: serde_json::Value) -> serde_json::Value {
        if let Some(sets) = process["capabilities"].as_object_mut() {
            for set in sets.values_mut() {
                if let Some(list) = set.as_array_mut() {
                    list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                }
            }
        }
        process
    }

    /// The exec'd process serializes as it did when edited as JSON (the
    /// golden file holds that code's output). `BERTH_BLESS_SPEC=1` rewrites it.
    #[test]
    fn exec_process_json_matches_the_golden_file() {
        let plain = ExecSpec {
            args: vec!["ls".into(), "-l".into()],
            ..Default::default()
        };
        let everything = ExecSpec {
            args: vec!["top".into()],
            env: vec!["HOME=/home/u".into(), "EXTRA=1".into(), "BARE".into()],
            cwd: Some("/tmp".into()),
            uid: Some(0),
            gid: Some(42),
            tty: true,
        };
        let tty_no_term = ExecSpec {
            tty: true,
            env: vec!["TERM=dumb".into()],
            ..plain.clone()
        };
        let cases = [
            ("plain_seccomp", false, &plain, true),
            ("plain_no_seccomp", false, &plain, false),
            ("everything_seccomp", false, &everything, true),
            ("everything_no_new_privileges", true, &everything, true),
            ("tty_own_term", false, &tty_no_term, false),
        ];
        let mut ours = serde_json::Map::new();
        for (name, nnp, req, seccomp) in cases {
            // As `prepare` then `start` do.
            let mut container = container_process(nnp);
            let lent = lend_capabilities(&mut container, seccomp);
            let p = exec_process(container, req);
            let json: serde_json::Value = serde_json::from_slice(&serde_json::to_vec(&p).unwrap()).unwrap();
            ours.insert(name.into(), serde_json::json!({"process": sorted(json), "lent": lent}));
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/runtime/testdata/exec-golden.json");
        if std::env::var_os("BERTH_BLESS_SPEC").is_some() {
            std::fs::write(&path, serde_json::to_string_pretty(&ours).unwrap() + "\n").unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let golden: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(golden.keys().collect::<Vec<_>>(), ours.keys().collect::<Vec<_>>());
        for (name, expected) in &golden {
            assert_eq!(&ours[name], expected, "the exec process for case {name} changed");
        }
    }

    #[test]
    fn capabilities_the_container_lacks_are_lent_only_with_a_filter_and_to_every_set() {
        let mut p = container_process(false);
        let mut caps = p.capabilities().clone().unwrap();
        let without = |set: &Option<Capabilities>| {
            set.clone().map(|mut s| {
                s.remove(&Capability::Setpcap);
                s
            })
        };
        let (b, e, pe) = (
            without(caps.bounding()),
            without(caps.effective()),
            without(caps.permitted()),
        );
        caps.set_bounding(b).set_effective(e).set_permitted(pe);
        p.set_capabilities(Some(caps));
        assert!(lend_capabilities(&mut p.clone(), false).is_empty());
        let lent = lend_capabilities(&mut p, true);
        assert_eq!(lent, ["CAP_SYS_ADMIN", "CAP_SETPCAP"]);
        let caps = p.capabilities().as_ref().unwrap();
        for set in [caps.bounding(), caps.effective(), caps.permitted()] {
            let set = set.as_ref().unwrap();
            assert!(set.contains(&Capability::SysAdmin) && set.contains(&Capability::Setpcap));
        }
        assert_eq!(caps.inheritable(), &None, "no set is made up");
    }

    #[test]
    fn reports_are_one_json_line_each() {
        let started = serde_json::to_string(&ExecReport::Started { pid: 7 }).unwrap();
        assert_eq!(started, r#"{"started":{"pid":7}}"#);
        let failed: ExecReport = serde_json::from_str(r#"{"failed":{"error":"x","exitCode":127}}"#).unwrap();
        assert_eq!(
            failed,
            ExecReport::Failed {
                error: "x".into(),
                exit_code: 127
            }
        );
    }
}
