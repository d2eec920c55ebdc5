//! Containers: started through the runtime's shim, watched through their
//! shim's pidfd, restarted per policy with backoff, stopped with SIGTERM then
//! SIGKILL after the grace period. Every action on one container holds its
//! lock, so `run`, `stop` and a pass never act on it at once.
//!
//! One file per verb, as youki's `container_*.rs`: `start`, `stop` (and
//! kill), `freeze`, `remove`, `launch` (started, held for an attach, or held stopped),
//! `live_restore`, `rename_container`; this file holds the driver itself,
//! observation and the exit bookkeeping they share.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::broadcast;

use super::{network, Driver, DriverResult, Observe};
use crate::manifest::{ContainerSpec, DependencyCondition, Kind, Object, RestartPolicy, Spec};
use crate::plan::{self, Launch, ObjectKey, RunState};
use crate::reconcile::error::{DriverError, VerbError};
use crate::reconcile::records::{self, ContainerInfo, Hold, Live, LiveInfo};
use crate::reconcile::seams::BoxFuture;
use crate::reconcile::{lock, now_millis, policy, translate, Engine, Result};
use crate::runtime::{ExitRecord, Probe, RunRecord};

mod freeze;
mod launch;
mod live_restore;
mod remove;
mod rename_container;
mod rollout;
mod start;
mod stop;
mod update;
pub(crate) use freeze::*;
use launch::launch_container;
pub(crate) use live_restore::*;
pub(crate) use remove::*;
pub(crate) use rename_container::*;
pub(crate) use start::*;
pub(crate) use stop::*;
pub(crate) use update::*;

pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// How long a container may take to die after SIGKILL before we say so.
const KILL_WAIT: Duration = Duration::from_secs(5);

pub struct ContainerDriver;

impl Driver for ContainerDriver {
    fn observe(&self, engine: &Arc<Engine>, live: &Live, mode: Observe) -> Option<RunState> {
        Some(observe_container(engine, live, mode))
    }

    fn create<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        obj: &'a Object,
        hash: &'a str,
        launch: Launch,
    ) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let held = engine.lock_for(&ObjectKey::new(Kind::Container, obj.name()));
            let _held = held.lock().await;
            launch_container(engine, obj, hash, launch).await
        })
    }

    fn replace<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        obj: &'a Object,
        hash: &'a str,
        launch: Launch,
    ) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let held = engine.lock_for(&ObjectKey::new(Kind::Container, obj.name()));
            let _held = held.lock().await;
            if launch == Launch::Start {
                if let Some(strategy) = rollout::start_first(engine, obj) {
                    return rollout::roll_out(engine, obj, hash, strategy).await;
                }
            }
            remove_container(engine, obj.name()).await?;
            launch_container(engine, obj, hash, launch).await
        })
    }

    fn update<'a>(&'a self, engine: &'a Arc<Engine>, obj: &'a Object, hash: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let held = engine.lock_for(&ObjectKey::new(Kind::Container, obj.name()));
            let _held = held.lock().await;
            update_container(engine, obj, hash).await
        })
    }

    fn stop<'a>(&'a self, engine: &'a Arc<Engine>, name: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let held = engine.lock_for(&ObjectKey::new(Kind::Container, name));
            let _held = held.lock().await;
            stop_container(engine, name, DEFAULT_GRACE).await;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, engine: &'a Arc<Engine>, name: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let held = engine.lock_for(&ObjectKey::new(Kind::Container, name));
            let _held = held.lock().await;
            remove_container(engine, name).await?;
            // Before the live record goes: a failure is retried by a later
            // pass, which finds the record still there.
            remove_anonymous_volumes(engine, name).await?;
            engine.store.live_delete(Kind::Container, name)?;
            engine.forget_id(name)?;
            Ok(())
        })
    }
}

fn exit(code: i32, finished_at: i64) -> ExitRecord {
    ExitRecord {
        code,
        signal: None,
        oom_killed: false,
        finished_at,
    }
}

/// What a live container is now. With [`Observe::AndRecord`], an exit not
/// seen before is recorded (and its restart scheduled), a running shim is
/// adopted, and a container whose shim died is killed and cleaned up.
fn observe_container(engine: &Arc<Engine>, live: &Live, mode: Observe) -> RunState {
    let name = &live.key.name;
    let policy = live.restart_policy();
    if engine.watched_run(live).is_some() {
        return RunState::Running;
    }
    let mut info = live.container_info().cloned().unwrap_or_default();
    let now = now_millis();
    let exit = match engine.host.containers.probe(name) {
        Probe::Running(run) => {
            // A shim started by a daemon that died before it answered is
            // adopted here; watching it twice is harmless (see watch_shim).
            if mode == Observe::AndRecord {
                watch_shim(engine, name.clone(), run);
            }
            return RunState::Running;
        }
        Probe::Starting => return RunState::Running,
        Probe::Exited(exit) => exit,
        Probe::Lost { .. } if mode == Observe::Only => {
            // What a pass would find: an exit to handle by the policy.
            return RunState::Exited {
                code: 255,
                restart_due: info.hold != Some(Hold::Stopped) && policy::wants_restart(policy, 255),
            };
        }
        Probe::Lost { init_alive, .. } => {
            // The shim died: its container cannot be supervised any more.
            if init_alive {
                engine.host.containers.kill_all(name);
            }
            if let Err(e) = engine.host.containers.cleanup(name) {
                tracing::warn!(container = %name, "cleanup after a lost shim: {e}");
            }
            engine.event(
                &live.key,
                "ShimLost",
                "the container's shim died; its process was killed",
            );
            exit(255, now)
        }
        Probe::Absent => match (&info.failure, &info.last_exit) {
            (Some(_), _) => exit(128, 0),
            (None, Some(last)) => last.clone(),
            // Made by `create` and not started yet: nothing to record.
            (None, None) if info.hold == Some(Hold::Stopped) => {
                return RunState::Exited {
                    code: 0,
                    restart_due: false,
                }
            }
            // Recorded but never started (the daemon died in between).
            (None, None) => exit(255, now),
        },
    };
    let unrecorded = info.last_exit.as_ref().map(|e| e.finished_at) != Some(exit.finished_at);
    if info.failure.is_none() && unrecorded {
        if mode == Observe::Only {
            // A pass would record it now and schedule the restart.
            return RunState::Exited {
                code: exit.code,
                restart_due: false,
            };
        }
        record_exit(engine, name, &mut info, &exit, live.restart_rule());
    }
    let (rule, max) = live.restart_rule();
    let policy = policy::in_force(rule, max, info.failed_runs);
    RunState::Exited {
        code: exit.code,
        restart_due: info.hold != Some(Hold::Stopped)
            && policy::restart_due(policy, exit.code, info.next_restart_at, now),
    }
}

