//! One module per subcommand, each with its `Args` (whose doc comment is the help text)
//! and a `run`. This file only lists and dispatches.

use crate::cli::Cli;
use crate::error::Result;
use clap::Subcommand;
use std::process::ExitCode;

mod adopt;
mod audit;
mod completions;
mod copy;
mod diff;
mod edit;
mod example;
mod export;
mod forget;
mod get;
mod hook;
mod hooks;
mod init;
mod keygen;
mod log;
mod login;
mod man;
mod members;
mod mv;
mod pull;
mod push;
mod restore;
mod rollback;
mod rotate;
mod run;
mod set;
mod status;
mod token;
mod trust;
mod unset;
mod watch;

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::Args),
    Login(login::Args),
    Trust(trust::Args),
    Push(push::Args),
    Pull(pull::Args),
    Diff(diff::Args),
    Status(status::Args),
    Log(log::Args),
    Run(run::Args),
    Get(get::Args),
    Set(set::Args),
    Unset(unset::Args),
    Edit(edit::Args),
    Export(export::Args),
    Example(example::Args),
    Copy(copy::Args),
    Hooks(hooks::Args),
    #[command(hide = true)]
    Hook(hook::Args),
    Watch(watch::Args),
    Keygen(keygen::Args),
    Members(members::Args),
    Rollback(rollback::Args),
    Adopt(adopt::Args),
    Mv(mv::Args),
    Restore(restore::Args),
    Rotate(rotate::Args),
    Forget(forget::Args),
    Token(token::Args),
    Audit(audit::Args),
    Completions(completions::Args),
    #[command(hide = true)]
    Man(man::Args),
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Init(args) => init::run(g, args),
        Command::Login(args) => login::run(g, args),
        Command::Trust(args) => trust::run(g, args),
        Command::Push(args) => push::run(g, args),
        Command::Pull(args) => pull::run(g, args),
        Command::Diff(args) => diff::run(g, args),
        Command::Status(args) => status::run(g, args),
        Command::Log(args) => log::run(g, args),
        Command::Run(args) => run::run(g, args),
        Command::Get(args) => get::run(g, args),
        Command::Set(args) => set::run(g, args),
        Command::Unset(args) => unset::run(g, args),
        Command::Edit(args) => edit::run(g, args),
        Command::Export(args) => export::run(g, args),
        Command::Example(args) => example::run(g, args),
        Command::Copy(args) => copy::run(g, args),
        Command::Hooks(args) => hooks::run(g, args),
        Command::Hook(args) => hook::run(g, args),
        Command::Watch(args) => watch::run(g, args),
        Command::Keygen(args) => keygen::run(g, args),
        Command::Members(args) => members::run(g, args),
        Command::Rollback(args) => rollback::run(g, args),
        Command::Adopt(args) => adopt::run(g, args),
        Command::Mv(args) => mv::run(g, args),
        Command::Restore(args) => restore::run(g, args),
        Command::Rotate(args) => rotate::run(g, args),
        Command::Forget(args) => forget::run(g, args),
        Command::Token(args) => token::run(g, args),
        Command::Audit(args) => audit::run(g, args),
        Command::Completions(args) => completions::run(g, args),
        Command::Man(args) => man::run(g, args),
    }
}
