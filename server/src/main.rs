//! `envsync-server`: serve the API, or mint a token offline.
//!
//! Reads its flags, resolves them with the `ENVSYNC_*` environment once, then acts. Errors
//! end as one `error: …` line (plus a `hint:` when there is a fix) and exit code 1, or 2
//! for a setting that cannot be used.

use anyhow::{Context, Result, anyhow, bail};
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use envsync_common::api::{Role, parse_ttl};
use envsync_server::config::{ConfigError, MAX_TOKEN_TTL, Settings, SettingsArgs};
use envsync_server::connections;
use envsync_server::secret::{self, JwtSecret};
use envsync_server::store::sqlite::chain;
use envsync_server::{Database, Server};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};

/// Lifetime of the owner token printed on first start.
const FIRST_TOKEN_TTL: u64 = 90 * 86_400;

/// The envsync server: stores age ciphertext and key names per project and branch.
///
/// The JWT secret comes from ENVSYNC_JWT_SECRET (at least 32 bytes) or, when that is unset,
/// from the file <DB>.jwt.secret, which the first start on an empty database creates (mode
/// 0600) and announces with an owner token. It has no flag: a command line is visible to
/// every user of the machine.
///
/// Every other setting below is a flag and an ENVSYNC_* variable; the flag wins.
#[derive(Debug, Parser)]
#[command(name = "envsync-server", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(
        long,
        env = "ENVSYNC_ADDR",
        default_value = "127.0.0.1:8000",
        value_name = "HOST:PORT"
    )]
    addr: String,

    /// SQLite database file, or :memory: for a throwaway server.
    #[arg(
        long,
        env = "ENVSYNC_DB",
        default_value = "envsync.db",
        value_name = "PATH",
        global = true
    )]
    db: String,

    /// Log filter for stderr, such as debug or envsync_server=trace [default: RUST_LOG, else
    /// info].
    #[arg(long, env = "ENVSYNC_LOG", value_name = "FILTER")]
    log: Option<String>,

    #[command(flatten)]
    settings: SettingsArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint a token offline with the server's secret and print it alone on stdout.
    Token(TokenArgs),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Write the manual pages (envsync-server.1, …) into a directory.
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Debug, Args)]
struct ManArgs {
    /// Directory for the pages, created if missing (install.sh: PREFIX/share/man/man1).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the audit log's hash chain (read-only; the server may be running).
    ///
    /// Prints `ok (N rows)` and the head (`head ID:HASH`, worth keeping elsewhere) and exits
    /// 0, or prints the first bad row (edited, deleted, reordered or inserted), or the first
    /// version that has no accepted-push row recording its ciphertext's SHA-256, and exits 1.
    /// Exits 2 when the log cannot be read.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// A head printed by an earlier run: that row must still be there with that hash,
    /// which also catches a truncated or wholly rewritten log.
    #[arg(long, value_name = "ID:HASH")]
    anchor: Option<String>,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// Who the token is for (shown in the audit log).
    #[arg(long)]
    email: String,
    /// owner, developer or readonly.
    #[arg(long)]
    role: Role,
    /// A project the token may use; repeat for several. Owners have every project.
    #[arg(long = "project", value_name = "ID")]
    projects: Vec<String>,
    /// Lifetime: 3600, 90m, 12h, 30d, 8w.
    #[arg(long, default_value = "30d")]
    ttl: String,
}

fn main() -> ExitCode {
    // Kept beside `cli`: the settings are read from it by variable name (`apply_env`).
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.log.as_deref());
    match &cli.command {
        Some(Command::Audit(AuditCommand::Verify(args))) => return verify_audit(&cli, args),
        Some(Command::Man(args)) => return write_manual(args),
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow!(e).context("cannot start the async runtime"), None),
    };
    let result = runtime.block_on(async {
        match &cli.command {
            None => run_server(&cli, &matches).await,
            Some(Command::Token(args)) => mint_offline(&cli, &matches, args).await,
            Some(Command::Audit(_) | Command::Man(_)) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ConfigError>().is_some() => {
            fail(
                e,
                Some(
                    "envsync-server --help lists every setting with its flag, variable and default",
                ),
            );
            ExitCode::from(2)
        }
        Err(e) => {
            let hint = hint_for(&e);
            fail(e, hint)
        }
    }
}

/// `man --dir DIR` (hidden; install.sh runs it): the manual pages, from this command line.
fn write_manual(args: &ManArgs) -> ExitCode {
    let write = || -> Result<()> {
        let pages = envsync_common::manpage::pages(Cli::command())
            .context("cannot render the manual pages")?;
        std::fs::create_dir_all(&args.dir)
            .with_context(|| format!("cannot create {}", args.dir.display()))?;
        let mut out = std::io::stdout().lock();
        for page in pages {
            let path = args.dir.join(&page.file_name);
            std::fs::write(&path, &page.roff)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(out, "{}", path.display())?;
        }
        Ok(())
    };
    match write() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, None),
    }
}

