//! Property tests: the envelope round-trips any bytes, the key extractor never panics and
//! finds the names (and values) of generated files in every quoting style, line ending,
//! BOM and `export` form, and any change to the binding fails verification.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope::{self, Binding, Open, Seal};
use envsync_common::envfile;
use envsync_common::secret::SecretString;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    // Each case of the envelope properties pays an scrypt at work factor 10; keep CI lean.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    ProptestConfig::with_cases(cases)
}

fn key_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.-]{0,20}"
}

/// A value and how to write it so a dotenv parser reads it back.
fn rendered() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_./:@+-]{0,20}".prop_map(|v| v),
        "[A-Za-z0-9 #$=]{0,20}".prop_map(|v| format!("'{v}'")),
        "[A-Za-z0-9 #$='\n]{0,20}".prop_map(|v| format!("\"{v}\"")),
        "[A-Za-z0-9 #$='\"]{0,20}".prop_map(|v| format!("`{v}`")),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn open_seal_round_trips_any_bytes(env in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let pass = SecretString::from("pw".to_owned());
        let binding = Binding::new("p", "feature/x", 1);
        let armored = envelope::seal(&binding, &env, &Seal::Passphrase { passphrase: &pass, work_factor: 10 }).unwrap();
        let opened = envelope::open(&armored, &Open::Passphrase { passphrase: &pass, max_work_factor: 22 }).unwrap();
        prop_assert_eq!(opened.binding, binding);
        prop_assert_eq!(opened.env.expose(), &env[..]);
    }

    #[test]
    fn any_binding_change_fails_verification(
        project in "[a-z0-9]{1,8}", branch in "[a-z0-9/]{1,8}", version in 1u64..1000,
        which in 0usize..3,
    ) {
        let b = Binding::new(project.clone(), branch.clone(), version);
        let other = match which {
            0 => Binding::new(format!("{project}x"), branch, version),
            1 => Binding::new(project, format!("{branch}x"), version),
            _ => Binding::new(project, branch, version + 1),
        };
        prop_assert!(b.verify(&other).is_err());
        prop_assert_eq!(Binding::parse(b.line().trim_end()).unwrap(), b);
    }

    #[test]
    fn extractor_never_panics(src in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(keys) = envfile::keys(&src) {
            // Every name is a substring of the input.
            for k in keys.names {
                prop_assert!(src.windows(k.len()).any(|w| w == k.as_bytes()));
            }
        }
    }

    #[test]
    fn generated_files_give_back_their_names(
        lines in proptest::collection::vec((key_name(), rendered(), any::<bool>(), 0usize..3), 0..30),
    ) {
        let eols = ["\n", "\r\n", "\n# comment\n"];
        let mut src = String::new();
        let mut expected: Vec<String> = Vec::new();
        for (key, value, export, eol) in &lines {
            if *export { src.push_str("export "); }
            src.push_str(&format!("{key}={value}{}", eols[*eol]));
            if !expected.contains(key) { expected.push(key.clone()); }
        }
        let got = envfile::keys(src.as_bytes()).unwrap();
        prop_assert_eq!(got.names, expected);
    }
}

/// One value, and how it is written in the file.
#[derive(Debug, Clone)]
struct Value {
    decoded: String,
    written: String,
    /// Blanks may surround the `=` (an unquoted value starting with `#` after a blank
    /// would be a comment).
    spaced_ok: bool,
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        // Unquoted: no blanks, no quotes; `#`, `$` and `=` are plain bytes.
        "[A-Za-z0-9_./:@+$=#-]{0,16}".prop_map(|v| Value {
            spaced_ok: !v.starts_with('#'),
            written: v.clone(),
            decoded: v,
        }),
        // Single quotes: everything literal, lines included.
        "[A-Za-z0-9 #$=\"`\\\n]{0,16}".prop_map(|v| Value {
            written: format!("'{v}'"),
            decoded: v,
            spaced_ok: true,
        }),
        // Double quotes: backslash and quote escaped; a line break raw or as `\n`.
        ("[A-Za-z0-9 #$='`\\\"\n]{0,16}", any::<bool>()).prop_map(|(v, escape_nl)| {
            let mut w = String::new();
            for c in v.chars() {
                match c {
                    '\\' => w.push_str("\\\\"),
                    '"' => w.push_str("\\\""),
                    '\n' if escape_nl => w.push_str("\\n"),
                    c => w.push(c),
                }
            }
            Value {
                written: format!("\"{w}\""),
                decoded: v,
                spaced_ok: true,
            }
        }),
        // Backticks: everything literal but the backtick.
        "[A-Za-z0-9 #$='\"\\\n]{0,16}".prop_map(|v| Value {
            written: format!("`{v}`"),
            decoded: v,
            spaced_ok: true,
        }),
    ]
}

/// One line of a generated file.
#[derive(Debug, Clone)]
enum Line {
    Assign {
        key: String,
        value: Value,
        export: usize,
        spaced: bool,
        comment: bool,
    },
    Bare {
        key: String,
        export: bool,
    },
    Comment(String),
    Blank,
}

