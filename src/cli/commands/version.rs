//! `version`: this binary's version and the daemon's, if one runs.

use std::process::ExitCode;

use crate::cli::args::Global;
use crate::cli::client;
use crate::wire::VersionInfo;

/// Never starts a daemon: asking for its version is no reason to.
pub async fn version(g: &Global) -> ExitCode {
    println!("client: berth {}", env!("CARGO_PKG_VERSION"));
    match client(g, false).get::<VersionInfo>("/v1/version").await {
        Ok(v) => println!("daemon: berth {} (pid {}, root {})", v.version, v.pid, v.root),
        Err(_) => println!("daemon: not running at {}", g.socket().display()),
    }
    ExitCode::SUCCESS
}
