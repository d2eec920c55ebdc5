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

/// A flag of `network create` berth cannot honour, named with its value.
#[derive(Debug, thiserror::Error)]
pub enum NetworkFlagError {
    #[error("{flag} {value:?}: {why}")]
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
}

fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> NetworkFlagError {
    NetworkFlagError::Invalid {
        flag,
        value: value.to_string(),
        why: why.into(),
    }
}

/// A subnet or range as given, normalised to its network address when host
/// bits are set (`191.45.2.0/16` is `191.45.0.0/16`, as Docker's
/// introductions write it), with the warning that names both. Anything
/// else that is not a CIDR is left for validation to refuse.
fn normalise_cidr(flag: &str, text: &str) -> (String, Option<String>) {
    let Some((addr, prefix)) = text.split_once('/') else {
        return (text.to_string(), None);
    };
    let (Ok(addr), Ok(prefix)) = (addr.parse::<std::net::Ipv4Addr>(), prefix.parse::<u8>()) else {
        return (text.to_string(), None);
    };
    let net = crate::cidr::Subnet::new(addr, prefix);
    if prefix > 32 || net.addr == addr {
        return (text.to_string(), None);
    }
    let fixed = net.to_string();
    let warning = format!("{flag} {text} has host bits set: using its network address {fixed}");
    (fixed, Some(warning))
}

/// The manifest `create` stands for, and the warnings to print; every
/// value is quoted as JSON, so a flag cannot inject YAML.
fn manifest(args: &NetworkCreateArgs) -> Result<(String, Vec<String>), NetworkFlagError> {
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let mut warnings = Vec::new();
    let driver = args.driver.as_deref().unwrap_or("bridge");
    if !matches!(driver, "bridge" | "macvlan") {
        return Err(invalid("--driver", driver, "berth has the bridge and macvlan drivers"));
    }
    let mut spec = vec![format!("driver: {}", q(driver))];
    let mut mtu = args.mtu;
    for o in &args.opt {
        match o.split_once('=') {
            Some(("parent", p)) if driver == "macvlan" => spec.push(format!("parent: {}", q(p))),
            Some(("macvlan_mode", "bridge")) if driver == "macvlan" => {}
            Some(("com.docker.network.driver.mtu", n)) => {
                mtu = Some(n.parse().map_err(|_| invalid("-o", o, "the MTU is a number"))?);
            }
            _ => {
                return Err(invalid(
                    "-o",
                    o,
                    "berth takes parent=IF and macvlan_mode=bridge (macvlan), com.docker.network.driver.mtu=N",
                ))
            }
        }
    }
    if let Some(subnet) = &args.subnet {
        let (subnet, warning) = normalise_cidr("--subnet", subnet);
        warnings.extend(warning);
        spec.push(format!("subnet: {}", q(&subnet)));
    }
    if let Some(gateway) = &args.gateway {
        spec.push(format!("gateway: {}", q(gateway)));
    }
    if let Some(range) = &args.ip_range {
        let (range, warning) = normalise_cidr("--ip-range", range);
        warnings.extend(warning);
        spec.push(format!("ipRange: {}", q(&range)));
    }
    if args.internal {
        spec.push("internal: true".into());
    }
    if let Some(mtu) = mtu {
        spec.push(format!("mtu: {mtu}"));
    }
    let mut labels = String::new();
    for l in &args.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.push_str(&format!("    {}: {}\n", q(k), q(v)));
    }
    if !labels.is_empty() {
        labels.insert_str(0, "  labels:\n");
    }
    let text = format!(
        "apiVersion: berth/v1\nkind: Network\nmetadata:\n  name: {}\n{labels}spec:\n{}",
        q(&args.name),
        spec.iter().map(|l| format!("  {l}\n")).collect::<String>()
    );
    Ok((text, warnings))
}

