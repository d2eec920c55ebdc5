//! Spec hashes: the fingerprint a live object carries of the spec it was made
//! from. Equal hashes mean "already as desired"; a different hash means replace.
//!
//! The hash is the SHA-256 of a canonical JSON text (object keys sorted at every
//! level, no whitespace), so it does not depend on struct field order, on
//! serde_json's `preserve_order` feature, or on the order of the desired set.
//! Metadata (labels) and origin are left out: they do not change the runtime
//! object, so editing them must not restart anything.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ObjectKey;
use crate::manifest::{ContainerSpec, Kind, Object, Spec};

/// The stable hash of each desired object, as 64 lower-case hex digits.
///
/// A container's hash covers its own spec and the hashes of the Image it runs
/// and the Volumes it mounts (those that are in `desired`), so a changed image
/// volume or network spec replaces the containers that use it (a network made
/// again has a new bridge, maybe a new subnet). `dependsOn` containers are not
/// covered: changing them reorders or recreates those objects, not the container.
///
/// Keys are assumed unique (`manifest::validate` rejects duplicates); if one
/// repeats, the later object wins, as a later document would on apply.
pub fn spec_hashes(desired: &[Object]) -> BTreeMap<ObjectKey, String> {
    let by_key: BTreeMap<ObjectKey, &Object> = desired
        .iter()
        .map(|o| (ObjectKey::new(o.kind(), o.name()), o))
        .collect();

    // Images, volumes and networks first: containers' hashes are built on them.
    let mut hashes: BTreeMap<ObjectKey, String> = by_key
        .iter()
        .filter(|(key, _)| key.kind != Kind::Container)
        .map(|(key, o)| (key.clone(), sha256_hex(&canonical_json(&spec_value(&o.spec)))))
        .collect();

    for (key, o) in &by_key {
        let Spec::Container(c) = &o.spec else { continue };
        let uses: serde_json::Map<String, Value> = hashed_inputs(c)
            .into_iter()
            .filter_map(|dep| {
                let h = hashes.get(&dep)?;
                Some((dep.to_string(), Value::String(h.clone())))
            })
            .collect();
        let doc = serde_json::json!({ "spec": spec_value(&o.spec), "uses": uses });
        let h = sha256_hex(&canonical_json(&doc));
        hashes.insert(key.clone(), h);
    }
    hashes
}

/// Objects whose content is baked into a container made from them, and so
/// into its hash: its image, the named volumes it mounts and the networks it joins.
pub(crate) fn hashed_inputs(spec: &ContainerSpec) -> BTreeSet<ObjectKey> {
    let mut keys = BTreeSet::new();
    keys.insert(ObjectKey::new(Kind::Image, spec.image.as_str()));
    keys.extend(spec.networks.iter().map(|n| ObjectKey::new(Kind::Network, n.name())));
    for m in &spec.volumes {
        if let Some(v) = &m.volume {
            keys.insert(ObjectKey::new(Kind::Volume, v.as_str()));
        }
    }
    keys
}

/// Everything that must be in place before a container starts: its hashed
/// inputs, the networks it joins and the containers it `dependsOn`.
/// (`network: host | none` is a mode, not a Network object.)
pub(crate) fn prerequisites(spec: &ContainerSpec) -> BTreeSet<ObjectKey> {
    let mut keys = hashed_inputs(spec);
    // `container:NAME` joins NAME's namespace, which must exist first.
    // So do `pid` and `ipc: container:NAME`.
    for mode in [&spec.network, &spec.pid, &spec.ipc] {
        if let Some(peer) = mode.as_deref().and_then(|m| m.strip_prefix("container:")) {
            keys.insert(ObjectKey::new(Kind::Container, peer));
        }
    }
    keys.extend(
        spec.depends_on
            .iter()
            .map(|d| ObjectKey::new(Kind::Container, d.name.as_str())),
    );
    keys
}

/// A spec as a JSON value: `{"kind": "Container", "spec": {...}}`, so that
/// diff paths read `spec.resources.memory` as in the manifest.
pub(crate) fn spec_value(spec: &Spec) -> Value {
    // Serializing these types cannot fail: every map key is a string and
    // every quantity serializes to a string or a finite number.
    serde_json::to_value(spec).expect("manifest specs serialize to JSON")
}

