//! Ordered schema migrations, keyed by `PRAGMA user_version`. Version 0 is a
//! database written before versioning (its tables made with `IF NOT EXISTS`,
//! as berth 0.1 did), or an empty one. Each migration runs in its own
//! transaction together with the version bump, so a crash leaves the database
//! at one version or the next, never between. Every migration has a test that
//! migrates a fixture written by the berth before it (`tests` below).

use std::path::Path;

use rusqlite::Connection;

use super::{Result, StoreError};

/// The schema this berth writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `MIGRATIONS[i]` takes a database from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the tables of berth 0.1; a no-op on a database it wrote.
    "CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, name TEXT NOT NULL, source TEXT NOT NULL,
        body TEXT NOT NULL, revision INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (kind, name));
     CREATE TABLE IF NOT EXISTS sources (source TEXT PRIMARY KEY, error TEXT, updated_at INTEGER NOT NULL);
     CREATE TABLE IF NOT EXISTS revisions (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL,
        created_at INTEGER NOT NULL, summary TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS live (kind TEXT NOT NULL, name TEXT NOT NULL, spec_hash TEXT NOT NULL,
        spec TEXT NOT NULL, info TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (kind, name));
     CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,
        kind TEXT NOT NULL, name TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL);
     CREATE INDEX IF NOT EXISTS events_by_object ON events (kind, name, id);",
    // 2: an object its source dropped but another source's container still
    // uses is kept, with the reason (watched files that are removed).
    "ALTER TABLE objects ADD COLUMN held TEXT;",
    // 3: IPAM: one address per container per network, never given twice
    // (the primary key), kept across daemon restarts, freed on delete.
    "CREATE TABLE allocations (network TEXT NOT NULL, address TEXT NOT NULL, owner TEXT NOT NULL,
        created_at INTEGER NOT NULL, PRIMARY KEY (network, address), UNIQUE (network, owner));
     CREATE INDEX allocations_by_owner ON allocations (owner);",
    // 4: a container's runtime id (run dir, cgroup, log, netns) where it is
    // not its name: after `rename`, and for a new container that takes a
    // name a renamed one still runs under. No row: the id is the name.
    "CREATE TABLE container_ids (name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE);",
    // 5: the health of each container's current run (which init it is of,
    // status, failing streak, last results as JSON), so that an adopted
    // container keeps it across a daemon restart.
    "CREATE TABLE health (name TEXT PRIMARY KEY, init_pid INTEGER NOT NULL, init_start INTEGER NOT NULL,
        status TEXT NOT NULL, failing_streak INTEGER NOT NULL, log TEXT NOT NULL, updated_at INTEGER NOT NULL);",
    // 6: GitOps. A revision of an apply (CLI, watched file, git source)
    // keeps what it came from (origin JSON: file set hash, or commit, author
    // and subject), the manifests as applied (JSON), and how it went, so it
    // can be listed and applied again; revisions of imperative commands keep
    // NULL there and are not listed. Git sources are rows of their own.
    "ALTER TABLE revisions ADD COLUMN origin TEXT;
     ALTER TABLE revisions ADD COLUMN manifests TEXT;
     ALTER TABLE revisions ADD COLUMN status TEXT;
     ALTER TABLE revisions ADD COLUMN reason TEXT;
     CREATE INDEX revisions_by_source ON revisions (source, id);
     CREATE TABLE git_sources (name TEXT PRIMARY KEY, spec TEXT NOT NULL, suspended INTEGER NOT NULL,
        suspended_reason TEXT, commit_applied TEXT, commit_attempted TEXT, fetched_at INTEGER,
        applied_at INTEGER, error TEXT, created_at INTEGER NOT NULL);",
];

