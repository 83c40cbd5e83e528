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
use envsync_common::api::{Role, TokenInfo};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
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

impl Principal {
    fn has_project(&self, project: &str) -> bool {
        self.project_ids.iter().any(|p| p == project)
    }

    /// Owners read every project; the others their `project_ids`.
    pub fn can_read(&self, project: &str) -> bool {
        self.role == Role::Owner || self.has_project(project)
    }

    /// Owners write every project, developers their `project_ids`, readonly nothing.
    pub fn can_write(&self, project: &str) -> bool {
        match self.role {
            Role::Owner => true,
            Role::Developer => self.has_project(project),
            Role::Readonly => false,
        }
    }

    pub fn is_owner(&self) -> bool {
        self.role == Role::Owner
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

/// The claims a token must carry; serde refuses a `project_ids` that is not an array of
/// strings, and an `exp` that is not a number.
#[derive(Deserialize)]
struct InClaims {
    email: String,
    role: Role,
    project_ids: Vec<String>,
    jti: String,
}

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
        let data = jsonwebtoken::decode::<InClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::unauthorized(describe(e.kind())))?;
        let claims = data.claims;
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
        ErrorKind::Json(_) => "the token's claims are malformed (email, role, project_ids as an \
                               array of strings, exp and jti are required)"
            .into(),
        _ => "the token is malformed".into(),
    }
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
        assert!(who(Role::Owner).can_write("other"));
        assert!(who(Role::Developer).can_write("p"));
        assert!(!who(Role::Developer).can_write("other"));
        assert!(!who(Role::Developer).can_read("other"));
        assert!(who(Role::Readonly).can_read("p"));
        assert!(!who(Role::Readonly).can_write("p"));
    }
}
