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

/// The top-level commands. `daemon` is the binary's other half, so `main.rs`
/// runs it; everything else is a [`CliCmd`], which `cli::main` runs.
// Parsed once per process: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the daemon in the foreground.
    Daemon(DaemonArgs),
    #[command(flatten)]
    Cli(CliCmd),
}

/// The commands of the CLI proper: front ends over the daemon's API, plus
/// `validate` and `schema`, which need no daemon.
#[derive(Debug, Subcommand)]
pub enum CliCmd {
    /// Validate manifests, then make the host match them.
    Apply(ApplyArgs),
    /// Show what apply would do, and why. Exit 0: nothing; 1: changes; 2: error.
    /// With a CONTAINER instead of -f: its filesystem changes (Docker's diff).
    Diff(DiffArgs),
    /// Delete what manifests define (-f), or KIND/NAME.
    Delete(DeleteArgs),
    /// List objects with their status.
    Get(GetArgs),
    /// Spec, observed state and recent events of one object.
    Describe(DescribeArgs),
    /// Print a container's output.
    Logs(LogsArgs),
    /// Check manifests without changing anything (needs no daemon).
    Validate(ValidateArgs),
    /// Run a command in a new container.
    Run(RunArgs),
    /// Create a container without starting it (`start` starts it).
    Create(RunArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Attach to a running container's pty (ctrl-p ctrl-q detaches).
    Attach(AttachArgs),
    /// List containers, as `docker ps`.
    Ps(PsArgs),
    /// Stop a container (SIGTERM, then SIGKILL after its grace period).
    Stop(StopArgs),
    /// Delete containers (a running one only with -f), as `docker rm`.
    Rm(RmContainersArgs),
    /// Start stopped containers again (lifts a stop by hand).
    Start(NamesArgs),
    /// Stop and start containers.
    Restart(NamesArgs),
    /// Send a signal to containers (default KILL; KILL and TERM stop them by hand).
    Kill(KillArgs),
    /// Freeze containers' processes (cgroup freezer) until unpause.
    Pause(NamesArgs),
    /// Thaw paused containers.
    Unpause(NamesArgs),
    /// Rename a container made by run or create: OLD NEW.
    Rename(RenameArgs),
    /// Change containers' limits or restart policy in place, as docker update (no restart).
    Update(UpdateArgs),
    /// Live CPU, memory, network, block IO and pids of containers.
    Stats(StatsArgs),
    /// A container's processes.
    Top(NameArgs),
    /// Copy files between a running container and the host (NAME:PATH on one side).
    Cp(CpArgs),
    /// Containers, images, networks or volumes as `docker inspect` shows
    /// them (Docker's field names); --berth: a container in berth's own form.
    Inspect(InspectArgs),
    /// Recent events.
    Events,
    /// Block until containers stop, then print their exit codes.
    Wait(NamesArgs),
    /// A container's published ports: NAME [PORT[/PROTO]].
    Port(PortArgs),
    /// Container commands: ls, inspect, diff, wait, port, prune.
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// List pulled images.
    Images(ImagesArgs),
    /// Remove images (refused while a container uses one, unless --force).
    Rmi(RmiArgs),
    /// Make a reference name an image: SOURCE TARGET.
    Tag(TagArgs),
    /// Push an image to a registry: SOURCE [TARGET].
    Push(PushArgs),
    /// The history of an image's layers.
    History(NameArg),
    /// Check and keep credentials for a registry (pulls and pushes use them).
    Login(LoginArgs),
    /// Forget a registry's credentials.
    Logout(LogoutArgs),
    /// A root filesystem tar as an image: FILE REFERENCE [CMD...].
    Import(ImportArgs),
    /// A container's filesystem as a tar: CONTAINER -o FILE.
    Export(ExportArgs),
    /// A container's changes as a new image: CONTAINER REFERENCE.
    Commit(CommitArgs),
    /// Build an image from a Dockerfile: [-t REF]… [-f FILE] CONTEXT (a directory, or - for a tar on stdin).
    Build(BuildArgs),
    /// Build cache commands: prune.
    #[command(subcommand)]
    Builder(BuilderCmd),
    /// Write images into a tar (docker-archive, or --format oci).
    Save(SaveArgs),
    /// Load images from a `docker save` or OCI archive.
    Load(LoadArgs),
    /// Image commands: ls, inspect, history, prune.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Volume commands: ls, inspect, rm, prune.
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// System commands: df.
    #[command(subcommand)]
    System(SystemCmd),
    /// Network commands: ls, inspect, create, rm, connect, disconnect.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Git sources: add, ls, sync, suspend, resume, rm, diff.
    #[command(subcommand)]
    Source(SourceCmd),
    /// Recorded revisions of applies (CLI, watched files, git sources), newest first: [SOURCE].
    Revisions(RevisionsArgs),
    /// Apply a recorded revision's manifests again: [SOURCE] [--to N]; suspends a git source.
    Rollback(RollbackArgs),
    /// Write the JSON Schema of every kind into a directory.
    Schema(SchemaArgs),
    /// Print client and daemon versions.
    Version,
}

// The argument structs carry no doc comment of their own: clap would take it
// as the command's `about` over the variant's.

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub files: Files,
    /// Delete objects this set defined before but no longer does.
    #[arg(long)]
    pub prune: bool,
    /// Return once everything is Running (or Completed).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "120s")]
    pub timeout: String,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// A manifest file, a directory (recursive, *.yaml/*.yml) or `-` for stdin.
    #[arg(short = 'f', long = "filename", required_unless_present_any = ["container", "to"])]
    pub files: Vec<String>,
    #[arg(long)]
    pub prune: bool,
    /// What rolling back to revision N would change (of --source, or of the newest revision's source).
    #[arg(long, conflicts_with_all = ["files", "prune"])]
    pub to: Option<i64>,
    /// With --to: the source.
    #[arg(long, requires = "to")]
    pub source: Option<String>,
    /// Instead of a plan: this container's filesystem changes against its
    /// image, A/C/D as Docker's `diff`.
    #[arg(conflicts_with_all = ["files", "prune", "to"])]
    pub container: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RevisionsArgs {
    /// A source: `git:NAME` or a git source's NAME, an applied file or
    /// directory, or a set's id (`apply:/srv/stack`); none: every source.
    pub source: Option<String>,
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
}

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The source, as for `revisions`; none: the newest revision's.
    pub source: Option<String>,
    /// The revision to apply again; default: the last good one before the newest.
    #[arg(long)]
    pub to: Option<i64>,
    /// Why, recorded on the revision rolled back from (then marked failed).
    #[arg(long)]
    pub reason: Option<String>,
}

