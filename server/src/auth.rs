//! Bearer tokens: minting, checking, roles and the revocation list.
//!
//! Tokens are HMAC JWTs (HS256/384/512, exactly the configured one) with the claims
//! `email`, `role`, `project_ids` (an array of strings), `exp`, `iat` and `jti`. `exp` and
//! `jti` are required, so every token ends and every token can be revoked. Revoked `jti`s
//! are persisted by the store and cached here, so checking a token costs one HMAC and one
//! hash lookup. Nothing in this module logs or displays a token.

use crate::clock;
use crate::config::JwtSettings;
use crate::error::ApiError;
use crate::secret::random_text;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use envsync_common::api::{Role, TokenInfo};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::sync::RwLock;
use thiserror::Error;
use warp::http::{HeaderValue, StatusCode};

/// Longest `Authorization` header looked at; our tokens are a few hundred bytes.
pub const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;

/// Who is calling, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub email: String,
    pub role: Role,
    pub project_ids: Vec<String>,
    pub jti: String,
}

/// Roles and scope: an `owner` token without `project_ids` administers the server (every
/// project, every token, the whole audit log); an `owner` token with `project_ids` is the
/// owner of those projects only. `developer` reads and pushes its `project_ids`, `readonly`
/// reads them.
impl Principal {
    fn has_project(&self, project: &str) -> bool {
        self.project_ids.iter().any(|p| p == project)
    }

    pub fn is_owner(&self) -> bool {
        self.role == Role::Owner
    }

    /// An owner of every project: an owner token with no `project_ids`.
    pub fn is_admin(&self) -> bool {
        self.is_owner() && self.project_ids.is_empty()
    }

    /// Whether this token owns `project` (reads its audit log, writes it).
    pub fn owns(&self, project: &str) -> bool {
        self.is_admin() || (self.is_owner() && self.has_project(project))
    }

    /// Owners read the projects they own; the others their `project_ids`.
    pub fn can_read(&self, project: &str) -> bool {
        self.owns(project) || self.has_project(project)
    }

    /// Owners write the projects they own, developers their `project_ids`, readonly nothing.
    pub fn can_write(&self, project: &str) -> bool {
        match self.role {
            Role::Owner => self.owns(project),
            Role::Developer => self.has_project(project),
            Role::Readonly => false,
        }
    }

    /// Whether this token may mint, list or revoke a token scoped to `projects`: an
    /// administrator any token; an owner of projects only tokens limited to some of its
    /// own — never one without `project_ids`, which for an owner means the whole server.
    pub fn can_manage(&self, projects: &[String]) -> bool {
        self.is_admin()
            || (self.is_owner()
                && !projects.is_empty()
                && projects.iter().all(|p| self.has_project(p)))
    }
}

pub use envsync_common::secret::Token;

/// A freshly minted token and what the server records about it.
#[derive(Debug, Clone)]
pub struct Minted {
    pub token: Token,
    pub info: TokenInfo,
}

/// Minting failed (no randomness, or the signer refused).
#[derive(Debug, Error)]
#[error("cannot mint a token: {0}")]
pub struct MintError(String);

#[derive(Serialize)]
struct OutClaims<'a> {
    email: &'a str,
    role: Role,
    project_ids: &'a [String],
    exp: u64,
    iat: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// The claims a token may carry. serde refuses a `project_ids` that is not an array of
/// strings and any claim not named here (`deny_unknown_fields`): a claim the server does not
/// check could be a restriction the issuer meant, so a token with one is refused rather
/// than honoured without it. `exp`, `nbf` and `iat` are checked by jsonwebtoken's
/// validation; `iss` and `aud` only when the server is configured with them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InClaims {
    email: String,
    role: Role,
    project_ids: Vec<String>,
    jti: String,
    // Known (validated by jsonwebtoken) but not used here.
    #[serde(default, rename = "exp")]
    _exp: Option<IgnoredAny>,
    #[serde(default, rename = "nbf")]
    _nbf: Option<IgnoredAny>,
    #[serde(default, rename = "iat")]
    _iat: Option<IgnoredAny>,
    #[serde(default)]
    iss: Option<IgnoredAny>,
    #[serde(default)]
    aud: Option<IgnoredAny>,
}

/// The JOSE header parameters a token may carry: the algorithm (checked against the one
/// configured) and the type. Anything else — `crit` above all, which obliges the receiver
/// to understand the extensions it names, or `kid`, `jku`, `jwk`, `x5u`, `x5c`, which
/// point at keys this server does not use — is a header the server cannot check.
const HEADER_PARAMETERS: &[&str] = &["alg", "typ"];

