//! The three-way merge of env files, key by key.
//!
//! `base` is the version both sides started from (the clone's last synced version),
//! `ours` the file on disk, `theirs` the server's latest. Per key, with `b`, `o` and `t`
//! its value on each side (absent counts as a value of its own):
//!
//! | case | result |
//! |---|---|
//! | `o == t` | take it (no edit) |
//! | `o == b` (only theirs changed it: added, modified or removed) | take theirs |
//! | `t == b` (only ours changed it) | keep ours (no edit) |
//! | otherwise (both changed it, differently) | a conflict |
//!
//! The result is a list of edits to apply to *ours*, so that the merged file keeps our
//! layout (comments, order, blank lines, quoting, `export`): set a key's value in place,
//! remove a key, or insert a key that is new from theirs right after the key that precedes
//! it in theirs (when ours has that key), else at the end. A key's value is its last
//! occurrence's, as the key extractor says; removing a key removes every occurrence.
//!
//! Values are secrets: they live in [`SecretBytes`], a [`Conflict`] names only the key
//! and what each side did.

use crate::envfile::Entry;
use crate::secret::SecretBytes;
use std::collections::{BTreeMap, BTreeSet};

/// What one side did to a key, relative to the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Modified,
}

/// A key both sides changed, differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub key: String,
    pub ours: Change,
    pub theirs: Change,
}

/// An edit to apply to our file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Give an existing key (its last occurrence) this value.
    Set { key: String, value: SecretBytes },
    /// Remove the key (every occurrence).
    Unset { key: String },
    /// Add a key ours does not have, after `after` (a key ours has), or at the end.
    Insert {
        key: String,
        value: SecretBytes,
        after: Option<String>,
    },
}

impl Edit {
    pub fn key(&self) -> &str {
        match self {
            Edit::Set { key, .. } | Edit::Unset { key } | Edit::Insert { key, .. } => key,
        }
    }
}

/// The merge: the edits to apply to ours when there is no conflict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merge {
    pub edits: Vec<Edit>,
    pub conflicts: Vec<Conflict>,
}

impl Merge {
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
    }

    /// Keys theirs brought in (added, changed or removed), for "what came in".
    pub fn incoming(&self) -> Vec<&str> {
        self.edits.iter().map(Edit::key).collect()
    }
}

/// One side's keys in file order (first occurrence) with their values (last occurrence).
struct Side {
    order: Vec<String>,
    values: BTreeMap<String, SecretBytes>,
}

impl Side {
    fn of(entries: &[Entry]) -> Side {
        let mut order = Vec::new();
        let mut values = BTreeMap::new();
        for entry in entries {
            if values
                .insert(entry.key.clone(), entry.value.clone())
                .is_none()
            {
                order.push(entry.key.clone());
            }
        }
        Side { order, values }
    }

    fn get(&self, key: &str) -> Option<&SecretBytes> {
        self.values.get(key)
    }
}

fn change(base: Option<&SecretBytes>, side: Option<&SecretBytes>) -> Change {
    match (base, side) {
        (None, _) => Change::Added,
        (Some(_), None) => Change::Removed,
        (Some(_), Some(_)) => Change::Modified,
    }
}

/// Merges by key; see the module documentation for the rules.
pub fn merge(base: &[Entry], ours: &[Entry], theirs: &[Entry]) -> Merge {
    let (base, ours, theirs) = (Side::of(base), Side::of(ours), Side::of(theirs));
    // Every key of any side, in a stable order: ours first, then theirs', then base's.
    let mut keys: Vec<&String> = Vec::new();
    let mut seen = BTreeSet::new();
    for key in ours.order.iter().chain(&theirs.order).chain(&base.order) {
        if seen.insert(key.as_str()) {
            keys.push(key);
        }
    }
    let mut merge = Merge::default();
    for key in keys {
        let (b, o, t) = (base.get(key), ours.get(key), theirs.get(key));
        if o == t || t == b {
            continue;
        }
        if o != b {
            merge.conflicts.push(Conflict {
                key: key.clone(),
                ours: change(b, o),
                theirs: change(b, t),
            });
            continue;
        }
        // Only theirs changed it.
        merge.edits.push(match (o, t) {
            (_, None) => Edit::Unset { key: key.clone() },
            (Some(_), Some(value)) => Edit::Set {
                key: key.clone(),
                value: value.clone(),
            },
            (None, Some(value)) => Edit::Insert {
                key: key.clone(),
                value: value.clone(),
                after: neighbour(key, &theirs, &ours),
            },
        });
    }
    merge
}

