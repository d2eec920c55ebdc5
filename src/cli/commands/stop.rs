//! `stop`: SIGTERM, then SIGKILL after the container's grace period.

use std::process::ExitCode;

use crate::cli::args::{Global, StopArgs};
use crate::cli::client;
use crate::client::segment;
use crate::wire::StopResponse;

/// Stops each container in turn; one that fails does not keep the others
/// from being stopped, and makes the exit code 1.
pub async fn stop(g: &Global, args: StopArgs) -> ExitCode {
    let c = client(g, true);
    let mut failed = false;
    for n in args.names {
        match c.post_empty::<StopResponse>(&format!("/v1/stop/{}", segment(&n))).await {
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
