//! `git envsync watch`: a file watcher that prints a line whenever the env file's keys
//! drift from the server's, and when the branch changes.
//!
//! It watches the env file's directory (editors save by writing a temp file and renaming
//! it over the original, which a watch on the file itself would lose) and the git
//! directory for `HEAD`, debounces bursts of events, refreshes the server's key list
//! periodically and on branch change, and stops cleanly on SIGINT or SIGTERM.

use crate::cli::Global;
use crate::client::{Api, Timeouts};
use crate::context::Context;
use crate::drift::Drift;
use crate::error::{CliError, Result};
use crate::fingerprints;
use crate::out;
use crate::sync;
use envsync_common::api::Fingerprints;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Watch the env file and print a line whenever its keys drift from the server's.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub scope: crate::cli::BranchFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
    /// Seconds between refreshes of the server's key list.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    refresh: u64,
    /// Milliseconds of quiet before a burst of file events is looked at.
    #[arg(long, default_value_t = 300, value_name = "MS")]
    debounce: u64,
}

enum Msg {
    EnvChanged,
    HeadChanged,
    Stop,
}

pub fn run(global: &Global, args: Args) -> Result<ExitCode> {
    let mut ctx = Context::load(global)?;
    let api = ctx.api(Timeouts {
        connect: Duration::from_secs(2),
        total: Duration::from_secs(5),
        budget: None,
    })?;
    let follow_head = global.branch.is_none();

    let (tx, rx) = mpsc::channel();
    // The directory watched is the env file's, reached without following links like
    // every other access to it (this fails when a component is a link).
    ctx.env.exists()?;
    let env_name: OsString = ctx.env.name().to_owned();
    let events = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        for path in &event.paths {
            let name = path.file_name().unwrap_or_default();
            if name == env_name {
                let _ = events.send(Msg::EnvChanged);
            } else if name == "HEAD" {
                let _ = events.send(Msg::HeadChanged);
            }
        }
    })
    .map_err(|e| CliError::refused(format!("cannot start the file watcher: {e}")))?;
    let env_dir = ctx.env.dir_path();
    watcher
        .watch(&env_dir, RecursiveMode::NonRecursive)
        .and_then(|()| watcher.watch(ctx.repo.git_dir(), RecursiveMode::NonRecursive))
        .map_err(|e| CliError::refused(format!("cannot watch {}: {e}", env_dir.display())))?;
    stop_on_signals(tx);

    let mut watch = Watch {
        server: None,
        fingerprints: None,
        version: 0,
        warned: BTreeSet::new(),
        offline: false,
    };
    watch.refresh(&ctx, &api);
    out::print(&format!(
        "watching {} on {} (Ctrl-C to stop)\n",
        ctx.env_display(),
        ctx.branch
    ));
    watch.check(&ctx);

    let refresh = Duration::from_secs(args.refresh.max(1));
    let debounce = Duration::from_millis(args.debounce);
    let mut last_refresh = Instant::now();
    loop {
        let wait = refresh.saturating_sub(last_refresh.elapsed());
        let (mut env, mut head) = match rx.recv_timeout(wait) {
            Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(Msg::EnvChanged) => (true, false),
            Ok(Msg::HeadChanged) => (false, true),
            Err(mpsc::RecvTimeoutError::Timeout) => (false, false),
        };
        // Let a burst (an editor's save, a checkout) settle before looking.
        let mut stop = false;
        while env || head {
            match rx.recv_timeout(debounce) {
                Ok(Msg::EnvChanged) => env = true,
                Ok(Msg::HeadChanged) => head = true,
                Ok(Msg::Stop) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if stop {
            break;
        }
        if head
            && follow_head
            && let Ok(branch) = ctx.repo.current_branch()
            && branch != ctx.branch
        {
            out::print(&format!("branch changed: {} -> {branch}\n", ctx.branch));
            ctx.branch = branch;
            watch.refresh(&ctx, &api);
            last_refresh = Instant::now();
        }
        if last_refresh.elapsed() >= refresh {
            watch.refresh(&ctx, &api);
            last_refresh = Instant::now();
        }
        watch.check(&ctx);
    }
    drop(watcher);
    out::print("stopped watching\n");
    Ok(ExitCode::SUCCESS)
}

struct Watch {
    /// The server's key list for the branch (or the cached one).
    server: Option<Vec<String>>,
    /// Its latest version's value fingerprints (live lists only).
    fingerprints: Option<Fingerprints>,
    /// The version `server` belongs to.
    version: u64,
    /// The drift lines printed last, so each change is printed once.
    warned: BTreeSet<String>,
    offline: bool,
}

impl Watch {
    fn refresh(&mut self, ctx: &Context, api: &Api) {
        let (keys, failure) = sync::server_keys(ctx, Some(api), &ctx.branch);
        match failure {
            None if self.offline => {
                out::print("server reachable again\n");
                self.offline = false;
            }
            Some(e) if !self.offline => {
                out::print(&format!(
                    "warning: {}; using the cached key list\n",
                    api.fail(e)
                ));
                self.offline = true;
            }
            _ => {}
        }
        self.version = keys.as_ref().map_or(0, |k| k.version);
        self.fingerprints = keys.as_ref().and_then(|k| k.fingerprints.clone());
        self.server = keys.map(|k| k.keys);
    }

    fn check(&mut self, ctx: &Context) {
        // A pull or push by another process since the last refresh recorded a newer key
        // list in the state: the file it wrote is in sync with that, not with ours.
        if let Ok(state) = ctx.state.branch(&ctx.branch)
            && state.keys_version > self.version
        {
            self.version = state.keys_version;
            self.server = Some(state.keys);
            self.fingerprints = None;
        }
        let mut values = None;
        let local = match sync::read_env(ctx) {
            Ok(Some(bytes)) => match sync::parse_keys(ctx, bytes.expose()) {
                Ok(keys) => {
                    values = fingerprints::of_local(ctx, bytes.expose());
                    keys.names
                }
                Err(e) => {
                    out::print(&format!("warning: {}\n", e.message()));
                    return;
                }
            },
            Ok(None) => Vec::new(),
            Err(e) => {
                out::print(&format!("warning: {}\n", e.message()));
                return;
            }
        };
        let Some(server) = self.server.clone() else {
            return;
        };
        let changed = fingerprints::changed(values.as_ref(), self.fingerprints.as_ref());
        let drift = Drift::new(local, server).with_values(changed);
        let now: BTreeSet<String> = drift.warnings().into_iter().collect();
        for line in now.difference(&self.warned) {
            out::print(&format!("{line}\n"));
        }
        if now.is_empty() && !self.warned.is_empty() {
            out::print("in sync with the server\n");
        }
        self.warned = now;
    }
}

/// Sends `Stop` on SIGINT or SIGTERM, from a small thread of its own.
fn stop_on_signals(tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        // The program's one runtime: block_on from this thread while the main one also
        // uses it for HTTP is what a current-thread runtime allows.
        let Ok(rt) = crate::runtime::get() else {
            return;
        };
        rt.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        let _ = tx.send(Msg::Stop);
    });
}
