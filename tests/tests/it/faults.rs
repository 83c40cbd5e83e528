//! Faults on the client: `kill -9` at random points of a pull, a full disk
//! (`RLIMIT_FSIZE`), a symlinked env file, and the order of the durable-write syscalls.
//! docs/testing.md G1, G4–G8.

#![allow(clippy::unwrap_used)]

use envsync_tests::{Dev, Rng, Run, Server};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

/// A distinct env file per step, large enough that writing it is not instantaneous.
fn content(step: usize, size: usize) -> Vec<u8> {
    let fill = char::from(b'a' + (step % 26) as u8);
    format!("STEP={step}\nBIG={}\n", fill.to_string().repeat(size)).into_bytes()
}

/// Runs `git envsync ARGS` through `sh -c '<prelude>; exec git-envsync ARGS'`.
fn envsync_sh(dev: &Dev, prelude: &str, args: &[&str]) -> Run {
    let exe = envsync_tests::binary("git-envsync");
    let base = dev.envsync_cmd(&[]);
    let mut cmd = Command::new("sh");
    cmd.env_clear()
        .envs(base.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .current_dir(&dev.repo)
        .stdin(Stdio::null())
        .arg("-c")
        .arg(format!("{prelude}; exec \"$0\" \"$@\""))
        .arg(&exe)
        .args(args);
    Run::from(cmd.output().unwrap())
}

#[test]
fn sigkill_during_pull_leaves_the_old_or_the_new_bytes() {
    const ITERATIONS: usize = 120;
    const SIZE: usize = 64 * 1024;
    let server = Server::start();
    let alice = Dev::new(&server, "kill");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    alice.write_env(content(0, SIZE));
    alice.envsync(&["push"]).ok();
    bob.envsync(&["pull"]).ok();

    // How long a whole pull takes here: half the kills are spread from 0 to 1.25 times
    // that, half over 0.6..1.0 of it, where the file is written.
    alice.write_env(content(1, SIZE));
    alice.envsync(&["push"]).ok();
    let start = Instant::now();
    bob.envsync(&["pull"]).ok();
    let full = start.elapsed();

    let mut rng = Rng(0x0e5e_0c5e_ed00_0004);
    let (mut killed_old, mut killed_new, mut finished) = (0, 0, 0);
    for step in 2..ITERATIONS + 2 {
        let (old, new) = (content(step - 1, SIZE), content(step, SIZE));
        alice.write_env(&new);
        alice.envsync(&["push"]).ok();

        let delay = match step % 2 {
            0 => full.mul_f64(rng.unit() * 1.25),
            _ => full.mul_f64(0.6 + rng.unit() * 0.4),
        };
        let mut child = bob
            .envsync_cmd(&["pull"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let done = child.try_wait().unwrap().is_some();
        child.kill().unwrap_or(()); // SIGKILL; an error only means it already exited
        child.wait().unwrap();

        let now = bob.read_env().unwrap();
        assert!(
            now == old || now == new,
            "step {step} (killed after {delay:?}): the env file is neither the old nor the new bytes ({} bytes)",
            now.len()
        );
        assert_eq!(mode(&bob.env_path()), 0o600, "step {step}");
        match (done, now == new) {
            (true, _) => finished += 1,
            (false, false) => killed_old += 1,
            (false, true) => killed_new += 1,
        }

        // The next command completes the pull and sweeps whatever the kill left.
        bob.envsync(&["pull"]).clean().ok();
        assert_eq!(bob.read_env().unwrap(), new, "step {step}");
        assert_eq!(
            bob.temp_files(),
            Vec::<std::path::PathBuf>::new(),
            "step {step}"
        );
    }
    eprintln!(
        "{ITERATIONS} kills over 0..{:?}: {killed_old} left the old file, {killed_new} the new one, {finished} pulls had finished",
        full.mul_f64(1.25)
    );
    assert!(killed_old + killed_new > 0, "no kill landed during a pull");
}

/// The unit of `ulimit -f` in this `sh` (512 bytes in dash and POSIX mode, 1024 in bash).
fn ulimit_block() -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    let _ = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1; head -c 4096 /dev/zero > \"$0\"")
        .arg(&probe)
        .stderr(Stdio::null())
        .status();
    fs::metadata(&probe).unwrap().len()
}

#[test]
fn full_disk_keeps_the_old_file_and_fails_cleanly() {
    const SIZE: usize = 256 * 1024;
    let server = Server::start();
    let alice = Dev::new(&server, "full");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    alice.write_env("A=old\n");
    alice.envsync(&["push"]).ok();
    bob.envsync(&["pull"]).ok();
    let new = content(1, SIZE);
    alice.write_env(&new);
    alice.envsync(&["push"]).ok();

    // Files of at most 64 KiB: the new env file cannot be written.
    let blocks = 64 * 1024 / ulimit_block();
    let out = envsync_sh(&bob, &format!("ulimit -f {blocks}"), &["pull"])
        .refused()
        .code(1);
    assert!(out.stderr.contains("File too large"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), b"A=old\n");
    assert_eq!(mode(&bob.env_path()), 0o600);
    assert_eq!(bob.temp_files(), Vec::<std::path::PathBuf>::new());

    // Room for the env file but not for the sealed local copy (an optimisation): the
    // pull succeeds.
    let blocks = (SIZE as u64 + 32 * 1024) / ulimit_block();
    let out = envsync_sh(&bob, &format!("ulimit -f {blocks}"), &["pull"])
        .clean()
        .ok();
    assert_eq!(bob.read_env().unwrap(), new, "{out:#?}");
    assert_eq!(bob.temp_files(), Vec::<std::path::PathBuf>::new());
    bob.envsync(&["status"]).clean().ok();
}

/// A pull that merges and cannot write the merged file (it is over the file size limit,
/// the file before it is not): the state must not say the server's version was synced,
/// or the next plain push would replace that version with the unmerged edits. It merges
/// again instead, and the teammate's key survives.
#[test]
fn a_merge_whose_write_fails_is_merged_again_by_the_next_push() {
    let server = Server::start();
    let alice = Dev::new(&server, "mergefull");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    let pad = format!("PAD={}\n", "p".repeat(6 * 1024));
    alice.write_env(format!("{pad}SHARED=1\n"));
    alice.envsync(&["push"]).clean().ok();
    bob.envsync(&["pull"]).clean().ok();
    // alice adds a large key; bob, not pulled, adds one of his own.
    alice.write_env(format!("{pad}SHARED=1\nALICE={}\n", "a".repeat(3 * 1024)));
    alice.envsync(&["push"]).clean().ok();
    let ours = format!("{pad}SHARED=1\nBOB=1\n");
    bob.write_env(&ours);

    // Files of at most 8 KiB: bob's file (and its backup) fit, the merge does not.
    let blocks = 8 * 1024 / ulimit_block();
    let out = envsync_sh(&bob, &format!("ulimit -f {blocks}"), &["pull"])
        .refused()
        .code(1);
    assert!(out.stderr.contains("File too large"), "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), ours.as_bytes());
    assert_eq!(bob.temp_files(), Vec::<std::path::PathBuf>::new());

    let out = bob.envsync(&["push"]).clean().ok();
    assert!(out.stderr.contains("Merged main version 2"), "{out:#?}");
    assert_eq!(
        server.latest(&bob.token, "mergefull", "main"),
        Some((
            3,
            vec!["PAD".into(), "SHARED".into(), "ALICE".into(), "BOB".into()]
        )),
        "{out:#?}"
    );
}

#[test]
fn symlinked_env_file_is_never_written_through() {
    let server = Server::start();
    let alice = Dev::new(&server, "link");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    bob.envsync(&["pull"]).ok();
    alice.write_env("A=2\n");
    alice.envsync(&["push"]).ok();

    // The link's target holds edits of its own: with --force, pull would save a backup
    // and then write; it must refuse before either.
    let outside = bob.home.join("elsewhere.env");
    fs::write(&outside, "LOCAL=1\n").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_file(bob.env_path()).unwrap();
    std::os::unix::fs::symlink(&outside, bob.env_path()).unwrap();
    for args in [&["pull"][..], &["pull", "--force"][..], &["push"][..]] {
        let out = bob.envsync(args).refused().code(2);
        assert!(out.stderr.contains("symbolic link"), "{out:#?}");
        assert_eq!(fs::read(&outside).unwrap(), b"LOCAL=1\n");
        assert_eq!(mode(&outside), 0o644, "the link's target keeps its mode");
        assert!(fs::symlink_metadata(bob.env_path()).unwrap().is_symlink());
        let backups = fs::read_dir(&bob.repo)
            .unwrap()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.file_name().to_string_lossy().contains("backup")
            })
            .count();
        assert_eq!(backups, 0, "no backup before a refusal: {out:#?}");
    }

    // A temp-file name planted as a symlink is removed, never written through.
    fs::remove_file(bob.env_path()).unwrap();
    fs::write(bob.env_path(), "A=1\n").unwrap();
    let trap = bob.home.join("trap");
    fs::write(&trap, "untouched").unwrap();
    for pid in ["1", "99999"] {
        std::os::unix::fs::symlink(&trap, bob.repo.join(format!(".env.envsync.tmp-{pid}")))
            .unwrap();
    }
    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"A=2\n");
    assert_eq!(fs::read(&trap).unwrap(), b"untouched");
    assert_eq!(bob.temp_files(), Vec::<std::path::PathBuf>::new());
}

