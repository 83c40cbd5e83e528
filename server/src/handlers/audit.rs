//! `GET /audit/{project}?limit=N&before=ID`: the audit log, newest first, for owners.
//! `GET /audit` pages through every event, including those of no project (token mints and
//! revocations, refused token requests).

use super::{Need, allow, json};
use crate::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::AuditQuery;
use serde::Deserialize;
use std::sync::Arc;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

/// Events per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page.
pub const MAX_LIMIT: u32 = 500;

/// The query of `GET /audit/{project}`.
#[derive(Debug, Deserialize)]
pub struct AuditParams {
    pub limit: Option<u32>,
    pub before: Option<u64>,
}

pub async fn list(
    project: String,
    app: Arc<App>,
    who: Principal,
    params: AuditParams,
) -> Result<Response, Rejection> {
    let project = super::project(&project)?;
    allow(&app, &who, Need::Owner, "audit", Some(&project), None).await?;
    page(&app, Some(&project), params).await
}

pub async fn list_all(
    app: Arc<App>,
    who: Principal,
    params: AuditParams,
) -> Result<Response, Rejection> {
    allow(&app, &who, Need::Owner, "audit", None, None).await?;
    page(&app, None, params).await
}

async fn page(
    app: &App,
    project: Option<&str>,
    params: AuditParams,
) -> Result<Response, Rejection> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(
            ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}")).into(),
        );
    }
    let page = app
        .store
        .audit(AuditQuery {
            project,
            limit,
            before: params.before,
        })
        .await
        .map_err(|e| ApiError::from_store(e, String::new))?;
    Ok(json(StatusCode::OK, &page))
}
