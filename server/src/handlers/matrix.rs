//! `GET /matrix/{project}?limit=N&after=BRANCH&default=BRANCH`: which key names each
//! branch has, compared with the default branch, in one answer — what the dashboard's
//! matrix draws. Where both latest versions carry value fingerprints, a key on both is also
//! compared by value (`d`: differs); the server learns nothing new from it, as it stores
//! the fingerprints it compares. (Not `/env/{project}/matrix`: `matrix` is a valid branch name, and that
//! path already pulls it.)
//!
//! Built here from the store's existing reads (a page of branches, then each branch's
//! latest key names, all on its reader threads), so the storage trait stays as it is.
//!
//! The server does not know a project's `default_branch` (it lives in the repository's
//! `.envsync.toml`), so the reference column is `?default=` when given, else `main`, else
//! `master`, else the first branch by name.

use super::query::{AfterQuery, MatrixQuery};
use super::{Need, allow, json};
use crate::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::Action;
use crate::store::{BranchesQuery, PAGE_KEY_BYTES, VersionsQuery};
use envsync_common::api::{
    Cell, FINGERPRINT_KEY_ID, Fingerprints, MatrixBranch, MatrixPage, VersionInfo,
};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

/// Branches tried, in order, when no `?default=` names one.
const CONVENTIONAL_DEFAULTS: [&str; 2] = ["main", "master"];

pub async fn get(
    project: String,
    app: Arc<App>,
    who: Principal,
    page: AfterQuery,
    query: MatrixQuery,
) -> Result<Response, Rejection> {
    let limit = page.limit(MatrixPage::DEFAULT_LIMIT, MatrixPage::MAX_LIMIT)?;
    let after = page.after()?;
    let asked_default = query.default_branch()?;
    let project = super::project(&project)?;
    allow(
        &app,
        &who,
        Need::Read(&project),
        Action::Matrix,
        Some(&project),
        None,
    )
    .await?;
    let matrix = build(&app, &project, asked_default, after, limit).await?;
    Ok(json(StatusCode::OK, &matrix))
}

/// A branch's latest version (key names, who, when); `None` for a branch with no env.
async fn latest(app: &App, project: &str, branch: &str) -> Result<Option<VersionInfo>, ApiError> {
    let page = app
        .store
        .versions(VersionsQuery {
            project: project.to_owned(),
            branch: branch.to_owned(),
            limit: 1,
            before: None,
        })
        .await
        .map_err(|e| ApiError::from_store(e, String::new))?;
    Ok(page.versions.into_iter().next())
}

/// The default branch and its latest version.
async fn reference(
    app: &App,
    project: &str,
    asked: Option<String>,
) -> Result<Option<(String, VersionInfo)>, ApiError> {
    if let Some(name) = asked {
        return match latest(app, project, &name).await? {
            Some(v) => Ok(Some((name, v))),
            None => Err(ApiError::not_found(format!(
                "project '{project}' has no env for branch '{name}' (asked as the default branch)"
            ))),
        };
    }
    for name in CONVENTIONAL_DEFAULTS {
        if let Some(v) = latest(app, project, name).await? {
            return Ok(Some((name.to_owned(), v)));
        }
    }
    let first = app
        .store
        .branches(BranchesQuery {
            project: project.to_owned(),
            limit: 1,
            after: None,
        })
        .await
        .map_err(|e| ApiError::from_store(e, String::new))?;
    match first.branches.into_iter().next() {
        Some(b) => Ok(latest(app, project, &b.branch)
            .await?
            .map(|v| (b.branch, v))),
        None => Ok(None),
    }
}

/// What a page costs: its key names' bytes and one cell per key and column.
#[derive(Debug, Default)]
struct Cost {
    names: HashSet<String>,
    name_bytes: usize,
    columns: usize,
}

impl Cost {
    fn add(&mut self, keys: &[String]) {
        self.columns += 1;
        for k in keys {
            if !self.names.contains(k) {
                self.name_bytes += k.len();
                self.names.insert(k.clone());
            }
        }
    }

