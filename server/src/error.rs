//! API errors and the one `recover` that turns every rejection into
//! `{"error": "<code>", "message": "<one human line>"}` with its status.
//!
//! Messages are written for the person at the other end and never carry internals: a
//! storage failure is logged here and answered with a bare "internal error".

use crate::store::StoreError;
use envsync_common::api::ErrorBody;
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::reject::Reject;
use warp::reply::Response;
use warp::{Rejection, Reply};

/// An error answer. Raised as a warp rejection so filters and handlers share one path.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub current_version: Option<u64>,
    /// Seconds for a `Retry-After` header (429 only).
    pub retry_after: Option<u64>,
}

impl Reject for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            current_version: None,
            retry_after: None,
        }
    }

    /// 429: too many failed authentications from this client; try again in `wait`.
    pub fn too_many_failures(wait: std::time::Duration) -> ApiError {
        // Whole seconds, rounded up: retrying on time must never be refused again.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError {
            retry_after: Some(secs.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many failed authentications from this address; try again after Retry-After seconds",
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    /// Maps a storage error, logging what a client must not see. `what` names the missing
    /// thing for a 404 ("no env for project 'p' branch 'b'").
    pub fn from_store(e: StoreError, what: impl FnOnce() -> String) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::not_found(what()),
            StoreError::Conflict { current } => ApiError {
                status: StatusCode::CONFLICT,
                code: "conflict",
                message: match current {
                    Some(v) => format!(
                        "base_version is not the latest version ({v}); pull, then push again"
                    ),
                    None => "the branch has no version yet; push with base_version null".into(),
                },
                current_version: current,
                retry_after: None,
            },
            StoreError::Full(detail) => {
                tracing::error!(error = %detail, "a write could not be made durable");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "the server cannot store anything right now (its disk is full or failing); \
                     nothing of this request was kept: try again later",
                )
            }
            StoreError::Other(detail) => {
                tracing::error!(error = %detail, "storage failure");
                ApiError::internal()
            }
        }
    }

    pub fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
            current_version: self.current_version,
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(warp::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// The single recovery point of the filter tree: every rejection, ours or warp's, becomes
/// an `ErrorBody` with a status. Nothing falls through as a bare, reasonless reply.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    Ok(classify(&rejection).into_response())
}

fn classify(rejection: &Rejection) -> ApiError {
    use warp::reject::{
        InvalidHeader, InvalidQuery, LengthRequired, MethodNotAllowed, MissingHeader,
        PayloadTooLarge, UnsupportedMediaType,
    };
    if let Some(e) = rejection.find::<ApiError>() {
        return e.clone();
    }
    if rejection.is_not_found() {
        return ApiError::not_found("no such route; see the HTTP API in docs/protocol.md");
    }
    if rejection.find::<PayloadTooLarge>().is_some() {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is over the server's size limit",
        );
    }
    if rejection.find::<LengthRequired>().is_some() {
        return ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a Content-Length header is required (chunked request bodies are not accepted)",
        );
    }
    if rejection.find::<InvalidQuery>().is_some() {
        return ApiError::bad_request("the query string is malformed or has a bad value");
    }
    if let Some(e) = rejection.find::<InvalidHeader>() {
        return ApiError::bad_request(format!("header '{}' is malformed", e.name()));
    }
    if let Some(e) = rejection.find::<MissingHeader>() {
        return ApiError::bad_request(format!("header '{}' is missing", e.name()));
    }
    if rejection.find::<UnsupportedMediaType>().is_some() {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        );
    }
    if rejection.find::<MethodNotAllowed>().is_some() {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        );
    }
    tracing::error!(rejection = ?rejection, "unhandled rejection");
    ApiError::internal()
}
