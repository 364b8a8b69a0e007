//! A git worktree per agent (`agents[].worktree`, `swarm.worktrees: per-agent`): the
//! run's branch made from the commit checked out when the run began; each agent's
//! worktree and branch made from it the first time the agent works (with the untracked
//! files `swarm.worktreeInclude` lists copied in), brought up to the run's branch before
//! each of its steps; at each step's end its changes committed on its branch and, when
//! the step passed, merged into the run's branch in completion order. A conflict never
//! loses either side: the run's branch stays as it was, the agent's branch keeps its
//! commit, a report is written, and the resolver (when named) is given the merge in a
//! worktree of its own. At the run's end what is left uncommitted is committed and the
//! worktrees are removed (`keepWorktrees` keeps them); the branches always stay.
//!
//! Git runs on blocking threads; one mutex, taken only there, orders every write, so
//! merges land in the order steps finish.

pub mod git;
mod report;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use relay_spec::{Agent, RelayFile};
use serde::{Deserialize, Serialize};

use git::{Git, GitError, ref_safe};

/// Where a run keeps its worktrees, inside its directory.
pub const WORKTREES_DIR: &str = "worktrees";
/// The record of the run's branch and starting commit, inside [`WORKTREES_DIR`].
const RECORD: &str = "run.json";
/// The prefix of every branch a run makes.
pub const BRANCH_PREFIX: &str = "agent-relay";
/// The run's branch, for steps (`AGENT_RELAY_RUN_BRANCH`).
pub const RUN_BRANCH_ENV: &str = "AGENT_RELAY_RUN_BRANCH";

/// Why the run's worktrees cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum WorktreeError {
    /// Agents with worktrees need a git repository.
    #[error(
        "agent{} {} work{} in git worktrees, but {dir} is not inside a git repository ({why})",
        if agents.len() == 1 { "" } else { "s" },
        agents.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", "),
        if agents.len() == 1 { "s" } else { "" }
    )]
    NotARepo {
        /// The run's working directory.
        dir: PathBuf,
        /// The agents.
        agents: Vec<String>,
        /// What git said.
        why: String,
    },
    /// The repository has no commit to start from.
    #[error(
        "the git repository at {repo} has no commit yet; worktrees start from one (commit something first)"
    )]
    NoCommit {
        /// The repository.
        repo: PathBuf,
    },
    /// Git failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The run directory could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The run's branch and where it began, kept in the run directory for a resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    repo: PathBuf,
    branch: String,
    base: String,
}

/// One agent's worktree.
#[derive(Debug, Clone)]
struct Tree {
    path: PathBuf,
    branch: String,
    /// Files copied in (never committed).
    copied: Vec<String>,
}

/// What happened when an agent's worktree was entered for a step.
#[derive(Debug, Clone)]
pub struct Entered {
    /// Where the step runs.
    pub cwd: PathBuf,
    /// The worktree was made now: its path, branch and what was copied in.
    pub created: Option<(PathBuf, String, Vec<String>)>,
    /// The run's branch could not be brought in (the agent works on without it).
    pub not_synced: Option<String>,
}

/// How a step's changes left its worktree.
#[derive(Debug, Clone, PartialEq)]
pub enum Left {
    /// Nothing new to merge.
    Unchanged,
    /// Committed on the agent's branch only (the step did not pass).
    Kept {
        /// The commit.
        commit: String,
    },
    /// Merged into the run's branch.
    Merged {
        /// The run branch's new tip.
        commit: String,
    },
    /// The merge conflicted; nothing was lost.
    Conflict(Conflict),
}

/// A merge that conflicted.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The agent's branch and its commit.
    pub branch: String,
    /// Its commit.
    pub commit: String,
    /// The run branch's tip it conflicted with.
    pub run_tip: String,
    /// The files.
    pub files: Vec<String>,
    /// The report.
    pub report: PathBuf,
}

/// How a resolver's attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The run's branch has the resolved merge.
    Resolved {
        /// Its new tip.
        commit: String,
    },
    /// It did not resolve; why.
    Unresolved(String),
}

/// The worktrees of one run.
#[derive(Debug)]
pub struct RunWorktrees {
    repo: PathBuf,
    dir: PathBuf,
    run_branch: String,
    base: String,
    agents: BTreeSet<String>,
    include: Vec<String>,
    keep: bool,
    resolver: Option<Agent>,
    trees: Mutex<HashMap<String, Tree>>,
    /// Taken on blocking threads only, around every git write.
    git_lock: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorktreeError + '_ {
    move |source| WorktreeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Runs `f` on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorktreeError> + Send + 'static,
) -> Result<T, WorktreeError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(WorktreeError::Git(GitError::Spawn {
            dir: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        }))
    })
}

