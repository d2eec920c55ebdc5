//! Image commands: pull (streamed progress), list, remove, tag. Pulled
//! images live in the image store, not as objects: these act on it through
//! the engine's image seam.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::logs::STREAM_BUFFER;
use super::{CommandError, Result};
use crate::image::{Credentials, ImageError, PullEvent};
use crate::reconcile::Engine;
use crate::wire::*;

fn image_error(e: ImageError) -> CommandError {
    match e {
        ImageError::NotFound { .. } => CommandError::NotFound(e.to_string().trim_end_matches(" not found").into()),
        ImageError::BadReference { .. } => CommandError::Invalid(e.to_string()),
        other => CommandError::Unavailable(other.to_string()),
    }
}

fn progress_line(event: PullEvent) -> PullProgress {
    match event {
        PullEvent::Resolved { digest, layers } => PullProgress::Resolved {
            digest,
            layers: layers
                .into_iter()
                .map(|(digest, size)| PullLayer { digest, size })
                .collect(),
        },
        PullEvent::Present { digest } => PullProgress::Present { digest },
        PullEvent::Progress { digest, done, total } => PullProgress::Downloading { digest, done, total },
        PullEvent::Downloaded { digest } => PullProgress::Downloaded { digest },
        PullEvent::Unpacked { digest } => PullProgress::Unpacked { digest },
    }
}

/// Pulls in the background, streaming progress; the last line is `done` or
/// `error`. A bad reference is refused before the stream starts.
pub async fn pull(engine: &Arc<Engine>, req: PullRequest) -> Result<mpsc::Receiver<PullProgress>> {
    pull_as(engine, req, None).await
}

/// [`pull`] with a client's credentials instead of the daemon's `config.json`'s.
pub async fn pull_as(
    engine: &Arc<Engine>,
    req: PullRequest,
    credentials: Option<Credentials>,
) -> Result<mpsc::Receiver<PullProgress>> {
    let reference = crate::image::record::normalize(&req.reference)
        .map_err(image_error)?
        .whole();
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let engine = engine.clone();
    tokio::spawn(async move {
        // Progress comes from inside the pull, which must not wait on a slow
        // reader: lines it cannot queue are dropped (the final one is not).
        let sender = tx.clone();
        let progress: crate::image::Progress = Arc::new(move |event| {
            let _ = sender.try_send(progress_line(event));
        });
        let last = match engine
            .image_host()
            .pull_as(&reference, req.platform.as_deref(), progress, credentials.as_ref())
            .await
        {
            Ok(record) => PullProgress::Done {
                reference: reference.clone(),
                id: record.id,
            },
            Err(e) => PullProgress::Error { message: e.to_string() },
        };
        let _ = tx.send(last).await;
    });
    Ok(rx)
}

/// Every pulled image, or with `reference` only the one it names (none
/// when it names none): the CLI asks this way so that it need not parse
/// references itself (the reference grammar's regex costs a fresh process
/// tens of milliseconds).
pub fn list(engine: &Engine, reference: Option<&str>) -> Result<Vec<ImageListItem>> {
    let host = engine.image_host();
    let mut images = host.images().map_err(image_error)?;
    // How many images use each layer (by chain: a snapshot is shared only
    // with the same layers below it), counted over every image.
    let mut users: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for s in &images {
        let distinct: std::collections::HashSet<&String> = s.record.chain_ids.iter().collect();
        for chain in distinct {
            *users.entry(chain.clone()).or_default() += 1;
        }
    }
    if let Some(reference) = reference {
        let id = host.image(reference).map(|r| r.id);
        images.retain(|s| Some(&s.record.id) == id.as_ref());
    }
    Ok(images
        .iter()
        .map(|s| {
            let sizes = host.layer_sizes(&s.record);
            ImageListItem {
                references: s.references.clone(),
                id: s.record.id.clone(),
                manifest_digest: s.record.manifest_digest.clone(),
                size: sizes.iter().sum(),
                shared_size: s
                    .record
                    .chain_ids
                    .iter()
                    .zip(&sizes)
                    .filter(|(chain, _)| users.get(*chain).is_some_and(|n| *n > 1))
                    .map(|(_, size)| size)
                    .sum(),
                layers: s.record.layers.len(),
                platform: s.record.platform.clone(),
                created_at: s.record.created_at,
            }
        })
        .collect())
}

