//! Docker-shaped container listing (`docker ps`, `GET /containers/json`):
//! summaries built from the same documents as `inspect`, filtered with
//! Docker's filter keys. The filtering is pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::docker_inspect::{self, ContainerJson, EndpointSettings, MountPoint};
use super::{CommandError, Result};
use crate::reconcile::Engine;

/// `POST /v1/docker/containers`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListContainersRequest {
    /// Stopped containers too (a `status` or `exited` filter implies it).
    #[serde(default)]
    pub all: bool,
    /// Only the N most recently created (stopped ones included), as `ps -n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Measure each container's writable layer (`SizeRw`).
    #[serde(default)]
    pub size: bool,
    /// Docker's filters: key to values; values of one key are alternatives,
    /// keys must all match. Keys: id, name, label, status, ancestor, network, exited.
    #[serde(default)]
    pub filters: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    /// Unix seconds.
    pub created: i64,
    pub ports: Vec<PortSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    /// `Up 5 minutes`, `Exited (0) 2 hours ago`, `Created`.
    pub status: String,
    pub network_settings: NetworkSummary,
    pub mounts: Vec<MountPoint>,
    /// Exit code of a stopped container (berth's addition: the `exited` filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct PortSummary {
    #[serde(rename = "IP", default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub private_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSummary {
    pub networks: BTreeMap<String, EndpointSettings>,
}

const FILTER_KEYS: [&str; 7] = ["id", "name", "label", "status", "ancestor", "network", "exited"];
const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// Refuses a filter Docker would refuse: an unknown key, a bad status or exit code.
pub fn check_filters(filters: &BTreeMap<String, Vec<String>>) -> Result<()> {
    for (key, values) in filters {
        if !FILTER_KEYS.contains(&key.as_str()) {
            return Err(CommandError::Invalid(format!(
                "invalid filter {}: use one of {}",
                super::quote(key),
                FILTER_KEYS.join(", ")
            )));
        }
        for v in values {
            if key == "status" && !STATUSES.contains(&v.as_str()) {
                return Err(CommandError::Invalid(format!(
                    "invalid filter status={}: use one of {}",
                    super::quote(v),
                    STATUSES.join(", ")
                )));
            }
            if key == "exited" && v.parse::<i32>().is_err() {
                return Err(CommandError::Invalid(format!(
                    "invalid filter exited={}: an exit code is an integer",
                    super::quote(v)
                )));
            }
        }
    }
    Ok(())
}

/// Whether one container passes every filter. Values of one key are
/// alternatives, but labels must all match, as Docker's `MatchKVList`:
/// docker-compose asks for `project=p` and `oneoff=False` in one query,
/// and would list every container twice if either label were enough.
pub fn matches(c: &ContainerSummary, filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(key, values)| {
        let label = |v: &String| match v.split_once('=') {
            Some((k, want)) => c.labels.get(k).is_some_and(|have| have == want),
            None => c.labels.contains_key(v.as_str()),
        };
        if key == "label" {
            return values.iter().all(label);
        }
        values.is_empty()
            || values.iter().any(|v| match key.as_str() {
                "id" => c.id.starts_with(v.as_str()),
                "name" => c.names.iter().any(|n| name_matches(n.trim_start_matches('/'), v)),
                "status" => c.state == *v,
                "ancestor" => {
                    c.image == *v
                        || c.image_id == *v
                        || c.image_id
                            .trim_start_matches("sha256:")
                            .starts_with(v.trim_start_matches("sha256:"))
                            && v.len() >= 4
                }
                "network" => c.network_settings.networks.contains_key(v.as_str()),
                "exited" => c.state == "exited" && c.exit_code.is_some_and(|code| v.parse() == Ok(code)),
                _ => false,
            })
    })
}

/// Docker matches names with a regular expression; scripts use a substring
/// or `^`/`$` anchors, which is what this takes.
fn name_matches(name: &str, pattern: &str) -> bool {
    match (pattern.strip_prefix('^'), pattern.strip_suffix('$')) {
        (Some(rest), _) if rest.ends_with('$') => name == &rest[..rest.len() - 1],
        (Some(rest), _) => name.starts_with(rest),
        (None, Some(rest)) => name.ends_with(rest),
        (None, None) => name.contains(pattern),
    }
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", s / 3600),
        172_800..=1_209_599 => format!("{} days", s / 86400),
        1_209_600..=5_183_999 => format!("{} weeks", s / 604_800),
        5_184_000..=63_071_999 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    }
}

