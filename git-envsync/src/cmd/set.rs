//! `git envsync set KEY=VALUE…`: edits the env file in place, layout kept. Also what
//! `unset` and `edit` share: the ownership check and reading the file as a document.

use crate::cli::Global;
use crate::context::Context;
use crate::error::{CliError, Result};
use crate::out;
use crate::sync;
use anyhow::Context as _;
use envsync_common::envdoc::{Change, Document};
use envsync_common::secret::ExposeSecret;
use std::ffi::OsString;
use std::io::{IsTerminal, Read};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use zeroize::Zeroizing;

/// Set variables in the env file, keeping its layout (comments, order, quoting, export).
///
/// An existing key's value is replaced where it stands (its last occurrence, the one that
/// counts); a new key is added at the end. A value given as KEY=VALUE lands in your shell
/// history and is visible to other processes while this runs: give KEY alone to type the
/// value at a prompt that does not echo it, or pass --stdin to read it from standard input
/// (one final line break is dropped, as $(...) would). Nothing is pushed: git envsync
/// push (or the hooks) share the change.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    /// KEY=VALUE, or KEY alone for the value to be read from the prompt or --stdin.
    #[arg(required = true, value_name = "KEY[=VALUE]")]
    assignments: Vec<OsString>,
    /// Read the value of the one KEY given without a value from standard input.
    #[arg(long)]
    stdin: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let mut given: Vec<(String, Option<Zeroizing<Vec<u8>>>)> = Vec::new();
    for arg in &args.assignments {
        let bytes = arg.as_bytes();
        let (name, value) = match bytes.iter().position(|&b| b == b'=') {
            Some(eq) => (&bytes[..eq], Some(Zeroizing::new(bytes[eq + 1..].to_vec()))),
            None => (bytes, None),
        };
        // Not repeated when refused: it may be a value typed without its `KEY=`.
        let name = std::str::from_utf8(name)
            .map_err(|_| CliError::usage("not a key name: it is not valid UTF-8"))?;
        super::get::check_key(name)?;
        given.push((name.to_owned(), value));
    }
    let pending: Vec<&str> = given
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.as_str())
        .collect();
    match (pending.as_slice(), args.stdin) {
        ([_, _, ..], _) => {
            return Err(CliError::usage(format!(
                "more than one key without a value ({}): only one can be read",
                pending.join(", ")
            ))
            .hint("give the others as KEY=VALUE, or run set once per key"));
        }
        ([], true) => {
            return Err(CliError::usage("--stdin needs a KEY without a value")
                .hint("git envsync set KEY --stdin < file"));
        }
        _ => {}
    }

    let ctx = Context::load(global)?;
    check_owner(&ctx, "set")?;
    let mut doc = read_document(&ctx)?;
    let mut replaced = Vec::new();
    let mut added = Vec::new();
    for (key, value) in &given {
        let value = match value {
            Some(v) => v.clone(),
            None => read_value(key, args.stdin)?,
        };
        let change = doc
            .set(key, &value)
            .map_err(|e| CliError::refused(format!("cannot set {key}: {e}")))?;
        let list = match change {
            Change::Replaced => &mut replaced,
            Change::Added => &mut added,
        };
        if !list.contains(key) {
            list.push(key.clone());
        }
    }
    ctx.env.write(doc.to_bytes().expose(), 0o600)?;
    let mut done = Vec::new();
    if !replaced.is_empty() {
        done.push(format!("set {}", replaced.join(", ")));
    }
    if !added.is_empty() {
        done.push(format!("added {}", added.join(", ")));
    }
    out::say(&format!(
        "Updated {}: {} (not pushed yet: git envsync push shares it)",
        ctx.env_display(),
        done.join("; ")
    ));
    Ok(ExitCode::SUCCESS)
}

/// Refuses to edit a file that holds another branch's env: the edit would change that
/// branch's env while this one is checked out.
pub(super) fn check_owner(ctx: &Context, what: &str) -> Result<()> {
    if let Some(file) = ctx.state.file()?
        && file.branch != ctx.branch
    {
        return Err(CliError::refused(format!(
            "{} holds {}, not {}: {what} would change {}'s env",
            ctx.env_display(),
            file.holds(),
            ctx.branch,
            file.branch
        ))
        .hint(format!(
            "git envsync pull brings {}'s env; git envsync adopt makes the file {}'s own",
            ctx.branch, ctx.branch
        )));
    }
    Ok(())
}

/// The env file as a document; refused when it does not exist (starting a new one here
/// and pushing it would replace the branch's env on the server with just these keys).
pub(super) fn read_document(ctx: &Context) -> Result<Document> {
    let bytes = sync::read_env(ctx)?.ok_or_else(|| {
        CliError::usage(format!("there is no {}", ctx.env_display())).hint(
            "git envsync pull fetches the branch's env; for a new project, create the file first",
        )
    })?;
    Document::parse(bytes.expose()).map_err(|e| {
        CliError::usage(format!("{}: {e}", ctx.env_display()))
            .hint("fix that line; envsync reads the usual KEY=VALUE dotenv syntax")
    })
}

/// The value of `key`, from standard input or typed at a prompt that does not echo.
fn read_value(key: &str, stdin: bool) -> Result<Zeroizing<Vec<u8>>> {
    if stdin {
        let mut value = Zeroizing::new(Vec::new());
        std::io::stdin()
            .lock()
            .read_to_end(&mut value)
            .context("cannot read standard input")?;
        let keep = value.len()
            - if value.ends_with(b"\r\n") {
                2
            } else {
                usize::from(value.ends_with(b"\n"))
            };
        value.truncate(keep);
        return Ok(value);
    }
    if std::io::stdin().is_terminal() {
        let typed = crate::prompt::read_secret(&format!("value for {key}: "))
            .context("cannot read the value")?;
        return Ok(Zeroizing::new(typed.expose_secret().as_bytes().to_vec()));
    }
    Err(CliError::usage(format!("no value given for {key}"))
        .hint(format!("git envsync set {key} --stdin reads it from standard input; or run set in a terminal to type it")))
}
