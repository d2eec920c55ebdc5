//! Git sources: add, list, sync, suspend, resume, remove, preview. A
//! source's commit is applied as the set `git:NAME`, through the same apply
//! as `berth apply --prune`: it validates everything first, so a commit that
//! does not validate changes nothing and its error (file:line:field, and the
//! commit) is recorded on the source while the last good commit keeps
//! running.

use std::sync::Arc;
use std::time::Duration;

use super::{CommandError, Result};
use crate::manifest::{self, Source};
use crate::reconcile::Engine;
use crate::source::{self, Auth, Ref};
use crate::store::GitSourceRow;
use crate::wire::{
    ApplyRequest, ApplyResponse, GitSourceSpec, RevisionOrigin, RollbackRequest, SourceView, SyncResponse,
};

/// The apply set of git source NAME is `git:NAME`.
pub const GIT_SOURCE_PREFIX: &str = "git:";

/// The fetch interval when a source does not give one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

fn state(e: crate::store::StoreError) -> CommandError {
    CommandError::State(e.into())
}

/// One sync at a time: the poller and `source sync` never apply the same
/// source at once, and two sources' applies do not interleave their prunes.
fn sync_lock() -> &'static tokio::sync::Mutex<()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
}

/// The spec's interval, checked.
pub fn interval_of(spec: &GitSourceSpec) -> std::result::Result<Duration, String> {
    match &spec.interval {
        None => Ok(DEFAULT_INTERVAL),
        Some(s) => {
            let d = s
                .parse::<manifest::Duration>()
                .map_err(|e| format!("interval: {}", e.0))?
                .0;
            if d < Duration::from_secs(1) {
                return Err(format!("interval: {s:?} is under 1s"));
            }
            Ok(d)
        }
    }
}

fn reference_of(spec: &GitSourceSpec) -> Ref {
    match (&spec.branch, &spec.tag, &spec.commit) {
        (Some(b), _, _) => Ref::Branch(b.clone()),
        (_, Some(t), _) => Ref::Tag(t.clone()),
        (_, _, Some(c)) => Ref::Commit(c.clone()),
        _ => Ref::Head,
    }
}

fn auth_of(spec: &GitSourceSpec) -> Auth {
    Auth {
        token_file: spec.token_file.clone().map(Into::into),
        docker_config: spec.docker_config.clone().map(Into::into),
        ssh_key_file: spec.ssh_key_file.clone().map(Into::into),
    }
}

