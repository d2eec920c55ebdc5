//! Image archives: `save` writes images as a tar that both `docker load`
//! and OCI tools read (an OCI image layout, plus Docker's `manifest.json`
//! unless `oci` only is asked for, as Docker 25+ writes them); `load` reads
//! such a tar, a classic `docker save` (`<id>/layer.tar`) or an OCI archive
//! made by `skopeo copy … oci-archive:`.
//!
//! Loading never writes a file by the archive's names: every regular entry
//! is copied into the content store under the sha256 of its bytes (so a
//! `blobs/sha256/<hex>` entry whose bytes hash otherwise is refused), then
//! the manifests are resolved through those digests, layers unpacked into
//! snapshots (diff IDs checked), and records written. An archive is bounded
//! by [`super::MAX_ARCHIVE_BYTES`] in all.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};

use sha2::Digest as _;
use std::path::Path;

use serde::Deserialize;

use super::content::sha256_digest;
use super::error::{ImageError, Result};
use super::images::NewBlobs;
use super::record::{normalize, ConfigBlob, ImageRecord, LayerRef};
use super::snapshot::chain_ids;
use super::{open_regular_file, ImageStore, MAX_ARCHIVE_BYTES};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// Docker's `manifest.json`, one entry per image.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn bad(path: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::BadImage {
        reference: path.display().to_string(),
        reason: reason.into(),
    }
}

