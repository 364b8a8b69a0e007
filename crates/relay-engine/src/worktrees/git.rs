//! The git commands agent worktrees need, run synchronously (callers are on blocking
//! threads), and the pure reading of what `git merge-tree` prints. Every command runs
//! with a fixed identity (a run's commits need no user configuration), without hooks or
//! signing prompts, and with no `GIT_DIR` inherited from whoever started the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Who the run's commits are by.
pub const IDENTITY: (&str, &str) = ("agent-relay", "agent-relay@localhost");

/// A git command that could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` itself could not be started.
    #[error("cannot run git in {dir}: {source}")]
    Spawn {
        /// Where.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The command exited with an error.
    #[error("`git {args}` in {dir} failed: {stderr}")]
    Failed {
        /// The arguments.
        args: String,
        /// Where.
        dir: PathBuf,
        /// What git said.
        stderr: String,
    },
}

/// Git in one directory.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

impl Git {
    /// Git run in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Git {
        Git { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `args`; any exit status is returned.
    pub fn raw(&self, args: &[&str]) -> Result<Output, GitError> {
        let mut cmd = Command::new("git");
        cmd.arg("-c")
            .arg("commit.gpgsign=false")
            .arg("-c")
            .arg("core.hooksPath=/dev/null")
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .env("GIT_AUTHOR_NAME", IDENTITY.0)
            .env("GIT_AUTHOR_EMAIL", IDENTITY.1)
            .env("GIT_COMMITTER_NAME", IDENTITY.0)
            .env("GIT_COMMITTER_EMAIL", IDENTITY.1)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_EDITOR", "true")
            .env("GIT_MERGE_AUTOEDIT", "no");
        for v in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_COMMON_DIR",
        ] {
            cmd.env_remove(v);
        }
        cmd.output().map_err(|source| GitError::Spawn {
            dir: self.dir.clone(),
            source,
        })
    }

    /// Runs `args` and returns its trimmed stdout; a non-zero exit is an error.
    pub fn ok(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.raw(args)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(self.failed(args, &out))
        }
    }

    /// Whether `args` exits 0 (1 is `false`; anything else is an error).
    pub fn test(&self, args: &[&str]) -> Result<bool, GitError> {
        let out = self.raw(args)?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failed(args, &out)),
        }
    }

    /// The error for `args` having ended as `out`.
    pub fn failed(&self, args: &[&str], out: &Output) -> GitError {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        GitError::Failed {
            args: args.join(" "),
            dir: self.dir.clone(),
            stderr: if stderr.is_empty() { stdout } else { stderr },
        }
    }

    /// The commit `rev` names.
    pub fn commit_of(&self, rev: &str) -> Result<String, GitError> {
        self.ok(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
    }

    /// Whether `a` is `b` or one of its ancestors.
    pub fn is_ancestor(&self, a: &str, b: &str) -> Result<bool, GitError> {
        self.test(&["merge-base", "--is-ancestor", a, b])
    }

    /// Stages everything in the worktree but `excluded` (paths relative to its top) and
    /// commits it with `message`; the new commit, or `None` when nothing had changed.
    pub fn commit_all(
        &self,
        message: &str,
        excluded: &[String],
    ) -> Result<Option<String>, GitError> {
        self.stage_all(excluded)?;
        if self.test(&["diff", "--cached", "--quiet"])? {
            return Ok(None);
        }
        self.ok(&["commit", "-q", "--no-verify", "-m", message])?;
        self.commit_of("HEAD").map(Some)
    }

    /// Stages everything in the worktree but the untracked `excluded` paths (which may
    /// also be ignored: an exclude pathspec for an ignored path is an error, an unstage
    /// is not).
    pub fn stage_all(&self, excluded: &[String]) -> Result<(), GitError> {
        self.ok(&["add", "-A", "--", "."])?;
        if !excluded.is_empty() {
            let mut reset = vec!["reset", "-q", "--"];
            reset.extend(excluded.iter().map(String::as_str));
            self.ok(&reset)?;
        }
        Ok(())
    }

    /// Merges `theirs` into `ours` without a working tree: the merged tree, or the
    /// conflict.
    pub fn merge_tree(&self, ours: &str, theirs: &str) -> Result<MergeTree, GitError> {
        let args = ["merge-tree", "--write-tree", "--name-only", ours, theirs];
        let out = self.raw(&args)?;
        let text = String::from_utf8_lossy(&out.stdout);
        match out.status.code() {
            Some(0) => Ok(parse_merge_tree(&text, false)),
            Some(1) => Ok(parse_merge_tree(&text, true)),
            _ => Err(self.failed(&args, &out)),
        }
    }
}

/// What `git merge-tree --write-tree --name-only` printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeTree {
    /// The merged tree (with conflict markers in conflicted files).
    pub tree: String,
    /// Files with conflicts; empty for a clean merge.
    pub conflicted: Vec<String>,
    /// Git's informational messages.
    pub messages: String,
}