fn record_exit(
    engine: &Engine,
    name: &str,
    info: &mut ContainerInfo,
    exit: &ExitRecord,
    (restart, max_retries): (RestartPolicy, Option<u32>),
) {
    let key = ObjectKey::new(Kind::Container, name);
    info.failed_runs = if exit.code == 0 { 0 } else { info.failed_runs + 1 };
    let restart = policy::in_force(restart, max_retries, info.failed_runs);
    let decision = policy::decide_exit(
        restart,
        exit.code,
        info.backoff_step,
        info.started_at,
        exit.finished_at,
        now_millis(),
    );
    info.backoff_step = decision.backoff_step;
    // Stopped by hand: the policy waits for `start`.
    info.next_restart_at = decision.restart_at.filter(|_| info.hold != Some(Hold::Stopped));
    info.last_exit = Some(exit.clone());
    info.run = None;
    let mut msg = format!("exited with code {}", exit.code);
    if exit.oom_killed {
        msg.push_str(" (OOMKilled)");
    }
    if info.next_restart_at.is_some() {
        msg.push_str(&format!("; restarting in {} ms", decision.delay_ms));
    }
    engine.event(&key, if exit.oom_killed { "OOMKilled" } else { "Exited" }, &msg);
    let text = records::encode_info(&LiveInfo::Container(info.clone()));
    if let Err(e) = engine.store.live_set_info(Kind::Container, name, &text) {
        tracing::warn!(container = name, "cannot record its exit: {e}");
    }
}

/// Checks that every `dependsOn` condition holds now.
fn dependencies_met(engine: &Engine, obj: &Object) -> DriverResult {
    let Spec::Container(spec) = &obj.spec else {
        return Ok(());
    };
    for dep in &spec.depends_on {
        let probe = engine.host.containers.probe(&dep.name);
        let (met, cond) = match dep.condition {
            DependencyCondition::Started => (matches!(probe, Probe::Running(_) | Probe::Exited(_)), "started"),
            DependencyCondition::Completed => (matches!(probe, Probe::Exited(ref e) if e.code == 0), "completed"),
            DependencyCondition::Healthy => {
                if matches!(probe, Probe::Running(_)) && !has_healthcheck(engine, &dep.name) {
                    let msg = format!(
                        "container/{} waits for container/{} to be healthy, but {} has no healthcheck \
                         (neither in its manifest nor in its image): give it one, or depend on it with \
                         `condition: started`",
                        obj.name(),
                        dep.name,
                        dep.name
                    );
                    let key = ObjectKey::new(Kind::Container, obj.name());
                    if engine.pending_reason(&key) != Some(crate::reconcile::Blocked::Waiting(msg.clone())) {
                        engine.event(&key, "NoHealthcheck", &msg);
                    }
                    return Err(DriverError::Waiting(msg));
                }
                (engine.is_healthy(&dep.name), "healthy")
            }
        };
        if !met {
            return Err(DriverError::Waiting(format!(
                "waiting for container/{} to be {cond}",
                dep.name
            )));
        }
    }
    Ok(())
}

/// Whether a made container has a healthcheck: its own, or its image's.
fn has_healthcheck(engine: &Engine, name: &str) -> bool {
    match engine.live(Kind::Container, name) {
        Ok(Some(live)) => {
            live.container_spec().is_some_and(|c| c.healthcheck.is_some())
                || live.container_info().is_some_and(|i| i.image_healthcheck.is_some())
        }
        // Not made yet: nothing is known.
        _ => true,
    }
}

/// The hold on a container, from its live record.
fn held(engine: &Engine, name: &str) -> Option<Hold> {
    engine
        .live(Kind::Container, name)
        .ok()
        .flatten()
        .and_then(|l| l.container_info().and_then(|i| i.hold))
}

/// Records (or clears) a hold; the caller holds the container's lock.
fn set_hold(engine: &Engine, name: &str, hold: Option<Hold>) {
    let Ok(Some(live)) = engine.live(Kind::Container, name) else {
        return;
    };
    let mut info = live.container_info().cloned().unwrap_or_default();
    if info.hold == hold {
        return;
    }
    info.hold = hold;
    if hold == Some(Hold::Stopped) {
        info.next_restart_at = None;
    }
    let text = records::encode_info(&LiveInfo::Container(info));
    if let Err(e) = engine.store.live_set_info(Kind::Container, name, &text) {
        tracing::warn!(container = name, "cannot record its hold: {e}");
    }
    engine.changed();
}

fn running(engine: &Engine, name: &str) -> bool {
    matches!(engine.host.containers.probe(name), Probe::Running(_) | Probe::Starting)
}
