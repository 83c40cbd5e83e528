//! Test helpers: a real server on `127.0.0.1:0` (in-process through `serve`, or the real
//! binary), tokens signed with the test secret, real age ciphertexts, and a raw HTTP client
//! for requests no well-behaved client would send.

use envsync_common::envelope::{Binding, Seal, seal};
use envsync_common::secret::SecretString;
use envsync_server::config::Settings;
use envsync_server::secret::JwtSecret;
use envsync_server::store::chain::Verdict;
use envsync_server::{Database, Server};
use envsync_tests::{ServerProcess, procfs};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub(crate) use envsync_tests::pg;

/// Runs an async test body once per backend: `name::sqlite` and `name::postgres`.
macro_rules! on_each_backend {
    ($(#[$meta:meta])* async fn $name:ident($backend:ident: Backend) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($backend: Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(Backend::Postgres).await
            }
        }
    };
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A test's database, on either backend, and raw SQL on it for what the API does not
/// show (counts of rows, failpoints, tampering). The SQL the tests use is the common
/// subset of the two dialects.
pub struct TestDb {
    pub backend: Backend,
    pub database: Database,
    /// What `--db` takes: the file path or the URL.
    pub arg: String,
    /// The SQLite file (a path that is never created on PostgreSQL).
    pub path: PathBuf,
    /// Holds the SQLite file; removed with the test database.
    _dir: Option<TempDir>,
}

impl TestDb {
    /// A new, empty database.
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("envsync.db");
        let arg = match backend {
            Backend::Sqlite => path.display().to_string(),
            Backend::Postgres => pg::cluster().database().await,
        };
        TestDb {
            backend,
            database: Database::parse(&arg).unwrap(),
            arg,
            path,
            _dir: Some(dir),
        }
    }

    /// A copy of this database as it is now, named after `name` (on SQLite, a file beside
    /// this one). Stop the server first: PostgreSQL copies only a database no one uses.
    pub async fn copy(&self, name: &str) -> TestDb {
        let (arg, path) = match self.backend {
            Backend::Sqlite => {
                let path = self.path.with_file_name(format!("{name}.db"));
                rusqlite::Connection::open(&self.path)
                    .unwrap()
                    .execute("VACUUM INTO ?1", [path.to_str().unwrap()])
                    .unwrap();
                (path.display().to_string(), path)
            }
            Backend::Postgres => (
                pg::cluster().copy_of(&self.arg).await,
                self.path.with_file_name(format!("{name}.never")),
            ),
        };
        TestDb {
            backend: self.backend,
            database: Database::parse(&arg).unwrap(),
            arg,
            path,
            _dir: None,
        }
    }

    /// A connection of its own to the PostgreSQL database, and its driver task: drop the
    /// client, then await the task.
    async fn pg_connect(
        &self,
    ) -> (
        tokio_postgres::Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ) {
        let (client, connection) = tokio_postgres::connect(&self.arg, tokio_postgres::NoTls)
            .await
            .unwrap();
        (client, tokio::spawn(connection))
    }

    /// Every row of `sql`, each column as text (`None` for NULL).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self.backend {
            Backend::Sqlite => {
                use rusqlite::types::Value as V;
                let conn = rusqlite::Connection::open(&self.path).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let n = stmt.column_count();
                stmt.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get::<_, V>(i)? {
                                V::Null => None,
                                V::Integer(v) => Some(v.to_string()),
                                V::Real(v) => Some(v.to_string()),
                                V::Text(t) => Some(t),
                                V::Blob(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
                            })
                        })
                        .collect()
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
            }
            Backend::Postgres => {
                let (client, driver) = self.pg_connect().await;
                let out = client
                    .simple_query(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                        }
                        _ => None,
                    })
                    .collect();
                drop(client);
                let _ = driver.await;
                out
            }
        }
    }

    /// The single number `sql` selects.
    pub async fn count(&self, sql: &str) -> i64 {
        self.rows(sql).await[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Runs statements; an error is returned, not a panic.
    pub async fn exec(&self, sql: &str) -> Result<(), String> {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(&self.path)
                .unwrap()
                .execute_batch(sql)
                .map_err(|e| e.to_string()),
            Backend::Postgres => {
                let (client, driver) = self.pg_connect().await;
                let out = client.batch_execute(sql).await.map_err(|e| {
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
                });
                drop(client);
                let _ = driver.await;
                out
            }
        }
    }

    /// `audit verify`'s verdict, read-only.
    pub async fn verify(&self) -> Verdict {
        self.database.verify(Vec::new()).await.unwrap()
    }

    /// A failpoint: every audit insert of a push or a pull is refused by a trigger.
    pub async fn fail_audit_inserts(&self, on: bool) {
        let sql = match (self.backend, on) {
            (Backend::Sqlite, true) => {
                "CREATE TRIGGER failpoint BEFORE INSERT ON audit
                 WHEN NEW.action IN ('push', 'pull')
                 BEGIN SELECT RAISE(ABORT, 'failpoint: audit insert refused'); END;"
            }
            (Backend::Sqlite, false) => "DROP TRIGGER failpoint",
            (Backend::Postgres, true) => {
                "CREATE FUNCTION failpoint() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'failpoint: audit insert refused'; END $$;
                 CREATE TRIGGER failpoint BEFORE INSERT ON audit FOR EACH ROW
                 WHEN (NEW.action IN ('push', 'pull')) EXECUTE FUNCTION failpoint();"
            }
            (Backend::Postgres, false) => {
                "DROP TRIGGER failpoint ON audit; DROP FUNCTION failpoint()"
            }
        };
        self.exec(sql).await.unwrap();
    }
}

