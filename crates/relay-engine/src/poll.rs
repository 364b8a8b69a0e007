//! Local file events by polling: what the paths matching some globs look like now, and
//! what was created, updated or deleted between two looks. Used by `waitFor` steps
//! (`exec/wait.rs`) and by agents' `watch` (`watch.rs`). Polling, not inotify: it needs
//! no directory to exist beforehand and works the same on every file system.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What a path looked like at one poll.
pub type Seen = BTreeMap<PathBuf, (u64, Option<SystemTime>)>;

/// An event the wait saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileEvent {
    /// `created`, `updated` or `deleted`.
    pub event: &'static str,
    /// The path.
    pub path: String,
}

/// What the paths matching `globs` (relative ones from `cwd`) look like now.
pub fn snapshot(cwd: &Path, globs: &[String]) -> Seen {
    let mut seen = Seen::new();
    for g in globs {
        let pattern = if Path::new(g).is_absolute() {
            g.clone()
        } else {
            cwd.join(g).display().to_string()
        };
        let Ok(paths) = glob::glob(&pattern) else {
            continue;
        };
        for p in paths.flatten() {
            let meta = std::fs::metadata(&p).ok();
            seen.insert(
                p,
                (
                    meta.as_ref().map_or(0, std::fs::Metadata::len),
                    meta.and_then(|m| m.modified().ok()),
                ),
            );
        }
    }
    seen
}

/// The first event between two polls, of a kind in `wanted` (empty: any kind).
pub fn diff(before: &Seen, after: &Seen, wanted: &[String]) -> Option<FileEvent> {
    changes(before, after, wanted).into_iter().next()
}

/// Every event between two polls of a kind in `wanted` (empty: any kind): creations and
/// updates in path order, then deletions.
pub fn changes(before: &Seen, after: &Seen, wanted: &[String]) -> Vec<FileEvent> {
    let want = |e: &str| wanted.is_empty() || wanted.iter().any(|w| w == e);
    let event = |event: &'static str, p: &Path| FileEvent {
        event,
        path: p.display().to_string(),
    };
    let mut out = Vec::new();
    for (p, now) in after {
        match before.get(p) {
            None if want("created") => out.push(event("created", p)),
            Some(was) if was != now && (want("updated") || want("modified")) => {
                out.push(event("updated", p));
            }
            _ => {}
        }
    }
    out.extend(
        before
            .keys()
            .filter(|p| !after.contains_key(*p) && want("deleted"))
            .map(|p| event("deleted", p)),
    );
    out
}
