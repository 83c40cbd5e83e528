//! The accept loop: what keeps clients that never finish a request from holding the server.
//!
//! warp 0.4's own server accepts without bound and keeps every connection for as long as
//! the client likes, so a few hundred silent sockets exhaust the file descriptors and
//! nothing else is served. This module serves the same warp filter (as a service) over
//! hyper's HTTP/1.1 connections itself, with:
//!
//! - **a cap on open connections** ([`ConnectionLimits::max_connections`], kept below the
//!   process's `RLIMIT_NOFILE` with room for the database files). When it is reached, the
//!   connection that has done nothing for longest — idle between requests, or still sending
//!   its request head — is closed to make room, so a client holding half-open connections
//!   cannot keep a fresh one (`/health`, a real push) out. When every connection is in the
//!   middle of a request, a new one waits in the listen backlog until one finishes.
//! - **three clocks per connection** (see [`watch`]): the header timeout (accept or first
//!   byte → end of the request head), the idle timeout (answer → next request's first
//!   byte) and the request timeout (end of the head → answer: body and handler).
//! - [`raise_nofile_limit`], which the binary calls at start: the soft `RLIMIT_NOFILE`
//!   raised to the hard one, since the default soft limit (often 1024) is far below what
//!   the kernel allows.
//!
//! TLS slots in at [`Transport`]: the loop hands each accepted TCP stream to
//! `Transport::handshake` inside the connection's header clock (the handshake and the
//! first request head share it), holding a connection slot, so a stalled handshake times
//! out, and is shed when the server is full, like a stalled request head. [`Plain`] is the
//! identity; [`crate::tls::Tls`] the rustls acceptor.

mod watch;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warp::http::Request;
use warp::reply::Response;
use watch::{Command, Conn, End, Phase, Tracked, Watched};

/// Open connections allowed at once, before the file limit lowers it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Time to send a request head, from accept or from the request's first byte.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a kept-alive connection may wait for its next request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time from the end of a request head to its answer (reading the body, the handler).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// File descriptors kept out of the connection cap: the database and its WAL and
/// shared-memory files on three connections, the listener, the runtime, logs, and a margin.
pub const RESERVED_FDS: u64 = 64;

/// How many connections the server holds and for how long (`ENVSYNC_MAX_CONNECTIONS`,
/// `ENVSYNC_HEADER_TIMEOUT`, `ENVSYNC_IDLE_TIMEOUT`, `ENVSYNC_REQUEST_TIMEOUT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The client's address, put into every request's extensions (what `warp::addr::remote`
/// reads is private to warp's own server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Turns an accepted TCP stream into the stream HTTP is spoken over: the seam for TLS.
pub trait Transport: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Runs inside the connection's header clock; an error closes the connection.
    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP: HTTP straight on the socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Transport for Plain {
    type Stream = TcpStream;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<TcpStream>> + Send {
        std::future::ready(Ok(tcp))
    }
}

/// The soft and hard `RLIMIT_NOFILE` after raising the soft one to the hard one (kept as
/// it was when the raise is refused). `None` for a limit that is unlimited.
pub fn raise_nofile_limit() -> (Option<u64>, Option<u64>) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return (limit.maximum, limit.maximum),
            Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
        }
    }
    (limit.current, limit.maximum)
}

/// The connection cap that fits the process's current open-file limit.
pub fn effective_cap(configured: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    cap_for(configured, soft)
}

fn cap_for(configured: usize, soft_nofile: Option<u64>) -> usize {
    let room = match soft_nofile {
        None => usize::MAX,
        // A tiny limit still gets a few connections; the server then simply cannot serve many.
        Some(n) => usize::try_from(n.saturating_sub(RESERVED_FDS).max(n / 2)).unwrap_or(usize::MAX),
    };
    configured.min(room).max(1)
}

/// Every open connection, for shedding and shutdown.
#[derive(Debug)]
struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(self.epoch));
        self.lock().insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sheds the connection that has been idle or sending its head for longest; `false`
    /// when every connection is busy with a request.
    fn shed_one(&self) -> bool {
        let conns = self.lock();
        let oldest = conns
            .values()
            .filter(|c| c.phase() != Phase::Busy)
            .min_by_key(|c| c.since_ms());
        match oldest {
            Some(conn) => {
                conn.command(Command::Shed);
                true
            }
            None => false,
        }
    }

    fn shutdown_all(&self) {
        for conn in self.lock().values() {
            conn.command(Command::Shutdown);
        }
    }
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// Logs a repeated warning at most once per interval, with how often it happened.
#[derive(Debug)]
struct Throttled {
    every: Duration,
    last: Option<Instant>,
    skipped: u64,
}

impl Throttled {
    fn new(every: Duration) -> Throttled {
        Throttled {
            every,
            last: None,
            skipped: 0,
        }
    }

