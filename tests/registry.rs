//! Images from a real registry: Debian's `docker-registry` on a loopback
//! port of its own per test, a two-layer image made with umoci from the
//! static busybox (the second layer deletes a file, adds one, adds a user)
//! and pushed with skopeo; then `berth pull`, `run` and manifests naming the
//! reference, and the errors: unknown tag, unreachable registry, bad
//! reference, a blob whose bytes do not match its digest. Run as root.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::sync::PortHold;
use common::{busybox_tar, Env};

/// A `docker-registry` serving from a temp dir on a free loopback port;
/// killed and its storage removed on drop.
struct Registry {
    child: Child,
    dir: PathBuf,
    port: u16,
    /// Keeps the port from other tests for as long as the registry serves.
    _held: PortHold,
}

impl Registry {
    fn start(env: &Env) -> Registry {
        Registry::start_with(env, "")
    }

    /// With `auth` (YAML flow text) added to its config.
    fn start_with(env: &Env, auth: &str) -> Registry {
        let dir = env.dir.join("registry");
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        // A port held for this test (see PortHold): the registry binds it with
        // SO_REUSEADDR as Go does, and no other test can take it meanwhile.
        let held = PortHold::tcp();
        let port = held.port;
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n{auth}",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry (scripts/install-deps.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not come up");
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "docker-registry exited ({status}): {}",
                    std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry {
            child,
            dir,
            port,
            _held: held,
        }
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("127.0.0.1:{}/{repo_tag}", self.port)
    }

    /// Pushes the test image as `repo_tag`.
    fn push(&self, repo_tag: &str) {
        self.push_as(repo_tag, None)
    }

    fn push_as(&self, repo_tag: &str, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if let Some(creds) = creds {
            cmd.arg(format!("--dest-creds={creds}"));
        }
        let out = cmd
            .arg(format!("oci:{}:base", test_image().display()))
            .arg(format!("docker://{}", self.reference(repo_tag)))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The registry's file holding blob `digest`.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OCI layout with the image `base`, made once per test binary: layer 1
/// is the busybox root filesystem; layer 2 deletes /www/index.html (a
/// whiteout), adds /etc/added and the user `app` (1000:1000). Its config
/// sets Cmd, Env, WorkingDir and User.
fn test_image() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("registry-image");
        let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("registry-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let layout = work.join("oci");
        let image = format!("{}:base", layout.display());
        let bundle = work.join("bundle");
        run(Command::new("umoci").args(["init", "--layout"]).arg(&layout));
        run(Command::new("umoci").args(["new", "--image", &image]));
        run(Command::new("umoci").args(["unpack", "--image", &image]).arg(&bundle));
        run(Command::new("tar")
            .arg("-xf")
            .arg(busybox_tar())
            .arg("-C")
            .arg(bundle.join("rootfs")));
        run(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle));
        std::fs::remove_dir_all(&bundle).unwrap();
        run(Command::new("umoci").args(["unpack", "--image", &image]).arg(&bundle));
        let rootfs = bundle.join("rootfs");
        std::fs::remove_file(rootfs.join("www/index.html")).unwrap();
        std::fs::write(rootfs.join("etc/added"), "added in layer 2\n").unwrap();
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        std::fs::write(
            rootfs.join("etc/passwd"),
            format!("{passwd}app:x:1000:1000::/home/app:/bin/sh\n"),
        )
        .unwrap();
        let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
        std::fs::write(rootfs.join("etc/group"), format!("{group}app:x:1000:\n")).unwrap();
        run(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle));
        run(Command::new("umoci").args([
            "config",
            "--image",
            &image,
            "--config.cmd",
            "sh",
            "--config.cmd",
            "-c",
            "--config.cmd",
            "echo greeting=$GREETING; echo cwd=$(pwd); echo uid=$(id -u) gid=$(id -g)",
            "--config.env",
            "GREETING=from-the-image",
            "--config.workingdir",
            "/etc",
            "--config.user",
            "app",
        ]));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::rename(&layout, &out).unwrap();
        std::fs::remove_dir_all(&work).unwrap();
        out
    })
}

