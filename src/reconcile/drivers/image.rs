//! Images: a registry reference pulled, an archive loaded, or a root
//! filesystem tar imported, each into the one image store (blobs, snapshots
//! and a record). An imported image has no reference: the object's live
//! info keeps its id, and `image prune` keeps it while that or a container
//! uses it. Deleting an Image object only forgets it: an imported image is
//! then pruned once no container uses it; a pulled one stays until `rmi`,
//! as Docker's do.

use std::sync::Arc;

use super::{Driver, DriverResult, Observe};
use crate::image::ImageRecord;
use crate::manifest::{Kind, Object, PullPolicy, Spec};
use crate::plan::{Launch, ObjectKey, RunState};
use crate::reconcile::error::DriverError;
use crate::reconcile::records::{self, ImageInfo, Live, LiveInfo};
use crate::reconcile::seams::BoxFuture;
use crate::reconcile::{now_millis, Engine};

pub struct ImageDriver;

impl Driver for ImageDriver {
    fn observe(&self, engine: &Arc<Engine>, live: &Live, _mode: Observe) -> Option<RunState> {
        match &live.info {
            LiveInfo::Image(ImageInfo { id: Some(id), .. }) => {
                let record = engine.host.images.image(id)?;
                engine.host.images.lower_dirs(&record).ok()?;
                Some(RunState::Present)
            }
            // An import an older berth kept as a bare tree (no id): gone,
            // so the next pass imports it again as an image.
            _ => None,
        }
    }

    fn create<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        obj: &'a Object,
        hash: &'a str,
        _launch: Launch,
    ) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            let Spec::Image(spec) = &obj.spec else {
                return Err(DriverError::Invalid(format!("{} is not an image", obj.name())));
            };
            let key = ObjectKey::new(Kind::Image, obj.name());
            if let Some(reference) = &spec.reference {
                let policy = spec.pull_policy.unwrap_or_default();
                let record = ensure_image(engine, &key, reference, spec.platform.as_deref(), policy).await?;
                put_image_live(engine, obj, hash, &record)?;
                return Ok(());
            }
            if let Some(build) = &spec.build {
                let record = build_image(engine, &key, hash, build)?;
                put_live(engine, obj, hash, &record, record.id.clone())?;
                return Ok(());
            }
            if let Some(archive) = &spec.archive {
                let images = engine.host.images.clone();
                let path = std::path::PathBuf::from(archive);
                let loaded = tokio::task::spawn_blocking(move || images.load(&path)).await??;
                let Some((record, _)) = loaded.into_iter().next() else {
                    return Err(DriverError::Invalid(format!("archive {archive} holds no image")));
                };
                put_image_live(engine, obj, hash, &record)?;
                engine.event(&key, "Loaded", &format!("image {} from {archive}", record.short_id()));
                return Ok(());
            }
            let Some(path) = spec.import.clone() else {
                return Err(DriverError::Invalid(
                    "an Image needs `ref`, `archive` or `import`".into(),
                ));
            };
            let images = engine.host.images.clone();
            let digest = spec.digest.clone();
            let tar = path.clone();
            let record = tokio::task::spawn_blocking(move || {
                images.import_image(std::path::Path::new(&tar), None, digest.as_deref(), Vec::new())
            })
            .await??;
            // Status shows the tar's digest, as `digest:` in the spec names it.
            let tar_digest = record.layers.first().map(|l| l.digest.clone()).unwrap_or_default();
            put_live(engine, obj, hash, &record, tar_digest.clone())?;
            engine.event(
                &key,
                "Imported",
                &format!("{path} ({tar_digest}) as image {}", record.short_id()),
            );
            Ok(())
        })
    }

    fn delete<'a>(&'a self, engine: &'a Arc<Engine>, name: &'a str) -> BoxFuture<'a, DriverResult> {
        Box::pin(async move {
            engine.store.live_delete(Kind::Image, name)?;
            Ok(())
        })
    }
}

/// A build of an Image object: of the spec with this hash, running or done.
pub(crate) struct BuildJob {
    hash: String,
    /// `None` while it runs; the image id or why not once done.
    outcome: Option<Result<String, String>>,
}

