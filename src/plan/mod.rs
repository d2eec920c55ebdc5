//! Plan: a pure function from (desired, observed) to a DAG of actions.
//! No I/O; the reconcile executor carries the actions out.
//!
//! - [`spec_hashes`] fingerprints each desired object (`hash.rs`);
//! - [`plan`] decides one action per object that is not as desired and orders
//!   them in a petgraph DAG (`build.rs`), naming changed fields (`diff.rs`);
//! - [`describe`] renders a plan for `berth diff`;
//! - [`apply_to`] simulates a successful run of a plan (`simulate.rs`).

mod build;
mod diff;
mod hash;
mod simulate;
#[cfg(test)]
mod testing;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use serde::{Deserialize, Serialize};

pub use build::{context_changed, describe, plan, CONTEXT_CHANGED};
pub(crate) use diff::changes as spec_changes;
pub use hash::spec_hashes;
pub use simulate::apply_to;

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
    /// A spec hash whose start-first rollout failed and is not to be tried
    /// again (`onFailure: pause` or `rollback`) until the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_back: Option<String>,
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
    /// Containers only: change a made container in place (its cgroup
    /// limits, its restart policy), keeping its process.
    Update,
    /// Containers only: stop the process but keep the object.
    Stop,
    Delete,
}

impl Verb {
    /// Lower-case, as `berth diff` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Start => "start",
            Verb::Replace => "replace",
            Verb::Update => "update",
            Verb::Stop => "stop",
            Verb::Delete => "delete",
        }
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// How a container it makes is left; a pass always starts it.
    #[serde(default, skip_serializing_if = "Launch::is_start")]
    pub launch: Launch,
}

/// How a container action leaves the container: what `berth run` and
/// `berth create` ask of the executor beyond what a pass does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Launch {
    /// Started at once (every pass, `run -d`, `run` without a terminal).
    #[default]
    Start,
    /// Started, but its init execs only once a client attached, so the
    /// first bytes reach it (`run -t`/`-i` in the foreground).
    WaitAttach,
    /// Recorded as made and held stopped until `start` (`berth create`).
    Held,
}

impl Launch {
    pub fn is_start(&self) -> bool {
        *self == Launch::Start
    }
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

    /// Node indices in a dependency-respecting order. Among actions that are
    /// ready at the same time the one added first (by kind, then name) goes
    /// first, so the order reads well and is stable.
    ///
    /// # Panics
    ///
    /// If the graph has a cycle, which [`plan`] never builds.
    pub fn order(&self) -> Vec<NodeIndex> {
        let g = &self.graph;
        let mut waiting_on: Vec<usize> = g
            .node_indices()
            .map(|n| g.neighbors_directed(n, Direction::Incoming).count())
            .collect();
        let mut ready: BinaryHeap<Reverse<NodeIndex>> = g
            .node_indices()
            .filter(|n| waiting_on[n.index()] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(g.node_count());
        while let Some(Reverse(n)) = ready.pop() {
            order.push(n);
            for next in g.neighbors_directed(n, Direction::Outgoing) {
                waiting_on[next.index()] -= 1;
                if waiting_on[next.index()] == 0 {
                    ready.push(Reverse(next));
                }
            }
        }
        assert_eq!(order.len(), g.node_count(), "plan graphs are acyclic by construction");
        order
    }

    /// The part of the plan that acts on `keys`: their actions and those
    /// they wait on, each given `launch` if it is one of `keys` (what
    /// `run` and `create` carry out at once, leaving the rest to a pass).
    pub fn for_keys(&self, keys: &[ObjectKey], launch: Launch) -> Plan {
        let g = &self.graph;
        let mut keep = vec![false; g.node_count()];
        let mut stack: Vec<NodeIndex> = g.node_indices().filter(|n| keys.contains(&g[*n].key)).collect();
        while let Some(n) = stack.pop() {
            if !std::mem::replace(&mut keep[n.index()], true) {
                stack.extend(g.neighbors_directed(n, Direction::Incoming));
            }
        }
        let graph = g.filter_map(
            |n, a| {
                keep[n.index()].then(|| Action {
                    launch: if keys.contains(&a.key) { launch } else { a.launch },
                    ..a.clone()
                })
            },
            |_, &()| Some(()),
        );
        Plan { graph }
    }
}

#[cfg(test)]
mod tests {
    //! Properties of `plan` over generated desired sets and observed states.

