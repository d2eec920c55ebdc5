//! Git sources: fetching a repository into berth's state directory and
//! reading the manifests of one commit. Knows nothing of containers or of
//! the store; the command layer (`commands::sources`) applies what it reads.
//!
//! It drives the git CLI rather than a Rust git library: the CLI speaks
//! every transport and auth scheme a user's remote may need (smart http
//! with extra headers, ssh with the system's ssh and known_hosts, git://,
//! file://) and is what every GitOps tool's users already debug with; gix's
//! client transports and credential handling cover less of that today.
//! Secrets never reach a command line or a log: a token goes into a
//! private config file named by `GIT_CONFIG_GLOBAL` for the one command and
//! is removed after it; an ssh key is named by its path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fetch that makes no progress for this long is stopped.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// git failed; `stderr` is its message.
    #[error("git {what}: {stderr}")]
    Git { what: String, stderr: String },
    /// git could not be run, or a file could not be read or written.
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    /// A credential could not be read.
    #[error("{0}")]
    Credential(String),
}

pub type Result<T> = std::result::Result<T, SourceError>;

/// Which commit of the remote to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Head,
    Branch(String),
    Tag(String),
    Commit(String),
}

/// How to authenticate: at most one of these.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// A file holding a token for https.
    pub token_file: Option<PathBuf>,
    /// A Docker config whose `auths` entry for the URL's host is used for https.
    pub docker_config: Option<PathBuf>,
    /// An ssh private key file.
    pub ssh_key_file: Option<PathBuf>,
}

/// A commit's author and subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitInfo {
    pub author: String,
    pub subject: String,
}

/// The repository of source `name` under the state dir.
pub fn repo_dir(root: &Path, name: &str) -> PathBuf {
    root.join("sources").join(name)
}

/// Refuses a URL that carries a password: it would show in `ps` and logs.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    if url.is_empty() {
        return Err("url: empty; give the repository's URL".into());
    }
    if url.starts_with('-') {
        return Err(format!("url: {url:?} starts with `-`"));
    }
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split('/').next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if userinfo.contains(':') {
                return Err("url: holds a password; put the token in a file and name it with --token-file".into());
            }
        }
    }
    Ok(())
}

/// Pids of git processes a thread here waits for: the daemon's reaper must
/// leave them to their waiter (as `network::ChildWaits` for `nft`), or the
/// waiter gets ECHILD. Held from spawn until the pid is listed.
pub fn waits() -> &'static crate::network::ChildWaits {
    static WAITS: std::sync::OnceLock<crate::network::ChildWaits> = std::sync::OnceLock::new();
    WAITS.get_or_init(Default::default)
}

/// Runs git with a clean environment (no user or system config, no prompt),
/// `extra_config` as its only global config, and a timeout.
fn git(
    dir: Option<&Path>,
    args: &[&str],
    what: &str,
    config: Option<&Path>,
    ssh_key: Option<&Path>,
) -> Result<Vec<u8>> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("--git-dir").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("SSH_ASKPASS", "/bin/false")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", config.unwrap_or(Path::new("/dev/null")))
        .env_remove("GIT_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(key) = ssh_key {
        // The path is no secret; BatchMode refuses to prompt.
        cmd.env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
                key.display().to_string().replace('\'', "")
            ),
        );
    }
    let io = |source| SourceError::Io {
        what: format!("git {what}"),
        source,
    };
    let mut child = {
        let mut list = waits().lock();
        let child = cmd.spawn().map_err(io)?;
        list.push(child.id() as i32);
        child
    };
    let pid = child.id() as i32;
    let result = wait(&mut child, what);
    waits().lock().retain(|p| *p != pid);
    let (status, stdout, stderr) = result?;
    if !status.success() {
        let text = String::from_utf8_lossy(&stderr);
        let text: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        return Err(SourceError::Git {
            what: what.into(),
            stderr: if text.is_empty() {
                format!("exited with {status}")
            } else {
                text.join("; ")
            },
        });
    }
    Ok(stdout)
}

/// Waits for `child` (killing it past [`GIT_TIMEOUT`]), reading its output meanwhile.
fn wait(child: &mut std::process::Child, what: &str) -> Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>)> {
    let io = |source| SourceError::Io {
        what: format!("git {what}"),
        source,
    };
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).map(|_| v)
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + GIT_TIMEOUT;
    let status = loop {
        match child.try_wait().map_err(io)? {
            Some(s) => break s,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SourceError::Git {
                    what: what.into(),
                    stderr: format!("no answer within {}s", GIT_TIMEOUT.as_secs()),
                });
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stdout = out.join().unwrap_or_else(|_| Ok(Vec::new())).map_err(io)?;
    let stderr = err.join().unwrap_or_default();
    Ok((status, stdout, stderr))
}

