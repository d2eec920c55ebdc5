//! Image records and references.
//!
//! An image is its config blob's digest (its id, as Docker's), the manifest
//! it was pulled by, the parts of its config a container needs, and its
//! layers' chain IDs, bottom first. Records are small JSON files under
//! `images/<id hex>.json`; references (`registry/repo:tag`,
//! `registry/repo@sha256:…`, normalized) map to ids in `refs.json`.
//!
//! Files, not the daemon's SQLite store: a record names blobs and snapshots
//! of this directory and nothing else, so the image store stays one
//! self-contained directory (its own GC, `rm -r` to reset) that the image
//! module owns without knowing the engine's store, and no schema migration
//! has to be coordinated with the other tables. Both files are written to a
//! temporary name, fsynced and renamed, so a crash leaves the old or the new
//! version, never half of one; a record is written before any reference
//! names it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{ImageError, Result};
use super::{parse_digest, sync_dir, tmp_name};

/// What of an image's config a container uses (the OCI/Docker `config`
/// object). Unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, serde_json::Value>,
    /// The image's HEALTHCHECK, used when a container has none of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<ImageHealthcheck>,
}

/// Docker's `Healthcheck` in an image config: `Test` is `["NONE"]`,
/// `["CMD", arg…]` or `["CMD-SHELL", command]`; times in nanoseconds (0 =
/// the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ImageHealthcheck {
    #[serde(deserialize_with = "null_default")]
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub retries: u32,
}

/// JSON `null` as the type's default (Docker writes `"Cmd": null`).
fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The parts of an image config blob berth reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConfigBlob {
    pub architecture: String,
    pub os: String,
    #[serde(deserialize_with = "null_default")]
    pub config: ImageConfig,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// One layer as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRef {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// The config blob's digest.
    pub id: String,
    pub manifest_digest: String,
    pub config: ImageConfig,
    /// `os/architecture` of the config.
    pub platform: String,
    pub layers: Vec<LayerRef>,
    /// One per layer, bottom first.
    pub chain_ids: Vec<String>,
    /// Unix millis when it was pulled.
    pub created_at: i64,
}

impl ImageRecord {
    /// The layers' compressed size (what a pull downloads).
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }

    /// `sha256:` and the first 12 hex digits of the id.
    pub fn short_id(&self) -> &str {
        let hex = self.id.strip_prefix("sha256:").unwrap_or(&self.id);
        &hex[..hex.len().min(12)]
    }
}

/// A reference in its normal form (`docker.io/library/busybox:latest`,
/// `localhost:5000/x@sha256:…`), or why it is not one.
pub fn normalize(reference: &str) -> Result<oci_client::Reference> {
    let bad = |reason: String| ImageError::BadReference {
        reference: reference.into(),
        reason,
    };
    if reference.trim() != reference || reference.is_empty() {
        return Err(bad("it is empty or has spaces around it".into()));
    }
    // Not oci_client's parser: see manifest::reference.
    let parsed = crate::manifest::parse_reference(reference).map_err(|e| bad(e.to_string()))?;
    if parsed.repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("repository names must be lower-case".into()));
    }
    let (registry, repository) = (parsed.registry, parsed.repository);
    Ok(match (parsed.tag, parsed.digest) {
        (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(registry, repository, tag, digest),
        (None, Some(digest)) => oci_client::Reference::with_digest(registry, repository, digest),
        (tag, None) => oci_client::Reference::with_tag(registry, repository, tag.unwrap_or_else(|| "latest".into())),
    })
}

/// Whether `name` is meant as a registry reference rather than the name of
/// an Image object (those are DNS labels: no `/`, `:`, `.` or `@`).
pub fn looks_like_reference(name: &str) -> bool {
    name.contains(['/', ':', '.', '@'])
}

/// The records and references of one store.
#[derive(Debug)]
pub struct Records {
    dir: PathBuf,
    refs: PathBuf,
    tmp: PathBuf,
    /// Serializes read-modify-write of `refs.json` within the daemon.
    lock: std::sync::Mutex<()>,
}

