//! `GET /events`: berth's event log (what `berth events` shows) as Docker's
//! event stream. Each of berth's reasons that has a Docker action becomes
//! one message of Docker's shape (`Type`, `Action`, `Actor`, `scope`,
//! `time`, `timeNano`, and for containers the legacy `status`, `id`,
//! `from`); the others (pulls under way, repairs, failures) have none in
//! Docker and are not sent. The log is polled: berth's event store is the
//! one record, and a client that asks `since` reads the same rows.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{parse_filters, DockerError, Result, Shared};
use crate::commands::{self, docker_inspect};
use crate::reconcile::Engine;
use crate::wire::Event;

type Q = Query<HashMap<String, String>>;

/// How often the log is read for new rows while a client follows it.
const POLL: Duration = Duration::from_millis(200);

/// Filters Docker's `events` takes that berth can apply.
const FILTERS: [&str; 7] = ["type", "event", "container", "image", "network", "volume", "label"];

/// One of Docker's event messages, before it is encoded.
#[derive(Debug, Clone, PartialEq)]
struct Message {
    typ: &'static str,
    action: String,
    id: String,
    attributes: BTreeMap<String, String>,
    time_ms: i64,
}

impl Message {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "Type": self.typ,
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time_ms.div_euclid(1000),
            "timeNano": i128::from(self.time_ms) * 1_000_000,
        });
        if self.typ == "container" {
            v["status"] = json!(self.action);
            v["id"] = json!(self.id);
            v["from"] = json!(self.attributes.get("image").cloned().unwrap_or_default());
        }
        v
    }
}

/// Docker's time parameter: unix seconds with an optional fraction (what
/// the CLI sends, `1700000000.000000000`) or RFC 3339; in milliseconds.
fn parse_time(key: &str, text: &str) -> Result<i64> {
    let bad = || {
        DockerError::BadRequest(format!(
            "invalid value for query parameter {key}: {text:?} is neither unix seconds nor an RFC 3339 time"
        ))
    };
    if let Some((secs, frac)) = text.split_once('.').or(Some((text, ""))) {
        if !secs.is_empty()
            && secs.bytes().all(|b| b.is_ascii_digit() || b == b'-')
            && frac.bytes().all(|b| b.is_ascii_digit())
        {
            let s: i64 = secs.parse().map_err(|_| bad())?;
            let ms: i64 = format!("{frac:0<3}")[..3].parse().map_err(|_| bad())?;
            return s.checked_mul(1000).and_then(|v| v.checked_add(ms)).ok_or_else(bad);
        }
    }
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| bad())?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The message berth's event stands for in Docker's stream, if any.
/// `image_of` names a container's image (empty when it is gone).
fn translate(e: &Event, image_of: &mut impl FnMut(&str) -> String) -> Vec<Message> {
    let mut attributes = BTreeMap::from([("name".to_string(), e.name.clone())]);
    let message = |typ: &'static str, action: &str, id: &str, attributes: BTreeMap<String, String>| Message {
        typ,
        action: action.to_string(),
        id: id.to_string(),
        attributes,
        time_ms: e.time,
    };
    match e.kind.to_ascii_lowercase().as_str() {
        "container" => {
            let image = image_of(&e.name);
            if !image.is_empty() {
                attributes.insert("image".into(), image);
            }
            let action = match e.reason.as_str() {
                "Created" => "create",
                "Started" => "start",
                "Exited" | "OOMKilled" => {
                    let code = e
                        .message
                        .strip_prefix("exited with code ")
                        .and_then(|rest| rest.split([' ', ';']).next())
                        .unwrap_or("0");
                    attributes.insert("exitCode".into(), code.to_string());
                    let die = message("container", "die", &e.name, attributes.clone());
                    if e.reason == "OOMKilled" {
                        let mut oom = die.clone();
                        oom.action = "oom".into();
                        oom.attributes.remove("exitCode");
                        return vec![oom, die];
                    }
                    return vec![die];
                }
                "Stopped" => "stop",
                "Killed" => {
                    let signal = e.message.strip_prefix("signal ").unwrap_or_default();
                    attributes.insert("signal".into(), signal.to_string());
                    "kill"
                }
                "Paused" => "pause",
                "Unpaused" => "unpause",
                "Renamed" => {
                    let old = e.message.strip_prefix("renamed from ").unwrap_or_default();
                    attributes.insert("oldName".into(), format!("/{old}"));
                    "rename"
                }
                "Updated" => "update",
                "Deleted" => "destroy",
                "Healthy" => "health_status: healthy",
                "Unhealthy" => "health_status: unhealthy",
                "Connected" | "Disconnected" => {
                    // Docker reports these as the network's.
                    let (action, prefix) = if e.reason == "Connected" {
                        ("connect", "to network/")
                    } else {
                        ("disconnect", "from network/")
                    };
                    let net = e
                        .message
                        .strip_prefix(prefix)
                        .and_then(|rest| rest.split_whitespace().next())
                        .unwrap_or_default();
                    let attrs = BTreeMap::from([
                        ("name".to_string(), net.to_string()),
                        ("type".to_string(), "bridge".to_string()),
                        ("container".to_string(), e.name.clone()),
                    ]);
                    return vec![message("network", action, net, attrs)];
                }
                _ => return Vec::new(),
            };
            vec![message("container", action, &e.name, attributes)]
        }
        "image" => {
            let action = match e.reason.as_str() {
                "Pulled" => "pull",
                "Loaded" => "load",
                "Imported" => "import",
                "Built" => "tag",
                "Deleted" => "delete",
                _ => return Vec::new(),
            };
            vec![message("image", action, &e.name, attributes)]
        }
        "network" => {
            let action = match e.reason.as_str() {
                "Created" => "create",
                "Deleted" => "destroy",
                _ => return Vec::new(),
            };
            attributes.insert("type".into(), "bridge".into());
            vec![message("network", action, &e.name, attributes)]
        }
        "volume" => {
            let action = match e.reason.as_str() {
                "Created" => "create",
                "Deleted" => "destroy",
                _ => return Vec::new(),
            };
            attributes.insert("driver".into(), "local".into());
            vec![message("volume", action, &e.name, attributes)]
        }
        _ => Vec::new(),
    }
}

