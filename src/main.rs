//! `berth`: the CLI. The daemon and its shims are `berthd`, a binary of their
//! own beside this one, which `berth daemon` execs.
//!
//! Why two binaries: every CLI command starts a process, and the whole
//! engine in one executable (35 MB, ~49,000 relocations to apply, libseccomp
//! to load) took 2.0 ms to start where the CLI alone takes 1.5 (measured with
//! hyperfine on `--version`): a quarter of an `exec`. The linker keeps out of
//! this binary whatever the CLI does not call.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use berth::cli::args::{Cli, Cmd};
use clap::Parser;

/// What `berthd` runs: the daemon and the processes it starts from itself.
const DAEMON_COMMANDS: &[&str] = &["daemon", "shim", "exec-zygote"];

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| DAEMON_COMMANDS.iter().any(|c| a == c)) {
        return exec_berthd(&args[1..]);
    }
    let Cli { global, command } = Cli::parse();
    let Cmd::Cli(command) = command else {
        unreachable!("`daemon` is handed to berthd above");
    };
    // `berth get | head` should end quietly, as other Unix tools do.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
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
    match runtime.block_on(berth::cli::main(&global, command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Replaces this process with `berthd` from the same directory, same args.
fn exec_berthd(args: &[std::ffi::OsString]) -> ExitCode {
    let berthd = match std::env::current_exe() {
        Ok(me) => me.with_file_name("berthd"),
        Err(e) => {
            eprintln!("berth: cannot find berthd: where is this executable? {e}");
            return ExitCode::from(1);
        }
    };
    let error = std::process::Command::new(&berthd).arg0("berthd").args(args).exec();
    eprintln!(
        "berth: cannot start {}: {error} (berthd is installed beside berth)",
        berthd.display()
    );
    ExitCode::from(1)
}
