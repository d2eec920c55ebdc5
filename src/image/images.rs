//! Pulled images as a whole: finding them, their root filesystem layers,
//! files of their root filesystem, tags, removal and collection of what no
//! image uses any more.

use std::collections::HashSet;
use std::path::PathBuf;

use super::error::{ImageError, Result};
use super::record::{normalize, ImageRecord};
use super::ImageStore;

/// Blobs and snapshots that pulls in progress use before any record names
/// them (a blob found present and so not downloaded again, one just
/// written, a snapshot just unpacked). Collection (`rmi`, `image prune`)
/// keeps them: it decides and deletes each candidate under the lock a pull
/// pins under, and re-reads the records when a pin was released since it
/// read them (a pull that finished meanwhile wrote its record first).
#[derive(Debug, Default, Clone)]
pub(crate) struct Pins(std::sync::Arc<std::sync::Mutex<PinState>>);

#[derive(Debug, Default)]
struct PinState {
    counts: std::collections::HashMap<String, usize>,
    /// Bumped by every release.
    released: u64,
}

/// Holds pins until dropped.
#[derive(Debug)]
pub(crate) struct PinGuard {
    pins: Pins,
    keys: Vec<String>,
}

impl Pins {
    fn state(&self) -> std::sync::MutexGuard<'_, PinState> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pins digests or chain IDs; before the caller looks at whether they
    /// are present, so a collection cannot remove them after the look.
    pub(crate) fn pin(&self, keys: impl IntoIterator<Item = String>) -> PinGuard {
        let keys: Vec<String> = keys.into_iter().collect();
        let mut state = self.state();
        for k in &keys {
            *state.counts.entry(k.clone()).or_default() += 1;
        }
        PinGuard {
            pins: self.clone(),
            keys,
        }
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let mut state = self.pins.state();
        for k in &self.keys {
            if let Some(n) = state.counts.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    state.counts.remove(k);
                }
            }
        }
        state.released += 1;
    }
}

impl ImageStore {
    /// Removes blobs and snapshots that an import, load, commit or pull
    /// that failed added to the store (absent when it looked, under its
    /// pin), once it has dropped its pins: each unless another operation
    /// pinned it meanwhile (it is using it) or a record names it. Decided
    /// and removed under the pins' lock, as [`ImageStore::collect`] does;
    /// nothing is removed while a record does not read.
    pub(crate) fn discard_added(&self, blobs: &[String], snapshots: &[String]) {
        if blobs.is_empty() && snapshots.is_empty() {
            return;
        }
        let state = self.pins.state();
        let records = match self.gc_roots() {
            Ok(records) => records,
            Err(e) => {
                tracing::error!("keeping the blobs and snapshots a failed operation added: {e}");
                return;
            }
        };
        let used: HashSet<&String> = records
            .iter()
            .flat_map(|r| r.layers.iter().map(|l| &l.digest).chain([&r.id, &r.manifest_digest]))
            .chain(records.iter().flat_map(|r| &r.chain_ids))
            .collect();
        for digest in blobs {
            if state.counts.contains_key(digest) || used.contains(digest) {
                continue;
            }
            if let Err(e) = self.content.remove(digest) {
                tracing::warn!("removing blob {digest} of a failed operation: {e}");
            }
        }
        for chain in snapshots {
            if state.counts.contains_key(chain) || used.contains(chain) {
                continue;
            }
            if let Err(e) = self.snapshots.remove(chain) {
                tracing::warn!("removing snapshot {chain} of a failed operation: {e}");
            }
        }
    }
}

/// Blobs and snapshots one import, load or commit writes: each pinned
/// before it is looked for (so collection cannot remove it before a record
/// names it), and, when the operation ends ([`Self::finish`]), those it
/// added and nothing names removed again: all of them when it failed.
pub(crate) struct NewBlobs<'a> {
    store: &'a ImageStore,
    pins: Vec<PinGuard>,
    added: Vec<String>,
    made: Vec<String>,
}

