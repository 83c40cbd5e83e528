//! envsync's branch-name rule against git's own: every name of the fuzzer's minimized
//! corpus (`fuzz/corpus/names/`) and a list of known edge cases goes through
//! `validate_branch` and through `git check-ref-format --branch`, and the two agree except
//! where envsync is stricter on purpose: more than 255 bytes, a C1 control character, an
//! invisible formatting character (bidi overrides, zero-width), and `@` (which git reads
//! as `HEAD`). This also checks the reference the `names` fuzz target
//! transcribes from git's sources.

#![allow(clippy::unwrap_used)]

use envsync_common::names::validate_branch;
use std::path::Path;
use std::process::{Command, Stdio};

fn git_accepts(dir: &Path, name: &str) -> bool {
    Command::new("git")
        .args(["check-ref-format", "--branch", name])
        .current_dir(dir)
        .env("GIT_CEILING_DIRECTORIES", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn validate_branch_agrees_with_git() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/names");
    let mut names: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .filter_map(|e| String::from_utf8(std::fs::read(e.unwrap().path()).unwrap()).ok())
        .collect();
    assert!(
        names.len() > 100,
        "the names corpus is missing: {}",
        corpus.display()
    );
    for edge in [
        "main",
        "a/b/c",
        "feature/ü",
        "x@y",
        "a=b",
        "@",
        "HEAD",
        "head",
        "-x",
        "a..b",
        "a.lock",
        "a/b.lock/c",
        ".a",
        "a/.b",
        "a.",
        "a/",
        "/a",
        "a//b",
        "a@{1}",
        "@{",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "a b",
        "a\tb",
        "a\u{7f}",
        "a\u{85}b",
        "a\u{a0}b",
        "é/ü",
        "main\u{202e}x",
        "a\u{200b}",
    ] {
        names.push(edge.to_owned());
    }
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for name in names.iter().filter(|n| !n.contains('\0')) {
        let ours = validate_branch(name).is_ok();
        let stricter = name.len() > 255
            || name.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c))
            || name == "@"
            || name.chars().any(envsync_common::names::is_invisible_format);
        let git = git_accepts(dir.path(), name) && !stricter;
        assert_eq!(ours, git, "{name:?}: envsync {ours}, git {git}");
        compared += 1;
    }
    assert!(compared > 100, "{compared}");
}
