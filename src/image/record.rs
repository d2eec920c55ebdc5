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
//!
//! The references are the one file whose loss deletes data: an image no
//! reference names is what `image prune` removes. So a `refs.json` that
//! does not read is never taken for an empty one: it is read from its
//! backup `refs.json.bak` (with a warning naming both), and failing that
//! every reader and writer of references gets [`ImageError::CorruptIndex`]
//! and the file is left as it is. The backup holds the same content as the
//! index, written first: a copy of the previous version instead would,
//! once recovered, lack the newest reference, and prune would delete the
//! image that reference named. Likewise an unreadable record stops listing
//! and collection ([`Records::try_all`]) instead of making its image look
//! gone.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{ImageError, Result};
use super::{parse_digest, sync_dir, tmp_name, SHA256_PREFIX};
use crate::wire::null_default;
pub use crate::wire::{ImageConfig, ImageHealthcheck};

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
    /// The layers' compressed size (what a pull downloads; `images` shows
    /// the unpacked size, see `ImageStore::layer_sizes`).
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
    /// `refs.json.bak`: the same content as `refs`, written just before it.
    backup: PathBuf,
    tmp: PathBuf,
    /// Serializes read-modify-write of `refs.json` within the daemon.
    lock: std::sync::Mutex<()>,
}