#[test]
fn atomic_write_syscalls_are_fsync_rename_fsync_dir() {
    let server = Server::start();
    let alice = Dev::new(&server, "order");
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();

    let trace = bob.home.join("trace.txt");
    let exe = envsync_tests::binary("git-envsync");
    let base = bob.envsync_cmd(&[]);
    let out = Command::new("strace")
        .env_clear()
        .envs(base.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .current_dir(&bob.repo)
        .stdin(Stdio::null())
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=openat,fsync,fdatasync,rename,renameat,renameat2,close",
        ])
        .arg("-o")
        .arg(&trace)
        .arg(&exe)
        .arg("pull")
        .output()
        .expect("strace is installed (Debian package strace)");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(bob.read_env().unwrap(), b"A=1\n");

    let text = fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let repo = bob.repo.to_str().unwrap();
    // The env file is written relative to its directory's descriptor (so no link on the
    // path is ever followed): `openat(…, "<repo>", O_DIRECTORY…) = D`, then
    // `openat(D, ".env.envsync.tmp-<pid>", O_CREAT…) = T`, `fsync(T)`,
    // `renameat(D, ".env.envsync.tmp-<pid>", D, ".env")`, `fsync(D)`.
    let fd_of = |line: &str| line.rsplit("= ").next().unwrap().trim().parse::<i32>().ok();
    let tmp_open = lines
        .iter()
        .position(|l| {
            l.contains("openat(") && l.contains(".env.envsync.tmp-") && l.contains("O_CREAT")
        })
        .unwrap_or_else(|| panic!("no temp file opened:\n{text}"));
    let dir_fd: i32 = lines[tmp_open]
        .split("openat(")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|fd| fd.trim().parse().ok())
        .unwrap_or_else(|| panic!("the temp file was not opened relative to a directory:\n{text}"));
    let dir_open = (0..tmp_open)
        .rev()
        .find(|&i| {
            (lines[i].contains(&format!("\"{repo}\""))
                || lines[i].contains(&format!("\"{repo}/\"")))
                && lines[i].contains("O_DIRECTORY")
                && fd_of(lines[i]) == Some(dir_fd)
        })
        .unwrap_or_else(|| panic!("fd {dir_fd} is not the work tree's directory:\n{text}"));
    let tmp_fd = fd_of(lines[tmp_open]).unwrap();
    let fsync_tmp = (tmp_open..lines.len())
        .find(|&i| lines[i].contains(&format!("fsync({tmp_fd})")))
        .unwrap_or_else(|| panic!("the temp file was not fsynced:\n{text}"));
    let rename = lines
        .iter()
        .position(|l| {
            l.contains("rename")
                && l.contains(&format!("({dir_fd}, \".env.envsync.tmp-"))
                && l.contains(&format!("{dir_fd}, \".env\""))
        })
        .unwrap_or_else(|| panic!("no rename over the env file:\n{text}"));
    let fsync_dir = (rename..lines.len())
        .find(|&i| lines[i].contains(&format!("fsync({dir_fd})")))
        .unwrap_or_else(|| panic!("the directory was not fsynced:\n{text}"));
    assert!(
        dir_open < tmp_open && tmp_open < fsync_tmp && fsync_tmp < rename && rename < fsync_dir,
        "order: dir {dir_open}, open {tmp_open}, fsync {fsync_tmp}, rename {rename}, fsync dir {fsync_dir}\n{text}"
    );
}

#[test]
fn key_files_and_state_are_private_under_umask_000() {
    let server = Server::start();
    let alice = Dev::new(&server, "umask");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    envsync_sh(&bob, "umask 000", &["keygen"]).clean().ok();
    envsync_sh(&bob, "umask 000", &["pull"]).clean().ok();
    let config = bob.home.join(".config/envsync");
    assert_eq!(mode(&config), 0o700);
    assert_eq!(mode(&config.join("identity.txt")), 0o600);
    assert_eq!(mode(&config.join("local.key")), 0o600);
    assert_eq!(mode(&bob.env_path()), 0o600);
    let state = bob.repo.join(".git/envsync");
    assert_eq!(mode(&state), 0o700);
    let branches: Vec<_> = fs::read_dir(state.join("umask/branches"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    // The loop below checks nothing when pull left no branch state.
    assert!(
        !branches.is_empty(),
        "no branch state under {}",
        state.display()
    );
    for path in branches {
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}
