//! `start`, `restart`, `kill`, `pause`, `unpause`: one verb on each named
//! container in turn, as Docker's; one that fails does not keep the others
//! from being acted on, and makes the exit code 1.

use std::process::ExitCode;

use crate::cli::args::Global;
use crate::cli::client;
use crate::wire::{KillRequest, VerbResponse};

/// Posts `/v1/{verb}/{name}` for each name; prints each name done.
pub async fn verb(g: &Global, verb: &str, names: &[String], body: serde_json::Value) -> ExitCode {
    let c = client(g, true);
    let mut failed = false;
    for n in names {
        match c.post::<_, VerbResponse>(&format!("/v1/{verb}/{n}"), &body).await {
            Ok(_) => println!("{n}"),
            Err(e) => {
                eprintln!("error: {:#}", anyhow::Error::from(e));
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub async fn kill(g: &Global, signal: Option<String>, names: &[String]) -> ExitCode {
    let body = serde_json::to_value(KillRequest { signal }).unwrap_or_default();
    verb(g, "kill", names, body).await
}
