//! `stats`, `top`, `inspect`: seeing inside containers.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::args::{CpArgs, Global, InspectArgs, NameArgs, StatsArgs};
use crate::cli::client;
use crate::cli::format::Format;
use crate::cli::output::{self, Table};
use crate::client::segment;
use crate::commands::docker_inspect::InspectRequest;
use crate::wire::{ContainerInspect, ContainerStats, CopyRequest, CopyResponse, StatsRequest, TopResponse};

/// How far apart the two readings of one refresh are, as `docker stats`.
const INTERVAL: Duration = Duration::from_secs(1);

/// CPU % between two readings, as `docker stats` computes it: the
/// container's share of all CPU time, times the number of CPUs.
pub fn cpu_percent(before: &ContainerStats, now: &ContainerStats) -> f64 {
    let cpu = now.sample.cpu_ns.saturating_sub(before.sample.cpu_ns) as f64;
    let system = now.sample.system_ns.saturating_sub(before.sample.system_ns) as f64;
    if system <= 0.0 {
        return 0.0;
    }
    cpu / system * now.sample.online_cpus.max(1) as f64 * 100.0
}

fn table(before: &HashMap<String, ContainerStats>, now: &[ContainerStats]) -> Table {
    let mut t = Table::new(&[
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]);
    for s in now {
        let cpu = before.get(&s.name).map(|b| cpu_percent(b, s)).unwrap_or(0.0);
        let mem_pct = if s.sample.memory_limit_bytes > 0 {
            s.sample.memory_bytes as f64 / s.sample.memory_limit_bytes as f64 * 100.0
        } else {
            0.0
        };
        t.row(vec![
            s.name.clone(),
            format!("{cpu:.2}%"),
            format!(
                "{} / {}",
                output::bytes(s.sample.memory_bytes),
                output::bytes(s.sample.memory_limit_bytes)
            ),
            format!("{mem_pct:.2}%"),
            format!(
                "{} / {}",
                output::bytes(s.sample.net_rx_bytes),
                output::bytes(s.sample.net_tx_bytes)
            ),
            format!(
                "{} / {}",
                output::bytes(s.sample.block_read_bytes),
                output::bytes(s.sample.block_write_bytes)
            ),
            s.sample.pids.to_string(),
        ]);
    }
    t
}

const STATS_TABLE: &str =
    r"table {{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