async fn create(g: &Global, args: NetworkCreateArgs) -> anyhow::Result<ExitCode> {
    let (text, warnings) = match manifest(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("berth: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for w in &warnings {
        eprintln!("berth: warning: {w}");
    }
    let req = ApplyRequest {
        source_id: format!("network:{}", args.name),
        sources: vec![Source {
            file: "<network create>".into(),
            text,
        }],
        prune: false,
        dry_run: false,
        base_dir: None,
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

    fn args(argv: &[&str]) -> NetworkCreateArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            create: NetworkCreateArgs,
        }
        Cli::try_parse_from(std::iter::once("create").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .create
    }

    fn load(text: String) -> crate::manifest::Object {
        let mut objects = crate::manifest::load(&[Source { file: "x".into(), text }], &|_, _| false)
            .unwrap_or_else(|d| panic!("{d:?}"));
        objects.remove(0)
    }

    #[test]
    fn create_flags_become_a_network_manifest_that_parses() {
        let (text, warnings) = manifest(&args(&[
            "--subnet",
            "10.89.7.0/24",
            "--ip-range",
            "10.89.7.128/25",
            "--internal",
            "--mtu",
            "1400",
            "--label",
            "team=web",
            "--label",
            "solo",
            "front",
        ]))
        .unwrap();
        assert!(warnings.is_empty());
        let obj = load(text);
        let crate::manifest::Spec::Network(spec) = &obj.spec else {
            panic!("not a network");
        };
        assert_eq!(spec.driver.as_deref(), Some("bridge"));
        assert_eq!(spec.subnet.as_deref(), Some("10.89.7.0/24"));
        assert_eq!(spec.ip_range.as_deref(), Some("10.89.7.128/25"));
        assert!(spec.internal);
        assert_eq!(spec.mtu, Some(1400));
        assert_eq!(obj.metadata.labels["team"], "web");
        assert_eq!(obj.metadata.labels["solo"], "");
    }

    #[test]
    fn macvlan_takes_its_parent_from_an_option() {
        let (text, _) = manifest(&args(&[
            "-d",
            "macvlan",
            "--subnet",
            "192.0.2.0/24",
            "-o",
            "parent=eth0",
            "-o",
            "macvlan_mode=bridge",
            "lan",
        ]))
        .unwrap();
        let obj = load(text);
        let crate::manifest::Spec::Network(spec) = &obj.spec else {
            panic!("not a network");
        };
        assert_eq!(
            (spec.driver.as_deref(), spec.parent.as_deref()),
            (Some("macvlan"), Some("eth0"))
        );
    }

    #[test]
    fn a_subnet_with_host_bits_is_normalised_with_a_warning_naming_both() {
        let (text, warnings) = manifest(&args(&[
            "--driver",
            "bridge",
            "--subnet",
            "191.45.2.0/16",
            "custom-isolated-network",
        ]))
        .unwrap();
        assert_eq!(
            warnings,
            ["--subnet 191.45.2.0/16 has host bits set: using its network address 191.45.0.0/16"]
        );
        let crate::manifest::Spec::Network(spec) = &load(text).spec else {
            panic!("not a network");
        };
        assert_eq!(spec.subnet.as_deref(), Some("191.45.0.0/16"));
    }

    #[test]
    fn unknown_drivers_and_options_are_refused_by_name_and_values_cannot_inject_yaml() {
        let e = manifest(&args(&["-d", "overlay", "x"])).unwrap_err().to_string();
        assert!(e.starts_with("--driver \"overlay\""), "{e}");
        let e = manifest(&args(&["-o", "parent=eth0", "x"])).unwrap_err().to_string();
        assert!(e.starts_with("-o \"parent=eth0\""), "{e}");
        let e = manifest(&args(&["-o", "encrypted=true", "x"])).unwrap_err().to_string();
        assert!(e.starts_with("-o"), "{e}");
        let (text, _) = manifest(&args(&["--label", "k=v\nspec: {internal: true}", "x"])).unwrap();
        let obj = load(text);
        assert_eq!(obj.metadata.labels["k"], "v\nspec: {internal: true}");
    }
}
