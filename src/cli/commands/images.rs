//! `pull`, `images`, `rmi`, `tag`: as Docker's.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::args::{
    CommitArgs, ExportArgs, Global, ImagesArgs, ImportArgs, LoadArgs, LoginArgs, LogoutArgs, NameArg, PullArgs,
    PushArgs, RmiArgs, SaveArgs, TagArgs,
};
use crate::cli::client;
use crate::cli::output::{self, Table};
use crate::wire::*;

pub async fn pull(g: &Global, args: PullArgs) -> anyhow::Result<ExitCode> {
    match pull_image(g, &args.reference, args.platform.clone()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(message) => {
            eprintln!("berth: {message}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The first 12 hex digits of a digest or image id, as Docker shows them.
pub(crate) fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// Pulls with progress: a bar per layer on a terminal, plain lines
/// otherwise. `Err` is the one-line reason.
pub async fn pull_image(g: &Global, reference: &str, platform: Option<String>) -> Result<(), String> {
    let body = serde_json::to_vec(&PullRequest {
        reference: reference.to_string(),
        platform,
    })
    .map_err(|e| e.to_string())?;
    let terminal = std::io::stderr().is_terminal();
    let bars = MultiProgress::new();
    let mut by_layer: HashMap<String, ProgressBar> = HashMap::new();
    let style = ProgressStyle::with_template("{prefix}: {msg:12} [{bar:30}] {bytes}/{total_bytes}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut outcome: Option<Result<(), String>> = None;
    let result = client(g, true)
        .stream(
            Method::POST,
            "/v1/images/pull",
            Some(body),
            |line: PullProgress| match line {
                PullProgress::Resolved { digest, layers } => {
                    eprintln!("{reference}: resolved to {digest}, {} layers", layers.len());
                    if terminal {
                        for layer in layers {
                            let bar = bars.add(ProgressBar::new(layer.size));
                            bar.set_style(style.clone());
                            bar.set_prefix(short(&layer.digest).to_string());
                            bar.set_message("waiting");
                            by_layer.insert(layer.digest, bar);
                        }
                    }
                }
                PullProgress::Present { digest } => match by_layer.get(&digest) {
                    Some(bar) => bar.finish_with_message("already present"),
                    None => eprintln!("{}: already present", short(&digest)),
                },
                PullProgress::Downloading { digest, done, .. } => {
                    if let Some(bar) = by_layer.get(&digest) {
                        bar.set_message("downloading");
                        bar.set_position(done);
                    }
                }
                PullProgress::Downloaded { digest } => match by_layer.get(&digest) {
                    Some(bar) => {
                        bar.set_position(bar.length().unwrap_or(0));
                        bar.set_message("verified");
                    }
                    None => eprintln!("{}: downloaded and verified", short(&digest)),
                },
                PullProgress::Unpacked { digest } => match by_layer.get(&digest) {
                    Some(bar) => bar.finish_with_message("unpacked"),
                    None => eprintln!("{}: unpacked", short(&digest)),
                },
                PullProgress::Done { reference, id } => {
                    println!("{reference}: pulled image {}", short(&id));
                    outcome = Some(Ok(()));
                }
                PullProgress::Error { message } => outcome = Some(Err(message)),
            },
            || {},
        )
        .await;
    for bar in by_layer.values() {
        if !bar.is_finished() {
            bar.abandon();
        }
    }
    result.map_err(|e| e.to_string())?;
    outcome.unwrap_or_else(|| Err("the daemon ended the pull without saying how it went".into()))
}

/// Whether an image this reference names is pulled already.
/// Whether the daemon has the image `reference` names. The daemon resolves
/// it: parsing a reference here would cost every `run` tens of milliseconds.
pub async fn is_pulled(g: &Global, reference: &str) -> bool {
    let path = format!("/v1/images?reference={}", crate::client::segment(reference));
    let images: Vec<ImageListItem> = client(g, true).get(&path).await.unwrap_or_default();
    !images.is_empty()
}

pub async fn images(g: &Global, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let mut images: Vec<ImageListItem> = client(g, true).get("/v1/images").await?;
    if !args.filter.is_empty() {
        images = super::listing::filter_images(g, images, &args.filter).await?;
    }
    if let Some(format) = &args.format {
        if !args.quiet {
            print!("{}", super::listing::images_formatted(&images, format)?);
            return Ok(ExitCode::SUCCESS);
        }
    }
    if args.quiet {
        for i in &images {
            println!("{}", short(&i.id));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["REFERENCE", "IMAGE ID", "SIZE", "SHARED", "LAYERS", "CREATED"]);
    for i in &images {
        let refs = if i.references.is_empty() {
            vec!["<none>".to_string()]
        } else {
            i.references.clone()
        };
        for r in refs {
            table.row(vec![
                r,
                short(&i.id).to_string(),
                human_size(i.size),
                human_size(i.shared_size),
                i.layers.to_string(),
                format!("{} ago", output::age(Some(i.created_at))),
            ]);
        }
    }
    table.print();
    Ok(ExitCode::SUCCESS)
}

fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2}GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1}MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1}kB", b / 1e3)
    } else {
        format!("{bytes}B")
    }
}

pub async fn rmi(g: &Global, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    let c = client(g, true);
    for name in &args.names {
        let req = RemoveImageRequest {
            name: name.clone(),
            force: args.force,
        };
        match c.post::<_, RemoveImageResponse>("/v1/images/remove", &req).await {
            Ok(r) if r.deleted => println!("Deleted: {}", r.id),
            Ok(_) => println!("Untagged: {name}"),
            Err(e) => {
                eprintln!("berth: {e}");
                code = ExitCode::from(1);
            }
        }
    }
    Ok(code)
}

pub async fn tag(g: &Global, args: TagArgs) -> anyhow::Result<ExitCode> {
    let req = TagRequest {
        source: args.source,
        target: args.target,
    };
    let _: ImageListItem = client(g, true).post("/v1/images/tag", &req).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn push(g: &Global, args: PushArgs) -> anyhow::Result<ExitCode> {
    let req = PushRequest {
        source: args.source,
        target: args.target,
    };
    let r: PushResponse = client(g, true).post("/v1/images/push", &req).await?;
    println!("{}: pushed {}", r.reference, r.digest);
    Ok(ExitCode::SUCCESS)
}

pub async fn prune(g: &Global) -> anyhow::Result<ExitCode> {
    let r: PruneResponse = client(g, true).post_empty("/v1/images/prune").await?;
    for id in &r.removed {
        println!("Deleted: {id}");
    }
    println!("{} image(s) removed", r.removed.len());
    Ok(ExitCode::SUCCESS)
}

/// The path as the daemon must see it: absolute (the daemon's working
/// directory is not this shell's).
fn absolute(path: &std::path::Path) -> anyhow::Result<String> {
    Ok(std::path::absolute(path)?.display().to_string())
}

pub async fn save(g: &Global, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let req = SaveRequest {
        names: args.names,
        path: absolute(&args.output)?,
        format: Some(args.format),
    };
    let _: serde_json::Value = client(g, true).post("/v1/images/save", &req).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn load(g: &Global, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let req = LoadRequest {
        path: absolute(&args.input)?,
    };
    let r: LoadResponse = client(g, true).post("/v1/images/load", &req).await?;
    for image in &r.images {
        if image.references.is_empty() {
            println!("Loaded image ID: {}", image.id);
        }
        for reference in &image.references {
            println!("Loaded image: {reference}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn commit(g: &Global, args: CommitArgs) -> anyhow::Result<ExitCode> {
    let req = CommitRequest {
        container: args.container,
        reference: args.reference,
    };
    let image: ImageListItem = client(g, true).post("/v1/images/commit", &req).await?;
    println!("{}", image.id);
    Ok(ExitCode::SUCCESS)
}

async fn detail(g: &Global, name: String) -> anyhow::Result<ImageDetail> {
    Ok(client(g, true)
        .post("/v1/images/inspect", &InspectImageRequest { name })
        .await?)
}

pub async fn inspect(g: &Global, args: NameArg) -> anyhow::Result<ExitCode> {
    let detail = detail(g, args.name).await?;
    println!("{}", serde_json::to_string_pretty(&detail)?);
    Ok(ExitCode::SUCCESS)
}

pub async fn history(g: &Global, args: NameArg) -> anyhow::Result<ExitCode> {
    let detail = detail(g, args.name).await?;
    let mut table = Table::new(&["CREATED", "CREATED BY", "LAYER"]);
    // Newest first, as `docker history`; layers pair with non-empty entries.
    let mut layers = detail.layers.iter().map(|l| short(&l.digest).to_string());
    let mut rows = Vec::new();
    for h in &detail.history {
        let layer = if h.empty_layer {
            "-".to_string()
        } else {
            layers.next().unwrap_or_else(|| "-".into())
        };
        let by: String = h.created_by.clone().unwrap_or_default().chars().take(60).collect();
        rows.push(vec![h.created.clone().unwrap_or_default(), by, layer]);
    }
    for row in rows.into_iter().rev() {
        table.row(row);
    }
    table.print();
    Ok(ExitCode::SUCCESS)
}

pub async fn login(g: &Global, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let password = match (args.password, args.password_stdin) {
        (Some(p), false) => p,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => anyhow::bail!("give the password with -p or --password-stdin (one of them)"),
    };
    let req = LoginRequest {
        registry: args.registry.clone(),
        username: args.username,
        password,
    };
    let _: serde_json::Value = client(g, true).post("/v1/login", &req).await?;
    println!("Login Succeeded: {}", args.registry);
    Ok(ExitCode::SUCCESS)
}

pub async fn logout(g: &Global, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let req = LogoutRequest {
        registry: args.registry.clone(),
    };
    let r: LogoutResponse = client(g, true).post("/v1/logout", &req).await?;
    if r.removed {
        println!("Removed login credentials for {}", args.registry);
    } else {
        println!("Not logged in to {}", args.registry);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn export(g: &Global, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let req = ExportRequest {
        container: args.container,
        path: absolute(&args.output)?,
    };
    let _: serde_json::Value = client(g, true).post("/v1/export", &req).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn system_df(g: &Global) -> anyhow::Result<ExitCode> {
    let df: DiskUsage = client(g, true).get("/v1/system/df").await?;
    let mut table = Table::new(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    for (kind, line) in [
        ("Images", &df.images),
        ("Containers", &df.containers),
        ("Local Volumes", &df.volumes),
        ("Build Cache", &df.build_cache),
    ] {
        table.row(vec![
            kind.to_string(),
            line.total.to_string(),
            line.active.to_string(),
            human_size(line.size),
            human_size(line.reclaimable),
        ]);
    }
    table.print();
    Ok(ExitCode::SUCCESS)
}

pub async fn import(g: &Global, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let req = ImportImageRequest {
        path: absolute(&args.file)?,
        reference: args.reference,
        cmd: args.cmd,
    };
    let image: ImageListItem = client(g, true).post("/v1/images/import", &req).await?;
    println!("{}", image.id);
    Ok(ExitCode::SUCCESS)
}
