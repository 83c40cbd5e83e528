//! `/env/{project}[/{branch}[/keys|/versions]]`: pushing and reading versions.

use super::{Need, allow, json, parse_body};
use crate::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::Body;
use crate::store::{NewPush, PullRequest};
use envsync_common::api::{PushRequest, PushResponse};
use envsync_common::envelope::check_armored;
use envsync_common::names::validate_key;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

/// `?version=N` on a pull.
#[derive(Debug, Deserialize)]
pub struct PullQuery {
    pub version: Option<u64>,
}

fn no_env(project: &str, branch: &str) -> impl FnOnce() -> String {
    let message = format!("project '{project}' has no env for branch '{branch}'");
    move || message
}

/// The path's project and branch, decoded and checked, once `who` has the access `need`
/// names to the project for `action` (a refusal is audited by [`allow`]).
async fn branch_access(
    app: &App,
    who: &Principal,
    (project, branch): (&str, &str),
    need: for<'a> fn(&'a str) -> Need<'a>,
    action: &str,
) -> Result<(String, String), ApiError> {
    let project = super::project(project)?;
    let branch = super::branch(branch)?;
    allow(
        app,
        who,
        need(&project),
        action,
        Some(&project),
        Some(&branch),
    )
    .await?;
    Ok((project, branch))
}

/// `POST /env/{project}/{branch}`: a new version, compare-and-swapped on `base_version`.
pub async fn push(
    project: String,
    branch: String,
    app: Arc<App>,
    who: Principal,
    body: Body,
) -> Result<Response, Rejection> {
    let (project, branch) =
        branch_access(&app, &who, (&project, &branch), |p| Need::Write(p), "push").await?;
    let request: PushRequest = parse_body(&body, "the push body")?;
    check_push(&request)?;
    let version = app
        .store
        .push(NewPush {
            actor: who.email,
            project: project.clone(),
            branch: branch.clone(),
            ciphertext: request.ciphertext,
            keys: request.keys,
            base_version: request.base_version,
        })
        .await
        .map_err(|e| ApiError::from_store(e, no_env(&project, &branch)))?;
    tracing::debug!(%project, %branch, version, "pushed");
    Ok(json(StatusCode::CREATED, &PushResponse { version }))
}

/// What the server can check about a push without a key: the blob is an armored age file
/// and the key names are valid and distinct.
fn check_push(request: &PushRequest) -> Result<(), ApiError> {
    check_armored(&request.ciphertext)
        .map_err(|e| ApiError::bad_request(format!("ciphertext is refused: {e}")))?;
    let mut seen = HashSet::with_capacity(request.keys.len());
    for (index, key) in request.keys.iter().enumerate() {
        validate_key(key)
            .map_err(|e| ApiError::bad_request(format!("keys[{index}]: invalid {e}")))?;
        if !seen.insert(key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "keys[{index}]: key name '{key}' is listed twice"
            )));
        }
    }
    Ok(())
}

/// `GET /env/{project}/{branch}[?version=N]`: one version with its ciphertext (audited).
pub async fn pull(
    project: String,
    branch: String,
    app: Arc<App>,
    who: Principal,
    query: PullQuery,
) -> Result<Response, Rejection> {
    let (project, branch) =
        branch_access(&app, &who, (&project, &branch), |p| Need::Read(p), "pull").await?;
    let not_found = match query.version {
        Some(v) => format!("project '{project}' branch '{branch}' has no version {v}"),
        None => no_env(&project, &branch)(),
    };
    let env = app
        .store
        .pull(PullRequest {
            actor: who.email,
            project,
            branch,
            version: query.version,
        })
        .await
        .map_err(|e| ApiError::from_store(e, || not_found))?;
    Ok(json(StatusCode::OK, &env))
}

/// `GET /env/{project}/{branch}/keys`: the latest version's key names.
pub async fn keys(
    project: String,
    branch: String,
    app: Arc<App>,
    who: Principal,
) -> Result<Response, Rejection> {
    let (project, branch) =
        branch_access(&app, &who, (&project, &branch), |p| Need::Read(p), "keys").await?;
    let keys = app
        .store
        .keys(project.clone(), branch.clone())
        .await
        .map_err(|e| ApiError::from_store(e, no_env(&project, &branch)))?;
    Ok(json(StatusCode::OK, &keys))
}

/// `GET /env/{project}/{branch}/versions`: every version, newest first (empty for a branch
/// never pushed).
pub async fn versions(
    project: String,
    branch: String,
    app: Arc<App>,
    who: Principal,
) -> Result<Response, Rejection> {
    let (project, branch) = branch_access(
        &app,
        &who,
        (&project, &branch),
        |p| Need::Read(p),
        "versions",
    )
    .await?;
    let versions = app
        .store
        .versions(project.clone(), branch.clone())
        .await
        .map_err(|e| ApiError::from_store(e, no_env(&project, &branch)))?;
    Ok(json(StatusCode::OK, &versions))
}

/// `GET /env/{project}`: every branch with its latest version and key count.
pub async fn branches(
    project: String,
    app: Arc<App>,
    who: Principal,
) -> Result<Response, Rejection> {
    let project = super::project(&project)?;
    allow(
        &app,
        &who,
        Need::Read(&project),
        "branches",
        Some(&project),
        None,
    )
    .await?;
    let branches = app
        .store
        .branches(project.clone())
        .await
        .map_err(|e| ApiError::from_store(e, || format!("no project '{project}'")))?;
    Ok(json(StatusCode::OK, &branches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::{branch, project};

    #[test]
    fn push_checks() {
        let mut request = PushRequest {
            ciphertext: "not age".into(),
            keys: vec!["A".into()],
            base_version: None,
        };
        let err = check_push(&request).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("ciphertext"), "{}", err.message);
        request.ciphertext = String::new();
        assert!(check_push(&request).is_err());
    }

    #[test]
    fn names_are_percent_decoded_then_checked() {
        assert_eq!(branch("feature%2Flogin").unwrap(), "feature/login");
        assert_eq!(branch("feature%2F%C3%BC").unwrap(), "feature/ü");
        assert!(branch("a%2F..%2Fb").is_err());
        assert!(branch("%FF").is_err());
        assert!(branch("a%00b").is_err());
        assert!(project("p%2Fq").is_err());
        assert_eq!(project("project-123").unwrap(), "project-123");
    }
}
