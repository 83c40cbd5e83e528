//! The audit events the stores write, built the same way on every backend so that the
//! same request gives the same row (and so the same chain) on SQLite and PostgreSQL.

use super::{Action, Event, NewPush, Outcome, PullRequest};
use crate::store::chain;
use envsync_common::api::TokenInfo;
use std::collections::HashSet;

/// A push refused because `current` is the latest version, not its base.
pub fn conflict_event(push: &NewPush, current: Option<u64>) -> Event {
    Event {
        actor: push.actor.clone(),
        action: Action::Push,
        project: Some(push.project.clone()),
        branch: Some(push.branch.clone()),
        version: current,
        outcome: Outcome::Conflict,
        detail: Some(
            serde_json::json!({ "base_version": push.base_version, "jti": push.jti }).to_string(),
        ),
    }
}

/// An accepted push that became `version`, after a version with the key names `previous`;
/// `fingerprints` is the text stored in the version's `fingerprints` column.
pub fn push_event(
    previous: &[String],
    push: &NewPush,
    version: u64,
    fingerprints: Option<&str>,
) -> Event {
    Event {
        actor: push.actor.clone(),
        action: Action::Push,
        project: Some(push.project.clone()),
        branch: Some(push.branch.clone()),
        version: Some(version),
        outcome: Outcome::Ok,
        detail: Some(push_detail(previous, push, fingerprints)),
    }
}

/// A pull that served `version`, or found nothing (`None`).
pub fn pull_event(pull: &PullRequest, served: Option<u64>) -> Event {
    Event {
        actor: pull.actor.clone(),
        action: Action::Pull,
        project: Some(pull.project.clone()),
        branch: Some(pull.branch.clone()),
        version: served.or(pull.version),
        outcome: if served.is_some() {
            Outcome::Ok
        } else {
            Outcome::NotFound
        },
        detail: Some(serde_json::json!({ "jti": pull.jti }).to_string()),
    }
}

/// A minted token (never the token itself).
pub fn mint_event(token: &TokenInfo, actor: String) -> Event {
    let detail = serde_json::json!({
        "jti": token.jti,
        "email": token.email,
        "role": token.role,
        "project_ids": token.project_ids,
        "expires_at": token.expires_at,
    });
    Event {
        detail: Some(detail.to_string()),
        ..Event::new(actor, Action::TokenMint, Outcome::Ok)
    }
}

/// A revocation of `jti`, which was known (or not).
pub fn revoke_event(jti: &str, actor: String, known: bool) -> Event {
    let outcome = if known {
        Outcome::Ok
    } else {
        Outcome::NotFound
    };
    Event {
        detail: Some(serde_json::json!({ "jti": jti }).to_string()),
        ..Event::new(actor, Action::TokenRevoke, outcome)
    }
}

/// The audit detail of a push: which key names appeared and disappeared (names only), the
/// SHA-256 of the stored ciphertext, which ties the audit chain to the version's bytes
/// (`audit verify` checks it against every version), and the pushing token's `jti`. A push
/// with value fingerprints also records the SHA-256 of their stored text, so that a
/// database edit to them is found the same way (a push without has no such field, as no
/// push before them had: their rows and hashes stay as they were).
fn push_detail(previous: &[String], push: &NewPush, fingerprints: Option<&str>) -> String {
    let keys = &push.keys;
    let before: HashSet<&str> = previous.iter().map(String::as_str).collect();
    let after: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let added: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| !before.contains(k))
        .collect();
    let removed: Vec<&str> = previous
        .iter()
        .map(String::as_str)
        .filter(|k| !after.contains(k))
        .collect();
    let digest = chain::sha256_hex(&push.ciphertext);
    let mut detail = serde_json::json!({
        "added": added,
        "removed": removed,
        "ciphertext_sha256": digest,
        "jti": push.jti,
    });
    if let Some(text) = fingerprints {
        detail["fingerprints_sha256"] = chain::sha256_hex(text).into();
    }
    detail.to_string()
}

/// Now, as RFC 3339 UTC with millisecond precision.
pub fn now() -> String {
    crate::clock::rfc3339(time::OffsetDateTime::now_utc())
}
