//! Commit: a container's writable layer (its overlay upper dir) as a new
//! layer on top of its image, making a new image.
//!
//! The upper dir is written as an OCI layer: overlay whiteouts (0/0
//! character devices) become `.wh.<name>` entries and opaque directories
//! (`trusted.overlay.opaque=y`) get `.wh..wh..opq`; files, directories,
//! symlinks and hardlinks keep their modes, owners and mtimes; files and
//! directories keep their extended attributes as PAX `SCHILY.xattr.*`
//! records, as Docker's layers carry them (a binary's `security.capability`
//! above all), except overlay's own `trusted.overlay.*` (see
//! [`exported_xattr`]); sockets are left out, as Docker does, and so are
//! the mount targets berth makes for every container ([`MOUNT_TARGETS`]).
//! The tar is gzip-compressed straight into the
//! content store, hashed twice on the way (compressed: the blob digest;
//! uncompressed: the diff ID), then unpacked into its snapshot through the
//! same safe walk as a pulled layer, which checks the diff ID again.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::content::sha256_digest;
use super::error::{ImageError, Result};
use super::images::NewBlobs;
use super::record::{normalize, ImageConfig, ImageRecord, LayerRef};
use super::snapshot::chain_ids;
use super::{ImageStore, SHA256_PREFIX};

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Hashes what passes through to `inner`.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether an overlay upper dir marks `path` opaque (it hides every lower
/// entry of that directory). Shared with `export` and `merged`.
pub(super) fn is_opaque(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut value = [0u8; 4];
    // SAFETY: both strings are NUL-terminated; `value` has value.len() writable bytes.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// Files berth bind-mounts over in every container, creating them (empty)
/// in the writable layer when the image has none: they are the engine's,
/// not a change the container made (what it writes to them goes to the
/// mounted file, never to the layer), so a commit leaves them out, as
/// Docker's does (it keeps them in an init layer it never commits).
const MOUNT_TARGETS: &[&str] = &["etc/hosts", "etc/resolv.conf", "etc/hostname"];

/// Whether an extended attribute goes into a committed layer: all but
/// overlay's own (`trusted.overlay.*`: opaque dirs, origins, redirects,
/// which describe this upper dir's relation to its lowers, and become
/// whiteouts instead) and the host's SELinux label.
fn exported_xattr(name: &[u8]) -> bool {
    !name.starts_with(b"trusted.overlay.") && name != b"security.selinux"
}

/// The extended attributes of `path` (not following a symlink) that go into
/// a layer, by name.
fn xattrs_of(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // Each call with a buffer too small (the list or a value grew since it
    // was sized) fails with ERANGE: sized again and retried.
    let read = |get: &dyn Fn(*mut libc::c_void, usize) -> libc::ssize_t| -> io::Result<Vec<u8>> {
        loop {
            let size = get(std::ptr::null_mut(), 0);
            if size < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut buf = vec![0u8; size as usize];
            let n = get(buf.as_mut_ptr().cast(), buf.len());
            if n >= 0 {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ERANGE) {
                return Err(e);
            }
        }
    };
    // SAFETY: `c` is NUL-terminated; the kernel writes at most `len` bytes to `buf`.
    let names = match read(&|buf, len| unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) }) {
        Ok(names) => names,
        // A filesystem without xattrs has none to keep.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if !exported_xattr(name) {
            continue;
        }
        let (Ok(text), Ok(cname)) = (std::str::from_utf8(name), std::ffi::CString::new(name)) else {
            continue;
        };
        // SAFETY: both strings are NUL-terminated; the kernel writes at most `len` bytes to `buf`.
        match read(&|buf, len| unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf, len) }) {
            Ok(value) => out.push((text.to_owned(), value)),
            // Removed since it was listed.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Appends a PAX extended header carrying `xattrs` for the entry `name`
/// that follows it (nothing when there are none).
fn append_xattrs<W: Write>(tar: &mut tar::Builder<W>, name: &str, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let mut data = Vec::new();
    for (key, value) in xattrs {
        // "<len> SCHILY.xattr.<key>=<value>\n", where <len> counts the whole
        // record, its own digits included.
        let rest = 1 + "SCHILY.xattr.".len() + key.len() + 1 + value.len() + 1;
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len += 1;
        }
        data.extend_from_slice(format!("{len} SCHILY.xattr.{key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    // The header's own name is informational; kept short so that it needs
    // no long-name extension of its own.
    let base = name.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let mut cut = base.len().min(80);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    tar.append_data(&mut h, format!("PaxHeaders/{}", &base[..cut]), data.as_slice())
}

/// A tar header with `meta`'s mode, owner and mtime. Shared with `export`.
pub(super) fn header_for(meta: &fs::Metadata, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(u64::from(meta.uid()));
    h.set_gid(u64::from(meta.gid()));
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(size);
    h
}

/// Appends the entry at `path` that is not a directory (a file, symlink,
/// device or fifo) as `name`, with its extended attributes; a file met
/// before under another name (same device and inode) becomes a hard link to
/// it. Sockets are not image content and are skipped. Shared by commit and
/// export: one tar writer for both.
pub(super) fn append_leaf<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    path: &Path,
    meta: &fs::Metadata,
    links: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(path)?;
        let mut h = header_for(meta, tar::EntryType::Symlink, 0);
        tar.append_link(&mut h, name, &target)?;
    } else if kind.is_file() {
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                let mut h = header_for(meta, tar::EntryType::Link, 0);
                return tar.append_link(&mut h, name, first);
            }
            links.insert((meta.dev(), meta.ino()), name.to_string());
        }
        let mut h = header_for(meta, tar::EntryType::Regular, meta.len());
        append_xattrs(tar, name, &xattrs_of(path)?)?;
        tar.append_data(&mut h, name, fs::File::open(path)?)?;
    } else if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
        let entry_type = if kind.is_fifo() {
            tar::EntryType::Fifo
        } else if kind.is_char_device() {
            tar::EntryType::Char
        } else {
            tar::EntryType::Block
        };
        let mut h = header_for(meta, entry_type, 0);
        let rdev = meta.rdev();
        h.set_device_major(libc::major(rdev))?;
        h.set_device_minor(libc::minor(rdev))?;
        tar.append_data(&mut h, name, io::empty())?;
    }
    Ok(())
}

