//! A `.env` file as an editable document that keeps everything it does not change.
//!
//! [`Document::parse`] reads a file with the rules of [`crate::envfile`] (the same
//! scanner, so both always agree on what a file means) and keeps every byte:
//! `parse(src)?.to_bytes()` is `src` for every file the key extractor accepts, BOM,
//! line ends, comments, blank lines, `export`, quoting, multi-line values, duplicates and
//! invalid UTF-8 included.
//!
//! The file is a list of items, each one or more whole lines with their line ends:
//! assignments (`KEY=value`, `export KEY="…"`, a bare `KEY`) and the lines between them
//! (comments and blank lines). Edits replace, add or remove whole items, or the value
//! inside one, so nothing else moves:
//!
//! - [`Document::set`] replaces the value of a key's last occurrence (the one that counts)
//!   in place: `export`, the spacing and a trailing comment stay, and so does the quoting
//!   style when the value can be written in it; otherwise the value is quoted safely
//!   (single quotes, else double quotes with escapes). A key not yet in the file is added
//!   at the end.
//! - [`Document::unset`] removes every occurrence of a key with its own lines; the
//!   comments and blank lines around stay.
//! - [`Document::insert`] adds a new key beside a neighbour ([`Anchor`]), and
//!   [`Document::insert_from`] copies another document's entry for a key as it is written
//!   there (its quoting, `export`, trailing comment): what a key-level three-way merge
//!   needs to keep our layout and put their new keys beside their neighbours.
//! - [`Document::apply`] applies the edits of a key-level three-way merge
//!   ([`crate::merge`]) to our file.
//! - [`Document::template`] empties every value (for `.env.example`).
//!
//! Every edit is checked by scanning the edited lines again: the key must read back with
//! exactly the value given, or the edit is refused. New lines use the file's own line end.
//!
//! Values are secrets: they only leave as [`SecretBytes`], `Debug` never shows them, and
//! errors name keys, never values.

use crate::envfile::{self, BOM, ParseError, Quote, Scanner};
use crate::merge::Edit;
use crate::names::{NameError, validate_key};
use crate::secret::{SecretBytes, ct_eq};
use std::ops::{Range, RangeInclusive};
use thiserror::Error;
use zeroize::Zeroizing;

/// Why an edit was refused. Names keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EditError {
    /// The key name is not one a file can hold (the name itself is not repeated: it may
    /// be a value typed in the wrong place).
    #[error("{0}")]
    BadKey(NameError),
    #[error("{key} is already in the file")]
    AlreadyPresent { key: String },
    #[error("{key} is not in the file")]
    Missing { key: String },
    /// The edited lines would not read back as the value given. Not expected to happen:
    /// a safety net, so that a mistake refuses the edit instead of corrupting the file.
    #[error("cannot write the value of {key} so that it reads back exactly")]
    Unrepresentable { key: String },
}

/// Where [`Document::insert`] puts a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor<'a> {
    /// Just after the lines of the key's last occurrence.
    After(&'a str),
    /// Just before the first line of the key's first occurrence.
    Before(&'a str),
    /// After everything else.
    End,
}

/// What [`Document::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The key's value was replaced in place.
    Replaced,
    /// The key was new: it was added at the end.
    Added,
}

/// One occurrence of a key, as [`Document::entries`] lists it (no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    pub key: String,
    /// The 1-based lines it spans (several for a multi-line quoted value).
    pub lines: RangeInclusive<usize>,
    pub quote: Quote,
    /// Written with `export ` in front.
    pub export: bool,
    /// A bare `KEY` line, with no `=` (its value is empty).
    pub bare: bool,
    /// The last occurrence of its key: the one whose value counts.
    pub last: bool,
}

/// A line end as the file writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnd {
    Lf,
    CrLf,
    Cr,
}

impl LineEnd {
    fn bytes(self) -> &'static [u8] {
        match self {
            LineEnd::Lf => b"\n",
            LineEnd::CrLf => b"\r\n",
            LineEnd::Cr => b"\r",
        }
    }

    /// The first line end of `src`; `\n` when it has none.
    fn of(src: &[u8]) -> LineEnd {
        match src.iter().position(|&b| is_eol(b)) {
            Some(i) if src[i] == b'\n' => LineEnd::Lf,
            Some(i) if src.get(i + 1) == Some(&b'\n') => LineEnd::CrLf,
            Some(_) => LineEnd::Cr,
            None => LineEnd::Lf,
        }
    }
}

