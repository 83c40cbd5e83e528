//! Manual pages from a clap command tree (feature `manpage`), so the pages always say what
//! the code parses: one page per visible command, named the way `man` and `git help` look
//! them up (`git-envsync.1`, `git-envsync-push.1`, `git-envsync-hooks-install.1`).
//!
//! This renders only; the binaries write the files (`git envsync man --dir DIR`,
//! `envsync-server man --dir DIR`), which `install.sh` runs.

use std::io;

/// One manual page in section 1.
#[derive(Debug, Clone)]
pub struct Page {
    /// `git-envsync-push.1`: the command path joined by `-`, then the section.
    pub file_name: String,
    /// The page in roff, as `man` reads it.
    pub roff: Vec<u8>,
}

/// Renders `cmd` and every visible command below it, parents before children. Hidden
/// commands (hook entry points, the generator itself) and clap's `help` get no page, so a
/// subcommand added later gets its page without being listed anywhere.
pub fn pages(cmd: clap::Command) -> io::Result<Vec<Page>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    // Building gives each subcommand its display name (`git-envsync-push`, the page's
    // name) and its bin name (`git envsync push`, the synopsis), and copies global flags
    // down so each page lists every flag its command takes.
    cmd.build();
    let source = format!("envsync {}", cmd.get_version().unwrap_or_default());
    let mut pages = Vec::new();
    render(&cmd, &source, &mut pages)?;
    Ok(pages)
}

fn render(cmd: &clap::Command, source: &str, pages: &mut Vec<Page>) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .source(source)
        .manual("envsync Manual");
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    pages.push(Page {
        file_name: man.get_filename(),
        roff,
    });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render(sub, source, pages)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_visible_command_named_by_its_path() {
        let cmd = clap::Command::new("git-envsync")
            .bin_name("git envsync")
            .version("1.2.3")
            .subcommand(clap::Command::new("push").about("Push it"))
            .subcommand(clap::Command::new("secret").hide(true))
            .subcommand(
                clap::Command::new("hooks")
                    .subcommand(clap::Command::new("install"))
                    .subcommand(clap::Command::new("uninstall")),
            );
        let pages = pages(cmd).expect("render");
        let names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "git-envsync.1",
                "git-envsync-push.1",
                "git-envsync-hooks.1",
                "git-envsync-hooks-install.1",
                "git-envsync-hooks-uninstall.1",
            ]
        );
        let push = String::from_utf8_lossy(&pages[1].roff);
        assert!(push.contains("\n.TH git-envsync-push 1 "), "{push}");
        assert!(push.contains("envsync 1.2.3"), "{push}");
        assert!(push.contains("git envsync push"), "{push}");
    }
}
