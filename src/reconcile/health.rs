//! Health checks: one monitor task per running container that has a
//! `healthcheck`, running the check through the exec path one at a time
//! (a check that outlives its timeout is killed, so checks never pile up).
//! The state is kept in memory and written to the store after each check,
//! so an adopted container keeps its status, streak and last results across
//! a daemon restart (for the same run: init pid and start time). The
//! transitions are pure ([`next`]); acting on `unhealthy` goes through the
//! container driver.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{lock, now_millis, Engine};
use crate::manifest::{Healthcheck, Kind, OnUnhealthy};
use crate::plan::ObjectKey;
use crate::runtime::exec::{ExecReport, ExecSpec};
use crate::runtime::{Probe, RunRecord};
use crate::wire::{HealthLog, HealthView};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 3;
/// Output kept per check, as Docker keeps it.
const OUTPUT_LIMIT: usize = 4096;
/// Results kept per container.
const LOG_LENGTH: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// The health of one run of a container (its init pid).
#[derive(Debug, Clone)]
pub struct HealthState {
    pub init_pid: i32,
    /// The init's start time, which with its pid names the run.
    pub init_start: u64,
    pub status: HealthStatus,
    pub failing_streak: u32,
    pub log: VecDeque<HealthLog>,
}

/// What the engine keeps: states by container runtime id (which `rename`
/// does not change), and the inits with a monitor.
#[derive(Debug, Default)]
pub struct Monitors {
    states: HashMap<String, HealthState>,
    running: HashSet<i32>,
}

/// The status after a check: a pass makes it healthy; a failure counts
/// toward `retries` unless it falls in the start period while still
/// starting (Docker's rule).
pub fn next(
    status: HealthStatus,
    streak: u32,
    passed: bool,
    in_start_period: bool,
    retries: u32,
) -> (HealthStatus, u32) {
    if passed {
        return (HealthStatus::Healthy, 0);
    }
    if in_start_period && status == HealthStatus::Starting {
        return (status, streak);
    }
    let streak = streak + 1;
    if streak >= retries.max(1) {
        (HealthStatus::Unhealthy, streak)
    } else {
        (status, streak)
    }
}

impl Engine {
    /// The health of a running container with a healthcheck, for its current run.
    pub fn health(&self, name: &str, init_pid: i32) -> Option<HealthState> {
        lock(&self.health)
            .states
            .get(&self.ids.id_of(name))
            .filter(|s| s.init_pid == init_pid)
            .cloned()
    }

    /// Whether the container runs and its healthcheck passes.
    pub fn is_healthy(&self, name: &str) -> bool {
        match self.host.containers.probe(name) {
            Probe::Running(run) => self
                .health(name, run.init_pid)
                .is_some_and(|s| s.status == HealthStatus::Healthy),
            _ => false,
        }
    }
}

/// The view of a state for `get`/`describe`.
pub fn view(state: &HealthState) -> HealthView {
    HealthView {
        status: state.status.as_str().into(),
        failing_streak: state.failing_streak,
        log: state.log.iter().cloned().collect(),
    }
}

/// Starts the monitor of a container's run if it has a healthcheck and none
/// watches this run yet.
pub fn monitor(engine: &Arc<Engine>, name: &str, run: RunRecord) {
    let Ok(Some(live)) = engine.live(Kind::Container, name) else {
        return;
    };
    let own = live.container_spec().and_then(|c| c.healthcheck.clone());
    let Some(check) = own.or_else(|| live.container_info().and_then(|i| i.image_healthcheck.clone())) else {
        return;
    };
    // The same run's health from before a daemon restart, if recorded.
    let stored = match engine.store.health_get(name) {
        Ok(Some(row)) => super::records::decode_health(name, row)
            .map_err(|e| tracing::warn!(container = name, "{e}"))
            .ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(container = name, "reading its health: {e}");
            None
        }
    };
    let state = stored
        .filter(|s| s.init_pid == run.init_pid && s.init_start == run.init_start)
        .unwrap_or(HealthState {
            init_pid: run.init_pid,
            init_start: run.init_start,
            status: HealthStatus::Starting,
            failing_streak: 0,
            log: VecDeque::new(),
        });
    {
        let mut m = lock(&engine.health);
        if !m.running.insert(run.init_pid) {
            return;
        }
        m.states.insert(engine.ids.id_of(name), state.clone());
    }
    save(engine, name, &state);
    engine.changed();
    let engine = engine.clone();
    let id = engine.ids.id_of(name);
    tokio::spawn(async move {
        run_checks(&engine, &id, run, &check).await;
        lock(&engine.health).running.remove(&run.init_pid);
    });
}

fn save(engine: &Engine, name: &str, state: &HealthState) {
    if let Err(e) = engine.store.health_put(name, &super::records::encode_health(state)) {
        tracing::warn!(container = name, "recording its health: {e}");
    }
}

fn same_run(engine: &Engine, name: &str, run: &RunRecord) -> bool {
    matches!(engine.host.containers.probe(name), Probe::Running(r) if r.init_pid == run.init_pid && r.init_start == run.init_start)
}

