//! `apply` (with prune and dry run) from the API, and the same for a watched
//! file: one code path, so both refuse or keep the same objects.

use std::collections::HashSet;
use std::sync::Arc;

use super::{CommandError, Result};
use crate::manifest::{self, Kind, Object, Source};
use crate::plan::ObjectKey;
use crate::reconcile::records::Desired;
use crate::reconcile::state::users_of;
use crate::reconcile::{Engine, OutcomeKind};
use crate::wire::{ApplyRequest, ApplyResponse, RevisionOrigin};

/// Containers of sources other than `source` that use the image or volume `key`.
fn used_by_others(stored: &[Desired], source: &str, key: &ObjectKey) -> Vec<ObjectKey> {
    users_of(stored.iter().filter(|d| d.source != source).map(|d| &d.object), key)
}

fn in_use_message(key: &ObjectKey, users: &[ObjectKey]) -> String {
    let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    format!("{key} is used by {}", users.join(", "))
}

/// Refuses to remove images or volumes that a container which stays uses,
/// as Docker refuses to remove an image a container uses.
pub(super) fn refuse_if_used(remaining: &[&Object], removing: &[ObjectKey]) -> Result<()> {
    let in_use: Vec<String> = removing
        .iter()
        .filter_map(|key| {
            let users = users_of(remaining.iter().copied(), key);
            (!users.is_empty()).then(|| in_use_message(key, &users))
        })
        .collect();
    if in_use.is_empty() {
        return Ok(());
    }
    Err(CommandError::Conflict(format!(
        "{}; delete those containers too (or first)",
        in_use.join(", ")
    )))
}

/// Refuses containers in `new` that publish a host port (and protocol) a
/// container that stays, or another one in `new`, already publishes: the
/// second stack asking for a port gets the error at apply time, not a
/// container that silently does not answer.
pub(super) fn refuse_port_clash(staying: &[&Object], new: &[Object]) -> Result<()> {
    let ports = |o: &Object| -> Vec<manifest::PortMapping> {
        match &o.spec {
            manifest::Spec::Container(c) => c.ports.clone(),
            _ => Vec::new(),
        }
    };
    let new_names: HashSet<(Kind, &str)> = new.iter().map(|o| (o.kind(), o.name())).collect();
    // Two publications clash on the same port and protocol unless both name
    // an address and the addresses differ.
    let mut taken: Vec<(manifest::PortMapping, String)> = staying
        .iter()
        .filter(|o| !new_names.contains(&(o.kind(), o.name())))
        .flat_map(|o| ports(o).into_iter().map(|p| (p, format!("container/{}", o.name()))))
        .collect();
    let mut clashes = Vec::new();
    for o in new {
        for port in ports(o) {
            if let Some((_, owner)) = taken.iter().find(|(p, _)| p.clashes_with(&port)) {
                clashes.push(format!(
                    "container/{}: host port {} is already published by {owner}",
                    o.name(),
                    port.host_label()
                ));
            }
        }
        taken.extend(ports(o).into_iter().map(|p| (p, format!("container/{}", o.name()))));
    }
    if clashes.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Conflict(format!(
            "{}; publish another host port",
            clashes.join("; ")
        )))
    }
}

/// Published host ports a process outside berth holds now, each at its
/// place in the manifest: refused before anything is made, rather than a
/// container that fails to start.
fn ports_held_on_host(
    engine: &Engine,
    objects: &[Object],
    positions: &manifest::Positions,
) -> Vec<manifest::Diagnostic> {
    let mut held = Vec::new();
    for o in objects {
        let manifest::Spec::Container(c) = &o.spec else {
            continue;
        };
        for (i, p) in c.ports.iter().enumerate() {
            let udp = p.protocol.as_deref() == Some("udp");
            if let Err(why) = engine.host_port_free(p.host_addr(), p.host, udp) {
                let field = format!("spec.ports[{i}].host");
                let (line, column) = positions.locate(&o.origin, &field);
                held.push(manifest::Diagnostic {
                    file: o.origin.file.clone(),
                    line,
                    column,
                    field,
                    message: format!("container/{}: {why}", o.name()),
                    snippet: positions.snippet(&o.origin.file, line),
                });
            }
        }
    }
    held
}

