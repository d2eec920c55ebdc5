//! `exec`: a process in a running container. The exec shim (see
//! `runtime::exec`) runs it; [`pump`] carries its stdio over a byte stream
//! (the API's upgraded connection) as Docker multiplexes attach streams.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{CommandError, Result};
use crate::reconcile::state::ContainerState;
use crate::reconcile::Engine;
use crate::runtime::exec::{ExecProcess, ExecReport, ExecSpec};
use crate::wire::{exec_frame, ExecExit, ExecRequest, ExecStarted};

/// How long output is still read after the process exited: what it wrote
/// is in the pipe already; a background child that keeps the pipe open does
/// not hold the exec open (as with `docker exec`).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// Checks the request and the container, then starts the exec shim.
pub fn start(engine: &Arc<Engine>, name: &str, req: &ExecRequest) -> Result<ExecProcess> {
    super::check_name(crate::manifest::Kind::Container, name)?;
    let bad = CommandError::Invalid;
    if req.command.is_empty() {
        return Err(bad("exec needs a command".into()));
    }
    for e in &req.env {
        if !e.contains('=') {
            return Err(bad(format!("-e {e:?}: expected KEY=VALUE")));
        }
    }
    if let Some(u) = req.user.as_deref() {
        if u.is_empty() || u.split(':').count() > 2 || u.split(':').any(str::is_empty) {
            return Err(bad(format!("-u {u:?}: expected USER, USER:GROUP, uid or uid:gid")));
        }
    }
    if let Some(dir) = &req.working_dir {
        if !dir.starts_with('/') {
            return Err(bad(format!("-w {dir:?}: the working directory must be absolute")));
        }
    }
    if !engine.container_known(name)? {
        return Err(CommandError::NotFound(format!("container/{name}")));
    }
    if engine.container_state(name) != ContainerState::Running {
        return Err(CommandError::Conflict(format!(
            "container {name} is not running: start it first"
        )));
    }
    if engine.container_frozen(name) {
        return Err(CommandError::Conflict(format!(
            "container {name} is paused: unpause it first"
        )));
    }
    let (uid, gid) = match req.user.as_deref() {
        None => (None, None),
        Some(u) => {
            // Names are the container's now (its /etc may have changed
            // since the image), read inside its root by the image code's
            // resolver, as the image config's User is.
            let passwd = engine.container_file(name, "/etc/passwd");
            let group = engine.container_file(name, "/etc/group");
            let (uid, gid) = crate::image::record::resolve_user(u, passwd.as_deref(), group.as_deref())
                .map_err(|why| bad(format!("-u {u}: {}", why.replace("the image's", "the container's"))))?;
            (Some(uid), Some(gid))
        }
    };
    let process = ExecSpec {
        args: req.command.clone(),
        env: req.env.clone(),
        cwd: req.working_dir.clone(),
        uid,
        gid,
        tty: req.tty && !req.detach,
    };
    engine
        .exec(name, process, !req.detach, req.interactive && !req.detach)
        .map_err(|e| CommandError::Unavailable(e.to_string()))
}

/// `exec -d`: answers once the process runs.
pub async fn detached(engine: &Arc<Engine>, name: &str, req: &ExecRequest) -> Result<ExecStarted> {
    let mut p = start(engine, name, req)?;
    let first = p.next_report().await;
    // The exec shim stays to reap the process; the zygote reaps the shim.
    match first {
        Some(ExecReport::Started { pid }) => Ok(ExecStarted { pid }),
        Some(ExecReport::Failed { error, .. }) => Err(CommandError::Invalid(error)),
        _ => Err(CommandError::Unavailable(format!(
            "exec in {name}: the exec shim ended without a report"
        ))),
    }
}

/// Docker's detach keys over typed input: a typed prefix of the sequence is
/// held back until the next key decides; the whole sequence detaches, any
/// other key sends what was held and itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys {
    keys: Vec<u8>,
    held: usize,
}

