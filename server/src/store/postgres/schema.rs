//! The PostgreSQL schema: numbered migrations applied at start by one server at a time,
//! and the durability check.
//!
//! Text columns that are compared or sorted use the `C` collation, so names sort bytewise
//! as they do on SQLite (the branch pages' cursor depends on that order). Versions and
//! audit rows are append-only: a trigger refuses every `UPDATE`, `DELETE` and `TRUNCATE`,
//! whoever runs it. An audit row must carry a 32-byte chain hash.

use super::PgTarget;
use crate::store::StoreError;
use tokio_postgres::Client;

/// The session-level advisory lock held while migrating, so that replicas starting
/// together migrate once.
const MIGRATION_LOCK: i64 = 0x656e_7673_796e_6301;

/// Numbered migrations; `envsync_schema` records the ones applied. Each runs in the one
/// transaction that records it.
const MIGRATIONS: &[&str] = &[
    // 1: versions, audit, tokens, the first-start claim, append-only triggers.
    r#"
    CREATE FUNCTION envsync_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
    END
    $$;

    CREATE TABLE versions (
        id BIGSERIAL PRIMARY KEY,
        project TEXT COLLATE "C" NOT NULL,
        branch TEXT COLLATE "C" NOT NULL,
        version BIGINT NOT NULL CHECK (version > 0),
        ciphertext TEXT NOT NULL,
        keys TEXT NOT NULL,
        key_count BIGINT NOT NULL,
        pushed_by TEXT NOT NULL,
        pushed_at TEXT NOT NULL,
        UNIQUE (project, branch, version)
    );
    CREATE TRIGGER versions_append_only BEFORE UPDATE OR DELETE ON versions
        FOR EACH ROW EXECUTE FUNCTION envsync_refuse('versions are append-only');
    CREATE TRIGGER versions_no_truncate BEFORE TRUNCATE ON versions
        FOR EACH STATEMENT EXECUTE FUNCTION envsync_refuse('versions are append-only');

    -- Ids come from a sequence, taken under the lock of the row's chain: increasing within a
    -- chain, interleaved (and with gaps) between chains. `seq` is the row's position in its
    -- project's chain; rows copied from an old SQLite database may have none (the old
    -- single chain, walked first).
    CREATE SEQUENCE audit_ids;
    CREATE TABLE audit (
        id BIGINT PRIMARY KEY CHECK (id > 0),
        seq BIGINT CHECK (seq > 0),
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        project TEXT COLLATE "C",
        branch TEXT COLLATE "C",
        version BIGINT,
        outcome TEXT NOT NULL,
        detail TEXT,
        hash BYTEA NOT NULL CONSTRAINT audit_needs_hash CHECK (octet_length(hash) = 32)
    );
    CREATE INDEX audit_by_project ON audit (project, id);
    CREATE INDEX audit_old_chain ON audit (id) WHERE seq IS NULL;
    CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION envsync_refuse('the audit log is append-only');
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION envsync_refuse('the audit log is append-only');

    CREATE SEQUENCE envsync_revocations;
    CREATE TABLE tokens (
        jti TEXT COLLATE "C" PRIMARY KEY,
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        project_ids TEXT NOT NULL,
        issued_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT,
        revoked_serial BIGINT UNIQUE
    );

    CREATE TABLE envsync_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 2: value fingerprints: the canonical JSON object as text, NULL for a version
    // pushed without (and every version from before). Text, not JSONB: the server never
    // looks inside it, the push's audit row hashes its exact bytes (JSONB would reorder and
    // respace it), and it stays byte for byte what SQLite holds, so `copy` moves it as it
    // is. A nullable column without a default is a change of the catalog only; adding it
    // fires no trigger.
    "ALTER TABLE versions ADD COLUMN fingerprints TEXT;",
];

/// What `copy --replace` runs on its target.
pub(super) const ERASE: &str = "DROP TABLE IF EXISTS versions, audit, tokens, envsync_meta,
     envsync_schema CASCADE;
     DROP SEQUENCE IF EXISTS envsync_revocations, audit_ids;
     DROP FUNCTION IF EXISTS envsync_refuse() CASCADE;";

/// How many migrations the database has had (0 for a database we never touched).
pub(super) async fn applied(client: &Client) -> Result<usize, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('envsync_schema') IS NOT NULL", &[])
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(0);
    }
    let n: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::BIGINT FROM envsync_schema",
            &[],
        )
        .await?
        .try_get(0)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Applies the migrations not applied yet, holding the migration lock.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked?;
    Ok(())
}

async fn apply(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS envsync_schema (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let done = applied(client).await?;
    if done > MIGRATIONS.len() {
        return Err(StoreError::Other(format!(
            "the database has schema version {done}, newer than this envsync-server knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let number = i32::try_from(index + 1).unwrap_or(i32::MAX);
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO envsync_schema (version) VALUES ($1)",
            &[&number],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(migration = number, "applied database migration");
    }
    Ok(())
}

/// Refuses a database where a commit would not be durable: `fsync` off, or
/// `synchronous_commit` off for this server's sessions.
pub(super) async fn check_durability(client: &Client, target: &PgTarget) -> Result<(), StoreError> {
    for (setting, refused) in [("fsync", "off"), ("synchronous_commit", "off")] {
        let value: String = client
            .query_one("SELECT current_setting($1)", &[&setting])
            .await?
            .try_get(0)?;
        if value.eq_ignore_ascii_case(refused) {
            return Err(StoreError::Other(format!(
                "{setting} is {value} on {target}: an acknowledged push would not be durable; \
                 turn it on (ALTER SYSTEM / ALTER DATABASE … SET {setting} = on)"
            )));
        }
        tracing::debug!(setting, value = %value, "PostgreSQL durability setting");
    }
    Ok(())
}