/// The secret every in-process test server signs with.
pub const SECRET: &str = "it-3f9a1c7e5b2d8046-a1b2c3d4e5f6-9e8d7c6b5a4f";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A server running `serve` in this test's runtime, on a temp-file database.
pub struct TestServer {
    pub url: String,
    pub addr: SocketAddr,
    /// The SQLite file (see [`TestDb::path`]).
    pub db: PathBuf,
    pub store: TestDb,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::on(Backend::Sqlite).await
    }

    /// Starts a server after `configure` has adjusted the default settings.
    pub async fn start_with(configure: impl FnOnce(&mut Settings)) -> TestServer {
        TestServer::on_with(Backend::Sqlite, configure).await
    }

    /// A server on a new database of `backend`.
    pub async fn on(backend: Backend) -> TestServer {
        TestServer::on_with(backend, |_| {}).await
    }

    /// A server on a new database of `backend`, after `configure`.
    pub async fn on_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestServer {
        let store = TestDb::new(backend).await;
        let db = store.path.clone();
        let secret = JwtSecret::new(SECRET.as_bytes().to_vec()).unwrap();
        let mut settings = Settings::new(store.database.clone(), secret);
        configure(&mut settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        // Opened before the answer: a test may look at the database at once.
        let server = Server::open(settings).await.unwrap();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            url: format!("http://{addr}"),
            addr,
            db,
            store,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits for it to close its store; returns the test database.
    pub async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        // `TestServer` has a `Drop`: its database is swapped out rather than moved.
        let gone = TestDb {
            backend: self.store.backend,
            database: Database::Memory,
            arg: String::new(),
            path: PathBuf::new(),
            _dir: None,
        };
        std::mem::replace(&mut self.store, gone)
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(body)
    }

    /// Pushes `keys` to `/env/{project}/{branch_encoded}` on `base`; returns status and body.
    pub async fn push(
        &self,
        token: &str,
        project: &str,
        branch_encoded: &str,
        keys: &[&str],
        base: Option<u64>,
    ) -> (u16, Value) {
        let body = json!({
            "ciphertext": ciphertext(),
            "keys": keys,
            "base_version": base,
        });
        send(self.post(&format!("/env/{project}/{branch_encoded}"), token, &body)).await
    }

    /// As [`TestServer::push`], with value fingerprints (`Value::Null`: the field is left
    /// out, as an old client does).
    pub async fn push_with(
        &self,
        token: &str,
        project: &str,
        branch_encoded: &str,
        keys: &[&str],
        base: Option<u64>,
        fingerprints: &Value,
    ) -> (u16, Value) {
        let mut body = json!({
            "ciphertext": ciphertext(),
            "keys": keys,
            "base_version": base,
        });
        if !fingerprints.is_null() {
            body["fingerprints"] = fingerprints.clone();
        }
        send(self.post(&format!("/env/{project}/{branch_encoded}"), token, &body)).await
    }

    /// A raw request on a fresh connection; returns the status and the body.
    pub async fn raw(&self, request: Vec<u8>) -> (u16, String) {
        let addr = self.addr;
        tokio::task::spawn_blocking(move || raw(addr, &request))
            .await
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A well-formed value fingerprint (32 lowercase hex characters), one per `n`.
pub fn fp(n: u32) -> String {
    format!("{n:032x}")
}

/// Sends a request, returning the status and the JSON body (`Null` when empty).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

/// Every version of a branch, newest first, following `/versions` pages; `url` ends in
/// `/versions`.
pub async fn all_versions(client: &reqwest::Client, url: &str, token: &str) -> Vec<Value> {
    all_pages(client, url, token, "versions").await
}

/// Every item of a list that goes back with `before` (`/audit` and its `events`, a
/// `/versions` route and its `versions`), following its pages, as one list.
pub async fn all_pages(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    field: &str,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let page_url = match before {
            Some(b) => format!("{url}?limit=100&before={b}"),
            None => format!("{url}?limit=100"),
        };
        let (status, page) = send(client.get(page_url).bearer_auth(token)).await;
        assert_eq!(status, 200, "{page}");
        items.extend(page[field].as_array().unwrap().iter().cloned());
        match page["next_before"].as_u64() {
            Some(next) => before = Some(next),
            None => return items,
        }
    }
}

/// Asserts an error answer: status, `error` code, and a non-empty message.
#[track_caller]
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"], code, "{}", answer.1);
    assert!(
        answer.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        answer.1
    );
}

