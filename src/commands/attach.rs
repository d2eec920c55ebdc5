//! `attach`: the stdio of a running container with a tty or an open stdin,
//! through its shim's attach socket (see `runtime::shim::ATTACH_SOCKET`);
//! the same framing as an attached exec: with a tty, Docker's detach keys
//! (ctrl-p ctrl-q); without one, stdin raw and stdout/stderr kept apart in
//! frames, and the client's half-close is EOF on the container's stdin.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{CommandError, Result};
use crate::reconcile::state::ContainerState;
use crate::reconcile::Engine;
use crate::wire::ExecExit;

/// A connection to a shim: the byte stream, and with a tty the pty master
/// (for resizes).
pub struct Attached {
    stream: OwnedFd,
    master: Option<OwnedFd>,
    keys: super::exec::DetachKeys,
}

/// Checks the container and connects to its shim.
pub async fn connect(engine: &Arc<Engine>, name: &str, detach_keys: Option<&str>) -> Result<Attached> {
    super::check_name(crate::manifest::Kind::Container, name)?;
    let keys = super::exec::DetachKeys::parse(detach_keys)?;
    if !engine.container_known(name)? {
        return Err(CommandError::NotFound(format!("container/{name}")));
    }
    if engine.container_state(name) != ContainerState::Running {
        return Err(CommandError::Conflict(format!(
            "container {name} is not running: start it first"
        )));
    }
    let tty = engine.container_stdio(name).is_some_and(|(tty, _)| tty);
    let streams = engine
        .attach_streams(name, tty)
        .await
        .map_err(|e| CommandError::Unavailable(format!("attach to {name}: {e}")))?
        .ok_or_else(|| {
            CommandError::Invalid(format!(
                "container {name} has neither a tty nor an open stdin: attach needs `tty: true` or `stdin: true` (run -t or -i)"
            ))
        })?;
    Ok(Attached {
        stream: streams.stream,
        master: streams.master,
        keys,
    })
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
    // The container is followed by its runtime id, which `rename` keeps.
    let id = engine.runtime_id(&name);
    let Some(master) = a.master else {
        pump_piped(engine.clone(), name.clone(), id.clone(), a.stream, rd, wr).await;
        return released(&engine, &id);
    };
    if let Some((rows, columns)) = size {
        super::exec::resize(&master, rows, columns);
    }
    let exit = match async_fd(a.stream) {
        Ok(stream) => {
            if super::exec::relay_tty(stream, Some(master), rd, &mut wr, Some(a.keys))
                .await
                .is_some()
            {
                ExecExit {
                    exit_code: 0,
                    error: None,
                }
            } else {
                let exit = exit_of(&engine, &id).await;
                remove_if_run_rm(&engine, &id).await;
                exit
            }
        }
        Err(e) => ExecExit {
            exit_code: 1,
            error: Some(format!("attach to {name}: {e}")),
        },
    };
    super::exec::send_exit(&mut wr, &exit).await;
    released(&engine, &id);
}

/// A foreground `run --rm` (its client attached): the container goes
/// before the client hears the exit, so that nothing of it is left once
/// `berth run` returns, as with Docker.
async fn remove_if_run_rm(engine: &Arc<Engine>, id: &str) {
    let name = engine.name_of_id(id);
    if !engine.is_attached(&name) || matches!(engine.container_state(&name), ContainerState::Running) {
        return;
    }
    let autoremove = engine.desired_objects().is_ok_and(|objects| {
        objects.iter().any(|o| {
            o.kind() == crate::manifest::Kind::Container
                && o.name() == name
                && o.metadata
                    .labels
                    .get(crate::reconcile::AUTOREMOVE_LABEL)
                    .is_some_and(|v| v == "true")
        })
    });
    if autoremove {
        super::run::forget_and_remove(engine, &name).await;
    }
}

/// The client has the exit (or left): a `run --rm` it attached for may go.
fn released(engine: &Engine, id: &str) {
    let name = &engine.name_of_id(id);
    if !matches!(engine.container_state(name), ContainerState::Running) {
        engine.detach(name);
        engine.wake();
    }
}

/// Without a tty: the shim frames the output itself, so its bytes go to the
/// client as they are; the client's raw input goes to the shim, and its
/// half-close is passed on (EOF on the container's stdin). Ends with the
/// exit frame once the shim closes (the container exited).
async fn pump_piped<R, W>(engine: Arc<Engine>, name: String, id: String, stream: OwnedFd, mut rd: R, mut wr: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let std_stream = std::os::unix::net::UnixStream::from(stream);
    let shim = std_stream
        .set_read_timeout(None)
        .and_then(|_| std_stream.set_nonblocking(true))
        .and_then(|_| tokio::net::UnixStream::from_std(std_stream));
    let exit = match shim {
        Ok(shim) => {
            let (mut from_shim, mut to_shim) = shim.into_split();
            let input = tokio::spawn(async move {
                if tokio::io::copy(&mut rd, &mut to_shim).await.is_ok() {
                    // The client's EOF: the shim closes the container's stdin.
                    let _ = to_shim.shutdown().await;
                    // Kept open until the output is done: dropping the
                    // write half would not close more than the shutdown did.
                    std::future::pending::<()>().await;
                }
            });
            let copied = tokio::io::copy(&mut from_shim, &mut wr).await;
            input.abort();
            match copied {
                Ok(_) => {
                    crate::runtime::profile::mark(&name, "output done");
                    let exit = exit_of(&engine, &id).await;
                    crate::runtime::profile::mark(&name, "exit seen");
                    remove_if_run_rm(&engine, &id).await;
                    crate::runtime::profile::mark(&name, "removed if --rm");
                    exit
                }
                // The client went away; the container runs on.
                Err(_) => return,
            }
        }
        Err(e) => ExecExit {
            exit_code: 1,
            error: Some(format!("attach to {name}: {e}")),
        },
    };
    super::exec::send_exit(&mut wr, &exit).await;
    crate::runtime::profile::mark(&name, "answered");
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
/// `id` is the container's runtime id: it may be renamed meanwhile.
async fn exit_of(engine: &Engine, id: &str) -> ExecExit {
    let name = &engine.name_of_id(id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // Woken by the exit's record (it comes a few ms after the stream
    // closed, once the shim is gone): a fixed sleep added up to 20 ms to
    // every foreground `run`.
    let mut exits = engine.exits();
    loop {
        if let ContainerState::Exited(e) = engine.container_state(name) {
            return ExecExit {
                exit_code: e.code,
                error: e.oom_killed.then(|| "container was OOM-killed".to_string()),
            };
        }
        if tokio::time::Instant::now() > deadline {
            return ExecExit {
                exit_code: 255,
                error: Some(format!("container {name}: no exit recorded")),
            };
        }
        tokio::select! {
            _ = exits.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}
