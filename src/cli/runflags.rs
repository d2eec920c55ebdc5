//! `docker run`/`docker create` flags turned into a Container spec, as the
//! docker CLI turns them into Config and HostConfig before it calls the
//! API. Pure: the caller's environment comes in as a lookup, so every form
//! is tested here without a daemon. The daemon validates the result as it
//! validates a manifest.

use std::collections::BTreeMap;

mod resources;

pub use resources::update_request;

use crate::cli::args::RunArgs;
use crate::manifest::{self, ContainerSpec, Healthcheck, PortMapping, RestartPolicy, SecurityContext};
use crate::wire::DEFAULT_NETWORK;

mod isolation;
mod storage;

/// A flag whose value berth cannot turn into a spec; the message names the
/// flag and the value, as `docker run` does.
#[derive(Debug, thiserror::Error)]
pub enum RunFlagsError {
    #[error("{flag} {value:?}: {why}")]
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
}

fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> RunFlagsError {
    RunFlagsError::Invalid {
        flag,
        value: value.to_string(),
        why: why.into(),
    }
}

/// What the flags ask for: the container's spec and its labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFlags {
    pub spec: ContainerSpec,
    pub labels: BTreeMap<String, String>,
    /// `--mount …,volume-opt=K=V`: options of volumes made on first use.
    pub volume_opts: BTreeMap<String, BTreeMap<String, String>>,
}

pub mod identity;

/// `caller_env` reads the caller's environment (for `-e KEY`). Flags that
/// name files (`--env-file`, `--label-file`) are refused: see [`parse_with`].
pub fn parse(args: &RunArgs, caller_env: &dyn Fn(&str) -> Option<String>) -> Result<RunFlags, RunFlagsError> {
    parse_with(args, caller_env, &|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "files are read only by the CLI",
        ))
    })
}

/// [`parse`], reading the files flags name with `read_file`.
pub fn parse_with(
    args: &RunArgs,
    caller_env: &dyn Fn(&str) -> Option<String>,
    read_file: identity::ReadFile,
) -> Result<RunFlags, RunFlagsError> {
    let mut spec = ContainerSpec {
        image: args.image.clone(),
        command: args.command.clone(),
        restart_policy: RestartPolicy::Never,
        tty: args.tty,
        stdin: args.interactive,
        user: args.user.clone(),
        ..Default::default()
    };
    for e in &args.env {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                spec.env.insert(k.to_string(), v.to_string());
            }
            Some(_) => return Err(invalid("-e", e, "expected KEY=VALUE or KEY")),
            // `-e KEY`: the caller's value, skipped when unset (as Docker).
            None => {
                if let Some(v) = caller_env(e) {
                    spec.env.insert(e.clone(), v);
                }
            }
        }
    }
    spec.resources = resources::parse(args)?;
    for opt in &args.security_opt {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt, "true"));
        let on = match (key, value) {
            ("no-new-privileges", "true") => true,
            ("no-new-privileges", "false") => false,
            ("seccomp", profile) => {
                isolation::seccomp(&mut spec, opt, profile, caller_env)?;
                continue;
            }
            _ => {
                return Err(invalid(
                    "--security-opt",
                    opt,
                    "berth knows no-new-privileges[=true|false] and seccomp=unconfined|PROFILE.json",
                ))
            }
        };
        spec.security_context
            .get_or_insert_with(SecurityContext::default)
            .no_new_privileges = Some(on);
    }
    isolation::apply(args, &mut spec)?;
    for p in &args.publish {
        spec.ports.extend(parse_publish(p).ok_or_else(|| {
            invalid(
                "-p",
                p,
                "expected [[IP:][HOST]:]CONTAINER[/tcp|/udp], ports or equal-length ranges (8000-8002:80-82)",
            )
        })?);
    }
    match args.network.as_deref() {
        None => spec.networks = vec![DEFAULT_NETWORK.into()],
        Some(mode @ ("host" | "none")) => spec.network = Some(mode.to_string()),
        Some(mode) if mode.starts_with("container:") => spec.network = Some(mode.to_string()),
        Some(net) => spec.networks = vec![net.into()],
    }
    let duration = |flag: &'static str, v: &Option<String>| -> Result<Option<manifest::Duration>, RunFlagsError> {
        v.as_deref()
            .map(|d| {
                d.parse()
                    .map_err(|e: manifest::quantity::QuantityError| invalid(flag, d, e.0))
            })
            .transpose()
    };
    if let Some(cmd) = &args.health_cmd {
        spec.healthcheck = Some(Healthcheck {
            exec: vec!["/bin/sh".into(), "-c".into(), cmd.clone()],
            interval: duration("--health-interval", &args.health_interval)?,
            timeout: duration("--health-timeout", &args.health_timeout)?,
            retries: args.health_retries,
            start_period: duration("--health-start-period", &args.health_start_period)?,
            on_unhealthy: None,
        });
    }
    spec.userns = match args.userns.as_deref() {
        None | Some("") => None,
        Some("auto") => Some(manifest::UsernsMode::Auto),
        Some("host") => Some(manifest::UsernsMode::Host),
        Some(other) => {
            let why = if other.starts_with("auto:") || other.starts_with("keep-id") || other.starts_with("ns:") {
                "berth takes auto or host (no options, keep-id or ns: modes)"
            } else {
                "expected auto or host"
            };
            return Err(invalid("--userns", other, why));
        }
    };
    let volume_opts = storage::apply(args, &mut spec)?;
    let mut labels = BTreeMap::new();
    identity::apply(&args.identity, &mut spec, &mut labels, caller_env, read_file)?;
    Ok(RunFlags {
        spec,
        labels,
        volume_opts,
    })
}

