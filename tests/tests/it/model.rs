//! A model-based test of the hooks under everyday git.
//!
//! Random sequences of git operations run on a real repository with the real hooks, the
//! real binary and a real server: edits, checkouts, `switch -c`, commits, amends,
//! rebases (one of them switching branches), bisects, detached HEADs, cherry-picks,
//! stashes, renames (sometimes followed by `git envsync mv`), explicit pulls and pushes,
//! a teammate's pushes, the server going down, hanging, and coming back restored from an
//! empty database (followed by `git envsync restore`). After every step an oracle checks:
//!
//! 1. every version on the server holds only keys written while its branch was checked
//!    out, or inherited by the documented rules (the default branch's as a fallback, a
//!    branch created from HEAD takes the file over), or explicitly pushed to it;
//! 2. no edit is lost: each key a user edit made is on the server, on disk, or in a
//!    backup (unless the server itself lost it when restored empty);
//! 3. the plaintext guard refuses a staged env file, whatever state the step left (a
//!    detached HEAD, a renamed branch, the server down or hanging).
//!
//! Edits are appended keys with unique names, so the key names a server lists tell
//! where each edit went without decrypting anything. Seeded and bounded: the seed and
//! every step are printed on failure; `ENVSYNC_MODEL_SEED` and `ENVSYNC_MODEL_STEPS`
//! replay or lengthen a run.

#![allow(clippy::unwrap_used)]

use envsync_tests::{Dev, Rng, Run, Server};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PROJECT: &str = "model";

/// Keys in env-file text: `KEY=…` lines.
fn keys_of(text: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .filter(|k| !k.is_empty() && !k.starts_with('#'))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    Down,
    Hanging,
}

struct World {
    rng: Rng,
    server: Server,
    me: Dev,
    mate: Dev,
    link: Link,
    silent: String,
    log: Arc<Mutex<Vec<String>>>,
    /// Per branch, the keys its versions may hold.
    allowed: BTreeMap<String, BTreeSet<String>>,
    /// Every key the default branch's versions ever held: any branch may start from it.
    fallback: BTreeSet<String>,
    /// Every key a user edit made.
    made: Vec<String>,
    /// Keys the server lost when it was restored empty.
    lost_by_server: BTreeSet<String>,
    /// Per branch, the newest version the oracle has checked.
    checked: BTreeMap<String, u64>,
    counter: u32,
}

impl World {
    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    fn git(&self, args: &[&str]) -> Run {
        let run = self.me.git_run(args);
        self.note(format!(
            "  git {} -> {}{}",
            args.join(" "),
            run.code,
            run.envsync_lines()
                .iter()
                .map(|l| format!("\n    {l}"))
                .collect::<String>()
        ));
        run
    }

    fn envsync(&self, args: &[&str]) -> Run {
        let run = self.me.envsync(args);
        self.note(format!(
            "  git envsync {} -> {} {}",
            args.join(" "),
            run.code,
            run.stderr.lines().next().unwrap_or_default()
        ));
        run
    }

    fn current(&self) -> Option<String> {
        let run = self.me.git_run(&["symbolic-ref", "-q", "--short", "HEAD"]);
        (run.code == 0).then(|| run.stdout.trim().to_owned())
    }

