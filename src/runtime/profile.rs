//! Start-path profile: where the milliseconds of a container's start and
//! removal go (issue 23; `bench/run` prints it). Each stage is one debug
//! event on the target `berth::startpath` with the wall-clock time in
//! microseconds (`t_us`), so stages of several processes line up: the
//! daemon's own, and the shim's, which it records in memory (a clock read
//! each, nothing written) and, when the daemon asked for them, writes to
//! [`MARKS_FILE`] in the run dir for the daemon to log at cleanup.
//!
//! Enable with `BERTH_LOG=info,berth::startpath=debug`.

use std::path::Path;
use std::sync::Mutex;

/// The shim's marks, in the run dir, read by the daemon's cleanup.
pub const MARKS_FILE: &str = "startpath.json";

/// Wall-clock microseconds since the epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Whether the daemon logs the start path.
pub fn enabled() -> bool {
    tracing::enabled!(target: "berth::startpath", tracing::Level::DEBUG)
}

/// One stage of `id`'s start or removal, reached now.
pub fn mark(id: &str, stage: &str) {
    at(id, stage, now_micros());
}

/// One stage of `id`'s, reached at `t_us`.
pub fn at(id: &str, stage: &str, t_us: i64) {
    tracing::debug!(target: "berth::startpath", id, stage, t_us);
}

/// The shim's marks (it is single-threaded; the lock is never contended).
static SHIM_MARKS: Mutex<Vec<(&'static str, i64)>> = Mutex::new(Vec::new());

/// A stage of the shim's, kept until [`write_shim_marks`].
pub fn shim_mark(stage: &'static str) {
    if let Ok(mut marks) = SHIM_MARKS.lock() {
        marks.push((stage, now_micros()));
    }
}

/// Writes the shim's marks into its run dir (best effort: a profile).
pub fn write_shim_marks(run_dir: &Path) {
    let marks = SHIM_MARKS.lock().map(|m| m.clone()).unwrap_or_default();
    if let Ok(bytes) = serde_json::to_vec(&marks) {
        let _ = std::fs::write(run_dir.join(MARKS_FILE), bytes);
    }
}

/// Logs the marks a shim wrote in `run_dir`, if any, as `id`'s.
pub fn log_shim_marks(id: &str, run_dir: &Path) {
    let Ok(bytes) = std::fs::read(run_dir.join(MARKS_FILE)) else {
        return;
    };
    let Ok(marks) = serde_json::from_slice::<Vec<(String, i64)>>(&bytes) else {
        return;
    };
    for (stage, t_us) in marks {
        at(id, &format!("shim: {stage}"), t_us);
    }
}
