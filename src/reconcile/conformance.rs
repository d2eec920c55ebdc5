//! One conformance suite per seam ([`ContainerHost`], [`ImageHost`],
//! [`VolumeHost`], [`NetworkHost`]), run against the recording fake in unit
//! tests (`reconcile::tests`) and against the real host in
//! `tests/conformance.rs`, so the fake cannot drift from the kernel's
//! answers (as containerd's `core/content/testsuite`). Only what is cheap
//! and the same on both is asserted: the fake serves the engine's logic,
//! not the kernel's details. Every suite holds each seam to the same four
//! promises the engine relies on: a create twice is one object, a delete of
//! a missing one is done, what was made is observed, and a failed call
//! leaves nothing behind.
//!
//! Public (not `cfg(test)`) because the root-only integration test calls it.

use std::path::Path;

use nix::sys::signal::Signal;

use super::seams::{ContainerHost, ImageHost, NetworkHost, VolumeHost};
use crate::image::ImageError;
use crate::network::{BridgeConfig, Subnet, VethConfig};
use crate::runtime::exec::{ExecReport, ExecSpec};
use crate::runtime::{ContainerConfig, Probe};

/// What a subject of the suite provides.
pub struct Subject<'a> {
    pub host: &'a dyn ContainerHost,
    /// A container that runs until killed (`sleep`), with an unused id.
    pub config: ContainerConfig,
    /// A regular file its root filesystem holds, and that file's text.
    pub file: (&'a str, &'a str),
    /// A scratch directory on the host.
    pub scratch: &'a Path,
    /// Makes the container with this id and init pid write a line (no
    /// newline) to its stdout.
    pub write_log: &'a dyn Fn(&str, i32, &str),
}

fn running(host: &dyn ContainerHost, id: &str) -> crate::runtime::RunRecord {
    match host.probe(id) {
        Probe::Running(run) => run,
        other => panic!("{id}: expected running, the host says {other:?}"),
    }
}

