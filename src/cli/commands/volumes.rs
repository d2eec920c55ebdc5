//! `volume ls|inspect|rm|prune`, as Docker's: Volume objects seen through
//! the same API as `get`, `describe` and `delete`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use crate::cli::args::{DeleteArgs, DescribeArgs, GetArgs, Global, VolumeCmd};
use crate::cli::client;
use crate::wire::ObjectView;

/// Volumes some container's spec (as `get` shows it) mounts.
fn used<'a>(specs: impl Iterator<Item = &'a serde_json::Value>) -> BTreeSet<String> {
    specs
        .filter_map(|spec| spec.get("spec")?.get("volumes")?.as_array().cloned())
        .flatten()
        .filter_map(|m| m.get("volume")?.as_str().map(str::to_owned))
        .collect()
}

pub async fn volume(g: &Global, cmd: VolumeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        VolumeCmd::Ls => {
            super::get::get(
                g,
                GetArgs {
                    kind: Some("volume".into()),
                    name: None,
                    output: None,
                },
            )
            .await
        }
        VolumeCmd::Inspect(args) => {
            super::get::describe(
                g,
                DescribeArgs {
                    key: format!("volume/{}", args.name),
                },
            )
            .await
        }
        VolumeCmd::Rm(args) => {
            super::delete::delete(
                g,
                DeleteArgs {
                    files: Vec::new(),
                    keys: args.names.iter().map(|n| format!("volume/{n}")).collect(),
                },
            )
            .await
        }
        VolumeCmd::Prune => {
            let c = client(g, true);
            let volumes: Vec<ObjectView> = c.get("/v1/objects?kind=volume").await?;
            let containers: Vec<ObjectView> = c.get("/v1/objects?kind=container").await?;
            let used = used(containers.iter().filter_map(|c| c.spec.as_ref()));
            let unused: Vec<String> = volumes
                .iter()
                // Anonymous volumes (no spec) go with their container.
                .filter(|v| v.spec.is_some() && !used.contains(&v.name))
                .map(|v| format!("volume/{}", v.name))
                .collect();
            if unused.is_empty() {
                println!("0 volume(s) removed");
                return Ok(ExitCode::SUCCESS);
            }
            let code = super::delete::delete(
                g,
                DeleteArgs {
                    files: Vec::new(),
                    keys: unused.clone(),
                },
            )
            .await?;
            println!("{} volume(s) removed", unused.len());
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_in_use_are_those_container_specs_mount() {
        let containers = [
            serde_json::json!({"spec": {"volumes": [{"volume": "data", "path": "/d"}, {"tmpfs": "/t"}]}}),
            serde_json::json!({"spec": {"image": "x"}}),
        ];
        assert_eq!(used(containers.iter()).into_iter().collect::<Vec<_>>(), ["data"]);
    }
}
