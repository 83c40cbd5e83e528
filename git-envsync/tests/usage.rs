//! What users see before any server is involved: help, usage errors, configuration errors.
//! (Living in this package also makes `cargo test --workspace` build the binary that the
//! end-to-end tests in `tests/` run.)

use std::path::Path;
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
/// the id, not as a flag (it did not, and `tests/tests/it/team.rs` failed now and then).
#[test]
fn token_ids_starting_with_a_dash_are_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = envsync(dir.path(), &["token", "revoke", "-pQ3xZ_id"]);
    let err = text(&out.stderr);
    assert!(!err.contains("unexpected argument"), "{err}");
    assert!(err.starts_with("error: "), "{err}");
}

/// The subcommand names under `Commands:` in a help text (clap's own `help` left out).
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command path that `--help` shows, found by walking the help texts themselves:
/// `[[], ["push"], ["hooks"], ["hooks", "install"], …]`.
fn visible_command_paths(dir: &std::path::Path) -> Vec<Vec<String>> {
    let mut paths = vec![Vec::new()];
    let mut i = 0;
    while i < paths.len() {
        let mut args: Vec<&str> = paths[i].iter().map(String::as_str).collect();
        args.push("--help");
        let out = envsync(dir, &args);
        assert!(out.status.success(), "{args:?}");
        for name in listed_commands(&text(&out.stdout)) {
            let mut path = paths[i].clone();
            path.push(name);
            paths.push(path);
        }
        i += 1;
    }
    paths
}

/// `man` renders the page with groff's warnings on, and says nothing on stderr.
fn assert_renders(page: &std::path::Path) {
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MANWIDTH", "80")
        // As on a terminal: help texts may hold UTF-8 (…), which an ASCII locale cannot draw.
        .env("LC_ALL", "C.UTF-8")
        .env("MANPAGER", "cat")
        .output()
        .expect("run man");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{}: {err}", page.display());
    assert!(err.is_empty(), "{}: {err}", page.display());
    assert!(text(&out.stdout).contains("NAME"), "{}", page.display());
}

/// `man` is one of the tools `test.sh` installs; without it the pages would go unrendered.
fn require_man() {
    let man = Command::new("man").arg("--version").output();
    assert!(
        man.is_ok_and(|out| out.status.success()),
        "`man` is not on this machine: ./test.sh installs it (Debian's man-db)"
    );
}

