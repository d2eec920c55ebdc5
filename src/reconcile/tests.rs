//! Reconcile decisions tested against the recording fake host: no root, no
//! kernel. Each test builds an engine over a fresh store in a temp dir.

use std::time::Duration;

use super::fake::{world, Call, Op, World};
use super::seams::NetworkHost;
use super::*;
use crate::manifest::{self, Kind, Object, Source};
use crate::plan::{ObjectKey, Verb};
use crate::runtime::{Probe, RunRecord};
use crate::wire::StatusKind;

fn objects(yaml: &str) -> Vec<Object> {
    if yaml.is_empty() {
        return Vec::new();
    }
    let src = Source {
        file: "test.yaml".into(),
        text: yaml.into(),
    };
    // Other sets' objects exist in these tests' stores.
    manifest::load(&[src], &|_, _| true).unwrap()
}

const IMAGE: &str =
    "apiVersion: berth/v1\nkind: Image\nmetadata: {name: bb}\nspec: {import: /img/bb.tar, cmd: [sleep, '1000']}\n";

fn container(name: &str, extra: &str) -> String {
    format!("---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec: {{image: bb{extra}}}\n")
}

impl World {
    fn apply(&self, source: &str, yaml: &str) {
        self.engine
            .store_set(source, &objects(yaml), true, &|_, _| None)
            .unwrap();
    }

    async fn pass(&self) -> PassReport {
        self.engine.reconcile().await.unwrap()
    }

    fn verbs(report: &PassReport) -> Vec<String> {
        report
            .outcomes
            .values()
            .map(|o| o.line.split(':').next().unwrap().to_string())
            .collect()
    }

    fn status(&self, kind: &str, name: &str) -> crate::wire::ObjectView {
        let kind = crate::manifest::Kind::parse_loose(kind).unwrap();
        self.engine.views(Some(kind), Some(name)).unwrap().remove(0)
    }

    /// Lets spawned shim watchers run.
    async fn settle(&self) {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_pass_imports_the_image_before_it_starts_the_containers() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("web", "")));
    w.pass().await;
    let calls = w.host.calls();
    let import = calls.iter().position(|c| matches!(c, Call::Import(_))).unwrap();
    let start = calls.iter().position(|c| *c == Call::Start("web".into())).unwrap();
    assert!(import < start, "{calls:?}");
    assert_eq!(w.status("container", "web").state, StatusKind::Ready);
}

#[tokio::test]
async fn a_converged_set_gives_an_empty_second_pass() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("web", "")));
    w.pass().await;
    w.host.clear_calls();
    let second = w.pass().await;
    assert!(second.outcomes.is_empty(), "{second:?}");
    assert!(w.host.calls().is_empty(), "{:?}", w.host.calls());
}

#[tokio::test]
async fn independent_containers_all_start_in_one_pass() {
    let w = world();
    w.apply(
        "s",
        &format!(
            "{IMAGE}{}{}{}",
            container("a", ""),
            container("b", ""),
            container("c", "")
        ),
    );
    let report = w.pass().await;
    for name in ["a", "b", "c"] {
        assert_eq!(w.host.starts(name), 1, "{name}");
    }
    assert_eq!(report.lines(OutcomeKind::Done).len(), 4);
}

#[tokio::test]
async fn a_failed_import_leaves_its_containers_waiting_and_unstarted() {
    let w = world();
    w.host.fail_import("/img/bb.tar", "disk on fire");
    w.apply("s", &format!("{IMAGE}{}", container("web", "")));
    let report = w.pass().await;
    assert_eq!(report.lines(OutcomeKind::Failed).len(), 1, "{report:?}");
    let waiting = report.lines(OutcomeKind::Waiting);
    assert_eq!(waiting, ["start container/web: waiting for image/bb"]);
    assert_eq!(w.host.starts("web"), 0);
    assert!(w.status("image", "bb").status.contains("disk on fire"));
    assert!(w
        .status("container", "web")
        .status
        .starts_with("Pending: waiting for image/bb"));
}

#[tokio::test]
async fn a_failed_import_is_not_retried_until_its_backoff_has_passed() {
    let w = world();
    w.host.fail_import("/img/bb.tar", "bad tar");
    w.apply("s", IMAGE);
    w.pass().await;
    w.pass().await;
    let imports = || w.host.calls().iter().filter(|c| matches!(c, Call::Import(_))).count();
    assert_eq!(imports(), 1, "retried within its backoff");
    tokio::time::sleep(Duration::from_millis(120)).await;
    w.pass().await;
    assert_eq!(imports(), 2);
}

#[tokio::test]
async fn the_pass_after_a_half_failed_one_converges_once_the_cause_is_gone() {
    let w = world();
    w.host.fail_start("b", "no such file");
    w.apply("s", &format!("{IMAGE}{}{}", container("a", ""), container("b", "")));
    let first = w.pass().await;
    assert_eq!(first.lines(OutcomeKind::Failed), ["start container/b: no such file"]);
    assert_eq!(w.status("container", "a").state, StatusKind::Ready);
    assert_eq!(w.status("container", "b").state, StatusKind::Failed);
    w.host.heal_start("b");
    tokio::time::sleep(Duration::from_millis(250)).await;
    w.pass().await;
    assert_eq!(w.status("container", "b").state, StatusKind::Ready);
    assert_eq!(w.host.starts("a"), 1, "the good one was left alone");
}

#[tokio::test]
async fn a_container_that_exits_under_always_is_restarted_after_its_backoff() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("web", ", restartPolicy: always")));
    w.pass().await;
    w.host.exit("web", 1);
    w.settle().await;
    let view = w.status("container", "web");
    assert!(view.status.starts_with("Restarting (exited 1"), "{}", view.status);
    w.pass().await;
    assert_eq!(w.host.starts("web"), 1, "restarted before its backoff");
    tokio::time::sleep(Duration::from_millis(120)).await;
    w.pass().await;
    assert_eq!(w.host.starts("web"), 2);
    assert_eq!(w.status("container", "web").restarts, 1);
}

#[tokio::test]
async fn a_container_stopped_by_hand_stays_stopped_under_always_until_started() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("web", ", restartPolicy: always")));
    w.pass().await;
    w.engine.stop_by_name("web").await;
    w.settle().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    w.pass().await;
    w.pass().await;
    assert_eq!(w.host.starts("web"), 1, "a pass restarted a container stopped by hand");
    let view = w.status("container", "web");
    assert!(view.status.starts_with("Stopped (exited"), "{}", view.status);
    assert_eq!(view.state, StatusKind::Ready);
    w.engine.start_by_name("web").await.unwrap();
    assert_eq!(w.host.starts("web"), 2);
    assert_eq!(w.status("container", "web").status, "Running");
    // The hold is gone: the policy applies again.
    w.host.exit("web", 1);
    w.settle().await;
    assert!(w.status("container", "web").status.starts_with("Restarting"));
}