/// Snapshots in the env's image store.
fn snapshots(env: &Env) -> usize {
    std::fs::read_dir(env.root.join("images/snapshots"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_pulled_two_layer_image_runs_with_its_config_and_its_whiteout() {
    let env = Env::new("reg-pull");
    let registry = Registry::start(&env);
    registry.push("test/bb:1");
    let reference = registry.reference("test/bb:1");

    let out = env.ok(&["pull", &reference]);
    assert!(out.contains("pulled image"), "{out}");
    assert_eq!(snapshots(&env), 2, "one snapshot per layer");
    let images = env.ok(&["images"]);
    assert!(images.contains(&reference), "{images}");
    // Pulling again downloads nothing.
    let again = env.berth(&["pull", &reference]);
    assert!(
        stderr(&again).matches("already present").count() == 2,
        "{}",
        stderr(&again)
    );

    // The image's Cmd, Env, WorkingDir and User take effect.
    let out = env.ok(&["run", "--rm", &reference]);
    assert!(out.contains("greeting=from-the-image"), "{out}");
    assert!(out.contains("cwd=/etc"), "{out}");
    assert!(out.contains("uid=1000 gid=1000"), "{out}");
    // The second layer's whiteout hides the first layer's file; its own file is there.
    let out = env.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=overridden",
        &reference,
        "sh",
        "-c",
        "ls /www; cat /etc/added; echo g=$GREETING",
    ]);
    assert!(!out.contains("index.html"), "{out}");
    assert!(out.contains("added in layer 2"), "{out}");
    assert!(out.contains("g=overridden"), "{out}");

    // A manifest naming the reference directly, overriding the user and workdir.
    let file = env.manifest(
        "direct.yaml",
        &format!(
            "apiVersion: berth/v1\nkind: Container\nmetadata: {{name: direct}}\nspec:\n  image: \"{reference}\"\n  user: root\n  workingDir: /www\n  restartPolicy: never\n"
        ),
    );
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "direct", 30, |v| v["exit"]["code"] == 0);
    let log = env.log_text("direct");
    assert!(log.contains("cwd=/www") && log.contains("uid=0 gid=0"), "{log}");

    // system df counts the image as in use.
    let df = env.ok(&["system", "df"]);
    let images: Vec<&str> = df
        .lines()
        .find(|l| l.starts_with("Images"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(images[1..3], ["1", "1"], "{df}");

    // rmi is refused while the container exists, then works.
    let refused = env.berth(&["rmi", &reference]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("is used by container direct"),
        "{}",
        stderr(&refused)
    );
    env.ok(&["delete", "-f", file.to_str().unwrap()]);
    env.ok(&["rmi", &reference]);
    assert_eq!(snapshots(&env), 0, "an image's snapshots go with it");
    drop(registry);
}

#[test]
fn an_image_object_with_ref_pulls_and_the_tag_and_untag_commands_work() {
    let env = Env::new("reg-object");
    let registry = Registry::start(&env);
    registry.push("shop/web:1.4");
    let reference = registry.reference("shop/web:1.4");
    let file = env.manifest(
        "stack.yaml",
        &format!(
            "apiVersion: berth/v1\nkind: Image\nmetadata: {{name: web}}\nspec: {{ref: \"{reference}\", pullPolicy: IfNotPresent}}\n---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: app}}\nspec:\n  image: web\n  command: [sh, -c, \"echo cmd-replaced $GREETING\"]\n  restartPolicy: never\n"
        ),
    );
    let out = env.ok(&["apply", "-f", file.to_str().unwrap()]);
    assert!(
        out.contains(&format!("{reference}: pulled image")),
        "apply shows its pulls: {out}"
    );
    env.wait_for("container", "app", 30, |v| v["exit"]["code"] == 0);
    assert!(env.log_text("app").contains("cmd-replaced from-the-image"));

    let other = registry.reference("shop/web:latest");
    env.ok(&["tag", &reference, &other]);
    assert!(env.ok(&["images"]).contains(&other));
    let out = env.ok(&["rmi", &other]);
    assert!(out.contains("Untagged"), "{out}");
    assert_eq!(snapshots(&env), 2, "still named by the first reference");
    drop(registry);
}

#[test]
fn pull_errors_are_one_clear_line_and_unpack_nothing() {
    let env = Env::new("reg-errors");
    let registry = Registry::start(&env);
    registry.push("test/bb:1");

    let out = env.berth(&["pull", &registry.reference("test/bb:nope")]);
    assert!(!out.status.success());
    let msg = stderr(&out);
    assert!(msg.contains("not found") && msg.contains("test/bb:nope"), "{msg}");
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");

    // A closed loopback port: held, so nothing can listen on it meanwhile.
    let held = PortHold::tcp();
    let closed = held.port;
    let out = env.berth(&["pull", &format!("127.0.0.1:{closed}/test/bb:1")]);
    let msg = stderr(&out);
    assert!(
        msg.contains("cannot reach registry") && msg.contains("refused"),
        "{msg}"
    );

    let out = env.berth(&["pull", "127.0.0.1:5000/Bad Name"]);
    assert!(stderr(&out).contains("invalid image reference"), "{}", stderr(&out));

    // A run of a missing image fails as docker run does, with 125.
    let out = env.berth(&["run", "--rm", &registry.reference("test/bb:nope")]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    assert_eq!(snapshots(&env), 0);
    assert!(env.ok(&["images"]).lines().count() <= 1, "no image recorded");
    drop(registry);
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_digest_is_refused_and_nothing_is_unpacked() {
    let env = Env::new("reg-corrupt");
    let registry = Registry::start(&env);
    registry.push("test/bb:1");
    let reference = registry.reference("test/bb:1");
    // The image's layers, from the manifest skopeo sees.
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layer = inspect["Layers"][1].as_str().unwrap().to_string();
    // Same length, other bytes: the registry serves it as the blob.
    let file = registry.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let out = env.berth(&["pull", &reference]);
    assert!(!out.status.success());
    let msg = stderr(&out);
    assert!(msg.contains(&layer) && msg.contains("nothing was unpacked"), "{msg}");
    assert_eq!(snapshots(&env), 0, "nothing unpacked");
    let hex = layer.strip_prefix("sha256:").unwrap();
    assert!(
        !env.root.join("images/blobs/sha256").join(hex).exists(),
        "the bad blob is not kept"
    );
    assert_eq!(
        blobs(&env),
        Vec::<String>::new(),
        "nor the manifest, config and layer it came with"
    );
    assert_eq!(
        std::fs::read_dir(env.root.join("images/tmp")).unwrap().count(),
        0,
        "no temporary file left"
    );
    drop(registry);
}

/// Writes an OCI layout at `dir` holding `base` (the busybox rootfs) plus
/// `extra` tiny layers, each adding `/layers/<n>`; tagged `base`.
fn many_layer_layout(dir: &Path, extra: usize) {
    let mut layers = vec![std::fs::read(busybox_tar()).unwrap()];
    for n in 0..extra {
        let mut b = tar::Builder::new(Vec::new());
        let data = format!("{n}\n");
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("layers/{n}")).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
        layers.push(b.into_inner().unwrap());
    }
    layout_of(dir, &layers, &["sh", "-c", "ls /layers | wc -l"]);
}

/// Writes an OCI layout at `dir` with one image, tagged `base`, of these
/// uncompressed layer tars.
fn layout_of(dir: &Path, layers: &[Vec<u8>], cmd: &[&str]) {
    layout_with(dir, layers, serde_json::json!({"Cmd": cmd}));
}

/// As [`layout_of`], with this image config `config` object.
fn layout_with(dir: &Path, layers: &[Vec<u8>], image_config: serde_json::Value) {
    use sha2::{Digest, Sha256};
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let (digest, size) = put(layer);
        diff_ids.push(digest.clone());
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size}));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let (config_digest, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": descriptors});
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": "base"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// A tar of raw entries: (name, kind, link target, data); names are written
/// byte for byte (the tar crate's set_path refuses `..`).
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_layers_from_a_registry_are_refused_naming_the_entry_and_write_nothing_outside() {
    use tar::EntryType::{Link, Regular, Symlink};
    let env = Env::new("reg-hostile");
    let registry = Registry::start(&env);
    let base = std::fs::read(busybox_tar()).unwrap();
    let outside = env.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let target = outside.display().to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            raw_tar(&[("../../../escape", Regular, "", b"x")]),
            "../../../escape",
        ),
        (
            "absolute",
            raw_tar(&[("/etc/escape", Regular, "", b"x")]),
            "/etc/escape",
        ),
        (
            "symlink-parent",
            raw_tar(&[("out", Symlink, &target, b""), ("out/escape", Regular, "", b"x")]),
            "out/escape",
        ),
        ("hardlink-out", raw_tar(&[("h", Link, "/etc/shadow", b"")]), "h"),
        (
            "whiteout-out",
            raw_tar(&[("../.wh.escape", Regular, "", b"")]),
            "escape",
        ),
    ];
    for (tag, layer, entry) in cases {
        let layout = env.dir.join(format!("layout-{tag}"));
        layout_of(&layout, &[base.clone(), layer], &["true"]);
        let reference = registry.reference(&format!("hostile/{tag}:1"));
        run(Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:base", layout.display()))
            .arg(format!("docker://{reference}")));
        let out = env.berth(&["pull", &reference]);
        assert!(!out.status.success(), "{tag}");
        let msg = stderr(&out);
        assert!(msg.contains(entry), "{tag}: the error names the entry: {msg}");
        assert_eq!(snapshots(&env), 0, "{tag}: nothing stays unpacked");
        assert!(!env.ok(&["images"]).contains("hostile"), "{tag}");
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    assert!(!Path::new("/etc/escape").exists());
    assert!(!env.root.join("escape").exists() && !env.dir.join("escape").exists());
    drop(registry);
}

#[test]
fn an_image_of_130_layers_mounts_and_runs() {
    let env = Env::new("reg-layers");
    let registry = Registry::start(&env);
    let layout = env.dir.join("many");
    many_layer_layout(&layout, 129);
    let reference = registry.reference("test/many:1");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:base", layout.display()))
        .arg(format!("docker://{reference}")));
    env.ok(&["pull", &reference]);
    assert_eq!(snapshots(&env), 130);
    // 130 absolute snapshot paths (~80 bytes each) would not fit in the
    // overlay's one-page mount options; the short links do.
    let out = env.ok(&["run", "--rm", &reference]);
    assert_eq!(out.trim(), "129", "{out}");
    drop(registry);
}

