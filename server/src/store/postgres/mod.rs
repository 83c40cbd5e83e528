//! The PostgreSQL [`Store`]: several stateless servers on one database.
//!
//! **Client.** tokio-postgres with a deadpool pool: a plain async client (reads are async
//! I/O, not blocking work, so they run on the async workers without `spawn_blocking`),
//! statements prepared once per connection, pipelining of independent statements, and no
//! macros or compile-time database checks (sqlx's offline mode would need a database or
//! checked-in query metadata at build time, and brings a far larger dependency tree). No
//! TLS: the database is reached over loopback or a Unix socket (a remote database goes
//! through a TLS tunnel or a local pooler).
//!
//! **Writes** go through writer tasks ([`writer`]), each committing every request queued
//! for it at that moment in one transaction, as the SQLite store's writer thread does.
//! There are [`LANES`] of them per server, and a project's writes always go to the same
//! one ([`lane`], the same on every server): a writer waiting for a project's chain (held
//! by another server's batch) holds up only the projects of its lane. Each write transaction first takes the transaction-level advisory lock of every
//! audit chain it appends to (one per project, one for the server's events; see
//! [`crate::store::chain`]): the row appended next to a chain must see the row before it,
//! whichever server wrote that. Under its project's lock every compare-and-swap reads the
//! branch's latest version as committed by any server, so no two pushes on the same base
//! both win; writes to other projects do not wait. Why per project was measured (see
//! `docs/storage.md`).
//!
//! **Durability.** A request is answered after `COMMIT` returns with
//! `synchronous_commit` on (checked at start: a database where it is `off` is refused),
//! so an acknowledged push survives a crash of the server and of PostgreSQL. As on SQLite,
//! a batch made only of pulls commits with `synchronous_commit = off` for that
//! transaction: its audit rows are flushed by PostgreSQL's WAL writer within milliseconds
//! instead of holding the ciphertext's answer for a disk flush.
//!
//! **Append-only** versions and audit rows: triggers refuse `UPDATE`, `DELETE` and
//! `TRUNCATE` ([`schema`]).
//!
//! **Shared state.** Revocations carry a serial number taken under the server chain's lock, so
//! every server polls for the ones after the last it saw ([`Store::revoked_after`]).

mod schema;
mod writer;

use super::chain::{self, HEADS, Hash, OLD_HEAD, StoredRow, Verdict, Walk, stored_hash};
use super::rows::{
    self, COUNTS, EVENT_COLUMNS, EventsPage, HOLDS_DATA, TOKEN_COLUMNS, TokenRow, VersionRow,
    next_page, versions_page,
};
use super::{
    AuditQuery, BranchesQuery, Counts, Event, Import, NewPush, PullRequest, Store, StoreError,
    StoreFuture, StoredToken, StoredVersion, VersionsQuery,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use envsync_common::api::{
    AuditEvent, AuditPage, BranchInfo, BranchesPage, EnvResponse, KeysResponse, TokenInfo,
    VersionsPage,
};
use futures_util::TryStreamExt;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::config::Host;
use tokio_postgres::{Config, NoTls, Row};
use writer::{Done, Job, Op, WriterStats};

/// Connections one server keeps at most.
const POOL_SIZE: usize = 16;
/// Writer tasks per server.
pub const LANES: usize = 4;
/// Requests waiting for the writer; senders wait (asynchronously) when it is full.
const QUEUE_DEPTH: usize = 4096;
/// How long to wait for a connection, from the pool or from the database.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a PostgreSQL database is: a parsed `postgres://` URL. Its `Debug` and `Display`
/// show the user, hosts, ports and database name, never the password.
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    shown: String,
}