impl<'a> NewBlobs<'a> {
    pub(crate) fn new(store: &'a ImageStore) -> NewBlobs<'a> {
        NewBlobs {
            store,
            pins: Vec::new(),
            added: Vec::new(),
            made: Vec::new(),
        }
    }

    /// Commits `ingest` as `digest` unless the store has it; returns its size.
    pub(crate) fn commit(&mut self, ingest: super::content::Ingest, digest: &str, reference: &str) -> Result<u64> {
        self.pins.push(self.store.pins.pin([digest.to_owned()]));
        if self.store.content.has(digest) {
            return Ok(ingest.size());
        }
        self.added.push(digest.to_owned());
        ingest.commit(digest, reference)
    }

    /// Stores `bytes` as `digest` unless the store has it.
    pub(crate) fn put(&mut self, bytes: &[u8], digest: &str, reference: &str) -> Result<()> {
        self.pins.push(self.store.pins.pin([digest.to_owned()]));
        if self.store.content.has(digest) {
            return Ok(());
        }
        self.added.push(digest.to_owned());
        self.store.content.put(bytes, digest, reference)
    }

    /// Makes snapshot `chain` with `create` (which says whether it made
    /// it, or found it there), pinned first.
    pub(crate) fn snapshot(&mut self, chain: &str, create: impl FnOnce() -> Result<bool>) -> Result<bool> {
        self.pins.push(self.store.pins.pin([chain.to_owned()]));
        let made = create()?;
        if made {
            self.made.push(chain.to_owned());
        }
        Ok(made)
    }

    /// Unpins, then removes what it added that nothing names.
    pub(crate) fn finish(self) {
        let NewBlobs {
            store,
            pins,
            added,
            made,
        } = self;
        drop(pins);
        store.discard_added(&added, &made);
    }
}

/// An image with every reference naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub record: ImageRecord,
    pub references: Vec<String>,
}

impl ImageStore {
    /// What collection keeps the layers and blobs of: every image record
    /// and every build cache entry's.
    fn gc_roots(&self) -> Result<Vec<ImageRecord>> {
        let mut records = self.records.try_all()?;
        records.extend(self.cache_records()?);
        Ok(records)
    }

    /// Registries besides loopback that may be reached over plain HTTP.
    pub fn with_insecure(mut self, registries: Vec<String>) -> ImageStore {
        self.insecure = registries;
        self
    }

    /// The image a reference (normalized first) or an id names.
    pub fn image(&self, name: &str) -> Option<ImageRecord> {
        self.records.resolve(name)
    }

    /// Every image with its references, newest first; the index's or a
    /// record's error rather than a list that would show named images as
    /// unnamed (see [`super::record`]).
    pub fn images(&self) -> Result<Vec<ImageSummary>> {
        let refs = self.records.refs()?;
        Ok(self
            .records
            .try_all()?
            .into_iter()
            .map(|record| ImageSummary {
                references: refs
                    .iter()
                    .filter(|(_, id)| **id == record.id)
                    .map(|(r, _)| r.clone())
                    .collect(),
                record,
            })
            .collect())
    }

    /// Each layer's unpacked size (see [`super::snapshot::Snapshots::size`]),
    /// bottom first; 0 for a snapshot that is missing. Blocking: walks a
    /// snapshot the first time it is asked about.
    pub fn layer_sizes(&self, record: &ImageRecord) -> Vec<u64> {
        record
            .chain_ids
            .iter()
            .map(|chain| self.snapshots.size(chain).unwrap_or(0))
            .collect()
    }