/// The top of the repository `workdir` is in, for `agents`' worktrees.
fn find_repo(workdir: &Path, agents: &BTreeSet<String>) -> Result<PathBuf, WorktreeError> {
    let top = Git::new(workdir)
        .ok(&["rev-parse", "--show-toplevel"])
        .map_err(|e| WorktreeError::NotARepo {
            dir: workdir.to_path_buf(),
            agents: agents.iter().cloned().collect(),
            why: match e {
                GitError::Failed { stderr, .. } => stderr,
                other => other.to_string(),
            },
        })?;
    Ok(PathBuf::from(top))
}

/// Before a run starts: when agents of `file` have worktrees, `workdir` is in a git
/// repository with a commit to start from.
pub async fn preflight(file: &RelayFile, workdir: &Path) -> Result<(), WorktreeError> {
    let agents: BTreeSet<String> = file.worktree_agents().map(|a| a.name.clone()).collect();
    if agents.is_empty() {
        return Ok(());
    }
    let workdir = workdir.to_path_buf();
    blocking(move || {
        let repo = find_repo(&workdir, &agents)?;
        Git::new(&repo)
            .commit_of("HEAD")
            .map_err(|_| WorktreeError::NoCommit { repo })?;
        Ok(())
    })
    .await
}

impl RunWorktrees {
    /// The run's worktrees, when any agent of `file` has one: the run's branch made
    /// from `workdir`'s current commit (or, when `resuming`, the one recorded in
    /// `run_dir`).
    pub async fn open(
        file: &RelayFile,
        workdir: &Path,
        run_dir: &Path,
        run_id: &str,
        resuming: bool,
    ) -> Result<Option<Arc<RunWorktrees>>, WorktreeError> {
        let agents: BTreeSet<String> = file.worktree_agents().map(|a| a.name.clone()).collect();
        if agents.is_empty() {
            return Ok(None);
        }
        let swarm = file.swarm.clone().unwrap_or_default();
        let resolver = swarm
            .resolver
            .as_deref()
            .and_then(|r| file.agent(r))
            .cloned();
        let workdir = workdir.to_path_buf();
        let dir = run_dir.join(WORKTREES_DIR);
        let run_id = run_id.to_string();
        let record = blocking(move || {
            let repo = find_repo(&workdir, &agents)?;
            let recorded = dir.join(RECORD);
            if resuming
                && let Ok(text) = std::fs::read(&recorded)
                && let Ok(r) = serde_json::from_slice::<Record>(&text)
            {
                return Ok((r, agents));
            }
            let git = Git::new(&repo);
            let base = git
                .commit_of("HEAD")
                .map_err(|_| WorktreeError::NoCommit { repo: repo.clone() })?;
            let branch = format!("{BRANCH_PREFIX}/{}", ref_safe(&run_id));
            if git.commit_of(&format!("refs/heads/{branch}")).is_err() {
                git.ok(&["branch", &branch, &base])?;
            }
            let r = Record { repo, branch, base };
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let json = serde_json::to_vec_pretty(&r).unwrap_or_default();
            std::fs::write(&recorded, json).map_err(io(&recorded))?;
            Ok((r, agents))
        })
        .await?;
        let (r, agents) = record;
        Ok(Some(Arc::new(RunWorktrees {
            repo: r.repo,
            dir: run_dir.join(WORKTREES_DIR),
            run_branch: r.branch,
            base: r.base,
            agents,
            include: swarm.worktree_include.clone(),
            keep: swarm.keep_worktrees.unwrap_or(false),
            resolver,
            trees: Mutex::new(HashMap::new()),
            git_lock: Mutex::new(()),
        })))
    }

    /// The run's branch.
    pub fn run_branch(&self) -> &str {
        &self.run_branch
    }

    /// The commit the run began from.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The repository.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// Whether `agent` works in a worktree of its own.
    pub fn uses(&self, agent: &str) -> bool {
        self.agents.contains(agent)
    }

    /// The agent named to resolve conflicts.
    pub fn resolver(&self) -> Option<&Agent> {
        self.resolver.as_ref()
    }

    /// The branch of `agent`.
    pub fn branch_of(&self, agent: &str) -> String {
        format!("{}-{}", self.run_branch, ref_safe(agent))
    }

    /// Makes (once) and brings up to date `agent`'s worktree for a step whose directory
    /// would have been `cwd`: where the step runs instead.
    pub async fn enter(
        self: &Arc<Self>,
        agent: &str,
        cwd: &Path,
    ) -> Result<Entered, WorktreeError> {
        let me = self.clone();
        let agent = agent.to_string();
        let cwd = cwd.to_path_buf();
        blocking(move || me.enter_now(&agent, &cwd)).await
    }

