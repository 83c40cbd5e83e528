//! The tests' one raw HTTP/1.1 client, on plain `std` sockets: enough for tests, and able
//! to send what a well-behaved client would not (dot segments, a header too large, a
//! replayed request byte for byte).
//!
//! - [`exchange`] sends bytes as they are on a fresh connection and reads one answer.
//! - [`http`] builds an ordinary request (method, path, bearer token, JSON body) on top.
//! - [`read_response`] reads one answer from a connection the caller keeps (keep-alive,
//!   TLS); [`parse_response`] is the parser under both, for callers that read on their
//!   own (async sockets).
//!
//! An answer ends at its `Content-Length`, at its last chunk, or when the server closes
//! the connection; a chunked body is given back de-chunked.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One answer as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    pub status: u16,
    /// The status line and the headers, as sent (no final blank line).
    pub head: String,
    /// The body, de-chunked when it came in chunks.
    pub body: String,
}

/// A minimal HTTP/1.1 request to `url` (`http://host:port`): a bearer `token` when given,
/// a JSON `body` (a POST always declares one), `Connection: close`.
pub fn http(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Response {
    let host = url.trim_start_matches("http://");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let raw = exchange(host, req.as_bytes(), Duration::from_secs(20));
    Response {
        status: raw.status,
        body: raw.body,
    }
}

/// Sends `request` as it is on a new connection to `addr` and reads one answer, waiting at
/// most `timeout` for each read. A failed write is not an error: a server may answer (and
/// close) before it has read a large request. Panics when no answer comes.
pub fn exchange(addr: impl ToSocketAddrs, request: &[u8], timeout: Duration) -> Raw {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    let _ = stream.write_all(request);
    read_response(&mut stream)
}

/// Reads one answer from `stream`, and nothing past its end: the connection can carry the
/// next exchange. A read error ends the answer as the end of the connection would.
/// Panics when what came is not an HTTP answer.
pub fn read_response(stream: &mut impl Read) -> Raw {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(raw) = parse_response(&buf, false) {
            return raw;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    parse_response(&buf, true).unwrap_or_else(|| {
        panic!(
            "no HTTP answer in {:?}",
            String::from_utf8_lossy(&buf).into_owned()
        )
    })
}

/// The answer `bytes` hold, once they hold all of it: its head, and its body up to its
/// `Content-Length` or last chunk. `closed`: the connection has ended, so an answer that
/// runs to the end of the connection is complete, and a cut one is taken as it is.
pub fn parse_response(bytes: &[u8], closed: bool) -> Option<Raw> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, rest) = match head_end {
        Some(i) => (&bytes[..i], &bytes[i + 4..]),
        None if closed && !bytes.is_empty() => (bytes, &[][..]),
        None => return None,
    };
    let head = String::from_utf8_lossy(head).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok())?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let (body, done) = dechunk(rest);
        if !done && !closed {
            return None;
        }
        body
    } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() < length && !closed {
            return None;
        }
        rest[..length.min(rest.len())].to_vec()
    } else if closed {
        rest.to_vec()
    } else {
        return None;
    };
    Some(Raw {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A chunked body's bytes, and whether its last (empty) chunk has come.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = String::from_utf8_lossy(&rest[..eol]);
        // Chunk extensions (`;name=value`) are allowed after the size.
        let size = size.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            return (out, false);
        };
        let data = &rest[eol + 2..];
        if n == 0 {
            return (out, true);
        }
        if data.len() < n + 2 {
            out.extend_from_slice(&data[..n.min(data.len())]);
            return (out, false);
        }
        out.extend_from_slice(&data[..n]);
        rest = &data[n + 2..];
    }
}
