//! The writer task: group commit of every queued write in one transaction, under the locks
//! of the audit chains it appends to, in a fixed number of round trips whatever the
//! batch's size.
//!
//! A batch is: `BEGIN`; the locks (`pg_advisory_xact_lock` on each chain the batch touches,
//! one per project and one for the server's events, in key order so that two servers never
//! wait for each other in a cycle; and the shared side of a lock that only `copy`'s import
//! takes exclusively); every read the batch needs, pipelined (each chain's last row, ids
//! from the `audit_ids` sequence, each push's latest version, each pull's version, each
//! revoked token); then, in Rust, each request's outcome — compare-and-swap, audit rows
//! chained one after the other on their chains — then every write, pipelined; `COMMIT`.
//! Only after the commit are the callers answered. A request that fails on its own (a
//! stored value that does not parse) writes nothing and gets its error; when the database
//! refuses a statement the whole transaction is rolled back and each request of the batch
//! is run again on its own, so one bad request never spoils its neighbours.

use super::{signed, unsigned};
use crate::store::chain::{GENESIS, Hash, OLD_HEAD, Row, StoredRow, stored_hash};
use crate::store::events::{conflict_event, mint_event, now, pull_event, push_event, revoke_event};
use crate::store::rows::PulledRow;
use crate::store::{Event, Import, NewPush, PullRequest, StoreError, StoredVersion};
use deadpool_postgres::Pool;
use envsync_common::api::{EnvResponse, TokenInfo};
use futures_util::future::try_join_all;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

/// The advisory lock every write transaction holds shared, and an import exclusively.
const IMPORT_LOCK: i64 = 0x656e_7673_796e_6300;
/// The class of the chains' advisory locks, keyed by `hashtext(project)` ('' for the
/// server's chain; a project id is never empty). Two projects whose names hash alike share
/// a lock: they wait for each other, nothing worse.
const CHAIN_LOCKS: i32 = 0x656e_7631;
/// Most requests committed together.
const MAX_BATCH: usize = 256;

/// One write request.
pub(super) enum Op {
    Push(NewPush),
    Pull(PullRequest),
    Record(Event),
    Mint(TokenInfo, String),
    Revoke(String, String),
    Import(Import),
}

/// What a request gives back.
pub(super) enum Done {
    Version(u64),
    Env(EnvResponse),
    Unit,
}

pub(super) struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// What the writer has done so far: how well group commit is working.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed (or rolled back).
    pub batches: AtomicU64,
    /// Requests run inside them.
    pub requests: AtomicU64,
    /// Microseconds spent waiting for the chain's lock (held by another server's batch).
    pub lock_wait_micros: AtomicU64,
}

/// A batch that failed as a whole; `retry` when the database rolled it back after
/// refusing a statement (nothing was committed, so each request may run again alone).
struct Failure {
    error: StoreError,
    retry: bool,
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure {
            retry: e.as_db_error().is_some(),
            error: e.into(),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(e: deadpool_postgres::PoolError) -> Failure {
        Failure {
            retry: false,
            error: e.into(),
        }
    }
}

type Answer = Result<Done, StoreError>;

pub(super) async fn write_loop(
    pool: Pool,
    mut queue: mpsc::Receiver<Job>,
    stats: Arc<WriterStats>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = queue.recv().await {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let ops: Vec<&Op> = batch.iter().map(|j| &j.op).collect();
        let outcome = run(&pool, &ops, &stats).await;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        match outcome {
            Ok(answers) => {
                for (job, answer) in batch.drain(..).zip(answers) {
                    // The caller may have gone away (client disconnected).
                    let _ = job.reply.send(answer);
                }
            }
            Err(failure) if failure.retry && batch.len() > 1 => {
                tracing::debug!(error = %failure.error, requests = batch.len(), "write batch refused; running its requests one by one");
                for job in batch.drain(..) {
                    let answer = match run(&pool, &[&job.op], &stats).await {
                        Ok(mut answers) => answers.pop().unwrap_or_else(|| Err(lost())),
                        Err(failure) => Err(failure.error),
                    };
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    let _ = job.reply.send(answer);
                }
            }
            Err(failure) => {
                tracing::error!(error = %failure.error, requests = batch.len(), "write batch rolled back");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(failure.error.clone()));
                }
            }
        }
    }
    tracing::debug!("database writer stopped");
}