impl ImageStore {
    /// Writes the images `names` name into a tar at `out` (written to a
    /// temporary name beside it, then renamed). `oci_only` leaves out
    /// Docker's `manifest.json`.
    pub fn save(&self, names: &[String], out: &Path, oci_only: bool) -> Result<()> {
        let mut images = Vec::new();
        for name in names {
            let record = self.records.try_resolve(name)?.ok_or_else(|| ImageError::NotFound {
                reference: name.clone(),
            })?;
            // A reference keeps its name in the archive; an id saves the image bare.
            let refs = self.records.refs().unwrap_or_default();
            let reference = normalize(name)
                .ok()
                .map(|r| r.whole())
                .filter(|r| refs.get(r) == Some(&record.id));
            images.push((record, reference));
        }
        let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
        let written = self.write_archive(&images, &tmp, oci_only);
        let store_error = |source| ImageError::Store {
            path: out.to_path_buf(),
            source,
        };
        match written.and_then(|()| std::fs::rename(&tmp, out).map_err(store_error)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn write_archive(&self, images: &[(ImageRecord, Option<String>)], path: &Path, oci_only: bool) -> Result<()> {
        let store_error = |source| ImageError::Store {
            path: path.to_path_buf(),
            source,
        };
        let file = File::create(path).map_err(store_error)?;
        let mut tar = tar::Builder::new(io::BufWriter::new(file));
        let mut written = std::collections::HashSet::new();
        let mut index = Vec::new();
        let mut docker = Vec::new();
        for (record, reference) in images {
            let mut blobs: Vec<&str> = vec![&record.manifest_digest, &record.id];
            blobs.extend(record.layers.iter().map(|l| l.digest.as_str()));
            for digest in blobs {
                if written.insert(digest.to_string()) {
                    let path = self.content.path(digest)?;
                    let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
                    tar.append_path_with_name(&path, &name).map_err(store_error)?;
                }
            }
            let size = self.content.size(&record.manifest_digest).unwrap_or(0);
            let mut annotations = serde_json::Map::new();
            if let Some(r) = reference {
                annotations.insert("io.containerd.image.name".into(), r.clone().into());
                if let Ok(parsed) = normalize(r) {
                    if let Some(tag) = parsed.tag() {
                        annotations.insert("org.opencontainers.image.ref.name".into(), tag.into());
                    }
                }
            }
            index.push(serde_json::json!({
                "mediaType": OCI_MANIFEST, "digest": record.manifest_digest, "size": size,
                "annotations": annotations}));
            docker.push(DockerEntry {
                config: format!("blobs/sha256/{}", record.id.trim_start_matches("sha256:")),
                repo_tags: Some(reference.iter().cloned().collect()),
                layers: record
                    .layers
                    .iter()
                    .map(|l| format!("blobs/sha256/{}", l.digest.trim_start_matches("sha256:")))
                    .collect(),
            });
        }
        let mut add = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes).map_err(store_error)
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index});
        add("index.json", index.to_string().as_bytes())?;
        if !oci_only {
            add(
                "manifest.json",
                serde_json::to_string(&docker).unwrap_or_default().as_bytes(),
            )?;
        }
        let mut inner = tar.into_inner().map_err(store_error)?;
        inner.flush().map_err(store_error)?;
        inner
            .into_inner()
            .map_err(|e| store_error(e.into_error()))?
            .sync_all()
            .map_err(store_error)
    }

    /// Loads every image of the archive at `path` (plain or gzip tar) and
    /// returns them with the references they got. Nothing is recorded unless
    /// every image of it loaded; on error the blobs it added are removed
    /// again (see [`NewBlobs`]).
    pub fn load(&self, path: &Path) -> Result<Vec<(ImageRecord, Vec<String>)>> {
        self.records.refs()?;
        let mut blobs = NewBlobs::new(self);
        let result = self.load_into(&mut blobs, path);
        // Also on success: the archive's other files (index.json,
        // oci-layout, manifest.json) went in as blobs, and no record names them.
        blobs.finish();
        result
    }

    fn load_into(&self, blobs: &mut NewBlobs, path: &Path) -> Result<Vec<(ImageRecord, Vec<String>)>> {
        let file = open_regular_file(path)?;
        let mut reader = BufReader::new(file);
        let gzip = {
            let head = io::BufRead::fill_buf(&mut reader).map_err(|source| ImageError::ReadArchive {
                path: path.to_path_buf(),
                source,
            })?;
            head.starts_with(&[0x1f, 0x8b])
        };
        let input: Box<dyn Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        // Every file entry, into the content store by its own digest.
        let mut names: HashMap<String, String> = HashMap::new();
        let mut total = 0u64;
        let mut archive = tar::Archive::new(input.take(MAX_ARCHIVE_BYTES));
        let malformed = |source: io::Error| ImageError::MalformedArchive {
            path: path.to_path_buf(),
            source,
        };
        for entry in archive.entries().map_err(malformed)? {
            let mut entry = entry.map_err(malformed)?;
            if !matches!(
                entry.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            ) {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes())
                .trim_start_matches("./")
                .to_string();
            let mut ingest = self.content.begin()?;
            let n = io::copy(&mut entry, &mut ingest).map_err(malformed)?;
            total += n;
            let digest = ingest.digest();
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                if format!("sha256:{hex}") != digest {
                    return Err(ImageError::BlobDigestMismatch {
                        reference: path.display().to_string(),
                        expected: format!("sha256:{hex}"),
                        actual: digest,
                    });
                }
            }
            blobs.commit(ingest, &digest, &path.display().to_string())?;
            names.insert(name, digest);
        }
        tracing::debug!(bytes = total, entries = names.len(), "archive read");

        let mut images = Vec::new();
        // The OCI index first: it keeps the manifests byte for byte (Docker
        // 25+ writes both; a classic `docker save` only manifest.json).
        if let Some(index) = names.get("index.json") {
            let index: serde_json::Value = serde_json::from_slice(&self.content.read(index)?)
                .map_err(|e| bad(path, format!("its index.json is not JSON: {e}")))?;
            for m in index["manifests"].as_array().cloned().unwrap_or_default() {
                let digest = m["digest"].as_str().unwrap_or_default().to_string();
                let manifest: oci_client::manifest::OciImageManifest =
                    serde_json::from_slice(&self.content.read(&digest)?)
                        .map_err(|e| bad(path, format!("manifest {digest} is not an image manifest: {e}")))?;
                let layers = manifest
                    .layers
                    .iter()
                    .map(|l| LayerRef {
                        digest: l.digest.clone(),
                        size: l.size.max(0) as u64,
                        media_type: l.media_type.clone(),
                    })
                    .collect();
                let annotations = &m["annotations"];
                let name = annotations["io.containerd.image.name"]
                    .as_str()
                    .or(annotations["org.opencontainers.image.ref.name"].as_str());
                // A bare tag (`base`, as skopeo writes) is no reference: untagged.
                let refs = name
                    .filter(|n| normalize(n).is_ok() && super::record::looks_like_reference(n))
                    .map(|n| vec![n.to_string()])
                    .unwrap_or_default();
                images.push((digest, manifest.config.digest.clone(), layers, refs));
            }
        } else if let Some(manifest) = names.get("manifest.json") {
            let entries: Vec<DockerEntry> = serde_json::from_slice(&self.content.read(manifest)?)
                .map_err(|e| bad(path, format!("its manifest.json is not Docker's format: {e}")))?;
            for entry in entries {
                let find = |name: &str| {
                    names
                        .get(name.trim_start_matches("./"))
                        .cloned()
                        .ok_or_else(|| bad(path, format!("it names {name}, which it does not hold")))
                };
                let config = find(&entry.config)?;
                let mut layers = Vec::new();
                for layer in &entry.layers {
                    let digest = find(layer)?;
                    let size = self.content.size(&digest).unwrap_or(0);
                    layers.push(LayerRef {
                        digest,
                        size,
                        media_type: OCI_LAYER.into(),
                    });
                }
                // A manifest of our own for what Docker's format leaves out,
                // so the image can be pushed and saved again.
                let manifest = serde_json::json!({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": config,
                               "size": self.content.size(&config).unwrap_or(0)},
                    "layers": layers.iter().map(|l| serde_json::json!({
                        "mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>()});
                let bytes = manifest.to_string().into_bytes();
                let manifest_digest = sha256_digest(&bytes);
                blobs.put(&bytes, &manifest_digest, &path.display().to_string())?;
                let refs = entry.repo_tags.unwrap_or_default();
                images.push((manifest_digest, config, layers, refs));
            }
        } else {
            return Err(bad(
                path,
                "it has neither manifest.json (docker save) nor index.json (OCI layout)",
            ));
        }

        let mut loaded = Vec::new();
        for (manifest_digest, config_digest, layers, refs) in images {
            let record = self.unpack_image(blobs, path, manifest_digest, config_digest, layers)?;
            loaded.push((record, refs));
        }
        for (record, refs) in &mut loaded {
            self.records.put(record)?;
            let mut normal = Vec::new();
            for r in refs.iter() {
                normal.push(normalize(r)?.whole());
            }
            self.records.update_refs(|all| {
                for r in &normal {
                    all.insert(r.clone(), record.id.clone());
                }
            })?;
            *refs = normal;
        }
        Ok(loaded)
    }

    /// Checks an image whose blobs are all in the content store and unpacks
    /// its layers (blocking); the record is not written.
    fn unpack_image(
        &self,
        blobs: &mut NewBlobs,
        path: &Path,
        manifest_digest: String,
        config_digest: String,
        layers: Vec<LayerRef>,
    ) -> Result<ImageRecord> {
        let config: ConfigBlob = serde_json::from_slice(&self.content.read(&config_digest)?)
            .map_err(|e| bad(path, format!("config {config_digest} is not an image config: {e}")))?;
        if config.rootfs.diff_ids.len() != layers.len() {
            return Err(bad(
                path,
                format!(
                    "an image lists {} layers but its config {} diff ids",
                    layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            ));
        }
        let chains = chain_ids(&config.rootfs.diff_ids);
        let mut made = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            if !self.content.has(&layer.digest) {
                return Err(bad(path, format!("layer {} is missing from it", layer.digest)));
            }
            let blob = self.content.path(&layer.digest)?;
            let created = blobs.snapshot(&chains[i], || {
                self.snapshots.create(
                    &chains[i],
                    &blob,
                    path,
                    &config.rootfs.diff_ids[i],
                    &path.display().to_string(),
                )
            });
            match created {
                Ok(true) => made.push(chains[i].clone()),
                Ok(false) => {}
                Err(e) => {
                    for chain in &made {
                        let _ = self.snapshots.remove(chain);
                    }
                    return Err(e);
                }
            }
        }
        Ok(ImageRecord {
            id: config_digest,
            manifest_digest,
            config: config.config,
            platform: format!("{}/{}", config.os, config.architecture),
            layers,
            chain_ids: chains,
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        })
    }
}

impl ImageStore {
    /// `import`: a root filesystem tar (plain, gzip or zstd) as a one-layer
    /// image with an empty config but for `cmd`. The tar is copied into the
    /// content store (bounded, regular files only), checked against
    /// `expected` (the sha256 of the tar as given) before anything is
    /// unpacked, its diff id computed from the store's copy, and unpacked
    /// like a pulled layer. Blocking. Errors name `tar_path`, not the
    /// store's copy; on error the blobs it added are removed again (see
    /// [`NewBlobs`]), and it fails before anything is written if the
    /// reference index does not read (the image could not be named).
    ///
    /// `reference` names the image. Without one (an Image object's
    /// import, found by its id) the image gets no reference and no
    /// `created` time, so one tar always makes the same image: importing it
    /// again finds it rather than adding another.
    pub fn import_image(
        &self,
        tar_path: &Path,
        reference: Option<&str>,
        expected: Option<&str>,
        cmd: Vec<String>,
    ) -> Result<ImageRecord> {
        let reference = reference.map(|r| normalize(r).map(|r| r.whole())).transpose()?;
        if let Some(expected) = expected {
            super::parse_digest(expected)?;
        }
        self.records.refs()?;
        let mut blobs = NewBlobs::new(self);
        let result = self.import_image_into(&mut blobs, tar_path, reference, expected, cmd);
        if result.is_err() {
            blobs.finish();
        }
        result
    }

    fn import_image_into(
        &self,
        blobs: &mut NewBlobs,
        tar_path: &Path,
        reference: Option<String>,
        expected: Option<&str>,
        cmd: Vec<String>,
    ) -> Result<ImageRecord> {
        let name = reference.clone().unwrap_or_else(|| tar_path.display().to_string());
        let mut input = open_regular_file(tar_path)?;
        let read_error = |source| ImageError::ReadArchive {
            path: tar_path.to_path_buf(),
            source,
        };
        let limit = self.archive_limit;
        let too_large = || ImageError::ArchiveTooLarge {
            path: tar_path.to_path_buf(),
            limit,
        };
        // Refused before a byte is copied when it says it is too large; the
        // bounded copy catches one that grows meanwhile.
        if input.metadata().map_err(read_error)?.len() > limit {
            return Err(too_large());
        }
        let mut ingest = self.content.begin()?;
        let copied = io::copy(&mut (&mut input).take(limit + 1), &mut ingest).map_err(read_error)?;
        if copied > limit {
            return Err(too_large());
        }
        let digest = ingest.digest();
        if let Some(expected) = expected {
            if expected != digest {
                // Dropping `ingest` removes the copy: nothing was unpacked.
                return Err(ImageError::DigestMismatch {
                    path: tar_path.to_path_buf(),
                    expected: expected.to_owned(),
                    actual: digest,
                });
            }
        }
        let digest = ingest.digest();
        let size = blobs.commit(ingest, &digest, &name)?;
        let blob = self.content.path(&digest)?;
        refuse_unsupported_compression(&blob, tar_path)?;
        let mut hasher = sha2::Sha256::new();
        // Bounded as the unpack is: a small bomb must not cost hours of CPU
        // here before the unpack would have refused it.
        let unpacked_limit = self.snapshots.limit;
        let mut reader = super::snapshot::open_layer(&blob, tar_path)?.take(unpacked_limit + 1);
        let mut read = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).map_err(|e| ImageError::MalformedArchive {
                path: tar_path.to_path_buf(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            read += n as u64;
            if read > unpacked_limit {
                return Err(ImageError::UnpackedTooLarge {
                    path: tar_path.to_path_buf(),
                    limit: unpacked_limit,
                });
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
        }
        let diff_id = format!("sha256:{}", hex::encode(sha2::Digest::finalize(hasher)));
        let mut config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": if cmd.is_empty() { serde_json::Value::Null } else { cmd.into() }},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "berth import"}]});
        // A named import says when and from where; an unnamed one stays the
        // same image whatever path or time the tar is imported from.
        if reference.is_some() {
            config["history"][0]["created_by"] = format!("berth import {}", tar_path.display()).into();
            config["created"] = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
                .into();
        }
        let config_bytes = config.to_string().into_bytes();
        let config_digest = sha256_digest(&config_bytes);
        blobs.put(&config_bytes, &config_digest, &name)?;
        let media_type = if std::fs::File::open(&blob)
            .and_then(|mut f| {
                let mut magic = [0u8; 2];
                f.read_exact(&mut magic).map(|()| magic)
            })
            .is_ok_and(|m| m == [0x1f, 0x8b])
        {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            OCI_LAYER
        };
        let layers = vec![LayerRef {
            digest,
            size,
            media_type: media_type.into(),
        }];
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>()});
        let manifest_bytes = manifest.to_string().into_bytes();
        let manifest_digest = sha256_digest(&manifest_bytes);
        blobs.put(&manifest_bytes, &manifest_digest, &name)?;
        let record = self.unpack_image(blobs, tar_path, manifest_digest, config_digest, layers)?;
        self.records.put(&record)?;
        if let Some(reference) = reference {
            self.records
                .update_refs(|refs| refs.insert(reference, record.id.clone()))?;
        }
        Ok(record)
    }
}

/// Refuses bzip2 and xz, which would otherwise read as a broken tar, naming
/// the compression (plain, gzip and zstd are unpacked).
fn refuse_unsupported_compression(blob: &Path, tar_path: &Path) -> Result<()> {
    let mut magic = Vec::with_capacity(6);
    File::open(blob)
        .and_then(|f| f.take(6).read_to_end(&mut magic))
        .map_err(|source| ImageError::ReadArchive {
            path: tar_path.to_path_buf(),
            source,
        })?;
    let format = if magic.starts_with(b"BZh") {
        "bzip2"
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        "xz"
    } else {
        return Ok(());
    };
    Err(ImageError::UnsupportedCompression {
        path: tar_path.to_path_buf(),
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// An OCI archive of one-layer images, each a layer and the diff id
    /// its config claims for it, named `localhost/t:<n>`.
    fn oci_archive(images: &[(Vec<u8>, String)]) -> Vec<u8> {
        let mut files = vec![("oci-layout".to_string(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec())];
        let mut blob = |bytes: Vec<u8>| {
            let digest = sha256_digest(&bytes);
            let size = bytes.len();
            files.push((format!("blobs/sha256/{}", &digest[7..]), bytes));
            (digest, size)
        };
        let mut manifests = Vec::new();
        for (n, (layer, diff_id)) in images.iter().enumerate() {
            let (layer_digest, layer_size) = blob(layer.clone());
            let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]}});
            let (config_digest, config_size) = blob(config.to_string().into_bytes());
            let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}]});
            let (digest, size) = blob(manifest.to_string().into_bytes());
            manifests.push(
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                "annotations": {"org.opencontainers.image.ref.name": format!("localhost/t:{n}")}}),
            );
        }
        let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        files.push(("index.json".into(), index.to_string().into_bytes()));
        tar_of(&files)
    }

    #[test]
    fn a_load_failing_at_its_second_image_keeps_nothing_of_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("store")).unwrap();
        let good = tar_of(&[("etc/one".into(), b"1".to_vec())]);
        let other = tar_of(&[("etc/two".into(), b"2".to_vec())]);
        let archive = dir.path().join("two.tar");
        // The second image's config claims another diff id than its layer has.
        std::fs::write(
            &archive,
            oci_archive(&[(good.clone(), sha256_digest(&good)), (other, sha256_digest(b"not it"))]),
        )
        .unwrap();

        let err = store.load(&archive).expect_err("the second image is refused");

        assert!(err.to_string().contains("two.tar"), "{err}");
        assert!(
            err.to_string().contains("unpacks to diff id"),
            "the second fails: {err}"
        );
        assert!(store.snapshots.list().is_empty(), "the first image's snapshot went too");
        assert!(store.content.list().is_empty(), "and every blob");
        assert!(store.records.try_all().unwrap().is_empty());
        assert!(store.records.refs().unwrap().is_empty());

        // Good on its own, it loads, and only its own blobs stay.
        std::fs::write(&archive, oci_archive(&[(good.clone(), sha256_digest(&good))])).unwrap();
        let loaded = store.load(&archive).expect("load");
        assert_eq!(loaded[0].1, ["localhost/t:0"]);
        assert_eq!(store.snapshots.list().len(), 1);
        assert_eq!(store.content.list().len(), 3, "layer, config and manifest");
    }
}