/// bcrypt (cost 4) of `s3cret`, as docker-registry's htpasswd wants it.
const HTPASSWD: &str = "shop:$2b$04$YAz0AZP4T3896EsLJW8KYOMLnPMpl1VwHD/.xNZl5F2SFrdL4EnNq\n";

#[test]
fn a_registry_that_wants_credentials_says_unauthorized_then_pulls_with_docker_config() {
    let mut env = Env::new("reg-auth");
    let htpasswd = env.dir.join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap();
    let registry = Registry::start_with(
        &env,
        &format!(
            "auth: {{htpasswd: {{realm: berth-test, path: {}}}}}\n",
            htpasswd.display()
        ),
    );
    registry.push_as("private/bb:1", Some("shop:s3cret"));
    let reference = registry.reference("private/bb:1");

    let out = env.berth(&["pull", &reference]);
    assert!(!out.status.success());
    let msg = stderr(&out);
    assert!(msg.contains("unauthorized"), "{msg}");
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    assert_eq!(snapshots(&env), 0);

    // Credentials as `docker login` stores them, for the daemon that pulls.
    let config = env.dir.join("docker");
    std::fs::create_dir_all(&config).unwrap();
    let auth = base64_encode(b"shop:s3cret");
    std::fs::write(
        config.join("config.json"),
        format!(
            r#"{{"auths": {{"127.0.0.1:{}": {{"auth": "{auth}"}}}}}}"#,
            registry.port
        ),
    )
    .unwrap();
    env.kill_daemon();
    env.extra_env
        .push(("DOCKER_CONFIG".into(), config.display().to_string()));
    env.start_daemon();
    env.ok(&["pull", &reference]);
    assert_eq!(snapshots(&env), 2);

    // logout forgets them; a wrong password does not log in; login does.
    let host = format!("127.0.0.1:{}", registry.port);
    assert!(env.ok(&["logout", &host]).contains("Removed"));
    env.ok(&["rmi", &reference]);
    assert!(stderr(&env.berth(&["pull", &reference])).contains("unauthorized"));
    let out = env.berth(&["login", "-u", "shop", "-p", "wrong", &host]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("login to") && stderr(&out).contains("refused"),
        "{}",
        stderr(&out)
    );
    env.ok(&["login", "-u", "shop", "-p", "s3cret", &host]);
    let stored = std::fs::read_to_string(config.join("config.json")).unwrap();
    assert!(stored.contains(&auth), "{stored}");
    env.ok(&["pull", &reference]);
    drop(registry);
}

fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The manifest digest skopeo sees for `reference`.
fn remote_digest(reference: &str) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

#[test]
fn push_keeps_the_digest_and_prune_removes_only_unused_dangling_images() {
    let env = Env::new("reg-push");
    let registry = Registry::start(&env);
    registry.push("test/bb:1");
    let reference = registry.reference("test/bb:1");
    env.ok(&["pull", &reference]);
    let pulled = remote_digest(&reference);

    // Pushed elsewhere, byte for byte: skopeo sees the same manifest digest.
    let pushed = registry.reference("copies/bb:2");
    let out = env.ok(&["push", &reference, &pushed]);
    assert!(out.contains(&pulled), "{out}");
    assert_eq!(remote_digest(&pushed), pulled);

    // A container keeps the first image while the tag moves to a variant.
    env.ok(&["run", "--name", "keep", &reference, "true"]);
    let variant = env.dir.join("variant");
    run(Command::new("cp").arg("-a").arg(test_image()).arg(&variant));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &format!("{}:base", variant.display()),
        "--config.env",
        "VARIANT=2",
    ]));
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:base", variant.display()))
        .arg(format!("docker://{reference}")));
    env.ok(&["pull", &reference]);
    let ids = |env: &Env| env.ok(&["images", "-q"]).lines().count();
    assert_eq!(ids(&env), 2, "the old image is dangling now");

    let out = env.ok(&["image", "prune"]);
    assert!(out.contains("0 image(s) removed"), "in use by container keep: {out}");
    env.ok(&["delete", "container/keep"]);
    let out = env.ok(&["image", "prune"]);
    assert!(out.contains("1 image(s) removed"), "{out}");
    assert_eq!(ids(&env), 1);
    assert_eq!(snapshots(&env), 2, "the layers are shared with the variant");
    let out = env.ok(&["run", "--rm", &reference, "sh", "-c", "echo v=$VARIANT"]);
    assert!(out.contains("v=2"), "{out}");
    drop(registry);
}

