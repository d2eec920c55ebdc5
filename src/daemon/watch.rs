//! The watched manifest directory as a source: each file is a source of its
//! own. A file added or changed is applied; a removed file deletes what it
//! defined; a file that stops parsing keeps its objects in their last good
//! state and its error is recorded.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::commands;
use crate::manifest::{self, Kind, Source};
use crate::reconcile::Engine;
use crate::source_files::manifest_files;

/// Quiet time after the last file event before the directory is read.
const DEBOUNCE: Duration = Duration::from_millis(150);

pub const FILE_SOURCE_PREFIX: &str = "file:";

pub async fn watch(engine: Arc<Engine>, dir: PathBuf) {
    // Events only say "look again": they coalesce into one stored permit, so
    // a storm of them queues nothing.
    let changed = Arc::new(Notify::new());
    let signal = changed.clone();
    let mut watcher = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        // Reading the directory ourselves raises open/access events; reacting
        // to those would re-read it forever.
        if let Ok(ev) = &res {
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
        }
        signal.notify_one();
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
    loop {
        changed.notified().await;
        // Debounce: editors write in several steps.
        loop {
            tokio::select! {
                _ = changed.notified() => {}
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
    let mut all: Vec<Source> = Vec::new();
    for f in &files {
        let file = f.display().to_string();
        match std::fs::read(f).map(|bytes| manifest::source_from_bytes(&file, &bytes)) {
            Ok(Ok(source)) => all.push(source),
            Ok(Err(problem)) => {
                // Unreadable as text: its objects stay as they were.
                tracing::error!("{problem}");
                let source_id = format!("{FILE_SOURCE_PREFIX}{file}");
                if let Err(e) = engine.set_source_error(&source_id, Some(&problem.to_string())) {
                    tracing::error!("{e}");
                }
            }
            Err(e) => tracing::warn!("cannot read {}: {e}", f.display()),
        }
    }
    let mut changed = false;
    // Everything the directory defines now, for references between files.
    let mut defined: HashSet<(Kind, String)> = HashSet::new();
    for s in &all {
        if let Ok(objs) = manifest::parse(std::slice::from_ref(s)) {
            defined.extend(objs.iter().map(|o| (o.kind(), o.name().to_string())));
        }
    }
    for source in &all {
        let path = PathBuf::from(&source.file);
        let digest: [u8; 32] = Sha256::digest(source.text.as_bytes()).into();
        if applied.get(&path) == Some(&digest) {
            continue;
        }
        let source_id = format!("{FILE_SOURCE_PREFIX}{}", source.file);
        match commands::apply::apply_watched(engine, &source_id, source, &defined) {
            Ok(None) => {
                changed = true;
                tracing::info!("applied {}", source.file);
            }
            Ok(Some(problems)) => {
                tracing::error!("{} is invalid; keeping its last good objects:\n{problems}", source.file);
            }
            Err(e) => {
                tracing::error!("cannot apply {}: {e}", source.file);
                // Retried on the next change of the directory.
                continue;
            }
        }
        // Remembered either way, so the same bad content is not re-reported every event.
        applied.insert(path, digest);
    }
    // Files that are gone take their objects with them.
    let present: HashSet<String> = files
        .iter()
        .map(|f| format!("{FILE_SOURCE_PREFIX}{}", f.display()))
        .collect();
    let dir_prefix = format!("{FILE_SOURCE_PREFIX}{}/", dir.display());
    let sources = match engine.sources() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot list sources: {e}");
            Vec::new()
        }
    };
    for s in sources {
        if s.starts_with(&dir_prefix) && !present.contains(&s) {
            match commands::apply::remove_watched(engine, &s) {
                Ok(()) => {
                    tracing::info!(
                        "{} was removed; deleting what it defined",
                        &s[FILE_SOURCE_PREFIX.len()..]
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