impl Records {
    pub(crate) fn new(root: &Path) -> Records {
        Records {
            dir: root.join("images"),
            refs: root.join("refs.json"),
            tmp: root.join("tmp"),
            lock: std::sync::Mutex::new(()),
        }
    }

    fn record_path(&self, id: &str) -> Result<PathBuf> {
        Ok(self.dir.join(format!("{}.json", parse_digest(id)?)))
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = tmp_name(&self.tmp, "record", "");
        let store_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImageError::Store { path, source }
        };
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(store_error(path)(e));
        }
        if let Some(parent) = path.parent() {
            sync_dir(parent);
        }
        Ok(())
    }

    /// Writes a record, after a syncfs of the store's filesystem: the blobs
    /// and snapshots it names are durable before anything names them (so
    /// snapshots need no sync of their own; see `snapshot`).
    pub fn put(&self, record: &ImageRecord) -> Result<()> {
        let sync_error = |source: std::io::Error| ImageError::Store {
            path: self.dir.clone(),
            source,
        };
        let dir = fs::File::open(&self.dir).map_err(sync_error)?;
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)).map_err(|e| sync_error(e.into()))?;
        let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        self.write_atomic(&self.record_path(&record.id)?, &bytes)
    }

    pub fn get(&self, id: &str) -> Option<ImageRecord> {
        let bytes = fs::read(self.record_path(id).ok()?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn all(&self) -> Vec<ImageRecord> {
        let mut out: Vec<ImageRecord> = fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_str()?.strip_suffix(".json")?.to_owned();
                        self.get(&format!("sha256:{name}"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        out
    }

    pub fn delete(&self, id: &str) -> Result<()> {
        let path = self.record_path(id)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ImageError::Store { path, source: e }),
            _ => Ok(()),
        }
    }

    /// Every reference and the id it names.
    pub fn refs(&self) -> BTreeMap<String, String> {
        fs::read(&self.refs)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Changes the references under the lock and writes them back.
    pub fn update_refs<T>(&self, f: impl FnOnce(&mut BTreeMap<String, String>) -> T) -> Result<T> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut refs = self.refs();
        let out = f(&mut refs);
        let bytes = serde_json::to_vec_pretty(&refs).unwrap_or_default();
        self.write_atomic(&self.refs, &bytes)?;
        Ok(out)
    }

    /// The image a reference or an id (full, or 12+ hex digits) names.
    pub fn resolve(&self, name: &str) -> Option<ImageRecord> {
        if let Ok(reference) = normalize(name) {
            if let Some(id) = self.refs().get(&reference.whole()) {
                return self.get(id);
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self
                .all()
                .into_iter()
                .find(|r| r.id.strip_prefix("sha256:").is_some_and(|h| h.starts_with(hex)));
        }
        None
    }
}

/// Resolves a `user` of an image config or a manifest (`name`, `uid`,
/// `name:group`, `uid:gid`) to numbers, reading names from the image's
/// `/etc/passwd` and `/etc/group` (their contents, as given). A user given
/// alone gets its primary group from passwd (or its uid as gid when it is a
/// number not listed there, as Docker does: 0 for root).
pub fn resolve_user(user: &str, passwd: Option<&str>, group: Option<&str>) -> std::result::Result<(u32, u32), String> {
    let lookup = |file: Option<&str>, name: &str| -> Option<(u32, Option<u32>)> {
        file?.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 3 && fields[0] == name).then(|| {
                let id = fields[2].parse().ok()?;
                Some((id, fields.get(3).and_then(|g| g.parse().ok())))
            })?
        })
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => {
            let primary = passwd.and_then(|p| {
                p.lines().find_map(|line| {
                    let f: Vec<&str> = line.split(':').collect();
                    (f.len() >= 4 && f[2] == u).then(|| f[3].parse().ok())?
                })
            });
            (uid, primary)
        }
        Err(_) => {
            let (uid, primary) =
                lookup(passwd, u).ok_or_else(|| format!("user `{u}` is not in the image's /etc/passwd"))?;
            (uid, primary)
        }
    };
    let gid = match g {
        None => primary.unwrap_or(if u.parse::<u32>().is_ok() { 0 } else { uid }),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                lookup(group, g)
                    .ok_or_else(|| format!("group `{g}` is not in the image's /etc/group"))?
                    .0
            }
        },
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalized_and_bad_ones_say_why() {
        assert_eq!(
            normalize("busybox").unwrap().whole(),
            "docker.io/library/busybox:latest"
        );
        let r = normalize("localhost:5000/shop/web:1.4").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("localhost:5000", "shop/web", Some("1.4"))
        );
        let d = format!("127.0.0.1:5000/x@sha256:{}", "a".repeat(64));
        assert_eq!(
            normalize(&d).unwrap().digest(),
            Some(format!("sha256:{}", "a".repeat(64)).as_str())
        );
        for bad in ["", "UPPER/case", "a b", "x@sha256:short", "x:"] {
            let e = normalize(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid image reference"), "{bad}: {e}");
        }
        assert!(looks_like_reference("localhost:5000/x"));
        assert!(!looks_like_reference("busybox"));
    }

    #[test]
    fn config_blobs_parse_with_nulls_and_unknown_fields() {
        let blob = r#"{"architecture":"amd64","os":"linux","config":{"Cmd":null,"Env":["A=1"],
            "Entrypoint":["/bin/sh","-c"],"WorkingDir":"/srv","User":"app","ExposedPorts":{"80/tcp":{}},
            "Volumes":{"/data":{}},"StopSignal":"SIGQUIT","Labels":{"k":"v"},"Other":1},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[]}"#;
        let c: ConfigBlob = serde_json::from_str(blob).unwrap();
        assert!(c.config.cmd.is_empty());
        assert_eq!(c.config.entrypoint, ["/bin/sh", "-c"]);
        assert_eq!(c.config.working_dir.as_deref(), Some("/srv"));
        assert!(c.config.exposed_ports.contains_key("80/tcp"));
        assert_eq!(c.rootfs.diff_ids, ["sha256:aa"]);
        let empty: ConfigBlob = serde_json::from_str(r#"{"config":null}"#).unwrap();
        assert_eq!(empty.config, ImageConfig::default());
    }

    #[test]
    fn users_resolve_through_the_images_passwd_and_group() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
        let group = "root:x:0:\nstaff:x:50:\n";
        let r = |u| resolve_user(u, Some(passwd), Some(group));
        assert_eq!(r("app"), Ok((1000, 1001)));
        assert_eq!(r("app:staff"), Ok((1000, 50)));
        assert_eq!(r("1000"), Ok((1000, 1001)));
        assert_eq!(r("4242"), Ok((4242, 0)));
        assert_eq!(r("7:8"), Ok((7, 8)));
        assert!(r("nobody").unwrap_err().contains("/etc/passwd"));
        assert!(r("app:wheel").unwrap_err().contains("/etc/group"));
        assert_eq!(
            resolve_user("root", None, None).unwrap_err(),
            "user `root` is not in the image's /etc/passwd"
        );
    }

    #[test]
    fn records_and_references_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["images", "tmp"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let records = Records::new(dir.path());
        let id = format!("sha256:{}", "b".repeat(64));
        let rec = ImageRecord {
            id: id.clone(),
            manifest_digest: format!("sha256:{}", "c".repeat(64)),
            config: ImageConfig::default(),
            platform: "linux/amd64".into(),
            layers: vec![],
            chain_ids: vec![],
            created_at: 1,
        };
        records.put(&rec).unwrap();
        records
            .update_refs(|r| r.insert("localhost:5000/x:1".into(), id.clone()))
            .unwrap();
        assert_eq!(records.resolve("localhost:5000/x:1"), Some(rec.clone()));
        assert_eq!(records.resolve(&"b".repeat(12)), Some(rec.clone()));
        assert_eq!(records.resolve("localhost:5000/x:2"), None);
        assert_eq!(records.all(), [rec]);
        records.delete(&id).unwrap();
        assert!(records.all().is_empty());
    }
}