fn lost() -> StoreError {
    StoreError::Other("request was not run".into())
}

/// What the first, pipelined round trip read for one request.
enum Read {
    Nothing,
    Latest(Option<(i64, String)>),
    Pulled(Option<tokio_postgres::Row>),
    Known(Option<bool>),
}

/// The statements a batch may run, prepared once per connection.
struct Statements {
    lock_chains: Statement,
    tail_project: Statement,
    tail_server: Statement,
    old_head: Statement,
    ids: Statement,
    latest: Statement,
    pull_latest: Statement,
    pull_version: Statement,
    known: Statement,
    insert_version: Statement,
    insert_audit: Statement,
    insert_token: Statement,
    revoke: Statement,
}

/// An audit row to write: its id, time, event and chain hash.
struct AuditRow {
    id: i64,
    seq: i64,
    at: String,
    event: Event,
    // The event's typed fields in their stored form, for the statement's parameters.
    action: &'static str,
    outcome: &'static str,
    version: Option<i64>,
    hash: Vec<u8>,
}

/// Everything a batch writes, decided before any of it is sent.
struct Plan {
    at: String,
    /// Ids for the batch's audit rows, from the sequence.
    ids: std::vec::IntoIter<i64>,
    /// Each chain the batch appends to: its last position and hash.
    chains: HashMap<Option<String>, (i64, Hash)>,
    versions: Vec<StoredVersion>,
    audit: Vec<AuditRow>,
    /// A token, its revocation time, its role and its project ids as stored.
    tokens: Vec<(TokenInfo, Option<String>, &'static str, String)>,
    revokes: Vec<(String, String)>,
    imported: Vec<StoredRow>,
}

impl Plan {
    fn token(&mut self, token: TokenInfo, revoked_at: Option<String>) -> Result<(), StoreError> {
        let projects = serde_json::to_string(&token.project_ids)?;
        let role = token.role.as_str();
        self.tokens.push((token, revoked_at, role, projects));
        Ok(())
    }