/// Start, observe, freeze, read, copy, exec, kill, remove: each answer as
/// the seam documents it. Panics naming the first that differs.
pub async fn container_lifecycle(s: Subject<'_>) {
    let host = s.host;
    let id = s.config.id.as_str();
    assert!(matches!(host.probe(id), Probe::Absent), "{id} exists before its start");
    assert!(!host.list().iter().any(|i| i == id));
    assert!(host.oci_spec(id).is_none());
    assert!(host.processes(id).is_empty());
    assert!(!host.is_frozen(id));
    // Hostile: nothing of an absent container can be frozen or exec'd in.
    // An exec is refused in its first report (the caller reads it to learn
    // whether the process runs), as Docker answers 126.
    assert!(host.freeze(id, true).is_err(), "froze an absent container");
    assert!(
        host.attach(id, false).expect("attach").is_none(),
        "attached to an absent container"
    );
    let mut refused = host.exec(id, exec_true(), false, false).expect("exec");
    match refused.next_report().await {
        Some(ExecReport::Failed { exit_code, .. }) => assert_eq!(exit_code, 126),
        other => panic!("exec in an absent container: {other:?}"),
    }

    let mut absent = host.open_log(id, None).expect("the log of an absent container");
    assert!(absent.next_lines().await.expect("read").is_empty());

    let run = host.start(&s.config).await.expect("start");
    assert_eq!(running(host, id), run);
    logs(host, id, run.init_pid, s.write_log).await;
    assert!(host.list().iter().any(|i| i == id), "{:?}", host.list());

    let stats = host.stats(id, run.init_pid).expect("stats of a running container");
    assert!(stats.pids >= 1, "{stats:?}");
    assert!(stats.memory_limit_bytes > 0, "{stats:?}");
    let processes = host.processes(id);
    assert!(processes.iter().any(|p| p.pid == run.init_pid), "{processes:?}");
    let spec = host.oci_spec(id).expect("the OCI spec of a running container");
    let args = spec.process().as_ref().and_then(|p| p.args().clone());
    assert_eq!(args.as_ref(), Some(&s.config.args), "{spec:?}");

    assert!(!host.is_frozen(id));
    // Hostile: without a tty or stdin there is nothing to attach to.
    assert!(
        host.attach(id, false).expect("attach").is_none(),
        "attached without stdin"
    );
    host.freeze(id, true).expect("freeze");
    assert!(host.is_frozen(id));
    host.freeze(id, false).expect("thaw");
    assert!(!host.is_frozen(id));

    let (path, text) = s.file;
    assert_eq!(host.read_file(run.init_pid, Path::new(path)).expect("read_file"), text);
    let missing = host.read_file(run.init_pid, Path::new("/no/such/file")).unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound, "{missing}");
    // Hostile: a pid that is no container's init reads nothing.
    assert!(host.read_file(i32::MAX, Path::new(path)).is_err());

    let out = s.scratch.join("copied-out");
    let n = host.copy(run.init_pid, false, Path::new(path), &out).expect("copy out");
    assert_eq!(
        (n, std::fs::read_to_string(&out).unwrap().as_str()),
        (text.len() as u64, text)
    );
    let source = s.scratch.join("to-copy-in");
    std::fs::write(&source, "copied in\n").unwrap();
    let n = host
        .copy(run.init_pid, true, Path::new("/copied-in"), &source)
        .expect("copy in");
    assert_eq!(n, 10);
    assert_eq!(
        host.read_file(run.init_pid, Path::new("/copied-in")).unwrap(),
        "copied in\n"
    );

    export(host, id, &s.config.lower_dirs, s.scratch);

    let mut process = host.exec(id, exec_true(), false, false).expect("exec");
    assert!(matches!(process.next_report().await, Some(ExecReport::Started { .. })));
    assert_eq!(process.next_report().await, Some(ExecReport::Exited { code: 0 }));

    host.signal(id, Signal::SIGKILL).expect("SIGKILL");
    host.wait_shim(run).await;
    match host.probe(id) {
        Probe::Exited(exit) => assert_eq!(exit.code, 137, "{exit:?}"),
        other => panic!("{id}: expected exited after SIGKILL, the host says {other:?}"),
    }
    assert!(host.processes(id).is_empty());
    assert!(!host.is_frozen(id));

    host.remove(id).expect("remove");
    assert!(matches!(host.probe(id), Probe::Absent));
    assert!(!host.list().iter().any(|i| i == id));
    assert!(host.oci_spec(id).is_none());
    // "Already gone" is success.
    host.remove(id).expect("a second remove");

    attach_to_stdin(host, s.config.clone()).await;
}

/// A container with an open stdin running `cat`: what an attach writes
/// comes back on the stream, which ends once the client's EOF ends `cat`.
async fn attach_to_stdin(host: &dyn ContainerHost, mut config: ContainerConfig) {
    use std::io::{Read, Write};
    config.id = format!("{}-stdin", config.id);
    config.args = vec!["cat".into()];
    config.io.stdin = true;
    let id = config.id.as_str();
    let run = host.start(&config).await.expect("start with stdin");
    let streams = host
        .attach(id, false)
        .expect("attach")
        .expect("a container with stdin takes an attach");
    assert!(streams.master.is_none(), "a pty master without a tty");
    let mut stream = std::os::unix::net::UnixStream::from(streams.stream);
    stream.write_all(b"ping\n").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("the output until cat exits");
    assert!(out.windows(5).any(|w| w == b"ping\n"), "{out:?}");
    // `cat` has exited on the real host; the fake's runs until killed.
    let _ = host.signal(id, Signal::SIGKILL);
    host.wait_shim(run).await;
    host.remove(id).expect("remove");
    assert!(
        host.attach(id, false).expect("attach").is_none(),
        "attached to a removed container"
    );
}

