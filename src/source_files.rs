//! Finding manifest files on disk: shared by the CLI (`-f DIR`) and the
//! daemon's watched directory, so both see the same files.

use std::path::{Path, PathBuf};

/// Manifest files under `dir`, recursively, sorted; editor temp and hidden files skipped.
pub fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('#') || name.ends_with('~') {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(_) if name.ends_with(".yaml") || name.ends_with(".yml") => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}
