//! Ed25519 signing keys: who wrote a version, in team-key mode.
//!
//! age says nothing about who sealed a file: anyone who knows the recipients' public keys
//! can seal one for them. So in team mode each member also holds a signing key, the
//! project's `.envsync.toml` lists every member's public signing key, and a push signs
//! the binding line and the exact plaintext (see [`crate::envelope`]). A reader accepts a
//! version only when a member of the config it trusts signed it.
//!
//! Text forms: a public key is `ed25519:` followed by the 32 bytes in unpadded base64url;
//! a secret key file line is `ENVSYNC-ED25519-SECRET-KEY-` followed by the 32-byte seed in
//! the same encoding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "ENVSYNC-ED25519-SECRET-KEY-";

/// Why a key or signature could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SigningError {
    #[error("not an envsync signing public key (expected ed25519:<base64url>)")]
    BadPublicKey,
    #[error("not an envsync signing secret key")]
    BadSecretKey,
    #[error("cannot generate a key: {0}")]
    Random(String),
}

/// A member's public signing key, as written in `.envsync.toml`.
#[derive(Clone, PartialEq, Eq)]
pub struct SignerKey(ed25519_dalek::VerifyingKey);

impl SignerKey {
    /// Whether `signature` over `message` was made with this key's secret. Strict: no
    /// malleable or small-order forms.
    pub fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Display for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PUBLIC_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.0.as_bytes())
        )
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({self})")
    }
}

impl FromStr for SignerKey {
    type Err = SigningError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s
            .strip_prefix(PUBLIC_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(SigningError::BadPublicKey)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| SigningError::BadPublicKey)?;
        // A weak (small-order) key would verify signatures nobody made.
        if key.is_weak() {
            return Err(SigningError::BadPublicKey);
        }
        Ok(SignerKey(key))
    }
}

/// A member's secret signing key. `Debug` never shows it; the seed is wiped on drop.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<SigningKey, SigningError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| SigningError::Random(e.to_string()))?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    pub fn public(&self) -> SignerKey {
        SignerKey(self.0.verifying_key())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The key file line (a secret: write it only to a 0600 file).
    pub fn to_secret_line(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(format!(
            "{SECRET_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.0.to_bytes())
        ))
    }

    /// Reads the first secret key line of a key file (comment lines start with `#`).
    pub fn from_file_text(text: &str) -> Result<SigningKey, SigningError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or(SigningError::BadSecretKey)?;
        let seed = line
            .strip_prefix(SECRET_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .map(zeroize::Zeroizing::new)
            .ok_or(SigningError::BadSecretKey)?;
        let seed: &[u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| SigningError::BadSecretKey)?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(seed)))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey([redacted], public {})", self.public())
    }
}

/// Encodes a signature for the envelope's meta line.
pub(crate) fn encode_signature(signature: &[u8; 64]) -> String {
    URL_SAFE_NO_PAD.encode(signature)
}

/// Decodes a signature from the envelope's meta line.
pub(crate) fn decode_signature(text: &str) -> Option<[u8; 64]> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sign() {
        let key = SigningKey::generate().unwrap();
        let public = key.public();
        let text = public.to_string();
        assert!(
            text.starts_with("ed25519:") && text.len() == 8 + 43,
            "{text}"
        );
        assert_eq!(text.parse::<SignerKey>().unwrap(), public);
        let again =
            SigningKey::from_file_text(&format!("# c\n{}\n", *key.to_secret_line())).unwrap();
        assert_eq!(again.public(), public);
        let sig = key.sign(b"m");
        assert!(public.verifies(b"m", &sig));
        assert!(!public.verifies(b"n", &sig));
        let other = SigningKey::generate().unwrap().public();
        assert!(!other.verifies(b"m", &sig));
        assert!(!format!("{key:?}").contains(&*key.to_secret_line()));
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in [
            "",
            "ed25519:",
            "ed25519:AAAA",
            "age1qqqq",
            // The identity point: small order, would accept forged signatures.
            "ed25519:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(bad.parse::<SignerKey>().is_err(), "{bad}");
        }
        assert!(SigningKey::from_file_text("# only a comment\n").is_err());
        assert!(SigningKey::from_file_text("ENVSYNC-ED25519-SECRET-KEY-AAAA").is_err());
    }
}
