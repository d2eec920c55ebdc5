//! `volume create|ls|inspect|rm|prune`, as Docker's: Volume objects seen
//! through the same API as `apply`, `get`, `describe` and `delete`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::bail;

use crate::cli::args::{DeleteArgs, DescribeArgs, Global, VolumeCmd, VolumeCreateArgs, VolumeLsArgs};
use crate::cli::client;
use crate::manifest::Spec;

use crate::wire::{ApplyRequest, ApplyResponse, ObjectView};

/// A `volume ls -f` filter, as Docker's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    Dangling(bool),
    Label(String, Option<String>),
    Name(String),
    Driver(String),
}

fn parse_filter(text: &str) -> anyhow::Result<Filter> {
    let Some((key, value)) = text.split_once('=') else {
        bail!("filter {text:?}: expected KEY=VALUE (dangling, label, name, driver)");
    };
    Ok(match key {
        "dangling" => match value {
            "true" | "1" => Filter::Dangling(true),
            "false" | "0" => Filter::Dangling(false),
            _ => bail!("filter {text:?}: dangling is true or false"),
        },
        "label" => match value.split_once('=') {
            Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
            None => Filter::Label(value.to_string(), None),
        },
        "name" => Filter::Name(value.to_string()),
        "driver" => Filter::Driver(value.to_string()),
        _ => bail!("filter {text:?}: berth filters volumes by dangling, label, name and driver"),
    })
}

/// Whether volume `v` passes `f`; `used` are the volumes containers mount.
fn passes(v: &ObjectView, f: &Filter, used: &BTreeSet<String>) -> bool {
    let labels = &v.labels;
    match f {
        // An anonymous volume (no spec of its own) belongs to its container.
        Filter::Dangling(d) => (v.spec.is_some() && !used.contains(&v.name)) == *d,
        Filter::Label(k, want) => match (labels.get(k), want) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        },
        Filter::Name(part) => v.name.contains(part.as_str()),
        Filter::Driver(d) => d == "local",
    }
}

/// The Volume document `volume create` applies, as JSON (which the
/// manifest reader takes, being YAML).
fn volume_document(name: &str, args: &VolumeCreateArgs) -> anyhow::Result<serde_json::Value> {
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("--label {l:?}: expected KEY=VALUE");
        };
        labels.insert(k.to_string(), v.to_string());
    }
    let mut opts = BTreeMap::new();
    for o in &args.opts {
        let Some((k, v)) = o.split_once('=') else {
            bail!("-o {o:?}: expected KEY=VALUE (type, device, o)");
        };
        if opts.insert(k.to_string(), v.to_string()).is_some() {
            bail!("-o {o:?}: `{k}` is given twice");
        }
    }
    let mut spec = serde_json::Map::new();
    if let Some(d) = &args.driver {
        spec.insert("driver".into(), d.clone().into());
    }
    if !opts.is_empty() {
        spec.insert("driverOpts".into(), serde_json::to_value(opts)?);
    }
    Ok(serde_json::json!({
        "apiVersion": crate::manifest::API_VERSION,
        "kind": "Volume",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }))
}

