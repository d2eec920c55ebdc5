//! Rows of GitOps: the recorded revisions of applies, and git sources.

use rusqlite::{params, OptionalExtension};

use super::{now_millis, Result, Store};

/// One recorded revision (see migration 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionRow {
    pub id: i64,
    pub source: String,
    pub created_at: i64,
    pub summary: String,
    /// JSON, opaque here.
    pub origin: String,
    /// JSON list of the manifests as applied, opaque here.
    pub manifests: String,
    pub status: String,
    pub reason: Option<String>,
}

/// A git source as stored; `spec` is opaque JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSourceRow {
    pub name: String,
    pub spec: String,
    pub suspended: bool,
    pub suspended_reason: Option<String>,
    pub commit_applied: Option<String>,
    /// The last commit an apply was tried at, good or bad: a poll does not
    /// try the same bad commit again.
    pub commit_attempted: Option<String>,
    pub fetched_at: Option<i64>,
    pub applied_at: Option<i64>,
    pub error: Option<String>,
    pub created_at: i64,
}

const REVISION_COLUMNS: &str = "id, source, created_at, summary, origin, manifests, status, reason";

fn revision_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RevisionRow> {
    Ok(RevisionRow {
        id: r.get(0)?,
        source: r.get(1)?,
        created_at: r.get(2)?,
        summary: r.get(3)?,
        origin: r.get(4)?,
        manifests: r.get(5)?,
        status: r.get(6)?,
        reason: r.get(7)?,
    })
}

const GIT_COLUMNS: &str = "name, spec, suspended, suspended_reason, commit_applied, commit_attempted, \
                           fetched_at, applied_at, error, created_at";

fn git_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GitSourceRow> {
    Ok(GitSourceRow {
        name: r.get(0)?,
        spec: r.get(1)?,
        suspended: r.get::<_, i64>(2)? != 0,
        suspended_reason: r.get(3)?,
        commit_applied: r.get(4)?,
        commit_attempted: r.get(5)?,
        fetched_at: r.get(6)?,
        applied_at: r.get(7)?,
        error: r.get(8)?,
        created_at: r.get(9)?,
    })
}

impl Store {
    /// Records what revision `id` (made by [`Store::apply`]) came from and
    /// applied, then trims the source's recorded revisions to the newest `keep`.
    pub fn revision_record(
        &self,
        id: i64,
        origin: &str,
        manifests: &str,
        status: &str,
        reason: Option<&str>,
        keep: usize,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE revisions SET origin = ?2, manifests = ?3, status = ?4, reason = ?5 WHERE id = ?1",
            params![id, origin, manifests, status, reason],
        )?;
        tx.execute(
            "DELETE FROM revisions WHERE manifests IS NOT NULL
               AND source = (SELECT source FROM revisions WHERE id = ?1)
               AND id NOT IN (SELECT id FROM revisions WHERE manifests IS NOT NULL
                 AND source = (SELECT source FROM revisions WHERE id = ?1) ORDER BY id DESC LIMIT ?2)",
            params![id, keep as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Sets a recorded revision's status (e.g. `failed` with why).
    pub fn revision_set_status(&self, id: i64, status: &str, reason: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE revisions SET status = ?2, reason = ?3 WHERE id = ?1 AND manifests IS NOT NULL",
            params![id, status, reason],
        )?;
        Ok(())
    }

    /// Recorded revisions, newest first, of one source or all.
    pub fn revisions(&self, source: Option<&str>) -> Result<Vec<RevisionRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {REVISION_COLUMNS} FROM revisions WHERE manifests IS NOT NULL
               AND (?1 IS NULL OR source = ?1) ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map([source], revision_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn revision(&self, id: i64) -> Result<Option<RevisionRow>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {REVISION_COLUMNS} FROM revisions WHERE id = ?1 AND manifests IS NOT NULL"),
                [id],
                revision_row,
            )
            .optional()?)
    }

    /// Adds a git source; false when the name is taken.
    pub fn git_source_add(&self, name: &str, spec: &str) -> Result<bool> {
        let n = self.conn().execute(
            "INSERT INTO git_sources (name, spec, suspended, created_at) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT (name) DO NOTHING",
            params![name, spec, now_millis()],
        )?;
        Ok(n > 0)
    }

    pub fn git_source(&self, name: &str) -> Result<Option<GitSourceRow>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {GIT_COLUMNS} FROM git_sources WHERE name = ?1"),
                [name],
                git_row,
            )
            .optional()?)
    }

    pub fn git_sources(&self) -> Result<Vec<GitSourceRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("SELECT {GIT_COLUMNS} FROM git_sources ORDER BY name"))?;
        let rows = stmt.query_map([], git_row)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn git_source_suspend(&self, name: &str, suspended: bool, reason: Option<&str>) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE git_sources SET suspended = ?2, suspended_reason = ?3 WHERE name = ?1",
            params![name, suspended as i64, reason],
        )?;
        Ok(n > 0)
    }

    /// Records a fetch: when, and its error (None clears it).
    pub fn git_source_fetched(&self, name: &str, error: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE git_sources SET fetched_at = ?2, error = ?3 WHERE name = ?1",
            params![name, now_millis(), error],
        )?;
        Ok(())
    }

    /// Records an apply tried at `commit`: applied (the error cleared) or not
    /// (the error kept, the applied commit unchanged).
    pub fn git_source_attempted(&self, name: &str, commit: &str, error: Option<&str>) -> Result<()> {
        let conn = self.conn();
        match error {
            None => conn.execute(
                "UPDATE git_sources SET commit_attempted = ?2, commit_applied = ?2, applied_at = ?3, error = NULL
                 WHERE name = ?1",
                params![name, commit, now_millis()],
            )?,
            Some(e) => conn.execute(
                "UPDATE git_sources SET commit_attempted = ?2, error = ?3 WHERE name = ?1",
                params![name, commit, e],
            )?,
        };
        Ok(())
    }

    /// Records the commit whose manifests run now (after a rollback).
    pub fn git_source_set_applied(&self, name: &str, commit: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE git_sources SET commit_applied = ?2, applied_at = ?3 WHERE name = ?1",
            params![name, commit, now_millis()],
        )?;
        Ok(())
    }

    pub fn git_source_remove(&self, name: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM git_sources WHERE name = ?1", [name])? > 0)
    }
}