/// Removes a reference (the image with its last one). Deleting the image is
/// refused while a container made from it exists, unless `force`.
pub async fn remove(engine: &Arc<Engine>, req: RemoveImageRequest) -> Result<RemoveImageResponse> {
    let record = engine
        .image_host()
        .image(&req.name)
        .ok_or_else(|| CommandError::NotFound(format!("image {}", req.name)))?;
    // Untagging one of several references deletes nothing: allowed, as Docker does.
    let references = engine
        .image_host()
        .images()
        .map_err(image_error)?
        .into_iter()
        .find(|s| s.record.id == record.id)
        .map(|s| s.references)
        .unwrap_or_default();
    let by_reference = crate::image::record::normalize(&req.name)
        .ok()
        .is_some_and(|r| references.contains(&r.whole()));
    let deletes = !by_reference || references.len() <= 1;
    if deletes && !req.force {
        let users = engine.containers_using_image(&record.id)?;
        if !users.is_empty() {
            return Err(CommandError::Conflict(format!(
                "image {} is used by container {}: delete {} first, or use --force",
                req.name,
                users.join(", "),
                if users.len() == 1 { "it" } else { "them" }
            )));
        }
    }
    let images = engine.image_host().clone();
    let name = req.name.clone();
    let (record, deleted) = tokio::task::spawn_blocking(move || images.remove_image(&name))
        .await
        .map_err(|e| CommandError::Unavailable(format!("removing the image: {e}")))?
        .map_err(image_error)?;
    Ok(RemoveImageResponse { id: record.id, deleted })
}

pub fn tag(engine: &Engine, req: TagRequest) -> Result<ImageListItem> {
    let record = engine.image_host().tag(&req.source, &req.target).map_err(image_error)?;
    list(engine, None)?
        .into_iter()
        .find(|i| i.id == record.id)
        .ok_or_else(|| CommandError::NotFound(format!("image {}", req.target)))
}

/// Pushes a local image to a registry.
pub async fn push(engine: &Engine, req: PushRequest) -> Result<PushResponse> {
    push_as(engine, req, None).await
}

/// [`push`] with a client's credentials instead of the daemon's `config.json`'s.
pub async fn push_as(engine: &Engine, req: PushRequest, credentials: Option<Credentials>) -> Result<PushResponse> {
    let target = req.target.clone().unwrap_or_else(|| req.source.clone());
    let reference = crate::image::record::normalize(&target).map_err(image_error)?.whole();
    let digest = engine
        .image_host()
        .push_as(&req.source, req.target.as_deref(), credentials.as_ref())
        .await
        .map_err(image_error)?;
    Ok(PushResponse { reference, digest })
}

/// Removes images no reference names and no container uses, then unused
/// blobs and snapshots.
pub async fn prune(engine: &Arc<Engine>) -> Result<PruneResponse> {
    let in_use = engine.images_in_use()?;
    let images = engine.image_host();
    let removed = tokio::task::spawn_blocking(move || images.prune(&in_use))
        .await
        .map_err(|e| CommandError::Unavailable(format!("pruning images: {e}")))?
        .map_err(image_error)?;
    Ok(PruneResponse {
        removed: removed.into_iter().map(|r| r.id).collect(),
    })
}

fn absolute(path: &str) -> Result<std::path::PathBuf> {
    let p = std::path::PathBuf::from(path);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(CommandError::Invalid(format!("{path}: the path must be absolute")))
    }
}

/// Writes images into a tar on the daemon's host.
pub async fn save(engine: &Arc<Engine>, req: SaveRequest) -> Result<()> {
    let out = absolute(&req.path)?;
    let oci_only = match req.format.as_deref() {
        None | Some("docker") | Some("docker-archive") => false,
        Some("oci") | Some("oci-archive") => true,
        Some(other) => return Err(CommandError::Invalid(format!("format {other}: expected docker or oci"))),
    };
    if req.names.is_empty() {
        return Err(CommandError::Invalid("name at least one image to save".into()));
    }
    let images = engine.image_host();
    tokio::task::spawn_blocking(move || images.save(&req.names, &out, oci_only))
        .await
        .map_err(|e| CommandError::Unavailable(format!("saving images: {e}")))?
        .map_err(image_error)
}

/// Loads a `docker save` or OCI archive from the daemon's host.
pub async fn load(engine: &Arc<Engine>, req: LoadRequest) -> Result<LoadResponse> {
    let path = absolute(&req.path)?;
    let images = engine.image_host();
    let loaded = tokio::task::spawn_blocking(move || {
        images.load(&path).map(|loaded| {
            loaded
                .into_iter()
                .map(|(record, references)| {
                    let size = images.layer_sizes(&record).iter().sum::<u64>();
                    (record, references, size)
                })
                .collect::<Vec<_>>()
        })
    })
    .await
    .map_err(|e| CommandError::Unavailable(format!("loading images: {e}")))?
    .map_err(image_error)?;
    Ok(LoadResponse {
        images: loaded
            .into_iter()
            .map(|(record, references, size)| ImageListItem {
                references,
                id: record.id.clone(),
                manifest_digest: record.manifest_digest.clone(),
                size,
                shared_size: 0,
                layers: record.layers.len(),
                platform: record.platform.clone(),
                created_at: record.created_at,
            })
            .collect(),
    })
}

/// Commits a container's changes as a new image.
pub async fn commit(engine: &Arc<Engine>, req: CommitRequest) -> Result<ImageListItem> {
    crate::image::record::normalize(&req.reference).map_err(image_error)?;
    let record = engine.commit_container(&req.container, &req.reference).await?;
    list(engine, None)?
        .into_iter()
        .find(|i| i.id == record.id)
        .ok_or_else(|| CommandError::NotFound(format!("image {}", req.reference)))
}