/// A name for `volume create` without one: 32 hex digits (Docker's are 64,
/// which berth keeps for anonymous volumes).
fn random_name() -> String {
    let mut bytes = [0u8; 16];
    if getrandom_fill(&mut bytes).is_err() {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (n ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn getrandom_fill(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

async fn create(g: &Global, args: VolumeCreateArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.clone().unwrap_or_else(random_name);
    if !crate::manifest::is_dns_label(&name) {
        bail!(
            "invalid volume name {name:?}: a name is 1 to 63 lower-case letters, digits and `-`, \
             starting and ending with a letter or digit"
        );
    }
    let doc = volume_document(&name, &args)?;
    let req = ApplyRequest {
        source_id: crate::commands::run::volume_source(&name),
        sources: vec![crate::manifest::Source {
            file: format!("<volume create {name}>"),
            text: serde_json::to_string_pretty(&doc)?,
        }],
        prune: false,
        dry_run: false,
        base_dir: None,
    };
    let resp: ApplyResponse = client(g, true).post("/v1/apply", &req).await?;
    if !resp.errors.is_empty() {
        let msg: Vec<String> = resp
            .errors
            .iter()
            .map(|d| format!("{}: {}", d.field, d.message))
            .collect();
        bail!("volume {name}: {}", msg.join("; "));
    }
    if let Some(f) = resp.failed.first() {
        bail!("volume {name}: {f}");
    }
    println!("{name}");
    Ok(ExitCode::SUCCESS)
}

async fn ls(g: &Global, args: VolumeLsArgs) -> anyhow::Result<ExitCode> {
    let filters: Vec<Filter> = args
        .filters
        .iter()
        .map(|f| parse_filter(f))
        .collect::<anyhow::Result<_>>()?;
    let c = client(g, true);
    let mut volumes: Vec<ObjectView> = c.get("/v1/objects?kind=volume").await?;
    if !filters.is_empty() {
        let containers: Vec<ObjectView> = c.get("/v1/objects?kind=container").await?;
        let used = used(containers.iter().filter_map(|c| c.spec.as_ref()));
        volumes.retain(|v| filters.iter().all(|f| passes(v, f, &used)));
    }
    if args.quiet {
        for v in &volumes {
            println!("{}", v.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    crate::cli::output::print_list(&volumes, None, "No objects found.", |wide| {
        super::get::objects_table(&volumes, wide, false)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Volumes some container's spec (as `get` shows it) mounts.
fn used<'a>(specs: impl Iterator<Item = &'a Spec>) -> BTreeSet<String> {
    specs
        .filter_map(|spec| match spec {
            Spec::Container(c) => Some(&c.volumes),
            _ => None,
        })
        .flatten()
        .filter_map(|m| m.volume.clone())
        .collect()
}

pub async fn volume(g: &Global, cmd: VolumeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        VolumeCmd::Create(args) => create(g, args).await,
        VolumeCmd::Ls(args) => ls(g, args).await,
        VolumeCmd::Inspect(args) => {
            super::get::describe(
                g,
                DescribeArgs {
                    key: format!("volume/{}", args.name),
                },
            )
            .await
        }
        VolumeCmd::Rm(args) => {
            super::delete::delete(
                g,
                DeleteArgs {
                    files: Vec::new(),
                    keys: args.names.iter().map(|n| format!("volume/{n}")).collect(),
                },
            )
            .await
        }
        VolumeCmd::Prune => {
            let c = client(g, true);
            let volumes: Vec<ObjectView> = c.get("/v1/objects?kind=volume").await?;
            let containers: Vec<ObjectView> = c.get("/v1/objects?kind=container").await?;
            let used = used(containers.iter().filter_map(|c| c.spec.as_ref()));
            let unused: Vec<String> = volumes
                .iter()
                // Anonymous volumes (no spec) go with their container.
                .filter(|v| v.spec.is_some() && !used.contains(&v.name))
                .map(|v| format!("volume/{}", v.name))
                .collect();
            if unused.is_empty() {
                println!("0 volume(s) removed");
                return Ok(ExitCode::SUCCESS);
            }
            let code = super::delete::delete(
                g,
                DeleteArgs {
                    files: Vec::new(),
                    keys: unused.clone(),
                },
            )
            .await?;
            println!("{} volume(s) removed", unused.len());
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, spec: Option<serde_json::Value>) -> ObjectView {
        serde_json::from_value(serde_json::json!({
            "kind": "Volume", "name": name, "source": null, "status": "Ready", "state": "Ready",
            "restarts": 0, "createdAt": null, "pid": null, "image": null, "exit": null,
            "spec": spec, "origin": null, "upToDate": true, "detail": null,
        }))
        .unwrap()
    }

    #[test]
    fn filters_are_dockers() {
        let used: BTreeSet<String> = ["data".to_string()].into();
        let mut data = view("data", Some(serde_json::json!({"kind": "Volume", "spec": {}})));
        data.labels.insert("tier".into(), "db".into());
        let spare = view("spare", Some(serde_json::json!({"kind": "Volume", "spec": {}})));
        let anon = view(&"a".repeat(64), None);
        let f = |t: &str| parse_filter(t).unwrap();
        assert!(passes(&spare, &f("dangling=true"), &used));
        assert!(!passes(&data, &f("dangling=true"), &used));
        assert!(!passes(&anon, &f("dangling=true"), &used));
        assert!(passes(&data, &f("dangling=false"), &used));
        assert!(passes(&data, &f("label=tier"), &used));
        assert!(passes(&data, &f("label=tier=db"), &used));
        assert!(!passes(&data, &f("label=tier=web"), &used));
        assert!(!passes(&spare, &f("label=tier"), &used));
        assert!(passes(&spare, &f("name=spa"), &used));
        for bad in ["dangling=maybe", "colour=red", "dangling"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_makes_a_volume_document_from_dockers_flags() {
        let args = VolumeCreateArgs {
            name: None,
            driver: None,
            labels: vec!["a=b".into()],
            opts: vec!["type=tmpfs".into(), "device=tmpfs".into(), "o=size=100m".into()],
        };
        let doc = volume_document("v", &args).unwrap();
        assert_eq!(doc["metadata"]["labels"]["a"], "b");
        assert_eq!(doc["spec"]["driverOpts"]["o"], "size=100m");
        let twice = VolumeCreateArgs {
            opts: vec!["type=tmpfs".into(), "type=none".into()],
            ..args.clone()
        };
        assert!(volume_document("v", &twice).is_err());
        let bad = VolumeCreateArgs {
            labels: vec!["nolabel".into()],
            ..args
        };
        assert!(volume_document("v", &bad).is_err());
        let n = random_name();
        assert_eq!(n.len(), 32);
        assert!(crate::manifest::is_dns_label(&n));
    }

    #[test]
    fn volumes_in_use_are_those_container_specs_mount() {
        // As the wire carries them (`kind` beside `spec`).
        let containers: [Spec; 2] = [
            serde_json::json!({"kind": "Container", "spec": {"image": "x", "volumes": [{"volume": "data", "path": "/d"}, {"tmpfs": "/t"}]}}),
            serde_json::json!({"kind": "Container", "spec": {"image": "x"}}),
        ]
        .map(|v| serde_json::from_value(v).unwrap());
        assert_eq!(used(containers.iter()).into_iter().collect::<Vec<_>>(), ["data"]);
    }
}
