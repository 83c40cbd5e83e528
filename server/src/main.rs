//! `envsync-server`: serve the API, mint a token offline, verify the audit log, or copy a
//! database to another backend.
//!
//! Reads its flags, resolves them with the `ENVSYNC_*` environment once, then calls the
//! library's [`commands`], which do the work, and prints what they return. Errors
//! end as one `error: …` line (plus a `hint:` when there is a fix) and exit code 1, or 2
//! for a setting that cannot be used: [`StartupError`] carries both, [`report`] prints them.

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use envsync_common::api::Role;
use envsync_server::commands::{self, Lookup, MintRequest, ServeOptions};
use envsync_server::config::SettingsArgs;
use envsync_server::secret::SecretSources;
use envsync_server::startup::StartupError;
use envsync_server::store::{self, chain::Verdict};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// The envsync server: stores age ciphertext and key names per project and branch.
///
/// The JWT secret comes from ENVSYNC_JWT_SECRET (at least 32 bytes), else from the file
/// --jwt-secret-file names, else (SQLite) from the file <DB>.jwt.secret, which the first
/// start on an empty database creates (mode 0600) and announces with an owner token. It
/// has no flag of its own: a command line is visible to every user of the machine. Servers
/// sharing a PostgreSQL database must share the secret; the first of them to start on an
/// empty database prints the owner token, once for all of them.
///
/// It serves plain HTTP, or HTTPS with --tls-cert and --tls-key (re-read on SIGHUP); a
/// reverse proxy that terminates TLS in front of it is the other way.
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

    /// SQLite database file, :memory: for a throwaway server, or a PostgreSQL URL
    /// (postgres://user:password@host:port/db, or ?host=/socket/dir) that several servers
    /// may share.
    #[arg(
        long,
        env = "ENVSYNC_DB",
        default_value = "envsync.db",
        value_name = "PATH|URL",
        hide_env_values = true,
        global = true
    )]
    db: String,

    /// A file holding the JWT secret (its first line, at least 32 bytes), read when
    /// ENVSYNC_JWT_SECRET is unset: what servers sharing a database each read.
    #[arg(
        long,
        env = "ENVSYNC_JWT_SECRET_FILE",
        value_name = "PATH",
        global = true
    )]
    jwt_secret_file: Option<PathBuf>,

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
    /// Copy every token, version and audit row to another database (SQLite or
    /// PostgreSQL, either way), chain intact, and verify the copy.
    ///
    /// The target must hold nothing unless --replace is given. Stop the servers of the
    /// source first: what is written after the copy has read it is not copied.
    Copy(CopyArgs),
    /// Write the manual pages (envsync-server.1, …) into a directory.
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Debug, Args)]
struct CopyArgs {
    /// The database to copy: a SQLite file or a PostgreSQL URL.
    #[arg(long, value_name = "PATH|URL", hide_env_values = true)]
    from: String,
    /// Where to copy it: a SQLite file (created) or a PostgreSQL URL.
    #[arg(long, value_name = "PATH|URL", hide_env_values = true)]
    to: String,
    /// Erase whatever envsync data the target holds first (every token, version and audit
    /// row there is lost).
    #[arg(long)]
    replace: bool,
}

#[derive(Debug, Args)]
struct ManArgs {
    /// Directory for the pages, created if missing (install.sh: PREFIX/share/man/man1).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the audit log's hash chains, one per project (read-only; the servers may be
    /// running).
    ///
    /// Prints `ok (N rows)` and the head of every chain (`head ID:HASH` lines, worth keeping
    /// elsewhere) and exits 0, or prints the first bad row (edited, deleted, reordered or
    /// inserted), or the first version that has no accepted-push row recording its
    /// ciphertext's SHA-256, and exits 1. Exits 2 when the log cannot be read.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// A head printed by an earlier run: that row must still be there with that hash,
    /// which also catches a truncated or wholly rewritten chain. Repeat it for the head of
    /// every chain.
    #[arg(long = "anchor", value_name = "ID:HASH")]
    anchors: Vec<String>,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// Who the token is for (shown in the audit log).
    #[arg(long)]
    email: String,
    /// owner, developer or readonly.
    #[arg(long)]
    role: Role,
    /// A project the token may use; repeat for several. An owner given none is an
    /// administrator (every project); a developer or readonly token given none can use none.
    #[arg(long = "project", value_name = "ID")]
    projects: Vec<String>,
    /// Lifetime: 3600, 90m, 12h, 30d, 8w.
    #[arg(long, default_value = "30d")]
    ttl: String,
}