/// Writes the tree under `dir` (relative names under `prefix`) as OCI layer entries.
fn write_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if MOUNT_TARGETS.contains(&name.as_str()) {
            continue;
        }
        let meta = fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        if kind.is_char_device() && meta.rdev() == 0 {
            // An overlay whiteout: the name was deleted.
            let wh = match name.rsplit_once('/') {
                Some((parent, base)) => format!("{parent}/.wh.{base}"),
                None => format!(".wh.{name}"),
            };
            let mut h = header_for(&meta, tar::EntryType::Regular, 0);
            h.set_mode(0o644);
            tar.append_data(&mut h, wh, io::empty())?;
        } else if kind.is_dir() {
            let mut h = header_for(&meta, tar::EntryType::Directory, 0);
            append_xattrs(tar, &name, &xattrs_of(&path)?)?;
            tar.append_data(&mut h, format!("{name}/"), io::empty())?;
            if is_opaque(&path) {
                let mut h = header_for(&meta, tar::EntryType::Regular, 0);
                h.set_mode(0o644);
                tar.append_data(&mut h, format!("{name}/.wh..wh..opq"), io::empty())?;
            }
            write_tree(tar, &path, &format!("{name}/"), links)?;
        } else {
            append_leaf(tar, &name, &path, &meta, links)?;
        }
        // Sockets are not image content.
    }
    Ok(())
}

/// One entry of an image config's `history`, as Docker writes it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// What made the layer (or the config change): `RUN /bin/sh -c make`.
    pub created_by: String,
    /// A step that changed only the config: no layer of its own.
    pub empty_layer: bool,
}

impl ImageStore {
    /// Makes a new image of `base` plus the container's upper dir `upper`,
    /// with `config` as its config, named `reference`. Blocking. On error
    /// the blobs it added are removed again (see [`NewBlobs`]).
    pub fn commit(
        &self,
        base: &ImageRecord,
        upper: &Path,
        config: ImageConfig,
        reference: &str,
    ) -> Result<ImageRecord> {
        let reference = normalize(reference)?.whole();
        self.records.refs()?;
        let history = HistoryEntry {
            created_by: "berth commit".into(),
            empty_layer: false,
        };
        let record = self.derive(Some(base), Some(upper), config, history, &reference)?;
        self.records
            .update_refs(|refs| refs.insert(reference, record.id.clone()))?;
        Ok(record)
    }

    /// Makes a new, unnamed image: `base` (`None`: an empty one, Docker's
    /// `scratch`) plus the tree `layer` as one more layer if given (an
    /// overlay upper dir: whiteouts become `.wh.` entries), with `config`,
    /// and `history` appended to the base's. What a build step makes.
    /// Blocking; on error the blobs it added are removed again.
    pub fn derive(
        &self,
        base: Option<&ImageRecord>,
        layer: Option<&Path>,
        config: ImageConfig,
        history: HistoryEntry,
        provenance: &str,
    ) -> Result<ImageRecord> {
        let mut blobs = NewBlobs::new(self);
        let result = self.derive_into(&mut blobs, base, layer, config, history, provenance);
        if result.is_err() {
            blobs.finish();
        }
        result
    }