impl DetachKeys {
    /// `ctrl-p,ctrl-q` (Docker's default) when `spec` is none or empty.
    pub fn parse(spec: Option<&str>) -> Result<DetachKeys> {
        let spec = spec.filter(|s| !s.is_empty()).unwrap_or("ctrl-p,ctrl-q");
        let bad = |part: &str| {
            CommandError::Invalid(format!(
                "--detach-keys {spec:?}: {part:?} is not a key: use one character or ctrl-<a-z, @, [, \\, ], ^, _>, comma-separated"
            ))
        };
        let mut keys = Vec::new();
        for part in spec.split(',') {
            let key = match part.strip_prefix("ctrl-") {
                Some(k) if k.len() == 1 => match k.as_bytes()[0] {
                    c @ b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    c @ (b'[' | b'\\' | b']' | b'^' | b'_') => c - b'@',
                    _ => return Err(bad(part)),
                },
                Some(_) => return Err(bad(part)),
                None if part.len() == 1 => part.as_bytes()[0],
                None => return Err(bad(part)),
            };
            keys.push(key);
        }
        Ok(DetachKeys { keys, held: 0 })
    }

    /// Takes typed bytes; returns those to pass on, and whether the
    /// sequence is complete (what follows it is dropped).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    self.held = 0;
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.held]);
            self.held = 0;
            if b == self.keys[0] {
                if self.keys.len() == 1 {
                    return (out, true);
                }
                self.held = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Relays a tty's bytes: `io` (a pty master, or a shim's attach socket)
/// to the client as stdout frames, the client's stdin frames to `io`, and
/// resize frames to `size_fd` (else `io`), until `io` closes or, with
/// `detach_keys`, the client types them (then `io` is handed back).
pub(crate) async fn relay_tty<R, W>(
    io: tokio::io::unix::AsyncFd<OwnedFd>,
    size_fd: Option<OwnedFd>,
    mut rd: R,
    wr: &mut W,
    mut detach_keys: Option<DetachKeys>,
) -> Option<Arc<tokio::io::unix::AsyncFd<OwnedFd>>>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let io = Arc::new(io);
    let input = io.clone();
    let (detached_tx, mut detached_rx) = tokio::sync::oneshot::channel::<()>();
    let from_client = tokio::spawn(async move {
        let mut header = [0u8; 8];
        let mut payload = Vec::new();
        loop {
            if rd.read_exact(&mut header).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            payload.resize(len.min(1 << 20), 0);
            if rd.read_exact(&mut payload).await.is_err() {
                return;
            }
            match header[0] {
                exec_frame::STDIN => {
                    let typed = match &mut detach_keys {
                        Some(keys) => {
                            let (pass, detach) = keys.feed(&payload);
                            if detach {
                                // What came before the sequence still goes in.
                                write_all_async(&input, &pass).await;
                                let _ = detached_tx.send(());
                                return;
                            }
                            pass
                        }
                        None => std::mem::take(&mut payload),
                    };
                    if !write_all_async(&input, &typed).await {
                        return;
                    }
                }
                exec_frame::RESIZE if payload.len() == 4 => {
                    let rows = u16::from_be_bytes([payload[0], payload[1]]);
                    let columns = u16::from_be_bytes([payload[2], payload[3]]);
                    resize(size_fd.as_ref().unwrap_or(input.get_ref()), rows, columns);
                }
                _ => {}
            }
        }
    });
    let mut buf = vec![0u8; 32 * 1024];
    let mut client_gone = false;
    let mut detached = false;
    // The client's side ended without detaching: only the tty is watched.
    let mut keys_done = false;
    loop {
        let guard = tokio::select! {
            g = io.readable() => g,
            r = &mut detached_rx, if !keys_done => {
                keys_done = true;
                if r.is_ok() {
                    detached = true;
                    break;
                }
                continue;
            }
        };
        let Ok(mut guard) = guard else { break };
        match guard.try_io(|fd| nix::unistd::read(fd.get_ref().as_raw_fd(), &mut buf).map_err(std::io::Error::from)) {
            // EIO: the last holder of the pty's other side is gone.
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                if !client_gone {
                    client_gone = !frame(wr, exec_frame::STDOUT, &buf[..n]).await;
                }
            }
            Err(_would_block) => continue,
        }
    }
    from_client.abort();
    detached.then_some(io)
}