    /// Whether the page passes the byte budget of one answer (see [`PAGE_KEY_BYTES`]): a
    /// page ends early rather than grow without bound when branches hold many keys.
    fn over_budget(&self) -> bool {
        self.name_bytes + self.names.len() * self.columns > PAGE_KEY_BYTES
    }
}

async fn build(
    app: &App,
    project: &str,
    asked_default: Option<String>,
    after: Option<String>,
    limit: u32,
) -> Result<MatrixPage, ApiError> {
    let Some((default_name, default_latest)) = reference(app, project, asked_default).await? else {
        return Ok(MatrixPage {
            default_branch: None,
            keys: Vec::new(),
            branches: Vec::new(),
            next_after: None,
        });
    };

    // One more than the page, since the default branch may be among them.
    let listed = app
        .store
        .branches(BranchesQuery {
            project: project.to_owned(),
            limit: limit + 1,
            after,
        })
        .await
        .map_err(|e| ApiError::from_store(e, String::new))?;
    let mut cost = Cost::default();
    cost.add(&default_latest.keys);
    let mut columns = vec![(default_name.clone(), default_latest)];
    let mut next_after = listed.next_after;
    for info in listed.branches {
        if info.branch == default_name {
            continue;
        }
        let taken = columns.len() - 1;
        if taken > 0 && (taken == limit as usize || cost.over_budget()) {
            // Full: the next page starts after the last branch this one holds.
            next_after = columns.last().map(|(name, _)| name.clone());
            break;
        }
        if let Some(v) = latest(app, project, &info.branch).await? {
            cost.add(&v.keys);
            columns.push((info.branch, v));
        }
    }
    Ok(assemble(default_name, &columns, next_after))
}

/// Whether `key`'s values differ here and on the default branch: only when both versions
/// carry a fingerprint for it made with the same key (a version pushed without
/// fingerprints, or before a rotation, compares with nothing).
fn differ(key: &str, here: Option<&Fingerprints>, on_default: Option<&Fingerprints>) -> bool {
    let (Some(here), Some(on_default)) = (here, on_default) else {
        return false;
    };
    let same_key = here.get(FINGERPRINT_KEY_ID).is_some()
        && here.get(FINGERPRINT_KEY_ID) == on_default.get(FINGERPRINT_KEY_ID);
    match (here.get(key), on_default.get(key)) {
        (Some(a), Some(b)) => same_key && a != b,
        _ => false,
    }
}

/// The rows (every key name of the columns, sorted) and each column's cells.
fn assemble(
    default_name: String,
    columns: &[(String, VersionInfo)],
    next_after: Option<String>,
) -> MatrixPage {
    let rows: BTreeSet<&str> = columns
        .iter()
        .flat_map(|(_, v)| v.keys.iter().map(String::as_str))
        .collect();
    let on_default: HashSet<&str> = columns
        .first()
        .map(|(_, v)| v.keys.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let default_prints = columns.first().and_then(|(_, v)| v.fingerprints.as_ref());
    let branches = columns
        .iter()
        .map(|(name, v)| {
            let here: HashSet<&str> = v.keys.iter().map(String::as_str).collect();
            let mut cells = String::with_capacity(rows.len());
            let (mut missing, mut only, mut differs) = (0, 0, 0);
            for key in &rows {
                let mut cell = Cell::of(here.contains(key), on_default.contains(key));
                if cell == Cell::Present && differ(key, v.fingerprints.as_ref(), default_prints) {
                    cell = Cell::Differs;
                }
                match cell {
                    Cell::Missing => missing += 1,
                    Cell::Only => only += 1,
                    Cell::Differs => differs += 1,
                    Cell::Present | Cell::Absent => {}
                }
                cells.push(cell.as_char());
            }
            MatrixBranch {
                branch: name.clone(),
                version: v.version,
                key_count: v.keys.len() as u64,
                pushed_by: v.pushed_by.clone(),
                pushed_at: v.pushed_at.clone(),
                missing,
                only,
                differs,
                cells,
            }
        })
        .collect();
    MatrixPage {
        default_branch: Some(default_name),
        keys: rows.into_iter().map(str::to_owned).collect(),
        branches,
        next_after,
    }
}
