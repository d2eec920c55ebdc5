//! berth's state in SQLite (WAL) under the root dir. One writer: a daemon
//! holds an exclusive lock on the root for its lifetime.
//!
//! ```text
//! objects   (kind, name) PK, source, body JSON, revision, updated_at   desired state
//! sources   source PK, error, updated_at                              last parse error per source
//! revisions id PK, source, created_at, summary                        one row per apply
//! live      (kind, name) PK, spec_hash, spec JSON, info JSON, created_at
//!                                                                      what berth made, and from what
//! events    id PK, time, kind, name, reason, message                  history for describe/events
//! ```
//! Bodies are opaque JSON to the store; the reconciler gives them meaning.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another daemon holds the root.
    #[error(
        "another berth daemon is already running with root {root} (lock {lock} is held); stop it or use another --root"
    )]
    Locked { root: PathBuf, lock: PathBuf },
    /// The root dir or lock file could not be made.
    #[error("cannot prepare state dir {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// SQLite failed.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One desired object as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    pub kind: String,
    pub name: String,
    pub source: String,
    pub body: String,
    pub revision: i64,
    pub updated_at: i64,
}

/// A record of something berth made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRecord {
    pub kind: String,
    pub name: String,
    pub spec_hash: String,
    pub spec: String,
    pub info: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    pub id: i64,
    pub time: i64,
    pub kind: String,
    pub name: String,
    pub reason: String,
    pub message: String,
}

/// The outcome of one apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    pub revision: i64,
    /// (kind, name) pruned from the source because the new set lacks them.
    pub pruned: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    _lock: File,
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, name TEXT NOT NULL, source TEXT NOT NULL,
    body TEXT NOT NULL, revision INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS sources (source TEXT PRIMARY KEY, error TEXT, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revisions (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL,
    created_at INTEGER NOT NULL, summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS live (kind TEXT NOT NULL, name TEXT NOT NULL, spec_hash TEXT NOT NULL,
    spec TEXT NOT NULL, info TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_object ON events (kind, name, id);
";

/// Events kept; older ones are trimmed on insert.
const MAX_EVENTS: i64 = 10_000;

impl Store {
    /// Opens (creating) `<root>/state.db`, taking the one-daemon lock first.
    pub fn open(root: &Path) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(|source| StoreError::Io {
            path: root.into(),
            source,
        })?;
        let lock_path = root.join("daemon.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StoreError::Io {
                path: lock_path.clone(),
                source,
            })?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(StoreError::Locked {
                root: root.into(),
                lock: lock_path,
            });
        }
        let conn = Connection::open(root.join("state.db"))?;
        // WAL + synchronous=NORMAL: a committed transaction survives a daemon
        // crash (not a power loss of the last few); readers never block the writer.
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
            _lock: lock,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written
        // (transactions roll back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a whole set from one source in one transaction. With `prune`,
    /// objects of that source missing from the set are removed.
    pub fn apply(&self, source: &str, objects: &[(String, String, String)], prune: bool) -> Result<ApplyOutcome> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_millis();
        tx.execute(
            "INSERT INTO revisions (source, created_at, summary) VALUES (?1, ?2, ?3)",
            params![source, now, format!("{} objects", objects.len())],
        )?;
        let revision = tx.last_insert_rowid();
        let mut pruned = Vec::new();
        if prune {
            let mut stmt = tx.prepare("SELECT kind, name FROM objects WHERE source = ?1")?;
            let existing: Vec<(String, String)> = stmt
                .query_map([source], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?;
            drop(stmt);
            for (kind, name) in existing {
                if !objects.iter().any(|(k, n, _)| *k == kind && *n == name) {
                    tx.execute("DELETE FROM objects WHERE kind = ?1 AND name = ?2", params![kind, name])?;
                    pruned.push((kind, name));
                }
            }
        }
        for (kind, name, body) in objects {
            // An unchanged body keeps its revision, so "what changed" stays visible.
            tx.execute(
                "INSERT INTO objects (kind, name, source, body, revision, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (kind, name) DO UPDATE SET source = excluded.source,
                   revision = CASE WHEN objects.body = excluded.body THEN objects.revision ELSE excluded.revision END,
                   updated_at = CASE WHEN objects.body = excluded.body THEN objects.updated_at ELSE excluded.updated_at END,
                   body = excluded.body",
                params![kind, name, source, body, revision, now],
            )?;
        }
        tx.execute(
            "INSERT INTO sources (source, error, updated_at) VALUES (?1, NULL, ?2)
             ON CONFLICT (source) DO UPDATE SET error = NULL, updated_at = excluded.updated_at",
            params![source, now],
        )?;
        tx.commit()?;
        Ok(ApplyOutcome { revision, pruned })
    }

    /// Removes the named objects from the desired state; returns those that existed.
    pub fn delete_objects(&self, keys: &[(String, String)]) -> Result<Vec<(String, String)>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut removed = Vec::new();
        for (kind, name) in keys {
            if tx.execute("DELETE FROM objects WHERE kind = ?1 AND name = ?2", params![kind, name])? > 0 {
                removed.push((kind.clone(), name.clone()));
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Removes every object of a source (a watched file that was deleted).
    pub fn delete_source(&self, source: &str) -> Result<Vec<(String, String)>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let removed: Vec<(String, String)> = {
            let mut stmt = tx.prepare("SELECT kind, name FROM objects WHERE source = ?1")?;
            let rows = stmt.query_map([source], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<std::result::Result<_, _>>()?
        };
        tx.execute("DELETE FROM objects WHERE source = ?1", [source])?;
        tx.execute("DELETE FROM sources WHERE source = ?1", [source])?;
        tx.commit()?;
        Ok(removed)
    }

    pub fn desired(&self) -> Result<Vec<StoredObject>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT kind, name, source, body, revision, updated_at FROM objects ORDER BY kind, name")?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredObject {
                kind: r.get(0)?,
                name: r.get(1)?,
                source: r.get(2)?,
                body: r.get(3)?,
                revision: r.get(4)?,
                updated_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Records (or clears) the last error of a source, keeping its objects.
    pub fn set_source_error(&self, source: &str, error: Option<&str>) -> Result<()> {
        self.conn().execute(
            "INSERT INTO sources (source, error, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (source) DO UPDATE SET error = excluded.error, updated_at = excluded.updated_at",
            params![source, error, now_millis()],
        )?;
        Ok(())
    }

    /// Sources whose last update failed, with the error.
    pub fn source_errors(&self) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT source, error FROM sources WHERE error IS NOT NULL ORDER BY source")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn live_put(&self, rec: &LiveRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO live (kind, name, spec_hash, spec, info, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (kind, name) DO UPDATE SET spec_hash = excluded.spec_hash, spec = excluded.spec,
               info = excluded.info, created_at = excluded.created_at",
            params![rec.kind, rec.name, rec.spec_hash, rec.spec, rec.info, rec.created_at],
        )?;
        Ok(())
    }

    /// Updates only the info of a live record (exit status, restarts).
    pub fn live_set_info(&self, kind: &str, name: &str, info: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE live SET info = ?3 WHERE kind = ?1 AND name = ?2",
            params![kind, name, info],
        )?;
        Ok(())
    }

    pub fn live_delete(&self, kind: &str, name: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM live WHERE kind = ?1 AND name = ?2", params![kind, name])?;
        Ok(())
    }

    pub fn live_get(&self, kind: &str, name: &str) -> Result<Option<LiveRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kind, name, spec_hash, spec, info, created_at FROM live WHERE kind = ?1 AND name = ?2",
        )?;
        Ok(stmt.query_row(params![kind, name], live_row).optional()?)
    }

    pub fn live_all(&self) -> Result<Vec<LiveRecord>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT kind, name, spec_hash, spec, info, created_at FROM live ORDER BY kind, name")?;
        let rows = stmt.query_map([], live_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn event(&self, kind: &str, name: &str, reason: &str, message: &str) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO events (time, kind, name, reason, message) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_millis(), kind, name, reason, message],
        )?;
        let id = conn.last_insert_rowid();
        if id % 1000 == 0 {
            conn.execute("DELETE FROM events WHERE id <= ?1", [id - MAX_EVENTS])?;
        }
        Ok(id)
    }

    /// Events after `after_id`, optionally of one object, oldest first, at most `limit`.
    pub fn events(&self, after_id: i64, object: Option<(&str, &str)>, limit: usize) -> Result<Vec<Event>> {
        let conn = self.conn();
        let map = |r: &rusqlite::Row<'_>| {
            Ok(Event {
                id: r.get(0)?,
                time: r.get(1)?,
                kind: r.get(2)?,
                name: r.get(3)?,
                reason: r.get(4)?,
                message: r.get(5)?,
            })
        };
        let (kind, name) = object.unzip();
        // One statement for both cases: a NULL kind matches every object.
        let mut stmt = conn.prepare_cached(
            "SELECT id, time, kind, name, reason, message FROM events
             WHERE id > ?1 AND (?2 IS NULL OR (kind = ?2 AND name = ?3)) ORDER BY id DESC LIMIT ?4",
        )?;
        let rows: Vec<Event> = stmt
            .query_map(params![after_id, kind, name, limit as i64], map)?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows.into_iter().rev().collect())
    }
}

