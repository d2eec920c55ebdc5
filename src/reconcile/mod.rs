//! The reconciler: observes the kernel and the run dir, plans against the
//! desired state in the store, and carries the plan out through the runtime,
//! image and volume drivers. Level-triggered: a pass never depends on what
//! triggered it, and memory is never taken as truth.

pub mod status;
mod translate;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use petgraph::graph::NodeIndex;
use petgraph::Direction;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinSet;

use crate::image::ImageStore;
use crate::manifest::{DependencyCondition, Kind, Object, RestartPolicy, Spec};
use crate::plan::{self, Action, ObjectKey, Observed, ObservedObject, Plan, RunState, Verb};
use crate::runtime::{self, ExitRecord, Probe, RunRecord, Runtime};
use crate::store::{LiveRecord, Store, StoreError};

pub use status::{ObjectView, StatusKind};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored object no longer parses (written by an incompatible berth).
    #[error("stored {kind}/{name} is unreadable: {source}")]
    Corrupt {
        kind: String,
        name: String,
        source: serde_json::Error,
    },
}

pub type Result<T> = std::result::Result<T, ReconcileError>;

/// What berth records about a container it made, beside its spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub restarts: u32,
    /// Doubles the restart delay; reset when a run lasted long enough.
    pub backoff_step: u32,
    pub last_exit: Option<ExitRecord>,
    pub next_restart_at: Option<i64>,
    /// Why the last create/start failed.
    pub failure: Option<String>,
    pub started_at: Option<i64>,
    pub run: Option<RunRecord>,
    /// Read-only image layer the container runs on (kept from GC while it lives).
    pub layer: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub digest: String,
    pub dir: PathBuf,
}

/// Whether observing may act on what it finds: record exits, adopt shims,
/// and kill what a dead shim left. `diff` only looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observe {
    AndRecord,
    Only,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PassReport {
    /// One line per action that succeeded.
    pub done: Vec<String>,
    /// One line per action that failed or was skipped, with the reason.
    pub failed: Vec<String>,
}

const BACKOFF_BASE_MS: i64 = 100;
const BACKOFF_MAX_MS: i64 = 30_000;
/// A run this long resets the backoff, as Docker does.
const BACKOFF_RESET_MS: i64 = 10_000;
const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Periodic safety net between event-driven passes.
const RESYNC: Duration = Duration::from_secs(10);

pub struct Engine {
    pub store: Store,
    pub runtime: Runtime,
    pub images: Arc<ImageStore>,
    volumes_dir: PathBuf,
    wake: Notify,
    exits: broadcast::Sender<String>,
    generation: watch::Sender<u64>,
    locks: Mutex<HashMap<ObjectKey, Arc<tokio::sync::Mutex<()>>>>,
    pass_lock: tokio::sync::Mutex<()>,
    /// Why a desired object is not (yet) what it should be; messages only.
    pending: Mutex<HashMap<ObjectKey, Blocked>>,
    /// Shim pids with a watcher task.
    watched: Mutex<HashSet<i32>>,
    /// Containers a client is attached to (`run` in the foreground), which
    /// handles their exit and removal itself.
    attached: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("layout", &self.runtime.layout)
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

impl From<String> for Blocked {
    fn from(message: String) -> Self {
        Blocked::Failed(message)
    }
}

impl From<&str> for Blocked {
    fn from(message: &str) -> Self {
        Blocked::Failed(message.to_string())
    }
}

/// Label of containers made by `run --rm`: removed once they exit for good.
pub const AUTOREMOVE_LABEL: &str = "berth.io/autoremove";

/// Whether `policy` restarts a container that exited with `code`.
pub(crate) fn wants_restart(policy: RestartPolicy, code: i32) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => code != 0,
        RestartPolicy::Never => false,
    }
}

fn now_millis() -> i64 {
    runtime::now_millis()
}

fn key_strs(key: &ObjectKey) -> (&'static str, &str) {
    (key.kind.as_str(), key.name.as_str())
}