    use std::collections::BTreeSet;

    use petgraph::algo::{has_path_connecting, is_cyclic_directed};
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::testing::{converged, obj};
    use super::*;
    use crate::manifest::{
        ContainerSpec, Dependency, ImageSpec, Memory, NetworkSpec, Resources, RestartPolicy, VolumeMount, VolumeSpec,
    };

    /// The raw choices one scenario is built from. Each byte is read modulo
    /// the number of options, so every value means something and shrinks well.
    #[derive(Debug, Clone)]
    struct Draw {
        images: Vec<u8>,
        volumes: Vec<u8>,
        networks: Vec<u8>,
        /// image, volume mask, network mask, dependsOn mask, memory, command
        containers: Vec<[u8; 6]>,
        /// Per desired object (cycled): presence, run state, exit code, perturbation.
        observed: Vec<[u8; 4]>,
        /// Observed objects no manifest asks for: kind, image, volume, network
        /// and dependsOn choices, run state (bit 3: spec unknown), exit code.
        orphans: Vec<[u8; 6]>,
    }

    fn draws() -> impl Strategy<Value = Draw> {
        (
            vec(any::<u8>(), 1..4),
            vec(any::<u8>(), 0..3),
            vec(any::<u8>(), 0..3),
            vec(any::<[u8; 6]>(), 0..7),
            vec(any::<[u8; 4]>(), 16),
            vec(any::<[u8; 6]>(), 0..6),
        )
            .prop_map(|(images, volumes, networks, containers, observed, orphans)| Draw {
                images,
                volumes,
                networks,
                containers,
                observed,
                orphans,
            })
    }

    fn bit(mask: u8, i: usize) -> bool {
        i < 8 && (mask >> i) & 1 == 1
    }

    fn mount(volume: String) -> VolumeMount {
        VolumeMount {
            path: Some(format!("/mnt/{volume}")),
            volume: Some(volume),
            ..Default::default()
        }
    }

    fn desired(d: &Draw) -> Vec<Object> {
        let mut out = Vec::new();
        for (i, b) in d.images.iter().enumerate() {
            let spec = ImageSpec {
                import: Some(format!("/srv/{}.tar", b % 3)),
                cmd: if b & 4 != 0 { vec!["sh".into()] } else { vec![] },
                ..Default::default()
            };
            out.push(obj(format!("img{i}"), Spec::Image(spec)));
        }
        for (i, b) in d.volumes.iter().enumerate() {
            let driver = (b & 1 == 1).then(|| "local".to_string());
            out.push(obj(
                format!("vol{i}"),
                Spec::Volume(VolumeSpec {
                    driver,
                    ..Default::default()
                }),
            ));
        }
        for (i, b) in d.networks.iter().enumerate() {
            let spec = NetworkSpec {
                subnet: Some(format!("10.{}.0.0/24", b % 4)),
                ..Default::default()
            };
            out.push(obj(format!("net{i}"), Spec::Network(spec)));
        }
        for (i, &[img, vols, nets, deps, mem, cmd]) in d.containers.iter().enumerate() {
            let image = if img % 8 == 7 {
                "registry.example/app".to_string()
            } else {
                format!("img{}", usize::from(img) % d.images.len())
            };
            let spec = ContainerSpec {
                image,
                command: vec!["sleep".into(), (cmd % 3).to_string()],
                volumes: (0..d.volumes.len())
                    .filter(|&j| bit(vols, j))
                    .map(|j| mount(format!("vol{j}")))
                    .collect(),
                networks: (0..d.networks.len())
                    .filter(|&j| bit(nets, j))
                    .map(|j| format!("net{j}").into())
                    .collect(),
                // Only on containers with a smaller index: acyclic.
                depends_on: (0..i)
                    .filter(|&j| bit(deps, j))
                    .map(|j| Dependency {
                        name: format!("c{j}"),
                        condition: Default::default(),
                    })
                    .collect(),
                resources: (mem % 3 != 0).then(|| Resources {
                    memory: Some(Memory(u64::from(mem % 4 + 1) << 20)),
                    ..Default::default()
                }),
                restart_policy: match cmd / 64 {
                    0 => RestartPolicy::Never,
                    1 => RestartPolicy::OnFailure,
                    _ => RestartPolicy::Always,
                },
                ..Default::default()
            };
            out.push(obj(format!("c{i}"), Spec::Container(spec)));
        }
        out
    }

