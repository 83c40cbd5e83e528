//! Server settings: what `serve` needs, with the defaults of `docs/protocol.md` and the
//! `ENVSYNC_*` environment variables that change them.
//!
//! [`SettingsArgs`] declares each setting once for clap (flag, variable, default, help), so
//! `envsync-server --help` lists them; [`Settings::apply_env`] checks the values clap
//! resolved, asking for each by its variable name through [`SettingsArgs::lookup`].

use crate::connections::ConnectionLimits;
use crate::limiter::LimiterSettings;
use crate::secret::JwtSecret;
use crate::store::Database;
use crate::tls::TlsFiles;
use clap::{ArgMatches, Args, Command};
use envsync_common::api::parse_ttl;
use envsync_common::names::MAX_KEY_LEN;
use jsonwebtoken::Algorithm;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
/// Clock skew tolerated on `exp` and `nbf`, in seconds. Set explicitly: the library's own
/// default (60 s) is not a decision we made.
pub const JWT_LEEWAY_SECS: u64 = 30;
/// Lifetime of a token minted without a `ttl`: 30 days.
pub const DEFAULT_TOKEN_TTL: u64 = 30 * 86_400;
/// Longest lifetime a token may be minted with: 400 days.
pub const MAX_TOKEN_TTL: u64 = 400 * 86_400;
/// How often the audit chain's head is logged (besides at start).
pub const DEFAULT_AUDIT_HEAD_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// What one push may carry (`ENVSYNC_MAX_KEYS`, `ENVSYNC_MAX_KEY_LEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Key names per version; more is a 413.
    pub max_keys: usize,
    /// Bytes per key name (at most [`MAX_KEY_LEN`], the format's own limit); longer is a 400.
    pub max_key_len: usize,
}

impl Quotas {
    pub const DEFAULT_MAX_KEYS: usize = 1000;
    pub const DEFAULT_MAX_KEY_LEN: usize = 128;
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            max_keys: Quotas::DEFAULT_MAX_KEYS,
            max_key_len: Quotas::DEFAULT_MAX_KEY_LEN,
        }
    }
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: Database,
    pub jwt: JwtSettings,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body: u64,
    /// Lifetime of tokens minted without an explicit `ttl`, in seconds.
    pub default_token_ttl: u64,
    /// Rate limiting of failed authentication per client address.
    pub auth_limit: LimiterSettings,
    /// Connections held at once and how long each phase of one may take.
    pub connections: ConnectionLimits,
    /// Keys per push and bytes per key name.
    pub quotas: Quotas,
    /// How often the audit chain's head (`id:hash`) is logged, besides at start.
    pub audit_head_interval: Duration,
    /// HTTPS with this certificate and key; plain HTTP when unset.
    pub tls: Option<TlsFiles>,
}

/// How tokens are signed and checked.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub secret: JwtSecret,
    /// HS256, HS384 or HS512; only this one is accepted.
    pub algorithm: Algorithm,
    /// Required `iss` when set.
    pub issuer: Option<String>,
    /// Required `aud` when set.
    pub audience: Option<String>,
    pub leeway_secs: u64,
}

