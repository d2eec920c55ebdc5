//! The content store: blobs (manifests, configs, layer archives) kept by
//! their sha256 under `blobs/sha256/<hex>`.
//!
//! A blob is written to a temporary file under `tmp/`, hashed as the bytes
//! arrive, fsynced, and renamed into place only when its digest is the one
//! expected. So a name under `blobs/` always holds exactly the bytes it
//! names: a download that dies half-way leaves a temporary file (swept at
//! the next daemon start, see [`super::ImageStore::sweep`]), never a blob.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};

use super::error::{ImageError, Result};
use super::{parse_digest, sync_dir, SHA256_PREFIX};

/// The blobs of one image store.
#[derive(Debug, Clone)]
pub struct ContentStore {
    /// `blobs/sha256`
    dir: PathBuf,
    /// Where blobs are written before they are verified.
    tmp: PathBuf,
}

impl ContentStore {
    pub(crate) fn new(root: &Path) -> ContentStore {
        ContentStore {
            dir: root.join("blobs/sha256"),
            tmp: root.join("tmp"),
        }
    }

    /// The file of a blob (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.dir.join(parse_digest(digest)?))
    }

    /// Whether the blob is present.
    pub fn has(&self, digest: &str) -> bool {
        self.path(digest)
            .ok()
            .and_then(|p| fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_file())
    }

    /// Size in bytes of a present blob.
    pub fn size(&self, digest: &str) -> Option<u64> {
        fs::metadata(self.path(digest).ok()?).ok().map(|m| m.len())
    }

    /// Reads a whole blob, checking it still hashes to its name (configs
    /// and manifests are small, and are parsed from what is read here).
    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.path(digest)?;
        let bytes = fs::read(&path).map_err(|source| ImageError::Store { path, source })?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(ImageError::CorruptBlob {
                expected: digest.into(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Stores `bytes` as the blob `expected`, refusing them if they hash to
    /// anything else.
    pub fn put(&self, bytes: &[u8], expected: &str, reference: &str) -> Result<()> {
        let mut ingest = self.begin()?;
        ingest.write_all(bytes).map_err(|source| ImageError::Store {
            path: ingest.path.clone(),
            source,
        })?;
        ingest.commit(expected, reference).map(|_| ())
    }

    /// Starts writing a blob under `tmp/`.
    pub fn begin(&self) -> Result<Ingest> {
        let path = super::tmp_name(&self.tmp, "blob", "");
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| ImageError::Store {
                path: path.clone(),
                source,
            })?;
        Ok(Ingest {
            file: Some(file),
            path,
            hasher: Sha256::new(),
            size: 0,
            blobs: self.dir.clone(),
            committed: false,
        })
    }

    /// Removes a blob; a missing one is fine.
    pub fn remove(&self, digest: &str) -> Result<()> {
        let path = self.path(digest)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ImageError::Store { path, source: e }),
            _ => Ok(()),
        }
    }

    /// Every blob's digest.
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
}

/// A blob being written: hashed as it is written, renamed into place by
/// [`Ingest::commit`] only if the digest matches. Dropped uncommitted, its
/// temporary file is removed.
#[derive(Debug)]
pub struct Ingest {
    file: Option<File>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    blobs: PathBuf,
    committed: bool,
}

impl Ingest {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `sha256:<hex>` of the bytes written so far.
    pub fn digest(&self) -> String {
        format!("{SHA256_PREFIX}{}", hex::encode(self.hasher.clone().finalize()))
    }

    /// fsyncs the blob and moves it to `blobs/sha256/<hex>` if it hashes to
    /// `expected`; otherwise removes it and says so. Returns the size.
    pub fn commit(mut self, expected: &str, reference: &str) -> Result<u64> {
        let hex = parse_digest(expected)?.to_owned();
        let actual = format!("{SHA256_PREFIX}{}", hex::encode(self.hasher.clone().finalize()));
        if actual != expected {
            return Err(ImageError::BlobDigestMismatch {
                reference: reference.into(),
                expected: expected.into(),
                actual,
            });
        }
        let store_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImageError::Store { path, source }
        };
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(store_error(&self.path))?;
        }
        let target = self.blobs.join(&hex);
        fs::rename(&self.path, &target).map_err(store_error(&target))?;
        self.committed = true;
        sync_dir(&self.blobs);
        Ok(self.size)
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob already committed"))?;
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// An [`Ingest`] as a tokio writer, for `oci_client::Client::pull_blob`.
/// Writes go to the local disk in small chunks; doing them inline is cheaper
/// than a thread hop per chunk. `progress` is called with the bytes so far.
/// More than `limit` bytes (the size the manifest declared) is an error at
/// once: a registry streaming without end must not fill the disk before the
/// digest check at the end could refuse it.
pub struct AsyncIngest<F: FnMut(u64) + Unpin> {
    pub ingest: Ingest,
    pub progress: F,
    pub limit: u64,
}

impl<F: FnMut(u64) + Unpin> tokio::io::AsyncWrite for AsyncIngest<F> {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.ingest.size + buf.len() as u64 > this.limit {
            return Poll::Ready(Err(io::Error::other(format!(
                "the registry sent more than the {} bytes the manifest declares",
                this.limit
            ))));
        }
        let result = this.ingest.write(buf);
        if result.is_ok() {
            (this.progress)(this.ingest.size);
        }
        Poll::Ready(result)
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("{SHA256_PREFIX}{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let store = ContentStore::new(dir.path());
        (dir, store)
    }

    #[test]
    fn a_blob_is_stored_under_its_digest_and_read_back_verified() {
        let (dir, store) = store();
        let digest = sha256_digest(b"hello");
        store.put(b"hello", &digest, "t").unwrap();
        assert!(store.has(&digest));
        assert_eq!(store.read(&digest).unwrap(), b"hello");
        assert_eq!(store.size(&digest), Some(5));
        assert_eq!(store.list(), vec![digest.clone()]);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        // Corrupted on disk afterwards: reading it says so.
        fs::write(store.path(&digest).unwrap(), b"hellx").unwrap();
        assert!(matches!(store.read(&digest), Err(ImageError::CorruptBlob { .. })));
    }

    #[test]
    fn a_blob_with_the_wrong_digest_is_never_stored() {
        let (dir, store) = store();
        let claimed = sha256_digest(b"something else");
        let err = store.put(b"hello", &claimed, "reg/x:1").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&claimed) && msg.contains("nothing was unpacked"), "{msg}");
        assert!(!store.has(&claimed));
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "temp file removed"
        );
        assert_eq!(fs::read_dir(dir.path().join("blobs/sha256")).unwrap().count(), 0);
    }

    #[test]
    fn an_abandoned_ingest_leaves_nothing() {
        let (dir, store) = store();
        let mut ingest = store.begin().unwrap();
        ingest.write_all(b"half").unwrap();
        assert_eq!(ingest.size(), 4);
        drop(ingest);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(store.list().is_empty());
    }

    #[tokio::test]
    async fn an_async_ingest_refuses_bytes_past_the_declared_size() {
        use tokio::io::AsyncWriteExt;
        let (dir, store) = store();
        let mut seen = 0;
        let mut writer = AsyncIngest {
            ingest: store.begin().unwrap(),
            progress: |n| seen = n,
            limit: 5,
        };
        writer.write_all(b"12345").await.unwrap();
        let err = writer.write_all(b"6").await.unwrap_err();
        assert!(err.to_string().contains("more than the 5 bytes"), "{err}");
        drop(writer);
        assert_eq!(seen, 5);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
