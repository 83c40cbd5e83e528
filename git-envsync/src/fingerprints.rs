//! Value fingerprints on the client: the project's fingerprint key kept on this machine,
//! the fingerprints a push sends, the check a pull makes of the server's, and the
//! comparisons `diff`, `status`, `log` and the hooks show without decrypting anything.
//!
//! The key travels inside every envelope (see `envsync_common::envelope`); this clone
//! keeps the one it last read, sealed to the machine-local key (no scrypt to reach it), in
//! `.git/envsync/fingerprint-key.age`. A key read from the default branch replaces the one
//! kept; one read from another branch is kept only when there is none, so two clones that
//! each started a key settle on the default branch's.

use crate::context::Context;
use crate::crypto;
use crate::error::{CliError, Result};
use crate::fsutil;
use envsync_common::api::{FINGERPRINT_KEY_ID, Fingerprints};
use envsync_common::envelope::{self, Binding, Meta, Open, Seal};
use envsync_common::envfile;
use envsync_common::fingerprint::FingerprintKey;
use std::path::PathBuf;

/// The binding of the sealed key file: a branch name git refuses, so no version's.
const KEY_BRANCH: &str = ".fingerprint-key";

fn key_path(ctx: &Context) -> PathBuf {
    ctx.state.dir().join("fingerprint-key.age")
}

/// The project's fingerprint key as this clone last read it; `None` when it has none, or
/// fingerprints are off for the project. Any problem reading it means "none".
pub fn local_key(ctx: &Context) -> Option<FingerprintKey> {
    if !ctx.config.fingerprints {
        return None;
    }
    let armored = fsutil::read_optional(&key_path(ctx)).ok()??;
    let armored = String::from_utf8(armored).ok()?;
    let identity = crypto::local_identity().ok()?;
    let opened =
        envelope::open(&armored, &Open::Identities(std::slice::from_ref(&identity))).ok()?;
    opened
        .binding
        .verify(&Binding::new(&ctx.config.project, KEY_BRANCH, 1))
        .ok()?;
    opened.fingerprint_key
}

/// Keeps `key`, read from a verified version of `branch` (see the module's rule). An
/// optimisation: failing to keep it fails nothing.
pub fn remember(ctx: &Context, key: &FingerprintKey, branch: &str) {
    if !ctx.config.fingerprints {
        return;
    }
    let kept = local_key(ctx);
    if kept.as_ref() == Some(key) {
        return;
    }
    let from_default = ctx.config.default_branch.as_deref() == Some(branch);
    if kept.is_some() && !from_default {
        return;
    }
    let _ = keep(ctx, key);
}

fn keep(ctx: &Context, key: &FingerprintKey) -> Result<()> {
    let identity = crypto::local_identity()?;
    let sealed = envelope::seal_with(
        &Binding::new(&ctx.config.project, KEY_BRANCH, 1),
        b"",
        &Seal::Recipients(&[identity.to_public()]),
        &Meta {
            signer: None,
            fingerprint_key: Some(key),
        },
    )
    .map_err(|e| CliError::refused(format!("cannot keep the fingerprint key: {e}")))?;
    fsutil::private_dir(ctx.state.dir())?;
    fsutil::write_state(&key_path(ctx), sealed.as_bytes())?;
    Ok(())
}

/// A new key, kept as this clone's (what `rotate` and a project's first push use).
pub fn fresh(ctx: &Context) -> Result<FingerprintKey> {
    let key = FingerprintKey::generate()
        .map_err(|e| CliError::refused(format!("cannot make a fingerprint key: {e}")))?;
    keep(ctx, &key)?;
    Ok(key)
}

/// The fingerprints of an env file's values (the last of duplicates counts), with the
/// key's id. An unparsable file has none.
pub fn of(project: &str, key: &FingerprintKey, content: &[u8]) -> Option<Fingerprints> {
    let entries = envfile::entries(content).ok()?;
    let mut out = Fingerprints::new();
    out.insert(FINGERPRINT_KEY_ID.to_owned(), key.id());
    for entry in entries {
        out.insert(
            entry.key.clone(),
            key.fingerprint(project, &entry.key, entry.value.expose()),
        );
    }
    Some(out)
}

/// The env file's fingerprints under the key this clone keeps; `None` when it has none.
pub fn of_local(ctx: &Context, content: &[u8]) -> Option<Fingerprints> {
    of(&ctx.config.project, &local_key(ctx)?, content)
}

/// The keys in both sets whose values differ, in `left`'s name order; `None` when the two
/// cannot be compared (either is missing, or they were made with different keys).
pub fn changed(left: Option<&Fingerprints>, right: Option<&Fingerprints>) -> Option<Vec<String>> {
    let (left, right) = (left?, right?);
    let id = left.get(FINGERPRINT_KEY_ID)?;
    if right.get(FINGERPRINT_KEY_ID) != Some(id) {
        return None;
    }
    Some(
        left.iter()
            .filter(|(name, _)| !name.is_empty())
            .filter(|(name, print)| right.get(*name).is_some_and(|other| other != *print))
            .map(|(name, _)| name.clone())
            .collect(),
    )
}

/// A verified read's check of the server's fingerprints: when the version carries a key,
/// they must be the ones its values give (or absent). A server that made them up would
/// otherwise have `diff` and the hooks report changes that are not there, or hide some.
pub fn check_served(
    project: &str,
    key: &FingerprintKey,
    content: &[u8],
    served: Option<&Fingerprints>,
    branch: &str,
    version: u64,
) -> Result<()> {
    let Some(served) = served else {
        return Ok(());
    };
    if of(project, key, content).as_ref() != Some(served) {
        return Err(CliError::refused(format!(
            "integrity check failed: the server's value fingerprints for {branch} version {version} are not the ones its values give"
        ))
        .hint("nothing was written; the server is misbehaving"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_compared_only_under_one_key() {
        let key = FingerprintKey::generate().unwrap();
        let a = of("p", &key, b"A=1\nB=2\nC=3\n").unwrap();
        let b = of("p", &key, b"A=1\nB=20\nD=4\nB=2\n").unwrap();
        // The last of duplicates counts: B is 2 on both sides.
        assert_eq!(changed(Some(&a), Some(&b)), Some(vec![]));
        let c = of("p", &key, b"C=30\nA=1\nB=2\n").unwrap();
        assert_eq!(changed(Some(&a), Some(&c)), Some(vec!["C".to_owned()]));
        let other = FingerprintKey::generate().unwrap();
        let d = of("p", &other, b"A=1\nB=2\nC=3\n").unwrap();
        assert_eq!(changed(Some(&a), Some(&d)), None);
        assert_eq!(changed(Some(&a), None), None);
        assert!(of("p", &key, b"A=\"unterminated\n").is_none());
    }
}
