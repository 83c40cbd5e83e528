//! A loopback HTTP proxy in front of the real server, for tests that need a server that
//! lies (swaps blobs, rolls back, rewrites key lists, damages ciphertexts) or a record of
//! every byte that crossed the wire.
//!
//! Plain `std` sockets and hand-written HTTP/1.1: each request is read whole, handed to
//! the test's rule together with a way to forward it (or any other request) to the real
//! server, and the rule's answer is sent back with `Connection: close`. Every exchange is
//! recorded.

use crate::{Response, http};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as the client sent it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent (`/env/p/feature%2Fx?version=2`).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    /// The bearer token the client presented.
    pub fn token(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.strip_prefix("Bearer "))
    }
}

/// Forwards requests to the real server.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: String,
}

impl Upstream {
    /// Sends `req` unchanged.
    pub fn pass(&self, req: &Request) -> Response {
        self.send(&req.method, &req.path, req)
    }

    /// Sends `req` with another method and path (same token and body).
    pub fn send(&self, method: &str, path: &str, req: &Request) -> Response {
        let body = (!req.body.is_empty() || method == "POST").then_some(req.body.as_str());
        http(&self.url, method, path, req.token(), body)
    }
}

type Rule = dyn Fn(&Request, &Upstream) -> Response + Send + Sync;

/// A running proxy; stops on drop.
pub struct Proxy {
    pub url: String,
    exchanges: Arc<Mutex<Vec<(Request, Response)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proxy({})", self.url)
    }
}

impl Proxy {
    /// Starts a proxy to `upstream` whose answers come from `rule`.
    pub fn start(
        upstream: &str,
        rule: impl Fn(&Request, &Upstream) -> Response + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = Upstream {
            url: upstream.to_owned(),
        };
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rule: Box<Rule> = Box::new(rule);
        let thread = {
            let exchanges = exchanges.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Some(exchange) = serve(stream, &*rule, &upstream) {
                        exchanges.lock().expect("lock").push(exchange);
                    }
                }
            })
        };
        Proxy {
            url,
            exchanges,
            stop,
            thread: Some(thread),
        }
    }

    /// A proxy that forwards everything unchanged (a wire recorder).
    pub fn recorder(upstream: &str) -> Proxy {
        Proxy::start(upstream, |req, up| up.pass(req))
    }

    /// Every request and answer so far.
    pub fn exchanges(&self) -> Vec<(Request, Response)> {
        self.exchanges.lock().expect("lock").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, rule: &Rule, upstream: &Upstream) -> Option<(Request, Response)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let req = Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let resp = rule(&req, upstream);
    let mut out = stream;
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        resp.body.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(resp.body.as_bytes());
    let _ = out.flush();
    let _ = out.shutdown(Shutdown::Both);
    Some((req, resp))
}
