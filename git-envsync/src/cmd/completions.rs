//! `git envsync completions bash|zsh|fish`: the shell completion script, on stdout.
//!
//! clap_complete writes the script from the command tree, so subcommands and flags added
//! later complete with no change here. What it cannot know is added to its script: branch
//! names (from `git for-each-ref`) after each flag that takes one (found in the tree too: a
//! long name `branch` or a value named `BRANCH`) and for the positional arguments that are
//! branches ([`BRANCH_ARGUMENTS`]), in every shell; and for bash, `_git_envsync`, the
//! function git's own completion calls for `git envsync <TAB>`.

use crate::cli::{Cli, Global};
use crate::error::Result;
use crate::out;
use clap::CommandFactory;
use std::process::ExitCode;

/// The executable's name: what bash and fish complete, and what zsh's `_git` and fish's git
/// completion hand `git envsync …` to.
const BIN: &str = "git-envsync";

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Print the shell completion script for bash, zsh or fish on stdout.
///
/// install.sh puts each where its shell looks for it: bash
/// PREFIX/share/bash-completion/completions/git-envsync, zsh
/// PREFIX/share/zsh/site-functions/_git-envsync, fish
/// PREFIX/share/fish/vendor_completions.d/git-envsync.fish. To try one in the current
/// bash: source <(git envsync completions bash). Every script completes branch names after
/// --branch (and the other flags and arguments that take one); the bash script also
/// completes `git envsync <TAB>` when git's completion is loaded.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh or fish.
    #[arg(value_enum)]
    shell: Shell,
}

pub fn run(_global: &Global, args: Args) -> Result<ExitCode> {
    out::print(&script(args.shell));
    Ok(ExitCode::SUCCESS)
}

fn script(shell: Shell) -> String {
    let mut cmd = Cli::command();
    // Building copies the global flags (--branch, --json, --server) into each subcommand.
    cmd.build();
    let mut cmd = visible(&cmd);
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut cmd, BIN, &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    if let Shell::Bash = shell {
        // clap_complete 4.6 spells a hyphenated bin name two ways in bash: its loop reaches
        // the state `git__envsync__subcmd__push`, its case arms say
        // `git__subcmd__envsync__subcmd__push`, so nothing after a subcommand completed
        // (clap-rs/clap#6421). Spell the arms as the loop does; a no-op once that is fixed.
        script = script.replace("git__subcmd__envsync__", "git__envsync__");
        script.push_str(&BASH_GIT.replace("@BRANCH_FLAGS@", &branch_flags(&cmd).join(" ")));
    }
    match shell {
        Shell::Bash => script,
        Shell::Zsh => zsh_branches(&script, &branch_flags(&cmd)),
        Shell::Fish => fish_branches(&script, &branch_flags(&cmd)),
    }
}

/// The positional arguments whose value is a branch name, as (subcommand, argument id).
/// Checked against the tree by a unit test, so a rename cannot leave one behind.
const BRANCH_ARGUMENTS: [(&str, &str); 2] = [("mv", "old"), ("mv", "new")];

/// clap's zsh script with branch names as the action of each branch flag's value and each
/// branch argument (`:_default`, any word, in clap's), and the function that lists them.
fn zsh_branches(script: &str, flags: &[String]) -> String {
    let mut out = String::with_capacity(script.len() + ZSH_BRANCHES.len());
    let mut subcommand = "";
    for line in script.lines() {
        let trimmed = line.trim();
        // Each subcommand's `_arguments` call follows its case arm: `(mv)`.
        if let Some(name) = trimmed.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
            subcommand = name;
        }
        let flag = flags
            .iter()
            .any(|f| trimmed.starts_with(&format!("'{f}=[")));
        let argument = BRANCH_ARGUMENTS
            .iter()
            .any(|(sub, id)| *sub == subcommand && trimmed.starts_with(&format!("':{id} -- ")));
        if flag || argument {
            out.push_str(&line.replacen(":_default'", ":__git_envsync_branches'", 1));
        } else {
            out.push_str(line);
        }
        out.push('\n');
        if trimmed.starts_with("#compdef ") {
            out.push_str(ZSH_BRANCHES);
        }
    }
    out
}

/// Defined at the top of the zsh script (clap's function and its dispatch come after).
const ZSH_BRANCHES: &str = r#"
# --- envsync: branch names after the flags and arguments that take one ---
(( $+functions[__git_envsync_branches] )) ||
__git_envsync_branches() {
    local -a branches expl
    branches=(${(f)"$(git for-each-ref --format='%(refname:strip=2)' refs/heads 2>/dev/null)"})
    _wanted branches expl 'branch' compadd -a branches
}

"#;

