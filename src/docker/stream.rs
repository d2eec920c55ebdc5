//! Docker's hijacked stdio over berth's. berth's pumps
//! (`commands::exec::pump`, `commands::attach::pump`) speak berth's framing:
//! output in 8-byte-header frames (stream 1 stdout, 2 stderr), then an exit
//! frame (stream 3); input raw without a tty, framed with one (stream 0
//! input, 4 a resize). Docker's clients expect the same output frames
//! without a tty, raw output with one, raw input always, no exit frame
//! (they ask `wait` or `exec inspect`), and a half-close as stdin's EOF.
//! [`relay`] runs a pump on one end of an in-memory pipe and translates.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use crate::wire::{exec_frame, ExecExit};

/// Bytes in flight between the pump and the relay.
const PIPE_BYTES: usize = 64 * 1024;

/// Largest frame payload read from a pump (its frames are at most 32 KiB).
const MAX_FRAME: usize = 1 << 20;

/// What the client sends the pump's way.
enum Input {
    Data(Vec<u8>),
    Eof,
    Resize(u16, u16),
}

/// Relays `client` (Docker's side) to the pump that `start` runs on the
/// other end of a pipe, until the pump's exit frame; returns that exit
/// (None when the pump ended without one), given first to `on_exit`
/// before the client sees the end of the stream (a client asks for the
/// exit code as soon as it does). `resizes` are passed on as berth's
/// resize frames while a tty is attached.
pub async fn relay<C, E, F, Fut>(
    client: C,
    tty: bool,
    mut resizes: mpsc::Receiver<(u16, u16)>,
    on_exit: E,
    start: F,
) -> Option<ExecExit>
where
    C: AsyncRead + AsyncWrite + Send + 'static,
    E: FnOnce(Option<&ExecExit>),
    F: FnOnce(DuplexStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (berth_end, ours) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(start(berth_end));
    let (mut from_pump, mut to_pump) = tokio::io::split(ours);
    let (mut client_rd, mut client_wr) = tokio::io::split(client);
    let (in_tx, mut in_rx) = mpsc::channel::<Input>(16);
    let reader_tx = in_tx.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = reader_tx.send(Input::Eof).await;
                    return;
                }
                Ok(n) => {
                    if reader_tx.send(Input::Data(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let resizer = tokio::spawn(async move {
        while let Some((rows, columns)) = resizes.recv().await {
            if in_tx.send(Input::Resize(rows, columns)).await.is_err() {
                return;
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(input) = in_rx.recv().await {
            let ok = match input {
                Input::Data(data) if tty => write_frame(&mut to_pump, exec_frame::STDIN, &data).await,
                Input::Data(data) => to_pump.write_all(&data).await.is_ok(),
                // With a tty there is no EOF to pass on: the pty stays.
                Input::Eof if tty => true,
                Input::Eof => {
                    let _ = to_pump.shutdown().await;
                    true
                }
                Input::Resize(rows, columns) if tty => {
                    let mut size = [0u8; 4];
                    size[..2].copy_from_slice(&rows.to_be_bytes());
                    size[2..].copy_from_slice(&columns.to_be_bytes());
                    write_frame(&mut to_pump, exec_frame::RESIZE, &size).await
                }
                Input::Resize(..) => true,
            };
            if !ok {
                return;
            }
        }
    });
    let mut exit = None;
    let mut header = [0u8; 8];
    let mut payload = Vec::new();
    let mut client_gone = false;
    loop {
        if from_pump.read_exact(&mut header).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if len > MAX_FRAME {
            break;
        }
        payload.resize(len, 0);
        if from_pump.read_exact(&mut payload).await.is_err() {
            break;
        }
        match header[0] {
            exec_frame::STDOUT | exec_frame::STDERR if !client_gone => {
                let written = if tty {
                    client_wr.write_all(&payload).await
                } else {
                    match client_wr.write_all(&header).await {
                        Ok(()) => client_wr.write_all(&payload).await,
                        Err(e) => Err(e),
                    }
                };
                // A client that went away leaves the pump to finish on
                // its own; its output is read and dropped meanwhile.
                client_gone = written.is_err() || client_wr.flush().await.is_err();
            }
            exec_frame::EXIT => {
                exit = serde_json::from_slice::<ExecExit>(&payload).ok();
                break;
            }
            _ => {}
        }
    }
    reader.abort();
    resizer.abort();
    writer.abort();
    on_exit(exit.as_ref());
    let _ = client_wr.shutdown().await;
    exit
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, stream: u8, data: &[u8]) -> bool {
    w.write_all(&exec_frame::header(stream, data.len())).await.is_ok() && w.write_all(data).await.is_ok()
}

/// The answer whose body is the JSON lines sent on `rx`, each as it comes,
/// as Docker streams pull, push and build progress.
pub(super) fn json_lines(
    rx: mpsc::Receiver<std::result::Result<axum::body::Bytes, std::convert::Infallible>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from_stream(stream))
        .unwrap_or_else(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pump that echoes its input back as stdout frames and ends with
    /// an exit frame when the input ends, as berth's piped pumps do.
    async fn echo_pump(io: DuplexStream) {
        let (mut rd, mut wr) = tokio::io::split(io);
        let mut buf = vec![0u8; 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    write_frame(&mut wr, exec_frame::STDOUT, &buf[..n]).await;
                }
            }
        }
        write_frame(&mut wr, exec_frame::STDERR, b"bye").await;
        let exit = serde_json::to_vec(&ExecExit {
            exit_code: 3,
            error: None,
        })
        .unwrap();
        write_frame(&mut wr, exec_frame::EXIT, &exit).await;
    }

    #[tokio::test]
    async fn without_a_tty_output_keeps_dockers_frames_and_a_half_close_is_eof() {
        let (client, server) = tokio::io::duplex(4096);
        let (_tx, rx) = mpsc::channel(1);
        let relay = tokio::spawn(relay(server, false, rx, |_| {}, echo_pump));
        let (mut rd, mut wr) = tokio::io::split(client);
        wr.write_all(b"hi").await.unwrap();
        wr.shutdown().await.unwrap();
        let mut out = Vec::new();
        rd.read_to_end(&mut out).await.unwrap();
        let mut want = exec_frame::header(1, 2).to_vec();
        want.extend_from_slice(b"hi");
        want.extend_from_slice(&exec_frame::header(2, 3));
        want.extend_from_slice(b"bye");
        assert_eq!(out, want, "no exit frame reaches a Docker client");
        assert_eq!(relay.await.unwrap().unwrap().exit_code, 3);
    }

    /// A tty pump: reads berth's input frames, answers each with its
    /// payload (or a resize as text), exits after "q".
    async fn tty_pump(io: DuplexStream) {
        let (mut rd, mut wr) = tokio::io::split(io);
        let mut header = [0u8; 8];
        loop {
            if rd.read_exact(&mut header).await.is_err() {
                break;
            }
            let mut payload = vec![0u8; u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize];
            rd.read_exact(&mut payload).await.unwrap();
            let answer = match header[0] {
                exec_frame::RESIZE => format!(
                    "size {}x{}",
                    u16::from_be_bytes([payload[0], payload[1]]),
                    u16::from_be_bytes([payload[2], payload[3]])
                )
                .into_bytes(),
                _ => payload.clone(),
            };
            write_frame(&mut wr, exec_frame::STDOUT, &answer).await;
            if payload == b"q" {
                break;
            }
        }
        let exit = serde_json::to_vec(&ExecExit {
            exit_code: 0,
            error: None,
        })
        .unwrap();
        write_frame(&mut wr, exec_frame::EXIT, &exit).await;
    }

    #[tokio::test]
    async fn with_a_tty_input_is_framed_for_berth_and_output_is_raw() {
        let (client, server) = tokio::io::duplex(4096);
        let (resize_tx, rx) = mpsc::channel(1);
        let relay = tokio::spawn(relay(server, true, rx, |_| {}, tty_pump));
        let (mut rd, mut wr) = tokio::io::split(client);
        wr.write_all(b"ab").await.unwrap();
        let mut got = [0u8; 2];
        rd.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ab");
        resize_tx.send((24, 80)).await.unwrap();
        let mut got = [0u8; 10];
        rd.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"size 24x80");
        wr.write_all(b"q").await.unwrap();
        let mut rest = Vec::new();
        rd.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"q");
        assert_eq!(relay.await.unwrap().unwrap().exit_code, 0);
    }
}
