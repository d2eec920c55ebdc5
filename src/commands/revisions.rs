//! Numbered revisions: every apply (CLI, watched file, git source) records
//! what it came from and the manifests it applied, so that it can be listed
//! (`berth revisions`), previewed (`diff --to N`) and applied again
//! (`berth rollback`).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{CommandError, Result};
use crate::manifest::Source;
use crate::plan::ObjectKey;
use crate::reconcile::Engine;
use crate::store::RevisionRow;
use crate::wire::{ApplyRequest, ApplyResponse, RevisionOrigin, RevisionView, RollbackRequest};

/// Revisions kept per source when `BERTH_KEEP_REVISIONS` does not say.
pub const DEFAULT_KEEP: usize = 20;

/// How many recorded revisions each source keeps: the daemon's
/// `BERTH_KEEP_REVISIONS` (at least 2, so a rollback always has one to go to).
pub fn keep() -> usize {
    std::env::var("BERTH_KEEP_REVISIONS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|n| n.max(2))
        .unwrap_or(DEFAULT_KEEP)
}

/// The origin of manifests read from files: a hash over names and contents.
pub fn files_origin(sources: &[Source], base_dir: Option<String>) -> RevisionOrigin {
    let mut h = Sha256::new();
    for s in sources {
        h.update((s.file.len() as u64).to_le_bytes());
        h.update(s.file.as_bytes());
        h.update((s.text.len() as u64).to_le_bytes());
        h.update(s.text.as_bytes());
    }
    RevisionOrigin {
        kind: "files".into(),
        hash: Some(format!("sha256:{}", hex::encode(h.finalize()))),
        base_dir,
        ..Default::default()
    }
}

/// Records revision `id` (made by the store when the set was stored) with
/// its origin, manifests and outcome, and an event on each of its objects.
pub(super) fn record(
    engine: &Engine,
    id: i64,
    source: &str,
    origin: &RevisionOrigin,
    sources: &[Source],
    status: &str,
    reason: Option<&str>,
) -> Result<()> {
    let origin_json = serde_json::to_string(origin).map_err(|e| CommandError::Invalid(e.to_string()))?;
    let manifests = serde_json::to_string(sources).map_err(|e| CommandError::Invalid(e.to_string()))?;
    engine
        .store()
        .revision_record(id, &origin_json, &manifests, status, reason, keep())
        .map_err(crate::reconcile::ReconcileError::from)?;
    let from = describe_origin(origin);
    for o in crate::manifest::parse(sources).unwrap_or_default() {
        engine.event(
            &ObjectKey::new(o.kind(), o.name()),
            "Revision",
            &format!("revision {id} of {source} ({from}): {status}"),
        );
    }
    Ok(())
}

/// One line for an origin: `commit abc1234 "subject" by author`, `files sha256:…`.
pub fn describe_origin(o: &RevisionOrigin) -> String {
    let mut s = match (&o.commit, &o.hash) {
        (Some(c), _) => {
            let mut s = format!("commit {}", &c[..c.len().min(12)]);
            if let Some(subject) = o.subject.as_deref().filter(|s| !s.is_empty()) {
                s.push_str(&format!(" {subject:?}"));
            }
            if let Some(author) = o.author.as_deref().filter(|s| !s.is_empty()) {
                s.push_str(&format!(" by {author}"));
            }
            s
        }
        (None, Some(h)) => format!("files {}", &h[..h.len().min(19)]),
        (None, None) => o.kind.clone(),
    };
    if let Some(n) = o.rollback_of {
        s = format!("rollback to revision {n}: {s}");
    }
    s
}

fn view(row: RevisionRow) -> RevisionView {
    let origin: RevisionOrigin = serde_json::from_str(&row.origin).unwrap_or_else(|e| RevisionOrigin {
        kind: format!("unreadable origin: {e}"),
        ..Default::default()
    });
    let files = serde_json::from_str::<Vec<Source>>(&row.manifests)
        .map(|v| v.into_iter().map(|s| s.file).collect())
        .unwrap_or_default();
    RevisionView {
        id: row.id,
        source: row.source,
        created_at: row.created_at,
        origin,
        status: row.status,
        reason: row.reason,
        files,
        summary: row.summary,
    }
}

fn state(e: crate::store::StoreError) -> CommandError {
    CommandError::State(e.into())
}

/// Recorded revisions, newest first, of `source` or of all sources.
pub fn list(engine: &Engine, source: Option<&str>) -> Result<Vec<RevisionView>> {
    Ok(engine
        .store()
        .revisions(source)
        .map_err(state)?
        .into_iter()
        .map(view)
        .collect())
}

/// Applies revision `req.to` of `req.source` again (default: the newest
/// revision before the current one that did not fail), pruning what later
/// revisions added, as one apply recorded as a revision of its own. The
/// revision rolled back from is marked `failed` with `req.reason` when one
/// is given, else `rolled-back`. A git source is suspended, so that its
/// next fetch does not undo the rollback, until `berth source resume`.
/// With `dry_run`, only reports what the rollback would change.
pub async fn rollback(engine: &Arc<Engine>, req: RollbackRequest) -> Result<ApplyResponse> {
    rollback_as(engine, req, true).await
}

/// [`rollback`]; `suspend` says whether a git source is suspended (a sync
/// undoing its own failed commit does not suspend it).
pub async fn rollback_as(engine: &Arc<Engine>, req: RollbackRequest, suspend: bool) -> Result<ApplyResponse> {
    let source = match &req.source {
        Some(s) => s.clone(),
        None => match engine.store().revisions(None).map_err(state)?.into_iter().next() {
            Some(r) => r.source,
            None => return Err(CommandError::NotFound("a recorded revision".into())),
        },
    };
    let revisions = engine.store().revisions(Some(&source)).map_err(state)?;
    let Some(current) = revisions.first() else {
        return Err(CommandError::NotFound(format!(
            "a revision of source {}",
            super::quote(&source)
        )));
    };
    let target = match req.to {
        Some(n) => revisions.iter().find(|r| r.id == n).ok_or_else(|| {
            let known: Vec<String> = revisions.iter().map(|r| r.id.to_string()).collect();
            CommandError::NotFound(format!(
                "revision {n} of source {} (kept: {})",
                super::quote(&source),
                known.join(", ")
            ))
        })?,
        None => revisions.iter().skip(1).find(|r| r.status != "failed").ok_or_else(|| {
            CommandError::Conflict(format!(
                "source {} has no earlier revision that did not fail to roll back to",
                super::quote(&source)
            ))
        })?,
    };
    let sources: Vec<Source> = serde_json::from_str(&target.manifests)
        .map_err(|e| CommandError::Invalid(format!("revision {}: stored manifests unreadable: {e}", target.id)))?;
    let stored: RevisionOrigin = serde_json::from_str(&target.origin).unwrap_or_default();
    let origin = RevisionOrigin {
        kind: "rollback".into(),
        rollback_of: Some(target.id),
        ..stored.clone()
    };
    let apply_req = ApplyRequest {
        source_id: source.clone(),
        sources,
        prune: true,
        dry_run: req.dry_run,
        base_dir: stored.base_dir.clone(),
    };
    let resp = super::apply::apply_from(engine, apply_req, origin).await?;
    if req.dry_run || !resp.errors.is_empty() {
        return Ok(resp);
    }
    let (status, reason) = match &req.reason {
        Some(r) => ("failed", Some(r.as_str())),
        None => ("rolled-back", None),
    };
    if current.id != target.id {
        engine
            .store()
            .revision_set_status(current.id, status, reason)
            .map_err(state)?;
    }
    if let Some(name) = source.strip_prefix(super::sources::GIT_SOURCE_PREFIX) {
        engine
            .store()
            .git_source_set_applied(name, stored.commit.as_deref())
            .map_err(state)?;
        if suspend {
            let why = format!("rolled back to revision {}", target.id);
            engine
                .store()
                .git_source_suspend(name, true, Some(&why))
                .map_err(state)?;
        }
    }
    Ok(resp)
}

/// The daemon's [`crate::reconcile::seams::RevisionRollback`]: a start-first
/// rollout that failed with `onFailure: rollback` rolls its whole revision
/// back, as `berth rollback SOURCE` would, but without suspending a git
/// source (its poller does not apply a failed commit again by itself).
pub struct RolloutRevisionRollback;

impl crate::reconcile::seams::RevisionRollback for RolloutRevisionRollback {
    fn roll_back(
        &self,
        engine: Arc<Engine>,
        source: String,
        reason: String,
    ) -> futures_util::future::BoxFuture<'static, std::result::Result<(), String>> {
        Box::pin(async move {
            let req = RollbackRequest {
                source: Some(source),
                to: None,
                dry_run: false,
                reason: Some(reason),
            };
            let resp = rollback_as(&engine, req, false).await.map_err(|e| e.to_string())?;
            match resp.errors.first() {
                None => Ok(()),
                Some(first) => Err(format!(
                    "{} problem(s) in the stored manifests, first: {first}",
                    resp.errors.len()
                )),
            }
        })
    }
}
