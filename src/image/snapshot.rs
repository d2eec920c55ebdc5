//! Snapshots: each layer of a pulled image unpacked into a directory of its
//! own, keyed by its chain ID, shared by every image that has the same
//! layers below it. A container's root filesystem is an overlay of its
//! image's snapshots (top first) and its own upper directory.
//!
//! # Layout
//!
//! ```text
//! snapshots/<chain hex>/        the layer's tree, as an overlay lower dir
//!                               (whiteouts as 0/0 character devices,
//!                               opaque directories with trusted.overlay.opaque)
//! l/<12 hex>                    -> ../snapshots/<chain hex>
//! sizes/<chain hex>             its unpacked size in bytes, decimal: worked
//!                               out on first use, a cache only
//! tmp/snap-…/                   a snapshot being unpacked
//! ```
//!
//! The short links exist for the overlay's mount options, which must fit in
//! one page (4096 bytes): 100 lower dirs of 80-byte absolute paths do not.
//! The runtime mounts with `l/` as its working directory and the links'
//! names alone (13 bytes a layer: room for 300 layers), as Docker's overlay2
//! does with its `l/` directory.
//!
//! # Chain IDs
//!
//! The chain ID of the bottom layer is its diff ID (the sha256 of its
//! uncompressed tar); above it, `chain(n) = sha256(chain(n-1) + " " +
//! diff(n))` (OCI image spec, config.md). A layer's whiteouts mean something
//! only over the layers below it, so the snapshot is keyed by the chain, not
//! by the layer alone.
//!
//! # Guarantees
//!
//! A snapshot is unpacked under `tmp/` with the safe walk of [`super::unpack`]
//! (nothing lands outside it), its uncompressed stream hashed as it is read,
//! and renamed into `snapshots/` only if that hash is the diff ID the
//! image's config names. So a snapshot directory is always complete and
//! holds exactly the layer the config promised. It is made durable by the
//! syncfs that precedes the record naming it (see `record::Records::put`).

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags};
use sha2::{Digest, Sha256};

use super::error::{ImageError, Result};
use super::unpack::{self, Ownership};
use super::{parse_digest, remove_tree, sync_dir, tmp_name, SHA256_PREFIX};

/// How many hex digits of the chain ID the short link names keep. 48 bits:
/// a collision needs millions of snapshots on one host.
const LINK_LEN: usize = 12;