/// The key before `key` in theirs that ours has, to put `key` after it.
fn neighbour(key: &str, theirs: &Side, ours: &Side) -> Option<String> {
    let at = theirs.order.iter().position(|k| k == key)?;
    theirs.order[..at]
        .iter()
        .rev()
        .find(|k| ours.values.contains_key(*k))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(pairs: &[(&str, &str)]) -> Vec<Entry> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Entry {
                key: (*k).to_owned(),
                line: i + 1,
                value: SecretBytes::new(v.as_bytes().to_vec()),
            })
            .collect()
    }

    fn value(v: &str) -> SecretBytes {
        SecretBytes::new(v.as_bytes().to_vec())
    }

    #[test]
    fn disjoint_changes_merge() {
        let base = side(&[("A", "1"), ("B", "2"), ("C", "3")]);
        let ours = side(&[("A", "1"), ("B", "ours"), ("C", "3"), ("MINE", "m")]);
        let theirs = side(&[("A", "theirs"), ("B", "2"), ("NEW", "n"), ("C", "3")]);
        let merge = merge(&base, &ours, &theirs);
        assert!(merge.is_clean(), "{merge:?}");
        assert_eq!(
            merge.edits,
            [
                Edit::Set {
                    key: "A".into(),
                    value: value("theirs")
                },
                Edit::Insert {
                    key: "NEW".into(),
                    value: value("n"),
                    after: Some("B".into())
                },
            ]
        );
    }

    #[test]
    fn the_same_change_on_both_sides_is_no_conflict() {
        let base = side(&[("A", "1")]);
        let both = side(&[("A", "2"), ("B", "x")]);
        assert_eq!(merge(&base, &both, &both), Merge::default());
    }

    #[test]
    fn different_changes_conflict_and_name_only_the_key() {
        let base = side(&[("A", "1"), ("B", "2"), ("C", "3")]);
        let ours = side(&[("A", "ours"), ("C", "3"), ("D", "o")]);
        let theirs = side(&[("A", "theirs"), ("B", "2b"), ("D", "t")]);
        let merge = merge(&base, &ours, &theirs);
        assert_eq!(
            merge.conflicts,
            [
                Conflict {
                    key: "A".into(),
                    ours: Change::Modified,
                    theirs: Change::Modified
                },
                Conflict {
                    key: "D".into(),
                    ours: Change::Added,
                    theirs: Change::Added
                },
                Conflict {
                    key: "B".into(),
                    ours: Change::Removed,
                    theirs: Change::Modified
                },
            ]
        );
        // C: removed by theirs, untouched by ours.
        assert_eq!(merge.edits, [Edit::Unset { key: "C".into() }]);
    }

    /// Edits carry values; their Debug output names the keys and never shows a value.
    #[test]
    fn debug_shows_no_value() {
        const SENTINEL: &str = "sentinel-value-7f3a";
        let base = side(&[("A", "1"), ("B", "2")]);
        let ours = side(&[("A", "1"), ("B", SENTINEL)]);
        let theirs = side(&[("A", SENTINEL), ("B", "3"), ("N", SENTINEL)]);
        let merge = merge(&base, &ours, &theirs);
        assert_eq!(merge.edits.len(), 2, "{merge:?}");
        assert_eq!(merge.conflicts.len(), 1, "{merge:?}");
        let debug = format!("{merge:?}");
        assert!(
            debug.contains("Set") && debug.contains("Insert") && debug.contains("\"N\""),
            "{debug}"
        );
        assert!(!debug.contains(SENTINEL), "{debug}");
        assert!(!debug.contains("7f3a"), "{debug}");
    }

    /// Every combination for one key: base present or not; each side keeping it,
    /// writing one of two values, or removing it.
    #[test]
    fn every_combination_of_one_key() {
        let acts = [None, Some("x"), Some("y"), Some("-")];
        for in_base in [false, true] {
            for o in acts {
                for t in acts {
                    let b = in_base.then_some("b");
                    let apply = |a: Option<&'static str>| match a {
                        None => b,
                        Some("-") => None,
                        Some(v) => Some(v),
                    };
                    let (ov, tv) = (apply(o), apply(t));
                    let pairs = |v: Option<&str>| v.map(|v| side(&[("K", v)])).unwrap_or_default();
                    let merged = merge(&pairs(b), &pairs(ov), &pairs(tv));
                    let case = format!("base {b:?}, ours {ov:?}, theirs {tv:?}");
                    let conflict = ov != tv && tv != b && ov != b;
                    assert_eq!(merged.conflicts.len(), usize::from(conflict), "{case}");
                    let expected_edit = !conflict && ov != tv && tv != b;
                    assert_eq!(merged.edits.len(), usize::from(expected_edit), "{case}");
                    if let Some(edit) = merged.edits.first() {
                        match (ov, tv) {
                            (_, None) => assert!(matches!(edit, Edit::Unset { .. }), "{case}"),
                            (None, Some(v)) => assert!(
                                matches!(edit, Edit::Insert { value, .. } if value.expose() == v.as_bytes()),
                                "{case}"
                            ),
                            (Some(_), Some(v)) => assert!(
                                matches!(edit, Edit::Set { value, .. } if value.expose() == v.as_bytes()),
                                "{case}"
                            ),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn duplicates_count_by_their_last_value() {
        let base = side(&[("A", "1"), ("A", "2")]);
        let ours = side(&[("A", "1"), ("A", "2")]);
        let theirs = side(&[("A", "3")]);
        assert_eq!(
            merge(&base, &ours, &theirs).edits,
            [Edit::Set {
                key: "A".into(),
                value: value("3")
            }]
        );
    }
}