const STATS_HEADERS: [(&str, &str); 9] = [
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("ID", "CONTAINER ID"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// The rows `stats --format` sees: the table's cells under Docker's names.
fn stats_rows(before: &HashMap<String, ContainerStats>, now: &[ContainerStats]) -> Vec<serde_json::Value> {
    let t = table(before, now);
    t.rows()
        .iter()
        .skip(1)
        .map(|r| {
            serde_json::json!({
                "Container": r[0], "Name": r[0], "ID": r[0], "CPUPerc": r[1], "MemUsage": r[2],
                "MemPerc": r[3], "NetIO": r[4], "BlockIO": r[5], "PIDs": r[6],
            })
        })
        .collect()
}

/// Two readings a second apart, then (unless --no-stream) a redraw every
/// second until interrupted.
pub async fn stats(g: &Global, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let format = args
        .format
        .as_deref()
        .map(|f| Format::parse_listing(f, STATS_TABLE))
        .transpose()?;
    let c = client(g, true);
    let req = StatsRequest { names: args.names };
    let mut before: HashMap<String, ContainerStats> = c
        .post::<_, Vec<ContainerStats>>("/v1/stats", &req)
        .await?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    loop {
        tokio::time::sleep(INTERVAL).await;
        let now: Vec<ContainerStats> = c.post("/v1/stats", &req).await?;
        let text = match &format {
            Some(f) => f.render_rows(&STATS_HEADERS.into_iter().collect(), &stats_rows(&before, &now))?,
            None => table(&before, &now).text(),
        };
        if args.no_stream {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        // Clear the screen and home the cursor, as docker stats redraws.
        let mut out = std::io::stdout().lock();
        write!(out, "\x1b[2J\x1b[H{text}")?;
        out.flush()?;
        before = now.into_iter().map(|s| (s.name.clone(), s)).collect();
    }
}

pub async fn top(g: &Global, args: NameArgs) -> anyhow::Result<ExitCode> {
    let top: TopResponse = client(g, true).get(&format!("/v1/top/{}", segment(&args.name))).await?;
    let mut t = Table::new(&["PID", "PPID", "UID", "TIME", "RSS", "CMD"]);
    for p in top.processes {
        let secs = p.cpu_seconds as u64;
        t.row(vec![
            p.pid.to_string(),
            p.ppid.to_string(),
            p.uid.to_string(),
            format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
            output::bytes(p.rss_bytes),
            p.command,
        ]);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}

/// `inspect NAME…`: the documents as a JSON array, or each through
/// `--format`; a name that is not found is reported on stderr and makes the
/// exit code 1, the others still print (as Docker's).
pub async fn inspect(g: &Global, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let c = client(g, true);
    if args.berth {
        for name in &args.names {
            let v: ContainerInspect = c.get(&format!("/v1/inspect/{}", segment(name))).await?;
            println!("{}", output::json(&v)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Parsed first: a bad template is refused before anything is asked.
    let format = args.format.as_deref().map(Format::parse).transpose()?;
    let mut docs = Vec::new();
    let mut failed = false;
    for name in &args.names {
        let req = InspectRequest {
            name: name.clone(),
            kind: args.kind.clone(),
        };
        match c.post::<_, serde_json::Value>("/v1/docker/inspect", &req).await {
            Ok(doc) => docs.push(doc),
            Err(e) => {
                eprintln!("berth: {e:#}");
                failed = true;
            }
        }
    }
    let mut out = String::new();
    match &format {
        Some(f) => {
            for doc in &docs {
                out.push_str(&f.render(doc)?);
                out.push('\n');
            }
        }
        None => {
            out = serde_json::to_string_pretty(&docs)?;
            out.push('\n');
        }
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `cp NAME:PATH HOSTPATH` or `cp HOSTPATH NAME:PATH`.
pub async fn cp(g: &Global, args: CpArgs) -> anyhow::Result<ExitCode> {
    fn in_container(s: &str) -> Option<(&str, &str)> {
        s.split_once(':').filter(|(n, _)| !n.is_empty() && !n.contains('/'))
    }
    let (name, req) = match (in_container(&args.source), in_container(&args.destination)) {
        (Some((name, inside)), None) => (
            name.to_string(),
            CopyRequest {
                into_container: false,
                container_path: inside.to_string(),
                host_path: absolute(&args.destination)?,
            },
        ),
        (None, Some((name, inside))) => (
            name.to_string(),
            CopyRequest {
                into_container: true,
                container_path: inside.to_string(),
                host_path: absolute(&args.source)?,
            },
        ),
        _ => anyhow::bail!("cp: exactly one of the two paths must be CONTAINER:PATH"),
    };
    let _: CopyResponse = client(g, true)
        .post(&format!("/v1/cp/{}", segment(&name)), &req)
        .await?;
    Ok(ExitCode::SUCCESS)
}

fn absolute(p: &str) -> anyhow::Result<String> {
    Ok(std::path::absolute(p)?.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_the_share_of_host_time_times_cpus() {
        let stats = |cpu_ns, system_ns| ContainerStats {
            sample: crate::wire::StatsSample {
                cpu_ns,
                system_ns,
                online_cpus: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        let (a, b) = (stats(0, 0), stats(500_000_000, 2_000_000_000));
        // Half a CPU-second over one wall second on 2 CPUs: 50 %.
        assert!((cpu_percent(&a, &b) - 50.0).abs() < 1e-9);
        assert_eq!(output::bytes(512), "512B");
        assert_eq!(output::bytes(3 << 20), "3.00MiB");
    }
}
