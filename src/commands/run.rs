//! `run`: a Container object made from the request, started at once, its
//! output streamed until it exits (or only its name, detached).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::logs::{follow_logs, STREAM_BUFFER};
use super::{CommandError, Result};
use crate::manifest::{
    self, ContainerSpec, Kind, Metadata, Object, Origin, PortMapping, Resources, RestartPolicy, Spec,
};
use crate::plan::ObjectKey;
use crate::reconcile::state::ContainerState;
use crate::reconcile::{Engine, AUTOREMOVE_LABEL};
use crate::wire::{RunEvent, RunRequest};

/// The Container object `berth run` stands for.
pub fn run_object(req: &RunRequest) -> Result<Object> {
    let bad = CommandError::Invalid;
    if let Some(name) = &req.name {
        super::check_name(Kind::Container, name)?;
    }
    let name = req.name.clone().unwrap_or_else(|| {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "run-{:08x}",
            (n as u64 ^ (std::process::id() as u64) << 32) & 0xffff_ffff
        )
    });
    let mut env = BTreeMap::new();
    for e in &req.env {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| bad(format!("-e {e:?}: expected KEY=VALUE")))?;
        env.insert(k.to_string(), v.to_string());
    }
    let memory = req
        .memory
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: manifest::quantity::QuantityError| bad(format!("--memory: {}", e.0)))?;
    let cpus = req
        .cpus
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: manifest::quantity::QuantityError| bad(format!("--cpus: {}", e.0)))?;
    let resources = (memory.is_some() || cpus.is_some()).then_some(Resources {
        memory,
        cpus,
        ..Default::default()
    });
    let mut security = None;
    for opt in &req.security_opt {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt, "true"));
        let on = match (key, value) {
            ("no-new-privileges", "true") => true,
            ("no-new-privileges", "false") => false,
            _ => {
                return Err(bad(format!(
                    "--security-opt {opt:?}: berth knows no-new-privileges[=true|false]"
                )))
            }
        };
        security = Some(manifest::SecurityContext {
            no_new_privileges: Some(on),
        });
    }
    let mut ports = Vec::new();
    for p in &req.publish {
        ports.push(parse_publish(p).ok_or_else(|| bad(format!("-p {p:?}: expected [IP:]HOST:CONTAINER[/tcp|/udp]")))?);
    }
    let (networks, network) = match req.network.as_deref() {
        None => (vec![DEFAULT_NETWORK.into()], None),
        Some(mode @ ("host" | "none")) => (Vec::new(), Some(mode.to_string())),
        Some(mode) if mode.starts_with("container:") => (Vec::new(), Some(mode.to_string())),
        Some(net) => (vec![net.into()], None),
    };
    let duration = |flag: &str, v: &Option<String>| -> Result<Option<manifest::Duration>> {
        v.as_deref()
            .map(|d| {
                d.parse()
                    .map_err(|e: manifest::quantity::QuantityError| bad(format!("{flag}: {}", e.0)))
            })
            .transpose()
    };
    let healthcheck = match &req.health_cmd {
        Some(cmd) => Some(manifest::Healthcheck {
            exec: vec!["/bin/sh".into(), "-c".into(), cmd.clone()],
            interval: duration("--health-interval", &req.health_interval)?,
            timeout: duration("--health-timeout", &req.health_timeout)?,
            retries: req.health_retries,
            start_period: duration("--health-start-period", &req.health_start_period)?,
            on_unhealthy: None,
        }),
        None => None,
    };
    let mut labels = BTreeMap::new();
    if req.rm {
        // Lets a pass remove it after an exit nobody is attached to (a
        // detached run, or a daemon restart mid-run).
        labels.insert(AUTOREMOVE_LABEL.to_string(), "true".to_string());
    }
    Ok(Object {
        metadata: Metadata { name, labels },
        spec: Spec::Container(ContainerSpec {
            image: req.image.clone(),
            command: req.command.clone(),
            env,
            resources,
            restart_policy: RestartPolicy::Never,
            security_context: security,
            networks,
            network,
            ports,
            healthcheck,
            tty: req.tty,
            stdin: req.interactive,
            user: req.user.clone(),
            ..Default::default()
        }),
        origin: Origin {
            file: "<run>".into(),
            line: 0,
            column: 0,
        },
    })
}

/// The network `berth run` joins when told none, made on first use (as
/// Docker's `bridge`).
pub const DEFAULT_NETWORK: &str = "bridge";

