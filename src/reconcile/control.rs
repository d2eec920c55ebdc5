//! The control loop and one pass: observe, plan, execute. A pass runs on
//! every wake-up, when a restart or retry comes due, and periodically.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::drivers;
use super::executor::{Outcome, PassReport};
use super::observe::Observe;
use super::records::{Desired, LiveInfo};
use super::{lock, now_millis, Engine, Result, AUTOREMOVE_LABEL};
use crate::manifest::{Kind, Object};
use crate::plan::{self, Launch, ObjectKey, Observed, Plan, RunState};

/// Periodic safety net between event-driven passes.
const RESYNC: Duration = Duration::from_secs(10);
/// How many passes the outcome of an action on a deleted object is kept.
const OUTCOME_PASSES: u64 = 64;

/// How one stop differs from the container's own: Docker's `stop -t` and
/// `stop --signal` are per call, not per container.
#[derive(Debug, Clone, Copy, Default)]
pub struct StopOptions {
    /// How long to wait before SIGKILL; `None` is the container's grace period.
    pub grace: Option<std::time::Duration>,
    /// The first signal; `None` is the container's stop signal.
    pub signal: Option<nix::sys::signal::Signal>,
}

/// A grace period that never ends (Docker's `-t -1`): a century, which
/// tokio's timer takes (it caps far deadlines) and no stop outlives.
pub const FOREVER: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

