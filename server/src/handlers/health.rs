//! `GET /health`: no authentication, no storage.

use envsync_common::api::Health;
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
