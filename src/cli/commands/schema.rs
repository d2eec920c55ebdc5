//! `schema`: the JSON Schema of every manifest kind, for editors.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::args::SchemaArgs;
use crate::cli::output;
use crate::manifest;

pub fn schema(args: SchemaArgs) -> anyhow::Result<ExitCode> {
    write_schemas(&args.dir)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `<dir>/<kind>.json` for every kind and prints each path.
pub fn write_schemas(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for (kind, schema) in manifest::schemas() {
        let path = dir.join(format!("{}.json", kind.as_str().to_ascii_lowercase()));
        let mut text = output::json(&schema)?;
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
