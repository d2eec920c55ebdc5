//! Plan: a pure function from (desired, observed) to a DAG of actions.
//! No I/O; the reconcile executor carries the actions out.

use std::collections::BTreeMap;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

use crate::manifest::{Kind, Object, Spec};

/// Identity of an object: (kind, name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    pub kind: Kind,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        ObjectKey {
            kind,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.as_str().to_ascii_lowercase(), self.name)
    }
}

/// What the kernel (and the run dir) says about one live object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedObject {
    /// The hash recorded when the object was made (see [`spec_hashes`]).
    pub spec_hash: String,
    /// The spec it was made from, to name the fields that changed.
    pub spec: Option<Spec>,
    pub state: RunState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    /// Images, volumes and networks: it exists.
    Present,
    /// A container whose init is alive.
    Running,
    /// A container whose init has exited. `restart_due` is decided by the
    /// caller from the restart policy and backoff (it knows the clock).
    Exited { code: i32, restart_due: bool },
}

/// Observed state of everything berth owns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub objects: BTreeMap<ObjectKey, ObservedObject>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verb {
    /// Images: import/unpack. Volumes and networks: create.
    Create,
    /// Containers: create (bundle, rootfs, shim) and start.
    Start,
    /// Tear down and make again from the new spec.
    Replace,
    /// Containers only: stop the process but keep the object.
    Stop,
    Delete,
}

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub verb: Verb,
    pub key: ObjectKey,
    /// Why: which object, which field changed, or what was observed.
    pub reason: String,
    /// The desired object (absent for deletes).
    pub object: Option<Object>,
    /// Hash to record once the action succeeded (absent for deletes).
    pub spec_hash: Option<String>,
}

/// The action DAG: an edge `a -> b` means `a` must finish before `b` starts.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub graph: DiGraph<Action, ()>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Actions in an order that respects every edge (stable for equal input).
    pub fn ordered(&self) -> Vec<&Action> {
        self.order().into_iter().map(|i| &self.graph[i]).collect()
    }

    /// Node indices in a dependency-respecting order.
    pub fn order(&self) -> Vec<NodeIndex> {
        petgraph::algo::toposort(&self.graph, None).expect("plan graphs are acyclic by construction")
    }
}

/// The stable hash of each desired object. A container's hash covers its own
/// spec and the hashes of the image and volumes it uses, so a changed image or
/// volume spec replaces the containers that use it.
pub fn spec_hashes(desired: &[Object]) -> BTreeMap<ObjectKey, String> {
    let _ = desired;
    todo!("plan::spec_hashes")
}

/// The plan that takes `observed` to `desired`.
pub fn plan(desired: &[Object], observed: &Observed) -> Plan {
    let _ = (desired, observed);
    todo!("plan::plan")
}
