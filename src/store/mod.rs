//! berth's state in SQLite (WAL) under the root dir. One writer: a daemon
//! holds an exclusive lock on the root for its lifetime.
//!
//! ```text
//! objects   (kind, name) PK, source, body JSON, revision, updated_at,  desired state
//!           held                                                      why an object its source dropped is kept
//! sources   source PK, error, updated_at                              last parse error per source
//! revisions id PK, source, created_at, summary                        one row per apply
//!           origin, manifests, status, reason                         what an apply came from and applied
//! git_sources name PK, spec JSON, suspended, commits, times, error    GitOps sources
//! live      (kind, name) PK, spec_hash, spec JSON, info JSON, created_at
//!                                                                      what berth made, and from what
//! events    id PK, time, kind, name, reason, message                  history for describe/events
//! allocations (network, address) PK, owner, created_at                IPAM: addresses given to containers
//! ```
//! Bodies are opaque JSON to the store; `reconcile::records` gives them
//! meaning. The schema version is `PRAGMA user_version`; [`MIGRATIONS`] bring
//! any older database up to date in order, each in its own transaction.

mod gitops;
mod migrations;

use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::manifest::Kind;
pub use gitops::{GitSourceRow, RevisionRow};
pub use migrations::{MIGRATIONS, SCHEMA_VERSION};

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
    /// The database was written by a newer berth.
    #[error("state database {path} has schema version {found}; this berth knows up to {known}: upgrade berth")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    /// A migration failed; the database is left at the version before it.
    #[error("state database: migration to version {version} failed: {source}")]
    Migration { version: i64, source: rusqlite::Error },
    /// An allocation row holds something other than an IPv4 address.
    #[error("state database: the allocation of {owner} on network {network} is {address:?}, not an IPv4 address; remove the row from the allocations table")]
    BadAddress {
        network: String,
        owner: String,
        address: String,
    },
    /// SQLite failed.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The address text of an allocation row, parsed once here so that every
/// reader gets an `Ipv4Addr`; a bad one names its row.
fn address_of(network: &str, owner: &str, address: String) -> Result<Ipv4Addr> {
    address.parse().map_err(|_| StoreError::BadAddress {
        network: network.to_string(),
        owner: owner.to_string(),
        address,
    })
}

/// One desired object as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub kind: Kind,
    pub name: String,
    pub source: String,
    pub body: String,
    pub revision: i64,
    pub updated_at: i64,
    /// Set when its source no longer defines it but a container of another
    /// source still uses it: why it is kept.
    pub held: Option<String>,
}

/// One object of a set handed to [`Store::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewObject {
    pub kind: Kind,
    pub name: String,
    pub body: String,
}

/// A record of something berth made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRecord {
    pub kind: Kind,
    pub name: String,
    pub spec_hash: String,
    pub spec: String,
    pub info: String,
    pub created_at: i64,
}

/// The health of a container's run (see `reconcile::health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRecord {
    pub init_pid: i32,
    pub init_start: u64,
    pub status: String,
    pub failing_streak: u32,
    /// The last results, JSON.
    pub log: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub time: i64,
    pub kind: String,
    pub name: String,
    pub reason: String,
    pub message: String,
}

/// The outcome of one apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub revision: i64,
    /// Objects pruned from the source because the new set lacks them.
    pub pruned: Vec<(Kind, String)>,
    /// Objects the new set lacks that were kept (see [`Store::apply`]'s `hold`).
    pub held: Vec<(Kind, String)>,
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

/// Events kept; older ones are trimmed on insert.
const MAX_EVENTS: i64 = 10_000;

/// Reads a kind column; an unknown kind names its row instead of being skipped.
fn kind_column(r: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Kind> {
    let text: String = r.get(idx)?;
    Kind::parse_exact(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unknown object kind {text:?}").into(),
        )
    })
}

impl Store {
    /// Opens (creating) `<root>/state.db`, taking the one-daemon lock first,
    /// and migrates it to [`SCHEMA_VERSION`].
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
        let path = root.join("state.db");
        let mut conn = Connection::open(&path)?;
        // WAL + synchronous=NORMAL: a committed transaction survives a daemon
        // crash (not a power loss of the last few); readers never block the writer.
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")?;
        migrations::migrate(&mut conn, &path)?;
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