/// Checks the run of the container with runtime id `id` until it ends; its
/// name is looked up on each round, as `rename` may change it.
async fn run_checks(engine: &Arc<Engine>, id: &str, run: RunRecord, check: &Healthcheck) {
    let interval = check.interval.map(|d| d.0).unwrap_or(DEFAULT_INTERVAL);
    let timeout = check.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT);
    let start_period = check.start_period.map(|d| d.0).unwrap_or_default();
    let retries = check.retries.unwrap_or(DEFAULT_RETRIES);
    loop {
        tokio::time::sleep(interval).await;
        let name = &engine.ids.name_of(id);
        let key = ObjectKey::new(Kind::Container, name.as_str());
        if !same_run(engine, name, &run) {
            return;
        }
        if engine.host.containers.is_frozen(name) {
            // A paused container is not checked (as Docker).
            continue;
        }
        let started = now_millis();
        let (exit_code, output) = probe_once(engine, name, &check.exec, timeout).await;
        let in_start_period = (started - run.started_at) < start_period.as_millis() as i64;
        let (before, after, saved) = {
            let mut m = lock(&engine.health);
            let Some(state) = m.states.get_mut(id).filter(|s| s.init_pid == run.init_pid) else {
                return;
            };
            let before = state.status;
            let (status, streak) = next(
                state.status,
                state.failing_streak,
                exit_code == 0,
                in_start_period,
                retries,
            );
            state.status = status;
            state.failing_streak = streak;
            state.log.push_back(HealthLog {
                start: started,
                end: now_millis(),
                exit_code,
                output,
            });
            while state.log.len() > LOG_LENGTH {
                state.log.pop_front();
            }
            (before, status, state.clone())
        };
        save(engine, name, &saved);
        engine.changed();
        if before == after {
            continue;
        }
        engine.event(
            &key,
            if after == HealthStatus::Healthy {
                "Healthy"
            } else {
                "Unhealthy"
            },
            &format!("health check: {before:?} -> {after:?}").to_lowercase(),
        );
        // Its names are published only while it is healthy.
        super::drivers::refresh_names(engine).await;
        // Dependants waiting for `condition: healthy` go on at once.
        engine.wake();
        if after == HealthStatus::Unhealthy {
            match check.on_unhealthy.unwrap_or_default() {
                OnUnhealthy::None => {}
                OnUnhealthy::Stop => {
                    engine.event(&key, "Stopping", "unhealthy (onUnhealthy: stop)");
                    engine.stop_by_name(name).await;
                    return;
                }
                OnUnhealthy::Restart => {
                    engine.event(&key, "Restarting", "unhealthy (onUnhealthy: restart)");
                    if let Err(e) = super::drivers::restart_unhealthy(engine, name).await {
                        engine.event(&key, "Failed", &format!("restart after unhealthy: {e}"));
                    }
                    return;
                }
            }
        }
    }
}

/// Runs the check once; its exit code (-1 when it could not run or timed
/// out) and the start of its output.
async fn probe_once(engine: &Engine, name: &str, exec: &[String], timeout: Duration) -> (i32, String) {
    let spec = ExecSpec {
        args: exec.to_vec(),
        ..Default::default()
    };
    let mut p = match engine.exec(name, spec, true, false) {
        Ok(p) => p,
        Err(e) => return (-1, e.to_string()),
    };
    let pid = match p.next_report().await {
        Some(ExecReport::Started { pid }) => pid,
        Some(ExecReport::Failed { error, .. }) => return (-1, error),
        _ => return (-1, "the exec shim ended without a report".into()),
    };
    let mut out = p.stdout.take();
    let mut err = p.stderr.take();
    let run = async {
        let mut buf = Vec::new();
        let (a, b) = tokio::join!(drain(&mut out), drain(&mut err));
        buf.extend(a);
        buf.extend(b);
        buf.truncate(OUTPUT_LIMIT);
        let code = loop {
            match p.next_report().await {
                Some(ExecReport::Exited { code }) => break code,
                Some(_) => continue,
                None => break -1,
            }
        };
        (code, String::from_utf8_lossy(&buf).into_owned())
    };
    let result = tokio::time::timeout(timeout, run).await;
    let result = match result {
        Ok(r) => r,
        Err(_) => {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            (
                -1,
                format!("health check timed out after {}", crate::manifest::Duration(timeout)),
            )
        }
    };
    // The exec shim reaps the (killed) process, then exits; the zygote reaps it.
    result
}

/// Reads a stream to its end, keeping the first [`OUTPUT_LIMIT`] bytes.
async fn drain<R: AsyncRead + Unpin>(stream: &mut Option<R>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(s) = stream else { return kept };
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::*;

    #[test]
    fn a_pass_is_healthy_and_retries_failures_in_a_row_are_unhealthy() {
        assert_eq!(next(Starting, 0, true, false, 3), (Healthy, 0));
        assert_eq!(next(Healthy, 0, false, false, 3), (Healthy, 1));
        assert_eq!(next(Healthy, 1, false, false, 3), (Healthy, 2));
        assert_eq!(next(Healthy, 2, false, false, 3), (Unhealthy, 3));
        assert_eq!(next(Unhealthy, 3, true, false, 3), (Healthy, 0));
        assert_eq!(next(Starting, 0, false, false, 1), (Unhealthy, 1));
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_while_starting() {
        assert_eq!(next(Starting, 0, false, true, 1), (Starting, 0));
        // Once it passed, a failure counts even within the period.
        assert_eq!(next(Healthy, 0, false, true, 1), (Unhealthy, 1));
    }
}
