//! `exec`: a command in a running container, as `docker exec`. Its stdio
//! travels over an upgraded connection (see `wire::exec_frame`); the exit
//! code is the process's.

use std::io::{Read, Write};
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::args::{ExecArgs, Global};
use crate::cli::client;
use crate::client::segment;
use crate::client::ClientError;
use crate::wire::{exec_frame, AttachRequest, ExecExit, ExecRequest, ExecStarted};

/// Docker's codes: the process's exit code; 126/127 when its command cannot
/// run; 1 when the daemon refused (no such container, not running).
pub async fn exec(g: &Global, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let size = if args.tty { window_size() } else { None };
    let req = ExecRequest {
        command: args.command,
        env: args.env,
        user: args.user,
        working_dir: args.workdir,
        interactive: args.interactive,
        detach: args.detach,
        tty: args.tty,
        rows: size.map(|s| s.0),
        columns: size.map(|s| s.1),
        detach_keys: args.detach_keys,
    };
    let path = format!("/v1/exec/{}", segment(&args.name));
    let c = client(g, true);
    if req.detach {
        return match c.post::<_, ExecStarted>(&path, &req).await {
            Ok(_) => Ok(ExitCode::SUCCESS),
            Err(ClientError::Api { message, .. }) => {
                eprintln!("berth: {message}");
                Ok(ExitCode::from(1))
            }
            Err(e) => Err(e.into()),
        };
    }
    let body = serde_json::to_vec(&req)?;
    let io = match c.upgrade(&path, exec_frame::PROTOCOL, body).await {
        Ok(io) => io,
        Err(ClientError::Api { message, .. }) => {
            eprintln!("berth: {message}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    session(io, req.tty, req.interactive, Streams::default()).await
}

/// `attach NAME`: as the container was made, with a tty or with an open stdin.
pub async fn attach_by_name(g: &Global, name: &str, detach_keys: Option<String>) -> anyhow::Result<ExitCode> {
    let tty = match client(g, true)
        .get::<crate::wire::ContainerInspect>(&format!("/v1/inspect/{}", segment(name)))
        .await
    {
        Ok(v) => matches!(v.config, Some(crate::manifest::Spec::Container(c)) if c.tty),
        Err(ClientError::Api { message, .. }) => {
            eprintln!("berth: {message}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    attach(g, name, tty, true, detach_keys).await
}

/// `attach` (and `run -t`/`-i`): the container's pty, as an `exec -t`, or
/// its stdin and output, as an `exec -i`; exits with the container's code,
/// or 0 after ctrl-p ctrl-q.
pub async fn attach(
    g: &Global,
    name: &str,
    tty: bool,
    interactive: bool,
    detach_keys: Option<String>,
) -> anyhow::Result<ExitCode> {
    attach_with(g, name, tty, interactive, detach_keys, Streams::default()).await
}

/// Which of the container's streams an attach shows, and whether the CLI's
/// signals go to the container (`run -a`, `--sig-proxy`).
#[derive(Debug, Clone, Copy)]
pub struct Streams {
    pub stdout: bool,
    pub stderr: bool,
    pub sig_proxy: bool,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            stdout: true,
            stderr: true,
            sig_proxy: true,
        }
    }
}

/// [`attach`], showing only `streams`.
pub async fn attach_with(
    g: &Global,
    name: &str,
    tty: bool,
    interactive: bool,
    detach_keys: Option<String>,
    streams: Streams,
) -> anyhow::Result<ExitCode> {
    let size = if tty { window_size() } else { None };
    let req = AttachRequest {
        rows: size.map(|s| s.0),
        columns: size.map(|s| s.1),
        detach_keys,
    };
    let body = serde_json::to_vec(&req)?;
    // Without a tty, signals to the CLI go to the container (sig-proxy),
    // from the moment the container can print anything.
    let proxy = (!tty && streams.sig_proxy).then(super::sigproxy::Proxy::install);
    let io = match client(g, true)
        .upgrade(&format!("/v1/attach/{}", segment(name)), exec_frame::PROTOCOL, body)
        .await
    {
        Ok(io) => io,
        Err(ClientError::Api { message, .. }) => {
            eprintln!("berth: {message}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(proxy) = proxy else {
        return session(io, tty, interactive, streams).await;
    };
    let target = super::sigproxy::Target::new(std::sync::Mutex::new(Some(name.to_string())));
    tokio::select! {
        code = session(io, tty, interactive, streams) => code,
        never = proxy.forward(g, target) => match never {},
    }
}

/// The client's side of a framed stdio connection, until its end frame.
async fn session<IO>(io: IO, tty: bool, interactive: bool, streams: Streams) -> anyhow::Result<ExitCode>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let req = ExecRequest {
        tty,
        interactive,
        ..Default::default()
    };
    let (mut rd, mut wr) = tokio::io::split(io);
    // Raw mode for the exec's life (restored when this guard drops), so keys
    // reach the process as typed and the pty does the echoing.
    let _raw = if req.tty && req.interactive {
        RawMode::enter()
    } else {
        None
    };
    if req.tty {
        // Every write goes through one task: input frames and resizes.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        if req.interactive {
            let input = tx.clone();
            std::thread::spawn(move || {
                let mut stdin = std::io::stdin().lock();
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match stdin.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut f = exec_frame::header(exec_frame::STDIN, n).to_vec();
                            f.extend_from_slice(&buf[..n]);
                            if input.blocking_send(f).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
        if let Ok(mut winch) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) {
            let resizes = tx.clone();
            tokio::spawn(async move {
                while winch.recv().await.is_some() {
                    if let Some((rows, columns)) = window_size() {
                        let mut f = exec_frame::header(exec_frame::RESIZE, 4).to_vec();
                        f.extend_from_slice(&rows.to_be_bytes());
                        f.extend_from_slice(&columns.to_be_bytes());
                        if resizes.send(f).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
        drop(tx);
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                if wr.write_all(&f).await.is_err() {
                    return;
                }
            }
        });
    } else if req.interactive {
        // A plain thread reads the terminal: a blocked read(0) must not keep
        // the process (or the runtime's shutdown) waiting once the exec ends.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    // Waits while the daemon (and the process) is behind.
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            // EOF on our stdin: a half-close is EOF on the process's.
            let _ = wr.shutdown().await;
        });
    } else {
        drop(wr);
    }
    let mut header = [0u8; 8];
    let mut payload = Vec::new();
    loop {
        if rd.read_exact(&mut header).await.is_err() {
            eprintln!("berth: the connection to the daemon closed before the exec ended");
            return Ok(ExitCode::from(1));
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        payload.resize(len, 0);
        if rd.read_exact(&mut payload).await.is_err() {
            eprintln!("berth: the connection to the daemon closed before the exec ended");
            return Ok(ExitCode::from(1));
        }
        match header[0] {
            // A stream `run -a` left out is read and dropped.
            exec_frame::STDOUT | exec_frame::STDERR
                if !(if header[0] == exec_frame::STDOUT {
                    streams.stdout
                } else {
                    streams.stderr
                }) => {}
            exec_frame::STDOUT => {
                let mut out = std::io::stdout().lock();
                out.write_all(&payload)?;
                out.flush()?;
            }
            exec_frame::STDERR => {
                let mut err = std::io::stderr().lock();
                err.write_all(&payload)?;
                err.flush()?;
            }
            exec_frame::EXIT => {
                let exit: ExecExit = serde_json::from_slice(&payload)?;
                if let Some(e) = exit.error {
                    eprintln!("berth: {e}");
                }
                return Ok(ExitCode::from(exit.exit_code.clamp(0, 255) as u8));
            }
            _ => {}
        }
    }
}

/// The terminal's size on stdout (rows, columns), if it is one.
fn window_size() -> Option<(u16, u16)> {
    // SAFETY: a zeroed winsize is valid; TIOCGWINSZ fills it or fails.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes into the winsize we own.
    let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
}

/// The terminal in raw mode, restored on drop.
struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &self.0);
    }
}