    /// The overlay lower dirs of an image, top first: the short links of
    /// its snapshots (see [`super::snapshot`]). Errors if one is missing.
    pub fn lower_dirs(&self, record: &ImageRecord) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::with_capacity(record.chain_ids.len());
        for chain in record.chain_ids.iter().rev() {
            if !self.snapshots.has(chain) {
                return Err(ImageError::BadImage {
                    reference: record.short_id().into(),
                    reason: format!("its snapshot {chain} is missing: pull it again"),
                });
            }
            dirs.push(self.snapshots.link(chain)?);
        }
        Ok(dirs)
    }

    /// A regular file of the image's root filesystem (`/etc/passwd`), as the
    /// top-most layer that has it holds it; `None` if no layer has it, a
    /// layer deleted it, or the way there passes a symlink (which could lead
    /// out of the image).
    pub fn image_file(&self, record: &ImageRecord, path: &str) -> Option<String> {
        super::merged::read_file(&self.lower_dirs(record).ok()?, path)
    }

    /// Makes `target` name the image `source` names.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageRecord> {
        let record = self.records.try_resolve(source)?.ok_or_else(|| ImageError::NotFound {
            reference: source.into(),
        })?;
        let target = normalize(target)?.whole();
        self.records
            .update_refs(|refs| refs.insert(target, record.id.clone()))?;
        Ok(record)
    }

    /// Removes a reference; when it was the image's last (or `name` is the
    /// id), the image, then every snapshot and blob no other image uses.
    /// Returns the image and whether it was deleted (not only untagged).
    pub fn remove_image(&self, name: &str) -> Result<(ImageRecord, bool)> {
        let record = self
            .records
            .try_resolve(name)?
            .ok_or_else(|| ImageError::NotFound { reference: name.into() })?;
        let by_ref = normalize(name).ok().map(|r| r.whole());
        let remaining = self.records.update_refs(|refs| {
            match &by_ref {
                Some(r) if refs.get(r) == Some(&record.id) => {
                    refs.remove(r);
                }
                // By id: every reference goes.
                _ => refs.retain(|_, id| *id != record.id),
            }
            refs.values().filter(|id| **id == record.id).count()
        })?;
        if remaining > 0 {
            return Ok((record, false));
        }
        self.records.delete(&record.id)?;
        self.collect();
        Ok((record, true))
    }

    /// Removes images no reference names, except those in `in_use` (ids),
    /// then every snapshot and blob no remaining image uses. Returns the
    /// removed images. Only on an index and records that all read: an
    /// error otherwise, with nothing deleted.
    pub fn prune(&self, in_use: &HashSet<String>) -> Result<Vec<ImageRecord>> {
        let named: HashSet<String> = self.records.refs()?.into_values().collect();
        let mut removed = Vec::new();
        for record in self.records.try_all()? {
            if !named.contains(&record.id) && !in_use.contains(&record.id) {
                self.records.delete(&record.id)?;
                removed.push(record);
            }
        }
        self.collect();
        Ok(removed)
    }

    /// Removes snapshots and blobs of pulled images that no image record
    /// uses. Deletes
    /// nothing (and logs why) while a record does not read: its image's
    /// layers would look unused.
    pub fn collect(&self) {
        let used = |store: &ImageStore| -> Result<(HashSet<String>, HashSet<String>)> {
            let records = store.gc_roots()?;
            let chains: HashSet<String> = records.iter().flat_map(|r| r.chain_ids.iter().cloned()).collect();
            let blobs: HashSet<String> = records
                .iter()
                .flat_map(|r| {
                    r.layers
                        .iter()
                        .map(|l| l.digest.clone())
                        .chain([r.id.clone(), r.manifest_digest.clone()])
                })
                .collect();
            Ok((chains, blobs))
        };
        let mut seen = self.pins.state().released;
        let (mut chains, mut blobs) = match used(self) {
            Ok(used) => used,
            Err(e) => {
                tracing::error!("not collecting unused blobs and snapshots: {e}");
                return;
            }
        };
        let mut failed = false;
        // Decided and removed under the pins' lock (see Pins).
        let mut unused = |key: &String, snapshot: bool, remove: &dyn Fn() -> Result<()>| {
            let state = self.pins.state();
            if failed || state.counts.contains_key(key) {
                return;
            }
            if state.released != seen {
                seen = state.released;
                match used(self) {
                    Ok(now) => (chains, blobs) = now,
                    Err(e) => {
                        tracing::error!("not collecting unused blobs and snapshots: {e}");
                        failed = true;
                        return;
                    }
                }
            }
            let kept = if snapshot {
                chains.contains(key)
            } else {
                blobs.contains(key)
            };
            if !kept {
                if let Err(e) = remove() {
                    tracing::warn!(
                        "removing unused {} {key}: {e}",
                        if snapshot { "snapshot" } else { "blob" }
                    );
                }
            }
        };
        for chain in self.snapshots.list() {
            unused(&chain, true, &|| self.snapshots.remove(&chain));
        }
        for blob in self.content.list() {
            unused(&blob, false, &|| self.content.remove(&blob));
        }
    }
}
