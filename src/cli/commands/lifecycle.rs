//! `start`, `restart`, `kill`, `pause`, `unpause`: one verb on each named
//! container in turn, as Docker's; one that fails does not keep the others
//! from being acted on, and makes the exit code 1.

use std::process::ExitCode;

use crate::cli::args::Global;
use crate::cli::client;
use crate::client::segment;
use crate::wire::{DeleteRequest, DeleteResponse, KillRequest, ObjectView, VerbResponse};

/// Posts `/v1/{verb}/{name}` for each name, with `body` if the verb takes
/// one; prints each name done.
pub async fn verb(g: &Global, verb: &str, names: &[String], body: Option<serde_json::Value>) -> ExitCode {
    let c = client(g, true);
    let mut failed = false;
    for n in names {
        let path = format!("/v1/{verb}/{}", segment(n));
        let answer = match &body {
            Some(body) => c.post::<_, VerbResponse>(&path, body).await,
            None => c.post_empty::<VerbResponse>(&path).await,
        };
        match answer {
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

/// `rename OLD NEW`: silent on success, as `docker rename`.
pub async fn rename(g: &Global, old: &str, new: &str) -> ExitCode {
    let body = crate::wire::RenameRequest { name: new.into() };
    match client(g, true)
        .post::<_, VerbResponse>(&format!("/v1/rename/{}", segment(old)), &body)
        .await
    {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::from(1)
        }
    }
}

pub async fn kill(g: &Global, signal: Option<String>, names: &[String]) -> ExitCode {
    let body = serde_json::to_value(KillRequest { signal }).unwrap_or_default();
    verb(g, "kill", names, Some(body)).await
}

/// `rm [-f] NAME...`: deletes containers, as `docker rm`: a running one only
/// with `-f` (it is stopped first, as `delete` does).
pub async fn rm(g: &Global, force: bool, names: &[String]) -> anyhow::Result<ExitCode> {
    let c = client(g, true);
    let mut failed = false;
    let mut keys = Vec::new();
    for n in names {
        match c
            .get::<Vec<ObjectView>>(&format!("/v1/objects?kind=container&name={}", segment(n)))
            .await
        {
            Ok(views) if views.first().is_some_and(|v| v.pid.is_some()) && !force => {
                eprintln!("error: container {n} is running: stop it first, or rm -f");
                failed = true;
            }
            Ok(_) => keys.push(format!("container/{n}")),
            Err(e) => {
                eprintln!("error: {:#}", anyhow::Error::from(e));
                failed = true;
            }
        }
    }
    if !keys.is_empty() {
        let resp: DeleteResponse = c
            .post(
                "/v1/delete",
                &DeleteRequest {
                    sources: Vec::new(),
                    keys,
                },
            )
            .await?;
        for d in &resp.deleted {
            println!("{}", d.trim_start_matches("container/"));
        }
        for f in resp.failed.iter().chain(&resp.not_found) {
            eprintln!("error: {f}");
            failed = true;
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