/// The settings an operator tunes, each a flag and an `ENVSYNC_*` variable (the flag wins),
/// with the default it has when neither is given. The binary flattens these into its
/// command line; the values are checked by [`Settings::apply_env`], which reports a bad one
/// by its variable name.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Settings")]
pub struct SettingsArgs {
    /// Algorithm tokens are signed and checked with: HS256, HS384 or HS512; no other is
    /// accepted.
    #[arg(
        long,
        env = "ENVSYNC_JWT_ALGORITHM",
        default_value = "HS256",
        value_name = "ALG"
    )]
    pub jwt_algorithm: String,
    /// `iss` claim every token must carry (unset: not checked).
    #[arg(long, env = "ENVSYNC_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// `aud` claim every token must carry (unset: not checked).
    #[arg(long, env = "ENVSYNC_JWT_AUDIENCE", value_name = "AUD")]
    pub jwt_audience: Option<String>,
    /// Largest request body accepted (1048576, 512k, 4m); a larger one gets 413.
    #[arg(
        long,
        env = "ENVSYNC_MAX_BODY",
        default_value = "1MiB",
        value_name = "SIZE"
    )]
    pub max_body: String,
    /// Failed authentications per client address and window before it gets 429 (0 turns
    /// rate limiting off).
    #[arg(
        long,
        env = "ENVSYNC_AUTH_MAX_FAILURES",
        default_value = "20",
        value_name = "N"
    )]
    pub auth_max_failures: String,
    /// That window, which is also the longest a block lasts (60, 90s, 15m, up to 1d).
    #[arg(
        long,
        env = "ENVSYNC_AUTH_WINDOW",
        default_value = "60s",
        value_name = "DURATION"
    )]
    pub auth_window: String,
    /// Client addresses the rate limiter remembers at most.
    #[arg(
        long,
        env = "ENVSYNC_AUTH_LIMITER_CAPACITY",
        default_value = "10000",
        value_name = "N"
    )]
    pub auth_limiter_capacity: String,
    /// Open connections at most (lowered to fit the open-file limit); when full, the
    /// connection idle the longest is closed to make room.
    #[arg(
        long,
        env = "ENVSYNC_MAX_CONNECTIONS",
        default_value = "1024",
        value_name = "N"
    )]
    pub max_connections: String,
    /// How long a client may take to send a request's head (10, 10s, 1m).
    #[arg(
        long,
        env = "ENVSYNC_HEADER_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub header_timeout: String,
    /// How long a kept-alive connection may wait for its next request.
    #[arg(
        long,
        env = "ENVSYNC_IDLE_TIMEOUT",
        default_value = "60s",
        value_name = "DURATION"
    )]
    pub idle_timeout: String,
    /// How long a request may take from the end of its head to the answer.
    #[arg(
        long,
        env = "ENVSYNC_REQUEST_TIMEOUT",
        default_value = "60s",
        value_name = "DURATION"
    )]
    pub request_timeout: String,
    /// Keys one push may carry; more gets 413.
    #[arg(
        long,
        env = "ENVSYNC_MAX_KEYS",
        default_value = "1000",
        value_name = "N"
    )]
    pub max_keys: String,
    /// Longest key name in bytes (at most 256); longer gets 400.
    #[arg(
        long,
        env = "ENVSYNC_MAX_KEY_LEN",
        default_value = "128",
        value_name = "BYTES"
    )]
    pub max_key_len: String,
    /// How often the audit chain's head (id:hash) is logged, for a log shipper to keep as
    /// an anchor (up to 7d).
    #[arg(
        long,
        env = "ENVSYNC_AUDIT_HEAD_INTERVAL",
        default_value = "15m",
        value_name = "DURATION"
    )]
    pub audit_head_interval: String,
    /// PEM file of the certificate chain to serve HTTPS with (the server's certificate
    /// first, then intermediates). Needs --tls-key; re-read with the key on SIGHUP (new
    /// connections get the new certificate, open ones keep theirs). Unset: plain HTTP.
    #[arg(long, env = "ENVSYNC_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<String>,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ENVSYNC_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<String>,
}

impl SettingsArgs {
    /// Reads a setting the way [`Settings::apply_env`] asks for it, by its variable name,
    /// from `matches` (a command line these args are flattened into): the flag, else the
    /// variable, else the declared default, as clap resolved them. A variable that no flag
    /// declares is read from the environment, so a setting added to `apply_env` works
    /// before it has a flag; the server's `--help` test names it until it has one.
    pub fn lookup(matches: &ArgMatches) -> impl Fn(&str) -> Option<String> + '_ {
        let declared = SettingsArgs::augment_args(Command::new("envsync-server"));
        move |var| {
            let arg = declared
                .get_arguments()
                .find(|arg| arg.get_env() == Some(OsStr::new(var)));
            match arg {
                Some(arg) => matches
                    .get_raw(arg.get_id().as_str())?
                    .next()
                    .map(|value| value.to_string_lossy().into_owned()),
                None => std::env::var(var).ok(),
            }
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("ENVSYNC_JWT_ALGORITHM must be HS256, HS384 or HS512, not '{0}'")]
    Algorithm(String),
    #[error("ENVSYNC_MAX_BODY must be a size in bytes such as 1048576, 512k or 4m, not '{0}'")]
    Size(String),
    #[error("{0} is set but empty")]
    Empty(&'static str),
    #[error("ENVSYNC_DB: {0}")]
    Database(String),
    #[error("{given} is set without {missing}: HTTPS needs both the certificate and its key")]
    TlsPair {
        given: &'static str,
        missing: &'static str,
    },
    #[error("{var} must be {what}, not '{value}'")]
    Number {
        var: &'static str,
        what: &'static str,
        value: String,
    },
}

impl Settings {
    /// The defaults: HS256, no issuer or audience, 1 MiB bodies, 30-day tokens.
    pub fn new(database: Database, secret: JwtSecret) -> Settings {
        Settings {
            database,
            jwt: JwtSettings {
                secret,
                algorithm: Algorithm::HS256,
                issuer: None,
                audience: None,
                leeway_secs: JWT_LEEWAY_SECS,
            },
            max_body: DEFAULT_MAX_BODY,
            default_token_ttl: DEFAULT_TOKEN_TTL,
            auth_limit: LimiterSettings::default(),
            connections: ConnectionLimits::default(),
            quotas: Quotas::default(),
            audit_head_interval: DEFAULT_AUDIT_HEAD_INTERVAL,
            tls: None,
        }
    }

