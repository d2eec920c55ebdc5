//! Runs a plan: independent actions concurrently, each once all it depends
//! on are done; a failure skips its dependants. A failed action backs off as
//! restarts do: until its delay has passed, later passes skip it (and its
//! dependants) instead of retrying a costly import on every pass.

use std::collections::BTreeMap;
use std::sync::Arc;

use petgraph::graph::NodeIndex;
use petgraph::Direction;
use tokio::task::JoinSet;

use super::drivers::driver;
use super::error::DriverError;
use super::{lock, now_millis, policy, Blocked, Engine};
use crate::plan::{Action, ObjectKey, Plan, Verb};

/// How one action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Done,
    /// It waits on another object (not a failure).
    Waiting,
    Failed,
}

/// The last action on an object: in which pass, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub pass: u64,
    pub kind: OutcomeKind,
    /// `verb kind/name: reason or error`.
    pub line: String,
}

/// What one pass did, per object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub outcomes: BTreeMap<ObjectKey, Outcome>,
}

impl PassReport {
    pub fn lines(&self, kind: OutcomeKind) -> Vec<String> {
        self.outcomes
            .values()
            .filter(|o| o.kind == kind)
            .map(|o| o.line.clone())
            .collect()
    }
}

/// A failed action's backoff: skipped until `retry_at` while its spec is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub spec_hash: Option<String>,
    pub verb: Verb,
    pub step: u32,
    pub retry_at: i64,
    pub message: String,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running,
    Done,
    Failed,
}

impl Engine {
    /// Whether `action` failed before and waits out its backoff now.
    fn backing_off(&self, action: &Action, now: i64) -> Option<DriverError> {
        let retries = lock(&self.retries);
        let r = retries.get(&action.key)?;
        (r.verb == action.verb && r.spec_hash == action.spec_hash && now < r.retry_at).then(|| {
            DriverError::BackingOff {
                message: r.message.clone(),
                retry_in_ms: r.retry_at - now,
            }
        })
    }

    fn note_result(&self, action: &Action, result: &Result<(), DriverError>) {
        let mut retries = lock(&self.retries);
        match result {
            // Containers back off through their own record (restart policy).
            Err(e) if !e.is_waiting() && action.key.kind != crate::manifest::Kind::Container => {
                let same = retries
                    .get(&action.key)
                    .filter(|r| r.verb == action.verb && r.spec_hash == action.spec_hash);
                let step = same.map(|r| r.step + 1).unwrap_or(0);
                retries.insert(
                    action.key.clone(),
                    Retry {
                        spec_hash: action.spec_hash.clone(),
                        verb: action.verb,
                        step,
                        retry_at: now_millis() + policy::backoff_delay_ms(step),
                        message: e.status_message(),
                    },
                );
            }
            // Waiting is not a failure; containers keep their own backoff.
            Err(_) => {}
            Ok(()) => {
                retries.remove(&action.key);
            }
        }
    }

    /// The earliest time a failed action may be retried.
    pub(super) fn next_retry(&self) -> Option<i64> {
        lock(&self.retries).values().map(|r| r.retry_at).min()
    }

    pub(super) async fn execute(self: &Arc<Self>, plan: Plan, pass: u64) -> PassReport {
        self.execute_keeping_errors(plan, pass).await.0
    }

    /// [`Engine::execute`], also returning each failed action's error (a
    /// command that acts at once reports it as the driver said it).
    pub(super) async fn execute_keeping_errors(
        self: &Arc<Self>,
        plan: Plan,
        pass: u64,
    ) -> (PassReport, BTreeMap<ObjectKey, DriverError>) {
        let mut report = PassReport::default();
        let mut errors = BTreeMap::new();
        let order = plan.order();
        let mut state: BTreeMap<NodeIndex, State> = order.iter().map(|n| (*n, State::Waiting)).collect();
        let mut tasks = JoinSet::new();
        let now = now_millis();
        let record = |report: &mut PassReport, action: &Action, kind: OutcomeKind, detail: &str| {
            report.outcomes.insert(
                action.key.clone(),
                Outcome {
                    pass,
                    kind,
                    line: match action.verb {
                        Verb::Update => format!("update {} (in place): {detail}", action.key),
                        verb => format!("{verb} {}: {detail}", action.key),
                    },
                },
            );
        };
        loop {
            for &n in &order {
                if state[&n] != State::Waiting {
                    continue;
                }
                let action = &plan.graph[n];
                let preds: Vec<NodeIndex> = plan.graph.neighbors_directed(n, Direction::Incoming).collect();
                if let Some(failed) = preds.iter().find(|p| state[p] == State::Failed) {
                    let why = format!("waiting for {}", plan.graph[*failed].key);
                    record(&mut report, action, OutcomeKind::Waiting, &why);
                    self.set_pending(&action.key, Some(Blocked::Waiting(why)));
                    state.insert(n, State::Failed);
                } else if let Some(e) = self.backing_off(action, now) {
                    record(&mut report, action, OutcomeKind::Failed, &e.to_string());
                    self.set_pending(&action.key, Some(Blocked::Failed(e.to_string())));
                    errors.insert(action.key.clone(), e);
                    state.insert(n, State::Failed);
                } else if preds.iter().all(|p| state[p] == State::Done) {
                    state.insert(n, State::Running);
                    let engine = self.clone();
                    let action = action.clone();
                    tasks.spawn(async move {
                        let result = engine.run_action(&action).await;
                        (n, result)
                    });
                }
            }
            let Some(joined) = tasks.join_next().await else { break };
            let (n, result) = match joined {
                Ok(r) => r,
                Err(e) => {
                    // A panicking action: its node stays Running and its
                    // dependants are not started; the next pass plans it again.
                    tracing::error!("an action panicked: {e}");
                    continue;
                }
            };
            let action = &plan.graph[n];
            self.note_result(action, &result);
            match result {
                Ok(()) => {
                    record(&mut report, action, OutcomeKind::Done, &action.reason);
                    state.insert(n, State::Done);
                }
                Err(e) => {
                    let (kind, blocked) = if e.is_waiting() {
                        (OutcomeKind::Waiting, Blocked::Waiting(e.status_message()))
                    } else {
                        (OutcomeKind::Failed, Blocked::Failed(e.status_message()))
                    };
                    record(&mut report, action, kind, &e.status_message());
                    self.set_pending(&action.key, Some(blocked));
                    errors.insert(action.key.clone(), e);
                    state.insert(n, State::Failed);
                }
            }
        }
        (report, errors)
    }

    async fn run_action(self: &Arc<Self>, action: &Action) -> Result<(), DriverError> {
        let key = &action.key;
        let hash = action.spec_hash.clone().unwrap_or_default();
        let Some(d) = driver(key.kind) else {
            return Err(DriverError::Unsupported(format!(
                "{}s are not supported yet",
                key.kind.as_str().to_ascii_lowercase()
            )));
        };
        let object = || {
            action
                .object
                .as_ref()
                .ok_or_else(|| DriverError::Invalid(format!("cannot {} {key} without its spec", action.verb)))
        };
        match action.verb {
            Verb::Create => d.create(self, object()?, &hash, action.launch).await,
            Verb::Start => d.start(self, object()?, &hash, action.launch).await,
            Verb::Replace => d.replace(self, object()?, &hash, action.launch).await,
            Verb::Update => d.update(self, object()?, &hash).await,
            Verb::Stop => d.stop(self, &key.name).await,
            Verb::Delete => {
                d.delete(self, &key.name).await?;
                self.event(key, "Deleted", &action.reason);
                Ok(())
            }
        }
    }
}
