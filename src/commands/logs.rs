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

/// Sends every line of one open file from `offset` on; false when the
/// receiver went away.
async fn send_file<T>(
    file: &std::fs::File,
    offset: &mut u64,
    range: TimeRange,
    tx: &mpsc::Sender<T>,
    wrap: &impl Fn(LogLine) -> T,
) -> std::io::Result<bool> {
    loop {
        let (lines, next) = logs::read_chunk_of(file, *offset, CHUNK_BYTES)?;
        if lines.is_empty() {
            return Ok(true);
        }
        *offset = next;
        for l in lines {
            let l = to_wire(l);
            if range.keeps(&l) && tx.send(wrap(l)).await.is_err() {
                return Ok(false);
            }
        }
    }
}

type FileId = Option<(u64, u64)>;

fn file_id(f: &std::fs::File) -> FileId {
    use std::os::unix::fs::MetadataExt;
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// The rotated files of the log at `path`, open, oldest first, and whether
/// the listing is consistent. The shim renames `.N` to `.N+1` from the top
/// while a reader lists them, so a listing can meet a gap or see a file
/// twice: it is consistent once every path still names the file opened
/// from it and nothing follows the last.
fn rotated_open(path: &std::path::Path) -> (Vec<(FileId, std::fs::File)>, bool) {
    let mut opened = Vec::new();
    for n in 1.. {
        match std::fs::File::open(logs::rotated_path(path, n)) {
            Ok(f) => opened.push((file_id(&f), f)),
            Err(_) => break,
        }
    }
    let still = |n: usize, id: &FileId| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(logs::rotated_path(path, n as u32))
            .ok()
            .map(|m| (m.dev(), m.ino()))
            == *id
    };
    let stable = opened.iter().enumerate().all(|(i, (id, _))| still(i + 1, id))
        && !logs::rotated_path(path, opened.len() as u32 + 1).exists();
    opened.reverse();
    (opened, stable)
}

/// How long a follower waits for a consistent listing of rotated files
/// (the shim rotating without pause, a burst on a loaded host) before it
/// takes what it sees.
const LISTING_PATIENCE: Duration = Duration::from_secs(5);

/// The rotated files of the log at `path` that are newer than `done` (read
/// to its end) and older than `current` (the file at `path` now), oldest
/// first and already open, so that a rotation meanwhile cannot take them
/// away. Files are told apart by inode: the shim renames, never copies.
/// `done` is normally among them; when it is not in a consistent listing
/// after a while, it was rotated past the kept files: all kept are newer.
async fn files_between(
    path: &std::path::Path,
    done: &std::fs::File,
    current: Option<&std::fs::File>,
) -> Vec<std::fs::File> {
    let done = file_id(done);
    let current = current.and_then(file_id);
    let deadline = tokio::time::Instant::now() + LISTING_PATIENCE;
    let mut pause = Duration::from_millis(1);
    let opened = loop {
        let (listing, stable) = rotated_open(path);
        let found = stable && listing.iter().any(|(i, _)| *i == done);
        // Past the deadline: the best there is.
        if found || tokio::time::Instant::now() > deadline {
            break listing;
        }
        // A rotation is under way; it takes microseconds, unless the
        // shim rotates again and again.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    let start = opened.iter().position(|(i, _)| *i == done).map_or(0, |at| at + 1);
    opened
        .into_iter()
        .skip(start)
        .take_while(|(i, _)| *i != current)
        .map(|(_, f)| f)
        .collect()
}

/// [`follow_logs`] for lines in `range`. A followed log survives rotation:
/// the reader keeps the file it has open (renamed to `.1` by the shim),
/// reads it to its end once the path names a new file, then goes on there.
async fn follow_range<T>(
    engine: &Engine,
    name: &str,
    tail: Option<usize>,
    follow: bool,
    range: TimeRange,
    tx: &mpsc::Sender<T>,
    wrap: impl Fn(LogLine) -> T,
) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let path = engine.log_file(name);
    // Followed by runtime id: a `rename` meanwhile does not end the follow.
    let id = engine.runtime_id(name);
    let mut exits = engine.exits();
    if tail.is_none() {
        for old in logs::rotated_files(&path) {
            if let Ok(f) = std::fs::File::open(&old) {
                if !send_file(&f, &mut 0, range, tx, &wrap).await? {
                    return Ok(false);
                }
            }
        }
    }
    let mut offset = logs::tail_offset(&path, tail)?;
    let mut file = std::fs::File::open(&path).ok();
    loop {
        // Checked before reading: lines written before an exit are all read.
        let running = follow && engine.container_state(&engine.name_of_id(&id)) == ContainerState::Running;
        if file.is_none() {
            file = std::fs::File::open(&path).ok();
            offset = 0;
        }
        if let Some(f) = &file {
            if !send_file(f, &mut offset, range, tx, &wrap).await? {
                return Ok(false);
            }
            let rotated = match (f.metadata(), std::fs::metadata(&path)) {
                (Ok(open), Ok(now)) => open.ino() != now.ino() || open.dev() != now.dev(),
                (Ok(_), Err(_)) => true,
                _ => false,
            };
            if rotated {
                // The shim no longer writes the old file: what it holds past
                // our last read is complete now.
                if !send_file(f, &mut offset, range, tx, &wrap).await? {
                    return Ok(false);
                }
                // More than one rotation may have passed since the last
                // read: the files between ours and the current one are read
                // whole, in order, before the current one.
                let current = std::fs::File::open(&path).ok();
                for between in files_between(&path, f, current.as_ref()).await {
                    if !send_file(&between, &mut 0, range, tx, &wrap).await? {
                        return Ok(false);
                    }
                }
                file = current;
                offset = 0;
                continue;
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
