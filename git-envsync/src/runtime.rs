//! The one async runtime of this synchronous program: a current-thread tokio runtime,
//! built on first use, that the HTTP client blocks on, that holds the signal handlers
//! (SIGXFSZ, and the watcher's SIGINT/SIGTERM), and nothing else.

use crate::error::{CliError, Result};
use std::sync::OnceLock;

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The runtime; the error says why it could not be built (once, then every time).
pub fn get() -> Result<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| CliError::refused(format!("cannot start the I/O runtime: {e}")))
}
