//! The daemon's settings as its operator chose them, recorded under the root
//! so that a daemon the CLI starts on its own (after a crash, a reboot) runs
//! with the same flags as the one the operator started, never with defaults
//! that would, say, hand out subnets from another pool. Written by the daemon
//! once it holds the root's lock; read by the CLI before it starts one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name under the root.
const FILE: &str = "daemon.json";

/// Why the recorded settings could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file exists but could not be read.
    #[error("cannot read the daemon's recorded settings {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not what the daemon writes.
    #[error(
        "the daemon's recorded settings {path} are unreadable ({source}); \
         start the daemon yourself (`berth daemon` with your flags), which rewrites it"
    )]
    Parse { path: PathBuf, source: serde_json::Error },
    /// The file could not be written.
    #[error("cannot record the daemon's settings in {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// What `berthd` was started with: its arguments after the program name
/// (`daemon` first, every setting as an explicit flag, so the environment
/// of whoever starts it next cannot change them) and the socket it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSettings {
    pub args: Vec<String>,
    pub socket: PathBuf,
}

pub fn path(root: &Path) -> PathBuf {
    root.join(FILE)
}

/// The settings recorded under `root`; `None` when no daemon ever ran there.
pub fn read(root: &Path) -> Result<Option<DaemonSettings>, SettingsError> {
    let path = path(root);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SettingsError::Read { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| SettingsError::Parse { path, source })
}

/// Records `settings` under `root`: write-temp, fsync, rename, so a crash
/// leaves the old record or the new one, never half of one.
pub fn write(root: &Path, settings: &DaemonSettings) -> Result<(), SettingsError> {
    let path = path(root);
    let tmp = root.join(format!(".{FILE}.tmp"));
    let err = |source| SettingsError::Write {
        path: path.clone(),
        source,
    };
    let body = serde_json::to_vec_pretty(settings).map_err(|e| err(e.into()))?;
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(&body).and_then(|()| f.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    if let Ok(dir) = std::fs::File::open(root) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_back_as_written_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let s = DaemonSettings {
            args: vec![
                "daemon".into(),
                "--default-address-pool".into(),
                "base=10.9.0.0/16,size=24".into(),
            ],
            socket: "/run/x.sock".into(),
        };
        write(dir.path(), &s).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(s));
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_the_file_not_a_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"{\"args\": [\"daemon\"").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("daemon.json") && e.contains("berth daemon"), "{e}");
    }
}