/// The image an Image object's Dockerfile builds to. The build runs in the
/// background (its RUN steps are containers that passes make, so a pass
/// cannot wait for it): the first call starts it and says the object waits;
/// the pass its end wakes finds the outcome; a failed one is tried again
/// after the executor's backoff.
fn build_image(
    engine: &Arc<Engine>,
    key: &ObjectKey,
    hash: &str,
    build: &crate::manifest::ImageBuild,
) -> Result<ImageRecord, DriverError> {
    if let Some(why) = build.context_digest.as_deref().and_then(|d| d.strip_prefix("error: ")) {
        return Err(DriverError::Invalid(format!("build context {}: {why}", build.context)));
    }
    let name = key.name.clone();
    {
        let mut builds = crate::reconcile::lock(&engine.builds);
        match builds.get(&name) {
            Some(job) if job.hash == hash => match &job.outcome {
                None => return Err(DriverError::Waiting(format!("building {}", build.context))),
                Some(Err(why)) => {
                    // Said once; the executor's backoff decides when the
                    // next attempt builds again (a base image may be made
                    // meanwhile).
                    let why = why.clone();
                    builds.remove(&name);
                    return Err(DriverError::Invalid(why));
                }
                Some(Ok(id)) => {
                    let id = id.clone();
                    builds.remove(&name);
                    return engine
                        .host
                        .images
                        .image(&id)
                        .ok_or_else(|| DriverError::Invalid(format!("the built image {id} is gone")));
                }
            },
            _ => {
                builds.insert(
                    name.clone(),
                    BuildJob {
                        hash: hash.to_string(),
                        outcome: None,
                    },
                );
            }
        }
    }
    let builder = engine
        .builder
        .get()
        .cloned()
        .ok_or_else(|| DriverError::Invalid("this daemon builds no images".into()))?;
    let changed = engine.context_changes(&build.context);
    let why = match changed.is_empty() {
        true => String::new(),
        false => format!(": {}", crate::plan::context_changed(&changed)),
    };
    engine.event(key, "Building", &format!("building {}{why}", build.context));
    let opts = crate::build::BuildOptions {
        context: std::path::PathBuf::from(&build.context),
        dockerfile: std::path::PathBuf::from(build.dockerfile.as_deref().unwrap_or("Dockerfile")),
        build_args: build.args.clone(),
        target: build.target.clone(),
        ..Default::default()
    };
    let engine = engine.clone();
    let key = key.clone();
    let hash = hash.to_string();
    tokio::spawn(async move {
        let outcome = builder.build(&engine, opts).await;
        match &outcome {
            Ok(id) => engine.event(&key, "Built", &format!("image {}", &id[..id.len().min(19)])),
            Err(why) => engine.event(&key, "BuildFailed", why),
        }
        let mut builds = crate::reconcile::lock(&engine.builds);
        // Kept only if the spec it built is still the one wanted.
        if let Some(job) = builds.get_mut(&key.name).filter(|j| j.hash == hash) {
            job.outcome = Some(outcome);
        }
        drop(builds);
        engine.wake();
    });
    Err(DriverError::Waiting(format!("building {}", build.context)))
}

/// Records a pulled or loaded image as `obj`'s live state: its record's id,
/// manifest digest and top snapshot.
fn put_image_live(engine: &Engine, obj: &Object, hash: &str, record: &ImageRecord) -> DriverResult {
    put_live(engine, obj, hash, record, record.manifest_digest.clone())
}

/// Records `record` as `obj`'s live state, shown by `digest`.
fn put_live(engine: &Engine, obj: &Object, hash: &str, record: &ImageRecord, digest: String) -> DriverResult {
    let top = engine
        .host
        .images
        .lower_dirs(record)?
        .into_iter()
        .next()
        .unwrap_or_default();
    let info = LiveInfo::Image(ImageInfo {
        digest,
        dir: top,
        id: Some(record.id.clone()),
    });
    engine
        .store
        .live_put(&records::encode_live(obj, hash, &info, now_millis()))?;
    Ok(())
}

/// The image `reference` names, pulled as `policy` says: `IfNotPresent`
/// pulls only when no local image has the reference, `Always` pulls, `Never`
/// refuses a missing one. `key` gets the Pulling/Pulled events.
pub(crate) async fn ensure_image(
    engine: &Arc<Engine>,
    key: &ObjectKey,
    reference: &str,
    platform: Option<&str>,
    policy: PullPolicy,
) -> Result<ImageRecord, DriverError> {
    if policy != PullPolicy::Always {
        if let Some(record) = engine.host.images.image(reference) {
            return Ok(record);
        }
    }
    if policy == PullPolicy::Never {
        return Err(DriverError::Invalid(format!(
            "image {reference} is not present locally and pullPolicy is Never"
        )));
    }
    engine.event(key, "Pulling", &format!("pulling {reference}"));
    let progress: crate::image::Progress = Arc::new(|event| tracing::debug!(?event, "pull"));
    match engine.host.images.pull(reference, platform, progress).await {
        Ok(record) => {
            engine.event(
                key,
                "Pulled",
                &format!(
                    "{reference}: image {} ({} layers, {} bytes)",
                    record.short_id(),
                    record.layers.len(),
                    record.size()
                ),
            );
            Ok(record)
        }
        Err(e) => {
            engine.event(key, "PullFailed", &e.to_string());
            Err(e.into())
        }
    }
}

