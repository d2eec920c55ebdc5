//! The JSON Schemas in `schema/` are generated from the Rust types and must
//! stay equal to `berth::manifest::schemas()`; the example manifests must be
//! valid against them. `api/openapi.json` must equal the route table the
//! daemon is built from. Needs no root.
//!
//! To regenerate the files after changing the types:
//! `BERTH_UPDATE_SCHEMA=1 cargo test --test schema`.

use std::fs;
use std::path::{Path, PathBuf};

use berth::manifest::{schemas, Kind};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema_path(kind: Kind) -> PathBuf {
    repo()
        .join("schema")
        .join(format!("{}.json", kind.as_str().to_ascii_lowercase()))
}

fn pretty(schema: &serde_json::Value) -> String {
    serde_json::to_string_pretty(schema).expect("a JSON value serializes") + "\n"
}

#[test]
fn schema_files_match_the_rust_types() {
    let update = std::env::var_os("BERTH_UPDATE_SCHEMA").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (kind, schema) in schemas() {
        let path = schema_path(kind);
        let want = pretty(&schema);
        if update {
            fs::create_dir_all(path.parent().expect("schema files live in a directory")).expect("create schema/");
            // Write then rename, so an interrupted run never leaves half a file.
            let tmp = path.with_extension("json.tmp");
            fs::write(&tmp, &want).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
            fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
        } else if fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with the Rust types: {}\nregenerate with: BERTH_UPDATE_SCHEMA=1 cargo test --test schema",
        stale.join(", ")
    );
}

#[test]
fn the_openapi_document_matches_the_served_routes() {
    let path = repo().join("api/openapi.json");
    let want = pretty(&berth::api::openapi::document());
    if std::env::var_os("BERTH_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().expect("in a directory")).expect("create api/");
        fs::write(&path, &want).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    assert!(
        fs::read_to_string(&path).ok().as_deref() == Some(want.as_str()),
        "{} is out of date with src/api/openapi.rs; regenerate with: BERTH_UPDATE_SCHEMA=1 cargo test --test schema",
        path.display()
    );
    // Every request body the CLI sends is valid against the document.
    let doc: serde_json::Value = serde_json::from_str(&want).unwrap();
    let request_schema = |path: &str| {
        let mut schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"].clone();
        // Resolve the one level of $ref the generator emits, with its components.
        let name = schema["$ref"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        schema = doc["components"]["schemas"][&name].clone();
        schema["components"] = doc["components"].clone();
        schema
    };
    let samples = [
        (
            "/v1/apply",
            serde_json::to_value(berth::wire::ApplyRequest {
                base_dir: None,
                source_id: "apply:/srv".into(),
                sources: vec![berth::manifest::Source {
                    file: "a.yaml".into(),
                    text: "x".into(),
                }],
                prune: true,
                dry_run: false,
            })
            .unwrap(),
        ),
        (
            "/v1/run",
            serde_json::to_value(berth::wire::RunRequest {
                spec: berth::manifest::ContainerSpec {
                    image: "busybox".into(),
                    ..Default::default()
                },
                rm: true,
                ..Default::default()
            })
            .unwrap(),
        ),
        (
            "/v1/wait",
            serde_json::to_value(berth::wire::WaitRequest {
                keys: vec!["container/web".into()],
                timeout_ms: 5,
            })
            .unwrap(),
        ),
        (
            "/v1/delete",
            serde_json::to_value(berth::wire::DeleteRequest {
                keys: vec!["container/web".into()],
                ..Default::default()
            })
            .unwrap(),
        ),
    ];
    for (path, body) in samples {
        let schema = request_schema(path);
        let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(validator.is_valid(&body), "{path}: {body} does not match the document");
        assert!(
            !validator.is_valid(&serde_json::json!({"unexpected": 1})),
            "{path}: the schema checks something"
        );
    }
}

/// Every `*.yaml` / `*.yml` file under `dir`, recursively, in a stable order.
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(path);
        }
    }
}

#[test]
fn example_manifests_are_valid_against_the_schema_of_their_kind() {
    let dir = repo().join("examples").join("manifests");
    assert!(
        dir.is_dir(),
        "{} is missing: it holds the example manifests",
        dir.display()
    );
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    assert!(!files.is_empty(), "no *.yaml or *.yml files under {}", dir.display());

    let validators: Vec<(Kind, jsonschema::Validator)> = schemas()
        .into_iter()
        .map(|(kind, schema)| {
            let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{kind} schema: {e}"));
            (kind, validator)
        })
        .collect();

    let mut problems = Vec::new();
    let mut documents = 0;
    for file in &files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        // Read booleans as berth does: only `true` and `false`.
        let options = serde_saphyr::options! { strict_booleans: true };
        let docs: Vec<serde_json::Value> = match serde_saphyr::from_multiple_with_options(&text, options) {
            Ok(docs) => docs,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        for (i, doc) in docs.iter().enumerate() {
            documents += 1;
            let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
            let Some((_, validator)) = validators.iter().find(|(k, _)| k.as_str() == kind) else {
                problems.push(format!("{} document {}: unknown kind {kind:?}", file.display(), i + 1));
                continue;
            };
            for error in validator.iter_errors(doc) {
                problems.push(format!(
                    "{} document {} at {}: {error}",
                    file.display(),
                    i + 1,
                    error.instance_path
                ));
            }
        }
    }
    assert!(
        documents > 0,
        "the example files under {} hold no documents",
        dir.display()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
