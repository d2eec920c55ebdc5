//! Docker's small container commands: `wait`, `port`, `diff` (of a
//! container), `container prune`, `network prune`, and the `container`
//! group that names them as Docker's does.

use std::io::BufRead;
use std::process::ExitCode;

use crate::cli::args::{ContainerCmd, Global, NameArgs, NamesArgs, PortArgs, PruneArgs};
use crate::cli::client;
use crate::client::segment;
use crate::commands::docker_inspect::{ContainerJson, InspectRequest};
use crate::commands::docker_ops::{Change, PruneReport, WaitExit, ADDED, CHANGED};

pub async fn container(g: &Global, cmd: ContainerCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ContainerCmd::Ls(args) => super::ps::ps(g, args).await,
        ContainerCmd::Inspect(mut args) => {
            args.kind.get_or_insert_with(|| "container".into());
            super::inspect::inspect(g, args).await
        }
        ContainerCmd::Diff(args) => diff(g, args).await,
        ContainerCmd::Wait(args) => wait(g, args).await,
        ContainerCmd::Port(args) => port(g, args).await,
        ContainerCmd::Prune(args) => prune(g, args, "containers").await,
    }
}

/// `wait NAME…`: each one's exit code on a line, in order; an unknown
/// container is reported and makes the exit code 1.
pub async fn wait(g: &Global, args: NamesArgs) -> anyhow::Result<ExitCode> {
    let c = client(g, true);
    let mut failed = false;
    for name in &args.names {
        match c
            .post_empty::<WaitExit>(&format!("/v1/docker/wait/{}", segment(name)))
            .await
        {
            Ok(exit) => println!("{}", exit.status_code),
            Err(e) => {
                eprintln!("berth: {:#}", anyhow::Error::from(e));
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `port NAME [PORT[/PROTO]]`: `80/tcp -> 0.0.0.0:8080` per binding, or
/// only the host addresses of one port.
pub async fn port(g: &Global, args: PortArgs) -> anyhow::Result<ExitCode> {
    let req = InspectRequest {
        name: args.name.clone(),
        kind: Some("container".into()),
    };
    let doc: ContainerJson = client(g, true).post("/v1/docker/inspect", &req).await?;
    let want = args.port.as_deref().map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut found = false;
    for (port, bindings) in &doc.network_settings.ports {
        if want.as_ref().is_some_and(|w| w != port) {
            continue;
        }
        for b in bindings.iter().flatten() {
            found = true;
            match &want {
                Some(_) => println!("{}:{}", b.host_ip, b.host_port),
                None => println!("{port} -> {}:{}", b.host_ip, b.host_port),
            }
        }
    }
    if let (Some(w), false) = (&want, found) {
        anyhow::bail!("no public port {w} published for container {}", args.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// `diff NAME`: `A /path`, `C /path`, `D /path`, sorted by path.
pub async fn diff(g: &Global, args: NameArgs) -> anyhow::Result<ExitCode> {
    let changes: Vec<Change> = client(g, true)
        .get(&format!("/v1/docker/diff/{}", segment(&args.name)))
        .await?;
    let mut out = String::new();
    for c in changes {
        let letter = match c.kind {
            CHANGED => 'C',
            ADDED => 'A',
            _ => 'D',
        };
        out.push_str(&format!("{letter} {}\n", c.path));
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `container prune` and `network prune`: asks first unless -f, as Docker's.
pub async fn prune(g: &Global, args: PruneArgs, what: &str) -> anyhow::Result<ExitCode> {
    let warning = match what {
        "containers" => "This will remove all stopped containers made by run or create.",
        _ => "This will remove all networks made by network create not used by at least one container.",
    };
    if !args.force {
        eprint!("WARNING! {warning}\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let report: PruneReport = client(g, true).post_empty(&format!("/v1/docker/{what}/prune")).await?;
    if !report.deleted.is_empty() {
        println!(
            "Deleted {}:",
            if what == "containers" { "Containers" } else { "Networks" }
        );
        for name in &report.deleted {
            println!("{name}");
        }
    }
    for f in &report.failed {
        eprintln!("berth: {f}");
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
