//! Docker's small container commands: `wait`, `diff`, `container prune`
//! and `network prune`, with Docker's answers (its API serves the same).

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{docker_inspect, CommandError, Result};
use crate::manifest::Kind;
use crate::reconcile::Engine;
use crate::wire::{DeleteRequest, DEFAULT_NETWORK};

/// How often `wait` looks again when no exit or change woke it (an exit
/// the broadcast missed because it lagged).
const WAIT_POLL: Duration = Duration::from_millis(500);

/// `POST /v1/docker/wait/{name}`: Docker's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct WaitExit {
    pub status_code: i32,
}

/// One change of `diff`: `Kind` 0 changed, 1 added, 2 deleted (Docker's).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Change {
    pub path: String,
    pub kind: u8,
}

pub const CHANGED: u8 = 0;
pub const ADDED: u8 = 1;
pub const DELETED: u8 = 2;

/// What a prune removed, and what it could not.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PruneReport {
    pub deleted: Vec<String>,
    /// Removals that failed, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// Waits until the container is not running (returns at once if it is
/// stopped already, as Docker's default `not-running` condition) and
/// answers its exit code. A container created but never started is waited on.
pub async fn wait(engine: &Arc<Engine>, name: &str) -> Result<WaitExit> {
    super::check_name(Kind::Container, name)?;
    let mut exits = engine.exits();
    let mut changes = engine.changes();
    loop {
        changes.borrow_and_update();
        let doc = docker_inspect::container(engine, name)?
            .ok_or_else(|| CommandError::NotFound(format!("container/{name}")))?;
        if matches!(doc.state.status.as_str(), "exited" | "dead") {
            return Ok(WaitExit {
                status_code: doc.state.exit_code,
            });
        }
        tokio::select! {
            _ = exits.recv() => {}
            _ = changes.changed() => {}
            _ = tokio::time::sleep(WAIT_POLL) => {}
        }
    }
}

/// The container's filesystem changes against its image, from its overlay
/// upper dir: whiteouts are deletions, files the image has are changes, the
/// rest additions. What berth mounts (`/etc/hosts`, volumes, `/proc`…) is
/// left out, and a directory is listed only when something under it is, or
/// when it is new (and not only made to hold a mount point).
pub fn diff(engine: &Arc<Engine>, name: &str) -> Result<Vec<Change>> {
    super::check_name(Kind::Container, name)?;
    let facts = engine
        .container_facts(name)?
        .ok_or_else(|| CommandError::NotFound(format!("container/{name}")))?;
    let lowers = match &facts.image {
        Some(record) => engine
            .image_host()
            .lower_dirs(record)
            .map_err(|e| CommandError::Unavailable(format!("container/{name}: its image's layers: {e}")))?,
        None => Vec::new(),
    };
    let mounts: BTreeSet<String> = facts
        .oci
        .as_ref()
        .and_then(|o| o.mounts().as_ref())
        .map(|a| a.iter().map(|m| m.destination().display().to_string()).collect())
        .unwrap_or_default();
    let walk = Walk { lowers, mounts };
    let mut out = Vec::new();
    walk.dir(&facts.upper_dir, "", &mut out);
    out.sort();
    Ok(out)
}

struct Walk {
    lowers: Vec<PathBuf>,
    mounts: BTreeSet<String>,
}

impl Walk {
    fn in_image(&self, path: &str) -> bool {
        let rel = path.trim_start_matches('/');
        self.lowers.iter().any(|l| l.join(rel).symlink_metadata().is_ok())
    }

    fn is_mount(&self, path: &str) -> bool {
        self.mounts
            .iter()
            .any(|m| path == m || path.starts_with(&format!("{}/", m.trim_end_matches('/'))))
    }

    fn holds_mount(&self, path: &str) -> bool {
        let prefix = format!("{path}/");
        self.mounts.iter().any(|m| m.starts_with(&prefix))
    }

    /// Lists the changes under `dir` (`path` inside the container); whether any.
    fn dir(&self, dir: &Path, path: &str, out: &mut Vec<Change>) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        let mut any = false;
        let mut names: Vec<_> = entries.flatten().collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let child = format!("{path}/{}", e.file_name().to_string_lossy());
            if self.is_mount(&child) {
                continue;
            }
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            // A 0/0 character device is overlayfs's whiteout: a deletion.
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                out.push(Change {
                    path: child,
                    kind: DELETED,
                });
                any = true;
                continue;
            }
            let in_image = self.in_image(&child);
            if meta.is_dir() {
                let mark = out.len();
                let inner = self.dir(&e.path(), &child, out);
                let new_dir = !in_image && !self.holds_mount(&child);
                if inner || new_dir {
                    out.insert(
                        mark,
                        Change {
                            path: child,
                            kind: if in_image { CHANGED } else { ADDED },
                        },
                    );
                    any = true;
                }
            } else {
                out.push(Change {
                    path: child,
                    kind: if in_image { CHANGED } else { ADDED },
                });
                any = true;
            }
        }
        any
    }
}

