//! The two reads the dashboard needs that the [`Store`](crate::store::Store) trait does not
//! offer yet, made here on the SQLite file directly, read-only and off the async workers:
//! the audit chain walk (exactly what `envsync-server audit verify` runs) and the names of
//! every project that holds a version.
//!
//! Why here and not in the trait: the storage layer is being reshaped for PostgreSQL, and
//! these two belong behind the trait once it settles. Until then every caller goes through
//! the two functions below, so moving them is a one-line change at each call site
//! (`app.store.verify_chain()`, `app.store.projects(…)`).

use crate::App;
use crate::store::sqlite::Database;
use crate::store::sqlite::chain::{self, Verdict};
use crate::store::{AuditQuery, StoreError};
use envsync_common::api::AuditPage;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a direct read cannot be made.
#[derive(Debug)]
pub(crate) enum DirectError {
    /// The database lives only inside the store's own connection (`:memory:`).
    InMemory,
    Store(StoreError),
}

impl From<StoreError> for DirectError {
    fn from(e: StoreError) -> Self {
        DirectError::Store(e)
    }
}

fn file(app: &App) -> Result<PathBuf, DirectError> {
    match &app.settings.database {
        Database::File(path) => Ok(path.clone()),
        Database::Memory => Err(DirectError::InMemory),
    }
}

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, DirectError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DirectError::Store(StoreError::Other(format!("blocking task: {e}"))))?
        .map_err(DirectError::Store)
}

/// Walks the whole audit chain and accounts for every version, in one read snapshot:
/// what `envsync-server audit verify` prints, without an anchor.
pub(crate) async fn verify_chain(app: &App) -> Result<Verdict, DirectError> {
    let path = file(app)?;
    blocking(move || chain::verify(&path, None)).await
}

/// Up to `limit` names of projects that hold a version, in name order, after `after`.
/// On a file, a loose index scan over `UNIQUE (project, branch, version)`: one index seek
/// per project, whatever the number of versions. On `:memory:` (a throwaway server) the
/// names come from the audit log, where every accepted push names its project.
pub(crate) async fn projects(
    app: &App,
    after: Option<String>,
    limit: u32,
) -> Result<Vec<String>, DirectError> {
    match file(app) {
        Ok(path) => {
            blocking(move || project_names(&path, after.as_deref().unwrap_or(""), limit)).await
        }
        Err(DirectError::InMemory) => Ok(projects_in_audit(app, after.as_deref(), limit).await?),
        Err(e) => Err(e),
    }
}

async fn projects_in_audit(
    app: &App,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let mut names = std::collections::BTreeSet::new();
    let mut before = None;
    loop {
        let page = app
            .store
            .audit(AuditQuery {
                project: None,
                limit: AuditPage::MAX_LIMIT,
                before,
            })
            .await?;
        for event in page.events {
            if event.action == "push"
                && event.outcome == "ok"
                && let Some(project) = event.project
                && after.is_none_or(|a| project.as_str() > a)
            {
                names.insert(project);
            }
        }
        match page.next_before {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    Ok(names.into_iter().take(limit as usize).collect())
}

fn project_names(path: &Path, after: &str, limit: u32) -> Result<Vec<String>, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut stmt = conn.prepare(
        "WITH RECURSIVE p(name, n) AS (
             SELECT (SELECT MIN(project) FROM versions WHERE project > ?1), 1
             UNION ALL
             SELECT (SELECT MIN(project) FROM versions WHERE project > p.name), n + 1
             FROM p WHERE p.name IS NOT NULL AND n < ?2
         )
         SELECT name FROM p WHERE name IS NOT NULL",
    )?;
    let names = stmt
        .query_map(rusqlite::params![after, i64::from(limit)], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}