fn skopeo_inspect(transport: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(transport)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {transport}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn save_and_load_round_trip_through_docker_and_oci_archives() {
    let env = Env::new("reg-archive");
    let registry = Registry::start(&env);
    registry.push("test/bb:1");
    let reference = registry.reference("test/bb:1");
    env.ok(&["pull", &reference]);

    // berth save: skopeo reads it as a docker-archive and as an OCI archive.
    let saved = env.dir.join("saved.tar");
    env.ok(&["save", "-o", saved.to_str().unwrap(), &reference]);
    let docker = skopeo_inspect(&format!("docker-archive:{}", saved.display()));
    let oci = skopeo_inspect(&format!("oci-archive:{}", saved.display()));
    assert_eq!(docker["Env"], oci["Env"]);
    assert!(
        docker["Env"].to_string().contains("GREETING=from-the-image"),
        "{docker}"
    );
    assert_eq!(
        oci["Digest"].as_str().unwrap(),
        remote_digest(&reference),
        "the manifest is kept byte for byte"
    );

    // Loaded back into an empty store, it runs.
    env.ok(&["rmi", &reference]);
    assert_eq!(snapshots(&env), 0);
    let out = env.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert!(out.contains(&format!("Loaded image: {reference}")), "{out}");
    assert!(env.ok(&["run", "--rm", &reference]).contains("greeting=from-the-image"));
    let digest = |env: &Env| env.ok(&["push", &reference, &registry.reference("again/bb:1")]);
    assert!(
        digest(&env).contains(&remote_digest(&reference)),
        "the loaded manifest is the original"
    );

    // Archives skopeo makes, in both formats (a docker-archive as `docker
    // save` writes it: <id>/layer.tar, uncompressed).
    for (transport, name) in [
        ("docker-archive", "example.com/sk/docker:1"),
        ("oci-archive", "example.com/sk/oci:2"),
    ] {
        let file = env.dir.join(format!("{transport}.tar"));
        run(Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:base", test_image().display()))
            .arg(format!("{transport}:{}:{name}", file.display())));
        let out = env.ok(&["load", "-i", file.to_str().unwrap()]);
        assert!(out.contains(name), "{transport}: {out}");
        let out = env.ok(&["run", "--rm", name, "sh", "-c", "cat /etc/added; ls /www"]);
        assert_eq!(out.trim(), "added in layer 2", "{transport}: {out}");
    }

    // A blob whose bytes do not hash to its name is refused, nothing recorded.
    let tampered = env.dir.join("tampered.tar");
    {
        let mut input = tar::Archive::new(std::fs::File::open(&saved).unwrap());
        let mut output = tar::Builder::new(std::fs::File::create(&tampered).unwrap());
        let mut first_layer = true;
        for entry in input.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            if name.starts_with("blobs/") && data.len() > 100_000 && first_layer {
                first_layer = false;
                let middle = data.len() / 2;
                data[middle] ^= 0xff;
            }
            let mut header = entry.header().clone();
            output.append_data(&mut header, &name, &data[..]).unwrap();
        }
        output.finish().unwrap();
    }
    env.ok(&["rmi", &reference]);
    let before = env.ok(&["images", "-q"]);
    let out = env.berth(&["load", "-i", tampered.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refusing it"), "{}", stderr(&out));
    assert_eq!(env.ok(&["images", "-q"]), before, "nothing recorded");
    drop(registry);
}

#[test]
fn podman_loads_what_berth_saves_and_berth_loads_what_podman_saves() {
    let env = Env::new("reg-podman");
    let registry = Registry::start(&env);
    registry.push("test/bb:1");
    let reference = registry.reference("test/bb:1");
    env.ok(&["pull", &reference]);
    // A name of this test's own in podman's store, removed at the end.
    let name = format!("localhost/berth-test-{}:1", std::process::id());
    env.ok(&["tag", &reference, &name]);
    let saved = env.dir.join("for-podman.tar");
    env.ok(&["save", "-o", saved.to_str().unwrap(), &name]);
    let podman = |args: &[&str]| Command::new("podman").args(args).output().expect("run podman");
    let out = podman(&["load", "-i", saved.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = podman(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        env.dir.join("from-podman.tar").to_str().unwrap(),
        &name,
    ]);
    let inspect = podman(&["image", "inspect", "--format", "{{.Config.WorkingDir}}", &name]);
    let _ = podman(&["rmi", &name]);
    assert!(
        out.status.success(),
        "podman save: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), "/etc");

    env.ok(&["rmi", &name]);
    env.ok(&["rmi", &reference]);
    let out = env.ok(&["load", "-i", env.dir.join("from-podman.tar").to_str().unwrap()]);
    assert!(out.contains(&name), "{out}");
    assert!(env.ok(&["run", "--rm", &name]).contains("greeting=from-the-image"));
    drop(registry);
}

#[test]
fn an_image_object_with_archive_loads_it_and_its_containers_run() {
    let env = Env::new("reg-archive-object");
    let file = env.dir.join("image.tar");
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:base", test_image().display()))
        .arg(format!("docker-archive:{}:example.com/from/archive:1", file.display())));
    let stack = env.manifest(
        "stack.yaml",
        &format!(
            "apiVersion: berth/v1\nkind: Image\nmetadata: {{name: shipped}}\nspec: {{archive: {}}}\n---\napiVersion: berth/v1\nkind: Container\nmetadata: {{name: app}}\nspec: {{image: shipped, restartPolicy: never}}\n",
            file.display()
        ),
    );
    env.ok(&["apply", "-f", stack.to_str().unwrap()]);
    env.wait_for("container", "app", 30, |v| v["exit"]["code"] == 0);
    assert!(env.log_text("app").contains("greeting=from-the-image"));
    assert!(env.ok(&["images"]).contains("example.com/from/archive:1"));
}

#[test]
fn a_daemon_killed_in_the_middle_of_a_pull_leaves_no_bad_blob_and_the_next_pull_completes() {
    use sha2::{Digest, Sha256};
    let mut env = Env::new("reg-kill");
    let registry = Registry::start(&env);
    let layout = env.dir.join("many");
    many_layer_layout(&layout, 60);
    let reference = registry.reference("test/many:1");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:base", layout.display()))
        .arg(format!("docker://{reference}")));

    let tmp = env.root.join("images/tmp");
    let mut pull = env
        .command()
        .args(["pull", &reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL the daemon while a blob is being written.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let writing = std::fs::read_dir(&tmp)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("blob-"))
            })
            .unwrap_or(false);
        if writing {
            break;
        }
        assert!(Instant::now() < deadline, "the pull never started writing a blob");
        std::thread::sleep(Duration::from_millis(1));
    }
    env.kill_daemon();
    let _ = pull.wait();
    assert!(env.ok(&["images", "-q"]).trim().is_empty(), "nothing recorded");
    // Restarted (by the CLI above), the daemon swept the half-written blobs;
    // every blob left is exactly the bytes its name says.
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    assert_eq!(snapshots(&env), 0, "snapshots of the unfinished pull are swept");
    for blob in std::fs::read_dir(env.root.join("images/blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let bytes = std::fs::read(blob.path()).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&bytes)), blob.file_name().to_string_lossy());
    }
    env.ok(&["pull", &reference]);
    assert_eq!(env.ok(&["run", "--rm", &reference]).trim(), "60");
    drop(registry);
}

#[test]
fn commit_makes_a_new_image_of_a_containers_changes_deletions_included() {
    let env = Env::new("reg-commit");
    let registry = Registry::start(&env);
    registry.push("test/bb:1");
    let reference = registry.reference("test/bb:1");
    env.ok(&["pull", &reference]);
    let file = env.manifest(
        "changer.yaml",
        &format!(
            "apiVersion: berth/v1\nkind: Container\nmetadata: {{name: changer}}\nspec:\n  image: \"{reference}\"\n  user: root\n  env: {{COMMITTED: \"yes\"}}\n  restartPolicy: never\n  command: [sh, -c, \"echo new > /root/newfile; rm /etc/added; mkdir -p /opt/d; ln /root/newfile /opt/d/link\"]\n"
        ),
    );
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "changer", 30, |v| v["exit"]["code"] == 0);
    let committed = registry.reference("test/committed:1");
    env.ok(&["commit", "changer", &committed]);
    // export shows the container's filesystem as the overlay does.
    let exported = env.dir.join("export.tar");
    env.ok(&["export", "-o", exported.to_str().unwrap(), "changer"]);
    let names: Vec<String> = tar::Archive::new(std::fs::File::open(&exported).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"root/newfile".to_string()), "{names:?}");
    assert!(names.contains(&"bin/busybox".to_string()));
    assert!(!names.contains(&"etc/added".to_string()), "deleted in the container");
    assert!(
        !names.contains(&"www/index.html".to_string()),
        "deleted in the image's layer 2"
    );
    env.ok(&["delete", "container/changer"]);
    let out = env.ok(&[
        "run",
        "--rm",
        &committed,
        "sh",
        "-c",
        "cat /root/newfile; ls /etc/added 2>&1; stat -c %h /opt/d/link; echo c=$COMMITTED; id -u",
    ]);
    assert!(out.contains("new"), "{out}");
    assert!(out.contains("No such file"), "the deletion is kept: {out}");
    assert!(out.contains("\n2\n"), "the hardlink is kept: {out}");
    assert!(out.contains("c=yes"), "the container's env is kept: {out}");
    assert!(out.trim().ends_with("\n0"), "and its user: {out}");
    assert_eq!(snapshots(&env), 3, "one new layer over the two shared ones");
    let listed: Vec<serde_json::Value> = {
        let out = env.ok(&["images"]);
        assert!(out.contains("SHARED"), "{out}");
        out.lines()
            .skip(1)
            .map(|l| serde_json::Value::String(l.to_string()))
            .collect()
    };
    assert_eq!(listed.len(), 2, "{listed:?}");
    let history = env.ok(&["history", &committed]);
    assert!(
        history.lines().nth(1).unwrap_or("").contains("berth commit"),
        "{history}"
    );
    let detail: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", &committed])).unwrap();
    assert_eq!(detail["layers"].as_array().unwrap().len(), 3);
    assert_eq!(detail["config"]["User"], "root");
    // It can be pushed and pulled back elsewhere.
    env.ok(&["push", &committed]);
    let inspect = skopeo_inspect(&format!("docker://{committed}"));
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3);
    drop(registry);
}