impl Engine {
    /// The control loop: a pass on every wake-up, at due restarts and
    /// retries, and periodically.
    pub async fn run_loop(self: Arc<Self>) {
        loop {
            let pass_started = now_millis();
            if let Err(e) = self.reconcile().await {
                tracing::error!("reconcile pass failed: {e}");
            }
            let delay = self.next_due(pass_started).unwrap_or(RESYNC).min(RESYNC);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Time until the earliest restart or retry that was not yet due when
    /// the last pass began (zero if it has come due since). Those that were
    /// due then were acted on, or wait on something that wakes the loop.
    fn next_due(&self, pass_started: i64) -> Option<Duration> {
        let now = now_millis();
        let restarts: Vec<i64> = match self.live_all() {
            Ok(live) => live
                .iter()
                .filter_map(|l| match &l.info {
                    LiveInfo::Container(i) => i.next_restart_at,
                    _ => None,
                })
                .collect(),
            Err(e) => {
                tracing::error!("{e}");
                Vec::new()
            }
        };
        restarts
            .into_iter()
            .chain(self.next_retry())
            .filter(|at| *at > pass_started)
            .map(|at| Duration::from_millis((at - now).max(0) as u64))
            .min()
    }

    /// Containers labelled for autoremove that exited for good, with nobody
    /// attached: their objects are deleted, so this pass removes them.
    fn autoremove(&self, desired: &[Desired], observed: &Observed) -> Result<bool> {
        let attached = lock(&self.attached).clone();
        let done: Vec<ObjectKey> = desired
            .iter()
            .map(|d| &d.object)
            .filter(|o| o.metadata.labels.get(AUTOREMOVE_LABEL).is_some_and(|v| v == "true"))
            .filter(|o| !attached.contains(o.name()))
            .map(|o| ObjectKey::new(o.kind(), o.name()))
            .filter(|key| {
                matches!(
                    observed.objects.get(key).map(|x| &x.state),
                    Some(RunState::Exited { restart_due: false, .. })
                )
            })
            .collect();
        for key in &done {
            self.event(key, "AutoRemove", &format!("{key} exited; removing it (--rm)"));
        }
        Ok(!done.is_empty() && !self.delete_desired(&done)?.is_empty())
    }

    /// One level-triggered pass: observe, plan, execute. Returns what it did
    /// to each object it acted on.
    pub async fn reconcile(self: &Arc<Self>) -> Result<PassReport> {
        let _pass = self.pass_lock.lock().await;
        let pass = self.pass_seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut desired = self.desired_all()?;
        let mut observed = self.observe(&desired, Observe::AndRecord)?;
        let released = self.release_held(&desired)?;
        if self.autoremove(&desired, &observed)? || released {
            desired = self.desired_all()?;
            observed = self.observe(&desired, Observe::AndRecord)?;
        }
        let objects: Vec<Object> = desired.into_iter().map(|d| d.object).collect();
        let plan = plan::plan(&objects, &observed);
        let planned: HashSet<ObjectKey> = plan.graph.node_weights().map(|a| a.key.clone()).collect();
        let wanted: HashSet<ObjectKey> = objects.iter().map(|o| ObjectKey::new(o.kind(), o.name())).collect();
        for key in &wanted {
            // Converged objects have nothing pending any more.
            if !planned.contains(key) {
                self.set_pending(key, None);
            }
        }
        lock(&self.retries).retain(|k, _| wanted.contains(k) || planned.contains(k));
        let report = self.execute(plan, pass).await;
        self.forget_gone(&wanted, pass);
        lock(&self.outcomes).extend(report.outcomes.iter().map(|(k, o)| (k.clone(), o.clone())));
        self.changed();
        Ok(report)
    }

    /// Drops what memory holds about objects that are gone, so a daemon that
    /// runs a million `run --rm` containers does not grow: their locks (when
    /// nobody holds them), pending reasons, and outcomes older than
    /// [`OUTCOME_PASSES`] passes (a command reads its own right after its pass).
    fn forget_gone(&self, wanted: &HashSet<ObjectKey>, pass: u64) {
        lock(&self.locks).retain(|k, l| wanted.contains(k) || Arc::strong_count(l) > 1);
        lock(&self.pending).retain(|k, _| wanted.contains(k));
        lock(&self.outcomes).retain(|k, o| wanted.contains(k) || o.pass + OUTCOME_PASSES > pass);
    }

    /// The outcomes of actions on `keys` in passes after `mark` (see
    /// [`Engine::pass_mark`]): what one command caused, and nothing else.
    pub fn outcomes_since(&self, mark: u64, keys: &[ObjectKey]) -> Vec<Outcome> {
        let outcomes = lock(&self.outcomes);
        keys.iter()
            .filter_map(|k| outcomes.get(k))
            .filter(|o| o.pass > mark)
            .cloned()
            .collect()
    }

    /// The plan a pass would make for `desired` now, without acting (dry run).
    pub fn plan_for(self: &Arc<Self>, desired: &[Object]) -> Result<Plan> {
        let mut desired = desired.to_vec();
        for o in &mut desired {
            self.fill_context_digest(o);
        }
        let rows: Vec<Desired> = desired
            .iter()
            .map(|o| Desired {
                object: o.clone(),
                source: String::new(),
                held: None,
            })
            .collect();
        let observed = self.observe(&rows, Observe::Only)?;
        Ok(plan::plan(&desired, &observed))
    }

    /// Live restore: adopt running containers and clear what nothing in the
    /// store accounts for. Call once before serving.
    pub async fn restore(self: &Arc<Self>) -> Result<()> {
        drivers::restore(self).await
    }

    /// Stores `objects` as `source`'s and makes them at once, with what they
    /// need that is missing, as a pass would but for just their keys
    /// (`berth run`, `berth create`); the containers among them are left as
    /// `launch` says. Returns the error of the action that failed: theirs,
    /// or that of one they waited on.
    pub async fn reconcile_keys(
        self: &Arc<Self>,
        source: &str,
        objects: &[Object],
        launch: Launch,
    ) -> std::result::Result<(), super::DriverError> {
        let keys: Vec<ObjectKey> = objects.iter().map(|o| ObjectKey::new(o.kind(), o.name())).collect();
        let (plan, pass, _claim) = {
            // No pass runs between the store write and the claim, so none
            // starts what `create` holds or what `run` waits to attach to.
            let _pass = self.pass_lock.lock().await;
            self.store_set(source, objects, false, &|_, _| None)?;
            let desired = self.desired_all()?;
            let observed = self.observe(&desired, Observe::AndRecord)?;
            let desired: Vec<Object> = desired.into_iter().map(|d| d.object).collect();
            let plan = plan::plan(&desired, &observed).for_keys(&keys, launch);
            let claim = Claim::new(self, plan.graph.node_weights().map(|a| a.key.clone()).collect());
            (plan, self.pass_seq.fetch_add(1, Ordering::SeqCst) + 1, claim)
        };
        if let Some(obj) = objects.first() {
            crate::runtime::profile::mark(obj.name(), "stored, planned");
        }
        // Concurrent runs proceed side by side, as passes wait on no run.
        let (report, mut errors) = self.execute_keeping_errors(plan, pass).await;
        lock(&self.outcomes).extend(report.outcomes);
        self.changed();
        if let Some(e) = keys.iter().find_map(|k| errors.remove(k)) {
            return Err(e);
        }
        errors.into_values().next().map_or(Ok(()), Err)
    }

    /// Stops and forgets one container at once (`run --rm`).
    pub async fn remove_now(self: &Arc<Self>, name: &str) -> std::result::Result<(), super::DriverError> {
        drivers::remove_now(self, name).await
    }

    /// Changes a running container's networks in place to those `obj`
    /// lists (`berth network connect|disconnect`); `obj` is stored as
    /// `source`'s.
    pub async fn set_networks(
        self: &Arc<Self>,
        source: &str,
        obj: &Object,
        force: bool,
    ) -> std::result::Result<(), super::DriverError> {
        drivers::set_networks(self, source, obj, force).await
    }

    /// Changes an imperative container's limits and restart policy in
    /// place to those `obj` has (`berth update`); `obj` is stored as
    /// `source`'s.
    pub async fn set_resources(
        self: &Arc<Self>,
        source: &str,
        obj: &Object,
    ) -> std::result::Result<(), super::DriverError> {
        drivers::set_resources(self, source, obj).await
    }

    /// Stops a container by hand, keeping it (`berth stop`).
    pub async fn stop_by_name(self: &Arc<Self>, name: &str) {
        drivers::stop_by_name(self, name).await
    }

    /// [`Engine::stop_by_name`] with Docker's per-call timeout and signal.
    pub async fn stop_by_name_with(self: &Arc<Self>, name: &str, opts: StopOptions) {
        drivers::stop_by_name_with(self, name, opts).await
    }

    /// Renames an imperative container (`berth rename`).
    pub async fn rename(self: &Arc<Self>, old: &str, new: &str) -> std::result::Result<(), super::VerbError> {
        drivers::rename(self, old, new).await
    }

    /// Starts a stopped container again, lifting a stop hold (`berth start`).
    pub async fn start_by_name(self: &Arc<Self>, name: &str) -> std::result::Result<(), super::VerbError> {
        drivers::start_by_name(self, name).await
    }

    /// [`Engine::start_by_name`] for a client that attaches next: the init
    /// waits for it, so none of its output is missed (Docker's `run`).
    pub async fn start_by_name_for_attach(self: &Arc<Self>, name: &str) -> std::result::Result<(), super::VerbError> {
        drivers::start_by_name_with(self, name, true).await
    }

    /// Signals a container's init (`berth kill`).
    pub async fn kill_by_name(
        self: &Arc<Self>,
        name: &str,
        signal: nix::sys::signal::Signal,
    ) -> std::result::Result<(), super::VerbError> {
        drivers::kill_by_name(self, name, signal).await
    }

    /// Freezes or thaws a container (`berth pause` / `unpause`).
    pub async fn freeze_by_name(
        self: &Arc<Self>,
        name: &str,
        frozen: bool,
    ) -> std::result::Result<(), super::VerbError> {
        drivers::freeze_by_name(self, name, frozen).await
    }

    /// Whether a container was ever made (has a live record).
    pub fn container_exists(&self, name: &str) -> Result<bool> {
        Ok(self.live(Kind::Container, name)?.is_some())
    }
}

/// Keys a command makes at once; passes treat them as busy until it drops.
struct Claim<'a> {
    engine: &'a Engine,
    keys: Vec<ObjectKey>,
}

impl<'a> Claim<'a> {
    fn new(engine: &'a Engine, keys: Vec<ObjectKey>) -> Claim<'a> {
        lock(&engine.claimed).extend(keys.iter().cloned());
        Claim { engine, keys }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut claimed = lock(&self.engine.claimed);
        for k in &self.keys {
            claimed.remove(k);
        }
    }
}
