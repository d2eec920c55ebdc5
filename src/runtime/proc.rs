//! Small readers of /proc: process start times (to tell a live process from a
//! reused pid) and mount points.

use std::fs;
use std::path::Path;

/// The start time of `pid` in clock ticks since boot (field 22 of
/// /proc/<pid>/stat), or None if there is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; the
    // fields after the last ')' are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3; start time is field 22.
    fields.nth(22 - 4)?.parse().ok()
}

/// Whether `pid` is alive (not a zombie) and is the process that started at `start`.
pub fn alive_with_start(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start)
}

/// Whether `path` is a mount point in this mount namespace.
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.to_string_lossy();
    info.lines()
        .any(|line| line.split(' ').nth(4).is_some_and(|mp| unescape(mp) == target))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable_and_stable() {
        let me = std::process::id() as i32;
        let t = start_time(me).unwrap();
        assert!(alive_with_start(me, t));
        assert!(!alive_with_start(me, t + 1));
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn proc_is_a_mountpoint() {
        assert!(is_mountpoint(Path::new("/proc")));
        assert!(!is_mountpoint(Path::new("/proc/self")));
    }
}
