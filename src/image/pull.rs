//! Pulling an image from a registry with `oci-client`.
//!
//! 1. The reference is parsed and normalized (a bad one fails before any
//!    request). The manifest is fetched raw (OCI and Docker v2 manifests and
//!    indexes); an index is resolved to the manifest of the platform asked
//!    for (`linux/amd64` unless `platform` says otherwise). Manifests are
//!    hashed by berth: a reference by digest must match it.
//! 2. The config blob and every layer blob not already in the content store
//!    are streamed with `pull_blob_stream` into the content store, hashed as
//!    they are written and renamed into place only if the digest matches
//!    (see [`super::content`]); layers download concurrently.
//! 3. A layer whose blob is downloading is unpacked in the same pass: the
//!    chunks written to the store also go, through a bounded channel (a slow
//!    unpack holds the download back), to a decompress + unpack into a
//!    temporary snapshot, itself hashed against the config's diff ID. It is
//!    renamed into place only once both the blob's digest and the diff ID
//!    verify; otherwise it is removed. Blobs already in the store, and the
//!    other layers of a blob used twice, unpack from the stored file. Then
//!    the record is written, then the reference: an error anywhere leaves no
//!    reference and no snapshot of this pull.
//!
//! Plain HTTP is used only for registries on loopback (`localhost:*`,
//! `127.0.0.1:*`, `[::1]:*`) and those the daemon was told are insecure, as
//! Docker's `insecure-registries`. Credentials come from
//! `~/.docker/config.json` (via `docker_credential`); without any the pull
//! is anonymous, with bearer tokens fetched as the registry asks.

use std::sync::Arc;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    OciDescriptor, OciImageManifest, IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;
use oci_client::{Client, Reference};

use super::content::{sha256_digest, AsyncIngest};
use super::error::{ImageError, Result};
use super::record::{normalize, ConfigBlob, ImageRecord, LayerRef};
use super::snapshot::chain_ids;
use super::ImageStore;

/// The largest image config accepted (real ones are a few KiB).
const MAX_CONFIG_BYTES: i64 = 16 << 20;

/// The largest manifest or index accepted, as containerd's limit (real ones
/// are a few KiB; a 100-layer manifest about 20 KiB).
pub(crate) const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// How much of an error answer is read, to find the registry's error code.
const MAX_ERROR_BYTES: usize = 64 << 10;

/// How many layers download at once (as Docker's default of 3).
const CONCURRENT_DOWNLOADS: usize = 3;

const ACCEPTED: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// Layer media types berth unpacks (compression is then told by magic bytes).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// What a pull reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The manifest is known: its digest and its layers (digest, size).
    Resolved { digest: String, layers: Vec<(String, u64)> },
    /// A layer is already in the store.
    Present { digest: String },
    /// Bytes of a layer downloaded so far.
    Progress { digest: String, done: u64, total: u64 },
    /// A layer is downloaded and verified.
    Downloaded { digest: String },
    /// A layer is unpacked into its snapshot.
    Unpacked { digest: String },
}

/// Called with each [`PullEvent`].
pub type Progress = Arc<dyn Fn(PullEvent) + Send + Sync>;

/// Whether plain HTTP may be used for `registry`: loopback always, others
/// only when listed.
pub fn is_insecure(registry: &str, listed: &[String]) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            registry
        }
    });
    matches!(host, "localhost" | "127.0.0.1" | "[::1]") || listed.iter().any(|l| l == registry)
}

/// Credentials a client sent with one pull or push (Docker's
/// `X-Registry-Auth`), used instead of those `config.json` holds. No
/// `Debug`: a password must not reach a log.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth identity token, sent as a bearer token.
    IdentityToken(String),
}

impl Credentials {
    fn auth(&self) -> RegistryAuth {
        match self {
            Credentials::Basic { username, password } => RegistryAuth::Basic(username.clone(), password.clone()),
            Credentials::IdentityToken(token) => RegistryAuth::Bearer(token.clone()),
        }
    }
}

/// `credentials` if given, else what `config.json` holds for `registry`.
pub(crate) fn auth_with(registry: &str, credentials: Option<&Credentials>) -> RegistryAuth {
    credentials.map_or_else(|| auth_for(registry), Credentials::auth)
}

