//! `GET /audit-chain`: the audit chain's state, from the same walk as
//! `envsync-server audit verify` (no anchor), on either store. Administrators only: the
//! chains span every project, and a bad row or version names what it found.

use super::{Need, allow, json};
use crate::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::Action;
use crate::store::chain::{Verdict, hex};
use envsync_common::api::{ChainState, VersionRef};
use std::sync::Arc;
use warp::Rejection;
use warp::http::StatusCode;
use warp::reply::Response;

pub async fn get(app: Arc<App>, who: Principal) -> Result<Response, Rejection> {
    allow(&app, &who, Need::Admin, Action::AuditVerify, None, None).await?;
    let verdict = app
        .store
        .verify(Vec::new())
        .await
        .map_err(|e| ApiError::from_store(e, String::new))?;
    Ok(json(StatusCode::OK, &state(&verdict)))
}

/// The verdict as the API shows it; `message` is the first line `audit verify` prints.
fn state(verdict: &Verdict) -> ChainState {
    let message = verdict
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut state = ChainState {
        ok: false,
        message,
        rows: None,
        heads: Vec::new(),
        bad_row: None,
        bad_version: None,
    };
    match verdict {
        Verdict::Intact { rows, heads } => {
            state.ok = true;
            state.rows = Some(*rows);
            state.heads = heads
                .iter()
                .map(|(id, hash)| format!("{id}:{}", hex(hash)))
                .collect();
        }
        Verdict::Broken { row, .. } => state.bad_row = Some(*row),
        Verdict::Unaccounted {
            project,
            branch,
            version,
            ..
        } => {
            state.bad_version = Some(VersionRef {
                project: project.clone(),
                branch: branch.clone(),
                version: *version,
            });
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chain::Problem;

    #[test]
    fn verdicts_become_states_with_the_verify_line() {
        let ok = state(&Verdict::Intact {
            rows: 3,
            heads: vec![(3, [0xab; 32])],
        });
        assert!(ok.ok);
        assert_eq!(ok.message, "ok (3 rows)");
        assert_eq!(ok.heads, [format!("3:{}", "ab".repeat(32))]);
        let empty = state(&Verdict::Intact {
            rows: 0,
            heads: Vec::new(),
        });
        assert!(empty.ok && empty.heads.is_empty());
        let bad = state(&Verdict::Broken {
            row: 7,
            problem: Problem::Mismatch,
        });
        assert!(!bad.ok);
        assert_eq!(bad.bad_row, Some(7));
        assert!(bad.message.starts_with("bad row 7: "), "{}", bad.message);
    }
}