/// A parsed `.env` file that gives back its exact bytes, and can be edited.
#[derive(Debug, Clone)]
pub struct Document {
    bom: bool,
    eol: LineEnd,
    /// Each item is whole lines; every item but the last ends with a line end.
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
enum Item {
    /// Lines that assign nothing (comments, blank lines), with their line ends. Kept as
    /// a secret: a comment may be a commented-out value.
    Other(SecretBytes),
    Entry(Assignment),
}

/// One assignment and its lines. The offsets are into `text`.
#[derive(Debug, Clone)]
struct Assignment {
    key: String,
    text: SecretBytes,
    quote: Quote,
    export: bool,
    /// The `=`; `None` for a bare `KEY` line.
    equals: Option<usize>,
    /// The value as written, quotes included.
    written: Range<usize>,
}

impl Assignment {
    /// Scans the lines of one entry on their own (an entry starts a line and holds whole
    /// lines, so it means the same alone as in its file). `None` unless they hold
    /// exactly one entry and nothing else.
    fn scan(text: SecretBytes) -> Option<Assignment> {
        let mut scanner = Scanner::without_bom(text.expose());
        let raw = scanner.next()?.ok()?;
        if raw.start != 0 || raw.end != text.len() || scanner.next().is_some() {
            return None;
        }
        let (key, quote, export, equals, written) = (
            raw.key.to_owned(),
            raw.quote,
            raw.export,
            raw.equals,
            raw.written.clone(),
        );
        Some(Assignment {
            key,
            text,
            quote,
            export,
            equals,
            written,
        })
    }

    /// The bytes between the quotes (or the unquoted value).
    fn raw_value(&self) -> &[u8] {
        let w = &self.text.expose()[self.written.clone()];
        match self.quote {
            Quote::None => w,
            _ => &w[1..w.len() - 1],
        }
    }

    fn value(&self) -> SecretBytes {
        envfile::decode(self.raw_value(), self.quote)
    }

    /// The same entry with its value written as `value`, checked by scanning it again.
    fn with_value(&self, value: &[u8], eol: LineEnd) -> Result<Assignment, EditError> {
        let text = self.text.expose();
        let (range, rendered) = match self.equals {
            None => {
                // A bare `KEY`: the value goes after the name, with its `=`.
                let at = self.written.start;
                let mut out = Zeroizing::new(b"=".to_vec());
                out.extend_from_slice(&render(value, false, &text[at..], eol));
                (at..at, out)
            }
            Some(equals) => {
                let after_equals = equals + 1;
                match self.quote {
                    Quote::None => {
                        let mut span = self.written.clone();
                        // `KEY=   # comment`: the (empty) value sits right before the `#`;
                        // a new one goes just after the `=`, keeping the comment apart.
                        if span.is_empty() && text.get(span.start) == Some(&b'#') {
                            span = after_equals..after_equals;
                        }
                        let spaced = span.start > after_equals;
                        let rendered = render(value, spaced, &text[span.end..], eol);
                        (span, rendered)
                    }
                    quote => {
                        let inner = self.written.start + 1..self.written.end - 1;
                        let raw_lines = text[inner.clone()].iter().any(|&b| is_eol(b));
                        match quoted(quote, value, eol, raw_lines) {
                            Some(inside) => (inner, inside),
                            None => (self.written.clone(), quoted_safely(value, eol)),
                        }
                    }
                }
            }
        };
        let mut out = Zeroizing::new(Vec::with_capacity(text.len() + rendered.len()));
        out.extend_from_slice(&text[..range.start]);
        out.extend_from_slice(&rendered);
        out.extend_from_slice(&text[range.end..]);
        self.checked(SecretBytes::from(out), value)
    }

    /// `text` scanned as this key's entry holding exactly `value`.
    fn checked(&self, text: SecretBytes, value: &[u8]) -> Result<Assignment, EditError> {
        Assignment::scan(text)
            .filter(|a| a.key == self.key && ct_eq(a.value().expose(), value))
            .ok_or_else(|| EditError::Unrepresentable {
                key: self.key.clone(),
            })
    }

    /// `KEY=` (with `export ` if it had it) on a line of its own.
    fn plain_empty(&self, eol: LineEnd) -> Option<Assignment> {
        let export = if self.export { "export " } else { "" };
        let mut text = format!("{export}{}=", self.key).into_bytes();
        text.extend_from_slice(eol.bytes());
        Assignment::scan(SecretBytes::new(text)).filter(|a| a.key == self.key)
    }