// Parsed once per process: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum SourceCmd {
    /// Follow a git repository: its manifests under --path are applied at each new commit.
    Add(SourceAddArgs),
    /// Git sources with the commit running, when fetched and applied, and the last error.
    Ls {
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<Output>,
    },
    /// Fetch now and apply the commit if it is new.
    Sync(NameArgs),
    /// Stop following the source's commits (what runs stays).
    Suspend(NameArgs),
    /// Follow the source again.
    Resume(NameArgs),
    /// Remove the source; --prune also deletes what it applied.
    Rm {
        name: String,
        #[arg(long)]
        prune: bool,
    },
    /// What applying the source's newest commit would change.
    Diff(NameArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SourceAddArgs {
    pub name: String,
    /// The repository: file://, git://, https:// or ssh:// URL.
    #[arg(long)]
    pub git: String,
    #[arg(long, conflicts_with_all = ["tag", "commit"])]
    pub branch: Option<String>,
    #[arg(long, conflicts_with = "commit")]
    pub tag: Option<String>,
    #[arg(long)]
    pub commit: Option<String>,
    /// The repository's directory whose manifests are applied.
    #[arg(long)]
    pub path: Option<String>,
    /// How often to fetch (default 1m).
    #[arg(long)]
    pub interval: Option<String>,
    /// https: a file holding the token.
    #[arg(long, conflicts_with_all = ["docker_config", "ssh_key"])]
    pub token_file: Option<PathBuf>,
    /// https: take the URL host's credential from this Docker config.json.
    #[arg(long, conflicts_with = "ssh_key")]
    pub docker_config: Option<PathBuf>,
    /// ssh: the private key file.
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// KIND/NAME, e.g. container/web.
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// image, container, network or volume (plural too).
    pub kind: Option<String>,
    pub name: Option<String>,
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
}

#[derive(Debug, Clone, Args)]
pub struct DescribeArgs {
    /// KIND/NAME, e.g. container/web.
    pub key: String,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    pub name: String,
    #[arg(short = 'f', long)]
    pub follow: bool,
    #[arg(long)]
    pub tail: Option<usize>,
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Only lines since: an RFC 3339 time, unix seconds, or a duration before now (10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines until, as --since.
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub files: Files,
}

#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Show only the latest created container.
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Only the ids (berth's ids are the names).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The N most recently created containers, stopped ones too.
    #[arg(short = 'n', long = "last")]
    pub last: Option<usize>,
    /// Do not cut the command short.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// The size of each container's writable layer.
    #[arg(short = 's', long)]
    pub size: bool,
    /// KEY=VALUE: id, name, label, status, ancestor, network, exited (repeatable).
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// A Go template per container, `table …`, or `json` (as Docker's).
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RmContainersArgs {
    /// Stop a running container first.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RenameArgs {
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, Args)]
pub struct CpArgs {
    pub source: String,
    pub destination: String,
}

#[derive(Debug, Clone, Args)]
pub struct NameArgs {
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// container, image, network or volume (default: the first kind that has
    /// the name, containers first, as Docker resolves it).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// A Go template over each document, as Docker's (`{{.State.Pid}}`,
    /// `{{json .Config.Labels}}`).
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// One container in berth's own form (state, OCI runtime settings, log
    /// path), as `inspect` printed it before it spoke Docker's.
    #[arg(long, conflicts_with_all = ["kind", "format"])]
    pub berth: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    pub name: String,
    /// A container port, e.g. 80 or 53/udp.
    pub port: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ContainerCmd {
    /// List containers, as `docker ps`.
    Ls(PsArgs),
    /// As `berth inspect`, containers only.
    Inspect(InspectArgs),
    /// A container's filesystem changes (A/C/D).
    Diff(NameArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(NamesArgs),
    /// A container's published ports.
    Port(PortArgs),
    /// Remove every stopped container that run or create made.
    Prune(PruneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Print one reading and exit.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// A Go template per container, `table …`, or `json` (as Docker's).
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: every running one).
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// KILL, TERM, HUP, a number…
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SchemaArgs {
    #[arg(long, default_value = "schema")]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Keep stdin open and forward it (EOF closes the container's stdin).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the container a pty (with -i: the terminal in raw mode).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The keys that detach from its pty (default ctrl-p,ctrl-q).
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// USER[:GROUP] or uid[:gid] to run as (names from the image's /etc/passwd, /etc/group).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// User namespace: `auto` (a subordinate id range of its own, from the
    /// `containers` entry of /etc/subuid and /etc/subgid) or `host`.
    #[arg(long)]
    pub userns: Option<String>,
    /// Run in the background and print the name.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// KEY=VALUE
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Memory limit in Docker's units, e.g. 100m (binary: 104857600 bytes).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// CPU limit in cores, e.g. 0.5.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Security options: no-new-privileges[=true|false], seccomp=unconfined|PROFILE.json.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Publish a container port on the host: [IP:]HOST:CONTAINER[/udp] (IP: an IPv4 address, all by default).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// A network to join, or host, none or container:NAME (default: the bridge network).
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Health check command, run with /bin/sh -c.
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between health checks (e.g. 30s).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// A health check running longer is killed and fails.
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Failures in a row that make it unhealthy.
    #[arg(long = "health-retries")]
    pub health_retries: Option<u32>,
    /// Time after the start during which failures do not count.
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    #[command(flatten)]
    pub resources: ResourceArgs,
    // Isolation (issue 20): Docker's flags, parsed in cli/runflags/isolation.rs.
    /// Every capability the host holds, every device, no seccomp, no masked paths.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub privileged: Option<bool>,
    /// Add a capability (NET_ADMIN, CAP_NET_ADMIN, ALL); repeatable.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop a capability (or ALL); repeatable.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// A host device: HOST[:CONTAINER[:rwm]], under /dev; repeatable.
    #[arg(long = "device")]
    pub device: Vec<String>,
    /// A device cgroup rule: `c|b|a MAJOR:MINOR rwm` (`*` for any); repeatable.
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// Another group for the process (name or gid); repeatable.
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// PID namespace: host or container:NAME.
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC namespace: host, container:NAME, private or shareable.
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace: host.
    #[arg(long)]
    pub uts: Option<String>,
    /// A namespaced kernel parameter: NAME=VALUE (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*).
    #[arg(long = "sysctl")]
    pub sysctl: Vec<String>,
    /// A resource limit: NAME=SOFT[:HARD] (nofile=100:200).
    #[arg(long = "ulimit")]
    pub ulimit: Vec<String>,
    /// The OOM killer's preference (-1000 to 1000).
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i32>,
    /// The signal that stops it (default the image's, else SIGTERM).
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Seconds between the stop signal and SIGKILL (default 10).
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u64>,
    /// Run berth's init as PID 1: reaps zombies, forwards signals.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub init: Option<bool>,
    // Storage.
    /// Mount a volume: NAME:/path[:opts] (made on first use),
    /// /host/path:/path[:opts], or /path (anonymous); opts: ro, rw, nocopy,
    /// a bind propagation, z and Z (no-ops: no SELinux here).
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=…,target=…[,readonly][,bind-propagation=…]
    /// [,volume-nocopy][,tmpfs-size=…][,tmpfs-mode=…].
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    /// Mount every volume of another container: NAME[:ro|rw].
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Mount a tmpfs: /path[:size=…,mode=…,ro].
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Size of /dev/shm, e.g. 256m (default 64m).
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    #[command(flatten)]
    pub identity: IdentityArgs,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct DaemonArgs {
    /// A registry (`host:port`) to reach over plain HTTP, as Docker's
    /// insecure-registries; loopback registries always are. Repeatable.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Rotate every container's log at this size (e.g. 100Mi) unless its
    /// manifest says otherwise (`logs.maxSize`).
    #[arg(long = "log-max-size")]
    pub log_max_size: Option<String>,
    /// Log files kept per container, the current one included (`logs.maxFiles`).
    #[arg(long = "log-max-files")]
    pub log_max_files: Option<u32>,
    /// Where networks without a subnet get one, as Docker's flag:
    /// `base=10.77.0.0/16,size=24` (repeatable, tried in order; in the
    /// environment, space-separated).
    #[arg(
        long = "default-address-pool",
        env = "BERTH_DEFAULT_ADDRESS_POOL",
        value_delimiter = ' '
    )]
    pub default_address_pools: Vec<String>,
    /// `IP[:PORT]` of a resolver the networks' DNS servers forward other
    /// names to, instead of the host's /etc/resolv.conf (repeatable; in
    /// the environment, space-separated).
    #[arg(long = "dns-upstream", env = "BERTH_DNS_UPSTREAM", value_delimiter = ' ')]
    pub dns_upstream: Vec<String>,
    /// Run every container without a `userns` of its own in a user
    /// namespace, as Docker's flag: `default` (the first 65536 ids of the
    /// `containers` user's /etc/subuid and /etc/subgid entries) or USER (all
    /// of that user's first entries).
    #[arg(long = "userns-remap", env = "BERTH_USERNS_REMAP")]
    pub userns_remap: Option<String>,
    /// Serve Docker's Engine API on this socket (mode 0660, group docker
    /// when there is one) [default: <run-dir>/docker.sock]; '' turns it off.
    // A String, not a PathBuf: clap's path parser refuses the empty value
    // that turns it off.
    #[arg(long = "docker-socket", env = "BERTH_DOCKER_SOCKET")]
    pub docker_socket: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// registry/repository:tag or registry/repository@sha256:…
    pub reference: String,
    /// os/arch[/variant] of a multi-platform image [default: linux/amd64].
    #[arg(long)]
    pub platform: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// Only image ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// KEY=VALUE: dangling=true|false, label=K[=V], reference=PATTERN (repeatable).
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// A Go template per image, `table …`, or `json` (as Docker's).
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RmiArgs {
    /// Remove even while containers use it.
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// A local image's reference or id.
    pub source: String,
    /// The reference to push to [default: SOURCE].
    pub target: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum NetworkCmd {
    /// List networks with their status.
    Ls {
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<Output>,
        /// KEY=VALUE: name, id, driver, label, type (repeatable).
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// A Go template per network, `table …`, or `json` (as Docker's).
        #[arg(long, conflicts_with = "output")]
        format: Option<String>,
        /// Only the ids (the names).
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Spec, subnet, status and recent events of a network.
    Inspect { name: String },
    /// Make a bridge network (a Network object of its own apply set).
    Create(NetworkCreateArgs),
    /// Delete networks (refused while containers use them).
    Rm { names: Vec<String> },
    /// Join a running container (made by run or create) to a network.
    Connect(NetworkConnectArgs),
    /// Take a container (made by run or create) off a network.
    Disconnect(NetworkDisconnectArgs),
    /// Remove the networks `network create` made that no container uses.
    Prune(PruneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct NetworkConnectArgs {
    /// Another name it answers to on the network (repeatable).
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// A fixed IPv4 address in the network's subnet.
    #[arg(long = "ip")]
    pub ip: Option<String>,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Clone, Args)]
pub struct NetworkDisconnectArgs {
    /// Go on when removing its interface fails.
    #[arg(short = 'f', long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

/// `run`/`create` flags of process and identity, names and networks
/// (Docker's; see `runflags::identity`).
#[derive(Debug, Clone, Default, Args)]
pub struct IdentityArgs {
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Replace the image's entrypoint ('' clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Read KEY=VALUE lines (or KEY: from this shell) from a file, before -e.
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// KEY=VALUE (or KEY) label on the container.
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read labels from a file of KEY=VALUE lines.
    #[arg(long = "label-file")]
    pub label_file: Vec<String>,
    /// The container's hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// The container's NIS domain name.
    #[arg(long)]
    pub domainname: Option<String>,
    /// NAME:IP line for /etc/hosts (IP `host-gateway`: the network's gateway).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// A name server for resolv.conf.
    #[arg(long)]
    pub dns: Vec<String>,
    /// A search domain for resolv.conf.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// A resolv.conf option (ndots:2).
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// no, always, on-failure[:N] or unless-stopped.
    #[arg(long)]
    pub restart: Option<String>,
    /// Publish every port the image EXPOSEs on an ephemeral host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// The container's IPv4 address on its network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Another name it answers to on its network.
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// The MAC address of its interface on its network.
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// When to pull the image: always, missing (default) or never.
    #[arg(long)]
    pub pull: Option<String>,
    /// os/arch[/variant] to pull.
    #[arg(long)]
    pub platform: Option<String>,
    /// Write the container's id to this file (refused if it exists).
    #[arg(long)]
    pub cidfile: Option<String>,
    /// Log rotation: max-size=SIZE, max-file=N.
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// The streams to attach to: stdin, stdout, stderr.
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// Pass the CLI's signals to the container (without a tty).
    #[arg(long = "sig-proxy", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub sig_proxy: Option<bool>,
}

#[derive(Debug, Clone, Args)]
pub struct NetworkCreateArgs {
    pub name: String,
    /// e.g. 10.89.7.0/24; chosen from the pool when absent.
    #[arg(long)]
    pub subnet: Option<String>,
    #[arg(long)]
    pub gateway: Option<String>,
    /// Give containers addresses only within this part of the subnet.
    #[arg(long = "ip-range")]
    pub ip_range: Option<String>,
    /// No route out of the host.
    #[arg(long)]
    pub internal: bool,
    #[arg(long)]
    pub mtu: Option<u32>,
    /// bridge (the default) or macvlan.
    #[arg(short = 'd', long)]
    pub driver: Option<String>,
    /// Driver options: parent=IF (macvlan), macvlan_mode=bridge,
    /// com.docker.network.driver.mtu=N.
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// KEY=VALUE label on the network.
    #[arg(long)]
    pub label: Vec<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ImageCmd {
    /// Remove images no reference names and no container uses, and the
    /// layers and blobs nothing uses.
    Prune,
    /// List pulled images.
    Ls(ImagesArgs),
    /// An image in full, as JSON.
    Inspect(NameArg),
    /// The history of an image's layers.
    History(NameArg),
    /// Build an image from a Dockerfile (as `berth build`).
    Build(BuildArgs),
}

#[derive(Debug, Clone, Subcommand)]
pub enum BuilderCmd {
    /// Remove the build cache, and the layers only it kept.
    Prune,
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Name the result (repeatable).
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// The Dockerfile (default CONTEXT/Dockerfile); relative to the current directory.
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// KEY=VALUE for an ARG (KEY alone takes the value from this environment).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Build up to this stage.
    #[arg(long)]
    pub target: Option<String>,
    /// Run every step again.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Pull every FROM image even when present.
    #[arg(long)]
    pub pull: bool,
    /// KEY=VALUE label on the result (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// The network of RUN steps: bridge (default), none or host.
    #[arg(long)]
    pub network: Option<String>,
    /// Only linux/amd64 (this host's) is built.
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image id.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the image id into this file.
    #[arg(long)]
    pub iidfile: Option<String>,
    /// A directory, or `-` for a tar (plain or gzip) on stdin.
    pub context: String,
}

#[derive(Debug, Clone, Args)]
pub struct NameArg {
    /// A reference or an id.
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct SaveArgs {
    /// The tar to write.
    #[arg(short = 'o', long = "output", required = true)]
    pub output: PathBuf,
    /// `docker` (OCI layout plus Docker's manifest.json) or `oci`.
    #[arg(long, default_value = "docker")]
    pub format: String,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The tar to read (plain or gzip).
    #[arg(short = 'i', long = "input", required = true)]
    pub input: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct CommitArgs {
    pub container: String,
    pub reference: String,
}

#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// The keys that detach (default ctrl-p,ctrl-q).
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Keep stdin open and forward it.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give it a pty (with -i: the terminal in raw mode, resizes follow).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The keys that detach from its pty (default ctrl-p,ctrl-q).
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Start it in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// KEY=VALUE
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// uid, uid:gid or root.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    pub name: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    #[arg(short = 'u', long)]
    pub username: String,
    /// The password (visible in `ps`: prefer --password-stdin).
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// `host[:port]`.
    pub registry: String,
}

#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    pub registry: String,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[arg(short = 'o', long = "output", required = true)]
    pub output: PathBuf,
    pub container: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum VolumeCmd {
    /// Make a volume: [NAME] [--label K=V] [-o type=tmpfs -o device=tmpfs -o o=size=100m].
    Create(VolumeCreateArgs),
    /// List volumes (-f dangling=true|false, label=K[=V], name=PART, driver=local).
    Ls(VolumeLsArgs),
    /// A volume's spec, state and events.
    Inspect(NameArg),
    /// Delete volumes and their data (refused while a container uses one).
    Rm(VolumeRmArgs),
    /// Delete every volume no container uses.
    Prune,
}

#[derive(Debug, Clone, Args)]
pub struct VolumeCreateArgs {
    /// The volume's name (default: 32 random hex digits).
    pub name: Option<String>,
    /// Only `local`.
    #[arg(short = 'd', long)]
    pub driver: Option<String>,
    /// KEY=VALUE (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// A local driver option: type=…, device=…, o=… (repeatable).
    #[arg(short = 'o', long = "opt")]
    pub opts: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct VolumeLsArgs {
    /// dangling=true|false, label=KEY[=VALUE], name=PART, driver=local (repeatable; all must hold).
    #[arg(short = 'f', long = "filter")]
    pub filters: Vec<String>,
    /// Only names.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct VolumeRmArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum SystemCmd {
    /// Disk use of images, containers and volumes.
    Df,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The tar (plain, gzip or zstd).
    pub file: PathBuf,
    pub reference: String,
    /// The image's default command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// `docker run`'s resource flags beyond --memory and --cpus (issue 20). Kept
/// as text: `cli::runflags` parses each and refuses a bad one by name.
#[derive(Debug, Clone, Default, Args)]
pub struct ResourceArgs {
    /// Memory plus swap, e.g. 200m; -1 for unlimited swap (needs --memory).
    #[arg(long = "memory-swap", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// Soft memory limit, e.g. 50m.
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Do not OOM-kill the container's processes (cgroup v1).
    #[arg(long = "oom-kill-disable", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub oom_kill_disable: Option<String>,
    /// Relative CPU weight (2-262144; Docker's default 1024).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<String>,
    /// CFS period in microseconds (1000-1000000).
    #[arg(long = "cpu-period", allow_negative_numbers = true)]
    pub cpu_period: Option<String>,
    /// CFS quota in microseconds per period (at least 1000; -1: none).
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<String>,
    /// CPUs to run on, e.g. 0-1 or 0,2.
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use, e.g. 0.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (-1 or 0: unlimited).
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<String>,
    /// Relative block I/O weight (10-1000; 0: none).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<String>,
    /// Block I/O weight of one device: DEVICE:WEIGHT, e.g. /dev/sda:200.
    #[arg(long = "blkio-weight-device")]
    pub blkio_weight_device: Vec<String>,
    /// Read rate limit: DEVICE:RATE, e.g. /dev/sda:1mb (bytes per second).
    #[arg(long = "device-read-bps")]
    pub device_read_bps: Vec<String>,
    /// Write rate limit: DEVICE:RATE, e.g. /dev/sda:1mb.
    #[arg(long = "device-write-bps")]
    pub device_write_bps: Vec<String>,
    /// Read operations per second: DEVICE:N, e.g. /dev/sda:1000.
    #[arg(long = "device-read-iops")]
    pub device_read_iops: Vec<String>,
    /// Write operations per second: DEVICE:N.
    #[arg(long = "device-write-iops")]
    pub device_write_iops: Vec<String>,
}

/// `berth update`: the resource flags of `run`, and `--restart`.
#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    /// Memory limit in Docker's units, e.g. 100m.
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// CPU limit in cores, e.g. 0.5.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Restart policy: no, always, on-failure, unless-stopped.
    #[arg(long)]
    pub restart: Option<String>,
    #[command(flatten)]
    pub resources: ResourceArgs,
    #[arg(required = true)]
    pub names: Vec<String>,
}
