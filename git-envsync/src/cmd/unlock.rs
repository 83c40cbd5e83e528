//! `git envsync unlock`: hands this project's passphrase to the per-user agent for a
//! while, after checking it against the server when there is something to check it with.

use crate::agent::{client, daemon::MAX_TTL};
use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::crypto::{self, Keyring};
use crate::error::{CliError, Exit, Result};
use crate::out;
use crate::prompt;
use crate::sync::{self, ReadRules};
use envsync_common::secret::{ExposeSecret, SecretString, ct_eq};
use serde_json::json;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use zeroize::Zeroizing;

/// Keep this project's passphrase in a per-user agent for a while (passphrase mode).
///
/// Commands and the git hooks ask the agent before they prompt, so ENVSYNC_PASS is not
/// needed (when it is set, it still comes first). The passphrase is typed at a prompt,
/// or read from stdin with --passphrase-stdin; it is checked against the branch's latest
/// version on the server (one scrypt; the default branch's when this one has none), and
/// asked twice when there is nothing to check it against. The agent keeps it in memory
/// locked against swap, answers only you through a 0600 socket in a 0700 directory under
/// $XDG_RUNTIME_DIR, and forgets it when the time is up or on git envsync lock.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// How long to keep it: 90s, 30m, 8h, 1d, 1h30m (at most 7d).
    #[arg(long = "for", value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    duration: Duration,
    /// Read the passphrase from the first line of stdin instead of prompting.
    #[arg(long)]
    passphrase_stdin: bool,
    /// Show which projects the agent holds a passphrase for, and until when (asks
    /// nothing, shows no passphrase).
    #[arg(long, conflicts_with = "passphrase_stdin")]
    status: bool,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    if args.status {
        return status(global);
    }
    let ctx = Context::load(global)?;
    let project = ctx.config.project.clone();
    if Keyring::new(&ctx.config, &ctx.keys, false)?.team_mode() {
        return Err(CliError::usage(format!(
            "{project} uses team keys: there is no passphrase to unlock"
        ))
        .hint("your identity file opens its versions; unlock is for passphrase mode"));
    }
    let passphrase = read(&args, &project)?;
    let checked = check(&ctx, &passphrase)?;
    if let Checked::Nothing(why) = &checked {
        // Whatever is kept now seals the next first version: a typo must not.
        crypto::check_strength(&passphrase, ctx.keys.allow_weak_pass)?;
        if !args.passphrase_stdin {
            let again = prompt::read_secret(&format!(
                "repeat the passphrase ({why}: nothing to check it against): "
            ))?;
            if !ct_eq(
                passphrase.expose_secret().as_bytes(),
                again.expose_secret().as_bytes(),
            ) {
                return Err(
                    CliError::usage("the two passphrases differ; nothing was kept")
                        .hint("run git envsync unlock again and type the same passphrase twice"),
                );
            }
        }
    }
    let until = client::store(&project, &passphrase, args.duration)
        .map_err(|e| CliError::refused(format!("cannot keep the passphrase: {e:#}")))?;
    drop(passphrase);
    if global.json {
        out::json(&json!({
            "project": project,
            "until": unix(until),
            "checked": match &checked {
                Checked::Against { branch, version } => json!({"branch": branch, "version": version}),
                Checked::Nothing(_) => json!(null),
            },
        }));
    } else {
        let how = match &checked {
            Checked::Against { branch, version } => {
                format!("checked against {branch} version {version}")
            }
            Checked::Nothing(why) => format!("not checked: {why}"),
        };
        out::say(&format!(
            "Unlocked {project} for {} (until {} UTC); {how}",
            show_duration(args.duration),
            clock(until)
        ));
    }
    if ctx.keys.pass.is_some() {
        out::say("note: ENVSYNC_PASS is set, and commands use it before the agent");
    }
    Ok(ExitCode::SUCCESS)
}

