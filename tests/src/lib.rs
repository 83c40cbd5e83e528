//! The test kit of the workspace: one copy of what the end-to-end tests, the server's
//! tests, the common crate's tests and the bench need to run envsync for real.
//!
//! - [`Server`] runs the real `envsync-server` binary on a loopback port with a fresh
//!   database (the end-to-end tests, and the bench's `LabServer` with the release
//!   binary); [`ServerProcess`] is the spawner under it (and under the server's own
//!   binary tests and the bench's replicas): `--addr 127.0.0.1:0`, the URL read from the
//!   listening line, SIGKILL on drop. [`mint_token`] mints offline.
//! - [`Dev`] is one developer's machine: a home, a git repository with envsync set up, the
//!   real `git-envsync` binary run in a clean environment ([`sandbox`]); [`Run`] is what a
//!   command did, with the shape checks users rely on ([`Run::refused`]).
//! - [`http`](mod@http) is the one raw HTTP/1.1 client; [`proxy`] puts a lying or recording server
//!   in front of the real one; [`webdriver`] drives a headless Chromium; [`pty`] a
//!   terminal.
//! - [`Rng`] is the seeded generator, [`procfs`] reads `/proc` (and samples peak memory),
//!   [`armor`] takes age armor off and on, [`redaction`] asserts `Debug` hides secrets.
//! - [`pg`] (feature `pg`) starts a throwaway PostgreSQL cluster per test binary.
//!
//! Every process runs with `HOME` and `XDG_CONFIG_HOME` inside the test's temp dir and
//! `GIT_CONFIG_NOSYSTEM=1`, so the developer's own configuration never leaks in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;

pub use http::{Response, http};
pub use rng::Rng;
pub use server_process::{ServerProcess, mint_token};
pub use tempfile::TempDir;

pub mod armor;
pub mod http;
#[cfg(feature = "pg")]
pub mod pg;
pub mod procfs;
pub mod proxy;
pub mod pty;
pub mod redaction;
pub mod rng;
pub mod server_process;
pub mod webdriver;

/// A passphrase long enough for the CLI's strength check.
pub const PASS: &str = "correct horse battery staple";
/// The JWT secret every test server runs with (minting offline needs it too).
pub const SECRET: &str = "e2e-test-secret-0123456789abcdef0123456789abcdef";

/// The directory of the workspace's binaries for this build profile: beside a test
/// binary's `deps/` (`target/debug`), or beside the running binary (the bench's
/// `target/release`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("profile dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The workspace's `target/` directory, where tests leave what people look at afterwards
/// (the dashboard's screenshots).
pub fn target_dir() -> PathBuf {
    bin_dir().parent().map_or_else(bin_dir, Path::to_path_buf)
}

/// The path of one of the workspace's binaries, or what to build when it is missing.
pub fn try_binary(name: &str) -> Result<PathBuf, String> {
    let dir = bin_dir();
    let path = dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    let release = if dir.ends_with("release") {
        " --release"
    } else {
        ""
    };
    Err(format!(
        "{} is missing: build it first with cargo build{release} -p git-envsync -p envsync-server",
        path.display()
    ))
}

/// The path of one of the workspace's binaries. `cargo test --workspace` builds them (both
/// packages have integration tests); a lone `cargo test -p envsync-tests` builds them here.
pub fn binary(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    if in_test() && try_binary(name).is_err() {
        BUILD.call_once(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "git-envsync", "-p", "envsync-server"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build of the binaries failed");
        });
    }
    try_binary(name).unwrap_or_else(|e| panic!("{e}"))
}

/// Whether this is a test binary (in `target/<profile>/deps/`), which may build the
/// binaries it misses; the bench only says what to build.
fn in_test() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.ends_with("deps")))
        .unwrap_or(false)
}

/// Sends process `pid` a signal by name (`HUP`, `TERM`); panics when it cannot.
pub fn signal(pid: u32, name: &str) {
    // The shell's own `kill`: a minimal system may have no kill(1) binary (procps).
    let status = Command::new("/bin/sh")
        .args(["-c", &format!("kill -{name} {pid}")])
        .status()
        .expect("run /bin/sh");
    assert!(status.success(), "kill -{name} {pid}: {status}");
}

