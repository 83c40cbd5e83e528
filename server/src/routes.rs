//! The whole HTTP API as one warp filter tree.
//!
//! Each route matches its path first and its method second, so an unknown path is a 404
//! and a known path with the wrong method a 405. Authentication runs after both, and the
//! body is read last (bounded by `Content-Length`), so an unauthenticated client cannot make
//! the server buffer anything. Every rejection ends in [`crate::error::recover`].

use crate::App;
use crate::auth::Principal;
use crate::connections::ClientAddr;
use crate::error::{ApiError, recover};
use crate::handlers::query::{AfterQuery, AuditFilterQuery, BeforeQuery, MatrixQuery, PullQuery};
use crate::handlers::{audit, chain, env, health, matrix, projects, tokens};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use warp::http::{HeaderValue, StatusCode};
use warp::hyper::body::Bytes;
use warp::{Filter, Rejection, Reply};

/// A request body as the routes hand it to the handlers: at most `max_body` bytes, read
/// only after authentication.
pub type Body = Bytes;

/// Builds the API and the dashboard: every route, the error recovery, the security
/// headers every response carries, and the access log.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let max_body = app.settings.max_body;
    let app = warp::any().map(move || app.clone());
    let auth = app
        .clone()
        .and(warp::ext::optional::<ClientAddr>())
        .and(authorization())
        .and_then(authenticate);
    let body = move || warp::body::content_length_limit(max_body).and(warp::body::bytes());

    let health = warp::path!("health").and(warp::get()).then(health::get);
    let whoami = warp::path!("whoami")
        .and(warp::get())
        .and(auth.clone())
        .then(health::whoami);

    let push = warp::path!("env" / String / String)
        .and(warp::post())
        .and(app.clone())
        .and(auth.clone())
        .and(body())
        .and_then(env::push);
    let pull = warp::path!("env" / String / String)
        .and(warp::get())
        .and(app.clone())
        .and(auth.clone())
        .and(warp::query::<PullQuery>())
        .and_then(env::pull);
    let matrix = warp::path!("matrix" / String)
        .and(warp::get())
        .and(app.clone())
        .and(auth.clone())
        .and(warp::query::<AfterQuery>())
        .and(warp::query::<MatrixQuery>())
        .and_then(matrix::get);
    let keys = warp::path!("env" / String / String / "keys")
        .and(warp::get())
        .and(app.clone())
        .and(auth.clone())
        .and_then(env::keys);
    let versions = warp::path!("env" / String / String / "versions")
        .and(warp::get())
        .and(app.clone())
        .and(auth.clone())
        .and(warp::query::<BeforeQuery>())
        .and_then(env::versions);
    let branches = warp::path!("env" / String)
        .and(warp::get())
        .and(app.clone())
        .and(auth.clone())
        .and(warp::query::<AfterQuery>())
        .and_then(env::branches);

    let audit = warp::path!("audit" / String)
        .and(warp::get())
        .and(app.clone())
        .and(auth.clone())
        .and(warp::query::<BeforeQuery>())
        .and(warp::query::<AuditFilterQuery>())
        .and_then(audit::list);

    let audit_all = warp::path!("audit")
        .and(warp::get())
        .and(app.clone())
        .and(auth.clone())
        .and(warp::query::<BeforeQuery>())
        .and(warp::query::<AuditFilterQuery>())
        .and_then(audit::list_all);
    let audit_chain = warp::path!("audit-chain")
        .and(warp::get())
        .and(app.clone())
        .and(auth.clone())
        .and_then(chain::get);
    let projects = warp::path!("projects")
        .and(warp::get())
        .and(app.clone())
        .and(auth.clone())
        .and(warp::query::<AfterQuery>())
        .and_then(projects::list);

    let mint = warp::path!("tokens")
        .and(warp::post())
        .and(app.clone())
        .and(auth.clone())
        .and(body())
        .and_then(tokens::mint);
    let list_tokens = warp::path!("tokens")
        .and(warp::get())
        .and(app.clone())
        .and(auth.clone())
        .and_then(tokens::list);
    let revoke = warp::path!("tokens" / String)
        .and(warp::delete())
        .and(app.clone())
        .and(auth)
        .and_then(tokens::revoke);

    crate::dashboard::routes()
        .or(health)
        .or(whoami)
        .or(projects)
        .or(matrix)
        .or(push)
        .or(pull)
        .or(keys)
        .or(versions)
        .or(branches)
        .or(audit)
        .or(audit_all)
        .or(audit_chain)
        .or(mint)
        .or(list_tokens)
        .or(revoke)
        .recover(recover)
        .with(warp::reply::with::headers(
            crate::dashboard::security_headers(),
        ))
        .with(warp::log::custom(access_log))
}

/// The raw `Authorization` header, if any: checked (size, ASCII) by the authenticator so
/// that a bad one gets a precise answer instead of warp's generic header rejection.
fn authorization() -> impl Filter<Extract = (Option<HeaderValue>,), Error = Infallible> + Clone {
    warp::header::value("authorization")
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

/// Checks the token, unless this client address is blocked for failing too often (then
/// 429 before any verification; see [`crate::limiter`]). Every 401 counts against it.
async fn authenticate(
    app: Arc<App>,
    remote: Option<ClientAddr>,
    header: Option<HeaderValue>,
) -> Result<Principal, Rejection> {
    let client = remote.map(|ClientAddr(a)| a.ip());
    let now = Instant::now();
    if let Err(wait) = app.limiter.check(client, now) {
        return Err(ApiError::too_many_failures(wait).into());
    }
    app.auth.authenticate(header.as_ref()).map_err(|e| {
        if e.status == StatusCode::UNAUTHORIZED && app.limiter.failed(client, now) {
            let settings = app.limiter.settings();
            tracing::warn!(
                client = %client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
                failures = settings.max_failures,
                window_secs = settings.window.as_secs(),
                "too many failed authentications; answering 429 until the window ends"
            );
        }
        e.into()
    })
}

/// One line per request: method, path, status, latency. Never a header, query or body.
fn access_log(info: warp::log::Info<'_>) {
    tracing::info!(
        target: "envsync_server::access",
        method = %info.method(),
        path = info.path(),
        status = info.status().as_u16(),
        latency_us = info.elapsed().as_micros() as u64,
    );
}
