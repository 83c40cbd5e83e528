//! Reading `.env` files: key names for drift, values for `git envsync run`.
//!
//! The rules are the ones mainstream dotenv parsers share (Node's `dotenv`, `dotenvy`,
//! `python-dotenv`), pinned by `fixtures/`:
//!
//! - a UTF-8 BOM at the start is ignored; lines end with `\n`, `\r\n` or a lone `\r`;
//! - blank lines and lines starting with `#` are comments;
//! - `export ` before a key is dropped; `KEY` alone (no `=`) declares a key with no value;
//! - spaces and tabs around the key and the `=` are ignored;
//! - a value is unquoted (ends at the line end or at a `#` that follows whitespace, and is
//!   trimmed), or `'…'`, `"…"` or `` `…` `` quoted; quoted values may span lines; only
//!   double quotes know escapes (`\n`, `\t`, `\"`, `\\`, …);
//! - a key that appears twice is one key (the last value wins for `run`).
//!
//! Nothing is ever expanded or executed: `$VAR`, `${VAR}`, `$(cmd)` and backticks are
//! plain bytes. The file itself is never rewritten, so values may hold any bytes.
//!
//! A hand-written scanner rather than the `dotenvy` crate, because dotenvy expands `$VAR`
//! (which must never happen here), rejects bare `KEY` lines that the fixtures require, and
//! works on `&str` while `.env` files in the wild contain invalid UTF-8 in values.
//!
//! Errors carry a line number and, when it is known and valid, the key name: never any
//! byte of a value, since a value is a secret.

use crate::names::validate_key;
use crate::secret::SecretBytes;
use std::collections::HashSet;
use thiserror::Error;

/// Why a file could not be read. Holds line numbers and key names, never values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("line {line}: {reason}")]
    BadKey { line: usize, reason: String },
    #[error("line {line}: expected KEY=VALUE")]
    NotAnAssignment { line: usize },
    #[error("line {line}: the value of {key} has an opening {quote} quote that is never closed")]
    UnterminatedQuote {
        line: usize,
        key: String,
        quote: char,
    },
    #[error("line {line}: unexpected text after the closing quote of {key}")]
    TextAfterQuote { line: usize, key: String },
}

/// The key names of a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Each name once, in order of first appearance.
    pub names: Vec<String>,
    /// Names that appear more than once (each listed once).
    pub duplicates: Vec<String>,
}

/// One assignment with its decoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// 1-based line of the key.
    pub line: usize,
    pub value: SecretBytes,
}

/// Reads the key names of a `.env` file.
pub fn keys(src: &[u8]) -> Result<Keys, ParseError> {
    let mut seen = HashSet::new();
    let mut dup_seen = HashSet::new();
    let mut out = Keys::default();
    for raw in Scanner::new(src) {
        let raw = raw?;
        if seen.insert(raw.key) {
            out.names.push(raw.key.to_owned());
        } else if dup_seen.insert(raw.key) {
            out.duplicates.push(raw.key.to_owned());
        }
    }
    Ok(out)
}

/// Reads every assignment with its value decoded, in file order (duplicates included).
pub fn entries(src: &[u8]) -> Result<Vec<Entry>, ParseError> {
    Scanner::new(src)
        .map(|raw| {
            let raw = raw?;
            Ok(Entry {
                key: raw.key.to_owned(),
                line: raw.line,
                value: raw.decode(),
            })
        })
        .collect()
}

/// How a value is written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quote {
    /// Unquoted (or no value at all): trimmed, ends at the line end or at a `#` after a
    /// blank.
    None,
    /// `'…'`: every byte literal.
    Single,
    /// `"…"`: knows the escapes `\n`, `\r`, `\t`, `\"`, `\\`, `\'`, `\$` and `` \` ``.
    Double,
    /// `` `…` ``: every byte literal.
    Backtick,
}

