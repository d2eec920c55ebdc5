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
        // `berth --root R daemon`: global flags before the command.
        return exec_berthd(&args[1..]);
    };
    // `berth get | head` should end quietly, as other Unix tools do.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    berth::cli::block_on(berth::cli::main(&global, command))
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
