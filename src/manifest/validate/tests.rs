//! The validator's table tests, per kind.

use super::*;
use crate::manifest::testing::{find, render};
use crate::manifest::{load, parse_with_positions, validate, Source};

/// An Image `shop` (with a `cmd`) and a Volume `data`, after the documents under test.
const COMMON: &str = "---\napiVersion: berth/v1\nkind: Image\nmetadata: {name: shop}\nspec: {import: /srv/shop.tar, cmd: [sh]}\n---\napiVersion: berth/v1\nkind: Volume\nmetadata: {name: data}\n";

fn check_with(text: &str, exists: &dyn Fn(Kind, &str) -> bool) -> Vec<Diagnostic> {
    let sources = [Source {
        file: "m.yaml".into(),
        text: format!("{text}{COMMON}"),
    }];
    let (objects, positions) = parse_with_positions(&sources).unwrap_or_else(|d| panic!("{}", render(&d)));
    validate_with_positions(&objects, &positions, exists)
}

fn check(text: &str) -> Vec<Diagnostic> {
    check_with(text, &|_, _| false)
}

fn container(name: &str, spec: &str) -> String {
    format!("apiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: shop\n{spec}")
}

#[test]
fn a_supported_stack_has_no_problems() {
    let text = format!(
        "{}---\n{}",
        container(
            "web",
            "  command: [httpd, -f]\n  env: {MODE: prod}\n  user: \"1000:1000\"\n  network: none\n  volumes:\n    - {volume: data, path: /data}\n    - {hostPath: /srv/static, path: /static, readOnly: true}\n    - {tmpfs: /tmp, size: 64Mi}\n  resources: {cpus: 0.5, memory: 100Mi, pids: 200, cpuShares: 512}\n  dependsOn: [{name: db}]\n",
        ),
        container("db", "  dependsOn: [{name: init, condition: completed}]\n"),
    );
    let text = format!("{text}---\n{}", container("init", ""));
    let d = check(&text);
    assert!(d.is_empty(), "{}", render(&d));
}

#[test]
fn names_must_be_dns_labels_and_label_keys_sane() {
    let long = "a".repeat(64);
    let d = check(&format!(
        "apiVersion: berth/v1\nkind: Image\nmetadata: {{name: Web_1}}\nspec: {{import: /i.tar}}\n---\napiVersion: berth/v1\nkind: Volume\nmetadata: {{name: {long}}}\n---\napiVersion: berth/v1\nkind: Volume\nmetadata:\n  name: ok\n  labels: {{app.kubernetes.io/name: x, -bad: y, good_key.1: z, /x: w}}\n"
    ));
    let e = find(&d, "name `Web_1` is not a valid name: use 1 to 63 lower-case");
    assert_eq!((e.line, e.column, e.field.as_str()), (3, 18, "metadata.name"));
    assert_eq!(e.snippet, "metadata: {name: Web_1}");
    find(&d, &format!("name `{long}` is not a valid name: use 1 to 63 letters"));
    let e = find(&d, "label key `-bad` is not valid");
    assert_eq!((e.line, e.field.as_str()), (14, "metadata.labels.-bad"));
    find(&d, "label key `/x` is not valid: the prefix");
    assert_eq!(d.len(), 4, "{}", render(&d));
}

