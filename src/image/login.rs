//! `login`/`logout`: credentials in Docker's `config.json` (`$DOCKER_CONFIG`
//! or `~/.docker` of the daemon, which is who pulls), where `docker login`
//! keeps them and where pulls and pushes read them (`docker_credential`).
//!
//! Login checks the credentials first: it lists the tags of a repository
//! with them, and only a refusal (401/403) fails it; a registry that does
//! not know the repository has still accepted who asked. The file is
//! rewritten whole (other keys kept), mode 0600, by temp file and rename.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;

use super::error::{ImageError, Result};
use super::pull::classify;
use super::ImageStore;

fn config_path() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .map(|d| d.join("config.json"))
}

pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Changes `auths` in the config file under `f`, writing it back atomically.
fn edit_config(f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> bool) -> Result<bool> {
    let path = config_path().ok_or_else(|| ImageError::Store {
        path: PathBuf::from("~/.docker/config.json"),
        source: std::io::Error::other("neither DOCKER_CONFIG nor HOME is set"),
    })?;
    let store_error = |source| ImageError::Store {
        path: path.clone(),
        source,
    };
    let mut config: serde_json::Value = match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| store_error(std::io::Error::other(format!("not JSON: {e}"))))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(store_error(e)),
    };
    if !config["auths"].is_object() {
        config["auths"] = serde_json::json!({});
    }
    let Some(auths) = config["auths"].as_object_mut() else {
        return Ok(false);
    };
    if !f(auths) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(store_error)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(serde_json::to_string_pretty(&config).unwrap_or_default().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(store_error(e));
    }
    Ok(true)
}

impl ImageStore {
    /// Checks `username`/`password` against `registry` and stores them.
    pub async fn login(&self, registry: &str, username: &str, password: &str) -> Result<()> {
        let probe = super::record::normalize(&format!("{registry}/library/berth-login-check"))?;
        let client = self.client_for(registry);
        let auth = RegistryAuth::Basic(username.into(), password.into());
        match client.list_tags(&probe, &auth, Some(1), None).await {
            Ok(_) => {}
            Err(OciDistributionError::RegistryError { envelope, .. })
                if envelope
                    .errors
                    .iter()
                    .all(|e| matches!(e.code, OciErrorCode::NameUnknown | OciErrorCode::NotFound)) => {}
            Err(e) => return Err(classify(&probe, e)),
        }
        let encoded = base64(format!("{username}:{password}").as_bytes());
        edit_config(|auths| {
            auths.insert(registry.to_string(), serde_json::json!({"auth": encoded}));
            true
        })?;
        Ok(())
    }

    /// Forgets the credentials of `registry`; returns whether there were any.
    pub fn logout(&self, registry: &str) -> Result<bool> {
        edit_config(|auths| auths.remove(registry).is_some())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_standard_with_padding() {
        assert_eq!(super::base64(b"shop:s3cret"), "c2hvcDpzM2NyZXQ=");
        assert_eq!(super::base64(b"a"), "YQ==");
        assert_eq!(super::base64(b"abc"), "YWJj");
        assert_eq!(super::base64(b""), "");
    }
}