impl Engine {
    /// The image store, for the image commands (pull, list, rmi, tag).
    pub fn image_host(&self) -> Arc<dyn crate::reconcile::seams::ImageHost> {
        self.host.images.clone()
    }

    /// Ids of the images live containers and Image objects use.
    pub fn images_in_use(&self) -> crate::reconcile::Result<std::collections::HashSet<String>> {
        Ok(self
            .live_all()?
            .into_iter()
            .filter_map(|l| match l.info {
                LiveInfo::Container(c) => c.image_id,
                LiveInfo::Image(i) => i.id,
                _ => None,
            })
            .collect())
    }

    /// Commits container `name`'s writable layer onto its image as a new
    /// image named `reference`; its config is the image's with the
    /// container's command, env, working dir and user over it, as `docker
    /// commit` keeps a container's settings.
    pub async fn commit_container(&self, name: &str, reference: &str) -> std::result::Result<ImageRecord, DriverError> {
        let live = self
            .live(Kind::Container, name)?
            .ok_or_else(|| DriverError::Invalid(format!("container/{name} does not exist")))?;
        let (Some(info), Some(spec)) = (live.container_info(), live.container_spec()) else {
            return Err(DriverError::Invalid(format!(
                "container/{name} has no container record"
            )));
        };
        let id = info.image_id.clone().ok_or_else(|| {
            DriverError::Invalid(format!(
                "container/{name} was started by an older berth on a bare imported tree; restart it, then commit"
            ))
        })?;
        let base = self
            .host
            .images
            .image(&id)
            .ok_or_else(|| DriverError::Invalid(format!("the image of container/{name} is gone")))?;
        let mut config = base.config.clone();
        if let Some(entrypoint) = &spec.entrypoint {
            config.entrypoint = entrypoint.clone();
        }
        if !spec.command.is_empty() {
            config.cmd = spec.command.clone();
        }
        for (k, v) in &spec.env {
            config
                .env
                .retain(|e| e.split_once('=').map_or(e.as_str(), |(key, _)| key) != k);
            config.env.push(format!("{k}={v}"));
        }
        if let Some(dir) = &spec.working_dir {
            config.working_dir = Some(dir.clone());
        }
        if let Some(user) = &spec.user {
            config.user = Some(user.clone());
        }
        let upper = self.host.containers.upper_dir(name);
        if !upper.is_dir() {
            return Err(DriverError::Invalid(format!(
                "container/{name} has no writable layer (never started?)"
            )));
        }
        let images = self.host.images.clone();
        let reference = reference.to_string();
        Ok(tokio::task::spawn_blocking(move || images.commit(&base, &upper, config, &reference)).await??)
    }

    /// The image of the Image object `name`, once it is made.
    pub fn image_object(&self, name: &str) -> Option<ImageRecord> {
        match self.live(Kind::Image, name).ok()??.info {
            LiveInfo::Image(ImageInfo { id: Some(id), .. }) => self.host.images.image(&id),
            _ => None,
        }
    }

    /// A new unnamed image: `base` (the image container `name` runs) plus
    /// the container's writable layer, with `config` and `history`: what a
    /// build's RUN step makes.
    pub async fn derive_from_container(
        &self,
        name: &str,
        base: &ImageRecord,
        config: crate::image::ImageConfig,
        history: crate::image::HistoryEntry,
    ) -> std::result::Result<ImageRecord, DriverError> {
        let upper = self.host.containers.upper_dir(name);
        if !upper.is_dir() {
            return Err(DriverError::Invalid(format!("container/{name} has no writable layer")));
        }
        let images = self.host.images.clone();
        let base = base.clone();
        Ok(tokio::task::spawn_blocking(move || images.derive(Some(&base), Some(&upper), config, history)).await??)
    }

