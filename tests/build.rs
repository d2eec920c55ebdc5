//! `berth build` with real builds (issue 21): multi-stage with `COPY
//! --from`, which steps the cache answers before and after a one-file
//! change, `.dockerignore` with exceptions, `ONBUILD`, `USER`/`WORKDIR`,
//! `HEALTHCHECK` in the config, `ADD` of a tar and of a URL from a loopback
//! server, a failing `RUN` leaving no tag, the cache surviving a daemon
//! restart and `builder prune`; and hostile contexts and images: a source
//! outside the context, a symlink in the image pointing at the host's
//! `/etc`, a tar entry climbing out, bad Dockerfiles refused before
//! anything runs.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::Env;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An Env with the busybox image named `busybox`.
fn env_with_busybox(name: &str) -> Env {
    let env = Env::new(name);
    env.ok(&["import", common::busybox_tar().to_str().unwrap(), "busybox:latest"]);
    env
}

/// A context directory with these files (path, content).
fn context(env: &Env, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.dir.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    dir
}

fn build(env: &Env, args: &[&str]) -> (String, String, bool) {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let out = env.berth(&all);
    let (o, e) = text(&out);
    (o, e, out.status.success())
}

fn build_ok(env: &Env, args: &[&str]) -> String {
    let (o, e, ok) = build(env, args);
    assert!(ok, "build {args:?} failed:\n{o}\n{e}\n{}", env.daemon_log());
    o
}

/// The steps (by instruction) that the cache answered, and those that ran.
fn cached_and_ran(output: &str) -> (Vec<String>, Vec<String>) {
    let mut cached = Vec::new();
    let mut ran = Vec::new();
    let lines: Vec<&str> = output.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("Step ") else {
            continue;
        };
        let instruction = rest.split_once(" : ").map(|x| x.1).unwrap_or(rest).to_string();
        if instruction.starts_with("FROM") || instruction.starts_with("ARG") {
            continue;
        }
        if lines.get(i + 1).is_some_and(|l| *l == " ---> Using cache") {
            cached.push(instruction);
        } else {
            ran.push(instruction);
        }
    }
    (cached, ran)
}

