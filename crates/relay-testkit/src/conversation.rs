//! The conversation a fake agent run belongs to, as the real CLIs keep one: a new id
//! for each run, unless the command line continues one (claude and gemini `--resume ID`,
//! codex `exec resume ID`, opencode `--session ID`) or names the new one (claude and
//! gemini `--session-id ID`). The structured one-shot output names it where the real
//! CLI does, and `[[fake:recall]]` replies with the tasks the conversation was given
//! before, so a test sees that a later step really continued it.
//!
//! Kept in `$FAKE_AGENT_STATE_DIR/conversations/<id>`, one line per task.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The conversation of this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conversation {
    /// Its id.
    pub(crate) id: String,
    /// Whether the command line continued it.
    pub(crate) resumed: bool,
}

static CURRENT: OnceLock<Conversation> = OnceLock::new();

/// Records the conversation the command line asked for (`resume` an earlier one, or
/// `start` one with this id); a new id otherwise.
pub(crate) fn set(resume: Option<String>, start: Option<String>) {
    let c = match (resume, start) {
        (Some(id), _) => Conversation { id, resumed: true },
        (None, Some(id)) => Conversation { id, resumed: false },
        (None, None) => Conversation {
            id: new_id(),
            resumed: false,
        },
    };
    let _ = CURRENT.set(c);
}

/// This run's conversation id.
pub(crate) fn id() -> String {
    CURRENT
        .get_or_init(|| Conversation {
            id: new_id(),
            resumed: false,
        })
        .id
        .clone()
}

fn new_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("fake-{}-{nanos}", std::process::id())
}

fn file(state: &Path) -> PathBuf {
    let id: String = id()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state.join("conversations").join(id)
}

/// The tasks the conversation was given before this one (kept under `state`, the fake
/// agent's state directory).
pub(crate) fn history(state: &Path) -> Vec<String> {
    std::fs::read_to_string(file(state))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Adds `task` to the conversation (its first line, markers defused), in one append.
pub(crate) fn remember(state: &Path, task: &str) {
    let path = file(state);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let first = task
        .lines()
        .next()
        .unwrap_or_default()
        .replace("[[fake:", "[fake:");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = f.write_all(format!("{first}\n").as_bytes());
    }
}
