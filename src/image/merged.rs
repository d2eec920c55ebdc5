//! The merged view of an image's snapshots, as the container's overlay will
//! show it, read without mounting anything: which layers' entries make up a
//! path (the top-most wins, whiteouts and opaque directories hide what is
//! below), a file of it (`/etc/passwd`), and a copy of a directory of it
//! (to fill a volume on first use).
//!
//! Snapshots hold whiteouts in overlayfs form (see `unpack.rs`): a 0/0
//! character device, and `trusted.overlay.opaque=y` on a directory. Symlinks
//! on the way to a path are not followed (they could lead out of the layer):
//! such a path shows nothing, as before.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::commit::is_opaque;

/// Whether `meta` is an overlay whiteout (a 0/0 character device).
fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// The entries at `path` (absolute in the container) that the merged view
/// of `layers` (top first) is made of, top first: one for a file, every
/// visible layer's directory for a directory. Empty when the path is not
/// there, is hidden, or has a symlink or `..` on the way.
pub fn lookup(layers: &[PathBuf], path: &str) -> Vec<PathBuf> {
    let mut parts = Vec::new();
    for part in Path::new(path).components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => parts.push(name),
            Component::ParentDir | Component::Prefix(_) => return Vec::new(),
        }
    }
    let mut found = Vec::new();
    for layer in layers {
        let mut at = layer.clone();
        // Whether this layer hides the path in every layer below it.
        let mut hides_below = false;
        let mut present = true;
        for (i, name) in parts.iter().enumerate() {
            at.push(name);
            let last = i + 1 == parts.len();
            match fs::symlink_metadata(&at) {
                Err(_) => {
                    present = false;
                    break;
                }
                Ok(m) if is_whiteout(&m) || m.file_type().is_symlink() => return found,
                Ok(m) if !m.is_dir() && !last => return found,
                Ok(m) if m.is_dir() => hides_below |= is_opaque(&at),
                Ok(_) => {}
            }
        }
        if present {
            let is_dir = fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir());
            found.push(at);
            // A file hides whatever the layers below have at its path.
            if !is_dir {
                return found;
            }
        }
        if hides_below {
            return found;
        }
    }
    found
}

/// The regular file at `path` in the merged view, as text.
pub fn read_file(layers: &[PathBuf], path: &str) -> Option<String> {
    let top = lookup(layers, path).into_iter().next()?;
    fs::symlink_metadata(&top).ok()?.is_file().then_some(())?;
    fs::read_to_string(top).ok()
}