/// Checks a spec, each problem naming its field; nothing is stored when one fails.
pub fn check(spec: &GitSourceSpec) -> Result<()> {
    let mut problems = Vec::new();
    if !manifest::is_dns_label(&spec.name) {
        problems.push(format!(
            "name: {} is not 1 to 63 lower-case letters, digits and `-`",
            super::quote(&spec.name)
        ));
    }
    if let Err(e) = source::check_url(&spec.url) {
        problems.push(e);
    }
    let refs = [&spec.branch, &spec.tag, &spec.commit]
        .iter()
        .filter(|r| r.is_some())
        .count();
    if refs > 1 {
        problems.push("branch, tag, commit: give at most one".into());
    }
    for (field, value) in [("branch", &spec.branch), ("tag", &spec.tag)] {
        if let Some(v) = value {
            let bad = v.is_empty()
                || v.starts_with('-')
                || v.contains("..")
                || v.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
            if bad {
                problems.push(format!("{field}: {} is not a ref name", super::quote(v)));
            }
        }
    }
    if let Some(c) = &spec.commit {
        if !(4..=64).contains(&c.len()) || !c.chars().all(|c| c.is_ascii_hexdigit()) {
            problems.push(format!("commit: {} is not a hexadecimal commit id", super::quote(c)));
        }
    }
    if let Some(p) = &spec.path {
        if p.starts_with('/') || p.split('/').any(|c| c == "..") || p.starts_with('-') {
            problems.push(format!(
                "path: {} must be a directory inside the repository (relative, no `..`)",
                super::quote(p)
            ));
        }
    }
    if let Err(e) = interval_of(spec) {
        problems.push(e);
    }
    let creds = [&spec.token_file, &spec.docker_config, &spec.ssh_key_file]
        .iter()
        .filter(|c| c.is_some())
        .count();
    if creds > 1 {
        problems.push("tokenFile, dockerConfig, sshKeyFile: give at most one".into());
    }
    for (field, value) in [
        ("tokenFile", &spec.token_file),
        ("dockerConfig", &spec.docker_config),
        ("sshKeyFile", &spec.ssh_key_file),
    ] {
        if let Some(f) = value {
            if !std::path::Path::new(f).is_absolute() {
                problems.push(format!("{field}: {} must be an absolute path", super::quote(f)));
            } else if !std::path::Path::new(f).is_file() {
                problems.push(format!("{field}: {} is not a readable file", super::quote(f)));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Invalid(format!(
            "source {}: {}",
            super::quote(&spec.name),
            problems.join("; ")
        )))
    }
}

fn view(row: GitSourceRow) -> Result<SourceView> {
    let spec: GitSourceSpec = serde_json::from_str(&row.spec)
        .map_err(|e| CommandError::Invalid(format!("source {}: stored spec unreadable: {e}", row.name)))?;
    Ok(SourceView {
        spec,
        suspended: row.suspended,
        suspended_reason: row.suspended_reason,
        commit: row.commit_applied,
        fetched_at: row.fetched_at,
        applied_at: row.applied_at,
        error: row.error,
    })
}

fn row(engine: &Engine, name: &str) -> Result<GitSourceRow> {
    super::check_name_of("source", name)?;
    engine
        .store()
        .git_source(name)
        .map_err(state)?
        .ok_or_else(|| CommandError::NotFound(format!("source {name}")))
}

/// Adds a git source; the poller fetches and applies it at once.
pub fn add(engine: &Engine, spec: GitSourceSpec) -> Result<SourceView> {
    check(&spec)?;
    let json = serde_json::to_string(&spec).map_err(|e| CommandError::Invalid(e.to_string()))?;
    if !engine.store().git_source_add(&spec.name, &json).map_err(state)? {
        return Err(CommandError::Conflict(format!(
            "source {} exists; remove it first (`berth source rm {}`)",
            spec.name, spec.name
        )));
    }
    get(engine, &spec.name)
}

pub fn get(engine: &Engine, name: &str) -> Result<SourceView> {
    view(row(engine, name)?)
}

pub fn list(engine: &Engine) -> Result<Vec<SourceView>> {
    engine
        .store()
        .git_sources()
        .map_err(state)?
        .into_iter()
        .map(view)
        .collect()
}

/// Stops (or resumes) following the source's commits; what runs stays.
pub fn suspend(engine: &Engine, name: &str, suspended: bool) -> Result<SourceView> {
    row(engine, name)?;
    let reason = suspended.then_some("suspended by hand");
    engine
        .store()
        .git_source_suspend(name, suspended, reason)
        .map_err(state)?;
    get(engine, name)
}

/// Removes the source and its fetched repository; with `prune`, what it
/// applied is deleted too (but for what another source's containers use);
/// without, its objects stay, owned by `git:NAME`.
pub async fn remove(engine: &Arc<Engine>, name: &str, prune: bool) -> Result<SourceView> {
    let _one = sync_lock().lock().await;
    let found = get(engine, name)?;
    let set = format!("{GIT_SOURCE_PREFIX}{name}");
    if prune {
        let stored = engine.desired_all()?;
        super::apply::store_keeping_used(engine, &stored, &set, &[])?;
        engine.forget_source(&set)?;
        engine.reconcile().await?;
    }
    engine.store().git_source_remove(name).map_err(state)?;
    let dir = source::repo_dir(engine.root(), name);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {e}", dir.display());
        }
    }
    Ok(found)
}