/// As `docker run busybox`: a bare name that is no Image object is
/// `NAME:latest` in the store; one that is an Image object stays that.
#[test]
fn run_takes_a_bare_name_as_docker_does() {
    let env = Env::new("reg-barename");
    let tar = busybox_tar().display().to_string();
    env.ok(&["import", &tar, "bare", "sh", "-c", "echo from-the-store"]);
    assert!(env.ok(&["run", "--rm", "bare"]).contains("from-the-store"));
    env.ok(&["run", "-d", "--name", "kept", "bare", "sleep", "100"]);
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("bare:latest"), "{ps}");
    env.ok(&["rm", "-f", "kept"]);
    // An Image object of that name wins over the store's reference.
    let file = env.manifest(
        "image.yaml",
        &env.image_doc().replace("{name: busybox}", "{name: bare}"),
    );
    env.ok(&["apply", "-f", file.to_str().unwrap(), "--wait"]);
    env.ok(&["run", "-d", "--name", "obj", "bare", "sleep", "100"]);
    let ps = env.ok(&["ps"]);
    assert!(ps.contains(" bare ") && !ps.contains("bare:latest"), "{ps}");
    env.ok(&["rm", "-f", "obj"]);
    env.ok(&["delete", "image/bare"]);
}

#[test]
fn import_makes_an_image_of_a_root_filesystem_tar_plain_or_zstd() {
    let env = Env::new("reg-import");
    let plain = busybox_tar().display().to_string();
    env.ok(&["import", &plain, "localhost/imported:1", "sh", "-c", "echo imported-ok"]);
    assert!(env.ok(&["run", "--rm", "localhost/imported:1"]).contains("imported-ok"));
    assert!(env.ok(&["history", "localhost/imported:1"]).contains("berth import"));

    let zst = env.dir.join("rootfs.tar.zst");
    let bytes = zstd::encode_all(&std::fs::read(busybox_tar()).unwrap()[..], 3).unwrap();
    std::fs::write(&zst, bytes).unwrap();
    env.ok(&["import", zst.to_str().unwrap(), "localhost/imported:zst"]);
    let out = env.ok(&["run", "--rm", "localhost/imported:zst", "cat", "/etc/passwd"]);
    assert!(out.contains("root:x:0:0"), "{out}");
    // The same root filesystem: one snapshot, shared.
    assert_eq!(snapshots(&env), 1);

    let out = env.berth(&["import", "/dev/zero", "localhost/nope:1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a regular file"), "{}", stderr(&out));
}