    fn derive_into(
        &self,
        blobs: &mut NewBlobs,
        base: Option<&ImageRecord>,
        layer: Option<&Path>,
        config: ImageConfig,
        history: HistoryEntry,
        provenance: &str,
    ) -> Result<ImageRecord> {
        let mut layers = base.map(|b| b.layers.clone()).unwrap_or_default();
        let mut config_json: serde_json::Value = match base {
            Some(base) => serde_json::from_slice(&self.content.read(&base.id)?).map_err(|e| ImageError::BadImage {
                reference: base.short_id().into(),
                reason: format!("its config is not JSON: {e}"),
            })?,
            None => serde_json::json!({"architecture": std::env::consts::ARCH.replace("x86_64", "amd64")
                .replace("aarch64", "arm64"), "os": "linux"}),
        };
        let mut diff_ids: Vec<String> = config_json["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let mut new_layer = None;
        if let Some(upper) = layer {
            let store_error = |source| ImageError::Store {
                path: upper.to_path_buf(),
                source,
            };
            // The layer: tar -> hash (diff id) -> gzip -> content store (digest).
            let ingest = self.content.begin()?;
            let gzip = flate2::write::GzEncoder::new(ingest, flate2::Compression::fast());
            let mut tar = tar::Builder::new(Hashing {
                inner: gzip,
                hasher: Sha256::new(),
            });
            tar.mode(tar::HeaderMode::Complete);
            write_tree(&mut tar, upper, "", &mut HashMap::new()).map_err(store_error)?;
            let hashing = tar.into_inner().map_err(store_error)?;
            let diff_id = format!("{SHA256_PREFIX}{}", hex::encode(hashing.hasher.finalize()));
            let ingest = hashing.inner.finish().map_err(store_error)?;
            let layer_digest = ingest.digest();
            let layer_size = blobs.commit(ingest, &layer_digest, provenance)?;
            diff_ids.push(diff_id.clone());
            layers.push(LayerRef {
                digest: layer_digest.clone(),
                size: layer_size,
                media_type: GZIP_LAYER.into(),
            });
            new_layer = Some((layer_digest, diff_id));
        }

        config_json["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
        config_json["config"] = serde_json::to_value(&config).unwrap_or_default();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        config_json["created"] = now.clone().into();
        let mut entry = serde_json::json!({"created": now, "created_by": history.created_by});
        if history.empty_layer {
            entry["empty_layer"] = true.into();
        }
        match config_json["history"].as_array_mut() {
            Some(entries) => entries.push(entry),
            None => config_json["history"] = serde_json::json!([entry]),
        }
        let config_bytes = config_json.to_string().into_bytes();
        let config_digest = sha256_digest(&config_bytes);
        blobs.put(&config_bytes, &config_digest, provenance)?;

        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                       "size": config_bytes.len()},
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>()});
        let manifest_bytes = manifest.to_string().into_bytes();
        let manifest_digest = sha256_digest(&manifest_bytes);
        blobs.put(&manifest_bytes, &manifest_digest, provenance)?;

        let chains = chain_ids(&diff_ids);
        if let Some((layer_digest, diff_id)) = new_layer {
            let top = chains.last().cloned().unwrap_or_default();
            let blob = self.content.path(&layer_digest)?;
            blobs.snapshot(&top, || self.snapshots.create(&top, &blob, &blob, &diff_id, provenance))?;
        }
        let platform = match base {
            Some(base) => base.platform.clone(),
            None => format!(
                "linux/{}",
                config_json["architecture"].as_str().unwrap_or("amd64")
            ),
        };
        let record = ImageRecord {
            id: config_digest,
            manifest_digest,
            config,
            platform,
            layers,
            chain_ids: chains,
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        };
        self.records.put(&record)?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattr_records_read_back_with_binary_values_and_long_names() {
        let long = format!("{}/file", "d".repeat(150));
        let attrs = vec![
            // No newline: the tar crate's reader splits records at one.
            ("security.capability".to_string(), vec![1, 0, 0, 2, b'=', b' ', 0xff]),
            ("user.x".to_string(), b"v".repeat(95)),
        ];
        let mut tar = tar::Builder::new(Vec::new());
        for name in ["short", long.as_str()] {
            append_xattrs(&mut tar, name, &attrs).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(1);
            h.set_mode(0o644);
            tar.append_data(&mut h, name, &b"x"[..]).unwrap();
        }
        append_xattrs(&mut tar, "none", &[]).unwrap();
        let bytes = tar.into_inner().unwrap();

        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let records: Vec<(String, Vec<u8>)> = entry
                .pax_extensions()
                .unwrap()
                .unwrap()
                .map(|r| {
                    let r = r.unwrap();
                    (r.key().unwrap().to_owned(), r.value_bytes().to_vec())
                })
                .collect();
            let expected: Vec<(String, Vec<u8>)> = attrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
                .collect();
            assert_eq!(records, expected);
            seen.push(entry.path().unwrap().display().to_string());
        }
        assert_eq!(seen, ["short", long.as_str()]);
    }

    #[test]
    fn overlays_own_attributes_are_not_exported() {
        assert!(exported_xattr(b"security.capability"));
        assert!(exported_xattr(b"user.note"));
        assert!(!exported_xattr(b"trusted.overlay.opaque"));
        assert!(!exported_xattr(b"trusted.overlay.origin"));
        assert!(!exported_xattr(b"security.selinux"));
    }
}