    fn run_state(kind: Kind, state: u8, code: u8) -> RunState {
        if kind != Kind::Container {
            return RunState::Present;
        }
        match state % 4 {
            0 => RunState::Running,
            1 => RunState::Exited {
                code: code.into(),
                restart_due: true,
            },
            2 => RunState::Exited {
                code: code.into(),
                restart_due: false,
            },
            _ => RunState::Present,
        }
    }

    /// An older version of `spec`; containers may have used an orphan's image
    /// or volume (named `o<n>`), so replacing them must precede those deletes.
    fn perturb(spec: &Spec, twist: u8) -> Spec {
        let mut spec = spec.clone();
        match &mut spec {
            Spec::Image(i) => i.import = Some("/srv/old.tar".into()),
            Spec::Volume(v) => v.driver = Some("old".into()),
            Spec::Network(n) => n.subnet = Some("192.168.0.0/24".into()),
            Spec::Container(c) => {
                c.resources = Some(Resources {
                    memory: Some(Memory(999 << 20)),
                    ..Default::default()
                });
                if twist & 1 == 1 {
                    c.image = format!("o{}", twist / 2 % 6);
                }
                if twist & 2 == 2 {
                    c.volumes.push(mount(format!("o{}", twist / 4 % 6)));
                }
                if twist & 4 == 4 {
                    c.depends_on.push(Dependency {
                        name: format!("o{}", twist / 8 % 6),
                        condition: Default::default(),
                    });
                }
            }
        }
        spec
    }

    fn observed(d: &Draw, desired: &[Object]) -> Observed {
        let hashes = spec_hashes(desired);
        let stale = "0".repeat(64);
        let mut objects = BTreeMap::new();
        for (i, o) in desired.iter().enumerate() {
            let [presence, state, code, twist] = d.observed[i % d.observed.len()];
            let key = ObjectKey::new(o.kind(), o.name());
            let state = run_state(key.kind, state, code);
            let seen = match presence % 5 {
                0 => continue,
                1 | 2 => ObservedObject {
                    held_back: None,
                    spec_hash: hashes[&key].clone(),
                    spec: Some(o.spec.clone()),
                    state,
                },
                3 => ObservedObject {
                    held_back: None,
                    spec_hash: stale.clone(),
                    spec: Some(perturb(&o.spec, twist)),
                    state,
                },
                _ => ObservedObject {
                    held_back: None,
                    spec_hash: stale.clone(),
                    spec: None,
                    state,
                },
            };
            objects.insert(key, seen);
        }
        for (j, &[kind, a, b, c, state, code]) in d.orphans.iter().enumerate() {
            let kind = Kind::ALL[usize::from(kind) % 4];
            let spec = match kind {
                Kind::Image => Spec::Image(ImageSpec {
                    import: Some(format!("/srv/o{a}.tar")),
                    ..Default::default()
                }),
                Kind::Volume => Spec::Volume(VolumeSpec::default()),
                Kind::Network => Spec::Network(NetworkSpec::default()),
                Kind::Container => Spec::Container(ContainerSpec {
                    image: if a & 1 == 1 {
                        format!("img{}", a / 2 % 3)
                    } else {
                        format!("o{}", a / 2 % 6)
                    },
                    volumes: vec![mount(if b & 1 == 1 {
                        format!("vol{}", b / 2 % 3)
                    } else {
                        format!("o{}", b / 2 % 6)
                    })],
                    networks: vec![format!("o{}", c % 6).into(), format!("net{}", c / 8 % 3).into()],
                    // Orphans only depend on orphans with a smaller index, or
                    // on desired containers: acyclic.
                    depends_on: (0..j)
                        .filter(|&k| bit(c, k))
                        .map(|k| format!("o{k}"))
                        .chain([format!("c{}", b % 4)])
                        .map(|name| Dependency {
                            name,
                            condition: Default::default(),
                        })
                        .collect(),
                    ..Default::default()
                }),
            };
            let seen = ObservedObject {
                held_back: None,
                spec_hash: "1".repeat(64),
                spec: (state & 8 == 0).then_some(spec),
                state: run_state(kind, state, code),
            };
            objects.insert(ObjectKey::new(kind, format!("o{j}")), seen);
        }
        Observed { objects }
    }

