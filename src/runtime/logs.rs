//! Container log files: one line per output line,
//! `<RFC 3339 UTC timestamp> <stdout|stderr> <text>`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Longest line kept whole; longer output is split, as Docker does at 16 KiB.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogLine {
    pub time: String,
    pub stream: String,
    pub text: String,
}

impl LogLine {
    pub fn parse(line: &str) -> Option<LogLine> {
        let (time, rest) = line.split_once(' ')?;
        let (stream, text) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(LogLine {
            time: time.into(),
            stream: stream.into(),
            text: text.into(),
        })
    }
}

pub fn timestamp_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Splits a byte stream into lines; keeps the unfinished tail for the next read.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes, returns the complete lines (without newline).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        while self.buf.len() > MAX_LINE {
            let chunk: Vec<u8> = self.buf.drain(..MAX_LINE).collect();
            lines.push(String::from_utf8_lossy(&chunk).into_owned());
        }
        lines
    }

    /// The unfinished last line at end of stream.
    pub fn finish(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            None
        } else {
            let rest = std::mem::take(&mut self.buf);
            Some(String::from_utf8_lossy(&rest).into_owned())
        }
    }
}

/// The log file's writer, in the shim: appends lines and, with a size
/// limit, rotates `container.log` to `container.log.1` … `.N-1` (N =
/// `max_files` files in all, the oldest dropped), as Docker's json-file
/// driver does with max-size and max-file.
#[derive(Debug)]
pub struct LogWriter {
    path: std::path::PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: Option<u64>,
    max_files: u32,
}

impl LogWriter {
    pub fn open(path: &Path, max_bytes: Option<u64>, max_files: u32) -> LogWriter {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            max_files: max_files.max(1),
        }
    }

    /// Appends `text` (whole lines): as many lines as fit under the limit
    /// go to the current file, then it rotates and the rest goes on in the
    /// next one (a batch from a chatty container can span several files).
    pub fn write(&mut self, mut text: &[u8]) {
        use std::io::Write;
        while !text.is_empty() {
            let take = match self.max_bytes {
                None => text.len(),
                Some(max) => {
                    let room = max.saturating_sub(self.size) as usize;
                    if text.len() <= room {
                        text.len()
                    } else if let Some(end) = text[..room].iter().rposition(|&b| b == b'\n') {
                        end + 1
                    } else if self.size > 0 {
                        self.rotate();
                        continue;
                    } else {
                        // One line longer than the limit fills a file alone.
                        text.iter().position(|&b| b == b'\n').map_or(text.len(), |p| p + 1)
                    }
                }
            };
            if let Some(f) = self.file.as_mut() {
                if f.write_all(&text[..take]).is_ok() {
                    self.size += take as u64;
                }
            }
            text = &text[take..];
        }
    }

    fn rotate(&mut self) {
        let numbered = |n: u32| rotated_path(&self.path, n);
        // Renames keep readers that hold the file open (logs -f) reading the
        // whole of it; they then move to the new file.
        let _ = std::fs::remove_file(numbered(self.max_files - 1));
        for n in (1..self.max_files - 1).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        if self.max_files > 1 {
            let _ = std::fs::rename(&self.path, numbered(1));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .ok();
        self.size = 0;
    }
}

/// `container.log.N`.
pub fn rotated_path(path: &Path, n: u32) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    std::path::PathBuf::from(name)
}

/// The rotated files of a log that exist, oldest first.
pub fn rotated_files(path: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for n in 1.. {
        let p = rotated_path(path, n);
        if !p.exists() {
            break;
        }
        out.push(p);
    }
    out.reverse();
    out
}

/// Reads the log from `offset` to its current end; returns the complete
/// lines and the offset after the last one.
pub fn read_from(path: &Path, offset: u64) -> io::Result<(Vec<LogLine>, u64)> {
    read_chunk(path, offset, u64::MAX)
}

/// As [`read_from`], but reads at most about `max_bytes` (always at least
/// one whole line), so a reader of a huge log holds one chunk at a time.
pub fn read_chunk(path: &Path, offset: u64, max_bytes: u64) -> io::Result<(Vec<LogLine>, u64)> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    read_chunk_of(&f, offset, max_bytes)
}

/// As [`read_chunk`], from a file already open (one that may have been
/// rotated away from its path meanwhile).
pub fn read_chunk_of(f: &File, offset: u64, max_bytes: u64) -> io::Result<(Vec<LogLine>, u64)> {
    let mut f = io::BufReader::new(f);
    f.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    (&mut f).take(max_bytes).read_to_end(&mut bytes)?;
    if !bytes.is_empty() && bytes.last() != Some(&b'\n') && bytes.len() as u64 == max_bytes {
        // Finish the line the chunk ends in (lines are at most MAX_LINE plus a prefix).
        io::BufRead::read_until(&mut f, b'\n', &mut bytes)?;
    }
    let complete = bytes.iter().rposition(|&b| b == b'\n').map(|p| p + 1).unwrap_or(0);
    let text = String::from_utf8_lossy(&bytes[..complete]);
    let lines = text.lines().filter_map(LogLine::parse).collect();
    Ok((lines, offset + complete as u64))
}

