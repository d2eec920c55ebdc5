//! Images through berth's Docker socket with the real docker CLI (issue 22):
//! history, save/load, push (with `X-Registry-Auth`) and pull from a
//! loopback `docker-registry`, import, and search's 501. Each happy path has
//! a hostile one beside it; assertions are on effects (what the registry
//! holds, what runs, what berth lists).

mod common;
#[path = "common/docker.rs"]
mod docker_support;

use common::Env;
use docker_support::*;

fn image_ids(env: &Env) -> String {
    docker_ok(env, &["images", "-q", "--no-trunc"])
}

#[test]
fn history_shows_dockers_rows_and_search_is_refused_with_a_message() {
    let env = env_with_busybox("dimg-history");
    let dir = env.dir.join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:latest\nENV GREETING=hi\nRUN echo layer > /made-here\nCMD [\"cat\", \"/made-here\"]\n",
    )
    .unwrap();
    docker_ok(&env, &["build", "-q", "-t", "hist:1", dir.to_str().unwrap()]);
    let id = docker_ok(&env, &["image", "inspect", "--format", "{{.Id}}", "hist:1"]);
    let rows = docker_ok(
        &env,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}}|{{.CreatedBy}}|{{.Size}}",
            "hist:1",
        ],
    );
    let rows: Vec<&str> = rows.lines().collect();
    assert!(rows.len() >= 4, "{rows:?}");
    // Newest first: the top row is the image, with its id; older ones are
    // `<missing>`, as Docker shows a pulled image's.
    assert!(rows[0].starts_with(id.trim()), "{rows:?}");
    assert!(rows[0].contains("CMD"), "{rows:?}");
    assert!(rows[1..].iter().all(|r| r.starts_with("<missing>")), "{rows:?}");
    let run = rows.iter().find(|r| r.contains("echo layer")).expect("the RUN step");
    assert!(!run.ends_with("|0B"), "the RUN step made a layer with bytes: {run}");
    let env_row = rows.iter().find(|r| r.contains("GREETING")).expect("the ENV step");
    assert!(env_row.ends_with("|0B"), "ENV makes no layer: {env_row}");
    let tags = raw(&env, "GET", "/v1.47/images/hist:1/history", b"");
    assert_eq!(tags.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
    assert_eq!(v[0]["Tags"], serde_json::json!(["hist:1"]));
    assert!(v[0]["Created"].as_i64().unwrap() > 1_600_000_000, "{v}");

    // Hostile: an unknown image is Docker's 404; search is 501, saying so.
    let out = docker(&env, &["history", "no-such-image:1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("No such image"), "{}", stderr(&out));
    let a = raw(&env, "GET", "/images/no/such/history", b"");
    assert_eq!(a.status, 404, "{}", a.text());
    let out = docker(&env, &["search", "busybox"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not search registries"), "{}", stderr(&out));
    assert_eq!(raw(&env, "GET", "/v1.47/images/search?term=x", b"").status, 501);
}

#[test]
fn save_and_load_round_trip_through_files_and_pipes() {
    let env = env_with_busybox("dimg-saveload");
    docker_ok(&env, &["tag", "busybox:latest", "second:2"]);
    let file = env.dir.join("saved.tar");
    docker_ok(&env, &["save", "-o", file.to_str().unwrap(), "busybox:latest"]);
    assert!(std::fs::metadata(&file).unwrap().len() > 500_000);
    docker_ok(&env, &["rmi", "busybox:latest", "second:2"]);
    assert_eq!(image_ids(&env).trim(), "", "all images gone");
    let out = docker_ok(&env, &["load", "-i", file.to_str().unwrap()]);
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    assert_eq!(
        docker_ok(&env, &["run", "--rm", "busybox", "echo", "loaded"]),
        "loaded\n"
    );

    // `docker save IMG | docker load`, both images in one stream.
    docker_ok(&env, &["tag", "busybox:latest", "second:2"]);
    let saved = docker(&env, &["save", "busybox:latest", "second:2"]);
    assert!(saved.status.success(), "{}", stderr(&saved));
    docker_ok(&env, &["rmi", "busybox:latest", "second:2"]);
    let out = docker_with(&env, &["load"], Some(&saved.stdout));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Loaded image: busybox:latest") && text.contains("Loaded image: second:2"),
        "{text}"
    );
    // `names` repeated: both images in one archive whose manifest lists them.
    let a = raw(
        &env,
        "GET",
        "/v1.47/images/get?names=busybox:latest&names=second:2",
        b"",
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/x-tar"));
    let mut archive = tar::Archive::new(a.body.as_slice());
    let manifest = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
        .map(|mut e| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            s
        })
        .expect("manifest.json");
    assert!(
        manifest.contains("busybox:latest") && manifest.contains("second:2"),
        "{manifest}"
    );
    // Nothing left in the store's scratch dir by either direction.
    let tmp = env.root.join("images/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
}

/// A tar whose entries are written as given (the tar crate's builder
/// refuses `..`, which is what a hostile archive holds).
fn raw_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_load_with_a_path_escaping_layer_entry_is_refused_and_writes_nothing() {
    let env = env_with_busybox("dimg-badload");
    let before = image_ids(&env);
    let marker = format!("berth-escape-{}", std::process::id());
    let layer = raw_tar(&[(&format!("../../../../../../tmp/{marker}"), b"escaped")]);
    let diff = format!("sha256:{}", sha256_hex(&layer));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff]},
    })
    .to_string();
    let config_name = format!("{}.json", sha256_hex(config.as_bytes()));
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": ["evil:1"], "Layers": ["layer/layer.tar"],
    }])
    .to_string();
    let archive = raw_tar(&[
        ("manifest.json", manifest.as_bytes()),
        (&config_name, config.as_bytes()),
        ("layer/layer.tar", &layer),
    ]);
    let out = docker_with(&env, &["load"], Some(&archive));
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr(&out).trim().is_empty());
    assert!(!std::path::Path::new("/tmp").join(&marker).exists(), "an entry escaped");
    assert_eq!(image_ids(&env), before, "nothing was loaded");
    assert!(!docker_ok(&env, &["images"]).contains("evil"));

    // Not a tar at all, and an empty body: 400 with a message, nothing made.
    let a = raw(&env, "POST", "/v1.47/images/load", b"this is not a tar archive at all");
    assert!(a.status == 400, "{} {}", a.status, a.text());
    let a = raw(&env, "POST", "/v1.47/images/load", b"");
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.message().contains("empty"), "{}", a.message());
    // Saving what does not exist is Docker's 404, before any byte of tar.
    let out = docker(&env, &["save", "-o", env.dir.join("x.tar").to_str().unwrap(), "nope:1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("No such image"), "{}", stderr(&out));
    assert!(!env.dir.join("x.tar").exists());
    assert_eq!(image_ids(&env), before);
}

#[test]
fn push_and_pull_use_the_clients_credentials_and_a_refusal_comes_in_the_stream() {
    let env = env_with_busybox("dimg-push");
    let registry = Registry::start_with(&env, true);
    let target = registry.reference("shop/bb:1");
    docker_ok(&env, &["tag", "busybox:latest", &target]);

    // No credentials: the registry refuses, and the CLI says so.
    let out = docker(&env, &["push", &target]);
    assert!(!out.status.success());
    assert!(stderr(&out).to_lowercase().contains("unauthorized"), "{}", stderr(&out));
    assert!(!registry.has("shop/bb", "1"));

    // The CLI's own config.json, as `docker login` writes it: the CLI sends
    // the credentials as X-Registry-Auth; the daemon has none of its own.
    std::fs::write(
        docker_config(&env).join("config.json"),
        format!(
            r#"{{"auths": {{"127.0.0.1:{}": {{"auth": "c2hvcDpzM2NyZXQ="}}}}}}"#,
            registry.port
        ),
    )
    .unwrap();
    let out = docker_ok(&env, &["push", &target]);
    assert!(
        out.contains("The push refers to repository") && out.contains("digest: sha256:"),
        "{out}"
    );
    assert!(registry.has("shop/bb", "1"));

    // Pull with them too: gone locally, then back from the registry.
    docker_ok(&env, &["rmi", &target]);
    let out = docker_ok(&env, &["pull", &target]);
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert_eq!(docker_ok(&env, &["run", "--rm", &target, "echo", "pushed"]), "pushed\n");

    // Hostile: a header that is not base64url JSON is a 400 and pushes nothing.
    docker_ok(&env, &["tag", "busybox:latest", &registry.reference("shop/bb:2")]);
    let path = format!("/v1.47/images/127.0.0.1:{}/shop/bb/push?tag=2", registry.port);
    for header in ["X-Registry-Auth: !!not-base64!!", "X-Registry-Auth: bm90IGpzb24="] {
        let a = raw_with(&env, "POST", &path, &[header], b"");
        assert_eq!(a.status, 400, "{header}: {}", a.text());
        assert!(a.message().contains("X-Registry-Auth"), "{}", a.message());
    }
    let a = raw_with(
        &env,
        "POST",
        "/v1.47/images/create?fromImage=x&tag=1",
        &["X-Registry-Auth: %%%"],
        b"",
    );
    assert_eq!(a.status, 400, "{}", a.text());
    // Wrong password, sent in the header: refused in the stream.
    let wrong = "eyJ1c2VybmFtZSI6InNob3AiLCJwYXNzd29yZCI6Indyb25nIn0"; // {"username":"shop","password":"wrong"}
    let a = raw_with(&env, "POST", &path, &[&format!("X-Registry-Auth: {wrong}")], b"");
    assert_eq!(a.status, 200);
    let last: serde_json::Value = serde_json::from_str(a.text().lines().last().unwrap()).unwrap();
    let message = last["errorDetail"]["message"].as_str().unwrap().to_lowercase();
    assert!(message.contains("unauthorized"), "{last}");
    assert!(!registry.has("shop/bb", "2"));
    // An image berth does not have: 404 before any stream.
    let a = raw(
        &env,
        "POST",
        &format!("/v1.47/images/127.0.0.1:{}/shop/none/push?tag=1", registry.port),
        b"",
    );
    assert_eq!(a.status, 404, "{}", a.text());
    drop(registry);
}

#[test]
fn import_makes_an_image_from_a_rootfs_tar_and_refuses_what_it_cannot_honour() {
    let env = Env::new("dimg-import");
    let rootfs = std::fs::read(common::busybox_tar()).unwrap();
    let out = docker_with(
        &env,
        &["import", "--change", r#"CMD ["/bin/echo", "imported"]"#, "-", "imp:1"],
        Some(&rootfs),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).trim().starts_with("sha256:"));
    assert_eq!(docker_ok(&env, &["run", "--rm", "imp:1"]), "imported\n");
    // From a file path the CLI streams the same way.
    let out = docker_ok(&env, &["import", common::busybox_tar().to_str().unwrap(), "imp:2"]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert_eq!(docker_ok(&env, &["run", "--rm", "imp:2", "echo", "two"]), "two\n");

    // Hostile: each refusal names what it refuses, and no image is made.
    let before = image_ids(&env);
    let out = docker_with(&env, &["import", "--change", "ENV A=1", "-", "imp:3"], Some(&rootfs));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("changes (ENV)"), "{}", stderr(&out));
    let out = docker_with(&env, &["import", "-m", "a message", "-", "imp:3"], Some(&rootfs));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("message"), "{}", stderr(&out));
    let out = docker(&env, &["import", "http://127.0.0.1:9/rootfs.tar", "imp:3"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("fromSrc"), "{}", stderr(&out));
    let a = raw(
        &env,
        "POST",
        "/v1.47/images/create?fromSrc=-&repo=imp&tag=3",
        b"not a tar at all",
    );
    assert!(a.status >= 400, "{} {}", a.status, a.text());
    let a = raw(&env, "POST", "/v1.47/images/create?fromSrc=-&repo=BAD%20NAME", &rootfs);
    assert_eq!(a.status, 400, "{}", a.text());
    assert_eq!(image_ids(&env), before);
    assert!(!docker_ok(&env, &["images"]).contains("imp   3"));
}
