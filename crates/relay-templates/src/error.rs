//! Why a template could not be found, read or installed.

use std::path::{Path, PathBuf};

use relay_spec::load::{LoadError, Loaded};
use relay_spec::validate::Report;

/// Why a template could not be found, read or installed.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// No template has this name.
    #[error("no template named `{name}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    Unknown {
        /// The name asked for.
        name: String,
        /// The closest known name, if it looks like a typo of one.
        suggestion: Option<String>,
        /// Every known name.
        available: Vec<String>,
    },
    /// The name could not be a template's.
    #[error(
        "`{0}` is not a template name: use letters, digits, `-`, `_` and `.`, starting with a letter or digit, without a .yaml ending"
    )]
    InvalidName(String),
    /// The template's text is not a workflow.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The file parses but does not validate.
    #[error("{} is not a valid workflow", .0.loaded.origin)]
    Invalid(Box<Rejected>),
    /// Installing would hide a built-in template.
    #[error("`{name}` is a built-in template; a user template of that name would hide it")]
    ShadowsBuiltin {
        /// The name.
        name: String,
    },
    /// Installing would replace an existing user template.
    #[error("a user template `{name}` already exists at {}", path.display())]
    Exists {
        /// The name.
        name: String,
        /// The existing file.
        path: PathBuf,
    },
    /// There is nowhere to install user templates.
    #[error("no user template directory: set AGENT_RELAY_CONFIG_DIR, XDG_CONFIG_HOME or HOME")]
    NoUserDir,
    /// A template directory or file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read`, `write`, ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A workflow refused by validation, with every finding.
#[derive(Debug)]
pub struct Rejected {
    /// The workflow as loaded.
    pub loaded: Loaded,
    /// What validation found.
    pub report: Report,
}

pub(crate) fn io(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> TemplateError {
    let path = path.to_path_buf();
    move |source| TemplateError::Io {
        action,
        path,
        source,
    }
}