#[tokio::test]
async fn a_clean_exit_under_on_failure_is_left_completed() {
    let w = world();
    w.apply(
        "s",
        &format!("{IMAGE}{}", container("job", ", restartPolicy: on-failure")),
    );
    w.pass().await;
    w.host.exit("job", 0);
    w.settle().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    w.pass().await;
    assert_eq!(w.host.starts("job"), 1);
    let view = w.status("container", "job");
    assert_eq!((view.status.as_str(), view.state), ("Completed", StatusKind::Ready));
}

#[tokio::test]
async fn a_failing_exit_under_never_shows_exited_and_is_not_restarted() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("job", ", restartPolicy: never")));
    w.pass().await;
    w.host.exit("job", 3);
    w.settle().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    w.pass().await;
    assert_eq!(w.host.starts("job"), 1);
    assert_eq!(w.status("container", "job").status, "Exited(3)");
}

#[tokio::test]
async fn a_start_failure_shows_the_setup_error_and_backs_off() {
    let w = world();
    w.host.fail_start("web", "exec: \"nope\": not found");
    w.apply("s", &format!("{IMAGE}{}", container("web", "")));
    w.pass().await;
    let view = w.status("container", "web");
    assert_eq!(view.state, StatusKind::Failed);
    assert!(view.status.contains("exec: \"nope\": not found"), "{}", view.status);
    w.pass().await;
    assert_eq!(w.host.starts("web"), 1, "retried within its backoff");
}

#[tokio::test]
async fn restore_adopts_a_running_container_without_restarting_it() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("web", "")));
    w.pass().await;
    // A new daemon over a copy of the store and the same host (the old
    // engine's shim watchers still hold the original's lock).
    let copy = tempfile::tempdir().unwrap();
    for file in ["state.db", "state.db-wal"] {
        let from = w.dir.path().join(file);
        if from.exists() {
            std::fs::copy(&from, copy.path().join(file)).unwrap();
        }
    }
    let host = w.host.clone();
    let engine = Engine::new(Store::open(copy.path()).unwrap(), host.host(), copy.path().into());
    host.clear_calls();
    engine.restore().await.unwrap();
    engine.reconcile().await.unwrap();
    assert!(host.calls().is_empty(), "{:?}", host.calls());
    let view = engine.views(None, Some("web")).unwrap().remove(0);
    assert_eq!(view.status, "Running");
}

#[tokio::test]
async fn a_container_that_died_while_the_daemon_was_down_is_restarted_by_policy() {
    let w = world();
    w.apply(
        "s",
        &format!("{IMAGE}{}", container("web", ", restartPolicy: on-failure")),
    );
    w.pass().await;
    w.host.exit("web", 2);
    // Nobody watched this exit; the next pass records it and schedules the restart.
    let _ = w.pass().await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    w.pass().await;
    assert_eq!(w.host.starts("web"), 2);
}

/// Container `web` runs; then its shim dies (its init alive or not), the
/// shim's watcher sees it, and a pass runs.
async fn running_web_whose_shim_dies(init_alive: bool) -> World {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("web", "")));
    w.pass().await;
    w.host.set_probe(
        "web",
        Probe::Lost {
            init_alive,
            record: None,
        },
    );
    w.settle().await;
    w.pass().await;
    w
}

#[tokio::test]
async fn a_lost_shim_whose_init_lives_is_killed_cleaned_up_and_restarted() {
    let w = running_web_whose_shim_dies(true).await;
    let calls = w.host.calls();
    assert!(calls.contains(&Call::KillAll("web".into())), "{calls:?}");
    assert!(calls.contains(&Call::Cleanup("web".into())), "{calls:?}");
    tokio::time::sleep(Duration::from_millis(120)).await;
    w.pass().await;
    assert_eq!(w.host.starts("web"), 2);
}

#[tokio::test]
async fn a_reused_init_pid_is_not_killed() {
    // The runtime reports a pid whose start time differs as not alive: the
    // process there now is someone else's and must be left alone.
    let w = running_web_whose_shim_dies(false).await;
    let calls = w.host.calls();
    assert!(!calls.contains(&Call::KillAll("web".into())), "{calls:?}");
    assert!(calls.contains(&Call::Cleanup("web".into())), "{calls:?}");
}

#[tokio::test]
async fn restore_removes_run_dirs_nothing_in_the_store_accounts_for() {
    let w = world();
    w.host.add_run_dir("stranger");
    w.engine.restore().await.unwrap();
    assert_eq!(w.host.calls(), [Call::Remove("stranger".into())]);
}

#[tokio::test]
async fn an_exited_autoremove_container_nobody_is_attached_to_is_deleted() {
    let w = world();
    let yaml = format!(
        "{IMAGE}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: once, labels: {{berth.io/autoremove: 'true'}}}}\nspec: {{image: bb, restartPolicy: never}}\n"
    );
    w.apply("s", &yaml);
    w.pass().await;
    w.host.exit("once", 0);
    w.settle().await;
    w.pass().await;
    assert!(w.host.calls().contains(&Call::Remove("once".into())));
    assert!(w.engine.views(None, Some("once")).unwrap().is_empty());
}

#[tokio::test]
async fn an_attached_autoremove_container_is_left_to_its_client() {
    let w = world();
    let yaml = format!(
        "{IMAGE}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: once, labels: {{berth.io/autoremove: 'true'}}}}\nspec: {{image: bb, restartPolicy: never}}\n"
    );
    w.apply("s", &yaml);
    w.engine.attach("once");
    w.pass().await;
    w.host.exit("once", 0);
    w.settle().await;
    w.pass().await;
    assert!(!w.host.calls().contains(&Call::Remove("once".into())));
}

#[tokio::test]
async fn a_changed_spec_replaces_only_that_container() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}{}", container("a", ""), container("b", "")));
    w.pass().await;
    w.apply(
        "s",
        &format!("{IMAGE}{}{}", container("a", ""), container("b", ", env: {X: '1'}")),
    );
    let report = w.pass().await;
    assert_eq!(World::verbs(&report), ["replace container/b"]);
    assert_eq!((w.host.starts("a"), w.host.starts("b")), (1, 2));
}

