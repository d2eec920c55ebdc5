//! Engine commands over the recording fake host: what each command reports
//! and refuses, without root.

use std::collections::HashSet;

use super::*;
use crate::manifest::{Kind, Source};
use crate::reconcile::fake::world;
use crate::wire::{ApplyRequest, DeleteRequest, ErrorKind};

fn image(name: &str, tar: &str) -> String {
    format!("---\napiVersion: berth/v1\nkind: Image\nmetadata: {{name: {name}}}\nspec: {{import: {tar}, cmd: [sleep, '9']}}\n")
}

fn container(name: &str, image: &str) -> String {
    format!("---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec: {{image: {image}}}\n")
}

fn request(set: &str, yaml: &str, prune: bool) -> ApplyRequest {
    ApplyRequest {
        source_id: set.into(),
        sources: vec![Source {
            file: format!("{set}.yaml"),
            text: yaml.into(),
        }],
        prune,
        dry_run: false,
        base_dir: None,
    }
}

#[tokio::test]
async fn an_apply_reports_only_its_own_objects_when_another_sets_image_fails() {
    let w = world();
    w.host.fail_import("/bad.tar", "truncated archive");
    let bad = apply::apply(&w.engine, request("bad", &image("broken", "/bad.tar"), false))
        .await
        .unwrap();
    assert_eq!(bad.failed.len(), 1, "{bad:?}");
    let good = apply::apply(
        &w.engine,
        request(
            "good",
            &format!("{}{}", image("bb", "/bb.tar"), container("web", "bb")),
            false,
        ),
    )
    .await
    .unwrap();
    assert!(good.failed.is_empty(), "{good:?}");
    assert_eq!(good.actions.len(), 2, "{good:?}");
    assert!(good.actions.iter().all(|a| !a.contains("broken")), "{good:?}");
}

#[tokio::test]
async fn an_apply_whose_container_cannot_start_reports_it_as_failed() {
    let w = world();
    w.host.fail_start("web", "exec: \"nope\": not found");
    let resp = apply::apply(
        &w.engine,
        request(
            "s",
            &format!("{}{}", image("bb", "/bb.tar"), container("web", "bb")),
            false,
        ),
    )
    .await
    .unwrap();
    assert_eq!(resp.failed, ["start container/web: exec: \"nope\": not found"]);
}

#[tokio::test]
async fn a_dependant_waiting_on_a_dependency_is_pending_not_failed() {
    let w = world();
    let yaml = format!(
        "{}{}---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: app}}\nspec: {{image: bb, dependsOn: [{{name: init, condition: completed}}]}}\n",
        image("bb", "/bb.tar"),
        container("init", "bb")
    );
    let resp = apply::apply(&w.engine, request("s", &yaml, false)).await.unwrap();
    assert!(resp.failed.is_empty(), "{resp:?}");
    assert_eq!(
        resp.pending,
        ["start container/app: waiting for container/init to be completed"]
    );
}

#[tokio::test]
async fn a_second_identical_apply_reports_no_actions() {
    let w = world();
    let yaml = format!("{}{}", image("bb", "/bb.tar"), container("web", "bb"));
    apply::apply(&w.engine, request("s", &yaml, false)).await.unwrap();
    let again = apply::apply(&w.engine, request("s", &yaml, false)).await.unwrap();
    assert!(
        again.actions.is_empty() && again.failed.is_empty() && again.pending.is_empty(),
        "{again:?}"
    );
}

