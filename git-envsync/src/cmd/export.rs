//! `git envsync export`: every variable to stdout, for `eval`, CI and Docker.

use crate::cli::Global;
use crate::context::Context;
use crate::error::{CliError, Result};
use crate::out;
use envsync_common::envdoc::{Anchor, Document};
use envsync_common::secret::SecretBytes;
use std::process::ExitCode;
use zeroize::Zeroizing;

/// Print every variable to stdout, for eval, CI or Docker (sh, json or dotenv).
///
/// Each key once, with the value that counts (its last). Reads the env like get does: the
/// env file when it holds this branch's env, else the branch's latest version on the
/// server (verified).
///
/// sh (the default) prints export KEY='value' lines, safe for eval "$(git envsync
/// export)": keys that are not shell names are skipped with a warning, and a value with a
/// NUL byte is refused. json (or --json) prints one object, and refuses a value that is
/// not UTF-8. dotenv prints KEY=value lines, quoted where a value needs it, without
/// comments or export.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// The output format.
    #[arg(long, value_enum)]
    format: Option<Format>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Sh,
    Json,
    Dotenv,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let format = match (args.format, global.json) {
        (Some(f), _) => f,
        (None, true) => Format::Json,
        (None, false) => Format::Sh,
    };
    let ctx = Context::load(global)?;
    let env = super::get::branch_env(&ctx)?;
    let doc = env.document()?;
    let vars = doc.variables();
    let text = match format {
        Format::Sh => sh(&vars)?,
        Format::Json => json(&vars)?,
        Format::Dotenv => dotenv(&vars)?,
    };
    out::raw(&text);
    Ok(ExitCode::SUCCESS)
}

/// `export KEY='value'` lines: inside single quotes the shell takes every byte as it is
/// but `'`, which is written `'\''`.
fn sh(vars: &[(&str, SecretBytes)]) -> Result<Zeroizing<Vec<u8>>> {
    let mut text = Zeroizing::new(Vec::new());
    for (key, value) in vars {
        if !is_shell_name(key) {
            out::say(&format!(
                "warning: skipped {key}: not a name a shell variable can have"
            ));
            continue;
        }
        if value.expose().contains(&0) {
            return Err(CliError::refused(format!(
                "{key} holds a NUL byte, which no shell variable can carry; nothing was printed"
            ))
            .hint("use --format json or --format dotenv"));
        }
        text.extend_from_slice(b"export ");
        text.extend_from_slice(key.as_bytes());
        text.extend_from_slice(b"='");
        for &b in value.expose() {
            if b == b'\'' {
                text.extend_from_slice(b"'\\''");
            } else {
                text.push(b);
            }
        }
        text.extend_from_slice(b"'\n");
    }
    Ok(text)
}

fn is_shell_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One JSON object, in the file's key order. Written by hand so that the values never
/// pass through a `String` that is not wiped.
fn json(vars: &[(&str, SecretBytes)]) -> Result<Zeroizing<Vec<u8>>> {
    let mut text = Zeroizing::new(b"{".to_vec());
    for (i, (key, value)) in vars.iter().enumerate() {
        let value = std::str::from_utf8(value.expose()).map_err(|_| {
            CliError::refused(format!(
                "{key} is not valid UTF-8, which JSON cannot carry; nothing was printed"
            ))
            .hint("use --format sh or --format dotenv")
        })?;
        text.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
        json_string(key, &mut text);
        text.extend_from_slice(b": ");
        json_string(value, &mut text);
    }
    text.extend_from_slice(if vars.is_empty() { b"}\n" } else { b"\n}\n" });
    Ok(text)
}

fn json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// A normalised dotenv file: `KEY=value` lines, quoted where a value needs it.
fn dotenv(vars: &[(&str, SecretBytes)]) -> Result<Zeroizing<Vec<u8>>> {
    let mut doc = Document::new();
    for (key, value) in vars {
        doc.insert(key, value.expose(), Anchor::End)
            .map_err(|e| CliError::refused(format!("cannot write {key}: {e}")))?;
    }
    Ok(Zeroizing::new(doc.to_bytes().expose().to_vec()))
}
