//! The test bench for whole-process measurements: the release `envsync-server` binary on
//! a loopback port with a temp database, temp git repositories, the release `git-envsync`
//! binary, and a timer that reports median and min–max.
//!
//! Everything runs in a temp dir with its own `HOME`, so the machine's configuration never
//! leaks in. The binaries are the ones next to this bench binary (`target/release`).

use anyhow::{Context, Result, bail};
use envsync_tests::Server;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use envsync_tests::PASS;

/// Median and range of a set of timings.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Stats {
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        Stats {
            median: samples[samples.len() / 2],
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }

    pub fn ms(&self) -> f64 {
        self.median.as_secs_f64() * 1e3
    }

    /// `12.3 ms (10.1–15.0)`
    pub fn show(&self) -> String {
        format!(
            "{:.1} ms ({:.1}–{:.1})",
            self.ms(),
            self.min.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
}

/// Runs `f` `n` times (after one warm-up) and returns the timings of the part it reports.
pub fn measure(n: usize, mut f: impl FnMut(usize) -> Result<Duration>) -> Result<Stats> {
    f(usize::MAX)?;
    let samples = (0..n).map(&mut f).collect::<Result<Vec<_>>>()?;
    Ok(Stats::of(samples))
}

/// Runs a baseline and a measured command alternately, `n` times each (after one warm-up
/// of each), so both see the same machine load on a shared, noisy host.
pub fn measure_pair(
    n: usize,
    mut base: impl FnMut(usize) -> Result<Duration>,
    mut with: impl FnMut(usize) -> Result<Duration>,
) -> Result<(Stats, Stats)> {
    base(usize::MAX)?;
    with(usize::MAX)?;
    let (mut b, mut w) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        b.push(base(i)?);
        w.push(with(i)?);
    }
    Ok((Stats::of(b), Stats::of(w)))
}

/// Times one command, which must succeed.
pub fn time(cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let out = cmd.output().context("spawn")?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(took)
}

/// One of the release binaries beside this bench binary, or what to build when it is
/// missing (the kit's lookup).
pub fn bin(name: &str) -> Result<PathBuf> {
    envsync_tests::try_binary(name).map_err(anyhow::Error::msg)
}

/// A release server on loopback with its own temp database and log: the kit's
/// [`Server`] (spawned by its `ServerProcess`), killed on drop.
pub struct LabServer(Server);

impl std::ops::Deref for LabServer {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.0
    }
}

impl std::ops::DerefMut for LabServer {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.0
    }
}

impl LabServer {
    /// Starts the server with its warnings and errors going to its log
    /// ([`Server::stderr_log`]).
    pub fn start() -> Result<LabServer> {
        Server::try_start_with("warn", &[])
            .map(LabServer)
            .map_err(anyhow::Error::msg)
    }

    /// Mints a token offline for `bench@example.com` on `project`.
    pub fn token(&self, role: &str, project: &str) -> Result<String> {
        self.0
            .try_token("bench@example.com", role, &[project])
            .map_err(anyhow::Error::msg)
    }
}

/// A git repository set up for envsync, with its own home.
pub struct LabRepo {
    pub root: PathBuf,
    pub home: PathBuf,
    pub api: String,
    pub token: String,
    pub work_factor: Option<u8>,
}