/// Signs and verifies tokens; holds the revocation cache.
pub struct Authenticator {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    revoked: RwLock<HashSet<String>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(settings: &JwtSettings) -> Authenticator {
        let mut validation = Validation::new(settings.algorithm);
        validation.leeway = settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(iss) = &settings.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Authenticator {
            algorithm: settings.algorithm,
            encoding: EncodingKey::from_secret(settings.secret.expose()),
            decoding: DecodingKey::from_secret(settings.secret.expose()),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            revoked: RwLock::new(HashSet::new()),
        }
    }

    /// Signs a token for `email` with `role` on `project_ids`, valid `ttl_secs` from now.
    pub fn mint(
        &self,
        email: &str,
        role: Role,
        project_ids: Vec<String>,
        ttl_secs: u64,
    ) -> Result<Minted, MintError> {
        let iat = clock::unix_now();
        let exp = iat.saturating_add(ttl_secs);
        let jti = random_text(16).map_err(|e| MintError(e.to_string()))?;
        let claims = OutClaims {
            email,
            role,
            project_ids: &project_ids,
            exp,
            iat,
            jti: &jti,
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.encoding)
            .map_err(|e| MintError(e.to_string()))?;
        Ok(Minted {
            token: Token::new(&token)
                .ok_or_else(|| MintError("the signer returned nothing".into()))?,
            info: TokenInfo {
                jti,
                email: email.to_owned(),
                role,
                project_ids,
                issued_at: clock::unix_rfc3339(iat),
                expires_at: clock::unix_rfc3339(exp),
                revoked: false,
            },
        })
    }

    /// Checks an `Authorization` header: present, small, ASCII, `Bearer <jwt>`, signed with
    /// our key and algorithm, unexpired, well-formed claims, not revoked.
    pub fn authenticate(&self, header: Option<&HeaderValue>) -> Result<Principal, ApiError> {
        let value = header.ok_or_else(|| {
            ApiError::unauthorized("no token: send 'Authorization: Bearer <token>'")
        })?;
        if value.len() > MAX_AUTHORIZATION_LEN {
            return Err(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                "the Authorization header is over 8 KiB",
            ));
        }
        let text = value
            .to_str()
            .map_err(|_| ApiError::bad_request("the Authorization header is not ASCII"))?;
        let token = text
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
            .map(|_| text[7..].trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?;
        check_header(token).map_err(ApiError::unauthorized)?;
        let data = jsonwebtoken::decode::<InClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::unauthorized(describe(e.kind())))?;
        let claims = data.claims;
        for (name, present, configured) in [
            ("iss", claims.iss.is_some(), self.issuer.is_some()),
            ("aud", claims.aud.is_some(), self.audience.is_some()),
        ] {
            if present && !configured {
                return Err(ApiError::unauthorized(format!(
                    "the token has an '{name}' claim, which this server is not configured to check"
                )));
            }
        }
        if self.is_revoked(&claims.jti) {
            return Err(ApiError::unauthorized("the token has been revoked"));
        }
        Ok(Principal {
            email: claims.email,
            role: claims.role,
            project_ids: claims.project_ids,
            jti: claims.jti,
        })
    }

    /// Adds `jti`s to the revocation cache.
    pub fn revoke<I: IntoIterator<Item = String>>(&self, jtis: I) {
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.extend(jtis);
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(jti)
    }
}

/// Refuses a JOSE header with a parameter the server cannot check, or a `typ` other than
/// `JWT`. A token that is not three base64url parts is left to jsonwebtoken to refuse.
fn check_header(token: &str) -> Result<(), String> {
    let Some(header) = token
        .split_once('.')
        .and_then(|(h, _)| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|bytes| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).ok()
        })
    else {
        return Ok(());
    };
    for (name, value) in &header {
        if name == "crit" {
            return Err(
                "the token's header names critical extensions ('crit') this server does not \
                 implement"
                    .into(),
            );
        }
        if !HEADER_PARAMETERS.contains(&name.as_str()) {
            return Err(format!(
                "the token's header has a parameter this server cannot check ({})",
                shown(name)
            ));
        }
        if name == "typ"
            && !value
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("JWT"))
        {
            return Err("the token's type (typ) is not JWT".into());
        }
    }
    Ok(())
}

/// A parameter or claim name from a token, quoted when it is short and plain; the token is
/// the caller's own, but an answer is no place for arbitrary bytes.
fn shown(name: &str) -> String {
    if name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        format!("'{name}'")
    } else {
        "a parameter with an unusual name".into()
    }
}

