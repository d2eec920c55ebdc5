//! The one place the CLI prints tables, JSON and YAML. Commands choose what
//! goes in a table's columns; how it is laid out, and how `-o json|yaml|wide`
//! switches between the forms, is decided here. JSON and YAML are the wire
//! types serialized as they are: their keys are already camelCase, as
//! `kubectl -o json` prints them.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::args::Output;

/// Columns of text, left-aligned, three spaces apart, as kubectl prints them.
#[derive(Debug, Clone)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row; it has as many cells as the header.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.rows[0].len(), "a row has one cell per column");
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.rows[0].len())
            .map(|i| self.rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in &self.rows {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                .collect();
            out.push_str(line.join("   ").trim_end());
            out.push('\n');
        }
        out
    }

    /// The header, then the rows, as given.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }

    /// The table as text (for a screen that is redrawn).
    pub fn text(&self) -> String {
        self.render()
    }
}

/// Bytes as `docker stats` shows them: 1024-based with B, KiB, MiB, GiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", UNITS[unit])
    }
}

/// A container's published ports as `docker ps` shows them
/// (`127.0.0.1:8080->80/tcp, 53->53/udp`), from the spec in its view; `-`
/// for none.
pub fn ports_cell(spec: Option<&crate::manifest::Spec>) -> String {
    let ports = match spec {
        Some(crate::manifest::Spec::Container(c)) => c.ports.as_slice(),
        _ => &[],
    };
    if ports.is_empty() {
        return "-".into();
    }
    ports
        .iter()
        .map(|p| {
            let ip = p.host_ip.as_deref().map(|ip| format!("{ip}:")).unwrap_or_default();
            format!("{ip}{}->{}/{}", p.host, p.container, p.proto())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints a list as `-o` asks: the wire type itself as JSON or YAML, or else
/// the table that `table` makes (`wide` for `-o wide`), or `empty` when
/// there is nothing to list.
pub fn print_list<T: Serialize>(
    items: &[T],
    output: Option<Output>,
    empty: &str,
    table: impl FnOnce(bool) -> Table,
) -> anyhow::Result<()> {
    match output {
        Some(Output::Json) => println!("{}", json(&items)?),
        Some(Output::Yaml) => print!("{}", yaml(&items)?),
        Some(Output::Wide) | None => {
            if items.is_empty() {
                println!("{empty}");
            } else {
                table(matches!(output, Some(Output::Wide))).print();
            }
        }
    }
    Ok(())
}

/// Pretty JSON, without a trailing newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}

/// YAML, each line ended by a newline.
pub fn yaml<T: Serialize>(value: &T) -> anyhow::Result<String> {
    serde_saphyr::to_string(value).map_err(|e| anyhow::anyhow!("cannot write YAML: {e}"))
}

/// `5s`, `3m`, `2h`, `4d`, as kubectl prints ages; `-` for never.
pub fn age(since_ms: Option<i64>) -> String {
    let Some(t) = since_ms else { return "-".into() };
    age_at(t, now_ms())
}

fn age_at(since_ms: i64, now_ms: i64) -> String {
    let s = ((now_ms - since_ms) / 1000).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// A unix time in milliseconds as RFC 3339 UTC; empty if out of range.
pub fn time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_show_the_host_address_when_there_is_one() {
        // As the wire carries them (`kind` beside `spec`).
        let spec = |v| serde_json::from_value::<crate::manifest::Spec>(v).unwrap();
        let ports = spec(
            serde_json::json!({"kind": "Container", "spec": {"image": "x", "ports": [
                {"hostIp": "127.0.0.1", "host": 8080, "container": 80},
                {"host": 5353, "container": 53, "protocol": "udp"},
            ]}}),
        );
        assert_eq!(ports_cell(Some(&ports)), "127.0.0.1:8080->80/tcp, 5353->53/udp");
        let none = spec(serde_json::json!({"kind": "Container", "spec": {"image": "x"}}));
        assert_eq!(ports_cell(Some(&none)), "-");
        assert_eq!(ports_cell(None), "-");
    }

    #[test]
    fn tables_align_columns_three_spaces_apart_without_trailing_blanks() {
        let mut t = Table::new(&["NAME", "STATUS", "AGE"]);
        t.row(vec!["web".into(), "Running".into(), "5s".into()]);
        t.row(vec!["database".into(), "Exited(1)".into(), "".into()]);
        assert_eq!(
            t.render(),
            "NAME       STATUS      AGE\nweb        Running     5s\ndatabase   Exited(1)\n"
        );
    }

    #[test]
    fn ages_are_printed_in_seconds_minutes_hours_or_days_as_kubectl_does() {
        let at = |secs: i64| age_at(0, secs * 1000);
        assert_eq!(at(5), "5s");
        assert_eq!(at(119), "119s");
        assert_eq!(at(120), "2m");
        assert_eq!(at(7200), "2h");
        assert_eq!(at(172_800), "2d");
        assert_eq!(age_at(10_000, 0), "0s", "a clock skew is not a negative age");
        assert_eq!(age(None), "-");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn json_and_yaml_keep_the_wire_types_camel_case_keys() {
        let exit = crate::wire::ExitInfo {
            code: 137,
            signal: Some(9),
            oom_killed: true,
            finished_at: 1,
        };
        assert!(json(&exit).unwrap().contains("\"oomKilled\": true"));
        assert!(yaml(&exit).unwrap().contains("finishedAt: 1"));
    }
}
