//! `build`: a Dockerfile built by [`crate::build`], its RUN steps in
//! containers made as `run` makes them (same runtime, defaults, network
//! files), its layers and cache in the image store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::logs::STREAM_BUFFER;
use super::{CommandError, Result};
use crate::build::{BuildHost, BuildOptions, RunOutcome, RunStep};
use crate::image::{HistoryEntry, ImageConfig, ImageRecord};
use crate::manifest::ContainerSpec;
use crate::reconcile::Engine;
use crate::wire::{BuildEvent, BuildRequest, BuilderPruneResponse, RunEvent, RunRequest, DEFAULT_NETWORK};

/// A number no other call in this daemon got: names of step containers
/// and scratch dirs.
fn unique() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos.rotate_left(17) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Label on the containers a build runs its steps in.
pub const BUILD_LABEL: &str = "berth.build";

struct EngineBuild {
    engine: Arc<Engine>,
    scratch: PathBuf,
}

/// Where builds keep their scratch files (step dirs, received contexts):
/// the image store's `tmp/`, which the daemon's start sweeps.
pub fn scratch_root(engine: &Engine) -> PathBuf {
    engine.root().join("images").join("tmp")
}

impl EngineBuild {
    fn new(engine: &Arc<Engine>) -> EngineBuild {
        EngineBuild {
            engine: engine.clone(),
            scratch: scratch_root(engine),
        }
    }
}