    /// The same entry with no value (`KEY=`; a bare `KEY` stays as it is).
    fn emptied(&self) -> Result<Assignment, EditError> {
        let text = self.text.expose();
        if self.equals.is_none() || self.written.is_empty() {
            return Ok(self.clone());
        }
        let rest = &text[self.written.end..];
        let mut out = Zeroizing::new(Vec::with_capacity(text.len()));
        out.extend_from_slice(&text[..self.written.start]);
        // `A='x'#c` → `A= #c`: a `#` right after the `=` would be the value.
        if rest.first() == Some(&b'#') {
            out.push(b' ');
        }
        out.extend_from_slice(rest);
        self.checked(SecretBytes::from(out), b"")
    }
}

impl Default for Document {
    fn default() -> Self {
        Document::new()
    }
}

impl Document {
    /// An empty file (with `\n` line ends).
    pub fn new() -> Document {
        Document {
            bom: false,
            eol: LineEnd::Lf,
            items: Vec::new(),
        }
    }

    /// Parses a file; fails exactly when [`envfile::keys`] does, with the same error.
    pub fn parse(src: &[u8]) -> Result<Document, ParseError> {
        let bom = src.starts_with(BOM);
        let body = if bom { &src[BOM.len()..] } else { src };
        let mut items = Vec::new();
        let mut pos = 0;
        let piece = |range: Range<usize>| SecretBytes::new(body[range].to_vec());
        for raw in Scanner::new(src) {
            let raw = raw?;
            if raw.start > pos {
                items.push(Item::Other(piece(pos..raw.start)));
            }
            // Offsets into the file become offsets into the entry's own lines.
            let shift = |at: usize| at - raw.start;
            items.push(Item::Entry(Assignment {
                key: raw.key.to_owned(),
                text: piece(raw.start..raw.end),
                quote: raw.quote,
                export: raw.export,
                equals: raw.equals.map(shift),
                written: shift(raw.written.start)..shift(raw.written.end),
            }));
            pos = raw.end;
        }
        if pos < body.len() {
            items.push(Item::Other(piece(pos..body.len())));
        }
        Ok(Document {
            bom,
            eol: LineEnd::of(body),
            items,
        })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> SecretBytes {
        let mut out = Zeroizing::new(Vec::new());
        if self.bom {
            out.extend_from_slice(BOM);
        }
        for item in &self.items {
            out.extend_from_slice(item.text().expose());
        }
        SecretBytes::from(out)
    }

    /// The line end new lines get: the file's first one, `\n` when it has none.
    pub fn line_end(&self) -> &'static [u8] {
        self.eol.bytes()
    }

    /// The value of `key` (its last occurrence, as `run` reads it); `None` when the file
    /// does not have it. A bare `KEY` line has the empty value.
    pub fn get(&self, key: &str) -> Option<SecretBytes> {
        self.last_index(key).map(|i| self.entry(i).value())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.last_index(key).is_some()
    }

    /// The key names, each once, in order of first appearance (as [`envfile::keys`]).
    pub fn keys(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.assignments()
            .map(|a| a.key.as_str())
            .filter(|k| seen.insert(*k))
            .collect()
    }

    /// Every key once, in order of first appearance, with the value that counts (its
    /// last occurrence's): the variables `run` sets.
    pub fn variables(&self) -> Vec<(&str, SecretBytes)> {
        let mut last = std::collections::HashMap::new();
        for (i, a) in self.assignments().enumerate() {
            last.insert(a.key.as_str(), i);
        }
        let all: Vec<&Assignment> = self.assignments().collect();
        self.keys()
            .into_iter()
            .map(|k| (k, all[last[k]].value()))
            .collect()
    }

    /// Every assignment in file order, duplicates included, with the lines it spans.
    pub fn entries(&self) -> Vec<EntryInfo> {
        let mut last = std::collections::HashMap::new();
        for (i, a) in self.assignments().enumerate() {
            last.insert(a.key.as_str(), i);
        }
        let mut out = Vec::new();
        let mut line = 1;
        for item in &self.items {
            let text = item.text().expose();
            let breaks = line_breaks(text);
            if let Item::Entry(a) = item {
                let inner = breaks - usize::from(text.last().is_some_and(|&b| is_eol(b)));
                out.push(EntryInfo {
                    key: a.key.clone(),
                    lines: line..=line + inner,
                    quote: a.quote,
                    export: a.export,
                    bare: a.equals.is_none(),
                    last: last[a.key.as_str()] == out.len(),
                });
            }
            line += breaks;
        }
        out
    }