/// The https credential as a header value, from a token file or a Docker config.
fn auth_header(url: &str, auth: &Auth) -> Result<Option<String>> {
    let b64 = |s: String| crate::image::login::base64(s.as_bytes());
    if let Some(file) = &auth.token_file {
        let token = std::fs::read_to_string(file)
            .map_err(|e| SourceError::Credential(format!("cannot read token file {}: {e}", file.display())))?;
        let token = token.trim();
        if token.is_empty() || token.contains(['\n', '\r']) {
            return Err(SourceError::Credential(format!(
                "token file {} must hold one line, the token",
                file.display()
            )));
        }
        return Ok(Some(format!("Basic {}", b64(format!("x-access-token:{token}")))));
    }
    if let Some(file) = &auth.docker_config {
        let text = std::fs::read_to_string(file)
            .map_err(|e| SourceError::Credential(format!("cannot read docker config {}: {e}", file.display())))?;
        let config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| SourceError::Credential(format!("docker config {} is not JSON: {e}", file.display())))?;
        let host = url
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
            .unwrap_or("");
        let auths = config.get("auths").and_then(|a| a.as_object());
        let entry = auths.and_then(|a| {
            a.iter()
                .find(|(k, _)| k.trim_start_matches("https://").trim_end_matches('/') == host)
                .map(|(_, v)| v)
        });
        let Some(encoded) = entry.and_then(|e| e.get("auth")).and_then(|a| a.as_str()) else {
            return Err(SourceError::Credential(format!(
                "docker config {} has no auths entry with an auth for {host}",
                file.display()
            )));
        };
        return Ok(Some(format!("Basic {encoded}")));
    }
    Ok(None)
}

/// Writes a private git config holding the credential header; removed on drop.
struct PrivateConfig(PathBuf);

impl PrivateConfig {
    fn write(dir: &Path, header: &str) -> Result<PrivateConfig> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.with_extension("gitconfig");
        let _ = std::fs::remove_file(&path);
        let io = |source| SourceError::Io {
            what: format!("cannot write {}", path.display()),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let quoted = header.replace('\\', "\\\\").replace('"', "\\\"");
        f.write_all(format!("[http]\n\textraHeader = \"Authorization: {quoted}\"\n").as_bytes())
            .map_err(io)?;
        Ok(PrivateConfig(path))
    }
}

impl Drop for PrivateConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Fetches `reference` of `url` into the bare repository `dir` (made on
/// first use) and returns the commit it names.
pub fn fetch(dir: &Path, url: &str, reference: &Ref, auth: &Auth) -> Result<String> {
    if !dir.join("HEAD").exists() {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|source| SourceError::Io {
                what: format!("cannot make {}", parent.display()),
                source,
            })?;
        }
        git(
            None,
            &["init", "--bare", "--quiet", &dir.display().to_string()],
            "init",
            None,
            None,
        )?;
    }
    let header = auth_header(url, auth)?;
    let config = header.map(|h| PrivateConfig::write(dir, &h)).transpose()?;
    let refspecs: Vec<String> = match reference {
        Ref::Head => vec!["+HEAD:refs/berth/target".into()],
        Ref::Branch(b) => vec![format!("+refs/heads/{b}:refs/berth/target")],
        Ref::Tag(t) => vec![format!("+refs/tags/{t}:refs/berth/target")],
        // A commit: everything, then the commit is looked up among it.
        Ref::Commit(_) => vec![
            "+refs/heads/*:refs/berth/heads/*".into(),
            "+refs/tags/*:refs/berth/tags/*".into(),
        ],
    };
    let mut args = vec!["fetch", "--quiet", "--no-tags", "--force", "--", url];
    args.extend(refspecs.iter().map(String::as_str));
    git(
        Some(dir),
        &args,
        "fetch",
        config.as_ref().map(|c| c.0.as_path()),
        auth.ssh_key_file.as_deref(),
    )?;
    drop(config);
    let target = match reference {
        Ref::Commit(sha) => format!("{sha}^{{commit}}"),
        _ => "refs/berth/target^{commit}".into(),
    };
    let out = git(
        Some(dir),
        &["rev-parse", "--verify", "--quiet", &target],
        "rev-parse",
        None,
        None,
    )
    .map_err(|_| SourceError::Git {
        what: "fetch".into(),
        stderr: match reference {
            Ref::Commit(sha) => format!("commit {sha} is not in the repository"),
            _ => "the fetched ref names no commit".into(),
        },
    })?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// A commit's author and subject.
pub fn commit_info(dir: &Path, commit: &str) -> Result<CommitInfo> {
    let out = git(
        Some(dir),
        &["log", "-1", "--format=%an <%ae>%n%s", commit, "--"],
        "log",
        None,
        None,
    )?;
    let text = String::from_utf8_lossy(&out);
    let mut lines = text.lines();
    Ok(CommitInfo {
        author: lines.next().unwrap_or("").to_string(),
        subject: lines.next().unwrap_or("").to_string(),
    })
}

/// The manifest files (`*.yaml`, `*.yml`, hidden and editor files skipped,
/// as the watched directory) under `path` at `commit`, with their bytes,
/// named by their path in the repository.
pub fn manifests(dir: &Path, commit: &str, path: Option<&str>) -> Result<Vec<(String, Vec<u8>)>> {
    let path = path.unwrap_or("").trim_matches('/');
    let mut args = vec!["ls-tree", "-r", "-z", "--name-only", commit, "--"];
    if !path.is_empty() {
        args.push(path);
    }
    let out = git(Some(dir), &args, "ls-tree", None, None)?;
    let mut files = Vec::new();
    for name in out.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let skipped = name
            .split('/')
            .any(|c| c.starts_with('.') || c.starts_with('#') || c.ends_with('~'));
        if skipped || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let bytes = git(
            Some(dir),
            &["cat-file", "blob", &format!("{commit}:{name}")],
            "cat-file",
            None,
            None,
        )?;
        files.push((name, bytes));
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_a_password_is_refused_and_one_without_is_taken() {
        assert!(check_url("https://user:secret@example.com/r.git")
            .unwrap_err()
            .contains("--token-file"));
        assert!(check_url("https://user@example.com/r.git").is_ok());
        assert!(check_url("file:///srv/repo").is_ok());
        assert!(check_url("--upload-pack=x").is_err());
        assert!(check_url("").is_err());
    }
}
