//! What `get`, `describe` and `--wait` show: desired and live state of each
//! object, joined with what the kernel says right now.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Blocked, ContainerInfo, Engine, ImageInfo, Result};
use crate::manifest::{Kind, RestartPolicy, Spec};
use crate::plan::{self, ObjectKey};
use crate::runtime::{ExitRecord, Probe};
use crate::store::Event;

/// Whether an object is where it should be, for `apply --wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum StatusKind {
    /// Running, Completed, or present (images, volumes).
    Ready,
    /// On its way: pending, restarting, being replaced.
    Progressing,
    /// Failed, or exited for good with an error.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObjectView {
    pub kind: String,
    pub name: String,
    /// The source that defines it (a watched file, an apply set, `run`); none if only live.
    pub source: Option<String>,
    /// `Running`, `Exited(1)`, `Completed`, `Restarting`, `Pending: …`, `Failed: …`, `Ready`, `Deleting`.
    pub status: String,
    pub state: StatusKind,
    pub restarts: u32,
    /// When the live object was made (unix ms).
    pub created_at: Option<i64>,
    pub pid: Option<i32>,
    pub image: Option<String>,
    pub exit: Option<ExitRecord>,
    /// The desired spec, or the live one when it is being deleted.
    pub spec: Option<serde_json::Value>,
    /// Where it was defined: file:line.
    pub origin: Option<String>,
    /// Whether the live object was made from the current desired spec.
    pub up_to_date: bool,
    pub detail: Option<String>,
}

/// `describe`: the view plus recent events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Description {
    pub view: ObjectView,
    pub events: Vec<Event>,
    pub source_error: Option<String>,
}

impl Engine {
    /// Views of all objects, optionally of one kind and/or name.
    pub fn views(self: &Arc<Self>, kind: Option<Kind>, name: Option<&str>) -> Result<Vec<ObjectView>> {
        let stored = self.store.desired()?;
        let source_errors: BTreeMap<String, String> = self.store.source_errors()?.into_iter().collect();
        let desired = self.desired()?;
        let hashes = plan::spec_hashes(&desired);
        let live: BTreeMap<(String, String), _> = self
            .store
            .live_all()?
            .into_iter()
            .map(|r| ((r.kind.clone(), r.name.clone()), r))
            .collect();
        let mut keys: Vec<(String, String)> = stored.iter().map(|o| (o.kind.clone(), o.name.clone())).collect();
        keys.extend(live.keys().cloned());
        keys.sort_by(|a, b| kind_rank(&a.0).cmp(&kind_rank(&b.0)).then(a.1.cmp(&b.1)));
        keys.dedup();
        let mut out = Vec::new();
        for (k, n) in keys {
            let Some(kind_v) = Kind::parse_loose(&k) else { continue };
            if kind.is_some_and(|want| want != kind_v) || name.is_some_and(|want| want != n) {
                continue;
            }
            let key = ObjectKey::new(kind_v, n.clone());
            let object = desired.iter().find(|o| o.kind() == kind_v && o.name() == n);
            let source = stored
                .iter()
                .find(|o| o.kind == k && o.name == n)
                .map(|o| o.source.clone());
            let rec = live.get(&(k.clone(), n.clone()));
            let desired_hash = hashes.get(&key);
            let up_to_date = rec.is_some_and(|r| Some(&r.spec_hash) == desired_hash);
            let mut view = ObjectView {
                kind: k.clone(),
                name: n.clone(),
                source,
                status: String::new(),
                state: StatusKind::Progressing,
                restarts: 0,
                created_at: rec.map(|r| r.created_at),
                pid: None,
                image: None,
                exit: None,
                spec: object
                    .map(|o| serde_json::to_value(&o.spec).unwrap_or_default())
                    .or_else(|| rec.and_then(|r| serde_json::from_str(&r.spec).ok())),
                origin: object.map(|o| format!("{}:{}", o.origin.file, o.origin.line)),
                up_to_date,
                detail: None,
            };
            let pending = self.pending_reason(&key);
            match (object, rec) {
                (None, Some(_)) => set(&mut view, "Deleting", StatusKind::Progressing),
                (Some(_), None) => set_blocked(&mut view, pending, "not created yet"),
                (None, None) => continue,
                (Some(obj), Some(rec)) => match &obj.spec {
                    Spec::Container(spec) => {
                        view.image = Some(spec.image.clone());
                        let info: ContainerInfo = serde_json::from_str(&rec.info).unwrap_or_default();
                        view.restarts = info.restarts;
                        self.container_status(&mut view, &info, spec.restart_policy, pending);
                    }
                    Spec::Image(_) => {
                        let info: Option<ImageInfo> = serde_json::from_str(&rec.info).ok();
                        view.detail = info.map(|i| i.digest);
                        set(&mut view, "Ready", StatusKind::Ready);
                    }
                    _ => set(&mut view, "Ready", StatusKind::Ready),
                },
            }
            if !up_to_date && view.state == StatusKind::Ready && object.is_some() && rec.is_some() {
                view.status.push_str(" (update pending)");
                view.state = StatusKind::Progressing;
            }
            if view.source.as_ref().is_some_and(|s| source_errors.contains_key(s)) {
                // Kept in its last good state; `describe` shows the error.
                view.status.push_str(" (manifest invalid)");
            }
            out.push(view);
        }
        Ok(out)
    }