    /// Gives `key` the value `value`: its last occurrence's value is replaced in place
    /// (earlier duplicates are left as they are: they do not count), or, when the file
    /// does not have the key, a `KEY=value` line is added at the end.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<Change, EditError> {
        validate_key(key).map_err(EditError::BadKey)?;
        match self.last_index(key) {
            Some(i) => {
                let edited = self.entry(i).with_value(value, self.eol)?;
                self.items[i] = Item::Entry(edited);
                Ok(Change::Replaced)
            }
            None => {
                self.insert(key, value, Anchor::End)?;
                Ok(Change::Added)
            }
        }
    }

    /// Removes every occurrence of `key` with its lines; returns how many there were.
    /// Comments and blank lines, even those just above it, stay.
    pub fn unset(&mut self, key: &str) -> usize {
        let before = self.items.len();
        self.items
            .retain(|item| !matches!(item, Item::Entry(a) if a.key == key));
        before - self.items.len()
    }

    /// Adds `key` with `value` as a new `KEY=value` line (with `export ` when every
    /// assignment of the file has it) at `at`. Refused when the file has the key already
    /// (use [`Document::set`]) or the neighbour is not in the file.
    pub fn insert(&mut self, key: &str, value: &[u8], at: Anchor<'_>) -> Result<(), EditError> {
        validate_key(key).map_err(EditError::BadKey)?;
        self.refuse_present(key)?;
        let export = self.assignments().next().is_some() && self.assignments().all(|a| a.export);
        let mut text = Zeroizing::new(Vec::new());
        if export {
            text.extend_from_slice(b"export ");
        }
        text.extend_from_slice(key.as_bytes());
        text.push(b'=');
        let eol = self.eol.bytes();
        text.extend_from_slice(&render(value, false, eol, self.eol));
        text.extend_from_slice(eol);
        let template = Assignment {
            key: key.to_owned(),
            text: SecretBytes::default(),
            quote: Quote::None,
            export,
            equals: None,
            written: 0..0,
        };
        let entry = template.checked(SecretBytes::from(text), value)?;
        let index = self.anchor_index(at)?;
        self.insert_item(index, entry);
        Ok(())
    }

    /// Adds `key` as `other` writes it (its last occurrence's lines: quoting, `export`,
    /// trailing comment), with this file's line ends, at `at`. Refused when this file has
    /// the key already, `other` does not, or the neighbour is not in this file.
    pub fn insert_from(
        &mut self,
        other: &Document,
        key: &str,
        at: Anchor<'_>,
    ) -> Result<(), EditError> {
        self.refuse_present(key)?;
        let theirs = other
            .last_index(key)
            .map(|i| other.entry(i))
            .ok_or_else(|| EditError::Missing {
                key: key.to_owned(),
            })?;
        // Line breaks only occur inside quotes (where any of them reads as `\n`) and at
        // the end, so the value survives taking this file's line end.
        let mut text = Zeroizing::new(Vec::with_capacity(theirs.text.len() + 2));
        let src = theirs.text.expose();
        let mut i = 0;
        while i < src.len() {
            match src[i] {
                b'\r' if src.get(i + 1) == Some(&b'\n') => {
                    text.extend_from_slice(self.eol.bytes());
                    i += 2;
                }
                b'\r' | b'\n' => {
                    text.extend_from_slice(self.eol.bytes());
                    i += 1;
                }
                b => {
                    text.push(b);
                    i += 1;
                }
            }
        }
        if !text.last().is_some_and(|&b| is_eol(b)) {
            text.extend_from_slice(self.eol.bytes());
        }
        let entry = theirs.checked(SecretBytes::from(text), theirs.value().expose())?;
        let index = self.anchor_index(at)?;
        self.insert_item(index, entry);
        Ok(())
    }