/// One assignment as it stands in the file: `value` is the bytes between the quotes (or
/// the trimmed unquoted value), not yet decoded. The offsets are into the scanned text
/// (after the BOM), so that [`crate::envdoc`] can edit the file around them.
pub(crate) struct RawEntry<'a> {
    pub(crate) key: &'a str,
    pub(crate) line: usize,
    pub(crate) value: &'a [u8],
    pub(crate) quote: Quote,
    /// Where the entry's first line starts.
    pub(crate) start: usize,
    /// Just past the line end of its last line (or the end of the text).
    pub(crate) end: usize,
    /// The `=`, when there is one (a bare `KEY` line has none).
    pub(crate) equals: Option<usize>,
    /// The value as written: with its quotes, or the trimmed unquoted bytes (empty, just
    /// past the blanks after `=`, when there is no value).
    pub(crate) written: std::ops::Range<usize>,
    /// Written with `export ` in front.
    pub(crate) export: bool,
}

impl RawEntry<'_> {
    pub(crate) fn decode(&self) -> SecretBytes {
        decode(self.value, self.quote)
    }
}

/// The value that `v`, the bytes between the quotes (or the trimmed unquoted bytes),
/// stands for.
pub(crate) fn decode(v: &[u8], quote: Quote) -> SecretBytes {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match (quote, v[i]) {
            (Quote::Double, b'\\') if i + 1 < v.len() => {
                let escaped = match v[i + 1] {
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    c @ (b'"' | b'\\' | b'\'' | b'$' | b'`') => Some(c),
                    _ => None,
                };
                match escaped {
                    Some(c) => {
                        out.push(c);
                        i += 2;
                    }
                    None => {
                        out.push(b'\\');
                        i += 1;
                    }
                }
            }
            // Line breaks inside a quoted value become `\n`, whatever the file uses.
            (Quote::None, c) => {
                out.push(c);
                i += 1;
            }
            (_, b'\r') => {
                out.push(b'\n');
                i += if v.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
            }
            (_, c) => {
                out.push(c);
                i += 1;
            }
        }
    }
    SecretBytes::new(out)
}

