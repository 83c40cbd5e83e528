//! One connection's life: which phase it is in, since when, and the deadline that phase
//! allows. The stream wrapper ([`Watched`]) and the service wrapper ([`Tracked`]) move it
//! between phases; [`drive`] serves the connection until it ends, times out, is shed, or the
//! server shuts down.
//!
//! The phases and their clocks follow Go's `http.Server` (`ReadHeaderTimeout`,
//! `IdleTimeout`) rather than hyper's own `header_read_timeout`, whose clock starts as soon
//! as a connection goes idle and so cannot allow a keep-alive wait longer than a header:
//! - **head**: from accept (or the first byte of a later request) until the request head has
//!   been read — the header timeout;
//! - **busy**: from the end of the head until the answer is handed back — reading the body
//!   and running the handler, the request timeout;
//! - **idle**: from the answer until the first byte of the next request — the idle timeout.
//!
//! Every change happens inside the connection's own task (hyper polls the stream and the
//! handler from it), so [`drive`] sees a new phase on the same poll and re-arms its one timer.

use super::{ClientAddr, ConnectionLimits};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use warp::http::Request;
use warp::reply::Response;

/// What a connection is doing; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Head = 0,
    Busy = 1,
    Idle = 2,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            1 => Phase::Busy,
            2 => Phase::Idle,
            _ => Phase::Head,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Phase::Head => "header",
            Phase::Busy => "request",
            Phase::Idle => "idle",
        }
    }
}

/// What the server asks of a connection from outside its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Command {
    None = 0,
    /// Finish the request in flight, if any, then close.
    Shutdown = 1,
    /// Close now: the server is full and this connection is doing nothing.
    Shed = 2,
}

/// The state of one connection, shared by its task and the registry.
#[derive(Debug)]
pub(super) struct Conn {
    epoch: Instant,
    phase: AtomicU8,
    /// When the phase began, in milliseconds since `epoch`.
    since: AtomicU64,
    command: AtomicU8,
    signal: Notify,
}

impl Conn {
    /// A connection just accepted: waiting for its first request head.
    pub(super) fn new(epoch: Instant) -> Conn {
        let conn = Conn {
            epoch,
            phase: AtomicU8::new(Phase::Head as u8),
            since: AtomicU64::new(0),
            command: AtomicU8::new(Command::None as u8),
            signal: Notify::new(),
        };
        conn.enter(Phase::Head);
        conn
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn enter(&self, phase: Phase) {
        self.since.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub(super) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    /// Milliseconds since `epoch` at which the current phase began.
    pub(super) fn since_ms(&self) -> u64 {
        self.since.load(Ordering::Relaxed)
    }

    /// Bytes arrived: on an idle connection they start the next request's head.
    fn read_some(&self) {
        if self.phase() == Phase::Idle {
            self.enter(Phase::Head);
        }
    }

    /// The current phase and when it runs out.
    fn deadline(&self, limits: &ConnectionLimits) -> (Phase, Instant) {
        let phase = self.phase();
        let allowed = match phase {
            Phase::Head => limits.header_timeout,
            Phase::Busy => limits.request_timeout,
            Phase::Idle => limits.idle_timeout,
        };
        let since = self.epoch + Duration::from_millis(self.since_ms());
        (phase, since + allowed)
    }

    /// Asks the connection's task to shut down or be shed (the stronger request wins).
    pub(super) fn command(&self, command: Command) {
        self.command.fetch_max(command as u8, Ordering::Relaxed);
        self.signal.notify_one();
    }

    /// Completes once the server has asked this connection to go (shed or shut down): what
    /// a handshake in progress, before [`drive`] runs, is raced against.
    pub(super) async fn commanded(&self) {
        loop {
            let notified = self.signal.notified();
            if self.pending_command() != Command::None {
                return;
            }
            notified.await;
        }
    }

    fn pending_command(&self) -> Command {
        match self.command.load(Ordering::Relaxed) {
            2 => Command::Shed,
            1 => Command::Shutdown,
            _ => Command::None,
        }
    }
}

/// A connection's stream, noting when bytes arrive.
#[derive(Debug)]
pub(super) struct Watched<S> {
    pub(super) inner: S,
    pub(super) conn: Arc<Conn>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.read_some();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The warp service of one connection: marks the request busy while it runs and tells the
/// filters the client's address ([`ClientAddr`]).
#[derive(Debug, Clone)]
pub(super) struct Tracked<S> {
    pub(super) inner: S,
    pub(super) conn: Arc<Conn>,
    pub(super) remote: SocketAddr,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ClientAddr(self.remote));
        self.conn.enter(Phase::Busy);
        // warp's service is always ready (its `poll_ready` is a constant `Ready`), and is a
        // clone of the filter tree: what warp's own server does per request too.
        let mut inner = self.inner.clone();
        let answer = tower_service::Service::call(&mut inner, request);
        let conn = self.conn.clone();
        Box::pin(async move {
            let response = answer.await;
            conn.enter(Phase::Idle);
            response
        })
    }
}

/// How a connection ended.
#[derive(Debug)]
pub(super) enum End {
    /// The client closed it, or it finished after a shutdown request.
    Closed(Result<(), hyper::Error>),
    /// A phase ran out of time.
    TimedOut(Phase),
    /// Closed to make room for a new connection.
    Shed,
}

/// Serves `http` until it ends, times out or is shed. A shutdown request closes a
/// connection that is between requests at once, and lets a request in flight finish.
///
/// A connection that ends on its own is left open (hyper's `poll_without_shutdown`): the
/// caller closes it with [`linger`], so that an answer given before the request's body was
/// read (a 413) is not lost to the reset that closing over unread bytes sends.
pub(super) async fn drive<I, S, B>(
    http: &mut http1::Connection<I, S>,
    conn: &Conn,
    limits: &ConnectionLimits,
) -> End
where
    S: HttpService<Incoming, ResBody = B> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = Pin::new(http);
    let (_, first) = conn.deadline(limits);
    let mut armed = first;
    let mut timer = pin!(tokio::time::sleep_until(first.into()));
    let mut signal = pin!(conn.signal.notified());
    let mut shutting_down = false;
    poll_fn(|cx| {
        loop {
            if let Poll::Ready(result) = http.as_mut().get_mut().poll_without_shutdown(cx) {
                return Poll::Ready(End::Closed(result));
            }
            if signal.as_mut().poll(cx).is_ready() {
                signal.set(conn.signal.notified());
                match conn.pending_command() {
                    Command::Shed => return Poll::Ready(End::Shed),
                    Command::Shutdown if conn.phase() != Phase::Busy => {
                        return Poll::Ready(End::Closed(Ok(())));
                    }
                    Command::Shutdown if !shutting_down => {
                        // hyper closes the connection once this answer is written.
                        shutting_down = true;
                        http.as_mut().graceful_shutdown();
                    }
                    _ => {}
                }
                continue;
            }
            let (phase, deadline) = conn.deadline(limits);
            // A later deadline is left to the armed timer, which re-arms when it fires:
            // moving a timer costs more than a rare early wake-up.
            if deadline < armed {
                timer.as_mut().reset(deadline.into());
                armed = deadline;
            }
            if timer.as_mut().poll(cx).is_ready() {
                if Instant::now() >= deadline {
                    return Poll::Ready(End::TimedOut(phase));
                }
                timer.as_mut().reset(deadline.into());
                armed = deadline;
                continue;
            }
            return Poll::Pending;
        }
    })
    .await
}