#[tokio::test]
async fn deletes_stop_the_container_before_its_volume_is_removed() {
    let w = world();
    let volume = "---\napiVersion: berth/v1\nkind: Volume\nmetadata: {name: data}\n";
    w.apply(
        "s",
        &format!(
            "{IMAGE}{volume}{}",
            container("db", ", volumes: [{volume: data, path: /data}]")
        ),
    );
    w.pass().await;
    w.host.clear_calls();
    w.apply("s", "");
    w.pass().await;
    let calls = w.host.calls();
    let stop = calls
        .iter()
        .position(|c| *c == Call::Signal("db".into(), nix::sys::signal::Signal::SIGTERM));
    let rm_volume = calls.iter().position(|c| *c == Call::RemoveVolume("data".into()));
    assert!(stop.unwrap() < rm_volume.unwrap(), "{calls:?}");
    assert!(w.engine.views(None, None).unwrap().is_empty());
}

#[tokio::test]
async fn a_container_that_ignores_sigterm_is_killed_after_its_grace_period() {
    let w = world();
    w.host.ignore_sigterm();
    w.apply("s", &format!("{IMAGE}{}", container("web", ", stopGracePeriod: 50ms")));
    w.pass().await;
    w.apply("s", IMAGE);
    w.pass().await;
    let calls = w.host.calls();
    assert!(
        calls.contains(&Call::Signal("web".into(), nix::sys::signal::Signal::SIGKILL)),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_completed_dependency_lets_its_dependant_start() {
    let w = world();
    let yaml = format!(
        "{IMAGE}{}{}",
        container("init", ", restartPolicy: never"),
        container("app", ", dependsOn: [{name: init, condition: completed}]")
    );
    w.apply("s", &yaml);
    let first = w.pass().await;
    assert_eq!(
        first.lines(OutcomeKind::Waiting),
        ["start container/app: waiting for container/init to be completed"]
    );
    w.host.exit("init", 0);
    w.settle().await;
    w.pass().await;
    assert_eq!(w.host.starts("app"), 1);
}

#[tokio::test]
async fn an_imported_image_is_in_use_while_its_object_or_a_container_lives() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("app", "")));
    w.pass().await;
    let Some(records::LiveInfo::Image(info)) = w
        .engine
        .live(crate::manifest::Kind::Image, "bb")
        .unwrap()
        .map(|l| l.info)
    else {
        panic!("image/bb has no image record");
    };
    let id = info.id.clone().expect("an import is an image, found by its id");
    assert!(w.engine.images_in_use().unwrap().contains(&id));
    assert_eq!(w.engine.containers_using_image(&id).unwrap(), ["app"]);
    // The container runs on the image's snapshots, not on a bare tree.
    let lowers = w.host.config_of("app").unwrap().lower_dirs;
    assert_eq!(
        lowers,
        w.engine
            .image_host()
            .lower_dirs(&w.engine.image_host().image(&id).unwrap())
            .unwrap()
    );
    w.apply("s", "");
    w.pass().await;
    assert!(!w.engine.images_in_use().unwrap().contains(&id));
}

#[tokio::test]
async fn an_image_imported_by_an_older_berth_is_imported_again() {
    let w = world();
    w.apply("s", IMAGE);
    w.pass().await;
    // A live row of the old form: a bare tree, no image id.
    w.engine
        .store
        .live_set_info(
            crate::manifest::Kind::Image,
            "bb",
            r#"{"digest":"sha256:1","dir":"/old/layers/1"}"#,
        )
        .unwrap();
    let imports = || w.host.calls().iter().filter(|c| matches!(c, Call::Import(_))).count();
    assert_eq!(imports(), 1);
    w.pass().await;
    assert_eq!(imports(), 2, "{:?}", w.host.calls());
    let Some(records::LiveInfo::Image(info)) = w
        .engine
        .live(crate::manifest::Kind::Image, "bb")
        .unwrap()
        .map(|l| l.info)
    else {
        panic!("image/bb has no image record");
    };
    assert!(info.id.is_some(), "{info:?}");
}

#[tokio::test]
async fn a_corrupt_live_row_fails_the_pass_with_the_rows_name() {
    let w = world();
    w.apply("s", IMAGE);
    w.pass().await;
    w.engine
        .store
        .live_set_info(crate::manifest::Kind::Image, "bb", "{broken")
        .unwrap();
    let err = w.engine.reconcile().await.unwrap_err().to_string();
    assert!(err.contains("live row image/bb"), "{err}");
}

#[tokio::test]
async fn a_dry_run_plan_acts_on_nothing() {
    let w = world();
    let desired = objects(&format!("{IMAGE}{}", container("web", "")));
    let plan = w.engine.plan_for(&desired).unwrap();
    let verbs: Vec<Verb> = plan.ordered().iter().map(|a| a.verb).collect();
    assert_eq!(verbs, [Verb::Create, Verb::Start]);
    assert!(w.host.calls().is_empty());
}

#[tokio::test]
async fn outcomes_since_a_mark_name_only_the_asked_objects_and_later_passes() {
    let w = world();
    w.apply("one", IMAGE);
    w.pass().await;
    let mark = w.engine.pass_mark();
    w.apply("two", &container("web", ""));
    w.pass().await;
    let web = ObjectKey::new(crate::manifest::Kind::Container, "web");
    let image = ObjectKey::new(crate::manifest::Kind::Image, "bb");
    let lines: Vec<String> = w
        .engine
        .outcomes_since(mark, &[web, image])
        .into_iter()
        .map(|o| o.line)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("start container/web"), "{lines:?}");
}

#[tokio::test]
async fn the_run_record_of_a_started_container_is_kept_for_adoption() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("web", "")));
    w.pass().await;
    let live = w.engine.live(crate::manifest::Kind::Container, "web").unwrap().unwrap();
    let run: Option<RunRecord> = live.container_info().and_then(|i| i.run);
    assert!(matches!(w.host.probe_of("web"), Probe::Running(r) if Some(r) == run));
}

#[tokio::test]
async fn memory_of_a_deleted_object_is_dropped_after_a_while() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("gone", "")));
    w.pass().await;
    w.apply("s", IMAGE);
    w.pass().await;
    let key = ObjectKey::new(crate::manifest::Kind::Container, "gone");
    assert!(!lock(&w.engine.locks).contains_key(&key));
    assert!(!lock(&w.engine.pending).contains_key(&key));
    // A command still finds the outcome of its own pass...
    assert!(lock(&w.engine.outcomes).contains_key(&key));
    for _ in 0..64 {
        w.pass().await;
    }
    // ...but not forever.
    assert!(!lock(&w.engine.outcomes).contains_key(&key));
}

const NET: &str = "---\napiVersion: berth/v1\nkind: Network\nmetadata: {name: front}\nspec: {}\n";

