//! Value fingerprints: telling whether two values are equal without showing either.
//!
//! Each project has a random 32-byte fingerprint key. It travels only inside the
//! encrypted envelope (its meta line, see [`crate::envelope`]), so only readers know it,
//! and `rotate` replaces it. A push sends, beside each key name, a truncated
//! HMAC-SHA-256 under that key of (project, name, value); the server stores them with the
//! version. Anyone with the key names and fingerprints can then see which values are
//! equal across the versions and branches of one project, and nothing else: without the
//! key, a guess at a value cannot be tested.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Bytes of HMAC kept: 128 bits, hex-encoded (32 characters).
const KEPT: usize = 16;

/// A project's fingerprint key. `Debug` never shows it; wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct FingerprintKey(zeroize::Zeroizing<[u8; 32]>);

/// Why a fingerprint key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("not a fingerprint key")]
    BadKey,
    #[error("cannot generate a key: {0}")]
    Random(String),
}

impl FingerprintKey {
    pub fn generate() -> Result<FingerprintKey, FingerprintError> {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| FingerprintError::Random(e.to_string()))?;
        Ok(FingerprintKey(key))
    }

    /// The text form carried in the envelope (a secret: only ever inside one).
    pub fn encode(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(*self.0))
    }

    pub fn decode(text: &str) -> Result<FingerprintKey, FingerprintError> {
        let bytes = zeroize::Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| FingerprintError::BadKey)?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| FingerprintError::BadKey)?;
        Ok(FingerprintKey(zeroize::Zeroizing::new(key)))
    }

    /// The key's public id: which key a set of fingerprints was made with, so that sets
    /// made with different keys (before and after a `rotate`) are never compared.
    pub fn id(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"envsync fingerprint key id");
        hex(&mac.finalize().into_bytes()[..KEPT])
    }

    /// The fingerprint of `value` for key `name` in `project`.
    pub fn fingerprint(&self, project: &str, name: &str, value: &[u8]) -> String {
        // Lengths first, so no (project, name, value) triple is the prefix of another.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [project.as_bytes(), name.as_bytes(), value] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        hex(&mac.finalize().into_bytes()[..KEPT])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_equal_fingerprints_and_nothing_else() {
        let key = FingerprintKey::generate().unwrap();
        let a = key.fingerprint("p", "API_KEY", b"s3cret");
        assert_eq!(a.len(), 32);
        assert_eq!(a, key.fingerprint("p", "API_KEY", b"s3cret"));
        assert_ne!(a, key.fingerprint("p", "API_KEY", b"s3cret2"));
        assert_ne!(a, key.fingerprint("p", "OTHER", b"s3cret"));
        assert_ne!(a, key.fingerprint("q", "API_KEY", b"s3cret"));
        // Boundaries are part of the input: "ab"+"c" is not "a"+"bc".
        assert_ne!(
            key.fingerprint("p", "ab", b"c"),
            key.fingerprint("p", "a", b"bc")
        );
        let other = FingerprintKey::generate().unwrap();
        assert_ne!(a, other.fingerprint("p", "API_KEY", b"s3cret"));
        let back = FingerprintKey::decode(&key.encode()).unwrap();
        assert_eq!(back.fingerprint("p", "API_KEY", b"s3cret"), a);
        assert!(!format!("{key:?}").contains(key.encode().as_str()));
        assert!(FingerprintKey::decode("AAAA").is_err());
        // The id names the key, is not a fingerprint of anything, and differs per key.
        assert_eq!(key.id().len(), 32);
        assert_eq!(key.id(), back.id());
        assert_ne!(key.id(), other.id());
        assert_ne!(key.id(), key.fingerprint("", "", b""));
    }
}
