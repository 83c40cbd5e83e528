//! Every fixture's key names, as pinned by its `.keys` file, and every fixture through the
//! document model: byte for byte, through a set and an unset of each of its keys, and as
//! our side of a three-way merge.

#![allow(clippy::unwrap_used)]

use envsync_common::{envdoc, envfile, merge};
use envsync_tests::{env_fixtures, fixtures};
use std::fs;
use std::path::Path;

fn expected(keys_file: &Path) -> Vec<String> {
    fs::read_to_string(keys_file)
        .expect("a fixture's .keys file is readable")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_fixture_yields_its_keys() {
    let files = env_fixtures();
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

/// Each key's last value, as `run` reads it.
fn values(src: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    envfile::entries(src)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value.expose().to_vec()))
        .collect()
}

#[test]
fn every_fixture_round_trips_and_survives_set_and_unset_of_each_key() {
    let tricky: [&[u8]; 9] = [
        b"plain",
        b"",
        b" padded ",
        b"a #not a comment",
        b"#tech",
        b"it's \"quoted\" `all` ways",
        b"line one\nline two\r\n",
        b"$HOME ${X} $(cmd) \\n",
        b"\xff\x00binary",
    ];
    for file in env_fixtures() {
        let src = fs::read(&file).unwrap();
        let name = file.display();
        let doc = envdoc::Document::parse(&src).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.to_bytes().expose(), &src[..], "{name}");
        let before = values(&src);
        for key in envfile::keys(&src).unwrap().names {
            for value in tricky {
                let mut edited = doc.clone();
                edited
                    .set(&key, value)
                    .unwrap_or_else(|e| panic!("{name} {key}: {e}"));
                let out = edited.to_bytes();
                let mut expected = before.clone();
                expected.insert(key.clone(), value.to_vec());
                assert_eq!(values(out.expose()), expected, "{name}: set {key}");
                assert_eq!(
                    envfile::keys(out.expose()).unwrap().names,
                    envfile::keys(&src).unwrap().names,
                    "{name}: set {key}"
                );
            }
            let mut edited = doc.clone();
            assert!(edited.unset(&key) >= 1, "{name}: {key}");
            let out = edited.to_bytes();
            let mut expected = before.clone();
            expected.remove(&key);
            assert_eq!(values(out.expose()), expected, "{name}: unset {key}");
        }
        // A template keeps every key and empties every value.
        let template = doc.template().to_bytes();
        let emptied = values(template.expose());
        assert_eq!(
            emptied.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "{name}"
        );
        assert!(emptied.values().all(Vec::is_empty), "{name}");
    }
}

/// Each fixture as the base, ours with its first key changed, theirs with a new key (a
/// multi-line value): the merge is clean, has both changes, and keeps our file byte for
/// byte around the one line it adds.
#[test]
fn every_fixture_merges_a_key_added_on_their_side_keeping_our_layout() {
    const NEW: &str = "MERGE_NEW";
    let new_value: &[u8] = b"their line one\ntheir line two";
    for file in env_fixtures() {
        let base = fs::read(&file).unwrap();
        let name = file.display();
        let doc = envdoc::Document::parse(&base).unwrap();
        let mut ours = doc.clone();
        if let Some(first) = doc.keys().first() {
            ours.set(first, b"our edit").unwrap();
        }
        let ours = ours.to_bytes();
        let mut theirs = doc.clone();
        theirs
            .insert(NEW, new_value, envdoc::Anchor::End)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = theirs.to_bytes();
        let entries = |src: &[u8]| envfile::entries(src).unwrap();
        let result = merge::merge(
            &entries(&base),
            &entries(ours.expose()),
            &entries(theirs.expose()),
        );
        assert!(result.is_clean(), "{name}: {result:?}");
        assert_eq!(result.incoming(), [NEW], "{name}");
        let mut merged = envdoc::Document::parse(ours.expose()).unwrap();
        merged
            .apply(&result.edits)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut expected = values(ours.expose());
        expected.insert(NEW.to_owned(), new_value.to_vec());
        assert_eq!(values(merged.to_bytes().expose()), expected, "{name}");
        // Our layout: without the added key, the merge is our file exactly (with a line
        // end after its last line when it had none: the new key's line went after it).
        assert_eq!(merged.unset(NEW), 1, "{name}");
        let mut ended = ours.expose().to_vec();
        if ended.last().is_some_and(|&b| b != b'\n' && b != b'\r') {
            ended.extend_from_slice(doc.line_end());
        }
        let merged = merged.to_bytes();
        assert!(
            merged.expose() == ours.expose() || merged.expose() == &ended[..],
            "{name}: {:?}",
            String::from_utf8_lossy(merged.expose())
        );
    }
}

/// Multi-line values on both sides: ours changes one, theirs another and adds a third;
/// the merge takes each side's change, ours as we wrote it, theirs changed in place in our
/// quoting, the new one in the quoting envdoc picks for a new line (single quotes).
#[test]
fn a_merge_carries_multi_line_values_on_both_sides() {
    let base = b"# certs\nCERT=\"-----BEGIN-----\nbase\n-----END-----\"\nTOKEN='a\nb'\nPLAIN=1\n";
    let ours = b"# certs\nCERT=\"-----BEGIN-----\nours\nours too\n-----END-----\"\nTOKEN='a\nb'\nPLAIN=1\n";
    let theirs =
        b"# certs\nCERT=\"-----BEGIN-----\nbase\n-----END-----\"\nTOKEN='c\nd\ne'\nPLAIN=1\nKEY=\"x\ny\"\n";
    let entries = |src: &[u8]| envfile::entries(src).unwrap();
    let result = merge::merge(&entries(base), &entries(ours), &entries(theirs));
    assert!(result.is_clean(), "{result:?}");
    let mut merged = envdoc::Document::parse(ours).unwrap();
    merged.apply(&result.edits).unwrap();
    assert_eq!(
        merged.to_bytes().expose(),
        b"# certs\nCERT=\"-----BEGIN-----\nours\nours too\n-----END-----\"\nTOKEN='c\nd\ne'\nPLAIN=1\nKEY='x\ny'\n"
    );
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
