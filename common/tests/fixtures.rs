//! Every fixture's key names, as pinned by its `.keys` file.

#![allow(clippy::unwrap_used)]

use envsync_common::envfile;
use std::fs;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn expected(keys_file: &Path) -> Vec<String> {
    fs::read_to_string(keys_file)
        .expect("a fixture's .keys file is readable")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_fixture_yields_its_keys() {
    let mut files: Vec<PathBuf> = fs::read_dir(fixtures().join("dotenv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "env"))
        .collect();
    files.push(fixtures().join("sample.env"));
    assert!(files.len() >= 30, "fixtures missing: {files:?}");
    for env in files {
        let src = fs::read(&env).unwrap();
        let got = envfile::keys(&src)
            .unwrap_or_else(|e| panic!("{}: {e}", env.display()))
            .names;
        assert_eq!(
            got,
            expected(&env.with_extension("keys")),
            "{}",
            env.display()
        );
    }
}

#[test]
fn duplicates_fixture_reports_the_duplicate() {
    let src = fs::read(fixtures().join("dotenv/duplicates.env")).unwrap();
    assert_eq!(envfile::keys(&src).unwrap().duplicates, ["A"]);
}

/// H5: a 1 MB line, a 1 MB unterminated quote and 100 000 keys, each in linear time
/// (the bound only says "did not hang": a quadratic scan would take minutes).
#[test]
fn large_inputs_parse() {
    let start = std::time::Instant::now();
    let mut big = b"BIG=".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1 << 20));
    big.push(b'\n');
    assert_eq!(envfile::keys(&big).unwrap().names, ["BIG"]);
    let mut open = b"OPEN=\"".to_vec();
    open.extend(std::iter::repeat_n(b'x', 1 << 20));
    assert!(envfile::keys(&open).is_err());

    let many: String = (0..100_000)
        .map(|i| format!("KEY_{i}=value{i}\n"))
        .collect();
    let keys = envfile::keys(many.as_bytes()).unwrap().names;
    assert_eq!(keys.len(), 100_000);
    assert_eq!(keys[99_999], "KEY_99999");
    assert_eq!(envfile::entries(many.as_bytes()).unwrap().len(), 100_000);
    let took = start.elapsed();
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
}
