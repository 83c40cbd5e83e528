//! A throwaway PostgreSQL cluster for the tests, started once per test binary, and a fresh
//! database in it for each test.
//!
//! `ENVSYNC_TEST_PG=postgres://user@host/db` points the tests at an existing server
//! instead (the user must be allowed to `CREATE DATABASE`); the databases a test binary
//! creates there are dropped once it has exited (with `psql`). Otherwise the first test that
//! needs PostgreSQL runs `initdb` and `pg_ctl start` from the newest
//! `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package; `test.sh` installs it) in a
//! temporary directory, listening on a Unix socket in that directory only (no TCP port, so
//! nothing to collide with). `initdb` refuses to run as root: as root (CI), the cluster
//! belongs to `nobody` and both commands run through `runuser -u nobody`. A watcher process
//! stops the cluster (`pg_ctl stop -m immediate`) and removes the directory once this
//! test binary has exited, however it exits. `fsync` stays on: the durability tests need
//! commits that are really durable.
//!
//! The server's tests and `envsync-bench server --pg` use it (the kit's `pg` feature).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where the tests' PostgreSQL is: a URL whose database part [`Cluster::url`] replaces.
#[derive(Debug)]
pub struct Cluster {
    /// `postgres://user@host/` up to the database name.
    base: String,
    /// The query string (`?host=…`), if any.
    query: String,
    /// The database the admin connection uses.
    admin_db: String,
}

impl Cluster {
    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("{}{name}{}", self.base, self.query)
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn database(&self) -> String {
        self.try_database().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a new, empty database and returns its URL, or why it could not.
    pub async fn try_database(&self) -> Result<String, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "envsync_t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (client, connection) =
            tokio_postgres::connect(&self.url(&self.admin_db), tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("cannot connect to the test PostgreSQL: {e}"))?;
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("cannot create a test database: {e}"))?;
        drop(client);
        let _ = driver.await;
        Ok(self.url(&name))
    }
}

impl Cluster {
    /// A new database holding what the database at `url` (one of this cluster's) holds now,
    /// and its URL. A database is copied only while no one is connected to it: connections
    /// left to it (a server just killed) are ended first.
    pub async fn copy_of(&self, url: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let source = url
            .strip_prefix(&self.base)
            .and_then(|rest| rest.strip_suffix(&self.query))
            .unwrap_or_else(|| panic!("{url} is not a database of the test cluster"));
        let name = format!(
            "{source}_copy{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (client, connection) =
            tokio_postgres::connect(&self.url(&self.admin_db), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"));
        let driver = tokio::spawn(connection);
        // An ended backend leaves a moment later: try again until the source is free.
        let mut tries = 0;
        loop {
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&source],
                )
                .await
                .unwrap_or_else(|e| panic!("cannot end the connections to {source}: {e}"));
            match client
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {source}"))
                .await
            {
                Ok(()) => break,
                Err(_) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot copy {source}: {e}"),
            }
        }
        drop(client);
        let _ = driver.await;
        self.url(&name)
    }
}

/// The cluster, started on first use. Panics with what to do when there is none.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| match std::env::var("ENVSYNC_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => existing(url.trim()).inspect(drop_on_exit),
        _ => start(),
    }) {
        Ok(cluster) => cluster,
        Err(e) => panic!("no PostgreSQL for the tests: {e}"),
    }
}

/// On a server of the user's (`ENVSYNC_TEST_PG`), the databases this test binary created
/// (`envsync_t<pid>_…`, copies included) are dropped once it has exited, however it
/// exits, by a watcher as [`start`]'s, with `psql`. Without `psql` they stay, as they
/// would anyway after a crash: they are named after the process that made them.
fn drop_on_exit(cluster: &Cluster) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done
         psql \"$0\" -Atc \"SELECT datname FROM pg_database WHERE datname LIKE 'envsync\\_t{pid}\\_%'\" |
         while read -r db; do psql \"$0\" -qc \"DROP DATABASE IF EXISTS \\\"$db\\\" WITH (FORCE)\"; done",
        pid = std::process::id()
    );
    let _ = Command::new("setsid")
        .args(["sh", "-c", &script, &cluster.url(&cluster.admin_db)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// Splits `postgres://…/db?query` around its database name.
pub fn existing(url: &str) -> Result<Cluster, String> {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or("ENVSYNC_TEST_PG is not a postgres:// URL")?;
    let scheme_len = url.len() - rest.len();
    let (path_start, admin_end) = match rest.find('/') {
        Some(slash) => {
            let after = &rest[slash + 1..];
            let end = after.find('?').unwrap_or(after.len());
            (scheme_len + slash + 1, scheme_len + slash + 1 + end)
        }
        None => return Err("ENVSYNC_TEST_PG must name a database (…/postgres)".into()),
    };
    let admin_db = &url[path_start..admin_end];
    Ok(Cluster {
        base: url[..path_start].to_owned(),
        query: url[admin_end..].to_owned(),
        admin_db: if admin_db.is_empty() {
            "postgres".to_owned()
        } else {
            admin_db.to_owned()
        },
    })
}

/// The newest `/usr/lib/postgresql/*/bin` holding `initdb`.
fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "/usr/lib/postgresql does not exist: install the postgresql package (./test.sh does), or set ENVSYNC_TEST_PG=postgres://user@host/db".to_owned()
        })?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no /usr/lib/postgresql/*/bin/initdb: install the postgresql package".into())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A command run as the cluster's owner: `nobody` through `runuser` when we are root.
fn as_owner(program: &Path, root: bool) -> Command {
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "nobody", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Starts a throwaway cluster (see the module's doc).
pub fn start() -> Result<Cluster, String> {
    let bin = bin_dir()?;
    let root = is_root();
    // Under /tmp whatever TMPDIR says: `nobody` must be able to reach it, and a Unix
    // socket's path must stay under about 100 bytes.
    let dir = tempfile::Builder::new()
        .prefix("envsync-pg-")
        .tempdir_in("/tmp")
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    if root {
        // The directory (and so the cluster) belongs to nobody, who runs the server.
        run(
            Command::new("chown").args(["nobody"]).arg(&dir),
            "chown nobody",
        )?;
    }
    let data = dir.join("data");
    run(
        as_owner(&bin.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "envsync",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]),
        "initdb",
    )?;
    let socket = dir.display().to_string();
    run(
        as_owner(&bin.join("pg_ctl"), root)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("postgres.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-c listen_addresses='' -c unix_socket_directories='{socket}' -c max_connections=400 -c shared_buffers=32MB -c fsync=on -c synchronous_commit=on"
            ))
            .arg("start"),
        "pg_ctl start",
    )?;
    // Stops the cluster and removes it once this process is gone, however it ends.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {owner}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        owner = if root { "runuser -u nobody -- " } else { "" },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    // In a session of its own (`setsid`), so that a signal to this process's group (a
    // killed `cargo test`) does not take the watcher with it.
    let mut watcher = Command::new("setsid");
    watcher.args(["sh", "-c", &stop]);
    watcher
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the cluster's watcher: {e}"))?;
    let encoded: String = socket
        .bytes()
        .map(|b| match b {
            b'/' => "%2F".to_owned(),
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect();
    Ok(Cluster {
        base: format!("postgres://envsync@{encoded}/"),
        query: String::new(),
        admin_db: "postgres".to_owned(),
    })
}