impl Engine {
    pub fn new(store: Store, runtime: Runtime, images: ImageStore) -> Arc<Engine> {
        let images = Arc::new(images);
        let volumes_dir = runtime.layout.root.join("volumes");
        let (exits, _) = broadcast::channel(256);
        let (generation, _) = watch::channel(0);
        Arc::new(Engine {
            store,
            runtime,
            images,
            volumes_dir,
            wake: Notify::new(),
            exits,
            generation,
            locks: Mutex::new(HashMap::new()),
            pass_lock: tokio::sync::Mutex::new(()),
            pending: Mutex::new(HashMap::new()),
            watched: Mutex::new(HashSet::new()),
            attached: Mutex::new(HashSet::new()),
        })
    }

    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.volumes_dir.join(name).join("_data")
    }

    fn lock_for(&self, key: &ObjectKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key.clone()).or_default().clone()
    }

    fn is_busy(&self, key: &ObjectKey) -> bool {
        self.lock_for(key).try_lock().is_err()
    }

    /// Asks the control loop for a pass soon.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Bumps on every pass and container exit; status waiters watch it.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    pub fn exits(&self) -> broadcast::Receiver<String> {
        self.exits.subscribe()
    }

    fn changed(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    fn set_pending(&self, key: &ObjectKey, reason: Option<Blocked>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match reason {
            Some(r) => pending.insert(key.clone(), r),
            None => pending.remove(key),
        };
    }

    pub fn pending_reason(&self, key: &ObjectKey) -> Option<Blocked> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn event(&self, key: &ObjectKey, reason: &str, message: &str) {
        let (kind, name) = key_strs(key);
        if let Err(e) = self.store.event(kind, name, reason, message) {
            tracing::warn!("cannot record event for {key}: {e}");
        }
        tracing::info!(object = %key, reason, "{message}");
    }

    /// Desired objects from the store.
    pub fn desired(&self) -> Result<Vec<Object>> {
        self.store
            .desired()?
            .into_iter()
            .map(|o| {
                serde_json::from_str(&o.body).map_err(|source| ReconcileError::Corrupt {
                    kind: o.kind,
                    name: o.name,
                    source,
                })
            })
            .collect()
    }

    /// Live restore: adopt running containers (watch their shims), and clear
    /// run dirs nothing in the store accounts for. Call once before serving.
    pub async fn restore(self: &Arc<Self>) -> Result<()> {
        let live = self.store.live_all()?;
        let known: HashSet<&str> = live
            .iter()
            .filter(|r| r.kind == "Container")
            .map(|r| r.name.as_str())
            .collect();
        for rec in live.iter().filter(|r| r.kind == "Container") {
            if let Probe::Running(run) = self.runtime.probe(&rec.name) {
                tracing::info!(container = %rec.name, pid = run.init_pid, "adopted running container");
                self.watch_shim(rec.name.clone(), run);
            }
        }
        for id in self.runtime.list_run_dirs() {
            if !known.contains(id.as_str()) {
                tracing::info!(container = %id, "removing leftovers of an unknown container");
                let rt = self.runtime.clone();
                let _ = tokio::task::spawn_blocking(move || rt.remove(&id)).await;
            }
        }
        Ok(())
    }

    /// The control loop: a pass on every wake-up, at due restarts, and periodically.
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

    /// Time until the earliest restart that was not yet due when the last
    /// pass began (zero if it has come due since). Restarts that were due then
    /// were started, or wait on something that wakes the loop itself.
    fn next_due(&self, pass_started: i64) -> Option<Duration> {
        let now = now_millis();
        self.store
            .live_all()
            .ok()?
            .iter()
            .filter(|r| r.kind == "Container")
            .filter_map(|r| serde_json::from_str::<ContainerInfo>(&r.info).ok()?.next_restart_at)
            .filter(|at| *at > pass_started)
            .map(|at| Duration::from_millis((at - now).max(0) as u64))
            .min()
    }

    pub fn attach(&self, name: &str) {
        self.attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
    }

    pub fn detach(&self, name: &str) {
        self.attached.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
    }

    /// Containers labelled for autoremove that exited for good, with nobody
    /// attached: their objects are deleted, so this pass removes them.
    fn autoremove(&self, desired: &[Object], observed: &Observed) -> Result<bool> {
        let attached = self.attached.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let done: Vec<(String, String)> = desired
            .iter()
            .filter(|o| o.metadata.labels.get(AUTOREMOVE_LABEL).is_some_and(|v| v == "true"))
            .filter(|o| !attached.contains(o.name()))
            .filter(|o| {
                let key = ObjectKey::new(o.kind(), o.name());
                matches!(
                    observed.objects.get(&key).map(|x| &x.state),
                    Some(RunState::Exited { restart_due: false, .. })
                )
            })
            .map(|o| (o.kind().as_str().to_string(), o.name().to_string()))
            .collect();
        for (kind, name) in &done {
            self.event(
                &ObjectKey::new(Kind::Container, name.clone()),
                "AutoRemove",
                &format!("{kind}/{name} exited; removing it (--rm)"),
            );
        }
        Ok(!done.is_empty() && !self.store.delete_objects(&done)?.is_empty())
    }

    /// One level-triggered pass: observe, plan, execute.
    pub async fn reconcile(self: &Arc<Self>) -> Result<PassReport> {
        let _pass = self.pass_lock.lock().await;
        let mut desired = self.desired()?;
        let mut observed = self.observe(&desired, Observe::AndRecord)?;
        if self.autoremove(&desired, &observed)? {
            desired = self.desired()?;
            observed = self.observe(&desired, Observe::AndRecord)?;
        }
        let plan = plan::plan(&desired, &observed);
        let planned: HashSet<ObjectKey> = plan.graph.node_weights().map(|a| a.key.clone()).collect();
        for o in &desired {
            // Converged objects have nothing pending any more.
            let key = ObjectKey::new(o.kind(), o.name());
            if !planned.contains(&key) {
                self.set_pending(&key, None);
            }
        }
        let report = self.execute(plan).await;
        self.collect_layers();
        self.changed();
        Ok(report)
    }

    /// The plan a pass would run now, for `diff` (with `desired` overriding the store).
    pub fn plan_for(self: &Arc<Self>, desired: &[Object]) -> Result<Plan> {
        let observed = self.observe(desired, Observe::Only)?;
        Ok(plan::plan(desired, &observed))
    }

    fn policy_of(desired: &[Object], name: &str) -> RestartPolicy {
        desired
            .iter()
            .find_map(|o| match &o.spec {
                Spec::Container(c) if o.name() == name => Some(c.restart_policy),
                _ => None,
            })
            .unwrap_or(RestartPolicy::Never)
    }

    fn observe(self: &Arc<Self>, desired: &[Object], mode: Observe) -> Result<Observed> {
        let mut observed = Observed::default();
        let hashes = plan::spec_hashes(desired);
        for rec in self.store.live_all()? {
            let Some(kind) = Kind::parse_loose(&rec.kind) else {
                continue;
            };
            let key = ObjectKey::new(kind, rec.name.clone());
            let spec: Option<Spec> = serde_json::from_str(&rec.spec).ok();
            let state = if self.is_busy(&key) {
                // Someone (run, stop, an action) is working on it right now.
                Some(RunState::Running)
            } else {
                match kind {
                    Kind::Image => serde_json::from_str::<ImageInfo>(&rec.info)
                        .ok()
                        .filter(|i| i.dir.is_dir())
                        .map(|_| RunState::Present),
                    Kind::Volume => self.volume_dir(&rec.name).is_dir().then_some(RunState::Present),
                    Kind::Network => Some(RunState::Present),
                    Kind::Container => Some(self.observe_container(&rec, Self::policy_of(desired, &rec.name), mode)),
                }
            };
            if let Some(state) = state {
                observed.objects.insert(
                    key,
                    ObservedObject {
                        spec_hash: rec.spec_hash.clone(),
                        spec,
                        state,
                    },
                );
            }
        }
        // A desired object being made right now is not planned again.
        for o in desired {
            let key = ObjectKey::new(o.kind(), o.name());
            if !observed.objects.contains_key(&key) && self.is_busy(&key) {
                let spec_hash = hashes.get(&key).cloned().unwrap_or_default();
                observed.objects.insert(
                    key,
                    ObservedObject {
                        spec_hash,
                        spec: Some(o.spec.clone()),
                        state: RunState::Running,
                    },
                );
            }
        }
        Ok(observed)
    }

    fn observe_container(self: &Arc<Self>, rec: &LiveRecord, policy: RestartPolicy, mode: Observe) -> RunState {
        let mut info: ContainerInfo = serde_json::from_str(&rec.info).unwrap_or_default();
        let key = ObjectKey::new(Kind::Container, rec.name.clone());
        let exit = match self.runtime.probe(&rec.name) {
            Probe::Running(run) => {
                // A shim started by a daemon that died before it answered is
                // adopted here; watching it twice is harmless (see watch_shim).
                if mode == Observe::AndRecord {
                    self.watch_shim(rec.name.clone(), run);
                }
                return RunState::Running;
            }
            Probe::Starting => return RunState::Running,
            Probe::Exited(exit) => exit,
            Probe::Lost { .. } if mode == Observe::Only => {
                // What a pass would find: an exit to handle by the policy.
                return RunState::Exited {
                    code: 255,
                    restart_due: wants_restart(policy, 255),
                };
            }
            Probe::Lost { init_alive, .. } => {
                // The shim died: its container cannot be supervised any more.
                if init_alive {
                    self.runtime.kill_all(&rec.name);
                }
                let _ = self.runtime.cleanup(&rec.name);
                self.event(&key, "ShimLost", "the container's shim died; its process was killed");
                ExitRecord {
                    code: 255,
                    signal: None,
                    oom_killed: false,
                    finished_at: now_millis(),
                }
            }
            Probe::Absent => match (&info.failure, &info.last_exit) {
                (Some(_), _) => ExitRecord {
                    code: 128,
                    signal: None,
                    oom_killed: false,
                    finished_at: 0,
                },
                (None, Some(last)) => last.clone(),
                // Recorded but never started (the daemon died in between).
                (None, None) => ExitRecord {
                    code: 255,
                    signal: None,
                    oom_killed: false,
                    finished_at: now_millis(),
                },
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
            self.record_exit(&rec.name, &mut info, &exit, policy);
        }
        let due = wants_restart(policy, exit.code) && info.next_restart_at.is_none_or(|at| now_millis() >= at);
        RunState::Exited {
            code: exit.code,
            restart_due: due,
        }
    }

    fn record_exit(&self, name: &str, info: &mut ContainerInfo, exit: &ExitRecord, policy: RestartPolicy) {
        let key = ObjectKey::new(Kind::Container, name);
        let ran_for = info.started_at.map(|s| exit.finished_at - s).unwrap_or(0);
        if ran_for >= BACKOFF_RESET_MS {
            info.backoff_step = 0;
        }
        let delay = (BACKOFF_BASE_MS << info.backoff_step.min(16)).min(BACKOFF_MAX_MS);
        let restarting = wants_restart(policy, exit.code);
        info.next_restart_at = restarting.then(|| now_millis() + delay);
        info.last_exit = Some(exit.clone());
        info.run = None;
        let mut msg = format!("exited with code {}", exit.code);
        if exit.oom_killed {
            msg.push_str(" (OOMKilled)");
        }
        if restarting {
            msg.push_str(&format!("; restarting in {delay} ms"));
        }
        self.event(&key, if exit.oom_killed { "OOMKilled" } else { "Exited" }, &msg);
        if let Ok(text) = serde_json::to_string(info) {
            let _ = self.store.live_set_info("Container", name, &text);
        }
    }

    /// Runs a plan: independent actions concurrently, each after all it
    /// depends on; a failure skips its dependants.
    async fn execute(self: &Arc<Self>, plan: Plan) -> PassReport {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            Waiting,
            Running,
            Done,
            Failed,
        }
        let mut report = PassReport::default();
        let order = plan.order();
        let mut state: BTreeMap<NodeIndex, State> = order.iter().map(|n| (*n, State::Waiting)).collect();
        let mut tasks = JoinSet::new();
        loop {
            for &n in &order {
                if state[&n] != State::Waiting {
                    continue;
                }
                let preds: Vec<NodeIndex> = plan.graph.neighbors_directed(n, Direction::Incoming).collect();
                if let Some(failed) = preds.iter().find(|p| state[p] == State::Failed) {
                    let action = &plan.graph[n];
                    let why = format!("waiting for {}", plan.graph[*failed].key);
                    report.failed.push(format!("{} {}: {why}", action.verb, action.key));
                    self.set_pending(&action.key, Some(Blocked::Waiting(why)));
                    state.insert(n, State::Failed);
                } else if preds.iter().all(|p| state[p] == State::Done) {
                    state.insert(n, State::Running);
                    let engine = self.clone();
                    let action = plan.graph[n].clone();
                    tasks.spawn(async move { (n, engine.run_action(&action).await) });
                }
            }
            let Some(joined) = tasks.join_next().await else { break };
            let Ok((n, result)) = joined else { continue };
            let action = &plan.graph[n];
            match result {
                Ok(()) => {
                    report
                        .done
                        .push(format!("{} {}: {}", action.verb, action.key, action.reason));
                    state.insert(n, State::Done);
                }
                Err(e) => {
                    report.failed.push(format!("{} {}: {e}", action.verb, action.key));
                    self.set_pending(&action.key, Some(e));
                    state.insert(n, State::Failed);
                }
            }
        }
        report
    }

    async fn run_action(self: &Arc<Self>, action: &Action) -> std::result::Result<(), Blocked> {
        let key = &action.key;
        let hash = action.spec_hash.clone().unwrap_or_default();
        match (action.verb, key.kind, &action.object) {
            (Verb::Create | Verb::Replace, Kind::Image, Some(obj)) => Ok(self.import_image(obj, &hash).await?),
            (Verb::Create | Verb::Replace, Kind::Volume, Some(obj)) => Ok(self.create_volume(obj, &hash)?),
            (Verb::Create | Verb::Replace, Kind::Network, _) => Err("networks are not supported yet".into()),
            (Verb::Start, Kind::Container, Some(obj)) => {
                let lock = self.lock_for(key);
                let _held = lock.lock().await;
                self.start_container(obj, &hash).await
            }
            (Verb::Replace, Kind::Container, Some(obj)) => {
                let lock = self.lock_for(key);
                let _held = lock.lock().await;
                self.remove_container(&key.name).await?;
                self.start_container(obj, &hash).await
            }
            (Verb::Stop, Kind::Container, _) => {
                let lock = self.lock_for(key);
                let _held = lock.lock().await;
                self.stop_container(&key.name, DEFAULT_GRACE).await;
                Ok(())
            }
            (Verb::Delete, Kind::Container, _) => {
                let lock = self.lock_for(key);
                let _held = lock.lock().await;
                self.remove_container(&key.name).await?;
                self.store
                    .live_delete("Container", &key.name)
                    .map_err(|e| e.to_string())?;
                self.event(key, "Deleted", &action.reason);
                Ok(())
            }
            (Verb::Delete, Kind::Volume, _) => {
                let dir = self.volumes_dir.join(&key.name);
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("cannot remove {}: {e}", dir.display()).into()),
                }
                self.store.live_delete("Volume", &key.name).map_err(|e| e.to_string())?;
                self.event(key, "Deleted", &action.reason);
                Ok(())
            }
            (Verb::Delete, kind, _) => {
                // Image layers are collected once no image or container uses them.
                self.store
                    .live_delete(kind.as_str(), &key.name)
                    .map_err(|e| e.to_string())?;
                self.event(key, "Deleted", &action.reason);
                Ok(())
            }
            (verb, kind, None) => Err(format!("cannot {verb} a {kind} without its spec").into()),
            (verb, kind, Some(_)) => Err(format!("{verb} is not defined for {kind}").into()),
        }
    }

    async fn import_image(&self, obj: &Object, hash: &str) -> std::result::Result<(), String> {
        let Spec::Image(spec) = &obj.spec else {
            return Err("not an image".into());
        };
        let Some(path) = spec.import.clone() else {
            return Err("only images with spec.import are supported yet".into());
        };
        let images = self.images.clone();
        let digest = spec.digest.clone();
        let layer = tokio::task::spawn_blocking(move || images.import(std::path::Path::new(&path), digest.as_deref()))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let info = ImageInfo {
            digest: layer.digest.clone(),
            dir: layer.dir.clone(),
        };
        self.put_live(obj, hash, &info)?;
        let key = ObjectKey::new(Kind::Image, obj.name());
        self.event(
            &key,
            "Imported",
            &format!("{} unpacked to {}", layer.digest, layer.dir.display()),
        );
        Ok(())
    }

    fn create_volume(&self, obj: &Object, hash: &str) -> std::result::Result<(), String> {
        let dir = self.volume_dir(obj.name());
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        self.put_live(obj, hash, &serde_json::json!({"path": dir}))?;
        self.event(
            &ObjectKey::new(Kind::Volume, obj.name()),
            "Created",
            &dir.display().to_string(),
        );
        Ok(())
    }

    fn put_live(&self, obj: &Object, hash: &str, info: &impl Serialize) -> std::result::Result<(), String> {
        let rec = LiveRecord {
            kind: obj.kind().as_str().into(),
            name: obj.name().into(),
            spec_hash: hash.into(),
            spec: serde_json::to_string(&obj.spec).map_err(|e| e.to_string())?,
            info: serde_json::to_string(info).map_err(|e| e.to_string())?,
            created_at: now_millis(),
        };
        self.store.live_put(&rec).map_err(|e| e.to_string())
    }

    /// Checks that every `dependsOn` condition holds now.
    fn dependencies_met(&self, obj: &Object) -> std::result::Result<(), Blocked> {
        let Spec::Container(spec) = &obj.spec else {
            return Ok(());
        };
        for dep in &spec.depends_on {
            let probe = self.runtime.probe(&dep.name);
            let met = match dep.condition {
                DependencyCondition::Started => matches!(probe, Probe::Running(_) | Probe::Exited(_)),
                DependencyCondition::Completed => matches!(probe, Probe::Exited(ref e) if e.code == 0),
                DependencyCondition::Healthy => false,
            };
            if !met {
                let cond = match dep.condition {
                    DependencyCondition::Started => "started",
                    DependencyCondition::Completed => "completed",
                    DependencyCondition::Healthy => "healthy",
                };
                return Err(Blocked::Waiting(format!(
                    "waiting for container/{} to be {cond}",
                    dep.name
                )));
            }
        }
        Ok(())
    }

    /// Creates and starts a container (or restarts it from its existing
    /// writable layer when the live record has the same spec hash).
    async fn start_container(self: &Arc<Self>, obj: &Object, hash: &str) -> std::result::Result<(), Blocked> {
        let Spec::Container(spec) = &obj.spec else {
            return Err("not a container".into());
        };
        let name = obj.name();
        let key = ObjectKey::new(Kind::Container, name);
        self.dependencies_met(obj)?;
        let image = self
            .store
            .live_get("Image", &spec.image)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("image/{} is not imported", spec.image))?;
        let image_info: ImageInfo = serde_json::from_str(&image.info).map_err(|e| e.to_string())?;
        let image_spec = match serde_json::from_str::<Spec>(&image.spec) {
            Ok(Spec::Image(s)) => s,
            _ => Default::default(),
        };
        let cfg = translate::container_config(name, spec, &image_spec, &image_info.dir, &|v| self.volume_dir(v))?;

        let previous = self.store.live_get("Container", name).map_err(|e| e.to_string())?;
        let mut info = match &previous {
            Some(rec) if rec.spec_hash == hash => {
                let mut info: ContainerInfo = serde_json::from_str(&rec.info).unwrap_or_default();
                info.restarts += 1;
                info.backoff_step += 1;
                info
            }
            _ => ContainerInfo::default(),
        };
        info.failure = None;
        info.next_restart_at = None;
        info.started_at = Some(now_millis());
        info.layer = Some(image_info.dir.clone());
        self.put_live(obj, hash, &info)?;
        tracing::debug!(container = name, "start: shim spawning");
        match self.runtime.start(&cfg).await {
            Ok(started) => {
                tracing::debug!(container = name, "start: container running");
                info.run = Some(started.record);
                self.put_live(obj, hash, &info)?;
                self.event(&key, "Started", &format!("pid {}", started.record.init_pid));
                self.watch_shim(name.to_string(), started.record);
                self.changed();
                Ok(())
            }
            Err(e) => {
                let message = match e {
                    runtime::RuntimeError::Setup { message, .. } => message,
                    other => other.to_string(),
                };
                let delay = (BACKOFF_BASE_MS << info.backoff_step.min(16)).min(BACKOFF_MAX_MS);
                info.failure = Some(message.clone());
                info.next_restart_at = Some(now_millis() + delay);
                self.put_live(obj, hash, &info)?;
                self.event(&key, "Failed", &message);
                self.changed();
                Err(Blocked::Failed(message))
            }
        }
    }

    /// Watches a shim until it exits, then records the exit and wakes the loop.
    fn watch_shim(self: &Arc<Self>, name: String, run: RunRecord) {
        if !self
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run.shim_pid)
        {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            if let Ok(fd) = runtime::pidfd_open(run.shim_pid) {
                // Checked after opening the pidfd: the pid cannot be reused now.
                if runtime::proc::alive_with_start(run.shim_pid, run.shim_start) {
                    let _ = runtime::wait_pidfd(fd).await;
                }
            }
            runtime::reap_shim(run.shim_pid);
            engine
                .watched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run.shim_pid);
            engine.on_shim_exit(&name);
        });
    }

    fn on_shim_exit(&self, name: &str) {
        if let Probe::Exited(exit) = self.runtime.probe(name) {
            if let Ok(Some(rec)) = self.store.live_get("Container", name) {
                let mut info: ContainerInfo = serde_json::from_str(&rec.info).unwrap_or_default();
                if info.last_exit.as_ref().map(|e| e.finished_at) != Some(exit.finished_at) {
                    let policy = match serde_json::from_str::<Spec>(&rec.spec) {
                        Ok(Spec::Container(c)) => c.restart_policy,
                        _ => RestartPolicy::Never,
                    };
                    self.record_exit(name, &mut info, &exit, policy);
                }
            }
        }
        let _ = self.exits.send(name.to_string());
        self.changed();
        self.wake();
    }

    /// Waits until the container is no longer running, up to `timeout`.
    pub async fn wait_stopped(&self, name: &str, exits: &mut broadcast::Receiver<String>, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !matches!(self.runtime.probe(name), Probe::Running(_) | Probe::Starting) {
                return true;
            }
            tokio::select! {
                _ = exits.recv() => {}
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// SIGTERM, then SIGKILL after the grace period.
    pub async fn stop_container(&self, name: &str, grace: Duration) {
        let mut exits = self.exits();
        if !matches!(self.runtime.probe(name), Probe::Running(_) | Probe::Starting) {
            return;
        }
        let _ = self.runtime.signal(name, nix::sys::signal::Signal::SIGTERM);
        if self.wait_stopped(name, &mut exits, grace).await {
            return;
        }
        let _ = self.runtime.signal(name, nix::sys::signal::Signal::SIGKILL);
        self.runtime.kill_all(name);
        if !self.wait_stopped(name, &mut exits, Duration::from_secs(5)).await {
            tracing::warn!(container = name, "still running 5 s after SIGKILL");
        }
    }

    fn grace_of(&self, name: &str) -> Duration {
        match self
            .store
            .live_get("Container", name)
            .ok()
            .flatten()
            .map(|r| serde_json::from_str::<Spec>(&r.spec))
        {
            Some(Ok(Spec::Container(c))) => c.stop_grace_period.map(|d| d.0).unwrap_or(DEFAULT_GRACE),
            _ => DEFAULT_GRACE,
        }
    }

    /// Stops and removes everything of a container but its live record.
    async fn remove_container(&self, name: &str) -> std::result::Result<(), String> {
        self.stop_container(name, self.grace_of(name)).await;
        let rt = self.runtime.clone();
        let id = name.to_string();
        tokio::task::spawn_blocking(move || rt.remove(&id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Stops a container by hand, keeping it (`berth stop`): it will not be
    /// restarted until the next apply changes it.
    pub async fn stop_by_name(&self, name: &str) {
        let key = ObjectKey::new(Kind::Container, name);
        let lock = self.lock_for(&key);
        let _held = lock.lock().await;
        self.stop_container(name, self.grace_of(name)).await;
    }

    /// Removes image layers no live image or container refers to.
    fn collect_layers(&self) {
        let Ok(live) = self.store.live_all() else { return };
        let mut used: HashSet<PathBuf> = HashSet::new();
        for rec in &live {
            match rec.kind.as_str() {
                "Image" => {
                    if let Ok(i) = serde_json::from_str::<ImageInfo>(&rec.info) {
                        used.insert(i.dir);
                    }
                }
                "Container" => {
                    if let Some(layer) = serde_json::from_str::<ContainerInfo>(&rec.info)
                        .ok()
                        .and_then(|i| i.layer)
                    {
                        used.insert(layer);
                    }
                }
                _ => {}
            }
        }
        let Ok(layers) = self.images.list() else { return };
        for layer in layers {
            if !used.contains(&layer.dir) {
                if let Err(e) = self.images.remove(&layer.digest) {
                    tracing::warn!("cannot remove unused layer {}: {e}", layer.digest);
                }
            }
        }
    }

    /// Imperative create-and-start of one container object (`berth run`),
    /// without waiting for a pass.
    pub async fn run_now(self: &Arc<Self>, obj: &Object) -> std::result::Result<(), String> {
        let hashes = plan::spec_hashes(std::slice::from_ref(obj));
        // The container's hash must match what a pass computes with the full set.
        let desired = self.desired().map_err(|e| e.to_string())?;
        let full = plan::spec_hashes(&desired);
        let key = ObjectKey::new(Kind::Container, obj.name());
        let hash = full.get(&key).or_else(|| hashes.get(&key)).cloned().unwrap_or_default();
        let lock = self.lock_for(&key);
        let _held = lock.lock().await;
        self.start_container(obj, &hash).await.map_err(|e| e.to_string())
    }

    /// Stops and forgets a container at once (`run --rm`, `delete` by name).
    pub async fn remove_now(&self, name: &str) -> std::result::Result<(), String> {
        let key = ObjectKey::new(Kind::Container, name);
        let lock = self.lock_for(&key);
        let _held = lock.lock().await;
        self.remove_container(name).await?;
        self.store.live_delete("Container", name).map_err(|e| e.to_string())?;
        self.set_pending(&key, None);
        Ok(())
    }
}
