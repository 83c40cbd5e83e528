//! The envelope: binding lines, the armored age header, and opening hostile files.
//!
//! The first byte picks what the rest of the input is:
//! - 0: armored-ish text given as is to `check_armored`, `scrypt_work_factor` and `open`
//!   (a passphrase with a low maximum work factor, and an X25519 identity);
//! - 1: a binary age file, armored by the harness, so the fuzzer explores the header and
//!   payload rather than base64;
//! - 2 and 3: edits (byte flips at chosen offsets, then a truncation) applied to a real
//!   file sealed with a passphrase (2) or to X25519 recipients (3), then opened with the
//!   right key: it must open only when the edits changed nothing, and then give back
//!   exactly what was sealed (authenticity: no edit is ever accepted);
//! - 4: a plaintext split into its binding line and the env file.
//!
//! Invariants beyond "no crash": a binding that parses is canonical (its `line()` gives
//! back the same bytes); an error's `Display` is one line; `scrypt_work_factor` above the
//! cap means `open` refuses with `ExcessiveWork` and does no scrypt work (libFuzzer's
//! malloc limit and timeout catch the work); nothing decrypts under a wrong key.

#![no_main]

use age::armor::{ArmoredWriter, Format};
use age::secrecy::SecretString;
use envsync_common::envelope::{self, Binding, EnvelopeError, Open, Seal};
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::sync::OnceLock;

/// The cap the harness opens with: 2^10 scrypt rounds cost about a millisecond.
const MAX_WF: u8 = 10;
const PASS: &str = "fuzz passphrase";
const ENV: &[u8] = b"# comment\nA=1\nexport B=\"two\nlines\"\n";

struct Fixed {
    identity: age::x25519::Identity,
    scrypt: Vec<u8>,
    x25519: Vec<u8>,
}

fn binding() -> Binding {
    Binding::new("proj", "feature/x", 7)
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let identity = age::x25519::Identity::generate();
        let pass = SecretString::from(PASS.to_owned());
        let scrypt = envelope::seal(
            &binding(),
            ENV,
            &Seal::Passphrase {
                passphrase: &pass,
                work_factor: MAX_WF,
            },
        )
        .expect("seal");
        let x25519 = envelope::seal(&binding(), ENV, &Seal::Recipients(&[identity.to_public()]))
            .expect("seal");
        Fixed {
            scrypt: dearmor(&scrypt),
            x25519: dearmor(&x25519),
            identity,
        }
    })
}

fn dearmor(armored: &str) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    age::armor::ArmoredReader::new(armored.as_bytes())
        .read_to_end(&mut out)
        .expect("dearmor");
    out
}

fn armor(binary: &[u8]) -> String {
    let mut out = Vec::new();
    let mut w = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).expect("armor");
    w.write_all(binary).expect("armor");
    w.finish().expect("armor");
    String::from_utf8(out).expect("armor is ASCII")
}

fn one_line(e: &EnvelopeError) {
    let line = e.to_string();
    assert!(
        !line.contains(['\n', '\r']),
        "error is not one line: {line:?}"
    );
    let debug = format!("{e:?}");
    assert!(!debug.contains(PASS), "{debug}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 5 {
        0 => hostile(&String::from_utf8_lossy(rest)),
        1 => hostile(&armor(rest)),
        2 => edited(&fixed().scrypt, rest, true),
        3 => edited(&fixed().x25519, rest, false),
        _ => split(rest),
    }
});

/// Any armored-ish text: each entry point fails cleanly or succeeds consistently.
fn hostile(armored: &str) {
    let checked = envelope::check_armored(armored);
    if let Err(e) = &checked {
        one_line(e);
    }
    let wf = envelope::scrypt_work_factor(armored);
    if checked.is_err() {
        assert!(
            wf.is_err(),
            "scrypt_work_factor accepted what check_armored refused"
        );
    }
    let pass = SecretString::from(PASS.to_owned());
    let by_pass = envelope::open(
        armored,
        &Open::Passphrase {
            passphrase: &pass,
            max_work_factor: MAX_WF,
        },
    );
    let by_id = envelope::open(
        armored,
        &Open::Identities(std::slice::from_ref(&fixed().identity)),
    );
    for r in [&by_pass, &by_id] {
        match r {
            Ok(opened) => {
                // Only a file sealed for these keys opens, and what it holds is bound.
                let line = opened.binding.line();
                assert_eq!(
                    Binding::parse(line.trim_end_matches('\n')).ok().as_ref(),
                    Some(&opened.binding)
                );
            }
            Err(e) => one_line(e),
        }
    }
    if let Ok(Some(n)) = wf
        && n > MAX_WF
    {
        assert!(
            by_pass.is_err(),
            "a file needing work factor {n} opened under cap {MAX_WF}"
        );
    }
    if by_pass.is_ok() {
        assert!(
            matches!(wf, Ok(Some(n)) if n <= MAX_WF),
            "opened, but work factor {wf:?}"
        );
    }
}

/// Edits to a real file: byte flips (offset u16 LE, xor byte), then an optional cut.
fn edited(original: &[u8], ops: &[u8], scrypt: bool) {
    let mut file = original.to_vec();
    let (cut, flips) = match ops.split_first() {
        Some((&c, f)) => (c, f),
        None => (0, &[][..]),
    };
    for op in flips.chunks_exact(3) {
        let at = u16::from_le_bytes([op[0], op[1]]) as usize;
        if let Some(b) = file.get_mut(at % original.len()) {
            *b ^= op[2];
        }
    }
    // A non-zero cut drops that many bytes from the end (wrapping at the length).
    if cut != 0 {
        let keep = file.len().saturating_sub(cut as usize % file.len().max(1));
        file.truncate(keep);
    }
    let armored = armor(&file);
    let pass = SecretString::from(PASS.to_owned());
    let identities = [fixed().identity.clone()];
    let with = if scrypt {
        Open::Passphrase {
            passphrase: &pass,
            max_work_factor: MAX_WF,
        }
    } else {
        Open::Identities(&identities)
    };
    match envelope::open(&armored, &with) {
        Ok(opened) => {
            assert!(
                file == original,
                "an edited file opened: {:?}",
                opened.binding
            );
            assert_eq!(opened.binding, binding());
            assert_eq!(opened.env.expose(), ENV);
        }
        Err(e) => {
            assert!(file != original, "the untouched file failed to open: {e}");
            one_line(&e);
        }
    }
}

/// A decrypted plaintext: the binding line, then the env file.
fn split(plaintext: &[u8]) {
    match Binding::split(plaintext) {
        Ok((b, rest)) => {
            let line = b.line();
            assert!(
                plaintext.starts_with(line.as_bytes()),
                "binding {b:?} is not canonical"
            );
            assert_eq!(&plaintext[line.len()..], rest);
        }
        Err(e) => one_line(&e),
    }
    if let Ok(s) = std::str::from_utf8(plaintext) {
        let first = s.split('\n').next().unwrap_or_default();
        if let Ok(b) = Binding::parse(first) {
            assert_eq!(
                b.line().trim_end_matches('\n'),
                first,
                "binding {b:?} is not canonical"
            );
        }
    }
}
