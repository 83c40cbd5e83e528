//! The SQL of the operations that run inside the writer's transaction: pushes (with their
//! compare-and-swap), pulls, audit events and audit pages.

use super::chain;
pub(super) use crate::store::events::now;
use crate::store::events::{conflict_event, pull_event, push_event};
use crate::store::rows::{EVENT_COLUMNS, PulledRow, events_page};
use crate::store::{Event, NewPush, PullRequest, StoreError};
use envsync_common::api::{AuditEvent, AuditPage, EnvResponse};
use rusqlite::{Connection, OptionalExtension, params};

pub(super) fn push_version(conn: &Connection, push: &NewPush) -> Result<u64, StoreError> {
    let at = now();
    let latest = conn
        .prepare_cached(
            "SELECT version, keys FROM versions WHERE project = ?1 AND branch = ?2
             ORDER BY version DESC LIMIT 1",
        )?
        .query_row(params![push.project, push.branch], |r| {
            Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    let current = latest.as_ref().map(|(v, _)| *v);
    if current != push.base_version {
        insert_event(conn, &at, &conflict_event(push, current))?;
        return Err(StoreError::Conflict { current });
    }
    let previous: Vec<String> = match &latest {
        Some((_, keys)) => serde_json::from_str(keys)?,
        None => Vec::new(),
    };
    let version = current.map_or(1, |v| v + 1);
    let fingerprints = push.stored_fingerprints()?;
    conn.prepare_cached(
        "INSERT INTO versions (project, branch, version, ciphertext, keys, key_count, pushed_by,
             pushed_at, fingerprints)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        push.project,
        push.branch,
        version,
        push.ciphertext,
        serde_json::to_string(&push.keys)?,
        push.keys.len() as u64,
        push.actor,
        at,
        fingerprints,
    ])?;
    let event = push_event(&previous, push, version, fingerprints.as_deref());
    insert_event(conn, &at, &event)?;
    Ok(version)
}

pub(super) fn pull_version(
    conn: &Connection,
    pull: &PullRequest,
) -> Result<EnvResponse, StoreError> {
    let at = now();
    let map = |r: &rusqlite::Row<'_>| {
        Ok(PulledRow {
            version: r.get(0)?,
            ciphertext: r.get(1)?,
            keys: r.get(2)?,
            pushed_by: r.get(3)?,
            pushed_at: r.get(4)?,
            fingerprints: r.get(5)?,
        })
    };
    let row = match pull.version {
        Some(version) => conn
            .prepare_cached(
                "SELECT version, ciphertext, keys, pushed_by, pushed_at, fingerprints
                 FROM versions WHERE project = ?1 AND branch = ?2 AND version = ?3",
            )?
            .query_row(params![pull.project, pull.branch, version], map)
            .optional()?,
        None => conn
            .prepare_cached(
                "SELECT version, ciphertext, keys, pushed_by, pushed_at, fingerprints
                 FROM versions WHERE project = ?1 AND branch = ?2 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![pull.project, pull.branch], map)
            .optional()?,
    };
    let Some(row) = row else {
        insert_event(conn, &at, &pull_event(pull, None))?;
        return Err(StoreError::NotFound);
    };
    // Everything that can fail comes before the one write, the audit row.
    let env = row.parse()?;
    insert_event(conn, &at, &pull_event(pull, Some(env.version)))?;
    Ok(env)
}

/// Appends one audit row to its project's chain (see [`chain`]). Inside the writer's
/// transaction: the chain's last row read here is the row this one is appended to.
pub(super) fn insert_event(conn: &Connection, at: &str, e: &Event) -> Result<(), StoreError> {
    let (seq, prev) = chain::tail(conn, e.project.as_deref())?;
    let last: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM audit")?
        .query_row([], |r| r.get(0))?;
    let (id, seq) = (last + 1, seq + 1);
    let hash = crate::store::chain::Row::of(id, seq, at, e)?.hash(&prev);
    conn.prepare_cached(
        "INSERT INTO audit (id, seq, at, actor, action, project, branch, version, outcome,
             detail, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        id,
        seq,
        at,
        e.actor,
        e.action.as_str(),
        e.project,
        e.branch,
        e.version,
        e.outcome.as_str(),
        e.detail,
        &hash[..]
    ])?;
    Ok(())
}

/// A page of audit events, newest first, below `below`; bounded by [`events_page`], which
/// reads the rows only as far as the page needs them.
pub(super) fn audit_page(
    conn: &Connection,
    project: Option<&str>,
    limit: u32,
    below: i64,
) -> Result<AuditPage, StoreError> {
    let map = |r: &rusqlite::Row<'_>| {
        Ok(AuditEvent {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            project: r.get(4)?,
            branch: r.get(5)?,
            version: r.get(6)?,
            outcome: r.get(7)?,
            detail: r.get(8)?,
        })
    };
    // One more row than asked tells whether there is a next page.
    let fetch = i64::from(limit) + 1;
    let from_sql = |r: rusqlite::Result<AuditEvent>| r.map_err(StoreError::from);
    match project {
        Some(project) => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM audit WHERE project = ?1 AND id < ?2
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![project, below, fetch], map)?;
            events_page(limit, rows.map(from_sql))
        }
        None => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![below, fetch], map)?;
            events_page(limit, rows.map(from_sql))
        }
    }
}
