//! Engine commands: what every front end (the HTTP API, the watcher, later a
//! Docker-compatible API) calls. Each decodes nothing and encodes nothing: it
//! takes wire requests and returns wire replies or a [`CommandError`], and
//! reports on its own objects only.

pub mod apply;
pub mod attach;
pub mod build;
pub mod delete;
pub mod docker_inspect;
pub mod docker_list;
pub mod docker_ops;
pub mod exec;
pub mod images;
pub mod inspect;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod query;
pub mod revisions;
pub mod run;
pub mod sources;
pub mod update;

use crate::manifest::{self, Kind};
use crate::reconcile::{DriverError, ReconcileError};
use crate::wire::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The named object or container does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A container could not be started.
    #[error("{0}")]
    Unavailable(String),
    /// The state database or a stored row failed.
    #[error(transparent)]
    State(#[from] ReconcileError),
}

impl CommandError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CommandError::NotFound(_) => ErrorKind::NotFound,
            CommandError::Conflict(_) => ErrorKind::Conflict,
            CommandError::Invalid(_) => ErrorKind::Invalid,
            CommandError::Unavailable(_) => ErrorKind::Unavailable,
            CommandError::State(_) => ErrorKind::Internal,
        }
    }
}

impl From<DriverError> for CommandError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::State(s) => CommandError::State(s),
            DriverError::Invalid(m) => CommandError::Invalid(m),
            other => CommandError::Unavailable(other.status_message()),
        }
    }
}

pub type Result<T, E = CommandError> = std::result::Result<T, E>;

/// Refuses a name that no object of `kind` can have, before it is looked up
/// or stored. Containers, volumes and networks take Docker's names
/// (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, so docker-compose's `proj_web_1` and
/// `proj_default` work); where a container's name becomes a DNS name it is
/// mapped to a label (see [`manifest::dns_label_of`]). Image objects keep
/// DNS labels (see [`manifest::is_object_name`]).
/// Checking here, once, serves every front end; a lookup of such a name is
/// "invalid", never "not found", so a typo'd `web?x` cannot be mistaken for
/// a missing `web`.
pub fn check_name(kind: Kind, name: &str) -> Result<()> {
    if kind != Kind::Image {
        if manifest::is_docker_name(name) {
            return Ok(());
        }
        return Err(CommandError::Invalid(format!(
            "invalid {} name {}: a name is 1 to 63 letters, digits, `_`, `.` and `-`, \
             starting with a letter or digit",
            kind.as_str().to_ascii_lowercase(),
            quote(name)
        )));
    }
    check_name_of(&kind.as_str().to_ascii_lowercase(), name)
}

/// [`check_name`] where the kind is not known (`what` says "object").
pub fn check_name_of(what: &str, name: &str) -> Result<()> {
    if manifest::is_dns_label(name) {
        return Ok(());
    }
    Err(CommandError::Invalid(format!(
        "invalid {what} name {}: a name is 1 to 63 lower-case letters, digits and `-`, \
         starting and ending with a letter or digit",
        quote(name)
    )))
}

/// `s` quoted for an error message: control characters (a NUL, an escape
/// sequence) escaped so nothing raw reaches a terminal or a log, and cut
/// short so a megabyte of name does not become a megabyte of message.
pub fn quote(s: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut cut: String = s.chars().take(MAX_CHARS).collect();
    let more = cut.len() < s.len();
    cut = format!("{cut:?}");
    if more {
        cut.push_str("...");
    }
    cut
}

#[cfg(test)]
mod tests;