fn inspect_config(env: &Env, image: &str) -> serde_json::Value {
    let out = env.ok(&["image", "inspect", image]);
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_multi_stage_build_runs_and_the_cache_reruns_only_from_the_changed_copy() {
    let env = env_with_busybox("build-cache");
    let ctx = context(
        &env,
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox AS compile\n\
                 WORKDIR /src\n\
                 COPY lib.txt ./\n\
                 RUN cat lib.txt > /out.txt\n\
                 COPY main.txt ./\n\
                 RUN cat main.txt >> /out.txt && echo compiled\n\
                 \n\
                 FROM busybox\n\
                 COPY --from=compile /out.txt /app/out.txt\n\
                 CMD [\"cat\", \"/app/out.txt\"]\n",
            ),
            ("lib.txt", "lib v1\n"),
            ("main.txt", "main v1\n"),
        ],
    );
    let first = build_ok(&env, &["-t", "app:1", ctx.to_str().unwrap()]);
    assert!(first.contains("Step 1/9 : FROM busybox AS compile"), "{first}");
    assert!(first.contains("compiled\n"), "RUN output streams: {first}");
    assert!(first.contains("Successfully tagged app:1"), "{first}");
    let (cached, _) = cached_and_ran(&first);
    assert!(cached.is_empty(), "a cold build hits nothing: {cached:?}");
    let (out, _) = text(&env.berth(&["run", "--rm", "app:1"]));
    assert_eq!(out, "lib v1\nmain v1\n");
    // Only the final stage's layers are in the result.
    let config = inspect_config(&env, "app:1");
    let history = config.to_string();
    assert!(
        !history.contains("RUN cat lib.txt"),
        "the compile stage is not in the result: {history}"
    );

    // No change: every step is cached and the image id is the same.
    let id1 = env.ok(&["build", "-q", ctx.to_str().unwrap()]);
    let again = build_ok(&env, &["-t", "app:1", ctx.to_str().unwrap()]);
    let (cached, ran) = cached_and_ran(&again);
    assert!(ran.is_empty(), "a no-op rebuild ran {ran:?}");
    assert_eq!(cached.len(), 7);
    assert_eq!(env.ok(&["build", "-q", ctx.to_str().unwrap()]), id1);

    // A touch (mtime only) changes nothing either.
    let now = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(ctx.join("main.txt"))
        .unwrap()
        .set_modified(now)
        .unwrap();
    let (_, ran) = cached_and_ran(&build_ok(&env, &[ctx.to_str().unwrap()]));
    assert!(ran.is_empty(), "touching a source reran {ran:?}");

    // One source changes: the steps from the COPY that takes it run again.
    std::fs::write(ctx.join("main.txt"), "main v2\n").unwrap();
    let third = build_ok(&env, &["-t", "app:2", ctx.to_str().unwrap()]);
    let (cached, ran) = cached_and_ran(&third);
    assert_eq!(
        cached,
        ["WORKDIR /src", "COPY lib.txt ./", "RUN cat lib.txt > /out.txt"]
    );
    assert_eq!(ran[0], "COPY main.txt ./");
    assert_eq!(ran.len(), 4, "{ran:?}");
    let (out, _) = text(&env.berth(&["run", "--rm", "app:2"]));
    assert_eq!(out, "lib v1\nmain v2\n");

    // The cache survives a daemon restart.
    let mut env = env;
    env.kill_daemon();
    env.start_daemon();
    let (_, ran) = cached_and_ran(&build_ok(&env, &[ctx.to_str().unwrap()]));
    assert!(ran.is_empty(), "after a restart the build reran {ran:?}");

    // rmi of the result keeps the cache's layers; builder prune drops them
    // but never an image's.
    env.ok(&["rmi", "app:2"]);
    let (_, ran) = cached_and_ran(&build_ok(&env, &["-t", "app:2", ctx.to_str().unwrap()]));
    assert!(ran.is_empty(), "rmi took the cache's layers: {ran:?}");
    let df = env.ok(&["system", "df"]);
    let cache_line = df
        .lines()
        .find(|l| l.starts_with("Build Cache"))
        .unwrap_or_default()
        .to_string();
    let entries: usize = cache_line
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(entries > 0, "system df counts the build cache: {df}");
    let pruned = env.ok(&["builder", "prune"]);
    assert!(pruned.contains("Deleted build cache objects"), "{pruned}");
    let (out, _) = text(&env.berth(&["run", "--rm", "app:1"]));
    assert_eq!(out, "lib v1\nmain v1\n", "builder prune took an image's layers");
    let (_, ran) = cached_and_ran(&build_ok(&env, &[ctx.to_str().unwrap()]));
    assert_eq!(ran.len(), 7, "after builder prune everything runs: {ran:?}");
}

#[test]
fn config_instructions_land_in_the_image_and_user_and_workdir_apply() {
    let env = env_with_busybox("build-config");
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             ARG VERSION=1.0\n\
             ENV APP_HOME=/srv/app MODE=prod\n\
             COPY <<EOF /srv/note.txt\nmode is $MODE, \"quoted\"\nEOF\n\
             RUN <<EOT\ncp /srv/note.txt /srv/copied\nEOT\n\
             LABEL org.example.version=$VERSION\n\
             MAINTAINER someone@example.com\n\
             EXPOSE 8080 53/udp\n\
             VOLUME /data\n\
             RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group \\\n\
                 && mkdir -p $APP_HOME && chown app $APP_HOME\n\
             WORKDIR $APP_HOME\n\
             USER app\n\
             RUN id -u > whoami && pwd > where\n\
             STOPSIGNAL SIGQUIT\n\
             HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD test -f /srv/app/whoami\n\
             ENTRYPOINT [\"sh\", \"-c\"]\n\
             CMD [\"cat whoami where; echo $MODE\"]\n",
        )],
    );
    build_ok(&env, &["-t", "cfg:1", ctx.to_str().unwrap()]);
    let (out, err) = text(&env.berth(&["run", "--rm", "cfg:1"]));
    assert_eq!(out, "1000\n/srv/app\nprod\n", "{err}");
    let (out, _) = text(&env.berth(&["run", "--rm", "cfg:1", "id -u; pwd"]));
    assert_eq!(out, "1000\n/srv/app\n");

    // Heredocs: COPY's body expanded (quotes kept), RUN's run as the script.
    let (out, _) = text(&env.berth(&["run", "--rm", "--entrypoint", "cat", "cfg:1", "/srv/copied"]));
    assert_eq!(out, "mode is prod, \"quoted\"\n");
    let docker = env.ok(&["inspect", "cfg:1"]);
    let v: serde_json::Value = serde_json::from_str(&docker).unwrap();
    let c = &v[0]["Config"];
    assert_eq!(c["User"], "app");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(c["Labels"]["org.example.version"], "1.0");
    assert_eq!(c["Labels"]["maintainer"], "someone@example.com");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object(), "{c}");
    assert!(c["ExposedPorts"]["53/udp"].is_object(), "{c}");
    assert!(c["Volumes"]["/data"].is_object(), "{c}");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -f /srv/app/whoami"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 4);
    assert!(c["Env"].as_array().unwrap().iter().any(|e| e == "MODE=prod"), "{c}");
    // Build args are not kept in the image's environment.
    assert!(!c["Env"].to_string().contains("VERSION"), "{c}");
    // History reads as Docker's: config steps are empty layers.
    let history = env.ok(&["history", "cfg:1"]);
    assert!(history.contains("USER app"), "{history}");
    assert!(
        history.contains("RUN |1 VERSION=1.0 /bin/sh -c id -u > whoami"),
        "{history}"
    );

    // --build-arg overrides the default; a build arg nobody reads is named.
    let out = build_ok(
        &env,
        &[
            "--build-arg",
            "VERSION=2.0",
            "--build-arg",
            "UNUSED=x",
            "-t",
            "cfg:2",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.contains("[UNUSED] were not consumed"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "cfg:2"])).unwrap();
    assert_eq!(v[0]["Config"]["Labels"]["org.example.version"], "2.0");
}

