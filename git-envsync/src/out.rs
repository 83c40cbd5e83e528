//! Writing to stdout without panicking: a closed pipe (`git envsync log | head`) ends the
//! program quietly with exit 0, as git and ripgrep do.

use std::io::Write;

/// Prints `text` to stdout as is.
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Prints a value as pretty JSON with a final newline.
pub fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => print(&(text + "\n")),
        Err(e) => eprintln!("error: cannot encode JSON: {e}"),
    }
}

/// A line of talk on stderr (progress, results of actions, warnings).
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
