//! `exec`: a command in a running container, as `docker exec`. Its stdio
//! travels over an upgraded connection (see `wire::exec_frame`); the exit
//! code is the process's.

use std::io::{Read, Write};
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::args::{ExecArgs, Global};
use crate::cli::client;
use crate::client::ClientError;
use crate::wire::{exec_frame, ExecExit, ExecRequest, ExecStarted};

/// Docker's codes: the process's exit code; 126/127 when its command cannot
/// run; 1 when the daemon refused (no such container, not running).
pub async fn exec(g: &Global, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let req = ExecRequest {
        command: args.command,
        env: args.env,
        user: args.user,
        working_dir: args.workdir,
        interactive: args.interactive,
        detach: args.detach,
    };
    let path = format!("/v1/exec/{}", args.name);
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
    let (mut rd, mut wr) = tokio::io::split(io);
    if req.interactive {
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
