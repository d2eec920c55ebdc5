//! Observation: what berth made, as the kernel and the run dir say it is now.

use std::sync::Arc;

use super::drivers::driver;
pub use super::drivers::Observe;
use super::records::Desired;
use super::{Engine, Result};
use crate::plan::{self, ObjectKey, Observed, ObservedObject, RunState};

impl Engine {
    /// The observed state of everything live. Objects someone is acting on
    /// right now (run, stop, an action) count as running, so no pass plans
    /// them again meanwhile.
    pub(super) fn observe(self: &Arc<Self>, desired: &[Desired], mode: Observe) -> Result<Observed> {
        let mut observed = Observed::default();
        for live in self.live_all()? {
            let state = if self.is_busy(&live.key) {
                Some(RunState::Running)
            } else {
                match driver(live.key.kind) {
                    Some(d) => d.observe(self, &live, mode),
                    None => Some(RunState::Present),
                }
            };
            if let Some(state) = state {
                observed.objects.insert(
                    live.key.clone(),
                    ObservedObject {
                        held_back: live.container_info().and_then(|i| i.held_back.clone()),
                        spec_hash: live.spec_hash.clone(),
                        spec: Some(live.spec.clone()),
                        state,
                    },
                );
            }
        }
        // A desired object being made right now is not planned again. (Its
        // hash is computed only then: hashing every object is the plan's job.)
        let busy: Vec<&crate::manifest::Object> = desired
            .iter()
            .map(|d| &d.object)
            .filter(|o| {
                let key = ObjectKey::new(o.kind(), o.name());
                !observed.objects.contains_key(&key) && self.is_busy(&key)
            })
            .collect();
        if !busy.is_empty() {
            let objects: Vec<_> = desired.iter().map(|d| d.object.clone()).collect();
            let hashes = plan::spec_hashes(&objects);
            for o in busy {
                let key = ObjectKey::new(o.kind(), o.name());
                observed.objects.insert(
                    key.clone(),
                    ObservedObject {
                        held_back: None,
                        spec_hash: hashes.get(&key).cloned().unwrap_or_default(),
                        spec: Some(o.spec.clone()),
                        state: RunState::Running,
                    },
                );
            }
        }
        Ok(observed)
    }
}