    fn enter_now(&self, agent: &str, cwd: &Path) -> Result<Entered, WorktreeError> {
        let _g = lock(&self.git_lock);
        let existing = lock(&self.trees).get(agent).cloned();
        let (tree, created) = match existing {
            Some(t) => (t, None),
            None => {
                let t = self.make_tree(agent)?;
                let made = (t.path.clone(), t.branch.clone(), t.copied.clone());
                lock(&self.trees).insert(agent.to_string(), t.clone());
                (t, Some(made))
            }
        };
        let not_synced = self.sync(&tree)?;
        Ok(Entered {
            cwd: map_cwd(&self.repo, &tree.path, cwd),
            created,
            not_synced,
        })
    }

    /// The agent's worktree: found (a resume), or added on its branch (made from the
    /// run's starting commit when new); included files copied in.
    fn make_tree(&self, agent: &str) -> Result<Tree, WorktreeError> {
        let path = self.dir.join(ref_safe(agent));
        let branch = self.branch_of(agent);
        let git = Git::new(&self.repo);
        if !path.join(".git").exists() {
            std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
            let _ = git.ok(&["worktree", "prune"]);
            let p = path.display().to_string();
            if git.commit_of(&format!("refs/heads/{branch}")).is_ok() {
                git.ok(&["worktree", "add", "-q", &p, &branch])?;
            } else {
                git.ok(&["worktree", "add", "-q", "-b", &branch, &p, &self.base])?;
            }
        }
        let copied = copy_included(&self.repo, &path, &self.include)?;
        Ok(Tree {
            path,
            branch,
            copied,
        })
    }

    /// Brings the run's branch into the worktree (a fast-forward when the agent's last
    /// work was merged); a merge that would conflict is left out and said why.
    fn sync(&self, tree: &Tree) -> Result<Option<String>, WorktreeError> {
        let git = Git::new(&tree.path);
        let run = git.commit_of(&self.run_branch)?;
        if git.is_ancestor(&run, "HEAD")? {
            return Ok(None);
        }
        // Leftovers of an attempt that was not committed (a crash) are kept first.
        git.commit_all("changes left by an earlier attempt", &tree.copied)?;
        let out = git.raw(&["merge", "-q", "--no-edit", &run])?;
        if out.status.success() {
            return Ok(None);
        }
        let why = git.failed(&["merge", &self.run_branch], &out).to_string();
        let _ = git.raw(&["merge", "--abort"]);
        Ok(Some(why))
    }

    /// At the end of `step` by `agent`: its changes committed on its branch, and when
    /// it `passed`, merged into the run's branch.
    pub async fn leave(
        self: &Arc<Self>,
        step: &str,
        agent: &str,
        passed: bool,
    ) -> Result<Left, WorktreeError> {
        let me = self.clone();
        let (step, agent) = (step.to_string(), agent.to_string());
        blocking(move || me.leave_now(&step, &agent, passed)).await
    }

    fn leave_now(&self, step: &str, agent: &str, passed: bool) -> Result<Left, WorktreeError> {
        let _g = lock(&self.git_lock);
        let Some(tree) = lock(&self.trees).get(agent).cloned() else {
            return Ok(Left::Unchanged);
        };
        let git = Git::new(&tree.path);
        let committed = git.commit_all(&format!("{step} ({agent})"), &tree.copied)?;
        if !passed {
            return Ok(match committed {
                Some(commit) => Left::Kept { commit },
                None => Left::Unchanged,
            });
        }
        let head = git.commit_of("HEAD")?;
        let run = git.commit_of(&self.run_branch)?;
        if git.is_ancestor(&head, &run)? {
            return Ok(Left::Unchanged);
        }
        let message = format!("Merge {} ({step})", tree.branch);
        match self.merge_into_run(&git, &run, &head, &message)? {
            Ok(commit) => Ok(Left::Merged { commit }),
            Err(m) => {
                let report = self.write_report(step, agent, &tree.branch, &head, &run, &m)?;
                Ok(Left::Conflict(Conflict {
                    branch: tree.branch.clone(),
                    commit: head,
                    run_tip: run,
                    files: m.conflicted,
                    report,
                }))
            }
        }
    }