/// Whether `m` passes Docker's filters: within a key any value, across
/// keys all.
fn wanted(m: &Message, filters: &BTreeMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(key, values)| {
        values.is_empty()
            || values.iter().any(|v| match key.as_str() {
                "type" => m.typ == v,
                "event" => m.action == *v || m.action.split(':').next() == Some(v.as_str()),
                "container" => {
                    (m.typ == "container" && (m.id == *v || m.attributes.get("name") == Some(v)))
                        || m.attributes.get("container") == Some(v)
                }
                "image" => {
                    (m.typ == "image" && m.id == *v)
                        || m.attributes
                            .get("image")
                            .is_some_and(|i| i == v || i.split(':').next() == Some(v.as_str()))
                }
                "network" => m.typ == "network" && (m.id == *v || m.attributes.get("name") == Some(v)),
                "volume" => m.typ == "volume" && m.id == *v,
                "label" => match v.split_once('=') {
                    Some((k, val)) => m.attributes.get(k).is_some_and(|have| have == val),
                    None => m.attributes.contains_key(v.as_str()),
                },
                _ => false,
            })
    })
}

/// What one stream keeps between reads of the log.
struct Follow {
    engine: Arc<Engine>,
    after: i64,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    filters: BTreeMap<String, Vec<String>>,
    images: HashMap<String, String>,
    pending: VecDeque<Message>,
}