/// The parts of an image's config blob that inspect shows; the image
/// format spells `history` in snake_case, the API in camelCase.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct InspectedBlob {
    config: Option<crate::wire::ImageConfig>,
    history: Option<Vec<BlobHistory>>,
}

#[derive(serde::Deserialize)]
struct BlobHistory {
    created: Option<String>,
    created_by: Option<String>,
    comment: Option<String>,
    empty_layer: Option<bool>,
}

/// One image in full: record, config and history.
pub fn inspect(engine: &Engine, req: InspectImageRequest) -> Result<ImageDetail> {
    let host = engine.image_host();
    let record = host
        .image(&req.name)
        .ok_or_else(|| CommandError::NotFound(format!("image {}", req.name)))?;
    let blob: InspectedBlob = host
        .config_blob(&record)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let history = blob
        .history
        .unwrap_or_default()
        .into_iter()
        .map(|h| HistoryItem {
            created: h.created,
            created_by: h.created_by,
            comment: h.comment,
            empty_layer: h.empty_layer.unwrap_or(false),
        })
        .collect();
    let references = host
        .images()
        .map_err(image_error)?
        .into_iter()
        .find(|s| s.record.id == record.id)
        .map(|s| s.references)
        .unwrap_or_default();
    Ok(ImageDetail {
        references,
        id: record.id.clone(),
        manifest_digest: record.manifest_digest.clone(),
        platform: record.platform.clone(),
        size: host.layer_sizes(&record).iter().sum(),
        created_at: record.created_at,
        config: blob.config.unwrap_or_default(),
        layers: record
            .layers
            .iter()
            .map(|l| PullLayer {
                digest: l.digest.clone(),
                size: l.size,
            })
            .collect(),
        chain_ids: record.chain_ids.clone(),
        history,
    })
}

/// The unpacked size of each of an image's layers, bottom first: what
/// Docker's history shows beside the steps that made a layer.
pub fn layer_sizes(engine: &Engine, name: &str) -> Result<Vec<u64>> {
    let host = engine.image_host();
    let record = host
        .image(name)
        .ok_or_else(|| CommandError::NotFound(format!("image {name}")))?;
    Ok(host.layer_sizes(&record))
}

/// A registry's `host[:port]`, or why not.
fn registry_name(registry: &str) -> Result<String> {
    let name = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let ok = !name.is_empty()
        && !name.contains('/')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(CommandError::Invalid(format!(
            "{registry:?} is not a registry host[:port]"
        )))
    }
}

pub async fn login(engine: &Engine, req: LoginRequest) -> Result<()> {
    let registry = registry_name(&req.registry)?;
    if req.username.is_empty() || req.password.is_empty() {
        return Err(CommandError::Invalid("a username and a password are needed".into()));
    }
    engine
        .image_host()
        .login(&registry, &req.username, &req.password)
        .await
        .map_err(|e| match e {
            ImageError::Registry { message, .. } if message.starts_with("unauthorized") => {
                CommandError::Invalid(format!("login to {registry} refused: {message}"))
            }
            other => image_error(other),
        })
}

pub fn logout(engine: &Engine, req: LogoutRequest) -> Result<LogoutResponse> {
    let registry = registry_name(&req.registry)?;
    let removed = engine.image_host().logout(&registry).map_err(image_error)?;
    Ok(LogoutResponse { removed })
}

/// Writes a container's filesystem as a tar on the daemon's host.
pub async fn export(engine: &Arc<Engine>, req: ExportRequest) -> Result<()> {
    let out = absolute(&req.path)?;
    Ok(engine.export_container(&req.container, out).await?)
}

/// Disk use by kind, as `docker system df`.
pub async fn disk_usage(engine: &Engine) -> Result<DiskUsage> {
    Ok(engine.disk_usage().await?)
}

/// A root filesystem tar as a one-layer image.
pub async fn import(engine: &Arc<Engine>, req: ImportImageRequest) -> Result<ImageListItem> {
    let path = absolute(&req.path)?;
    crate::image::record::normalize(&req.reference).map_err(image_error)?;
    let images = engine.image_host();
    let (reference, cmd) = (req.reference.clone(), req.cmd.clone());
    let record = tokio::task::spawn_blocking(move || images.import_image(&path, Some(&reference), None, cmd))
        .await
        .map_err(|e| CommandError::Unavailable(format!("importing: {e}")))?
        .map_err(|e| match e {
            ImageError::NotFound { .. } => CommandError::Unavailable(e.to_string()),
            other => CommandError::Invalid(other.to_string()),
        })?;
    list(engine, None)?
        .into_iter()
        .find(|i| i.id == record.id)
        .ok_or_else(|| CommandError::NotFound(format!("image {}", req.reference)))
}