/// JSON text with object keys sorted at every level and no whitespace.
fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ImageSpec, Memory, NetworkSpec, Resources, VolumeMount, VolumeSpec};
    use crate::plan::testing::obj;

    fn stack(import: &str, volume_driver: Option<&str>, subnet: &str) -> Vec<Object> {
        vec![
            obj(
                "busybox",
                Spec::Image(ImageSpec {
                    import: Some(import.into()),
                    ..Default::default()
                }),
            ),
            obj(
                "data",
                Spec::Volume(VolumeSpec {
                    driver: volume_driver.map(Into::into),
                    ..Default::default()
                }),
            ),
            obj(
                "backend",
                Spec::Network(NetworkSpec {
                    subnet: Some(subnet.into()),
                    ..Default::default()
                }),
            ),
            obj(
                "web",
                Spec::Container(ContainerSpec {
                    image: "busybox".into(),
                    networks: vec!["backend".into()],
                    volumes: vec![VolumeMount {
                        volume: Some("data".into()),
                        path: Some("/data".into()),
                        ..Default::default()
                    }],
                    resources: Some(Resources {
                        memory: Some(Memory(64 << 20)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            ),
        ]
    }

    fn hash_of(hashes: &BTreeMap<ObjectKey, String>, kind: Kind, name: &str) -> String {
        hashes[&ObjectKey::new(kind, name)].clone()
    }

    #[test]
    fn hashes_are_full_sha256_hex() {
        let hashes = spec_hashes(&stack("/a.tar", None, "10.0.0.0/24"));
        assert_eq!(hashes.len(), 4);
        for h in hashes.values() {
            assert_eq!(h.len(), 64);
            assert!(h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn hashes_do_not_depend_on_the_order_of_the_desired_set() {
        let objects = stack("/a.tar", None, "10.0.0.0/24");
        let mut reversed = objects.clone();
        reversed.reverse();
        assert_eq!(spec_hashes(&objects), spec_hashes(&reversed));
    }

    #[test]
    fn labels_and_origin_do_not_change_the_hash() {
        let objects = stack("/a.tar", None, "10.0.0.0/24");
        let mut relabelled = objects.clone();
        for o in &mut relabelled {
            o.metadata.labels.insert("app".into(), "shop".into());
            o.origin.file = "elsewhere.yaml".into();
            o.origin.line = 7;
        }
        assert_eq!(spec_hashes(&objects), spec_hashes(&relabelled));
    }

    #[test]
    fn a_changed_image_changes_the_hash_of_containers_using_it() {
        let before = spec_hashes(&stack("/a.tar", None, "10.0.0.0/24"));
        let after = spec_hashes(&stack("/b.tar", None, "10.0.0.0/24"));
        assert_ne!(
            hash_of(&before, Kind::Image, "busybox"),
            hash_of(&after, Kind::Image, "busybox")
        );
        assert_ne!(
            hash_of(&before, Kind::Container, "web"),
            hash_of(&after, Kind::Container, "web")
        );
        assert_eq!(
            hash_of(&before, Kind::Volume, "data"),
            hash_of(&after, Kind::Volume, "data")
        );
    }

    #[test]
    fn a_changed_volume_changes_the_hash_of_containers_mounting_it() {
        let before = spec_hashes(&stack("/a.tar", None, "10.0.0.0/24"));
        let after = spec_hashes(&stack("/a.tar", Some("local"), "10.0.0.0/24"));
        assert_ne!(
            hash_of(&before, Kind::Container, "web"),
            hash_of(&after, Kind::Container, "web")
        );
    }

    #[test]
    fn a_changed_network_changes_the_hash_of_containers_joining_it() {
        let before = spec_hashes(&stack("/a.tar", None, "10.0.0.0/24"));
        let after = spec_hashes(&stack("/a.tar", None, "10.1.0.0/24"));
        assert_ne!(
            hash_of(&before, Kind::Network, "backend"),
            hash_of(&after, Kind::Network, "backend")
        );
        assert_ne!(
            hash_of(&before, Kind::Container, "web"),
            hash_of(&after, Kind::Container, "web")
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": {"z": 1, "a": [ {"y": true, "x": null} ]}, "a": "s"});
        assert_eq!(canonical_json(&v), r#"{"a":"s","b":{"a":[{"x":null,"y":true}],"z":1}}"#);
    }
}
