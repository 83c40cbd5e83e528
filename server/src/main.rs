//! `envsync-server`: serve the API, mint a token offline, verify the audit log, or copy a
//! database to another backend.
//!
//! Reads its flags, resolves them with the `ENVSYNC_*` environment once, then calls the
//! library: [`secret::bootstrap`] for the JWT secret, [`Server`] to open and serve. Errors
//! end as one `error: …` line (plus a `hint:` when there is a fix) and exit code 1, or 2
//! for a setting that cannot be used: [`StartupError`] carries both, [`report`] prints them.

use anyhow::{Context, Result, anyhow, bail};
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use envsync_common::api::{Role, parse_ttl};
use envsync_server::config::{self, ConfigError, MAX_TOKEN_TTL, Settings, SettingsArgs};
use envsync_server::connections;
use envsync_server::secret::{self, JwtSecret, SecretSources};
use envsync_server::startup::StartupError;
use envsync_server::store::{self, chain};
use envsync_server::tls::Tls;
use envsync_server::{Database, Server};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};

/// Lifetime of the owner token printed on first start.
const FIRST_TOKEN_TTL: u64 = 90 * 86_400;

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
    // Kept beside `cli`: the settings are read from it by variable name (`apply_env`).
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
        Err(e) => return report(&anyhow!(e).context("cannot start the async runtime")),
    };
    if let Some(Command::Audit(AuditCommand::Verify(args))) = &cli.command {
        return runtime.block_on(verify_audit(&cli, args));
    }
    let result = runtime.block_on(async {
        match &cli.command {
            None => run_server(&cli, &matches).await,
            Some(Command::Token(args)) => mint_offline(&cli, &matches, args).await,
            Some(Command::Copy(args)) => copy(args).await,
            Some(Command::Audit(_) | Command::Man(_)) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
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
        Err(e) => report(&e),
    }
}

/// The one place an error becomes output and an exit code: `error:` and the whole chain on
/// one line, then the hint of the [`StartupError`] in that chain, if any; its exit code
/// (2 for a setting), else 1.
fn report(e: &anyhow::Error) -> ExitCode {
    let startup = e
        .chain()
        .find_map(|cause| cause.downcast_ref::<StartupError>());
    eprintln!("error: {e:#}");
    if let Some(hint) = startup.and_then(StartupError::hint) {
        eprintln!("hint: {hint}");
    }
    ExitCode::from(startup.map_or(1, StartupError::exit_code))
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

/// `--db` (or `ENVSYNC_DB`), parsed. A URL that cannot be used is a setting error (exit 2)
/// whose message never repeats the URL.
fn database(cli: &Cli) -> Result<Database, StartupError> {
    Database::parse(&cli.db).map_err(|e| ConfigError::Database(e.to_string()).into())
}

/// The settings from the command line (flag, else variable, else default), checked.
fn settings(
    db: Database,
    secret: JwtSecret,
    matches: &ArgMatches,
) -> Result<Settings, StartupError> {
    let mut settings = Settings::new(db, secret);
    settings.apply_env(SettingsArgs::lookup(matches))?;
    Ok(settings)
}

/// Where this command line says to look for the JWT secret.
fn secret_sources(cli: &Cli) -> SecretSources {
    SecretSources::from_env(cli.jwt_secret_file.clone())
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
    let db = database(cli)?;
    // The certificate and key are checked before anything is created: a first start that
    // stopped on them after writing the secret would never print its owner token.
    if let Some(files) =
        config::tls_files(SettingsArgs::lookup(matches)).map_err(StartupError::from)?
    {
        Tls::load(&files).map_err(StartupError::from)?;
    }
    let secret::Bootstrap { secret, generated } =
        secret::bootstrap(&secret_sources(cli), &db).await?;
    let settings = settings(db.clone(), secret, matches)?;
    let listener = tokio::net::TcpListener::bind(&cli.addr)
        .await
        .map_err(|cause| StartupError::Listen {
            addr: cli.addr.clone(),
            cause,
        })?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let server = Server::open(settings).await.map_err(StartupError::open)?;

    // Caught before the address is announced: SIGHUP's default would end the server.
    let scheme = match server.tls() {
        Some(tls) => {
            let hangups = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
            tokio::spawn(reload_on_hangup(tls.clone(), hangups));
            "https"
        }
        None => "http",
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "envsync-server listening on {scheme}://{addr}")?;
    out.flush()?;
    // The first owner token: when this start generated the secret (SQLite), or when this
    // server is the one that claimed the first start of a shared database.
    let first = generated
        || (db.is_shared()
            && server
                .store()
                .claim_first_start()
                .await
                .context("cannot claim the first start")?);
    if first {
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
            Database::Postgres(_) => "printed once for every server on this database".to_owned(),
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
    let db = database(cli)?;
    if db == Database::Memory {
        bail!("`token` needs the server's database file, not :memory:");
    }
    let secret = secret_sources(cli).required(&db)?;
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
    let email = envsync_common::names::check_email(&args.email).map_err(|e| anyhow!("--{e}"))?;
    let mut settings = settings(db, secret, matches)?;
    // Minting serves nothing: the certificate and key (perhaps unreadable to whoever mints)
    // are not read.
    settings.tls = None;
    let server = Server::open(settings).await.map_err(StartupError::open)?;
    let minted = server
        .mint(
            "envsync-server token",
            email,
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
async fn verify_audit(cli: &Cli, args: &VerifyArgs) -> ExitCode {
    let fail = |e: anyhow::Error| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    };
    let db = match database(cli) {
        Ok(Database::Memory) => {
            return fail(anyhow!(
                "`audit verify` needs a database file or URL, not :memory:"
            ));
        }
        Ok(db) => db,
        Err(e) => return fail(e.into()),
    };
    let mut anchors = Vec::new();
    for text in &args.anchors {
        match chain::parse_anchor(text) {
            Some(anchor) => anchors.push(anchor),
            None => {
                return fail(anyhow!(
                    "--anchor must be ID:HASH as printed on a `head` line, not '{text}'"
                ));
            }
        }
    }
    match db.verify(anchors).await {
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

/// `copy --from A --to B [--replace]`: everything A holds into B, then both verified; the
/// copy's head must be the source's.
async fn copy(args: &CopyArgs) -> Result<()> {
    let parse = |flag: &str, text: &str| {
        Database::parse(text).map_err(|e| {
            anyhow::Error::from(StartupError::from(ConfigError::Database(format!(
                "{flag}: {e}"
            ))))
        })
    };
    let from = parse("--from", &args.from)?;
    let to = parse("--to", &args.to)?;
    if from == Database::Memory || to == Database::Memory {
        bail!("`copy` needs a database file or URL on both sides, not :memory:");
    }
    if from == to {
        bail!("--from and --to name the same database");
    }
    if let Database::File(path) = &from
        && !path.exists()
    {
        bail!("no database at {}", path.display());
    }
    if to.holds_data().await.context("cannot read the target")? {
        if !args.replace {
            return Err(StartupError::TargetHoldsData {
                target: to.to_string(),
            }
            .into());
        }
        to.erase().await.context("cannot erase the target")?;
        eprintln!("erased the envsync data of {to}");
    }
    let source = from
        .open()
        .await
        .with_context(|| format!("cannot open {from}"))?;
    let target = to
        .open()
        .await
        .with_context(|| format!("cannot open {to}"))?;
    let mut bar = ProgressBar::new();
    let copied = store::copy::copy(source.as_ref(), target.as_ref(), |p| bar.show(p))
        .await
        .with_context(|| format!("the copy into {to} stopped (run it again with --replace)"))?;
    bar.finish();
    let (expected, got) = tokio::try_join!(source.verify(Vec::new()), target.verify(Vec::new()))?;
    eprintln!(
        "copied {} tokens, {} versions and {} audit rows from {from} to {to}",
        copied.jtis, copied.versions, copied.audit
    );
    println!("{got}");
    if got != expected {
        bail!("the copy does not verify as its source does (source: {expected})");
    }
    if !matches!(got, chain::Verdict::Intact { .. }) {
        bail!("the source's audit log does not verify; the copy is as broken as it is");
    }
    if matches!(from, Database::File(_)) {
        eprintln!(
            "note: the tokens stay valid on servers signing with the same JWT secret (ENVSYNC_JWT_SECRET_FILE=<source>.jwt.secret)"
        );
    }
    Ok(())
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

/// Reads the certificate and key again on every SIGHUP. New connections get the new
/// certificate, open ones keep theirs; files that cannot be used leave the old one.
async fn reload_on_hangup(tls: Tls, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        match tls.reload() {
            Ok(fingerprint) => tracing::info!(%fingerprint, "TLS certificate reloaded"),
            Err(e) => tracing::error!("TLS certificate not reloaded, the old one stays: {e}"),
        }
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