/// `-p`: Docker's forms CONTAINER, HOST:CONTAINER, IP:HOST:CONTAINER and
/// IP::CONTAINER (IPv4 only), each with an optional `/tcp` or `/udp`; a port
/// may be a range (`8000-8002:80-82`, the same length on both sides). No
/// host port (or an empty one) is an ephemeral one, chosen at start (`host: 0`).
fn parse_publish(text: &str) -> Option<Vec<PortMapping>> {
    let (ports, protocol) = match text.rsplit_once('/') {
        Some((ports, proto @ ("tcp" | "udp"))) => (ports, Some(proto.to_string())),
        Some(_) => return None,
        None => (text, None),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [container] => (None, "", *container),
        [host, container] => (None, *host, *container),
        [ip, host, container] => {
            let ip: std::net::Ipv4Addr = ip.parse().ok()?;
            (Some(ip.to_string()), *host, *container)
        }
        _ => return None,
    };
    let range = |text: &str| -> Option<(u16, u16)> {
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
        (a >= 1 && a <= b).then_some((a, b))
    };
    let (c0, c1) = range(container)?;
    let hosts: Vec<u16> = if host.is_empty() {
        vec![0; usize::from(c1 - c0) + 1]
    } else {
        let (h0, h1) = range(host)?;
        // Docker picks one port of a host range for one container port;
        // berth does not: the lengths must match.
        if h1 - h0 != c1 - c0 {
            return None;
        }
        (h0..=h1).collect()
    };
    Some(
        hosts
            .into_iter()
            .zip(c0..=c1)
            .map(|(host, container)| PortMapping {
                host_ip: host_ip.clone(),
                host,
                container,
                protocol: protocol.clone(),
            })
            .collect(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    /// The flags of `berth run ARGS…` as the CLI parses them.
    pub(crate) fn run_args(argv: &[&str]) -> RunArgs {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        Cli::try_parse_from(std::iter::once("run").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .run
    }

    fn spec_of(argv: &[&str]) -> Result<ContainerSpec, RunFlagsError> {
        parse(&run_args(argv), &|_| None).map(|f| f.spec)
    }

    #[test]
    fn publish_takes_docker_forms_with_an_optional_ipv4_address() {
        let one = |t: &str| {
            let mut v = parse_publish(t).unwrap();
            assert_eq!(v.len(), 1, "{t}");
            v.remove(0)
        };
        let p = one("127.0.0.1:8080:80/udp");
        assert_eq!(
            (p.host_ip.as_deref(), p.host, p.container, p.protocol.as_deref()),
            (Some("127.0.0.1"), 8080, 80, Some("udp"))
        );
        let p = one("8080:80");
        assert_eq!((p.host_ip, p.host, p.container, p.protocol), (None, 8080, 80, None));
        // No host port: an ephemeral one, chosen at start.
        let p = one("80");
        assert_eq!((p.host, p.container), (0, 80));
        let p = one("127.0.0.1::80/udp");
        assert_eq!((p.host_ip.as_deref(), p.host, p.proto()), (Some("127.0.0.1"), 0, "udp"));
        let pairs = |t: &str| -> Vec<(u16, u16)> {
            parse_publish(t)
                .unwrap()
                .iter()
                .map(|p| (p.host, p.container))
                .collect()
        };
        assert_eq!(pairs("8000-8002:80-82"), [(8000, 80), (8001, 81), (8002, 82)]);
        assert_eq!(pairs("80-81"), [(0, 80), (0, 81)]);
        for bad in [
            "localhost:8080:80",
            "::1:8080:80",
            "1.2.3.4:8080",
            "8080:80/sctp",
            "8000-8002:80",
            "82-80",
            "0",
            "8080:0",
            "a:b:c:d",
        ] {
            assert!(parse_publish(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_plain_run_joins_the_default_network_and_never_restarts() {
        let spec = spec_of(&["busybox", "echo", "hi"]).unwrap();
        assert_eq!(spec.image, "busybox");
        assert_eq!(spec.command, ["echo", "hi"]);
        assert_eq!(spec.networks, [DEFAULT_NETWORK]);
        assert_eq!(spec.restart_policy, RestartPolicy::Never);
        let spec = spec_of(&["--network", "host", "busybox"]).unwrap();
        assert!(spec.networks.is_empty());
        assert_eq!(spec.network.as_deref(), Some("host"));
    }

    #[test]
    fn userns_takes_auto_or_host() {
        assert_eq!(spec_of(&["busybox"]).unwrap().userns, None);
        assert_eq!(
            spec_of(&["--userns=auto", "busybox"]).unwrap().userns,
            Some(manifest::UsernsMode::Auto)
        );
        assert_eq!(
            spec_of(&["--userns", "host", "busybox"]).unwrap().userns,
            Some(manifest::UsernsMode::Host)
        );
    }

    #[test]
    fn a_bad_value_is_refused_by_flag_and_value() {
        let e = spec_of(&["-e", "=NOKEY", "busybox"]).unwrap_err().to_string();
        assert!(e.starts_with("-e \"=NOKEY\""), "{e}");
        let e = spec_of(&["--security-opt", "apparmor=x", "busybox"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--security-opt"), "{e}");
    }
}