/// Pushes the OCI layout at `layout` (tag `base`) as `reference`.
fn push_layout(layout: &Path, reference: &str) {
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:base", layout.display()))
        .arg(format!("docker://{reference}")));
}

/// Busybox, then a layer with the user `app` and /data/{a,gone,sub/x}, then
/// one (with no /etc/passwd) adding /data/b, deleting /data/gone and making
/// /data/sub opaque with /data/sub/y. Its config declares /data a volume,
/// labels and an exposed port.
fn volume_image(env: &Env, registry: &Registry) -> String {
    use tar::EntryType::{Directory, Regular};
    let passwd = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    let l2 = raw_tar(&[
        ("etc/passwd", Regular, "", passwd),
        ("etc/group", Regular, "", b"root:x:0:\napp:x:1000:\n"),
        ("data/", Directory, "", b""),
        ("data/a", Regular, "", b"a from layer 2\n"),
        ("data/gone", Regular, "", b"deleted by layer 3\n"),
        ("data/sub/", Directory, "", b""),
        ("data/sub/x", Regular, "", b"hidden by the opaque dir\n"),
    ]);
    let mut l3 = raw_tar(&[
        ("data/b", Regular, "", b"b from layer 3\n"),
        ("data/.wh.gone", Regular, "", b""),
        ("data/sub/.wh..wh..opq", Regular, "", b""),
        ("data/sub/y", Regular, "", b"y from layer 3\n"),
        ("etc/l3", Regular, "", b"3\n"),
    ]);
    // /data owned by `app`, which the volume takes over: `app` may write it.
    let mut owned = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("data/").unwrap();
    h.set_entry_type(Directory);
    h.set_mode(0o755);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_size(0);
    h.set_cksum();
    owned.append(&h, std::io::empty()).unwrap();
    let mut owned = owned.into_inner().unwrap();
    // Its entry first, then l3's (whose end-of-archive blocks end both).
    owned.truncate(512);
    owned.append(&mut l3);
    let l3 = owned;
    let layout = env.dir.join("volume-layout");
    layout_with(
        &layout,
        &[std::fs::read(busybox_tar()).unwrap(), l2, l3],
        serde_json::json!({
            "Cmd": ["sh", "-c", "id -u; ls -R /data | tr '\\n' ' '; echo; echo run >> /data/runs; echo runs=$(wc -l < /data/runs)"],
            "User": "app",
            "Volumes": {"/data": {}},
            "Labels": {"org.example.from": "image", "tier": "image"},
            "ExposedPorts": {"8080/tcp": {}}
        }),
    );
    let reference = registry.reference("test/vol:1");
    push_layout(&layout, &reference);
    reference
}

/// Anonymous volume directories in the env's root.
fn anonymous_volumes(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.root.join("volumes"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("anonymous.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_images_volumes_labels_and_ports_take_effect_and_its_anonymous_volumes_go_with_the_container() {
    let env = Env::new("reg-imgvol");
    let registry = Registry::start(&env);
    let reference = volume_image(&env, &registry);
    env.ok(&["pull", &reference]);

    let doc = |mode: &str| {
        format!(
            "apiVersion: berth/v1\nkind: Container\nmetadata: {{name: vol, labels: {{tier: manifest}}}}\nspec:\n  image: \"{reference}\"\n  restartPolicy: never\n  network: none\n  env: {{MODE: {mode}}}\n"
        )
    };
    let file = env.manifest("vol.yaml", &doc("one"));
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "vol", 30, |v| v["exit"]["code"] == 0);
    let log = env.log_text("vol");
    // The user is resolved in the lower layer's /etc/passwd.
    assert!(log.starts_with("1000\n"), "{log}");
    assert!(log.contains("runs=1"), "{log}");
    // Filled from the merged view: layer 3's whiteout and opaque dir hide
    // layer 2's /data/gone and /data/sub/x.
    assert!(
        log.contains(" a ") && log.contains(" b "),
        "filled from the image: {log}"
    );
    assert!(log.contains("/data/sub: y"), "{log}");
    assert!(!log.contains("gone") && !log.contains(" x "), "{log}");
    let anon = anonymous_volumes(&env);
    assert_eq!(anon.len(), 1, "{anon:?}");
    assert_eq!(anon[0].len(), 64);

    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "--berth", "vol"])).unwrap();
    assert_eq!(inspect["labels"]["tier"], "manifest", "{inspect}");
    assert_eq!(inspect["labels"]["org.example.from"], "image", "{inspect}");
    assert_eq!(inspect["exposedPorts"][0], "8080/tcp", "{inspect}");
    assert_eq!(inspect["anonymousVolumes"][0]["path"], "/data", "{inspect}");
    assert_eq!(inspect["anonymousVolumes"][0]["name"], anon[0].as_str(), "{inspect}");
    let mounts = inspect["runtime"]["mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["destination"] == "/data" && m["source"].as_str().unwrap().contains(anon[0].as_str())),
        "{inspect}"
    );
    let ls = env.ok(&["volume", "ls"]);
    assert!(ls.contains(&anon[0]), "{ls}");

    // A replace keeps the anonymous volume and its data.
    let file = env.manifest("vol.yaml", &doc("two"));
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "vol", 30, |v| {
        v["exit"]["code"] == 0 && v["upToDate"] == true
    });
    let log = env.log_text("vol");
    assert!(log.contains("runs=2"), "kept across the replace: {log}");
    assert_eq!(anonymous_volumes(&env), anon);

    // Deleting the container removes it.
    env.ok(&["delete", "-f", file.to_str().unwrap()]);
    assert!(anonymous_volumes(&env).is_empty(), "removed with its container");
    assert!(!env.root.join("volumes").join(&anon[0]).exists());

    // `run --rm` leaves none behind either; a mount at the path covers it.
    let out = env.ok(&["run", "--rm", "--network", "none", &reference]);
    assert!(out.contains("runs=1"), "{out}");
    assert!(anonymous_volumes(&env).is_empty(), "run --rm removes it");
    let covered = format!(
        "apiVersion: berth/v1\nkind: Container\nmetadata: {{name: cov}}\nspec:\n  image: \"{reference}\"\n  restartPolicy: never\n  network: none\n  volumes: [{{tmpfs: /data}}]\n"
    );
    let file = env.manifest("cov.yaml", &covered);
    env.ok(&["apply", "-f", file.to_str().unwrap()]);
    env.wait_for("container", "cov", 30, |v| v["exit"]["code"] == 0);
    assert!(anonymous_volumes(&env).is_empty(), "a tmpfs at /data covers it");
    env.ok(&["delete", "-f", file.to_str().unwrap()]);
    drop(registry);
}

