//! The HTTP client of the envsync API: one reqwest client on a current-thread runtime,
//! with blocking-style methods so the commands read top to bottom.
//!
//! Branch names travel as one percent-encoded path segment (`feature%2Flogin`).
//!
//! `https://` servers are checked against the system's roots plus the CA file of
//! [`crate::ca`], if one is configured; a handshake that fails is [`ApiError::Tls`], told
//! apart from a server that does not answer, and exits 3 like it.

use crate::ca::CaFile;
use crate::config::Token;
use crate::error::{CliError, Exit};
use envsync_common::api::{
    AuditPage, BranchInfo, BranchesPage, EnvResponse, ErrorBody, Health, KeysResponse, PushRequest,
    PushResponse, TokenInfo, TokenRequest, TokenResponse, VersionInfo, VersionsPage, WhoAmI,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Largest answer read from the server. Far above any page the server sends (a page of
/// versions stops at 4 MiB of key names) and any pull from a server with the default 1 MiB
/// body limit; what it stops is a server that sends without end.
pub const MAX_ANSWER: usize = 32 << 20;

/// What `status` and the hooks say, in one line, when the server rejects the token (401).
pub const TOKEN_REJECTED: &str = "token rejected: run git envsync login";

/// The cause of a [`CliError`] made from a 401: the token is missing, expired or
/// revoked. The hooks, which print one line and no hint, look for it
/// ([`token_rejected`]) to say [`TOKEN_REJECTED`] instead.
#[derive(Debug)]
pub struct TokenRejected(String);

impl std::fmt::Display for TokenRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TokenRejected {}

/// Whether `e` is the server rejecting the token.
pub fn token_rejected(e: &CliError) -> bool {
    e.error.chain().any(|cause| cause.is::<TokenRejected>())
}

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// No answer: connection refused, DNS, timeout, broken response.
    Unreachable(String),
    /// The TLS handshake failed: a certificate not signed by a trusted CA, for another
    /// name, expired; a server that does not speak TLS.
    Tls(String),
    /// The server answered with an error status.
    Status { status: StatusCode, body: ErrorBody },
    /// The answer was larger than [`MAX_ANSWER`]; it was not read to its end.
    TooLarge,
}

impl ApiError {
    pub fn is_status(&self, code: StatusCode) -> bool {
        matches!(self, ApiError::Status { status, .. } if *status == code)
    }
}

/// How long to wait for the server.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Per request.
    pub total: Duration,
    /// For all requests of this client together.
    pub budget: Option<Duration>,
}

impl Timeouts {
    /// Interactive commands: fail fast when nothing listens, allow slow answers.
    pub const COMMAND: Timeouts = Timeouts {
        connect: Duration::from_secs(3),
        total: Duration::from_secs(30),
        budget: None,
    };

    /// Git hooks: the whole hook gets 1.5 s of network time, then falls back to cached
    /// data, so a slow or silent server never holds git up.
    pub const HOOK: Timeouts = Timeouts {
        connect: Duration::from_millis(1000),
        total: Duration::from_millis(1500),
        budget: Some(Duration::from_millis(1500)),
    };
}

pub struct Api {
    rt: &'static tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    token: Option<Token>,
    deadline: Option<Instant>,
    /// The extra CA trusted for an `https://` server, for the hint of a failed handshake.
    ca: Option<CaFile>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Api({})", self.base)
    }
}