impl LabRepo {
    pub fn new(dir: &Path, name: &str, server: &LabServer, project: &str) -> Result<LabRepo> {
        let root = dir.join(name);
        let home = dir.join(format!("{name}-home"));
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&home)?;
        std::fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Bench\n\temail = bench@example.com\n",
        )?;
        let repo = LabRepo {
            root,
            home,
            api: server.url.clone(),
            token: server.token("developer", project)?,
            work_factor: Some(10),
        };
        repo.git(&["init", "-q", "-b", "main"])?;
        std::fs::write(
            repo.root.join(".envsync.toml"),
            format!("project = \"{project}\"\ndefault_branch = \"main\"\n"),
        )?;
        std::fs::write(repo.root.join(".gitignore"), "/.env\n")?;
        repo.git(&["add", "."])?;
        repo.git(&["commit", "-q", "-m", "init"])?;
        repo.trust()?;
        Ok(repo)
    }

    /// `git envsync trust --yes`: consent to the settings checked out now.
    pub fn trust(&self) -> Result<()> {
        let out = self.envsync_cmd(&["trust", "--yes"])?.output()?;
        if !out.status.success() {
            bail!("trust: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn env(&self, cmd: &mut Command) {
        // The kit's clean environment: this home, the release binaries first on `PATH`.
        envsync_tests::sandbox(cmd, &self.home);
        cmd.current_dir(&self.root)
            .env("ENVSYNC_API", &self.api)
            .env("ENVSYNC_TOKEN", &self.token)
            .env("ENVSYNC_PASS", PASS)
            .stdin(Stdio::null());
        if let Some(wf) = self.work_factor {
            cmd.env("ENVSYNC_INSECURE_WORK_FACTOR", wf.to_string());
        }
    }

    pub fn git_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        self.env(&mut cmd);
        cmd.args(args);
        cmd
    }

    pub fn envsync_cmd(&self, args: &[&str]) -> Result<Command> {
        let mut cmd = Command::new(bin("git-envsync")?);
        self.env(&mut cmd);
        cmd.args(args);
        Ok(cmd)
    }

    pub fn git(&self, args: &[&str]) -> Result<()> {
        time(&mut self.git_cmd(args)).map(|_| ())
    }

    pub fn envsync(&self, args: &[&str]) -> Result<Duration> {
        time(&mut self.envsync_cmd(args)?)
    }

    pub fn write_env(&self, text: &str) -> Result<()> {
        std::fs::write(self.root.join(".env"), text).context("write .env")
    }
}

/// Puts `repos` in team-key mode with 20 members: one per repository with its own keys
/// (`git envsync keygen` in its home), and made-up ones up to 20, each with an age key and
/// a signing key. Writes and trusts the same `.envsync.toml` in each; returns the members'
/// age public keys.
pub fn team_of_20(project: &str, repos: &[&LabRepo]) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for repo in repos {
        let out = repo.envsync_cmd(&["keygen"])?.output()?;
        if !out.status.success() {
            bail!("keygen: {}", String::from_utf8_lossy(&out.stderr));
        }
        lines.push(String::from_utf8(out.stdout)?.trim().to_owned());
    }
    while lines.len() < 20 {
        let signer = envsync_common::signing::SigningKey::generate()?;
        lines.push(format!(
            "{} {}",
            age::x25519::Identity::generate().to_public(),
            signer.public()
        ));
    }
    let mut keys = Vec::new();
    let mut members = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let (key, signer) = line
            .split_once(' ')
            .with_context(|| format!("keygen printed {line:?}"))?;
        keys.push(key.to_owned());
        members.push(format!(
            "{{ name = \"member{i}@example.com\", key = \"{key}\", signer = \"{signer}\" }}"
        ));
    }
    let config = format!(
        "project = \"{project}\"\ndefault_branch = \"main\"\nrecipients = [{}]\n",
        members.join(", ")
    );
    for repo in repos {
        std::fs::write(repo.root.join(".envsync.toml"), &config)?;
        repo.trust()?;
    }
    Ok(keys)
}

/// The realistic 50-key sample `.env` of the fixtures.
pub fn sample_env() -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/sample.env");
    std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
}

/// Prints one result row: what, figure, baseline, ratio or difference, target.
pub fn row(what: &str, figure: &str, baseline: &str, versus: &str, target: &str) {
    println!("| {what} | {figure} | {baseline} | {versus} | {target} |");
}

pub fn header(title: &str) {
    println!("\n### {title}\n");
    println!("| measurement | median (min–max) | baseline, same run | vs baseline | target |");
    println!("|---|---|---|---|---|");
}
