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
/// How often a followed log is re-read while the container is quiet.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

fn to_wire(l: logs::LogLine) -> LogLine {
    LogLine {
        time: l.time,
        stream: l.stream,
        text: l.text,
    }
}

/// Which lines by time: `since` and `until` as unix nanoseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeRange {
    pub since: Option<i128>,
    pub until: Option<i128>,
}

impl TimeRange {
    /// From `--since`/`--until` as Docker takes them: an RFC 3339 time, unix
    /// seconds, or a duration before now (`10m`, `1h30m`).
    pub fn parse(since: Option<&str>, until: Option<&str>) -> Result<TimeRange> {
        Ok(TimeRange {
            since: since.map(|s| parse_time("--since", s)).transpose()?,
            until: until.map(|s| parse_time("--until", s)).transpose()?,
        })
    }

    fn keeps(&self, line: &LogLine) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Ok(t) = time::OffsetDateTime::parse(&line.time, &time::format_description::well_known::Rfc3339) else {
            return true;
        };
        let t = t.unix_timestamp_nanos();
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

fn parse_time(flag: &str, s: &str) -> Result<i128> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t.unix_timestamp_nanos());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i128);
    }
    if let Ok(d) = s.parse::<crate::manifest::Duration>() {
        return Ok(time::OffsetDateTime::now_utc().unix_timestamp_nanos() - d.0.as_nanos() as i128);
    }
    Err(CommandError::Invalid(format!(
        "{flag} {s:?}: expected an RFC 3339 time, unix seconds, or a duration such as 10m"
    )))
}

/// Streams the last `tail` lines (all when `None`, rotated files first) of a
/// container's log in `range`, then with `follow` new lines until it stops.
pub fn logs(
    engine: &Arc<Engine>,
    name: &str,
    tail: Option<usize>,
    follow: bool,
    range: TimeRange,
) -> Result<mpsc::Receiver<LogLine>> {
    super::check_name(crate::manifest::Kind::Container, name)?;
    if !engine.container_known(name)? {
        return Err(CommandError::NotFound(format!("container/{name}")));
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let engine = engine.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        if let Err(e) = follow_range(&engine, &name, tail, follow, range, &tx, |l| l).await {
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
    follow_range(engine, name, tail, follow, TimeRange::default(), tx, wrap).await
}

/// [`follow_logs`] for lines in `range`. A followed log survives rotation
/// (the host's reader sees to it) and a `rename`.
async fn follow_range<T>(
    engine: &Engine,
    name: &str,
    tail: Option<usize>,
    follow: bool,
    range: TimeRange,
    tx: &mpsc::Sender<T>,
    wrap: impl Fn(LogLine) -> T,
) -> std::io::Result<bool> {
    // Followed by runtime id: a `rename` meanwhile does not end the follow.
    let id = engine.runtime_id(name);
    let mut exits = engine.exits();
    let mut log = engine.open_log(name, tail).await?;
    loop {
        // Checked before reading: lines written before an exit are all read.
        let running = follow && engine.container_state(&engine.name_of_id(&id)) == ContainerState::Running;
        loop {
            let lines = log.next_lines().await?;
            if lines.is_empty() {
                break;
            }
            for l in lines {
                let l = to_wire(l);
                if range.keeps(&l) && tx.send(wrap(l)).await.is_err() {
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