/// Makes an Image's build context absolute: relative to its manifest
/// file's directory (itself relative to the client's `base_dir` when the
/// file was named so; stdin's is the client's working directory).
fn resolve_build_paths(
    objects: &mut [Object],
    base_dir: Option<&str>,
    positions: &manifest::Positions,
) -> Vec<manifest::Diagnostic> {
    let mut errors = Vec::new();
    for o in objects.iter_mut() {
        let origin = o.origin.clone();
        let manifest::Spec::Image(spec) = &mut o.spec else {
            continue;
        };
        let Some(build) = &mut spec.build else { continue };
        let context = std::path::Path::new(&build.context);
        if context.is_absolute() {
            continue;
        }
        let file = std::path::Path::new(&origin.file);
        let dir = if origin.file.starts_with('<') {
            base_dir.map(std::path::PathBuf::from)
        } else if file.is_absolute() {
            file.parent().map(std::path::Path::to_path_buf)
        } else {
            base_dir.map(|b| std::path::Path::new(b).join(file.parent().unwrap_or(std::path::Path::new(""))))
        };
        match dir {
            // Cleaned of `.` components: `./app` reads as `<dir>/app`.
            Some(dir) => {
                build.context = dir
                    .join(context)
                    .components()
                    .collect::<std::path::PathBuf>()
                    .display()
                    .to_string()
            }
            None => {
                let field = "spec.build.context".to_string();
                let (line, column) = positions.locate(&origin, &field);
                errors.push(manifest::Diagnostic {
                    file: origin.file.clone(),
                    line,
                    column,
                    field,
                    message: "a relative context needs the manifest's directory: give an absolute path".into(),
                    snippet: positions.snippet(&origin.file, line),
                });
            }
        }
    }
    errors
}

fn key_of(o: &Object) -> ObjectKey {
    ObjectKey::new(o.kind(), o.name())
}

/// Validates the request's manifests, then stores them as the set
/// `source_id` and runs a pass (or, with `dry_run`, only plans). Reports the
/// actions on this set's objects alone. The apply is recorded as a revision
/// of its files (see [`super::revisions`]).
pub async fn apply(engine: &Arc<Engine>, req: ApplyRequest) -> Result<ApplyResponse> {
    let origin = super::revisions::files_origin(&req.sources, req.base_dir.clone());
    apply_from(engine, req, origin).await
}