    /// `Some(times skipped since the last log)` when it is time to log again.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.skipped += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.skipped))
    }
}

/// Serves `service` (a warp filter turned into a service with `warp::service`) on
/// `listener` through `transport`, within `limits`, until `shutdown` completes; then stops
/// accepting, closes connections between requests, and waits for the requests in flight.
pub async fn serve<S, T>(
    service: S,
    listener: TcpListener,
    transport: T,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) where
    S: tower_service::Service<
            Request<hyper::body::Incoming>,
            Response = Response,
            Error = Infallible,
        > + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send + 'static,
    T: Transport,
{
    let cap = effective_cap(limits.max_connections);
    if cap < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            cap,
            "the open-file limit lowers the connection cap; raise `ulimit -n` for more"
        );
    }
    tracing::info!(
        max_connections = cap,
        header_timeout_secs = limits.header_timeout.as_secs_f64(),
        idle_timeout_secs = limits.idle_timeout.as_secs_f64(),
        request_timeout_secs = limits.request_timeout.as_secs_f64(),
        "connection limits"
    );
    let slots = Arc::new(Semaphore::new(cap));
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        next_id: AtomicU64::new(0),
        conns: Mutex::new(HashMap::new()),
    });
    let transport = Arc::new(transport);
    let mut http = hyper::server::conn::http1::Builder::new();
    // The clocks are ours (see `watch`); hyper's would start at idle and cap keep-alive.
    http.header_read_timeout(None).keep_alive(true);
    let http = Arc::new(http);
    let mut shed_warning = Throttled::new(Duration::from_secs(10));
    let mut accept_warning = Throttled::new(Duration::from_secs(10));

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, remote) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                if !is_connection_error(&e) {
                    // Out of file descriptors (EMFILE/ENFILE) despite the cap: something
                    // else holds them. Shed a connection, and do not spin.
                    registry.shed_one();
                    if let Some(skipped) = accept_warning.due() {
                        tracing::warn!(error = %e, repeated = skipped, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let shed = registry.shed_one();
                if let Some(skipped) = shed_warning.due() {
                    tracing::warn!(
                        max_connections = cap,
                        shed_since_last = skipped,
                        "connection limit reached: {}",
                        if shed {
                            "closing the connection idle for longest"
                        } else {
                            "every connection is busy; new ones wait"
                        }
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (id, conn) = registry.add();
        let registered = Registered {
            registry: registry.clone(),
            id,
            _slot: slot,
        };
        let service = service.clone();
        let transport = transport.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let _registered = registered;
            // The handshake runs on the header clock, and a connection shed or shut down
            // in the middle of it goes at once rather than when its clock runs out.
            let handshake = tokio::time::timeout(limits.header_timeout, transport.handshake(tcp));
            let stream = tokio::select! {
                biased;
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote, timeout = "handshake", "connection timed out");
                        return;
                    }
                },
                () = conn.commanded() => {
                    tracing::debug!(%remote, "closed during its handshake");
                    return;
                }
            };
            let io = hyper_util::rt::TokioIo::new(Watched {
                inner: stream,
                conn: conn.clone(),
            });
            let service = Tracked {
                inner: service,
                conn: conn.clone(),
                remote,
            };
            let mut http = http.serve_connection(io, service);
            match watch::drive(&mut http, &conn, &limits).await {
                End::Closed(Ok(())) => {
                    watch::linger(http.into_parts().io.into_inner(), &conn).await
                }
                End::Shed => {}
                End::Closed(Err(e)) => tracing::debug!(error = %e, "connection error"),
                End::TimedOut(phase) => {
                    tracing::debug!(%remote, timeout = phase.name(), "connection timed out");
                }
            }
        });
    }
    drop(listener);
    registry.shutdown_all();
    // Every connection holds a slot until its task ends.
    let _ = slots
        .acquire_many(u32::try_from(cap).unwrap_or(u32::MAX))
        .await;
}

/// Errors of one incoming connection (reset before it was accepted), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_database_files() {
        assert_eq!(cap_for(1024, Some(20_000)), 1024);
        assert_eq!(cap_for(1024, None), 1024);
        assert_eq!(cap_for(1024, Some(256)), 192);
        assert_eq!(cap_for(1024, Some(100)), 50);
        assert_eq!(cap_for(1024, Some(0)), 1);
    }

    #[test]
    fn repeated_warnings_are_throttled_and_counted() {
        let mut w = Throttled::new(Duration::from_secs(3600));
        assert_eq!(w.due(), Some(0));
        assert_eq!(w.due(), None);
        assert_eq!(w.due(), None);
        w.last = Some(Instant::now() - Duration::from_secs(7200));
        assert_eq!(w.due(), Some(2));
    }
}