/// Writes all of `data` to a non-blocking fd; false when it failed.
async fn write_all_async(fd: &tokio::io::unix::AsyncFd<OwnedFd>, mut rest: &[u8]) -> bool {
    while !rest.is_empty() {
        let Ok(mut guard) = fd.writable().await else {
            return false;
        };
        match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), rest).map_err(std::io::Error::from)) {
            Ok(Ok(n)) => rest = &rest[n..],
            Ok(Err(_)) => return false,
            Err(_would_block) => continue,
        }
    }
    true
}

/// Carries one exec's stdio over `io` until the process has exited: stdin
/// from `io` (when the process has one), output to it in frames, then the
/// exit frame. Each write waits for the client: a slow reader slows the
/// process down (its pipe fills) rather than losing output.
pub async fn pump<IO: AsyncRead + AsyncWrite + Send + 'static>(
    mut p: ExecProcess,
    io: IO,
    size: Option<(u16, u16)>,
    keys: Option<DetachKeys>,
) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let exit = match p.next_report().await {
        Some(ExecReport::Started { .. }) if p.pty_socket.is_some() => match take_pty(&mut p, size).await {
            Ok(master) => relay_pty(&mut p, master, rd, &mut wr, keys).await,
            Err(e) => ExecExit {
                exit_code: 126,
                error: Some(format!("exec: no pty: {e}")),
            },
        },
        Some(ExecReport::Started { .. }) => {
            if let Some(mut stdin) = p.stdin.take() {
                tokio::spawn(async move {
                    // EOF from the client (a half-close) closes the process's stdin.
                    let _ = tokio::io::copy(&mut rd, &mut stdin).await;
                    let _ = stdin.shutdown().await;
                });
            }
            relay_output(&mut p, &mut wr).await
        }
        Some(ExecReport::Failed { error, exit_code }) => ExecExit {
            exit_code,
            error: Some(error),
        },
        Some(ExecReport::Exited { code }) => ExecExit {
            exit_code: code,
            error: None,
        },
        None => ExecExit {
            exit_code: 126,
            error: Some("the exec shim ended without a report".into()),
        },
    };
    send_exit(&mut wr, &exit).await;
}

/// The last frame of an exec or attach: the exit, then the end of the stream.
pub(super) async fn send_exit<W: AsyncWrite + Unpin>(wr: &mut W, exit: &ExecExit) {
    if let Ok(body) = serde_json::to_vec(exit) {
        let _ = wr.write_all(&exec_frame::header(exec_frame::EXIT, body.len())).await;
        let _ = wr.write_all(&body).await;
    }
    let _ = wr.shutdown().await;
}

/// Receives the pty master from the exec shim and sets its first size.
async fn take_pty(p: &mut ExecProcess, size: Option<(u16, u16)>) -> std::io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    let socket = p
        .pty_socket
        .take()
        .ok_or_else(|| std::io::Error::other("no pty socket"))?;
    let master = tokio::task::spawn_blocking(move || crate::runtime::exec::receive_fd(&socket)).await??;
    if let Some((rows, columns)) = size {
        resize(&master, rows, columns);
    }
    let flags = nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
    nix::fcntl::fcntl(
        master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    // SAFETY: the AsyncFd owns the OwnedFd, so the fd stays open and the
    // same for the AsyncFd's whole life.
    unsafe { tokio::io::unix::AsyncFd::register(master) }.map_err(std::io::Error::from)
}

pub(crate) fn resize(master: &OwnedFd, rows: u16, columns: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize we own from a pty master we own.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// With a tty: pty output to the client as stdout frames; the client's
/// frames to the pty (input) or to its size, until the pty closes.
async fn relay_pty<R, W>(
    p: &mut ExecProcess,
    master: tokio::io::unix::AsyncFd<OwnedFd>,
    rd: R,
    wr: &mut W,
    keys: Option<DetachKeys>,
) -> ExecExit
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    if let Some(master) = relay_tty(master, None, rd, wr, keys).await {
        // Detached: the process runs on. Its pty is kept open (its close
        // would hang it up) and read, so that its output never blocks it.
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let Ok(mut guard) = master.readable().await else { return };
                match guard
                    .try_io(|fd| nix::unistd::read(fd.get_ref().as_raw_fd(), &mut buf).map_err(std::io::Error::from))
                {
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(_)) | Err(_) => continue,
                }
            }
        });
        return ExecExit {
            exit_code: 0,
            error: None,
        };
    }
    loop {
        match p.next_report().await {
            Some(ExecReport::Exited { code }) => {
                return ExecExit {
                    exit_code: code,
                    error: None,
                }
            }
            Some(_) => continue,
            None => {
                return ExecExit {
                    exit_code: 255,
                    error: Some("the exec shim ended without reporting the exit".into()),
                }
            }
        }
    }
}

