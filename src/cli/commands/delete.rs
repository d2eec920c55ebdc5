//! `delete`: what manifests define (`-f`), or objects named `KIND/NAME`.

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::args::{DeleteArgs, Global};
use crate::cli::{client, print_diagnostics, read_sources};
use crate::wire::{DeleteRequest, DeleteResponse};

pub async fn delete(g: &Global, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let DeleteArgs { files, keys } = args;
    if files.is_empty() && keys.is_empty() {
        bail!("give -f FILE|DIR|- or KIND/NAME");
    }
    let sources = if files.is_empty() {
        Vec::new()
    } else {
        read_sources(&files)?
    };
    let resp: DeleteResponse = client(g, true)
        .post("/v1/delete", &DeleteRequest { sources, keys })
        .await?;
    if !resp.errors.is_empty() {
        print_diagnostics(&resp.errors);
        return Ok(ExitCode::from(1));
    }
    for d in &resp.deleted {
        println!("{d} deleted");
    }
    for n in &resp.not_found {
        eprintln!("{n} not found");
    }
    for f in &resp.failed {
        eprintln!("error: {f}");
    }
    Ok(if resp.failed.is_empty() && resp.not_found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