/// The offset where the last `n` lines of the log begin (0 for all of it),
/// found by reading backwards from the end.
pub fn tail_offset(path: &Path, n: Option<usize>) -> io::Result<u64> {
    let Some(n) = n else { return Ok(0) };
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    // The n-th last complete line starts after the (n+1)-th last newline;
    // a partial last line holds no newline, so it is never counted.
    let mut end = f.metadata()?.len();
    let mut newlines = 0usize;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let buf = &mut block[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(buf)?;
        for i in (0..buf.len()).rev() {
            if buf[i] == b'\n' {
                newlines += 1;
                if newlines == n + 1 {
                    return Ok(start + i as u64 + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

/// The last `n` lines of the log (all when `n` is None) and the end offset.
pub fn tail(path: &Path, n: Option<usize>) -> io::Result<(Vec<LogLine>, u64)> {
    let (mut lines, end) = read_from(path, 0)?;
    if let Some(n) = n {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    Ok((lines, end))
}

/// How much of a log file one [`LogReader::next_lines`] holds in memory.
const CHUNK_BYTES: u64 = 256 * 1024;

/// How long a reader waits for a consistent listing of rotated files (the
/// shim rotating without pause, a burst on a loaded host) before it takes
/// what it sees.
const LISTING_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads a container's log as it grows, through rotations: it keeps the
/// file it has open (renamed to `.1` by the shim), reads it to its end once
/// the path names a new file, then the files rotated between, then goes on
/// at the path. Lines are never skipped nor read twice.
pub struct LogReader {
    path: std::path::PathBuf,
    /// Files to read whole before `file`, oldest first, already open so a
    /// rotation cannot take them away, and the offset in the first.
    pending: std::collections::VecDeque<File>,
    pending_offset: u64,
    file: Option<File>,
    offset: u64,
}

impl LogReader {
    /// A reader of the log at `path` from its last `tail` lines, or from the
    /// start of its oldest rotated file when `tail` is `None`.
    pub fn open(path: &Path, tail: Option<usize>) -> io::Result<LogReader> {
        let pending = if tail.is_none() {
            rotated_files(path).iter().filter_map(|p| File::open(p).ok()).collect()
        } else {
            Default::default()
        };
        let offset = tail_offset(path, tail)?;
        Ok(LogReader {
            path: path.to_path_buf(),
            pending,
            pending_offset: 0,
            file: File::open(path).ok(),
            offset,
        })
    }

    /// The next lines written, a chunk at most; none once everything
    /// written so far was read (more may come later).
    pub async fn next_lines(&mut self) -> io::Result<Vec<LogLine>> {
        use std::os::unix::fs::MetadataExt;
        loop {
            if let Some(f) = self.pending.front() {
                let (lines, next) = read_chunk_of(f, self.pending_offset, CHUNK_BYTES)?;
                if lines.is_empty() {
                    self.pending.pop_front();
                    self.pending_offset = 0;
                    continue;
                }
                self.pending_offset = next;
                return Ok(lines);
            }
            if self.file.is_none() {
                self.file = File::open(&self.path).ok();
                self.offset = 0;
            }
            let Some(f) = &self.file else { return Ok(Vec::new()) };
            let (lines, next) = read_chunk_of(f, self.offset, CHUNK_BYTES)?;
            if !lines.is_empty() {
                self.offset = next;
                return Ok(lines);
            }
            let rotated = match (f.metadata(), std::fs::metadata(&self.path)) {
                (Ok(open), Ok(now)) => open.ino() != now.ino() || open.dev() != now.dev(),
                (Ok(_), Err(_)) => true,
                _ => false,
            };
            if !rotated {
                return Ok(Vec::new());
            }
            // The shim no longer writes the old file: what it holds past
            // our last read is complete now.
            let (lines, next) = read_chunk_of(f, self.offset, CHUNK_BYTES)?;
            if !lines.is_empty() {
                self.offset = next;
                return Ok(lines);
            }
            // More than one rotation may have passed since the last read:
            // the files between ours and the current one are read whole,
            // in order, before the current one.
            let current = File::open(&self.path).ok();
            self.pending = files_between(&self.path, f, current.as_ref()).await.into();
            self.pending_offset = 0;
            self.file = current;
            self.offset = 0;
        }
    }
}

type FileId = Option<(u64, u64)>;

fn file_id(f: &File) -> FileId {
    use std::os::unix::fs::MetadataExt;
    f.metadata().ok().map(|m| (m.dev(), m.ino()))
}

/// The rotated files of the log at `path`, open, oldest first, and whether
/// the listing is consistent. The shim renames `.N` to `.N+1` from the top
/// while a reader lists them, so a listing can meet a gap or see a file
/// twice: it is consistent once every path still names the file opened
/// from it and nothing follows the last.
fn rotated_open(path: &Path) -> (Vec<(FileId, File)>, bool) {
    let mut opened = Vec::new();
    for n in 1.. {
        match File::open(rotated_path(path, n)) {
            Ok(f) => opened.push((file_id(&f), f)),
            Err(_) => break,
        }
    }
    let still = |n: usize, id: &FileId| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(rotated_path(path, n as u32))
            .ok()
            .map(|m| (m.dev(), m.ino()))
            == *id
    };
    let stable = opened.iter().enumerate().all(|(i, (id, _))| still(i + 1, id))
        && !rotated_path(path, opened.len() as u32 + 1).exists();
    opened.reverse();
    (opened, stable)
}

/// The rotated files of the log at `path` that are newer than `done` (read
/// to its end) and older than `current` (the file at `path` now), oldest
/// first and already open, so that a rotation meanwhile cannot take them
/// away. Files are told apart by inode: the shim renames, never copies.
/// `done` is normally among them; when it is not in a consistent listing
/// after a while, it was rotated past the kept files: all kept are newer.
async fn files_between(path: &std::path::Path, done: &File, current: Option<&File>) -> Vec<File> {
    let done = file_id(done);
    let current = current.and_then(file_id);
    let deadline = tokio::time::Instant::now() + LISTING_PATIENCE;
    let mut pause = std::time::Duration::from_millis(1);
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
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    };
    let start = opened.iter().position(|(i, _)| *i == done).map_or(0, |at| at + 1);
    opened
        .into_iter()
        .skip(start)
        .take_while(|(i, _)| *i != current)
        .map(|(_, f)| f)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_keeps_partial_lines_until_newline() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"a\nb"), vec!["a".to_string()]);
        assert_eq!(s.push(b"c\n"), vec!["bc".to_string()]);
        assert_eq!(s.finish(), None);
        s.push(b"tail");
        assert_eq!(s.finish(), Some("tail".into()));
    }

    #[test]
    fn splitter_splits_overlong_lines() {
        let mut s = LineSplitter::default();
        let lines = s.push(&vec![b'x'; MAX_LINE * 2 + 3]);
        assert_eq!(lines.len(), 2);
        assert_eq!(s.finish().unwrap().len(), 3);
    }

    #[test]
    fn the_writer_rotates_at_its_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("container.log");
        let mut w = LogWriter::open(&p, Some(100), 3);
        for i in 0..30 {
            w.write(format!("t stdout line-{i:02}\n").as_bytes());
        }
        let files = rotated_files(&p);
        assert_eq!(files, vec![rotated_path(&p, 2), rotated_path(&p, 1)]);
        for f in files.iter().chain([&p]) {
            assert!(std::fs::metadata(f).unwrap().len() <= 100);
        }
        let (lines, _) = read_from(&p, 0).unwrap();
        assert_eq!(lines.last().unwrap().text, "line-29");
        let (older, _) = read_from(&files[0], 0).unwrap();
        let (newer, _) = read_from(&files[1], 0).unwrap();
        // Oldest first, contiguous with the current file.
        let next = |l: &LogLine| l.text[5..].parse::<u32>().unwrap();
        assert_eq!(next(older.last().unwrap()) + 1, next(&newer[0]));
        assert_eq!(next(newer.last().unwrap()) + 1, next(&lines[0]));
    }

    #[test]
    fn one_big_batch_is_spread_over_the_files_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("container.log");
        let mut w = LogWriter::open(&p, Some(100), 2);
        let batch: String = (0..30).map(|i| format!("t stdout line-{i:02}\n")).collect();
        w.write(batch.as_bytes());
        assert!(std::fs::metadata(&p).unwrap().len() <= 100);
        assert!(std::fs::metadata(rotated_path(&p, 1)).unwrap().len() <= 100);
        assert!(!rotated_path(&p, 2).exists());
        let (lines, _) = read_from(&p, 0).unwrap();
        assert_eq!(lines.last().unwrap().text, "line-29");
    }

    #[test]
    fn log_lines_parse_back() {
        let l = LogLine::parse("2026-01-01T00:00:00Z stdout hello world").unwrap();
        assert_eq!(l.stream, "stdout");
        assert_eq!(l.text, "hello world");
    }

    #[test]
    fn tail_offset_finds_the_start_of_the_last_lines_and_chunks_read_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let text: String = (0..100_000).map(|i| format!("t stdout {i}\n")).collect();
        std::fs::write(&p, format!("{text}t stdout par")).unwrap();
        let at = tail_offset(&p, Some(2)).unwrap();
        let (lines, _) = read_chunk(&p, at, 1 << 20).unwrap();
        assert_eq!(
            lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["99998", "99999"]
        );
        assert_eq!(tail_offset(&p, Some(1_000_000)).unwrap(), 0);
        let (mut offset, mut count) = (0, 0);
        loop {
            let (lines, next) = read_chunk(&p, offset, 1000).unwrap();
            if lines.is_empty() {
                break;
            }
            count += lines.len();
            offset = next;
        }
        assert_eq!(count, 100_000);
    }

    #[test]
    fn tail_returns_the_last_lines_and_ignores_a_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "t stdout 1\nt stdout 2\nt stdout 3\nt stdout par").unwrap();
        let (lines, end) = tail(&p, Some(2)).unwrap();
        assert_eq!(lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["2", "3"]);
        assert_eq!(end, 33);
    }
}
