//! `apply` and `diff`: the same apply request, made for real or as a dry run.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::cli::args::{ApplyArgs, DiffArgs, Global};
use crate::cli::{client, print_diagnostics, read_sources};
use crate::manifest;
use crate::wire::{ApplyRequest, ApplyResponse, WaitRequest, WaitResponse};

/// Validates, applies, reports each action, and with `--wait` waits until
/// the set's objects are ready.
pub async fn apply(g: &Global, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let timeout = parse_duration(&args.timeout)?;
    let req = apply_request(&args.files.files, args.prune, false)?;
    let c = client(g, true);
    pull_first(g, &req).await;
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
    if !resp.failed.is_empty() && !args.wait {
        // As `docker compose up -d` when a container cannot start.
        return Ok(ExitCode::from(1));
    }
    if args.wait {
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

/// Pulls, with progress, the registry images the manifests name that are not
/// here yet (Images with `ref` and a pull policy other than Never, and
/// Containers naming a reference), as `docker compose up` pulls first. The
/// apply then finds them present. Anything that goes wrong here is left for
/// the apply to report, in its own words.
async fn pull_first(g: &Global, req: &ApplyRequest) {
    let Ok(objects) = manifest::parse(&req.sources) else {
        return;
    };
    let mut wanted: Vec<(String, Option<String>)> = Vec::new();
    for o in &objects {
        let reference = match &o.spec {
            manifest::Spec::Image(i) if i.pull_policy != Some(manifest::PullPolicy::Never) => {
                i.reference.clone().map(|r| (r, i.platform.clone()))
            }
            manifest::Spec::Container(c) if crate::image::record::looks_like_reference(&c.image) => {
                Some((c.image.clone(), None))
            }
            _ => None,
        };
        if let Some(r) = reference {
            if !wanted.contains(&r) {
                wanted.push(r);
            }
        }
    }
    for (reference, platform) in wanted {
        if !super::images::is_pulled(g, &reference).await {
            if let Err(message) = super::images::pull_image(g, &reference, platform).await {
                eprintln!("pull {reference}: {message}");
            }
        }
    }
}

/// Prints what apply would do. As `kubectl diff`, the exit code says how it
/// went: 0 nothing to do, 1 changes, 2 the diff itself failed.
pub async fn diff(g: &Global, args: DiffArgs) -> ExitCode {
    match try_diff(g, args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn try_diff(g: &Global, args: DiffArgs) -> anyhow::Result<ExitCode> {
    let req = apply_request(&args.files, args.prune, true)?;
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

/// The request both commands send: the sources read from `files`, as the
/// apply set named after them.
fn apply_request(files: &[String], prune: bool, dry_run: bool) -> anyhow::Result<ApplyRequest> {
    Ok(ApplyRequest {
        source_id: source_id(files),
        sources: read_sources(files)?,
        prune,
        dry_run,
        base_dir: std::env::current_dir().ok().map(|d| d.display().to_string()),
    })
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

/// `--timeout`, in the manifests' duration syntax (`90s`, `2m`).
fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    s.parse::<manifest::Duration>()
        .map(|d| d.0)
        .map_err(|e| anyhow::anyhow!(e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apply_set_is_named_after_its_canonical_paths() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = vec![dir.path().display().to_string(), "-".to_string()];
        let want = format!("apply:{},-", std::fs::canonicalize(dir.path()).unwrap().display());
        assert_eq!(source_id(&inputs), want);
        assert_eq!(source_id(&["/no/such/file".into()]), "apply:/no/such/file");
    }

    #[test]
    fn timeouts_take_the_manifest_duration_syntax() {
        assert_eq!(parse_duration("120s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
    }
}
