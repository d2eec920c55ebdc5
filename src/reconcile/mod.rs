//! The reconciler: observes the kernel and the run dir, plans against the
//! desired state in the store, and carries the plan out through one driver
//! per kind. Level-triggered: a pass never depends on what triggered it, and
//! memory is never taken as truth.
//!
//! - `control.rs`: the loop and one pass; `observe.rs`: what is really there;
//!   `executor.rs`: the action DAG; `drivers/`: one per kind;
//! - `policy.rs`: restart and backoff decisions (pure);
//! - `records.rs`: the only place that decodes store rows;
//! - `seams.rs`: the traits to the host, `linux.rs` the real ones, `fake.rs`
//!   (tests) a recording fake;
//! - `state.rs`: typed desired-state operations the engine commands use;
//! - `status.rs`: what `get`, `describe` and `--wait` show.

pub mod conformance;
mod control;
mod docker_facts;
mod drivers;
pub mod error;
mod executor;
#[cfg(test)]
pub(crate) mod fake;
pub mod health;
pub mod ids;
pub mod linux;
mod observe;
pub mod policy;
pub mod records;
pub mod seams;
pub mod state;
mod status;
#[cfg(test)]
mod tests;
mod translate;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch, Notify};

use crate::plan::ObjectKey;
use crate::store::Store;

pub use control::{StopOptions, FOREVER};
pub use docker_facts::{Address, ContainerFacts, NetworkFacts, VolumeFacts};
pub use error::{DriverError, ReconcileError, Result, VerbError};
pub use executor::{Outcome, OutcomeKind, PassReport};
pub use seams::Host;

/// Label of containers made by `run --rm`: removed once they exit for good.
pub const AUTOREMOVE_LABEL: &str = "berth.io/autoremove";

/// The engine: desired state, the host behind its seams, and what the
/// control loop keeps between passes (messages and backoffs only; every
/// decision is made again from the store and the kernel).
pub struct Engine {
    store: Store,
    host: Host,
    root: PathBuf,
    wake: Notify,
    exits: broadcast::Sender<String>,
    generation: watch::Sender<u64>,
    locks: Mutex<HashMap<ObjectKey, Arc<tokio::sync::Mutex<()>>>>,
    pass_lock: tokio::sync::Mutex<()>,
    pass_seq: AtomicU64,
    /// Keys a command is making at once (`run`, `create`; see
    /// `Engine::reconcile_keys`): passes take them as busy meanwhile.
    claimed: Mutex<HashSet<ObjectKey>>,
    /// Why a desired object is not (yet) what it should be; messages only.
    pending: Mutex<HashMap<ObjectKey, Blocked>>,
    /// The last action on each object, and in which pass: what a command reports.
    outcomes: Mutex<HashMap<ObjectKey, Outcome>>,
    /// Failed actions waiting out their backoff before the next attempt.
    retries: Mutex<HashMap<ObjectKey, executor::Retry>>,
    /// Shim pids with a watcher task.
    watched: Mutex<HashSet<i32>>,
    /// Containers a client is attached to (`run` in the foreground), which
    /// handles their exit and removal itself.
    attached: Mutex<HashSet<String>>,
    /// Health-check states and the runs with a monitor.
    health: Mutex<health::Monitors>,
    /// Runtime ids of renamed containers (see `ids.rs`).
    ids: ids::Ids,
    /// One NAT sync at a time: each rebuilds the table from the store, so a
    /// slower, older one must not land after a newer one.
    nat_sync: tokio::sync::Mutex<()>,
    /// Networks are made one at a time: a subnet chosen from the pool is
    /// taken only once its network is recorded, so two made at once would
    /// pick the same.
    network_create: tokio::sync::Mutex<()>,
    /// What the containers' /etc/hosts files were last written from.
    hosts_written: drivers::HostsWritten,
    /// Builds Image objects with `build` (set by the daemon: building runs
    /// containers through the commands above this layer).
    builder: std::sync::OnceLock<Arc<dyn seams::ImageBuilder>>,
    /// Rolls a whole revision back when a start-first rollout fails with
    /// `onFailure: rollback` (set by the daemon: revisions are kept by the
    /// command layer above this one).
    revision_rollback: std::sync::OnceLock<Arc<dyn seams::RevisionRollback>>,
    /// What each build context looked like at the last pass, by directory,
    /// so that checking it for changes reads only files whose stat moved.
    contexts: Mutex<HashMap<PathBuf, ContextSeen>>,
    /// Builds of Image objects, by name: one at a time each, in the
    /// background (a build runs containers, which passes make).
    builds: Mutex<HashMap<String, drivers::BuildJob>>,
    /// Ephemeral host ports chosen by starts that have not recorded them.
    ports: crate::network::ports::Reservations,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Why an action did not complete; shown as the object's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// It waits on another object and proceeds on a later pass (`Pending`).
    Waiting(String),
    /// It failed; a later pass retries it (`Failed`).
    Failed(String),
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::Waiting(m) | Blocked::Failed(m) => f.write_str(m),
        }
    }
}

