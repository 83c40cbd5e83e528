//! Property tests: the envelope round-trips any bytes, the key extractor never panics and
//! finds the names (and values) of generated files in every quoting style, line ending,
//! BOM and `export` form, any change to the binding fails verification, and the document
//! model (`envdoc`) gives back every file byte for byte and edits only what it changes.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope::{self, Binding, Open, Seal};
use envsync_common::secret::SecretString;
use envsync_common::{envdoc, envfile};
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

// ---- The document model (`envdoc`): byte-exact round trips and edits that touch only
// what they change.

/// A generated file as bytes: the lines of [`line()`], with LF, CRLF or CR-only line
/// ends, maybe a BOM, and values holding invalid UTF-8 and NUL bytes.
fn file_bytes(lines: &[Line], raw: &[Vec<u8>], eol: &str, bom: bool) -> Vec<u8> {
    let mut src = Vec::new();
    if bom {
        src.extend_from_slice("\u{feff}".as_bytes());
    }
    for (i, line) in lines.iter().enumerate() {
        src.extend_from_slice(&line_bytes(i, line, raw, eol));
    }
    src
}

/// Line `i` of a generated file, with its line end.
fn line_bytes(i: usize, line: &Line, raw: &[Vec<u8>], eol: &str) -> Vec<u8> {
    let mut src = Vec::new();
    match line {
        Line::Assign {
            key,
            value,
            export,
            spaced,
            comment,
        } => {
            src.extend_from_slice(["", "export ", "export\t"][*export].as_bytes());
            let eq = if *spaced && value.spaced_ok {
                " = "
            } else {
                "="
            };
            src.extend_from_slice(format!("{key}{eq}").as_bytes());
            // Every third unquoted value starts with bytes that are not UTF-8.
            if i.is_multiple_of(3) && !value.written.starts_with(['\'', '"', '`']) {
                src.extend_from_slice(&raw[i % raw.len()]);
            }
            src.extend_from_slice(value.written.as_bytes());
            if *comment {
                src.extend_from_slice(b" # note");
            }
        }
        Line::Bare { key, export } => {
            if *export {
                src.extend_from_slice(b"export ");
            }
            src.extend_from_slice(key.as_bytes());
        }
        Line::Comment(text) => src.extend_from_slice(format!("# {text}").as_bytes()),
        Line::Blank => {}
    }
    src.extend_from_slice(eol.as_bytes());
    src
}

fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![Just(0xffu8), Just(0), Just(0xc3), Just(b'x')],
        1..6,
    )
}

/// A value to set: any bytes, with the ones that matter to quoting made common.
fn new_value() -> impl Strategy<Value = Vec<u8>> {
    let special = prop_oneof![
        Just(b' '),
        Just(b'\t'),
        Just(b'#'),
        Just(b'\''),
        Just(b'"'),
        Just(b'`'),
        Just(b'\\'),
        Just(b'\n'),
        Just(b'\r'),
        Just(b'$'),
        Just(b'='),
        Just(0u8),
        Just(0xffu8),
    ];
    proptest::collection::vec(
        prop_oneof![3 => special, 2 => b'a'..=b'z', 1 => any::<u8>()],
        0..20,
    )
}

/// The variables as `run` reads them: each key's last value.
fn last_values(src: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    envfile::entries(src)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value.expose().to_vec()))
        .collect()
}

fn generated_file() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(line(), 0..20),
        proptest::collection::vec(raw_bytes(), 1..4),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(lines, raw, eol, bom)| file_bytes(&lines, &raw, ["\n", "\r\n", "\r"][eol], bom))
}

