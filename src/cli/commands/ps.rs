//! `ps`: containers, as `docker ps` lists them.

use std::process::ExitCode;

use crate::cli::args::{Global, PsArgs};
use crate::cli::client;
use crate::cli::output::{self, Table};
use crate::manifest::Spec;
use crate::wire::ObjectView;

pub async fn ps(g: &Global, args: PsArgs) -> anyhow::Result<ExitCode> {
    let mut views: Vec<ObjectView> = client(g, true).get("/v1/objects?kind=container").await?;
    if !args.all && !args.latest {
        views.retain(|v| v.pid.is_some());
    }
    if args.latest {
        views.sort_by_key(|v| v.created_at);
        views = views.into_iter().last().into_iter().collect();
    }
    containers_table(&views).print();
    Ok(ExitCode::SUCCESS)
}

fn containers_table(views: &[ObjectView]) -> Table {
    let mut table = Table::new(&["NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS"]);
    for v in views {
        // Up since the last start, as Docker's; CREATED stays.
        let up = output::age(v.started_at.or(v.created_at));
        let status = match (&v.pid, &v.exit) {
            (Some(_), _) if v.status.starts_with("Paused") => format!("Up {up} (Paused)"),
            (Some(_), _) => match &v.health {
                Some(h) => format!("Up {up} ({})", h.status),
                None => format!("Up {up}"),
            },
            (None, Some(e)) => format!("Exited ({}) {} ago", e.code, output::age(Some(e.finished_at))),
            _ => v.status.clone(),
        };
        table.row(vec![
            v.name.clone(),
            v.image.clone().unwrap_or_default(),
            command_cell(v),
            format!("{} ago", output::age(v.created_at)),
            status,
            output::ports_cell(v.spec.as_ref()),
        ]);
    }
    table
}

/// The spec's command, quoted and cut at 20 characters as `docker ps` does.
fn command_cell(v: &ObjectView) -> String {
    let command = v
        .spec
        .as_ref()
        .and_then(|s| match s {
            Spec::Container(c) => Some(c.command.join(" ")),
            _ => None,
        })
        .unwrap_or_default();
    if command.chars().count() > 20 {
        format!("\"{}…\"", command.chars().take(19).collect::<String>())
    } else {
        format!("\"{command}\"")
    }
}