#[tokio::test]
async fn prune_refuses_to_remove_an_image_a_container_of_another_set_uses() {
    let w = world();
    apply::apply(&w.engine, request("images", &image("bb", "/bb.tar"), false))
        .await
        .unwrap();
    apply::apply(&w.engine, request("apps", &container("web", "bb"), false))
        .await
        .unwrap();
    let err = apply::apply(
        &w.engine,
        request(
            "images",
            "# nothing left\n---\napiVersion: berth/v1\nkind: Volume\nmetadata: {name: v}\n",
            true,
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("image/bb is used by container/web"), "{err}");
    assert_eq!(w.engine.views(Some(Kind::Image), Some("bb")).unwrap().len(), 1);
}

#[tokio::test]
async fn a_removed_watched_file_keeps_an_image_another_source_uses_until_released() {
    let w = world();
    let defined = HashSet::new();
    let file = Source {
        file: "/watch/images.yaml".into(),
        text: image("bb", "/bb.tar"),
    };
    assert_eq!(
        apply::apply_watched(&w.engine, "file:/watch/images.yaml", &file, &defined).unwrap(),
        None
    );
    apply::apply(&w.engine, request("apps", &container("web", "bb"), false))
        .await
        .unwrap();
    apply::remove_watched(&w.engine, "file:/watch/images.yaml").unwrap();
    w.engine.reconcile().await.unwrap();
    let view = w.engine.views(Some(Kind::Image), Some("bb")).unwrap().remove(0);
    assert!(view.status.contains("kept"), "{view:?}");
    assert!(view.detail.unwrap().contains("used by container/web"));
    let events = w.engine.events(0, None, 100).unwrap();
    assert!(
        events.iter().any(|e| e.reason == "Kept" && e.name == "bb"),
        "{events:?}"
    );

    delete::delete(
        &w.engine,
        DeleteRequest {
            sources: vec![],
            keys: vec!["container/web".into()],
        },
    )
    .await
    .unwrap();
    // The pass after the container is gone releases the image.
    w.engine.reconcile().await.unwrap();
    assert!(w.engine.views(Some(Kind::Image), Some("bb")).unwrap().is_empty());
    let events = w.engine.events(0, None, 100).unwrap();
    assert!(
        events.iter().any(|e| e.reason == "Released" && e.name == "bb"),
        "{events:?}"
    );
}

#[tokio::test]
async fn delete_refuses_an_image_that_a_remaining_container_uses() {
    let w = world();
    apply::apply(
        &w.engine,
        request(
            "s",
            &format!("{}{}", image("bb", "/bb.tar"), container("web", "bb")),
            false,
        ),
    )
    .await
    .unwrap();
    let err = delete::delete(
        &w.engine,
        DeleteRequest {
            sources: vec![],
            keys: vec!["image/bb".into()],
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
}

#[tokio::test]
async fn deleting_only_missing_objects_is_not_found() {
    let w = world();
    let err = delete::delete(
        &w.engine,
        DeleteRequest {
            sources: vec![],
            keys: vec!["container/ghost".into()],
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "container/ghost not found");
}

#[tokio::test]
async fn named_lookups_of_missing_objects_are_not_found() {
    let w = world();
    let kinds = [
        query::describe(&w.engine, "container", "ghost").unwrap_err().kind(),
        query::list(&w.engine, Some("container"), Some("ghost"))
            .unwrap_err()
            .kind(),
        logs::logs(&w.engine, "ghost", None, false, Default::default())
            .unwrap_err()
            .kind(),
        query::stop(&w.engine, "ghost").await.unwrap_err().kind(),
    ];
    assert_eq!(kinds, [ErrorKind::NotFound; 4]);
    assert_eq!(
        query::describe(&w.engine, "pod", "x").unwrap_err().kind(),
        ErrorKind::Invalid
    );
}

#[tokio::test]
async fn a_dry_run_plans_without_storing_or_acting() {
    let w = world();
    let mut req = request(
        "s",
        &format!("{}{}", image("bb", "/bb.tar"), container("web", "bb")),
        false,
    );
    req.dry_run = true;
    let resp = apply::apply(&w.engine, req).await.unwrap();
    assert_eq!(resp.actions.len(), 2, "{resp:?}");
    assert!(w.host.calls().is_empty());
    assert!(w.engine.views(None, None).unwrap().is_empty());
}

#[tokio::test]
async fn bad_manifests_change_nothing_and_come_back_as_diagnostics() {
    let w = world();
    let resp = apply::apply(&w.engine, request("s", &container("web", "missing"), false))
        .await
        .unwrap();
    assert_eq!(resp.errors.len(), 1, "{resp:?}");
    assert!(resp.errors[0].message.contains("missing"));
    assert!(w.engine.views(None, None).unwrap().is_empty());
}
