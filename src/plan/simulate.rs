//! What the observed state would be after a plan ran without a failure: for
//! dry runs, and for checking that a plan converges in one pass.

use super::{Observed, ObservedObject, Plan, RunState, Verb};
use crate::manifest::Kind;

/// Simulates executing every action of `plan` successfully, in order.
///
/// Create, Start and Replace leave the object with the action's spec and spec
/// hash, containers running and anything else present; Stop leaves a
/// container exited with code 0 and no restart due; Delete removes it.
pub fn apply_to(observed: &Observed, plan: &Plan) -> Observed {
    let mut next = observed.clone();
    for action in plan.ordered() {
        let key = &action.key;
        match action.verb {
            Verb::Create | Verb::Start | Verb::Replace => {
                let state = if key.kind == Kind::Container {
                    RunState::Running
                } else {
                    RunState::Present
                };
                // Actions built by `plan` always carry both; keep what was
                // known for a hand-made action that does not.
                let before = next.objects.get(key);
                let spec_hash = action
                    .spec_hash
                    .clone()
                    .or_else(|| before.map(|o| o.spec_hash.clone()))
                    .unwrap_or_default();
                let spec = action
                    .object
                    .as_ref()
                    .map(|o| o.spec.clone())
                    .or_else(|| before.and_then(|o| o.spec.clone()));
                next.objects.insert(
                    key.clone(),
                    ObservedObject {
                        held_back: None,
                        spec_hash,
                        spec,
                        state,
                    },
                );
            }
            Verb::Update => {
                if let Some(o) = next.objects.get_mut(key) {
                    if let Some(hash) = &action.spec_hash {
                        o.spec_hash = hash.clone();
                    }
                    if let Some(obj) = &action.object {
                        o.spec = Some(obj.spec.clone());
                    }
                }
            }
            Verb::Stop => {
                if let Some(o) = next.objects.get_mut(key) {
                    o.state = RunState::Exited {
                        code: 0,
                        restart_due: false,
                    };
                }
            }
            Verb::Delete => {
                next.objects.remove(key);
            }
        }
    }
    next
}