#[test]
fn dockerignore_onbuild_and_add_of_a_tar_and_a_url() {
    let env = env_with_busybox("build-add");
    // A tar with a nested file and an entry that tries to climb out.
    let mut tarball = tar::Builder::new(Vec::new());
    let mut put = |name: &str, body: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        // Written raw, so `..` reaches the archive as a hostile tar has it.
        let mut h2 = h.clone();
        h2.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h2.set_cksum();
        tarball.append(&h2, body).unwrap();
    };
    put("pkg/inside.txt", b"inside\n");
    put("../../../../escaped-by-build.txt", b"escaped\n");
    let bytes = tarball.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let gz = gz.finish().unwrap();

    // A loopback HTTP server answering one file.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = [0u8; 2048];
        let _ = s.read(&mut req);
        let body = b"downloaded body\n";
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(body);
    });

    let dockerfile = format!(
        "FROM busybox\n\
         ADD pkg.tar.gz /opt/\n\
         ADD http://127.0.0.1:{port}/files/remote.txt /dl/\n\
         COPY . /ctx/\n\
         ONBUILD RUN echo triggered > /onbuild.txt\n"
    );
    let ctx = context(
        &env,
        "ctx",
        &[
            ("Dockerfile", dockerfile.as_str()),
            (".dockerignore", "# docs are out\n*.md\n!README.md\nsecret/\n"),
            ("README.md", "readme\n"),
            ("NOTES.md", "notes\n"),
            ("secret/key", "hunter2\n"),
            ("keep.txt", "kept\n"),
            ("nested/deep/file.txt", "deep\n"),
        ],
    );
    std::fs::write(ctx.join("pkg.tar.gz"), &gz).unwrap();
    build_ok(&env, &["-t", "base:1", ctx.to_str().unwrap()]);
    server.join().unwrap();
    let (out, _) = text(&env.berth(&[
        "run",
        "--rm",
        "base:1",
        "sh",
        "-c",
        "cat /opt/pkg/inside.txt /dl/remote.txt; ls /ctx | sort | tr '\\n' ' '; ls /onbuild.txt 2>&1 | head -1",
    ]));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("inside"));
    assert_eq!(lines.next(), Some("downloaded body"));
    let listed = lines.next().unwrap_or_default();
    assert!(listed.contains("README.md") && listed.contains("keep.txt"), "{listed}");
    assert!(
        !listed.contains("NOTES.md") && !listed.contains("secret"),
        ".dockerignore: {listed}"
    );
    assert!(
        out.contains("No such file"),
        "ONBUILD runs in the child, not here: {out}"
    );
    let (out, _) = text(&env.berth(&["run", "--rm", "base:1", "cat", "/ctx/nested/deep/file.txt"]));
    assert_eq!(out, "deep\n", "a directory's tree keeps its shape");
    assert!(!Path::new("/escaped-by-build.txt").exists());
    assert!(!env.dir.join("escaped-by-build.txt").exists());

    // A child of base:1 runs its trigger, and does not inherit it.
    let child = context(&env, "child", &[("Dockerfile", "FROM base:1\nRUN cat /onbuild.txt\n")]);
    let out = build_ok(&env, &["-t", "child:1", child.to_str().unwrap()]);
    assert!(out.contains("triggered"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "child:1"])).unwrap();
    assert!(v[0]["Config"]["OnBuild"].is_null() || v[0]["Config"]["OnBuild"] == serde_json::json!([]));
}

