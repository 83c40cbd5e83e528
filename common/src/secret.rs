//! Containers for secret material whose `Debug` never shows the contents.
//!
//! Passphrases use [`SecretString`] (re-exported from age's `secrecy`); decrypted file
//! contents and parsed values use [`SecretBytes`]. Both are wiped from memory on drop.

use std::fmt;
use zeroize::Zeroizing;

pub use age::secrecy::{ExposeSecret, SecretString};

/// Secret bytes: a decrypted `.env` file or one of its values. `==` on them is
/// constant-time ([`ct_eq`]).
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

/// Compares two secrets in a time that depends on their lengths only, never on where they
/// first differ. Every comparison of a secret (token, key, passphrase, plaintext) uses
/// this, never `==` on the raw bytes; a test in the server's suite greps for that.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.expose(), other.expose())
    }
}

impl Eq for SecretBytes {}

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The secret bytes. Named like `secrecy`'s method so every use is easy to find.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes(bytes)
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes::new(bytes)
    }
}

/// A bearer token (a signed JWT), for the server that mints it and the CLI that sends it.
/// `Debug` never shows it; [`Token::expose`] is the one way out; `==` is constant-time.
/// It serializes as the bare string (the CLI's user configuration holds one).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Token {}

impl Token {
    /// Accepts a token with or without the `Bearer ` prefix; `None` when nothing is left.
    pub fn new(raw: &str) -> Option<Token> {
        let raw = raw.trim();
        let token = match raw.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => raw[7..].trim(),
            _ if raw.eq_ignore_ascii_case("bearer") => "",
            _ => raw,
        };
        (!token.is_empty()).then(|| Token(token.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted], {} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretBytes::new(b"hunter2-sentinel".to_vec());
        for shown in [format!("{s:?}"), format!("{s:#?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("[redacted]"));
        }
        let p = SecretString::from("hunter2-sentinel".to_owned());
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
