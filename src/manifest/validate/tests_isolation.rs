//! The validator's isolation fields: each bad value named at file:line:field.

use super::*;
use crate::manifest::testing::{find, render};
use crate::manifest::{parse_with_positions, Source};

fn check(text: &str) -> Vec<Diagnostic> {
    let image =
        "---\napiVersion: berth/v1\nkind: Image\nmetadata: {name: shop}\nspec: {import: /srv/shop.tar, cmd: [sh]}\n";
    let sources = [Source {
        file: "m.yaml".into(),
        text: format!("{text}{image}"),
    }];
    let (objects, positions) = parse_with_positions(&sources).unwrap_or_else(|d| panic!("{}", render(&d)));
    validate_with_positions(&objects, &positions, &|_, _| false)
}

fn container(name: &str, spec: &str) -> String {
    format!("apiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: shop\n{spec}")
}

#[test]
fn every_isolation_field_is_accepted_in_its_documented_forms() {
    let text = format!(
        "{}---\n{}",
        container(
            "web",
            "  devices: [{hostPath: /dev/fuse}, {hostPath: /dev/null, path: /dev/mynull, permissions: rw}]\n  deviceCgroupRules: [\"c 42:* rmw\"]\n  pid: container:db\n  ipc: host\n  uts: host\n  init: true\n  stopSignal: SIGQUIT\n  securityContext:\n    privileged: true\n    capAdd: [net_admin, CAP_SYS_TIME, ALL]\n    capDrop: [MKNOD]\n    seccompProfile: /etc/berth/profile.json\n    groupAdd: [wheel, \"10\"]\n    sysctls: {net.ipv4.ip_forward: \"1\"}\n    ulimits: {nofile: {soft: 100, hard: 200}}\n    oomScoreAdj: -500\n",
        ),
        container("db", "  securityContext: {seccompProfile: unconfined, sysctls: {kernel.shmmax: \"1000\"}}\n"),
    );
    let d = check(&text);
    assert!(d.is_empty(), "{}", render(&d));
}

#[test]
fn bad_isolation_values_are_named_at_their_line() {
    let d = check(&container(
        "web",
        "  devices:\n    - {hostPath: /etc/passwd}\n    - {hostPath: /dev/null, path: /dev/../etc/x, permissions: rwx}\n  deviceCgroupRules: [\"c 1:3\"]\n  pid: container:web\n  ipc: shared\n  uts: container:db\n  stopSignal: SIGFLY\n  network: host\n  securityContext:\n    capAdd: [NET_FLY]\n    capDrop: [ALL, CAP_]\n    seccompProfile: profile.json\n    groupAdd: [\"a:b\"]\n    sysctls:\n      kernel.hostname: x\n      net.ipv4.ip_forward: \"1\"\n    ulimits:\n      nofile: {soft: 300, hard: 200}\n      fly: {soft: 1, hard: 1}\n    oomScoreAdj: 1001\n",
    ));
    let at = |message: &str| {
        let e = find(&d, message);
        (e.file.clone(), e.line, e.field.clone())
    };
    let f = "m.yaml".to_string();
    assert_eq!(
        at("device `/etc/passwd` is not under /dev"),
        (f.clone(), 7, "spec.devices[0].hostPath".into())
    );
    assert_eq!(
        at("device `/dev/../etc/x` is not under /dev"),
        (f.clone(), 8, "spec.devices[1].path".into())
    );
    assert_eq!(
        at("permissions `rwx`"),
        (f.clone(), 8, "spec.devices[1].permissions".into())
    );
    assert_eq!(
        at("device rule `c 1:3`"),
        (f.clone(), 9, "spec.deviceCgroupRules[0]".into())
    );
    assert_eq!(
        at("cannot share its own pid namespace"),
        (f.clone(), 10, "spec.pid".into())
    );
    assert_eq!(at("unknown ipc mode `shared`"), (f.clone(), 11, "spec.ipc".into()));
    assert_eq!(
        at("unknown uts mode `container:db`"),
        (f.clone(), 12, "spec.uts".into())
    );
    assert_eq!(
        at("`SIGFLY` is not a signal"),
        (f.clone(), 13, "spec.stopSignal".into())
    );
    assert_eq!(
        at("unknown capability `NET_FLY`"),
        (f.clone(), 16, "spec.securityContext.capAdd[0]".into())
    );
    assert_eq!(
        at("unknown capability `CAP_`"),
        (f.clone(), 17, "spec.securityContext.capDrop[1]".into())
    );
    assert_eq!(
        at("seccompProfile `profile.json`"),
        (f.clone(), 18, "spec.securityContext.seccompProfile".into())
    );
    assert_eq!(
        at("`a:b` is not a group"),
        (f.clone(), 19, "spec.securityContext.groupAdd[0]".into())
    );
    let (_, line, field) = at("sysctl `kernel.hostname` is not namespaced");
    assert_eq!(
        (line, field.as_str()),
        (21, "spec.securityContext.sysctls.kernel.hostname")
    );
    let (_, line, _) = at("would change the host's network: not with `network: host`");
    assert_eq!(line, 22);
    let (_, line, _) = at("soft limit 300 is above the hard limit 200");
    assert_eq!(line, 24);
    let (_, line, _) = at("unknown ulimit `fly`");
    assert_eq!(line, 25);
    assert_eq!(
        at("oomScoreAdj must be between -1000 and 1000"),
        (f, 26, "spec.securityContext.oomScoreAdj".into())
    );
}
