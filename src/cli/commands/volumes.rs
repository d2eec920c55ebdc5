//! `volume ls|inspect|rm|prune`, as Docker's: Volume objects seen through
//! the same API as `get`, `describe` and `delete`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use crate::cli::args::{DeleteArgs, DescribeArgs, GetArgs, Global, VolumeCmd};
use crate::cli::client;
use crate::manifest::Spec;
use crate::wire::ObjectView;

/// Volumes some container's spec (as `get` shows it) mounts.
fn used<'a>(specs: impl Iterator<Item = &'a Spec>) -> BTreeSet<String> {
    specs
        .filter_map(|spec| match spec {
            Spec::Container(c) => Some(&c.volumes),
            _ => None,
        })
        .flatten()
        .filter_map(|m| m.volume.clone())
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
        // As the wire carries them (`kind` beside `spec`).
        let containers: [Spec; 2] = [
            serde_json::json!({"kind": "Container", "spec": {"image": "x", "volumes": [{"volume": "data", "path": "/d"}, {"tmpfs": "/t"}]}}),
            serde_json::json!({"kind": "Container", "spec": {"image": "x"}}),
        ]
        .map(|v| serde_json::from_value(v).unwrap());
        assert_eq!(used(containers.iter()).into_iter().collect::<Vec<_>>(), ["data"]);
    }
}