    /// Moves the run's branch from `run` to include `head`: a fast-forward, or a merge
    /// commit made without a working tree. A conflict changes nothing.
    fn merge_into_run(
        &self,
        git: &Git,
        run: &str,
        head: &str,
        message: &str,
    ) -> Result<Result<String, git::MergeTree>, WorktreeError> {
        let run_ref = format!("refs/heads/{}", self.run_branch);
        if git.is_ancestor(run, head)? {
            git.ok(&["update-ref", &run_ref, head, run])?;
            return Ok(Ok(head.to_string()));
        }
        let m = git.merge_tree(run, head)?;
        if !m.conflicted.is_empty() {
            return Ok(Err(m));
        }
        let commit = git.ok(&["commit-tree", &m.tree, "-p", run, "-p", head, "-m", message])?;
        git.ok(&["update-ref", &run_ref, &commit, run])?;
        Ok(Ok(commit))
    }

    fn write_report(
        &self,
        step: &str,
        agent: &str,
        branch: &str,
        head: &str,
        run: &str,
        m: &git::MergeTree,
    ) -> Result<PathBuf, WorktreeError> {
        let git = Git::new(&self.repo);
        let merged: Vec<(String, String)> = m
            .conflicted
            .iter()
            .map(|f| {
                let text = git
                    .ok(&["show", &format!("{}:{f}", m.tree)])
                    .unwrap_or_else(|e| format!("(cannot show: {e})"));
                (f.clone(), text)
            })
            .collect();
        let text = report::conflict_report(&report::ReportInput {
            step,
            agent,
            branch,
            head,
            run_branch: &self.run_branch,
            run_tip: run,
            messages: &m.messages,
            files: &merged,
        });
        let dir = self.dir.join("conflicts");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{}.md", ref_safe(step)));
        std::fs::write(&path, text).map_err(io(&path))?;
        Ok(path)
    }

    /// A worktree for resolving `c` (the run's branch with the agent's branch being
    /// merged, conflict markers in place), for the step `step`.
    pub async fn start_resolving(
        self: &Arc<Self>,
        step: &str,
        c: &Conflict,
    ) -> Result<PathBuf, WorktreeError> {
        let me = self.clone();
        let (step, c) = (step.to_string(), c.clone());
        blocking(move || {
            let _g = lock(&me.git_lock);
            let path = me.dir.join(format!("resolve-{}", ref_safe(&step)));
            let git = Git::new(&me.repo);
            if path.exists() {
                let _ = git.raw(&["worktree", "remove", "--force", &path.display().to_string()]);
                let _ = std::fs::remove_dir_all(&path);
            }
            git.ok(&[
                "worktree",
                "add",
                "-q",
                "--detach",
                &path.display().to_string(),
                &c.run_tip,
            ])?;
            copy_included(&me.repo, &path, &me.include)?;
            // Exits 1 with the conflict in place, which is the point.
            let t = Git::new(&path);
            let out = t.raw(&["merge", "--no-ff", "--no-commit", "--no-edit", &c.commit])?;
            if out.status.success() {
                // Cannot conflict here after all: the merge is ready to commit.
            } else if !t.test(&["rev-parse", "-q", "--verify", "MERGE_HEAD"])? {
                return Err(t.failed(&["merge", &c.branch], &out).into());
            }
            Ok(path)
        })
        .await
    }

    /// After the resolver worked in `path`: the merge committed and put on the run's
    /// branch, or why not (markers left, or the run's branch conflicts anew).
    pub async fn finish_resolving(
        self: &Arc<Self>,
        step: &str,
        path: &Path,
        c: &Conflict,
    ) -> Result<Resolution, WorktreeError> {
        let me = self.clone();
        let (step, path, c) = (step.to_string(), path.to_path_buf(), c.clone());
        blocking(move || {
            let _g = lock(&me.git_lock);
            let res = me.finish_resolving_now(&step, &path, &c);
            if !me.keep {
                let git = Git::new(&me.repo);
                let _ = git.raw(&["worktree", "remove", "--force", &path.display().to_string()]);
            }
            res
        })
        .await
    }

