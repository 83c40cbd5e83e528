//! `GET /whoami`: who the presented token says you are. Any valid token may ask; what a
//! login command uses to check a token before saving it.

use super::json;
use crate::auth::Principal;
use envsync_common::api::WhoAmI;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn get(who: Principal) -> Result<Response, Rejection> {
    Ok(json(
        StatusCode::OK,
        &WhoAmI {
            email: who.email,
            role: who.role,
            project_ids: who.project_ids,
        },
    ))
}
