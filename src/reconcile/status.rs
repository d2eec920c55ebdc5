//! What `get`, `describe` and `--wait` show: desired and live state of each
//! object, joined with what the kernel says right now.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::health::HealthStatus;
use super::records::{ContainerInfo, Desired, Hold, Live, LiveInfo};
use super::{policy, Blocked, Engine, Result};
use crate::manifest::{Kind, RestartPolicy, Spec};
use crate::plan::{self, ObjectKey};
use crate::runtime::{ExitRecord, Probe};
use crate::wire::{Description, ExitInfo, ObjectView, StatusKind};

fn exit_info(e: &ExitRecord) -> ExitInfo {
    ExitInfo {
        code: e.code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        finished_at: e.finished_at,
    }
}

impl Engine {
    /// Views of all objects, optionally of one kind and/or name, in kind
    /// order (images first) then by name.
    pub fn views(self: &Arc<Self>, kind: Option<Kind>, name: Option<&str>) -> Result<Vec<ObjectView>> {
        let source_errors: BTreeMap<String, String> = self.source_errors()?.into_iter().collect();
        let desired: BTreeMap<ObjectKey, Desired> = self.desired_all()?.into_iter().map(|d| (d.key(), d)).collect();
        let objects: Vec<_> = desired.values().map(|d| d.object.clone()).collect();
        let hashes = plan::spec_hashes(&objects);
        let live: BTreeMap<ObjectKey, Live> = self.live_all()?.into_iter().map(|l| (l.key.clone(), l)).collect();
        let mut keys: Vec<&ObjectKey> = desired.keys().chain(live.keys()).collect();
        keys.sort_by_key(|k| (Kind::ALL.iter().position(|x| *x == k.kind), k.name.clone()));
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            if kind.is_some_and(|want| want != key.kind) || name.is_some_and(|want| want != key.name) {
                continue;
            }
            let d = desired.get(key);
            let rec = live.get(key);
            let up_to_date = rec.is_some_and(|r| Some(&r.spec_hash) == hashes.get(key));
            let mut view = ObjectView {
                kind: key.kind.as_str().into(),
                name: key.name.clone(),
                source: d.map(|d| d.source.clone()),
                status: String::new(),
                state: StatusKind::Progressing,
                restarts: 0,
                created_at: rec.map(|r| r.created_at),
                started_at: None,
                pid: None,
                image: None,
                exit: None,
                spec: d.map(|d| &d.object.spec).or(rec.map(|r| &r.spec)).cloned(),
                origin: d.map(|d| format!("{}:{}", d.object.origin.file, d.object.origin.line)),
                up_to_date,
                detail: None,
                health: None,
                labels: d.map(|d| d.object.metadata.labels.clone()).unwrap_or_default(),
            };
            let pending = self.pending_reason(key);
            match (d, rec) {
                (None, Some(_)) => set(&mut view, "Deleting", StatusKind::Progressing),
                (Some(_), None) => set_blocked(&mut view, pending, "not created yet"),
                (None, None) => continue,
                (Some(d), Some(rec)) => match (&d.object.spec, &rec.info) {
                    (Spec::Container(spec), LiveInfo::Container(info)) => {
                        view.image = Some(spec.image.clone());
                        view.restarts = info.restarts;
                        match self.watched_run(rec) {
                            Some(run) if info.failure.is_none() => {
                                view.pid = Some(run.init_pid);
                                view.started_at = Some(run.started_at);
                                set(&mut view, running_status(info), StatusKind::Ready);
                            }
                            _ => {
                                let policy =
                                    policy::in_force(spec.restart_policy, spec.restart_max_retries, info.failed_runs);
                                self.container_status(&mut view, info, policy, pending)
                            }
                        }
                        self.health_status(&mut view);
                    }
                    (Spec::Image(_), LiveInfo::Image(info)) => {
                        view.detail = Some(info.digest.clone());
                        set(&mut view, "Ready", StatusKind::Ready);
                    }
                    _ => set(&mut view, "Ready", StatusKind::Ready),
                },
            }
            if !up_to_date && view.state == StatusKind::Ready && d.is_some() && rec.is_some() {
                view.status.push_str(" (update pending)");
                view.state = StatusKind::Progressing;
            }
            if let Some(why) = d.and_then(|d| d.held.as_ref()) {
                view.status.push_str(" (kept: its source dropped it)");
                view.detail = Some(format!("kept although its source no longer defines it: {why}"));
            }
            if view.source.as_ref().is_some_and(|s| source_errors.contains_key(s)) {
                // Kept in its last good state; `describe` shows the error.
                view.status.push_str(" (manifest invalid)");
            }
            out.push(view);
        }
        if kind.is_none_or(|k| k == Kind::Volume) {
            out.extend(self.anonymous_volume_views(name));
        }
        Ok(out)
    }

    /// What container `name` took from its image, for inspect: its labels
    /// (the image's under the manifest's) and the image's exposed ports, as
    /// of its last start, and its anonymous volumes.
    pub fn container_image_facts(
        &self,
        name: &str,
    ) -> (
        BTreeMap<String, String>,
        Vec<String>,
        Vec<crate::reconcile::seams::AnonymousVolumeInfo>,
    ) {
        let info = self
            .live(Kind::Container, name)
            .ok()
            .flatten()
            .and_then(|l| l.container_info().cloned())
            .unwrap_or_default();
        let anonymous = self
            .host
            .volumes
            .anonymous()
            .into_iter()
            .filter(|a| a.container == name)
            .collect();
        (info.labels, info.exposed_ports, anonymous)
    }

    /// The ports container `name`'s last start published (ephemeral host
    /// ports chosen).
    pub fn container_published_ports(&self, name: &str) -> Vec<crate::manifest::PortMapping> {
        self.live(Kind::Container, name)
            .ok()
            .flatten()
            .and_then(|l| l.container_info().map(|i| i.published.clone()))
            .unwrap_or_default()
    }

    /// Anonymous volumes (made for an image's `Volumes`), which no source
    /// defines: their container's lifetime is theirs.
    fn anonymous_volume_views(&self, name: Option<&str>) -> Vec<ObjectView> {
        self.host
            .volumes
            .anonymous()
            .into_iter()
            .filter(|a| name.is_none_or(|n| n == a.id))
            .map(|a| ObjectView {
                kind: Kind::Volume.as_str().into(),
                name: a.id,
                source: None,
                status: "Ready".into(),
                state: StatusKind::Ready,
                restarts: 0,
                created_at: None,
                started_at: None,
                pid: None,
                image: None,
                exit: None,
                spec: None,
                origin: None,
                up_to_date: true,
                detail: Some(format!(
                    "anonymous: {} of container/{}, removed with it",
                    a.path, a.container
                )),
                health: None,
                labels: Default::default(),
            })
            .collect()
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
        match self.host.containers.probe(&view.name) {
            Probe::Running(run) => {
                view.pid = Some(run.init_pid);
                view.started_at = Some(run.started_at);
                set(view, running_status(info), StatusKind::Ready);
            }
            Probe::Starting => set(view, "Starting", StatusKind::Progressing),
            Probe::Exited(exit) if info.hold == Some(Hold::Stopped) => stopped_status(view, &exit),
            Probe::Exited(exit) => exited_status(view, &exit, policy),
            Probe::Lost { .. } => set(view, "Restarting (shim lost)", StatusKind::Progressing),
            Probe::Absent => match &info.last_exit {
                Some(exit) if info.hold == Some(Hold::Stopped) => stopped_status(view, exit),
                Some(exit) => exited_status(view, exit, policy),
                None if info.hold == Some(Hold::Stopped) => set(view, "Created", StatusKind::Ready),
                None => set_blocked(view, pending, "not started yet"),
            },
        }
    }

    /// A running container with a healthcheck: `Running (healthy)`, ready
    /// only once healthy (so `--wait` waits for it), failed when unhealthy.
    fn health_status(&self, view: &mut ObjectView) {
        let Some(state) = view.pid.and_then(|pid| self.health(&view.name, pid)) else {
            return;
        };
        if view.status == "Running" {
            let kind = match state.status {
                HealthStatus::Starting => StatusKind::Progressing,
                HealthStatus::Healthy => StatusKind::Ready,
                HealthStatus::Unhealthy => StatusKind::Failed,
            };
            set(view, &format!("Running ({})", state.status.as_str()), kind);
        }
        view.health = Some(super::health::view(&state));
    }

    /// `describe`: the view, recent events and the source's error; `None`
    /// when no such object exists.
    pub fn describe(self: &Arc<Self>, key: &ObjectKey) -> Result<Option<Description>> {
        let Some(view) = self.views(Some(key.kind), Some(&key.name))?.into_iter().next() else {
            return Ok(None);
        };
        let events = self.events(0, Some(key), 20)?;
        let source_error = match &view.source {
            Some(src) => self
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

/// `Paused` while paused by hand (the override shows until `unpause`).
fn running_status(info: &ContainerInfo) -> &'static str {
    match info.hold {
        Some(Hold::Paused) => "Paused",
        _ => "Running",
    }
}

/// Stopped by hand: the restart policy waits for `start`.
fn stopped_status(view: &mut ObjectView, exit: &ExitRecord) {
    set(
        view,
        &format!("Stopped (exited {}; start to run it again)", exit.code),
        StatusKind::Ready,
    );
    view.exit = Some(exit_info(exit));
}

fn exited_status(view: &mut ObjectView, exit: &ExitRecord, restart: RestartPolicy) {
    let oom = if exit.oom_killed { ", OOMKilled" } else { "" };
    if policy::wants_restart(restart, exit.code) {
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
    view.exit = Some(exit_info(exit));
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
