//! `logs`: a container's output, streamed with backpressure: the reader's
//! pace sets the pace, and no line is ever dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{CommandError, Result};
use crate::reconcile::state::ContainerState;
use crate::reconcile::Engine;
use crate::runtime::logs;
use crate::wire::LogLine;

/// Lines in flight between the log reader and the client; when full, the
/// reader waits for the client.
pub const STREAM_BUFFER: usize = 256;
/// How much of the log file is held in memory at once.
const CHUNK_BYTES: u64 = 256 * 1024;
/// How often a followed log is re-read while the container is quiet.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

fn to_wire(l: logs::LogLine) -> LogLine {
    LogLine {
        time: l.time,
        stream: l.stream,
        text: l.text,
    }
}

/// Streams the last `tail` lines (all when `None`) of a container's log,
/// then with `follow` new lines until it stops running.
pub fn logs(engine: &Arc<Engine>, name: &str, tail: Option<usize>, follow: bool) -> Result<mpsc::Receiver<LogLine>> {
    if !engine.container_known(name)? {
        return Err(CommandError::NotFound(format!("container/{name}")));
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let engine = engine.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        if let Err(e) = follow_logs(&engine, &name, tail, follow, &tx, |l| l).await {
            tracing::warn!(container = %name, "reading its log: {e}");
        }
    });
    Ok(rx)
}

/// Sends log lines to `tx`, waiting whenever it is full. Returns `Ok(false)`
/// when the receiver went away, `Ok(true)` once done.
pub async fn follow_logs<T>(
    engine: &Engine,
    name: &str,
    tail: Option<usize>,
    follow: bool,
    tx: &mpsc::Sender<T>,
    wrap: impl Fn(LogLine) -> T,
) -> std::io::Result<bool> {
    let path = engine.log_file(name);
    let mut exits = engine.exits();
    let mut offset = logs::tail_offset(&path, tail)?;
    loop {
        // Checked before reading: lines written before an exit are all read.
        let running = follow && engine.container_state(name) == ContainerState::Running;
        loop {
            let (lines, next) = logs::read_chunk(&path, offset, CHUNK_BYTES)?;
            if lines.is_empty() {
                break;
            }
            offset = next;
            for l in lines {
                if tx.send(wrap(to_wire(l))).await.is_err() {
                    return Ok(false);
                }
            }
        }
        if !running {
            return Ok(true);
        }
        tokio::select! {
            _ = exits.recv() => {}
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tx.closed() => return Ok(false),
        }
    }
}
