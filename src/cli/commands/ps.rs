//! `ps`: containers, as `docker ps` lists them.

use std::process::ExitCode;

use std::collections::BTreeMap;

use anyhow::Context;

use crate::cli::args::{Global, PsArgs};
use crate::cli::client;
use crate::cli::format::Format;
use crate::cli::output::{self, Table};
use crate::commands::docker_list::{human_duration, ContainerSummary, ListContainersRequest};
use crate::manifest::Spec;
use crate::wire::ObjectView;

pub async fn ps(g: &Global, args: PsArgs) -> anyhow::Result<ExitCode> {
    if args.quiet
        || args.last.is_some()
        || args.no_trunc
        || args.size
        || !args.filter.is_empty()
        || args.format.is_some()
    {
        return docker_ps(g, args).await;
    }
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

/// `docker ps`'s default columns.
const DEFAULT_TABLE: &str =
    r"table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// The template fields of a `ps` row and their column titles, as Docker's.
const HEADERS: [(&str, &str); 14] = [
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// `KEY=VALUE` filters as a map of alternatives.
pub fn parse_filters(filters: &[String]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter {f:?}: expected KEY=VALUE"))?;
        out.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(out)
}

/// `ps` with Docker's options: the daemon lists and filters, this formats.
async fn docker_ps(g: &Global, args: PsArgs) -> anyhow::Result<ExitCode> {
    let mut format_src = args.format.clone().unwrap_or_else(|| DEFAULT_TABLE.to_string());
    if args.size && args.format.is_none() {
        format_src.push_str(r"\t{{.Size}}");
    }
    let format = Format::parse_listing(&format_src, DEFAULT_TABLE)?;
    let req = ListContainersRequest {
        all: args.all,
        limit: args.last.or(args.latest.then_some(1)),
        size: args.size,
        filters: parse_filters(&args.filter)?,
    };
    let list: Vec<ContainerSummary> = client(g, true).post("/v1/docker/containers", &req).await?;
    if args.quiet {
        for c in &list {
            println!("{}", c.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let rows: Vec<serde_json::Value> = list.iter().map(|c| row(c, now, args.no_trunc)).collect();
    let headers: BTreeMap<&str, &str> = HEADERS.into_iter().collect();
    print!("{}", format.render_rows(&headers, &rows)?);
    Ok(ExitCode::SUCCESS)
}

/// One container as `docker ps --format` sees it.
fn row(c: &ContainerSummary, now: i64, no_trunc: bool) -> serde_json::Value {
    let command = if !no_trunc && c.command.chars().count() > 20 {
        format!("\"{}…\"", c.command.chars().take(19).collect::<String>())
    } else {
        format!("\"{}\"", c.command)
    };
    let ports: Vec<String> = c
        .ports
        .iter()
        .map(|p| match (&p.ip, p.public_port) {
            (Some(ip), Some(public)) => format!("{ip}:{public}->{}/{}", p.private_port, p.kind),
            _ => format!("{}/{}", p.private_port, p.kind),
        })
        .collect();
    let created = time::OffsetDateTime::from_unix_timestamp(c.created).ok();
    let created_at = created
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC"
            ))
            .ok()
        })
        .unwrap_or_default();
    let volumes: Vec<&str> = c.mounts.iter().filter_map(|m| m.name.as_deref()).collect();
    serde_json::json!({
        "ID": c.id,
        "Image": c.image,
        "Command": command,
        "CreatedAt": created_at,
        "RunningFor": format!("{} ago", human_duration(now - c.created)),
        "Ports": ports.join(", "),
        "State": c.state,
        "Status": c.status,
        "Size": c.size_rw.map(|s| format!("{} (virtual)", decimal_size(s))).unwrap_or_default(),
        "Names": c.names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
        "Labels": c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "Mounts": volumes.join(","),
        "Networks": c.network_settings.networks.keys().cloned().collect::<Vec<_>>().join(","),
        "LocalVolumes": volumes.len().to_string(),
    })
}

/// Bytes in Docker's decimal units with 3 significant digits (`12.3kB`).
fn decimal_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let shown = format!("{v:.digits$}");
    let shown = if shown.contains('.') {
        shown.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        shown
    };
    format!("{shown}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_into_alternatives_per_key() {
        let f = parse_filters(&["label=a=b".into(), "status=exited".into(), "status=running".into()]).unwrap();
        assert_eq!(f["label"], ["a=b"]);
        assert_eq!(f["status"], ["exited", "running"]);
        assert!(parse_filters(&["nokey".into()])
            .unwrap_err()
            .to_string()
            .contains("KEY=VALUE"));
    }

    #[test]
    fn sizes_are_decimal_as_dockers() {
        assert_eq!(decimal_size(0), "0B");
        assert_eq!(decimal_size(12_345), "12.3kB");
        assert_eq!(decimal_size(1_500_000), "1.5MB");
        assert_eq!(decimal_size(123_456_789), "123MB");
    }

    #[test]
    fn a_row_has_dockers_fields() {
        let c = ContainerSummary {
            id: "web".into(),
            names: vec!["/web".into()],
            command: "sh -c 'a very long command indeed'".into(),
            created: 100,
            labels: [("a".to_string(), "1".to_string())].into(),
            ports: vec![crate::commands::docker_list::PortSummary {
                ip: Some("0.0.0.0".into()),
                private_port: 80,
                public_port: Some(8080),
                kind: "tcp".into(),
            }],
            ..Default::default()
        };
        let r = row(&c, 160, false);
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Command"], "\"sh -c 'a very long …\"");
        assert_eq!(r["RunningFor"], "About a minute ago");
        assert_eq!(r["Ports"], "0.0.0.0:8080->80/tcp");
        assert_eq!(r["Labels"], "a=1");
        assert_eq!(row(&c, 160, true)["Command"], "\"sh -c 'a very long command indeed'\"");
    }
}