    fn branches(&self) -> Vec<String> {
        let run = self
            .me
            .git_run(&["for-each-ref", "--format=%(refname:short)", "refs/heads/"]);
        run.stdout.lines().map(str::to_owned).collect()
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.below(items.len())].clone())
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    fn allow(&mut self, branch: &str, keys: impl IntoIterator<Item = String>) {
        self.allowed
            .entry(branch.to_owned())
            .or_default()
            .extend(keys);
    }

    fn set_link(&mut self, link: Link) {
        self.link = link;
        self.me.server_url = match link {
            Link::Hanging => self.silent.clone(),
            _ => self.server.url.clone(),
        };
        self.mate.server_url = self.server.url.clone();
    }

    fn step(&mut self, n: usize) {
        let here = self.current();
        let roll = self.rng.below(100);
        self.note(format!(
            "step {n} on {} ({:?}), roll {roll}",
            here.as_deref().unwrap_or("(detached)"),
            self.link
        ));
        match roll {
            0..=19 => self.edit(here),
            20..=31 => self.checkout(here),
            32..=36 => self.switch_c(here),
            37..=48 => self.commit(),
            49..=50 => {
                self.git(&["commit", "-q", "--amend", "--no-edit", "--allow-empty"]);
            }
            51..=53 => self.rebase(here),
            54..=55 => self.bisect(),
            56..=57 => {
                self.git(&["checkout", "-q", "--detach"]);
            }
            58..=59 => self.cherry_pick(here),
            60..=61 => self.stash(),
            62..=63 => self.rename(here),
            64..=67 => self.mate_push(),
            68..=70 => self.pull(here),
            71..=73 => self.push(here),
            74..=76 => self.commit(),
            77..=79 => match self.link {
                Link::Up => {
                    self.server.kill();
                    self.set_link(Link::Down);
                    self.note("  server down".into());
                }
                _ => self.back_up(),
            },
            80..=81 => match self.link {
                Link::Up => {
                    self.set_link(Link::Hanging);
                    self.note("  server hanging".into());
                }
                _ => self.back_up(),
            },
            82 => self.restored_empty(),
            _ => {
                if self.link != Link::Up {
                    self.back_up();
                } else {
                    self.commit();
                }
            }
        }
    }

    fn edit(&mut self, here: Option<String>) {
        // Edits are made on a branch (one made on a detached HEAD has no branch to
        // belong to, and the model would have nothing to check it against).
        let Some(branch) = here else { return };
        let key = self.fresh("K");
        let mut text = self.me.read_env().unwrap_or_default();
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(format!("{key}=on-{branch}\n").as_bytes());
        self.me.write_env(&text);
        self.note(format!("  edit: {key}"));
        self.made.push(key.clone());
        self.allow(&branch, [key]);
    }

    fn checkout(&mut self, here: Option<String>) {
        let others: Vec<String> = self
            .branches()
            .into_iter()
            .filter(|b| Some(b) != here.as_ref())
            .collect();
        if let Some(b) = self.pick(&others) {
            self.git(&["checkout", "-q", &b]);
        }
    }

    fn switch_c(&mut self, here: Option<String>) {
        let Some(here) = here else { return };
        let name = self.fresh("b");
        // A branch created from HEAD takes the file over only when it holds the env of
        // the branch just left, as made there: what it inherits is what that branch may
        // hold (its own keys, the default branch's), never another branch's edits kept
        // in the file.
        let mut may = self.allowed.get(&here).cloned().unwrap_or_default();
        may.extend(self.fallback.iter().cloned());
        let inherited: Vec<String> = keys_of(&self.me.read_env().unwrap_or_default())
            .into_iter()
            .filter(|k| may.contains(k))
            .collect();
        self.allow(&name, inherited);
        self.git(&["switch", "-q", "-c", &name]);
    }

    fn commit(&mut self) {
        let file = self.fresh("f");
        fs::write(self.me.repo.join(&file), &file).unwrap();
        self.git(&["add", &file]);
        self.git(&["commit", "-q", "-m", &file]);
    }

    fn rebase(&mut self, here: Option<String>) {
        let others: Vec<String> = self
            .branches()
            .into_iter()
            .filter(|b| b != "main")
            .collect();
        let run = if self.rng.below(2) == 0 {
            // A rebase that switches branches.
            let Some(target) = self.pick(&others) else {
                return;
            };
            self.git(&["rebase", "-q", "main", &target])
        } else {
            if here.as_deref().is_none_or(|h| h == "main") {
                return;
            }
            self.git(&["rebase", "-q", "main"])
        };
        if run.code != 0 {
            self.git(&["rebase", "--abort"]);
        }
    }

    fn bisect(&mut self) {
        let root = self.me.git_run(&["rev-list", "--max-parents=0", "HEAD"]);
        let root = root.stdout.lines().last().unwrap_or_default().to_owned();
        if root.is_empty() {
            return;
        }
        self.git(&["bisect", "start"]);
        self.git(&["bisect", "bad"]);
        self.git(&["bisect", "good", &root]);
        for _ in 0..2 {
            let verdict = if self.rng.below(2) == 0 {
                "good"
            } else {
                "bad"
            };
            self.git(&["bisect", verdict]);
        }
        self.git(&["bisect", "reset"]);
    }

    fn cherry_pick(&mut self, here: Option<String>) {
        let others: Vec<String> = self
            .branches()
            .into_iter()
            .filter(|b| Some(b) != here.as_ref())
            .collect();
        let Some(other) = self.pick(&others) else {
            return;
        };
        if self.git(&["cherry-pick", &other]).code != 0 {
            self.git(&["cherry-pick", "--abort"]);
        }
    }

    fn stash(&mut self) {
        let tracked = self.me.repo.join(".gitignore");
        let mut text = fs::read_to_string(&tracked).unwrap_or_default();
        text.push_str("# stashed change\n");
        fs::write(&tracked, text).unwrap();
        self.git(&["stash", "-q"]);
        self.git(&["stash", "pop", "-q"]);
        self.git(&["checkout", "-q", "--", ".gitignore"]);
    }

    fn rename(&mut self, here: Option<String>) {
        let Some(old) = here.filter(|h| h != "main") else {
            return;
        };
        let new = self.fresh("r");
        if self.git(&["branch", "-m", &old, &new]).code != 0 {
            return;
        }
        // The same branch under a new name: what was written on it is its own.
        let own = self.allowed.get(&old).cloned().unwrap_or_default();
        self.allow(&new, own);
        if self.rng.below(2) == 0 && self.link == Link::Up {
            // The hint's way: copy the old branch's env to the new name, explicitly.
            let before = self.server_keys(&old);
            if self.envsync(&["mv", &old, &new]).code == 0 {
                self.allow(&new, before);
            }
        }
    }

    fn mate_push(&mut self) {
        if self.link == Link::Down {
            return;
        }
        let branches = self.branches();
        let Some(branch) = self.pick(&branches) else {
            return;
        };
        let key = self.fresh("M");
        self.mate.write_env(format!("BASE=1\n{key}=mate\n"));
        let run = self.mate.envsync(&["push", "--branch", &branch, "--force"]);
        self.note(format!("  mate pushes {key} to {branch} -> {}", run.code));
        self.allow(&branch, ["BASE".to_owned(), key]);
    }

    fn pull(&mut self, here: Option<String>) {
        if here.is_none() {
            return;
        }
        let args: &[&str] = if self.rng.below(3) == 0 {
            &["pull", "--force"]
        } else {
            &["pull"]
        };
        self.envsync(args);
    }

    fn push(&mut self, here: Option<String>) {
        let Some(branch) = here else { return };
        let keys = keys_of(&self.me.read_env().unwrap_or_default());
        // An explicit push publishes whatever the file holds: it is the user's call.
        if self.envsync(&["push"]).code == 0 {
            self.allow(&branch, keys);
        }
    }

    /// Oracle 3: a commit of the staged env file is refused (the file is unstaged again
    /// after; git runs nothing but the pre-commit hook, which needs no server).
    fn guard(&mut self) {
        if self.me.read_env().is_none() {
            return;
        }
        self.me.git(&["add", "-f", ".env"]);
        let run = self.me.git_run(&["commit", "-q", "-m", "plaintext"]);
        self.me.git(&["rm", "-q", "--cached", ".env"]);
        if run.code != 1 || !run.stderr.contains("is staged") {
            self.note(format!("  guard: git commit -> {}", run.code));
        }
        assert_eq!(
            run.code, 1,
            "oracle 3: a staged env file was committed: {run:#?}"
        );
        assert!(run.stderr.contains("is staged"), "{run:#?}");
    }

    fn back_up(&mut self) {
        if self.link == Link::Down {
            self.server.restart();
        }
        self.set_link(Link::Up);
        self.note(format!("  server up at {}", self.server.url));
    }

    fn restored_empty(&mut self) {
        if self.link != Link::Up {
            return;
        }
        // Whatever only the server held is the server's loss, not the client's.
        let on_server = self.all_server_keys();
        self.lost_by_server.extend(on_server);
        self.server.kill();
        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{suffix}", self.server.db.display()));
        }
        self.server.restart();
        self.set_link(Link::Up);
        self.checked.clear();
        self.note(format!("  server restored empty at {}", self.server.url));
        if self.rng.below(2) == 0 {
            self.envsync(&["restore", "--all"]);
        }
    }

    // The oracle reads the server directly, whatever the clone's link to it.

    fn server_branches(&self) -> Vec<String> {
        self.server.branches(&self.me.token, PROJECT)
    }

    /// Every version of `branch`, oldest first: (version, keys).
    fn server_versions(&self, branch: &str) -> Vec<(u64, BTreeSet<String>)> {
        let mut versions: Vec<(u64, BTreeSet<String>)> = self
            .server
            .versions(&self.me.token, PROJECT, branch)
            .into_iter()
            .map(|(version, keys)| (version, keys.into_iter().collect()))
            .collect();
        versions.sort_by_key(|(v, _)| *v);
        versions
    }

    fn server_keys(&self, branch: &str) -> BTreeSet<String> {
        self.server_versions(branch)
            .into_iter()
            .flat_map(|(_, k)| k)
            .collect()
    }

    fn all_server_keys(&self) -> BTreeSet<String> {
        self.server_branches()
            .iter()
            .flat_map(|b| self.server_keys(b))
            .collect()
    }

    fn oracle(&mut self) {
        // 3. The plaintext guard, online or not.
        self.guard();
        if self.link == Link::Down {
            return;
        }
        // 1. Every new version holds only keys its branch may hold.
        for branch in self.server_branches() {
            let done = self.checked.get(&branch).copied().unwrap_or(0);
            for (version, keys) in self.server_versions(&branch) {
                if version <= done {
                    continue;
                }
                let allowed = self.allowed.get(&branch).cloned().unwrap_or_default();
                let foreign: Vec<&String> = keys
                    .iter()
                    .filter(|k| !allowed.contains(*k) && !self.fallback.contains(*k))
                    .collect();
                assert!(
                    foreign.is_empty(),
                    "oracle 1: {branch} version {version} holds {foreign:?}, written on another branch"
                );
                self.allow(&branch, keys.iter().cloned());
                if branch == "main" {
                    self.fallback.extend(keys);
                }
                self.checked.insert(branch.clone(), version);
            }
        }
        // 2. No edit is lost.
        let mut kept = self.all_server_keys();
        kept.extend(keys_of(&self.me.read_env().unwrap_or_default()));
        for entry in fs::read_dir(&self.me.repo).unwrap().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".env.backup-")
            {
                kept.extend(keys_of(&fs::read(entry.path()).unwrap()));
            }
        }
        let lost: Vec<&String> = self
            .made
            .iter()
            .filter(|k| !kept.contains(*k) && !self.lost_by_server.contains(*k))
            .collect();
        assert!(lost.is_empty(), "oracle 2: edits lost: {lost:?}");
    }
}

