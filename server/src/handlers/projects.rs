//! `GET /projects?limit=N&after=PROJECT`: the projects a token may read, each with its
//! branch count and last push — the dashboard's first page.
//!
//! An administrator (an owner token without `project_ids`) sees every project that holds a
//! version; any other token sees its `project_ids`, those with no version yet included, so
//! a new team member finds the project they were given. Each summary is built from the
//! store's branch pages (run on its reader threads).

use super::json;
use super::query::AfterQuery;
use crate::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::BranchesQuery;
use crate::store::rows::next_page;
use envsync_common::api::{BranchesPage, LastPush, ProjectInfo, ProjectsPage};
use std::sync::Arc;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn list(app: Arc<App>, who: Principal, query: AfterQuery) -> Result<Response, Rejection> {
    let limit = query.limit(ProjectsPage::DEFAULT_LIMIT, ProjectsPage::MAX_LIMIT)?;
    let after = query.after_project()?;
    // One more than the page, to know whether another page follows.
    let mut names = if who.is_admin() {
        app.store
            .projects(after.clone(), limit + 1)
            .await
            .map_err(|e| ApiError::from_store(e, String::new))?
    } else {
        let mut own: Vec<String> = who
            .project_ids
            .iter()
            .filter(|p| after.as_ref().is_none_or(|a| *p > a))
            .cloned()
            .collect();
        own.sort();
        own.dedup();
        own.truncate(limit as usize + 1);
        own
    };
    let next_after = next_page(&mut names, limit, String::clone);
    let mut projects = Vec::with_capacity(names.len());
    for name in names {
        projects.push(summary(&app, name).await?);
    }
    Ok(json(
        StatusCode::OK,
        &ProjectsPage {
            projects,
            next_after,
        },
    ))
}

/// A project's branch count and latest push, from every page of its branches.
async fn summary(app: &App, name: String) -> Result<ProjectInfo, ApiError> {
    let mut info = ProjectInfo {
        project: name,
        branch_count: 0,
        last_push: None,
    };
    let mut after = None;
    loop {
        let page = app
            .store
            .branches(BranchesQuery {
                project: info.project.clone(),
                limit: BranchesPage::MAX_LIMIT,
                after,
            })
            .await
            .map_err(|e| ApiError::from_store(e, String::new))?;
        info.branch_count += page.branches.len() as u64;
        for b in page.branches {
            let newer = info
                .last_push
                .as_ref()
                .is_none_or(|last| later(&b.pushed_at, &last.pushed_at));
            if newer {
                info.last_push = Some(LastPush {
                    branch: b.branch,
                    version: b.version,
                    pushed_by: b.pushed_by,
                    pushed_at: b.pushed_at,
                });
            }
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(info),
        }
    }
}

/// Whether RFC 3339 time `a` is after `b`. Parsed, not compared as text: the fraction of
/// a second is written without trailing zeros (`…:05.1Z` is after `…:05.09Z`).
fn later(a: &str, b: &str) -> bool {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    match (
        OffsetDateTime::parse(a, &Rfc3339),
        OffsetDateTime::parse(b, &Rfc3339),
    ) {
        (Ok(a), Ok(b)) => a > b,
        _ => a > b,
    }
}

#[cfg(test)]
mod tests {
    use super::later;

    #[test]
    fn times_compare_as_times_not_text() {
        assert!(later("2026-01-01T00:00:05.1Z", "2026-01-01T00:00:05.09Z"));
        assert!(later("2026-01-01T00:00:05.5Z", "2026-01-01T00:00:05Z"));
        assert!(!later("2026-01-01T00:00:05Z", "2026-01-01T00:00:05.5Z"));
        assert!(later("2026-01-02T00:00:00Z", "2026-01-01T23:59:59.999Z"));
    }
}
