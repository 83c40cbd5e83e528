//! `/env/{project}[/{branch}[/keys|/versions]]`: pushing and reading versions.

use super::query::{AfterQuery, BeforeQuery, PullQuery};
use super::{Need, allow, json, parse_body};
use crate::App;
use crate::auth::Principal;
use crate::config::Quotas;
use crate::error::ApiError;
use crate::routes::Body;
use crate::store::Action;
use crate::store::{BranchesQuery, NewPush, PullRequest, VersionsQuery};
use envsync_common::api::{
    BranchesPage, Fingerprints, PushRequest, PushResponse, VersionsPage, fingerprints_fit,
};
use envsync_common::envelope::check_armored;
use envsync_common::names::validate_key;
use std::collections::HashSet;
use std::sync::Arc;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

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
    action: Action,
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
    let (project, branch) = branch_access(
        &app,
        &who,
        (&project, &branch),
        |p| Need::Write(p),
        Action::Push,
    )
    .await?;
    let request: PushRequest = parse_body(&body, "the push body")?;
    check_push(&request, &app.settings.quotas)?;
    // A count only: fingerprints tell which values are equal, so they stay out of logs.
    let fingerprints = request.fingerprints.as_ref().map(|f| f.len());
    let version = app
        .store
        .push(NewPush {
            actor: who.email,
            jti: who.jti,
            project: project.clone(),
            branch: branch.clone(),
            ciphertext: request.ciphertext,
            keys: request.keys,
            base_version: request.base_version,
            fingerprints: request.fingerprints,
        })
        .await
        .map_err(|e| ApiError::from_store(e, no_env(&project, &branch)))?;
    tracing::debug!(%project, %branch, version, ?fingerprints, "pushed");
    Ok(json(StatusCode::CREATED, &PushResponse { version }))
}

/// What the server can check about a push without a key: the blob is an armored age file,
/// the key names are valid and distinct, and within this server's quotas, and the
/// fingerprints, when sent, are one per name of `keys` and well formed.
fn check_push(request: &PushRequest, quotas: &Quotas) -> Result<(), ApiError> {
    check_armored(&request.ciphertext)
        .map_err(|e| ApiError::bad_request(format!("ciphertext is refused: {e}")))?;
    if request.keys.len() > quotas.max_keys {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_keys",
            format!(
                "the push lists {} keys; this server accepts at most {} per version",
                request.keys.len(),
                quotas.max_keys
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(request.keys.len());
    for (index, key) in request.keys.iter().enumerate() {
        if key.len() > quotas.max_key_len {
            // The name is not repeated: it may be kilobytes long.
            return Err(ApiError::bad_request(format!(
                "keys[{index}]: the key name is {} bytes; this server accepts at most {}",
                key.len(),
                quotas.max_key_len
            )));
        }
        validate_key(key)
            .map_err(|e| ApiError::bad_request(format!("keys[{index}]: invalid {e}")))?;
        if !seen.insert(key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "keys[{index}]: key name '{key}' is listed twice"
            )));
        }
    }
    if let Some(fingerprints) = &request.fingerprints {
        check_fingerprints(&request.keys, fingerprints)?;
    }
    Ok(())
}

/// The fingerprints fit the (already checked) key names: one each, 32 lowercase hex
/// characters ([`fingerprints_fit`], whose messages never repeat a fingerprint or a name
/// that is not in `keys`). No quota of their own: a fingerprint per key, of a fixed size,
/// so `max_keys` and the body limit bound them.
fn check_fingerprints(keys: &[String], fingerprints: &Fingerprints) -> Result<(), ApiError> {
    fingerprints_fit(keys, fingerprints)
        .map_err(|problem| ApiError::bad_request(format!("fingerprints: {problem}")))
}

