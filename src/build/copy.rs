//! `COPY` and `ADD`: the sources written into a new layer.
//!
//! The layer is the upper dir of an overlay of the step's image, mounted in
//! a mount namespace of a thread of its own (so nothing shows on the host
//! and a crash leaves no mount behind); the copy then sees the image as a
//! container would, and overlay records exactly what changed. Every path
//! in the image is resolved inside its root (`pathrs`, `openat2` with
//! `RESOLVE_IN_ROOT`): a symlink in the image (`/app -> /etc`) or in an
//! archive cannot lead a write out of it, nor a read of `COPY --from` out
//! of the source image. Sources from the context are walked without
//! following symlinks (a link is copied as a link).

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, MsFlags};
use pathrs::flags::OpenFlags;
use pathrs::{InodeType, Root};
use serde::Serialize;

use super::context::Context;

/// What one `COPY`/`ADD` does, after substitution (also its cache key's).
#[derive(Debug, Clone, Serialize)]
pub struct CopyPlan {
    pub sources: Vec<String>,
    pub dest: String,
    /// The stage's WORKDIR: a relative `dest` is under it.
    pub workdir: String,
    pub chown: Option<String>,
    pub chmod: Option<u32>,
    /// `ADD`: local archives are extracted, URLs fetched.
    pub add: bool,
    /// `COPY <<EOF /file`: name and content.
    pub heredocs: Vec<(String, String)>,
}

/// Where sources are read.
#[derive(Debug, Clone)]
pub enum SourceRoot {
    /// The build context directory.
    Context(PathBuf),
    /// An image (`COPY --from`): its layers' dirs, top first.
    Image(Vec<PathBuf>),
}

/// One thing to copy: a file, link or directory tree.
#[derive(Debug, Clone)]
enum Source {
    /// A path under the context (a directory's contents are copied, not
    /// itself): the entries to write, relative to the context.
    Context {
        rel: String,
        is_dir: bool,
        entries: Vec<(String, fs::Metadata)>,
    },
    /// A path in the source image.
    Image(String),
    /// A file made for the step (a downloaded URL, a heredoc), and its name.
    Made { path: PathBuf, name: String, mode: u32 },
}