    /// Applies `ENVSYNC_JWT_ALGORITHM`, `ENVSYNC_JWT_ISSUER`, `ENVSYNC_JWT_AUDIENCE`,
    /// `ENVSYNC_MAX_BODY`, the rate limiter's `ENVSYNC_AUTH_MAX_FAILURES`,
    /// `ENVSYNC_AUTH_WINDOW` and `ENVSYNC_AUTH_LIMITER_CAPACITY`, the connection limits
    /// `ENVSYNC_MAX_CONNECTIONS`, `ENVSYNC_HEADER_TIMEOUT`, `ENVSYNC_IDLE_TIMEOUT` and
    /// `ENVSYNC_REQUEST_TIMEOUT`, the quotas `ENVSYNC_MAX_KEYS` and `ENVSYNC_MAX_KEY_LEN`, and
    /// `ENVSYNC_AUDIT_HEAD_INTERVAL`, and the pair `ENVSYNC_TLS_CERT` and `ENVSYNC_TLS_KEY`
    /// ([`tls_files`]) from `lookup` (the process environment in the binary).
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(alg) = lookup("ENVSYNC_JWT_ALGORITHM") {
            self.jwt.algorithm = parse_algorithm(&alg)?;
        }
        for (var, slot) in [
            ("ENVSYNC_JWT_ISSUER", &mut self.jwt.issuer),
            ("ENVSYNC_JWT_AUDIENCE", &mut self.jwt.audience),
        ] {
            if let Some(value) = lookup(var) {
                if value.trim().is_empty() {
                    return Err(ConfigError::Empty(var));
                }
                *slot = Some(value);
            }
        }
        if let Some(size) = lookup("ENVSYNC_MAX_BODY") {
            self.max_body = parse_size(&size)?;
        }
        let number = |var: &'static str, what: &'static str, value: &str| ConfigError::Number {
            var,
            what,
            value: value.to_owned(),
        };
        if let Some(value) = lookup("ENVSYNC_AUTH_MAX_FAILURES") {
            self.auth_limit.max_failures = value.trim().parse().map_err(|_| {
                number(
                    "ENVSYNC_AUTH_MAX_FAILURES",
                    "a whole number (0 turns rate limiting off)",
                    &value,
                )
            })?;
        }
        if let Some(value) = lookup("ENVSYNC_AUTH_WINDOW") {
            let secs = parse_ttl(&value)
                .ok()
                .filter(|&s| s <= 86_400)
                .ok_or_else(|| {
                    number(
                        "ENVSYNC_AUTH_WINDOW",
                        "a duration from 1s to 1d such as 60, 90s or 15m",
                        &value,
                    )
                })?;
            self.auth_limit.window = Duration::from_secs(secs);
        }
        if let Some(value) = lookup("ENVSYNC_AUTH_LIMITER_CAPACITY") {
            self.auth_limit.capacity = value
                .trim()
                .parse()
                .ok()
                .filter(|&n: &usize| (2..=10_000_000).contains(&n))
                .ok_or_else(|| {
                    number(
                        "ENVSYNC_AUTH_LIMITER_CAPACITY",
                        "a number of addresses from 2 to 10000000",
                        &value,
                    )
                })?;
        }
        let whole = |var: &'static str, range: std::ops::RangeInclusive<usize>, what| {
            lookup(var)
                .map(|value| {
                    value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| range.contains(n))
                        .ok_or_else(|| number(var, what, &value))
                })
                .transpose()
        };
        let seconds = |var: &'static str, max: u64, what| {
            lookup(var)
                .map(|value| {
                    parse_ttl(&value)
                        .ok()
                        .filter(|&s| s <= max)
                        .map(Duration::from_secs)
                        .ok_or_else(|| number(var, what, &value))
                })
                .transpose()
        };
        if let Some(n) = whole(
            "ENVSYNC_MAX_CONNECTIONS",
            1..=1_000_000,
            "a number of connections from 1 to 1000000",
        )? {
            self.connections.max_connections = n;
        }
        for (var, slot) in [
            (
                "ENVSYNC_HEADER_TIMEOUT",
                &mut self.connections.header_timeout,
            ),
            ("ENVSYNC_IDLE_TIMEOUT", &mut self.connections.idle_timeout),
            (
                "ENVSYNC_REQUEST_TIMEOUT",
                &mut self.connections.request_timeout,
            ),
        ] {
            if let Some(d) = seconds(var, 3600, "a duration from 1s to 1h such as 10, 30s or 2m")? {
                *slot = d;
            }
        }
        if let Some(n) = whole(
            "ENVSYNC_MAX_KEYS",
            1..=1_000_000,
            "a number of keys from 1 to 1000000",
        )? {
            self.quotas.max_keys = n;
        }
        if let Some(n) = whole(
            "ENVSYNC_MAX_KEY_LEN",
            1..=MAX_KEY_LEN,
            "a number of bytes from 1 to 256",
        )? {
            self.quotas.max_key_len = n;
        }
        if let Some(d) = seconds(
            "ENVSYNC_AUDIT_HEAD_INTERVAL",
            7 * 86_400,
            "a duration from 1s to 7d such as 15m, 1h or 1d",
        )? {
            self.audit_head_interval = d;
        }
        if let Some(files) = tls_files(&lookup)? {
            self.tls = Some(files);
        }
        Ok(())
    }
}