    /// Writes container `name`'s filesystem (its writable layer over its
    /// image, as the overlay shows it) as a tar at `out`.
    pub async fn export_container(&self, name: &str, out: std::path::PathBuf) -> std::result::Result<(), DriverError> {
        let live = self
            .live(Kind::Container, name)?
            .ok_or_else(|| DriverError::Invalid(format!("container/{name} does not exist")))?;
        let info = live
            .container_info()
            .cloned()
            .ok_or_else(|| DriverError::Invalid(format!("container/{name} has no container record")))?;
        let Some(id) = &info.image_id else {
            return Err(DriverError::Invalid(format!(
                "container/{name} was never started (or was by an older berth on a bare imported tree: restart it)"
            )));
        };
        let record = self
            .host
            .images
            .image(id)
            .ok_or_else(|| DriverError::Invalid(format!("the image of container/{name} is gone")))?;
        let lower_dirs = self.host.images.lower_dirs(&record)?;
        let host = self.host.containers.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            host.export(&name, &lower_dirs, &out).map_err(|source| DriverError::Io {
                action: "export to",
                path: out,
                source,
            })
        })
        .await?
    }

    /// Disk use of images, containers' writable layers and volumes.
    pub async fn disk_usage(&self) -> Result<crate::wire::DiskUsage, DriverError> {
        use crate::wire::{DiskUsage, UsageLine};
        let live = self.live_all()?;
        let in_use = self.images_in_use()?;
        let images = self.host.images.images()?;
        // Unpacked sizes by snapshot, as Docker counts them (blocking: a
        // snapshot not asked about before is walked once).
        let host = self.host.images.clone();
        let layer_sizes: Vec<Vec<u64>> = {
            let records: Vec<ImageRecord> = images.iter().map(|s| s.record.clone()).collect();
            tokio::task::spawn_blocking(move || records.iter().map(|r| host.layer_sizes(r)).collect())
                .await
                .unwrap_or_default()
        };
        let mut sizes: std::collections::HashMap<String, (u64, bool)> = std::collections::HashMap::new();
        for (s, layer_sizes) in images.iter().zip(&layer_sizes) {
            let active = in_use.contains(&s.record.id);
            for (chain, size) in s.record.chain_ids.iter().zip(layer_sizes) {
                let entry = sizes.entry(chain.clone()).or_insert((*size, false));
                entry.1 |= active;
            }
        }
        let image_line = UsageLine {
            total: images.len(),
            active: images.iter().filter(|s| in_use.contains(&s.record.id)).count(),
            size: sizes.values().map(|(n, _)| n).sum(),
            reclaimable: sizes.values().filter(|(_, used)| !used).map(|(n, _)| n).sum(),
        };
        let cache = self.host.images.clone();
        let cache = tokio::task::spawn_blocking(move || cache.cache_usage())
            .await
            .map_err(|e| DriverError::Task(e.to_string()))??;
        let cache_line = UsageLine {
            total: cache.entries,
            active: 0,
            size: cache.reclaimable_bytes,
            reclaimable: cache.reclaimable_bytes,
        };
        let mut containers = Vec::new();
        let mut mounted = std::collections::HashSet::new();
        let mut volumes = Vec::new();
        for l in &live {
            match &l.info {
                LiveInfo::Container(_) => {
                    let running = matches!(
                        self.host.containers.probe(&l.key.name),
                        crate::runtime::Probe::Running(_) | crate::runtime::Probe::Starting
                    );
                    containers.push((self.host.containers.upper_dir(&l.key.name), running));
                    if let Some(spec) = l.container_spec() {
                        mounted.extend(spec.volumes.iter().filter_map(|m| m.volume.clone()));
                    }
                }
                LiveInfo::Volume(v) => volumes.push((l.key.name.clone(), v.path.clone())),
                _ => {}
            }
        }
        Ok(tokio::task::spawn_blocking(move || {
            let sized: Vec<(u64, bool)> = containers
                .iter()
                .map(|(dir, running)| (dir_size(dir), *running))
                .collect();
            let container_line = UsageLine {
                total: sized.len(),
                active: sized.iter().filter(|(_, r)| *r).count(),
                size: sized.iter().map(|(n, _)| n).sum(),
                reclaimable: sized.iter().filter(|(_, r)| !r).map(|(n, _)| n).sum(),
            };
            let vsized: Vec<(u64, bool)> = volumes
                .iter()
                .map(|(name, path)| (dir_size(path), mounted.contains(name)))
                .collect();
            let volume_line = UsageLine {
                total: vsized.len(),
                active: vsized.iter().filter(|(_, m)| *m).count(),
                size: vsized.iter().map(|(n, _)| n).sum(),
                reclaimable: vsized.iter().filter(|(_, m)| !m).map(|(n, _)| n).sum(),
            };
            DiskUsage {
                images: image_line,
                containers: container_line,
                volumes: volume_line,
                build_cache: cache_line,
            }
        })
        .await
        .unwrap_or_default())
    }

    /// Containers berth made from the image `id`.
    pub fn containers_using_image(&self, id: &str) -> crate::reconcile::Result<Vec<String>> {
        Ok(self
            .live_all()?
            .into_iter()
            .filter(|l| matches!(&l.info, LiveInfo::Container(c) if c.image_id.as_deref() == Some(id)))
            .map(|l| l.key.name)
            .collect())
    }
}

/// Bytes of the regular files under `dir` (never following symlinks); 0 if
/// it is missing. Hardlinked files count once per name, as `du --count-links`.
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}
