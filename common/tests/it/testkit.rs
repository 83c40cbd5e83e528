//! The armored vectors of the age test kit (docs/testing.md A8; see `testkit/README.md` for
//! where they come from). Every vector marked `success` decrypts and authenticates through
//! `envelope::open` (and is then refused only for lacking an envsync binding line, as any
//! file not made by envsync is), with the expected payload; every other vector is refused
//! before a byte of plaintext is returned.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope::{self, EnvelopeError, Open};
use envsync_common::secret::SecretString;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

struct Vector {
    name: String,
    expect: String,
    payload: Option<String>,
    identity: Option<String>,
    passphrase: Option<String>,
    file: String,
}

fn vectors() -> Vec<Vector> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testkit");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (header, file) = text.split_once("\n\n").unwrap();
        let field = |key: &str| {
            header
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}: ")))
                .map(str::to_owned)
        };
        out.push(Vector {
            expect: field("expect").unwrap(),
            payload: field("payload"),
            identity: field("identity"),
            passphrase: field("passphrase"),
            file: file.to_owned(),
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn open(v: &Vector) -> Result<envelope::Opened, EnvelopeError> {
    if let Some(p) = &v.passphrase {
        let pass = SecretString::from(p.clone());
        envelope::open(
            &v.file,
            &Open::Passphrase {
                passphrase: &pass,
                max_work_factor: envelope::DEFAULT_MAX_WORK_FACTOR,
            },
        )
    } else {
        // A vector with neither (a header failure) is tried with a stranger's key.
        let id = match &v.identity {
            Some(id) => age::x25519::Identity::from_str(id).unwrap(),
            None => age::x25519::Identity::generate(),
        };
        envelope::open(&v.file, &Open::Identities(std::slice::from_ref(&id)))
    }
}

/// The payload, decrypted by the age crate alone (to check the vector itself).
fn age_payload(v: &Vector) -> Vec<u8> {
    let reader = age::armor::ArmoredReader::new(v.file.as_bytes());
    let decryptor = age::Decryptor::new(reader).unwrap();
    let mut out = Vec::new();
    let mut plain: Box<dyn Read> = if let Some(p) = &v.passphrase {
        let id = age::scrypt::Identity::new(SecretString::from(p.clone()));
        Box::new(
            decryptor
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .unwrap(),
        )
    } else {
        let id = age::x25519::Identity::from_str(v.identity.as_deref().unwrap()).unwrap();
        Box::new(
            decryptor
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .unwrap(),
        )
    };
    plain.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn every_armored_testkit_vector_has_its_expected_outcome() {
    let vectors = vectors();
    assert!(vectors.len() >= 15, "{}", vectors.len());
    let mut successes = 0;
    for v in &vectors {
        let result = open(v);
        if v.expect == "success" {
            // Decrypted and authenticated to the end; only envsync's binding is missing.
            assert!(
                matches!(result, Err(EnvelopeError::MissingBinding)),
                "{}: {:?}",
                v.name,
                result.map(|_| ())
            );
            let digest: String = Sha256::digest(age_payload(v))
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(Some(digest), v.payload, "{}", v.name);
            successes += 1;
        } else {
            match result {
                Err(EnvelopeError::MissingBinding) | Ok(_) => {
                    panic!("{} ({}) decrypted", v.name, v.expect)
                }
                Err(e) => assert!(!e.to_string().contains('\n'), "{}: {e}", v.name),
            }
            if v.expect == "header failure" {
                assert!(envelope::check_armored(&v.file).is_err(), "{}", v.name);
            }
        }
    }
    assert_eq!(successes, 2);
}