    /// Appends an audit row to its project's chain.
    fn event(&mut self, event: Event) -> Result<(), StoreError> {
        let id = self
            .ids
            .next()
            .ok_or_else(|| StoreError::Other("no audit id left for the batch".into()))?;
        let (last, prev) = self
            .chains
            .get(&event.project)
            .copied()
            .ok_or_else(|| StoreError::Other("an audit row for a chain not locked".into()))?;
        let seq = last + 1;
        let hash = Row::of(id, seq, &self.at, &event)?.hash(&prev);
        self.chains.insert(event.project.clone(), (seq, hash));
        self.audit.push(AuditRow {
            id,
            seq,
            at: self.at.clone(),
            action: event.action.as_str(),
            outcome: event.outcome.as_str(),
            version: event.version.map(signed),
            event,
            hash: hash.to_vec(),
        });
        Ok(())
    }
}

async fn run(pool: &Pool, ops: &[&Op], stats: &WriterStats) -> Result<Vec<Answer>, Failure> {
    let mut client = pool.get().await?;
    let (lock_chains, tail_project, tail_server, old_head, ids) = tokio::try_join!(
        client.prepare_cached(
            "SELECT COUNT(pg_advisory_xact_lock($1::INT4, key)) FROM
                 (SELECT DISTINCT hashtext(p) AS key FROM unnest($2::TEXT[]) AS p ORDER BY key) k"
        ),
        client.prepare_cached(
            "SELECT id, seq, hash FROM audit WHERE project = $1 AND seq IS NOT NULL
             ORDER BY id DESC LIMIT 1"
        ),
        client.prepare_cached(
            "SELECT id, seq, hash FROM audit WHERE project IS NULL AND seq IS NOT NULL
             ORDER BY id DESC LIMIT 1"
        ),
        client.prepare_cached(OLD_HEAD),
        client.prepare_cached("SELECT nextval('audit_ids') FROM generate_series(1, $1::INT4)"),
    )?;
    let (insert_version, insert_audit, insert_token, revoke) = tokio::try_join!(
        client.prepare_cached(
            "INSERT INTO versions (project, branch, version, ciphertext, keys, key_count,
                 pushed_by, pushed_at, fingerprints)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ),
        client.prepare_cached(
            "INSERT INTO audit (id, seq, at, actor, action, project, branch, version, outcome,
                 detail, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        client.prepare_cached(
            "INSERT INTO tokens (jti, email, role, project_ids, issued_at, expires_at,
                 revoked_at, revoked_serial)
             VALUES ($1, $2, $3, $4, $5, $6, $7::TEXT,
                     CASE WHEN $7::TEXT IS NULL THEN NULL ELSE nextval('envsync_revocations') END)"
        ),
        client.prepare_cached(
            "UPDATE tokens SET revoked_at = $2, revoked_serial = nextval('envsync_revocations')
             WHERE jti = $1 AND revoked_at IS NULL"
        ),
    )?;
    let (latest, pull_latest, pull_version, known) = tokio::try_join!(
        client.prepare_cached(
            "SELECT version, keys FROM versions WHERE project = $1 AND branch = $2
             ORDER BY version DESC LIMIT 1"
        ),
        client.prepare_cached(
            "SELECT version, ciphertext, keys, pushed_by, pushed_at, fingerprints FROM versions
             WHERE project = $1 AND branch = $2 ORDER BY version DESC LIMIT 1"
        ),
        client.prepare_cached(
            "SELECT version, ciphertext, keys, pushed_by, pushed_at, fingerprints FROM versions
             WHERE project = $1 AND branch = $2 AND version = $3"
        ),
        client.prepare_cached("SELECT revoked_at IS NOT NULL FROM tokens WHERE jti = $1"),
    )?;
    let st = Statements {
        lock_chains,
        tail_project,
        tail_server,
        old_head,
        ids,
        latest,
        pull_latest,
        pull_version,
        known,
        insert_version,
        insert_audit,
        insert_token,
        revoke,
    };
    let tx = client.transaction().await?;
    // The chains this batch appends to: one audit row per request, in its project's chain
    // (`None`: the server's). An import appends rows as they are and locks out the others.
    let importing = ops.iter().any(|op| matches!(op, Op::Import(_)));
    let mut chains: Vec<Option<String>> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Push(p) => Some(Some(p.project.clone())),
            Op::Pull(p) => Some(Some(p.project.clone())),
            Op::Record(e) => Some(e.project.clone()),
            Op::Mint(..) | Op::Revoke(..) => Some(None),
            Op::Import(_) => None,
        })
        .collect();
    chains.sort();
    chains.dedup();
    let keys: Vec<&str> = chains.iter().map(|c| c.as_deref().unwrap_or("")).collect();
    // A batch of pulls only changes no state: its audit rows need not hold the answer for
    // a disk flush (the WAL writer flushes them right after).
    let pulls_only = ops.iter().all(|op| matches!(op, Op::Pull(_)));
    let prefix = match (importing, pulls_only) {
        (true, _) => format!("SELECT pg_advisory_xact_lock({IMPORT_LOCK})"),
        (false, true) => format!(
            "SET LOCAL synchronous_commit TO off; SELECT pg_advisory_xact_lock_shared({IMPORT_LOCK})"
        ),
        (false, false) => format!("SELECT pg_advisory_xact_lock_shared({IMPORT_LOCK})"),
    };
    let waited = std::time::Instant::now();
    let lock_params: [&(dyn ToSql + Sync); 2] = [&CHAIN_LOCKS, &keys];
    tokio::try_join!(
        tx.batch_execute(&prefix),
        tx.query_one(&st.lock_chains, &lock_params),
    )?;
    stats.lock_wait_micros.fetch_add(
        u64::try_from(waited.elapsed().as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );

    // Round trip 1: every read, pipelined (each statement runs after the locks are held).
    let events = ops.iter().filter(|op| !matches!(op, Op::Import(_))).count();
    let reads = ops.iter().map(|op| {
        let (tx, st) = (&tx, &st);
        async move {
            Ok::<_, tokio_postgres::Error>(match op {
                Op::Push(p) => Read::Latest(
                    match tx.query_opt(&st.latest, &[&p.project, &p.branch]).await? {
                        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
                        None => None,
                    },
                ),
                Op::Pull(p) => Read::Pulled(match p.version {
                    Some(v) => {
                        tx.query_opt(&st.pull_version, &[&p.project, &p.branch, &signed(v)])
                            .await?
                    }
                    None => {
                        tx.query_opt(&st.pull_latest, &[&p.project, &p.branch])
                            .await?
                    }
                }),
                Op::Revoke(jti, _) => Read::Known(match tx.query_opt(&st.known, &[jti]).await? {
                    Some(r) => Some(r.try_get(0)?),
                    None => None,
                }),
                _ => Read::Nothing,
            })
        }
    });
    let tails = chains.iter().map(|chain| {
        let (tx, st) = (&tx, &st);
        async move {
            match chain {
                Some(project) => tx.query_opt(&st.tail_project, &[project]).await,
                None => tx.query_opt(&st.tail_server, &[]).await,
            }
        }
    });
    let count = i32::try_from(events).unwrap_or(i32::MAX);
    let id_params: [&(dyn ToSql + Sync); 1] = [&count];
    let (old, ids, tails, reads) = tokio::try_join!(
        tx.query_opt(&st.old_head, &[]),
        tx.query(&st.ids, &id_params),
        try_join_all(tails),
        try_join_all(reads),
    )?;
    let stored = |id: i64, hash: Option<&[u8]>| {
        stored_hash(id, hash).map_err(|error| Failure {
            error,
            retry: false,
        })
    };
    let old_head = match old {
        None => GENESIS,
        Some(row) => stored(row.try_get(0)?, row.try_get(1)?)?,
    };
    let mut heads = HashMap::new();
    for (chain, tail) in chains.iter().zip(tails) {
        let head = match tail {
            None => (0, old_head),
            Some(row) => (row.try_get(1)?, stored(row.try_get(0)?, row.try_get(2)?)?),
        };
        heads.insert(chain.clone(), head);
    }
    let ids = ids
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<i64>, _>>()?;

    // The outcome of each request, and what the batch writes.
    let mut plan = Plan {
        at: now(),
        ids: ids.into_iter(),
        chains: heads,
        versions: Vec::new(),
        audit: Vec::new(),
        tokens: Vec::new(),
        revokes: Vec::new(),
        imported: Vec::new(),
    };
    let mut answers: Vec<Option<Answer>> = ops.iter().map(|_| None).collect();
    // Pulls first: they read what was there before this batch's pushes, so their audit
    // rows come before the pushes' rows.
    for (i, (op, read)) in ops.iter().zip(&reads).enumerate() {
        if let (Op::Pull(pull), Read::Pulled(row)) = (op, read) {
            answers[i] = Some(plan_pull(&mut plan, pull, row.as_ref()));
        }
    }
    let mut latest: HashMap<(&str, &str), (u64, Vec<String>)> = HashMap::new();
    for (i, (op, read)) in ops.iter().zip(&reads).enumerate() {
        let answer = match (op, read) {
            (Op::Pull(_), _) => continue,
            (Op::Push(push), Read::Latest(row)) => plan_push(&mut plan, &mut latest, push, row),
            (Op::Record(event), _) => plan.event(event.clone()).map(|()| Done::Unit),
            (Op::Mint(token, actor), _) => plan
                .token(token.clone(), None)
                .and_then(|()| plan.event(mint_event(token, actor.clone())))
                .map(|()| Done::Unit),
            (Op::Revoke(jti, actor), Read::Known(known)) => {
                if *known == Some(false) && !plan.revokes.iter().any(|(j, _)| j == jti) {
                    plan.revokes.push((jti.clone(), plan.at.clone()));
                }
                plan.event(revoke_event(jti, actor.clone(), known.is_some()))
                    .and_then(|()| known.map(|_| Done::Unit).ok_or(StoreError::NotFound))
            }
            (Op::Import(rows), _) => {
                match rows {
                    Import::Versions(v) => plan.versions.extend(v.iter().cloned()),
                    Import::Audit(a) => plan.imported.extend(a.iter().cloned()),
                    Import::Tokens(t) => {
                        for t in t {
                            if let Err(e) = plan.token(t.info.clone(), t.revoked_at.clone()) {
                                answers[i] = Some(Err(e));
                                continue;
                            }
                        }
                    }
                }
                answers[i].take().unwrap_or(Ok(Done::Unit))
            }
            _ => Err(StoreError::Other("a read is missing for a write".into())),
        };
        answers[i] = Some(answer);
    }

    // Round trip 2: every write, pipelined.
    let mut writes = Vec::new();
    for v in &plan.versions {
        let params: [&(dyn ToSql + Sync); 9] = [
            &v.project,
            &v.branch,
            &v.version,
            &v.ciphertext,
            &v.keys,
            &v.key_count,
            &v.pushed_by,
            &v.pushed_at,
            &v.fingerprints,
        ];
        writes.push(execute(&tx, &st.insert_version, params.to_vec()));
    }
    for a in &plan.audit {
        let params: [&(dyn ToSql + Sync); 11] = [
            &a.id,
            &a.seq,
            &a.at,
            &a.event.actor,
            &a.action,
            &a.event.project,
            &a.event.branch,
            &a.version,
            &a.outcome,
            &a.event.detail,
            &a.hash,
        ];
        writes.push(execute(&tx, &st.insert_audit, params.to_vec()));
    }
    for a in &plan.imported {
        let params: [&(dyn ToSql + Sync); 11] = [
            &a.id, &a.seq, &a.at, &a.actor, &a.action, &a.project, &a.branch, &a.version,
            &a.outcome, &a.detail, &a.hash,
        ];
        writes.push(execute(&tx, &st.insert_audit, params.to_vec()));
    }
    for (t, revoked_at, role, projects) in &plan.tokens {
        let params: [&(dyn ToSql + Sync); 7] = [
            &t.jti,
            &t.email,
            role,
            projects,
            &t.issued_at,
            &t.expires_at,
            revoked_at,
        ];
        writes.push(execute(&tx, &st.insert_token, params.to_vec()));
    }
    for (jti, at) in &plan.revokes {
        writes.push(execute(&tx, &st.revoke, vec![jti, at]));
    }
    try_join_all(writes).await?;
    if importing {
        // The sequence goes on after the imported ids.
        tx.batch_execute(
            "SELECT setval('audit_ids', COALESCE((SELECT MAX(id) FROM audit), 0) + 1, false)",
        )
        .await?;
    }
    tx.commit().await?;
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(lost())))
        .collect())
}

