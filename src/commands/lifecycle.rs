//! Lifecycle verbs on one container: `start`, `restart`, `kill`, `pause`,
//! `unpause` (`stop` is in `query`). On a manifest container, `stop`, `kill`
//! and `pause` are remembered as a hold that reconcile does not undo, shown
//! in `get`, until `start` or `unpause` (or an apply that changes it).

use std::str::FromStr;
use std::sync::Arc;

use nix::sys::signal::Signal;

use super::{CommandError, Result};
use crate::manifest::Kind;
use crate::reconcile::{Engine, VerbError};
use crate::wire::{KillRequest, VerbResponse};

impl From<VerbError> for CommandError {
    fn from(e: VerbError) -> Self {
        match e {
            VerbError::Driver(d) => d.into(),
            VerbError::NotFound(what) => CommandError::NotFound(what),
            other => CommandError::Conflict(other.to_string()),
        }
    }
}

fn known(engine: &Engine, name: &str) -> Result<()> {
    super::check_name(Kind::Container, name)?;
    if engine.container_exists(name)? {
        Ok(())
    } else {
        Err(CommandError::NotFound(format!("container/{name}")))
    }
}

fn done(name: &str, verb: &str) -> VerbResponse {
    VerbResponse {
        container: name.into(),
        verb: verb.into(),
    }
}

pub async fn start(engine: &Arc<Engine>, name: &str) -> Result<VerbResponse> {
    known(engine, name)?;
    engine.start_by_name(name).await?;
    Ok(done(name, "start"))
}

/// [`start`] for a client that attaches next (Docker's attach, then start):
/// the init waits for that attach, and the exit is the client's to report
/// (a `--rm` container goes once the client has it).
pub async fn start_for_attach(engine: &Arc<Engine>, name: &str) -> Result<VerbResponse> {
    known(engine, name)?;
    engine.attach(name);
    if let Err(e) = engine.start_by_name_for_attach(name).await {
        engine.detach(name);
        return Err(e.into());
    }
    Ok(done(name, "start"))
}

/// Stops it (grace period, then SIGKILL) if it runs, then starts it.
pub async fn restart(engine: &Arc<Engine>, name: &str) -> Result<VerbResponse> {
    restart_with(engine, name, Default::default()).await
}

/// [`restart`] with the stop's grace period or signal of the caller's.
pub async fn restart_with(
    engine: &Arc<Engine>,
    name: &str,
    opts: crate::reconcile::StopOptions,
) -> Result<VerbResponse> {
    known(engine, name)?;
    engine.stop_by_name_with(name, opts).await;
    engine.start_by_name(name).await?;
    Ok(done(name, "restart"))
}

pub async fn kill(engine: &Arc<Engine>, name: &str, req: &KillRequest) -> Result<VerbResponse> {
    super::check_name(Kind::Container, name)?;
    let signal = parse_signal(req.signal.as_deref().unwrap_or("KILL"))?;
    known(engine, name)?;
    engine.kill_by_name(name, signal).await?;
    Ok(done(name, "kill"))
}

pub async fn pause(engine: &Arc<Engine>, name: &str, frozen: bool) -> Result<VerbResponse> {
    known(engine, name)?;
    engine.freeze_by_name(name, frozen).await?;
    Ok(done(name, if frozen { "pause" } else { "unpause" }))
}

/// `rename OLD NEW`: an imperative container, running or not.
pub async fn rename(engine: &Arc<Engine>, old: &str, new: &str) -> Result<VerbResponse> {
    super::check_name(Kind::Container, old)?;
    super::check_name(Kind::Container, new)?;
    engine.rename(old, new).await?;
    Ok(done(new, "rename"))
}

/// `KILL`, `SIGKILL`, `kill` or `9`, as `docker kill -s` takes them.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || {
        CommandError::Invalid(format!(
            "unknown signal {s:?}: expected a name such as TERM or a number"
        ))
    };
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_as_docker_kill_takes_them() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("hup").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("10").unwrap(), Signal::SIGUSR1);
        assert!(parse_signal("NOPE").unwrap_err().to_string().contains("NOPE"));
        assert!(parse_signal("99").is_err());
    }
}