    /// The database's schema version.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn().query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Stores a whole set from one source in one transaction. With `prune`,
    /// objects of that source missing from the set are removed, except those
    /// `hold(kind, name)` names a reason for: they stay, marked held with it.
    /// An object the set defines again is no longer held.
    pub fn apply(
        &self,
        source: &str,
        objects: &[NewObject],
        prune: bool,
        hold: &dyn Fn(Kind, &str) -> Option<String>,
    ) -> Result<ApplyOutcome> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = now_millis();
        tx.execute(
            "INSERT INTO revisions (source, created_at, summary) VALUES (?1, ?2, ?3)",
            params![source, now, format!("{} objects", objects.len())],
        )?;
        let revision = tx.last_insert_rowid();
        let mut outcome = ApplyOutcome {
            revision,
            ..Default::default()
        };
        if prune {
            let existing: Vec<(Kind, String)> = {
                let mut stmt = tx.prepare("SELECT kind, name FROM objects WHERE source = ?1")?;
                let rows = stmt.query_map([source], |r| Ok((kind_column(r, 0)?, r.get(1)?)))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            for (kind, name) in existing {
                if objects.iter().any(|o| o.kind == kind && o.name == name) {
                    continue;
                }
                match hold(kind, &name) {
                    Some(why) => {
                        tx.execute(
                            "UPDATE objects SET held = ?3 WHERE kind = ?1 AND name = ?2",
                            params![kind.as_str(), name, why],
                        )?;
                        outcome.held.push((kind, name));
                    }
                    None => {
                        tx.execute(
                            "DELETE FROM objects WHERE kind = ?1 AND name = ?2",
                            params![kind.as_str(), name],
                        )?;
                        outcome.pruned.push((kind, name));
                    }
                }
            }
        }
        for o in objects {
            // An unchanged body keeps its revision, so "what changed" stays visible.
            tx.execute(
                "INSERT INTO objects (kind, name, source, body, revision, updated_at, held)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)
                 ON CONFLICT (kind, name) DO UPDATE SET source = excluded.source, held = NULL,
                   revision = CASE WHEN objects.body = excluded.body THEN objects.revision ELSE excluded.revision END,
                   updated_at = CASE WHEN objects.body = excluded.body THEN objects.updated_at ELSE excluded.updated_at END,
                   body = excluded.body",
                params![o.kind.as_str(), o.name, source, o.body, revision, now],
            )?;
        }
        tx.execute(
            "INSERT INTO sources (source, error, updated_at) VALUES (?1, NULL, ?2)
             ON CONFLICT (source) DO UPDATE SET error = NULL, updated_at = excluded.updated_at",
            params![source, now],
        )?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Removes the named objects from the desired state; returns those that existed.
    pub fn delete_objects(&self, keys: &[(Kind, String)]) -> Result<Vec<(Kind, String)>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut removed = Vec::new();
        for (kind, name) in keys {
            if tx.execute(
                "DELETE FROM objects WHERE kind = ?1 AND name = ?2",
                params![kind.as_str(), name],
            )? > 0
            {
                removed.push((*kind, name.clone()));
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Forgets a source's record (its error); its objects are untouched.
    pub fn forget_source(&self, source: &str) -> Result<()> {
        self.conn().execute("DELETE FROM sources WHERE source = ?1", [source])?;
        Ok(())
    }

    /// Every source berth knows: those with objects and those with an error.
    pub fn sources(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT source FROM objects UNION SELECT source FROM sources ORDER BY 1")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn desired(&self) -> Result<Vec<StoredObject>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kind, name, source, body, revision, updated_at, held FROM objects ORDER BY kind, name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StoredObject {
                kind: kind_column(r, 0)?,
                name: r.get(1)?,
                source: r.get(2)?,
                body: r.get(3)?,
                revision: r.get(4)?,
                updated_at: r.get(5)?,
                held: r.get(6)?,
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
            params![
                rec.kind.as_str(),
                rec.name,
                rec.spec_hash,
                rec.spec,
                rec.info,
                rec.created_at
            ],
        )?;
        Ok(())
    }

    /// Updates only the info of a live record (exit status, restarts).
    pub fn live_set_info(&self, kind: Kind, name: &str, info: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE live SET info = ?3 WHERE kind = ?1 AND name = ?2",
            params![kind.as_str(), name, info],
        )?;
        Ok(())
    }

    pub fn live_delete(&self, kind: Kind, name: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM live WHERE kind = ?1 AND name = ?2",
            params![kind.as_str(), name],
        )?;
        Ok(())
    }

