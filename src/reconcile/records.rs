//! Typed access to the store's rows: the one place that decodes them. A row
//! that does not decode is a [`ReconcileError::CorruptRow`] naming it, never a
//! silent default.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::{ReconcileError, Result};
use crate::manifest::{ContainerSpec, Kind, Object, RestartPolicy, Spec};
use crate::plan::ObjectKey;
use crate::runtime::{ExitRecord, RunRecord};
use crate::store::{LiveRecord, NewObject, StoredObject};

/// What berth records about a container it made, beside its spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerInfo {
    pub restarts: u32,
    /// Doubles the restart delay; reset when a run lasted long enough.
    pub backoff_step: u32,
    pub last_exit: Option<ExitRecord>,
    pub next_restart_at: Option<i64>,
    /// Why the last create/start failed.
    pub failure: Option<String>,
    pub started_at: Option<i64>,
    pub run: Option<RunRecord>,
    /// The bare imported tree an older berth ran it on; never set now, kept
    /// so such rows still decode.
    pub layer: Option<PathBuf>,
    /// The image it runs on (`rmi` and `image prune` keep it while this lives).
    pub image_id: Option<String>,
    /// The signal that stops it (the image's StopSignal), SIGTERM if unset.
    pub stop_signal: Option<String>,
    /// The image's HEALTHCHECK, when the spec has no `healthcheck`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_healthcheck: Option<crate::manifest::Healthcheck>,
    /// Stopped or paused by hand (`stop`, `kill`, `pause`): reconcile leaves
    /// it so until `start`/`unpause`, or an apply that changes its spec.
    pub hold: Option<Hold>,
    /// The image's labels under the manifest's (inspect shows them).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The image's `ExposedPorts` (`80/tcp`), for inspect.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    /// Runs in a row that exited non-zero (`restartMaxRetries` counts them);
    /// reset by an exit 0 and by a start that is not a policy restart.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_runs: u32,
    /// The ports published for this run: the spec's, with ephemeral host
    /// ports (`host: 0`, `publishAll`) chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<crate::manifest::PortMapping>,
    /// Not serving: a start-first replacement not yet healthy, or the old
    /// container it took over from. Its ports are left out of NAT and its
    /// names out of DNS and peers' /etc/hosts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpublished: bool,
    /// The spec hash of a start-first rollout that failed: not tried again
    /// until the spec changes (see `plan::ObservedObject::held_back`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_back: Option<String>,
    /// How the last start-first rollout went, for `describe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A state a person put a container in, which reconcile does not undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Hold {
    Stopped,
    Paused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub digest: String,
    pub dir: PathBuf,
    /// The image's id (its config digest); none only in rows of an older
    /// berth, whose imports were bare trees (imported again when seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub path: PathBuf,
}

/// A network as made (typed; defined beside the planner that reads it).
pub use crate::network::NetworkInfo;

/// The kind-specific part of a live record.
// Decoded one row at a time, never kept in bulk: boxing the container's
// variant would only add an allocation and noise to every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum LiveInfo {
    Container(ContainerInfo),
    Image(ImageInfo),
    Volume(VolumeInfo),
    Network(NetworkInfo),
}

/// A desired object with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub object: Object,
    pub source: String,
    /// Why it is kept although its source dropped it.
    pub held: Option<String>,
}

impl Desired {
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(self.object.kind(), self.object.name())
    }
}

/// Something berth made, and from which spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub key: ObjectKey,
    pub spec_hash: String,
    pub spec: Spec,
    pub info: LiveInfo,
    pub created_at: i64,
}

impl Live {
    pub fn container_spec(&self) -> Option<&ContainerSpec> {
        match &self.spec {
            Spec::Container(c) => Some(c),
            _ => None,
        }
    }

    pub fn container_info(&self) -> Option<&ContainerInfo> {
        match &self.info {
            LiveInfo::Container(i) => Some(i),
            _ => None,
        }
    }

    pub fn network_info(&self) -> Option<&NetworkInfo> {
        match &self.info {
            LiveInfo::Network(i) => Some(i),
            _ => None,
        }
    }

