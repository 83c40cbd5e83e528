//! Source and dependency hygiene (B2, D5): checks on the repository itself, not on a
//! running server.
//!
//! - B2: the resolved `jsonwebtoken` is at least 10.3.0 (earlier versions skip a
//!   string-typed `exp`).
//! - D5: no secret is compared with `==` / `!=` / `.eq(` in the server, the CLI or
//!   `common`, and no type holding a secret derives `PartialEq` (a derived `==` is an early-
//!   exit byte comparison). Secrets are compared with `envsync_common::secret::ct_eq`.
//!
//! The lint reads Rust source as text: it strips comments and string literals, skips each
//! file's `#[cfg(test)] mod …` (tests may compare what they like), and looks at the
//! operands of every comparison. An operand is secret-bearing when it goes through
//! `.expose()` / `.expose_secret()`, or when its last path segment (conversions such as
//! `.as_bytes()` skipped) has a word like `token`, `secret`, `signature`, `passphrase`,
//! `password`, `hmac`, `mac`, `identity` or `plaintext`. `token.role == Role::Owner` is
//! fine; `token == other`, `secret.expose() == x` and `a.signature.as_bytes() != b` are not.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `(major, minor, patch)` of every `[[package]]` called `name` in a Cargo.lock.
fn locked_versions(lock: &str, name: &str) -> Vec<(u64, u64, u64)> {
    let mut found = Vec::new();
    for block in lock.split("[[package]]") {
        let field = |key: &str| {
            block.lines().find_map(|l| {
                l.trim()
                    .strip_prefix(key)
                    .and_then(|rest| rest.trim().strip_prefix('='))
                    .map(|v| v.trim().trim_matches('"').to_owned())
            })
        };
        if field("name").as_deref() != Some(name) {
            continue;
        }
        let version = field("version").unwrap();
        let mut parts = version
            .split(['.', '-', '+'])
            .map(|p| p.parse::<u64>().unwrap_or(0));
        found.push((
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        ));
    }
    found
}

#[test]
fn jsonwebtoken_resolves_to_10_3_or_later() {
    let lock = std::fs::read_to_string(workspace().join("Cargo.lock")).unwrap();
    let versions = locked_versions(&lock, "jsonwebtoken");
    assert!(!versions.is_empty(), "jsonwebtoken is not in Cargo.lock");
    for v in versions {
        assert!(
            v >= (10, 3, 0),
            "jsonwebtoken {v:?} is resolved; versions before 10.3.0 accept a string-typed exp"
        );
    }
    // The parser itself must be able to say no.
    let old = "[[package]]\nname = \"jsonwebtoken\"\nversion = \"10.2.9\"\n";
    assert_eq!(locked_versions(old, "jsonwebtoken"), vec![(10, 2, 9)]);
}

const SECRET_WORDS: &[&str] = &[
    "token",
    "tokens",
    "secret",
    "secrets",
    "signature",
    "sig",
    "passphrase",
    "password",
    "pass",
    "hmac",
    "mac",
    "identity",
    "plaintext",
];

/// Method calls that only convert an operand, skipped to find its last real segment.
const CONVERSIONS: &[&str] = &[
    "as_bytes",
    "as_str",
    "as_ref",
    "as_deref",
    "as_slice",
    "to_string",
    "to_owned",
    "to_vec",
    "clone",
    "trim",
    "unwrap",
    "get",
];

/// Whether an identifier (`snake_case` or `CamelCase`) has a secret word in it.
fn has_secret_word(ident: &str) -> bool {
    let mut words = Vec::new();
    let mut word = String::new();
    for c in ident.chars() {
        if (c == '_' || c.is_ascii_uppercase()) && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        if c != '_' {
            word.push(c.to_ascii_lowercase());
        }
    }
    words.push(word);
    words.iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
}

/// Whether a comparison operand carries a secret.
fn secret_operand(operand: &str) -> bool {
    let cleaned: String = operand
        .trim_start_matches(['&', '*', '(', '!'])
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ')')
        .collect();
    let segments: Vec<&str> = cleaned
        .split(['.', ':'])
        .map(|s| s.split('(').next().unwrap_or(""))
        .map(|s| s.split('[').next().unwrap_or(""))
        .filter(|s| !s.is_empty())
        .collect();
    // A digest of a secret (`sha256_hex(x.expose())`) is compared as it is: equal-time
    // comparison protects the secret, not its hash.
    let lower = cleaned.to_ascii_lowercase();
    if ["sha256", "digest", "hash"]
        .iter()
        .any(|d| lower.contains(d))
    {
        return false;
    }
    if segments
        .iter()
        .any(|s| *s == "expose" || *s == "expose_secret")
    {
        return true;
    }
    segments
        .iter()
        .rev()
        .find(|s| !CONVERSIONS.contains(s))
        .is_some_and(|s| has_secret_word(s))
}

