//! The `berth` command line: one file per command (or family of commands)
//! under `commands/`, the clap structs apart in `args`, and everything that
//! prints tables, JSON or YAML in `output`. Every command but `validate` and
//! `schema` talks to the daemon's API only, through `client`. `berth daemon`
//! is not the CLI's: `berthd` runs it.

pub mod args;
pub mod commands;
pub mod format;
pub mod output;
pub mod runflags;

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::client::{Client, DaemonSpawn};
use crate::manifest::{self, Source};
use args::{CliCmd, Global};

/// Runs one command; the exit code is the command's own (`diff` and `run`
/// have several), an `Err` is printed by `main.rs` and exits 1.
pub async fn main(g: &Global, command: CliCmd) -> anyhow::Result<ExitCode> {
    use commands::{
        apply, container, delete, events, exec, get, images, inspect, lifecycle, logs, network, ps, run, schema, stop,
        validate, version,
    };
    match command {
        CliCmd::Apply(args) => apply::apply(g, args).await,
        CliCmd::Diff(args) => match args.container {
            Some(name) => container::diff(g, args::NameArgs { name }).await,
            None if args.to.is_some() => Ok(commands::sources::diff_to(g, args).await),
            None => Ok(apply::diff(g, args).await),
        },
        CliCmd::Source(cmd) => commands::sources::source(g, cmd).await,
        CliCmd::Revisions(args) => commands::sources::revisions(g, args).await,
        CliCmd::Rollback(args) => commands::sources::rollback(g, args).await,
        CliCmd::Wait(args) => container::wait(g, args).await,
        CliCmd::Port(args) => container::port(g, args).await,
        CliCmd::Container(cmd) => container::container(g, cmd).await,
        CliCmd::Delete(args) => delete::delete(g, args).await,
        CliCmd::Get(args) => get::get(g, args).await,
        CliCmd::Describe(args) => get::describe(g, args).await,
        CliCmd::Logs(args) => logs::logs(g, args).await,
        CliCmd::Validate(args) => validate::validate(args),
        CliCmd::Run(args) => run::run(g, args).await,
        CliCmd::Create(args) => run::create(g, args).await,
        CliCmd::Exec(args) => exec::exec(g, args).await,
        CliCmd::Attach(args) => exec::attach_by_name(g, &args.name, args.detach_keys).await,
        CliCmd::Ps(args) => ps::ps(g, args).await,
        CliCmd::Stop(args) => Ok(stop::stop(g, args).await),
        CliCmd::Rm(args) => lifecycle::rm(g, args.force, &args.names).await,
        CliCmd::Start(args) => Ok(lifecycle::verb(g, "start", &args.names, None).await),
        CliCmd::Restart(args) => Ok(lifecycle::verb(g, "restart", &args.names, None).await),
        CliCmd::Stats(args) => inspect::stats(g, args).await,
        CliCmd::Top(args) => inspect::top(g, args).await,
        CliCmd::Cp(args) => inspect::cp(g, args).await,
        CliCmd::Inspect(args) => inspect::inspect(g, args).await,
        CliCmd::Kill(args) => Ok(lifecycle::kill(g, args.signal, &args.names).await),
        CliCmd::Pause(args) => Ok(lifecycle::verb(g, "pause", &args.names, None).await),
        CliCmd::Unpause(args) => Ok(lifecycle::verb(g, "unpause", &args.names, None).await),
        CliCmd::Rename(args) => Ok(lifecycle::rename(g, &args.old, &args.new).await),
        CliCmd::Update(args) => Ok(match runflags::update_request(&args) {
            Ok(req) => lifecycle::verb(g, "update", &args.names, serde_json::to_value(req).ok()).await,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(125)
            }
        }),
        CliCmd::Events => events::events(g).await,
        CliCmd::Pull(args) => images::pull(g, args).await,
        CliCmd::Images(args) => images::images(g, args).await,
        CliCmd::Rmi(args) => images::rmi(g, args).await,
        CliCmd::Tag(args) => images::tag(g, args).await,
        CliCmd::Push(args) => images::push(g, args).await,
        CliCmd::Save(args) => images::save(g, args).await,
        CliCmd::Commit(args) => images::commit(g, args).await,
        CliCmd::Build(args) | CliCmd::Image(args::ImageCmd::Build(args)) => commands::build::build(g, args).await,
        CliCmd::Builder(args::BuilderCmd::Prune) => commands::build::prune(g).await,
        CliCmd::Export(args) => images::export(g, args).await,
        CliCmd::Import(args) => images::import(g, args).await,
        CliCmd::Login(args) => images::login(g, args).await,
        CliCmd::Logout(args) => images::logout(g, args).await,
        CliCmd::Load(args) => images::load(g, args).await,
        CliCmd::Image(args::ImageCmd::Prune) => images::prune(g).await,
        CliCmd::Volume(cmd) => commands::volumes::volume(g, cmd).await,
        CliCmd::System(args::SystemCmd::Df) => images::system_df(g).await,
        CliCmd::Image(args::ImageCmd::Ls(args)) => images::images(g, args).await,
        CliCmd::Network(cmd) => network::network(g, cmd).await,
        CliCmd::Image(args::ImageCmd::Inspect(args)) => images::inspect(g, args).await,
        CliCmd::Image(args::ImageCmd::History(args)) | CliCmd::History(args) => images::history(g, args).await,
        CliCmd::Schema(args) => schema::schema(args),
        CliCmd::Version => Ok(version::version(g).await),
    }
}

