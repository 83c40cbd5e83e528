//! Value fingerprints on the client: the project's fingerprint key kept on this machine,
//! the fingerprints a push sends, the check a pull makes of the server's, and the
//! comparisons `diff`, `status`, `log` and the hooks show without decrypting anything.
//!
//! The key travels inside every envelope with its generation (see
//! `envsync_common::envelope`): 0 for a project's first key, one more than the rotating
//! clone's with each `rotate`. This clone keeps one, sealed to the machine-local key (no
//! scrypt to reach it), in `.git/envsync/fingerprint-key.age`. A key read from a verified
//! version replaces the one kept when it is of a newer generation, whatever the branch (a
//! teammate rotated); of the same generation, only when read from the default branch (two
//! clones that each made a key, the first or a rotation's, settle on the default
//! branch's); of an older generation, never (an old version read again cannot bring back
//! a key a rotation replaced).

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

/// The project's fingerprint key with its generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub key: FingerprintKey,
    pub generation: u64,
}

/// The project's fingerprint key as this clone keeps it; `None` when it has none, or
/// fingerprints are off for the project. Any problem reading it means "none".
pub fn local_key(ctx: &Context) -> Option<FingerprintKey> {
    kept(ctx).map(|k| k.key)
}

/// [`local_key`], with the key's generation.
pub fn kept(ctx: &Context) -> Option<Kept> {
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
    Some(Kept {
        key: opened.fingerprint_key?,
        generation: opened.fingerprint_generation,
    })
}

/// Keeps `read`, the key of a verified version of `branch`, when the module's rule says
/// so. An optimisation: failing to keep it fails nothing.
pub fn remember(ctx: &Context, read: &Kept, branch: &str) {
    if !ctx.config.fingerprints {
        return;
    }
    let from_default = ctx.config.default_branch.as_deref() == Some(branch);
    if replaces(kept(ctx).as_ref(), read, from_default) {
        let _ = keep(ctx, read);
    }
}

/// Whether a key read from a verified version replaces the one kept (the module's rule).
fn replaces(kept: Option<&Kept>, read: &Kept, from_default: bool) -> bool {
    match kept {
        None => true,
        Some(kept) if kept == read => false,
        Some(kept) => {
            read.generation > kept.generation
                || (read.generation == kept.generation && from_default)
        }
    }
}

fn keep(ctx: &Context, kept: &Kept) -> Result<()> {
    let identity = crypto::local_identity()?;
    let sealed = envelope::seal_with(
        &Binding::new(&ctx.config.project, KEY_BRANCH, 1),
        b"",
        &Seal::Recipients(&[identity.to_public()]),
        &Meta {
            signer: None,
            fingerprint_key: Some(&kept.key),
            fingerprint_generation: kept.generation,
        },
    )
    .map_err(|e| CliError::refused(format!("cannot keep the fingerprint key: {e}")))?;
    fsutil::private_dir(ctx.state.dir())?;
    fsutil::write_state(&key_path(ctx), sealed.as_bytes())?;
    Ok(())
}

/// A new key, kept as this clone's: a project's first push makes generation 0, `rotate`
/// one more than the key this clone keeps (so that every clone that reads a rotated
/// version takes it).
pub fn fresh(ctx: &Context, rotation: bool) -> Result<Kept> {
    let generation = if rotation {
        kept(ctx)
            .map_or(0, |old| old.generation)
            .checked_add(1)
            .ok_or_else(|| {
                CliError::refused(
                    "cannot make a new fingerprint key: the key's generation is at its limit",
                )
            })?
    } else {
        0
    };
    let key = FingerprintKey::generate()
        .map_err(|e| CliError::refused(format!("cannot make a fingerprint key: {e}")))?;
    let kept = Kept { key, generation };
    keep(ctx, &kept)?;
    Ok(kept)
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

    #[test]
    fn a_newer_generation_replaces_the_key_from_any_branch_an_older_never() {
        let at = |generation| Kept {
            key: FingerprintKey::generate().unwrap(),
            generation,
        };
        let kept = at(1);
        for from_default in [false, true] {
            assert!(replaces(None, &at(0), from_default));
            assert!(replaces(Some(&kept), &at(2), from_default));
            assert!(!replaces(Some(&kept), &at(0), from_default));
            assert!(!replaces(Some(&kept), &kept, from_default));
        }
        // The same generation: the default branch's key settles it.
        assert!(replaces(Some(&kept), &at(1), true));
        assert!(!replaces(Some(&kept), &at(1), false));
    }
}