#[tokio::test]
async fn containers_on_a_network_get_an_address_each_peers_in_hosts_and_free_them_on_delete() {
    let w = world();
    let stack = format!(
        "{IMAGE}{NET}{}{}",
        container("web", ", networks: [front], ports: [{host: 8080, container: 80}]"),
        container("db", ", networks: [front]")
    );
    w.apply("s", &stack);
    w.pass().await;
    let calls = w.host.calls();
    let bridge = w.host.names().bridge_name("front");
    let made = calls
        .iter()
        .position(|c| *c == Call::EnsureBridge(bridge.clone()))
        .unwrap();
    let started = calls.iter().position(|c| *c == Call::Start("web".into())).unwrap();
    assert!(made < started, "{calls:?}");
    // The fake host routes 10.77.0.0/24, so the pool's next /24 is chosen.
    let mut attached: Vec<String> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Attach(_, what) => Some(what.clone()),
            _ => None,
        })
        .collect();
    attached.sort();
    assert_eq!(attached, ["eth0 10.77.1.2", "eth0 10.77.1.3"]);
    assert!(calls.contains(&Call::SyncNat(1, 1)), "{calls:?}");
    let web_hosts = w.host.file("web", "hosts").unwrap();
    let db_ip = w.engine.store.alloc_of("front", "db").unwrap().unwrap();
    assert!(web_hosts.contains(&format!("{db_ip}\tdb\n")), "{web_hosts}");
    // Names go to the network's DNS server, which answers both.
    assert_eq!(w.host.file("db", "resolv.conf").unwrap(), "nameserver 10.77.1.1\n");
    assert_eq!(w.host.dns_names("front").unwrap(), ["db", "web"]);

    w.apply("s", "");
    w.pass().await;
    assert!(w.engine.store.alloc_all().unwrap().is_empty());
    let calls = w.host.calls();
    assert!(calls.contains(&Call::RemoveNetwork("web".into())), "{calls:?}");
    assert!(calls.contains(&Call::DeleteLink(bridge)), "{calls:?}");
    assert!(calls.contains(&Call::SyncNat(0, 0)), "{calls:?}");
    assert_eq!(w.host.dns_names("front"), None);
}

#[tokio::test]
async fn a_start_rewrites_the_hosts_files_of_its_networks_peers_only() {
    let w = world();
    let back = NET.replace("front", "back");
    let stack = |extra: &str| {
        format!(
            "{IMAGE}{NET}{back}{}{}{}{extra}",
            container("web", ", networks: [front]"),
            container("api", ", networks: [front]"),
            container("db", ", networks: [back]"),
        )
    };
    w.apply("s", &stack(""));
    w.pass().await;
    let writes = |id: &str| w.host.file_writes(id, "hosts");
    let before = [writes("web"), writes("api"), writes("db")];
    assert!(before.iter().all(|n| *n >= 1), "{before:?}");

    // A new peer on `back`: db's file gains it; web and api (on `front`
    // only) have nothing new and are not written.
    w.apply("s", &stack(&container("cache", ", networks: [back]")));
    w.pass().await;
    assert!(w.host.file("db", "hosts").unwrap().contains("\tcache\n"));
    assert!(writes("db") > before[2]);
    assert_eq!([writes("web"), writes("api")], [before[0], before[1]]);

    // Hostile: a peer that leaves is still taken out of the files on its
    // network, and a pass with no change writes nothing at all.
    w.apply("s", &stack(""));
    w.pass().await;
    assert!(!w.host.file("db", "hosts").unwrap().contains("cache"));
    let settled = [writes("web"), writes("api"), writes("db")];
    w.pass().await;
    assert_eq!([writes("web"), writes("api"), writes("db")], settled);
}

#[tokio::test]
async fn a_bridge_deleted_by_hand_is_made_again_with_an_event_naming_it() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{NET}{}", container("web", ", networks: [front]")));
    w.pass().await;
    let bridge = w.host.names().bridge_name("front");
    w.host.drop_link(&bridge);
    w.host.clear_calls();
    w.pass().await;
    assert!(w.host.calls().contains(&Call::EnsureBridge(bridge.clone())));
    let key = crate::plan::ObjectKey::new(crate::manifest::Kind::Network, "front");
    let events = w.engine.events(0, Some(&key), 100).unwrap();
    let repaired = events
        .iter()
        .find(|e| e.reason == "Repaired")
        .expect("a Repaired event");
    assert!(repaired.message.contains(&bridge), "{}", repaired.message);
    // The container kept its address, was wired again, and was not restarted.
    assert!(w
        .host
        .calls()
        .contains(&Call::Attach("web".into(), "eth0 10.77.1.2".into())));
    assert_eq!(w.host.starts("web"), 0);

    // A veth deleted by hand is noticed and made again.
    w.host.drop_link(&w.host.names().veth_name("web", 0));
    w.host.clear_calls();
    w.pass().await;
    assert!(w
        .host
        .calls()
        .contains(&Call::Attach("web".into(), "eth0 10.77.1.2".into())));
    let key = crate::plan::ObjectKey::new(crate::manifest::Kind::Container, "web");
    let events = w.engine.events(0, Some(&key), 100).unwrap();
    assert!(events
        .iter()
        .any(|e| e.reason == "Repaired" && e.message.contains("eth0")));
}

const REF: &str = "localhost:5000/shop/web:1";

fn offer(w: &World) {
    w.host.offer_image(
        REF,
        crate::image::ImageConfig {
            cmd: vec!["serve".into()],
            env: vec!["MODE=image".into()],
            working_dir: Some("/srv".into()),
            stop_signal: Some("SIGQUIT".into()),
            ..Default::default()
        },
    );
}

fn pulls(w: &World) -> usize {
    w.host.calls().iter().filter(|c| matches!(c, Call::Pull(_))).count()
}

#[tokio::test]
async fn a_container_naming_a_registry_reference_pulls_it_once_and_runs_its_config() {
    let w = world();
    offer(&w);
    w.apply(
        "s",
        &format!("apiVersion: berth/v1\nkind: Container\nmetadata: {{name: web}}\nspec: {{image: \"{REF}\"}}\n"),
    );
    w.pass().await;
    assert_eq!(pulls(&w), 1);
    let cfg = w.host.config_of("web").expect("started");
    assert_eq!(cfg.args, ["serve"]);
    assert_eq!(cfg.cwd, "/srv");
    assert!(cfg.env.contains(&"MODE=image".to_string()));
    assert_eq!(cfg.lower_dirs.len(), 1);
    assert_eq!(w.status("container", "web").state, StatusKind::Ready);
    // Present now: a restart does not pull again.
    w.host.exit("web", 1);
    w.pass().await;
    assert_eq!(pulls(&w), 1);
}

