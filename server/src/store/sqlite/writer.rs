//! The writer thread: group commit of every queued request in one transaction, a savepoint
//! per request, an adaptive linger, and the deferred WAL sync of pull audits.

use crate::store::StoreError;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most requests committed together. Bounds the latency of the first one in a batch.
const MAX_BATCH: usize = 256;
/// Longest wait for a batch to fill up (see `write_loop`).
const MAX_LINGER: Duration = Duration::from_millis(2);
const LINGER_STEP: Duration = Duration::from_micros(50);

/// When a request's answer may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// After the commit has been fsynced (`synchronous=FULL`): every state change.
    Synced,
    /// After the commit has been written to the WAL, which survives a crash of this
    /// process; a helper thread fsyncs it right after. Only for the audit row of a pull:
    /// the answer (a ciphertext already on disk) is not held for an fsync, which on a slow
    /// disk is most of a pull's cost, and the audit row reaches the disk one fsync later
    /// (only a power loss in that window could lose it). A batch holding any `Synced`
    /// request is committed with a full sync, as is everything that changes state.
    /// Such work makes at most one write statement, its last step, so it needs no
    /// savepoint to be undone.
    Written,
}

/// One request for the writer: run inside the batch, then answer after the commit.
pub(super) trait Job: Send {
    fn durability(&self) -> Durability;
    /// Runs the work; `true` when it failed in a way that must undo its writes.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Sends the answer, or the commit's failure.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

pub(super) struct Task<T, F> {
    pub(super) work: Option<F>,
    pub(super) result: Option<Result<T, StoreError>>,
    pub(super) reply: oneshot::Sender<Result<T, StoreError>>,
    pub(super) durability: Durability,
}

impl<T, F> Job for Task<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn durability(&self) -> Durability {
        self.durability
    }

    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A bug in one request must not take the writer (and every later request) down.
        let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Other("a storage operation panicked".into())));
        let undo = matches!(result, Err(StoreError::Other(_) | StoreError::Full(_)));
        self.result = Some(result);
        undo
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match commit {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(StoreError::Other("request was not run".into()))),
            Err(e) => Err(e),
        };
        // The caller may have gone away (client disconnected); nothing to do then.
        let _ = self.reply.send(answer);
    }
}

pub(super) fn write_loop(
    conn: Connection,
    wal: Option<PathBuf>,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    stats: &super::WriterStats,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut wal = wal.map(WalSync::new);
    // Under steady load the callers answered by one commit come back while the next one is
    // being synced, so batches alternate between two halves of the clients, each paying a
    // full fsync. Lingering briefly (never more than half a commit's duration) until the
    // batch is as large as the previous one lets both halves share one sync, like
    // PostgreSQL's commit_delay. With one caller there is no linger at all.
    let mut previous = 1usize;
    let mut last_commit = Duration::ZERO;
    let mut synchronous = Sync::Full;
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        drain(&mut queue, &mut batch);
        // Lingering shares an fsync; a batch of pull audits has none to share.
        let pulls_only = batch.iter().all(|j| j.durability() == Durability::Written);
        if previous > 1 && batch.len() < previous && !pulls_only {
            let deadline = Instant::now() + (last_commit / 2).min(MAX_LINGER);
            while batch.len() < previous && Instant::now() < deadline {
                std::thread::sleep(LINGER_STEP);
                drain(&mut queue, &mut batch);
            }
        }
        // Only a batch of pull audits may skip the sync before answering, and only when
        // there is a WAL file to sync right after.
        let deferred = wal.is_some() && batch.iter().all(|j| j.durability() == Durability::Written);
        let started = Instant::now();
        let mode = if deferred { Sync::Normal } else { Sync::Full };
        let outcome = if mode == synchronous {
            Ok(())
        } else {
            set_synchronous(&conn, mode).map(|()| synchronous = mode)
        }
        .and_then(|()| run_batch(&conn, &mut batch));
        last_commit = started.elapsed();
        previous = batch.len();
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        tracing::trace!(
            requests = batch.len(),
            deferred_sync = deferred,
            micros = last_commit.as_micros() as u64,
            "write batch committed"
        );
        if let Err(e) = &outcome {
            tracing::error!(error = %e, requests = batch.len(), "write batch rolled back");
        }
        for job in batch.drain(..) {
            job.finish(outcome.clone());
        }
        if deferred && let Some(wal) = wal.as_mut() {
            wal.sync();
        }
    }
    tracing::debug!("database writer stopped");
}

/// The writer's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Every commit fsynced: the default, asserted at start.
    Full,
    /// Commits written to the WAL but not fsynced (pull batches; see [`Durability`]).
    Normal,
}

/// Switches the writer's `synchronous` setting for the next transactions.
fn set_synchronous(conn: &Connection, mode: Sync) -> Result<(), StoreError> {
    exec(
        conn,
        match mode {
            Sync::Full => "PRAGMA synchronous = FULL",
            Sync::Normal => "PRAGMA synchronous = NORMAL",
        },
    )
}

/// The fsync after a deferred batch, on its own thread so the writer goes on with the next
/// batch meanwhile. Requests coalesce: one sync covers every commit written before it.
struct WalSync {
    state: Arc<(Mutex<WalState>, std::sync::Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct WalState {
    pending: bool,
    closing: bool,
}

impl WalSync {
    fn new(path: PathBuf) -> WalSync {
        let state = Arc::new((Mutex::new(WalState::default()), std::sync::Condvar::new()));
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("envsync-walsync".into())
            .spawn(move || wal_sync_loop(&path, &shared))
            .ok();
        WalSync { state, thread }
    }

    /// Asks for an fsync of the WAL as soon as possible.
    fn sync(&mut self) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap_or_else(|p| p.into_inner()).pending = true;
        wake.notify_one();
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap_or_else(|p| p.into_inner()).closing = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn wal_sync_loop(path: &Path, state: &(Mutex<WalState>, std::sync::Condvar)) {
    let (lock, wake) = state;
    let mut file: Option<std::fs::File> = None;
    loop {
        let closing = {
            let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
            while !s.pending && !s.closing {
                s = wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            let closing = s.closing && !s.pending;
            s.pending = false;
            closing
        };
        if closing {
            return;
        }
        if file.is_none() {
            file = std::fs::File::open(path).ok();
        }
        // fsync is per file, not per descriptor: our own handle syncs SQLite's writes.
        if !matches!(file.as_ref().map(std::fs::File::sync_data), Some(Ok(()))) {
            // Reopen next time; the next full commit or checkpoint syncs the WAL anyway.
            file = None;
            tracing::warn!(path = %path.display(), "could not fsync the WAL after a pull batch");
        }
    }
}

/// Moves every queued request into the batch, up to its size limit.
fn drain(queue: &mut mpsc::Receiver<Box<dyn Job>>, batch: &mut Vec<Box<dyn Job>>) {
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// One transaction for the whole batch, one savepoint per request.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let result = batch
        .iter_mut()
        .try_for_each(|job| {
            // A pull makes one write (its audit row), atomic on its own: no savepoint.
            if job.durability() == Durability::Written {
                job.run(conn);
                return Ok(());
            }
            exec(conn, "SAVEPOINT request")?;
            if job.run(conn) {
                exec(conn, "ROLLBACK TO request")?;
            }
            exec(conn, "RELEASE request")
        })
        .and_then(|()| exec(conn, "COMMIT"));
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

pub(super) fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}