/// The most a closing connection reads and drops of what its client still sends.
const LINGER_BYTES: usize = 1 << 20;
/// How long a closing connection waits for its client to stop sending.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Closes a connection the way HTTP servers do when an answer may have been sent before
/// the request was read whole: our side first, then what the client still sends is read
/// and dropped (at most [`LINGER_BYTES`], for at most [`LINGER_TIME`], not past a shed or
/// shutdown) until it closes its side. Closing over unread bytes would send a reset, which
/// can destroy the answer before the client reads it.
pub(super) async fn linger<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, conn: &Conn) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let drain = async {
        if io.shutdown().await.is_err() {
            return;
        }
        let mut buf = [0u8; 8192];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    tokio::select! {
        () = drain => {}
        _ = tokio::time::sleep(LINGER_TIME) => {}
        () = conn.commanded() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 8,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn phases_pick_their_own_timeout() {
        let conn = Conn::new(Instant::now());
        let started = Instant::now();
        let (phase, deadline) = conn.deadline(&limits());
        assert_eq!(phase, Phase::Head);
        assert!(deadline <= started + Duration::from_secs(10));
        assert!(deadline + Duration::from_secs(1) > started + Duration::from_secs(10));
        conn.enter(Phase::Busy);
        assert!(conn.deadline(&limits()).1 > started + Duration::from_secs(29));
        conn.enter(Phase::Idle);
        assert!(conn.deadline(&limits()).1 > started + Duration::from_secs(59));
        // Bytes on an idle connection start a head; bytes during a request do not.
        conn.read_some();
        assert_eq!(conn.phase(), Phase::Head);
        conn.enter(Phase::Busy);
        conn.read_some();
        assert_eq!(conn.phase(), Phase::Busy);
    }

    #[test]
    fn the_stronger_command_wins() {
        let conn = Conn::new(Instant::now());
        assert_eq!(conn.pending_command(), Command::None);
        conn.command(Command::Shed);
        conn.command(Command::Shutdown);
        assert_eq!(conn.pending_command(), Command::Shed);
    }
}
