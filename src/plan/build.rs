//! Building the plan: one action per object that is not as desired, and the
//! edges that order them.
//!
//! Edges, `a -> b` meaning `a` finishes before `b` starts:
//!
//! 1. A container's Start or Replace comes after the Create or Replace of the
//!    image, volumes and networks its desired spec uses, and after the Start or
//!    Replace of each container it `dependsOn`.
//! 2. Whatever a container action does to the old instance of that container
//!    (Delete tears it down, Replace tears it down and makes it again) comes
//!    before the Delete of anything the old instance used, as read from its
//!    observed spec: image, volumes, networks and `dependsOn` containers. So
//!    deletes run in reverse dependency order, dependants first, and a volume
//!    is never deleted while the container that mounted it still runs.
//!
//! Rule 1 joins actions on desired objects; rule 2 ends at Deletes, and Deletes
//! only lead to Deletes. A cycle can therefore only come from a `dependsOn`
//! cycle in the desired set (which `manifest::validate` rejects) or among the
//! observed specs of deleted containers. Either way an edge that would close a
//! cycle is left out, so the plan always has an order.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::algo::{has_path_connecting, DfsSpace};
use petgraph::graph::NodeIndex;

use super::hash::{hashed_inputs, prerequisites, spec_hashes};
use super::{diff, Action, Launch, ObjectKey, Observed, ObservedObject, Plan, RunState, Verb};
use crate::manifest::{Kind, Object, RestartPolicy, Spec};

/// The plan that takes `observed` to `desired`.
///
/// - desired, not observed: Create (images, volumes, networks) or Start
///   (containers: create and start);
/// - observed with another spec hash: Replace, saying which fields or which
///   image or volume changed;
/// - a container that exited and whose restart is due: Start; one that exited
///   with no restart due, or that runs, is left alone;
/// - observed, not desired: Delete.
///
/// Same inputs give the same graph: nodes are added sorted by kind then name,
/// and edges in a fixed order. A converged state gives an empty plan.
pub fn plan(desired: &[Object], observed: &Observed) -> Plan {
    let hashes = spec_hashes(desired);
    let wanted: BTreeMap<ObjectKey, &Object> = desired
        .iter()
        .map(|o| (ObjectKey::new(o.kind(), o.name()), o))
        .collect();
    let keys: BTreeSet<&ObjectKey> = wanted.keys().chain(observed.objects.keys()).collect();

    let mut plan = Plan::default();
    let mut nodes: BTreeMap<ObjectKey, NodeIndex> = BTreeMap::new();
    for key in keys {
        let want = wanted.get(key).copied();
        let seen = observed.objects.get(key);
        if let Some(action) = decide(key, want, seen, &hashes, observed) {
            nodes.insert(key.clone(), plan.graph.add_node(action));
        }
    }

    let verb_of = |key: &ObjectKey| nodes.get(key).map(|&n| (n, plan.graph[n].verb));
    let mut edges: Vec<(NodeIndex, NodeIndex)> = Vec::new();
    for (key, &node) in &nodes {
        if key.kind != Kind::Container {
            continue;
        }
        // Rule 1: what the new container needs is made first.
        if let Some(Spec::Container(new)) = wanted.get(key).map(|o| &o.spec) {
            for dep in prerequisites(new) {
                if let Some((dep_node, verb)) = verb_of(&dep) {
                    if verb != Verb::Delete {
                        edges.push((dep_node, node));
                    }
                }
            }
        }
        // Rule 2: what the old container used is deleted after it is gone.
        if let Some(Spec::Container(old)) = observed.objects.get(key).and_then(|o| o.spec.as_ref()) {
            for dep in prerequisites(old) {
                if let Some((dep_node, Verb::Delete)) = verb_of(&dep) {
                    edges.push((node, dep_node));
                }
            }
        }
    }

    let mut space = DfsSpace::new(&plan.graph);
    for (from, to) in edges {
        // Leave out an edge that would close a cycle (see the module doc).
        if !has_path_connecting(&plan.graph, to, from, Some(&mut space)) {
            plan.graph.add_edge(from, to, ());
        }
    }
    plan
}

/// The reason of a replace that rebuilds an Image because its build
/// context's files changed (and nothing else in its spec).
pub const CONTEXT_CHANGED: &str = "context changed";