/// The chain IDs of layers with these diff IDs, bottom first.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => format!(
                "{SHA256_PREFIX}{}",
                hex::encode(Sha256::digest(format!("{parent} {diff}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// The snapshots of one image store.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
    links: PathBuf,
    sizes: PathBuf,
    tmp: PathBuf,
    ownership: Ownership,
    /// The most decompressed stream one layer may be (see `unpack`).
    pub(super) limit: u64,
    /// How many layers were unpacked (tests check "before anything is unpacked").
    #[cfg(test)]
    pub(super) unpacks: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Snapshots {
    pub(crate) fn new(root: &Path, ownership: Ownership, limit: u64) -> Snapshots {
        Snapshots {
            dir: root.join("snapshots"),
            links: root.join("l"),
            sizes: root.join("sizes"),
            tmp: root.join("tmp"),
            ownership,
            limit,
            #[cfg(test)]
            unpacks: Default::default(),
        }
    }

    /// The snapshot's directory.
    pub fn dir(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.dir.join(parse_digest(chain_id)?))
    }

    /// The short path the runtime mounts: `l/<12 hex>`, a link to the dir.
    pub fn link(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.links.join(&parse_digest(chain_id)?[..LINK_LEN]))
    }

    /// Whether the snapshot and its link are there.
    pub fn has(&self, chain_id: &str) -> bool {
        let (Ok(dir), Ok(link)) = (self.dir(chain_id), self.link(chain_id)) else {
            return false;
        };
        fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) && fs::metadata(&link).is_ok_and(|m| m.is_dir())
    }

    /// Every snapshot's chain ID.
    pub fn list(&self) -> Vec<String> {
        fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(|n| format!("{SHA256_PREFIX}{n}")))
                    .filter(|d| parse_digest(d).is_ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Unpacks the layer archive at `blob` (plain, gzip or zstd tar) into
    /// the snapshot `chain_id`, checking its uncompressed stream hashes to
    /// `diff_id`. Returns whether it unpacked (false: it was there already).
    /// `reference` names the image in errors, and `source` the archive:
    /// the user's file for an import or a load (the blob is the store's
    /// copy of it, a path that means nothing to them), the blob for a pull.
    pub fn create(&self, chain_id: &str, blob: &Path, source: &Path, diff_id: &str, reference: &str) -> Result<bool> {
        parse_digest(diff_id)?;
        if self.has(chain_id) {
            return Ok(false);
        }
        if !self.dir(chain_id)?.is_dir() {
            let unpacked = self.unpack_reader(chain_id, open_layer(blob, source)?, source, diff_id, reference)?;
            return unpacked.commit().map(|()| true);
        }
        self.make_link(chain_id, parse_digest(chain_id)?)?;
        Ok(true)
    }

    /// As [`Snapshots::create`], from a layer archive being read (e.g. as it
    /// downloads; `source` names it in errors), but the snapshot is only
    /// unpacked and checked against `diff_id` under `tmp/`: it is renamed
    /// into place by [`Unpacked::commit`], once the caller knows the archive
    /// itself is the one it asked for, and removed if it is dropped instead.
    pub fn unpack_reader(
        &self,
        chain_id: &str,
        layer: impl Read,
        source: &Path,
        diff_id: &str,
        reference: &str,
    ) -> Result<Unpacked> {
        parse_digest(diff_id)?;
        let hex = parse_digest(chain_id)?.to_owned();
        let unpacked = Unpacked {
            snapshots: self.clone(),
            chain_id: chain_id.to_owned(),
            tmp: Some(tmp_name(&self.tmp, "snap", &hex[..12])),
        };
        let tmp = unpacked.tmp.as_deref().unwrap_or(Path::new(""));
        #[cfg(test)]
        self.unpacks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(tmp)
            .map_err(|source| ImageError::Commit {
                path: tmp.to_path_buf(),
                source,
            })?;
        let mut hashing = HashingReader {
            inner: decompress(layer).map_err(|e| ImageError::ReadArchive {
                path: source.to_path_buf(),
                source: e,
            })?,
            hasher: Sha256::new(),
        };
        unpack::unpack(&mut hashing, tmp, source, self.ownership, self.limit)?;
        let actual = format!("{SHA256_PREFIX}{}", hex::encode(hashing.hasher.finalize()));
        if actual != diff_id {
            return Err(ImageError::BadImage {
                reference: reference.into(),
                reason: format!(
                    "layer {} unpacks to diff id {actual}, but the config says {diff_id}: nothing was kept",
                    source.display()
                ),
            });
        }
        Ok(unpacked)
    }

    /// Points `l/<short>` at the snapshot (replacing a stale link).
    fn make_link(&self, chain_id: &str, hex: &str) -> Result<()> {
        let link = self.link(chain_id)?;
        let target = Path::new("../snapshots").join(hex);
        if fs::read_link(&link).is_ok_and(|t| t == target) {
            return Ok(());
        }
        let tmp = tmp_name(&self.tmp, "link", "");
        let store_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImageError::Store { path, source }
        };
        std::os::unix::fs::symlink(&target, &tmp).map_err(store_error(&tmp))?;
        if let Err(e) = fs::rename(&tmp, &link) {
            let _ = fs::remove_file(&tmp);
            return Err(store_error(&link)(e));
        }
        sync_dir(&self.links);
        Ok(())
    }

    /// The snapshot's unpacked size, as `docker images` counts a layer's:
    /// the bytes of its files and symlinks, a hardlinked file once,
    /// directories and whiteouts nothing. Worked out by walking the tree
    /// the first time, then read from `sizes/` (a snapshot never changes);
    /// `None` if there is no such snapshot.
    pub fn size(&self, chain_id: &str) -> Option<u64> {
        let hex = parse_digest(chain_id).ok()?;
        let cache = self.sizes.join(hex);
        if let Some(n) = fs::read_to_string(&cache).ok().and_then(|t| t.trim().parse().ok()) {
            return Some(n);
        }
        let dir = self.dir(chain_id).ok()?;
        if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return None;
        }
        let size = tree_size(&dir, &mut std::collections::HashSet::new());
        // Unsynced and best effort: a lost or torn cache is computed again
        // (a torn one does not parse).
        let tmp = tmp_name(&self.tmp, "size", "");
        let cached = fs::create_dir_all(&self.sizes)
            .and_then(|()| fs::write(&tmp, size.to_string()))
            .and_then(|()| fs::rename(&tmp, &cache));
        if let Err(e) = cached {
            let _ = fs::remove_file(&tmp);
            tracing::debug!(path = %cache.display(), error = %e, "caching a snapshot's size failed");
        }
        Some(size)
    }

    /// Removes a snapshot and its link; a missing one is fine.
    pub fn remove(&self, chain_id: &str) -> Result<()> {
        let link = self.link(chain_id)?;
        let _ = fs::remove_file(&link);
        let _ = fs::remove_file(self.sizes.join(parse_digest(chain_id)?));
        let dir = self.dir(chain_id)?;
        let hidden = tmp_name(&self.tmp, "remove", "");
        match fs::rename(&dir, &hidden) {
            Ok(()) => remove_tree(&hidden).map_err(|source| ImageError::Store { path: hidden, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ImageError::Store { path: dir, source }),
        }
    }
}

