//! Export: the merged root filesystem of a stack of overlay layers (a
//! container's upper dir over its image's snapshots) as one tar, computed
//! the way overlayfs shows it, without mounting anything: the top-most
//! layer holding a name decides; a whiteout (0/0 character device) hides
//! the name below it; an opaque directory hides everything below it.
//! Entries keep modes, owners, mtimes and extended attributes, written by
//! commit's writer ([`append_leaf`]); files hard-linked within a layer stay
//! linked, across layers they are separate files.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use super::commit::{append_leaf, header_for, is_opaque};

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Writes the merged tree of `layers` (top first; each the same directory
/// in its layer, existing ones only) under the archive name `prefix`.
fn merge<W: Write>(
    tar: &mut tar::Builder<W>,
    layers: &[PathBuf],
    prefix: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> io::Result<()> {
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
            merge(tar, &below, &format!("{archived}/"), links)?;
        } else {
            append_leaf(tar, &archived, &path, &meta, links)?;
        }
    }
    Ok(())
}

/// Writes the merged view of `layers` (top first) as a tar into `out`.
pub fn export(layers: &[PathBuf], out: impl Write) -> io::Result<()> {
    let existing: Vec<PathBuf> = layers.iter().filter(|d| d.is_dir()).cloned().collect();
    let mut tar = tar::Builder::new(out);
    merge(&mut tar, &existing, "", &mut HashMap::new())?;
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

    #[test]
    fn hard_links_stay_links_and_extended_attributes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        fs::create_dir_all(layer.join("bin")).unwrap();
        fs::write(layer.join("bin/tool"), "program").unwrap();
        fs::hard_link(layer.join("bin/tool"), layer.join("bin/alias")).unwrap();
        // user.* xattrs need no privilege (tmpfs and ext4 take them).
        let name = std::ffi::CString::new("user.note").unwrap();
        let file = std::ffi::CString::new(layer.join("bin/tool").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: both strings are nul-terminated and outlive the call; the value is a valid slice.
        let set = unsafe { libc::setxattr(file.as_ptr(), name.as_ptr(), b"kept".as_ptr().cast(), 4, 0) };
        let mut out = Vec::new();
        export(std::slice::from_ref(&layer), &mut out).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let mut kinds = Vec::new();
        let mut note = None;
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().display().to_string();
            kinds.push((path.clone(), e.header().entry_type()));
            for ext in e.pax_extensions().unwrap().into_iter().flatten() {
                let ext = ext.unwrap();
                if ext.key().unwrap() == "SCHILY.xattr.user.note" {
                    note = Some((path.clone(), ext.value_bytes().to_vec()));
                }
            }
        }
        // Sorted by name: `alias` is written first, `tool` links to it.
        assert_eq!(
            kinds,
            [
                ("bin/".to_string(), tar::EntryType::Directory),
                ("bin/alias".to_string(), tar::EntryType::Regular),
                ("bin/tool".to_string(), tar::EntryType::Link),
            ]
        );
        if set == 0 {
            assert_eq!(note, Some(("bin/alias".to_string(), b"kept".to_vec())));
        }
    }
}