fn operand_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '&' | '*' | '(' | ')' | '[' | ']')
}

/// The expression just before `end` in `line` (its last operand-looking run).
fn left_operand(text: &str) -> &str {
    let text = text.trim_end();
    let start = text
        .char_indices()
        .rev()
        .find(|(_, c)| !operand_char(*c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &text[start..]
}

fn right_operand(text: &str) -> &str {
    let text = text.trim_start();
    let end = text
        .char_indices()
        .find(|(_, c)| !operand_char(*c))
        .map_or(text.len(), |(i, _)| i);
    &text[..end]
}

/// Removes string/char literals' contents and `//` comments from one line.
fn code_only(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_string = false;
                    out.push('"');
                }
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push('"');
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// Every comparison of a secret in one file's non-test code: `(line number, line)`.
fn lint(source: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = source.lines().collect();
    let mut hits = Vec::new();
    let mut derives_partial_eq = false;
    let mut in_struct_with_derive = false;
    for (index, raw) in lines.iter().enumerate() {
        let trimmed = raw.trim();
        if trimmed == "#[cfg(test)]"
            && lines[index + 1..]
                .iter()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        let code = code_only(raw);
        let code = code.trim();
        if code.starts_with("#[derive(") {
            derives_partial_eq = code.contains("PartialEq");
            continue;
        }
        if code.starts_with("#[") {
            continue;
        }
        // A derived `==` on a type holding a secret.
        if derives_partial_eq {
            derives_partial_eq = false;
            if let Some(rest) = code
                .strip_prefix("pub ")
                .unwrap_or(code)
                .strip_prefix("struct ")
            {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let tuple = rest[name.len()..].starts_with('(');
                if tuple && has_secret_word(&name) {
                    hits.push((index + 1, raw.to_string()));
                }
                in_struct_with_derive = rest.trim_end().ends_with('{');
                continue;
            }
        }
        if in_struct_with_derive {
            if code.starts_with('}') {
                in_struct_with_derive = false;
            } else if let Some((field, _)) = code.split_once(':') {
                let field = field.trim().trim_start_matches("pub ").trim();
                if has_secret_word(field) {
                    hits.push((index + 1, raw.to_string()));
                }
            }
            continue;
        }
        // `a == b`, `a != b`, `a.eq(b)`.
        let mut flagged = false;
        for op in ["==", "!="] {
            for (at, _) in code.match_indices(op) {
                let left = left_operand(&code[..at]);
                let right = right_operand(&code[at + op.len()..]);
                flagged |= secret_operand(left) || secret_operand(right);
            }
        }
        for (at, _) in code.match_indices(".eq(") {
            let left = left_operand(&code[..at]);
            let right = right_operand(&code[at + 4..]);
            flagged |= secret_operand(left) || secret_operand(right);
        }
        if flagged {
            hits.push((index + 1, raw.to_string()));
        }
    }
    hits
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_secret_comparison_lint_catches_what_it_should() {
    let bad = [
        "if token == other {",
        "if self.secret.expose() == given.expose() {",
        "let same = a.signature.as_bytes() != b;",
        "if expected_mac == computed {",
        "    Some(cur) if cur.expose() == content.expose() => {",
        "if passphrase.expose_secret().eq(other) {",
        "#[derive(Clone, PartialEq)]\npub struct ApiToken(String);",
        "#[derive(Debug, PartialEq, Eq)]\npub struct Answer {\n    pub token: String,\n}",
        "if *jwt_secret == stored {",
    ];
    for source in bad {
        assert!(!lint(source).is_empty(), "not caught: {source}");
    }
    let fine = [
        "if token.role == Role::Owner {",
        "if who.jti == jti {",
        "if tokens.len() == 0 {",
        "let ok = ct_eq(secret.expose(), other.expose());",
        "// a comment: token == other",
        "let s = \"token == other\";",
        "#[derive(Debug, PartialEq, Eq)]\npub struct TokenInfo {\n    pub jti: String,\n}",
        "if scheme.eq_ignore_ascii_case(\"bearer \") {",
        "if stored.sha256.as_deref() == Some(&sha256_hex(plain.expose())) {",
        "#[cfg(test)]\nmod tests {\n    fn t() { assert!(token == other); }\n}",
    ];
    for source in fine {
        assert_eq!(lint(source), vec![], "false positive: {source}");
    }
}

#[test]
fn no_secret_is_compared_with_eq_in_the_server_cli_or_common() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["server/src", "git-envsync/src", "common/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut hits = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        for (line, text) in lint(&source) {
            hits.push(format!(
                "{}:{line}: {}",
                file.strip_prefix(&root).unwrap().display(),
                text.trim()
            ));
        }
    }
    assert!(
        hits.is_empty(),
        "secrets compared with ==, != or .eq() (use envsync_common::secret::ct_eq), or a \
         secret-holding type deriving PartialEq:\n{}",
        hits.join("\n")
    );
}