fn parse_publish(text: &str) -> Option<PortMapping> {
    let (ports, protocol) = match text.rsplit_once('/') {
        Some((ports, proto @ ("tcp" | "udp"))) => (ports, Some(proto.to_string())),
        Some(_) => return None,
        None => (text, None),
    };
    // Docker's forms: HOST:CONTAINER and IP:HOST:CONTAINER (IPv4 only).
    let (host_ip, ports) = match ports.split(':').count() {
        3 => {
            let (ip, rest) = ports.split_once(':')?;
            let ip: std::net::Ipv4Addr = ip.parse().ok()?;
            (Some(ip.to_string()), rest)
        }
        _ => (None, ports),
    };
    let (host, container) = ports.split_once(':')?;
    Some(PortMapping {
        host_ip,
        host: host.parse().ok()?,
        container: container.parse().ok()?,
        protocol,
    })
}

/// Makes the default network (desired, with a source of its own) when a run
/// needs it and it is not defined, and runs a pass so it exists before the
/// container is started.
async fn ensure_default_network(engine: &Arc<Engine>, obj: &Object) -> Result<()> {
    let Spec::Container(spec) = &obj.spec else {
        return Ok(());
    };
    if !spec.networks.iter().any(|n| n.name == DEFAULT_NETWORK) {
        return Ok(());
    }
    let stored = engine.desired_objects()?;
    if !stored
        .iter()
        .any(|o| o.kind() == Kind::Network && o.name() == DEFAULT_NETWORK)
    {
        let net = default_network();
        engine.store_set("default-network", std::slice::from_ref(&net), false, &|_, _| None)?;
    }
    // Made by a pass; one that fails (another daemon took the subnet it
    // chose at the same moment) is tried again at once, for a while.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let ready = engine
            .views(Some(Kind::Network), Some(DEFAULT_NETWORK))?
            .first()
            .is_some_and(|v| v.state == crate::wire::StatusKind::Ready);
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CommandError::Unavailable(format!(
                "network/{DEFAULT_NETWORK} could not be made: see `berth describe network/{DEFAULT_NETWORK}`"
            )));
        }
        engine.reconcile().await?;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn default_network() -> Object {
    Object {
        metadata: Metadata {
            name: DEFAULT_NETWORK.into(),
            labels: BTreeMap::new(),
        },
        spec: Spec::Network(manifest::NetworkSpec {
            driver: Some("bridge".into()),
            ..Default::default()
        }),
        origin: Origin {
            file: "<run>".into(),
            line: 0,
            column: 0,
        },
    }
}

/// The container `req` asks for, checked as `run` and `create` both need:
/// the name is free, the default network exists when it is used, no host
/// port clashes, and the object validates against what is stored.
async fn checked_object(engine: &Arc<Engine>, req: &RunRequest) -> Result<Object> {
    super::exec::DetachKeys::parse(req.detach_keys.as_deref())?;
    let obj = run_object(req)?;
    let name = obj.name().to_string();
    let stored = engine.desired_objects()?;
    if stored.iter().any(|o| o.kind() == Kind::Container && o.name() == name) {
        return Err(CommandError::Conflict(format!("container/{name} already exists")));
    }
    ensure_default_network(engine, &obj).await?;
    let stored = engine.desired_objects()?;
    let others: Vec<&Object> = stored.iter().collect();
    super::apply::refuse_port_clash(&others, std::slice::from_ref(&obj))?;
    let exists = |kind: Kind, n: &str| stored.iter().any(|o| o.kind() == kind && o.name() == n);
    let problems = manifest::validate(std::slice::from_ref(&obj), &exists);
    if !problems.is_empty() {
        let msg: Vec<String> = problems.iter().map(|d| format!("{}: {}", d.field, d.message)).collect();
        return Err(CommandError::Invalid(msg.join("; ")));
    }
    Ok(obj)
}

/// `create`: stores the container and records it made but held stopped,
/// as `docker create`; `start` starts it.
pub async fn create(engine: &Arc<Engine>, req: RunRequest) -> Result<crate::wire::VerbResponse> {
    let obj = checked_object(engine, &req).await?;
    let name = obj.name().to_string();
    // Held before it is desired, so that no pass starts it in between.
    engine.create_held(&obj).await?;
    engine.store_set(&format!("run:{name}"), std::slice::from_ref(&obj), false, &|_, _| None)?;
    Ok(crate::wire::VerbResponse {
        container: name,
        verb: "create".into(),
    })
}

