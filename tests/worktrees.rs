//! A git worktree per agent end to end: the real binary in a real git repository,
//! agents we did not write editing files in parallel, merged into the run's branch;
//! a conflict that keeps both versions; a resolver that resolves one; `.env` copied in.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::*;

/// Installs `program` as a script agent: it runs the first line of its task (on stdin
/// after `-`, else its last argument) as a shell script.
fn script_agent(w: &World, program: &str) {
    install(
        w,
        program,
        "#!/bin/sh\nfor a; do t=\"$a\"; done\nif [ \"$t\" = - ]; then t=$(cat); fi\neval \"$(printf '%s\\n' \"$t\" | head -n 1)\"\n",
    );
}

fn install(w: &World, program: &str, script: &str) {
    let path = w.bin.join(program);
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The world's directory as a repository with one commit (`shared.txt`), and an
/// untracked `.env`.
fn repository(w: &World) {
    let d = w.path();
    git(d, &["init", "-q", "-b", "main"]);
    w.write(
        ".gitignore",
        "bin/\nstate/\nagents.log\n.agent-relay/\nwf.yaml\n",
    );
    w.write("shared.txt", "line one\nline two\nline three\n");
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "start"]);
    w.write(".env", "TOKEN=secret\n");
}

fn agents(names: &[&str]) -> String {
    let mut out = String::from("agents:\n");
    for n in names {
        out.push_str(&format!(
            "  - name: {n}\n    cli: codex\n    interactive: false\n"
        ));
    }
    out
}

