//! `logs`: a container's output, from the daemon's log stream.

use std::io::Write;
use std::process::ExitCode;

use hyper::Method;

use crate::cli::args::{Global, LogsArgs};
use crate::cli::client;
use crate::client::segment;
use crate::wire::LogLine;

pub async fn logs(g: &Global, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let mut path = format!("/v1/logs/{}?follow={}", segment(&args.name), args.follow);
    if let Some(t) = args.tail {
        path.push_str(&format!("&tail={t}"));
    }
    for (key, value) in [("since", &args.since), ("until", &args.until)] {
        if let Some(v) = value {
            path.push_str(&format!("&{key}={}", segment(v)));
        }
    }
    client(g, true)
        .stream(
            Method::GET,
            &path,
            None,
            |line: LogLine| print_log(&line, args.timestamps),
            flush_stdout,
        )
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// Writes a log line to the stream it came from, so `berth logs web 2>/dev/null`
/// keeps what the container wrote to stdout only. Stdout is flushed after
/// each batch the daemon sent ([`flush_stdout`]): `logs -f` and `run` are
/// read as they go, without a write per line.
pub(crate) fn print_log(line: &LogLine, timestamps: bool) {
    let text = if timestamps {
        format!("{} {}\n", line.time, line.text)
    } else {
        format!("{}\n", line.text)
    };
    if line.stream == "stderr" {
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}

pub(crate) fn flush_stdout() {
    let _ = std::io::stdout().flush();
}
