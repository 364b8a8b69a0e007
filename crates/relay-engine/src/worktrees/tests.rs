//! Worktrees against real git repositories in temporary directories.

use super::*;

fn sh(dir: &Path, args: &[&str]) -> String {
    Git::new(dir).ok(args).unwrap()
}

/// A repository with two committed files, an untracked `.env` and an ignored
/// `secrets/key`, and a workflow whose agents `a`, `b`, `c` have worktrees.
fn repo(extra_swarm: &str) -> (tempfile::TempDir, RelayFile) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    sh(root, &["init", "-q", "-b", "main"]);
    std::fs::write(root.join("shared.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(root.join(".gitignore"), "secrets/\n.agent-relay/\n").unwrap();
    Git::new(root).commit_all("base", &[]).unwrap();
    std::fs::write(root.join(".env"), "TOKEN=x\n").unwrap();
    std::fs::create_dir_all(root.join("secrets")).unwrap();
    std::fs::write(root.join("secrets/key"), "k\n").unwrap();
    let src = format!(
        "name: t\nagents:\n  - {{name: a, cli: claude}}\n  - {{name: b, cli: claude}}\n  - {{name: c, cli: claude}}\n  - {{name: fixer, cli: claude, worktree: false}}\nswarm: {{worktrees: per-agent, worktreeInclude: ['.env', 'secrets/*'], {extra_swarm}}}\nworkflows:\n  - name: w\n    steps:\n      - {{name: s, agent: a, task: go}}\n"
    );
    let file = relay_spec::parse(&src, "w.yaml").unwrap().file;
    (dir, file)
}

async fn open(dir: &Path, file: &RelayFile) -> Arc<RunWorktrees> {
    let run_dir = dir.join(".agent-relay/runs/r1");
    std::fs::create_dir_all(&run_dir).unwrap();
    RunWorktrees::open(file, dir, &run_dir, "r1", false)
        .await
        .unwrap()
        .expect("agents have worktrees")
}

fn show(dir: &Path, rev_path: &str) -> String {
    sh(dir, &["show", rev_path])
}

#[tokio::test]
async fn three_agents_on_different_files_all_land_on_the_run_branch() {
    let (dir, file) = repo("");
    let root = dir.path();
    let w = open(root, &file).await;
    assert!(w.uses("a") && !w.uses("fixer"));
    let mut paths = Vec::new();
    for agent in ["a", "b", "c"] {
        let e = w.enter(agent, root).await.unwrap();
        let (path, branch, copied) = e.created.expect("made on first use");
        assert_eq!(branch, format!("agent-relay/r1-{agent}"));
        assert_eq!(copied, vec![".env", "secrets/key"]);
        assert_eq!(e.cwd, path);
        assert_eq!(
            std::fs::read_to_string(path.join(".env")).unwrap(),
            "TOKEN=x\n"
        );
        std::fs::write(path.join(format!("{agent}.txt")), format!("by {agent}\n")).unwrap();
        paths.push(path);
    }
    // The three finish in the order c, a, b.
    for agent in ["c", "a", "b"] {
        let left = w
            .leave(&format!("step-{agent}"), agent, true)
            .await
            .unwrap();
        assert!(matches!(left, Left::Merged { .. }), "{agent}: {left:?}");
    }
    for agent in ["a", "b", "c"] {
        assert_eq!(
            show(root, &format!("agent-relay/r1:{agent}.txt")),
            format!("by {agent}")
        );
    }
    let files = sh(root, &["ls-tree", "-r", "--name-only", "agent-relay/r1"]);
    assert!(
        !files.contains(".env") && !files.contains("secrets"),
        "{files}"
    );
    // The user's checkout was not touched.
    assert_eq!(sh(root, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    assert!(!root.join("a.txt").exists());
    // Entering again brings the others' work in.
    let e = w.enter("a", root).await.unwrap();
    assert!(e.created.is_none() && e.not_synced.is_none());
    assert!(paths[0].join("b.txt").exists() && paths[0].join("c.txt").exists());
    let removed = w.close().await.unwrap();
    assert_eq!(removed.len(), 3);
    assert!(paths.iter().all(|p| !p.exists()), "worktrees are removed");
    let branches = sh(root, &["branch", "--list", "agent-relay/*"]);
    assert!(
        branches.contains("agent-relay/r1-b"),
        "branches stay: {branches}"
    );
}

#[tokio::test]
async fn the_same_lines_conflict_and_both_versions_are_kept() {
    let (dir, file) = repo("keepWorktrees: true");
    let root = dir.path();
    let w = open(root, &file).await;
    let pa = w.enter("a", root).await.unwrap().cwd;
    let pb = w.enter("b", root).await.unwrap().cwd;
    std::fs::write(pa.join("shared.txt"), "one\nTWO by a\nthree\n").unwrap();
    std::fs::write(pb.join("shared.txt"), "one\nTWO by b\nthree\n").unwrap();
    assert!(matches!(
        w.leave("first", "a", true).await.unwrap(),
        Left::Merged { .. }
    ));
    let before = sh(root, &["rev-parse", "agent-relay/r1"]);
    let Left::Conflict(c) = w.leave("second", "b", true).await.unwrap() else {
        panic!("the same line changed on both sides conflicts");
    };
    assert_eq!(c.files, vec!["shared.txt"]);
    assert_eq!(c.branch, "agent-relay/r1-b");
    assert_eq!(sh(root, &["rev-parse", "agent-relay/r1"]), before);
    assert!(show(root, "agent-relay/r1:shared.txt").contains("TWO by a"));
    assert!(show(root, "agent-relay/r1-b:shared.txt").contains("TWO by b"));
    let report = std::fs::read_to_string(&c.report).unwrap();
    assert!(
        report.contains("TWO by a") && report.contains("TWO by b"),
        "{report}"
    );
    assert!(report.contains("git merge agent-relay/r1-b"));
    // keepWorktrees: they stay.
    w.close().await.unwrap();
    assert!(pa.exists() && pb.exists());
}

#[tokio::test]
async fn a_resolution_lands_on_the_run_branch_and_markers_do_not() {
    let (dir, file) = repo("");
    let root = dir.path();
    let w = open(root, &file).await;
    let pa = w.enter("a", root).await.unwrap().cwd;
    let pb = w.enter("b", root).await.unwrap().cwd;
    std::fs::write(pa.join("shared.txt"), "one\nA\nthree\n").unwrap();
    std::fs::write(pb.join("shared.txt"), "one\nB\nthree\n").unwrap();
    w.leave("first", "a", true).await.unwrap();
    let Left::Conflict(c) = w.leave("second", "b", true).await.unwrap() else {
        panic!("a conflict");
    };
    // A resolver that leaves the markers resolves nothing.
    let path = w.start_resolving("second", &c).await.unwrap();
    assert!(git::has_conflict_markers(
        &std::fs::read_to_string(path.join("shared.txt")).unwrap()
    ));
    assert!(
        path.join(".env").exists(),
        "included files reach the resolver too"
    );
    let r = w.finish_resolving("second", &path, &c).await.unwrap();
    assert!(
        matches!(&r, Resolution::Unresolved(why) if why.contains("shared.txt")),
        "{r:?}"
    );
    // One that edits them does.
    let path = w.start_resolving("second", &c).await.unwrap();
    std::fs::write(path.join("shared.txt"), "one\nA and B\nthree\n").unwrap();
    let r = w.finish_resolving("second", &path, &c).await.unwrap();
    let Resolution::Resolved { commit } = r else {
        panic!("resolved: {r:?}");
    };
    assert_eq!(sh(root, &["rev-parse", "agent-relay/r1"]), commit);
    assert_eq!(
        show(root, "agent-relay/r1:shared.txt"),
        "one\nA and B\nthree"
    );
    assert!(
        Git::new(root)
            .is_ancestor(&c.commit, "agent-relay/r1")
            .unwrap(),
        "the agent's commit is part of the run's branch"
    );
    let files = sh(root, &["ls-tree", "-r", "--name-only", "agent-relay/r1"]);
    assert!(!files.contains(".env"), "{files}");
}

#[tokio::test]
async fn a_failed_step_is_committed_on_its_branch_only() {
    let (dir, file) = repo("");
    let root = dir.path();
    let w = open(root, &file).await;
    let p = w.enter("a", root).await.unwrap().cwd;
    std::fs::write(p.join("half.txt"), "half done\n").unwrap();
    let left = w.leave("s", "a", false).await.unwrap();
    assert!(matches!(left, Left::Kept { .. }), "{left:?}");
    assert_eq!(show(root, "agent-relay/r1-a:half.txt"), "half done");
    assert!(
        Git::new(root)
            .raw(&["show", "agent-relay/r1:half.txt"])
            .unwrap()
            .status
            .code()
            != Some(0)
    );
    assert_eq!(
        w.leave("s", "a", true).await.unwrap(),
        Left::Merged {
            commit: sh(root, &["rev-parse", "agent-relay/r1-a"])
        }
    );
}

#[tokio::test]
async fn a_resumed_run_finds_its_branch_and_worktrees() {
    let (dir, file) = repo("");
    let root = dir.path();
    let w = open(root, &file).await;
    let p = w.enter("a", root).await.unwrap().cwd;
    std::fs::write(p.join("x.txt"), "x\n").unwrap();
    w.leave("s", "a", true).await.unwrap();
    // A new commit in the user's checkout does not move a resumed run's start.
    std::fs::write(root.join("later.txt"), "later\n").unwrap();
    Git::new(root)
        .commit_all("later", &[".env".into(), "secrets".into()])
        .unwrap();
    let run_dir = root.join(".agent-relay/runs/r1");
    let again = RunWorktrees::open(&file, root, &run_dir, "r1", true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.base(), w.base());
    let e = again.enter("a", root).await.unwrap();
    assert_eq!(e.cwd, p);
    assert!(e.cwd.join("x.txt").exists());
}

#[tokio::test]
async fn outside_a_repository_or_before_a_commit_the_run_cannot_start() {
    let (_d, file) = repo("");
    let empty = tempfile::tempdir().unwrap();
    let e = preflight(&file, empty.path()).await.unwrap_err();
    assert!(matches!(e, WorktreeError::NotARepo { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("`a`, `b`, `c` work in git worktrees"),
        "{e}"
    );
    sh(empty.path(), &["init", "-q"]);
    let e = preflight(&file, empty.path()).await.unwrap_err();
    assert!(e.to_string().contains("has no commit yet"), "{e}");
    let none = relay_spec::parse(
        "name: t\nagents: [{name: a, cli: claude}]\nworkflows: [{name: w, steps: [{name: s, agent: a, task: go}]}]\n",
        "w.yaml",
    )
    .unwrap()
    .file;
    preflight(&none, empty.path()).await.unwrap();
    let run_dir = empty.path().join("run");
    assert!(
        RunWorktrees::open(&none, empty.path(), &run_dir, "r", false)
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_directory_inside_the_repository_maps_into_the_worktree() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("sub/deep")).unwrap();
    let tree = Path::new("/wt/a");
    assert_eq!(map_cwd(&repo, tree, &repo), tree);
    assert_eq!(
        map_cwd(&repo, tree, &repo.join("sub/deep")),
        tree.join("sub/deep")
    );
    let outside = dir.path().join("elsewhere");
    assert_eq!(map_cwd(&repo, tree, &outside), outside);
}
