//! The build cache: what each build step made, by the step's cache key.
//!
//! An entry is a copy of the image record the step made (its config, its
//! layers, their chain IDs), in `buildcache/<key hex>.json`, written as
//! records are (temporary name, fsync, rename). Entries are roots of the
//! store's collection beside the records: an image removed by `rmi` or
//! `image prune` never takes a cached step's layers with it, and a cache
//! pruned by `builder prune` never takes an image's. A build puts a hit's
//! record back among the records (`restore_record`) when it runs or tags
//! it and an image removal took it.
//!
//! Keys are computed by the builder (`crate::build`); to the store they
//! are opaque `sha256:<hex>` strings.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::{ImageError, Result};
use super::record::ImageRecord;
use super::{parse_digest, sync_dir, tmp_name, ImageStore};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    key: String,
    record: ImageRecord,
}

/// What the cache holds: entries, and the unpacked size of the layers only
/// it keeps (what `builder prune` would free).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub entries: usize,
    pub reclaimable_bytes: u64,
}

impl ImageStore {
    fn cache_dir(&self) -> PathBuf {
        self.root.join("buildcache")
    }

    fn cache_file(&self, key: &str) -> Result<PathBuf> {
        Ok(self.cache_dir().join(format!("{}.json", parse_digest(key)?)))
    }

    /// The image a step with this key made, if it is cached and every one
    /// of its snapshots is still there. Not put among the records: a build
    /// does that for the images it runs or tags.
    pub fn cache_get(&self, key: &str) -> Result<Option<ImageRecord>> {
        let path = self.cache_file(key)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ImageError::Store { path, source }),
        };
        let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
            // A torn or foreign file is a miss; the step runs again and
            // writes it anew.
            tracing::warn!(file = %path.display(), "build cache entry does not read; running the step again");
            return Ok(None);
        };
        let record = entry.record;
        if !record.chain_ids.iter().all(|c| self.snapshots.has(c)) || !self.content.has(&record.id) {
            return Ok(None);
        }
        Ok(Some(record))
    }

    /// Records that the step with this key made `record`.
    pub fn cache_put(&self, key: &str, record: &ImageRecord) -> Result<()> {
        let path = self.cache_file(key)?;
        let dir = self.cache_dir();
        fs::create_dir_all(&dir).map_err(|source| ImageError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let entry = Entry {
            key: key.to_owned(),
            record: record.clone(),
        };
        let bytes = serde_json::to_vec(&entry).unwrap_or_default();
        let tmp = tmp_name(&self.root.join("tmp"), "cache", "");
        crate::runtime::write_atomic(&tmp, &bytes)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|source| ImageError::Store {
                path: path.clone(),
                source,
            })?;
        sync_dir(&dir);
        Ok(())
    }

    /// Every cached step's record; an error if an entry does not read, so
    /// that collection keeps everything rather than take its layers.
    pub(crate) fn cache_records(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.cache_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ImageError::Store { path: dir, source }),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let bytes = fs::read(&path).map_err(|source| ImageError::Store {
                path: path.clone(),
                source,
            })?;
            let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| ImageError::BadImage {
                reference: path.display().to_string(),
                reason: format!("build cache entry does not read ({e}): remove the file or run `berth builder prune`"),
            })?;
            out.push(entry.record);
        }
        Ok(out)
    }

    /// Entries, and the unpacked size of snapshots only the cache keeps.
    pub fn cache_usage(&self) -> Result<CacheUsage> {
        let cached = self.cache_records()?;
        let images: HashSet<String> = self.records.try_all()?.into_iter().flat_map(|r| r.chain_ids).collect();
        let only_cache: HashSet<&String> = cached
            .iter()
            .flat_map(|r| &r.chain_ids)
            .filter(|c| !images.contains(*c))
            .collect();
        Ok(CacheUsage {
            entries: cached.len(),
            reclaimable_bytes: only_cache.iter().filter_map(|c| self.snapshots.size(c)).sum(),
        })
    }

    /// Removes every cache entry, then the layers nothing uses any more
    /// (images keep theirs). Returns the entries removed and the bytes
    /// freed (unpacked).
    pub fn cache_prune(&self) -> Result<(usize, u64)> {
        let before = self.cache_usage()?;
        let dir = self.cache_dir();
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                fs::remove_file(e.path()).map_err(|source| ImageError::Store { path: e.path(), source })?;
            }
        }
        self.collect();
        Ok((before.entries, before.reclaimable_bytes))
    }
}