/// clap's fish script with branch names offered for each branch flag's value, then the
/// function that lists them and the branch arguments of each subcommand.
fn fish_branches(script: &str, flags: &[String]) -> String {
    let mut out = String::with_capacity(script.len() + 1024);
    for line in script.lines() {
        let flag = flags.iter().any(|f| {
            let long = f.trim_start_matches('-');
            line.contains(&format!(" -l {long} ")) && line.ends_with(" -r")
        });
        out.push_str(line);
        if flag {
            out.push_str(" -f -a \"(__fish_git_envsync_branches)\"");
        }
        out.push('\n');
    }
    out.push_str(
        "\n# --- envsync: branch names after the flags and arguments that take one ---\n\
         function __fish_git_envsync_branches\n\
         \x20   git for-each-ref --format='%(refname:strip=2)' refs/heads 2>/dev/null\n\
         end\n",
    );
    let mut subcommands: Vec<&str> = BRANCH_ARGUMENTS.iter().map(|(sub, _)| *sub).collect();
    subcommands.dedup();
    for sub in subcommands {
        out.push_str(&format!(
            "complete -c {BIN} -n \"__fish_git_envsync_using_subcommand {sub}\" -f -a \"(__fish_git_envsync_branches)\"\n"
        ));
    }
    out
}

/// A copy of the built tree without its hidden commands and flags (the hook entry points,
/// `man`), which clap_complete would offer: it does not filter them out. The copy keeps
/// what completion reads: names, descriptions, flags and their values.
fn visible(cmd: &clap::Command) -> clap::Command {
    let mut copy = clap::Command::new(cmd.get_name().to_owned())
        // The built tree already holds --help and --version as plain flags.
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(visible),
        );
    if let Some(about) = cmd.get_about() {
        copy = copy.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        copy = copy.version(version.to_owned());
    }
    for alias in cmd.get_visible_aliases() {
        copy = copy.visible_alias(alias.to_owned());
    }
    copy
}

/// `--branch`, `--against`, …: every flag in the tree whose value is a branch name.
fn branch_flags(cmd: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, flags: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let names_branch = arg
                .get_value_names()
                .is_some_and(|names| names.iter().any(|n| n.as_str() == "BRANCH"));
            if long == "branch" || names_branch {
                flags.push(format!("--{long}"));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, flags);
        }
    }
    let mut flags = Vec::new();
    walk(cmd, &mut flags);
    flags.sort();
    flags.dedup();
    flags
}

/// Appended to clap's bash script, whose function for `git-envsync` is `_git__envsync`.
const BASH_GIT: &str = r#"
# --- envsync: branch names, and `git envsync <TAB>` through git's completion ---

# Flags whose value is a branch name.
__git_envsync_branch_flags=" @BRANCH_FLAGS@ "

# The repository's branches: git's own helper when its completion is loaded (it follows
# `git -C DIR`), else for-each-ref.
__git_envsync_branches() {
    if declare -F __git_heads >/dev/null 2>&1; then
        __git_heads
    else
        git for-each-ref --format='%(refname:strip=2)' refs/heads 2>/dev/null
    fi
}

# Completes COMP_WORDS (git-envsync and its arguments) at COMP_CWORD: a branch name after
# a flag that takes one, anything else as clap's function above does.
__git_envsync_complete() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" flag
    flag=$prev
    # bash splits `--branch=ma` at the `=`: (--branch = ma), or (--branch =) right after it.
    if [ "$cur" = "=" ]; then
        cur=""
    elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 2 ]; then
        flag=${COMP_WORDS[COMP_CWORD-2]}
    fi
    case "$__git_envsync_branch_flags" in
    *" $flag "*)
        COMPREPLY=($(compgen -W "$(__git_envsync_branches)" -- "$cur"))
        return 0
        ;;
    esac
    _git__envsync git-envsync "${COMP_WORDS[COMP_CWORD]}" "$prev"
}

# git's completion calls _git_envsync for `git [OPTIONS] envsync <TAB>`, after asking
# bash-completion to load the file named git-envsync (this one) if it is not defined yet.
# It sees the words from `git` on: complete the ones after `envsync` as git-envsync's.
_git_envsync() {
    local i=1
    while [ "$i" -lt "$COMP_CWORD" ] && [ "${COMP_WORDS[i]}" != envsync ]; do
        i=$((i + 1))
    done
    local -a words=(git-envsync "${COMP_WORDS[@]:i+1}")
    local cword=$((COMP_CWORD - i))
    local COMP_WORDS COMP_CWORD
    COMP_WORDS=("${words[@]}")
    COMP_CWORD=$cword
    # git completes with -o nospace and appends the spaces itself; these are whole words.
    compopt +o nospace 2>/dev/null
    __git_envsync_complete
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F __git_envsync_complete -o nosort -o bashdefault -o default git-envsync
else
    complete -F __git_envsync_complete -o bashdefault -o default git-envsync
fi
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_branch_arguments_are_in_the_tree() {
        let cmd = Cli::command();
        for (sub, id) in BRANCH_ARGUMENTS {
            let sub = cmd
                .find_subcommand(sub)
                .unwrap_or_else(|| panic!("no subcommand {sub}"));
            let arg = sub
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("{} has no argument {id}", sub.get_name()));
            assert!(arg.is_positional(), "{id}");
        }
    }
}
