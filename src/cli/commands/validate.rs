//! `validate`: the manifest checks apply makes, without a daemon.

use std::process::ExitCode;

use crate::cli::args::ValidateArgs;
use crate::cli::read_sources;
use crate::manifest;

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let sources = read_sources(&args.files.files)?;
    // No daemon to ask what other sources define: the files are checked as
    // if they were all there is.
    match manifest::load(&sources, &|_, _| false) {
        Ok(objects) => {
            println!("{} objects in {} file(s) are valid", objects.len(), sources.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} problem(s)", errors.len());
            Ok(ExitCode::from(1))
        }
    }
}