/// `ENVSYNC_TLS_CERT` and `ENVSYNC_TLS_KEY`: both (HTTPS) or neither (plain HTTP). The
/// files are read later, by [`crate::tls::Tls::load`].
pub fn tls_files(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<TlsFiles>, ConfigError> {
    const CERT: &str = "ENVSYNC_TLS_CERT";
    const KEY: &str = "ENVSYNC_TLS_KEY";
    let path = |var: &'static str| match lookup(var) {
        Some(value) if value.trim().is_empty() => Err(ConfigError::Empty(var)),
        value => Ok(value.map(PathBuf::from)),
    };
    match (path(CERT)?, path(KEY)?) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (Some(_), None) => Err(ConfigError::TlsPair {
            given: CERT,
            missing: KEY,
        }),
        (None, Some(_)) => Err(ConfigError::TlsPair {
            given: KEY,
            missing: CERT,
        }),
    }
}

/// `HS256`, `HS384` or `HS512` (case-insensitive). Nothing else is offered: the secret is
/// shared, so an asymmetric algorithm would add nothing but confusion attacks.
pub fn parse_algorithm(text: &str) -> Result<Algorithm, ConfigError> {
    match text.trim().to_ascii_uppercase().as_str() {
        "HS256" => Ok(Algorithm::HS256),
        "HS384" => Ok(Algorithm::HS384),
        "HS512" => Ok(Algorithm::HS512),
        _ => Err(ConfigError::Algorithm(text.to_owned())),
    }
}

