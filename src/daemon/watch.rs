//! The watched manifest directory as a source: each file is a source of its
//! own. A file added or changed is applied; a removed file deletes what it
//! defined; a file that stops parsing keeps its objects in their last good
//! state and its error is recorded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::manifest::{self, Kind, Source};
use crate::reconcile::Engine;

/// Quiet time after the last file event before the directory is read.
const DEBOUNCE: Duration = Duration::from_millis(150);

pub const FILE_SOURCE_PREFIX: &str = "file:";

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

pub async fn watch(engine: Arc<Engine>, dir: PathBuf) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Reading the directory ourselves raises open/access events; reacting
        // to those would re-read it forever.
        if let Ok(ev) = &res {
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
        }
        let _ = tx.send(());
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot watch {}: {e}", dir.display());
            return;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::Recursive) {
        tracing::error!("cannot watch {}: {e}", dir.display());
        return;
    }
    tracing::info!("watching {}", dir.display());
    let mut applied: HashMap<PathBuf, [u8; 32]> = HashMap::new();
    sync(&engine, &dir, &mut applied);
    while rx.recv().await.is_some() {
        // Debounce: editors write in several steps.
        loop {
            tokio::select! {
                more = rx.recv() => if more.is_none() { return },
                _ = tokio::time::sleep(DEBOUNCE) => break,
            }
        }
        sync(&engine, &dir, &mut applied);
    }
}

/// Brings the store in line with the directory. `applied` remembers the
/// content last applied per file so that unchanged files are not re-applied.
pub fn sync(engine: &Arc<Engine>, dir: &Path, applied: &mut HashMap<PathBuf, [u8; 32]>) {
    let files = manifest_files(dir);
    let mut texts: BTreeMap<PathBuf, String> = BTreeMap::new();
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(t) => {
                texts.insert(f.clone(), t);
            }
            Err(e) => tracing::warn!("cannot read {}: {e}", f.display()),
        }
    }
    let mut changed = false;
    // Everything the directory defines now, for references between files.
    let all: Vec<Source> = texts
        .iter()
        .map(|(p, t)| Source {
            file: p.display().to_string(),
            text: t.clone(),
        })
        .collect();
    let mut defined: HashSet<(Kind, String)> = HashSet::new();
    for s in &all {
        if let Ok(objs) = manifest::parse(std::slice::from_ref(s)) {
            defined.extend(objs.iter().map(|o| (o.kind(), o.name().to_string())));
        }
    }
    let stored = engine.store.desired().unwrap_or_default();
    let exists = |kind: Kind, name: &str| {
        defined.contains(&(kind, name.to_string())) || stored.iter().any(|o| o.kind == kind.as_str() && o.name == name)
    };
    for source in &all {
        let path = PathBuf::from(&source.file);
        let digest: [u8; 32] = Sha256::digest(source.text.as_bytes()).into();
        if applied.get(&path) == Some(&digest) {
            continue;
        }
        let source_id = format!("{FILE_SOURCE_PREFIX}{}", source.file);
        match manifest::load(std::slice::from_ref(source), &exists) {
            Ok(objects) => {
                let rows: Vec<(String, String, String)> = objects
                    .iter()
                    .filter_map(|o| {
                        Some((
                            o.kind().as_str().into(),
                            o.name().into(),
                            serde_json::to_string(o).ok()?,
                        ))
                    })
                    .collect();
                match engine.store.apply(&source_id, &rows, true) {
                    Ok(_) => {
                        applied.insert(path, digest);
                        changed = true;
                        tracing::info!("applied {} ({} objects)", source.file, rows.len());
                    }
                    Err(e) => tracing::error!("cannot store {}: {e}", source.file),
                }
            }
            Err(problems) => {
                let text = problems.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
                tracing::error!("{} is invalid; keeping its last good objects:\n{text}", source.file);
                let _ = engine.store.set_source_error(&source_id, Some(&text));
                // Remember it so the same bad content is not re-reported every event.
                applied.insert(path, digest);
            }
        }
    }
    // Files that are gone take their objects with them.
    let present: HashSet<String> = texts
        .keys()
        .map(|p| format!("{FILE_SOURCE_PREFIX}{}", p.display()))
        .collect();
    let dir_prefix = format!("{FILE_SOURCE_PREFIX}{}/", dir.display());
    let mut sources: HashSet<String> = stored.iter().map(|o| o.source.clone()).collect();
    sources.extend(
        engine
            .store
            .source_errors()
            .unwrap_or_default()
            .into_iter()
            .map(|(s, _)| s),
    );
    for s in sources {
        if s.starts_with(&dir_prefix) && !present.contains(&s) {
            match engine.store.delete_source(&s) {
                Ok(removed) => {
                    tracing::info!(
                        "{} was removed; deleting {} objects",
                        &s[FILE_SOURCE_PREFIX.len()..],
                        removed.len()
                    );
                    changed = true;
                }
                Err(e) => tracing::error!("cannot delete objects of {s}: {e}"),
            }
            applied.remove(&PathBuf::from(&s[FILE_SOURCE_PREFIX.len()..]));
        }
    }
    if changed {
        engine.wake();
    }
}
