//! `GET /audit/{project}?limit=N&before=ID`: the audit log, newest first, for the
//! project's owners. `GET /audit` pages through every event, including those of no project
//! (token mints and revocations, refused token requests), for administrators only.
//!
//! A page ends early, with a `next_before`, rather than pass
//! [`AUDIT_PAGE_BYTES`](crate::store::AUDIT_PAGE_BYTES) of event text: a push's event names
//! its keys, so `limit` events can be far larger than `limit` suggests.
//!
//! Both take `action`, `actor`, `branch` and `outcome` filters (exact matches). A filtered
//! page is gathered from the store's pages here, reading at most [`FILTER_SCAN`] events or
//! [`FILTER_SCAN_BYTES`] of their text per request: it may hold fewer than `limit` events
//! and still have a `next_before`, where the next request goes on reading.

use super::query::{AuditFilter, AuditFilterQuery, BeforeQuery};
use super::{Need, allow, json};
use crate::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::Action;
use crate::store::rows::{EventsPage, event_bytes};
use crate::store::{AUDIT_PAGE_BYTES, AuditQuery};
use envsync_common::api::{AuditEvent, AuditPage};
use std::sync::Arc;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn list(
    project: String,
    app: Arc<App>,
    who: Principal,
    params: BeforeQuery,
    filter: AuditFilterQuery,
) -> Result<Response, Rejection> {
    let filter = filter.filter()?;
    let project = super::project(&project)?;
    allow(
        &app,
        &who,
        Need::Own(&project),
        Action::Audit,
        Some(&project),
        None,
    )
    .await?;
    page(&app, Some(&project), params, &filter).await
}

pub async fn list_all(
    app: Arc<App>,
    who: Principal,
    params: BeforeQuery,
    filter: AuditFilterQuery,
) -> Result<Response, Rejection> {
    let filter = filter.filter()?;
    allow(&app, &who, Need::Admin, Action::Audit, None, None).await?;
    page(&app, None, params, &filter).await
}

/// Most events one filtered request reads from the store before it answers.
pub const FILTER_SCAN: usize = 5000;

/// Most bytes of event text (see [`event_bytes`]) one filtered request reads from the
/// store before it answers: a few store pages.
pub const FILTER_SCAN_BYTES: usize = 4 * AUDIT_PAGE_BYTES;

async fn page(
    app: &App,
    project: Option<&str>,
    params: BeforeQuery,
    filter: &AuditFilter,
) -> Result<Response, Rejection> {
    let limit = params.limit(AuditPage::DEFAULT_LIMIT, AuditPage::MAX_LIMIT)?;
    let before = params.before()?;
    let page = if *filter == AuditFilter::default() {
        read(app, project, limit, before).await?
    } else {
        filtered(app, project, limit, before, filter).await?
    };
    Ok(json(StatusCode::OK, &page))
}

async fn read(
    app: &App,
    project: Option<&str>,
    limit: u32,
    before: Option<u64>,
) -> Result<AuditPage, ApiError> {
    app.store
        .audit(AuditQuery {
            project,
            limit,
            before,
        })
        .await
        .map_err(|e| ApiError::from_store(e, String::new))
}

/// Up to `limit` matching events within the page's byte budget, reading store pages from
/// `before` on until the page is full, the log ends, or [`FILTER_SCAN`] events or
/// [`FILTER_SCAN_BYTES`] were read.
async fn filtered(
    app: &App,
    project: Option<&str>,
    limit: u32,
    mut before: Option<u64>,
    filter: &AuditFilter,
) -> Result<AuditPage, ApiError> {
    let mut found = EventsPage::new(limit);
    let (mut scanned, mut scanned_bytes) = (0, 0);
    loop {
        let page = read(app, project, AuditPage::MAX_LIMIT, before).await?;
        let count = page.events.len();
        for (index, event) in page.events.into_iter().enumerate() {
            scanned += 1;
            scanned_bytes += event_bytes(&event);
            if !matches(filter, &event) {
                continue;
            }
            let id = event.id;
            if !found.add(event) {
                // Left for the next page, which starts at the last event kept.
                return Ok(found.finish(None));
            }
            if found.is_full() {
                let last = index + 1 == count && page.next_before.is_none();
                return Ok(found.finish((!last).then_some(id)));
            }
        }
        before = page.next_before;
        if before.is_none() || scanned >= FILTER_SCAN || scanned_bytes >= FILTER_SCAN_BYTES {
            return Ok(found.finish(before));
        }
    }
}

fn matches(filter: &AuditFilter, event: &AuditEvent) -> bool {
    let is =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    is(&filter.action, Some(&event.action))
        && is(&filter.actor, Some(&event.actor))
        && is(&filter.branch, event.branch.as_deref())
        && is(&filter.outcome, Some(&event.outcome))
}