/// [`apply`], recording the revision as coming from `origin`.
pub async fn apply_from(engine: &Arc<Engine>, req: ApplyRequest, origin: RevisionOrigin) -> Result<ApplyResponse> {
    let stored = engine.desired_all()?;
    let replaced = |d: &Desired| req.prune && d.source == req.source_id;
    // References may point at objects other sources already defined.
    let exists = |kind: Kind, name: &str| {
        stored
            .iter()
            .any(|d| d.object.kind() == kind && d.object.name() == name && !replaced(d))
    };
    let (objects, positions) = match manifest::parse_with_positions(&req.sources) {
        Ok(parsed) => parsed,
        Err(errors) => {
            return Ok(ApplyResponse {
                errors,
                ..Default::default()
            })
        }
    };
    let mut objects = objects;
    let mut errors = resolve_build_paths(&mut objects, req.base_dir.as_deref(), &positions);
    errors.extend(manifest::validate_with_positions(&objects, &positions, &exists));
    if errors.is_empty() {
        errors = ports_held_on_host(engine, &objects, &positions);
    }
    if !errors.is_empty() {
        return Ok(ApplyResponse {
            errors,
            ..Default::default()
        });
    }
    let in_set: HashSet<ObjectKey> = objects.iter().map(key_of).collect();
    let pruned: Vec<ObjectKey> = stored
        .iter()
        .filter(|d| replaced(d) && !in_set.contains(&d.key()))
        .map(Desired::key)
        .collect();
    let remaining: Vec<&Object> = stored
        .iter()
        .filter(|d| !in_set.contains(&d.key()) && !pruned.contains(&d.key()))
        .map(|d| &d.object)
        .collect();
    refuse_if_used(&remaining, &pruned)?;
    refuse_port_clash(&remaining, &objects)?;
    let keys: Vec<String> = objects.iter().map(|o| key_of(o).to_string()).collect();
    if req.dry_run {
        let mut desired: Vec<Object> = remaining.into_iter().cloned().collect();
        desired.extend(objects);
        let mut plan = engine.plan_for(&desired)?;
        // Which files changed, for a rebuild's reason.
        for action in plan.graph.node_weights_mut() {
            if action.key.kind != Kind::Image || action.reason != crate::plan::CONTEXT_CHANGED {
                continue;
            }
            let context = desired.iter().find_map(|o| match &o.spec {
                manifest::Spec::Image(s) if o.name() == action.key.name => s.build.as_ref().map(|b| b.context.clone()),
                _ => None,
            });
            let changed = context.map(|c| engine.context_changes(&c)).unwrap_or_default();
            if !changed.is_empty() {
                action.reason = crate::plan::context_changed(&changed);
            }
        }
        return Ok(ApplyResponse {
            actions: crate::plan::describe(&plan),
            objects: keys,
            ..Default::default()
        });
    }
    let mark = engine.pass_mark();
    let outcome = engine.store_set(&req.source_id, &objects, req.prune, &|_, _| None)?;
    let failed_reconcile = engine.reconcile().await;
    let record = |status: &str, reason: Option<&str>| {
        super::revisions::record(
            engine,
            outcome.revision,
            &req.source_id,
            &origin,
            &req.sources,
            status,
            reason,
        )
    };
    if let Err(e) = failed_reconcile {
        record("failed", Some(&e.to_string()))?;
        return Err(e.into());
    }
    let mine: Vec<ObjectKey> = in_set.into_iter().chain(pruned).collect();
    let outcomes = engine.outcomes_since(mark, &mine);
    let lines = |kind: OutcomeKind| -> Vec<String> {
        let mut v: Vec<String> = outcomes
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| o.line.clone())
            .collect();
        v.sort();
        v
    };
    let failed = lines(OutcomeKind::Failed);
    if failed.is_empty() {
        record("applied", None)?;
    } else {
        record("failed", Some(&failed.join("; ")))?;
    }
    Ok(ApplyResponse {
        errors: Vec::new(),
        actions: lines(OutcomeKind::Done),
        failed,
        pending: lines(OutcomeKind::Waiting),
        revision: Some(outcome.revision),
        objects: keys,
    })
}

/// Stores a watched file's objects as its set. `defined` holds what the
/// watched directory defines now, so references between its files resolve
/// in any order. An image or volume the file no longer defines but a
/// container of another source uses is kept (and reported) instead of
/// deleted. Returns the file's problems, recorded as its source error with
/// its objects kept as they were. Does not run a pass.
pub fn apply_watched(
    engine: &Engine,
    source_id: &str,
    source: &Source,
    defined: &HashSet<(Kind, String)>,
) -> Result<Option<String>> {
    let stored = engine.desired_all()?;
    let exists = |kind: Kind, name: &str| {
        defined.contains(&(kind, name.to_string()))
            || stored
                .iter()
                .any(|d| d.object.kind() == kind && d.object.name() == name)
    };
    match manifest::load(std::slice::from_ref(source), &exists) {
        Ok(objects) => {
            let revision = store_keeping_used(engine, &stored, source_id, &objects)?;
            let origin = super::revisions::files_origin(std::slice::from_ref(source), None);
            super::revisions::record(
                engine,
                revision,
                source_id,
                &origin,
                std::slice::from_ref(source),
                "applied",
                None,
            )?;
            Ok(None)
        }
        Err(problems) => {
            let text = problems.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
            engine.set_source_error(source_id, Some(&text))?;
            Ok(Some(text))
        }
    }
}

/// A watched file was removed: its objects go, but for those still used.
pub fn remove_watched(engine: &Engine, source_id: &str) -> Result<()> {
    let stored = engine.desired_all()?;
    store_keeping_used(engine, &stored, source_id, &[])?;
    engine.forget_source(source_id)?;
    Ok(())
}

/// Stores the set, keeping what others use; returns its revision.
pub(super) fn store_keeping_used(
    engine: &Engine,
    stored: &[Desired],
    source_id: &str,
    objects: &[Object],
) -> Result<i64> {
    let hold = |kind: Kind, name: &str| {
        let key = ObjectKey::new(kind, name);
        let users = used_by_others(stored, source_id, &key);
        (!users.is_empty()).then(|| in_use_message(&key, &users))
    };
    let outcome = engine
        .store_set(source_id, objects, true, &hold)
        .map_err(CommandError::from)?;
    Ok(outcome.revision)
}