/// A layer unpacked and checked under `tmp/`, not yet a snapshot: see
/// [`Snapshots::unpack_reader`]. Dropped uncommitted, it is removed.
#[derive(Debug)]
pub struct Unpacked {
    snapshots: Snapshots,
    chain_id: String,
    tmp: Option<PathBuf>,
}

impl Unpacked {
    /// Renames it into place as its snapshot, with its short link.
    pub fn commit(mut self) -> Result<()> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        let dir = self.snapshots.dir(&self.chain_id)?;
        // Not synced here: the image record that will name this snapshot is
        // written only after one syncfs of the whole store (`Records::put`),
        // one flush per image instead of one per layer. A crash before that
        // record leaves the snapshot unnamed, and the daemon's start sweeps it.
        match renameat2(None, &tmp, None, &dir, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => {}
            // Another pull of an image sharing the layer won: same content.
            Err(Errno::EEXIST | Errno::ENOTEMPTY) => {
                let _ = remove_tree(&tmp);
            }
            Err(e) => {
                let _ = remove_tree(&tmp);
                return Err(ImageError::Commit {
                    path: dir,
                    source: e.into(),
                });
            }
        }
        self.snapshots.make_link(&self.chain_id, parse_digest(&self.chain_id)?)
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = remove_tree(&tmp);
        }
    }
}

/// Bytes of the files and symlinks under `dir` (never following a symlink),
/// each inode once: see [`Snapshots::size`]. What cannot be read counts 0.
fn tree_size(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += tree_size(&entry.path(), seen);
        } else if (meta.is_file() || meta.is_symlink()) && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino())))
        {
            total += meta.len();
        }
    }
    total
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Opens a layer blob, decompressing gzip or zstd as its magic bytes say
/// (a registry's media type can lie; the bytes cannot). A blob that cannot
/// be opened is the store's failure and names the blob; bytes that do not
/// decompress name `source`, the archive they came from.
pub(crate) fn open_layer(blob: &Path, source: &Path) -> Result<Box<dyn Read>> {
    let file = File::open(blob).map_err(|e| ImageError::Store {
        path: blob.to_path_buf(),
        source: e,
    })?;
    decompress(BufReader::with_capacity(1 << 16, file)).map_err(|e| ImageError::ReadArchive {
        path: source.to_path_buf(),
        source: e,
    })
}

