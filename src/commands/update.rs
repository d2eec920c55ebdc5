//! `update`, as `docker update`: a container made by `run` or `create` gets
//! new limits and restart policy in place; its processes run on. A
//! manifest's container is refused: its manifest says what it has (change it
//! there: apply then updates it in place too).

use std::sync::Arc;

use super::{CommandError, Result};
use crate::manifest::{self, Kind, Object, Resources, Spec};
use crate::reconcile::Engine;
use crate::wire::{UpdateRequest, VerbResponse};

pub async fn update(engine: &Arc<Engine>, name: &str, req: &UpdateRequest) -> Result<VerbResponse> {
    super::check_name(Kind::Container, name)?;
    let found = engine
        .desired_all()?
        .into_iter()
        .find(|d| d.object.kind() == Kind::Container && d.object.name() == name)
        .ok_or_else(|| CommandError::NotFound(format!("container/{name}")))?;
    let Spec::Container(spec) = &found.object.spec else {
        return Err(CommandError::NotFound(format!("container/{name}")));
    };
    if !found.source.starts_with("run:") {
        let origin = &found.object.origin;
        return Err(CommandError::Invalid(format!(
            "container/{name} is declared in {}:{}: change its spec.resources or spec.restartPolicy there and \
             apply it (that too updates it in place); update changes only containers made by run or create",
            origin.file, origin.line
        )));
    }
    let mut spec = spec.clone();
    spec.resources = Some(merged(spec.resources.as_ref(), &req.resources)?);
    if let Some(policy) = req.restart_policy {
        spec.restart_policy = policy;
    }
    let obj = Object {
        spec: Spec::Container(spec),
        ..found.object.clone()
    };
    let stored = engine.desired_objects()?;
    let exists = |kind: Kind, n: &str| stored.iter().any(|o| o.kind() == kind && o.name() == n);
    let problems = manifest::validate(std::slice::from_ref(&obj), &exists);
    if !problems.is_empty() {
        let msg: Vec<String> = problems.iter().map(|d| format!("{}: {}", d.field, d.message)).collect();
        return Err(CommandError::Invalid(msg.join("; ")));
    }
    engine.set_resources(&found.source, &obj).await?;
    Ok(VerbResponse {
        container: name.to_string(),
        verb: "update".into(),
    })
}

/// `old` with every field `new` sets replaced, as docker update leaves a
/// limit it is not given as it is. Through JSON, where an unset field is
/// absent, so every field of [`Resources`] is covered.
fn merged(old: Option<&Resources>, new: &Resources) -> Result<Resources> {
    let internal = |e: serde_json::Error| CommandError::Invalid(format!("resources cannot be merged: {e}"));
    let mut base = serde_json::to_value(old.cloned().unwrap_or_default()).map_err(internal)?;
    if let (Some(base), serde_json::Value::Object(given)) =
        (base.as_object_mut(), serde_json::to_value(new).map_err(internal)?)
    {
        base.extend(given);
    }
    serde_json::from_value(base).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Memory;

    #[test]
    fn a_merge_replaces_what_is_given_and_keeps_the_rest() {
        let old = Resources {
            memory: Some(Memory(64 << 20)),
            pids: Some(10),
            ..Default::default()
        };
        let new = Resources {
            memory: Some(Memory(96 << 20)),
            ..Default::default()
        };
        let m = merged(Some(&old), &new).unwrap();
        assert_eq!((m.memory, m.pids), (Some(Memory(96 << 20)), Some(10)));
        assert_eq!(merged(None, &new).unwrap(), new);
    }
}