/// A key of the file (chosen by `pick`), or a new one when it has none or `pick` says.
fn choose_key(src: &[u8], pick: usize) -> String {
    let names = envfile::keys(src).unwrap().names;
    if names.is_empty() || pick % (names.len() + 1) == names.len() {
        "NEW_KEY".to_owned()
    } else {
        names[pick % names.len()].clone()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes the extractor accepts come back byte for byte, with the same keys.
    #[test]
    fn any_accepted_input_round_trips(src in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(keys) = envfile::keys(&src) {
            let doc = envdoc::Document::parse(&src).unwrap();
            prop_assert_eq!(doc.to_bytes().expose().to_vec(), &src[..]);
            prop_assert_eq!(doc.keys(), keys.names.iter().map(String::as_str).collect::<Vec<_>>());
        } else {
            prop_assert!(envdoc::Document::parse(&src).is_err());
        }
    }

    #[test]
    fn generated_files_round_trip(src in generated_file()) {
        let doc = envdoc::Document::parse(&src);
        prop_assert!(doc.is_ok(), "{:?}", String::from_utf8_lossy(&src));
        let doc = doc.unwrap();
        prop_assert_eq!(doc.to_bytes().expose().to_vec(), &src[..]);
        let vars: std::collections::BTreeMap<String, Vec<u8>> = doc
            .variables()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.expose().to_vec()))
            .collect();
        prop_assert_eq!(vars, last_values(&src));
    }

    /// After `set(k, v)` the extractor reads exactly `v` for `k`, every other key keeps
    /// its value and the key order holds (a new key comes last); and only `k`'s last
    /// occurrence changed: removing `k` from both gives the same bytes.
    #[test]
    fn set_changes_one_value_and_nothing_else(
        src in generated_file(), pick in any::<usize>(), value in new_value(),
    ) {
        let key = choose_key(&src, pick);
        let mut doc = envdoc::Document::parse(&src).unwrap();
        let existed = doc.contains(&key);
        doc.set(&key, &value).unwrap();
        let out = doc.to_bytes();
        let shown = String::from_utf8_lossy(out.expose()).into_owned();
        let mut expected = last_values(&src);
        expected.insert(key.clone(), value.clone());
        prop_assert_eq!(last_values(out.expose()), expected, "{:?}", shown);
        let mut names = envfile::keys(&src).unwrap().names;
        if !existed {
            names.push(key.clone());
        }
        prop_assert_eq!(envfile::keys(out.expose()).unwrap().names, names, "{:?}", shown);
        if existed {
            let mut before = envdoc::Document::parse(&src).unwrap();
            before.unset(&key);
            let mut after = envdoc::Document::parse(out.expose()).unwrap();
            after.unset(&key);
            prop_assert_eq!(after.to_bytes().expose().to_vec(), before.to_bytes().expose().to_vec());
        }
    }

    /// After `unset(k)` the key is gone, the others keep their values and order, and the
    /// file is the generated one without `k`'s lines: comments and blank lines stay.
    #[test]
    fn unset_removes_exactly_the_key_s_lines(
        lines in proptest::collection::vec(line(), 0..20),
        raw in proptest::collection::vec(raw_bytes(), 1..4),
        eol in 0usize..3, bom in any::<bool>(), pick in any::<usize>(),
    ) {
        let eol = ["\n", "\r\n", "\r"][eol];
        let src = file_bytes(&lines, &raw, eol, bom);
        let key = choose_key(&src, pick);
        let mut doc = envdoc::Document::parse(&src).unwrap();
        let removed = doc.unset(&key);
        let is_key = |l: &Line| matches!(l, Line::Assign { key: k, .. } | Line::Bare { key: k, .. } if *k == key);
        prop_assert_eq!(removed, lines.iter().filter(|l| is_key(l)).count());
        // The same file generated without those lines (the raw bytes keep their places).
        let mut kept_src = Vec::new();
        if bom {
            kept_src.extend_from_slice("\u{feff}".as_bytes());
        }
        for (i, line) in lines.iter().enumerate() {
            if !is_key(line) {
                kept_src.extend_from_slice(&line_bytes(i, line, &raw, eol));
            }
        }
        prop_assert_eq!(doc.to_bytes().expose().to_vec(), &kept_src[..]);
        let mut expected = last_values(&src);
        expected.remove(&key);
        prop_assert_eq!(last_values(doc.to_bytes().expose()), expected);
    }

    /// `insert` puts the new key right after its neighbour's last occurrence (or before
    /// its first), every other entry keeps its place, and removing it again gives back
    /// the file; `insert_from` does the same with another file's lines for the key.
    #[test]
    fn insert_keeps_the_neighbours_order(
        src in generated_file(), other in generated_file(), pick in any::<usize>(),
        before in any::<bool>(), value in new_value(),
    ) {
        let mut doc = envdoc::Document::parse(&src).unwrap();
        let original: Vec<String> = doc.entries().into_iter().map(|e| e.key).collect();
        let neighbour = choose_key(&src, pick);
        let anchor = match (doc.contains(&neighbour), before) {
            (false, _) => envdoc::Anchor::End,
            (true, false) => envdoc::Anchor::After(&neighbour),
            (true, true) => envdoc::Anchor::Before(&neighbour),
        };
        let at = match anchor {
            envdoc::Anchor::After(n) => original.iter().rposition(|k| k == n).unwrap() + 1,
            envdoc::Anchor::Before(n) => original.iter().position(|k| k == n).unwrap(),
            envdoc::Anchor::End => original.len(),
        };
        doc.insert("INSERTED", &value, anchor).unwrap();
        let mut expected = original.clone();
        expected.insert(at, "INSERTED".to_owned());
        let got: Vec<String> = doc.entries().into_iter().map(|e| e.key).collect();
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(doc.get("INSERTED").unwrap().expose().to_vec(), value.clone());
        let out = doc.to_bytes();
        prop_assert_eq!(last_values(out.expose()).get("INSERTED").cloned(), Some(value.clone()));
        doc.unset("INSERTED");
        prop_assert_eq!(doc.to_bytes().expose().to_vec(), &src[..]);

        // Their key, with their lines, beside the same neighbour.
        let theirs = envdoc::Document::parse(&other).unwrap();
        if let Some(key) = theirs.keys().into_iter().find(|k| !original.contains(&k.to_string())) {
            doc.insert_from(&theirs, key, anchor).unwrap();
            let got: Vec<String> = doc.entries().into_iter().map(|e| e.key).collect();
            let mut expected = original.clone();
            expected.insert(at, key.to_owned());
            prop_assert_eq!(got, expected);
            let out = doc.to_bytes();
            prop_assert_eq!(
                last_values(out.expose()).get(key).cloned(),
                last_values(&other).get(key).cloned()
            );
        }
    }

    /// A template has every key, in order, and no value.
    #[test]
    fn templates_keep_the_keys_and_empty_every_value(src in generated_file()) {
        let doc = envdoc::Document::parse(&src).unwrap();
        let template = doc.template().to_bytes();
        let names = envfile::keys(&src).unwrap().names;
        prop_assert_eq!(envfile::keys(template.expose()).unwrap().names, names);
        for (key, value) in last_values(template.expose()) {
            prop_assert!(value.is_empty(), "{} has a value", key);
        }
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

/// Key `i` of a three-way merge case: its name, then its value in base, ours and theirs
/// (`None`: absent), where `in_base` says whether base has it and `o`, `t` are what ours
/// and theirs did to it.
fn sides(
    i: usize,
    in_base: bool,
    o: &Act,
    t: &Act,
) -> (String, Option<String>, Option<String>, Option<String>) {
    let b = in_base.then(|| format!("base{i}"));
    let apply = |a: &Act| match a {
        Act::Keep => b.clone(),
        Act::Write(n) => Some(format!("new{i}-{n}")),
        Act::Remove => None,
    };
    let (ov, tv) = (apply(o), apply(t));
    (format!("K{i}"), b, ov, tv)
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
            let (key, b, ov, tv) = sides(i, *in_base, o, t);
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

/// One line of ours in the merge-through-documents property: a layout per key.
fn our_line(i: usize, key: &str, value: &str) -> String {
    match i % 4 {
        0 => format!("{key}={value}\n"),
        1 => format!("export {key}='{value}'\n"),
        2 => format!("# about {key}\n{key}=\"{value}\"\n\n"),
        _ => format!("{key} = {value} # note\n"),
    }
}

proptest! {
    #![proptest_config(config())]

    /// The merge's edits applied to our file as a document (`envdoc::Document::apply`):
    /// every value is what the model says (ours for a conflicting key), the lines of the
    /// keys the merge did not touch are byte for byte what they were, and keys new from
    /// theirs come in theirs' order.
    #[test]
    fn three_way_merge_applies_to_our_document(
        keys in proptest::collection::vec((any::<bool>(), act(), act()), 1..8),
        order in Just((0..8).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        use envsync_common::merge::{self, Edit};
        use std::collections::BTreeMap;
        let mut base = Vec::new();
        let mut ours_text = String::new();
        let mut ours_entries = Vec::new();
        let mut theirs_by_key = BTreeMap::new();
        let mut expected = BTreeMap::new();
        for (i, (in_base, o, t)) in keys.iter().enumerate() {
            let (key, b, ov, tv) = sides(i, *in_base, o, t);
            if let Some(v) = &b { base.push(entry(&key, v)); }
            if let Some(v) = &ov {
                ours_text.push_str(&our_line(i, &key, v));
                ours_entries.push(entry(&key, v));
            }
            if let Some(v) = &tv { theirs_by_key.insert(i, entry(&key, v)); }
            let clean = ov == tv || tv == b || ov == b;
            let result = if clean && ov == b { tv.clone() } else { ov.clone() };
            if let Some(v) = result { expected.insert(key, v); }
        }
        // Theirs in a shuffled order, so that new keys land beside various neighbours.
        let theirs: Vec<_> = order.iter().filter_map(|i| theirs_by_key.get(i).cloned()).collect();
        let merged = merge::merge(&base, &ours_entries, &theirs);
        let before = envdoc::Document::parse(ours_text.as_bytes()).unwrap();
        let mut doc = before.clone();
        doc.apply(&merged.edits).unwrap();
        prop_assert_eq!(
            last_values(doc.to_bytes().expose())
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
                .collect::<BTreeMap<_, _>>(),
            expected
        );
        // Untouched keys keep their lines: without the edited keys, the same bytes.
        let (mut a, mut b) = (before, doc.clone());
        for edit in &merged.edits {
            a.unset(edit.key());
            b.unset(edit.key());
        }
        prop_assert_eq!(b.to_bytes().expose().to_vec(), a.to_bytes().expose().to_vec());
        // A new key lands after its neighbour (the key before it in theirs that ours
        // has), or at the end without one; keys sharing a neighbour keep theirs' order.
        let position = |key: &str| doc.entries().iter().position(|e| e.key == key);
        let theirs_position = |key: &str| theirs.iter().position(|e| e.key == key);
        for edit in &merged.edits {
            let Edit::Insert { key, after, .. } = edit else { continue };
            if let Some(n) = after {
                prop_assert!(position(n) < position(key), "{} after {}", key, n);
            }
            for other in &merged.edits {
                if let Edit::Insert { key: k2, after: a2, .. } = other
                    && a2 == after
                    && theirs_position(k2) > theirs_position(key)
                {
                    prop_assert!(position(k2) > position(key), "{} then {}", key, k2);
                }
            }
        }
    }
}