    /// Applies a merge's edits ([`crate::merge::merge`]) to this file (ours), in order:
    /// `Set` replaces a value in place, `Unset` removes every occurrence, `Insert` adds the
    /// key after its neighbour (at the end when there is none, or when ours no longer has
    /// it); keys inserted after the same neighbour follow one another in the order given
    /// (theirs), not each right after it. The result keeps our layout; each edit is
    /// checked as [`Document::set`] is.
    pub fn apply(&mut self, edits: &[Edit]) -> Result<(), EditError> {
        // Neighbour → the key last inserted after it.
        let mut chained: std::collections::HashMap<&str, &str> = Default::default();
        for edit in edits {
            match edit {
                Edit::Set { key, value } => {
                    self.set(key, value.expose())?;
                }
                Edit::Unset { key } => {
                    self.unset(key);
                }
                Edit::Insert { key, value, after } => {
                    let at = match after.as_deref() {
                        Some(n) if self.contains(n) => {
                            let last = chained.insert(n, key).unwrap_or(n);
                            Anchor::After(if self.contains(last) { last } else { n })
                        }
                        _ => Anchor::End,
                    };
                    self.insert(key, value.expose(), at)?;
                }
            }
        }
        Ok(())
    }

    /// The file as a template (`.env.example`): the same lines with every value emptied
    /// (`KEY=`, a trailing comment kept), and every commented-out assignment
    /// (`# KEY=value`) emptied too, since it is often an old value. Other comments and
    /// blank lines stay as they are.
    pub fn template(&self) -> Document {
        let items = self
            .items
            .iter()
            .filter_map(|item| match item {
                // Not expected to fail; if it did, a plain `KEY=` line rather than a value
                // in a file meant to be committed (and no line at all rather than that).
                Item::Entry(a) => a
                    .emptied()
                    .ok()
                    .or_else(|| a.plain_empty(self.eol))
                    .map(Item::Entry),
                Item::Other(text) => Some(Item::Other(comments_emptied(text.expose()))),
            })
            .collect();
        Document {
            bom: self.bom,
            eol: self.eol,
            items,
        }
    }

    fn assignments(&self) -> impl Iterator<Item = &Assignment> {
        self.items.iter().filter_map(|item| match item {
            Item::Entry(a) => Some(a),
            Item::Other(_) => None,
        })
    }

    fn entry(&self, index: usize) -> &Assignment {
        match &self.items[index] {
            Item::Entry(a) => a,
            Item::Other(_) => unreachable!("an index from last_index or first_index"),
        }
    }

    fn last_index(&self, key: &str) -> Option<usize> {
        self.items
            .iter()
            .rposition(|item| matches!(item, Item::Entry(a) if a.key == key))
    }

    fn first_index(&self, key: &str) -> Option<usize> {
        self.items
            .iter()
            .position(|item| matches!(item, Item::Entry(a) if a.key == key))
    }

    fn refuse_present(&self, key: &str) -> Result<(), EditError> {
        if self.contains(key) {
            return Err(EditError::AlreadyPresent {
                key: key.to_owned(),
            });
        }
        Ok(())
    }

    fn anchor_index(&self, at: Anchor<'_>) -> Result<usize, EditError> {
        let missing = |key: &str| EditError::Missing {
            key: key.to_owned(),
        };
        match at {
            Anchor::After(key) => self
                .last_index(key)
                .map(|i| i + 1)
                .ok_or_else(|| missing(key)),
            Anchor::Before(key) => self.first_index(key).ok_or_else(|| missing(key)),
            Anchor::End => Ok(self.items.len()),
        }
    }

    /// Inserts `entry` (which ends with a line end) at `index`, giving the item before
    /// it a line end if it is the last line of a file that has none.
    fn insert_item(&mut self, index: usize, entry: Assignment) {
        if let Some(prev) = index.checked_sub(1).map(|i| &mut self.items[i]) {
            let text = prev.text().expose();
            if !text.last().is_some_and(|&b| is_eol(b)) {
                let mut ended = Zeroizing::new(text.to_vec());
                ended.extend_from_slice(self.eol.bytes());
                prev.set_text(SecretBytes::from(ended));
            }
        }
        self.items.insert(index, Item::Entry(entry));
    }
}

impl Item {
    fn text(&self) -> &SecretBytes {
        match self {
            Item::Other(text) => text,
            Item::Entry(a) => &a.text,
        }
    }