fn fail(e: anyhow::Error, hint: Option<&str>) -> ExitCode {
    eprintln!("error: {e:#}");
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    ExitCode::FAILURE
}

fn hint_for(e: &anyhow::Error) -> Option<&'static str> {
    let text = format!("{e:#}");
    if text.contains("its JWT secret is missing") {
        Some(
            "restore <db>.jwt.secret from a backup, or set ENVSYNC_JWT_SECRET to the secret its tokens were signed with; to start over on purpose (every token stops working), write a new one: head -c 48 /dev/urandom | base64 > <db>.jwt.secret && chmod 600 <db>.jwt.secret",
        )
    } else if text.contains("no JWT secret") {
        Some("start the server once with the same --db to create one, or set ENVSYNC_JWT_SECRET")
    } else if text.contains("JWT secret") {
        Some(
            "unset ENVSYNC_JWT_SECRET to let the server generate one, or set it to e.g. the output of `head -c 48 /dev/urandom | base64`",
        )
    } else if text.contains("cannot listen") {
        Some("pick another address with --addr HOST:PORT (port 0 picks a free port)")
    } else {
        None
    }
}

fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The secret from the environment, or from the file beside the database. `Ok(None)` when
/// neither exists.
fn existing_secret(db: &Database) -> Result<Option<JwtSecret>> {
    if let Some(value) = std::env::var_os("ENVSYNC_JWT_SECRET") {
        let bytes = value.into_encoded_bytes();
        return JwtSecret::new(bytes)
            .map(Some)
            .context("ENVSYNC_JWT_SECRET is refused");
    }
    match db {
        Database::Memory => Ok(None),
        Database::File(path) => {
            let file = secret::secret_path(path);
            secret::load(&file)
                .with_context(|| format!("the JWT secret in {} is refused", file.display()))
        }
    }
}

/// The settings from the command line (flag, else variable, else default), checked.
fn settings(db: Database, secret: JwtSecret, matches: &ArgMatches) -> Result<Settings> {
    let mut settings = Settings::new(db, secret);
    settings.apply_env(SettingsArgs::lookup(matches))?;
    Ok(settings)
}