/// The credentials `~/.docker/config.json` holds for `registry`, if any.
pub(crate) fn auth_for(registry: &str) -> RegistryAuth {
    let candidates = if registry == "docker.io" || registry == "index.docker.io" {
        vec!["https://index.docker.io/v1/".to_string(), registry.to_string()]
    } else {
        vec![registry.to_string(), format!("https://{registry}")]
    };
    for server in candidates {
        match docker_credential::get_credential(&server) {
            Ok(docker_credential::DockerCredential::UsernamePassword(user, pass)) => {
                return RegistryAuth::Basic(user, pass)
            }
            Ok(docker_credential::DockerCredential::IdentityToken(token)) => return RegistryAuth::Bearer(token),
            Err(_) => continue,
        }
    }
    RegistryAuth::Anonymous
}

/// `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Platform {
    os: String,
    arch: String,
    variant: Option<String>,
}

fn parse_platform(reference: &str, platform: Option<&str>) -> Result<Platform> {
    let text = platform.unwrap_or("linux/amd64");
    let parts: Vec<&str> = text.split('/').collect();
    match parts[..] {
        [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
            os: os.into(),
            arch: arch.into(),
            variant: None,
        }),
        [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => Ok(Platform {
            os: os.into(),
            arch: arch.into(),
            variant: Some(variant.into()),
        }),
        _ => Err(ImageError::BadImage {
            reference: reference.into(),
            reason: format!("platform `{text}` is not os/arch or os/arch/variant (e.g. linux/amd64)"),
        }),
    }
}

/// One line saying what went wrong talking to the registry.
pub(crate) fn classify(reference: &Reference, e: OciDistributionError) -> ImageError {
    let whole = reference.whole();
    let registry = reference.registry();
    if let OciDistributionError::DigestError(oci_client::errors::DigestError::VerificationError { expected, actual }) =
        &e
    {
        return ImageError::BlobDigestMismatch {
            reference: whole,
            expected: expected.clone(),
            actual: actual.clone(),
        };
    }
    let text = e.to_string();
    let mut root = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        root = s.to_string();
        source = s.source();
    }
    let codes: &[oci_client::errors::OciError] = match &e {
        OciDistributionError::RegistryError { envelope, .. } => &envelope.errors,
        _ => &[],
    };
    let has = |wanted: &[OciErrorCode]| codes.iter().any(|c| wanted.contains(&c.code));
    let message = match &e {
        _ if has(&[OciErrorCode::Unauthorized, OciErrorCode::Denied]) => format!(
            "unauthorized: {registry} refused access to {} (credentials from ~/.docker/config.json, or none)",
            reference.repository()
        ),
        _ if has(&[OciErrorCode::ManifestUnknown, OciErrorCode::NameUnknown]) => format!(
            "not found: {registry} has no {}:{}",
            reference.repository(),
            tag_or_digest(reference)
        ),
        _ if has(&[OciErrorCode::BlobUnknown]) => {
            format!("{registry} is missing a blob of {}: {root}", reference.repository())
        }
        OciDistributionError::RequestError(r) if r.is_connect() || r.is_timeout() => {
            format!("cannot reach registry {registry}: {root}")
        }
        OciDistributionError::UnauthorizedError { .. } => format!(
            "unauthorized: {registry} refused access to {} (credentials from ~/.docker/config.json, or none)",
            reference.repository()
        ),
        OciDistributionError::AuthenticationFailure(_) => {
            format!("unauthorized: {registry} refused the credentials (from ~/.docker/config.json, or none): {root}")
        }
        OciDistributionError::ImageManifestNotFoundError(_) => {
            format!("not found: {registry} has no manifest for {}", tag_or_digest(reference))
        }
        _ if text.contains("UNAUTHORIZED") || text.contains("code: 401") || text.contains("DENIED") => {
            format!(
                "unauthorized: {registry} refused access to {}: {root}",
                reference.repository()
            )
        }
        _ if text.contains("MANIFEST_UNKNOWN") || text.contains("NAME_UNKNOWN") || text.contains("code: 404") => {
            format!(
                "not found: {registry} has no {}:{}",
                reference.repository(),
                tag_or_digest(reference)
            )
        }
        OciDistributionError::RequestError(_) => format!("request to {registry} failed: {root}"),
        _ => root,
    };
    ImageError::Registry {
        reference: whole,
        message: message.replace('\n', " "),
    }
}

fn tag_or_digest(reference: &Reference) -> String {
    reference.digest().or(reference.tag()).unwrap_or("latest").to_string()
}

impl ImageStore {
    /// A registry client: plain HTTP only for loopback and listed registries.
    pub(crate) fn client_for(&self, registry: &str) -> Client {
        // Installing twice is refused, harmlessly: the first one counts.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if is_insecure(registry, &self.insecure) {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        })
    }