/// Stores and starts the container, then streams `Started`, its output and
/// `Exited`. The stream waits for a slow reader; if the reader goes away the
/// container still runs to its end, and `rm` still removes it.
pub async fn run(engine: &Arc<Engine>, req: RunRequest) -> Result<mpsc::Receiver<RunEvent>> {
    let obj = checked_object(engine, &req).await?;
    let name = obj.name().to_string();
    engine.store_set(&format!("run:{name}"), std::slice::from_ref(&obj), false, &|_, _| None)?;
    let attach_next = req.attach;
    if !req.detach || attach_next {
        // This command (or the attach that follows) reports the exit; --rm
        // waits for it.
        engine.attach(&name);
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let started = if attach_next {
        engine.run_now_attached(&obj).await
    } else {
        engine.run_now(&obj).await
    };
    if let Err(e) = started {
        // Nothing of a failed run stays behind.
        forget_and_remove(engine, &name).await;
        engine.detach(&name);
        if let Some(code) = e.exit_code() {
            // The command itself cannot run: an answer with Docker's exit
            // code (127/126) rather than a failure of berth's (125).
            let _ = tx
                .send(RunEvent::Error {
                    message: e.status_message(),
                    exit_code: Some(code),
                })
                .await;
            return Ok(rx);
        }
        return Err(e.into());
    }
    // The channel is empty: this cannot wait.
    let _ = tx.send(RunEvent::Started { name: name.clone() }).await;
    if attach_next {
        // Should the client never attach (or never see the end), the
        // container is left to the passes (and --rm) a while after its exit.
        let engine = engine.clone();
        let id = engine.runtime_id(&name);
        tokio::spawn(async move {
            wait_not_running(&engine, &name).await;
            tokio::time::sleep(Duration::from_secs(15)).await;
            engine.detach(&engine.name_of_id(&id));
            engine.wake();
        });
        return Ok(rx);
    }
    if req.detach {
        return Ok(rx);
    }
    let engine = engine.clone();
    // The container by its runtime id: it may be renamed while it runs.
    let id = engine.runtime_id(&name);
    tokio::spawn(async move {
        let followed = follow_logs(&engine, &name, None, true, &tx, RunEvent::Log).await;
        let name = engine.name_of_id(&id);
        if !matches!(followed, Ok(true)) {
            // The client went away (or the log broke): the container still
            // runs to its end before --rm may remove it.
            wait_not_running(&engine, &name).await;
        }
        let exit = match engine.container_state(&name) {
            ContainerState::Exited(e) => Some(e),
            _ => None,
        };
        if req.rm {
            forget_and_remove(&engine, &name).await;
        }
        engine.detach(&name);
        let last = match exit {
            Some(e) => RunEvent::Exited {
                code: e.code,
                oom_killed: e.oom_killed,
            },
            None => RunEvent::Error {
                message: "container ended without an exit record".into(),
                exit_code: None,
            },
        };
        let _ = tx.send(last).await;
    });
    Ok(rx)
}

/// Deletes the run's object and removes its container at once (a failed
/// run, or `--rm` after the exit); failures are logged, as nobody waits.
pub(crate) async fn forget_and_remove(engine: &Arc<Engine>, name: &str) {
    if let Err(e) = engine.delete_desired(&[ObjectKey::new(Kind::Container, name)]) {
        tracing::warn!(container = %name, "forgetting run container: {e}");
    }
    if let Err(e) = engine.remove_now(name).await {
        tracing::warn!(container = %name, "removing run container: {e}");
    }
}

async fn wait_not_running(engine: &Engine, name: &str) {
    let mut exits = engine.exits();
    // By runtime id, so a rename meanwhile does not end the wait.
    let id = engine.runtime_id(name);
    while engine.container_state(&engine.name_of_id(&id)) == ContainerState::Running {
        tokio::select! {
            _ = exits.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_publish;

    #[test]
    fn publish_takes_docker_forms_with_an_optional_ipv4_address() {
        let p = parse_publish("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(
            (p.host_ip.as_deref(), p.host, p.container, p.protocol.as_deref()),
            (Some("127.0.0.1"), 8080, 80, Some("udp"))
        );
        let p = parse_publish("8080:80").unwrap();
        assert_eq!((p.host_ip, p.host, p.container, p.protocol), (None, 8080, 80, None));
        for bad in ["80", "localhost:8080:80", "::1:8080:80", "1.2.3.4:8080", "8080:80/sctp"] {
            assert!(parse_publish(bad).is_none(), "{bad}");
        }
    }
}
