//! `GET /health` (no authentication, no storage) and `GET /whoami` (the token's identity,
//! no storage either).

use crate::auth::Principal;
use envsync_common::api::{Health, WhoAmI};
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn get() -> Response {
    super::json(
        StatusCode::OK,
        &Health {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
    )
}

pub async fn whoami(who: Principal) -> Response {
    super::json(
        StatusCode::OK,
        &WhoAmI {
            email: who.email,
            role: who.role,
            project_ids: who.project_ids,
        },
    )
}
