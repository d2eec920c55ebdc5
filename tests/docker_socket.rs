//! Berth's Docker socket mounted into one of its containers, with the
//! docker CLI inside (the host's, a static binary, bind-mounted): the
//! container lists its peers and runs another container through berth,
//! as CI jobs and tools like Portainer do with Docker's socket.

mod common;
#[path = "common/docker.rs"]
mod docker_support;

use docker_support::*;

/// The host's docker CLI; it must be static to run in a busybox root.
fn docker_binary() -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v docker"])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let file = std::process::Command::new("file").args(["-L", &path]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&file.stdout).contains("statically linked"),
        "{path} is not static: a busybox container cannot run it"
    );
    path
}

#[test]
fn the_docker_cli_in_a_container_drives_berth_through_the_mounted_socket() {
    let env = env_with_busybox("dsock-inside");
    let cli = docker_binary();
    let socket = docker_socket(&env);
    let mounts = [
        format!("{}:/var/run/docker.sock", socket.display()),
        format!("{cli}:/usr/local/bin/docker:ro"),
    ];
    let script = "docker ps --format '{{.Names}}' && docker run --rm busybox echo from-the-inner-one \
                  && docker ps -a --format '{{.Names}}' | wc -l";
    let out = docker_ok(
        &env,
        &[
            "run",
            "--rm",
            "--name",
            "outer",
            "-v",
            &mounts[0],
            "-v",
            &mounts[1],
            "-e",
            "HOME=/tmp",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    // It sees itself, runs one more (removed again), and then sees only itself.
    assert_eq!(lines, ["outer", "from-the-inner-one", "1"], "{out}");
    assert!(env.ok(&["ps", "-a"]).lines().count() <= 1, "nothing left");

    // Hostile: without the socket the CLI inside says it cannot connect and
    // nothing is made; a version the API does not speak is refused.
    let out = docker(
        &env,
        &[
            "run",
            "--rm",
            "-v",
            &mounts[1],
            "-e",
            "HOME=/tmp",
            "busybox",
            "docker",
            "run",
            "--rm",
            "busybox",
            "true",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Cannot connect to the Docker daemon"),
        "{}",
        stderr(&out)
    );
    let out = docker(
        &env,
        &[
            "run",
            "--rm",
            "-v",
            &mounts[0],
            "-v",
            &mounts[1],
            "-e",
            "HOME=/tmp",
            "-e",
            "DOCKER_API_VERSION=1.99",
            "busybox",
            "docker",
            "ps",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("too new"), "{}", stderr(&out));
    assert!(env.ok(&["ps", "-a"]).lines().count() <= 1, "nothing left");
}
