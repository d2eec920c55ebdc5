//! Helpers shared by the plan module's tests.

use std::collections::BTreeMap;

use super::{spec_hashes, ObjectKey, Observed, ObservedObject, RunState};
use crate::manifest::{Kind, Metadata, Object, Origin, Spec};

/// An object with no labels and no origin.
pub(crate) fn obj(name: impl Into<String>, spec: Spec) -> Object {
    Object {
        metadata: Metadata {
            name: name.into(),
            labels: BTreeMap::new(),
        },
        spec,
        origin: Origin::default(),
    }
}

/// What the kernel would report once `desired` is fully applied.
pub(crate) fn converged(desired: &[Object]) -> Observed {
    let hashes = spec_hashes(desired);
    let objects = desired
        .iter()
        .map(|o| {
            let key = ObjectKey::new(o.kind(), o.name());
            let state = if key.kind == Kind::Container {
                RunState::Running
            } else {
                RunState::Present
            };
            let seen = ObservedObject {
                held_back: None,
                spec_hash: hashes[&key].clone(),
                spec: Some(o.spec.clone()),
                state,
            };
            (key, seen)
        })
        .collect();
    Observed { objects }
}