#[tokio::test]
async fn an_image_object_with_ref_follows_its_pull_policy() {
    let w = world();
    let image = |policy: &str| {
        format!("apiVersion: berth/v1\nkind: Image\nmetadata: {{name: web}}\nspec: {{ref: \"{REF}\", pullPolicy: {policy}}}\n")
    };
    w.apply("s", &image("Never"));
    let report = w.pass().await;
    let failed = report.lines(executor::OutcomeKind::Failed).join("\n");
    assert!(
        failed.contains("not present locally and pullPolicy is Never"),
        "{failed}"
    );
    assert_eq!(pulls(&w), 0);

    // Not in the registry either: the pull fails, is reported, and retried later.
    w.apply("s", &image("IfNotPresent"));
    let report = w.pass().await;
    let failed = report.lines(executor::OutcomeKind::Failed).join("\n");
    assert!(failed.contains("not found"), "{failed}");
    assert_eq!(pulls(&w), 1);

    offer(&w);
    w.apply("s", &image("Always"));
    w.pass().await;
    assert_eq!(pulls(&w), 2);
    assert_eq!(w.status("image", "web").state, StatusKind::Ready);
    w.apply(
        "s",
        &format!(
            "{}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: app}}\nspec: {{image: web, command: [run]}}\n",
            image("Always")
        ),
    );
    w.pass().await;
    let cfg = w.host.config_of("app").expect("started");
    assert_eq!(cfg.args, ["run"], "the manifest's command replaces the image's Cmd");
    assert!(cfg.env.contains(&"MODE=image".to_string()));
}

#[tokio::test]
async fn rmi_is_refused_while_a_container_uses_the_image() {
    let w = world();
    offer(&w);
    w.apply(
        "s",
        &format!("apiVersion: berth/v1\nkind: Container\nmetadata: {{name: web}}\nspec: {{image: \"{REF}\"}}\n"),
    );
    w.pass().await;
    let req = |force| crate::wire::RemoveImageRequest {
        name: REF.into(),
        force,
    };
    let err = crate::commands::images::remove(&w.engine, req(false))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("image {REF} is used by container web: delete it first, or use --force")
    );
    let removed = crate::commands::images::remove(&w.engine, req(true)).await.unwrap();
    assert!(removed.deleted);
}

#[tokio::test]
async fn a_static_address_and_aliases_reach_ipam_hosts_and_dns() {
    let w = world();
    let net = "---\napiVersion: berth/v1\nkind: Network\nmetadata: {name: front}\nspec: {subnet: 10.89.9.0/24}\n";
    let stack = format!(
        "{IMAGE}{net}{}{}",
        container(
            "web",
            ", networks: [{name: front, aliases: [www, shop], ipv4Address: 10.89.9.50}]"
        ),
        container("db", ", networks: [front]")
    );
    w.apply("s", &stack);
    w.pass().await;
    assert_eq!(
        w.engine.store.alloc_of("front", "web").unwrap(),
        Some(std::net::Ipv4Addr::new(10, 89, 9, 50))
    );
    assert_eq!(w.host.dns_names("front").unwrap(), ["db", "shop", "web", "www"]);
    let hosts = w.host.file("db", "hosts").unwrap();
    assert!(hosts.contains("10.89.9.50\tweb www shop\n"), "{hosts}");

    // A second container asking the same address fails by name.
    w.apply(
        "t",
        &container("thief", ", networks: [{name: front, ipv4Address: 10.89.9.50}]"),
    );
    let report = w.pass().await;
    let failed = report.lines(executor::OutcomeKind::Failed).join("\n");
    assert!(failed.contains("address 10.89.9.50: is already in use"), "{failed}");
}

#[tokio::test]
async fn an_images_healthcheck_is_used_when_the_container_has_none() {
    let w = world();
    let check = crate::image::ImageHealthcheck {
        test: vec!["CMD-SHELL".into(), "test -f /ready".into()],
        interval: 2_000_000_000,
        retries: 5,
        ..Default::default()
    };
    w.host.offer_image(
        REF,
        crate::image::ImageConfig {
            cmd: vec!["serve".into()],
            healthcheck: Some(check),
            ..Default::default()
        },
    );
    w.apply(
        "s",
        &format!(
            "apiVersion: berth/v1\nkind: Container\nmetadata: {{name: web}}\nspec: {{image: \"{REF}\"}}\n---\n\
             apiVersion: berth/v1\nkind: Container\nmetadata: {{name: own}}\n\
             spec: {{image: \"{REF}\", healthcheck: {{exec: [\"true\"]}}}}\n"
        ),
    );
    w.pass().await;
    let info = |name: &str| {
        w.engine
            .live(crate::manifest::Kind::Container, name)
            .unwrap()
            .unwrap()
            .container_info()
            .cloned()
            .unwrap()
    };
    let from_image = info("web").image_healthcheck.expect("the image's healthcheck");
    assert_eq!(from_image.exec, ["/bin/sh", "-c", "test -f /ready"]);
    assert_eq!(
        from_image.interval.map(|d| d.0),
        Some(std::time::Duration::from_secs(2))
    );
    assert_eq!(from_image.retries, Some(5));
    assert_eq!(from_image.timeout, None);
    // The container's own wins.
    assert_eq!(info("own").image_healthcheck, None);
}

#[tokio::test]
async fn network_connect_and_disconnect_rewire_in_place_and_no_pass_replaces_the_container() {
    let w = world();
    let nets = "---\napiVersion: berth/v1\nkind: Network\nmetadata: {name: front}\nspec: {subnet: 10.60.1.0/24}\n---\napiVersion: berth/v1\nkind: Network\nmetadata: {name: back}\nspec: {subnet: 10.60.2.0/24}\n";
    w.apply(
        "s",
        &format!("{IMAGE}{nets}{}", container("web", ", networks: [front]")),
    );
    w.pass().await;
    let web = |networks: &str| objects(&container("web", &format!(", networks: {networks}"))).remove(0);
    w.host.clear_calls();

    w.engine
        .set_networks("s", &web("[front, {name: back, aliases: [api]}]"), false)
        .await
        .unwrap();
    assert_eq!(w.host.calls(), [Call::Attach("web".into(), "eth1 10.60.2.2".into())]);
    // back's own names, and for web (whose first network is front) front's
    // names on front's server, scoped to web's address there.
    assert_eq!(w.host.dns_names("back").unwrap(), ["10.60.2.2/web", "api", "web"]);
    assert_eq!(
        w.host.dns_names("front").unwrap(),
        ["10.60.1.2/api", "10.60.1.2/web", "web"]
    );
    w.host.clear_calls();
    let next = w.pass().await;
    assert!(next.outcomes.is_empty(), "a pass acted after connect: {next:?}");

    // Leaving eth0's network: eth1 goes too and comes back as eth0.
    w.engine.set_networks("s", &web("[back]"), false).await.unwrap();
    assert_eq!(
        w.host.calls(),
        [
            Call::Detach("web".into(), "eth0".into()),
            Call::Detach("web".into(), "eth1".into()),
            Call::Attach("web".into(), "eth0 10.60.2.2".into()),
        ]
    );
    assert_eq!(w.engine.store.alloc_of("front", "web").unwrap(), None);
    assert_eq!(w.host.dns_names("front").unwrap(), Vec::<String>::new());
    w.host.clear_calls();
    let next = w.pass().await;
    assert!(next.outcomes.is_empty(), "a pass acted after disconnect: {next:?}");
}