/// A build context as the last pass saw it.
#[derive(Default)]
struct ContextSeen {
    cache: crate::build::context::StatCache,
    /// Paths that changed at the last look that found a change.
    changed: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here only inserts or removes map entries, so a
    // panic elsewhere cannot leave the data half-changed.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_millis() -> i64 {
    crate::runtime::now_millis()
}

impl Engine {
    /// An engine over `store` and `host`; `root` is reported by `version`.
    pub fn new(store: Store, host: Host, root: PathBuf) -> Arc<Engine> {
        let (exits, _) = broadcast::channel(256);
        let (generation, _) = watch::channel(0);
        let ids = ids::Ids::load(store.container_ids().unwrap_or_else(|e| {
            tracing::error!("cannot read container ids: {e}");
            Vec::new()
        }));
        let host = ids::wrap(host, &ids);
        Arc::new(Engine {
            store,
            host,
            ids,
            root,
            wake: Notify::new(),
            exits,
            generation,
            locks: Mutex::new(HashMap::new()),
            pass_lock: tokio::sync::Mutex::new(()),
            pass_seq: AtomicU64::new(0),
            claimed: Mutex::new(HashSet::new()),
            pending: Mutex::new(HashMap::new()),
            outcomes: Mutex::new(HashMap::new()),
            retries: Mutex::new(HashMap::new()),
            watched: Mutex::new(HashSet::new()),
            attached: Mutex::new(HashSet::new()),
            health: Mutex::new(health::Monitors::default()),
            nat_sync: tokio::sync::Mutex::new(()),
            network_create: tokio::sync::Mutex::new(()),
            hosts_written: drivers::HostsWritten::default(),
            builder: std::sync::OnceLock::new(),
            revision_rollback: std::sync::OnceLock::new(),
            contexts: Mutex::new(HashMap::new()),
            builds: Mutex::new(HashMap::new()),
            ports: Default::default(),
        })
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Sets what builds Image objects with `build` (once, at start).
    pub fn set_image_builder(&self, builder: Arc<dyn seams::ImageBuilder>) {
        let _ = self.builder.set(builder);
    }

    /// Sets what rolls a revision back after a failed rollout (once, at start).
    pub fn set_revision_rollback(&self, rollback: Arc<dyn seams::RevisionRollback>) {
        let _ = self.revision_rollback.set(rollback);
    }

    fn lock_for(&self, key: &ObjectKey) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.locks).entry(key.clone()).or_default().clone()
    }

    fn is_busy(&self, key: &ObjectKey) -> bool {
        lock(&self.claimed).contains(key) || self.lock_for(key).try_lock().is_err()
    }

    /// Asks the control loop for a pass soon.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Bumps on every pass and container exit; status waiters watch it.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Names of containers as their shims exit.
    pub fn exits(&self) -> broadcast::Receiver<String> {
        self.exits.subscribe()
    }

    fn changed(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// The number of the last pass that started; passes after it see every
    /// store write made from now on.
    pub fn pass_mark(&self) -> u64 {
        self.pass_seq.load(Ordering::SeqCst)
    }

    fn set_pending(&self, key: &ObjectKey, reason: Option<Blocked>) {
        let mut pending = lock(&self.pending);
        match reason {
            Some(r) => pending.insert(key.clone(), r),
            None => pending.remove(key),
        };
    }

    fn pending_reason(&self, key: &ObjectKey) -> Option<Blocked> {
        lock(&self.pending).get(key).cloned()
    }

    /// The run of a container whose shim a watcher holds a pidfd for and has
    /// not seen exit: it is running, without reading `/proc` (what probing
    /// 200 containers on every pass would cost). Its exit wakes the loop.
    fn watched_run(&self, live: &records::Live) -> Option<crate::runtime::RunRecord> {
        let run = live.container_info()?.run?;
        lock(&self.watched).contains(&run.shim_pid).then_some(run)
    }

    pub fn event(&self, key: &ObjectKey, reason: &str, message: &str) {
        if let Err(e) = self.store.event(key.kind, &key.name, reason, message) {
            tracing::warn!("cannot record event for {key}: {e}");
        }
        tracing::info!(object = %key, reason, "{message}");
    }

    /// Marks a container as attached to a client (`run` in the foreground),
    /// which then handles its exit and removal.
    pub fn attach(&self, name: &str) {
        lock(&self.attached).insert(name.to_string());
    }

    pub fn detach(&self, name: &str) {
        lock(&self.attached).remove(name);
    }

    /// Whether a client handles this container's exit (see [`Engine::attach`]).
    pub fn is_attached(&self, name: &str) -> bool {
        lock(&self.attached).contains(name)
    }
}