#[test]
fn containers_and_volumes_take_dockers_names_and_networks_keep_dns_labels() {
    for (kind, name, spec) in [
        ("Volume", "Proj_data.1", "{}"),
        ("Container", "proj_web_1", "{image: busybox}"),
    ] {
        let d = check(&format!(
            "apiVersion: berth/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        ));
        assert!(
            d.iter().all(|p| p.field != "metadata.name"),
            "{kind} {name}: {}",
            render(&d)
        );
    }
    for (kind, name, spec) in [
        ("Container", "_web", "{image: busybox}"),
        ("Volume", "a/b", "{}"),
        ("Network", "-net", "{}"),
        ("Image", "my_app", "{import: /i.tar}"),
    ] {
        let d = check(&format!(
            "apiVersion: berth/v1\nkind: {kind}\nmetadata: {{name: \"{name}\"}}\nspec: {spec}\n"
        ));
        assert!(
            d.iter().any(|p| p.field == "metadata.name"),
            "{kind} {name}: {}",
            render(&d)
        );
    }
    // Where such a name becomes a DNS name, it is a label or nothing.
    assert_eq!(
        crate::manifest::dns_label_of("proj_web_1").as_deref(),
        Some("proj-web-1")
    );
    assert_eq!(crate::manifest::dns_label_of("Web.1").as_deref(), Some("web-1"));
    assert_eq!(crate::manifest::dns_label_of("web_"), None);
}

#[test]
fn duplicate_names_are_reported_with_both_places() {
    let d = check("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: data}\n");
    let e = find(&d, "Volume `data` is defined twice: here and at m.yaml:1:1");
    assert_eq!((e.line, e.field.as_str()), (9 + 3, "metadata.name"));
    // The same name in another kind is another object.
    let d = check("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: shop}\n");
    assert!(d.is_empty(), "{}", render(&d));
}

#[test]
fn references_to_undefined_objects_are_reported() {
    let text = "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: shpo\n  volumes:\n    - {volume: cache, path: /cache}\n  dependsOn:\n    - {name: db}\n";
    let d = check(text);
    let e = find(
        &d,
        "references Image `shpo`, which is not defined; did you mean `shop`?",
    );
    assert_eq!((e.line, e.column, e.field.as_str()), (5, 10, "spec.image"));
    let e = find(&d, "references Volume `cache`, which is not defined");
    assert_eq!((e.line, e.field.as_str()), (7, "spec.volumes[0].volume"));
    let e = find(&d, "references Container `db`, which is not defined");
    assert_eq!((e.line, e.field.as_str()), (9, "spec.dependsOn[0].name"));
    assert_eq!(d.len(), 3, "{}", render(&d));

    // Objects the daemon already knows satisfy references.
    let known = |kind: Kind, name: &str| {
        matches!(
            (kind, name),
            (Kind::Image, "shpo") | (Kind::Volume, "cache") | (Kind::Container, "db")
        )
    };
    let d = check_with(text, &known);
    assert!(d.is_empty(), "{}", render(&d));
}

#[test]
fn registry_references_are_accepted_and_bad_ones_named() {
    let d = check("apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: docker.io/library/busybox:1.36, command: [sh]}\n");
    assert!(d.is_empty(), "{}", render(&d));
    let d = check("apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: \"localhost:5000/Shop:1\", command: [sh]}\n");
    let e = find(&d, "is not a registry reference: invalid reference format");
    assert_eq!((e.line, e.field.as_str()), (4, "spec.image"));
    let d = check("apiVersion: berth/v1\nkind: Image\nmetadata: {name: img}\nspec: {ref: \"localhost:5000/x:1\", pullPolicy: Always, platform: linux/arm64}\n");
    assert!(d.is_empty(), "{}", render(&d));
    let d = check("apiVersion: berth/v1\nkind: Image\nmetadata: {name: img}\nspec: {ref: \"x:\", platform: amd64}\n");
    find(&d, "`x:` is not a registry reference");
    find(&d, "platform `amd64` is not os/arch");
    let d =
        check("apiVersion: berth/v1\nkind: Image\nmetadata: {name: img}\nspec: {import: /x.tar, pullPolicy: Never}\n");
    find(&d, "apply only to an Image with `ref`");
}

#[test]
fn depends_on_cycles_are_named() {
    let text = [
        container("b", "  dependsOn: [{name: c}]\n"),
        container("a", "  dependsOn: [{name: x}, {name: b}]\n"),
        container("c", "  dependsOn: [{name: a}]\n"),
        container("x", ""),
        container("solo", "  dependsOn: [{name: solo}]\n"),
    ]
    .join("---\n");
    let d = check(&text);
    let e = find(&d, "dependsOn cycle: a -> b -> c -> a");
    // Reported on `a`'s entry that leads into the cycle.
    assert_eq!((e.line, e.field.as_str()), (13, "spec.dependsOn[1].name"));
    let e = find(&d, "dependsOn cycle: solo -> solo");
    assert_eq!((e.line, e.field.as_str()), (33, "spec.dependsOn[0].name"));
    assert_eq!(d.len(), 2, "{}", render(&d));
}

#[test]
fn two_containers_publishing_the_same_host_port_are_named() {
    let text = [
        container("a", "  ports: [{host: 8080, container: 80}]\n"),
        container(
            "b",
            "  ports: [{host: 8080, container: 8080}, {host: 8080, container: 81, protocol: udp}]\n",
        ),
    ]
    .join("---\n");
    let d = check(&text);
    let e = find(
        &d,
        "host port 8080/tcp is published by both Container `a` (m.yaml:1) and Container `b`",
    );
    assert_eq!((e.line, e.field.as_str()), (13, "spec.ports[0].host"));
    // udp is another port; ports themselves are not supported yet.
    assert_eq!(
        d.iter().filter(|d| d.message.contains("8080/")).count(),
        1,
        "{}",
        render(&d)
    );
}

#[test]
fn a_host_ip_is_an_ipv4_address_and_only_the_same_address_clashes() {
    let text = [
        container("a", "  ports: [{hostIp: 127.0.0.1, host: 8080, container: 80}]\n"),
        container("b", "  ports: [{hostIp: 127.0.0.2, host: 8080, container: 80}]\n"),
        container("c", "  ports: [{hostIp: 127.0.0.1, host: 8080, container: 81}]\n"),
        container(
            "d",
            "  ports: [{host: 8080, container: 80}, {hostIp: ::1, host: 9090, container: 80}]\n",
        ),
    ]
    .join("---\n");
    let d = check(&text);
    let e = find(
        &d,
        "host port 127.0.0.1:8080/tcp is published by both Container `a` (m.yaml:1) and Container `c`",
    );
    assert_eq!(e.field, "spec.ports[0].host");
    // Every address clashes with any one address.
    find(&d, "host port 8080/tcp is published by both Container `a`");
    let e = find(&d, "`::1` is not an IPv4 address");
    assert_eq!((e.line, e.field.as_str()), (27, "spec.ports[1].hostIp"));
    // 127.0.0.2 is another address: `b` clashes with no one.
    assert!(!d.iter().any(|d| d.message.contains("Container `b`")), "{}", render(&d));
}

#[test]
fn volume_mounts_need_one_source_and_absolute_paths() {
    let d = check(&container(
        "web",
        "  volumes:\n    - {volume: data, hostPath: /srv, path: /a}\n    - {path: /b}\n    - {volume: data}\n    - {hostPath: srv, path: c}\n    - {tmpfs: tmp, size: 1Mi, path: /t}\n    - {volume: data, path: /e, size: 1Mi}\n",
    ));
    let e = find(&d, "got `volume` and `hostPath`");
    assert_eq!((e.line, e.field.as_str()), (7, "spec.volumes[0]"));
    let e = find(
        &d,
        "a mount needs exactly one of `volume`, `hostPath`, `tmpfs` or `anonymous`, got none",
    );
    assert_eq!(e.line, 8);
    let e = find(&d, "missing `path`");
    assert_eq!((e.line, e.field.as_str()), (9, "spec.volumes[2]"));
    let e = find(&d, "`hostPath` must be an absolute path, got `srv`");
    assert_eq!((e.line, e.field.as_str()), (10, "spec.volumes[3].hostPath"));
    find(&d, "`path` must be an absolute path inside the container, got `c`");
    let e = find(
        &d,
        "`tmpfs` is the mount path inside the container and must be absolute",
    );
    assert_eq!(e.line, 11);
    find(&d, "`path` is not used with `tmpfs`");
    let e = find(&d, "`size` applies only to `tmpfs` mounts");
    assert_eq!((e.line, e.field.as_str()), (12, "spec.volumes[5].size"));
}

#[test]
fn tmpfs_modes_are_octal_and_propagation_is_for_binds() {
    let d = check(&container(
        "web",
        "  volumes:\n    - {tmpfs: /a, mode: \"0700\"}\n    - {tmpfs: /b, mode: \"rwx\"}\n    - {tmpfs: /c, mode: \"17777\"}\n    - {volume: data, path: /d, mode: \"0755\"}\n    - {volume: data, path: /e, propagation: rslave}\n    - {hostPath: /srv, path: /f, propagation: rshared}\n",
    ));
    let e = find(&d, "got `rwx`");
    assert_eq!((e.line, e.field.as_str()), (8, "spec.volumes[1].mode"));
    assert!(e.message.contains("octal permission bits"), "{}", e.message);
    let e = find(&d, "got `17777`");
    assert_eq!((e.line, e.field.as_str()), (9, "spec.volumes[2].mode"));
    let e = find(&d, "`mode` applies only to `tmpfs` mounts");
    assert_eq!((e.line, e.field.as_str()), (10, "spec.volumes[3].mode"));
    let e = find(&d, "`propagation` applies only to `hostPath` bind mounts");
    assert_eq!((e.line, e.field.as_str()), (11, "spec.volumes[4].propagation"));
    assert_eq!(d.len(), 4, "{}", render(&d));
    assert_eq!(crate::manifest::types::parse_mode("1777"), Some(0o1777));
    assert_eq!(crate::manifest::types::parse_mode("8"), None);
}

#[test]
fn users_are_names_or_numbers() {
    for ok in [
        "1000",
        "\"0:0\"",
        "\"65534:100\"",
        "nobody",
        "\"app:staff\"",
        "www-data",
    ] {
        let d = check(&container("web", &format!("  user: {ok}\n")));
        assert!(d.is_empty(), "{ok}: {}", render(&d));
    }
    for bad in ["\"\"", "\"a b\"", "\"1000:\"", "\"-x\"", "99999999999"] {
        let d = check(&container("web", &format!("  user: {bad}\n")));
        let e = find(&d, "is not `user`, `uid`, `user:group` or `uid:gid`");
        assert_eq!((e.line, e.field.as_str()), (6, "spec.user"), "{bad}");
    }
}

#[test]
fn fields_berth_does_not_honour_yet_are_rejected() {
    let text = format!(
        "{}---\napiVersion: berth/v1\nkind: Network\nmetadata: {{name: backend}}\nspec: {{driver: bridge}}\n---\napiVersion: berth/v1\nkind: Image\nmetadata: {{name: pulled}}\nspec: {{ref: busybox, archive: /x.tar}}\n",
        container(
            "web",
            "  networks: [backend]\n  network: host\n  ports: [{host: 80, container: 80}]\n  healthcheck: {exec: []}\n  dependsOn: [{name: db, condition: healthy}]\n---\n",
        ) + &container("db", ""),
    );
    let d = check(&text);
    for (needle, line, field) in [
        ("`network` and `networks` exclude each other", 7, "spec.network"),
        ("a healthcheck needs a command", 9, "spec.healthcheck.exec"),
    ] {
        let e = find(&d, needle);
        assert_eq!((e.line, e.field.as_str()), (line, field), "{needle}");
    }
    find(&d, "an Image takes exactly one source, got `ref` and `archive`");
    // The image may have a HEALTHCHECK: only reconcile can tell.
    assert!(!d.iter().any(|e| e.field.starts_with("spec.dependsOn")), "{d:?}");
    let d = check(&container("web", "  network: bridge\n"));
    find(
        &d,
        "unknown network mode `bridge`: expected `none`, `host` or `container:NAME`",
    );
    let d = check(&container(
        "web",
        "  network: container:web\n  ports: [{host: 80, container: 80}]\n",
    ));
    find(&d, "a container cannot share its own network namespace");
    find(&d, "publishing ports needs a bridge network");
    let d = check(&format!(
        "apiVersion: berth/v1\nkind: Network\nmetadata: {{name: lan}}\nspec: {{driver: macvlan, parent: eth0, subnet: 192.168.77.0/24}}\n---\n{}",
        container("web", "  networks: [lan]\n  ports: [{host: 80, container: 80}]\n")
    ));
    let e = find(&d, "on a macvlan network the container has its own address");
    assert_eq!(e.field, "spec.ports");
}

#[test]
fn a_digest_is_refused_beside_a_ref_or_an_archive() {
    let hex = "a".repeat(64);
    for source in ["ref: busybox", "archive: /x.tar"] {
        let d = check(&format!(
            "apiVersion: berth/v1\nkind: Image\nmetadata: {{name: img}}\nspec:\n  {source}\n  digest: sha256:{hex}\n"
        ));
        let e = find(&d, "`digest` checks an `import` tar");
        assert_eq!((e.line, e.field.as_str()), (6, "spec.digest"));
    }
    let d = check(&format!(
        "apiVersion: berth/v1\nkind: Image\nmetadata: {{name: img}}\nspec:\n  import: /x.tar\n  digest: sha256:{hex}\n"
    ));
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn network_specs_are_checked_field_by_field() {
    let net = |spec: &str| format!("apiVersion: berth/v1\nkind: Network\nmetadata: {{name: n}}\nspec: {spec}\n");
    assert!(check(&net(
        "{subnet: 10.89.0.0/24, gateway: 10.89.0.1, ipRange: 10.89.0.128/25, internal: true, mtu: 1400}"
    ))
    .is_empty());
    for (spec, needle) in [
        (
            "{subnet: 10.89.0.1/24}",
            "host bits are set; did you mean 10.89.0.0/24?",
        ),
        ("{subnet: 10.89.0.0/31}", "the prefix must be 1 to 30"),
        // A /0 once overflowed the mask's shift and panicked validation.
        ("{subnet: 0.0.0.0/0}", "the prefix must be 1 to 30"),
        (
            "{subnet: 10.89.0.0/24, ipRange: 0.0.0.0/0}",
            "ipRange 0.0.0.0/0 is not inside subnet",
        ),
        ("{subnet: 10.0.0.0/0}", "host bits are set; did you mean 0.0.0.0/0?"),
        (
            "{subnet: 10.89.0.0/24, gateway: 10.90.0.1}",
            "not a host address of subnet 10.89.0.0/24",
        ),
        ("{gateway: 10.90.0.1}", "a gateway needs a `subnet`"),
        ("{driver: macvlan}", "a macvlan network needs `parent`"),
        ("{driver: macvlan, parent: eth0}", "a macvlan network needs `subnet`"),
        ("{parent: eth0}", "`parent` is for `driver: macvlan`"),
        ("{mtu: 10}", "mtu 10 is out of range"),
        ("{ipRange: 10.89.0.0/28}", "an ipRange needs a `subnet`"),
        (
            "{subnet: 10.89.0.0/24, ipRange: 10.89.1.0/28}",
            "ipRange 10.89.1.0/28 is not inside subnet 10.89.0.0/24",
        ),
        (
            "{subnet: 10.89.0.0/24, ipRange: 10.89.0.0/16}",
            "ipRange 10.89.0.0/16 is not inside subnet 10.89.0.0/24",
        ),
        (
            "{subnet: 10.89.0.0/24, ipRange: 10.89.0.3/28}",
            "did you mean 10.89.0.0/28?",
        ),
        (
            "{subnet: 10.89.0.0/24, subnet6: 'fd00:1::/64'}",
            "IPv6 is not supported yet",
        ),
    ] {
        let d = check(&net(spec));
        find(&d, needle);
    }
    let d = check(&net("\n  subnet: 10.89.0.0/24\n  subnet6: fd00:1::/64"));
    let e = find(&d, "IPv6 is not supported yet");
    assert_eq!((e.line, e.field.as_str()), (6, "spec.subnet6"));
}

#[test]
fn images_need_an_absolute_import_and_a_well_formed_digest() {
    let d = check(
        "apiVersion: berth/v1\nkind: Image\nmetadata: {name: img}\nspec:\n  import: rootfs.tar\n  digest: sha256:ABC\n",
    );
    let e = find(&d, "`import` must be an absolute path, got `rootfs.tar`");
    assert_eq!((e.line, e.field.as_str()), (5, "spec.import"));
    let e = find(&d, "digest `sha256:ABC` is malformed");
    assert_eq!((e.line, e.field.as_str()), (6, "spec.digest"));
    let d = check("apiVersion: berth/v1\nkind: Image\nmetadata: {name: img}\nspec: {}\n");
    find(&d, "an Image needs a source");
}

#[test]
fn volume_drivers_other_than_local_are_refused() {
    let d = check("apiVersion: berth/v1\nkind: Volume\nmetadata: {name: v}\nspec: {driver: nfs}\n");
    let e = find(&d, "volume driver `nfs` is not supported");
    assert_eq!((e.line, e.field.as_str()), (4, "spec.driver"));
}

#[test]
fn resource_limits_must_be_in_range() {
    let d = check(&container(
        "web",
        "  resources:\n    cpuShares: 1\n    pids: 0\n    memory: 4Mi\n",
    ));
    let e = find(&d, "cpuShares must be between 2 and 262144, got 1");
    assert_eq!((e.line, e.field.as_str()), (7, "spec.resources.cpuShares"));
    let e = find(&d, "pids must be at least 1");
    assert_eq!(e.line, 8);
    let e = find(&d, "memory must be at least 6Mi (Docker's minimum), got 4Mi");
    assert_eq!(e.line, 9);
    let d = check(&container("web", "  resources: {cpuShares: 262145}\n"));
    find(&d, "got 262145");
}

#[test]
fn commands_and_environments_must_be_usable() {
    let d = check(&container(
        "web",
        "  command: [\"\", x]\n  env: {\"A=B\": x, \"\": y}\n",
    ));
    let e = find(&d, "the program to run must not be empty");
    assert_eq!((e.line, e.field.as_str()), (6, "spec.command[0]"));
    let e = find(&d, "environment variable name `A=B` must not contain `=`");
    assert_eq!((e.line, e.field.as_str()), (7, "spec.env.A=B"));
    find(&d, "environment variable names must not be empty");
}

#[test]
fn a_container_with_no_command_whose_image_in_the_set_has_no_cmd_is_reported() {
    let bare = "---\napiVersion: berth/v1\nkind: Image\nmetadata: {name: bare}\nspec: {import: /srv/bare.tar}\n";
    let on_bare = |name: &str, spec: &str| {
        format!("apiVersion: berth/v1\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: bare\n{spec}")
    };
    let text = [on_bare("absent", ""), on_bare("empty", "  command: []\n")].join("---\n") + bare;
    let d = check(&text);
    let got: Vec<(usize, usize, &str, &str)> = d
        .iter()
        .map(|d| (d.line, d.column, d.field.as_str(), d.message.as_str()))
        .collect();
    let message = "no command: set spec.command, or cmd on image/bare";
    let empty = "`command: []` runs nothing: name a program, or leave `command` out to run the image's cmd";
    // Absent: at `spec`, the nearest field that is written; empty: at `command`.
    assert_eq!(
        got,
        [(4, 1, "spec.command", message), (12, 3, "spec.command", empty)],
        "{}",
        render(&d)
    );

    // A command, or a `cmd` on the image, is enough.
    let d = check(&(on_bare("web", "  command: [httpd]\n") + bare));
    assert!(d.is_empty(), "{}", render(&d));
}

#[test]
fn an_empty_command_is_refused_unless_an_entrypoint_runs() {
    let d = check(&container("web", "  command: []\n"));
    let got: Vec<(usize, &str)> = d.iter().map(|d| (d.line, d.field.as_str())).collect();
    assert_eq!(got, [(6, "spec.command")], "{}", render(&d));
    assert!(d[0].message.contains("runs nothing"), "{}", render(&d));
    // Flow style: the field is on the same line as `spec`, apart from it.
    let text = "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: elsewhere, command: []}\n";
    let d = check_with(text, &|kind, name| kind == Kind::Image && name == "elsewhere");
    assert_eq!(d.len(), 1, "{}", render(&d));
    // An entrypoint with no arguments is a program to run.
    let d = check(&container("web", "  entrypoint: [httpd]\n  command: []\n"));
    assert!(d.is_empty(), "{}", render(&d));
}

#[test]
fn a_container_on_an_image_only_the_daemon_knows_needs_no_command_here() {
    let text = "apiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: elsewhere}\n";
    let d = check_with(text, &|kind, name| kind == Kind::Image && name == "elsewhere");
    assert!(d.is_empty(), "{}", render(&d));
}

#[test]
fn all_problems_are_reported_at_once_in_source_order() {
    let text = [
        container("_web", "  user: \"r t\"\n  dependsOn: [{name: ghost}]\n"),
        container("db", "  resources: {pids: 0}\n  volumes: [{tmpfs: /t, path: /t}]\n"),
    ]
    .join("---\n");
    let d = check(&text);
    let lines: Vec<usize> = d.iter().map(|d| d.line).collect();
    assert_eq!(lines, [3, 6, 7, 14, 15], "{}", render(&d));
}

#[test]
fn without_positions_problems_are_located_at_the_object_origin() {
    let sources = [Source {
        file: "m.yaml".into(),
        text: format!("{}{COMMON}", container("web", "  user: \"no body\"\n")),
    }];
    let objects = crate::manifest::parse(&sources).unwrap();
    let d = validate(&objects, &|_, _| false);
    let e = find(&d, "user `no body`");
    assert_eq!(
        (e.file.as_str(), e.line, e.column, e.field.as_str()),
        ("m.yaml", 1, 1, "spec.user")
    );

    // `load` keeps positions, and reports parse problems before validating.
    let d = load(&sources, &|_, _| false).unwrap_err();
    assert_eq!(find(&d, "user `no body`").line, 6);
    assert_eq!(d[0].snippet, "  user: \"no body\"");
    let bad = [Source {
        file: "m.yaml".into(),
        text: "apiVersion: berth/v1\nkind: Volume\nmetadata: {name: Bad}\nspec: {drivr: x}\n".into(),
    }];
    let d = load(&bad, &|_, _| false).unwrap_err();
    assert_eq!(d.len(), 1, "{}", render(&d));
    find(&d, "unknown field `drivr`, did you mean `driver`?");
}

#[test]
fn docker_resource_fields_are_checked_at_their_line() {
    // Line 6 is `resources:`; each field follows on its own line.
    let d = check(&container(
        "web",
        "  resources:\n    memorySwap: 200Mi\n    memoryReservation: 1Gi\n    cpus: 1\n    cpuPeriod: 500\n    cpuQuota: 10\n    cpusetCpus: 3-1\n    cpusetMems: x\n    blkioWeight: 5\n    blkioWeightDevice: [{path: /dev/vda, weight: 2000}]\n    deviceReadBps: [{path: vda, rate: 0}]\n    deviceWriteIops: [{path: /dev/vda, rate: 0}]\n",
    ));
    let at = |needle: &str| {
        let e = find(&d, needle);
        (e.line, e.field.clone())
    };
    assert_eq!(
        at("memorySwap limits memory plus swap and needs `memory` too"),
        (7, "spec.resources.memorySwap".into())
    );
    assert_eq!(
        at("cpuPeriod cannot be set with `cpus`"),
        (10, "spec.resources.cpuPeriod".into())
    );
    assert_eq!(
        at("cpuPeriod must be between 1000 and 1000000 microseconds, got 500"),
        (10, "spec.resources.cpuPeriod".into())
    );
    assert_eq!(
        at("cpuQuota must be at least 1000 microseconds, got 10"),
        (11, "spec.resources.cpuQuota".into())
    );
    assert_eq!(
        at("cpusetCpus \"3-1\" is not a list"),
        (12, "spec.resources.cpusetCpus".into())
    );
    assert_eq!(
        at("cpusetMems \"x\" is not a list"),
        (13, "spec.resources.cpusetMems".into())
    );
    assert_eq!(
        at("blkioWeight must be between 10 and 1000, got 5"),
        (14, "spec.resources.blkioWeight".into())
    );
    assert_eq!(
        at("weight must be between 10 and 1000, got 2000"),
        (15, "spec.resources.blkioWeightDevice[0].weight".into())
    );
    assert_eq!(
        at("device \"vda\" must be an absolute path"),
        (16, "spec.resources.deviceReadBps[0].path".into())
    );
    assert_eq!(
        at("rate must be at least 1 byte per second"),
        (16, "spec.resources.deviceReadBps[0].rate".into())
    );
    assert_eq!(
        at("rate must be at least 1 operation per second"),
        (17, "spec.resources.deviceWriteIops[0].rate".into())
    );

    let d = check(&container(
        "web",
        "  resources:\n    memory: 100Mi\n    memorySwap: 50Mi\n    memoryReservation: 200Mi\n",
    ));
    assert_eq!(
        at_of(
            &d,
            "memorySwap (50Mi) counts memory plus swap and must be at least memory (100Mi)"
        ),
        8
    );
    assert_eq!(at_of(&d, "memoryReservation (200Mi) must be at most memory (100Mi)"), 9);

    let fine = check(&container(
        "web",
        "  resources:\n    memory: 100Mi\n    memorySwap: unlimited\n    memoryReservation: 50Mi\n    oomKillDisable: true\n    cpuPeriod: 50000\n    cpuQuota: 25000\n    cpusetCpus: 0-1\n    cpusetMems: \"0\"\n    blkioWeight: 500\n    deviceReadBps: [{path: /dev/vda, rate: 1Mi}]\n    deviceReadIops: [{path: /dev/vda, rate: 100}]\n",
    ));
    assert!(fine.is_empty(), "{}", render(&fine));
}

fn at_of(d: &[Diagnostic], needle: &str) -> usize {
    find(d, needle).line
}

#[test]
fn storage_fields_are_checked_with_their_place() {
    let text = container(
        "web",
        "  volumes:\n    - {anonymous: true, path: /cache, nocopy: true}\n    - {anonymous: true}\n    - {hostPath: /srv, path: /s, nocopy: true}\n    - {volume: data, path: /}\n    - {tmpfs: /a/../etc}\n    - {hostPath: /srv/../etc, path: /e}\n    - {volume: a/b, path: /v}\n  readOnlyRootfs: true\n  shmSize: 0\n  volumesFrom:\n    - {container: web}\n    - {container: store, readOnly: true}\n    - {container: nowhere}\n    - {container: store}\n",
    );
    let known = |kind: Kind, name: &str| matches!((kind, name), (Kind::Container, "store") | (Kind::Volume, "data"));
    let d = check_with(&text, &known);
    let e = find(&d, "missing `path`");
    assert_eq!((e.line, e.field.as_str()), (8, "spec.volumes[1]"));
    let e = find(&d, "`nocopy` applies only to");
    assert_eq!((e.line, e.field.as_str()), (9, "spec.volumes[2].nocopy"));
    let e = find(&d, "a mount cannot be at `/`");
    assert_eq!((e.line, e.field.as_str()), (10, "spec.volumes[3].path"));
    let e = find(&d, "a mount path must not contain `..`");
    assert_eq!((e.line, e.field.as_str()), (11, "spec.volumes[4].tmpfs"));
    let e = find(&d, "`hostPath` must not contain `..`");
    assert_eq!((e.line, e.field.as_str()), (12, "spec.volumes[5].hostPath"));
    let e = find(&d, "`a/b` is not a volume name");
    assert_eq!((e.line, e.field.as_str()), (13, "spec.volumes[6].volume"));
    let e = find(&d, "`shmSize` must be larger than 0");
    assert_eq!((e.line, e.field.as_str()), (15, "spec.shmSize"));
    let e = find(&d, "cannot take the volumes of itself");
    assert_eq!((e.line, e.field.as_str()), (17, "spec.volumesFrom[0].container"));
    let e = find(&d, "references Container `nowhere`, which is not defined");
    assert_eq!((e.line, e.field.as_str()), (19, "spec.volumesFrom[2].container"));
    let e = find(&d, "`store` is listed twice in `volumesFrom`");
    assert_eq!((e.line, e.field.as_str()), (20, "spec.volumesFrom[3].container"));
    assert_eq!(d.len(), 10, "{}", render(&d));
}

#[test]
fn local_driver_options_are_dockers() {
    let vol = |name: &str, opts: &str| {
        format!("apiVersion: berth/v1\nkind: Volume\nmetadata: {{name: {name}}}\nspec:\n  driverOpts: {opts}\n---\n")
    };
    let good = [
        vol("t", "{type: tmpfs, device: tmpfs, o: \"size=100m,mode=1777\"}"),
        vol("b", "{type: none, o: bind, device: /srv/data}"),
    ]
    .concat();
    let d = check(&good);
    assert!(d.is_empty(), "{}", render(&d));
    let bad = [
        vol("a", "{type: tmpfs}"),
        vol("b", "{type: none, device: srv, o: bind}"),
        vol("c", "{type: tmpfs, device: tmpfs, o: \"size=lots\"}"),
        vol("d", "{type: none, device: /srv}"),
        vol("e", "{colour: red}"),
        vol("f", "{type: ext4, o: bind, device: /srv}"),
    ]
    .concat();
    let d = check(&bad);
    let e = find(&d, "both `type` and `device`");
    assert_eq!((e.line, e.field.as_str()), (5, "spec.driverOpts"));
    let e = find(&d, "`device` must be an absolute host path");
    assert_eq!((e.line, e.field.as_str()), (11, "spec.driverOpts.device"));
    let e = find(&d, "`size=lots` is not a size");
    assert_eq!((e.line, e.field.as_str()), (17, "spec.driverOpts.o"));
    find(&d, "`type: none` needs `o: bind`");
    find(&d, "unknown local driver option `colour`");
    find(&d, "a bind (`o=bind`) takes `type: none`");
}

#[test]
fn noexec_is_for_tmpfs_mounts() {
    let d = check_with(
        &container(
            "web",
            "  volumes:\n    - {tmpfs: /t, noexec: true}\n    - {volume: data, path: /d, noexec: true}\n",
        ),
        &|kind, name| kind == Kind::Volume && name == "data",
    );
    let e = find(&d, "`noexec` applies only to `tmpfs` mounts");
    assert_eq!((e.line, e.field.as_str()), (8, "spec.volumes[1].noexec"));
    assert_eq!(d.len(), 1, "{}", render(&d));
}
