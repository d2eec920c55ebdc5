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

/// Reads the log from `offset` to its current end; returns the complete
/// lines and the offset after the last one.
pub fn read_from(path: &Path, offset: u64) -> io::Result<(Vec<LogLine>, u64)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map(|p| p + 1).unwrap_or(0);
    let text = String::from_utf8_lossy(&bytes[..complete]);
    let lines = text.lines().filter_map(LogLine::parse).collect();
    Ok((lines, offset + complete as u64))
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
    fn log_lines_parse_back() {
        let l = LogLine::parse("2026-01-01T00:00:00Z stdout hello world").unwrap();
        assert_eq!(l.stream, "stdout");
        assert_eq!(l.text, "hello world");
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