/// Blobs in the env's image store, sorted.
fn blobs(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.root.join("images/blobs/sha256"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_pull_that_fails_midway_removes_the_blobs_it_added_and_keeps_shared_ones() {
    let env = Env::new("reg-pull-fail");
    let registry = Registry::start(&env);
    let (one, two) = (env.dir.join("one"), env.dir.join("two"));
    // Two images sharing their first two layers; the second has one more.
    many_layer_layout(&one, 1);
    many_layer_layout(&two, 2);
    let (first, second) = (registry.reference("test/ml:1"), registry.reference("test/ml:2"));
    push_layout(&one, &first);
    push_layout(&two, &second);
    env.ok(&["pull", &first]);
    let kept = blobs(&env);
    assert_eq!(kept.len(), 4, "manifest, config, two layers: {kept:?}");
    // The second image's own layer is gone from the registry: its manifest
    // and config download, its shared layers are present, then it fails.
    let inspect = skopeo_inspect(&format!("docker://{second}"));
    let missing = inspect["Layers"][2].as_str().unwrap().to_string();
    std::fs::remove_file(registry.blob_file(&missing)).unwrap();

    let out = env.berth(&["pull", &second]);
    assert!(!out.status.success(), "the pull fails");
    assert_eq!(blobs(&env), kept, "what it added is gone, what it shares is kept");
    assert_eq!(snapshots(&env), 2, "the first image's snapshots only");
    assert_eq!(std::fs::read_dir(env.root.join("images/tmp")).unwrap().count(), 0);
    let out = env.ok(&["run", "--rm", &first]);
    assert_eq!(out.trim(), "1", "the first image still runs: {out}");
    drop(registry);
}

#[test]
fn a_built_image_is_pushed_and_skopeo_reads_its_layers_config_and_history() {
    let env = Env::new("reg-build");
    env.ok(&["import", common::busybox_tar().to_str().unwrap(), "busybox:latest"]);
    let ctx = env.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nLABEL built=yes\nCOPY f /f\nRUN echo ran > /ran\nCMD [\"cat\", \"/f\", \"/ran\"]\n",
    )
    .unwrap();
    std::fs::write(ctx.join("f"), "from the build\n").unwrap();
    env.ok(&["build", "-t", "built:1", ctx.to_str().unwrap()]);
    let registry = Registry::start(&env);
    let reference = registry.reference("test/built:1");
    env.ok(&["push", "built:1", &reference]);

    let inspect = |extra: &[&str]| -> serde_json::Value {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .args(extra)
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo inspect: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let image = inspect(&[]);
    assert_eq!(image["Labels"]["built"], "yes");
    assert_eq!(
        image["Layers"].as_array().unwrap().len(),
        3,
        "busybox, COPY, RUN: {image}"
    );
    let config = inspect(&["--config"]);
    let history: Vec<String> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        history.iter().any(|h| h == "RUN /bin/sh -c echo ran > /ran"),
        "{history:?}"
    );
    assert!(history.iter().any(|h| h == "COPY f /f"), "{history:?}");
    // The config-only steps are empty layers, as Docker writes them.
    let empty = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] == true)
        .count();
    assert_eq!(empty, 2, "LABEL and CMD: {history:?}");

    // Pulled back into a fresh store, it runs.
    let other = Env::new("reg-build-pull");
    other.ok(&["pull", &reference]);
    assert_eq!(other.ok(&["run", "--rm", &reference]), "from the build\nran\n");
    drop(registry);
}