    /// The spec's policy and its `restartMaxRetries`.
    pub fn restart_rule(&self) -> (RestartPolicy, Option<u32>) {
        self.container_spec()
            .map(|c| (c.restart_policy, c.restart_max_retries))
            .unwrap_or((RestartPolicy::Never, None))
    }

    /// The policy in force now (`never` once on-failure's retries are spent).
    pub fn restart_policy(&self) -> RestartPolicy {
        let (policy, max) = self.restart_rule();
        let failed = self.container_info().map(|i| i.failed_runs).unwrap_or(0);
        super::policy::in_force(policy, max, failed)
    }
}

fn corrupt(
    table: &'static str,
    kind: Kind,
    name: &str,
    field: &'static str,
) -> impl FnOnce(serde_json::Error) -> ReconcileError {
    let name = name.to_string();
    move |source| ReconcileError::CorruptRow {
        table,
        kind: kind.as_str().to_ascii_lowercase(),
        name,
        field,
        source,
    }
}

pub fn decode_desired(row: StoredObject) -> Result<Desired> {
    let object: Object = serde_json::from_str(&row.body).map_err(corrupt("objects", row.kind, &row.name, "body"))?;
    Ok(Desired {
        object,
        source: row.source,
        held: row.held,
    })
}

pub fn decode_live(row: LiveRecord) -> Result<Live> {
    let (kind, name) = (row.kind, row.name.as_str());
    let spec: Spec = serde_json::from_str(&row.spec).map_err(corrupt("live", kind, name, "spec"))?;
    let info = match kind {
        Kind::Container => {
            LiveInfo::Container(serde_json::from_str(&row.info).map_err(corrupt("live", kind, name, "info"))?)
        }
        Kind::Image => LiveInfo::Image(serde_json::from_str(&row.info).map_err(corrupt("live", kind, name, "info"))?),
        Kind::Volume => LiveInfo::Volume(serde_json::from_str(&row.info).map_err(corrupt("live", kind, name, "info"))?),
        Kind::Network => {
            LiveInfo::Network(serde_json::from_str(&row.info).map_err(corrupt("live", kind, name, "info"))?)
        }
    };
    Ok(Live {
        key: ObjectKey::new(kind, row.name),
        spec_hash: row.spec_hash,
        spec,
        info,
        created_at: row.created_at,
    })
}

fn info_json(info: &LiveInfo) -> String {
    let value = match info {
        LiveInfo::Container(i) => serde_json::to_value(i),
        LiveInfo::Image(i) => serde_json::to_value(i),
        LiveInfo::Volume(i) => serde_json::to_value(i),
        LiveInfo::Network(i) => serde_json::to_value(i),
    };
    // These types are plain data: serializing them cannot fail.
    value.map(|v| v.to_string()).unwrap_or_else(|_| "{}".into())
}

pub fn encode_live(obj: &Object, hash: &str, info: &LiveInfo, created_at: i64) -> LiveRecord {
    LiveRecord {
        kind: obj.kind(),
        name: obj.name().into(),
        spec_hash: hash.into(),
        spec: serde_json::to_string(&obj.spec).unwrap_or_default(),
        info: info_json(info),
        created_at,
    }
}

pub fn encode_info(info: &LiveInfo) -> String {
    info_json(info)
}

/// A stored health record as the engine keeps it (see `health.rs`).
pub fn decode_health(name: &str, row: crate::store::HealthRecord) -> Result<super::health::HealthState> {
    use super::health::{HealthState, HealthStatus};
    let status = match row.status.as_str() {
        "starting" => HealthStatus::Starting,
        "healthy" => HealthStatus::Healthy,
        "unhealthy" => HealthStatus::Unhealthy,
        other => {
            let err = serde::de::Error::custom(format!("unknown health status {other:?}"));
            return Err(corrupt("health", Kind::Container, name, "status")(err));
        }
    };
    let log = serde_json::from_str(&row.log).map_err(corrupt("health", Kind::Container, name, "log"))?;
    Ok(HealthState {
        init_pid: row.init_pid,
        init_start: row.init_start,
        status,
        failing_streak: row.failing_streak,
        log,
    })
}

