//! `build`: a Dockerfile built by the daemon, its steps printed as Docker's
//! legacy builder prints them.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hyper::Method;

use crate::cli::args::{BuildArgs, Global};
use crate::cli::client;
use crate::wire::{BuildEvent, BuildRequest, BuilderPruneResponse};

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// A context read from stdin, unpacked into a directory removed on drop.
struct StdinContext(PathBuf);

impl Drop for StdinContext {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Unpacks a tar (plain or gzip) from stdin. The tar crate refuses entries
/// that would land outside the directory (`..`, absolute paths, through a
/// symlink it made).
fn unpack_stdin() -> anyhow::Result<StdinContext> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("berth-build-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)?;
    let ctx = StdinContext(dir.clone());
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::new(stdin.lock());
    let gzip = input.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive
        .unpack(&dir)
        .map_err(|e| anyhow::anyhow!("reading the build context from stdin (a tar, plain or gzip): {e}"))?;
    Ok(ctx)
}

/// `KEY=VALUE` pairs; `KEY` alone takes its value from this environment
/// (and is left out when unset), as Docker's `--build-arg`.
fn parse_pairs(flag: &str, items: &[String], from_env: bool) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None if from_env => (item.as_str(), std::env::var(item).ok()),
            None => (item.as_str(), Some(String::new())),
        };
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(format!("{flag} `{item}`: KEY=VALUE is expected"));
        }
        if let Some(v) = v {
            out.insert(k.to_string(), v);
        }
    }
    Ok(out)
}

pub async fn build(g: &Global, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let (build_args, labels) = match (
        parse_pairs("--build-arg", &args.build_args, true),
        parse_pairs("--label", &args.labels, false),
    ) {
        (Ok(a), Ok(l)) => (a, l),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("berth: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let stdin_context;
    let context: PathBuf = if args.context == "-" {
        stdin_context = unpack_stdin()?;
        stdin_context.0.clone()
    } else {
        match std::fs::canonicalize(&args.context) {
            Ok(p) if p.is_dir() => p,
            Ok(_) => {
                eprintln!("berth: build context {}: not a directory", args.context);
                return Ok(ExitCode::from(1));
            }
            Err(e) => {
                eprintln!("berth: build context {}: {e}", args.context);
                return Ok(ExitCode::from(1));
            }
        }
    };
    let dockerfile = match &args.file {
        None => None,
        Some(f) => match std::path::absolute(Path::new(f)) {
            Ok(p) => Some(p.display().to_string()),
            Err(e) => {
                eprintln!("berth: -f {f}: {e}");
                return Ok(ExitCode::from(1));
            }
        },
    };
    let req = BuildRequest {
        context: context.display().to_string(),
        dockerfile,
        tags: args.tags.clone(),
        build_args,
        target: args.target.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
        labels,
        network: args.network.clone(),
        platform: args.platform.clone(),
    };
    let body = serde_json::to_vec(&req)?;
    let quiet = args.quiet;
    let mut built: Option<String> = None;
    let mut failed: Option<String> = None;
    let mut stdout = std::io::stdout();
    let result = client(g, true)
        .stream(
            Method::POST,
            "/v1/build",
            Some(body),
            |event: BuildEvent| {
                if quiet {
                    match event {
                        BuildEvent::Built { id } => built = Some(id),
                        BuildEvent::Error { message } => failed = Some(message),
                        _ => {}
                    }
                    return;
                }
                let _ = match event {
                    BuildEvent::Step {
                        number,
                        total,
                        instruction,
                    } => writeln!(stdout, "Step {number}/{total} : {instruction}"),
                    BuildEvent::Cached => writeln!(stdout, " ---> Using cache"),
                    BuildEvent::Output { stream, text } => {
                        if stream == "stderr" {
                            let _ = stdout.flush();
                            let mut e = std::io::stderr();
                            e.write_all(text.as_bytes()).and_then(|()| e.flush())
                        } else {
                            stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
                        }
                    }
                    BuildEvent::Note { message } => writeln!(stdout, "{message}"),
                    BuildEvent::StepDone { id } => writeln!(stdout, " ---> {}", short(&id)),
                    BuildEvent::Built { id } => {
                        let line = writeln!(stdout, "Successfully built {}", short(&id));
                        built = Some(id);
                        line
                    }
                    BuildEvent::Tagged { reference } => writeln!(stdout, "Successfully tagged {reference}"),
                    BuildEvent::Error { message } => {
                        failed = Some(message);
                        Ok(())
                    }
                };
            },
            || {},
        )
        .await;
    let _ = stdout.flush();
    if let Err(e) = result {
        eprintln!("berth: {e}");
        return Ok(ExitCode::from(1));
    }
    if let Some(message) = failed {
        eprintln!("berth: build failed: {message}");
        return Ok(ExitCode::from(1));
    }
    let Some(id) = built else {
        eprintln!("berth: the daemon ended the build without saying how it went");
        return Ok(ExitCode::from(1));
    };
    if quiet {
        println!("{id}");
    }
    if let Some(file) = &args.iidfile {
        std::fs::write(file, &id)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn prune(g: &Global) -> anyhow::Result<ExitCode> {
    let answer: BuilderPruneResponse = client(g, true).post_empty("/v1/builder/prune").await?;
    println!(
        "Deleted build cache objects: {}\nTotal reclaimed space: {}",
        answer.entries,
        crate::cli::output::bytes(answer.reclaimed_bytes)
    );
    Ok(ExitCode::SUCCESS)
}
