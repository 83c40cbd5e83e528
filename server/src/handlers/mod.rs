//! The plain async functions behind each route, one module per resource, plus what they
//! share: name decoding, the role checks (every refusal is audited) and JSON replies.

pub mod audit;
pub mod chain;
pub mod env;
pub mod health;
pub mod matrix;
pub mod projects;
pub mod query;
pub mod tokens;

use crate::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::{Action, Event, Outcome};
use envsync_common::names::{NameError, validate_branch, validate_project};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde::de::DeserializeOwned;
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

/// A JSON reply with `status`.
pub(crate) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// Percent-decodes one path segment (warp leaves them encoded) into UTF-8.
fn decode(raw: &str, what: &str) -> Result<String, ApiError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            ApiError::bad_request(format!("{what} is not valid UTF-8 once percent-decoded"))
        })
}

fn invalid(e: NameError) -> ApiError {
    ApiError::bad_request(format!("invalid {e}"))
}

/// The project id of a path, decoded and checked.
pub(crate) fn project(raw: &str) -> Result<String, ApiError> {
    let project = decode(raw, "the project id")?;
    validate_project(&project).map_err(invalid)?;
    Ok(project)
}

/// The branch name of a path (one segment, `/` as `%2F`), decoded and checked.
pub(crate) fn branch(raw: &str) -> Result<String, ApiError> {
    let branch = decode(raw, "the branch name")?;
    validate_branch(&branch).map_err(invalid)?;
    Ok(branch)
}

/// What a route needs from the caller's token (see [`Principal`] for roles and scope).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Need<'a> {
    Read(&'a str),
    Write(&'a str),
    /// Ownership of this project: its audit log.
    Own(&'a str),
    /// An owner of every project: the whole audit log.
    Admin,
    /// Any owner token: the token routes, whose targets are checked with `Manage`.
    AnyOwner,
    /// The right to mint, list or revoke a token scoped to these projects.
    Manage(&'a [String]),
}

/// Checks `who` against `need`; a refusal is written to the audit log (actor, action,
/// target) before the 403 goes out.
pub(crate) async fn allow(
    app: &App,
    who: &Principal,
    need: Need<'_>,
    action: Action,
    project: Option<&str>,
    branch: Option<&str>,
) -> Result<(), ApiError> {
    if permits(who, need) {
        return Ok(());
    }
    let event = Event {
        actor: who.email.clone(),
        action,
        project: project.map(str::to_owned),
        branch: branch.map(str::to_owned),
        version: None,
        outcome: Outcome::Forbidden,
        detail: Some(serde_json::json!({ "role": who.role, "jti": who.jti }).to_string()),
    };
    app.store
        .record(event)
        .await
        .map_err(|e| ApiError::from_store(e, String::new))?;
    Err(ApiError::forbidden(refusal(who, need)))
}

fn permits(who: &Principal, need: Need<'_>) -> bool {
    match need {
        Need::Read(p) => who.can_read(p),
        Need::Write(p) => who.can_write(p),
        Need::Own(p) => who.owns(p),
        Need::Admin => who.is_admin(),
        Need::AnyOwner => who.is_owner(),
        Need::Manage(projects) => who.can_manage(projects),
    }
}

/// Why [`permits`] said no: written only for a refusal, never on the way of an allowed
/// request.
fn refusal(who: &Principal, need: Need<'_>) -> String {
    match need {
        Need::Read(p) => format!("this token may not read project '{p}'"),
        Need::Write(p) if who.can_read(p) => {
            format!("a {} token may not write to project '{p}'", who.role)
        }
        Need::Write(p) => format!("this token may not write to project '{p}'"),
        Need::Own(p) => format!("only an owner of project '{p}' may do this"),
        Need::Admin => {
            "only an owner token without project_ids (an administrator) may do this".to_owned()
        }
        Need::AnyOwner => "only an owner token may do this".to_owned(),
        Need::Manage([]) => {
            "only an administrator may manage a token without project_ids".to_owned()
        }
        Need::Manage(_) => format!(
            "an owner of {} may only manage tokens limited to those projects",
            who.project_ids.join(", ")
        ),
    }
}

/// Parses a JSON body; the message names the problem's kind and place, never the content.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let detail = e.to_string();
        // serde's own message names fields ("missing field `keys`") but for a wrong value it
        // quotes the value; quote-free messages are safe to pass on.
        let reason = if detail.contains('"') || detail.contains('\'') {
            match e.classify() {
                serde_json::error::Category::Data => {
                    "a field has the wrong type or value".to_owned()
                }
                _ => "the body is not valid JSON".to_owned(),
            }
        } else {
            detail
        };
        ApiError::bad_request(format!("{what}: {reason}"))
    })
}