/// The async edge both binaries share: logs to stderr (filtered by
/// `BERTH_LOG`, default `info`), one single-threaded tokio runtime, and an
/// error as `berth: …` with exit code 1.
pub fn block_on<F>(work: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let filter = std::env::var("BERTH_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(work) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The API client for these global flags. With `autostart`, a daemon is
/// started in the background when none answers, logging to
/// `<root>/daemon.log`: with the settings the last daemon of this root
/// recorded (the operator's flags), or, on a root no daemon ever ran on,
/// with these global flags.
pub fn client(g: &Global, autostart: bool) -> Client {
    let spawn = autostart.then(|| {
        let log = g.root.join("daemon.log");
        match crate::settings::read(&g.root) {
            Ok(Some(recorded)) if recorded.socket == g.socket() => DaemonSpawn {
                args: recorded.args,
                log,
                env_remove: vec!["BERTH_DEFAULT_ADDRESS_POOL", "BERTH_DNS_UPSTREAM"],
                refusal: None,
            },
            Ok(Some(recorded)) => DaemonSpawn {
                refusal: Some(format!(
                    "the daemon of {} serves {} (recorded in {}); pass --socket {} or start `berth daemon` yourself",
                    g.root.display(),
                    recorded.socket.display(),
                    crate::settings::path(&g.root).display(),
                    recorded.socket.display()
                )),
                ..DaemonSpawn::default()
            },
            Ok(None) => {
                let mut args = vec!["daemon".to_string()];
                args.extend(["--root".into(), g.root.display().to_string()]);
                args.extend(["--run-dir".into(), g.run_dir.display().to_string()]);
                args.extend(["--socket".into(), g.socket().display().to_string()]);
                args.extend(["--watch".into(), g.watch.display().to_string()]);
                DaemonSpawn {
                    args,
                    log,
                    ..DaemonSpawn::default()
                }
            }
            Err(e) => DaemonSpawn {
                refusal: Some(e.to_string()),
                ..DaemonSpawn::default()
            },
        }
    });
    Client::new(g.socket(), spawn)
}

/// Reads manifest sources from files, directories (recursive, sorted) and
/// stdin. Input that is not text (invalid UTF-8, NUL bytes) or too big is
/// refused with the file and the position.
pub fn read_sources(inputs: &[String]) -> anyhow::Result<Vec<Source>> {
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for input in inputs {
        let mut add = |file: String, bytes: Vec<u8>| match manifest::source_from_bytes(&file, &bytes) {
            Ok(s) => sources.push(s),
            Err(d) => problems.push(d),
        };
        if input == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("read manifests from stdin")?;
            add("<stdin>".into(), bytes);
            continue;
        }
        let path = Path::new(input);
        let files = if path.is_dir() {
            crate::source_files::manifest_files(path)
        } else {
            vec![path.to_path_buf()]
        };
        if files.is_empty() {
            bail!("{input}: no *.yaml or *.yml files found");
        }
        for f in files {
            let bytes = std::fs::read(&f).with_context(|| format!("read {}", f.display()))?;
            add(f.display().to_string(), bytes);
        }
    }
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|d| format!("error: {d}")).collect();
        bail!(
            "{}\n{} problem(s); nothing was changed",
            text.join("\n"),
            problems.len()
        );
    }
    Ok(sources)
}

/// Prints the manifest problems the daemon refused a request for.
fn print_diagnostics(errors: &[manifest::Diagnostic]) {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!("{} problem(s); nothing was changed", errors.len());
}