/// `GET /env/{project}/{branch}[?version=N]`: one version with its ciphertext (audited).
pub async fn pull(
    project: String,
    branch: String,
    app: Arc<App>,
    who: Principal,
    query: PullQuery,
) -> Result<Response, Rejection> {
    let version = query.version()?;
    let (project, branch) = branch_access(
        &app,
        &who,
        (&project, &branch),
        |p| Need::Read(p),
        Action::Pull,
    )
    .await?;
    let not_found = match version {
        Some(v) => format!("project '{project}' branch '{branch}' has no version {v}"),
        None => no_env(&project, &branch)(),
    };
    let env = app
        .store
        .pull(PullRequest {
            actor: who.email,
            jti: who.jti,
            project,
            branch,
            version,
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
    let (project, branch) = branch_access(
        &app,
        &who,
        (&project, &branch),
        |p| Need::Read(p),
        Action::Keys,
    )
    .await?;
    let keys = app
        .store
        .keys(project.clone(), branch.clone())
        .await
        .map_err(|e| ApiError::from_store(e, no_env(&project, &branch)))?;
    Ok(json(StatusCode::OK, &keys))
}

/// `GET /env/{project}/{branch}/versions?limit=N&before=V`: a page of versions, newest
/// first (an empty page for a branch never pushed).
pub async fn versions(
    project: String,
    branch: String,
    app: Arc<App>,
    who: Principal,
    query: BeforeQuery,
) -> Result<Response, Rejection> {
    let limit = query.limit(VersionsPage::DEFAULT_LIMIT, VersionsPage::MAX_LIMIT)?;
    let before = query.before()?;
    let (project, branch) = branch_access(
        &app,
        &who,
        (&project, &branch),
        |p| Need::Read(p),
        Action::Versions,
    )
    .await?;
    let page = app
        .store
        .versions(VersionsQuery {
            project: project.clone(),
            branch: branch.clone(),
            limit,
            before,
        })
        .await
        .map_err(|e| ApiError::from_store(e, no_env(&project, &branch)))?;
    Ok(json(StatusCode::OK, &page))
}

/// `GET /env/{project}?limit=N&after=BRANCH`: a page of branches in name order, each with
/// its latest version and key count.
pub async fn branches(
    project: String,
    app: Arc<App>,
    who: Principal,
    query: AfterQuery,
) -> Result<Response, Rejection> {
    let limit = query.limit(BranchesPage::DEFAULT_LIMIT, BranchesPage::MAX_LIMIT)?;
    let after = query.after()?;
    let project = super::project(&project)?;
    allow(
        &app,
        &who,
        Need::Read(&project),
        Action::Branches,
        Some(&project),
        None,
    )
    .await?;
    let page = app
        .store
        .branches(BranchesQuery {
            project: project.clone(),
            limit,
            after,
        })
        .await
        .map_err(|e| ApiError::from_store(e, || format!("no project '{project}'")))?;
    Ok(json(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::{branch, project};
    use envsync_common::api::FINGERPRINT_KEY_ID;

    #[test]
    fn push_checks() {
        let mut request = PushRequest {
            ciphertext: "not age".into(),
            keys: vec!["A".into()],
            base_version: None,
            fingerprints: None,
        };
        let quotas = Quotas::default();
        let err = check_push(&request, &quotas).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("ciphertext"), "{}", err.message);
        request.ciphertext = String::new();
        assert!(check_push(&request, &quotas).is_err());
    }

    #[test]
    fn fingerprints_must_fit_the_keys_and_are_never_repeated() {
        let keys: Vec<String> = vec!["A".into(), "B".into()];
        let good = "0123456789abcdef0123456789abcdef";
        let map = |pairs: &[(&str, &str)]| -> Fingerprints {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let id = FINGERPRINT_KEY_ID;
        assert!(check_fingerprints(&keys, &map(&[(id, good), ("A", good), ("B", good)])).is_ok());
        let long = "X".repeat(5000);
        for (bad, says) in [
            (map(&[(id, good), ("A", good)]), "no fingerprint for B"),
            (map(&[("A", good), ("B", good)]), "no key id"),
            (
                map(&[(id, good), ("A", good), ("B", good), (&long, good)]),
                "1 of them are for names not in keys",
            ),
            (
                map(&[
                    (id, good),
                    ("A", good),
                    ("B", "0123456789ABCDEF0123456789ABCDEF"),
                ]),
                "the fingerprint of B is not 32 lowercase hex",
            ),
            (
                map(&[(id, good), ("A", good), ("B", "0123456789abcdef")]),
                "the fingerprint of B is not 32 lowercase hex",
            ),
        ] {
            let err = check_fingerprints(&keys, &bad).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.contains(says), "{}", err.message);
            assert!(!err.message.contains("0123456789"), "{}", err.message);
            assert!(!err.message.contains("XXXX"), "{}", err.message);
        }
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