    fn finish_resolving_now(
        &self,
        step: &str,
        path: &Path,
        c: &Conflict,
    ) -> Result<Resolution, WorktreeError> {
        let left: Vec<&String> = c
            .files
            .iter()
            .filter(|f| {
                std::fs::read(path.join(f))
                    .is_ok_and(|b| git::has_conflict_markers(&String::from_utf8_lossy(&b)))
            })
            .collect();
        if !left.is_empty() {
            return Ok(Resolution::Unresolved(format!(
                "conflict markers are still in {}",
                left.iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let t = Git::new(path);
        let copied = copy_included(&self.repo, path, &self.include)?;
        t.stage_all(&copied)?;
        let merging = t.test(&["rev-parse", "-q", "--verify", "MERGE_HEAD"])?;
        if merging {
            t.ok(&[
                "commit",
                "-q",
                "--no-verify",
                "-m",
                &format!("Merge {} ({step}), conflicts resolved", c.branch),
            ])?;
        }
        let resolved = t.commit_of("HEAD")?;
        if !t.is_ancestor(&c.commit, &resolved)? {
            return Ok(Resolution::Unresolved(
                "the resolution does not contain the agent's commit (the merge was abandoned)"
                    .into(),
            ));
        }
        let run = t.commit_of(&self.run_branch)?;
        match self.merge_into_run(&t, &run, &resolved, &format!("Merge resolution of {step}"))? {
            Ok(commit) => Ok(Resolution::Resolved { commit }),
            Err(m) => Ok(Resolution::Unresolved(format!(
                "the run's branch moved on meanwhile and conflicts again in {}",
                m.conflicted.join(", ")
            ))),
        }
    }

    /// At the run's end: what is left uncommitted in each worktree committed on its
    /// branch, then the worktrees removed unless kept. The agents whose worktrees were
    /// removed.
    pub async fn close(self: &Arc<Self>) -> Result<Vec<String>, WorktreeError> {
        let me = self.clone();
        blocking(move || {
            let _g = lock(&me.git_lock);
            let trees: Vec<(String, Tree)> = lock(&me.trees)
                .iter()
                .map(|(a, t)| (a.clone(), t.clone()))
                .collect();
            let mut removed = Vec::new();
            for (agent, tree) in trees {
                let git = Git::new(&tree.path);
                git.commit_all(&format!("left at the run's end ({agent})"), &tree.copied)?;
                if me.keep {
                    continue;
                }
                Git::new(&me.repo).ok(&[
                    "worktree",
                    "remove",
                    "--force",
                    &tree.path.display().to_string(),
                ])?;
                removed.push(agent);
            }
            let _ = Git::new(&me.repo).ok(&["worktree", "prune"]);
            Ok(removed)
        })
        .await
    }
}

/// Where a step that would have run in `cwd` runs in the worktree at `tree` of the
/// repository at `repo`: the same place relative to the top; a directory outside the
/// repository stays as it is.
pub fn map_cwd(repo: &Path, tree: &Path, cwd: &Path) -> PathBuf {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (repo, c) = (real(repo), real(cwd));
    match c.strip_prefix(&repo) {
        Ok(rel) => tree.join(rel),
        Err(_) => cwd.to_path_buf(),
    }
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// Copies the untracked files `include` names (paths, directories or globs relative to
/// the repository's top) from `repo` into the worktree at `tree`, when they are not
/// there; the paths copied (relative).
fn copy_included(
    repo: &Path,
    tree: &Path,
    include: &[String],
) -> Result<Vec<String>, WorktreeError> {
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let globs: Vec<relay_state::glob::Glob> = include
        .iter()
        .filter(|p| is_glob(p))
        .filter_map(|p| relay_state::glob::Glob::new(p).ok())
        .collect();
    for p in include.iter().filter(|p| !is_glob(p)) {
        let p = p.trim_end_matches('/');
        if repo.join(p).exists() {
            wanted.insert(p.to_string());
        }
    }
    if !globs.is_empty() {
        let listed = Git::new(repo)
            .ok(&["ls-files", "--others", "-z"])
            .unwrap_or_default();
        let ignored = Git::new(repo)
            .ok(&[
                "ls-files",
                "--others",
                "--ignored",
                "--exclude-standard",
                "-z",
            ])
            .unwrap_or_default();
        for f in listed.split('\0').chain(ignored.split('\0')) {
            if !f.is_empty() && globs.iter().any(|g| g.matches(f)) {
                wanted.insert(f.to_string());
            }
        }
    }
    // What the branch tracks is the branch's, never a copy.
    let tracked: BTreeSet<String> = Git::new(tree)
        .ok(&["ls-files", "-z"])
        .unwrap_or_default()
        .split('\0')
        .map(str::to_string)
        .collect();
    let mut copied = Vec::new();
    for rel in wanted {
        // Never the run directory itself, nor another worktree.
        if rel.starts_with(".agent-relay") || tracked.contains(&rel) {
            continue;
        }
        let (from, to) = (repo.join(&rel), tree.join(&rel));
        if to.exists() {
            copied.push(rel);
            continue;
        }
        copy_path(&from, &to).map_err(io(&from))?;
        copied.push(rel);
    }
    Ok(copied)
}

fn copy_path(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            copy_path(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from)?;
        std::os::unix::fs::symlink(target, to)
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

#[cfg(test)]
mod tests;
