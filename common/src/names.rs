//! The naming rules shared by client and server: project ids, branch names and key names.
//!
//! Each validator returns the reason a name is refused, never the name's neighbours, so
//! an error can be shown to a user as one line. Names are compared byte for byte: no
//! Unicode normalisation is applied anywhere (git does not normalise ref names either),
//! so an NFC and an NFD spelling of the same branch are two different branches.

use thiserror::Error;

/// Longest project id, in bytes.
pub const MAX_PROJECT_LEN: usize = 128;
/// Longest branch name, in bytes.
pub const MAX_BRANCH_LEN: usize = 255;
/// Longest key name, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// Why a name was refused. The name itself is not repeated: callers add it where it is
/// safe to show (names are not secret, but they can be long or unprintable).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} contains a character that is not allowed ({reason})")]
    BadCharacter {
        what: &'static str,
        reason: &'static str,
    },
    #[error("{what} {reason}")]
    BadShape {
        what: &'static str,
        reason: &'static str,
    },
}

/// Checks a project id: `[A-Za-z0-9._-]{1,128}`, no `..`, and not `.`.
pub fn validate_project(id: &str) -> Result<(), NameError> {
    const WHAT: &str = "project id";
    if id.is_empty() {
        return Err(NameError::Empty { what: WHAT });
    }
    if id.len() > MAX_PROJECT_LEN {
        return Err(NameError::TooLong {
            what: WHAT,
            max: MAX_PROJECT_LEN,
        });
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(NameError::BadCharacter {
            what: WHAT,
            reason: "only letters, digits, '.', '_' and '-' are allowed",
        });
    }
    if id.contains("..") {
        return Err(NameError::BadShape {
            what: WHAT,
            reason: "contains '..'",
        });
    }
    // A URL path segment `.` is removed by every URL parser (`/env/./main/keys` becomes
    // `/env/main/keys`, another project's branch), so it cannot name a project.
    if id == "." {
        return Err(NameError::BadShape {
            what: WHAT,
            reason: "is '.'",
        });
    }
    Ok(())
}

/// Checks a branch name against git's ref-name rules (`git check-ref-format --branch`)
/// plus the contract's limit of 255 bytes.
pub fn validate_branch(name: &str) -> Result<(), NameError> {
    const WHAT: &str = "branch name";
    let shape = |reason| Err(NameError::BadShape { what: WHAT, reason });
    if name.is_empty() {
        return Err(NameError::Empty { what: WHAT });
    }
    if name.len() > MAX_BRANCH_LEN {
        return Err(NameError::TooLong {
            what: WHAT,
            max: MAX_BRANCH_LEN,
        });
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        let reason = if c.is_control() {
            "control characters are not allowed"
        } else {
            "space, '~', '^', ':', '?', '*', '[' and '\\' are not allowed"
        };
        return Err(NameError::BadCharacter { what: WHAT, reason });
    }
    if name.chars().any(is_invisible_format) {
        return Err(NameError::BadCharacter {
            what: WHAT,
            reason: "bidirectional overrides and invisible formatting characters are not allowed",
        });
    }
    if name.starts_with('-') {
        return shape("starts with '-'");
    }
    if name == "@" {
        return shape("is '@'");
    }
    // `git branch HEAD` is refused too: the name would shadow the HEAD pointer.
    if name == "HEAD" {
        return shape("is 'HEAD'");
    }
    if name.contains("..") {
        return shape("contains '..'");
    }
    if name.contains("@{") {
        return shape("contains '@{'");
    }
    if name.ends_with('.') {
        return shape("ends with '.'");
    }
    for component in name.split('/') {
        if component.is_empty() {
            return shape("has an empty path component (leading, trailing or double '/')");
        }
        if component.starts_with('.') {
            return shape("has a path component starting with '.'");
        }
        if component.ends_with(".lock") {
            return shape("has a path component ending with '.lock'");
        }
    }
    Ok(())
}

/// Whether `c` changes how the text around it is displayed without being visible itself
/// (a branch named `main\u{202e}…` can read as another name in a terminal): every format
/// character (Unicode general category Cf: the bidirectional embeddings, overrides,
/// isolates and marks, the zero-width characters, the soft hyphen, the byte-order mark,
/// the tag characters, the prepended concatenation marks), every other default-ignorable
/// code point (Default_Ignorable_Code_Point, shown as nothing when a font lacks it: the
/// combining grapheme joiner, the Hangul fillers, the variation selectors, the reserved
/// ranges meant for more of them), and the line and paragraph separators; from Unicode
/// 15.1's tables. git accepts them in ref names; envsync does not.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061c}'
            | '\u{06dd}'
            | '\u{070f}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08e2}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// Checks a key name: 1–256 bytes, no whitespace, no control character, no `=`.
pub fn validate_key(name: &str) -> Result<(), NameError> {
    const WHAT: &str = "key name";
    if name.is_empty() {
        return Err(NameError::Empty { what: WHAT });
    }
    if name.len() > MAX_KEY_LEN {
        return Err(NameError::TooLong {
            what: WHAT,
            max: MAX_KEY_LEN,
        });
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '=')
    {
        return Err(NameError::BadCharacter {
            what: WHAT,
            reason: "whitespace, control characters and '=' are not allowed",
        });
    }
    Ok(())
}

