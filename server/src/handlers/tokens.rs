//! `/tokens`: minting, listing and revoking tokens (owners only). The server keeps what a
//! token says (jti, email, role, projects, expiry) but never the token itself.

use super::{Need, allow, json, parse_body};
use crate::App;
use crate::auth::Principal;
use crate::config::MAX_TOKEN_TTL;
use crate::error::ApiError;
use crate::routes::Body;
use crate::store::Action;
use crate::store::StoreError;
use envsync_common::api::{TokenRequest, TokenResponse};
use envsync_common::names::validate_project;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

/// Checks the fields of a token request, returning its lifetime in seconds.
pub fn check_request(request: &TokenRequest, default_ttl: u64) -> Result<u64, ApiError> {
    envsync_common::names::check_email(&request.email).map_err(ApiError::bad_request)?;
    for (index, project) in request.project_ids.iter().enumerate() {
        validate_project(project)
            .map_err(|e| ApiError::bad_request(format!("project_ids[{index}]: invalid {e}")))?;
    }
    let ttl = match &request.ttl {
        Some(ttl) => ttl
            .seconds()
            .map_err(|e| ApiError::bad_request(format!("ttl: {e}")))?,
        None => default_ttl,
    };
    if ttl > MAX_TOKEN_TTL {
        return Err(ApiError::bad_request(format!(
            "ttl is over the maximum of {} days",
            MAX_TOKEN_TTL / 86_400
        )));
    }
    Ok(ttl)
}

/// `POST /tokens` → 201 `{"token","jti","expires_at"}`. An owner of projects mints only
/// tokens limited to some of them.
pub async fn mint(app: Arc<App>, who: Principal, body: Body) -> Result<Response, Rejection> {
    allow(&app, &who, Need::AnyOwner, Action::TokenMint, None, None).await?;
    let request: TokenRequest = parse_body(&body, "the token request")?;
    let ttl = check_request(&request, app.settings.default_token_ttl)?;
    allow(
        &app,
        &who,
        Need::Manage(&request.project_ids),
        Action::TokenMint,
        None,
        None,
    )
    .await?;
    let minted = app
        .auth
        .mint(request.email.trim(), request.role, request.project_ids, ttl)
        .map_err(|e| {
            tracing::error!(error = %e, "minting failed");
            ApiError::internal()
        })?;
    app.store
        .add_token(minted.info.clone(), who.email)
        .await
        .map_err(|e| ApiError::from_store(e, String::new))?;
    Ok(json(
        StatusCode::CREATED,
        &TokenResponse {
            token: minted.token.expose().to_owned(),
            jti: minted.info.jti,
            expires_at: minted.info.expires_at,
        },
    ))
}

/// `GET /tokens`: the recorded tokens this owner manages (every one for an administrator),
/// newest first.
pub async fn list(app: Arc<App>, who: Principal) -> Result<Response, Rejection> {
    allow(&app, &who, Need::AnyOwner, Action::TokenList, None, None).await?;
    let mut tokens = app
        .store
        .tokens()
        .await
        .map_err(|e| ApiError::from_store(e, String::new))?;
    tokens.retain(|t| who.can_manage(&t.project_ids));
    Ok(json(StatusCode::OK, &tokens))
}

/// `DELETE /tokens/{jti}` → 204; the token gets 401 from then on. An owner of projects
/// revokes only tokens limited to some of them.
pub async fn revoke(jti: String, app: Arc<App>, who: Principal) -> Result<Response, Rejection> {
    allow(&app, &who, Need::AnyOwner, Action::TokenRevoke, None, None).await?;
    let jti = percent_encoding::percent_decode_str(&jti)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("the jti is not valid UTF-8"))?
        .into_owned();
    match app.store.token(jti.clone()).await {
        Ok(info) => {
            allow(
                &app,
                &who,
                Need::Manage(&info.project_ids),
                Action::TokenRevoke,
                None,
                None,
            )
            .await?;
        }
        // An unknown jti is audited and answered 404 by `revoke_token` below.
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(ApiError::from_store(e, String::new).into()),
    }
    app.store
        .revoke_token(jti.clone(), who.email)
        .await
        .map_err(|e| ApiError::from_store(e, || format!("no token with jti '{jti}'")))?;
    app.auth.revoke([jti]);
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}