impl PgTarget {
    /// Whether `text` is meant as a PostgreSQL URL.
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// Parses a `postgres://user:password@host:port/db?host=/socket/dir&…` URL. The error
    /// never repeats the URL.
    pub fn parse(text: &str) -> Result<PgTarget, StoreError> {
        let mut config: Config = text
            .parse()
            .map_err(|e| StoreError::Other(format!("the PostgreSQL URL cannot be used: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("envsync-server");
        }
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = config.get_ports().get(i).or(config.get_ports().first());
                let name = match host {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(dir) => dir.display().to_string(),
                };
                match port {
                    Some(port) => format!("{name}:{port}"),
                    None => name,
                }
            })
            .collect();
        let shown = format!(
            "postgres://{}{}/{}",
            config
                .get_user()
                .map_or_else(String::new, |u| format!("{u}@")),
            hosts.join(","),
            config.get_dbname().unwrap_or("")
        );
        Ok(PgTarget { config, shown })
    }

    /// One connection of its own (not pooled), its driver task spawned.
    async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| unreachable(self, &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a PostgreSQL connection ended");
            }
        });
        Ok(client)
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgTarget({})", self.shown)
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PartialEq for PgTarget {
    fn eq(&self, other: &Self) -> bool {
        let same_password = match (self.config.get_password(), other.config.get_password()) {
            (Some(a), Some(b)) => envsync_common::secret::ct_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        self.shown == other.shown && same_password
    }
}

impl Eq for PgTarget {}

fn unreachable(target: &PgTarget, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Other(format!("cannot connect to {target}: {}", describe(e)))
}

/// One line for a driver error: the SQLSTATE and message of a database error, else the
/// error and its cause. Never holds a password (the driver does not repeat its config).
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Class 53 is "insufficient resources" (53100 disk_full), 58030 an I/O error: a
        // write that could not be made durable, as SQLITE_FULL and the IOERRs are there.
        let full = e
            .code()
            .is_some_and(|c| c.code().starts_with("53") || c.code() == "58030");
        if full {
            StoreError::Full(describe(&e))
        } else {
            StoreError::Other(describe(&e))
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => {
                StoreError::Other(format!("cannot connect to PostgreSQL: {}", describe(&e)))
            }
            other => StoreError::Other(format!("no PostgreSQL connection: {other}")),
        }
    }
}

/// Whether the database already holds versions, tokens or audit rows; read-only (creates
/// and migrates nothing).
pub(crate) async fn holds_data(target: &PgTarget) -> Result<bool, StoreError> {
    let client = target.connect().await?;
    let ours: bool = client
        .query_one(
            "SELECT to_regclass('versions') IS NOT NULL AND to_regclass('tokens') IS NOT NULL
                 AND to_regclass('audit') IS NOT NULL",
            &[],
        )
        .await?
        .try_get(0)?;
    if !ours {
        return Ok(false);
    }
    Ok(client.query_one(HOLDS_DATA, &[]).await?.try_get(0)?)
}

/// Drops every envsync table (what `copy --replace` does to its target).
pub(crate) async fn erase(target: &PgTarget) -> Result<(), StoreError> {
    let client = target.connect().await?;
    client.batch_execute(schema::ERASE).await?;
    Ok(())
}

/// Walks the audit chain in one read-only snapshot, creating and migrating nothing.
pub(crate) async fn verify(
    target: &PgTarget,
    anchors: Vec<(u64, Hash)>,
) -> Result<Verdict, StoreError> {
    let mut client = target.connect().await?;
    let schema = schema::applied(&client).await?;
    if schema == 0 {
        return Err(StoreError::Other(format!(
            "{target} holds no envsync database (no schema); start envsync-server on it once"
        )));
    }
    verify_on(&mut client, schema)
        .await
        .and_then(|walk| walk(anchors))
}

