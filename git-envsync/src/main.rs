//! `git-envsync`, the binary behind `git envsync …`: everything is in the library.

fn main() -> std::process::ExitCode {
    git_envsync::run()
}
