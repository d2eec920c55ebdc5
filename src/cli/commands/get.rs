//! `get` (a list of objects) and `describe` (one object in full).

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::args::{DescribeArgs, GetArgs, Global};
use crate::cli::client;
use crate::cli::output::{self, Table};
use crate::client::segment;
use crate::wire::{Description, ObjectRef, ObjectView};

/// Lists objects, of one kind or all, as a table or as `-o json|yaml`.
pub async fn get(g: &Global, args: GetArgs) -> anyhow::Result<ExitCode> {
    let GetArgs { kind, name, output } = args;
    let mut query = Vec::new();
    if let Some(k) = &kind {
        query.push(format!("kind={}", segment(k)));
    }
    if let Some(n) = &name {
        query.push(format!("name={}", segment(n)));
    }
    let path = if query.is_empty() {
        "/v1/objects".to_string()
    } else {
        format!("/v1/objects?{}", query.join("&"))
    };
    let views: Vec<ObjectView> = client(g, true).get(&path).await?;
    if name.is_some() && views.is_empty() {
        bail!("{}/{} not found", kind.unwrap_or_default(), name.unwrap_or_default());
    }
    // Without a kind the list mixes kinds, so names say theirs (`container/web`).
    let qualify = kind.is_none();
    output::print_list(&views, output, "No objects found.", |wide| {
        objects_table(&views, wide, qualify)
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn objects_table(views: &[ObjectView], wide: bool, qualify: bool) -> Table {
    let mut header = vec!["NAME", "STATUS", "RESTARTS", "AGE"];
    if wide {
        header.extend(["IMAGE", "PID", "PORTS", "SOURCE"]);
    }
    let mut table = Table::new(&header);
    for v in views {
        let name = if qualify {
            format!("{}/{}", v.kind.to_ascii_lowercase(), v.name)
        } else {
            v.name.clone()
        };
        let mut row = vec![
            name,
            v.status.clone(),
            v.restarts.to_string(),
            output::age(v.created_at),
        ];
        if wide {
            row.push(v.image.clone().unwrap_or_else(|| "-".into()));
            row.push(v.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()));
            row.push(output::ports_cell(v.spec.as_ref()));
            row.push(v.source.clone().unwrap_or_else(|| "-".into()));
        }
        table.row(row);
    }
    table
}

/// Prints one object's spec, observed state and recent events, as
/// `kubectl describe` does.
pub async fn describe(g: &Global, args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let key = args.key;
    let Some(r) = ObjectRef::parse(&key) else {
        bail!("{key:?} is not KIND/NAME (e.g. container/web)")
    };
    let d: Description = client(g, true)
        .get(&format!("/v1/objects/{}/{}", r.kind.as_str(), segment(&r.name)))
        .await?;
    print_description(&d);
    Ok(ExitCode::SUCCESS)
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
                output::time(e.finished_at),
                if e.oom_killed { " (OOMKilled)" } else { "" }
            );
        }
    }
    if let Some(h) = &v.health {
        println!("Health:     {} (failing streak {})", h.status, h.failing_streak);
        for check in &h.log {
            println!(
                "  {} exit {}: {}",
                output::time(check.start),
                check.exit_code,
                check.output.trim_end().replace('\n', "\n    ")
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
        for line in output::yaml(spec).unwrap_or_default().lines() {
            println!("  {line}");
        }
    }
    println!("Events:");
    if d.events.is_empty() {
        println!("  <none>");
    }
    for e in &d.events {
        println!("  {}  {:<10} {}", output::time(e.time), e.reason, e.message);
    }
}