/// What `reason` events container `name` has, by message.
fn events_of(w: &World, name: &str, reason: &str) -> Vec<String> {
    let key = ObjectKey::new(crate::manifest::Kind::Container, name);
    w.engine
        .events(0, Some(&key), 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.reason == reason)
        .map(|e| e.message)
        .collect()
}

#[tokio::test]
async fn a_start_that_fails_after_the_network_was_wired_leaves_no_veth_netns_or_address() {
    let w = world();
    w.host.fail_on(Op::Start, 1);
    w.apply("s", &format!("{IMAGE}{NET}{}", container("web", ", networks: [front]")));
    let report = w.pass().await;
    let calls = w.host.calls();
    // The failure came after the wiring, which is what must be undone.
    let attached = calls
        .iter()
        .position(|c| matches!(c, Call::Attach(id, _) if id == "web"));
    let started = calls.iter().position(|c| *c == Call::Start("web".into()));
    assert!(attached.unwrap() < started.unwrap(), "{calls:?}");
    assert_eq!(report.lines(OutcomeKind::Failed).len(), 1, "{report:?}");
    assert!(w.status("container", "web").status.contains("injected failure"));
    assert_eq!(w.host.veths(), Vec::<String>::new());
    assert!(!w.host.netns().contains("web"));
    assert_eq!(w.engine.store.alloc_of("front", "web").unwrap(), None);

    // The retry after the backoff wires it again and runs.
    tokio::time::sleep(Duration::from_millis(600)).await;
    w.pass().await;
    assert_eq!(w.host.veths(), [w.host.names().veth_name("web", 0)]);
    assert!(w.engine.store.alloc_of("front", "web").unwrap().is_some());
    assert!(matches!(w.host.probe_of("web"), Probe::Running(_)));
}