async fn run_server(cli: &Cli, matches: &ArgMatches) -> Result<()> {
    // A server needs more descriptors than the usual soft limit of 1024: one per client.
    let (soft, hard) = connections::raise_nofile_limit();
    tracing::debug!(?soft, ?hard, "open-file limit");
    // A write past RLIMIT_FSIZE (`ulimit -f`) raises SIGXFSZ, which kills the process by
    // default. With a handler installed the write fails with EFBIG instead, and the push
    // that made it gets a 507 while reads go on (as PostgreSQL ignores SIGXFSZ). tokio's
    // handler stays installed for the life of the process, so the stream is dropped.
    if let Err(e) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
        tracing::warn!(error = %e, "cannot catch SIGXFSZ; a file size limit would stop the server");
    }
    let db = Database::parse(&cli.db);
    let (secret, generated) = match existing_secret(&db)? {
        Some(secret) => (secret, false),
        None => {
            // A database with data but no secret means the secret was lost or the
            // environment changed (a service unit without ENVSYNC_JWT_SECRET, a moved
            // file). Generating a new one would silently invalidate every token issued and
            // print a fresh owner token to wherever stdout is collected: refuse instead, so
            // the operator restores the secret, or replaces it knowingly.
            if db.holds_data().context("cannot open the database")? {
                let file = match &db {
                    Database::File(path) => secret::secret_path(path).display().to_string(),
                    Database::Memory => String::new(),
                };
                bail!(
                    "the database holds data but its JWT secret is missing: {file} does not exist and ENVSYNC_JWT_SECRET is unset, and a new secret would invalidate every token issued for it"
                );
            }
            let secret = JwtSecret::generate()?;
            if let Database::File(path) = &db {
                secret::store(&secret::secret_path(path), &secret)?;
            }
            (secret, true)
        }
    };
    let settings = settings(db.clone(), secret, matches)?;
    let listener = tokio::net::TcpListener::bind(&cli.addr)
        .await
        .with_context(|| format!("cannot listen on {}", cli.addr))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let server = Server::open(settings)
        .await
        .context("cannot open the database")?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "envsync-server listening on http://{addr}")?;
    out.flush()?;
    if generated {
        let minted = server
            .mint(
                "envsync-server",
                "owner@localhost",
                Role::Owner,
                Vec::new(),
                FIRST_TOKEN_TTL,
            )
            .await?;
        let kept = match &db {
            Database::File(path) => {
                format!("secret saved in {}", secret::secret_path(path).display())
            }
            Database::Memory => "secret kept in memory only".to_owned(),
        };
        writeln!(
            out,
            "owner token (expires {}; {kept}; mint more with `envsync-server token`):",
            minted.info.expires_at
        )?;
        writeln!(out, "{}", minted.token.expose())?;
        out.flush()?;
    }
    drop(out);
    tracing::info!(%addr, "serving");
    server.serve(listener, shutdown_signal()).await?;
    Ok(())
}

async fn mint_offline(cli: &Cli, matches: &ArgMatches, args: &TokenArgs) -> Result<()> {
    let db = Database::parse(&cli.db);
    if db == Database::Memory {
        bail!("`token` needs the server's database file, not :memory:");
    }
    let secret = existing_secret(&db)?.ok_or_else(|| {
        anyhow!(
            "no JWT secret: ENVSYNC_JWT_SECRET is unset and {} does not exist",
            match &db {
                Database::File(path) => secret::secret_path(path).display().to_string(),
                Database::Memory => String::new(),
            }
        )
    })?;
    let ttl = parse_ttl(&args.ttl).map_err(|e| anyhow!("--ttl: {e}"))?;
    if ttl > MAX_TOKEN_TTL {
        bail!(
            "--ttl is over the maximum of {} days",
            MAX_TOKEN_TTL / 86_400
        );
    }
    for project in &args.projects {
        envsync_common::names::validate_project(project)
            .map_err(|e| anyhow!("--project '{project}': invalid {e}"))?;
    }
    if args.email.trim().is_empty() {
        bail!("--email is empty");
    }
    let server = Server::open(settings(db, secret, matches)?)
        .await
        .context("cannot open the database")?;
    let minted = server
        .mint(
            "envsync-server token",
            args.email.trim(),
            args.role,
            args.projects.clone(),
            ttl,
        )
        .await?;
    eprintln!(
        "minted a {} token for {} (jti {}, expires {})",
        minted.info.role, minted.info.email, minted.info.jti, minted.info.expires_at
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", minted.token.expose())?;
    out.flush()?;
    Ok(())
}

/// `audit verify`: 0 intact, 1 broken, 2 unreadable.
fn verify_audit(cli: &Cli, args: &VerifyArgs) -> ExitCode {
    let fail = |e: anyhow::Error| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    };
    let Database::File(path) = Database::parse(&cli.db) else {
        return fail(anyhow!(
            "`audit verify` needs a database file, not :memory:"
        ));
    };
    let anchor = match &args.anchor {
        None => None,
        Some(text) => match chain::parse_anchor(text) {
            Some(anchor) => Some(anchor),
            None => {
                return fail(anyhow!(
                    "--anchor must be ID:HASH as printed on a `head` line, not '{text}'"
                ));
            }
        },
    };
    if !path.exists() {
        return fail(anyhow!("no database at {}", path.display()));
    }
    match chain::verify(&path, anchor) {
        Ok(verdict) => {
            println!("{verdict}");
            match verdict {
                chain::Verdict::Intact { .. } => ExitCode::SUCCESS,
                chain::Verdict::Broken { .. } | chain::Verdict::Unaccounted { .. } => {
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => fail(anyhow!(e)),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing requests in flight");
}
