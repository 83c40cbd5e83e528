//! What users see before any server is involved: help, usage errors, configuration errors.
//! (Living in this package also makes `cargo test --workspace` build the binary that the
//! end-to-end tests in `tests/` run.)

use std::process::{Command, Output};

fn envsync(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_git-envsync"))
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CEILING_DIRECTORIES", dir)
        .args(args)
        .output()
        .expect("run git-envsync")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = envsync(dir.path(), &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in [
        "init", "login", "push", "pull", "diff", "status", "log", "run", "hooks", "watch",
    ] {
        assert!(
            help.contains(&format!("\n  {cmd} ")),
            "{cmd} missing from:\n{help}"
        );
    }
    assert!(
        !help.contains("\n  hook "),
        "the hook entry point is hidden"
    );
    assert!(help.contains("Usage: git envsync"), "{help}");
}

#[test]
fn outside_a_repository_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = envsync(dir.path(), &["push"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: not inside a git repository\nhint: "),
        "{err}"
    );
}

#[test]
fn bad_flags_and_branch_names_exit_2_without_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = envsync(dir.path(), &["push", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let status = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir.path())
        .status()
        .expect("git init");
    assert!(status.success());
    std::fs::write(dir.path().join(".envsync.toml"), "project = \"p\"\n").expect("config");
    for bad in ["a..b", "-x", "a b", "x.lock"] {
        let out = envsync(dir.path(), &["diff", &format!("--branch={bad}")]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = text(&out.stderr);
        assert!(err.starts_with("error: branch"), "{bad}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    std::fs::write(dir.path().join(".envsync.toml"), "project = \"../etc\"\n").expect("config");
    let out = envsync(dir.path(), &["diff"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("project id"),
        "{}",
        text(&out.stderr)
    );
}

/// Token ids are base64url and one in 64 starts with `-`: `token revoke` must take it as
/// the id, not as a flag (it did not, and `tests/tests/team.rs` failed now and then).
#[test]
fn token_ids_starting_with_a_dash_are_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = envsync(dir.path(), &["token", "revoke", "-pQ3xZ_id"]);
    let err = text(&out.stderr);
    assert!(!err.contains("unexpected argument"), "{err}");
    assert!(err.starts_with("error: "), "{err}");
}
