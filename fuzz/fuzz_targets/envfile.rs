//! The `.env` key extractor and value reader on arbitrary bytes.
//!
//! Invariants, not just "no crash":
//! - `keys` and `entries` agree: both fail, or both succeed with the same names;
//! - every returned key name is a valid key name and a substring of the input, holds no
//!   line break, and `duplicates` is a subset of `names`;
//! - a BOM in front of a file that has none, or CRLF instead of LF, changes no name;
//! - with a sentinel planted at the end of every line that has an `=` (so it sits after
//!   the first `=` of its line: in a value, a quoted value or a comment), no error's
//!   `Display` or `Debug`, and no `Debug` of the parsed entries, contains the sentinel.
//!   The sentinel holds a space and a DEL, which no key name may contain, so it can only
//!   show up by leaking a value;
//! - an error's `Display` is one line;
//! - the document model (`envdoc`) parses exactly what the extractor accepts, gives back
//!   the input byte for byte, and the same key names.

#![no_main]

use envsync_common::envdoc::Document;
use envsync_common::envfile::{self, ParseError};
use envsync_common::names::validate_key;
use libfuzzer_sys::fuzz_target;

const SENTINEL: &[u8] = b"\x7fSENTINEL 9f3a\x7f";

fuzz_target!(|data: &[u8]| {
    check(data);
    round_trip(data);
    check_no_leak(&plant(data));
    same_names(data);
});

/// The document model agrees with the extractor and keeps every byte.
fn round_trip(src: &[u8]) {
    match (envfile::keys(src), Document::parse(src)) {
        (Ok(keys), Ok(doc)) => {
            assert_eq!(
                doc.to_bytes().expose(),
                src,
                "the document changed the bytes"
            );
            assert_eq!(doc.keys(), keys.names, "the document has other keys");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "the document fails differently"),
        (keys, doc) => panic!(
            "the document and the extractor disagree: {keys:?} / {:?}",
            doc.err()
        ),
    }
}

/// A BOM in front of a file that has none, or CRLF for every LF, changes no name.
fn same_names(src: &[u8]) {
    let Ok(keys) = envfile::keys(src) else {
        return;
    };
    if !src.starts_with(b"\xef\xbb\xbf") {
        let mut bom = b"\xef\xbb\xbf".to_vec();
        bom.extend_from_slice(src);
        let with_bom = envfile::keys(&bom).expect("a BOM made the file fail");
        assert_eq!(with_bom.names, keys.names, "a BOM changed the names");
    }
    let mut crlf = Vec::with_capacity(src.len() * 2);
    for &b in src {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    let with_crlf = envfile::keys(&crlf).expect("CRLF made the file fail");
    assert_eq!(with_crlf.names, keys.names, "CRLF changed the names");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn check(src: &[u8]) {
    let keys = envfile::keys(src);
    let entries = envfile::entries(src);
    match (&keys, &entries) {
        (Ok(keys), Ok(entries)) => {
            let mut from_entries: Vec<&str> = Vec::new();
            for e in entries {
                if !from_entries.contains(&e.key.as_str()) {
                    from_entries.push(&e.key);
                }
            }
            assert_eq!(from_entries, keys.names, "keys and entries disagree");
            for name in &keys.names {
                assert!(validate_key(name).is_ok(), "invalid key name {name:?}");
                assert!(
                    contains(src, name.as_bytes()),
                    "{name:?} is not in the input"
                );
                assert!(!name.contains(['\r', '\n']), "{name:?}");
            }
            for d in &keys.duplicates {
                assert!(keys.names.contains(d), "duplicate {d:?} is not a name");
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "keys and entries fail differently"),
        _ => panic!("keys and entries disagree: {keys:?} / {entries:?}"),
    }
}

/// Inserts the sentinel before the end of every line that contains an `=`.
fn plant(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut line_has_eq = false;
    for &b in data {
        if b == b'\n' || b == b'\r' {
            if line_has_eq {
                out.extend_from_slice(SENTINEL);
            }
            line_has_eq = false;
        } else if b == b'=' {
            line_has_eq = true;
        }
        out.push(b);
    }
    if line_has_eq {
        out.extend_from_slice(SENTINEL);
    }
    out
}

fn check_no_leak(src: &[u8]) {
    check(src);
    let shown = |e: &ParseError| format!("{e} {e:?} {e:#?}");
    match envfile::keys(src) {
        Ok(keys) => {
            let debug = format!("{keys:?}");
            assert!(!contains(debug.as_bytes(), SENTINEL), "{debug}");
        }
        Err(e) => {
            let text = shown(&e);
            assert!(
                !contains(text.as_bytes(), SENTINEL),
                "error leaks a value: {text}"
            );
            let line = e.to_string();
            assert!(
                !line.contains(['\n', '\r']),
                "error is not one line: {line:?}"
            );
        }
    }
    match envfile::entries(src) {
        Ok(entries) => {
            let debug = format!("{entries:?} {entries:#?}");
            assert!(
                !contains(debug.as_bytes(), SENTINEL),
                "entry Debug leaks: {debug}"
            );
        }
        Err(e) => {
            let text = shown(&e);
            assert!(
                !contains(text.as_bytes(), SENTINEL),
                "error leaks a value: {text}"
            );
        }
    }
}