/// The passphrase typed, or read from stdin; never from a flag or the environment.
fn read(args: &Args, project: &str) -> Result<SecretString> {
    let passphrase = if args.passphrase_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::usage(format!("cannot read the passphrase from stdin: {e}")))?;
        let text = line.trim_end_matches(['\n', '\r']);
        let mut exact = String::with_capacity(text.len());
        exact.push_str(text);
        SecretString::from(exact)
    } else if std::io::stdin().is_terminal() {
        prompt::read_secret(&format!("envsync passphrase for {project}: "))?
    } else {
        return Err(CliError::usage("no passphrase given").hint(
            "run git envsync unlock in a terminal to be prompted, or pipe it in with --passphrase-stdin",
        ));
    };
    if passphrase.expose_secret().is_empty() {
        return Err(CliError::usage("empty passphrase").hint("type the project's passphrase"));
    }
    Ok(passphrase)
}

/// What the passphrase was checked against.
enum Checked {
    Against {
        branch: String,
        version: u64,
    },
    /// Nothing to check it with, and why.
    Nothing(&'static str),
}

/// Opens the latest version of the branch (or of the default branch) with `passphrase`:
/// a wrong one is refused before the agent ever sees it.
fn check(ctx: &Context, passphrase: &SecretString) -> Result<Checked> {
    let api = ctx.api(Timeouts::COMMAND)?;
    for branch in ctx.branch_and_fallback() {
        let latest = match api.keys(&ctx.config.project, &branch) {
            Ok(Some(keys)) => keys.version,
            Ok(None) => continue,
            Err(e) => {
                let e = api.fail(e);
                if e.exit == Exit::Server {
                    return Ok(Checked::Nothing("the server is unreachable"));
                }
                return Err(e);
            }
        };
        let mut keyring = Keyring::with_passphrase(&ctx.config, &ctx.keys, passphrase.clone())?;
        match sync::fetch_version(
            ctx,
            &api,
            &mut keyring,
            &branch,
            Some(latest),
            ReadRules::default(),
        ) {
            Ok(_) => {
                return Ok(Checked::Against {
                    branch,
                    version: latest,
                });
            }
            Err(e) if e.exit == Exit::Server => {
                return Ok(Checked::Nothing("the server is unreachable"));
            }
            Err(e) => {
                return Err(CliError::refused(format!(
                    "not unlocked: {} (version {latest} of {branch})",
                    e.message()
                ))
                .hint("type the passphrase this project's versions were pushed with; nothing was kept"));
            }
        }
    }
    Ok(Checked::Nothing(
        "the project has no version on the server yet",
    ))
}

/// `unlock --status`: what the agent holds, never a passphrase.
fn status(global: &Global) -> Result<ExitCode> {
    let held =
        client::list().map_err(|e| CliError::refused(format!("cannot reach the agent: {e:#}")))?;
    if global.json {
        out::json(&match &held {
            None => json!({"running": false, "projects": []}),
            Some(h) => json!({
                "running": true,
                "pid": h.pid,
                "projects": h.projects.iter().map(|(p, until)| json!({"project": p, "until": unix(*until)})).collect::<Vec<_>>(),
            }),
        });
        return Ok(ExitCode::SUCCESS);
    }
    match held {
        None => out::say("Locked: no agent is running"),
        Some(h) if h.projects.is_empty() => out::say("Locked: the agent holds no passphrase"),
        Some(h) => {
            for (project, until) in &h.projects {
                let left = until.duration_since(SystemTime::now()).unwrap_or_default();
                out::say(&format!(
                    "Unlocked {project} until {} UTC ({} left)",
                    clock(*until),
                    show_duration(Duration::from_secs(left.as_secs()))
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `90s`, `30m`, `8h`, `1d`, `1h30m`, or bare seconds; from 1 second to 7 days.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("'{text}' is not a duration like 90s, 30m, 8h, 1d or 1h30m");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        total = total.saturating_add(number.parse().map_err(|_| bad())?);
    }
    if text.trim().is_empty() {
        return Err(bad());
    }
    let duration = Duration::from_secs(total);
    if duration.is_zero() || duration > MAX_TTL {
        return Err(format!("'{text}' is out of range: from 1s to 7d"));
    }
    Ok(duration)
}

fn show_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(days, 'd'), (hours, 'h'), (minutes, 'm'), (seconds, 's')] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0s".to_owned() } else { out }
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `HH:MM:SS` in UTC.
fn clock(at: SystemTime) -> String {
    let s = unix(at);
    format!("{:02}:{:02}:{:02}", s % 86400 / 3600, s % 3600 / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "0s", "8d", "1x", "h", "1.5h", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(show_duration(Duration::from_secs(5400)), "1h30m");
    }
}