/// The manifests of `commit`, or why they cannot be read.
async fn read_commit(
    engine: &Engine,
    spec: &GitSourceSpec,
    fetch: bool,
) -> Result<(String, Vec<Source>, RevisionOrigin), String> {
    let dir = source::repo_dir(engine.root(), &spec.name);
    let (url, reference, auth, path) = (spec.url.clone(), reference_of(spec), auth_of(spec), spec.path.clone());
    let job = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let commit = if fetch {
            source::fetch(&dir, &url, &reference, &auth).map_err(|e| e.to_string())?
        } else {
            return Err("not fetched".into());
        };
        let info = source::commit_info(&dir, &commit).map_err(|e| format!("commit {commit}: {e}"))?;
        let files = source::manifests(&dir, &commit, path.as_deref()).map_err(|e| format!("commit {commit}: {e}"))?;
        Ok((commit, info, files))
    });
    let (commit, info, files) = job.await.map_err(|e| e.to_string())??;
    let short = &commit[..commit.len().min(12)];
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for (file, bytes) in files {
        match manifest::source_from_bytes(&file, &bytes) {
            Ok(s) => sources.push(s),
            Err(d) => problems.push(d.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(format!("commit {short}: {}", problems.join("\n")));
    }
    if sources.is_empty() {
        // An empty set would prune everything the source runs: more likely a
        // wrong path than an intent.
        return Err(format!(
            "commit {short}: no manifests (*.yaml, *.yml) under {}; nothing applied",
            spec.path.as_deref().unwrap_or("the repository's root")
        ));
    }
    let origin = RevisionOrigin {
        kind: "git".into(),
        commit: Some(commit.clone()),
        author: Some(info.author),
        subject: Some(info.subject),
        ..Default::default()
    };
    Ok((commit, sources, origin))
}

/// Fetches the source now and applies its commit if it is new (with
/// `retry`, also a commit whose apply failed before). A commit that does
/// not validate or whose apply fails leaves the previous commit's objects
/// running, and its error is recorded on the source.
pub async fn sync(engine: &Arc<Engine>, name: &str, retry: bool) -> Result<SyncResponse> {
    let _one = sync_lock().lock().await;
    let row = row(engine, name)?;
    if row.suspended {
        return Err(CommandError::Conflict(format!(
            "source {name} is suspended ({}); `berth source resume {name}` follows it again",
            row.suspended_reason.as_deref().unwrap_or("by hand")
        )));
    }
    let spec = view(row.clone())?.spec;
    let read = read_commit(engine, &spec, true).await;
    let store = engine.store();
    let (commit, sources, origin) = match read {
        Ok(r) => r,
        Err(e) => {
            store.git_source_fetched(name, Some(&e)).map_err(state)?;
            return Err(CommandError::Unavailable(format!("source {name}: {e}")));
        }
    };
    let done = row.commit_applied.as_deref() == Some(&commit) && row.commit_attempted.as_deref() == Some(&commit);
    let tried = row.commit_attempted.as_deref() == Some(&commit);
    if done || (tried && !retry) {
        // Nothing new: the fetch's own error (if the last one failed) is gone.
        let keep = if done { None } else { row.error.as_deref() };
        store.git_source_fetched(name, keep).map_err(state)?;
        return Ok(SyncResponse {
            commit,
            applied: false,
            apply: ApplyResponse::default(),
        });
    }
    store.git_source_fetched(name, row.error.as_deref()).map_err(state)?;
    let short = commit[..commit.len().min(12)].to_string();
    let set = format!("{GIT_SOURCE_PREFIX}{name}");
    let req = ApplyRequest {
        source_id: set.clone(),
        sources,
        prune: true,
        dry_run: false,
        base_dir: None,
    };
    let resp = match super::apply::apply_from(engine, req, origin).await {
        Ok(r) => r,
        Err(e) => {
            let why = format!("commit {short}: {e}");
            store.git_source_attempted(name, &commit, Some(&why)).map_err(state)?;
            return Err(match e {
                CommandError::Conflict(_) => CommandError::Conflict(format!("source {name}: {why}")),
                CommandError::Invalid(_) => CommandError::Invalid(format!("source {name}: {why}")),
                other => other,
            });
        }
    };
    if !resp.errors.is_empty() {
        let lines: Vec<String> = resp.errors.iter().map(|d| d.to_string()).collect();
        let why = format!(
            "commit {short} does not validate; commit {} keeps running:\n{}",
            row.commit_applied
                .as_deref()
                .map(|c| &c[..c.len().min(12)])
                .unwrap_or("none"),
            lines.join("\n")
        );
        store.git_source_attempted(name, &commit, Some(&why)).map_err(state)?;
        return Ok(SyncResponse {
            commit,
            applied: false,
            apply: resp,
        });
    }
    if !resp.failed.is_empty() {
        // Stored, but some of it did not come up: the previous commit's
        // revision is applied again, if there is one.
        let mut why = format!("commit {short} failed to apply: {}", resp.failed.join("; "));
        let back = super::revisions::rollback_as(
            engine,
            RollbackRequest {
                source: Some(set),
                to: None,
                dry_run: false,
                reason: Some(why.clone()),
            },
            false,
        )
        .await;
        match back {
            Ok(_) => why.push_str("; the previous revision was applied again"),
            Err(e) => why.push_str(&format!("; not rolled back: {e}")),
        }
        store.git_source_attempted(name, &commit, Some(&why)).map_err(state)?;
        return Ok(SyncResponse {
            commit,
            applied: false,
            apply: resp,
        });
    }
    store.git_source_attempted(name, &commit, None).map_err(state)?;
    Ok(SyncResponse {
        commit,
        applied: true,
        apply: resp,
    })
}

/// What applying the source's newest commit would change (fetching it, not applying).
pub async fn diff(engine: &Arc<Engine>, name: &str) -> Result<SyncResponse> {
    let _one = sync_lock().lock().await;
    let spec = get(engine, name)?.spec;
    let (commit, sources, origin) = read_commit(engine, &spec, true)
        .await
        .map_err(|e| CommandError::Unavailable(format!("source {name}: {e}")))?;
    engine.store().git_source_fetched(name, None).map_err(state)?;
    let req = ApplyRequest {
        source_id: format!("{GIT_SOURCE_PREFIX}{name}"),
        sources,
        prune: true,
        dry_run: true,
        base_dir: None,
    };
    let apply = super::apply::apply_from(engine, req, origin).await?;
    Ok(SyncResponse {
        commit,
        applied: false,
        apply,
    })
}

/// The daemon's poller: every source not suspended is fetched once its
/// interval has passed since its last fetch, and a new commit applied.
pub async fn poll(engine: Arc<Engine>) {
    loop {
        let rows = engine.store().git_sources().unwrap_or_else(|e| {
            tracing::error!("cannot list git sources: {e}");
            Vec::new()
        });
        let now = crate::runtime::now_millis();
        for row in rows.into_iter().filter(|r| !r.suspended) {
            let Ok(v) = view(row.clone()) else { continue };
            let interval = interval_of(&v.spec).unwrap_or(DEFAULT_INTERVAL);
            let due = row
                .fetched_at
                .is_none_or(|t| now.saturating_sub(t) >= interval.as_millis() as i64);
            if !due {
                continue;
            }
            match sync(&engine, &row.name, false).await {
                Ok(r) if r.applied => tracing::info!("source {}: applied commit {}", row.name, r.commit),
                Ok(r) if !r.apply.errors.is_empty() || !r.apply.failed.is_empty() => {
                    tracing::error!(
                        "source {}: commit {} not applied; see `berth source ls`",
                        row.name,
                        r.commit
                    )
                }
                Ok(_) => {}
                // Suspended meanwhile, or removed: nothing to say.
                Err(CommandError::Conflict(_) | CommandError::NotFound(_)) => {}
                Err(e) => tracing::error!("source {}: {e}", row.name),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