/// Removes a step's scratch dir.
pub fn remove_scratch(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Writes `plan`'s sources over an image whose layers are `lowers` (top
/// first; none for `scratch`) and returns the upper dir holding the change,
/// under `scratch`. Errors are messages for the step.
pub async fn copy_into_layer(
    plan: &CopyPlan,
    root: &SourceRoot,
    context: Option<&Context>,
    lowers: &[PathBuf],
    scratch: &Path,
) -> Result<PathBuf, String> {
    let mut sources = Vec::new();
    for (i, s) in plan.sources.iter().enumerate() {
        if plan.add && (s.starts_with("http://") || s.starts_with("https://")) {
            let path = scratch.join(format!("download-{i}"));
            let name = download(s, &path).await?;
            sources.push(Source::Made {
                path,
                name,
                mode: 0o600,
            });
            continue;
        }
        match (root, context) {
            (SourceRoot::Context(_), Some(ctx)) => {
                for rel in ctx.resolve(s).map_err(|e| e.to_string())? {
                    let path = ctx.root().join(&rel);
                    let is_dir = fs::symlink_metadata(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?
                        .is_dir();
                    let entries = ctx.walk(&rel).map_err(|e| e.to_string())?;
                    sources.push(Source::Context { rel, is_dir, entries });
                }
            }
            _ => sources.push(Source::Image(s.clone())),
        }
    }
    for (i, (name, content)) in plan.heredocs.iter().enumerate() {
        let path = scratch.join(format!("heredoc-{i}"));
        fs::write(&path, content).map_err(|e| format!("{}: {e}", path.display()))?;
        sources.push(Source::Made {
            path,
            name: name.clone(),
            mode: 0o644,
        });
    }
    let upper = scratch.join("upper");
    for d in [
        &upper,
        &scratch.join("work"),
        &scratch.join("merged"),
        &scratch.join("src"),
    ] {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let plan = plan.clone();
    let root = root.clone();
    let lowers = lowers.to_vec();
    let scratch = scratch.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A thread of its own, not one of the runtime's pool: it leaves the
    // host's mount namespace for good.
    std::thread::Builder::new()
        .name("build-copy".into())
        .spawn(move || {
            let _ = tx.send(copy_in_namespace(&plan, &root, &sources, &lowers, &scratch));
        })
        .map_err(|e| format!("cannot start the copy: {e}"))?;
    rx.await.map_err(|_| "the copy stopped".to_string())??;
    Ok(upper)
}

async fn download(url: &str, to: &Path) -> Result<String, String> {
    // Installing twice is refused, harmlessly: the first one counts.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| format!("ADD {url}: {e}"))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("ADD {url}: {e}"))?;
    let mut file = fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("ADD {url}: {e}"))? {
        file.write_all(&chunk).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    let name = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .unwrap_or("index.html");
    Ok(name.to_string())
}

/// Mounts what the copy needs in this thread's own mount namespace, and copies.
fn copy_in_namespace(
    plan: &CopyPlan,
    root: &SourceRoot,
    sources: &[Source],
    lowers: &[PathBuf],
    scratch: &Path,
) -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("cannot make the copy's mount namespace: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the copy's mounts private: {e}"))?;
    let upper = scratch.join("upper");
    let target = if lowers.is_empty() {
        upper.clone()
    } else {
        let merged = scratch.join("merged");
        overlay(lowers, Some((&upper, &scratch.join("work"))), &merged)?;
        merged
    };
    let src_root = match root {
        SourceRoot::Context(dir) => dir.clone(),
        SourceRoot::Image(dirs) if dirs.len() == 1 => dirs[0].clone(),
        SourceRoot::Image(dirs) if dirs.is_empty() => {
            return Err("COPY --from an empty image: there is nothing to copy".into())
        }
        SourceRoot::Image(dirs) => {
            let src = scratch.join("src");
            overlay(dirs, None, &src)?;
            src
        }
    };
    let dest_root = Root::open(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    let ids = match &plan.chown {
        Some(user) => Some(chown_ids(&dest_root, user)?),
        None => None,
    };
    let mut copier = Copier {
        dest: &dest_root,
        ids,
        chmod: plan.chmod,
        keep_owner: matches!(root, SourceRoot::Image(_)),
    };
    let dest_abs = absolute(&plan.workdir, &plan.dest);
    let many = sources.len() > 1;
    let dest_is_dir = plan.dest.ends_with('/')
        || plan.dest == "."
        || dest_root
            .resolve(&dest_abs)
            .ok()
            .and_then(|h| h.reopen(OpenFlags::O_RDONLY).ok())
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.is_dir());
    if many && !plan.dest.ends_with('/') {
        return Err(format!(
            "when using COPY with more than one source file, the destination must be a directory and end with a /: {}",
            plan.dest
        ));
    }
    for source in sources {
        match source {
            Source::Context { rel, is_dir, entries } => {
                if *is_dir {
                    // Its contents go into the destination, made if missing.
                    dest_root
                        .mkdir_all(&dest_abs, &fs::Permissions::from_mode(0o755))
                        .map_err(|e| format!("{dest_abs}: {e}"))?;
                }
                for (entry_rel, meta) in entries {
                    let from = src_root.join(entry_rel);
                    let to = if *is_dir {
                        let sub = if rel == "." {
                            entry_rel.as_str()
                        } else {
                            entry_rel
                                .strip_prefix(rel.as_str())
                                .unwrap_or(entry_rel)
                                .trim_start_matches('/')
                        };
                        join(&dest_abs, sub)
                    } else if dest_is_dir {
                        join(&dest_abs, base_name(entry_rel))
                    } else {
                        dest_abs.clone()
                    };
                    if plan.add && !is_dir && meta.is_file() && is_archive(&from) {
                        copier.extract(&from, &dest_abs)?;
                        continue;
                    }
                    copier.entry(&from, meta, &to)?;
                }
            }
            Source::Made { path, name, mode } => {
                let to = if dest_is_dir {
                    join(&dest_abs, name)
                } else {
                    dest_abs.clone()
                };
                let meta = fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let saved = copier.chmod;
                copier.chmod = Some(saved.unwrap_or(*mode));
                let r = copier.entry(path, &meta, &to);
                copier.chmod = saved;
                r?;
            }
            Source::Image(path) => {
                let src = Root::open(&src_root).map_err(|e| format!("{}: {e}", src_root.display()))?;
                let rel = absolute("/", path);
                let handle = src
                    .resolve(&rel)
                    .map_err(|e| format!("{path}: not found in the source image ({e})"))?;
                // The resolved path, inside the source root: walked from
                // there without following links.
                let real = fs::read_link(format!("/proc/self/fd/{}", handle.as_fd().as_raw_fd()))
                    .map_err(|e| format!("{path}: reading where it resolved to: {e}"))?;
                if !real.starts_with(&src_root) {
                    return Err(format!("{path}: resolves outside the source image"));
                }
                let meta = fs::symlink_metadata(&real).map_err(|e| format!("{path} ({}): {e}", real.display()))?;
                if meta.is_dir() {
                    copier.tree(&real, &dest_abs)?;
                } else {
                    let to = if dest_is_dir {
                        join(&dest_abs, base_name(path))
                    } else {
                        dest_abs.clone()
                    };
                    copier.entry(&real, &meta, &to)?;
                }
            }
        }
    }
    Ok(())
}

/// Mounts an overlay of `lowers` (top first) at `at`, writable into
/// `upper` (with its work dir) or read-only without.
fn overlay(lowers: &[PathBuf], upper: Option<(&Path, &Path)>, at: &Path) -> Result<(), String> {
    // Short names from their common directory when they share one, as the
    // shim does: the options must fit in a page. This thread has its own
    // working directory (CLONE_NEWNS implies CLONE_FS).
    let first = lowers.first().and_then(|d| d.parent());
    let common = first.filter(|p| lowers.iter().all(|d| d.parent() == Some(*p)));
    let lower = lowers
        .iter()
        .map(|p| match common {
            Some(_) => p.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            None => p.to_string_lossy().into_owned(),
        })
        .collect::<Vec<_>>()
        .join(":");
    let mut opts = format!("lowerdir={lower}");
    let mut flags = MsFlags::empty();
    match upper {
        Some((upper, work)) => opts.push_str(&format!(",upperdir={},workdir={}", upper.display(), work.display())),
        None => flags |= MsFlags::MS_RDONLY,
    }
    if let Some(dir) = common {
        std::env::set_current_dir(dir).map_err(|e| format!("cannot enter {}: {e}", dir.display()))?;
    }
    mount(Some("overlay"), at, Some("overlay"), flags, Some(opts.as_str()))
        .map_err(|e| format!("cannot mount the image for the copy (overlay {opts}): {e}"))
}

/// `path` made absolute under `dir`, cleaned (`..` stops at `/`).
fn absolute(dir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{dir}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in Path::new(&joined).components() {
        match p {
            Component::Normal(n) => parts.push(n.to_str().unwrap_or("")),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

fn join(dir: &str, name: &str) -> String {
    if name.is_empty() {
        dir.to_string()
    } else {
        absolute(dir, name)
    }
}

fn base_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or(path)
}

/// The uid and gid `--chown` names, looked up in the destination image.
fn chown_ids(root: &Root, user: &str) -> Result<(u32, u32), String> {
    let read = |p: &str| -> Option<String> {
        let mut s = String::new();
        root.resolve(p)
            .ok()?
            .reopen(OpenFlags::O_RDONLY)
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        Some(s)
    };
    crate::image::record::resolve_user(user, read("/etc/passwd").as_deref(), read("/etc/group").as_deref())
        .map_err(|e| format!("--chown={user}: {e}"))
}

/// Whether ADD extracts the file: a tar, plain or compressed (gzip, zstd).
fn is_archive(path: &Path) -> bool {
    let Ok(mut f) = fs::File::open(path) else { return false };
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    if n >= 2 && head[..2] == [0x1f, 0x8b] {
        return true;
    }
    if n >= 4 && head[..4] == [0x28, 0xb5, 0x2f, 0xfd] {
        return true;
    }
    n >= 262 && &head[257..262] == b"ustar"
}

struct Copier<'a> {
    dest: &'a Root,
    /// `--chown`.
    ids: Option<(u32, u32)>,
    chmod: Option<u32>,
    /// From another image: files keep their owners (without `--chown`).
    keep_owner: bool,
}

impl Copier<'_> {
    fn owner(&self, meta: &fs::Metadata) -> (u32, u32) {
        match self.ids {
            Some(ids) => ids,
            None if self.keep_owner => (meta.uid(), meta.gid()),
            None => (0, 0),
        }
    }

    /// Makes the parent dirs of `to` (0755, owned by `--chown`'s ids or root).
    fn parents(&self, to: &str) -> Result<(), String> {
        let parent = Path::new(to).parent().unwrap_or(Path::new("/"));
        self.dest
            .mkdir_all(parent, &fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", parent.display()))?;
        Ok(())
    }

    /// Removes what is at `to` unless it is a directory.
    fn clear(&self, to: &str) -> Result<(), String> {
        match self.dest.resolve_nofollow(to) {
            Err(_) => Ok(()),
            Ok(h) => {
                let meta = nix::sys::stat::fstat(h.as_fd().as_raw_fd()).map_err(|e| e.to_string())?;
                if meta.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    return Ok(());
                }
                self.dest.remove_file(to).map_err(|e| format!("{to}: {e}"))
            }
        }
    }

    /// Copies one entry (not a directory's contents) from host path `from`.
    fn entry(&mut self, from: &Path, meta: &fs::Metadata, to: &str) -> Result<(), String> {
        let (uid, gid) = self.owner(meta);
        let mode = self.chmod.unwrap_or(meta.mode() & 0o7777);
        let ft = meta.file_type();
        if ft.is_dir() {
            let h = self
                .dest
                .mkdir_all(to, &fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{to}: {e}"))?;
            let dir = h
                .reopen(OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
                .map_err(|e| format!("{to}: {e}"))?;
            std::os::unix::fs::fchown(&dir, Some(uid), Some(gid)).map_err(|e| format!("{to}: {e}"))?;
            dir.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{to}: {e}"))?;
            return Ok(());
        }
        self.parents(to)?;
        self.clear(to)?;
        if ft.is_symlink() {
            let target = fs::read_link(from).map_err(|e| format!("{}: {e}", from.display()))?;
            self.dest
                .create(to, &InodeType::Symlink(target))
                .map_err(|e| format!("{to}: {e}"))?;
            let parent = Path::new(to).parent().unwrap_or(Path::new("/"));
            let dir = self.dest.resolve(parent).map_err(|e| format!("{to}: {e}"))?;
            nix::unistd::fchownat(
                Some(dir.as_fd().as_raw_fd()),
                base_name(to),
                Some(uid.into()),
                Some(gid.into()),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| format!("{to}: {e}"))?;
            return Ok(());
        }
        if !ft.is_file() {
            // Devices, fifos, sockets in a context are not copied (as Docker).
            return Ok(());
        }
        let mut src = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(from)
            .map_err(|e| format!("{}: {e}", from.display()))?;
        let mut out = self
            .dest
            .create_file(
                to,
                OpenFlags::O_WRONLY | OpenFlags::O_EXCL | OpenFlags::O_CLOEXEC,
                &fs::Permissions::from_mode(0o600),
            )
            .map_err(|e| format!("{to}: {e}"))?;
        io::copy(&mut src, &mut out).map_err(|e| format!("{to}: {e}"))?;
        std::os::unix::fs::fchown(&out, Some(uid), Some(gid)).map_err(|e| format!("{to}: {e}"))?;
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{to}: {e}"))?;
        if let Ok(mtime) = meta.modified() {
            let _ = out.set_modified(mtime);
        }
        Ok(())
    }

    /// Copies the contents of host directory `from` into `to`, never
    /// following a symlink.
    fn tree(&mut self, from: &Path, to: &str) -> Result<(), String> {
        let meta = fs::symlink_metadata(from).map_err(|e| format!("{}: {e}", from.display()))?;
        self.entry(from, &meta, to)?;
        let mut entries: Vec<_> = fs::read_dir(from)
            .map_err(|e| format!("{}: {e}", from.display()))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let child = join(to, &name);
            if meta.is_dir() {
                self.tree(&path, &child)?;
            } else {
                self.entry(&path, &meta, &child)?;
            }
        }
        Ok(())
    }

    /// ADD of a local archive: its entries under `to`, each resolved inside
    /// the image (an entry named `../x` or reached through a link stays in).
    fn extract(&mut self, archive: &Path, to: &str) -> Result<(), String> {
        let file = fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
        let mut head = [0u8; 4];
        let n = (&file).read(&mut head).map_err(|e| e.to_string())?;
        let file = fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
        let reader: Box<dyn Read> = if n >= 2 && head[..2] == [0x1f, 0x8b] {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else if n >= 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
            Box::new(zstd::Decoder::new(file).map_err(|e| e.to_string())?)
        } else {
            Box::new(file)
        };
        self.dest
            .mkdir_all(to, &fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{to}: {e}"))?;
        let mut tar = tar::Archive::new(reader);
        let what = archive.display().to_string();
        for entry in tar.entries().map_err(|e| format!("{what}: {e}"))? {
            let mut entry = entry.map_err(|e| format!("{what}: {e}"))?;
            let path = entry.path().map_err(|e| format!("{what}: {e}"))?.into_owned();
            let rel = absolute("/", &path.to_string_lossy());
            if rel == "/" {
                continue;
            }
            let dest = join(to, rel.trim_start_matches('/'));
            let header = entry.header();
            let mode = header.mode().unwrap_or(0o644) & 0o7777;
            let (uid, gid) = match self.ids {
                Some(ids) => ids,
                None => (header.uid().unwrap_or(0) as u32, header.gid().unwrap_or(0) as u32),
            };
            match header.entry_type() {
                tar::EntryType::Directory => {
                    let h = self
                        .dest
                        .mkdir_all(&dest, &fs::Permissions::from_mode(0o755))
                        .map_err(|e| format!("{dest}: {e}"))?;
                    let dir = h
                        .reopen(OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
                        .map_err(|e| e.to_string())?;
                    let _ = std::os::unix::fs::fchown(&dir, Some(uid), Some(gid));
                    let _ = dir.set_permissions(fs::Permissions::from_mode(mode));
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    self.parents(&dest)?;
                    self.clear(&dest)?;
                    let mut out = self
                        .dest
                        .create_file(
                            &dest,
                            OpenFlags::O_WRONLY | OpenFlags::O_EXCL | OpenFlags::O_CLOEXEC,
                            &fs::Permissions::from_mode(0o600),
                        )
                        .map_err(|e| format!("{dest}: {e}"))?;
                    io::copy(&mut entry, &mut out).map_err(|e| format!("{dest}: {e}"))?;
                    let _ = std::os::unix::fs::fchown(&out, Some(uid), Some(gid));
                    out.set_permissions(fs::Permissions::from_mode(mode))
                        .map_err(|e| format!("{dest}: {e}"))?;
                }
                tar::EntryType::Symlink => {
                    let Some(target) = entry.link_name().map_err(|e| e.to_string())? else {
                        continue;
                    };
                    self.parents(&dest)?;
                    self.clear(&dest)?;
                    self.dest
                        .create(&dest, &InodeType::Symlink(target.into_owned()))
                        .map_err(|e| format!("{dest}: {e}"))?;
                }
                tar::EntryType::Link => {
                    let Some(target) = entry.link_name().map_err(|e| e.to_string())? else {
                        continue;
                    };
                    let target = join(to, absolute("/", &target.to_string_lossy()).trim_start_matches('/'));
                    self.parents(&dest)?;
                    self.clear(&dest)?;
                    self.dest
                        .create(&dest, &InodeType::Hardlink(PathBuf::from(target)))
                        .map_err(|e| format!("{dest}: {e}"))?;
                }
                // Devices and fifos from an archive are not made.
                _ => {}
            }
        }
        Ok(())
    }
}

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_cleaned_and_stay_under_root() {
        assert_eq!(absolute("/app", "x"), "/app/x");
        assert_eq!(absolute("/app", "../../../etc"), "/etc");
        assert_eq!(absolute("/", "/a/./b/"), "/a/b");
        assert_eq!(join("/app", ""), "/app");
        assert_eq!(base_name("dir/file.txt"), "file.txt");
        assert_eq!(base_name("dir/sub/"), "sub");
    }
}