/// One line on why a token was refused, without repeating any of it.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token is signed with an algorithm this server does not accept".into()
        }
        ErrorKind::InvalidIssuer => "the token's issuer (iss) is not accepted".into(),
        ErrorKind::InvalidAudience => "the token's audience (aud) is not accepted".into(),
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("the token lacks the required claim '{claim}'")
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            format!("the token's claim '{claim}' has the wrong type")
        }
        ErrorKind::Json(e) => match unknown_field(&e.to_string()) {
            Some(name) => format!(
                "the token carries a claim this server cannot check ({})",
                shown(&name)
            ),
            None => "the token's claims are malformed (email, role, project_ids as an array \
                     of strings, exp and jti are required)"
                .into(),
        },
        _ => "the token is malformed".into(),
    }
}

/// The field named by serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(name, _)| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::JwtSecret;

    fn settings(alg: Algorithm) -> JwtSettings {
        JwtSettings {
            secret: JwtSecret::new(b"k3Jd9-Qm2vX7pL0aZ4rT8yW1nB6cF5hG".to_vec()).unwrap(),
            algorithm: alg,
            issuer: None,
            audience: None,
            leeway_secs: 30,
        }
    }

    fn bearer(token: &Token) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {}", token.expose())).unwrap()
    }

    /// Proves a jsonwebtoken crypto backend is compiled in: without one, signing panics.
    #[test]
    fn sign_and_verify_round_trip_in_the_default_build() {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let auth = Authenticator::new(&settings(alg));
            let minted = auth
                .mint("a@example.com", Role::Developer, vec!["p1".into()], 60)
                .unwrap();
            let who = auth.authenticate(Some(&bearer(&minted.token))).unwrap();
            assert_eq!(who.email, "a@example.com");
            assert_eq!(who.role, Role::Developer);
            assert_eq!(who.project_ids, vec!["p1".to_owned()]);
            assert_eq!(who.jti, minted.info.jti);
            assert!(!format!("{minted:?}").contains(minted.token.expose()));
        }
    }

    #[test]
    fn other_algorithm_and_revoked_tokens_are_refused() {
        let hs512 = Authenticator::new(&settings(Algorithm::HS512));
        let hs256 = Authenticator::new(&settings(Algorithm::HS256));
        let minted = hs512.mint("a@b", Role::Owner, vec![], 60).unwrap();
        let err = hs256
            .authenticate(Some(&bearer(&minted.token)))
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        hs512.revoke([minted.info.jti.clone()]);
        let err = hs512
            .authenticate(Some(&bearer(&minted.token)))
            .unwrap_err();
        assert_eq!(err.message, "the token has been revoked");
    }

    #[test]
    fn roles() {
        let who = |role| Principal {
            email: "e".into(),
            role,
            project_ids: vec!["p".into()],
            jti: "j".into(),
        };
        assert!(who(Role::Developer).can_write("p"));
        assert!(!who(Role::Developer).can_write("other"));
        assert!(!who(Role::Developer).can_read("other"));
        assert!(who(Role::Readonly).can_read("p"));
        assert!(!who(Role::Readonly).can_write("p"));
        // An owner with project_ids owns those only; without, the whole server.
        let scoped = who(Role::Owner);
        assert!(scoped.owns("p") && scoped.can_write("p") && !scoped.is_admin());
        assert!(!scoped.can_read("other") && !scoped.can_write("other"));
        assert!(scoped.can_manage(&["p".into()]));
        assert!(!scoped.can_manage(&[]));
        assert!(!scoped.can_manage(&["p".into(), "other".into()]));
        let admin = Principal {
            project_ids: vec![],
            ..who(Role::Owner)
        };
        assert!(admin.is_admin() && admin.owns("other") && admin.can_manage(&[]));
        assert!(!who(Role::Developer).can_manage(&["p".into()]));
    }

    #[test]
    fn headers_and_claims_the_server_cannot_check_are_refused() {
        let encode = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let with_header = |h: serde_json::Value| format!("{}.e30.sig", encode(h));
        assert_eq!(
            check_header(&with_header(serde_json::json!({"alg": "HS256"}))),
            Ok(())
        );
        assert_eq!(
            check_header(&with_header(
                serde_json::json!({"alg": "HS256", "typ": "jwt"})
            )),
            Ok(())
        );
        for (header, expected) in [
            (serde_json::json!({"alg": "HS256", "crit": ["exp"]}), "crit"),
            (serde_json::json!({"alg": "HS256", "kid": "k1"}), "'kid'"),
            (serde_json::json!({"alg": "HS256", "typ": "at+jwt"}), "typ"),
            (serde_json::json!({"alg": "HS256", "typ": 1}), "typ"),
            (
                serde_json::json!({"alg": "HS256", "x y": 1}),
                "unusual name",
            ),
        ] {
            let err = check_header(&with_header(header.clone())).unwrap_err();
            assert!(err.contains(expected), "{header}: {err}");
        }
        assert_eq!(
            unknown_field("unknown field `scope`, expected one of `email`"),
            Some("scope".into())
        );
        assert_eq!(unknown_field("missing field `jti`"), None);
    }
}
