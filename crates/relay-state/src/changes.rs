//! Which files a step changed: files under its directory modified since it started,
//! looked for only where a claim could cover them (below each claim's literal leading
//! directories), so a step that ran while nobody else held a claim costs nothing.
//! Blocking (it reads the file system): run it on a blocking thread.
//!
//! What this cannot see: deleted files, and who made a change. Agents sharing one
//! directory see each other's changes; with a directory (or worktree) per agent a
//! change under its directory is its own.

use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::glob::literal_base;

/// Most directory entries one look visits.
pub const MAX_ENTRIES: usize = 200_000;

/// Directories never looked into: the repository's and the runs' own records.
const SKIP: [&str; 2] = [".git", ".agent-relay"];

/// A file modified since a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// Relative to the directory looked in, `/`-separated.
    pub path: String,
    /// Its modification time, in milliseconds since the Unix epoch.
    pub mtime_ms: u64,
}

fn mtime_ms(meta: &std::fs::Metadata) -> Option<u64> {
    meta.modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// Files under `dir` that the globs in `patterns` could cover and that were modified
/// at or after `since_ms`, sorted by path. Stops after [`MAX_ENTRIES`] entries.
pub fn changed_since(dir: &Path, patterns: &[String], since_ms: u64) -> Vec<Changed> {
    let mut bases: Vec<(String, bool)> = patterns.iter().map(|p| literal_base(p)).collect();
    bases.sort();
    bases.dedup();
    let mut out = Vec::new();
    let mut budget = MAX_ENTRIES;
    for (base, plain) in &bases {
        // A base inside another base is walked with it.
        if bases.iter().any(|(other, p)| {
            !p && other != base && (other.is_empty() || base.starts_with(&format!("{other}/")))
        }) {
            continue;
        }
        let start = if base.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(base)
        };
        let Ok(meta) = std::fs::symlink_metadata(&start) else {
            continue;
        };
        if *plain && meta.is_file() {
            if let Some(m) = mtime_ms(&meta).filter(|m| *m >= since_ms) {
                out.push(Changed {
                    path: base.clone(),
                    mtime_ms: m,
                });
            }
            continue;
        }
        if meta.is_dir() {
            walk(&start, base, since_ms, &mut budget, &mut out);
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

fn walk(start: &Path, rel: &str, since_ms: u64, budget: &mut usize, out: &mut Vec<Changed>) {
    let mut stack = vec![(start.to_path_buf(), rel.to_owned())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            // Symbolic links are not followed: what they point at is not in the directory.
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                if !SKIP.contains(&name.as_str()) {
                    stack.push((e.path(), path));
                }
            } else if let Some(m) = mtime_ms(&meta).filter(|m| *m >= since_ms) {
                out.push(Changed { path, mtime_ms: m });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_modified_since_and_where_claims_look() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("src/x")).unwrap();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        for f in ["src/a.rs", "src/x/b.rs", "README.md", ".git/HEAD"] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        let all = changed_since(d, &["**".to_owned()], 0);
        let paths: Vec<&str> = all.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["README.md", "src/a.rs", "src/x/b.rs"]);
        let src = changed_since(d, &["src/**/*.rs".to_owned(), "README.md".to_owned()], 0);
        assert_eq!(src.len(), 3);
        let only = changed_since(d, &["src/x/*.rs".to_owned()], 0);
        assert_eq!(only[0].path, "src/x/b.rs");
        assert!(changed_since(d, &["**".to_owned()], u64::MAX).is_empty());
    }
}