/// [`CONTEXT_CHANGED`] naming the first five of the `changed` paths.
pub fn context_changed(changed: &[String]) -> String {
    const SHOWN: usize = 5;
    match changed.len() {
        0 => CONTEXT_CHANGED.to_string(),
        n if n <= SHOWN => format!("{CONTEXT_CHANGED} ({})", changed.join(", ")),
        n => format!(
            "{CONTEXT_CHANGED} ({}, … {} more)",
            changed[..SHOWN].join(", "),
            n - SHOWN
        ),
    }
}

/// One line per action in execution order, as `berth diff` prints them:
/// `replace container/web: spec.resources.memory: 64Mi -> 128Mi`.
pub fn describe(plan: &Plan) -> Vec<String> {
    plan.ordered()
        .into_iter()
        .map(|a| match a.verb {
            Verb::Update => format!("update {} (in place): {}", a.key, a.reason),
            Verb::Replace if a.reason.starts_with(CONTEXT_CHANGED) => format!("build {}: {}", a.key, a.reason),
            verb => format!("{verb} {}: {}", a.key, a.reason),
        })
        .collect()
}

/// The action for one key, or `None` when it is as desired.
fn decide(
    key: &ObjectKey,
    want: Option<&Object>,
    seen: Option<&ObservedObject>,
    hashes: &BTreeMap<ObjectKey, String>,
    observed: &Observed,
) -> Option<Action> {
    let Some(want) = want else {
        return seen.map(|_| Action {
            verb: Verb::Delete,
            key: key.clone(),
            reason: format!("{key} is no longer in any manifest"),
            object: None,
            spec_hash: None,
            launch: Launch::Start,
        });
    };
    let hash = &hashes[key];
    let act = |verb, reason| {
        Some(Action {
            verb,
            key: key.clone(),
            reason,
            object: Some(want.clone()),
            spec_hash: Some(hash.clone()),
            launch: Launch::Start,
        })
    };
    let is_container = key.kind == Kind::Container;
    let Some(seen) = seen else {
        let verb = if is_container { Verb::Start } else { Verb::Create };
        return act(verb, format!("{key} does not exist"));
    };
    if &seen.spec_hash != hash {
        // A start-first rollout to this very spec failed: the old container
        // keeps serving until the spec changes again.
        if seen.held_back.as_ref() == Some(hash) {
            return None;
        }
        if let Some(changes) = in_place_changes(want, seen, hashes, observed) {
            return act(Verb::Update, changes);
        }
        return act(Verb::Replace, replace_reason(want, seen, hashes, observed));
    }
    if !is_container {
        return None;
    }
    match seen.state {
        RunState::Running => None,
        RunState::Exited { restart_due: false, .. } => None,
        RunState::Exited {
            code,
            restart_due: true,
        } => {
            let policy = match &want.spec {
                Spec::Container(c) => c.restart_policy,
                _ => RestartPolicy::default(),
            };
            let policy = restart_policy_name(policy);
            act(
                Verb::Start,
                format!("exited with code {code}; restarting per restartPolicy {policy}"),
            )
        }
        // Created but never started (or its start failed half-way).
        RunState::Present => act(Verb::Start, format!("{key} exists but is not running")),
    }
}

/// The changes of a running container that can be made to it in place, as
/// `docker update` makes them: only its resources (each limit changed or
/// added, none removed: a removed one would need its old value undone) and
/// its restart policy, with nothing it is made from changed. None when it
/// must be replaced.
fn in_place_changes(
    want: &Object,
    seen: &ObservedObject,
    hashes: &BTreeMap<ObjectKey, String>,
    observed: &Observed,
) -> Option<String> {
    // One that does not run is made again anyway when it starts: a replace
    // then keeps the restart bookkeeping as it was.
    if seen.state != RunState::Running {
        return None;
    }
    let (Spec::Container(new), Some(Spec::Container(old))) = (&want.spec, &seen.spec) else {
        return None;
    };
    let mut same_but_updatable = old.clone();
    same_but_updatable.resources = new.resources.clone();
    same_but_updatable.restart_policy = new.restart_policy;
    // How a later change rolls out changes nothing that runs now.
    same_but_updatable.update = new.update.clone();
    if same_but_updatable != *new {
        return None;
    }
    let as_json = |r: &Option<crate::manifest::Resources>| serde_json::to_value(r.clone().unwrap_or_default()).ok();
    let (Some(serde_json::Value::Object(before)), Some(serde_json::Value::Object(after))) =
        (as_json(&old.resources), as_json(&new.resources))
    else {
        return None;
    };
    for (field, value) in &before {
        match after.get(field) {
            None => return None,
            // A device's limit left out of a list would stay in the kernel.
            Some(now) if value.is_array() && now != value => return None,
            _ => {}
        }
    }
    for dep in hashed_inputs(old).intersection(&hashed_inputs(new)) {
        let current = observed.objects.get(dep).map(|o| &o.spec_hash);
        if hashes.get(dep).is_some_and(|h| current != Some(h)) {
            return None;
        }
    }
    let changes = diff::changes(&seen.spec.clone()?, &want.spec);
    (!changes.is_empty()).then(|| changes.join("; "))
}

