//! `git envsync doctor`: one line per thing envsync needs, each with the fix when it is
//! wrong; exit 0 only when all of them hold.

use crate::client::Timeouts;
use crate::config::{self, ProjectConfig};
use crate::crypto;
use crate::error::Result;
use crate::git::Repo;
use crate::hook_blocks::{self, HOOKS};
use crate::out;
use crate::state::State;
use crate::trust::TrustStore;
use base64::Engine as _;
use envsync_common::api::Health;
use envsync_common::envelope;
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;

/// Check this clone's setup: binaries (git, and the git-envsync that `git envsync` runs),
/// hooks, trusted settings, the extra CA file (when one is configured), server, token,
/// keys, work factor, local state and its sealed copies. Exit 1 when anything needs
/// fixing.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub output: crate::cli::JsonFlag,
    #[command(flatten)]
    pub remote: crate::cli::ServerFlag,
}

#[derive(Debug, Serialize)]
struct Check {
    what: &'static str,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn ok(what: &'static str, detail: impl Into<String>) -> Check {
    Check {
        what,
        ok: true,
        detail: detail.into(),
        fix: None,
    }
}

fn bad(what: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        what,
        ok: false,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

pub fn run(global: &crate::cli::Global, _args: Args) -> Result<ExitCode> {
    // Read once here: doctor runs without a Context, which would read it otherwise.
    let keys = crate::crypto::KeyEnv::from_env();
    let mut checks = binary_checks();
    let repo = Repo::discover();
    let config = repo.as_ref().ok().map(|r| ProjectConfig::load(&r.root));
    match (&repo, &config) {
        (Err(e), _) => checks.push(bad(
            "repository",
            e.message(),
            "run doctor inside a git work tree",
        )),
        (Ok(repo), Some(Err(e))) => {
            checks.push(ok("repository", repo.root.display().to_string()));
            checks.push(bad(
                "settings",
                e.message(),
                e.hint
                    .clone()
                    .unwrap_or_else(|| "fix .envsync.toml".to_owned()),
            ));
        }
        (Ok(repo), Some(Ok(config))) => {
            checks.push(ok("repository", repo.root.display().to_string()));
            project_checks(&mut checks, global, repo, config, &keys);
        }
        (Ok(_), None) => {}
    }
    key_checks(&mut checks);

    let healthy = checks.iter().all(|c| c.ok);
    if global.json {
        out::json(&serde_json::json!({"ok": healthy, "checks": checks}));
    } else {
        let mut text = String::new();
        for c in &checks {
            text.push_str(&format!(
                "{} {:<10} {}{}\n",
                if c.ok { "ok  " } else { "FAIL" },
                c.what,
                c.detail,
                c.fix
                    .as_ref()
                    .map(|f| format!(" (fix: {f})"))
                    .unwrap_or_default()
            ));
        }
        out::print(&text);
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn project_checks(
    checks: &mut Vec<Check>,
    global: &crate::cli::Global,
    repo: &Repo,
    config: &ProjectConfig,
    keys: &crate::crypto::KeyEnv,
) {
    // Hooks, where git runs them.
    match hook_blocks::hooks_dir(repo) {
        Ok(dir) => {
            let states: Vec<(&str, Option<bool>)> = HOOKS
                .iter()
                .map(|(name, block)| (*name, hook_blocks::is_current(&dir.join(name), block)))
                .collect();
            let missing: Vec<&str> = states
                .iter()
                .filter(|(_, s)| s.is_none())
                .map(|(n, _)| *n)
                .collect();
            let stale: Vec<&str> = states
                .iter()
                .filter(|(_, s)| *s == Some(false))
                .map(|(n, _)| *n)
                .collect();
            let place = dir.display().to_string();
            checks.push(if missing.is_empty() && stale.is_empty() {
                ok("hooks", format!("installed and current in {place}"))
            } else if missing.len() == HOOKS.len() {
                bad(
                    "hooks",
                    format!("not installed in {place}"),
                    "git envsync hooks install",
                )
            } else {
                bad(
                    "hooks",
                    format!(
                        "missing: {} ; outdated: {} (in {place})",
                        list(&missing),
                        list(&stale)
                    ),
                    "git envsync hooks install",
                )
            });
        }
        Err(e) => checks.push(bad("hooks", e.message(), "check core.hooksPath")),
    }
    // Consent.
    let store = TrustStore::new(repo.common_dir());
    let trusted = store.is_trusted(config).unwrap_or(false);
    checks.push(if trusted {
        ok(
            "trust",
            format!(".envsync.toml trusted (project {})", config.project),
        )
    } else {
        bad(
            "trust",
            "the settings in .envsync.toml are not trusted in this clone",
            "review them with git envsync trust",
        )
    });
    // Work factor.
    let wf = config
        .work_factor
        .unwrap_or(envsync_common::envelope::DEFAULT_WORK_FACTOR);
    checks.push(match &keys.insecure_work_factor {
        Some(v) => bad(
            "scrypt",
            format!("ENVSYNC_INSECURE_WORK_FACTOR={v} overrides the project's {wf}"),
            "unset ENVSYNC_INSECURE_WORK_FACTOR (it is for tests and benchmarks)",
        ),
        None if config.team_mode() => ok("scrypt", "team-key mode: no passphrase work factor"),
        None => ok("scrypt", format!("work factor {wf}")),
    });
    // Local state.
    let envsync_dir = repo.git_dir().join("envsync");
    let mode = std::fs::metadata(&envsync_dir).map(|m| m.permissions().mode() & 0o777);
    checks.push(match mode {
        Err(_) => ok("state", "none yet (the first push or pull makes it)"),
        Ok(0o700) => {
            let state = State::new(repo.git_dir(), &config.project);
            let branches = state.branches().map(|b| b.len()).unwrap_or(0);
            let holds = state
                .file()
                .ok()
                .flatten()
                .map(|f| format!("; the env file holds {}", f.holds()))
                .unwrap_or_default();
            ok(
                "state",
                format!(
                    "{} (0700), {branches} branch(es) synced{holds}",
                    envsync_dir.display()
                ),
            )
        }
        Ok(m) => bad(
            "state",
            format!("{} is mode {m:03o}", envsync_dir.display()),
            format!("chmod 700 {}", envsync_dir.display()),
        ),
    });
    if mode.is_ok() {
        checks.extend(sealed_check(&State::new(repo.git_dir(), &config.project)));
    }
    // Server and token: only under trusted settings (an untrusted server gets nothing).
    if !trusted {
        return;
    }
    let remote =
        match crate::context::Remote::resolve(global.server.as_deref(), config.server.as_deref()) {
            Ok(remote) => remote,
            Err(e) => {
                checks.push(bad("server", e.message(), e.hint.unwrap_or_default()));
                return;
            }
        };
    // The extra CA, when one is configured: readable, and certificates a client can trust.
    if let Some(ca) = remote.ca_file() {
        checks.push(match ca.certificates() {
            Ok(certs) => ok(
                "ca",
                format!(
                    "{} ({}): {} certificate(s)",
                    ca.path.display(),
                    ca.from,
                    certs.len()
                ),
            ),
            Err(e) => bad("ca", e.message(), e.hint.unwrap_or_default()),
        });
    }
    let api = match remote.api(Timeouts::COMMAND) {
        Ok(api) => api,
        Err(e) => {
            checks.push(bad("server", e.message(), e.hint.unwrap_or_default()));
            return;
        }
    };
    match api.health() {
        Ok(Health { version, .. }) => checks.push(ok(
            "server",
            format!("{} (envsync-server {version})", api.base()),
        )),
        Err(e) => {
            let e = api.fail(e);
            checks.push(bad("server", e.message(), e.hint.unwrap_or_default()));
            return;
        }
    }
    checks.push(match api.whoami() {
        Ok(who) => {
            let days = remote.token_expiry().map(|exp| {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                (exp - now).div_euclid(86_400)
            });
            match days {
                Some(d) if d < 7 => bad(
                    "token",
                    format!("{} ({}), expires in {d} day(s)", who.email, who.role),
                    "ask an owner for a new token, then git envsync login",
                ),
                Some(d) => ok(
                    "token",
                    format!("{} ({}), expires in {d} days", who.email, who.role),
                ),
                None => ok("token", format!("{} ({})", who.email, who.role)),
            }
        }
        Err(e) => {
            let e = api.fail(e);
            bad(
                "token",
                e.message(),
                e.hint.unwrap_or_else(|| "git envsync login".to_owned()),
            )
        }
    });
}

/// git itself, and whether `git envsync` runs this binary: git looks for `git-envsync` in
/// its exec path, then on `PATH`, and runs the first it finds, which may be another
/// install (an older version, a copy left in `~/.local/bin`).
fn binary_checks() -> Vec<Check> {
    let version = format!("git-envsync {}", env!("CARGO_PKG_VERSION"));
    let git = |arg: &str| {
        std::process::Command::new("git")
            .arg(arg)
            .stdin(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(git_version) = git("--version") else {
        return vec![
            ok("binary", version),
            bad(
                "git",
                "git is not found on PATH",
                "install git (every git envsync command runs it)",
            ),
        ];
    };
    let mut dirs: Vec<std::path::PathBuf> =
        git("--exec-path").map(Into::into).into_iter().collect();
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let runs = dirs.into_iter().map(|d| d.join("git-envsync")).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    let this = std::env::current_exe().and_then(std::fs::canonicalize);
    let binary = match (runs, this) {
        (_, Err(_)) => ok("binary", version),
        (Some(runs), Ok(this)) if std::fs::canonicalize(&runs).is_ok_and(|r| r == this) => ok(
            "binary",
            format!("{version} ({}), the one git envsync runs", this.display()),
        ),
        (Some(runs), Ok(this)) => bad(
            "binary",
            format!(
                "{version} ({}), but git envsync runs {}",
                this.display(),
                runs.display()
            ),
            format!(
                "remove {} or put {} before it on PATH",
                runs.display(),
                this.parent().unwrap_or(&this).display()
            ),
        ),
        (None, Ok(this)) => bad(
            "binary",
            format!(
                "{version} ({}) is not on PATH: git envsync does not find it",
                this.display()
            ),
            format!("add {} to PATH", this.parent().unwrap_or(&this).display()),
        ),
    };
    vec![binary, ok("git", git_version)]
}

/// The sealed copies of the branches' last synced content: where the state says this clone
/// keeps one (it records the settings the copy was verified under), it is there, private
/// (0600), and an age file whose header parses. Nothing is decrypted. A bad copy costs no
/// secret (a switch to the branch would fetch and verify again), but says something
/// wrote where only envsync should.
fn sealed_check(state: &State) -> Option<Check> {
    let branches: Vec<_> = state
        .branches()
        .ok()?
        .into_iter()
        .filter(|b| b.config.is_some())
        .collect();
    if branches.is_empty() {
        return None;
    }
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    for branch in &branches {
        let name = out::clean(&branch.branch);
        let path = state.sealed_path(&branch.branch);
        let refetch =
            format!("git envsync forget --branch {name}, then git envsync pull --branch {name}");
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes).ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("{name}: the sealed copy is missing"));
                fixes.push(refetch);
                continue;
            }
            Err(e) => {
                problems.push(format!("{name}: cannot read {}: {e}", path.display()));
                fixes.push(refetch);
                continue;
            }
        };
        if text
            .as_deref()
            .is_none_or(|t| envelope::check_armored(t).is_err())
        {
            problems.push(format!(
                "{name}: {} is not an age file (damaged)",
                path.display()
            ));
            fixes.push(refetch);
            continue;
        }
        let mode = std::fs::metadata(&path).map_or(0, |m| m.permissions().mode() & 0o777);
        if mode != 0o600 {
            problems.push(format!("{name}: {} is mode {mode:03o}", path.display()));
            fixes.push(format!("chmod 600 {}", path.display()));
        }
    }
    Some(if problems.is_empty() {
        ok(
            "sealed",
            format!(
                "{} sealed local cop(ies), private and well-formed",
                branches.len()
            ),
        )
    } else {
        bad("sealed", problems.join("; "), fixes.join("; "))
    })
}

/// The user's key files: present where team mode needs them, never readable by others.
fn key_checks(checks: &mut Vec<Check>) {
    let Ok(dir) = config::config_dir() else {
        checks.push(bad(
            "keys",
            "neither XDG_CONFIG_HOME nor HOME is set",
            "set HOME",
        ));
        return;
    };
    let mut problems = Vec::new();
    let mut present = Vec::new();
    for path in [
        crypto::identity_path(),
        crypto::signing_key_path(),
        Ok(dir.join("local.key")),
        Ok(dir.join("config.toml")),
    ]
    .into_iter()
    .flatten()
    {
        if let Ok(meta) = std::fs::metadata(&path) {
            let mode = meta.permissions().mode() & 0o777;
            present.push(
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            if mode & 0o077 != 0 {
                problems.push(format!("chmod 600 {}", path.display()));
            }
        }
    }
    checks.push(if problems.is_empty() {
        ok(
            "keys",
            if present.is_empty() {
                "none yet".to_owned()
            } else {
                format!("{} (private)", present.join(", "))
            },
        )
    } else {
        bad("keys", "readable by other users", problems.join("; "))
    });
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// The `exp` claim of a JWT, read without verifying it (only to tell the user when it
/// runs out; the server decides whether it is valid).
pub fn jwt_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_i64()
}
