//! The `berth` command line. Every command but `daemon`, `shim`, `validate`
//! and `schema` talks to the daemon's API only.

pub mod args;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use hyper::Method;

use crate::client::{Client, ClientError, DaemonSpawn};
use crate::manifest::{self, Source};
use crate::wire::*;
use args::{Cli, Cmd, Global, Output, RunArgs};

/// Reads manifest sources from files, directories (recursive, sorted) and
/// stdin. Input that is not text (invalid UTF-8, NUL bytes) or too big is
/// refused with the file and the position.
pub fn read_sources(inputs: &[String]) -> anyhow::Result<Vec<Source>> {
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for input in inputs {
        let mut add = |file: String, bytes: Vec<u8>| match manifest::source_from_bytes(&file, &bytes) {
            Ok(s) => sources.push(s),
            Err(d) => problems.push(d),
        };
        if input == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("read manifests from stdin")?;
            add("<stdin>".into(), bytes);
            continue;
        }
        let path = Path::new(input);
        let files = if path.is_dir() {
            crate::source_files::manifest_files(path)
        } else {
            vec![path.to_path_buf()]
        };
        if files.is_empty() {
            bail!("{input}: no *.yaml or *.yml files found");
        }
        for f in files {
            let bytes = std::fs::read(&f).with_context(|| format!("read {}", f.display()))?;
            add(f.display().to_string(), bytes);
        }
    }
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|d| format!("error: {d}")).collect();
        bail!(
            "{}\n{} problem(s); nothing was changed",
            text.join("\n"),
            problems.len()
        );
    }
    Ok(sources)
}

/// Names an apply set after what it was read from, so `--prune` stays within it.
fn source_id(inputs: &[String]) -> String {
    let parts: Vec<String> = inputs
        .iter()
        .map(|i| {
            if i == "-" {
                "-".to_string()
            } else {
                std::fs::canonicalize(i)
                    .map(|p| p.display().to_string())
                    .unwrap_or(i.clone())
            }
        })
        .collect();
    format!("apply:{}", parts.join(","))
}

fn print_diagnostics(errors: &[manifest::Diagnostic]) {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!("{} problem(s); nothing was changed", errors.len());
}

fn client(g: &Global, autostart: bool) -> Client {
    let spawn = autostart.then(|| {
        let mut args = vec!["daemon".to_string()];
        args.extend(["--root".into(), g.root.display().to_string()]);
        args.extend(["--run-dir".into(), g.run_dir.display().to_string()]);
        args.extend(["--socket".into(), g.socket().display().to_string()]);
        args.extend(["--watch".into(), g.watch.display().to_string()]);
        DaemonSpawn {
            args,
            log: g.root.join("daemon.log"),
        }
    });
    Client::new(g.socket(), spawn)
}

pub fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    s.parse::<manifest::Duration>()
        .map(|d| d.0)
        .map_err(|e| anyhow::anyhow!(e.0))
}