    /// What a container needs, written out again rather than shared with the
    /// code under test.
    fn needs(c: &ContainerSpec) -> Vec<ObjectKey> {
        let mut keys = vec![ObjectKey::new(Kind::Image, c.image.as_str())];
        keys.extend(
            c.volumes
                .iter()
                .filter_map(|m| m.volume.as_deref())
                .map(|v| ObjectKey::new(Kind::Volume, v)),
        );
        keys.extend(c.networks.iter().map(|n| ObjectKey::new(Kind::Network, n.name())));
        keys.extend(
            c.depends_on
                .iter()
                .map(|d| ObjectKey::new(Kind::Container, d.name.as_str())),
        );
        keys
    }

    fn edges_by_key(plan: &Plan) -> BTreeSet<(ObjectKey, ObjectKey)> {
        plan.graph
            .edge_indices()
            .filter_map(|e| plan.graph.edge_endpoints(e))
            .map(|(a, b)| (plan.graph[a].key.clone(), plan.graph[b].key.clone()))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn every_action_runs_after_everything_it_depends_on(d in draws()) {
            let desired = desired(&d);
            let observed = observed(&d, &desired);
            let plan = plan(&desired, &observed);
            let nodes: BTreeMap<&ObjectKey, NodeIndex> =
                plan.graph.node_indices().map(|n| (&plan.graph[n].key, n)).collect();
            let wanted: BTreeMap<ObjectKey, &Object> =
                desired.iter().map(|o| (ObjectKey::new(o.kind(), o.name()), o)).collect();
            let path = |a: NodeIndex, b: NodeIndex| has_path_connecting(&plan.graph, a, b, None);

            for (&key, &n) in &nodes {
                let verb = plan.graph[n].verb;
                // Made after what the desired container needs.
                if let (true, Some(Spec::Container(c))) = (verb != Verb::Delete, wanted.get(key).map(|o| &o.spec)) {
                    for dep in needs(c) {
                        if let Some(&m) = nodes.get(&dep) {
                            if plan.graph[m].verb != Verb::Delete {
                                prop_assert!(path(m, n), "{dep} must come before {key}");
                            }
                        }
                    }
                }
                // Gone before what the old container used is deleted.
                if let Some(Spec::Container(c)) = observed.objects.get(key).and_then(|o| o.spec.as_ref()) {
                    for dep in needs(c) {
                        if let Some(&m) = nodes.get(&dep) {
                            if plan.graph[m].verb == Verb::Delete {
                                prop_assert!(path(n, m), "{key} must come before deleting {dep}");
                            }
                        }
                    }
                }
            }
            // And the order given to the executor honours every edge.
            let position: BTreeMap<NodeIndex, usize> =
                plan.order().into_iter().enumerate().map(|(i, n)| (n, i)).collect();
            for e in plan.graph.edge_indices() {
                let (a, b) = plan.graph.edge_endpoints(e).unwrap();
                prop_assert!(position[&a] < position[&b]);
            }
        }

        #[test]
        fn one_pass_of_the_plan_converges(d in draws()) {
            let desired = desired(&d);
            let observed = observed(&d, &desired);
            let first = plan(&desired, &observed);
            let after = apply_to(&observed, &first);
            let second = plan(&desired, &after);
            prop_assert!(second.is_empty(), "left to do: {:?}", describe(&second));
            // Nothing but desired objects is left.
            let keys: BTreeSet<ObjectKey> = desired.iter().map(|o| ObjectKey::new(o.kind(), o.name())).collect();
            prop_assert_eq!(after.objects.keys().cloned().collect::<BTreeSet<_>>(), keys);
        }

        #[test]
        fn a_converged_state_plans_nothing(d in draws()) {
            let desired = desired(&d);
            let plan = plan(&desired, &converged(&desired));
            prop_assert!(plan.is_empty(), "{:?}", describe(&plan));
        }

        #[test]
        fn the_plan_is_acyclic(d in draws()) {
            let desired = desired(&d);
            let plan = plan(&desired, &observed(&d, &desired));
            prop_assert!(!is_cyclic_directed(&plan.graph));
            prop_assert_eq!(plan.order().len(), plan.graph.node_count());
        }

        #[test]
        fn the_plan_does_not_depend_on_the_order_of_the_desired_set(d in draws()) {
            let desired = desired(&d);
            let observed = observed(&d, &desired);
            let mut reversed = desired.clone();
            reversed.reverse();
            let (a, b) = (plan(&desired, &observed), plan(&reversed, &observed));
            prop_assert_eq!(describe(&a), describe(&b));
            prop_assert_eq!(edges_by_key(&a), edges_by_key(&b));
            let keys = |p: &Plan| p.graph.node_indices().map(|n| p.graph[n].key.clone()).collect::<Vec<_>>();
            let sorted: Vec<ObjectKey> = keys(&a).into_iter().collect::<BTreeSet<_>>().into_iter().collect();
            prop_assert_eq!(keys(&a), sorted);
        }

        #[test]
        fn every_orphan_is_deleted_and_nothing_desired_is(d in draws()) {
            let desired = desired(&d);
            let observed = observed(&d, &desired);
            let plan = plan(&desired, &observed);
            let wanted: BTreeSet<ObjectKey> = desired.iter().map(|o| ObjectKey::new(o.kind(), o.name())).collect();
            let deleted: BTreeSet<ObjectKey> =
                plan.ordered().into_iter().filter(|a| a.verb == Verb::Delete).map(|a| a.key.clone()).collect();
            let orphans: BTreeSet<ObjectKey> =
                observed.objects.keys().filter(|k| !wanted.contains(k)).cloned().collect();
            prop_assert_eq!(deleted, orphans);
        }
    }

    #[test]
    fn stopping_a_container_leaves_it_exited_with_no_restart_due() {
        let key = ObjectKey::new(Kind::Container, "web");
        let mut observed = Observed::default();
        observed.objects.insert(
            key.clone(),
            ObservedObject {
                held_back: None,
                spec_hash: "h".into(),
                spec: None,
                state: RunState::Running,
            },
        );
        let mut plan = Plan::default();
        plan.graph.add_node(Action {
            verb: Verb::Stop,
            key: key.clone(),
            reason: "asked to".into(),
            object: None,
            spec_hash: None,
            launch: Launch::Start,
        });
        let after = apply_to(&observed, &plan);
        assert_eq!(
            after.objects[&key].state,
            RunState::Exited {
                code: 0,
                restart_due: false
            }
        );
        assert_eq!(after.objects[&key].spec_hash, "h");
    }
}
