//! Images built from Dockerfiles.
//!
//! `dockerfile` parses (positions on every instruction), `subst` expands
//! variables with Docker's shell-word rules, `ignore` and `context` read the
//! build context; `builder` runs the stages, each step either a hit in the
//! image store's build cache or done anew: a config change as an image of
//! its own with an empty-layer history entry, `RUN` in a container of
//! berth's runtime (through [`BuildHost`], which the engine implements), and
//! `COPY`/`ADD` into a layer of their own (`copy`).
//!
//! A step's cache key is its parent's chain ID and config, the instruction
//! after substitution, the build args it can read and, for `COPY`/`ADD`, a
//! hash of its sources' contents, modes and owners (never their mtimes), so
//! that a rebuild after one source file changed runs again only from the
//! first step that copies it.
//!
//! # Where variables are expanded
//!
//! The parser keeps every word as written. As in Docker, the builder expands
//! with [`subst::expand`] (escape character [`dockerfile::Dockerfile::escape`],
//! build args and `ENV` so far as the lookup) the arguments of `ADD`, `COPY`
//! (sources, destination, `--from`/`--chown`/`--chmod`), `ENV` and `LABEL`
//! (names and values), `ARG` defaults, `EXPOSE`, `FROM` (image and
//! `--platform`, with the global `ARG`s only), `STOPSIGNAL`, `USER`,
//! `VOLUME` and `WORKDIR`; the body of a `COPY`/`ADD` heredoc whose
//! delimiter was unquoted with [`subst::expand_raw`]. `RUN`, `CMD`,
//! `ENTRYPOINT`, `SHELL` and `HEALTHCHECK` commands are not expanded: the
//! shell in the container does that.

pub mod builder;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod ignore;
pub mod subst;

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures_util::future::BoxFuture;

use crate::image::{HistoryEntry, ImageConfig, ImageRecord};
use crate::wire::BuildEvent;

pub use builder::build;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse: its file:line:column is in the message.
    #[error("{0}")]
    Dockerfile(#[from] dockerfile::DockerfileError),
    /// Refused before anything runs: a bad build arg, a missing stage…
    #[error("{0}")]
    Invalid(String),
    /// A step failed: which one, where, and why.
    #[error("step {number}/{total} ({file}:{line}) `{instruction}`: {message}")]
    Step {
        number: usize,
        total: usize,
        file: String,
        line: usize,
        instruction: String,
        message: String,
    },
    /// The engine could not do what a step asked (pull, run, store).
    #[error("{0}")]
    Host(String),
    /// The client went away: the build stopped.
    #[error("the build's client went away")]
    Gone,
}

pub type Result<T> = std::result::Result<T, BuildError>;

/// What `berth build` asks for.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory on this host.
    pub context: PathBuf,
    /// The Dockerfile's path (absolute, or relative to the context).
    pub dockerfile: PathBuf,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// Pull every `FROM` image even when present.
    pub pull: bool,
    pub labels: BTreeMap<String, String>,
    /// `bridge` (the default network), `none` or `host`.
    pub network: Option<String>,
    pub platform: Option<String>,
}

/// One `RUN`: the command in a container of `image`.
#[derive(Debug, Clone)]
pub struct RunStep {
    pub argv: Vec<String>,
    /// KEY=VALUE over the image's environment (build args).
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// `bridge`, `none` or `host`.
    pub network: String,
}

/// What a `RUN` came to.
#[derive(Debug)]
pub enum RunOutcome {
    /// Its writable layer, as a new image of `config` over the one it ran in.
    Committed(Box<ImageRecord>),
    /// It exited non-zero: nothing was made.
    Failed { code: i32 },
}

/// What the builder needs from the engine.
pub trait BuildHost: Send + Sync {
    /// The image a `FROM` names: present, or pulled (always with `pull`).
    fn base_image<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a str>,
        pull: bool,
    ) -> BoxFuture<'a, std::result::Result<ImageRecord, String>>;
    /// Runs `step` in a container of `image`, its output sent as
    /// [`BuildEvent::Output`]; on success its writable layer becomes a new
    /// image with `config` and `history`. The container is gone afterwards.
    fn run<'a>(
        &'a self,
        image: &'a ImageRecord,
        step: &'a RunStep,
        config: ImageConfig,
        history: HistoryEntry,
        out: &'a tokio::sync::mpsc::Sender<BuildEvent>,
    ) -> BoxFuture<'a, std::result::Result<RunOutcome, String>>;
    /// A new image: `base` (`None`: scratch) plus the tree `layer` if any
    /// (blocking).
    fn derive(
        &self,
        base: Option<&ImageRecord>,
        layer: Option<&std::path::Path>,
        config: ImageConfig,
        history: HistoryEntry,
    ) -> std::result::Result<ImageRecord, String>;
    /// The image's overlay lower dirs, top first.
    fn lower_dirs(&self, image: &ImageRecord) -> std::result::Result<Vec<PathBuf>, String>;
    /// A directory for a step's scratch files, removed by the caller.
    fn scratch_dir(&self) -> std::result::Result<PathBuf, String>;
    fn cache_get(&self, key: &str) -> std::result::Result<Option<ImageRecord>, String>;
    fn cache_put(&self, key: &str, image: &ImageRecord) -> std::result::Result<(), String>;
    /// Removes the record of an intermediate image no reference names (its
    /// layers stay while the cache holds them).
    fn forget_intermediate(&self, id: &str);
    /// Makes sure `image` is among the images (a cache hit may have been
    /// removed from them), so it can be run and tagged.
    fn keep(&self, image: &ImageRecord) -> std::result::Result<(), String>;
    fn tag(&self, id: &str, reference: &str) -> std::result::Result<(), String>;
}
