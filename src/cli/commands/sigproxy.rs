//! Docker's `--sig-proxy`, on by default: while `run` or `attach` is
//! attached without a tty, a signal sent to the CLI (Ctrl-C, `kill`) goes to
//! the container's main process instead of ending only the CLI and leaving
//! the container running unseen. With a tty, Ctrl-C is a key that reaches the
//! process through the pty.

use std::sync::{Arc, Mutex};

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::cli::args::Global;
use crate::cli::client;
use crate::wire::{KillRequest, VerbResponse};

/// The signals passed on (Docker's proxy passes all that can be caught; these
/// are the ones a terminal or a supervisor sends).
const PROXIED: [(libc::c_int, &str); 6] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
];

/// The container the signals go to, once it is known (`run` learns its name
/// when it has started).
pub type Target = Arc<Mutex<Option<String>>>;

/// The proxy's signal handlers, installed when it is made: a signal that
/// arrives between the attach and the first poll of [`Proxy::forward`] is
/// queued for it, not left to its default action (which ended the CLI and
/// left the container running unseen).
pub struct Proxy {
    streams: Vec<(Signal, libc::c_int, &'static str)>,
}

impl Proxy {
    /// Installs the handlers now, before anything is attached.
    pub fn install() -> Proxy {
        let streams = PROXIED
            .iter()
            .filter_map(|&(number, name)| Some((signal(SignalKind::from_raw(number)).ok()?, number, name)))
            .collect();
        Proxy { streams }
    }

    /// Passes signals on to `target` for as long as it is polled. A signal
    /// that comes before the container is known ends the CLI as it would
    /// have without the proxy (128 + the signal).
    pub async fn forward(mut self, g: &Global, target: Target) -> std::convert::Infallible {
        loop {
            let waits = self.streams.iter_mut().map(|(stream, number, name)| {
                Box::pin(async move {
                    stream.recv().await;
                    (*number, *name)
                })
            });
            let ((number, name), _, _) = futures_util::future::select_all(waits).await;
            let container = target.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let Some(container) = container else {
                std::process::exit(128 + number);
            };
            let body = KillRequest {
                signal: Some(name.into()),
            };
            // The container may have ended meanwhile; its exit ends the CLI.
            let _ = client(g, false)
                .post::<_, VerbResponse>(&format!("/v1/kill/{}", crate::client::segment(&container)), &body)
                .await;
        }
    }
}