impl BuildHost for EngineBuild {
    fn base_image<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a str>,
        pull: bool,
    ) -> BoxFuture<'a, std::result::Result<ImageRecord, String>> {
        async move {
            let images = self.engine.image_host();
            // A bare name may be an Image object of the same daemon (so
            // manifests can build on the images they import or build).
            if !crate::image::record::looks_like_reference(reference) {
                let desired = self
                    .engine
                    .desired_objects()
                    .map_err(|e| e.to_string())?
                    .iter()
                    .any(|o| o.kind() == crate::manifest::Kind::Image && o.name() == reference);
                // One being made in the same apply is waited for: the
                // plan cannot see a Dockerfile's FROM to order them.
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(300);
                loop {
                    if let Some(record) = self.engine.image_object(reference) {
                        return Ok(record);
                    }
                    if !desired {
                        break;
                    }
                    if tokio::time::Instant::now() > deadline {
                        return Err(format!("image/{reference} was not made within 5 minutes"));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
            if !pull {
                if let Some(record) = images.image(reference) {
                    return Ok(record);
                }
            }
            let progress: crate::image::Progress = Arc::new(|_| {});
            images
                .pull(reference, platform, progress)
                .await
                .map_err(|e| format!("pulling {reference}: {e}"))
        }
        .boxed()
    }

    fn run<'a>(
        &'a self,
        image: &'a ImageRecord,
        step: &'a RunStep,
        config: ImageConfig,
        history: HistoryEntry,
        out: &'a mpsc::Sender<BuildEvent>,
    ) -> BoxFuture<'a, std::result::Result<RunOutcome, String>> {
        async move { self.run_step(image, step, config, history, out).await }.boxed()
    }

    fn derive(
        &self,
        base: Option<&ImageRecord>,
        layer: Option<&Path>,
        config: ImageConfig,
        history: HistoryEntry,
    ) -> std::result::Result<ImageRecord, String> {
        self.engine
            .image_host()
            .derive(base, layer, config, history)
            .map_err(|e| e.to_string())
    }

    fn lower_dirs(&self, image: &ImageRecord) -> std::result::Result<Vec<PathBuf>, String> {
        self.engine.image_host().lower_dirs(image).map_err(|e| e.to_string())
    }

    fn scratch_dir(&self) -> std::result::Result<PathBuf, String> {
        let dir = self.scratch.join(format!("step-{:016x}", unique()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    }

    fn cache_get(&self, key: &str) -> std::result::Result<Option<ImageRecord>, String> {
        self.engine.image_host().cache_get(key).map_err(|e| e.to_string())
    }

    fn cache_put(&self, key: &str, image: &ImageRecord) -> std::result::Result<(), String> {
        self.engine
            .image_host()
            .cache_put(key, image)
            .map_err(|e| e.to_string())
    }

    fn forget_intermediate(&self, id: &str) {
        if let Err(e) = self.engine.image_host().forget_unnamed(id) {
            tracing::warn!(image = %id, "forgetting a build's intermediate image: {e}");
        }
    }

    fn keep(&self, image: &ImageRecord) -> std::result::Result<(), String> {
        self.engine
            .image_host()
            .restore_record(image)
            .map_err(|e| e.to_string())
    }

    fn tag(&self, id: &str, reference: &str) -> std::result::Result<(), String> {
        self.engine
            .image_host()
            .tag(id, reference)
            .map(|_| ())
            .map_err(|e| format!("tagging {reference}: {e}"))
    }
}

impl EngineBuild {
    async fn run_step(
        &self,
        image: &ImageRecord,
        step: &RunStep,
        config: ImageConfig,
        history: HistoryEntry,
        out: &mpsc::Sender<BuildEvent>,
    ) -> std::result::Result<RunOutcome, String> {
        self.keep(image)?;
        let mut spec = ContainerSpec {
            image: image.id.clone(),
            entrypoint: Some(Vec::new()),
            command: step.argv.clone(),
            env: step.env.iter().cloned().collect::<BTreeMap<_, _>>(),
            user: step.user.clone(),
            working_dir: step.working_dir.clone(),
            ..Default::default()
        };
        match step.network.as_str() {
            "bridge" | "default" => spec.networks = vec![DEFAULT_NETWORK.into()],
            "none" | "host" => spec.network = Some(step.network.clone()),
            other => return Err(format!("--network {other}: a build runs on bridge, none or host")),
        }
        let name = format!("build-{:012x}", unique() & 0xffff_ffff_ffff);
        let req = RunRequest {
            name: Some(name.clone()),
            spec,
            labels: BTreeMap::from([(BUILD_LABEL.to_string(), "true".to_string())]),
            ..Default::default()
        };
        let mut events = super::run::run(&self.engine, req).await.map_err(|e| e.to_string())?;
        let mut code = None;
        let mut failure = None;
        while let Some(event) = events.recv().await {
            match event {
                RunEvent::Started { .. } => {}
                RunEvent::Log(line) => {
                    let sent = out
                        .send(BuildEvent::Output {
                            stream: line.stream,
                            // Log lines come without their newline.
                            text: line.text + "\n",
                        })
                        .await;
                    if sent.is_err() {
                        // The client went away: the step stops with it.
                        failure = Some("the build's client went away".to_string());
                        let _ = self.engine.kill_by_name(&name, nix::sys::signal::Signal::SIGKILL).await;
                    }
                }
                RunEvent::Exited { code: c, .. } => code = Some(c),
                RunEvent::Error { message, exit_code } => {
                    code = exit_code;
                    failure.get_or_insert(message);
                }
            }
        }
        let outcome = match (code, failure) {
            (_, Some(message)) if code.is_none() => Err(message),
            (Some(0), None) => self
                .engine
                .derive_from_container(&name, image, config, history)
                .await
                .map(|image| RunOutcome::Committed(Box::new(image)))
                .map_err(|e| e.to_string()),
            (Some(code), _) => Ok(RunOutcome::Failed { code }),
            (None, _) => Err("the step's container ended without an exit code".into()),
        };
        super::run::forget_and_remove(&self.engine, &name).await;
        outcome
    }
}

/// Starts the build in the background and streams its events; the last is
/// `tagged`/`built` or `error`. A context that is not a directory is
/// refused before the stream starts.
pub async fn build(engine: &Arc<Engine>, req: BuildRequest) -> Result<mpsc::Receiver<BuildEvent>> {
    let context = PathBuf::from(&req.context);
    if !context.is_absolute() {
        return Err(CommandError::Invalid(format!(
            "build context {}: an absolute path is expected",
            req.context
        )));
    }
    if !context.is_dir() {
        return Err(CommandError::Invalid(format!(
            "build context {}: not a directory",
            req.context
        )));
    }
    for tag in &req.tags {
        crate::image::record::normalize(tag).map_err(|e| CommandError::Invalid(format!("-t {tag}: {e}")))?;
    }
    if let Some(n) = &req.network {
        if !matches!(n.as_str(), "bridge" | "default" | "none" | "host") {
            return Err(CommandError::Invalid(format!(
                "--network {n}: a build runs on bridge, none or host"
            )));
        }
    }
    let opts = BuildOptions {
        context,
        dockerfile: PathBuf::from(req.dockerfile.clone().unwrap_or_else(|| "Dockerfile".into())),
        tags: req.tags,
        build_args: req.build_args,
        target: req.target,
        no_cache: req.no_cache,
        pull: req.pull,
        labels: req.labels,
        network: req.network,
        platform: req.platform,
    };
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let host = EngineBuild::new(engine);
    let errors = tx.clone();
    let running = tokio::spawn(async move {
        if let Err(e) = crate::build::build(&host, &opts, &tx).await {
            let _ = tx.send(BuildEvent::Error { message: e.to_string() }).await;
        }
    });
    // A build that panics still ends its stream with why.
    tokio::spawn(async move {
        if let Err(e) = running.await {
            tracing::error!("build task failed: {e}");
            let _ = errors
                .send(BuildEvent::Error {
                    message: format!("the build stopped on an internal error: {e}"),
                })
                .await;
        }
    });
    Ok(rx)
}

/// Builds Image objects with `build` for the reconciler; the steps' output
/// goes to the daemon's log.
pub struct DeclarativeBuilder;

impl crate::reconcile::seams::ImageBuilder for DeclarativeBuilder {
    fn build<'a>(
        &'a self,
        engine: &'a Arc<Engine>,
        opts: BuildOptions,
    ) -> BoxFuture<'a, std::result::Result<String, String>> {
        async move {
            let host = EngineBuild::new(engine);
            let (tx, mut rx) = mpsc::channel(STREAM_BUFFER);
            let context = opts.context.display().to_string();
            let log = tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    match event {
                        BuildEvent::Step {
                            number,
                            total,
                            instruction,
                        } => {
                            tracing::info!(context = %context, "build step {number}/{total}: {instruction}")
                        }
                        BuildEvent::Output { text, .. } => {
                            tracing::info!(context = %context, "build: {}", text.trim_end())
                        }
                        BuildEvent::Note { message } => tracing::info!(context = %context, "build: {message}"),
                        _ => {}
                    }
                }
            });
            let result = crate::build::build(&host, &opts, &tx).await.map_err(|e| e.to_string());
            drop(tx);
            let _ = log.await;
            result
        }
        .boxed()
    }
}

/// Removes the containers of build steps a previous daemon was running:
/// their builds ended with it. Call at start, after the restore.
pub async fn forget_orphan_steps(engine: &Arc<Engine>) {
    let Ok(desired) = engine.desired_objects() else { return };
    for o in desired {
        if o.kind() == crate::manifest::Kind::Container && o.metadata.labels.contains_key(BUILD_LABEL) {
            tracing::info!(container = %o.name(), "removing the step container of a build the last daemon ran");
            super::run::forget_and_remove(engine, o.name()).await;
        }
    }
}

/// `builder prune`: the build cache, and the layers only it kept.
pub async fn prune(engine: &Arc<Engine>) -> Result<BuilderPruneResponse> {
    let images = engine.image_host();
    let (entries, reclaimed_bytes) = tokio::task::spawn_blocking(move || images.cache_prune())
        .await
        .map_err(|e| CommandError::Unavailable(e.to_string()))?
        .map_err(|e| CommandError::Unavailable(e.to_string()))?;
    Ok(BuilderPruneResponse {
        entries,
        reclaimed_bytes,
    })
}
