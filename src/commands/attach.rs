//! `attach`: the stdio of a running container with a tty, through its shim's
//! attach socket (see `runtime::shim::ATTACH_SOCKET`); the same framing as
//! an attached exec, with Docker's detach keys (ctrl-p ctrl-q).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{CommandError, Result};
use crate::reconcile::state::ContainerState;
use crate::reconcile::Engine;
use crate::wire::{exec_frame, ExecExit};

/// A connection to a shim's pty: the byte stream and the pty master (for resizes).
pub struct Attached {
    stream: OwnedFd,
    master: OwnedFd,
}

/// Checks the container and connects to its shim.
pub async fn connect(engine: &Arc<Engine>, name: &str) -> Result<Attached> {
    if !engine.container_known(name)? {
        return Err(CommandError::NotFound(format!("container/{name}")));
    }
    if engine.container_state(name) != ContainerState::Running {
        return Err(CommandError::Conflict(format!(
            "container {name} is not running: start it first"
        )));
    }
    let path = engine.attach_socket(name);
    if !path.exists() {
        return Err(CommandError::Invalid(format!(
            "container {name} has no tty: attach needs `tty: true` (run -t)"
        )));
    }
    let unavailable = |e: std::io::Error| CommandError::Unavailable(format!("attach to {name}: {e}"));
    tokio::task::spawn_blocking(move || {
        let stream = std::os::unix::net::UnixStream::connect(&path)?;
        // The shim sends the master as soon as it accepts; never hang on a stuck one.
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let stream = OwnedFd::from(stream);
        let master = crate::runtime::exec::receive_fd(&stream)?;
        Ok(Attached { stream, master })
    })
    .await
    .map_err(|e| CommandError::Unavailable(e.to_string()))?
    .map_err(unavailable)
}

/// Relays the pty over `io` until the container's init exits (then its
/// exit code) or the client detaches (then 0, the container runs on).
pub async fn pump<IO: AsyncRead + AsyncWrite + Send + 'static>(
    engine: Arc<Engine>,
    name: String,
    a: Attached,
    io: IO,
    size: Option<(u16, u16)>,
) {
    let (rd, mut wr) = tokio::io::split(io);
    if let Some((rows, columns)) = size {
        super::exec::resize(&a.master, rows, columns);
    }
    let exit = match async_fd(a.stream) {
        Ok(stream) => {
            if super::exec::relay_tty(stream, Some(a.master), rd, &mut wr, true).await {
                ExecExit {
                    exit_code: 0,
                    error: None,
                }
            } else {
                exit_of(&engine, &name).await
            }
        }
        Err(e) => ExecExit {
            exit_code: 1,
            error: Some(format!("attach to {name}: {e}")),
        },
    };
    if let Ok(body) = serde_json::to_vec(&exit) {
        let _ = wr.write_all(&exec_frame::header(exec_frame::EXIT, body.len())).await;
        let _ = wr.write_all(&body).await;
    }
    let _ = wr.shutdown().await;
}

fn async_fd(fd: OwnedFd) -> std::io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    // SAFETY: the AsyncFd owns the OwnedFd, so the fd stays open and the
    // same for the AsyncFd's whole life.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(std::io::Error::from)
}

/// The shim closed the stream: the init has exited, and its exit record
/// follows at once (the shim writes it just before it exits).
async fn exit_of(engine: &Engine, name: &str) -> ExecExit {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let ContainerState::Exited(e) = engine.container_state(name) {
            return ExecExit {
                exit_code: e.code,
                error: None,
            };
        }
        if tokio::time::Instant::now() > deadline {
            return ExecExit {
                exit_code: 255,
                error: Some(format!("container {name}: no exit recorded")),
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