/// Copies the merged directory made of `sources` (as [`lookup`] gives
/// them, top first) into the empty directory `to`: the bottom one first,
/// then each above over it, removing what a whiteout hides and clearing
/// what an opaque directory hides. Owners (when root), modes, symlinks,
/// files and directories are kept; other node types are skipped.
/// `to` itself gets the owner and mode of the top-most directory, as
/// Docker gives a volume those of the image's mount point (so a non-root
/// user of the image can write where the image lets it).
pub fn copy_merged(sources: &[PathBuf], to: &Path) -> io::Result<()> {
    let as_root = nix::unistd::geteuid().is_root();
    for source in sources.iter().rev() {
        merge_into(source, to, as_root)?;
    }
    if let Some(top) = sources.first() {
        let meta = fs::symlink_metadata(top)?;
        if as_root {
            std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
        }
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    Ok(())
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn merge_into(from: &Path, to: &Path, as_root: bool) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src)?;
        let kind = meta.file_type();
        if is_whiteout(&meta) {
            remove_any(&dst)?;
            continue;
        }
        if kind.is_dir() {
            let keep = fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir()) && !is_opaque(&src);
            if !keep {
                remove_any(&dst)?;
                fs::create_dir(&dst)?;
            }
            merge_into(&src, &dst, as_root)?;
        } else if kind.is_symlink() {
            remove_any(&dst)?;
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if kind.is_file() {
            remove_any(&dst)?;
            fs::copy(&src, &dst)?;
        } else {
            continue;
        }
        if as_root {
            std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()))?;
        }
        if !kind.is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    fn write(root: &Path, path: &str, text: &str) {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(at).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                if p.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(root, &p, out);
                } else {
                    out.push(format!("{rel}={}", fs::read_to_string(&p).unwrap()));
                }
            }
        }
        walk(root, root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn a_file_only_in_a_lower_layer_is_found_and_the_top_most_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (low, high) = (dir.path().join("low"), dir.path().join("high"));
        write(&low, "etc/passwd", "low");
        write(&low, "etc/group", "low");
        write(&high, "etc/group", "high");
        write(&high, "bin/sh", "");
        let layers = vec![high.clone(), low.clone()];
        assert_eq!(read_file(&layers, "/etc/passwd").as_deref(), Some("low"));
        assert_eq!(read_file(&layers, "/etc/group").as_deref(), Some("high"));
        assert_eq!(read_file(&layers, "/etc/shadow"), None);
        assert_eq!(read_file(&layers, "/etc/../etc/passwd"), None);
        // A directory is not a file.
        assert_eq!(read_file(&layers, "/etc"), None);
        // A file over a directory hides it.
        write(&high, "srv", "file");
        write(&low, "srv/index", "x");
        assert_eq!(read_file(&layers, "/srv/index"), None);
    }

    #[test]
    fn a_directory_is_copied_as_the_layers_merge_it() {
        let dir = tempfile::tempdir().unwrap();
        let (low, high) = (dir.path().join("low"), dir.path().join("high"));
        write(&low, "data/a", "low a");
        write(&low, "data/b", "low b");
        write(&low, "data/d/x", "low x");
        write(&high, "data/b", "high b");
        write(&high, "data/c", "high c");
        // A file in the upper layer replaces a directory below.
        write(&high, "data/d", "high d");
        let layers = vec![high.clone(), low.clone()];
        let sources = lookup(&layers, "/data/");
        assert_eq!(sources, [high.join("data"), low.join("data")]);
        let to = dir.path().join("vol");
        fs::create_dir(&to).unwrap();
        fs::set_permissions(high.join("data"), fs::Permissions::from_mode(0o751)).unwrap();
        copy_merged(&sources, &to).unwrap();
        assert_eq!(tree(&to), ["a=low a", "b=high b", "c=high c", "d=high d"]);
        assert_eq!(
            fs::metadata(&to).unwrap().mode() & 0o7777,
            0o751,
            "the mount point's mode"
        );
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_what_is_below() {
        if !nix::unistd::geteuid().is_root() {
            // Whiteouts (mknod) and trusted.* xattrs need root; the root run
            // of the unit tests checks this.
            return;
        }
        use nix::sys::stat::{mknod, Mode, SFlag};
        let dir = tempfile::tempdir().unwrap();
        let (low, high) = (dir.path().join("low"), dir.path().join("high"));
        write(&low, "data/gone", "x");
        write(&low, "data/keep", "k");
        write(&low, "data/sub/hidden", "h");
        write(&low, "etc/passwd", "low");
        write(&high, "data/sub/y", "y");
        mknod(&high.join("data/gone"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        fs::create_dir_all(high.join("etc")).unwrap();
        mknod(&high.join("etc/passwd"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        let sub = CString::new(high.join("data/sub").as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated strings and a 1-byte value, read only.
        let rc = unsafe {
            libc::lsetxattr(
                sub.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        let layers = vec![high.clone(), low.clone()];
        assert_eq!(read_file(&layers, "/etc/passwd"), None, "whited out");
        assert!(lookup(&layers, "/data/sub/hidden").is_empty(), "under an opaque dir");
        let to = dir.path().join("vol");
        fs::create_dir(&to).unwrap();
        copy_merged(&lookup(&layers, "/data"), &to).unwrap();
        assert_eq!(tree(&to), ["keep=k", "sub/", "sub/y=y"]);
        // The opaque directory itself, as a mount path, shows its layer only.
        assert_eq!(lookup(&layers, "/data/sub"), [high.join("data/sub")]);
    }
}