    /// Replaces the text of an item with the same text plus a line end (the entry's
    /// offsets stay valid: the line end goes after them).
    fn set_text(&mut self, text: SecretBytes) {
        match self {
            Item::Other(t) => *t = text,
            Item::Entry(a) => a.text = text,
        }
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_eol(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// How many line ends `text` holds (`\r\n` is one).
fn line_breaks(text: &[u8]) -> usize {
    let mut n = 0;
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && text.get(i + 1) != Some(&b'\n')) {
            n += 1;
        }
    }
    n
}

/// Whether `v` reads back as itself written without quotes, where `spaced` says whether
/// blanks separate it from the `=` and `rest` is what follows it on its line.
fn fits_unquoted(v: &[u8], spaced: bool, rest: &[u8]) -> bool {
    // A `#` right after the value would join it.
    if rest.first() == Some(&b'#') {
        return false;
    }
    let (Some(&first), Some(&last)) = (v.first(), v.last()) else {
        return true;
    };
    if is_blank(first) || is_blank(last) || matches!(first, b'\'' | b'"' | b'`') {
        return false;
    }
    if spaced && first == b'#' {
        return false;
    }
    let mut prev_blank = false;
    for &b in v {
        if is_eol(b) || (b == b'#' && prev_blank) {
            return false;
        }
        prev_blank = is_blank(b);
    }
    true
}

/// `v` between quotes of the style `quote`, if that style can hold it. Line breaks in
/// `v` are written as the file's line end (any line break inside quotes reads as `\n`),
/// or as `\n` escapes in double quotes unless `raw_lines`.
fn quoted(quote: Quote, v: &[u8], eol: LineEnd, raw_lines: bool) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(v.len() + 8));
    let literal = |close: u8, out: &mut Vec<u8>| {
        // Inside literal quotes a `\r` would read as `\n`, and the closing quote ends it.
        if v.iter().any(|&b| b == close || b == b'\r') {
            return false;
        }
        for &b in v {
            if b == b'\n' {
                out.extend_from_slice(eol.bytes());
            } else {
                out.push(b);
            }
        }
        true
    };
    let fits = match quote {
        Quote::None => return None,
        Quote::Single => literal(b'\'', &mut out),
        Quote::Backtick => literal(b'`', &mut out),
        Quote::Double => {
            for &b in v {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\n' if raw_lines => out.extend_from_slice(eol.bytes()),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b => out.push(b),
                }
            }
            true
        }
    };
    fits.then_some(out)
}

/// `v` with its quotes: single quotes when they can hold it, else double quotes with
/// escapes (which hold anything).
fn quoted_safely(v: &[u8], eol: LineEnd) -> Zeroizing<Vec<u8>> {
    let (quote, mark) = match quoted(Quote::Single, v, eol, true) {
        Some(inside) => (inside, b'\''),
        None => (
            quoted(Quote::Double, v, eol, false).unwrap_or_default(),
            b'"',
        ),
    };
    let mut out = Zeroizing::new(Vec::with_capacity(quote.len() + 2));
    out.push(mark);
    out.extend_from_slice(&quote);
    out.push(mark);
    out
}

/// `v` as a new value: unquoted when that reads back exactly, else quoted safely.
fn render(v: &[u8], spaced: bool, rest: &[u8], eol: LineEnd) -> Zeroizing<Vec<u8>> {
    if fits_unquoted(v, spaced, rest) {
        Zeroizing::new(v.to_vec())
    } else {
        quoted_safely(v, eol)
    }
}

/// Comment lines with every commented-out assignment (`# KEY=…`, `#export KEY=…`)
/// cut after its `=`.
fn comments_emptied(text: &[u8]) -> SecretBytes {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len()));
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| is_eol(b)).unwrap_or(rest.len());
        let brk = match rest.get(end) {
            Some(b'\r') if rest.get(end + 1) == Some(&b'\n') => 2,
            Some(_) => 1,
            None => 0,
        };
        let (line, line_end) = (&rest[..end], &rest[end..end + brk]);
        match commented_assignment(line) {
            Some(equals) => out.extend_from_slice(&line[..=equals]),
            None => out.extend_from_slice(line),
        }
        out.extend_from_slice(line_end);
        rest = &rest[end + brk..];
    }
    SecretBytes::from(out)
}

