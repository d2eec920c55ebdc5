//! `run`: a Container object made from the request, started at once, its
//! output streamed until it exits (or only its name, detached).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::logs::{follow_logs, STREAM_BUFFER};
use super::{CommandError, Result};
use crate::manifest::{self, ContainerSpec, Kind, Metadata, Object, Origin, Resources, RestartPolicy, Spec};
use crate::plan::ObjectKey;
use crate::reconcile::state::ContainerState;
use crate::reconcile::{Engine, AUTOREMOVE_LABEL};
use crate::wire::{RunEvent, RunRequest};

/// The Container object `berth run` stands for.
pub fn run_object(req: &RunRequest) -> Result<Object> {
    let bad = CommandError::Invalid;
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
            healthcheck,
            ..Default::default()
        }),
        origin: Origin {
            file: "<run>".into(),
            line: 0,
            column: 0,
        },
    })
}

/// Stores and starts the container, then streams `Started`, its output and
/// `Exited`. The stream waits for a slow reader; if the reader goes away the
/// container still runs to its end, and `rm` still removes it.
pub async fn run(engine: &Arc<Engine>, req: RunRequest) -> Result<mpsc::Receiver<RunEvent>> {
    let obj = run_object(&req)?;
    let name = obj.name().to_string();
    let stored = engine.desired_objects()?;
    if stored.iter().any(|o| o.kind() == Kind::Container && o.name() == name) {
        return Err(CommandError::Conflict(format!("container/{name} already exists")));
    }
    let exists = |kind: Kind, n: &str| stored.iter().any(|o| o.kind() == kind && o.name() == n);
    let problems = manifest::validate(std::slice::from_ref(&obj), &exists);
    if !problems.is_empty() {
        let msg: Vec<String> = problems.iter().map(|d| format!("{}: {}", d.field, d.message)).collect();
        return Err(CommandError::Invalid(msg.join("; ")));
    }
    engine.store_set(&format!("run:{name}"), std::slice::from_ref(&obj), false, &|_, _| None)?;
    if !req.detach {
        // This command reports the exit and removes the container itself.
        engine.attach(&name);
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    if let Err(e) = engine.run_now(&obj).await {
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
    if req.detach {
        return Ok(rx);
    }
    let engine = engine.clone();
    tokio::spawn(async move {
        let followed = follow_logs(&engine, &name, None, true, &tx, RunEvent::Log).await;
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
async fn forget_and_remove(engine: &Arc<Engine>, name: &str) {
    if let Err(e) = engine.delete_desired(&[ObjectKey::new(Kind::Container, name)]) {
        tracing::warn!(container = %name, "forgetting run container: {e}");
    }
    if let Err(e) = engine.remove_now(name).await {
        tracing::warn!(container = %name, "removing run container: {e}");
    }
}

async fn wait_not_running(engine: &Engine, name: &str) {
    let mut exits = engine.exits();
    while engine.container_state(name) == ContainerState::Running {
        tokio::select! {
            _ = exits.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