/// The walk's two queries, in one repeatable-read snapshot, on a database of schema
/// version `schema`; the verdict is computed by the returned function once the rows are in
/// (so that the client is free again).
async fn verify_on(
    client: &mut tokio_postgres::Client,
    schema: usize,
) -> Result<impl FnOnce(Vec<(u64, Hash)>) -> Result<Verdict, StoreError>, StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let audit = tx
        .query(
            &format!("SELECT {} FROM audit ORDER BY id", chain::COLUMNS),
            &[],
        )
        .await?;
    // Before migration 2 there is no fingerprints column: every version has none.
    let fingerprints = if schema < 2 {
        "NULL::TEXT"
    } else {
        "fingerprints"
    };
    let versions = tx
        .query(
            &format!(
                "SELECT project, branch, version, ciphertext, {fingerprints} FROM versions
                 ORDER BY id"
            ),
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(move |anchors| {
        let mut walk = Walk::new(anchors);
        for row in &audit {
            if !walk.row(&stored_row(row)?) {
                break;
            }
        }
        let (verdict, accounts) = walk.finish();
        if !matches!(verdict, Verdict::Intact { .. }) {
            return Ok(verdict);
        }
        for row in &versions {
            let (project, branch, version, ciphertext, prints): (
                &str,
                &str,
                i64,
                &str,
                Option<&str>,
            ) = (
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            );
            if let Some(bad) = accounts.check(project, branch, version, ciphertext, prints) {
                return Ok(bad);
            }
        }
        Ok(verdict)
    })
}

/// A row selected as [`chain::COLUMNS`].
fn stored_row(r: &Row) -> Result<StoredRow, StoreError> {
    Ok(StoredRow {
        id: r.try_get(0)?,
        seq: r.try_get(1)?,
        at: r.try_get(2)?,
        actor: r.try_get(3)?,
        action: r.try_get(4)?,
        project: r.try_get(5)?,
        branch: r.try_get(6)?,
        version: r.try_get(7)?,
        outcome: r.try_get(8)?,
        detail: r.try_get(9)?,
        hash: r.try_get(10)?,
    })
}

/// A `u64` the API shows, from a `BIGINT`.
fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A `BIGINT` from a `u64` the API took (the handlers refuse numbers past `i64::MAX`).
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One row of `tokens`, selected as [`TOKEN_COLUMNS`].
fn token_row(r: &Row) -> Result<StoredToken, StoreError> {
    TokenRow {
        jti: r.try_get(0)?,
        email: r.try_get(1)?,
        role: r.try_get(2)?,
        project_ids: r.try_get(3)?,
        issued_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
        revoked_at: r.try_get(6)?,
    }
    .parse()
}

/// The PostgreSQL store. Dropping it closes the writer's queue; the writer finishes its
/// batch and stops.
pub struct PgStore {
    pool: Pool,
    writers: Vec<mpsc::Sender<Job>>,
    stats: Arc<WriterStats>,
    target: PgTarget,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects, checks that commits are durable (`fsync` and `synchronous_commit` on),
    /// applies the numbered migrations (one server at a time) and starts the writer.
    pub async fn open(target: &PgTarget) -> Result<PgStore, StoreError> {
        {
            let mut client = target.connect().await?;
            schema::check_durability(&client, target).await?;
            schema::migrate(&mut client).await?;
        }
        let manager = Manager::from_config(
            target.config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Other(format!("cannot build the connection pool: {e}")))?;
        let stats = Arc::new(WriterStats::default());
        let writers = (0..LANES)
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
                tokio::spawn(writer::write_loop(pool.clone(), rx, stats.clone()));
                tx
            })
            .collect();
        Ok(PgStore {
            pool,
            writers,
            stats,
            target: target.clone(),
        })
    }

    /// Counters of the writer task.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    fn write(&self, op: Op) -> StoreFuture<'_, Done> {
        let chain = match &op {
            Op::Push(p) => Some(p.project.as_str()),
            Op::Pull(p) => Some(p.project.as_str()),
            Op::Record(e) => e.project.as_deref(),
            Op::Mint(..) | Op::Revoke(..) | Op::Import(_) => None,
        };
        let writer = &self.writers[lane(chain)];
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            writer
                .send(Job { op, reply })
                .await
                .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Runs one prepared query on a pooled connection.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(client.query(&stmt, params).await?)
    }
}

/// The writer lane of a project's chain (`None`: the server's), the same on every server:
/// FNV-1a of the name (not a per-process random hash).
pub fn lane(project: Option<&str>) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in project.unwrap_or("").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % LANES as u64) as usize
}

fn stopped() -> StoreError {
    StoreError::Other("the database writer has stopped".into())
}

fn unexpected() -> StoreError {
    StoreError::Other("the writer answered another request's kind".into())
}