/// A token's email as the server records it: 1 to 320 characters, no control character.
/// Returns it trimmed.
pub fn check_email(email: &str) -> Result<&str, &'static str> {
    let email = email.trim();
    if email.is_empty() || email.len() > 320 || email.chars().any(char::is_control) {
        return Err("email must be 1 to 320 characters with no control characters");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects() {
        for ok in ["project-123", "a", "A.b_c-d", &"x".repeat(128)] {
            assert_eq!(validate_project(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "a..b",
            "..",
            "a/b",
            "a b",
            "é",
            "a\0",
            &"x".repeat(129),
        ] {
            assert!(validate_project(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn branches() {
        let long = "b".repeat(255);
        for ok in [
            "main",
            "feature/login",
            "a/b/c",
            "feature/ü",
            "release-1.2",
            "x@y",
            "a=b",
            long.as_str(),
        ] {
            assert_eq!(validate_branch(ok), Ok(()), "{ok}");
        }
        let too_long = "b".repeat(256);
        for bad in [
            "",
            "-x",
            "a..b",
            "a b",
            "a\tb",
            "a\u{7f}",
            "a\0b",
            "x.lock",
            "a/x.lock/b",
            "/a",
            "a/",
            "a//b",
            ".hidden",
            "a/.b",
            "a.",
            "@",
            "HEAD",
            "a@{1}",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[b",
            "main\u{202e}gol",
            "a\u{200b}b",
            "\u{2066}x\u{2069}",
            "a\u{feff}",
            "a\\b",
            too_long.as_str(),
        ] {
            assert!(validate_branch(bad).is_err(), "{bad:?}");
        }
    }

    /// Every format character (Cf) and default-ignorable code point, each alone and
    /// inside a name; and their visible neighbours still pass.
    #[test]
    fn invisible_format_characters() {
        for c in [
            '\u{00ad}',  // soft hyphen
            '\u{034f}',  // combining grapheme joiner
            '\u{0600}',  // Arabic number sign (a prepended concatenation mark)
            '\u{0605}',  // Arabic number mark above
            '\u{06dd}',  // Arabic end of ayah
            '\u{070f}',  // Syriac abbreviation mark
            '\u{0890}',  // Arabic pound mark above
            '\u{0891}',  // Arabic piastre mark above
            '\u{08e2}',  // Arabic disputed end of ayah
            '\u{115f}',  // Hangul choseong filler
            '\u{1160}',  // Hangul jungseong filler
            '\u{17b4}',  // Khmer vowel inherent aq
            '\u{17b5}',  // Khmer vowel inherent aa
            '\u{180b}',  // Mongolian free variation selector one
            '\u{180e}',  // Mongolian vowel separator
            '\u{180f}',  // Mongolian free variation selector four
            '\u{2060}',  // word joiner
            '\u{2061}',  // function application
            '\u{2062}',  // invisible times
            '\u{2063}',  // invisible separator
            '\u{2064}',  // invisible plus
            '\u{2065}',  // reserved, default-ignorable
            '\u{3164}',  // Hangul filler
            '\u{fe00}',  // variation selector 1
            '\u{fe0f}',  // variation selector 16
            '\u{feff}',  // zero width no-break space (BOM)
            '\u{ffa0}',  // halfwidth Hangul filler
            '\u{fff0}',  // reserved, default-ignorable
            '\u{110bd}', // Kaithi number sign
            '\u{110cd}', // Kaithi number sign above
            '\u{13430}', // Egyptian hieroglyph vertical joiner
            '\u{1343f}', // Egyptian hieroglyph end walled enclosure
            '\u{1bca0}', // shorthand format letter overlap
            '\u{1d173}', // musical symbol begin beam
            '\u{1d17a}', // musical symbol end phrase
            '\u{e0000}', // reserved, default-ignorable
            '\u{e0001}', // language tag
            '\u{e0020}', // tag space
            '\u{e0041}', // tag latin capital letter a
            '\u{e007f}', // cancel tag
            '\u{e0100}', // variation selector 17
            '\u{e0fff}', // reserved, default-ignorable
        ] {
            assert!(is_invisible_format(c), "U+{:04X}", c as u32);
            let name = format!("main{c}x");
            assert!(
                matches!(validate_branch(&name), Err(NameError::BadCharacter { .. })),
                "U+{:04X}",
                c as u32
            );
        }
        for c in [
            'a',
            '-',
            '\u{00ac}',
            '\u{00ae}',
            '\u{034e}',
            '\u{0350}',
            '\u{0606}',
            '\u{1161}',
            '\u{3165}',
            '\u{fe10}',
            '\u{fffc}',
            '\u{e1000}',
            'ü',
            '한',
        ] {
            assert!(!is_invisible_format(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn keys() {
        for ok in [
            "API_KEY",
            "api.host",
            "SERVICE-NAME",
            "ÜBER",
            "2MUCH",
            "__proto__",
        ] {
            assert_eq!(validate_key(ok), Ok(()), "{ok}");
        }
        for bad in ["", "A B", "A=B", "A\nB", "A\u{a0}B", &"K".repeat(257)] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }
}
