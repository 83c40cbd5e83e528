//! `git envsync audit`: the project's audit events (owner token).

use crate::cli::Global;
use crate::client::Timeouts;
use crate::context::Context;
use crate::error::Result;
use crate::out;
use std::process::ExitCode;

/// Show the project's audit log, newest first: who pushed, pulled, was refused, minted.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Only events at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 100, value_name = "N")]
    limit: usize,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let ctx = Context::load(global)?;
    let api = ctx.api(Timeouts::COMMAND)?;
    let since = match &args.since {
        Some(s) => Some(
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    crate::error::CliError::usage(format!(
                        "--since '{s}' is not an RFC 3339 time (like 2026-11-01T00:00:00Z)"
                    ))
                })?,
        ),
        None => None,
    };
    let mut events = Vec::new();
    let mut before = None;
    'pages: loop {
        // Ask for no more than is shown; the server may answer fewer (its pages have a byte
        // budget) and a cursor to go on from.
        let wanted = args.limit.saturating_sub(events.len()).clamp(1, 500) as u32;
        let page = api
            .audit(&ctx.config.project, wanted, before, &[])
            .map_err(|e| api.fail(e))?;
        for event in page.events {
            let at = time::OffsetDateTime::parse(
                &event.at,
                &time::format_description::well_known::Rfc3339,
            )
            .ok();
            if let (Some(since), Some(at)) = (since, at)
                && at < since
            {
                break 'pages;
            }
            events.push(event);
            if events.len() >= args.limit {
                break 'pages;
            }
        }
        match page.next_before {
            // Each page must move on, or a lying server would keep us here.
            Some(next) if before.is_none_or(|b| next < b) => before = Some(next),
            _ => break,
        }
    }
    if global.json {
        out::json(&events);
        return Ok(ExitCode::SUCCESS);
    }
    let text: String = events
        .iter()
        .map(|e| {
            let target = match (&e.branch, e.version) {
                (Some(b), Some(v)) => format!("{b}@{v}"),
                (Some(b), None) => b.clone(),
                _ => String::new(),
            };
            format!(
                "{}  {:<20}  {:<8}  {:<24}  {}{}\n",
                out::timestamp(&e.at),
                e.actor,
                e.action,
                target,
                e.outcome,
                e.detail
                    .as_deref()
                    .map(|d| format!("  {}", readable_detail(d)))
                    .unwrap_or_default()
            )
        })
        .collect();
    out::print(&text);
    Ok(ExitCode::SUCCESS)
}

/// An event's detail as a person reads it: the server records it as a JSON object
/// (`{"keys":[…],"sha256":"…","jti":"…"}`); shown as `keys: A, B; sha256: 1a2b3c4d…`.
fn readable_detail(detail: &str) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(detail) else {
        return detail.to_owned();
    };
    fields
        .iter()
        .map(|(name, value)| {
            let shown = match value {
                serde_json::Value::String(s) if s.chars().count() > 16 => {
                    format!("{}…", s.chars().take(12).collect::<String>())
                }
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            format!("{name}: {shown}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}
