//! `network ls|inspect|create|rm|connect|disconnect`: Docker's network commands over the same
//! objects as manifests. `create` applies one Network object as a set of its
//! own (`network:NAME`), so `rm` or a later `create` touches nothing else.

use std::process::ExitCode;

use crate::cli::args::{DeleteArgs, DescribeArgs, GetArgs, Global, NetworkCmd, NetworkCreateArgs};
use crate::cli::commands::{delete, get};
use crate::cli::{client, print_diagnostics};
use crate::manifest::Source;
use crate::wire::{ApplyRequest, ApplyResponse, NetworkConnectRequest, NetworkDisconnectRequest, VerbResponse};

pub async fn network(g: &Global, cmd: NetworkCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        NetworkCmd::Ls {
            output,
            filter,
            format,
            quiet,
        } if format.is_some() || !filter.is_empty() || quiet => {
            let views: Vec<crate::wire::ObjectView> = client(g, true).get("/v1/objects?kind=network").await?;
            let names = views.into_iter().map(|v| v.name).collect();
            let format = if quiet { Some("{{.ID}}") } else { format.as_deref() };
            let _ = output;
            print!("{}", super::listing::networks(g, names, &filter, format).await?);
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Ls { output, .. } => {
            get::get(
                g,
                GetArgs {
                    kind: Some("network".into()),
                    name: None,
                    output,
                },
            )
            .await
        }
        NetworkCmd::Inspect { name } => {
            get::describe(
                g,
                DescribeArgs {
                    key: format!("network/{name}"),
                },
            )
            .await
        }
        NetworkCmd::Create(args) => create(g, args).await,
        NetworkCmd::Prune(args) => super::container::prune(g, args, "networks").await,
        NetworkCmd::Connect(args) => {
            let req = NetworkConnectRequest {
                network: args.network,
                container: args.container,
                aliases: args.aliases,
                ipv4_address: args.ip,
            };
            change(g, "connect", &req).await
        }
        NetworkCmd::Disconnect(args) => {
            let req = NetworkDisconnectRequest {
                network: args.network,
                container: args.container,
                force: args.force,
            };
            change(g, "disconnect", &req).await
        }
        NetworkCmd::Rm { names } => {
            delete::delete(
                g,
                DeleteArgs {
                    files: Vec::new(),
                    keys: names.iter().map(|n| format!("network/{n}")).collect(),
                },
            )
            .await
        }
    }
}

/// `connect` / `disconnect`: one request, the container's name on success.
async fn change<B: serde::Serialize>(g: &Global, verb: &str, req: &B) -> anyhow::Result<ExitCode> {
    let resp: VerbResponse = client(g, true).post(&format!("/v1/networks/{verb}"), req).await?;
    println!("{}", resp.container);
    Ok(ExitCode::SUCCESS)
}

/// The manifest `create` stands for; every value is quoted as JSON, so a
/// flag cannot inject YAML.
fn manifest(args: &NetworkCreateArgs) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let mut spec = vec!["driver: bridge".to_string()];
    if let Some(subnet) = &args.subnet {
        spec.push(format!("subnet: {}", q(subnet)));
    }
    if let Some(gateway) = &args.gateway {
        spec.push(format!("gateway: {}", q(gateway)));
    }
    if let Some(range) = &args.ip_range {
        spec.push(format!("ipRange: {}", q(range)));
    }
    if args.internal {
        spec.push("internal: true".into());
    }
    if let Some(mtu) = args.mtu {
        spec.push(format!("mtu: {mtu}"));
    }
    format!(
        "apiVersion: berth/v1\nkind: Network\nmetadata:\n  name: {}\nspec:\n{}",
        q(&args.name),
        spec.iter().map(|l| format!("  {l}\n")).collect::<String>()
    )
}

async fn create(g: &Global, args: NetworkCreateArgs) -> anyhow::Result<ExitCode> {
    let req = ApplyRequest {
        source_id: format!("network:{}", args.name),
        sources: vec![Source {
            file: "<network create>".into(),
            text: manifest(&args),
        }],
        prune: false,
        dry_run: false,
    };
    let resp: ApplyResponse = client(g, true).post("/v1/apply", &req).await?;
    if !resp.errors.is_empty() {
        print_diagnostics(&resp.errors);
        return Ok(ExitCode::from(1));
    }
    for f in &resp.failed {
        eprintln!("failed: {f}");
    }
    if !resp.failed.is_empty() {
        return Ok(ExitCode::from(1));
    }
    println!("{}", args.name);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_flags_become_a_network_manifest_that_parses() {
        let args = NetworkCreateArgs {
            name: "front".into(),
            subnet: Some("10.89.7.0/24".into()),
            gateway: None,
            ip_range: Some("10.89.7.128/25".into()),
            internal: true,
            mtu: Some(1400),
        };
        let text = manifest(&args);
        let objects = crate::manifest::load(&[Source { file: "x".into(), text }], &|_, _| false).unwrap();
        let crate::manifest::Spec::Network(spec) = &objects[0].spec else {
            panic!("not a network");
        };
        assert_eq!(spec.subnet.as_deref(), Some("10.89.7.0/24"));
        assert_eq!(spec.ip_range.as_deref(), Some("10.89.7.128/25"));
        assert!(spec.internal);
        assert_eq!(spec.mtu, Some(1400));
    }
}
