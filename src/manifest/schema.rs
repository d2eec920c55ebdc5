//! JSON Schemas of whole documents, one per kind, generated from the Rust types
//! by schemars, so that editors (yaml-language-server) check manifests as they
//! are typed. `tests/schema.rs` keeps `schema/<kind>.json` equal to these.
//!
//! Draft-07 rather than 2020-12: it is the draft editors support best.
//!
//! The schemas accept what [`super::parse`] accepts. In particular a plain
//! number or boolean in a text field is text spelled as written (`user: 1000`,
//! `env: {PORT: 8080}`), as serde-saphyr reads YAML by the Rust type, so free
//! text fields also allow numbers and booleans here.

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use super::parse::API_VERSION;
use super::types::{ContainerSpec, ImageSpec, Kind, Metadata, NetworkSpec, VolumeSpec};

/// The schema of a document of `kind`: `apiVersion`, `kind`, `metadata` and
/// that kind's `spec`, nothing else.
pub fn document_schema(kind: Kind) -> Value {
    let mut generator = SchemaSettings::draft07().for_deserialize().into_generator();
    let metadata = generator.subschema_for::<Metadata>();
    let spec = match kind {
        Kind::Image => generator.subschema_for::<ImageSpec>(),
        Kind::Container => generator.subschema_for::<ContainerSpec>(),
        Kind::Network => generator.subschema_for::<NetworkSpec>(),
        Kind::Volume => generator.subschema_for::<VolumeSpec>(),
    };
    let mut definitions = serde_json::Value::Object(generator.take_definitions(true));
    widen_text(&mut definitions);

    // `parse` reads a missing `spec` as an empty one; only a Container has
    // required spec fields, so only there is `spec` itself required.
    let mut required = vec!["apiVersion", "kind", "metadata"];
    if kind == Kind::Container {
        required.push("spec");
    }
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": format!("berth {kind}"),
        "description": format!("A berth `{kind}` manifest document ({API_VERSION})."),
        "type": "object",
        "required": required,
        "properties": {
            "apiVersion": {
                "description": "Version of the manifest format.",
                "const": API_VERSION,
            },
            "kind": {
                "description": "Kind of the object; identity is (kind, name).",
                "const": kind.as_str(),
            },
            "metadata": metadata,
            "spec": spec,
        },
        "additionalProperties": false,
        "definitions": definitions,
    })
}

/// Lets every free text field (a `string` with no `enum`, `const`, `pattern`
/// or `format`) also hold a number or boolean; see the module doc.
fn widen_text(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let constrained = ["enum", "const", "pattern", "format"]
                .iter()
                .any(|k| map.contains_key(*k));
            if !constrained {
                match map.get_mut("type") {
                    Some(t @ Value::String(_)) if t == "string" => *t = json!(["string", "number", "boolean"]),
                    Some(Value::Array(types)) if types.iter().any(|t| t == "string") => {
                        for extra in ["number", "boolean"] {
                            if !types.iter().any(|t| t == extra) {
                                types.push(json!(extra));
                            }
                        }
                    }
                    _ => {}
                }
            }
            map.values_mut().for_each(widen_text);
        }
        Value::Array(items) => items.iter_mut().for_each(widen_text),
        _ => {}
    }
}