#[test]
fn hooks_keep_each_branchs_env_under_random_git_histories() {
    let seed: u64 = std::env::var("ENVSYNC_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6e76_5f6d_6f64_656c);
    let steps: usize = std::env::var("ENVSYNC_MODEL_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(240);
    let log = Arc::new(Mutex::new(Vec::new()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let server = Server::start();
        let me = Dev::new(&server, PROJECT);
        me.envsync(&["hooks", "install"]).ok();
        me.write_env("BASE=1\n");
        me.envsync(&["push"]).ok();
        let mate = Dev::clone_of(&me, &server, "mate@example.com");
        // A server that accepts connections and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_url = format!("http://{}", silent.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in silent.incoming().take(512) {
                held.push(conn);
            }
            std::thread::sleep(Duration::from_secs(600));
        });
        let mut world = World {
            rng: Rng(seed),
            server,
            me,
            mate,
            link: Link::Up,
            silent: silent_url,
            log: log.clone(),
            allowed: BTreeMap::from([("main".to_owned(), BTreeSet::from(["BASE".to_owned()]))]),
            fallback: BTreeSet::from(["BASE".to_owned()]),
            made: Vec::new(),
            lost_by_server: BTreeSet::new(),
            checked: BTreeMap::new(),
            counter: 0,
        };
        for n in 0..steps {
            world.step(n);
            world.oracle();
        }
        // Back online, the oracle sees everything the clone did offline.
        world.back_up();
        world.commit();
        world.oracle();
        world.note(format!(
            "done: {} edits, {} branches",
            world.made.len(),
            world.branches().len()
        ));
    }));
    if let Err(panic) = result {
        let log = log.lock().unwrap();
        eprintln!(
            "model test failed with ENVSYNC_MODEL_SEED={seed} (steps {steps}); the run:\n{}",
            log.join("\n")
        );
        std::panic::resume_unwind(panic);
    }
}