/// Brings `conn` to [`SCHEMA_VERSION`].
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.into(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i as i64 + 1;
        let step = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            // PRAGMA takes no bound parameters; `version` is our own integer.
            tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
            tx.commit()
        };
        step(conn).map_err(|source| StoreError::Migration { version, source })?;
        tracing::info!(version, "state database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use std::net::Ipv4Addr;

    /// A state.db written by berth 0.1 (schema version 0): the hello example
    /// stack applied (an image, a volume, three containers), with live
    /// records, events, revisions and a source error.
    const FIXTURE_V0: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/fixtures/state-v0.db");

    fn copy_fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(FIXTURE_V0, dir.path().join("state.db")).unwrap();
        dir
    }

    fn count(s: &Store, table: &str) -> i64 {
        s.conn()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_version_0_database_migrates_to_the_current_schema_without_loss() {
        let raw = rusqlite::Connection::open(FIXTURE_V0).unwrap();
        let before: Vec<i64> = ["objects", "live", "events", "revisions", "sources"]
            .iter()
            .map(|t| {
                raw.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                    .unwrap()
            })
            .collect();
        let version: i64 = raw.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, 0);
        assert!(before[0] >= 5 && before[1] >= 5 && before[2] > 0, "{before:?}");
        drop(raw);

        let dir = copy_fixture();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let after: Vec<i64> = ["objects", "live", "events", "revisions", "sources"]
            .iter()
            .map(|t| count(&s, t))
            .collect();
        assert_eq!(before, after);
        // Every row still decodes into its typed form.
        let desired = s.desired().unwrap();
        assert!(desired.iter().all(|o| o.held.is_none()));
        assert!(desired.iter().any(|o| o.kind == crate::manifest::Kind::Container));
        assert_eq!(s.live_all().unwrap().len() as i64, after[1]);
    }

    #[test]
    fn a_version_0_database_gains_an_empty_allocations_table_that_refuses_duplicates() {
        let dir = copy_fixture();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(count(&s, "allocations"), 0);
        let (two, three) = (Ipv4Addr::new(10, 89, 0, 2), Ipv4Addr::new(10, 89, 0, 3));
        assert!(s.alloc_take("net", two, "web").unwrap());
        assert!(!s.alloc_take("net", two, "db").unwrap());
        assert!(!s.alloc_take("net", three, "web").unwrap());
        assert!(s.alloc_take("other", two, "db").unwrap());
        assert_eq!(s.alloc_of("net", "web").unwrap(), Some(two));
        assert_eq!(s.alloc_used("net").unwrap(), [two]);
        // Rows keep the address as text, as before addresses were typed.
        let text: String = s
            .conn()
            .query_row("SELECT address FROM allocations WHERE owner = 'web'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(text, "10.89.0.2");
        s.alloc_release_owner("web").unwrap();
        assert!(s.alloc_used("net").unwrap().is_empty());
        s.alloc_release_network("other").unwrap();
        assert_eq!(count(&s, "allocations"), 0);
    }

    #[test]
    fn an_allocation_row_that_is_not_an_address_is_an_error_naming_it() {
        let dir = copy_fixture();
        let s = Store::open(dir.path()).unwrap();
        s.conn()
            .execute(
                "INSERT INTO allocations (network, address, owner, created_at) VALUES ('net', '10.89.0.300', 'web', 0)",
                [],
            )
            .unwrap();
        for err in [
            s.alloc_of("net", "web").unwrap_err(),
            s.alloc_used("net").unwrap_err(),
            s.alloc_all().unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(
                msg.contains("allocation of web on network net is \"10.89.0.300\""),
                "{msg}"
            );
        }
    }

    #[test]
    fn a_version_0_database_gains_container_ids_and_a_rename_moves_every_name_keyed_row() {
        let dir = copy_fixture();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.container_ids().unwrap().is_empty());
        let web = s
            .desired()
            .unwrap()
            .into_iter()
            .find(|o| o.kind == crate::manifest::Kind::Container)
            .unwrap();
        assert!(s.alloc_take("net", Ipv4Addr::new(10, 89, 0, 2), &web.name).unwrap());
        let body = web.body.replace(&web.name, "renamed");
        s.rename_container(&web.name, "renamed", &body, &web.name).unwrap();
        let desired = s.desired().unwrap();
        assert!(!desired.iter().any(|o| o.name == web.name && o.kind == web.kind));
        assert!(desired.iter().any(|o| o.name == "renamed" && o.body == body));
        assert_eq!(s.alloc_of("net", "renamed").unwrap(), Some(Ipv4Addr::new(10, 89, 0, 2)));
        assert_eq!(s.container_ids().unwrap(), [("renamed".to_string(), web.name.clone())]);
        // The id stays taken: nothing else may be given it.
        assert!(s.container_id_set("other", &web.name).is_err());
        s.container_id_forget("renamed").unwrap();
        assert!(s.container_ids().unwrap().is_empty());
    }

    #[test]
    fn a_version_0_database_gains_a_health_table_that_follows_renames_and_deletes() {
        let dir = copy_fixture();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(count(&s, "health"), 0);
        let web = s
            .desired()
            .unwrap()
            .into_iter()
            .find(|o| o.kind == crate::manifest::Kind::Container)
            .unwrap();
        let row = HealthRecord {
            init_pid: 42,
            init_start: 7,
            status: "healthy".into(),
            failing_streak: 1,
            log: "[]".into(),
        };
        s.health_put(&web.name, &row).unwrap();
        s.health_put(
            &web.name,
            &HealthRecord {
                failing_streak: 2,
                ..row.clone()
            },
        )
        .unwrap();
        assert_eq!(s.health_get(&web.name).unwrap().unwrap().failing_streak, 2);
        s.rename_container(&web.name, "renamed", &web.body, &web.name).unwrap();
        assert!(s.health_get(&web.name).unwrap().is_none());
        assert_eq!(s.health_get("renamed").unwrap().unwrap().init_pid, 42);
        s.health_delete("renamed").unwrap();
        assert_eq!(count(&s, "health"), 0);
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let dir = copy_fixture();
        drop(Store::open(dir.path()).unwrap());
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_database_from_a_newer_berth_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch("PRAGMA user_version = 999").unwrap();
        drop(conn);
        let err = Store::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("schema version 999"), "{err}");
    }
}