impl Follow {
    /// Reads the rows after the last one seen into `pending`.
    fn read(&mut self) -> Result<()> {
        let rows = commands::query::events(&self.engine, self.after)?;
        let engine = self.engine.clone();
        let images = &mut self.images;
        let mut image_of = |name: &str| {
            images
                .entry(name.to_string())
                .or_insert_with(|| {
                    docker_inspect::container(&engine, name)
                        .ok()
                        .flatten()
                        .map(|c| c.config.image)
                        .unwrap_or_default()
                })
                .clone()
        };
        for row in rows {
            self.after = self.after.max(row.id);
            if self.since_ms.is_some_and(|s| row.time < s) || self.until_ms.is_some_and(|u| row.time > u) {
                continue;
            }
            for m in translate(&row, &mut image_of) {
                if wanted(&m, &self.filters) {
                    self.pending.push_back(m);
                }
            }
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// `GET /events?since=&until=&filters=`: the messages since `since` (none
/// from before the call without it), then new ones as they come, until
/// `until` passes or the client goes.
pub async fn events(State(state): State<Shared>, Query(q): Q) -> Result<Response> {
    let time = |key: &str| -> Result<Option<i64>> {
        match q.get(key).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(t) => parse_time(key, t).map(Some),
        }
    };
    let (since_ms, until_ms) = (time("since")?, time("until")?);
    let filters = parse_filters(&q)?;
    if let Some(key) = filters.keys().find(|k| !FILTERS.contains(&k.as_str())) {
        return Err(DockerError::unsupported(
            format!("filters.{key}"),
            format!("berth filters events by {}", FILTERS.join(", ")),
        ));
    }
    if let Some(bad) = filters.get("type").into_iter().flatten().find(|t| {
        !matches!(
            t.as_str(),
            "container"
                | "image"
                | "network"
                | "volume"
                | "daemon"
                | "plugin"
                | "node"
                | "service"
                | "secret"
                | "config"
        )
    }) {
        return Err(DockerError::BadRequest(format!("invalid filter 'type={bad}'")));
    }
    let engine = state.engine.clone();
    // Without `since`, only what comes after this call.
    let after = match since_ms {
        Some(_) => 0,
        None => commands::query::events(&engine, 0)?.last().map_or(0, |e| e.id),
    };
    let mut follow = Follow {
        engine,
        after,
        since_ms,
        until_ms,
        filters,
        images: HashMap::new(),
        pending: VecDeque::new(),
    };
    follow.read()?;
    let body = futures_util::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(m) = f.pending.pop_front() {
                let mut line = serde_json::to_vec(&m.to_json()).unwrap_or_default();
                line.push(b'\n');
                return Some((Ok::<_, Infallible>(Bytes::from(line)), f));
            }
            if f.until_ms.is_some_and(|u| now_ms() > u) {
                return None;
            }
            tokio::time::sleep(POLL).await;
            if f.read().is_err() {
                return None;
            }
        }
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, name: &str, reason: &str, message: &str) -> Event {
        Event {
            id: 1,
            time: 1_700_000_000_123,
            kind: kind.into(),
            name: name.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn times_are_unix_seconds_with_a_fraction_or_rfc3339() {
        assert_eq!(parse_time("since", "1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("since", "1700000000.250000000").unwrap(), 1_700_000_000_250);
        assert_eq!(parse_time("until", "2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
        for bad in ["soon", "1.2.3", "", "12a"] {
            let e = parse_time("until", bad).unwrap_err().to_string();
            assert!(e.contains("parameter until"), "{bad}: {e}");
        }
    }

    #[test]
    fn berths_reasons_become_dockers_actions() {
        let mut image = |_: &str| "busybox:latest".to_string();
        let die = translate(
            &event("Container", "web", "Exited", "exited with code 3; restarting in 100 ms"),
            &mut image,
        );
        assert_eq!(die.len(), 1);
        assert_eq!(die[0].action, "die");
        assert_eq!(die[0].attributes["exitCode"], "3");
        let v = die[0].to_json();
        assert_eq!(v["status"], "die");
        assert_eq!(v["from"], "busybox:latest");
        assert_eq!(v["time"], 1_700_000_000);
        assert_eq!(v["timeNano"], 1_700_000_000_123_000_000i64);
        let oom = translate(
            &event("Container", "web", "OOMKilled", "exited with code 137 (OOMKilled)"),
            &mut image,
        );
        assert_eq!(
            oom.iter().map(|m| m.action.as_str()).collect::<Vec<_>>(),
            ["oom", "die"]
        );
        let net = translate(
            &event("Container", "web", "Connected", "to network/front as web"),
            &mut image,
        );
        assert_eq!(
            (net[0].typ, net[0].action.as_str(), net[0].id.as_str()),
            ("network", "connect", "front")
        );
        assert!(translate(&event("Container", "web", "NatFailed", "x"), &mut image).is_empty());
        assert_eq!(
            translate(&event("Volume", "v", "Deleted", "x"), &mut image)[0].action,
            "destroy"
        );
    }

    #[test]
    fn filters_match_within_a_key_by_any_and_across_keys_by_all() {
        let mut image = |_: &str| "busybox:latest".to_string();
        let m = &translate(&event("Container", "web", "Started", "pid 1"), &mut image)[0];
        let f = |pairs: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect()
        };
        assert!(wanted(m, &f(&[("container", &["web"]), ("event", &["start", "die"])])));
        assert!(wanted(m, &f(&[("image", &["busybox"])])));
        assert!(!wanted(m, &f(&[("container", &["web"]), ("type", &["network"])])));
        assert!(!wanted(m, &f(&[("container", &["db"])])));
    }
}