/// Forwards stdout and stderr until both close (or, once the process has
/// exited, until [`DRAIN_AFTER_EXIT`] passed); returns the exit.
async fn relay_output<W: AsyncWrite + Unpin>(p: &mut ExecProcess, wr: &mut W) -> ExecExit {
    let mut out = p.stdout.take();
    let mut err = p.stderr.take();
    let mut out_buf = vec![0u8; 32 * 1024];
    let mut err_buf = vec![0u8; 32 * 1024];
    let mut exit: Option<ExecExit> = None;
    let mut reports_open = true;
    let drain = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(drain);
    let mut client_gone = false;
    loop {
        if out.is_none() && err.is_none() && (exit.is_some() || !reports_open) {
            break;
        }
        tokio::select! {
            n = read_some(&mut out, &mut out_buf) => match n {
                Some(n) if !client_gone => client_gone = !frame(wr, exec_frame::STDOUT, &out_buf[..n]).await,
                Some(_) => {}
                None => out = None,
            },
            n = read_some(&mut err, &mut err_buf) => match n {
                Some(n) if !client_gone => client_gone = !frame(wr, exec_frame::STDERR, &err_buf[..n]).await,
                Some(_) => {}
                None => err = None,
            },
            r = p.next_report(), if reports_open && exit.is_none() => match r {
                Some(ExecReport::Exited { code }) => {
                    exit = Some(ExecExit { exit_code: code, error: None });
                    drain.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                }
                Some(_) => {}
                None => reports_open = false,
            },
            _ = &mut drain => break,
        }
    }
    exit.unwrap_or(ExecExit {
        exit_code: 255,
        error: Some("the exec shim ended without reporting the exit".into()),
    })
}

/// Reads from a stream that may be closed already (then never returns);
/// None at EOF or on an error.
async fn read_some<R: AsyncRead + Unpin>(stream: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    match stream {
        Some(s) => match s.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// Writes one frame; false when the client went away.
async fn frame<W: AsyncWrite + Unpin>(wr: &mut W, stream: u8, data: &[u8]) -> bool {
    wr.write_all(&exec_frame::header(stream, data.len())).await.is_ok()
        && wr.write_all(data).await.is_ok()
        && wr.flush().await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_ctrl_p_goes_on_with_any_key_but_ctrl_q_which_detaches() {
        let mut k = DetachKeys::parse(None).unwrap();
        assert_eq!(k.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(k.feed(b"x"), (b"\x10x".to_vec(), false));
        assert_eq!(k.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(k.feed(b"\x11rest"), (Vec::new(), true));
        assert_eq!(k.feed(b"z\x10\x11"), (b"z".to_vec(), true));
    }

    #[test]
    fn detach_keys_parse_as_docker_takes_them() {
        let mut k = DetachKeys::parse(Some("ctrl-a,d")).unwrap();
        assert_eq!(k.feed(b"d\x01"), (b"d".to_vec(), false));
        assert_eq!(k.feed(b"d"), (Vec::new(), true));
        let mut one = DetachKeys::parse(Some("ctrl-\\")).unwrap();
        assert_eq!(one.feed(b"a\x1cb"), (b"a".to_vec(), true));
        assert_eq!(DetachKeys::parse(Some("ctrl-@")).unwrap().keys, [0]);
        for bad in ["ctrl-", "ctrl-1", "ab", "ctrl-p,,ctrl-q"] {
            let err = DetachKeys::parse(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("--detach-keys"), "{bad}: {err}");
        }
    }
}