pub async fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Cmd::Daemon => {
            crate::daemon::run(crate::daemon::DaemonConfig {
                root: g.root.clone(),
                run: g.run_dir.clone(),
                socket: g.socket(),
                watch: Some(g.watch.clone()),
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Apply {
            files,
            prune,
            wait,
            timeout,
        } => {
            let timeout = parse_duration(&timeout)?;
            let sources = read_sources(&files.files)?;
            let c = client(g, true);
            let req = ApplyRequest {
                source_id: source_id(&files.files),
                sources,
                prune,
                dry_run: false,
            };
            let resp: ApplyResponse = c.post("/v1/apply", &req).await?;
            if !resp.errors.is_empty() {
                print_diagnostics(&resp.errors);
                return Ok(ExitCode::from(1));
            }
            for a in &resp.actions {
                println!("{a}");
            }
            if resp.actions.is_empty() && resp.failed.is_empty() && resp.pending.is_empty() {
                println!("no changes");
            }
            for p in &resp.pending {
                eprintln!("pending: {p}");
            }
            for f in &resp.failed {
                eprintln!("failed: {f}");
            }
            if !resp.failed.is_empty() && !wait {
                // As `docker compose up -d` when a container cannot start.
                return Ok(ExitCode::from(1));
            }
            if wait {
                let w: WaitResponse = c
                    .post(
                        "/v1/wait",
                        &WaitRequest {
                            keys: resp.objects.clone(),
                            timeout_ms: timeout.as_millis() as u64,
                        },
                    )
                    .await?;
                if !w.ready {
                    for l in w.failed.iter().chain(&w.waiting) {
                        eprintln!("not ready: {l}");
                    }
                    if !w.failed.is_empty() {
                        bail!("{} object(s) failed", w.failed.len());
                    }
                    bail!("not everything became ready within {}s", timeout.as_secs());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Diff { files, prune } => {
            let result: anyhow::Result<ExitCode> = async {
                let sources = read_sources(&files.files)?;
                let req = ApplyRequest {
                    source_id: source_id(&files.files),
                    sources,
                    prune,
                    dry_run: true,
                };
                let resp: ApplyResponse = client(g, true).post("/v1/apply", &req).await?;
                if !resp.errors.is_empty() {
                    print_diagnostics(&resp.errors);
                    return Ok(ExitCode::from(2));
                }
                for a in &resp.actions {
                    println!("{a}");
                }
                Ok(if resp.actions.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            .await;
            // As `kubectl diff`: 2 means the diff itself failed.
            result.or_else(|e| {
                eprintln!("error: {e:#}");
                Ok(ExitCode::from(2))
            })
        }
        Cmd::Delete { files, keys } => {
            if files.is_empty() && keys.is_empty() {
                bail!("give -f FILE|DIR|- or KIND/NAME");
            }
            let sources = if files.is_empty() {
                Vec::new()
            } else {
                read_sources(&files)?
            };
            let resp: DeleteResponse = client(g, true)
                .post("/v1/delete", &DeleteRequest { sources, keys })
                .await?;
            if !resp.errors.is_empty() {
                print_diagnostics(&resp.errors);
                return Ok(ExitCode::from(1));
            }
            for d in &resp.deleted {
                println!("{d} deleted");
            }
            for n in &resp.not_found {
                eprintln!("{n} not found");
            }
            for f in &resp.failed {
                eprintln!("error: {f}");
            }
            Ok(if resp.failed.is_empty() && resp.not_found.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Get { kind, name, output } => {
            let mut path = "/v1/objects".to_string();
            let mut q = Vec::new();
            if let Some(k) = &kind {
                q.push(format!("kind={k}"));
            }
            if let Some(n) = &name {
                q.push(format!("name={n}"));
            }
            if !q.is_empty() {
                path = format!("{path}?{}", q.join("&"));
            }
            let views: Vec<ObjectView> = client(g, true).get(&path).await?;
            if name.is_some() && views.is_empty() {
                bail!("{}/{} not found", kind.unwrap_or_default(), name.unwrap_or_default());
            }
            print_views(&views, output, kind.is_none())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Describe { key } => {
            let Some(r) = ObjectRef::parse(&key) else {
                bail!("{key:?} is not KIND/NAME (e.g. container/web)")
            };
            let d: Description = client(g, true)
                .get(&format!("/v1/objects/{}/{}", r.kind.as_str(), r.name))
                .await?;
            print_description(&d);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Logs {
            name,
            follow,
            tail,
            timestamps,
        } => {
            let mut path = format!("/v1/logs/{name}?follow={follow}");
            if let Some(t) = tail {
                path.push_str(&format!("&tail={t}"));
            }
            client(g, true)
                .stream(Method::GET, &path, None, |line: LogLine| print_log(&line, timestamps))
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Validate { files } => {
            let sources = read_sources(&files.files)?;
            match manifest::load(&sources, &|_, _| false) {
                Ok(objects) => {
                    println!("{} objects in {} file(s) are valid", objects.len(), sources.len());
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("error: {e}");
                    }
                    eprintln!("{} problem(s)", errors.len());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::Run(args) => run(g, args).await,
        Cmd::Ps { all, latest } => {
            let mut views: Vec<ObjectView> = client(g, true).get("/v1/objects?kind=container").await?;
            if !all && !latest {
                views.retain(|v| v.pid.is_some());
            }
            if latest {
                views.sort_by_key(|v| v.created_at);
                views = views.into_iter().last().into_iter().collect();
            }
            print_ps(&views);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Stop { names } => {
            let c = client(g, true);
            let mut failed = false;
            for n in names {
                match c
                    .post::<_, serde_json::Value>(&format!("/v1/stop/{n}"), &serde_json::json!({}))
                    .await
                {
                    Ok(_) => println!("{n}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Cmd::Events => {
            let events: Vec<Event> = client(g, true).get("/v1/events").await?;
            for e in events {
                println!(
                    "{} {}/{} {}: {}",
                    fmt_time(e.time),
                    e.kind.to_ascii_lowercase(),
                    e.name,
                    e.reason,
                    e.message
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Schema { dir } => {
            write_schemas(&dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Version => {
            println!("client: berth {}", env!("CARGO_PKG_VERSION"));
            match client(g, false).get::<VersionInfo>("/v1/version").await {
                Ok(v) => println!("daemon: berth {} (pid {}, root {})", v.version, v.pid, v.root),
                Err(_) => println!("daemon: not running at {}", g.socket().display()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes `<dir>/<kind>.json` for every kind.
pub fn write_schemas(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for (kind, schema) in manifest::schemas() {
        let path: PathBuf = dir.join(format!("{}.json", kind.as_str().to_ascii_lowercase()));
        let mut text = serde_json::to_string_pretty(&schema)?;
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

async fn run(g: &Global, args: RunArgs) -> anyhow::Result<ExitCode> {
    let req = RunRequest {
        name: args.name,
        image: args.image,
        command: args.command,
        env: args.env,
        memory: args.memory,
        cpus: args.cpus,
        rm: args.rm,
        detach: args.detach,
    };
    let body = serde_json::to_vec(&req)?;
    let mut code = None;
    let mut error = None;
    let detach = args.detach;
    let result = client(g, true)
        .stream(Method::POST, "/v1/run", Some(body), |ev: RunEvent| match ev {
            RunEvent::Started { name } => {
                if detach {
                    println!("{name}");
                }
            }
            RunEvent::Log(line) => print_log(&line, false),
            RunEvent::Exited { code: c, oom_killed } => {
                if oom_killed {
                    eprintln!("berth: container was OOM-killed");
                }
                code = Some(c);
            }
            RunEvent::Error { message } => error = Some(message),
        })
        .await;
    match result {
        Ok(()) => {}
        Err(ClientError::Api { message, .. }) => {
            eprintln!("berth: {message}");
            return Ok(ExitCode::from(125));
        }
        Err(e) => return Err(e.into()),
    }
    if let Some(e) = error {
        eprintln!("berth: {e}");
        return Ok(ExitCode::from(125));
    }
    Ok(match code {
        Some(c) => ExitCode::from(c.clamp(0, 255) as u8),
        None if detach => ExitCode::SUCCESS,
        None => ExitCode::from(125),
    })
}

fn print_log(line: &LogLine, timestamps: bool) {
    let text = if timestamps {
        format!("{} {}\n", line.time, line.text)
    } else {
        format!("{}\n", line.text)
    };
    if line.stream == "stderr" {
        let _ = std::io::stderr().write_all(text.as_bytes());
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

fn now_ms() -> i64 {
    crate::runtime::now_millis()
}

/// `5s`, `3m`, `2h`, `4d`, as kubectl prints ages.
pub fn fmt_age(since_ms: Option<i64>) -> String {
    let Some(t) = since_ms else { return "-".into() };
    let s = ((now_ms() - t) / 1000).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn fmt_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn table(rows: Vec<Vec<String>>) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    print!("{out}");
}

fn print_views(views: &[ObjectView], output: Option<Output>, qualify: bool) -> anyhow::Result<()> {
    match output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(views)?),
        Some(Output::Yaml) => print!(
            "{}",
            serde_saphyr::to_string(&views).map_err(|e| anyhow::anyhow!(e.to_string()))?
        ),
        _ => {
            if views.is_empty() {
                println!("No objects found.");
                return Ok(());
            }
            let wide = matches!(output, Some(Output::Wide));
            let mut header = vec!["NAME", "STATUS", "RESTARTS", "AGE"];
            if wide {
                header.extend(["IMAGE", "PID", "SOURCE"]);
            }
            let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
            for v in views {
                let name = if qualify {
                    format!("{}/{}", v.kind.to_ascii_lowercase(), v.name)
                } else {
                    v.name.clone()
                };
                let mut row = vec![name, v.status.clone(), v.restarts.to_string(), fmt_age(v.created_at)];
                if wide {
                    row.push(v.image.clone().unwrap_or_else(|| "-".into()));
                    row.push(v.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()));
                    row.push(v.source.clone().unwrap_or_else(|| "-".into()));
                }
                rows.push(row);
            }
            table(rows);
        }
    }
    Ok(())
}

fn print_ps(views: &[ObjectView]) {
    let mut rows = vec![["NAME", "IMAGE", "COMMAND", "CREATED", "STATUS"]
        .map(String::from)
        .to_vec()];
    for v in views {
        let command = v
            .spec
            .as_ref()
            .and_then(|s| s.get("spec")?.get("command"))
            .and_then(|c| c.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let command = if command.chars().count() > 20 {
            format!("\"{}…\"", command.chars().take(19).collect::<String>())
        } else {
            format!("\"{command}\"")
        };
        let status = match (&v.pid, &v.exit) {
            (Some(_), _) => format!("Up {}", fmt_age(v.created_at)),
            (None, Some(e)) => format!("Exited ({}) {} ago", e.code, fmt_age(Some(e.finished_at))),
            _ => v.status.clone(),
        };
        rows.push(vec![
            v.name.clone(),
            v.image.clone().unwrap_or_default(),
            command,
            format!("{} ago", fmt_age(v.created_at)),
            status,
        ]);
    }
    table(rows);
}

fn print_description(d: &Description) {
    let v = &d.view;
    println!("Name:       {}", v.name);
    println!("Kind:       {}", v.kind);
    println!("Source:     {}", v.source.as_deref().unwrap_or("-"));
    if let Some(o) = &v.origin {
        println!("Defined at: {o}");
    }
    println!("Status:     {}", v.status);
    println!("Up to date: {}", v.up_to_date);
    if v.kind == "Container" {
        println!("Restarts:   {}", v.restarts);
        println!(
            "Pid:        {}",
            v.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
        );
        if let Some(e) = &v.exit {
            println!(
                "Last exit:  code {} at {}{}",
                e.code,
                fmt_time(e.finished_at),
                if e.oom_killed { " (OOMKilled)" } else { "" }
            );
        }
    }
    if let Some(detail) = &v.detail {
        println!("Detail:     {detail}");
    }
    if let Some(err) = &d.source_error {
        println!("Source error (last good state kept):\n{err}");
    }
    if let Some(spec) = &v.spec {
        println!("Spec:");
        for line in serde_saphyr::to_string(spec).unwrap_or_default().lines() {
            println!("  {line}");
        }
    }
    println!("Events:");
    if d.events.is_empty() {
        println!("  <none>");
    }
    for e in &d.events {
        println!("  {}  {:<10} {}", fmt_time(e.time), e.reason, e.message);
    }
}