impl Api {
    /// A client of the server at `base`; an `https://` one trusts `ca` beside the system's
    /// roots (read and checked here, so a bad file fails before any request).
    pub fn new(
        base: &str,
        token: Option<Token>,
        timeouts: Timeouts,
        ca: Option<&CaFile>,
    ) -> Result<Api, CliError> {
        let base = base.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| CliError::usage(format!("server URL '{base}' is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CliError::usage(format!(
                "server URL '{base}' must start with http:// or https://"
            )));
        }
        let rt = crate::runtime::get()?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total)
            .user_agent(concat!("git-envsync/", env!("CARGO_PKG_VERSION")));
        let ca = ca.filter(|_| parsed.scheme() == "https");
        if parsed.scheme() == "http" {
            // A plain-HTTP server needs no trust roots; loading the system's (~150 files)
            // would be most of the run time of `diff` and of every hook.
            builder = builder.tls_certs_only(std::iter::empty());
        } else if let Some(ca) = ca {
            builder = builder.tls_certs_merge(ca.certificates()?);
        }
        let http = builder
            .build()
            .map_err(|e| CliError::refused(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            rt,
            http,
            base,
            token,
            deadline: timeouts.budget.map(|b| Instant::now() + b),
            ca: ca.cloned(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn health(&self) -> Result<Health, ApiError> {
        self.call(Method::GET, "/health".into(), None::<&()>)
    }

    /// Who the token says its holder is.
    pub fn whoami(&self) -> Result<WhoAmI, ApiError> {
        self.call(Method::GET, "/whoami".into(), None::<&()>)
    }

    /// Mints a token (owners).
    pub fn mint(&self, request: &TokenRequest) -> Result<TokenResponse, ApiError> {
        self.call(Method::POST, "/tokens".into(), Some(request))
    }

    /// Every token the caller may see (owners), never the tokens themselves.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>, ApiError> {
        self.call(Method::GET, "/tokens".into(), None::<&()>)
    }

    /// Revokes a token by its id (owners).
    pub fn revoke(&self, jti: &str) -> Result<(), ApiError> {
        let path = format!("/tokens/{}", segment(jti));
        let _: serde_json::Value = self.call(Method::DELETE, path, None::<&()>)?;
        Ok(())
    }

    pub fn push(
        &self,
        project: &str,
        branch: &str,
        body: &PushRequest,
    ) -> Result<PushResponse, ApiError> {
        self.call(Method::POST, env_path(project, branch), Some(body))
    }

    /// The latest (or a given) version; `None` when the branch has none.
    pub fn env(
        &self,
        project: &str,
        branch: &str,
        version: Option<u64>,
    ) -> Result<Option<EnvResponse>, ApiError> {
        let mut path = env_path(project, branch);
        if let Some(v) = version {
            path.push_str(&format!("?version={v}"));
        }
        not_found_as_none(self.call(Method::GET, path, None::<&()>))
    }

    pub fn keys(&self, project: &str, branch: &str) -> Result<Option<KeysResponse>, ApiError> {
        let path = format!("{}/keys", env_path(project, branch));
        not_found_as_none(self.call(Method::GET, path, None::<&()>))
    }

    /// One page of the branch's versions, newest first: at most `limit`, below `before`.
    pub fn versions_page(
        &self,
        project: &str,
        branch: &str,
        limit: u32,
        before: Option<u64>,
    ) -> Result<VersionsPage, ApiError> {
        let mut path = format!("{}/versions?limit={limit}", env_path(project, branch));
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        self.call(Method::GET, path, None::<&()>)
    }

    /// Every version of the branch, newest first, page by page.
    pub fn versions(&self, project: &str, branch: &str) -> Result<Vec<VersionInfo>, ApiError> {
        let mut versions = Vec::new();
        let mut before = None;
        loop {
            let page = self.versions_page(project, branch, VersionsPage::MAX_LIMIT, before)?;
            versions.extend(page.versions);
            // A cursor that does not go back would loop for ever: stop there.
            match page.next_before {
                Some(next) if before.is_none_or(|b| next < b) => before = Some(next),
                _ => return Ok(versions),
            }
        }
    }

    /// The branch's newest version without its ciphertext; `None` when it has none.
    pub fn latest_version(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<Option<VersionInfo>, ApiError> {
        let page = self.versions_page(project, branch, 1, None)?;
        Ok(page.versions.into_iter().next())
    }

    /// Every branch of the project in name order, page by page.
    pub fn branches(&self, project: &str) -> Result<Vec<BranchInfo>, ApiError> {
        let mut branches = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!(
                "/env/{}?limit={}",
                segment(project),
                BranchesPage::MAX_LIMIT
            );
            if let Some(a) = &after {
                path.push_str(&format!("&after={}", segment(a)));
            }
            let page: BranchesPage = self.call(Method::GET, path, None::<&()>)?;
            branches.extend(page.branches);
            match page.next_after {
                Some(next) if after.as_ref().is_none_or(|a| next > *a) => after = Some(next),
                _ => return Ok(branches),
            }
        }
    }

    /// One page of the project's audit log, newest first: at most `limit` events, fewer when
    /// the server's page reaches its byte budget (follow `next_before`). `filter` is pairs
    /// of a filter name (`action`, `actor`, `branch`, `outcome`) and the value to match; a
    /// filtered page may even be empty and still have a `next_before`.
    pub fn audit(
        &self,
        project: &str,
        limit: u32,
        before: Option<u64>,
        filter: &[(&str, &str)],
    ) -> Result<AuditPage, ApiError> {
        let mut path = format!("/audit/{}?limit={limit}", segment(project));
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        for (name, value) in filter {
            path.push_str(&format!("&{name}={}", segment(value)));
        }
        self.call(Method::GET, path, None::<&()>)
    }

    /// One request; any answer that is not a 2xx becomes [`ApiError::Status`].
    pub fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ApiError::Unreachable("out of time".to_owned()));
            }
            request = request.timeout(left);
        }
        self.rt.block_on(async {
            let mut response = request.send().await.map_err(unreachable)?;
            let status = response.status();
            if response
                .content_length()
                .is_some_and(|n| n > MAX_ANSWER as u64)
            {
                return Err(ApiError::TooLarge);
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
                if bytes.len() + chunk.len() > MAX_ANSWER {
                    return Err(ApiError::TooLarge);
                }
                bytes.extend_from_slice(&chunk);
            }
            if status.is_success() {
                // An empty answer (204) reads as JSON null.
                let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
                return serde_json::from_slice(bytes).map_err(|e| {
                    ApiError::Unreachable(format!("the server sent an unexpected answer ({e})"))
                });
            }
            let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
                error: status.canonical_reason().unwrap_or("error").to_owned(),
                message: format!("HTTP {status}"),
                current_version: None,
            });
            Err(ApiError::Status { status, body })
        })
    }

    /// Turns a failed request into a CLI error with the right exit code and hint.
    pub fn fail(&self, err: ApiError) -> CliError {
        match err {
            ApiError::Unreachable(why) => CliError::server(format!(
                "cannot reach the envsync server at {}: {why}",
                self.base
            ))
            .hint("check that the server is running, or set ENVSYNC_API / server in .envsync.toml"),
            ApiError::Tls(why) => {
                let fix = match &self.ca {
                    Some(ca) => format!(
                        "the server's certificate must be signed by the CA in {} ({}) or one the system trusts, and name the host of {}",
                        ca.path.display(),
                        ca.from,
                        self.base
                    ),
                    None => format!(
                        "if a private CA signed the server's certificate, trust it with git envsync login --server {} --ca-file CA.pem, ca_file in config.toml, or {}",
                        self.base,
                        crate::ca::ENV
                    ),
                };
                CliError::server(format!("TLS handshake with {} failed: {why}", self.base))
                    .hint(fix)
            }
            ApiError::TooLarge => CliError::server(format!(
                "the envsync server at {} sent an answer over {} MiB; refused",
                self.base,
                MAX_ANSWER >> 20
            ))
            .hint(
                "no envsync server answers that much: check ENVSYNC_API / server in .envsync.toml",
            ),
            ApiError::Status { status, body } => {
                let line = format!(
                    "server refused the request ({} {}): {}",
                    status.as_u16(),
                    body.error,
                    body.message
                );
                match status {
                    StatusCode::UNAUTHORIZED => CliError {
                        exit: Exit::Usage,
                        error: anyhow::Error::new(TokenRejected(line)),
                        hint: None,
                    }
                    .hint("your token is missing, expired or revoked: run git envsync login (it asks for the token; or --token-stdin)"),
                    StatusCode::FORBIDDEN => CliError::usage(line)
                        .hint("ask a project owner for a token with access to this project"),
                    StatusCode::CONFLICT => CliError::refused(line),
                    StatusCode::TOO_MANY_REQUESTS => CliError::server(line).hint(
                        "too many failed logins from this address: check your token, then retry later",
                    ),
                    s if s.is_server_error() => CliError::server(line),
                    _ => CliError::new(Exit::Usage, line),
                }
            }
        }
    }
}