#[test]
fn manual_pages_cover_every_visible_command_and_render() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pages = dir.path().join("man1");
    let out = envsync(
        dir.path(),
        &["man", "--dir", pages.to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut expected: Vec<String> = visible_command_paths(dir.path())
        .iter()
        .map(|path| {
            let mut name = String::from("git-envsync");
            for part in path {
                name.push('-');
                name.push_str(part);
            }
            name + ".1"
        })
        .collect();
    expected.sort();
    let mut written: Vec<String> = std::fs::read_dir(&pages)
        .expect("the page directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, expected);
    // What `git envsync --help` and `git help envsync` open; hidden commands get none.
    for page in [
        "git-envsync.1",
        "git-envsync-push.1",
        "git-envsync-hooks-install.1",
    ] {
        assert!(written.iter().any(|w| w == page), "{page}");
    }
    assert!(!written.iter().any(|w| w.starts_with("git-envsync-hook.")));
    assert!(!written.iter().any(|w| w.starts_with("git-envsync-man.")));
    // stdout lists the files written, one a line.
    assert_eq!(text(&out.stdout).lines().count(), written.len());

    let push = std::fs::read_to_string(pages.join("git-envsync-push.1")).expect("push page");
    assert!(push.contains(".TH git-envsync-push 1 "), "{push}");
    assert!(push.contains("\\-\\-force"), "{push}");
    require_man();
    for page in &written {
        assert_renders(&pages.join(page));
    }
}

#[test]
fn completion_scripts_for_each_shell_cover_the_visible_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let commands: Vec<String> = visible_command_paths(dir.path())
        .into_iter()
        .filter(|path| path.len() == 1)
        .map(|path| path[0].clone())
        .collect();
    assert!(commands.iter().any(|c| c == "push"), "{commands:?}");
    for (shell, marker) in [
        ("bash", "complete -F __git_envsync_complete"),
        ("zsh", "#compdef git-envsync"),
        ("fish", "complete -c git-envsync"),
    ] {
        let out = envsync(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}");
        for command in &commands {
            assert!(script.contains(command.as_str()), "{shell}: {command}");
        }
        // Hidden commands are not offered (clap_complete alone would offer them).
        for hidden in [
            "Entry points for the installed git hooks",
            "Write the manual pages",
        ] {
            assert!(!script.contains(hidden), "{shell} offers a hidden command");
        }
        // The shell itself parses the script (bash, zsh and fish come from ./test.sh).
        let file = dir.path().join(format!("script.{shell}"));
        std::fs::write(&file, &script).expect("script");
        let check = if shell == "fish" {
            "--no-execute"
        } else {
            "-n"
        };
        match Command::new(shell).arg(check).arg(&file).output() {
            Ok(out) => assert!(out.status.success(), "{shell}: {}", text(&out.stderr)),
            Err(e) => panic!("{shell} cannot run ({e}): ./test.sh installs it"),
        }
    }
    let out = envsync(dir.path(), &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Runs `lines` in a real, non-interactive bash inside `repo`, with the completion script
/// where bash-completion's loader would find it.
fn bash(repo: &std::path::Path, completions: &std::path::Path, lines: &str) -> String {
    let script = format!(
        r#"
_completion_loader() {{ [ -f "{dir}/$1" ] && . "{dir}/$1"; }}
# Completes $1 as if TAB were pressed at its end, with `run` the completion function.
complete_at_end() {{
    COMP_LINE=$1 COMP_POINT=${{#1}}
    read -ra COMP_WORDS <<<"$1"
    case "$1" in *" ") COMP_WORDS+=("") ;; esac
    COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
    COMPREPLY=()
    $2
    echo "$1|${{COMPREPLY[*]}}"
}}
{lines}
"#,
        dir = completions.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .current_dir(repo)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CEILING_DIRECTORIES", repo.parent().unwrap_or(repo))
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The candidates bash offered for `line`, from the `LINE|CANDIDATES` output of `bash`.
fn offered<'a>(output: &'a str, line: &str) -> Vec<&'a str> {
    let found = output
        .lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix('|'));
    let Some(found) = found else {
        panic!("no completion for {line:?} in:\n{output}")
    };
    let mut words: Vec<&str> = found.split_whitespace().collect();
    words.sort_unstable();
    words
}

#[test]
fn bash_completes_commands_flags_and_branches_for_git_envsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    let completions = dir.path().join("completions");
    std::fs::create_dir_all(&completions).expect("mkdir");
    let out = envsync(dir.path(), &["completions", "bash"]);
    assert!(out.status.success());
    // The name bash-completion's loader looks for when git asks it for `git-envsync`.
    std::fs::write(completions.join("git-envsync"), &out.stdout).expect("script");
    git_repo_with_branches(dir.path(), &repo);

    // `git-envsync …` on its own, without git's completion: branches from for-each-ref.
    let direct = bash(
        &repo,
        &completions,
        r#"_completion_loader git-envsync
complete_at_end "git-envsync pu" __git_envsync_complete
complete_at_end "git-envsync pull --" __git_envsync_complete
complete_at_end "git-envsync --branch f" __git_envsync_complete
complete_at_end "git-envsync diff --against " __git_envsync_complete
complete_at_end "git-envsync " __git_envsync_complete"#,
    );
    assert_eq!(offered(&direct, "git-envsync pu"), ["pull", "push"]);
    let flags = offered(&direct, "git-envsync pull --");
    for flag in ["--force", "--branch", "--json", "--server"] {
        assert!(flags.contains(&flag), "{flag}: {flags:?}");
    }
    assert_eq!(
        offered(&direct, "git-envsync --branch f"),
        ["feature/login", "fix"]
    );
    assert_eq!(
        offered(&direct, "git-envsync diff --against "),
        ["feature/login", "fix", "main"]
    );
    let top = offered(&direct, "git-envsync ");
    assert!(top.contains(&"completions"), "{top:?}");
    assert!(!top.contains(&"hook") && !top.contains(&"man"), "{top:?}");

    // `git envsync …` through git's own completion, which loads ours by name.
    let git_completion = std::path::Path::new("/usr/share/bash-completion/completions/git");
    assert!(
        git_completion.exists(),
        "git's bash completion is not at {}: Debian's git package ships it (./test.sh installs git)",
        git_completion.display()
    );
    let through_git = bash(
        &repo,
        &completions,
        &format!(
            r#". {git}
run() {{ __git_func_wrap __git_main; }}
complete_at_end "git envsync pu" run
complete_at_end "git envsync hooks " run
complete_at_end "git envsync pull --branch fe" run
complete_at_end "git -C . envsync diff --against ma" run
complete_at_end "git envsync log --" run"#,
            git = git_completion.display()
        ),
    );
    assert_eq!(offered(&through_git, "git envsync pu"), ["pull", "push"]);
    let hooks = offered(&through_git, "git envsync hooks ");
    assert!(
        hooks.contains(&"install") && hooks.contains(&"uninstall"),
        "{hooks:?}"
    );
    assert_eq!(
        offered(&through_git, "git envsync pull --branch fe"),
        ["feature/login"]
    );
    assert_eq!(
        offered(&through_git, "git -C . envsync diff --against ma"),
        ["main"]
    );
    assert!(offered(&through_git, "git envsync log --").contains(&"--json"));
}

/// zsh and fish complete branch names, from `git for-each-ref`, after each flag that takes
/// one (`--branch`, `--against`, `--from`, `--default-branch`) and for `mv OLD NEW`. The
/// scripts say so; fish completes for real, and zsh runs the script's branch function
/// (which zsh's completion system calls from `_arguments`), which lists the repository's
/// branches. Both shells come from `./test.sh`.
#[test]
fn zsh_and_fish_complete_branch_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    git_repo_with_branches(dir.path(), &repo);
    let script = |shell: &str| {
        let out = envsync(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let file = dir.path().join(format!("script.{shell}"));
        std::fs::write(&file, &out.stdout).expect("script");
        (text(&out.stdout), file)
    };
    let shell = |program: &str, args: &[&str]| -> Option<String> {
        let out = Command::new(program)
            .args(args)
            .current_dir(&repo)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &repo)
            .env("XDG_CONFIG_HOME", repo.join(".config"))
            .env("XDG_DATA_HOME", repo.join(".data"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .ok()?;
        assert!(out.status.success(), "{program}: {}", text(&out.stderr));
        Some(text(&out.stdout))
    };

    let (zsh, zsh_file) = script("zsh");
    for spec in [
        "'--branch=[Work on this branch instead of the checked-out one]:NAME:__git_envsync_branches'",
        ":BRANCH:__git_envsync_branches'",
        "':old -- The branch whose env to copy:__git_envsync_branches'",
        "':new -- The branch to copy it to:__git_envsync_branches'",
    ] {
        assert!(zsh.contains(spec), "zsh: {spec}");
    }
    for flag in ["--against", "--from", "--default-branch"] {
        assert!(
            zsh.lines().any(|l| l.starts_with(&format!("'{flag}=["))
                && l.ends_with(":__git_envsync_branches' \\")),
            "zsh: {flag}"
        );
    }
    assert!(zsh.contains("git for-each-ref --format='%(refname:strip=2)' refs/heads"));
    // compadd and _wanted exist only inside a completion widget: stand-ins print what
    // the function offers.
    let listed = shell(
        "zsh",
        &[
            "-f",
            "-c",
            &format!(
                "compdef() {{ :; }}; _wanted() {{ shift 3; \"$@\"; }}
                 compadd() {{ [[ $1 == -a ]] && print -l -- ${{(P)2}}; }}
                 source {}; __git_envsync_branches",
                zsh_file.display()
            ),
        ],
    );
    match listed {
        Some(listed) => assert_eq!(
            listed.lines().collect::<Vec<_>>(),
            ["feature/login", "fix", "main"]
        ),
        None => panic!("zsh is not on this machine: ./test.sh installs it"),
    }

    let (fish, fish_file) = script("fish");
    assert!(fish.contains(
        "complete -c git-envsync -n \"__fish_git_envsync_using_subcommand pull\" -l branch -d 'Work on this branch instead of the checked-out one' -r -f -a \"(__fish_git_envsync_branches)\""
    ));
    assert!(fish.contains(
        "complete -c git-envsync -n \"__fish_git_envsync_using_subcommand mv\" -f -a \"(__fish_git_envsync_branches)\""
    ));
    assert!(fish.contains("git for-each-ref --format='%(refname:strip=2)' refs/heads"));
    let complete = |line: &str| {
        shell(
            "fish",
            &[
                "--no-config",
                "-c",
                &format!("source {}; complete -C '{line}'", fish_file.display()),
            ],
        )
        .map(|out| {
            out.lines()
                .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        })
    };
    let offered = complete("git-envsync pull --branch f")
        .expect("fish is not on this machine: ./test.sh installs it");
    assert_eq!(offered, ["feature/login", "fix"]);
    assert_eq!(
        complete("git-envsync diff --against ").unwrap(),
        ["feature/login", "fix", "main"]
    );
    assert_eq!(
        complete("git-envsync mv feature/login ").unwrap(),
        ["feature/login", "fix", "main"]
    );
    assert_eq!(
        complete("git-envsync push --branch=m").unwrap(),
        ["--branch=main"]
    );
}

/// Each command offers only the flags it honours: `--json` where it prints data,
/// `--branch` where it works on one branch, `--server` where it talks to one; `-q` for
/// all.
#[test]
fn commands_offer_only_the_flags_they_honour() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = |cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = envsync(dir.path(), &args);
        assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    for (cmd, json, branch, server) in [
        (&["push"][..], true, true, true),
        (&["pull"][..], true, true, true),
        (&["diff"][..], true, true, true),
        (&["status"][..], true, true, true),
        (&["log"][..], true, true, true),
        (&["run"][..], false, true, true),
        (&["watch"][..], false, true, true),
        (&["rotate"][..], false, false, true),
        (&["hooks", "install"][..], false, false, false),
        (&["keygen"][..], false, false, false),
        (&["login"][..], false, false, true),
        (&["init"][..], false, false, true),
        (&["trust"][..], false, false, false),
        (&["token", "list"][..], true, false, true),
        (&["members", "list"][..], true, false, false),
        (&["get"][..], false, true, true),
        (&["set"][..], false, true, false),
        (&["unset"][..], false, true, false),
        (&["edit"][..], false, true, true),
        (&["export"][..], true, true, true),
        (&["example"][..], true, true, true),
        (&["copy"][..], true, true, true),
    ] {
        let text = help(cmd);
        assert_eq!(text.contains("--json"), json, "{cmd:?} --json:\n{text}");
        assert_eq!(
            text.contains("--branch"),
            branch,
            "{cmd:?} --branch:\n{text}"
        );
        assert_eq!(
            text.contains("--server"),
            server,
            "{cmd:?} --server:\n{text}"
        );
        assert!(text.contains("--quiet"), "{cmd:?} -q:\n{text}");
    }
    // A flag a command does not take is a usage error, not silently ignored.
    let out = envsync(dir.path(), &["watch", "--json"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A repository at `repo` (git's settings kept under `home`) with one commit on `main` and
/// the branches `feature/login` and `fix`, for the completion tests.
fn git_repo_with_branches(home: &Path, repo: &Path) {
    for args in [
        vec!["init", "-q", "-b", "main", repo.to_str().expect("utf-8")],
        vec![
            "-C",
            repo.to_str().expect("utf-8"),
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        vec![
            "-C",
            repo.to_str().expect("utf-8"),
            "branch",
            "feature/login",
        ],
        vec!["-C", repo.to_str().expect("utf-8"), "branch", "fix"],
    ] {
        let status = Command::new("git")
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", home)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .expect("git");
        assert!(status.success());
    }
}