/// Export holds what was copied in (the writable layer) and leaves nothing
/// behind when it cannot write.
fn export(host: &dyn ContainerHost, id: &str, lower_dirs: &[std::path::PathBuf], scratch: &Path) {
    let out = scratch.join("export.tar");
    host.export(id, lower_dirs, &out).expect("export");
    let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("the exported tar"));
    let copied = archive
        .entries()
        .expect("a tar")
        .map(|e| e.expect("an entry"))
        .find(|e| e.path().is_ok_and(|p| p.as_os_str() == "copied-in"));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut copied.expect("copied-in in the export"), &mut text).unwrap();
    assert_eq!(text, "copied in\n");
    // Hostile: a directory that is not there fails the export, and no
    // partial tar is left anywhere.
    let before: Vec<_> = std::fs::read_dir(scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(host
        .export(id, lower_dirs, &scratch.join("missing/export.tar"))
        .is_err());
    let after: Vec<_> = std::fs::read_dir(scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    std::fs::remove_file(&out).unwrap();
}

/// Every line a new reader of `id`'s log (from its last `tail` lines)
/// reads, once it holds `want` of them: the shim writes the log as output
/// comes, so it is waited for, never assumed.
async fn log_texts(host: &dyn ContainerHost, id: &str, tail: Option<usize>, want: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut log = host.open_log(id, tail).expect("open_log");
        let mut texts = Vec::new();
        loop {
            let lines = log.next_lines().await.expect("read the log");
            if lines.is_empty() {
                break;
            }
            for l in lines {
                assert_eq!(l.stream, "stdout", "{l:?}");
                texts.push(l.text);
            }
        }
        if texts.len() >= want || std::time::Instant::now() > deadline {
            return texts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The log holds what the container wrote, in order; `tail` keeps the
/// last lines; a reader that caught up reads what comes next, once.
async fn logs(host: &dyn ContainerHost, id: &str, init_pid: i32, write: &dyn Fn(&str, i32, &str)) {
    write(id, init_pid, "first");
    write(id, init_pid, "second");
    assert_eq!(log_texts(host, id, None, 2).await, ["first", "second"]);
    assert_eq!(log_texts(host, id, Some(1), 1).await, ["second"]);
    let mut log = host.open_log(id, Some(0)).expect("open_log");
    assert!(log.next_lines().await.unwrap().is_empty(), "a tail of 0 read lines");
    write(id, init_pid, "third");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let next = loop {
        let lines = log.next_lines().await.unwrap();
        if !lines.is_empty() || std::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(next.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["third"]);
    assert!(log.next_lines().await.unwrap().is_empty(), "a line read twice");
}

fn exec_true() -> ExecSpec {
    ExecSpec {
        args: vec!["true".into()],
        ..Default::default()
    }
}

/// What the volume suite needs: the host, and a way to make the next
/// create of a name fail (the fake's fault; a file in the way on disk),
/// with `heal` to undo it.
pub struct VolumeSubject<'a> {
    pub host: &'a dyn VolumeHost,
    pub break_create: &'a dyn Fn(&str),
    pub heal: &'a dyn Fn(&str),
}

/// Create, observe, anonymous ownership, remove; twice each.
pub fn volume_lifecycle(s: VolumeSubject<'_>) {
    let host = s.host;
    assert!(!host.exists("conf-data"), "conf-data exists before its create");
    host.remove("conf-data").expect("remove of a missing volume is done");

    let path = host.create("conf-data").expect("create");
    assert_eq!(path, host.path("conf-data"));
    assert!(host.exists("conf-data"));
    let again = host.create("conf-data").expect("a second create is the same volume");
    assert_eq!(again, path);
    assert!(host.exists("conf-data"));

    // Anonymous: the first owner recorded stays its owner.
    let id = "c0ffee".repeat(10) + "abcd";
    let a = host.create_anonymous(&id, "web", "/data").expect("create_anonymous");
    assert_eq!(a, host.path(&id));
    host.create_anonymous(&id, "other", "/elsewhere")
        .expect("a second create_anonymous keeps the first");
    let listed: Vec<_> = host.anonymous().into_iter().filter(|v| v.id == id).collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].container.as_str(), listed[0].path.as_str()),
        ("web", "/data")
    );
    // A named volume is no anonymous one.
    assert!(!host.anonymous().iter().any(|v| v.id == "conf-data"));

    for name in ["conf-data", id.as_str()] {
        host.remove(name).expect("remove");
        assert!(!host.exists(name), "{name} exists after its remove");
        host.remove(name).expect("a second remove is done");
    }
    assert!(!host.anonymous().iter().any(|v| v.id == id));

    // Hostile: a create that fails leaves no volume behind.
    (s.break_create)("conf-broken");
    assert!(host.create("conf-broken").is_err(), "the broken create succeeded");
    assert!(!host.exists("conf-broken"), "a failed create left a volume");
    (s.heal)("conf-broken");
    host.create("conf-broken").expect("create once healed");
    host.remove("conf-broken").expect("remove");
    assert!(!host.exists("conf-broken"));
}