impl Records {
    pub(crate) fn new(root: &Path) -> Records {
        Records {
            dir: root.join("images"),
            refs: root.join("refs.json"),
            backup: root.join("refs.json.bak"),
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
        self.read_record(&self.record_path(id).ok()?).ok().flatten()
    }

    /// The record at `path`; `None` if there is none.
    fn read_record(&self, path: &Path) -> Result<Option<ImageRecord>> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ImageError::Store {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ImageError::CorruptRecord {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// Every record, newest first; records that do not read are skipped
    /// (for finding an image, never for deciding what to delete).
    pub fn all(&self) -> Vec<ImageRecord> {
        self.list(false).unwrap_or_default()
    }

    /// Every record, newest first, or the first that does not read: what
    /// listing and collection use, so that a damaged record never makes
    /// its image, and then its layers, look unused.
    pub fn try_all(&self) -> Result<Vec<ImageRecord>> {
        self.list(true)
    }

    fn list(&self, strict: bool) -> Result<Vec<ImageRecord>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(d) => d,
            Err(e) if !strict && e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(ImageError::Store {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| ImageError::Store {
                path: self.dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if parse_digest(&format!("sha256:{hex}")).is_err() {
                continue;
            }
            match self.read_record(&entry.path()) {
                Ok(Some(record)) => out.push(record),
                Ok(None) => {}
                Err(e) if strict => return Err(e),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    pub fn delete(&self, id: &str) -> Result<()> {
        let path = self.record_path(id)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ImageError::Store { path, source: e }),
            _ => Ok(()),
        }
    }

    /// Every reference and the id it names: from `refs.json`, or from its
    /// backup when it is missing or does not read (logged); none when
    /// neither exists. [`ImageError::CorruptIndex`] when neither reads.
    pub fn refs(&self) -> Result<BTreeMap<String, String>> {
        let main = read_index(&self.refs);
        if let Ok(Some(refs)) = main {
            return Ok(refs);
        }
        let backup = read_index(&self.backup);
        match (main, backup) {
            (Ok(None), Ok(None)) => Ok(BTreeMap::new()),
            (main, Ok(Some(refs))) => {
                let state = match main {
                    Err(reason) => format!("is unreadable ({reason})"),
                    _ => "is missing".into(),
                };
                tracing::warn!(
                    "the image index {} {state}: using its backup {}, which reads cleanly \
                     (the next change of a reference writes both again)",
                    self.refs.display(),
                    self.backup.display()
                );
                Ok(refs)
            }
            (main, backup) => {
                let backup_state = match backup {
                    Err(reason) => format!("is unreadable too ({reason})"),
                    _ => "is missing".into(),
                };
                let e = ImageError::CorruptIndex {
                    path: self.refs.clone(),
                    reason: match main {
                        Err(reason) => reason,
                        _ => "it is missing".into(),
                    },
                    backup: self.backup.clone(),
                    backup_state,
                };
                tracing::error!("{e}");
                Err(e)
            }
        }
    }

    /// Changes the references under the lock and writes them back: the
    /// backup first, then the index, each replaced atomically.
    pub fn update_refs<T>(&self, f: impl FnOnce(&mut BTreeMap<String, String>) -> T) -> Result<T> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut refs = self.refs()?;
        let out = f(&mut refs);
        let bytes = serde_json::to_vec_pretty(&refs).unwrap_or_default();
        self.write_atomic(&self.backup, &bytes)?;
        self.write_atomic(&self.refs, &bytes)?;
        Ok(out)
    }

    /// The image a reference or an id (full, or 12+ hex digits) names;
    /// `None` also when the index does not read (logged by [`Self::refs`]):
    /// for callers that only look. Those that change references or delete
    /// use [`Self::try_resolve`].
    pub fn resolve(&self, name: &str) -> Option<ImageRecord> {
        self.try_resolve(name).ok().flatten()
    }

    /// The image a reference or an id names, or the index's error when a
    /// reference has to be looked up in it.
    pub fn try_resolve(&self, name: &str) -> Result<Option<ImageRecord>> {
        // `sha256:<hex>` is an id, never looked up as a reference: the
        // reconciler resolves ids on every pass, which a damaged index
        // must not fail (nor fill the log with its error).
        let by_id_only = name.starts_with(SHA256_PREFIX);
        if let Some(reference) = normalize(name).ok().filter(|_| !by_id_only) {
            let refs = match self.refs() {
                Ok(refs) => refs,
                // An id still resolves without the index, but not a name.
                Err(e) if !is_id_prefix(name) => return Err(e),
                Err(_) => BTreeMap::new(),
            };
            if let Some(id) = refs.get(&reference.whole()) {
                return Ok(self.get(id));
            }
        }
        if is_id_prefix(name) {
            let hex = name.strip_prefix("sha256:").unwrap_or(name);
            return Ok(self
                .all()
                .into_iter()
                .find(|r| r.id.strip_prefix("sha256:").is_some_and(|h| h.starts_with(hex))));
        }
        Ok(None)
    }
}

/// Whether `name` can be an image id: `sha256:` optional, 12+ hex digits.
fn is_id_prefix(name: &str) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The references in an index file; `None` if there is no such file, the
/// reason if it does not read.
fn read_index(path: &Path) -> std::result::Result<Option<BTreeMap<String, String>>, String> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let refs: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    // Every value is an id: anything else is damage that parsed by chance.
    if let Some((reference, id)) = refs.iter().find(|(_, id)| parse_digest(id).is_err()) {
        return Err(format!(
            "reference {reference:?} names {id:?}, which is not an image id"
        ));
    }
    Ok(Some(refs))
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

    /// A store with one record named `localhost:5000/x:1`, written through
    /// `update_refs` (so with its backup).
    fn one_named_image() -> (tempfile::TempDir, Records, String) {
        let dir = tempfile::tempdir().unwrap();
        for d in ["images", "tmp"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let records = Records::new(dir.path());
        let id = format!("sha256:{}", "b".repeat(64));
        records
            .put(&ImageRecord {
                id: id.clone(),
                manifest_digest: format!("sha256:{}", "c".repeat(64)),
                config: ImageConfig::default(),
                platform: "linux/amd64".into(),
                layers: vec![],
                chain_ids: vec![],
                created_at: 1,
            })
            .unwrap();
        records
            .update_refs(|r| r.insert("localhost:5000/x:1".into(), id.clone()))
            .unwrap();
        (dir, records, id)
    }

    fn damages(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("truncated", good[..good.len() / 2].to_vec()),
            ("empty", Vec::new()),
            ("garbage", b"\0\x1b[2J\xff not json".to_vec()),
            ("wrong shape", b"[1, 2]".to_vec()),
            ("not an id", br#"{"localhost:5000/x:1": "oops"}"#.to_vec()),
        ]
    }

    #[test]
    fn a_missing_index_is_empty_and_a_damaged_one_is_read_from_its_backup() {
        let (dir, records, id) = one_named_image();
        let index = dir.path().join("refs.json");
        let good = fs::read(&index).unwrap();
        assert_eq!(
            fs::read(dir.path().join("refs.json.bak")).unwrap(),
            good,
            "the backup mirrors it"
        );
        for (what, bytes) in damages(&good) {
            fs::write(&index, &bytes).unwrap();
            let refs = records.refs().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(refs.get("localhost:5000/x:1"), Some(&id), "{what}");
            assert_eq!(records.try_resolve("localhost:5000/x:1").unwrap().unwrap().id, id);
        }
        // A change writes both again, from the recovered references.
        records
            .update_refs(|r| r.insert("localhost:5000/x:2".into(), id.clone()))
            .unwrap();
        let written: BTreeMap<String, String> = serde_json::from_slice(&fs::read(&index).unwrap()).unwrap();
        assert_eq!(written.len(), 2);
        // The index gone but its backup there: the backup.
        fs::remove_file(&index).unwrap();
        assert_eq!(records.refs().unwrap().len(), 2);
        // Neither: a new store, empty.
        fs::remove_file(dir.path().join("refs.json.bak")).unwrap();
        assert!(records.refs().unwrap().is_empty());
    }

    #[test]
    fn a_damaged_index_without_a_usable_backup_is_an_error_and_is_not_overwritten() {
        let (dir, records, id) = one_named_image();
        let index = dir.path().join("refs.json");
        let backup = dir.path().join("refs.json.bak");
        let good = fs::read(&index).unwrap();
        for (what, bytes) in damages(&good) {
            for backup_bytes in [None, Some(b"{\"x\":".to_vec())] {
                fs::write(&index, &bytes).unwrap();
                match &backup_bytes {
                    Some(b) => fs::write(&backup, b).unwrap(),
                    None => {
                        let _ = fs::remove_file(&backup);
                    }
                }
                let err = records.refs().expect_err(what);
                assert!(matches!(err, ImageError::CorruptIndex { .. }), "{what}: {err}");
                let shown = err.to_string();
                assert!(
                    shown.contains(&index.display().to_string())
                        && shown.contains(&backup.display().to_string())
                        && shown.contains("Restore refs.json"),
                    "{what}: {shown}"
                );
                assert!(!shown.contains('\x1b'), "{shown:?}");
                let changed = records.update_refs(|r| r.insert("localhost:5000/y:1".into(), id.clone()));
                assert!(matches!(changed, Err(ImageError::CorruptIndex { .. })), "{what}");
                assert!(matches!(
                    records.try_resolve("localhost:5000/x:1"),
                    Err(ImageError::CorruptIndex { .. })
                ));
                // An id still finds its image: it needs no reference.
                assert_eq!(records.try_resolve(&id).unwrap().unwrap().id, id);
                assert_eq!(records.try_resolve(&"b".repeat(12)).unwrap().unwrap().id, id);
                assert_eq!(fs::read(&index).unwrap(), bytes, "{what}: left as it was");
                assert_eq!(fs::read(&backup).ok(), backup_bytes, "{what}: backup left as it was");
            }
        }
    }

    #[test]
    fn a_damaged_record_fails_a_strict_listing_and_is_skipped_by_a_lookup() {
        let (dir, records, id) = one_named_image();
        let path = dir.path().join("images").join(format!("{}.json", "b".repeat(64)));
        let good = fs::read(&path).unwrap();
        fs::write(&path, &good[..good.len() / 2]).unwrap();
        let err = records.try_all().expect_err("a strict listing fails");
        assert!(matches!(err, ImageError::CorruptRecord { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        assert!(records.all().is_empty());
        assert_eq!(records.get(&id), None);
    }
}
