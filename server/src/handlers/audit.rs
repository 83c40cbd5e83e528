//! `GET /audit/{project}?limit=N&before=ID`: the audit log, newest first, for the
//! project's owners. `GET /audit` pages through every event, including those of no project
//! (token mints and revocations, refused token requests), for administrators only.

use super::query::BeforeQuery;
use super::{Need, allow, json};
use crate::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::Action;
use crate::store::AuditQuery;
use envsync_common::api::AuditPage;
use std::sync::Arc;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn list(
    project: String,
    app: Arc<App>,
    who: Principal,
    params: BeforeQuery,
) -> Result<Response, Rejection> {
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
    page(&app, Some(&project), params).await
}

pub async fn list_all(
    app: Arc<App>,
    who: Principal,
    params: BeforeQuery,
) -> Result<Response, Rejection> {
    allow(&app, &who, Need::Admin, Action::Audit, None, None).await?;
    page(&app, None, params).await
}

async fn page(
    app: &App,
    project: Option<&str>,
    params: BeforeQuery,
) -> Result<Response, Rejection> {
    let limit = params.limit(AuditPage::DEFAULT_LIMIT, AuditPage::MAX_LIMIT)?;
    let before = params.before()?;
    let page = app
        .store
        .audit(AuditQuery {
            project,
            limit,
            before,
        })
        .await
        .map_err(|e| ApiError::from_store(e, String::new))?;
    Ok(json(StatusCode::OK, &page))
}