/// A byte count: `1048576`, `512k`, `512KiB`, `4m`, `4MiB`.
pub fn parse_size(text: &str) -> Result<u64, ConfigError> {
    let bad = || ConfigError::Size(text.to_owned());
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).filter(|&n| n > 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_algorithms() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 * 1024);
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        for bad in ["", "0", "1g", "k", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_algorithm("hs384").unwrap(), Algorithm::HS384);
        for bad in ["none", "RS256", "ES256", ""] {
            assert!(parse_algorithm(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limit_settings_from_the_environment() {
        let secret = JwtSecret::new(b"k3Jd9-Qm2vX7pL0aZ4rT8yW1nB6cF5hG".to_vec()).unwrap();
        let mut settings = Settings::new(Database::Memory, secret);
        assert_eq!(settings.auth_limit, LimiterSettings::default());
        let env = [
            ("ENVSYNC_AUTH_MAX_FAILURES", "5"),
            ("ENVSYNC_AUTH_WINDOW", "15m"),
            ("ENVSYNC_AUTH_LIMITER_CAPACITY", "4096"),
        ];
        settings
            .apply_env(|k| {
                env.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap();
        assert_eq!(
            settings.auth_limit,
            LimiterSettings {
                max_failures: 5,
                window: Duration::from_secs(900),
                capacity: 4096,
            }
        );
        for (var, bad) in [
            ("ENVSYNC_AUTH_MAX_FAILURES", "-1"),
            ("ENVSYNC_AUTH_MAX_FAILURES", "many"),
            ("ENVSYNC_AUTH_WINDOW", "0"),
            ("ENVSYNC_AUTH_WINDOW", "2d"),
            ("ENVSYNC_AUTH_LIMITER_CAPACITY", "1"),
        ] {
            let err = settings
                .apply_env(|k| (k == var).then(|| bad.to_owned()))
                .unwrap_err();
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn connection_limits_quotas_and_the_head_interval_from_the_environment() {
        let secret = JwtSecret::new(b"k3Jd9-Qm2vX7pL0aZ4rT8yW1nB6cF5hG".to_vec()).unwrap();
        let mut settings = Settings::new(Database::Memory, secret);
        assert_eq!(settings.connections, ConnectionLimits::default());
        assert_eq!(settings.quotas, Quotas::default());
        let env = [
            ("ENVSYNC_MAX_CONNECTIONS", "300"),
            ("ENVSYNC_HEADER_TIMEOUT", "5s"),
            ("ENVSYNC_IDLE_TIMEOUT", "2m"),
            ("ENVSYNC_REQUEST_TIMEOUT", "30"),
            ("ENVSYNC_MAX_KEYS", "50"),
            ("ENVSYNC_MAX_KEY_LEN", "256"),
            ("ENVSYNC_AUDIT_HEAD_INTERVAL", "1h"),
        ];
        settings
            .apply_env(|k| {
                env.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap();
        assert_eq!(
            settings.connections,
            ConnectionLimits {
                max_connections: 300,
                header_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(120),
                request_timeout: Duration::from_secs(30),
            }
        );
        assert_eq!(
            settings.quotas,
            Quotas {
                max_keys: 50,
                max_key_len: 256
            }
        );
        assert_eq!(settings.audit_head_interval, Duration::from_secs(3600));
        for (var, bad) in [
            ("ENVSYNC_MAX_CONNECTIONS", "0"),
            ("ENVSYNC_MAX_CONNECTIONS", "lots"),
            ("ENVSYNC_HEADER_TIMEOUT", "0"),
            ("ENVSYNC_IDLE_TIMEOUT", "2h"),
            ("ENVSYNC_REQUEST_TIMEOUT", "-5"),
            ("ENVSYNC_MAX_KEYS", "0"),
            ("ENVSYNC_MAX_KEY_LEN", "257"),
            ("ENVSYNC_AUDIT_HEAD_INTERVAL", "8d"),
        ] {
            let err = settings
                .apply_env(|k| (k == var).then(|| bad.to_owned()))
                .unwrap_err();
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let text = "k3Jd9-Qm2vX7pL0aZ4rT8yW1nB6cF5hG-sentinel";
        let secret = JwtSecret::new(text.as_bytes().to_vec()).unwrap();
        let settings = Settings::new(Database::Memory, secret);
        let auth = crate::auth::Authenticator::new(&settings.jwt);
        for shown in [
            format!("{settings:?}"),
            format!("{settings:#?}"),
            format!("{auth:?}"),
            format!("{:?}", settings.jwt),
        ] {
            assert!(!shown.contains("sentinel"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        let mut lookup = std::collections::HashMap::new();
        lookup.insert("ENVSYNC_JWT_ISSUER", "");
        let mut settings = settings;
        assert!(
            settings
                .apply_env(|k| lookup.get(k).map(|v| v.to_string()))
                .is_err()
        );
    }

    /// The command line of the tests: these args alone, with no variable read, so the
    /// machine's environment cannot leak in.
    fn parse(flags: &[&str]) -> ArgMatches {
        SettingsArgs::augment_args(Command::new("t"))
            .mut_args(|arg| arg.env(None::<&'static str>))
            .try_get_matches_from(std::iter::once("t").chain(flags.iter().copied()))
            .unwrap()
    }

    fn defaults() -> Settings {
        let secret = JwtSecret::new(b"k3Jd9-Qm2vX7pL0aZ4rT8yW1nB6cF5hG".to_vec()).unwrap();
        Settings::new(Database::Memory, secret)
    }

    #[test]
    fn declared_defaults_are_the_built_in_ones() {
        let matches = parse(&[]);
        let mut settings = defaults();
        settings.apply_env(SettingsArgs::lookup(&matches)).unwrap();
        let built_in = defaults();
        assert_eq!(settings.max_body, built_in.max_body);
        assert_eq!(settings.auth_limit, built_in.auth_limit);
        assert_eq!(settings.jwt.algorithm, built_in.jwt.algorithm);
        assert_eq!(settings.jwt.issuer, None);
        assert_eq!(settings.jwt.audience, None);
    }

    #[test]
    fn flags_reach_apply_env_by_their_variable_names() {
        let matches = parse(&[
            "--jwt-algorithm=hs512",
            "--jwt-issuer=https://issuer.example",
            "--jwt-audience=envsync",
            "--max-body=4m",
            "--auth-max-failures=5",
            "--auth-window=15m",
            "--auth-limiter-capacity=4096",
        ]);
        let mut settings = defaults();
        settings.apply_env(SettingsArgs::lookup(&matches)).unwrap();
        assert_eq!(settings.jwt.algorithm, Algorithm::HS512);
        assert_eq!(
            settings.jwt.issuer.as_deref(),
            Some("https://issuer.example")
        );
        assert_eq!(settings.jwt.audience.as_deref(), Some("envsync"));
        assert_eq!(settings.max_body, 4 << 20);
        assert_eq!(
            settings.auth_limit,
            LimiterSettings {
                max_failures: 5,
                window: Duration::from_secs(900),
                capacity: 4096,
            }
        );
        assert_eq!(settings.tls, None, "no TLS flags: plain HTTP");
        for (flag, var) in [
            ("--max-body=lots", "ENVSYNC_MAX_BODY"),
            ("--jwt-algorithm=none", "ENVSYNC_JWT_ALGORITHM"),
            ("--jwt-issuer=", "ENVSYNC_JWT_ISSUER"),
            ("--auth-window=2d", "ENVSYNC_AUTH_WINDOW"),
            ("--tls-cert=/etc/envsync/cert.pem", "ENVSYNC_TLS_CERT"),
            ("--tls-key=/etc/envsync/key.pem", "ENVSYNC_TLS_KEY"),
            ("--tls-cert=", "ENVSYNC_TLS_CERT"),
        ] {
            let matches = parse(&[flag]);
            let err = defaults()
                .apply_env(SettingsArgs::lookup(&matches))
                .unwrap_err();
            assert!(err.to_string().starts_with(var), "{flag}: {err}");
        }
    }

    #[test]
    fn tls_takes_both_files_or_neither() {
        let matches = parse(&[
            "--tls-cert=/etc/envsync/cert.pem",
            "--tls-key=/etc/envsync/key.pem",
        ]);
        let mut settings = defaults();
        settings.apply_env(SettingsArgs::lookup(&matches)).unwrap();
        assert_eq!(
            settings.tls,
            Some(TlsFiles {
                cert: "/etc/envsync/cert.pem".into(),
                key: "/etc/envsync/key.pem".into(),
            })
        );
        let only_key = parse(&["--tls-key=/k.pem"]);
        let err = defaults()
            .apply_env(SettingsArgs::lookup(&only_key))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ENVSYNC_TLS_KEY is set without ENVSYNC_TLS_CERT: HTTPS needs both the certificate and its key"
        );
        let only_cert = parse(&["--tls-cert=/c.pem"]);
        let err = tls_files(SettingsArgs::lookup(&only_cert)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ENVSYNC_TLS_CERT is set without ENVSYNC_TLS_KEY"),
            "{err}"
        );
    }
}