    /// Pulls `reference` (see the module doc) and returns its record; the
    /// normalized reference then names it. On error the blobs it added are
    /// removed again (once its pins are dropped; see
    /// [`ImageStore::discard_added`]); it fails before downloading
    /// anything if the reference index does not read.
    pub async fn pull(&self, reference: &str, platform: Option<&str>, progress: Progress) -> Result<ImageRecord> {
        self.pull_as(reference, platform, progress, None).await
    }

    /// [`ImageStore::pull`] with `credentials` instead of `config.json`'s.
    pub async fn pull_as(
        &self,
        reference: &str,
        platform: Option<&str>,
        progress: Progress,
        credentials: Option<&Credentials>,
    ) -> Result<ImageRecord> {
        self.records.refs()?;
        let mut added = Vec::new();
        let result = self
            .pull_pinned(reference, platform, progress, credentials, &mut added)
            .await;
        if result.is_err() {
            self.discard_added(&added, &[]);
        }
        result
    }

    /// [`ImageStore::pull`], saying in `added` which blobs it found absent
    /// and so may have written.
    async fn pull_pinned(
        &self,
        reference: &str,
        platform: Option<&str>,
        progress: Progress,
        credentials: Option<&Credentials>,
        added: &mut Vec<String>,
    ) -> Result<ImageRecord> {
        let parsed = normalize(reference)?;
        let whole = parsed.whole();
        let platform = parse_platform(&whole, platform)?;
        let registry = parsed.registry().to_string();
        let client = self.client_for(&registry);
        let auth = auth_with(&registry, credentials);

        let (manifest, manifest_digest, _manifest_pin) =
            self.fetch_manifest(&client, &parsed, &auth, &platform, added).await?;
        // Kept from collection (rmi, prune) until the record names them.
        let _blob_pins = self.pins.pin(
            manifest
                .layers
                .iter()
                .map(|l| l.digest.clone())
                .chain([manifest.config.digest.clone()]),
        );
        let bad = |reason: String| ImageError::BadImage {
            reference: whole.clone(),
            reason,
        };
        for layer in &manifest.layers {
            if !LAYER_TYPES.contains(&layer.media_type.as_str()) {
                return Err(bad(format!(
                    "layer {} has media type {}, which is not an image layer berth can unpack",
                    layer.digest, layer.media_type
                )));
            }
            if !(0..=super::MAX_ARCHIVE_BYTES as i64).contains(&layer.size) {
                return Err(bad(format!(
                    "layer {} is said to be {} bytes; one layer may have at most {}",
                    layer.digest,
                    layer.size,
                    super::MAX_ARCHIVE_BYTES
                )));
            }
        }
        progress(PullEvent::Resolved {
            digest: manifest_digest.clone(),
            layers: manifest
                .layers
                .iter()
                .map(|l| (l.digest.clone(), l.size as u64))
                .collect(),
        });

        // The config: small, read whole, verified by oci-client and again here.
        let config_digest = manifest.config.digest.clone();
        if !(0..=MAX_CONFIG_BYTES).contains(&manifest.config.size) {
            return Err(bad(format!(
                "its config is said to be {} bytes; at most {MAX_CONFIG_BYTES} are accepted",
                manifest.config.size
            )));
        }
        if !self.content.has(&config_digest) {
            added.push(config_digest.clone());
            let mut writer = AsyncIngest {
                ingest: self.content.begin()?,
                progress: |_| {},
                limit: manifest.config.size as u64,
            };
            client
                .pull_blob(&parsed, &manifest.config, &mut writer)
                .await
                .map_err(|e| classify(&parsed, e))?;
            writer.ingest.commit(&config_digest, &whole)?;
        }
        let config_bytes = self.content.read(&config_digest)?;
        let config: ConfigBlob = serde_json::from_slice(&config_bytes)
            .map_err(|e| bad(format!("its config {config_digest} is not a valid image config: {e}")))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(bad(format!(
                "its manifest lists {} layers but its config {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }

        // Each layer unpacks as it downloads (or from its file), while others
        // download; a failure anywhere removes what this pull unpacked.
        let chains = chain_ids(&config.rootfs.diff_ids);
        let _snapshot_pins = self.pins.pin(chains.iter().cloned());
        let jobs: Vec<LayerJob> = manifest
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| LayerJob {
                descriptor: l.clone(),
                chain: chains[i].clone(),
                diff_id: config.rootfs.diff_ids[i].clone(),
            })
            .collect();
        self.fetch_and_unpack(&client, &parsed, jobs, &progress, added).await?;

        let record = ImageRecord {
            id: config_digest,
            manifest_digest,
            config: config.config,
            platform: format!("{}/{}", config.os, config.architecture),
            layers: manifest
                .layers
                .iter()
                .map(|l| LayerRef {
                    digest: l.digest.clone(),
                    size: l.size as u64,
                    media_type: l.media_type.clone(),
                })
                .collect(),
            chain_ids: chains,
            created_at: now_millis(),
        };
        self.records.put(&record)?;
        self.records.update_refs(|refs| refs.insert(whole, record.id.clone()))?;
        Ok(record)
    }

    /// The image manifest for `platform`, resolving an index; and its digest.
    async fn fetch_manifest(
        &self,
        client: &Client,
        parsed: &Reference,
        auth: &RegistryAuth,
        platform: &Platform,
        added: &mut Vec<String>,
    ) -> Result<(OciImageManifest, String, super::images::PinGuard)> {
        let whole = parsed.whole();
        let bad = |reason: String| ImageError::BadImage {
            reference: whole.clone(),
            reason,
        };
        let insecure = is_insecure(parsed.registry(), &self.insecure);
        let bytes = get_manifest(client, parsed, auth, insecure).await?;
        let mut digest = sha256_digest(&bytes);
        if let Some(wanted) = parsed.digest() {
            if wanted != digest {
                return Err(ImageError::BlobDigestMismatch {
                    reference: whole,
                    expected: wanted.into(),
                    actual: digest,
                });
            }
        }
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("its manifest is not JSON: {e}")))?;
        let mut body = bytes.to_vec();
        if let Some(entries) = value.get("manifests").and_then(|m| m.as_array()) {
            let chosen = entries.iter().find(|m| {
                let p = &m["platform"];
                p["os"] == platform.os.as_str()
                    && p["architecture"] == platform.arch.as_str()
                    && platform.variant.as_deref().is_none_or(|v| p["variant"] == v)
            });
            let Some(entry_digest) = chosen.and_then(|m| m["digest"].as_str()) else {
                let offered: Vec<String> = entries
                    .iter()
                    .map(|m| {
                        format!(
                            "{}/{}",
                            m["platform"]["os"].as_str().unwrap_or("?"),
                            m["platform"]["architecture"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                return Err(bad(format!(
                    "no manifest for {}/{} (it has {})",
                    platform.os,
                    platform.arch,
                    offered.join(", ")
                )));
            };
            let by_digest = parsed.clone_with_digest(entry_digest.to_string());
            let inner = get_manifest(client, &by_digest, auth, insecure).await?;
            digest = sha256_digest(&inner);
            if digest != entry_digest {
                return Err(ImageError::BlobDigestMismatch {
                    reference: whole,
                    expected: entry_digest.into(),
                    actual: digest,
                });
            }
            body = inner.to_vec();
        }
        let manifest: OciImageManifest =
            serde_json::from_slice(&body).map_err(|e| bad(format!("its manifest is not an image manifest: {e}")))?;
        if manifest.schema_version != 2 {
            return Err(bad(format!(
                "manifest schema version {} is not supported (only 2)",
                manifest.schema_version
            )));
        }
        let pin = self.pins.pin([digest.clone()]);
        if !self.content.has(&digest) {
            added.push(digest.clone());
            self.content.put(&body, &digest, &whole)?;
        }
        Ok((manifest, digest, pin))
    }

    /// Streams every layer blob not yet in the content store, a few at a
    /// time, unpacking each layer into its snapshot as it downloads (kept
    /// only once its blob verifies), or from its file once the blob is in.
    /// On error, the snapshots this call made are removed again.
    async fn fetch_and_unpack(
        &self,
        client: &Client,
        parsed: &Reference,
        jobs: Vec<LayerJob>,
        progress: &Progress,
        added: &mut Vec<String>,
    ) -> Result<()> {
        let downloads = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_DOWNLOADS));
        // gzip is CPU-bound: no more unpacks at once than there are cores.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let unpacks = Arc::new(tokio::sync::Semaphore::new(cores.clamp(1, 4)));
        // One task per distinct blob; it unpacks every layer using that blob.
        let mut by_blob: Vec<(OciDescriptor, Vec<LayerJob>)> = Vec::new();
        for job in jobs {
            match by_blob.iter_mut().find(|(d, _)| d.digest == job.descriptor.digest) {
                Some((_, list)) => list.push(job),
                None => by_blob.push((job.descriptor.clone(), vec![job])),
            }
        }
        // Set on the first error: downloads stop (dropping a download removes
        // its temp file) and no further unpack starts. An unpack already
        // running is let finish, so what it made is known and removed.
        let (cancel, cancelled) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for (layer, jobs) in by_blob {
            let present = self.content.has(&layer.digest);
            if present {
                progress(PullEvent::Present {
                    digest: layer.digest.clone(),
                });
            }
            if !present {
                added.push(layer.digest.clone());
            }
            let ingest = if present { None } else { Some(self.content.begin()?) };
            let (client, parsed, progress, downloads, unpacks) = (
                client.clone(),
                parsed.clone(),
                progress.clone(),
                downloads.clone(),
                unpacks.clone(),
            );
            let snapshots = self.snapshots.clone();
            let blob = self.content.path(&layer.digest)?;
            let mut cancelled = cancelled.clone();
            tasks.spawn(async move {
                let whole = parsed.whole();
                let mut made: Vec<String> = Vec::new();
                let result: Result<()> = async {
                    let stopped = || ImageError::Registry {
                        reference: whole.clone(),
                        message: "stopped: another layer failed".into(),
                    };
                    // A blocking unpack task that panicked or was cancelled.
                    let interrupted = |e: tokio::task::JoinError| ImageError::BadImage {
                        reference: whole.clone(),
                        reason: format!("unpacking was interrupted: {e}"),
                    };
                    let mut jobs = jobs.into_iter().peekable();
                    if let Some(ingest) = ingest {
                        let _download_permit = tokio::select! {
                            permit = downloads.acquire_owned() => permit,
                            _ = cancelled.wait_for(|c| *c) => return Err(stopped()),
                        };
                        // One pass when an unpack slot is free: the bytes are
                        // unpacked as they are hashed and written, and the
                        // snapshot is kept only once the blob verifies too.
                        // (Else it unpacks from the file below, as a blob
                        // already in the store does.)
                        let first = jobs.peek().filter(|j| !snapshots.has(&j.chain));
                        let streaming = first.map(|j| (j.chain.clone(), j.diff_id.clone()));
                        let permit = streaming
                            .as_ref()
                            .and_then(|_| unpacks.clone().try_acquire_owned().ok());
                        if let (Some((chain, diff)), Some(_unpack_permit)) = (streaming, permit) {
                            let (tx, rx) = tokio::sync::mpsc::channel(STREAM_CHUNKS);
                            let (snaps, source, name, key) =
                                (snapshots.clone(), blob.clone(), whole.clone(), chain.clone());
                            let unpack = tokio::task::spawn_blocking(move || {
                                snaps.unpack_reader(&key, ChannelReader::new(rx), &source, &diff, &name)
                            });
                            let fetch = download(&client, &parsed, &layer, ingest, &progress, Some(tx));
                            let fetched = tokio::select! {
                                done = fetch => done,
                                _ = cancelled.wait_for(|c| *c) => Err(stopped()),
                            };
                            // The download is over (its sender dropped): the
                            // unpack ends soon, and is waited for so that its
                            // temporary dir is gone before this pull returns.
                            let unpacked = unpack.await.map_err(interrupted);
                            let unpacked = match (fetched, unpacked) {
                                (Ok(()), Ok(Ok(unpacked))) => unpacked,
                                // The blob's error first: a corrupt blob also fails to unpack.
                                (Err(e), unpacked) => {
                                    if let Ok(Ok(unpacked)) = unpacked {
                                        let _ = tokio::task::spawn_blocking(move || drop(unpacked)).await;
                                    }
                                    return Err(e);
                                }
                                (Ok(()), Ok(Err(e)) | Err(e)) => return Err(e),
                            };
                            tokio::task::spawn_blocking(move || unpacked.commit())
                                .await
                                .map_err(interrupted)??;
                            made.push(chain);
                            progress(PullEvent::Unpacked {
                                digest: layer.digest.clone(),
                            });
                            jobs.next();
                        } else {
                            let fetch = download(&client, &parsed, &layer, ingest, &progress, None);
                            tokio::select! {
                                done = fetch => done?,
                                _ = cancelled.wait_for(|c| *c) => return Err(stopped()),
                            }
                        }
                    }
                    // The other layers of this blob (or all, when it was in
                    // the store or unpack slots were busy) unpack from its file.
                    for job in jobs {
                        let _permit = unpacks.clone().acquire_owned().await;
                        if *cancelled.borrow() {
                            return Err(stopped());
                        }
                        let (snapshots, blob, name) = (snapshots.clone(), blob.clone(), whole.clone());
                        let (chain, diff) = (job.chain.clone(), job.diff_id.clone());
                        let created =
                            tokio::task::spawn_blocking(move || snapshots.create(&chain, &blob, &blob, &diff, &name))
                                .await
                                .map_err(interrupted)??;
                        if created {
                            made.push(job.chain);
                        }
                        progress(PullEvent::Unpacked {
                            digest: layer.digest.clone(),
                        });
                    }
                    Ok(())
                }
                .await;
                (result, made)
            });
        }
        let mut made = Vec::new();
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let (result, chains) = joined.unwrap_or_else(|e| {
                (
                    Err(ImageError::Registry {
                        reference: parsed.whole(),
                        message: format!("a layer task failed: {e}"),
                    }),
                    Vec::new(),
                )
            });
            made.extend(chains);
            if let Err(e) = result {
                if first_error.is_none() {
                    first_error = Some(e);
                    let _ = cancel.send(true);
                }
            }
        }
        match first_error {
            Some(e) => {
                // Nothing of a failed pull stays unpacked.
                for chain in &made {
                    let _ = self.snapshots.remove(chain);
                }
                Err(e)
            }
            None => Ok(()),
        }
    }
}

/// GETs the manifest (or index) `parsed` names, reading at most
/// [`MAX_MANIFEST_BYTES`] of it: oci-client's `pull_manifest_raw` reads a
/// whole body into memory however large. oci-client still does the auth
/// handshake (its bearer token is used here; basic credentials are sent as
/// they are); errors read the registry's code from at most 64 KiB and say
/// what `classify` says for the same codes.
async fn get_manifest(client: &Client, parsed: &Reference, auth: &RegistryAuth, insecure: bool) -> Result<Vec<u8>> {
    let whole = parsed.whole();
    let registry = parsed.registry().to_string();
    let failed = |message: String| ImageError::Registry {
        reference: whole.clone(),
        message: message.replace('\n', " "),
    };
    let root = |e: &dyn std::error::Error| {
        let mut root = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            root = s.to_string();
            source = s.source();
        }
        root
    };
    let token = client
        .auth(parsed, auth, RegistryOperation::Pull)
        .await
        .map_err(|e| classify(parsed, e))?;
    let url = format!(
        "{}://{}/v2/{}/manifests/{}",
        if insecure { "http" } else { "https" },
        parsed.resolve_registry(),
        parsed.repository(),
        tag_or_digest(parsed)
    );
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| failed(format!("cannot make an HTTP client: {}", root(&e))))?;
    let mut request = http.get(&url).header(reqwest::header::ACCEPT, ACCEPTED.join(", "));
    request = match (&token, auth) {
        (Some(token), _) => request.bearer_auth(token),
        (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
        _ => request,
    };
    let mut response = request.send().await.map_err(|e| {
        if e.is_connect() || e.is_timeout() {
            failed(format!("cannot reach registry {registry}: {}", root(&e)))
        } else {
            failed(format!("request to {registry} failed: {}", root(&e)))
        }
    })?;
    let status = response.status();
    let limit = if status.is_success() {
        MAX_MANIFEST_BYTES
    } else {
        MAX_ERROR_BYTES
    };
    let too_large = || ImageError::BadImage {
        reference: whole.clone(),
        reason: format!(
            "its manifest is larger than {} MiB, the most berth reads (as containerd)",
            MAX_MANIFEST_BYTES >> 20
        ),
    };
    if status.is_success() && response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| failed(format!("reading the manifest from {registry}: {}", root(&e))))?
    {
        if body.len() + chunk.len() > limit {
            if status.is_success() {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk[..limit - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return Ok(body);
    }
    let codes: Vec<String> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["errors"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["code"].as_str().map(str::to_owned))
        .collect();
    let has = |wanted: &[&str]| codes.iter().any(|c| wanted.contains(&c.as_str()));
    let message = if has(&["UNAUTHORIZED", "DENIED"]) || status.as_u16() == 401 || status.as_u16() == 403 {
        format!(
            "unauthorized: {registry} refused access to {} (credentials from ~/.docker/config.json, or none)",
            parsed.repository()
        )
    } else if has(&["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]) || status.as_u16() == 404 {
        format!(
            "not found: {registry} has no {}:{}",
            parsed.repository(),
            tag_or_digest(parsed)
        )
    } else {
        format!(
            "{registry} answered {status} for the manifest of {}",
            parsed.repository()
        )
    };
    Err(failed(message))
}

/// One layer of the image: its blob, and the snapshot it unpacks into.
struct LayerJob {
    descriptor: OciDescriptor,
    chain: String,
    diff_id: String,
}

/// How many chunks of a download may wait for its unpack (each as the
/// registry's connection delivered it, some KiB): a slower unpack holds the
/// download back rather than having it buffered.
const STREAM_CHUNKS: usize = 64;

/// Streams one blob into `ingest`, verified, and commits it; with `unpack`,
/// every chunk is also sent there as it is written, then an empty chunk
/// once the whole blob is in (an unpack that stops reading is no error: the
/// blob is still stored whole).
async fn download(
    client: &Client,
    parsed: &Reference,
    layer: &OciDescriptor,
    ingest: super::content::Ingest,
    progress: &Progress,
    mut unpack: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
) -> Result<()> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let total = layer.size as u64;
    let digest = layer.digest.clone();
    let mut last = 0u64;
    let report = progress.clone();
    let mut writer = AsyncIngest {
        ingest,
        limit: total,
        progress: move |done: u64| {
            // About every 256 KiB: enough for a bar, few calls.
            if done - last >= 256 << 10 || done == total {
                last = done;
                report(PullEvent::Progress {
                    digest: digest.clone(),
                    done,
                    total,
                });
            }
        },
    };
    let failed = |e: std::io::Error| ImageError::Registry {
        reference: parsed.whole(),
        message: format!("reading layer {} from {}: {e}", layer.digest, parsed.registry()).replace('\n', " "),
    };
    let mut stream = client
        .pull_blob_stream(parsed, layer)
        .await
        .map_err(|e| classify(parsed, e))?;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            // oci-client's own check at the end; the commit below says it
            // the same way for every blob.
            Err(e)
                if e.get_ref()
                    .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>()) =>
            {
                break
            }
            Err(e) => return Err(failed(e)),
        };
        if chunk.is_empty() {
            continue;
        }
        writer.write_all(&chunk).await.map_err(failed)?;
        if let Some(tx) = &unpack {
            if tx.send(chunk).await.is_err() {
                unpack = None;
            }
        }
    }
    let ingest = writer.ingest;
    let (whole, expected) = (parsed.whole(), layer.digest.clone());
    tokio::task::spawn_blocking(move || ingest.commit(&expected, &whole))
        .await
        .map_err(|e| ImageError::Registry {
            reference: parsed.whole(),
            message: format!("storing a layer was interrupted: {e}"),
        })??;
    if let Some(tx) = unpack {
        let _ = tx.send(bytes::Bytes::new()).await;
    }
    progress(PullEvent::Downloaded {
        digest: layer.digest.clone(),
    });
    Ok(())
}