/// Sends the process group `pgid` a signal by name; a group already gone is no error.
fn signal_group(pgid: u32, name: &str) {
    let _ = Command::new("/bin/sh")
        .args(["-c", &format!("kill -{name} -{pgid}")])
        .status();
}

/// A clean environment for `cmd`: nothing inherited but `PATH`, with the workspace's
/// binaries first (so git hooks find `git-envsync`); `HOME` and `XDG_CONFIG_HOME` in
/// `home`; no system git configuration.
pub fn sandbox(cmd: &mut Command, home: &Path) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin_dir()];
    dirs.extend(std::env::split_paths(&path));
    cmd.env_clear()
        .env("PATH", std::env::join_paths(dirs).expect("PATH"))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1");
}

/// A running `envsync-server` on `127.0.0.1:<random port>`, with its own database and
/// log in a temp dir; killed on drop.
#[derive(Debug)]
pub struct Server {
    process: Option<ServerProcess>,
    pub url: String,
    pub db: PathBuf,
    pub stderr_log: PathBuf,
    log_filter: String,
    /// Flags beyond `--addr` and `--db`, kept for [`Server::restart`].
    args: Vec<String>,
    dir: TempDir,
}

impl Server {
    /// Starts a server with a fresh database, logging at `debug`.
    pub fn start() -> Server {
        Server::start_logging("debug")
    }

    /// Starts a server with a fresh database and `RUST_LOG=<filter>`.
    pub fn start_logging(filter: &str) -> Server {
        Server::start_with(filter, &[])
    }