async fn execute<'a>(
    tx: &'a deadpool_postgres::Transaction<'a>,
    stmt: &'a Statement,
    params: Vec<&'a (dyn ToSql + Sync)>,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(stmt, &params).await
}

fn plan_pull(plan: &mut Plan, pull: &PullRequest, row: Option<&tokio_postgres::Row>) -> Answer {
    let Some(row) = row else {
        plan.event(pull_event(pull, None))?;
        return Err(StoreError::NotFound);
    };
    // Everything that can fail comes before the one write, the audit row.
    let read = |row: &tokio_postgres::Row| {
        Ok::<_, tokio_postgres::Error>(PulledRow {
            version: unsigned(row.try_get(0)?),
            ciphertext: row.try_get(1)?,
            keys: row.try_get(2)?,
            pushed_by: row.try_get(3)?,
            pushed_at: row.try_get(4)?,
            fingerprints: row.try_get(5)?,
        })
    };
    let env = read(row)?.parse()?;
    plan.event(pull_event(pull, Some(env.version)))?;
    Ok(Done::Env(env))
}

fn plan_push<'a>(
    plan: &mut Plan,
    latest: &mut HashMap<(&'a str, &'a str), (u64, Vec<String>)>,
    push: &'a NewPush,
    row: &Option<(i64, String)>,
) -> Answer {
    let slot = (push.project.as_str(), push.branch.as_str());
    let (current, previous) = match latest.get(&slot) {
        Some((v, keys)) => (Some(*v), keys.clone()),
        None => match row {
            Some((v, keys)) => (Some(unsigned(*v)), serde_json::from_str(keys)?),
            None => (None, Vec::new()),
        },
    };
    if current != push.base_version {
        plan.event(conflict_event(push, current))?;
        return Err(StoreError::Conflict { current });
    }
    let version = current.map_or(1, |v| v + 1);
    let fingerprints = push.stored_fingerprints()?;
    let event = push_event(&previous, push, version, fingerprints.as_deref());
    plan.versions.push(StoredVersion {
        id: 0,
        project: push.project.clone(),
        branch: push.branch.clone(),
        version: signed(version),
        ciphertext: push.ciphertext.clone(),
        keys: serde_json::to_string(&push.keys)?,
        key_count: push.keys.len() as i64,
        pushed_by: push.actor.clone(),
        pushed_at: plan.at.clone(),
        fingerprints,
    });
    plan.event(event)?;
    latest.insert(slot, (version, push.keys.clone()));
    Ok(Done::Version(version))
}