#[test]
fn a_failing_step_tags_nothing_and_bad_files_are_refused_before_anything_runs() {
    let env = env_with_busybox("build-fail");
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo before\nRUN exit 3\nRUN echo never\n",
        )],
    );
    let (out, err, ok) = build(&env, &["-t", "broken:1", ctx.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("Step 3/4 : RUN exit 3"), "{out}");
    assert!(!out.contains("never"), "{out}");
    assert!(err.contains("returned a non-zero code: 3"), "{err}");
    assert!(err.contains("Dockerfile:3"), "the step's line: {err}");
    assert!(!env.ok(&["images"]).contains("broken"), "nothing is tagged");
    assert!(
        !env.ok(&["ps", "-a"]).contains("build-"),
        "the step's container is gone"
    );

    // Refused before any step runs: no container was made for them.
    for (dockerfile, expect) in [
        ("FROM busybox\nRUN echo ran > /x\nFROBNICATE x\n", "FROBNICATE"),
        ("RUN echo no from\n", "FROM"),
    ] {
        let c = context(&env, "bad", &[("Dockerfile", dockerfile)]);
        let (out, err, ok) = build(&env, &[c.to_str().unwrap()]);
        assert!(!ok, "{dockerfile}");
        assert!(err.contains(expect), "{dockerfile}: {err}");
        assert!(err.contains("Dockerfile:"), "names the file and line: {err}");
        assert!(!out.contains("Step 1"), "nothing ran: {out}");
    }
    let c = context(&env, "target", &[("Dockerfile", "FROM busybox AS a\nRUN true\n")]);
    let (_, err, ok) = build(&env, &["--target", "nope", c.to_str().unwrap()]);
    assert!(!ok && err.contains("nope"), "{err}");
    let (_, err, ok) = build(&env, &["--build-arg", "=x", c.to_str().unwrap()]);
    assert!(!ok && err.contains("--build-arg"), "{err}");
}

#[test]
fn hostile_sources_and_images_cannot_reach_the_host() {
    let env = env_with_busybox("build-hostile");
    let outside = env.dir.join("outside-secret");
    std::fs::write(&outside, "host secret\n").unwrap();
    // A source outside the context is refused.
    let ctx = context(
        &env,
        "ctx",
        &[("Dockerfile", "FROM busybox\nCOPY ../outside-secret /x\n")],
    );
    let (_, err, ok) = build(&env, &[ctx.to_str().unwrap()]);
    assert!(!ok, "a source outside the context was copied");
    assert!(err.contains("outside-secret"), "{err}");

    // A symlink in the context leading out is copied as a link, never followed.
    let ctx = context(&env, "ctx2", &[("Dockerfile", "FROM busybox\nCOPY link /copied\n")]);
    std::os::unix::fs::symlink(&outside, ctx.join("link")).unwrap();
    build_ok(&env, &["-t", "links:1", ctx.to_str().unwrap()]);
    let (out, _) = text(&env.berth(&["run", "--rm", "links:1", "sh", "-c", "readlink /copied; cat /copied"]));
    assert!(out.starts_with(outside.to_str().unwrap()), "{out}");
    assert!(
        !out.contains("host secret"),
        "the link was followed out of the context: {out}"
    );

    // A symlink in the image to the host's /etc: the COPY lands in the
    // image's /etc, never the host's.
    let marker = format!("berth-build-escape-{}", std::process::id());
    let df = format!("FROM busybox\nRUN ln -s /etc /evil\nCOPY f /evil/{marker}\n");
    let ctx = context(&env, "ctx3", &[("Dockerfile", df.as_str()), ("f", "planted\n")]);
    build_ok(&env, &["-t", "evil:1", ctx.to_str().unwrap()]);
    assert!(
        !Path::new("/etc").join(&marker).exists(),
        "COPY wrote into the host's /etc"
    );
    let (out, _) = text(&env.berth(&["run", "--rm", "evil:1", "cat", &format!("/etc/{marker}")]));
    assert_eq!(out, "planted\n");
}