/// Names what changed: the fields of the spec, and for a container the image
/// or volumes (still used, as before) whose spec changed.
fn replace_reason(
    want: &Object,
    seen: &ObservedObject,
    hashes: &BTreeMap<ObjectKey, String>,
    observed: &Observed,
) -> String {
    let Some(old) = &seen.spec else {
        return "spec hash changed".into();
    };
    if let (Spec::Image(new), Spec::Image(was)) = (&want.spec, old) {
        if let (Some(nb), Some(wb)) = (&new.build, &was.build) {
            let strip = |s: &crate::manifest::ImageSpec| {
                let mut s = s.clone();
                if let Some(b) = &mut s.build {
                    b.context_digest = None;
                }
                s
            };
            if nb.context_digest != wb.context_digest && strip(new) == strip(was) {
                return CONTEXT_CHANGED.into();
            }
        }
    }
    let mut parts = diff::changes(old, &want.spec);
    if let (Spec::Container(new), Spec::Container(old)) = (&want.spec, old) {
        let still_used = hashed_inputs(new);
        for dep in hashed_inputs(old).intersection(&still_used) {
            let Some(desired_hash) = hashes.get(dep) else { continue };
            let current = observed.objects.get(dep).map(|o| &o.spec_hash);
            if current != Some(desired_hash) {
                parts.push(format!("{dep} changed"));
            }
        }
    }
    if parts.is_empty() {
        "spec hash changed".into()
    } else {
        parts.join("; ")
    }
}