fn events_of<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn run_branch(events: &[serde_json::Value]) -> String {
    events_of(events, "worktree:run-branch")[0]["branch"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn three_agents_editing_different_files_are_merged_into_one_branch() {
    let w = World::new();
    script_agent(&w, "codex");
    repository(&w);
    let edit = r#"test -f .env && echo "by $AGENT_RELAY_NAME" > "$AGENT_RELAY_NAME.txt" && pwd"#;
    let yaml = format!(
        "version: \"1.0\"\nname: wt\nswarm: {{worktrees: per-agent, worktreeInclude: ['.env']}}\n{}workflows:\n  - name: main\n    steps:\n\
         \x20     - {{name: sa, agent: a, task: '{edit}'}}\n\
         \x20     - {{name: sb, agent: b, task: '{edit}'}}\n\
         \x20     - {{name: sc, agent: c, task: '{edit}'}}\n\
         \x20     - {{name: all, agent: a, dependsOn: [sa, sb, sc], task: 'cat a.txt b.txt c.txt'}}\n",
        agents(&["a", "b", "c"]),
    );
    let f = w.write("wf.yaml", &yaml);
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    assert_eq!(s["status"], "completed", "{}", stderr(&o));
    let events = w.events();
    let branch = run_branch(&events);
    assert!(branch.starts_with("agent-relay/"), "{branch}");
    for a in ["a", "b", "c"] {
        assert_eq!(
            git(w.path(), &["show", &format!("{branch}:{a}.txt")]),
            format!("by {a}"),
            "every change is on the run's branch"
        );
    }
    assert_eq!(
        step(&s, "all")["output"].as_str().unwrap().trim(),
        "by a\nby b\nby c",
        "a later step of an agent sees what the others merged"
    );
    let created = events_of(&events, "worktree:created");
    assert_eq!(created.len(), 3, "{created:?}");
    for c in &created {
        assert_eq!(c["copied"], serde_json::json!([".env"]), "{c}");
        let path = c["path"].as_str().unwrap();
        assert!(!Path::new(path).exists(), "removed at the end: {path}");
    }
    let ran_in = step(&s, "sa")["output"]
        .as_str()
        .unwrap()
        .trim()
        .to_string();
    assert!(
        ran_in.contains("/worktrees/a"),
        "the agent ran in its worktree: {ran_in}"
    );
    assert_eq!(events_of(&events, "worktree:merged").len(), 3);
    let tracked = git(w.path(), &["ls-tree", "-r", "--name-only", &branch]);
    assert!(
        !tracked.contains(".env"),
        "a copied file is never committed"
    );
    // The user's checkout is as it was.
    assert!(!w.path().join("a.txt").exists());
    assert_eq!(git(w.path(), &["branch", "--show-current"]), "main");
    assert!(w.leftovers().is_empty());
}

/// Alice and Bob change the same line at once.
fn same_line(extra_swarm: &str, extra_agents: &str) -> String {
    let edit = r#"sed -i "2s/.*/line two by $AGENT_RELAY_NAME/" shared.txt"#;
    format!(
        "version: \"1.0\"\nname: clash\nswarm: {{worktrees: per-agent{extra_swarm}}}\n{}{extra_agents}workflows:\n  - name: main\n    steps:\n\
         \x20     - {{name: a, agent: alice, task: '{edit}'}}\n\
         \x20     - {{name: b, agent: bob, task: '{edit}'}}\n",
        agents(&["alice", "bob"]),
    )
}

#[test]
fn the_same_lines_edited_twice_are_a_conflict_with_both_versions_kept() {
    let w = World::new();
    script_agent(&w, "codex");
    repository(&w);
    let f = w.write("wf.yaml", &same_line(", keepWorktrees: true", ""));
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    let events = w.events();
    let conflicts = events_of(&events, "worktree:conflict");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let c = conflicts[0];
    let (loser, loser_agent) = (c["step"].as_str().unwrap(), c["agent"].as_str().unwrap());
    let (winner, winner_agent) = if loser == "a" {
        ("b", "bob")
    } else {
        ("a", "alice")
    };
    assert_eq!(step(&s, winner)["status"], "completed");
    assert_eq!(step(&s, loser)["status"], "failed");
    let reason = step(&s, loser)["reason"].as_str().unwrap();
    assert!(
        reason.contains("merge conflict with the run's branch in shared.txt")
            && reason.contains("both versions are kept"),
        "{reason}"
    );
    assert_eq!(c["files"], serde_json::json!(["shared.txt"]));
    let branch = run_branch(&events);
    assert!(
        git(w.path(), &["show", &format!("{branch}:shared.txt")])
            .contains(&format!("line two by {winner_agent}"))
    );
    let kept = c["branch"].as_str().unwrap();
    assert!(
        git(w.path(), &["show", &format!("{kept}:shared.txt")])
            .contains(&format!("line two by {loser_agent}")),
        "the conflicting version is kept on its branch"
    );
    let report = std::fs::read_to_string(c["report"].as_str().unwrap()).unwrap();
    assert!(
        report.contains(&format!("line two by {winner_agent}"))
            && report.contains(&format!("line two by {loser_agent}")),
        "{report}"
    );
    // keepWorktrees: they are still there.
    for e in events_of(&events, "worktree:created") {
        assert!(Path::new(e["path"].as_str().unwrap()).exists());
    }
    assert!(
        stderr(&o).contains("merge conflict in shared.txt"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_resolver_is_given_the_conflict_and_its_resolution_is_merged() {
    let w = World::new();
    script_agent(&w, "codex");
    repository(&w);
    // A resolver that keeps both sides: it drops the marker lines.
    install(
        &w,
        "opencode",
        "#!/bin/sh\ncat > \"$AGENT_RELAY_RUN_DIR/resolver-task.txt\"\nsed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' shared.txt\n",
    );
    let fixer = "  - {name: fixer, cli: opencode, interactive: false}\n";
    let f = w.write("wf.yaml", &same_line(", resolver: fixer", fixer));
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    assert_eq!(s["status"], "completed", "{}", stderr(&o));
    let events = w.events();
    assert_eq!(events_of(&events, "worktree:conflict").len(), 1);
    let resolved = events_of(&events, "worktree:resolved");
    assert_eq!(resolved.len(), 1, "{events:?}");
    assert_eq!(resolved[0]["resolver"], "fixer");
    let branch = run_branch(&events);
    let merged = git(w.path(), &["show", &format!("{branch}:shared.txt")]);
    assert!(
        merged.contains("line two by alice") && merged.contains("line two by bob"),
        "{merged}"
    );
    assert!(!merged.contains("<<<<<<<"), "{merged}");
    let task = std::fs::read_to_string(w.run_dir().join("resolver-task.txt")).unwrap();
    assert!(
        task.contains("shared.txt") && task.contains("conflict markers"),
        "{task}"
    );
}

#[test]
fn outside_a_git_repository_worktree_agents_do_not_start() {
    let w = World::new();
    script_agent(&w, "codex");
    let yaml = format!(
        "version: \"1.0\"\nname: wt\n{}workflows:\n  - name: main\n    steps:\n      - {{name: s, agent: a, task: 'true'}}\n",
        agents(&["a"]).replace(
            "interactive: false\n",
            "interactive: false\n    worktree: true\n"
        ),
    );
    let f = w.write("wf.yaml", &yaml);
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("agent `a` works in git worktrees")
            && err.contains("is not inside a git repository")
            && err.contains("nothing was run"),
        "{err}"
    );
    assert!(
        !w.has_run_dir(),
        "no run directory for a run that never started"
    );
}