fn line() -> impl Strategy<Value = Line> {
    // A small pool of names makes duplicates common.
    let key = prop_oneof!["[A-Z]{1,2}", key_name()];
    prop_oneof![
        6 => (key.clone(), value(), 0usize..3, any::<bool>(), any::<bool>()).prop_map(
            |(key, value, export, spaced, comment)| Line::Assign { key, value, export, spaced, comment }
        ),
        1 => (key, any::<bool>()).prop_map(|(key, export)| Line::Bare { key, export }),
        1 => "[A-Za-z0-9 =\"'$]{0,20}".prop_map(Line::Comment),
        1 => Just(Line::Blank),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// H2: names (first appearance, each once), duplicates and values (last one wins) of
    /// files made of every quoting style, `export` form, comment and blank line, with
    /// LF, CRLF or CR-only line ends and with or without a BOM.
    #[test]
    fn generated_files_give_back_names_duplicates_and_values(
        lines in proptest::collection::vec(line(), 0..25),
        eol in 0usize..3,
        bom in any::<bool>(),
    ) {
        let eol = ["\n", "\r\n", "\r"][eol];
        let mut src = String::new();
        if bom { src.push('\u{feff}'); }
        let mut names: Vec<String> = Vec::new();
        let mut duplicates: Vec<String> = Vec::new();
        let mut values: std::collections::HashMap<String, String> = Default::default();
        for line in &lines {
            let key = match line {
                Line::Assign { key, value, export, spaced, comment } => {
                    src.push_str(["", "export ", "export\t"][*export]);
                    let eq = if *spaced && value.spaced_ok { " = " } else { "=" };
                    src.push_str(&format!("{key}{eq}{}", value.written));
                    // A comment after a value needs a blank before its `#`.
                    if *comment { src.push_str(" # note"); }
                    values.insert(key.clone(), value.decoded.clone());
                    Some(key)
                }
                Line::Bare { key, export } => {
                    if *export { src.push_str("export "); }
                    src.push_str(key);
                    values.insert(key.clone(), String::new());
                    Some(key)
                }
                Line::Comment(text) => { src.push_str(&format!("# {text}")); None }
                Line::Blank => None,
            };
            src.push_str(eol);
            if let Some(key) = key {
                if !names.contains(key) {
                    names.push(key.clone());
                } else if !duplicates.contains(key) {
                    duplicates.push(key.clone());
                }
            }
        }
        let got = envfile::keys(src.as_bytes());
        prop_assert!(got.is_ok(), "{:?}: {:?}", src, got);
        let got = got.unwrap();
        prop_assert_eq!(&got.names, &names, "{:?}", src);
        prop_assert_eq!(&got.duplicates, &duplicates, "{:?}", src);
        let mut last: std::collections::HashMap<String, String> = Default::default();
        for e in envfile::entries(src.as_bytes()).unwrap() {
            last.insert(e.key.clone(), String::from_utf8(e.value.expose().to_vec()).unwrap());
        }
        prop_assert_eq!(last, values, "{:?}", src);
    }
}

/// What one side does to a key in the merge property.
#[derive(Debug, Clone, Copy)]
enum Act {
    Keep,
    /// Set to one of two new values (0 or 1), adding the key when the base lacks it.
    Write(u8),
    Remove,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        Just(Act::Keep),
        Just(Act::Write(0)),
        Just(Act::Write(1)),
        Just(Act::Remove)
    ]
}

fn entry(key: &str, value: &str) -> envfile::Entry {
    envfile::Entry {
        key: key.to_owned(),
        line: 0,
        value: envsync_common::secret::SecretBytes::new(value.as_bytes().to_vec()),
    }
}

proptest! {
    #![proptest_config(config())]

    /// The key-level three-way merge against a model, over every combination of
    /// unchanged / added / removed / modified on each side, for up to eight keys: the
    /// merged result is what the model says for every clean key, ours kept for a
    /// conflicting one, and the conflicts are exactly the keys both sides changed
    /// differently.
    #[test]
    fn three_way_merge_matches_the_model(
        keys in proptest::collection::vec((any::<bool>(), act(), act()), 1..8)
    ) {
        use envsync_common::merge::{self, Edit};
        use std::collections::BTreeMap;
        let mut base = Vec::new();
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut expected = BTreeMap::new();
        let mut conflicts = Vec::new();
        for (i, (in_base, o, t)) in keys.iter().enumerate() {
            let key = format!("K{i}");
            let b = in_base.then(|| format!("base{i}"));
            let apply = |a: &Act| match a {
                Act::Keep => b.clone(),
                Act::Write(n) => Some(format!("new{i}-{n}")),
                Act::Remove => None,
            };
            let (ov, tv) = (apply(o), apply(t));
            if let Some(v) = &b { base.push(entry(&key, v)); }
            if let Some(v) = &ov { ours.push(entry(&key, v)); }
            if let Some(v) = &tv { theirs.push(entry(&key, v)); }
            // The model.
            let result = if ov == tv || tv == b {
                ov.clone()
            } else if ov == b {
                tv.clone()
            } else {
                conflicts.push(key.clone());
                ov.clone()
            };
            if let Some(v) = result { expected.insert(key, v); }
        }
        let merged = merge::merge(&base, &ours, &theirs);
        let mut got: Vec<String> = merged.conflicts.iter().map(|c| c.key.clone()).collect();
        got.sort();
        conflicts.sort();
        prop_assert_eq!(got, conflicts);
        // Apply the edits to ours, as a map.
        let mut result: BTreeMap<String, String> = ours
            .iter()
            .map(|e| (e.key.clone(), String::from_utf8(e.value.expose().to_vec()).unwrap()))
            .collect();
        for edit in &merged.edits {
            match edit {
                Edit::Set { key, value } | Edit::Insert { key, value, .. } => {
                    result.insert(key.clone(), String::from_utf8(value.expose().to_vec()).unwrap());
                }
                Edit::Unset { key } => { result.remove(key); }
            }
        }
        prop_assert_eq!(result, expected);
    }
}