fn live_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LiveRecord> {
    Ok(LiveRecord {
        kind: r.get(0)?,
        name: r.get(1)?,
        spec_hash: r.get(2)?,
        spec: r.get(3)?,
        info: r.get(4)?,
        created_at: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: &str, name: &str, body: &str) -> (String, String, String) {
        (kind.into(), name.into(), body.into())
    }

    #[test]
    fn a_second_open_of_the_same_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("already running"), "{err}");
    }

    #[test]
    fn apply_with_prune_removes_only_that_sources_missing_objects() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.apply("a", &[obj("Container", "x", "1"), obj("Container", "y", "1")], false)
            .unwrap();
        s.apply("b", &[obj("Container", "z", "1")], false).unwrap();
        let out = s.apply("a", &[obj("Container", "x", "2")], true).unwrap();
        assert_eq!(out.pruned, vec![("Container".to_string(), "y".to_string())]);
        let names: Vec<String> = s.desired().unwrap().into_iter().map(|o| o.name).collect();
        assert_eq!(names, ["x", "z"]);
    }

    #[test]
    fn unchanged_bodies_keep_their_revision() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let r1 = s.apply("a", &[obj("Container", "x", "1")], false).unwrap().revision;
        s.apply("a", &[obj("Container", "x", "1")], false).unwrap();
        assert_eq!(s.desired().unwrap()[0].revision, r1);
    }

    #[test]
    fn source_errors_are_kept_until_a_good_apply() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.set_source_error("f", Some("bad")).unwrap();
        assert_eq!(s.source_errors().unwrap(), vec![("f".to_string(), "bad".to_string())]);
        s.apply("f", &[], false).unwrap();
        assert!(s.source_errors().unwrap().is_empty());
    }

    #[test]
    fn events_are_returned_oldest_first_per_object() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.event("Container", "x", "Started", "one").unwrap();
        s.event("Container", "y", "Started", "other").unwrap();
        s.event("Container", "x", "Exited", "two").unwrap();
        let ev = s.events(0, Some(("Container", "x")), 10).unwrap();
        assert_eq!(
            ev.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
    }
}
