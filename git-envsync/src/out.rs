//! Writing to the terminal: every line goes through [`clean`], and a closed pipe
//! (`git envsync log | head`) ends the program quietly with exit 0, as git and ripgrep do.
//!
//! Much of what envsync prints came from someone else: branch names and emails from the
//! server, key names from a teammate's file, settings from a committed `.envsync.toml`,
//! error messages a server wrote. A control character in any of them could move the
//! cursor, rewrite a line already printed or change the terminal's title, and a bidi
//! override could make one name read as another; so they are shown escaped (`\u{202e}`),
//! never interpreted. Values are never printed through here except by commands whose job
//! is to print them, which write raw bytes with [`raw`].

use std::borrow::Cow;
use std::io::Write;

/// `text` with every control character but newline and tab, and every invisible
/// formatting character, replaced by a `\u{…}` escape.
pub fn clean(text: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || envsync_common::names::is_invisible_format(c)
    };
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if bad(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Prints `text` to stdout, escaped.
pub fn print(text: &str) {
    raw(clean(text).as_bytes());
}

/// Writes bytes to stdout as they are: only for data the user asked to see verbatim.
pub fn raw(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Prints a value as pretty JSON with a final newline. JSON escapes control characters
/// itself; the data is for programs, so it is not otherwise altered.
pub fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => raw((text + "\n").as_bytes()),
        Err(e) => eprintln!("error: cannot encode JSON: {e}"),
    }
}

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A server's RFC 3339 time in one fixed width (`2026-11-30T04:05:53.160Z`): servers drop
/// trailing zeros of the fraction, which would break columns. Shown as it came when it
/// does not parse.
pub fn timestamp(at: &str) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or_else(|| at.to_owned())
}

/// `-q/--quiet`: from now on [`say`] says nothing.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// A line of talk on stderr (progress, results of actions, warnings), escaped; nothing
/// under `--quiet`.
pub fn say(line: &str) {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let _ = writeln!(std::io::stderr().lock(), "{}", clean(line));
}

/// Whether stderr gets colour: on a terminal unless `NO_COLOR` is set, or when
/// `CLICOLOR_FORCE` is set to anything but `0` (<https://no-color.org>, and the
/// `CLICOLOR_FORCE` convention of BSD tools).
fn colour() -> bool {
    use std::io::IsTerminal;
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// `error: …` on stderr (red on a terminal), escaped; never silenced.
pub fn error(message: &str) {
    labelled("error", "1;31", message);
}

/// `hint: …` on stderr (cyan on a terminal), escaped; never silenced.
pub fn hint(message: &str) {
    labelled("hint", "36", message);
}

fn labelled(label: &str, sgr: &str, message: &str) {
    let line = if colour() {
        format!("\x1b[{sgr}m{label}:\x1b[0m {}", clean(message))
    } else {
        format!("{label}: {}", clean(message))
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_one_width() {
        assert_eq!(
            timestamp("2026-11-30T04:05:53.16Z"),
            "2026-11-30T04:05:53.160Z"
        );
        assert_eq!(
            timestamp("2026-11-30T04:05:53Z"),
            "2026-11-30T04:05:53.000Z"
        );
        assert_eq!(
            timestamp("2026-11-30T05:05:53.1+01:00"),
            "2026-11-30T04:05:53.100Z"
        );
        assert_eq!(timestamp("yesterday"), "yesterday");
    }

    #[test]
    fn escapes_what_a_terminal_would_interpret() {
        assert_eq!(clean("main\tok\n"), "main\tok\n");
        assert_eq!(clean("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(clean("x\r\u{7}"), "x\\u{d}\\u{7}");
        assert_eq!(clean("ma\u{202e}nig"), "ma\\u{202e}nig");
        assert_eq!(clean("\u{9b}31m"), "\\u{9b}31m");
        assert!(matches!(clean("feature/ü"), Cow::Borrowed(_)));
    }
}

/// A progress bar for long work (`rotate`), on stderr: drawn only on a terminal and not
/// under `--quiet`. Lines said meanwhile go through it, so they never land in the bar.
#[derive(Debug)]
pub struct Progress(Option<indicatif::ProgressBar>);

/// Where a progress display may draw: stderr, when it is a terminal that can redraw a
/// line (`TERM` set and not `dumb`) and `--quiet` is off.
fn progress_target() -> Option<indicatif::ProgressDrawTarget> {
    use std::io::IsTerminal;
    let quiet = QUIET.load(std::sync::atomic::Ordering::Relaxed);
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let target = indicatif::ProgressDrawTarget::stderr();
    (!target.is_hidden()).then_some(target)
}

impl Progress {
    pub fn start(total: u64) -> Progress {
        let Some(target) = progress_target() else {
            return Progress(None);
        };
        let bar = indicatif::ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("[{pos}/{len}] {bar:30} {elapsed} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress(Some(bar))
    }

    /// Whether the bar is drawn (elsewhere, callers say a line per step).
    pub fn drawn(&self) -> bool {
        self.0.is_some()
    }

    /// What the current step is doing (escaped).
    pub fn doing(&self, what: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(clean(what).into_owned());
        }
    }

    pub fn advance(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    /// [`say`], above the bar.
    pub fn say(&self, line: &str) {
        match &self.0 {
            Some(bar) => bar.suspend(|| say(line)),
            None => say(line),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// A spinner with a line saying what is under way, for one step that may take seconds
/// (sealing with scrypt, then sending): on stderr at a terminal only (as [`Progress`]),
/// cleared when dropped. Not in a hook (git gives hooks no terminal on stdin): a hook says
/// at most its one line. Start it only once every prompt of the step is behind.
#[derive(Debug)]
pub struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    pub fn start(what: &str) -> Spinner {
        use std::io::IsTerminal;
        let Some(target) = progress_target().filter(|_| std::io::stdin().is_terminal()) else {
            return Spinner(None);
        };
        let spinner = indicatif::ProgressBar::with_draw_target(None, target);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            spinner.set_style(style);
        }
        spinner.set_message(clean(what).into_owned());
        spinner.enable_steady_tick(std::time::Duration::from_millis(100));
        Spinner(Some(spinner))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(spinner) = &self.0 {
            spinner.finish_and_clear();
        }
    }
}
