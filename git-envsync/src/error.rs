//! The one error type of the CLI: what went wrong, how the user can fix it, and the exit
//! code it maps to. `main` prints it in one place as `error: …` and `hint: …`.
//!
//! Exit codes (docs/protocol.md): 1 a refused operation (conflict, local edits, integrity check)
//! or drift with `--exit-code`; 2 usage or configuration error; 3 server or network error.

use std::fmt;
use std::process::ExitCode;

/// The exit code classes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: the operation was refused or failed for a reason that is not the user's setup.
    Refused,
    /// 2: bad flags, missing or bad configuration, bad input.
    Usage,
    /// 3: the server is unreachable or failed.
    Server,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Refused => 1,
            Exit::Usage => 2,
            Exit::Server => 3,
        }
    }
}

/// An error with its exit code and an optional hint. Messages hold names, paths and
/// versions, never a secret value.
pub struct CliError {
    pub exit: Exit,
    pub error: anyhow::Error,
    pub hint: Option<String>,
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    pub fn new(exit: Exit, message: impl fmt::Display) -> Self {
        CliError {
            exit,
            error: anyhow::anyhow!("{message}"),
            hint: None,
        }
    }

    pub fn refused(message: impl fmt::Display) -> Self {
        CliError::new(Exit::Refused, message)
    }

    pub fn usage(message: impl fmt::Display) -> Self {
        CliError::new(Exit::Usage, message)
    }

    pub fn server(message: impl fmt::Display) -> Self {
        CliError::new(Exit::Server, message)
    }

    pub fn hint(mut self, hint: impl fmt::Display) -> Self {
        self.hint = Some(hint.to_string());
        self
    }

    /// Adds `more` to the hint (after the one there is, if any).
    pub fn also_hint(self, more: impl fmt::Display) -> Self {
        let hint = match &self.hint {
            Some(hint) => format!("{hint}; {more}"),
            None => more.to_string(),
        };
        self.hint(hint)
    }

    /// The whole cause chain on one line.
    pub fn message(&self) -> String {
        let mut parts = self.error.chain().map(|c| c.to_string());
        let mut line = parts.next().unwrap_or_default();
        for part in parts {
            if !line.contains(&part) {
                line.push_str(": ");
                line.push_str(&part);
            }
        }
        line.replace('\n', " ")
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit.code())
    }
}

impl fmt::Debug for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CliError({:?}: {})", self.exit, self.message())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Any other failure (mostly local I/O) is exit 1: it is neither the user's setup nor the
/// server's fault.
impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        CliError {
            exit: Exit::Refused,
            error,
            hint: None,
        }
    }
}
