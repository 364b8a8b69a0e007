//! What may name a template, and the directories templates are looked up in.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Whether `name` can name a template: a plain word (`code-review`, `my_flow.v2`), not a
/// path and not a file name ending in `.yaml`/`.yml`.
pub fn is_template_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !lower.ends_with(".yaml")
        && !lower.ends_with(".yml")
}

/// The project's template directory under `cwd`.
pub fn project_dir(cwd: &Path) -> PathBuf {
    cwd.join(".agent-relay").join("templates")
}

/// The user's template directory, read from the environment through `var`.
pub fn user_dir(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = set("AGENT_RELAY_CONFIG_DIR") {
        return Some(d.join("templates"));
    }
    // The XDG spec says a relative XDG_CONFIG_HOME is to be ignored.
    if let Some(d) = set("XDG_CONFIG_HOME").filter(|d| d.is_absolute()) {
        return Some(d.join("agent-relay").join("templates"));
    }
    set("HOME").map(|h| h.join(".config").join("agent-relay").join("templates"))
}
