//! Command-line arguments (clap), kept apart from what the commands do.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "berth", version, about = "A declarative container engine for one Linux host")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// State directory (database, images, container layers).
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = "/var/lib/berth")]
    pub root: PathBuf,
    /// Runtime directory (bundles, mounts, shim state).
    #[arg(long = "run-dir", global = true, env = "BERTH_RUN", default_value = "/run/berth")]
    pub run_dir: PathBuf,
    /// API socket [default: <run-dir>/berth.sock].
    #[arg(long, global = true, env = "BERTH_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Manifest directory the daemon watches.
    #[arg(long, global = true, env = "BERTH_WATCH", default_value = "/etc/berth/manifests")]
    pub watch: PathBuf,
}

impl Global {
    pub fn socket(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(|| self.run_dir.join("berth.sock"))
    }
}

#[derive(Debug, Clone, Args)]
pub struct Files {
    /// A manifest file, a directory (recursive, *.yaml/*.yml) or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Wide,
    Yaml,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the daemon in the foreground.
    Daemon,
    /// Validate manifests, then make the host match them.
    Apply {
        #[command(flatten)]
        files: Files,
        /// Delete objects this set defined before but no longer does.
        #[arg(long)]
        prune: bool,
        /// Return once everything is Running (or Completed).
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "120s")]
        timeout: String,
    },
    /// Show what apply would do, and why. Exit 0: nothing; 1: changes; 2: error.
    Diff {
        #[command(flatten)]
        files: Files,
        #[arg(long)]
        prune: bool,
    },
    /// Delete what manifests define (-f), or KIND/NAME.
    Delete {
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        /// KIND/NAME, e.g. container/web.
        keys: Vec<String>,
    },
    /// List objects with their status.
    Get {
        /// image, container, network or volume (plural too).
        kind: Option<String>,
        name: Option<String>,
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<Output>,
    },
    /// Spec, observed state and recent events of one object.
    Describe {
        /// KIND/NAME, e.g. container/web.
        key: String,
    },
    /// Print a container's output.
    Logs {
        name: String,
        #[arg(short = 'f', long)]
        follow: bool,
        #[arg(long)]
        tail: Option<usize>,
        #[arg(short = 't', long)]
        timestamps: bool,
    },
    /// Check manifests without changing anything (needs no daemon).
    Validate {
        #[command(flatten)]
        files: Files,
    },
    /// Run a command in a new container.
    Run(RunArgs),
    /// List containers, as `docker ps`.
    Ps {
        /// Show all containers, not only running ones.
        #[arg(short = 'a', long)]
        all: bool,
        /// Show only the latest created container.
        #[arg(short = 'l', long)]
        latest: bool,
    },
    /// Stop a container (SIGTERM, then SIGKILL after its grace period).
    Stop { names: Vec<String> },
    /// Recent events.
    Events,
    /// Write the JSON Schema of every kind into a directory.
    Schema {
        #[arg(long, default_value = "schema")]
        dir: PathBuf,
    },
    /// Print client and daemon versions.
    Version,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the name.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// KEY=VALUE
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Memory limit, e.g. 100Mi.
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// CPU limit in cores, e.g. 0.5.
    #[arg(long)]
    pub cpus: Option<String>,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}
