//! Shared helpers for the end-to-end tests: the real `envsync-server` binary on a loopback
//! port, real git repositories in temp dirs, the real `git-envsync` binary.
//!
//! Every process runs with `HOME` and `XDG_CONFIG_HOME` inside the test's temp dir and
//! `GIT_CONFIG_NOSYSTEM=1`, so the developer's own configuration never leaks in.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::Duration;

pub use tempfile::TempDir;

pub mod proxy;
pub mod pty;
pub mod webdriver;

/// A passphrase long enough for the CLI's strength check.
pub const PASS: &str = "correct horse battery staple";
/// The JWT secret every test server runs with (minting offline needs it too).
pub const SECRET: &str = "e2e-test-secret-0123456789abcdef0123456789abcdef";

/// The workspace's target directory for this build profile (`target/debug`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// The workspace's `target/` directory, where tests leave what people look at afterwards
/// (the dashboard's screenshots).
pub fn target_dir() -> PathBuf {
    bin_dir().parent().map_or_else(bin_dir, Path::to_path_buf)
}

/// The path of one of the workspace's binaries. `cargo test --workspace` builds them (both
/// packages have integration tests); a lone `cargo test -p envsync-tests` builds them here.
pub fn binary(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let path = bin_dir().join(name);
    if !path.exists() {
        BUILD.call_once(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "git-envsync", "-p", "envsync-server"])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build of the binaries failed");
        });
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A running `envsync-server` on `127.0.0.1:<random port>`, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
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
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("envsync.db");
        let stderr_log = dir.path().join("server.log");
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let (child, url) = spawn_server(&db, &stderr_log, "127.0.0.1:0", filter, &args);
        Server {
            child: Some(child),
            url,
            db,
            stderr_log,
            log_filter: filter.to_owned(),
            args,
            dir,
        }
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

    /// Sends the server a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        // The shell's own `kill`: a minimal system may have no kill(1) binary.
        let status = Command::new("/bin/sh")
            .args(["-c", &format!("kill -{name} {pid}")])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Mints a token offline with the server's secret.
    pub fn token(&self, email: &str, role: &str, projects: &[&str]) -> String {
        let mut cmd = Command::new(binary("envsync-server"));
        cmd.env("ENVSYNC_JWT_SECRET", SECRET)
            .args(["--db"])
            .arg(&self.db)
            .args(["token", "--email", email, "--role", role]);
        for p in projects {
            cmd.args(["--project", p]);
        }
        let out = cmd.output().expect("run envsync-server token");
        assert!(
            out.status.success(),
            "token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }

    /// Kills the server process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same database (a new port).
    pub fn restart(&mut self) {
        self.kill();
        let (child, url) = spawn_server(
            &self.db,
            &self.stderr_log,
            "127.0.0.1:0",
            &self.log_filter,
            &self.args,
        );
        self.child = Some(child);
        self.url = url;
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A raw HTTP request to the server.
    pub fn request(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> Response {
        http(&self.url, method, path, Some(token), body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_server(
    db: &Path,
    stderr_log: &Path,
    addr: &str,
    log_filter: &str,
    args: &[String],
) -> (Child, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_log)
        .expect("server log");
    let mut child = Command::new(binary("envsync-server"))
        .env("ENVSYNC_JWT_SECRET", SECRET)
        .env("RUST_LOG", log_filter)
        .args(["--addr", addr, "--db"])
        .arg(db)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn envsync-server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listening line");
    let url = line
        .trim()
        .strip_prefix("envsync-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (child, url)
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A minimal HTTP/1.1 client over a TCP socket: enough for tests, and able to send what a
/// well-behaved client would not.
pub fn http(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Response {
    let host = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {text:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Response { status, body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
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
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    (cmdline.contains("git-envsync") && cmdline.contains("agent") && !zombie).then_some(pid)
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
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin_dir()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env_clear()
            .env("PATH", std::env::join_paths(dirs).expect("PATH"))
            .env("ENVSYNC_INSECURE_WORK_FACTOR", "10")
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .env("GIT_CONFIG_NOSYSTEM", "1")
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
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run git-envsync login");
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{}\n", self.token).as_bytes());
        let run = Run::from(child.wait_with_output().expect("login"));
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

/// SplitMix64: a fixed-seed generator, so a failing run can be replayed exactly.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
}

/// The fixtures directory of the repository.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}