    /// Starts a server with a fresh database, `RUST_LOG=<filter>` and these flags too.
    pub fn start_with(filter: &str, args: &[&str]) -> Server {
        Server::try_start_with(filter, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Server::start_with`], failing with a message rather than a panic (the bench).
    pub fn try_start_with(filter: &str, args: &[&str]) -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let db = dir.path().join("envsync.db");
        let stderr_log = dir.path().join("server.log");
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let process = spawn_server(&db, &stderr_log, filter, &args)?;
        Ok(Server {
            url: process.url.clone(),
            process: Some(process),
            db,
            stderr_log,
            log_filter: filter.to_owned(),
            args,
            dir,
        })
    }

    /// Starts a server serving HTTPS (`--tls-cert`, `--tls-key`) with these flags too; its
    /// `url` is `https://127.0.0.1:<port>`.
    pub fn start_tls(cert: &Path, key: &Path, args: &[&str]) -> Server {
        let cert = cert.to_str().expect("UTF-8 path");
        let key = key.to_str().expect("UTF-8 path");
        let mut all = vec!["--tls-cert", cert, "--tls-key", key];
        all.extend(args);
        let server = Server::start_with("debug", &all);
        assert!(server.url.starts_with("https://"), "{}", server.url);
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("running").pid()
    }

    /// Sends the server a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Mints a token offline with the server's secret.
    pub fn token(&self, email: &str, role: &str, projects: &[&str]) -> String {
        self.try_token(email, role, projects)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Server::token`], failing with a message rather than a panic (the bench).
    pub fn try_token(&self, email: &str, role: &str, projects: &[&str]) -> Result<String, String> {
        let bin = try_binary("envsync-server")?;
        mint_token(&bin, SECRET, &self.db, email, role, projects)
    }

    /// Revokes every live token of `email` through the server's token route, as an owner
    /// would (`DELETE /tokens/{jti}`); panics when there is none or the server refuses.
    pub fn revoke(&self, email: &str) {
        let owner = self.token("owner@example.com", "owner", &[]);
        let tokens = self.request("GET", "/tokens", &owner, None).json();
        let ids: Vec<String> = tokens
            .as_array()
            .unwrap_or_else(|| panic!("GET /tokens: not a list: {tokens}"))
            .iter()
            .filter(|t| t["email"] == email && t["revoked"] != true)
            .map(|t| t["jti"].as_str().expect("a token id").to_owned())
            .collect();
        assert!(!ids.is_empty(), "no live token of {email}: {tokens}");
        for jti in ids {
            let r = self.request("DELETE", &format!("/tokens/{jti}"), &owner, None);
            assert_eq!(r.status, 204, "DELETE /tokens/{jti}: {r:?}");
        }
    }

    /// Kills the server process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on the same database (a new port).
    pub fn restart(&mut self) {
        self.kill();
        let process = spawn_server(&self.db, &self.stderr_log, &self.log_filter, &self.args)
            .unwrap_or_else(|e| panic!("{e}"));
        self.url = process.url.clone();
        self.process = Some(process);
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A raw HTTP request to the server.
    pub fn request(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> Response {
        http(&self.url, method, path, Some(token), body)
    }

    /// Pushes `ciphertext` with `keys` as the next version of `project`'s `branch` on top of
    /// `base`, straight over HTTP as whoever holds `token` (a teammate, or an attacker with
    /// a developer token), and asserts the server stored it (201).
    #[track_caller]
    pub fn push_sealed(
        &self,
        token: &str,
        project: &str,
        branch: &str,
        ciphertext: &str,
        keys: &[&str],
        base: Option<u64>,
    ) {
        let body =
            serde_json::json!({"ciphertext": ciphertext, "keys": keys, "base_version": base});
        let path = format!("/env/{project}/{}", escape_branch(branch));
        let r = self.request("POST", &path, token, Some(&body.to_string()));
        assert_eq!(r.status, 201, "{r:?}");
    }

    /// The latest version of `project`'s `branch` and its key names, as the server's key
    /// list says; `None` when the branch has no version (404). Any other answer panics.
    pub fn latest(&self, token: &str, project: &str, branch: &str) -> Option<(u64, Vec<String>)> {
        let path = format!("/env/{project}/{}/keys", escape_branch(branch));
        let r = self.request("GET", &path, token, None);
        if r.status == 404 {
            return None;
        }
        assert_eq!(r.status, 200, "GET {path}: {r:?}");
        let json = r.json();
        Some((version_of(&json), strings(&json["keys"])))
    }

    /// Every version of `project`'s `branch` as the server lists it (newest first):
    /// `(version, key names)`; empty when the branch has none (404). Any other answer
    /// panics.
    pub fn versions(&self, token: &str, project: &str, branch: &str) -> Vec<(u64, Vec<String>)> {
        let path = format!("/env/{project}/{}/versions", escape_branch(branch));
        let r = self.request("GET", &path, token, None);
        if r.status == 404 {
            return Vec::new();
        }
        assert_eq!(r.status, 200, "GET {path}: {r:?}");
        let json = r.json();
        let list = json.get("versions").unwrap_or(&json);
        list.as_array()
            .unwrap_or_else(|| panic!("GET {path}: no list of versions: {json}"))
            .iter()
            .map(|v| (version_of(v), strings(&v["keys"])))
            .collect()
    }

    /// The branches of `project` that have versions on the server; empty when it has
    /// none (404). Any other answer panics.
    pub fn branches(&self, token: &str, project: &str) -> Vec<String> {
        let path = format!("/env/{project}");
        let r = self.request("GET", &path, token, None);
        if r.status == 404 {
            return Vec::new();
        }
        assert_eq!(r.status, 200, "GET {path}: {r:?}");
        let json = r.json();
        let list = json.get("branches").unwrap_or(&json);
        list.as_array()
            .unwrap_or_else(|| panic!("GET {path}: no list of branches: {json}"))
            .iter()
            .map(|b| {
                b["branch"]
                    .as_str()
                    .unwrap_or_else(|| panic!("GET {path}: a branch without a name: {b}"))
                    .to_owned()
            })
            .collect()
    }
}

/// A branch name as one path segment of the API (`feature/x` → `feature%2Fx`).
fn escape_branch(branch: &str) -> String {
    branch.replace('/', "%2F")
}

/// The `version` number of an API answer.
fn version_of(json: &serde_json::Value) -> u64 {
    json["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no version number in {json}"))
}

/// A JSON array of strings (key names).
fn strings(json: &serde_json::Value) -> Vec<String> {
    json.as_array()
        .unwrap_or_else(|| panic!("not a list of names: {json}"))
        .iter()
        .map(|k| {
            k.as_str()
                .unwrap_or_else(|| panic!("not a name: {k}"))
                .to_owned()
        })
        .collect()
}

/// The binary on `127.0.0.1:0` and `db`, signing with [`SECRET`], its log appended to
/// `stderr_log`.
fn spawn_server(
    db: &Path,
    stderr_log: &Path,
    log_filter: &str,
    args: &[String],
) -> Result<ServerProcess, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_log)
        .map_err(|e| format!("server log {}: {e}", stderr_log.display()))?;
    let bin = if in_test() {
        binary("envsync-server")
    } else {
        try_binary("envsync-server")?
    };
    ServerProcess::spawn(
        Command::new(bin)
            .env("ENVSYNC_JWT_SECRET", SECRET)
            .env("RUST_LOG", log_filter)
            .args(["--addr", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(args)
            .stderr(log),
    )
    .map_err(|e| {
        format!(
            "envsync-server did not start: {e}; its log: {}",
            std::fs::read_to_string(stderr_log).unwrap_or_default()
        )
    })
}

/// One developer's machine: a home directory, and a git repository with envsync set up.
#[derive(Debug)]
pub struct Dev {
    pub home: PathBuf,
    pub repo: PathBuf,
    pub server_url: String,
    pub token: String,
    pub pass: Option<String>,
    /// Whether commands get `ENVSYNC_API` and `ENVSYNC_TOKEN` (the default); after
    /// [`Dev::login`] they rely on the stored login alone, as a real user's do.
    pub env_credentials: bool,
    /// This developer's `XDG_RUNTIME_DIR` (0700): where a passphrase agent's socket goes.
    pub runtime: PathBuf,
    /// More variables every command of this developer gets (`ENVSYNC_CA_FILE`, …).
    pub env: Vec<(String, String)>,
    /// Kills a passphrase agent `unlock` left running, before the temp dir goes.
    _agent: AgentReaper,
    _dir: TempDir,
}

/// Kills the passphrase agent of one agent directory on drop, by the pid it recorded
/// (and only when that pid is still a `git-envsync agent`): no test's agent outlives it.
#[derive(Debug)]
pub struct AgentReaper {
    pub dir: PathBuf,
}

impl Drop for AgentReaper {
    fn drop(&mut self) {
        if let Some(pid) = agent_pid(&self.dir) {
            let _ = Command::new("/bin/sh")
                .args(["-c", &format!("kill -KILL {pid}")])
                .status();
        }
    }
}

/// The pid of the live passphrase agent whose directory (holding `agent.pid`) is `dir`.
pub fn agent_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("agent.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = procfs::cmdline(pid)?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (cmdline.contains("git-envsync") && cmdline.contains("agent") && !procfs::is_zombie(pid))
        .then_some(pid)
}

impl Dev {
    /// A new repository with `.envsync.toml` for `project` committed on `main`.
    pub fn new(server: &Server, project: &str) -> Dev {
        let token = server.token("dev@example.com", "developer", &[project]);
        let dev = Dev::bare(server, token);
        dev.git(&["init", "-q", "-b", "main"]);
        std::fs::write(
            dev.repo.join(".envsync.toml"),
            format!("project = \"{project}\"\ndefault_branch = \"main\"\n"),
        )
        .expect("write config");
        std::fs::write(dev.repo.join(".gitignore"), "/.env\n/.env.backup-*\n").expect("ignore");
        dev.git(&["add", "."]);
        dev.git(&["commit", "-q", "-m", "envsync"]);
        dev.trust();
        dev
    }

    /// [`Dev::new`] with envsync's git hooks installed (`git envsync hooks install`).
    pub fn hooked(server: &Server, project: &str) -> Dev {
        let dev = Dev::new(server, project);
        dev.envsync(&["hooks", "install"]).clean().ok();
        dev
    }

    /// Commits a change to `file.txt` (its text: `msg`, also the commit message) with
    /// the hooks running; returns what `git commit` did, failure included.
    pub fn commit(&self, msg: &str) -> Run {
        std::fs::write(self.repo.join("file.txt"), msg).expect("write file.txt");
        self.git(&["add", "file.txt"]);
        self.git_run(&["commit", "-q", "-m", msg])
    }

    /// Trusts the project settings checked out now (`git envsync trust --yes`), as a
    /// user does after reviewing them.
    pub fn trust(&self) {
        let run = self.envsync(&["trust", "--yes"]);
        assert_eq!(run.code, 0, "trust: {run:#?}");
    }

    /// A second developer: a clone of `other`'s repository with its own home.
    pub fn clone_of(other: &Dev, server: &Server, email: &str) -> Dev {
        let project = other.project();
        let token = server.token(email, "developer", &[&project]);
        let dev = Dev::bare(server, token);
        std::fs::remove_dir(&dev.repo).expect("rmdir");
        dev.git_in(
            dev.home.parent().expect("parent"),
            &["clone", "-q", other.repo.to_str().expect("utf8"), "repo"],
        );
        dev.git(&["config", "user.email", email]);
        dev.trust();
        dev
    }

    fn bare(server: &Server, token: String) -> Dev {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let repo = dir.path().join("repo");
        let runtime = dir.path().join("run");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(&runtime).expect("runtime dir");
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("runtime dir mode");
        std::fs::create_dir_all(&repo).expect("repo");
        let dev = Dev {
            home,
            repo,
            server_url: server.url.clone(),
            token,
            pass: Some(PASS.to_owned()),
            env_credentials: true,
            _agent: AgentReaper {
                dir: runtime.join("envsync"),
            },
            runtime,
            env: Vec::new(),
            _dir: dir,
        };
        std::fs::write(
            dev.home.join(".gitconfig"),
            "[user]\n\tname = Test\n\temail = dev@example.com\n[init]\n\tdefaultBranch = main\n",
        )
        .expect("gitconfig");
        dev
    }

    pub fn project(&self) -> String {
        let text = std::fs::read_to_string(self.repo.join(".envsync.toml")).expect("config");
        text.lines()
            .find_map(|l| l.strip_prefix("project = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("project line")
            .to_owned()
    }

    /// A clean environment: this developer's home, the workspace's binaries first on
    /// `PATH` (so git hooks find `git-envsync`), and the envsync settings hooks read.
    fn sandbox(&self, cmd: &mut Command) {
        sandbox(cmd, &self.home);
        cmd.env("ENVSYNC_INSECURE_WORK_FACTOR", "10")
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LANG", "C");
        if self.env_credentials {
            cmd.env("ENVSYNC_API", &self.server_url)
                .env("ENVSYNC_TOKEN", &self.token);
        }
        if let Some(pass) = &self.pass {
            cmd.env("ENVSYNC_PASS", pass);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
    }

    /// `git envsync login --server <server_url> --token-stdin`, after which commands run
    /// without `ENVSYNC_API` and `ENVSYNC_TOKEN`: on the stored login alone.
    pub fn login(&mut self) {
        self.env_credentials = false;
        let mut cmd = self.envsync_cmd(&["login", "--server", &self.server_url, "--token-stdin"]);
        let run = run_with_stdin(&mut cmd, format!("{}\n", self.token));
        assert_eq!(run.code, 0, "login: {run:#?}");
    }

    /// Runs git in the repository; panics when it fails.
    pub fn git(&self, args: &[&str]) -> Output {
        self.git_in(&self.repo, args)
    }

    /// Runs git in the repository and returns what happened, failure included.
    pub fn git_run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new("git");
        self.sandbox(&mut cmd);
        Run::from(
            cmd.current_dir(&self.repo)
                .stdin(Stdio::null())
                .args(args)
                .output()
                .expect("run git"),
        )
    }

    /// [`Dev::git_run`], failing instead of waiting for ever: when git (with its hooks)
    /// has not finished within `limit`, its whole process group is killed and the test
    /// panics. For the tests whose point is that git is never held up.
    #[track_caller]
    pub fn git_run_within(&self, args: &[&str], limit: std::time::Duration) -> Run {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("git");
        self.sandbox(&mut cmd);
        let mut child = cmd
            .current_dir(&self.repo)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .args(args)
            .process_group(0)
            .spawn()
            .expect("run git");
        // Read both pipes while waiting, so a chatty git never blocks on a full one.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for git") {
                break status;
            }
            if start.elapsed() > limit {
                // The group is git's own (process_group(0)): git and every hook it ran.
                signal_group(child.id(), "KILL");
                let _ = child.kill();
                let _ = child.wait();
                panic!("git {args:?} was still running after {limit:?}: killed");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        Run::from(Output {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        })
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new("git");
        self.sandbox(&mut cmd);
        let out = cmd
            .current_dir(dir)
            .stdin(Stdio::null())
            .args(args)
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The `git-envsync` command, set up with this developer's environment.
    pub fn envsync_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("git-envsync"));
        self.sandbox(&mut cmd);
        cmd.current_dir(&self.repo).stdin(Stdio::null()).args(args);
        cmd
    }

    /// `/bin/sh -c SCRIPT` in the repository, with this developer's environment.
    pub fn sh_cmd(&self, script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        self.sandbox(&mut cmd);
        cmd.current_dir(&self.repo)
            .stdin(Stdio::null())
            .args(["-c", script]);
        cmd
    }

    /// `SCRIPT` run by `/bin/sh` on a pseudo-terminal of its own (`script(1)`), with this
    /// developer's environment: what a user at a terminal would see and type.
    pub fn pty(&self, script: &str) -> pty::Pty {
        let mut cmd = Command::new("script");
        self.sandbox(&mut cmd);
        // Plain text to match against (a terminal gets colour otherwise).
        cmd.current_dir(&self.repo)
            .env("SHELL", "/bin/sh")
            .env("NO_COLOR", "1")
            .args(["-q", "-f", "-e", "-c", script, "/dev/null"]);
        pty::Pty::spawn(cmd)
    }

    /// Runs `git envsync ARGS`.
    pub fn envsync(&self, args: &[&str]) -> Run {
        Run::from(self.envsync_cmd(args).output().expect("run git-envsync"))
    }

    /// Runs `git envsync ARGS` with `input` on its standard input.
    pub fn envsync_stdin(&self, args: &[&str], input: impl AsRef<[u8]>) -> Run {
        run_with_stdin(&mut self.envsync_cmd(args), input)
    }

    pub fn env_path(&self) -> PathBuf {
        self.repo.join(".env")
    }

    pub fn write_env(&self, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.env_path(), bytes).expect("write .env");
    }

    pub fn read_env(&self) -> Option<Vec<u8>> {
        std::fs::read(self.env_path()).ok()
    }

    /// Every `*.envsync.tmp-*` file left in the work tree or under `.git/envsync/`.
    pub fn temp_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.contains(".envsync.tmp-") {
                    out.push(path.clone());
                }
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.repo, &mut out);
        out
    }
}

/// Runs `cmd` with `input` on its standard input (closed after it), capturing its output.
/// A command that exits before reading all of it (a refusal) is no error here: its exit
/// code says what happened. Any other failure to write panics.
pub fn run_with_stdin(cmd: &mut Command, input: impl AsRef<[u8]>) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    match stdin.write_all(input.as_ref()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write to {cmd:?}: {e}"),
        _ => {}
    }
    drop(stdin);
    Run::from(child.wait_with_output().expect("wait for the command"))
}

/// The result of one CLI run.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// What envsync's hooks said during a git command: its `envsync:` lines (stderr, then
    /// stdout).
    pub fn envsync_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .chain(self.stdout.lines())
            .filter(|l| l.starts_with("envsync:"))
            .collect()
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    /// Asserts the exit code and returns self.
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "expected exit {code}: {self:#?}");
        self
    }

    /// A refusal as users should see it: a non-zero exit, no panic, and on stderr exactly
    /// one `error:` line, optionally followed by one `hint:` line.
    #[track_caller]
    pub fn refused(self) -> Run {
        assert_ne!(self.code, 0, "expected a failure: {self:#?}");
        let run = self.clean();
        let lines: Vec<&str> = run.stderr.lines().collect();
        let shape_ok = match lines.as_slice() {
            [e] => e.starts_with("error: "),
            [e, h] => e.starts_with("error: ") && h.starts_with("hint: "),
            _ => false,
        };
        assert!(shape_ok, "expected one error line (and a hint): {run:#?}");
        run
    }

    /// No panic, no backtrace, and an `error:` line when failing.
    #[track_caller]
    pub fn clean(self) -> Run {
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        assert!(!self.stderr.contains("RUST_BACKTRACE"), "{self:#?}");
        if self.code != 0 {
            assert!(self.stderr.starts_with("error: "), "{self:#?}");
        }
        self
    }
}

/// The fixtures directory of the repository.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Every env-file fixture: `fixtures/dotenv/*.env` in name order, then `sample.env`.
pub fn env_fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("dotenv"))
        .expect("read fixtures/dotenv")
        .map(|e| e.expect("fixtures/dotenv entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "env"))
        .collect();
    files.sort();
    files.push(fixtures().join("sample.env"));
    files
}