fn env_path(project: &str, branch: &str) -> String {
    format!("/env/{}/{}", segment(project), segment(branch))
}

fn not_found_as_none<T>(r: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_status(StatusCode::NOT_FOUND) => Ok(None),
        Err(e) => Err(e),
    }
}

fn unreachable(e: reqwest::Error) -> ApiError {
    if let Some(why) = tls_failure(&e) {
        return ApiError::Tls(why);
    }
    let why = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        // reqwest's Display names the URL, which holds no secret; keep the first line.
        e.to_string()
            .lines()
            .next()
            .unwrap_or("request failed")
            .to_owned()
    };
    ApiError::Unreachable(why)
}

/// Why a request failed, when a TLS handshake is the reason: rustls' error, found along
/// the cause chain. It travels inside `io::Error`s (nested, from the connector), whose
/// `source` skips the error they carry: those are opened with `get_ref` instead.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(describe_tls(tls));
        }
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(carried) => Some(carried as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

fn describe_tls(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => {
                "the server's certificate is not signed by a CA this machine trusts".to_owned()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the server's certificate is not for this host name".to_owned()
            }
            C::Expired | C::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (is this machine's clock right?)"
                    .to_owned()
            }
            C::Revoked => "the server's certificate is revoked".to_owned(),
            other => format!("the server's certificate is refused ({other:?})"),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the server did not answer in TLS (is it plain http://?)".to_owned()
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the server ended the handshake ({alert:?})")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        let wrapped = anyhow::Error::new(io).context("connect");
        let found = tls_failure(wrapped.as_ref());
        assert_eq!(
            found.as_deref(),
            Some("the server's certificate is not signed by a CA this machine trusts")
        );
        // As the connector nests them: an io::Error carrying one that carries rustls'.
        let inner = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let nested =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, inner));
        assert_eq!(
            tls_failure(&nested).as_deref(),
            Some("the server did not answer in TLS (is it plain http://?)")
        );
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(tls_failure(&plain), None);
    }

    #[test]
    fn segments_are_one_path_segment() {
        assert_eq!(segment("feature/login"), "feature%2Flogin");
        assert_eq!(segment("feature/ü"), "feature%2F%C3%BC");
        assert_eq!(segment("a.b_c-d~"), "a.b_c-d~");
        assert_eq!(segment("%2F"), "%252F");
    }

    /// Whatever names validation lets through reaches the server as exactly the path
    /// segments it was meant to be: URL parsing neither drops (`.`) nor splits them.
    #[test]
    fn valid_names_survive_url_parsing() {
        use envsync_common::names::{validate_branch, validate_project};
        let names = [
            ".",
            "..",
            "...",
            ".a",
            "a.",
            "-",
            "_",
            "~",
            "%2e",
            "%2E%2E",
            "a/b",
            "a/./b",
            "a%2Fb",
            "feature/ü",
            "x@y",
            "a=b",
            "@",
            "a#b",
            "a?b",
            "a&b",
            "é",
            "a+b",
        ];
        for project in names.iter().filter(|p| validate_project(p).is_ok()) {
            for branch in names.iter().filter(|b| validate_branch(b).is_ok()) {
                let url =
                    reqwest::Url::parse(&format!("http://h{}/keys", env_path(project, branch)))
                        .expect("a URL");
                let segments: Vec<String> = url
                    .path_segments()
                    .expect("segments")
                    .map(|s| {
                        percent_encoding::percent_decode_str(s)
                            .decode_utf8()
                            .expect("UTF-8")
                            .into_owned()
                    })
                    .collect();
                assert_eq!(
                    segments,
                    ["env", project, branch, "keys"],
                    "{project:?} / {branch:?}"
                );
                assert_eq!(url.query(), None, "{project:?} / {branch:?}");
            }
        }
    }
}