/// A real armored age file (passphrase mode, low work factor: the server never opens it).
pub fn ciphertext() -> String {
    static BLOB: OnceLock<String> = OnceLock::new();
    BLOB.get_or_init(|| {
        let passphrase = SecretString::from("correct horse battery staple".to_owned());
        seal(
            &Binding::new("p", "main", 1),
            b"API_KEY=sentinel-value-do-not-log\nDEBUG=1\n",
            &Seal::Passphrase {
                passphrase: &passphrase,
                work_factor: 10,
            },
        )
        .unwrap()
    })
    .clone()
}

/// Signs arbitrary claims with `secret` and `alg`.
pub fn sign(claims: &Value, secret: &str, alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Valid claims for `role` on `projects`, expiring in an hour.
pub fn claims(role: &str, projects: &[&str]) -> Value {
    json!({
        "email": format!("{role}@example.com"),
        "role": role,
        "project_ids": projects,
        "exp": now() + 3600,
        "iat": now(),
        "jti": format!("jti-{role}-{}", projects.join("-")),
    })
}

/// A valid HS256 token for the in-process servers.
pub fn token(role: &str, projects: &[&str]) -> String {
    sign(
        &claims(role, projects),
        SECRET,
        jsonwebtoken::Algorithm::HS256,
    )
}

/// Percent-encodes a branch name as one path segment.
pub fn encode(branch: &str) -> String {
    let mut out = String::new();
    for b in branch.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One raw HTTP/1.1 exchange; the server is asked to close the connection.
pub fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let answer = envsync_tests::http::exchange(addr, request, Duration::from_secs(10));
    (answer.status, answer.body)
}

/// The real `envsync-server` binary on `127.0.0.1:0`, its stderr in a temp file; killed
/// (SIGKILL) on drop. Its process (`child`, `url`, `stdout`, `next_line`, `addr`, `kill`)
/// is the kit's [`ServerProcess`].
pub struct Binary {
    process: ServerProcess,
    pub stderr_path: PathBuf,
    _stderr_file: tempfile::NamedTempFile,
}

impl std::ops::Deref for Binary {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl std::ops::DerefMut for Binary {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

impl Binary {
    /// Starts the binary on `db` with `env`, and waits for its listening line (no sleeps).
    pub fn start(db: impl AsRef<std::ffi::OsStr>, env: &[(&str, &str)]) -> Binary {
        Binary::start_limited(db, env, None)
    }

    /// Like [`Binary::start`], with a shell command (`ulimit -n 256`, `umask 000`) applied
    /// to the server process first: `sh` runs it and `exec`s the binary, so the child is
    /// the server itself.
    pub fn start_limited(
        db: impl AsRef<std::ffi::OsStr>,
        env: &[(&str, &str)],
        shell: Option<&str>,
    ) -> Binary {
        let stderr_file = tempfile::NamedTempFile::new().unwrap();
        let stderr_path = stderr_file.path().to_owned();
        let stderr = stderr_file.reopen().unwrap();
        let bin = env!("CARGO_BIN_EXE_envsync-server");
        let mut cmd = match shell {
            None => Command::new(bin),
            Some(first) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("{first} && exec \"$0\" \"$@\""), bin]);
                sh
            }
        };
        cmd.args(["--addr", "127.0.0.1:0", "--db"])
            .arg(db.as_ref())
            .env_remove("ENVSYNC_JWT_SECRET")
            .env_remove("ENVSYNC_ADDR")
            .env_remove("ENVSYNC_DB")
            .env_remove("RUST_LOG")
            .env_remove("ENVSYNC_LOG")
            .stdin(Stdio::null())
            .stderr(Stdio::from(stderr));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let process = ServerProcess::spawn(&mut cmd).unwrap_or_else(|e| {
            panic!(
                "{e}; stderr: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            )
        });
        let url = &process.url;
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert!(!url.ends_with(":0"), "{url}");
        Binary {
            process,
            stderr_path,
            _stderr_file: stderr_file,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// A line of `/proc/<pid>/limits`, e.g. `Max open files`: its soft and hard values.
    pub fn limit(&self, name: &str) -> (String, String) {
        procfs::limit(self.pid(), name).unwrap_or_else(|| panic!("no {name} limit"))
    }
}
