//! `events`: what happened recently, oldest first.

use std::process::ExitCode;

use crate::cli::args::Global;
use crate::cli::client;
use crate::cli::output;
use crate::wire::Event;

pub async fn events(g: &Global) -> anyhow::Result<ExitCode> {
    let events: Vec<Event> = client(g, true).get("/v1/events").await?;
    for e in events {
        println!(
            "{} {}/{} {}: {}",
            output::time(e.time),
            e.kind.to_ascii_lowercase(),
            e.name,
            e.reason,
            e.message
        );
    }
    Ok(ExitCode::SUCCESS)
}
