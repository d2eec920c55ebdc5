//! `berthd`: the daemon and the processes it starts from its own executable
//! (`shim`, `exec-zygote`, dispatched before anything else
//! starts). `berth daemon` execs it; it also runs every CLI command, so that
//! one binary is enough where the CLI's start-up time does not matter. Only
//! here and in `berth`'s main do the daemon and the CLI meet; neither
//! imports the other.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::process::ExitCode;

use berth::cli::args::{Cli, Cmd, DaemonArgs, Global};
use clap::Parser;

fn main() -> ExitCode {
    // The shims and the exec zygote must stay single-threaded until libcontainer's build() is done,
    // so it is dispatched before clap, tracing or tokio start anything.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == "shim" {
        let code = berth::runtime::shim::main(std::path::Path::new(&args[2]));
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    if args.len() == 2 && args[1] == "exec-zygote" {
        let code = berth::runtime::zygote::main();
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let Cli { global, command } = Cli::parse();
    if !matches!(command, Cmd::Daemon(_)) {
        // `berth get | head` should end quietly, as other Unix tools do.
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match command {
        Cmd::Daemon(args) => berth::cli::block_on(daemon(&global, args)),
        Cmd::Cli(command) => berth::cli::block_on(berth::cli::main(&global, command)),
    }
}

/// `berth daemon`: serves the API on the socket until SIGTERM or Ctrl-C.
async fn daemon(g: &Global, args: DaemonArgs) -> anyhow::Result<ExitCode> {
    berth::daemon::run(berth::daemon::DaemonConfig {
        root: g.root.clone(),
        run: g.run_dir.clone(),
        socket: g.socket(),
        watch: Some(g.watch.clone()),
        insecure_registries: args.insecure_registries,
        log_max_size: args.log_max_size,
        log_max_files: args.log_max_files,
        default_address_pools: args.default_address_pools,
        dns_upstream: args.dns_upstream,
        userns_remap: args.userns_remap,
        docker_socket: match args.docker_socket {
            None => Some(g.run_dir.join("docker.sock")),
            Some(p) if p.is_empty() => None,
            Some(p) => Some(p.into()),
        },
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