/// Reads merge-tree's output: the tree's id on the first line; when it reported a
/// conflict, the conflicted files up to a blank line; then messages.
pub fn parse_merge_tree(stdout: &str, conflicted: bool) -> MergeTree {
    let mut lines = stdout.lines();
    let tree = lines.next().unwrap_or_default().trim().to_string();
    let mut files = Vec::new();
    if conflicted {
        for l in lines.by_ref() {
            if l.is_empty() {
                break;
            }
            if !files.iter().any(|f| f == l) {
                files.push(l.to_string());
            }
        }
    } else {
        // A clean merge may still print messages after a blank line.
        for l in lines.by_ref() {
            if l.is_empty() {
                break;
            }
        }
    }
    let messages = lines.collect::<Vec<_>>().join("\n").trim().to_string();
    MergeTree {
        tree,
        conflicted: files,
        messages,
    }
}

/// A branch name piece made from `name`: what git refuses in a ref becomes `-`.
pub fn ref_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "x".to_string() } else { s }
}

/// Whether `text` still has a conflict marker line (`<<<<<<< `, `=======`, `>>>>>>> `).
pub fn has_conflict_markers(text: &str) -> bool {
    text.lines().any(|l| {
        l.starts_with("<<<<<<< ")
            || l.starts_with(">>>>>>> ")
            || l == "======="
            || l == "<<<<<<<"
            || l == ">>>>>>>"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_lists_its_files_once_then_the_messages() {
        let out = "3f1a\nsrc/a.rs\nsrc/a.rs\nb.txt\n\nAuto-merging src/a.rs\nCONFLICT (content): Merge conflict in src/a.rs\n";
        let m = parse_merge_tree(out, true);
        assert_eq!(m.tree, "3f1a");
        assert_eq!(m.conflicted, vec!["src/a.rs", "b.txt"]);
        assert!(m.messages.starts_with("Auto-merging src/a.rs"));
        assert!(m.messages.ends_with("Merge conflict in src/a.rs"));
    }

    #[test]
    fn a_clean_merge_has_a_tree_and_no_files() {
        let m = parse_merge_tree("9e2c\n", false);
        assert_eq!(m.tree, "9e2c");
        assert!(m.conflicted.is_empty());
        assert_eq!(parse_merge_tree("", false).tree, "");
    }

    #[test]
    fn ref_pieces_keep_only_safe_characters() {
        assert_eq!(ref_safe("dev"), "dev");
        assert_eq!(ref_safe("a b/../c.lock"), "a-b----c-lock");
        assert_eq!(ref_safe("..."), "x");
        assert_eq!(ref_safe("under_score-1"), "under_score-1");
    }

    #[test]
    fn conflict_markers_are_whole_lines() {
        assert!(has_conflict_markers(
            "a\n<<<<<<< ours\nx\n=======\ny\n>>>>>>> theirs\n"
        ));
        assert!(has_conflict_markers("=======\n"));
        assert!(!has_conflict_markers("a ======= b\n  <<<<<<< indented\n"));
        assert!(!has_conflict_markers("resolved\n"));
    }

    #[test]
    fn commits_and_merges_in_a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let g = Git::new(dir.path());
        g.ok(&["init", "-q", "-b", "main"]).unwrap();
        std::fs::write(dir.path().join("f.txt"), "one\ntwo\nthree\n").unwrap();
        let base = g.commit_all("base", &[]).unwrap().expect("a commit");
        assert_eq!(g.commit_all("nothing", &[]).unwrap(), None);
        g.ok(&["branch", "other"]).unwrap();
        std::fs::write(dir.path().join("f.txt"), "ONE\ntwo\nthree\n").unwrap();
        std::fs::write(dir.path().join(".env"), "SECRET=1\n").unwrap();
        let ours = g
            .commit_all("ours", &[".env".to_string()])
            .unwrap()
            .unwrap();
        let tracked = g.ok(&["ls-files"]).unwrap();
        assert!(
            !tracked.contains(".env"),
            "an excluded file stays out: {tracked}"
        );
        assert!(g.is_ancestor(&base, &ours).unwrap());
        assert!(!g.is_ancestor(&ours, &base).unwrap());
        g.ok(&["checkout", "-q", "other"]).unwrap();
        std::fs::write(dir.path().join("f.txt"), "one\ntwo\nTHREE\n").unwrap();
        let clean = g
            .commit_all("theirs", &[".env".to_string()])
            .unwrap()
            .unwrap();
        let m = g.merge_tree(&ours, &clean).unwrap();
        assert!(m.conflicted.is_empty(), "{m:?}");
        let merged = g.ok(&["show", &format!("{}:f.txt", m.tree)]).unwrap();
        assert_eq!(merged, "ONE\ntwo\nTHREE");
        std::fs::write(dir.path().join("f.txt"), "uno\ntwo\nTHREE\n").unwrap();
        let clash = g
            .commit_all("clash", &[".env".to_string()])
            .unwrap()
            .unwrap();
        let m = g.merge_tree(&ours, &clash).unwrap();
        assert_eq!(m.conflicted, vec!["f.txt"]);
        let shown = g.ok(&["show", &format!("{}:f.txt", m.tree)]).unwrap();
        assert!(has_conflict_markers(&shown), "{shown}");
        assert!(shown.contains("ONE") && shown.contains("uno"), "{shown}");
    }
}
