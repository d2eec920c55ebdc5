//! `--format` and `--filter` of `images`, `network ls` and `stats`, as
//! Docker's: rows as Docker's templates see them, filters with its keys.

use std::collections::BTreeMap;

use anyhow::bail;

use super::ps::parse_filters;
use crate::cli::args::Global;
use crate::cli::client;
use crate::cli::format::Format;
use crate::cli::output;
use crate::commands::docker_inspect::{InspectRequest, NetworkJson};
use crate::commands::docker_list::human_duration;
use crate::wire::ImageListItem;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Docker's `reference` filter pattern: `*` any run of characters but `/`,
/// `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && t[0] != b'/' && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// A reference as Docker's CLI shows it: `busybox:latest` for
/// `docker.io/library/busybox:latest`.
pub fn familiar(reference: &str) -> &str {
    reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("docker.io/"))
        .unwrap_or(reference)
}

/// `repo` and `tag` of a reference (`<none>` for a digest-only one).
fn repo_tag(reference: &str) -> (String, String) {
    let r = familiar(reference);
    if let Some((repo, _)) = r.split_once('@') {
        return (repo.to_string(), "<none>".into());
    }
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (r.to_string(), "latest".into()),
    }
}

pub async fn filter_images(
    g: &Global,
    images: Vec<ImageListItem>,
    filters: &[String],
) -> anyhow::Result<Vec<ImageListItem>> {
    let filters = parse_filters(filters)?;
    for (key, values) in &filters {
        match key.as_str() {
            "dangling" => {
                if let Some(v) = values.iter().find(|v| !matches!(v.as_str(), "true" | "false")) {
                    bail!("invalid filter dangling={v:?}: use true or false");
                }
            }
            "label" | "reference" => {}
            other => bail!("invalid filter {other:?}: use dangling, label or reference"),
        }
    }
    let c = client(g, true);
    let mut out = Vec::new();
    for image in images {
        let mut keep = true;
        for (key, values) in &filters {
            keep &= match key.as_str() {
                "dangling" => values.iter().any(|v| (v == "true") == image.references.is_empty()),
                "reference" => values.iter().any(|p| {
                    image.references.iter().any(|r| {
                        let (repo, _) = repo_tag(r);
                        glob(p, familiar(r)) || glob(p, r) || glob(p, &repo)
                    })
                }),
                _ => {
                    let req = InspectRequest {
                        name: image.id.clone(),
                        kind: Some("image".into()),
                    };
                    let doc: serde_json::Value = c.post("/v1/docker/inspect", &req).await?;
                    let labels = &doc["Config"]["Labels"];
                    values.iter().any(|v| match v.split_once('=') {
                        Some((k, want)) => labels[k].as_str() == Some(want),
                        None => labels.get(v.as_str()).is_some(),
                    })
                }
            };
        }
        if keep {
            out.push(image);
        }
    }
    Ok(out)
}

const IMAGE_TABLE: &str = r"table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

pub fn images_formatted(images: &[ImageListItem], format: &str) -> anyhow::Result<String> {
    let format = Format::parse_listing(format, IMAGE_TABLE)?;
    let headers: BTreeMap<&str, &str> = [
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("ID", "IMAGE ID"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("SharedSize", "SHARED SIZE"),
    ]
    .into();
    let now = now_secs();
    let mut rows = Vec::new();
    for i in images {
        let refs: Vec<(String, String)> = if i.references.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.references.iter().map(|r| repo_tag(r)).collect()
        };
        for (repo, tag) in refs {
            rows.push(serde_json::json!({
                "Repository": repo,
                "Tag": tag,
                "ID": i.id.trim_start_matches("sha256:").chars().take(12).collect::<String>(),
                "Digest": i.manifest_digest,
                "CreatedSince": format!("{} ago", human_duration(now - i.created_at / 1000)),
                "CreatedAt": output::time(i.created_at),
                "Size": output::bytes(i.size),
                "SharedSize": output::bytes(i.shared_size),
            }));
        }
    }
    Ok(format.render_rows(&headers, &rows)?)
}

const NETWORK_TABLE: &str = r"table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

/// `network ls` with `--format` or `--filter` (name, id, driver, label, type).
pub async fn networks(
    g: &Global,
    names: Vec<String>,
    filters: &[String],
    format: Option<&str>,
) -> anyhow::Result<String> {
    let filters = parse_filters(filters)?;
    for key in filters.keys() {
        if !["name", "id", "driver", "label", "type"].contains(&key.as_str()) {
            bail!("invalid filter {key:?}: use name, id, driver, label or type");
        }
    }
    let format = Format::parse_listing(format.unwrap_or(NETWORK_TABLE), NETWORK_TABLE)?;
    let c = client(g, true);
    let mut rows = Vec::new();
    for name in names {
        let req = InspectRequest {
            name: name.clone(),
            kind: Some("network".into()),
        };
        let Ok(n) = c.post::<_, NetworkJson>("/v1/docker/inspect", &req).await else {
            continue; // removed meanwhile
        };
        let keep = filters.iter().all(|(key, values)| {
            values.iter().any(|v| match key.as_str() {
                "name" => n.name.contains(v.as_str()),
                "id" => n.id.starts_with(v.as_str()),
                "driver" => n.driver == *v,
                "type" => v == "custom" || (v == "builtin" && n.name == crate::wire::DEFAULT_NETWORK),
                _ => match v.split_once('=') {
                    Some((k, want)) => n.labels.get(k).is_some_and(|have| have == want),
                    None => n.labels.contains_key(v.as_str()),
                },
            })
        });
        if keep {
            rows.push(serde_json::json!({
                "ID": n.id,
                "Name": n.name,
                "Driver": n.driver,
                "Scope": n.scope,
                "IPv6": n.enable_ipv6.to_string(),
                "Internal": n.internal.to_string(),
                "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                "CreatedAt": n.created,
            }));
        }
    }
    let headers: BTreeMap<&str, &str> = [
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("Labels", "LABELS"),
        ("CreatedAt", "CREATED AT"),
    ]
    .into();
    Ok(format.render_rows(&headers, &rows)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_patterns_glob_as_dockers() {
        assert!(glob("busybox*", "busybox:latest"));
        assert!(glob("busy?ox:*", "busybox:1.36"));
        assert!(!glob("*", "localhost/app:1"), "* stops at /");
        assert!(glob("*/*", "localhost/app"));
        assert!(!glob("alpine*", "busybox:latest"));
    }

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(
            repo_tag("docker.io/library/busybox:latest"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            repo_tag("localhost:5000/app:1"),
            ("localhost:5000/app".into(), "1".into())
        );
        assert_eq!(
            repo_tag("localhost:5000/app@sha256:ab"),
            ("localhost:5000/app".into(), "<none>".into())
        );
        assert_eq!(familiar("docker.io/me/app:2"), "me/app:2");
    }
}