/// The offset of the `=` when `line` is a comment holding an assignment: `#`, then
/// blanks, an optional `export`, a key name made of letters, digits, `_`, `.` and `-`,
/// blanks, `=`.
fn commented_assignment(line: &[u8]) -> Option<usize> {
    let skip_blanks = |mut i: usize| {
        while line.get(i).copied().is_some_and(is_blank) {
            i += 1;
        }
        i
    };
    let mut i = skip_blanks(0);
    if line.get(i) != Some(&b'#') {
        return None;
    }
    i = skip_blanks(i + 1);
    let word = |start: usize| {
        let mut end = start;
        while line.get(end).is_some_and(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') || b >= 0x80
        }) {
            end += 1;
        }
        end
    };
    let mut end = word(i);
    if &line[i..end] == b"export" && line.get(end).copied().is_some_and(is_blank) {
        i = skip_blanks(end);
        end = word(i);
    }
    let name = std::str::from_utf8(&line[i..end]).ok()?;
    if validate_key(name).is_err()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return None;
    }
    let equals = skip_blanks(end);
    (line.get(equals) == Some(&b'=')).then_some(equals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(src: &str) -> Document {
        Document::parse(src.as_bytes()).unwrap()
    }

    fn text(d: &Document) -> String {
        String::from_utf8(d.to_bytes().expose().to_vec()).unwrap()
    }

    fn set(src: &str, key: &str, value: &str) -> String {
        let mut d = doc(src);
        d.set(key, value.as_bytes()).unwrap();
        let out = text(&d);
        let back = Document::parse(out.as_bytes()).unwrap();
        assert_eq!(back.get(key).unwrap().expose(), value.as_bytes(), "{out:?}");
        out
    }

    #[test]
    fn set_keeps_the_layout_and_the_quoting_it_can() {
        assert_eq!(set("A=1\n", "A", "2"), "A=2\n");
        assert_eq!(set("export A = 1 # c\n", "A", "xy"), "export A = xy # c\n");
        assert_eq!(set("A='1'\n", "A", "a b"), "A='a b'\n");
        assert_eq!(
            set("A=\"1\"\n", "A", "say \"hi\""),
            "A=\"say \\\"hi\\\"\"\n"
        );
        assert_eq!(set("A=`1`\n", "A", "it's"), "A=`it's`\n");
        assert_eq!(set("A=1\n", "A", " padded "), "A=' padded '\n");
        assert_eq!(set("A=1\n", "A", "a #b"), "A='a #b'\n");
        assert_eq!(set("A=1\n", "A", "a#b"), "A=a#b\n");
        assert_eq!(set("A = 1\n", "A", "#b"), "A = '#b'\n");
        assert_eq!(set("A=1\n", "A", "it's"), "A=it's\n");
        assert_eq!(set("A=1\n", "A", "'q"), "A=\"'q\"\n");
        assert_eq!(set("A='1'\n", "A", "it's"), "A=\"it's\"\n");
        assert_eq!(set("A=1\r\n", "A", "x\ny"), "A='x\r\ny'\r\n");
        assert_eq!(set("A=1\n", "A", "x\r"), "A=\"x\\r\"\n");
        assert_eq!(set("A=\"l1\nl2\"\n", "A", "m1\nm2"), "A=\"m1\nm2\"\n");
        assert_eq!(set("A=\"l1\"\n", "A", "m1\nm'2"), "A=\"m1\\nm'2\"\n");
        assert_eq!(set("A='def'#hi\n", "A", "x"), "A='x'#hi\n");
        assert_eq!(set("A='def'#hi\n", "A", "it's"), "A=\"it's\"#hi\n");
        assert_eq!(
            set("KEY9=   # comment\n", "KEY9", "v"),
            "KEY9=v   # comment\n"
        );
        assert_eq!(set("A=\n", "A", "v"), "A=v\n");
        assert_eq!(set("A= \n", "A", "v"), "A= v\n");
        assert_eq!(set("A=1\n", "A", ""), "A=\n");
        assert_eq!(set("A=1 # c\n", "A", ""), "A= # c\n");
        assert_eq!(set("export K\n", "K", "v"), "export K=v\n");
        assert_eq!(set("K # declared\n", "K", "v w"), "K=v w # declared\n");
        assert_eq!(set("A=1\nA=2\nB=3\n", "A", "9"), "A=1\nA=9\nB=3\n");
        assert_eq!(set("A=1", "A", "22"), "A=22");
        assert_eq!(set("\u{feff}A=1\n", "A", "2"), "\u{feff}A=2\n");
    }

    #[test]
    fn new_keys_go_at_the_end_or_beside_a_neighbour() {
        assert_eq!(set("A=1", "B", "2"), "A=1\nB=2\n");
        assert_eq!(set("A=1\r\n# end", "B", "x y"), "A=1\r\n# end\r\nB=x y\r\n");
        assert_eq!(set("export A=1\n", "B", "2"), "export A=1\nexport B=2\n");
        assert_eq!(set("", "B", "2"), "B=2\n");
        let mut d = doc("A=1\n# about B\nB=2\nA=3\n");
        d.insert("N", b"n", Anchor::After("A")).unwrap();
        d.insert("M", b"m", Anchor::Before("A")).unwrap();
        d.insert("O", b"o", Anchor::After("B")).unwrap();
        assert_eq!(text(&d), "M=m\nA=1\n# about B\nB=2\nO=o\nA=3\nN=n\n");
        assert_eq!(
            d.insert("A", b"x", Anchor::End),
            Err(EditError::AlreadyPresent { key: "A".into() })
        );
        assert_eq!(
            d.insert("Z", b"x", Anchor::After("NOPE")),
            Err(EditError::Missing { key: "NOPE".into() })
        );
        assert!(matches!(d.set("A B", b"x"), Err(EditError::BadKey(_))));
    }

    #[test]
    fn insert_from_copies_their_lines_with_our_line_ends() {
        let theirs = doc("export PEM=\"a\r\nb\" # key\r\nX=1\r\n");
        let mut ours = doc("A=1\nB=2");
        ours.insert_from(&theirs, "PEM", Anchor::After("A"))
            .unwrap();
        ours.insert_from(&theirs, "X", Anchor::End).unwrap();
        assert_eq!(text(&ours), "A=1\nexport PEM=\"a\nb\" # key\nB=2\nX=1\n");
        assert_eq!(ours.get("PEM").unwrap().expose(), b"a\nb");
    }

    #[test]
    fn unset_removes_every_occurrence_and_only_its_lines() {
        let mut d = doc("# head\nA=1\n\n# about B\nB='x\ny'\nA=2\nC=3");
        assert_eq!(d.unset("A"), 2);
        assert_eq!(text(&d), "# head\n\n# about B\nB='x\ny'\nC=3");
        assert_eq!(d.unset("C"), 1);
        assert_eq!(text(&d), "# head\n\n# about B\nB='x\ny'\n");
        assert_eq!(d.unset("NOPE"), 0);
    }

    #[test]
    fn entries_list_line_spans() {
        let d = doc("\u{feff}# c\nA=1\r\nexport B=\"x\r\ny\"\r\nC\nA=2");
        let spans: Vec<_> = d
            .entries()
            .into_iter()
            .map(|e| (e.key, e.lines, e.export, e.bare, e.last))
            .collect();
        assert_eq!(
            spans,
            [
                ("A".into(), 2..=2, false, false, false),
                ("B".into(), 3..=4, true, false, true),
                ("C".into(), 5..=5, false, true, true),
                ("A".into(), 6..=6, false, false, true),
            ]
        );
        assert_eq!(d.keys(), ["A", "B", "C"]);
        let vars: Vec<_> = d
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.expose().to_vec()))
            .collect();
        assert_eq!(
            vars,
            [("A", b"2".to_vec()), ("B", b"x\ny".to_vec()), ("C", vec![])]
        );
    }

    #[test]
    fn templates_empty_every_value_and_commented_out_ones() {
        let d = doc(
            "# Settings: see the wiki\n# OLD_KEY=sk_live_old\n#export T = x\nA=1\nB='x\ny' # two\nC='d'#c\nexport D=\"q\"\nE\nF=   # none\n# e.g. FOO=bar\n",
        );
        assert_eq!(
            text(&d.template()),
            "# Settings: see the wiki\n# OLD_KEY=\n#export T =\nA=\nB= # two\nC= #c\nexport D=\nE\nF=   # none\n# e.g. FOO=bar\n"
        );
    }

    #[test]
    fn a_merge_applies_to_our_layout() {
        use crate::envfile::entries;
        let base = "A=1\nB=2\nC=3\n";
        let ours = "# ours\nexport A='1'\nB=ours # mine\n\nC=3\n";
        let theirs = "A=theirs\nB=2\nNEW=n\nLAST=l\n";
        let e = |s: &str| entries(s.as_bytes()).unwrap();
        let merged = crate::merge::merge(&e(base), &e(ours), &e(theirs));
        assert!(merged.is_clean(), "{merged:?}");
        let mut d = doc(ours);
        d.apply(&merged.edits).unwrap();
        assert_eq!(
            text(&d),
            "# ours\nexport A='theirs'\nB=ours # mine\nNEW=n\nLAST=l\n\n"
        );
    }

    #[test]
    fn debug_never_shows_a_value() {
        let d = doc("# OLD=hunter2-sentinel\nA=hunter2-sentinel\n");
        let shown = format!("{d:?} {d:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