    pub fn live_get(&self, kind: Kind, name: &str) -> Result<Option<LiveRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kind, name, spec_hash, spec, info, created_at FROM live WHERE kind = ?1 AND name = ?2",
        )?;
        Ok(stmt.query_row(params![kind.as_str(), name], live_row).optional()?)
    }

    pub fn live_all(&self) -> Result<Vec<LiveRecord>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT kind, name, spec_hash, spec, info, created_at FROM live ORDER BY kind, name")?;
        let rows = stmt.query_map([], live_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Records `address` of `network` as `owner`'s. `false` when the address
    /// is taken or the owner already has one there (nothing is written).
    pub fn alloc_take(&self, network: &str, address: Ipv4Addr, owner: &str) -> Result<bool> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO allocations (network, address, owner, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![network, address.to_string(), owner, now_millis()],
        )?;
        Ok(n == 1)
    }

    /// The address `owner` holds on `network`.
    pub fn alloc_of(&self, network: &str, owner: &str) -> Result<Option<Ipv4Addr>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT address FROM allocations WHERE network = ?1 AND owner = ?2")?;
        let text: Option<String> = stmt.query_row(params![network, owner], |r| r.get(0)).optional()?;
        text.map(|t| address_of(network, owner, t)).transpose()
    }

    /// Every address taken on `network`.
    pub fn alloc_used(&self, network: &str) -> Result<Vec<Ipv4Addr>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT address, owner FROM allocations WHERE network = ?1 ORDER BY address")?;
        let rows = stmt.query_map([network], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.map(|row| {
            let (address, owner) = row?;
            address_of(network, &owner, address)
        })
        .collect()
    }

    /// Every allocation as (network, address, owner).
    pub fn alloc_all(&self) -> Result<Vec<(String, Ipv4Addr, String)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT network, address, owner FROM allocations ORDER BY network, address")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })?;
        rows.map(|row| {
            let (network, address, owner) = row?;
            let address = address_of(&network, &owner, address)?;
            Ok((network, address, owner))
        })
        .collect()
    }

    /// Frees every address `owner` holds (its container was deleted).
    pub fn alloc_release_owner(&self, owner: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM allocations WHERE owner = ?1", [owner])?;
        Ok(())
    }

    /// Frees the address `owner` holds on `network` (it left the network).
    pub fn alloc_release(&self, network: &str, owner: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM allocations WHERE network = ?1 AND owner = ?2",
            params![network, owner],
        )?;
        Ok(())
    }

    /// Containers whose runtime id is not their name, as (name, id).
    pub fn container_ids(&self) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT name, id FROM container_ids ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Records container `name`'s runtime id (an id in use is refused).
    pub fn container_id_set(&self, name: &str, id: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO container_ids (name, id) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET id = excluded.id",
            params![name, id],
        )?;
        Ok(())
    }

    pub fn container_id_forget(&self, name: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM container_ids WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Renames container `old` to `new` in one transaction: its desired
    /// object (as `body`, and a `run:OLD` source with it), its live record,
    /// its addresses, and its runtime id `id`, which stays what it was.
    /// Events keep the name they were recorded under.
    pub fn rename_container(&self, old: &str, new: &str, body: &str, id: &str) -> Result<()> {
        let kind = Kind::Container.as_str();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (old_source, new_source) = (format!("run:{old}"), format!("run:{new}"));
        tx.execute(
            "UPDATE objects SET name = ?3, body = ?4,
               source = CASE WHEN source = ?5 THEN ?6 ELSE source END
             WHERE kind = ?1 AND name = ?2",
            params![kind, old, new, body, old_source, new_source],
        )?;
        tx.execute(
            "UPDATE sources SET source = ?2 WHERE source = ?1",
            params![old_source, new_source],
        )?;
        tx.execute(
            "UPDATE live SET name = ?3 WHERE kind = ?1 AND name = ?2",
            params![kind, old, new],
        )?;
        tx.execute("UPDATE allocations SET owner = ?2 WHERE owner = ?1", params![old, new])?;
        tx.execute("UPDATE health SET name = ?2 WHERE name = ?1", params![old, new])?;
        tx.execute("DELETE FROM container_ids WHERE name = ?1", [old])?;
        if id != new {
            tx.execute("INSERT INTO container_ids (name, id) VALUES (?1, ?2)", params![new, id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The switch of a start-first rollout, in one transaction: container
    /// `name`'s live record, addresses, health and runtime id move to
    /// `retiring`, and those of `staging` to `name`; `records` are the two
    /// live records as they are to be after the move (their bodies say who
    /// serves now). A crash leaves either both moved or neither.
    pub fn swap_containers(
        &self,
        name: &str,
        staging: &str,
        retiring: &str,
        records: [&LiveRecord; 2],
        (old_id, new_id): (&str, &str),
    ) -> Result<()> {
        let kind = Kind::Container.as_str();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for n in [name, staging, retiring] {
            tx.execute("DELETE FROM live WHERE kind = ?1 AND name = ?2", params![kind, n])?;
            tx.execute("DELETE FROM container_ids WHERE name = ?1", [n])?;
        }
        for rec in records {
            tx.execute(
                "INSERT INTO live (kind, name, spec_hash, spec, info, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![kind, rec.name, rec.spec_hash, rec.spec, rec.info, rec.created_at],
            )?;
        }
        // Through a placeholder, as the two owners trade places.
        let hold = format!("{name}/swap");
        for (from, to) in [(name, hold.as_str()), (staging, name), (hold.as_str(), retiring)] {
            tx.execute("UPDATE allocations SET owner = ?2 WHERE owner = ?1", params![from, to])?;
            tx.execute("UPDATE health SET name = ?2 WHERE name = ?1", params![from, to])?;
        }
        for (n, id) in [(retiring, old_id), (name, new_id)] {
            if n != id {
                tx.execute("INSERT INTO container_ids (name, id) VALUES (?1, ?2)", params![n, id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records the health of container `name`'s run.
    pub fn health_put(&self, name: &str, h: &HealthRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO health (name, init_pid, init_start, status, failing_streak, log, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (name) DO UPDATE SET init_pid = excluded.init_pid, init_start = excluded.init_start,
               status = excluded.status, failing_streak = excluded.failing_streak, log = excluded.log,
               updated_at = excluded.updated_at",
            params![
                name,
                h.init_pid,
                h.init_start as i64,
                h.status,
                h.failing_streak,
                h.log,
                now_millis()
            ],
        )?;
        Ok(())
    }

    pub fn health_get(&self, name: &str) -> Result<Option<HealthRecord>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT init_pid, init_start, status, failing_streak, log FROM health WHERE name = ?1")?;
        Ok(stmt
            .query_row([name], |r| {
                Ok(HealthRecord {
                    init_pid: r.get(0)?,
                    init_start: r.get::<_, i64>(1)? as u64,
                    status: r.get(2)?,
                    failing_streak: r.get(3)?,
                    log: r.get(4)?,
                })
            })
            .optional()?)
    }

    pub fn health_delete(&self, name: &str) -> Result<()> {
        self.conn().execute("DELETE FROM health WHERE name = ?1", [name])?;
        Ok(())
    }

    /// Frees every address of a deleted network.
    pub fn alloc_release_network(&self, network: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM allocations WHERE network = ?1", [network])?;
        Ok(())
    }

    pub fn event(&self, kind: Kind, name: &str, reason: &str, message: &str) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO events (time, kind, name, reason, message) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_millis(), kind.as_str(), name, reason, message],
        )?;
        let id = conn.last_insert_rowid();
        if id % 1000 == 0 {
            conn.execute("DELETE FROM events WHERE id <= ?1", [id - MAX_EVENTS])?;
        }
        Ok(id)
    }

    /// Events after `after_id`, optionally of one object, oldest first, at most `limit`.
    pub fn events(&self, after_id: i64, object: Option<(Kind, &str)>, limit: usize) -> Result<Vec<EventRow>> {
        let conn = self.conn();
        let map = |r: &rusqlite::Row<'_>| {
            Ok(EventRow {
                id: r.get(0)?,
                time: r.get(1)?,
                kind: r.get(2)?,
                name: r.get(3)?,
                reason: r.get(4)?,
                message: r.get(5)?,
            })
        };
        let (kind, name) = object.map(|(k, n)| (k.as_str(), n)).unzip();
        // One statement for both cases: a NULL kind matches every object.
        let mut stmt = conn.prepare_cached(
            "SELECT id, time, kind, name, reason, message FROM events
             WHERE id > ?1 AND (?2 IS NULL OR (kind = ?2 AND name = ?3)) ORDER BY id DESC LIMIT ?4",
        )?;
        let rows: Vec<EventRow> = stmt
            .query_map(params![after_id, kind, name, limit as i64], map)?
            .collect::<std::result::Result<_, _>>()?;
        Ok(rows.into_iter().rev().collect())
    }
}

fn live_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LiveRecord> {
    Ok(LiveRecord {
        kind: kind_column(r, 0)?,
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

    fn obj(kind: Kind, name: &str, body: &str) -> NewObject {
        NewObject {
            kind,
            name: name.into(),
            body: body.into(),
        }
    }

    fn no_hold(_: Kind, _: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_second_open_of_the_same_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("already running"), "{err}");
    }

    #[test]
    fn a_new_database_is_at_the_current_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn apply_with_prune_removes_only_that_sources_missing_objects() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.apply(
            "a",
            &[obj(Kind::Container, "x", "1"), obj(Kind::Container, "y", "1")],
            false,
            &no_hold,
        )
        .unwrap();
        s.apply("b", &[obj(Kind::Container, "z", "1")], false, &no_hold)
            .unwrap();
        let out = s.apply("a", &[obj(Kind::Container, "x", "2")], true, &no_hold).unwrap();
        assert_eq!(out.pruned, vec![(Kind::Container, "y".to_string())]);
        let names: Vec<String> = s.desired().unwrap().into_iter().map(|o| o.name).collect();
        assert_eq!(names, ["x", "z"]);
    }

    #[test]
    fn a_pruned_object_with_a_hold_reason_is_kept_until_defined_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.apply("a", &[obj(Kind::Image, "img", "1")], false, &no_hold).unwrap();
        let hold = |k: Kind, _: &str| (k == Kind::Image).then(|| "used by container/web".to_string());
        let out = s.apply("a", &[], true, &hold).unwrap();
        assert_eq!(out.held, vec![(Kind::Image, "img".to_string())]);
        assert_eq!(s.desired().unwrap()[0].held.as_deref(), Some("used by container/web"));
        s.apply("a", &[obj(Kind::Image, "img", "1")], false, &no_hold).unwrap();
        assert_eq!(s.desired().unwrap()[0].held, None);
    }

    #[test]
    fn unchanged_bodies_keep_their_revision() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let r1 = s
            .apply("a", &[obj(Kind::Container, "x", "1")], false, &no_hold)
            .unwrap()
            .revision;
        s.apply("a", &[obj(Kind::Container, "x", "1")], false, &no_hold)
            .unwrap();
        assert_eq!(s.desired().unwrap()[0].revision, r1);
    }

    #[test]
    fn source_errors_are_kept_until_a_good_apply() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.set_source_error("f", Some("bad")).unwrap();
        assert_eq!(s.source_errors().unwrap(), vec![("f".to_string(), "bad".to_string())]);
        s.apply("f", &[], false, &no_hold).unwrap();
        assert!(s.source_errors().unwrap().is_empty());
    }

    #[test]
    fn events_are_returned_oldest_first_per_object() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.event(Kind::Container, "x", "Started", "one").unwrap();
        s.event(Kind::Container, "y", "Started", "other").unwrap();
        s.event(Kind::Container, "x", "Exited", "two").unwrap();
        let ev = s.events(0, Some((Kind::Container, "x")), 10).unwrap();
        assert_eq!(
            ev.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
    }

    #[test]
    fn a_row_of_an_unknown_kind_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.conn()
            .execute(
                "INSERT INTO live (kind, name, spec_hash, spec, info, created_at) VALUES ('Pod', 'p', '', '', '', 0)",
                [],
            )
            .unwrap();
        let err = s.live_all().unwrap_err();
        assert!(err.to_string().contains("unknown object kind \"Pod\""), "{err}");
    }
}