fn main() -> ExitCode {
    // Kept beside `cli`: the settings are read from it by variable name (`lookup`).
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.log.as_deref());
    if let Some(Command::Man(args)) = &cli.command {
        return write_manual(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(&StartupError::Runtime(e)),
    };
    let lookup = SettingsArgs::lookup(&matches);
    runtime.block_on(async {
        let done = match &cli.command {
            None => serve(&cli, &lookup).await,
            Some(Command::Token(args)) => mint(&cli, &lookup, args).await,
            Some(Command::Audit(AuditCommand::Verify(args))) => {
                // Anything that keeps the log from being read exits 2, as a setting does.
                return verify(&cli, args).await.unwrap_or_else(|e| {
                    report(&e);
                    ExitCode::from(2)
                });
            }
            Some(Command::Copy(args)) => copy(args).await,
            Some(Command::Man(_)) => Ok(ExitCode::SUCCESS),
        };
        done.unwrap_or_else(|e| report(&e))
    })
}

/// Where this command line says to look for the JWT secret.
fn secret_sources(cli: &Cli) -> SecretSources {
    SecretSources::from_env(cli.jwt_secret_file.clone())
}

async fn serve(cli: &Cli, lookup: Lookup<'_>) -> Result<ExitCode, StartupError> {
    let options = ServeOptions {
        addr: &cli.addr,
        db: commands::database(&cli.db, None)?,
        secrets: secret_sources(cli),
        settings: lookup,
    };
    commands::serve(
        options,
        std::io::stdout().lock(),
        commands::shutdown_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn mint(cli: &Cli, lookup: Lookup<'_>, args: &TokenArgs) -> Result<ExitCode, StartupError> {
    let request = MintRequest {
        email: &args.email,
        role: args.role,
        projects: &args.projects,
        ttl: &args.ttl,
    };
    let db = commands::database(&cli.db, None)?;
    let minted = commands::mint_offline(db, &secret_sources(cli), lookup, &request).await?;
    eprintln!(
        "minted a {} token for {} (jti {}, expires {})",
        minted.info.role, minted.info.email, minted.info.jti, minted.info.expires_at
    );
    println!("{}", minted.token.expose());
    Ok(ExitCode::SUCCESS)
}

/// `audit verify`: 0 intact, 1 broken; the caller makes an error 2.
async fn verify(cli: &Cli, args: &VerifyArgs) -> Result<ExitCode, StartupError> {
    let db = commands::database(&cli.db, None)?;
    let verdict = commands::verify_audit(db, &args.anchors).await?;
    println!("{verdict}");
    Ok(match verdict {
        Verdict::Intact { .. } => ExitCode::SUCCESS,
        Verdict::Broken { .. } | Verdict::Unaccounted { .. } => ExitCode::FAILURE,
    })
}

async fn copy(args: &CopyArgs) -> Result<ExitCode, StartupError> {
    let mut bar = ProgressBar::new();
    let copied = commands::copy(&args.from, &args.to, args.replace, |p| bar.show(p)).await;
    bar.finish();
    let copied = copied?;
    if copied.erased {
        eprintln!("erased the envsync data of {} first", copied.to);
    }
    let counts = &copied.counts;
    eprintln!(
        "copied {} tokens, {} versions and {} audit rows from {} to {}",
        counts.jtis, counts.versions, counts.audit, copied.from, copied.to
    );
    println!("{}", copied.verdict);
    if copied.from_file {
        eprintln!(
            "note: the tokens stay valid on servers signing with the same JWT secret (ENVSYNC_JWT_SECRET_FILE=<source>.jwt.secret)"
        );
    }
    Ok(ExitCode::SUCCESS)
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
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The one place an error becomes output and an exit code: `error:` and the whole chain on
/// one line, then its hint, if any; its exit code (2 for a setting), else 1.
fn report(e: &StartupError) -> ExitCode {
    let mut line = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    eprintln!("error: {line}");
    if let Some(hint) = e.hint() {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(e.exit_code())
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

/// A one-line progress display on stderr, drawn only when stderr is a terminal.
struct ProgressBar {
    terminal: bool,
    drawn: bool,
}

impl ProgressBar {
    fn new() -> ProgressBar {
        ProgressBar {
            terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            drawn: false,
        }
    }

    fn show(&mut self, p: store::copy::Progress) {
        if !self.terminal {
            return;
        }
        const WIDTH: u64 = 30;
        let filled = (p.done * WIDTH)
            .checked_div(p.total)
            .unwrap_or(WIDTH)
            .min(WIDTH);
        let bar: String = (0..WIDTH)
            .map(|i| if i < filled { '#' } else { ' ' })
            .collect();
        eprint!("\r[{bar}] {} {}/{}\x1b[K", p.what, p.done, p.total);
        self.drawn = true;
    }

    fn finish(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
        }
    }
}
