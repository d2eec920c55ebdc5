//! `delete`: what manifests define, or `kind/name` keys.

use std::sync::Arc;

use super::apply::refuse_if_used;
use super::{CommandError, Result};
use crate::manifest;
use crate::plan::ObjectKey;
use crate::reconcile::{Engine, OutcomeKind};
use crate::wire::{DeleteRequest, DeleteResponse, ObjectRef};

pub async fn delete(engine: &Arc<Engine>, req: DeleteRequest) -> Result<DeleteResponse> {
    let mut keys: Vec<ObjectKey> = Vec::new();
    if !req.sources.is_empty() {
        match manifest::parse(&req.sources) {
            Ok(objects) => keys.extend(objects.iter().map(|o| ObjectKey::new(o.kind(), o.name()))),
            Err(errors) => {
                return Ok(DeleteResponse {
                    errors,
                    ..Default::default()
                })
            }
        }
    }
    for k in &req.keys {
        let r = ObjectRef::parse(k).ok_or_else(|| {
            CommandError::Invalid(format!("{} is not KIND/NAME (e.g. container/web)", super::quote(k)))
        })?;
        super::check_name(r.kind, &r.name)?;
        keys.push(ObjectKey::new(r.kind, r.name));
    }
    if keys.is_empty() {
        return Err(CommandError::Invalid(
            "nothing to delete: give manifests or KIND/NAME keys".into(),
        ));
    }
    let desired = engine.desired_all()?;
    let remaining: Vec<_> = desired
        .iter()
        .filter(|d| !keys.contains(&d.key()))
        .map(|d| &d.object)
        .collect();
    refuse_if_used(&remaining, &keys)?;
    let mark = engine.pass_mark();
    let removed = engine.delete_desired(&keys)?;
    engine.reconcile().await?;
    let failed = engine
        .outcomes_since(mark, &removed)
        .into_iter()
        .filter(|o| o.kind != OutcomeKind::Done)
        .map(|o| o.line)
        .collect();
    let not_found: Vec<String> = keys
        .iter()
        .filter(|k| !removed.contains(k))
        .map(|k| k.to_string())
        .collect();
    if removed.is_empty() {
        return Err(CommandError::NotFound(not_found.join(", ")));
    }
    Ok(DeleteResponse {
        errors: Vec::new(),
        deleted: removed.iter().map(|k| k.to_string()).collect(),
        not_found,
        failed,
    })
}