fn restart_policy_name(p: RestartPolicy) -> &'static str {
    match p {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "never",
        RestartPolicy::UnlessStopped => "unless-stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{
        ContainerSpec, Dependency, DependencyCondition, ImageSpec, Memory, NetworkSpec, Resources, VolumeMount,
        VolumeSpec,
    };
    use crate::plan::apply_to;
    use crate::plan::testing::{converged, obj};

    fn image(name: &str, import: &str) -> Object {
        obj(
            name,
            Spec::Image(ImageSpec {
                import: Some(import.into()),
                ..Default::default()
            }),
        )
    }

    fn volume(name: &str) -> Object {
        obj(name, Spec::Volume(VolumeSpec::default()))
    }

    fn network(name: &str) -> Object {
        obj(
            name,
            Spec::Network(NetworkSpec {
                driver: Some("bridge".into()),
                ..Default::default()
            }),
        )
    }

    fn container(name: &str, image: &str, f: impl FnOnce(&mut ContainerSpec)) -> Object {
        let mut c = ContainerSpec {
            image: image.into(),
            command: vec!["sleep".into(), "1000".into()],
            ..Default::default()
        };
        f(&mut c);
        obj(name, Spec::Container(c))
    }

    fn depends_on(names: &[&str]) -> Vec<Dependency> {
        names
            .iter()
            .map(|n| Dependency {
                name: (*n).into(),
                condition: DependencyCondition::Started,
            })
            .collect()
    }

    fn memory(mi: u64) -> Option<Resources> {
        Some(Resources {
            memory: Some(Memory(mi << 20)),
            ..Default::default()
        })
    }

    /// busybox image, data volume, backend network, db and web (web uses all
    /// of them and depends on db).
    fn shop() -> Vec<Object> {
        vec![
            image("busybox", "/srv/busybox.tar"),
            volume("data"),
            network("backend"),
            container("db", "busybox", |c| {
                c.volumes = vec![VolumeMount {
                    volume: Some("data".into()),
                    path: Some("/data".into()),
                    ..Default::default()
                }];
            }),
            container("web", "busybox", |c| {
                c.networks = vec!["backend".into()];
                c.depends_on = depends_on(&["db"]);
                c.resources = memory(64);
            }),
        ]
    }

    fn key(kind: Kind, name: &str) -> ObjectKey {
        ObjectKey::new(kind, name)
    }

    fn node(plan: &Plan, k: &ObjectKey) -> NodeIndex {
        plan.graph
            .node_indices()
            .find(|&n| &plan.graph[n].key == k)
            .unwrap_or_else(|| panic!("no action for {k}"))
    }

    fn action<'a>(plan: &'a Plan, k: &ObjectKey) -> &'a Action {
        &plan.graph[node(plan, k)]
    }

    fn runs_before(plan: &Plan, a: &ObjectKey, b: &ObjectKey) -> bool {
        has_path_connecting(&plan.graph, node(plan, a), node(plan, b), None)
    }

    #[test]
    fn an_empty_host_gets_everything_created_in_dependency_order() {
        let desired = shop();
        let plan = plan(&desired, &Observed::default());
        assert_eq!(
            describe(&plan),
            [
                "create image/busybox: image/busybox does not exist",
                "create network/backend: network/backend does not exist",
                "create volume/data: volume/data does not exist",
                "start container/db: container/db does not exist",
                "start container/web: container/web does not exist",
            ]
        );
        let (img, vol, net) = (
            key(Kind::Image, "busybox"),
            key(Kind::Volume, "data"),
            key(Kind::Network, "backend"),
        );
        let (db, web) = (key(Kind::Container, "db"), key(Kind::Container, "web"));
        for (before, after) in [(&img, &db), (&vol, &db), (&img, &web), (&net, &web), (&db, &web)] {
            assert!(runs_before(&plan, before, after), "{before} must run before {after}");
        }
        assert!(!runs_before(&plan, &web, &db));
        let hashes = spec_hashes(&desired);
        for a in plan.ordered() {
            assert_eq!(a.spec_hash.as_ref(), Some(&hashes[&a.key]));
            assert_eq!(a.object.as_ref().map(|o| o.name()), Some(a.key.name.as_str()));
        }
    }

    #[test]
    fn an_unchanged_desired_state_plans_nothing() {
        let desired = shop();
        assert!(plan(&desired, &converged(&desired)).is_empty());
    }

    #[test]
    fn changed_labels_plan_nothing() {
        let desired = shop();
        let observed = converged(&desired);
        let mut relabelled = desired.clone();
        relabelled[4].metadata.labels.insert("tier".into(), "front".into());
        assert!(plan(&relabelled, &observed).is_empty());
    }

    #[test]
    fn a_changed_memory_limit_updates_the_container_in_place_naming_the_field() {
        let observed = converged(&shop());
        let mut desired = shop();
        let Spec::Container(web) = &mut desired[4].spec else {
            unreachable!()
        };
        web.resources = memory(96);
        web.restart_policy = RestartPolicy::OnFailure;

        let plan = plan(&desired, &observed);
        assert_eq!(
            describe(&plan),
            ["update container/web (in place): spec.resources.memory: 64Mi -> 96Mi; spec.restartPolicy: always -> on-failure"]
        );
        let a = action(&plan, &key(Kind::Container, "web"));
        assert_eq!(a.verb, Verb::Update);
        assert_eq!(a.object.as_ref(), Some(&desired[4]));
        assert_eq!(a.spec_hash.as_ref(), Some(&spec_hashes(&desired)[&a.key]));
        // Done, the state is converged.
        assert!(super::super::plan(&desired, &crate::plan::apply_to(&observed, &plan)).is_empty());
    }

    #[test]
    fn a_removed_limit_or_another_change_beside_one_replaces_the_container() {
        let observed = converged(&shop());
        let mut desired = shop();
        let Spec::Container(web) = &mut desired[4].spec else {
            unreachable!()
        };
        web.resources = None;
        let a = plan(&desired, &observed);
        assert_eq!(action(&a, &key(Kind::Container, "web")).verb, Verb::Replace);

        let mut desired = shop();
        let Spec::Container(web) = &mut desired[4].spec else {
            unreachable!()
        };
        web.resources = memory(128);
        web.env.insert("MODE".into(), "prod".into());
        let plan = plan(&desired, &observed);
        assert_eq!(
            describe(&plan),
            ["replace container/web: spec.env.MODE: (unset) -> prod; spec.resources.memory: 64Mi -> 128Mi"]
        );
        let a = action(&plan, &key(Kind::Container, "web"));
        assert_eq!(a.verb, Verb::Replace);
        assert_eq!(a.object.as_ref(), Some(&desired[4]));
        assert_eq!(a.spec_hash.as_ref(), Some(&spec_hashes(&desired)[&a.key]));
    }

    #[test]
    fn a_changed_image_replaces_the_image_then_every_container_using_it() {
        let observed = converged(&shop());
        let mut desired = shop();
        desired[0] = image("busybox", "/srv/busybox-1.37.tar");

        let plan = plan(&desired, &observed);
        let img = key(Kind::Image, "busybox");
        assert_eq!(action(&plan, &img).verb, Verb::Replace);
        assert_eq!(
            action(&plan, &img).reason,
            "spec.import: /srv/busybox.tar -> /srv/busybox-1.37.tar"
        );
        for name in ["db", "web"] {
            let c = key(Kind::Container, name);
            let a = action(&plan, &c);
            assert_eq!(a.verb, Verb::Replace);
            assert_eq!(a.reason, "image/busybox changed");
            assert!(runs_before(&plan, &img, &c));
        }
        // web still waits for db, as on first start.
        assert!(runs_before(
            &plan,
            &key(Kind::Container, "db"),
            &key(Kind::Container, "web")
        ));
        assert_eq!(plan.graph.node_count(), 3);
    }

    #[test]
    fn a_changed_volume_replaces_the_volume_then_the_container_mounting_it() {
        let observed = converged(&shop());
        let mut desired = shop();
        desired[1] = obj(
            "data",
            Spec::Volume(VolumeSpec {
                driver: Some("local".into()),
                ..Default::default()
            }),
        );
        let plan = plan(&desired, &observed);
        assert_eq!(
            describe(&plan),
            [
                "replace volume/data: spec.driver: (unset) -> local",
                "replace container/db: volume/data changed",
            ]
        );
    }

    #[test]
    fn a_changed_network_is_replaced_and_so_are_its_containers() {
        let observed = converged(&shop());
        let mut desired = shop();
        desired[2] = obj(
            "backend",
            Spec::Network(NetworkSpec {
                driver: Some("bridge".into()),
                subnet: Some("10.88.0.0/24".into()),
                ..Default::default()
            }),
        );
        let plan = plan(&desired, &observed);
        assert_eq!(
            describe(&plan),
            [
                "replace network/backend: spec.subnet: (unset) -> 10.88.0.0/24",
                "replace container/web: network/backend changed"
            ]
        );
    }

    #[test]
    fn removed_objects_are_deleted_dependants_first() {
        let observed = converged(&shop());
        let plan = plan(&[], &observed);
        assert_eq!(plan.graph.node_count(), 5);
        for a in plan.ordered() {
            assert_eq!(a.verb, Verb::Delete);
            assert_eq!(a.reason, format!("{} is no longer in any manifest", a.key));
            assert_eq!((&a.object, &a.spec_hash), (&None, &None));
        }
        let (img, vol, net) = (
            key(Kind::Image, "busybox"),
            key(Kind::Volume, "data"),
            key(Kind::Network, "backend"),
        );
        let (db, web) = (key(Kind::Container, "db"), key(Kind::Container, "web"));
        for (before, after) in [(&web, &db), (&web, &img), (&web, &net), (&db, &img), (&db, &vol)] {
            assert!(
                runs_before(&plan, before, after),
                "{before} must be deleted before {after}"
            );
        }
        assert_eq!(
            describe(&plan).first().map(String::as_str),
            Some("delete container/web: container/web is no longer in any manifest")
        );
    }

    #[test]
    fn removing_one_container_leaves_the_rest_alone() {
        let observed = converged(&shop());
        let desired: Vec<Object> = shop().into_iter().filter(|o| o.name() != "web").collect();
        assert_eq!(
            describe(&plan(&desired, &observed)),
            ["delete container/web: container/web is no longer in any manifest"]
        );
    }

    #[test]
    fn a_replaced_container_is_torn_down_before_a_volume_it_no_longer_uses_is_deleted() {
        let observed = converged(&shop());
        let mut desired: Vec<Object> = shop().into_iter().filter(|o| o.name() != "data").collect();
        let Spec::Container(db) = &mut desired[2].spec else {
            unreachable!()
        };
        db.volumes.clear();

        let plan = plan(&desired, &observed);
        let (db, vol) = (key(Kind::Container, "db"), key(Kind::Volume, "data"));
        assert_eq!(action(&plan, &db).verb, Verb::Replace);
        assert!(
            action(&plan, &db).reason.starts_with("spec.volumes: "),
            "{}",
            action(&plan, &db).reason
        );
        assert_eq!(action(&plan, &vol).verb, Verb::Delete);
        assert!(runs_before(&plan, &db, &vol));
    }

    #[test]
    fn an_exited_container_due_for_restart_is_started() {
        let desired = shop();
        let mut observed = converged(&desired);
        let db = key(Kind::Container, "db");
        observed.objects.get_mut(&db).unwrap().state = RunState::Exited {
            code: 137,
            restart_due: true,
        };
        let plan = plan(&desired, &observed);
        assert_eq!(
            describe(&plan),
            ["start container/db: exited with code 137; restarting per restartPolicy always"]
        );
        assert_eq!(
            action(&plan, &db).spec_hash,
            Some(observed.objects[&db].spec_hash.clone())
        );
    }

    #[test]
    fn an_exited_container_not_due_for_restart_is_left_alone() {
        let mut desired = shop();
        let Spec::Container(db) = &mut desired[3].spec else {
            unreachable!()
        };
        db.restart_policy = RestartPolicy::Never;
        let mut observed = converged(&desired);
        observed.objects.get_mut(&key(Kind::Container, "db")).unwrap().state = RunState::Exited {
            code: 0,
            restart_due: false,
        };
        assert!(plan(&desired, &observed).is_empty());
    }

    #[test]
    fn an_exited_container_with_a_changed_spec_is_replaced() {
        let observed = {
            let mut o = converged(&shop());
            o.objects.get_mut(&key(Kind::Container, "web")).unwrap().state = RunState::Exited {
                code: 1,
                restart_due: false,
            };
            o
        };
        let mut desired = shop();
        let Spec::Container(web) = &mut desired[4].spec else {
            unreachable!()
        };
        web.command = vec!["httpd".into()];
        assert_eq!(
            describe(&plan(&desired, &observed)),
            [r#"replace container/web: spec.command: ["sleep","1000"] -> ["httpd"]"#]
        );
    }

    #[test]
    fn a_created_but_not_running_container_is_started() {
        let desired = shop();
        let mut observed = converged(&desired);
        observed.objects.get_mut(&key(Kind::Container, "web")).unwrap().state = RunState::Present;
        assert_eq!(
            describe(&plan(&desired, &observed)),
            ["start container/web: container/web exists but is not running"]
        );
    }

    #[test]
    fn an_unknown_observed_spec_says_the_hash_changed() {
        let desired = shop();
        let mut observed = converged(&desired);
        let seen = observed.objects.get_mut(&key(Kind::Volume, "data")).unwrap();
        seen.spec = None;
        seen.spec_hash = "0".repeat(64);
        assert_eq!(
            describe(&plan(&desired, &observed)),
            ["replace volume/data: spec hash changed"]
        );
    }

    #[test]
    fn a_restart_waits_for_a_dependency_that_is_being_restarted() {
        let desired = shop();
        let mut observed = converged(&desired);
        for name in ["db", "web"] {
            observed.objects.get_mut(&key(Kind::Container, name)).unwrap().state = RunState::Exited {
                code: 1,
                restart_due: true,
            };
        }
        let plan = plan(&desired, &observed);
        assert!(runs_before(
            &plan,
            &key(Kind::Container, "db"),
            &key(Kind::Container, "web")
        ));
    }

    #[test]
    fn a_depends_on_cycle_still_gives_an_acyclic_plan() {
        let desired = vec![
            image("busybox", "/srv/busybox.tar"),
            container("a", "busybox", |c| c.depends_on = depends_on(&["b"])),
            container("b", "busybox", |c| c.depends_on = depends_on(&["a", "b"])),
        ];
        let plan = plan(&desired, &Observed::default());
        assert!(!petgraph::algo::is_cyclic_directed(&plan.graph));
        assert_eq!(plan.order().len(), 3);
    }

    #[test]
    fn applying_a_plan_converges_the_observed_state() {
        let mut desired = shop();
        let mut observed = converged(&desired);
        observed.objects.insert(
            key(Kind::Container, "old"),
            ObservedObject {
                held_back: None,
                spec_hash: "1".repeat(64),
                spec: None,
                state: RunState::Running,
            },
        );
        desired[0] = image("busybox", "/srv/other.tar");
        let after = apply_to(&observed, &plan(&desired, &observed));
        assert_eq!(after, converged(&desired));
    }

    #[test]
    fn an_image_that_is_not_an_image_object_adds_no_edge() {
        let desired = vec![container("web", "docker.io/library/busybox", |_| {})];
        let plan = plan(&desired, &Observed::default());
        assert_eq!(describe(&plan), ["start container/web: container/web does not exist"]);
        assert_eq!(plan.graph.edge_count(), 0);
    }
}
