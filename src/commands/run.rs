//! `run`: a Container object made from the request, started at once, its
//! output streamed until it exits (or only its name, detached).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::logs::{follow_logs, STREAM_BUFFER};
use super::{CommandError, Result};
use crate::manifest::{self, Kind, Metadata, Object, Origin, Spec};
use crate::plan::{Launch, ObjectKey};
use crate::reconcile::state::ContainerState;
use crate::reconcile::{Engine, AUTOREMOVE_LABEL};
use crate::wire::{RunEvent, RunRequest, DEFAULT_NETWORK};

/// The Container object `berth run` stands for.
pub fn run_object(req: &RunRequest) -> Result<Object> {
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
    let mut labels = req.labels.clone();
    if req.rm {
        // Lets a pass remove it after an exit nobody is attached to (a
        // detached run, or a daemon restart mid-run).
        labels.insert(AUTOREMOVE_LABEL.to_string(), "true".to_string());
    }
    Ok(Object {
        metadata: Metadata { name, labels },
        spec: Spec::Container(req.spec.clone()),
        origin: Origin {
            file: "<run>".into(),
            line: 0,
            column: 0,
        },
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
    // As Docker: a named volume the run mounts is made on first use (with
    // the run's volume-opts), validated with the container.
    let mut new_volumes: Vec<Object> = Vec::new();
    if let Spec::Container(spec) = &obj.spec {
        for name in spec.volumes.iter().filter_map(|m| m.volume.as_deref()) {
            if !exists(Kind::Volume, name) && new_volumes.iter().all(|v| v.name() != name) {
                new_volumes.push(volume_object(
                    name,
                    req.volume_opts.get(name).cloned().unwrap_or_default(),
                ));
            }
        }
    }
    let mut checked = vec![obj.clone()];
    checked.extend(new_volumes.iter().cloned());
    let problems = manifest::validate(&checked, &exists);
    if !problems.is_empty() {
        let msg: Vec<String> = problems
            .iter()
            .map(|d| match d.field.starts_with("spec.driverOpts") {
                true => format!("volume-opt of {}: {}", d.file, d.message),
                false => format!("{}: {}", d.field, d.message),
            })
            .collect();
        return Err(CommandError::Invalid(msg.join("; ")));
    }
    ensure_volumes(engine, &new_volumes).await?;
    Ok(obj)
}

/// A local Volume a run makes on first use.
fn volume_object(name: &str, driver_opts: BTreeMap<String, String>) -> Object {
    Object {
        metadata: Metadata {
            name: name.to_string(),
            labels: BTreeMap::new(),
        },
        spec: Spec::Volume(manifest::VolumeSpec {
            driver: None,
            driver_opts,
        }),
        origin: Origin {
            file: format!("volume/{name}"),
            line: 0,
            column: 0,
        },
    }
}

/// The source a volume made by `volume create` or on a run's first use
/// belongs to: one per volume, so `volume rm` of one leaves the others.
pub fn volume_source(name: &str) -> String {
    format!("volume:{name}")
}

/// Stores each of `volumes` and runs passes until each exists, so that
/// the container that mounts them can start.
async fn ensure_volumes(engine: &Arc<Engine>, volumes: &[Object]) -> Result<()> {
    if volumes.is_empty() {
        return Ok(());
    }
    for vol in volumes {
        engine.store_set(&volume_source(vol.name()), std::slice::from_ref(vol), false, &|_, _| {
            None
        })?;
    }
    let names: Vec<&str> = volumes.iter().map(|v| v.name()).collect();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let mut missing = None;
        for name in &names {
            let view = engine.views(Some(Kind::Volume), Some(name))?.into_iter().next();
            match view {
                Some(v) if v.state == crate::wire::StatusKind::Ready => {}
                // Its mount failed (a missing bind source…): said at once.
                Some(v) if v.state == crate::wire::StatusKind::Failed => {
                    return Err(CommandError::Invalid(format!("volume/{name}: {}", v.status)));
                }
                _ => {
                    missing = Some(name);
                    break;
                }
            }
        }
        let Some(missing) = missing else {
            return Ok(());
        };
        if tokio::time::Instant::now() > deadline {
            return Err(CommandError::Unavailable(format!(
                "volume/{missing} could not be made: see `berth describe volume/{missing}`"
            )));
        }
        engine.reconcile().await?;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `create`: stores the container and records it made but held stopped,
/// as `docker create`; `start` starts it.
pub async fn create(engine: &Arc<Engine>, req: RunRequest) -> Result<crate::wire::VerbResponse> {
    let obj = checked_object(engine, &req).await?;
    let name = obj.name().to_string();
    engine
        .reconcile_keys(&format!("run:{name}"), std::slice::from_ref(&obj), Launch::Held)
        .await?;
    Ok(crate::wire::VerbResponse {
        container: name,
        verb: "create".into(),
    })
}

/// Stores and starts the container, then streams `Started`, its output and
/// `Exited`. The stream waits for a slow reader; if the reader goes away the
/// container still runs to its end, and `rm` still removes it.
pub async fn run(engine: &Arc<Engine>, req: RunRequest) -> Result<mpsc::Receiver<RunEvent>> {
    let t_request = crate::runtime::profile::now_micros();
    // The start's cgroup migrations come in a few ms: their grace period
    // starts now, while the request is checked, stored and planned.
    crate::runtime::cgroup::prewarm_migration();
    let obj = checked_object(engine, &req).await?;
    let name = obj.name().to_string();
    crate::runtime::profile::at(&name, "request", t_request);
    crate::runtime::profile::mark(&name, "checked");
    let attach_next = req.attach;
    if !req.detach || attach_next {
        // This command (or the attach that follows) reports the exit; --rm
        // waits for it.
        engine.attach(&name);
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let launch = if attach_next { Launch::WaitAttach } else { Launch::Start };
    let started = engine
        .reconcile_keys(&format!("run:{name}"), std::slice::from_ref(&obj), launch)
        .await;
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
    crate::runtime::profile::mark(&name, "started");
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
        crate::runtime::profile::mark(&name, "exit seen");
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
        crate::runtime::profile::mark(&name, "answered");
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