    fn container_status(
        &self,
        view: &mut ObjectView,
        info: &ContainerInfo,
        policy: RestartPolicy,
        pending: Option<Blocked>,
    ) {
        if let Some(failure) = &info.failure {
            view.detail = Some(failure.clone());
            set(view, &format!("Failed: {failure}"), StatusKind::Failed);
            return;
        }
        match self.runtime.probe(&view.name) {
            Probe::Running(run) => {
                view.pid = Some(run.init_pid);
                set(view, "Running", StatusKind::Ready);
            }
            Probe::Starting => set(view, "Starting", StatusKind::Progressing),
            Probe::Exited(exit) => self.exited_status(view, exit, policy),
            Probe::Lost { .. } => set(view, "Restarting (shim lost)", StatusKind::Progressing),
            Probe::Absent => match &info.last_exit {
                Some(exit) => self.exited_status(view, exit.clone(), policy),
                None => set_blocked(view, pending, "not started yet"),
            },
        }
    }

    fn exited_status(&self, view: &mut ObjectView, exit: ExitRecord, policy: RestartPolicy) {
        let restarting = super::wants_restart(policy, exit.code);
        let oom = if exit.oom_killed { ", OOMKilled" } else { "" };
        if restarting {
            set(
                view,
                &format!("Restarting (exited {}{oom})", exit.code),
                StatusKind::Progressing,
            );
        } else if exit.code == 0 {
            set(view, "Completed", StatusKind::Ready);
        } else {
            set(view, &format!("Exited({}{oom})", exit.code), StatusKind::Failed);
        }
        view.exit = Some(exit);
    }

    pub fn describe(self: &Arc<Self>, kind: Kind, name: &str) -> Result<Option<Description>> {
        let Some(view) = self.views(Some(kind), Some(name))?.into_iter().next() else {
            return Ok(None);
        };
        let events = self.store.events(0, Some((kind.as_str(), name)), 20)?;
        let source_error = match &view.source {
            Some(src) => self
                .store
                .source_errors()?
                .into_iter()
                .find(|(s, _)| s == src)
                .map(|(_, e)| e),
            None => None,
        };
        Ok(Some(Description {
            view,
            events,
            source_error,
        }))
    }
}

/// `Pending: …` while it waits on something, `Failed: …` when its own action failed.
fn set_blocked(view: &mut ObjectView, blocked: Option<Blocked>, default: &str) {
    match blocked {
        Some(Blocked::Failed(why)) => set(view, &format!("Failed: {why}"), StatusKind::Failed),
        Some(Blocked::Waiting(why)) => set(view, &format!("Pending: {why}"), StatusKind::Progressing),
        None => set(view, &format!("Pending: {default}"), StatusKind::Progressing),
    }
}

fn set(view: &mut ObjectView, status: &str, state: StatusKind) {
    view.status = status.to_string();
    view.state = state;
}

fn kind_rank(kind: &str) -> usize {
    Kind::parse_loose(kind)
        .map(|k| Kind::ALL.iter().position(|x| *x == k).unwrap_or(9))
        .unwrap_or(9)
}