#[tokio::test]
async fn a_failed_stop_signal_still_kills_and_removes_everything_and_says_so() {
    let w = world();
    w.apply(
        "s",
        &format!(
            "{IMAGE}{NET}{}",
            container("web", ", networks: [front], stopGracePeriod: 50ms")
        ),
    );
    w.pass().await;
    w.host.clear_calls();
    w.host.fail_on(Op::Signal, 1);
    w.apply("s", "");
    w.pass().await;
    let calls = w.host.calls();
    assert!(
        calls.contains(&Call::Signal("web".into(), nix::sys::signal::Signal::SIGKILL)),
        "{calls:?}"
    );
    assert!(calls.contains(&Call::Remove("web".into())), "{calls:?}");
    assert!(calls.contains(&Call::RemoveNetwork("web".into())), "{calls:?}");
    assert_eq!(w.host.veths(), Vec::<String>::new());
    assert!(w.engine.store.alloc_all().unwrap().is_empty());
    assert!(w.engine.views(None, None).unwrap().is_empty());
    let failed = events_of(&w, "web", "StopFailed");
    assert!(
        failed
            .iter()
            .any(|m| m.contains("SIGTERM") && m.contains("injected failure")),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_failed_runtime_remove_still_unwires_the_network_and_the_next_pass_finishes() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{NET}{}", container("web", ", networks: [front]")));
    w.pass().await;
    w.host.fail_on(Op::Remove, 1);
    w.apply("s", "");
    let report = w.pass().await;
    let failed = report.lines(OutcomeKind::Failed);
    assert!(
        failed
            .iter()
            .any(|l| l.contains("container/web") && l.contains("injected failure")),
        "{report:?}"
    );
    // The network half ran although the runtime half failed.
    assert!(w.host.calls().contains(&Call::RemoveNetwork("web".into())));
    assert_eq!(w.host.veths(), Vec::<String>::new());
    assert_eq!(w.engine.store.alloc_of("front", "web").unwrap(), None);
    // The live record stays so that a later pass retries; that one succeeds.
    assert!(w
        .engine
        .store
        .live_get(crate::manifest::Kind::Container, "web")
        .unwrap()
        .is_some());
    for _ in 0..50 {
        w.pass().await;
        if w.engine.views(None, None).unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(w.engine.views(None, None).unwrap().is_empty());
    assert_eq!(
        w.host
            .calls()
            .iter()
            .filter(|c| **c == Call::Remove("web".into()))
            .count(),
        2
    );
}

#[tokio::test]
async fn the_fake_fails_exactly_the_nth_call_asked_for_then_heals() {
    let w = world();
    w.host.fail_nth(2);
    w.apply("s", &format!("{IMAGE}{}{}", container("a", ""), container("b", "")));
    let report = w.pass().await;
    // Call 1 is the import; call 2 (the first start) fails, the other runs.
    assert_eq!(report.lines(OutcomeKind::Failed).len(), 1, "{report:?}");
    let running = ["a", "b"]
        .iter()
        .filter(|n| matches!(w.host.probe_of(n), Probe::Running(_)))
        .count();
    assert_eq!(running, 1);
}

#[tokio::test]
async fn the_fake_passes_the_container_host_conformance_suite() {
    // tests/conformance.rs runs the same suite against the real runtime.
    let host = super::fake::FakeHost::new();
    let scratch = tempfile::tempdir().unwrap();
    let text = "<h1>hello from berth</h1>\n";
    host.put_container_file("conformance", "/www/index.html", text);
    super::conformance::container_lifecycle(super::conformance::Subject {
        host: host.as_ref(),
        config: crate::runtime::ContainerConfig {
            id: "conformance".into(),
            args: vec!["sleep".into(), "1000".into()],
            ..Default::default()
        },
        file: ("/www/index.html", text),
        scratch: scratch.path(),
        write_log: &|id, _, line| host.put_log_line(id, line),
    })
    .await;
}

#[test]
fn the_fake_passes_the_volume_host_conformance_suite() {
    // tests/conformance.rs runs the same suite against volume directories.
    let host = super::fake::FakeHost::new();
    super::conformance::volume_lifecycle(super::conformance::VolumeSubject {
        host: host.as_ref(),
        break_create: &|_| host.fail_on(super::fake::Op::CreateVolume, 1),
        heal: &|_| {},
    });
}

#[test]
fn the_fake_passes_the_network_host_conformance_suite() {
    // tests/conformance.rs runs the same suite against the kernel.
    let host = super::fake::FakeHost::new();
    super::conformance::network_lifecycle(super::conformance::NetworkSubject {
        host: host.as_ref(),
        network: "conf",
        id: "conformance",
        subnet: "10.89.251.0/24".parse().unwrap(),
    });
}

#[test]
fn the_fake_passes_the_image_host_conformance_suite() {
    // tests/conformance.rs runs the same suite against the image store.
    let host = super::fake::FakeHost::new();
    host.fail_import("/img/broken.tar", "unexpected end of archive");
    super::conformance::image_lifecycle(super::conformance::ImageSubject {
        host: host.as_ref(),
        tar: std::path::Path::new("/img/bb.tar"),
        broken_tar: std::path::Path::new("/img/broken.tar"),
        references: ["localhost/conformance:1", "localhost/conformance:2"],
    });
}

#[tokio::test]
async fn a_limit_change_updates_the_running_container_in_place_and_converges() {
    let w = world();
    w.apply(
        "s",
        &format!("{IMAGE}{}", container("web", ", resources: {memory: 64Mi}")),
    );
    w.pass().await;
    w.host.clear_calls();
    w.apply(
        "s",
        &format!("{IMAGE}{}", container("web", ", resources: {memory: 96Mi}")),
    );
    let report = w.pass().await;
    assert_eq!(World::verbs(&report), ["update container/web (in place)"], "{report:?}");
    assert_eq!(w.host.calls(), [Call::UpdateLimits("web".into(), Some(96 << 20))]);
    assert_eq!(w.status("container", "web").state, StatusKind::Ready);
    w.host.clear_calls();
    let again = w.pass().await;
    assert!(again.outcomes.is_empty(), "{again:?}");
    assert!(w.host.calls().is_empty(), "{:?}", w.host.calls());
}

#[tokio::test]
async fn a_failed_update_in_place_is_retried_and_keeps_the_old_record() {
    let w = world();
    w.apply(
        "s",
        &format!("{IMAGE}{}", container("web", ", resources: {memory: 64Mi}")),
    );
    w.pass().await;
    w.host.fail_on(crate::reconcile::fake::Op::UpdateLimits, 1);
    w.apply(
        "s",
        &format!("{IMAGE}{}", container("web", ", resources: {memory: 96Mi}")),
    );
    w.pass().await;
    w.host.clear_calls();
    w.pass().await;
    assert_eq!(w.host.calls(), [Call::UpdateLimits("web".into(), Some(96 << 20))]);
}

/// One object of `yaml`, as `run`/`create` pass it to `reconcile_keys`.
fn one(yaml: &str) -> Object {
    let all = objects(yaml);
    assert_eq!(all.len(), 1);
    all.into_iter().next().unwrap()
}

#[tokio::test]
async fn reconcile_keys_makes_just_its_container_and_the_image_it_needs() {
    let w = world();
    w.apply("s", &format!("{IMAGE}{}", container("other", "")));
    let web = one(&container("web", ""));
    w.engine
        .reconcile_keys("run:web", std::slice::from_ref(&web), crate::plan::Launch::Start)
        .await
        .unwrap();
    assert_eq!(w.host.starts("web"), 1);
    assert!(!w.host.config_of("web").unwrap().io.wait_attach);
    assert_eq!(w.host.starts("other"), 0, "an unrelated key was acted on");
    assert_eq!(w.status("container", "web").status, "Running");
    // Stored as `run:web`'s: the next pass finds it converged.
    w.pass().await;
    assert_eq!(w.host.starts("web"), 1);
}

#[tokio::test]
async fn reconcile_keys_carries_wait_attach_to_the_init() {
    let w = world();
    w.apply("s", IMAGE);
    w.pass().await;
    let web = one(&container("web", ""));
    w.engine
        .reconcile_keys("run:web", std::slice::from_ref(&web), crate::plan::Launch::WaitAttach)
        .await
        .unwrap();
    assert!(w.host.config_of("web").unwrap().io.wait_attach);
}

#[tokio::test]
async fn reconcile_keys_held_records_the_container_and_no_pass_starts_it() {
    let w = world();
    w.apply("s", IMAGE);
    w.pass().await;
    let web = one(&container("web", ", restartPolicy: always"));
    w.engine
        .reconcile_keys("run:web", std::slice::from_ref(&web), crate::plan::Launch::Held)
        .await
        .unwrap();
    w.pass().await;
    w.pass().await;
    assert_eq!(w.host.starts("web"), 0, "a held container was started");
    assert!(w.engine.container_exists("web").unwrap());
    w.engine.start_by_name("web").await.unwrap();
    assert_eq!(w.host.starts("web"), 1);
}

#[tokio::test]
async fn reconcile_keys_fails_with_the_error_of_what_its_container_waited_on() {
    let w = world();
    w.host.fail_import("/img/bb.tar", "disk on fire");
    w.apply("s", IMAGE);
    let web = one(&container("web", ""));
    let err = w
        .engine
        .reconcile_keys("run:web", std::slice::from_ref(&web), crate::plan::Launch::Start)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert_eq!(w.host.starts("web"), 0);
}

#[tokio::test]
async fn reconcile_keys_fails_with_its_container_s_own_start_error() {
    let w = world();
    w.apply("s", IMAGE);
    w.pass().await;
    w.host.fail_start("web", "no such command");
    let web = one(&container("web", ""));
    let err = w
        .engine
        .reconcile_keys("run:web", std::slice::from_ref(&web), crate::plan::Launch::Start)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no such command"), "{err}");
}

#[tokio::test]
async fn renaming_a_container_with_an_outcome_moves_it_without_deadlocking() {
    let w = world();
    w.apply("s", IMAGE);
    w.pass().await;
    let web = one(&container("web", ""));
    w.engine
        .reconcile_keys("run:web", std::slice::from_ref(&web), crate::plan::Launch::Start)
        .await
        .unwrap();
    let (old, new) = (
        ObjectKey::new(Kind::Container, "web"),
        ObjectKey::new(Kind::Container, "web2"),
    );
    assert_eq!(w.engine.outcomes_since(0, std::slice::from_ref(&old)).len(), 1);
    let engine = w.engine.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let (o, n) = (old.clone(), new.clone());
    // On a thread of its own: a deadlock fails the test instead of hanging it.
    std::thread::spawn(move || {
        engine.rekey(&o, &n);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("rekey deadlocked");
    assert_eq!(w.engine.outcomes_since(0, std::slice::from_ref(&new)).len(), 1);
    assert!(w.engine.outcomes_since(0, &[old]).is_empty());
}

/// Network plans applied through the fake host: what `network::apply` does
/// with a plan, and what it leaves when a step fails.
mod network_apply {
    use std::net::Ipv4Addr;

    use super::super::fake::{Call, FakeHost, Op};
    use crate::network::plan::{self, NatPlan, NetworkInfo};
    use crate::network::{apply, BridgeConfig, NetworkHost, Subnet};

    fn net(bridge: &str, subnet: &str) -> NetworkInfo {
        let subnet: Subnet = subnet.parse().unwrap();
        NetworkInfo {
            bridge: bridge.into(),
            subnet,
            gateway: subnet.default_gateway(),
            internal: false,
            mtu: None,
            parent: None,
            ip_range: None,
            subnet6: None,
        }
    }

    fn bridge(info: &NetworkInfo) -> BridgeConfig {
        BridgeConfig {
            name: info.bridge.clone(),
            alias: "berth-test network/x".into(),
            subnet: info.subnet,
            gateway: info.gateway,
            mtu: None,
        }
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn a_fresh_namespace_is_wired_whole_or_removed_and_a_kept_one_is_left_as_it_is() {
        let host = FakeHost::new();
        let h: &dyn NetworkHost = host.as_ref();
        let (front, back) = (net("bbfront", "10.1.0.0/24"), net("bbback", "10.1.1.0/24"));
        h.ensure_bridge(&bridge(&front)).unwrap();
        let ifaces = plan::interfaces(
            h.names(),
            "web",
            0,
            &[(&front, ip("10.1.0.2")), (&back, ip("10.1.1.2"))],
            None,
        );
        // eth1's bridge is not there: eth0 was made, and goes with the rest.
        let err = apply::namespace(h, "web", &ifaces, true).unwrap_err().to_string();
        assert!(err.contains("the bridge does not exist"), "{err}");
        assert!(!host.netns().contains("web"));
        assert!(host.veths().is_empty(), "{:?}", host.veths());
        assert!(host.calls().contains(&Call::RemoveNetwork("web".into())));

        h.ensure_bridge(&bridge(&back)).unwrap();
        apply::namespace(h, "web", &ifaces, true).unwrap();
        assert_eq!(host.veths().len(), 2);
        assert_eq!(h.netns_links("web").unwrap().len(), 3, "lo, eth0, eth1");

        // Kept from an earlier run: nothing is made again, nothing removed.
        host.clear_calls();
        apply::namespace(h, "web", &ifaces, false).unwrap();
        assert_eq!(host.calls(), [Call::CreateNetns("web".into())]);

        // A kept one whose wiring fails is not removed either.
        host.fail_on(Op::CreateNetns, 1);
        assert!(apply::namespace(h, "web", &ifaces, false).is_err());
        assert!(host.netns().contains("web"));
    }

    #[test]
    fn detaching_stops_at_the_first_failure_unless_forced() {
        let host = FakeHost::new();
        let h: &dyn NetworkHost = host.as_ref();
        host.fail_on(Op::Detach, 1);
        assert!(apply::detach(h, "web", "web", 1..3, false).is_err());
        let detached = |host: &FakeHost| host.calls().iter().filter(|c| matches!(c, Call::Detach(..))).count();
        assert_eq!(detached(&host), 1);
        host.clear_calls();
        host.fail_on(Op::Detach, 1);
        apply::detach(h, "web", "web", 1..3, true).unwrap();
        assert_eq!(
            host.calls(),
            [
                Call::Detach("web".into(), "eth1".into()),
                Call::Detach("web".into(), "eth2".into())
            ]
        );
    }

    #[test]
    fn a_bridge_network_is_made_with_its_dns_server_and_what_breaks_is_named() {
        let host = FakeHost::new();
        let h: &dyn NetworkHost = host.as_ref();
        let front = net("bbfront", "10.1.0.0/24");
        let cfg = bridge(&front);
        host.fail_on(Op::EnsureBridge, 1);
        assert!(apply::bridge_network(h, "front", &cfg, false, Default::default(), true).is_err());
        assert!(!h.dns_running("front"), "no DNS server without its bridge");

        let records = [("web".to_string(), vec![ip("10.1.0.2")])].into();
        apply::bridge_network(h, "front", &cfg, false, records, true).unwrap();
        assert_eq!(host.dns_names("front").unwrap(), ["web"]);
        assert!(apply::broken(h, "front", &cfg, &NatPlan::default()).is_empty());
        host.drop_link("bbfront");
        let broken = apply::broken(h, "front", &cfg, &NatPlan::default());
        assert_eq!(broken, ["bridge bbfront was missing or lost its address"]);

        let veths = [("web".to_string(), h.names().veth_name("web", 0))];
        assert!(
            apply::veths_on_bridge(h, &veths, "bbfront"),
            "web is not wired: nothing to check"
        );
        h.create_netns("web").unwrap();
        assert!(!apply::veths_on_bridge(h, &veths, "bbfront"));

        apply::remove_network(h, "front", "bbfront", true).unwrap();
        assert!(!h.dns_running("front"));
        assert!(host.calls().contains(&Call::DeleteLink("bbfront".into())));
        // A macvlan network has no bridge to delete.
        host.clear_calls();
        apply::remove_network(h, "lan", "", true).unwrap();
        assert!(host.calls().is_empty());
    }

    #[test]
    fn a_refresh_sets_every_networks_records_and_writes_only_wired_containers_files() {
        let host = FakeHost::new();
        let h: &dyn NetworkHost = host.as_ref();
        apply::bridge_network(
            h,
            "front",
            &bridge(&net("bbfront", "10.1.0.0/24")),
            false,
            Default::default(),
            true,
        )
        .unwrap();
        let addressing = plan::Addressing {
            allocations: vec![
                ("front".into(), ip("10.1.0.2"), "web".into()),
                ("front".into(), ip("10.1.0.3"), "db".into()),
            ],
            ..Default::default()
        };
        let member = |name: &str| plan::Member {
            name: name.into(),
            networks: vec!["front".into()],
            ..Default::default()
        };
        h.create_netns("web").unwrap();
        let refresh = plan::refresh(
            &addressing,
            &["front"],
            &[member("web"), member("db")],
            &Default::default(),
        );
        let written = apply::refresh(h, refresh);
        assert_eq!(host.dns_names("front").unwrap(), ["db", "web"]);
        assert!(host.file("web", "hosts").unwrap().ends_with("10.1.0.3\tdb\n"));
        assert_eq!(host.file("db", "hosts"), None, "db has no namespace yet");
        assert_eq!(written.len(), 1);
    }
}