/// `container prune`: removes the stopped containers that `run` and
/// `create` made. A manifest's container is its source's to remove (`delete
/// -f`): removing it here would only have reconcile make it again.
pub async fn prune_containers(engine: &Arc<Engine>) -> Result<PruneReport> {
    let mut keys = Vec::new();
    for view in engine.views(Some(Kind::Container), None)? {
        if view.pid.is_some() || !view.source.as_deref().is_some_and(|s| s.starts_with("run:")) {
            continue;
        }
        let Some(doc) = docker_inspect::container(engine, &view.name)? else {
            continue;
        };
        if matches!(doc.state.status.as_str(), "exited" | "created" | "dead") {
            keys.push(format!("container/{}", view.name));
        }
    }
    delete_each(engine, keys).await
}

/// Networks Docker has from the start and never prunes or removes.
pub const PREDEFINED_NETWORKS: [&str; 3] = [DEFAULT_NETWORK, "host", "none"];

/// `network prune`: removes the networks `network create` made that no
/// container uses. Never the default `bridge` (nor any of Docker's
/// predefined names), which `run` makes and Docker keeps; a manifest's
/// network is its source's.
pub async fn prune_networks(engine: &Arc<Engine>) -> Result<PruneReport> {
    let desired = engine.desired_all()?;
    let keys = desired
        .iter()
        .filter(|d| d.object.kind() == Kind::Network)
        .filter(|d| d.source.starts_with("network:") && !PREDEFINED_NETWORKS.contains(&d.object.name()))
        .filter(|d| crate::reconcile::state::users_of(desired.iter().map(|d| &d.object), &d.key()).is_empty())
        .map(|d| format!("network/{}", d.object.name()))
        .collect();
    delete_each(engine, keys).await
}

/// Which volumes `volume prune` takes: every unused one (`all`), else only
/// anonymous ones, as Docker since API 1.42; with every `label` (`k` or
/// `k=v`) and none of `not_label`.
#[derive(Debug, Clone, Default)]
pub struct VolumePrune {
    pub all: bool,
    pub label: Vec<String>,
    pub not_label: Vec<String>,
}

/// `volume prune`: removes the volumes `volume create` made that no
/// container uses and that `filter` takes. A manifest's volume is its
/// source's; a container's anonymous volume goes with the container.
pub async fn prune_volumes(engine: &Arc<Engine>, filter: &VolumePrune) -> Result<PruneReport> {
    let desired = engine.desired_all()?;
    let has = |labels: &std::collections::BTreeMap<String, String>, want: &str| match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(want),
    };
    let mut keys = Vec::new();
    for d in desired.iter().filter(|d| d.object.kind() == Kind::Volume) {
        if !d.source.starts_with("volume:")
            || !crate::reconcile::state::users_of(desired.iter().map(|d| &d.object), &d.key()).is_empty()
        {
            continue;
        }
        let Some(doc) = docker_inspect::volume(engine, d.object.name())? else {
            continue;
        };
        let labels: std::collections::BTreeMap<String, String> = doc.labels.into_iter().collect();
        let anonymous = labels.contains_key("com.docker.volume.anonymous");
        if (filter.all || anonymous)
            && filter.label.iter().all(|l| has(&labels, l))
            && !filter.not_label.iter().any(|l| has(&labels, l))
        {
            keys.push(format!("volume/{}", d.object.name()));
        }
    }
    delete_each(engine, keys).await
}

/// Deletes one at a time, so that one refused (a container joined it
/// meanwhile) does not keep the others.
async fn delete_each(engine: &Arc<Engine>, keys: Vec<String>) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    for key in keys {
        let req = DeleteRequest {
            sources: Vec::new(),
            keys: vec![key.clone()],
        };
        match super::delete::delete(engine, req).await {
            Ok(resp) => {
                report.failed.extend(resp.failed);
                report.deleted.extend(
                    resp.deleted
                        .iter()
                        .map(|k| k.split_once('/').map_or(k.as_str(), |(_, n)| n).to_string()),
                );
            }
            Err(CommandError::NotFound(_)) => {}
            Err(e) => report.failed.push(format!("{key}: {e}")),
        }
    }
    Ok(report)
}