fn unix_secs(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// The summary of one inspected container, `now` in unix seconds.
pub fn summary(doc: &ContainerJson, now: i64) -> ContainerSummary {
    let state = &doc.state;
    let since = |t: &str| human_duration(unix_secs(t).map_or(0, |t| now - t));
    let status = match state.status.as_str() {
        "running" => match &state.health {
            Some(h) => format!("Up {} ({})", since(&state.started_at), h.status),
            None => format!("Up {}", since(&state.started_at)),
        },
        "paused" => format!("Up {} (Paused)", since(&state.started_at)),
        "restarting" => format!("Restarting ({}) {} ago", state.exit_code, since(&state.finished_at)),
        "exited" => format!("Exited ({}) {} ago", state.exit_code, since(&state.finished_at)),
        "removing" => "Removal In Progress".into(),
        _ => "Created".into(),
    };
    let command = [doc.path.clone()]
        .into_iter()
        .chain(doc.args.iter().cloned())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut ports = Vec::new();
    for (port, bindings) in &doc.network_settings.ports {
        let (num, proto) = port.split_once('/').unwrap_or((port, "tcp"));
        let Ok(private_port) = num.parse() else { continue };
        match bindings {
            Some(bindings) => ports.extend(bindings.iter().map(|b| PortSummary {
                ip: Some(b.host_ip.clone()),
                private_port,
                public_port: b.host_port.parse().ok(),
                kind: proto.into(),
            })),
            None => ports.push(PortSummary {
                ip: None,
                private_port,
                public_port: None,
                kind: proto.into(),
            }),
        }
    }
    ContainerSummary {
        id: doc.id.clone(),
        names: vec![doc.name.clone()],
        image: doc.config.image.clone(),
        image_id: doc.image.clone(),
        command,
        created: unix_secs(&doc.created).unwrap_or(0),
        ports,
        size_rw: None,
        labels: doc.config.labels.clone(),
        state: state.status.clone(),
        status,
        network_settings: NetworkSummary {
            networks: doc.network_settings.networks.clone(),
        },
        mounts: doc.mounts.clone(),
        exit_code: (state.status == "exited").then_some(state.exit_code),
    }
}

/// `ps`: running containers (all with `all`), newest first, filtered.
pub fn list(engine: &Arc<Engine>, req: &ListContainersRequest) -> Result<Vec<ContainerSummary>> {
    check_filters(&req.filters)?;
    let now = crate::runtime::now_millis() / 1000;
    let all =
        req.all || req.limit.is_some() || req.filters.contains_key("status") || req.filters.contains_key("exited");
    let mut out = Vec::new();
    for facts in engine.all_container_facts()? {
        let doc = docker_inspect::container_json(&facts);
        let mut s = summary(&doc, now);
        if !all && s.state != "running" && s.state != "paused" {
            continue;
        }
        if !matches(&s, &req.filters) {
            continue;
        }
        if req.size {
            s.size_rw = Some(dir_size(std::path::Path::new(
                doc.graph_driver.data.get("UpperDir").map_or("", String::as_str),
            )));
        }
        // Sorted on the creation time to the millisecond: `Created` is in
        // seconds, and `ps -n 1` must tell apart containers made in one.
        let created = time::OffsetDateTime::parse(&doc.created, &time::format_description::well_known::Rfc3339)
            .map_or(0, |t| t.unix_timestamp_nanos());
        out.push((created, s));
    }
    out.sort_by(|(a_t, a), (b_t, b)| b_t.cmp(a_t).then_with(|| a.names.cmp(&b.names)));
    if let Some(n) = req.limit {
        out.truncate(n);
    }
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// Bytes of the regular files under `dir` (not following symlinks); 0 if absent.
fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, state: &str, labels: &[(&str, &str)]) -> ContainerSummary {
        ContainerSummary {
            id: name.into(),
            names: vec![format!("/{name}")],
            image: "busybox".into(),
            image_id: "sha256:abcdef0123".into(),
            state: state.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            exit_code: (state == "exited").then_some(3),
            network_settings: NetworkSummary {
                networks: [("n1".to_string(), EndpointSettings::default())].into(),
            },
            ..Default::default()
        }
    }

    fn f(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        m
    }

    #[test]
    fn filters_as_docker_combines_them() {
        let web = c("web", "running", &[("tier", "front")]);
        let job = c("job", "exited", &[("tier", "batch")]);
        assert!(matches(&web, &f(&[("label", "tier")])));
        assert!(matches(&web, &f(&[("label", "tier=front")])));
        assert!(!matches(&job, &f(&[("label", "tier=front")])));
        // Every label must match (compose's project + oneoff query).
        assert!(matches(&web, &f(&[("label", "tier=front"), ("label", "tier")])));
        assert!(!matches(&web, &f(&[("label", "tier=front"), ("label", "oneoff=True")])));
        // One key's values are alternatives; keys must all hold.
        assert!(matches(&job, &f(&[("status", "running"), ("status", "exited")])));
        assert!(!matches(&job, &f(&[("status", "exited"), ("label", "tier=front")])));
        assert!(matches(&web, &f(&[("name", "we")])));
        assert!(matches(&web, &f(&[("name", "^web$")])));
        assert!(!matches(&web, &f(&[("name", "^we$")])));
        assert!(matches(&job, &f(&[("exited", "3")])));
        assert!(!matches(&job, &f(&[("exited", "0")])));
        assert!(!matches(&web, &f(&[("exited", "3")])));
        assert!(matches(&web, &f(&[("ancestor", "busybox")])));
        assert!(matches(&web, &f(&[("ancestor", "abcdef")])));
        assert!(!matches(&web, &f(&[("ancestor", "alpine")])));
        assert!(matches(&web, &f(&[("network", "n1")])));
        assert!(!matches(&web, &f(&[("network", "n2")])));
        assert!(matches(&web, &f(&[("id", "we")])));
    }

    #[test]
    fn unknown_filters_and_bad_values_are_refused_by_name() {
        let err = check_filters(&f(&[("colour", "red")])).unwrap_err().to_string();
        assert!(err.contains("colour") && err.contains("label"), "{err}");
        let err = check_filters(&f(&[("status", "sleeping")])).unwrap_err().to_string();
        assert!(err.contains("sleeping") && err.contains("running"), "{err}");
        let err = check_filters(&f(&[("exited", "x")])).unwrap_err().to_string();
        assert!(err.contains("integer"), "{err}");
        check_filters(&f(&[("status", "paused"), ("exited", "137")])).unwrap();
    }

    #[test]
    fn durations_read_as_dockers() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