impl Store for PgStore {
    fn push(&self, push: NewPush) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            match self.write(Op::Push(push)).await? {
                Done::Version(v) => Ok(v),
                _ => Err(unexpected()),
            }
        })
    }

    fn pull(&self, pull: PullRequest) -> StoreFuture<'_, EnvResponse> {
        Box::pin(async move {
            match self.write(Op::Pull(pull)).await? {
                Done::Env(env) => Ok(env),
                _ => Err(unexpected()),
            }
        })
    }

    fn keys(&self, project: String, branch: String) -> StoreFuture<'_, KeysResponse> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT version, keys, fingerprints FROM versions
                     WHERE project = $1 AND branch = $2 ORDER BY version DESC LIMIT 1",
                    &[&project, &branch],
                )
                .await?;
            let row = rows.first().ok_or(StoreError::NotFound)?;
            rows::keys(unsigned(row.try_get(0)?), row.try_get(1)?, row.try_get(2)?)
        })
    }

    fn versions(&self, query: VersionsQuery) -> StoreFuture<'_, VersionsPage> {
        Box::pin(async move {
            // One more row than asked tells whether there is a next page.
            let fetch = i64::from(query.limit) + 1;
            let rows = self
                .query(
                    "SELECT version, keys, pushed_by, pushed_at, fingerprints FROM versions
                     WHERE project = $1 AND branch = $2 AND version < $3
                     ORDER BY version DESC LIMIT $4",
                    &[&query.project, &query.branch, &query.below(), &fetch],
                )
                .await?;
            let rows = rows.iter().map(|r| {
                Ok(VersionRow {
                    version: unsigned(r.try_get(0)?),
                    keys: r.try_get(1)?,
                    pushed_by: r.try_get(2)?,
                    pushed_at: r.try_get(3)?,
                    fingerprints: r.try_get(4)?,
                })
            });
            versions_page(query.limit, rows)
        })
    }

    fn projects(&self, after: Option<String>, limit: u32) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            // A loose index scan over the versions' unique (project, branch, version) index.
            let rows = self
                .query(
                    "WITH RECURSIVE p(name, n) AS (
                         SELECT (SELECT MIN(project) FROM versions WHERE project > $1), 1::bigint
                         UNION ALL
                         SELECT (SELECT MIN(project) FROM versions WHERE project > p.name), n + 1
                         FROM p WHERE p.name IS NOT NULL AND n < $2
                     )
                     SELECT name FROM p WHERE name IS NOT NULL",
                    &[&after.unwrap_or_default(), &i64::from(limit)],
                )
                .await?;
            rows.iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect::<Result<Vec<String>, StoreError>>()
        })
    }

    fn branches(&self, query: BranchesQuery) -> StoreFuture<'_, BranchesPage> {
        Box::pin(async move {
            let fetch = i64::from(query.limit) + 1;
            let after = query.after.unwrap_or_default();
            let rows = self
                .query(
                    "SELECT v.branch, v.version, v.key_count, v.pushed_by, v.pushed_at
                     FROM versions v
                     JOIN (SELECT branch, MAX(version) AS latest FROM versions
                           WHERE project = $1 AND branch > $2
                           GROUP BY branch ORDER BY branch LIMIT $3) l
                       ON v.branch = l.branch AND v.version = l.latest
                     WHERE v.project = $1
                     ORDER BY v.branch",
                    &[&query.project, &after, &fetch],
                )
                .await?;
            let mut branches = rows
                .iter()
                .map(|r| {
                    Ok(BranchInfo {
                        branch: r.try_get(0)?,
                        version: unsigned(r.try_get(1)?),
                        key_count: unsigned(r.try_get(2)?),
                        pushed_by: r.try_get(3)?,
                        pushed_at: r.try_get(4)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let next_after = next_page(&mut branches, query.limit, |b| b.branch.clone());
            Ok(BranchesPage {
                branches,
                next_after,
            })
        })
    }

    fn audit(&self, query: AuditQuery<'_>) -> StoreFuture<'_, AuditPage> {
        let project = query.project.map(str::to_owned);
        let (limit, before) = (query.page_size(), query.below());
        Box::pin(async move {
            // One more row than asked tells whether there is a next page.
            let fetch = i64::from(limit) + 1;
            let (sql, params): (String, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>) =
                match &project {
                    Some(project) => (
                        format!(
                            "SELECT {EVENT_COLUMNS} FROM audit WHERE project = $1 AND id < $2
                             ORDER BY id DESC LIMIT $3"
                        ),
                        vec![project, &before, &fetch],
                    ),
                    None => (
                        format!(
                            "SELECT {EVENT_COLUMNS} FROM audit WHERE id < $1
                             ORDER BY id DESC LIMIT $2"
                        ),
                        vec![&before, &fetch],
                    ),
                };
            // Streamed, so a page that ends at its byte budget holds no more rows than it
            // keeps (plus the one it stopped at).
            let client = self.client().await?;
            let stmt = client.prepare_cached(&sql).await?;
            let rows = client.query_raw(&stmt, params).await?;
            futures_util::pin_mut!(rows);
            let mut page = EventsPage::new(limit);
            while let Some(r) = rows.try_next().await? {
                let event = AuditEvent {
                    id: unsigned(r.try_get(0)?),
                    at: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    project: r.try_get(4)?,
                    branch: r.try_get(5)?,
                    version: r.try_get::<_, Option<i64>>(6)?.map(unsigned),
                    outcome: r.try_get(7)?,
                    detail: r.try_get(8)?,
                };
                if !page.add(event) {
                    break;
                }
            }
            Ok(page.finish(None))
        })
    }

    fn record(&self, event: Event) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.write(Op::Record(event)).await?;
            Ok(())
        })
    }

    fn add_token(&self, token: TokenInfo, actor: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.write(Op::Mint(token, actor)).await?;
            Ok(())
        })
    }

    fn revoke_token(&self, jti: String, actor: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.write(Op::Revoke(jti, actor)).await?;
            Ok(())
        })
    }

    fn tokens(&self) -> StoreFuture<'_, Vec<TokenInfo>> {
        Box::pin(async move {
            let rows = self
                .query(
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY issued_at DESC, jti"),
                    &[],
                )
                .await?;
            rows.iter().map(|r| Ok(token_row(r)?.info)).collect()
        })
    }

    fn token(&self, jti: String) -> StoreFuture<'_, TokenInfo> {
        Box::pin(async move {
            let rows = self
                .query(
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE jti = $1"),
                    &[&jti],
                )
                .await?;
            let row = rows.first().ok_or(StoreError::NotFound)?;
            Ok(token_row(row)?.info)
        })
    }

    fn audit_heads(&self) -> StoreFuture<'_, Vec<(u64, Hash)>> {
        Box::pin(async move {
            let mut rows = self.query(HEADS, &[]).await?;
            if rows.is_empty() {
                rows = self.query(OLD_HEAD, &[]).await?;
            }
            rows.iter()
                .map(|row| {
                    let id: i64 = row.try_get(0)?;
                    Ok((unsigned(id), stored_hash(id, row.try_get(1)?)?))
                })
                .collect()
        })
    }

    fn revoked(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            let rows = self
                .query("SELECT jti FROM tokens WHERE revoked_at IS NOT NULL", &[])
                .await?;
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        })
    }

    fn verify(&self, anchors: Vec<(u64, Hash)>) -> StoreFuture<'_, Verdict> {
        Box::pin(async move {
            let mut client = self.target.connect().await?;
            // An open store has applied every migration.
            verify_on(&mut client, usize::MAX)
                .await
                .and_then(|walk| walk(anchors))
        })
    }

    fn holds_data(&self) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let rows = self.query(HOLDS_DATA, &[]).await?;
            match rows.first() {
                Some(row) => Ok(row.try_get(0)?),
                None => Ok(false),
            }
        })
    }

    fn counts(&self) -> StoreFuture<'_, Counts> {
        Box::pin(async move {
            let rows = self.query(COUNTS, &[]).await?;
            let row = rows.first().ok_or(StoreError::NotFound)?;
            Ok(Counts {
                versions: unsigned(row.try_get(0)?),
                audit: unsigned(row.try_get(1)?),
                jtis: unsigned(row.try_get(2)?),
            })
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn revoked_after(&self, cursor: i64) -> StoreFuture<'_, (Vec<String>, i64)> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT jti, revoked_serial FROM tokens WHERE revoked_serial > $1
                     ORDER BY revoked_serial",
                    &[&cursor],
                )
                .await?;
            let mut next = cursor;
            let mut jtis = Vec::with_capacity(rows.len());
            for r in &rows {
                jtis.push(r.try_get(0)?);
                next = next.max(r.try_get(1)?);
            }
            Ok((jtis, next))
        })
    }

    fn claim_first_start(&self) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let client = self.client().await?;
            let claimed = client
                .execute(
                    "INSERT INTO envsync_meta (key, value)
                     SELECT 'first_start', $1
                     WHERE NOT EXISTS (SELECT 1 FROM tokens)
                       AND NOT EXISTS (SELECT 1 FROM versions)
                     ON CONFLICT (key) DO NOTHING",
                    &[&super::events::now()],
                )
                .await?;
            Ok(claimed == 1)
        })
    }

    fn export_versions(&self, after: i64, limit: u32) -> StoreFuture<'_, Vec<StoredVersion>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT id, project, branch, version, ciphertext, keys, key_count, pushed_by,
                            pushed_at, fingerprints
                     FROM versions WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&after, &i64::from(limit)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(StoredVersion {
                        id: r.try_get(0)?,
                        project: r.try_get(1)?,
                        branch: r.try_get(2)?,
                        version: r.try_get(3)?,
                        ciphertext: r.try_get(4)?,
                        keys: r.try_get(5)?,
                        key_count: r.try_get(6)?,
                        pushed_by: r.try_get(7)?,
                        pushed_at: r.try_get(8)?,
                        fingerprints: r.try_get(9)?,
                    })
                })
                .collect()
        })
    }

    fn export_audit(&self, after: i64, limit: u32) -> StoreFuture<'_, Vec<StoredRow>> {
        Box::pin(async move {
            let rows = self
                .query(
                    &format!(
                        "SELECT {} FROM audit WHERE id > $1 ORDER BY id LIMIT $2",
                        chain::COLUMNS
                    ),
                    &[&after, &i64::from(limit)],
                )
                .await?;
            rows.iter().map(stored_row).collect()
        })
    }

    fn export_tokens(&self) -> StoreFuture<'_, Vec<StoredToken>> {
        Box::pin(async move {
            let rows = self
                .query(
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY issued_at, jti"),
                    &[],
                )
                .await?;
            rows.iter().map(token_row).collect()
        })
    }

    fn import(&self, rows: Import) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.write(Op::Import(rows)).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Database;

    #[test]
    fn a_target_shows_everything_but_its_password() {
        let url = "postgres://envsync:pw-sentinel@db.internal:5433/envsync";
        let Database::Postgres(target) = Database::parse(url).unwrap() else {
            panic!("not a PostgreSQL URL")
        };
        for shown in [
            format!("{target}"),
            format!("{target:?}"),
            format!("{:?}", Database::Postgres(target.clone())),
        ] {
            assert!(!shown.contains("pw-sentinel"), "{shown}");
            assert!(
                shown.contains("envsync@db.internal:5433/envsync"),
                "{shown}"
            );
        }
        let socket = PgTarget::parse("postgresql:///envsync?host=/run/postgresql&user=e").unwrap();
        assert_eq!(socket.to_string(), "postgres://e@/run/postgresql/envsync");
        // A URL that cannot be used is refused without being repeated.
        let err = Database::parse("postgres://u:pw-sentinel@h/db?sslmode=bogus").unwrap_err();
        assert!(!err.to_string().contains("pw-sentinel"), "{err}");
        assert!(PgTarget::is_url("postgresql://h/db") && !PgTarget::is_url("envsync.db"));
        assert_eq!(
            Database::parse("envsync.db").unwrap(),
            Database::File("envsync.db".into())
        );
        assert_eq!(Database::parse(":memory:").unwrap(), Database::Memory);
    }
}
