//! `source …`, `revisions`, `rollback` and `diff --to`: GitOps from the CLI.

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::args::{DiffArgs, Global, RevisionsArgs, RollbackArgs, SourceAddArgs, SourceCmd};
use crate::cli::output::{age, print_list, Table};
use crate::cli::{client, print_diagnostics};
use crate::client::segment;
use crate::commands::revisions::describe_origin;
use crate::wire::{ApplyResponse, GitSourceSpec, RevisionView, RollbackRequest, SourceView, SyncResponse};

/// What the user typed as a source, as the daemon names it: a git source's
/// name is `git:NAME`; an existing file or directory is the apply set
/// `berth apply -f` made of it; anything else is taken as given.
pub fn source_id(given: &str) -> String {
    if given.contains(':') {
        return given.to_string();
    }
    if let Ok(p) = std::fs::canonicalize(given) {
        return format!("apply:{}", p.display());
    }
    format!("{}{given}", crate::commands::sources::GIT_SOURCE_PREFIX)
}

fn short(commit: Option<&str>) -> String {
    commit
        .map(|c| c[..c.len().min(12)].to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn source(g: &Global, cmd: SourceCmd) -> anyhow::Result<ExitCode> {
    let c = client(g, true);
    match cmd {
        SourceCmd::Add(args) => {
            let v: SourceView = c.post("/v1/sources", &spec_of(args)).await?;
            println!("source {} added; the daemon fetches it now", v.spec.name);
        }
        SourceCmd::Ls { output } => {
            let list: Vec<SourceView> = c.get("/v1/sources").await?;
            print_list(&list, output, "no sources", |_| {
                let mut t = Table::new(&[
                    "NAME", "URL", "REF", "PATH", "COMMIT", "FETCHED", "APPLIED", "STATE", "ERROR",
                ]);
                for v in &list {
                    let reference = v
                        .spec
                        .branch
                        .as_ref()
                        .map(|b| format!("branch {b}"))
                        .or(v.spec.tag.as_ref().map(|t| format!("tag {t}")))
                        .or(v.spec.commit.as_ref().map(|c| format!("commit {c}")))
                        .unwrap_or_else(|| "HEAD".into());
                    let state = if v.suspended {
                        format!("suspended ({})", v.suspended_reason.as_deref().unwrap_or("by hand"))
                    } else {
                        "following".into()
                    };
                    t.row(vec![
                        v.spec.name.clone(),
                        v.spec.url.clone(),
                        reference,
                        v.spec.path.clone().unwrap_or_else(|| ".".into()),
                        short(v.commit.as_deref()),
                        age(v.fetched_at),
                        age(v.applied_at),
                        state,
                        v.error.as_deref().map(|e| e.replace('\n', " | ")).unwrap_or_default(),
                    ]);
                }
                t
            })?;
        }
        SourceCmd::Sync(a) => {
            let r: SyncResponse = c.post_empty(&format!("/v1/sources/{}/sync", segment(&a.name))).await?;
            return Ok(print_sync(&a.name, &r, false));
        }
        SourceCmd::Diff(a) => {
            let r: SyncResponse = c.get(&format!("/v1/sources/{}/diff", segment(&a.name))).await?;
            return Ok(print_sync(&a.name, &r, true));
        }
        SourceCmd::Suspend(a) => {
            let _: SourceView = c
                .post_empty(&format!("/v1/sources/{}/suspend", segment(&a.name)))
                .await?;
            println!("source {} suspended", a.name);
        }
        SourceCmd::Resume(a) => {
            let _: SourceView = c
                .post_empty(&format!("/v1/sources/{}/resume", segment(&a.name)))
                .await?;
            println!("source {} resumed", a.name);
        }
        SourceCmd::Rm { name, prune } => {
            let _: SourceView = c
                .post_empty(&format!("/v1/sources/{}/remove?prune={prune}", segment(&name)))
                .await?;
            println!("source {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn spec_of(a: SourceAddArgs) -> GitSourceSpec {
    let abs = |p: std::path::PathBuf| std::path::absolute(&p).unwrap_or(p).display().to_string();
    GitSourceSpec {
        name: a.name,
        url: a.git,
        branch: a.branch,
        tag: a.tag,
        commit: a.commit,
        path: a.path,
        interval: a.interval,
        token_file: a.token_file.map(abs),
        docker_config: a.docker_config.map(abs),
        ssh_key_file: a.ssh_key.map(abs),
    }
}

/// Prints a sync's or a preview's report; exit 1 when the commit was not applied for a fault.
fn print_sync(name: &str, r: &SyncResponse, preview: bool) -> ExitCode {
    let c = short(Some(&r.commit));
    if !r.apply.errors.is_empty() {
        eprintln!("source {name}: commit {c} does not validate; the previous commit keeps running");
        print_diagnostics(&r.apply.errors);
        return ExitCode::from(if preview { 2 } else { 1 });
    }
    for a in &r.apply.actions {
        println!("{a}");
    }
    for f in &r.apply.failed {
        eprintln!("failed: {f}");
    }
    if preview {
        if r.apply.actions.is_empty() {
            println!("commit {c}: no changes");
            return ExitCode::SUCCESS;
        }
        return ExitCode::from(1);
    }
    if !r.apply.failed.is_empty() {
        eprintln!("source {name}: commit {c} failed to apply; the previous revision was applied again");
        return ExitCode::from(1);
    }
    if r.applied {
        println!("source {name}: applied commit {c}");
    } else {
        println!("source {name}: commit {c} already applied");
    }
    ExitCode::SUCCESS
}

pub async fn revisions(g: &Global, args: RevisionsArgs) -> anyhow::Result<ExitCode> {
    let path = match &args.source {
        Some(s) => format!("/v1/revisions?source={}", segment(&source_id(s))),
        None => "/v1/revisions".into(),
    };
    let list: Vec<RevisionView> = client(g, true).get(&path).await?;
    print_list(&list, args.output, "no revisions", |wide| {
        let mut header = vec!["REVISION", "SOURCE", "AGE", "STATUS", "ORIGIN"];
        if wide {
            header.extend(["FILES", "REASON"]);
        }
        let mut t = Table::new(&header);
        for r in &list {
            let mut row = vec![
                r.id.to_string(),
                r.source.clone(),
                age(Some(r.created_at)),
                r.status.clone(),
                describe_origin(&r.origin),
            ];
            if wide {
                row.push(r.files.join(","));
                row.push(r.reason.clone().unwrap_or_default());
            }
            t.row(row);
        }
        t
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_apply(resp: &ApplyResponse) -> bool {
    if !resp.errors.is_empty() {
        print_diagnostics(&resp.errors);
        return false;
    }
    for a in &resp.actions {
        println!("{a}");
    }
    for f in &resp.failed {
        eprintln!("failed: {f}");
    }
    resp.failed.is_empty()
}

pub async fn rollback(g: &Global, args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let req = RollbackRequest {
        source: args.source.as_deref().map(source_id),
        to: args.to,
        dry_run: false,
        reason: args.reason,
    };
    let resp: ApplyResponse = client(g, true).post("/v1/rollback", &req).await?;
    if !print_apply(&resp) {
        bail!("the rollback did not apply cleanly");
    }
    if resp.actions.is_empty() {
        println!("no changes");
    }
    if let Some(r) = resp.revision {
        println!("rolled back: now revision {r}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `diff --to N`: 0 nothing would change, 1 changes, 2 error.
pub async fn diff_to(g: &Global, args: DiffArgs) -> ExitCode {
    let req = RollbackRequest {
        source: args.source.as_deref().map(source_id),
        to: args.to,
        dry_run: true,
        reason: None,
    };
    match client(g, true).post::<_, ApplyResponse>("/v1/rollback", &req).await {
        Ok(resp) => {
            if !print_apply(&resp) {
                return ExitCode::from(2);
            }
            if resp.actions.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