/// The reading end of a download for a blocking unpack: its chunks in
/// order, the end once the download says the blob is whole, and an error if
/// the download stopped first (so a cut stream never unpacks as complete).
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    chunk: bytes::Bytes,
    ended: bool,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> ChannelReader {
        ChannelReader {
            rx,
            chunk: bytes::Bytes::new(),
            ended: false,
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(chunk) if chunk.is_empty() => self.ended = true,
                Some(chunk) => self.chunk = chunk,
                None => return Err(std::io::Error::other("the download stopped before the layer's end")),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_listed_registries_are_insecure() {
        assert!(is_insecure("localhost:5000", &[]));
        assert!(is_insecure("127.0.0.1:41234", &[]));
        assert!(is_insecure("localhost", &[]));
        assert!(!is_insecure("registry.example:5000", &[]));
        assert!(!is_insecure("localhost.evil.example", &[]));
        assert!(is_insecure("registry.example:5000", &["registry.example:5000".into()]));
        assert!(!is_insecure("docker.io", &["registry.example:5000".into()]));
    }

    #[test]
    fn platforms_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(parse_platform("r", None).unwrap().arch, "amd64");
        let p = parse_platform("r", Some("linux/arm64/v8")).unwrap();
        assert_eq!(
            (p.os.as_str(), p.arch.as_str(), p.variant.as_deref()),
            ("linux", "arm64", Some("v8"))
        );
        let e = parse_platform("r", Some("amd64")).unwrap_err().to_string();
        assert!(e.contains("os/arch"), "{e}");
    }

    /// A registry on loopback that answers `/v2/` with 200 and every
    /// manifest with `status` and `body` (with a length header when
    /// `length`); returns its address and the bytes it managed to send.
    async fn fake_registry(
        status: &'static str,
        body: Vec<u8>,
        length: bool,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (body, counter) = (body.clone(), counter.clone());
                tokio::spawn(async move {
                    let mut req = vec![0u8; 4096];
                    let n = sock.read(&mut req).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&req[..n]).to_string();
                    if head.starts_with("GET /v2/ ") {
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                    let len = if length {
                        format!("content-length: {}\r\n", body.len())
                    } else {
                        String::new()
                    };
                    let header = format!("HTTP/1.1 {status}\r\n{len}connection: close\r\n\r\n");
                    let _ = sock.write_all(header.as_bytes()).await;
                    for chunk in body.chunks(64 << 10) {
                        if sock.write_all(chunk).await.is_err() {
                            return;
                        }
                        counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        (addr, sent)
    }

    fn client() -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_download_reader_ends_only_when_told_and_holds_a_bounded_number_of_chunks() {
        use std::io::Read;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tx.send(bytes::Bytes::from_static(b"ab")).await.unwrap();
        tx.send(bytes::Bytes::from_static(b"cd")).await.unwrap();
        // Full: the sender waits for the reader (backpressure, no buffering).
        assert!(tx.try_send(bytes::Bytes::from_static(b"e")).is_err());
        let reader = tokio::task::spawn_blocking(move || {
            let mut reader = ChannelReader::new(rx);
            let mut out = Vec::new();
            let result = reader.read_to_end(&mut out);
            (out, result.map_err(|e| e.to_string()))
        });
        tx.send(bytes::Bytes::from_static(b"e")).await.unwrap();
        tx.send(bytes::Bytes::new()).await.unwrap();
        let (out, result) = reader.await.unwrap();
        assert_eq!((out.as_slice(), result), (&b"abcde"[..], Ok(5)));

        // A download that stops without saying the blob is whole: an error,
        // never a short layer.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tx.send(bytes::Bytes::from_static(b"ab")).await.unwrap();
        drop(tx);
        let (out, result) = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let result = ChannelReader::new(rx).read_to_end(&mut out);
            (out, result.map_err(|e| e.to_string()))
        })
        .await
        .unwrap();
        assert_eq!(out, b"ab");
        assert!(result.unwrap_err().contains("stopped before"));
    }

    #[tokio::test]
    async fn a_manifest_over_4_mib_is_refused_without_reading_it_all() {
        // Without a length: read up to the cap, then refused.
        let (addr, sent) = fake_registry("200 OK", vec![b' '; 64 << 20], false).await;
        let parsed: Reference = format!("{addr}/big/image:1").parse().unwrap();
        let err = get_manifest(&client(), &parsed, &RegistryAuth::Anonymous, true)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("its manifest is larger than 4 MiB"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        // The server could not push all 64 MiB into a reader that stopped.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(sent.load(std::sync::atomic::Ordering::SeqCst) < 32 << 20);

        // With a length that says so: refused before the body.
        let (addr, _) = fake_registry("200 OK", vec![b' '; (4 << 20) + 1], true).await;
        let parsed: Reference = format!("{addr}/big/image:1").parse().unwrap();
        let err = get_manifest(&client(), &parsed, &RegistryAuth::Anonymous, true)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than 4 MiB"), "{err}");

        // A small one is read whole.
        let (addr, _) = fake_registry("200 OK", b"{}".to_vec(), true).await;
        let parsed: Reference = format!("{addr}/small/image:1").parse().unwrap();
        let body = get_manifest(&client(), &parsed, &RegistryAuth::Anonymous, true)
            .await
            .unwrap();
        assert_eq!(body, b"{}");
    }

    #[tokio::test]
    async fn manifest_errors_say_what_the_registry_code_means() {
        let unknown = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#.to_vec();
        let (addr, _) = fake_registry("404 Not Found", unknown, true).await;
        let parsed: Reference = format!("{addr}/a/b:nope").parse().unwrap();
        let err = get_manifest(&client(), &parsed, &RegistryAuth::Anonymous, true)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found") && err.contains("a/b:nope"), "{err}");
        // A huge error body is not read whole either.
        let (addr, _) = fake_registry("500 Internal Server Error", vec![b'x'; 16 << 20], false).await;
        let parsed: Reference = format!("{addr}/a/b:1").parse().unwrap();
        let err = get_manifest(&client(), &parsed, &RegistryAuth::Anonymous, true)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("answered 500"), "{err}");
    }
}
