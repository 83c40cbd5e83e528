//! Name validation on arbitrary strings, against independent references.
//!
//! - `validate_branch` accepts exactly what git's own rules accept for a branch
//!   (`git check-ref-format --branch`, transcribed below from git's `refs.c` and
//!   `strbuf_check_branch_ref`), less names over 255 bytes, names holding a C1 control
//!   character (U+0080–U+009F), names holding an invisible formatting character (a
//!   format character or a default-ignorable code point: bidi overrides and isolates,
//!   zero-width characters, soft hyphen, tags, variation selectors) and `@`, which
//!   envsync refuses on purpose.
//! - `validate_project` accepts only `[A-Za-z0-9._-]{1,128}`, never `..` and never a
//!   name that a URL parser would treat as a dot segment (`.`, `..`).
//! - `validate_key` accepts only 1–256 bytes without whitespace, control characters or
//!   `=`; and a valid key `K` (not starting with `#`, which starts a comment) written as
//!   `K=v` is extracted as exactly `[K]` (the validator and the extractor agree).
//! - a binding made of a valid project and branch round-trips through its line.

#![no_main]

use envsync_common::envelope::Binding;
use envsync_common::envfile;
use envsync_common::names::{validate_branch, validate_key, validate_project};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    branch(s);
    project(s);
    key(s);
    if let Some((p, b)) = s.split_once('\u{0}') {
        binding(p, b, data.len() as u64);
    }
});

/// git's `refname_disposition` table: 0 ok, 1 end of component, 2 `.`, 3 `{`, 4 bad,
/// 5 `*`.
fn disposition(b: u8) -> u8 {
    match b {
        0 | b'/' => 1,
        b'.' => 2,
        b'{' => 3,
        b'*' => 5,
        1..=0x1f | 0x7f | b' ' | b':' | b'?' | b'[' | b'\\' | b'^' | b'~' => 4,
        _ => 0,
    }
}

/// git's `check_refname_component`: the component's length, or `None` when invalid.
fn git_component(refname: &[u8]) -> Option<usize> {
    let mut last = 0u8;
    let mut i = 0;
    while i < refname.len() {
        let ch = refname[i];
        match disposition(ch) {
            1 => break,
            2 if last == b'.' => return None,
            3 if last == b'@' => return None,
            4 | 5 => return None,
            _ => {}
        }
        last = ch;
        i += 1;
    }
    let component = &refname[..i];
    if i == 0 || component[0] == b'.' || component.ends_with(b".lock") {
        return None;
    }
    Some(i)
}

/// git's `check_refname_format(refname, 0)` (its `@` check never fires here: the name
/// always starts with `refs/heads/`).
fn git_refname_ok(refname: &[u8]) -> bool {
    let mut rest = refname;
    loop {
        let Some(len) = git_component(rest) else {
            return false;
        };
        if len == rest.len() {
            break;
        }
        // rest[len] is '/' (or NUL, which git sees as the end of the string).
        if rest[len] == 0 {
            return false;
        }
        rest = &rest[len + 1..];
    }
    refname.last() != Some(&b'.')
}

/// `git check-ref-format --branch NAME` outside a repository.
fn git_branch_ok(name: &str) -> bool {
    if name.starts_with('-') || name == "HEAD" {
        return false;
    }
    git_refname_ok(format!("refs/heads/{name}").as_bytes())
}

fn branch(s: &str) {
    let ours = validate_branch(s).is_ok();
    let has_c1 = s.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c));
    // Written out here rather than calling the validator's own helper: this is the
    // reference. Unicode's format characters (Cf) and Default_Ignorable_Code_Point
    // (DerivedCoreProperties.txt), and the line and paragraph separators.
    let invisible = s.chars().any(|c| {
        matches!(c as u32, 0x00ad | 0x034f | 0x0600..=0x0605 | 0x061c | 0x06dd | 0x070f
            | 0x0890..=0x0891 | 0x08e2 | 0x115f..=0x1160 | 0x17b4..=0x17b5 | 0x180b..=0x180f
            | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x206f | 0x3164 | 0xfe00..=0xfe0f
            | 0xfeff | 0xffa0 | 0xfff0..=0xfffb | 0x110bd | 0x110cd | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3 | 0x1d173..=0x1d17a | 0xe0000..=0xe0fff)
    });
    // Refused on purpose although git takes them: over 255 bytes, C1 controls, invisible
    // formatting characters, and `@` (which git itself reads as `HEAD` in most commands).
    let git = git_branch_ok(s) && s.len() <= 255 && !has_c1 && !invisible && s != "@";
    assert_eq!(
        ours, git,
        "validate_branch({s:?}) = {ours}, git's rules say {git}"
    );
    if ours {
        assert!(!s.contains("..") && !s.starts_with('-'));
        assert!(!s.chars().any(char::is_control));
    }
}

fn project(s: &str) {
    let ours = validate_project(s).is_ok();
    let expected = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !s.contains("..")
        && s != ".";
    assert_eq!(ours, expected, "validate_project({s:?}) = {ours}");
}

fn key(s: &str) {
    let ours = validate_key(s).is_ok();
    let expected = (1..=256).contains(&s.len())
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '=');
    assert_eq!(ours, expected, "validate_key({s:?}) = {ours}");
    if ours && !s.starts_with('#') && !s.starts_with('\u{feff}') {
        let src = format!("{s}=v\n");
        let keys = envfile::keys(src.as_bytes())
            .unwrap_or_else(|e| panic!("{src:?} does not parse: {e}"))
            .names;
        assert_eq!(keys, [s], "{src:?}");
    }
}

fn binding(project: &str, branch: &str, version: u64) {
    if validate_project(project).is_err() || validate_branch(branch).is_err() {
        return;
    }
    let b = Binding::new(project, branch, version);
    let line = b.line();
    let parsed = Binding::parse(line.trim_end_matches('\n'))
        .unwrap_or_else(|e| panic!("{line:?} does not parse: {e}"));
    assert_eq!(parsed, b);
    let mut plaintext = line.into_bytes();
    plaintext.extend_from_slice(b"A=1\n");
    let (split, rest) = Binding::split(&plaintext).expect("split");
    assert_eq!(split, b);
    assert_eq!(rest, b"A=1\n");
}