#[test]
fn a_declarative_build_is_rebuilt_by_apply_after_a_source_edit_and_only_its_containers_replaced() {
    let env = env_with_busybox("build-decl");
    let dir = env.dir.join("stack");
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(
        dir.join("app/Dockerfile"),
        "FROM busybox\nCOPY main.txt /main.txt\nCMD [\"sh\", \"-c\", \"cat /main.txt; exec sleep 1000\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("app/main.txt"), "v1\n").unwrap();
    std::fs::write(
        dir.join("stack.yaml"),
        "apiVersion: berth/v1\nkind: Image\nmetadata: {name: app}\nspec:\n  build: {context: ./app}\n\
         ---\napiVersion: berth/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: app, stopGracePeriod: 1s}\n\
         ---\napiVersion: berth/v1\nkind: Container\nmetadata: {name: other}\n\
         spec: {image: docker.io/library/busybox:latest, command: [sleep, \"1000\"], stopGracePeriod: 1s}\n",
    )
    .unwrap();
    // Applied from the manifest's directory, by a relative name, as a
    // pipeline would: the context is found relative to the file.
    let apply = |args: &[&str]| {
        let out = env.command().current_dir(&dir).args(args).output().unwrap();
        let (o, e) = text(&out);
        (o, e, out.status.code())
    };
    let (o, e, code) = apply(&["apply", "-f", "stack.yaml", "--wait"]);
    assert_eq!(code, Some(0), "{o}{e}");
    common::sync::wait_until(20, "web's first output", || env.log_text("web") == "v1\n");
    let pid = |name: &str| env.view("container", name)["pid"].clone();
    let other_pid = pid("other");
    let web_pid = pid("web");

    // Nothing changed: nothing to do, nothing rebuilt.
    let (o, _, code) = apply(&["diff", "-f", "stack.yaml"]);
    assert_eq!(code, Some(0), "{o}");

    std::fs::write(dir.join("app/main.txt"), "v2\n").unwrap();
    let (o, _, code) = apply(&["diff", "-f", "stack.yaml"]);
    assert_eq!(code, Some(1), "{o}");
    assert!(o.contains("build image/app: context changed (main.txt)"), "{o}");
    assert!(o.contains("replace container/web: image/app changed"), "{o}");
    assert!(!o.contains("container/other"), "{o}");
    let (o, e, code) = apply(&["apply", "-f", "stack.yaml", "--wait"]);
    assert_eq!(code, Some(0), "{o}{e}");
    common::sync::wait_until(20, "web's new output", || env.log_text("web") == "v2\n");
    assert_ne!(pid("web"), web_pid, "web was replaced");
    assert_eq!(pid("other"), other_pid, "a container of another image was left alone");
    let described = env.ok(&["describe", "image/app"]);
    assert!(described.contains("Built"), "{described}");

    // A broken Dockerfile: the Image says why, the running web stays.
    std::fs::write(dir.join("app/Dockerfile"), "FROM busybox\nRUN exit 4\n").unwrap();
    let _ = apply(&["apply", "-f", "stack.yaml"]);
    common::sync::wait_until(30, "the failed build's event", || {
        env.ok(&["describe", "image/app"]).contains("non-zero code: 4")
    });
    let described = env.ok(&["describe", "image/app"]);
    assert!(described.contains("BuildFailed"), "{described}");
    assert_eq!(env.log_text("web"), "v2\n", "the running container stays");
    assert!(env.view("container", "web")["status"]
        .as_str()
        .unwrap_or("")
        .starts_with("Running"));
}

#[test]
fn on_a_terminal_steps_fold_their_output_and_a_failing_step_shows_all_of_it() {
    use common::pty::{exit_of, spawn_on, Terminal};
    let env = env_with_busybox("build-tty");
    let ctx = context(
        &env,
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN for i in $(seq 1 30); do echo line-$i; done\nRUN echo early-output; exit 5\n",
        )],
    );
    let (mut term, slave) = Terminal::new(24, 100);
    let mut child = spawn_on(&env, slave, &["build", "--network", "none", ctx.to_str().unwrap()]);
    term.expect("[2/3]");
    // The step's output scrolls by in a window that is folded away.
    term.expect("line-30");
    term.expect("\x1b[6A\x1b[0J");
    term.expect("[3/3]");
    // The failing step's whole output, then the error.
    term.expect("early-output\r\n");
    term.expect("non-zero code: 5");
    assert_eq!(exit_of(&mut child, &term), Some(1));
    // Run again: the first RUN is answered from the cache.
    let (mut term, slave) = Terminal::new(24, 100);
    let mut child = spawn_on(&env, slave, &["build", "--network", "none", ctx.to_str().unwrap()]);
    term.expect("[2/3]");
    term.expect("CACHED");
    assert_eq!(exit_of(&mut child, &term), Some(1));
}
