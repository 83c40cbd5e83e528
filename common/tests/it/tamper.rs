//! Every single-byte change and every truncation of a sealed file makes opening fail
//! (docs/testing.md A5, exhaustively at the library level; `tests/tests/it/malicious.rs` shows the
//! CLI writing nothing for a representative set). Both envelope modes.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope::{self, Binding, Open, Seal};
use envsync_common::secret::SecretString;
use envsync_tests::armor::{armor, dearmor};

const ENV: &[u8] = b"API_KEY=abc\nexport PEM=\"-----BEGIN-----\nxyz\n-----END-----\"\n";

/// Opens every variant of `binary` with one byte changed, and every proper prefix.
fn every_change_fails(binary: &[u8], open: impl Fn(&str) -> bool) {
    assert!(open(&armor(binary)), "the untouched file opens");
    let mut tried = 0;
    for at in 0..binary.len() {
        for xor in [0x01, 0x80] {
            let mut b = binary.to_vec();
            b[at] ^= xor;
            assert!(!open(&armor(&b)), "byte {at} ^ {xor:#x} still opened");
            tried += 1;
        }
    }
    for len in 0..binary.len() {
        assert!(!open(&armor(&binary[..len])), "a {len}-byte prefix opened");
        tried += 1;
    }
    let mut longer = binary.to_vec();
    longer.push(0);
    assert!(!open(&armor(&longer)), "a byte appended still opened");
    assert!(tried > 3 * 150, "{tried}");
}

#[test]
fn passphrase_files_refuse_every_change() {
    let pass = SecretString::from("a passphrase".to_owned());
    let binding = Binding::new("p", "main", 3);
    let armored = envelope::seal(
        &binding,
        ENV,
        &Seal::Passphrase {
            passphrase: &pass,
            work_factor: 10,
        },
    )
    .unwrap();
    every_change_fails(&dearmor(&armored), |a| {
        let opened = envelope::open(
            a,
            &Open::Passphrase {
                passphrase: &pass,
                max_work_factor: 10,
            },
        );
        match opened {
            Ok(o) => {
                assert_eq!((o.binding.clone(), o.env.expose()), (binding.clone(), ENV));
                true
            }
            Err(_) => false,
        }
    });
}

#[test]
fn recipient_files_refuse_every_change() {
    let alice = age::x25519::Identity::generate();
    let binding = Binding::new("p", "main", 3);
    let armored = envelope::seal(&binding, ENV, &Seal::Recipients(&[alice.to_public()])).unwrap();
    every_change_fails(&dearmor(&armored), |a| {
        match envelope::open(a, &Open::Identities(std::slice::from_ref(&alice))) {
            Ok(o) => {
                assert_eq!((o.binding.clone(), o.env.expose()), (binding.clone(), ENV));
                true
            }
            Err(_) => false,
        }
    });
}