/// What the network suite needs: the host (its `names()` name everything),
/// a network and container id nothing else uses, and a subnet free on the
/// host.
pub struct NetworkSubject<'a> {
    pub host: &'a dyn NetworkHost,
    pub network: &'a str,
    pub id: &'a str,
    pub subnet: Subnet,
}

/// Bridge, namespace, veth, files; made twice, observed, removed twice; an
/// attach that fails leaves no link.
pub fn network_lifecycle(s: NetworkSubject<'_>) {
    let (host, id) = (s.host, s.id);
    let names = host.names();
    let bridge = BridgeConfig {
        name: names.bridge_name(s.network),
        alias: names.alias(&format!("network/{}", s.network)),
        subnet: s.subnet,
        gateway: s.subnet.default_gateway(),
        mtu: None,
    };
    let veth = VethConfig {
        host_name: names.veth_name(id, 0),
        alias: names.alias(&format!("container/{id}")),
        bridge: bridge.name.clone(),
        ifname: "eth0".into(),
        mac: None,
        address: std::net::Ipv4Addr::from(u32::from(bridge.gateway) + 1),
        prefix: s.subnet.prefix,
        default_gateway: Some(bridge.gateway),
        mtu: None,
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert!(!host.bridge_ok(&bridge), "the bridge exists before its create");
    assert!(!host.link_exists(&bridge.name));
    assert!(!host.netns_exists(id));
    assert!(!host.list().iter().any(|i| i == id));
    host.delete_link(&bridge.name)
        .expect("delete of a missing link is done");
    host.remove_container(id, 1)
        .expect("remove of a missing container's network is done");
    host.detach(id, &veth.host_name, "eth0")
        .expect("detach of a missing veth is done");

    host.ensure_bridge(&bridge).expect("ensure_bridge");
    host.ensure_bridge(&bridge)
        .expect("a second ensure_bridge is the same bridge");
    assert!(host.bridge_ok(&bridge));
    assert!(host.link_exists(&bridge.name));

    // Hostile: an attach before the namespace fails and leaves no link.
    assert!(host.attach(id, &veth).is_err(), "attached to a missing namespace");
    assert!(!host.link_exists(&veth.host_name), "a failed attach left its veth");
    assert!(!host.veth_ok(&veth.host_name, &bridge.name));

    let ns = host.create_netns(id).expect("create_netns");
    assert_eq!(ns, names.netns_path(id));
    assert_eq!(host.create_netns(id).expect("a second create_netns keeps it"), ns);
    assert!(host.netns_exists(id));
    assert!(host.list().iter().any(|i| i == id), "{:?}", host.list());
    assert_eq!(host.netns_links(id).expect("links"), ["lo"]);

    // Hostile: an attach to a bridge that is not there fails and leaves
    // nothing, on the host or in the namespace.
    let stray = VethConfig {
        bridge: format!("{}x", bridge.name),
        ..veth.clone()
    };
    assert!(host.attach(id, &stray).is_err(), "attached to a missing bridge");
    assert!(!host.link_exists(&veth.host_name), "a failed attach left its veth");
    assert_eq!(host.netns_links(id).expect("links"), ["lo"]);

    host.attach(id, &veth).expect("attach");
    host.attach(id, &veth).expect("a second attach is the same veth");
    assert!(host.veth_ok(&veth.host_name, &bridge.name));
    assert!(host.link_exists(&veth.host_name));
    assert_eq!(sorted(host.netns_links(id).expect("links")), ["eth0", "lo"]);

    let path = host
        .write_file(id, "hosts", "127.0.0.1\tlocalhost\n")
        .expect("write_file");
    assert_eq!(path, names.dir(id).join("hosts"));

    host.detach(id, &veth.host_name, "eth0").expect("detach");
    assert!(!host.link_exists(&veth.host_name));
    assert!(!host.veth_ok(&veth.host_name, &bridge.name));
    assert_eq!(host.netns_links(id).expect("links"), ["lo"]);
    host.detach(id, &veth.host_name, "eth0")
        .expect("a second detach is done");

    host.remove_container(id, 1).expect("remove_container");
    assert!(!host.netns_exists(id));
    assert!(!host.list().iter().any(|i| i == id));
    assert!(host.netns_links(id).is_err(), "links of a removed namespace");
    host.remove_container(id, 1).expect("a second remove_container is done");

    host.delete_link(&bridge.name).expect("delete_link");
    assert!(!host.bridge_ok(&bridge));
    assert!(!host.link_exists(&bridge.name));
    host.delete_link(&bridge.name).expect("a second delete_link is done");
}

/// What the image suite needs: a root filesystem tar, one that fails to
/// import (the fake's scripted failure; a cut-short file on disk), and
/// references nothing else uses.
pub struct ImageSubject<'a> {
    pub host: &'a dyn ImageHost,
    pub tar: &'a Path,
    pub broken_tar: &'a Path,
    /// Two references, normalized as the store spells them.
    pub references: [&'a str; 2],
}

/// Import, observe, tag, untag, remove; an import that fails names nothing.
/// The import is an Image object's (unnamed, found by its id), the one the
/// engine repeats: a named import is a new image each time, as Docker's.
pub fn image_lifecycle(s: ImageSubject<'_>) {
    let host = s.host;
    let [first, second] = s.references;
    let named = |reference: &str| {
        host.images()
            .expect("images")
            .into_iter()
            .filter(|i| i.references.iter().any(|r| r == reference))
            .map(|i| i.record.id)
            .collect::<Vec<_>>()
    };
    assert!(host.image(first).is_none(), "{first} exists before its import");
    assert!(named(first).is_empty());
    // Docker's rmi of a missing image is an error, and so is this one.
    assert!(
        matches!(host.remove_image(first), Err(ImageError::NotFound { .. })),
        "remove of a missing image"
    );

    let record = host.import_image(s.tar, None, None, vec![]).expect("import");
    assert_eq!(host.image(&record.id).as_ref(), Some(&record));
    assert_eq!(
        host.lower_dirs(&record).expect("lower_dirs").len(),
        record.chain_ids.len()
    );
    assert_eq!(host.layer_sizes(&record).len(), record.chain_ids.len());
    let again = host.import_image(s.tar, None, None, vec![]).expect("a second import");
    assert_eq!(again.id, record.id, "the same tar is the same image");
    let named_record = host.tag(&record.id, first).expect("name it");
    assert_eq!(named_record.id, record.id);
    assert_eq!(host.image(first).map(|r| r.id), Some(record.id.clone()));
    assert_eq!(named(first), [record.id.as_str()]);

    // Hostile: an import that fails names nothing and leaves the image
    // that was there as it was.
    assert!(host.import_image(s.broken_tar, Some(second), None, vec![]).is_err());
    assert!(host.image(second).is_none(), "a failed import named an image");
    assert!(named(second).is_empty());
    assert_eq!(host.image(first).map(|r| r.id), Some(record.id.clone()));

    let tagged = host.tag(first, second).expect("tag");
    assert_eq!(tagged.id, record.id);
    assert_eq!(named(second), [record.id.as_str()]);
    let (untagged, deleted) = host.remove_image(second).expect("untag");
    assert_eq!((untagged.id.as_str(), deleted), (record.id.as_str(), false));
    assert!(host.image(second).is_none());
    assert!(host.image(first).is_some(), "an untag removed the image");

    let (removed, deleted) = host.remove_image(first).expect("remove");
    assert_eq!((removed.id.as_str(), deleted), (record.id.as_str(), true));
    assert!(host.image(first).is_none());
    assert!(
        host.image(&record.id).is_none(),
        "the image outlived its last reference"
    );
    assert!(named(first).is_empty());
    assert!(matches!(host.remove_image(first), Err(ImageError::NotFound { .. })));
}
