//! Moving a whole store to another backend (`envsync-server copy --from … --to …`):
//! tokens (revocations included), versions in the order they were stored, and the audit
//! log row for row with its ids, times and chain hashes, so the chain is the same chain
//! and `audit verify` gives the same head on both sides.
//!
//! The source is read in the order tokens, versions, audit: a push that lands on a running
//! source meanwhile has its audit row read after its version, so nothing copied lacks its
//! accepted-push row. Stop the servers for a copy that is a cut-over: what is written
//! after the audit pages are read is not copied.

use super::{Counts, Import, Store, StoreError};

/// Rows per read and per write transaction.
const PAGE: u32 = 500;

/// Where a copy has got to, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub what: &'static str,
    pub done: u64,
    pub total: u64,
}

/// Copies everything `from` holds into `to`, which must hold nothing (see
/// [`super::Database::erase`]). Calls `report` after each page. Returns what was copied.
pub async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    mut report: impl FnMut(Progress),
) -> Result<Counts, StoreError> {
    if to.holds_data().await? {
        return Err(StoreError::Other("the target already holds data".into()));
    }
    let total = from.counts().await?;
    let mut copied = Counts::default();

    let tokens = from.export_tokens().await?;
    copied.jtis = tokens.len() as u64;
    to.import(Import::Tokens(tokens)).await?;
    report(Progress {
        what: "tokens",
        done: copied.jtis,
        total: total.jtis,
    });

    let mut after = 0;
    loop {
        let page = from.export_versions(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        copied.versions += page.len() as u64;
        to.import(Import::Versions(page)).await?;
        report(Progress {
            what: "versions",
            done: copied.versions,
            total: total.versions.max(copied.versions),
        });
    }

    let mut after = 0;
    loop {
        let page = from.export_audit(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        copied.audit += page.len() as u64;
        to.import(Import::Audit(page)).await?;
        report(Progress {
            what: "audit rows",
            done: copied.audit,
            total: total.audit.max(copied.audit),
        });
    }
    Ok(copied)
}
