//! The working directory every command starts from.

use std::path::PathBuf;

use crate::error::{CliError, CliResult};

/// The working directory runs are kept under.
pub fn workdir() -> CliResult<PathBuf> {
    std::env::current_dir()
        .map_err(|e| CliError::runtime(format!("cannot determine the working directory: {e}")))
}
