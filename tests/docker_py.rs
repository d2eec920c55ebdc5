//! docker-py (PyPI's `docker`, in the venv scripts/install-deps.sh makes)
//! against berth's Docker socket: the scripts under `tests/docker_py/`
//! assert on what each call gave; this runs them against a daemon of its
//! own with busybox and a loopback registry, and checks nothing is left.

mod common;
#[path = "common/docker.rs"]
mod docker_support;

use std::process::Command;

use docker_support::*;

const PYTHON: &str = "/var/cache/berth-test/docker-py/bin/python";

fn script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/docker_py")
        .join(name)
}

#[test]
fn docker_py_drives_containers_images_networks_and_volumes() {
    let env = env_with_busybox("dpy-basics");
    let registry = Registry::start(&env);
    let out = Command::new(PYTHON)
        .arg(script("basics.py"))
        .env("BERTH_DOCKER_SOCK", docker_socket(&env))
        .env("REGISTRY", format!("127.0.0.1:{}", registry.port))
        .env_remove("DOCKER_HOST")
        .output()
        .expect("docker-py's venv (scripts/install-deps.sh makes it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "{stdout}\n{}\ndaemon log:\n{}",
        stderr(&out),
        env.daemon_log()
    );
    // The script removed what it made; berth agrees.
    let left = env.ok(&["ps", "-a"]);
    assert!(left.lines().count() <= 1, "{left}");
    assert!(registry.has("py/built", "1"), "the push reached the registry");
    drop(registry);
}

#[test]
fn docker_py_sees_berths_refusals_as_its_api_errors() {
    let env = env_with_busybox("dpy-hostile");
    let code = r#"
import os, sys, docker
c = docker.DockerClient(base_url="unix://" + os.environ["BERTH_DOCKER_SOCK"], version="auto")
# A field berth cannot honour: a 400 whose message names it, nothing made.
try:
    c.containers.run("busybox:latest", "true", runtime="runsc", detach=True, name="py-refused")
    sys.exit("runtime=runsc was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 400 and "Runtime" in str(e), e
assert "py-refused" not in [x.name for x in c.containers.list(all=True)]
# Search is not served: 501.
try:
    c.images.search("busybox")
    sys.exit("search answered")
except docker.errors.APIError as e:
    assert e.status_code == 501, e
# A push with credentials that are not base64url JSON: 400.
r = c.api._post(c.api._url("/images/{0}/push", "busybox"), params={"tag": "latest"},
                headers={"X-Registry-Auth": "%%%"})
assert r.status_code == 400 and "X-Registry-Auth" in r.text, (r.status_code, r.text)
print("OK")
"#;
    let out = Command::new(PYTHON)
        .args(["-c", code])
        .env("BERTH_DOCKER_SOCK", docker_socket(&env))
        .env_remove("DOCKER_HOST")
        .output()
        .expect("docker-py's venv (scripts/install-deps.sh makes it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "{stdout}\n{}",
        stderr(&out)
    );
}
