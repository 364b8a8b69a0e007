//! What a repair changed, so that a gate that turns green after a repair can be audited:
//! the working tree is photographed before and after the repairing agent runs. In a git
//! repository the photograph is a tree object written through a temporary index (the
//! user's own index and branches are left alone), so the changed files and the diff are
//! exact; elsewhere it is the size and modification time of every file (bounded).
//! A changed file that matches `errorHandling.protect` fails the repair.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// Most files compared outside a git repository.
const MAX_FILES: usize = 50_000;

/// A photograph of a working tree.
#[derive(Debug, Clone)]
pub enum Photo {
    /// A git tree of the whole working tree, and the repository's top.
    Git { top: PathBuf, tree: String },
    /// Size and modification time of each file.
    Files(BTreeMap<PathBuf, (u64, Option<SystemTime>)>),
}

fn git(cwd: &Path, args: &[&str], index: Option<&Path>) -> Option<String> {
    let mut c = Command::new("git");
    c.args(args).current_dir(cwd);
    if let Some(i) = index {
        c.env("GIT_INDEX_FILE", i);
    }
    let out = c.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Photographs the tree `cwd` is in; `scratch` is a directory for the temporary index.
/// Blocking: run it off the async runtime.
pub fn photograph(cwd: &Path, scratch: &Path) -> Photo {
    if let Some(top) = git(cwd, &["rev-parse", "--show-toplevel"], None) {
        let top = PathBuf::from(top);
        let index = scratch.join("repair.index");
        let _ = std::fs::remove_file(&index);
        // A fresh index: every file is hashed, none is judged by a stat cache that a
        // change within the same second would fool.
        let tree = git(&top, &["add", "-A"], Some(&index))
            .and_then(|_| git(&top, &["write-tree"], Some(&index)));
        let _ = std::fs::remove_file(&index);
        if let Some(tree) = tree {
            return Photo::Git { top, tree };
        }
    }
    Photo::Files(walk(cwd))
}

fn walk(root: &Path) -> BTreeMap<PathBuf, (u64, Option<SystemTime>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name();
            if matches!(
                name.to_str(),
                Some(".git" | ".agent-relay" | "target" | "node_modules")
            ) {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(p);
            } else if out.len() < MAX_FILES {
                let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
                out.insert(rel, (meta.len(), meta.modified().ok()));
            }
        }
    }
    out
}

/// What changed between two photographs of the same tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Changed, added or removed files, relative to the tree's top.
    pub files: Vec<String>,
    /// The diff, when the tree is a git repository.
    pub diff: String,
}

/// The changes from `before` to `after`. Blocking.
pub fn compare(before: &Photo, after: &Photo) -> Changes {
    match (before, after) {
        (Photo::Git { top, tree: a }, Photo::Git { tree: b, .. }) => {
            let files = git(top, &["diff", "--name-only", a, b], None)
                .map(|t| t.lines().map(str::to_owned).collect())
                .unwrap_or_default();
            let diff = git(top, &["diff", a, b], None).unwrap_or_default();
            Changes { files, diff }
        }
        (Photo::Files(a), Photo::Files(b)) => {
            let mut files: Vec<String> = b
                .iter()
                .filter(|(p, v)| a.get(*p) != Some(v))
                .map(|(p, _)| p.display().to_string())
                .collect();
            files.extend(
                a.keys()
                    .filter(|p| !b.contains_key(*p))
                    .map(|p| p.display().to_string()),
            );
            files.sort();
            Changes {
                files,
                diff: String::new(),
            }
        }
        _ => Changes::default(),
    }
}

/// The changed files that `protect` forbids.
pub fn protected<'a>(changes: &'a Changes, protect: &[String]) -> Vec<&'a str> {
    let patterns: Vec<glob::Pattern> = protect
        .iter()
        .filter_map(|p| glob::Pattern::new(p).ok())
        .collect();
    changes
        .files
        .iter()
        .filter(|f| {
            patterns.iter().any(|p| {
                p.matches(f)
                    || Path::new(f)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| p.matches(n))
            })
        })
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let st = Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(st.success(), "{script}");
    }

    #[test]
    fn a_git_tree_shows_exactly_what_changed_and_leaves_the_index_alone() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        sh(
            dir.path(),
            "git init -q && git config user.email t@t && git config user.name t && \
             echo one > a.txt && echo lock > Cargo.lock && git add . && git commit -qm init && \
             echo dirty > b.txt",
        );
        let before = photograph(dir.path(), scratch.path());
        assert!(matches!(before, Photo::Git { .. }));
        sh(
            dir.path(),
            "echo two > a.txt && echo changed > Cargo.lock && rm b.txt && echo new > c.txt",
        );
        let after = photograph(dir.path(), scratch.path());
        let changes = compare(&before, &after);
        assert_eq!(changes.files, ["Cargo.lock", "a.txt", "b.txt", "c.txt"]);
        assert!(changes.diff.contains("+two"));
        assert_eq!(protected(&changes, &["*.lock".into()]), ["Cargo.lock"]);
        let status = git(dir.path(), &["status", "--porcelain"], None).unwrap();
        assert!(
            !status.contains("A "),
            "the user's index was touched: {status}"
        );
    }

    #[test]
    fn outside_git_files_are_compared_by_size_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "1").unwrap();
        let before = photograph(dir.path(), scratch.path());
        std::fs::write(dir.path().join("x"), "22").unwrap();
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        std::fs::write(dir.path().join("migrations/001.sql"), "drop").unwrap();
        let changes = compare(&before, &photograph(dir.path(), scratch.path()));
        assert_eq!(changes.files, ["migrations/001.sql", "x"]);
        assert_eq!(
            protected(&changes, &["migrations/**".into()]),
            ["migrations/001.sql"]
        );
    }
}