pub(crate) struct Scanner<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    /// Where the current line starts.
    line_start: usize,
    failed: bool,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_eol(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// The UTF-8 byte order mark, which the scanner skips.
pub(crate) const BOM: &[u8] = b"\xef\xbb\xbf";

impl<'a> Scanner<'a> {
    /// Scans `src` after its BOM, if it has one: offsets are relative to that.
    pub(crate) fn new(src: &'a [u8]) -> Self {
        Scanner::without_bom(src.strip_prefix(BOM).unwrap_or(src))
    }

    /// Scans `src` as it is: a BOM is not special (it can only start a file).
    pub(crate) fn without_bom(src: &'a [u8]) -> Self {
        Scanner {
            src,
            pos: 0,
            line: 1,
            line_start: 0,
            failed: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
    }

    /// Moves past the end of the current line (and its terminator).
    fn skip_line(&mut self) {
        while let Some(b) = self.peek() {
            self.pos += 1;
            if b == b'\n' {
                self.line += 1;
                self.line_start = self.pos;
                return;
            }
            if b == b'\r' {
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
                self.line += 1;
                self.line_start = self.pos;
                return;
            }
        }
    }

    /// The rest of the line is blank or a comment.
    fn at_line_end(&self) -> bool {
        let rest = &self.src[self.pos..];
        let end = rest.iter().position(|&b| is_eol(b)).unwrap_or(rest.len());
        let tail = &rest[..end];
        match tail.iter().position(|&b| !is_blank(b)) {
            None => true,
            Some(i) => tail[i] == b'#',
        }
    }

    fn word(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| !is_blank(b) && !is_eol(b) && b != b'=')
        {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    fn entry(&mut self) -> Option<Result<RawEntry<'a>, ParseError>> {
        loop {
            self.skip_blanks();
            match self.peek()? {
                b'#' => self.skip_line(),
                b if is_eol(b) => self.skip_line(),
                _ => break,
            }
        }
        let line = self.line;
        let start = self.line_start;
        let mut key = self.word();
        let mut export = false;
        if key == b"export" && self.peek().is_some_and(is_blank) {
            self.skip_blanks();
            if !self.peek().is_some_and(|b| is_eol(b) || b == b'=') {
                key = self.word();
                export = true;
            }
        }
        let key_end = self.pos;
        self.skip_blanks();
        let assignment = self.peek() == Some(b'=');
        if !assignment && !self.at_line_end() {
            return Some(Err(ParseError::NotAnAssignment { line }));
        }
        let key = match check_key(key, line, assignment) {
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        let mut entry = RawEntry {
            key,
            line,
            value: b"",
            quote: Quote::None,
            start,
            end: start,
            equals: None,
            written: key_end..key_end,
            export,
        };
        if !assignment {
            self.skip_line();
            entry.end = self.pos;
            return Some(Ok(entry));
        }
        entry.equals = Some(self.pos);
        self.pos += 1; // '='
        let after_equals = self.pos;
        self.skip_blanks();
        let spaced = self.pos > after_equals;
        Some(self.value(entry, spaced))
    }

    /// Reads the value that starts at the current position into `entry`; `spaced` says
    /// whether blanks separated it from the `=` (then a leading `#` starts a comment, as
    /// in a shell).
    fn value(&mut self, mut entry: RawEntry<'a>, spaced: bool) -> Result<RawEntry<'a>, ParseError> {
        let (key, line) = (entry.key, entry.line);
        let quote = match self.peek() {
            Some(b'\'') => Quote::Single,
            Some(b'"') => Quote::Double,
            Some(b'`') => Quote::Backtick,
            _ => Quote::None,
        };
        if quote == Quote::None {
            let start = self.pos;
            let mut end = start;
            let mut prev_blank = spaced;
            while let Some(b) = self.peek() {
                if is_eol(b) || (b == b'#' && prev_blank) {
                    break;
                }
                prev_blank = is_blank(b);
                self.pos += 1;
                if !prev_blank {
                    end = self.pos;
                }
            }
            self.skip_line();
            entry.value = &self.src[start..end];
            entry.written = start..end;
            entry.end = self.pos;
            return Ok(entry);
        }
        let q = self.src[self.pos];
        let opening = self.pos;
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => {
                    return Err(ParseError::UnterminatedQuote {
                        line,
                        key: key.to_owned(),
                        quote: q as char,
                    });
                }
                // An escape covers the next byte, unless that ends a line: the line
                // break is still counted (the backslash then stands for itself).
                Some(b'\\') if quote == Quote::Double => {
                    self.pos += 1;
                    if !self.peek().is_some_and(is_eol) {
                        self.pos += 1;
                    }
                }
                Some(b) if b == q => break,
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                }
                Some(b'\r') => {
                    self.pos += 1;
                    if self.peek() != Some(b'\n') {
                        self.line += 1;
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
        let value = &self.src[start..self.pos];
        self.pos += 1; // closing quote
        if !self.at_line_end() {
            return Err(ParseError::TextAfterQuote {
                line: self.line,
                key: key.to_owned(),
            });
        }
        self.skip_line();
        entry.value = value;
        entry.quote = quote;
        entry.written = opening..start + value.len() + 1;
        entry.end = self.pos;
        Ok(entry)
    }
}

/// A key must be UTF-8 and a valid key name. A bare `NAME` line (no `=`) must also look
/// like an identifier: a stray line of text (a pasted secret, say) must not become a key
/// name, because key names are sent to the server in the clear.
fn check_key(key: &[u8], line: usize, assignment: bool) -> Result<&str, ParseError> {
    let bad = |reason: &str| ParseError::BadKey {
        line,
        reason: reason.to_owned(),
    };
    if key.is_empty() {
        return Err(bad("missing key name before '='"));
    }
    let key = std::str::from_utf8(key).map_err(|_| bad("key name is not valid UTF-8"))?;
    if !assignment
        && !key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(ParseError::NotAnAssignment { line });
    }
    validate_key(key).map_err(|e| bad(&e.to_string()))?;
    Ok(key)
}

impl<'a> Iterator for Scanner<'a> {
    type Item = Result<RawEntry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.entry();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(src: &str) -> Vec<String> {
        keys(src.as_bytes()).unwrap().names
    }

    fn value_of(src: &str, key: &str) -> Vec<u8> {
        entries(src.as_bytes())
            .unwrap()
            .into_iter()
            .rev()
            .find(|e| e.key == key)
            .unwrap()
            .value
            .expose()
            .to_vec()
    }

    #[test]
    fn values_decode_like_dotenv() {
        assert_eq!(value_of("A=abc#def\n", "A"), b"abc#def");
        assert_eq!(value_of("A=abc #def\n", "A"), b"abc");
        assert_eq!(value_of("A=#tech\n", "A"), b"#tech");
        assert_eq!(value_of("A=   # c\n", "A"), b"");
        assert_eq!(value_of("A = v  \n", "A"), b"v");
        assert_eq!(value_of("A=\"a\\nb\"\n", "A"), b"a\nb");
        assert_eq!(value_of("A='a\\nb'\n", "A"), b"a\\nb");
        assert_eq!(value_of("A=\"say \\\"hi\\\"\"\n", "A"), b"say \"hi\"");
        assert_eq!(value_of("A=\"x\r\ny\"\r\n", "A"), b"x\ny");
        assert_eq!(value_of("A=${B}\n", "A"), b"${B}");
        assert_eq!(value_of("A=1\nA=2\n", "A"), b"2");
        assert_eq!(value_of("export K\n", "K"), b"");
        assert_eq!(value_of("A=`x'y\"z`\n", "A"), b"x'y\"z");
        let raw = entries(b"A=\xff\0x\n").unwrap();
        assert_eq!(raw[0].value.expose(), b"\xff\0x");
    }

    #[test]
    fn key_forms() {
        assert_eq!(names("export=1\n"), ["export"]);
        assert_eq!(names("export\n"), ["export"]);
        assert_eq!(names("export A\nexport\tB=2\n"), ["A", "B"]);
        assert_eq!(names("A=1\rB=2\rC=3"), ["A", "B", "C"]);
        assert_eq!(names("NAME # comment\n"), ["NAME"]);
    }

    #[test]
    fn errors_carry_lines_and_never_values() {
        let sentinel = "S3NTINEL-VALUE";
        let cases = [
            format!("A=1\nB=\"{sentinel}\n"),
            format!("A=1\n{sentinel} x\n"),
            format!("A=1\nB='{sentinel}' junk {sentinel}\n"),
            format!("A=1\n={sentinel}\n"),
            format!("A=1\nhttps://{sentinel}@host\n"),
        ];
        for src in cases {
            let err = keys(src.as_bytes()).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("line 2"), "{shown}");
            assert!(!shown.contains(sentinel), "{shown}");
        }
    }

    #[test]
    fn duplicates_listed_once() {
        let k = keys(b"A=1\nA=2\nB=1\nA=3\n").unwrap();
        assert_eq!(k.names, ["A", "B"]);
        assert_eq!(k.duplicates, ["A"]);
    }

    #[test]
    fn line_numbers_count_multiline_values() {
        let err = keys(b"A=\"x\ny\"\nB='z\n").unwrap_err();
        assert_eq!(
            err,
            ParseError::UnterminatedQuote {
                line: 3,
                key: "B".into(),
                quote: '\''
            }
        );
        // A backslash before a line break in double quotes escapes nothing: the line
        // still counts.
        let err = keys(b"A=\"x\\\ny\"\nB='z\n").unwrap_err();
        assert!(
            matches!(err, ParseError::UnterminatedQuote { line: 3, .. }),
            "{err:?}"
        );
        assert_eq!(value_of("A=\"x\\\ny\"\n", "A"), b"x\\\ny");
    }
}
