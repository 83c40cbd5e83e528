//! One module per subcommand, each with its `Args` (whose doc comment is the help text)
//! and a `run`. This file only lists and dispatches.

use crate::cli::{Cli, Global};

use crate::error::Result;
use clap::Subcommand;
pub use doctor::jwt_expiry;
use std::process::ExitCode;

mod adopt;
mod agent;
mod audit;
mod completions;
mod copy;
mod diff;
mod doctor;
mod edit;
mod example;
mod export;
mod forget;
mod get;
mod hooks;
mod init;
mod keygen;
mod lock;
mod log;
mod login;
mod man;
mod members;
mod merge;
mod mv;
mod pull;
mod push;
mod restore;
mod rollback;
mod rotate;
mod run;
mod run_hook;
mod set;
mod status;
mod token;
mod trust;
mod unlock;
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
    Hook(run_hook::Args),
    Watch(watch::Args),
    Keygen(keygen::Args),
    Members(members::Args),
    Merge(merge::Args),
    Rollback(rollback::Args),
    Adopt(adopt::Args),
    Mv(mv::Args),
    Restore(restore::Args),
    Rotate(rotate::Args),
    Forget(forget::Args),
    Token(token::Args),
    Audit(audit::Args),
    Doctor(doctor::Args),
    Completions(completions::Args),
    #[command(hide = true)]
    Man(man::Args),
    Unlock(unlock::Args),
    Lock(lock::Args),
    #[command(hide = true)]
    Agent(agent::Args),
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init(args) => init::run(&Global::of(None, None, Some(&args.remote)), args),
        Command::Login(args) => login::run(&Global::of(None, None, Some(&args.remote)), args),
        Command::Trust(args) => trust::run(&Global::of(None, None, None), args),
        Command::Push(args) => push::run(
            &Global::of(Some(&args.scope), Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Pull(args) => pull::run(
            &Global::of(Some(&args.scope), Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Diff(args) => diff::run(
            &Global::of(Some(&args.scope), Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Status(args) => status::run(
            &Global::of(Some(&args.scope), Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Log(args) => log::run(
            &Global::of(Some(&args.scope), Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Run(args) => run::run(
            &Global::of(Some(&args.scope), None, Some(&args.remote)),
            args,
        ),
        Command::Get(args) => get::run(
            &Global::of(Some(&args.scope), None, Some(&args.remote)),
            args,
        ),
        Command::Set(args) => set::run(&Global::of(Some(&args.scope), None, None), args),
        Command::Unset(args) => unset::run(&Global::of(Some(&args.scope), None, None), args),
        Command::Edit(args) => edit::run(
            &Global::of(Some(&args.scope), None, Some(&args.remote)),
            args,
        ),
        Command::Export(args) => export::run(
            &Global::of(Some(&args.scope), Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Example(args) => example::run(
            &Global::of(Some(&args.scope), Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Copy(args) => copy::run(
            &Global::of(Some(&args.scope), Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Hooks(args) => hooks::run(&Global::of(None, None, None), args),
        Command::Hook(args) => run_hook::run(&Global::of(None, None, None), args),
        Command::Watch(args) => watch::run(
            &Global::of(Some(&args.scope), None, Some(&args.remote)),
            args,
        ),
        Command::Keygen(args) => keygen::run(&Global::of(None, None, None), args),
        Command::Members(args) => {
            members::run(&Global::of(None, Some(&(&args.output).into()), None), args)
        }
        Command::Merge(args) => merge::run(&Global::of(None, Some(&args.output), None), args),
        Command::Rollback(args) => rollback::run(
            &Global::of(Some(&args.scope), None, Some(&args.remote)),
            args,
        ),
        Command::Adopt(args) => adopt::run(&Global::of(None, None, None), args),
        Command::Mv(args) => mv::run(&Global::of(None, None, Some(&args.remote)), args),
        Command::Restore(args) => restore::run(
            &Global::of(Some(&args.scope), None, Some(&args.remote)),
            args,
        ),
        Command::Rotate(args) => rotate::run(&Global::of(None, None, Some(&args.remote)), args),
        Command::Forget(args) => forget::run(&Global::of(Some(&args.scope), None, None), args),
        Command::Token(args) => token::run(
            &Global::of(
                None,
                Some(&(&args.output).into()),
                Some(&(&args.remote).into()),
            ),
            args,
        ),
        Command::Audit(args) => audit::run(
            &Global::of(None, Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Doctor(args) => doctor::run(
            &Global::of(None, Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Completions(args) => completions::run(&Global::of(None, None, None), args),
        Command::Man(args) => man::run(&Global::of(None, None, None), args),
        Command::Unlock(args) => unlock::run(
            &Global::of(Some(&args.scope), Some(&args.output), Some(&args.remote)),
            args,
        ),
        Command::Lock(args) => lock::run(&Global::of(None, Some(&args.output), None), args),
        Command::Agent(args) => agent::run(&Global::of(None, None, None), args),
    }
}