/// `layer` decompressed as its first bytes say: gzip, zstd, or plain.
fn decompress<'a>(mut layer: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; 4];
    let mut len = 0;
    while len < magic.len() {
        match layer.read(&mut magic[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = magic[..len].to_vec();
    let reader = io::Cursor::new(head).chain(layer);
    let magic = &magic[..len];
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::new(reader)?))
    } else {
        Ok(Box::new(reader))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_path(name).unwrap();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn digest(bytes: &[u8]) -> String {
        format!("{SHA256_PREFIX}{}", hex::encode(Sha256::digest(bytes)))
    }

    fn snapshots() -> (tempfile::TempDir, Snapshots) {
        let dir = tempfile::tempdir().unwrap();
        for d in ["snapshots", "l", "tmp"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let s = Snapshots::new(dir.path(), Ownership::Ignore, 1 << 30);
        (dir, s)
    }

    #[test]
    fn a_snapshots_size_counts_its_files_and_symlinks_once_and_is_cached() {
        let (dir, snaps) = snapshots();
        let chain = digest(b"sized");
        let tree = snaps.dir(&chain).unwrap();
        fs::create_dir_all(tree.join("d/e")).unwrap();
        fs::write(tree.join("d/a"), [0u8; 1000]).unwrap();
        fs::write(tree.join("d/e/b"), [0u8; 24]).unwrap();
        fs::hard_link(tree.join("d/a"), tree.join("a-again")).unwrap();
        std::os::unix::fs::symlink("d/e/b", tree.join("link")).unwrap();
        // A whiteout: a 0/0 character device, size 0.
        nix::sys::stat::mknod(
            &tree.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        assert_eq!(snaps.size(&chain), Some(1000 + 24 + 5));
        // Cached: a snapshot never changes, so the tree is not walked again.
        fs::write(tree.join("d/late"), [0u8; 7]).unwrap();
        assert_eq!(snaps.size(&chain), Some(1029));
        assert_eq!(snaps.size(&digest(b"no such snapshot")), None);
        snaps.remove(&chain).unwrap();
        assert_eq!(snaps.size(&chain), None, "the cache goes with it");
        assert_eq!(fs::read_dir(dir.path().join("sizes")).unwrap().count(), 0);
    }

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = digest(b"a");
        let b = digest(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], digest(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
        // The same layer over another parent is another snapshot.
        assert_ne!(chain_ids(&[b.clone(), b.clone()])[1], ids[1]);
    }

    /// A layer holding `etc/hello`: its diff ID, and its bytes plain,
    /// gzipped and zstd-compressed.
    fn hello_layer_three_ways() -> (String, [Vec<u8>; 3]) {
        let tar = tar_with(&[("etc/hello", b"hi")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        (digest(&tar), [tar, gz, zst])
    }

    #[test]
    fn gzip_zstd_and_plain_layers_unpack_into_snapshots_with_links() {
        let (dir, snaps) = snapshots();
        let (diff, encodings) = hello_layer_three_ways();
        for (i, bytes) in encodings.into_iter().enumerate() {
            let blob = dir.path().join(format!("blob{i}"));
            fs::write(&blob, &bytes).unwrap();
            let chain = digest(format!("chain{i}").as_bytes());
            assert!(snaps.create(&chain, &blob, &blob, &diff, "t").unwrap());
            assert!(snaps.has(&chain));
            let link = snaps.link(&chain).unwrap();
            assert_eq!(fs::read_to_string(link.join("etc/hello")).unwrap(), "hi");
            assert_eq!(link.file_name().unwrap().len(), LINK_LEN);
            // Twice: nothing to do.
            assert!(!snaps.create(&chain, &blob, &blob, &diff, "t").unwrap());
        }
        assert_eq!(snaps.list().len(), 3);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    /// A reader handing out one byte at a time, as a slow download does.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            match buf.first_mut() {
                Some(b) => *b = *first,
                None => return Ok(0),
            }
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn a_layer_read_as_it_arrives_is_a_snapshot_only_once_committed() {
        let (dir, snaps) = snapshots();
        let (diff, encodings) = hello_layer_three_ways();
        let tar = encodings[0].clone();
        let tmp_count = || fs::read_dir(dir.path().join("tmp")).unwrap().count();
        for (i, bytes) in encodings.into_iter().enumerate() {
            let chain = digest(format!("chain{i}").as_bytes());
            // Compression is told from the first bytes even when they come
            // one at a time.
            let unpacked = snaps
                .unpack_reader(&chain, Trickle(&bytes), Path::new("blob"), &diff, "t")
                .unwrap();
            assert!(!snaps.has(&chain), "not a snapshot before its commit");
            assert_eq!(tmp_count(), 1);
            if i == 0 {
                // Dropped (its blob did not verify): nothing is left.
                drop(unpacked);
                assert!(!snaps.has(&chain));
                assert_eq!(tmp_count(), 0);
                continue;
            }
            unpacked.commit().unwrap();
            assert!(snaps.has(&chain));
            let link = snaps.link(&chain).unwrap();
            assert_eq!(fs::read_to_string(link.join("etc/hello")).unwrap(), "hi");
            assert_eq!(tmp_count(), 0);
        }
        // A stream cut short, or of other content, is refused and leaves nothing.
        let chain = digest(b"cut");
        let cut = &tar[..tar.len() / 2];
        assert!(snaps.unpack_reader(&chain, cut, Path::new("blob"), &diff, "t").is_err());
        let other = tar_with(&[("etc/hello", b"ho")]);
        let err = snaps
            .unpack_reader(&chain, &other[..], Path::new("blob"), &diff, "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing was kept"), "{err}");
        assert!(!snaps.has(&chain));
        assert_eq!(tmp_count(), 0);
    }

    #[test]
    fn a_layer_whose_diff_id_does_not_match_leaves_no_snapshot() {
        let (dir, snaps) = snapshots();
        let tar = tar_with(&[("a", b"1")]);
        let blob = dir.path().join("blob");
        fs::write(&blob, &tar).unwrap();
        let chain = digest(b"c");
        let err = snaps
            .create(&chain, &blob, &blob, &digest(b"other"), "reg/x:1")
            .unwrap_err();
        assert!(err.to_string().contains("diff id"), "{err}");
        assert!(!snaps.has(&chain));
        assert!(snaps.list().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_hostile_layer_is_refused_and_nothing_is_kept() {
        let (dir, snaps) = snapshots();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_size(0);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let blob = dir.path().join("blob");
        fs::write(&blob, &tar).unwrap();
        let chain = digest(b"c");
        assert!(snaps.create(&chain, &blob, &blob, &digest(&tar), "t").is_err());
        assert!(snaps.list().is_empty());
        assert!(!dir.path().join("escape").exists());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn remove_takes_the_snapshot_and_its_link() {
        let (dir, snaps) = snapshots();
        let tar = tar_with(&[("a", b"1")]);
        let blob = dir.path().join("blob");
        fs::write(&blob, &tar).unwrap();
        let chain = digest(b"c");
        snaps.create(&chain, &blob, &blob, &digest(&tar), "t").unwrap();
        snaps.remove(&chain).unwrap();
        assert!(!snaps.has(&chain));
        assert!(fs::symlink_metadata(snaps.link(&chain).unwrap()).is_err());
        snaps.remove(&chain).unwrap();
    }
}