pub fn encode_health(state: &super::health::HealthState) -> crate::store::HealthRecord {
    crate::store::HealthRecord {
        init_pid: state.init_pid,
        init_start: state.init_start,
        status: state.status.as_str().into(),
        failing_streak: state.failing_streak,
        log: serde_json::to_string(&state.log).unwrap_or_else(|_| "[]".into()),
    }
}

pub fn encode_desired(obj: &Object) -> NewObject {
    NewObject {
        kind: obj.kind(),
        name: obj.name().into(),
        body: serde_json::to_string(obj).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_row(info: &str) -> LiveRecord {
        LiveRecord {
            kind: Kind::Container,
            name: "web".into(),
            spec_hash: "h".into(),
            spec: serde_json::to_string(&Spec::Container(Default::default())).unwrap(),
            info: info.into(),
            created_at: 0,
        }
    }

    #[test]
    fn a_corrupt_live_row_is_an_error_naming_the_row_and_field() {
        let err = decode_live(live_row("{not json")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("live row container/web"), "{msg}");
        assert!(msg.contains("(info)"), "{msg}");
    }

    #[test]
    fn container_info_missing_newer_fields_decodes_with_their_defaults() {
        let live = decode_live(live_row(r#"{"restarts": 2}"#)).unwrap();
        assert_eq!(live.container_info().unwrap().restarts, 2);
    }

    fn network_row(info: &str) -> LiveRecord {
        LiveRecord {
            kind: Kind::Network,
            name: "front".into(),
            spec_hash: "h".into(),
            spec: serde_json::to_string(&Spec::Network(Default::default())).unwrap(),
            info: info.into(),
            created_at: 0,
        }
    }

    #[test]
    fn a_network_row_of_an_older_berth_with_string_addresses_reads_typed_and_writes_back_the_same() {
        // As berth wrote it when subnet, gateway and ipRange were strings.
        let old = r#"{"bridge":"bb1a2b3c4d5e6f","subnet":"10.77.3.0/24","gateway":"10.77.3.1","internal":true,"mtu":null,"ip_range":"10.77.3.16/28"}"#;
        let live = decode_live(network_row(old)).unwrap();
        let info = live.network_info().unwrap();
        assert_eq!(info.subnet, crate::network::Subnet::new([10, 77, 3, 0].into(), 24));
        assert_eq!(info.gateway, std::net::Ipv4Addr::new(10, 77, 3, 1));
        assert_eq!(info.ip_range.map(|r| r.prefix), Some(28));
        assert!(info.internal);
        // Written back, the row has the same shape, so an older berth reads it.
        let again: serde_json::Value = serde_json::from_str(&encode_info(&live.info)).unwrap();
        assert_eq!(again, serde_json::from_str::<serde_json::Value>(old).unwrap());
        // Fields added later default.
        let oldest = r#"{"bridge":"bb1","subnet":"10.77.0.0/24","gateway":"10.77.0.1"}"#;
        let live = decode_live(network_row(oldest)).unwrap();
        assert_eq!(live.network_info().unwrap().mtu, None);
    }

    #[test]
    fn a_network_row_whose_subnet_or_gateway_is_not_an_address_is_an_error_naming_it() {
        for bad in [
            r#"{"bridge":"bb1","subnet":"10.77.0.0","gateway":"10.77.0.1"}"#,
            r#"{"bridge":"bb1","subnet":"10.77.0.1/24","gateway":"10.77.0.1"}"#,
            r#"{"bridge":"bb1","subnet":"10.77.0.0/24","gateway":"gw"}"#,
            r#"{"bridge":"bb1","subnet":"10.77.0.0/24","gateway":"10.77.0.1","ip_range":"x"}"#,
        ] {
            let msg = decode_live(network_row(bad)).unwrap_err().to_string();
            assert!(msg.contains("live row network/front"), "{bad}: {msg}");
            assert!(msg.contains("(info)"), "{bad}: {msg}");
        }
    }

    #[test]
    fn a_corrupt_desired_body_names_the_object() {
        let row = StoredObject {
            kind: Kind::Image,
            name: "busybox".into(),
            source: "s".into(),
            body: "[]".into(),
            revision: 1,
            updated_at: 0,
            held: None,
        };
        let msg = decode_desired(row).unwrap_err().to_string();
        assert!(msg.contains("objects row image/busybox"), "{msg}");
    }
}
