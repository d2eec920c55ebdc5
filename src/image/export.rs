//! Export: the merged root filesystem of a stack of overlay layers (a
//! container's upper dir over its image's snapshots) as one tar, computed
//! the way overlayfs shows it, without mounting anything: the top-most
//! layer holding a name decides; a whiteout (0/0 character device) hides
//! the name below it; an opaque directory hides everything below it.
//! Files, directories and symlinks keep modes, owners and mtimes;
//! hardlinks across layers are written as separate files.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use super::commit::{header_for, is_opaque};

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Writes the merged tree of `layers` (top first; each the same directory
/// in its layer, existing ones only) under the archive name `prefix`.
fn merge<W: Write>(tar: &mut tar::Builder<W>, layers: &[PathBuf], prefix: &str) -> io::Result<()> {
    // name -> (layer index, metadata) of the top-most visible entry; None: hidden.
    let mut seen: BTreeMap<OsString, Option<(usize, fs::Metadata)>> = BTreeMap::new();
    for (i, dir) in layers.iter().enumerate() {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if seen.contains_key(&name) {
                continue;
            }
            let meta = fs::symlink_metadata(entry.path())?;
            seen.insert(name, (!is_whiteout(&meta)).then_some((i, meta)));
        }
        if is_opaque(dir) {
            break;
        }
    }
    for (name, visible) in seen {
        let Some((top, meta)) = visible else { continue };
        let path = layers[top].join(&name);
        let archived = format!("{prefix}{}", name.to_string_lossy());
        let kind = meta.file_type();
        if kind.is_dir() {
            let mut h = header_for(&meta, tar::EntryType::Directory, 0);
            tar.append_data(&mut h, format!("{archived}/"), io::empty())?;
            // The same directory lower down shows through, until a layer
            // has something else there or this one is opaque.
            let mut below = vec![path.clone()];
            if !is_opaque(&path) {
                for lower in &layers[top + 1..] {
                    match fs::symlink_metadata(lower.join(&name)) {
                        Ok(m) if m.is_dir() => {
                            below.push(lower.join(&name));
                            if is_opaque(&lower.join(&name)) {
                                break;
                            }
                        }
                        Ok(_) => break,
                        Err(_) => continue,
                    }
                }
            }
            merge(tar, &below, &format!("{archived}/"))?;
        } else if kind.is_symlink() {
            let mut h = header_for(&meta, tar::EntryType::Symlink, 0);
            tar.append_link(&mut h, &archived, fs::read_link(&path)?)?;
        } else if kind.is_file() {
            let mut h = header_for(&meta, tar::EntryType::Regular, meta.len());
            tar.append_data(&mut h, &archived, fs::File::open(&path)?)?;
        } else if kind.is_fifo() || kind.is_char_device() || kind.is_block_device() {
            let entry_type = if kind.is_fifo() {
                tar::EntryType::Fifo
            } else if kind.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = header_for(&meta, entry_type, 0);
            h.set_device_major(libc::major(meta.rdev()))?;
            h.set_device_minor(libc::minor(meta.rdev()))?;
            tar.append_data(&mut h, &archived, io::empty())?;
        }
    }
    Ok(())
}

/// Writes the merged view of `layers` (top first) as a tar into `out`.
pub fn export(layers: &[PathBuf], out: impl Write) -> io::Result<()> {
    let existing: Vec<PathBuf> = layers.iter().filter(|d| d.is_dir()).cloned().collect();
    let mut tar = tar::Builder::new(out);
    merge(&mut tar, &existing, "")?;
    tar.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(bytes: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn the_top_layer_wins_and_deletions_hide_what_is_below() {
        let dir = tempfile::tempdir().unwrap();
        let (upper, lower) = (dir.path().join("upper"), dir.path().join("lower"));
        fs::create_dir_all(lower.join("etc/sub")).unwrap();
        fs::write(lower.join("etc/a"), "lower").unwrap();
        fs::write(lower.join("etc/b"), "lower").unwrap();
        fs::write(lower.join("etc/sub/c"), "lower").unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/a"), "upper").unwrap();
        fs::write(upper.join("etc/new"), "upper").unwrap();
        let mut out = Vec::new();
        export(&[upper.clone(), lower.clone()], &mut out).unwrap();
        let got = names(&out);
        assert_eq!(got, ["etc/", "etc/a", "etc/b", "etc/new", "etc/sub/", "etc/sub/c"]);
        let mut a = tar::Archive::new(&out[..]);
        let mut entry = a.entries().unwrap().nth(1).unwrap().unwrap();
        let mut text = String::new();
        io::Read::read_to_string(&mut entry, &mut text).unwrap();
        assert_eq!(text, "upper");
        // A whiteout (needs root to make) hides the lower file.
        if nix::unistd::geteuid().is_root() {
            nix::sys::stat::mknod(
                &upper.join("etc/b"),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                0,
            )
            .unwrap();
            let mut out = Vec::new();
            export(&[upper, lower], &mut out).unwrap();
            assert!(!names(&out).contains(&"etc/b".to_string()));
        }
    }
}
