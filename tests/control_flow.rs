//! Control flow end to end through the binary: for-each loops over a glob of task files,
//! loops until an output shows and until `maxIterations`, `breakIf`, conditions that skip
//! and run, `outputVar`, `--input`, approval gates decided from another terminal (granted,
//! rejected, timed out, and waiting on across a kill -9 of the coordinator), pause and
//! unpause, and a run killed in the middle of a loop resumed without running a completed
//! iteration twice.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{World, stderr, step, summary, workflow};

fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn out(s: &serde_json::Value, name: &str) -> String {
    step(s, name)["output"]
        .as_str()
        .unwrap_or("")
        .trim()
        .to_string()
}

fn spawn(w: &World, args: &[&str]) -> Child {
    w.cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (Option<i32>, serde_json::Value, String) {
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let s = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o.status.code(), s, err)
}

fn has_event(w: &World, kind: &str, step: &str) -> bool {
    w.events_if_any()
        .iter()
        .any(|e| e["type"] == kind && (step.is_empty() || e["step"] == step))
}

fn count_events(w: &World, kind: &str) -> usize {
    w.events_if_any()
        .iter()
        .filter(|e| e["type"] == kind)
        .count()
}

#[test]
fn a_for_each_loop_runs_an_agent_once_per_task_file() {
    let w = World::new();
    std::fs::create_dir_all(w.path().join("tasks")).unwrap();
    for f in ["b.md", "a.md", "c.txt"] {
        w.write(&format!("tasks/{f}"), "x");
    }
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: each\n        agent: dev\n        task: \"[[fake:echo-task]] handle {{file}} ({{iteration}}/{{maxIterations}})\"\n        loop: {over: \"tasks/*.md\", as: file}\n      - {name: all, type: deterministic, dependsOn: [each], command: \"printf '%s' {{steps.each.outputs}}\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    let all: Vec<String> = serde_json::from_str(&out(&s, "all")).unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].contains("handle tasks/a.md (1/2)"), "{all:?}");
    assert!(all[1].contains("handle tasks/b.md (2/2)"), "{all:?}");
    assert!(
        out(&s, "each").contains("tasks/b.md"),
        "the last is the output"
    );
}

#[test]
fn a_loop_until_ends_on_the_third_iteration_and_one_hits_max_iterations() {
    let w = World::new();
    let body = "if [ {{iteration}} -ge 3 ]; then echo PASS; else echo FAIL; fi";
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            &format!("    steps:\n      - {{name: fix, type: deterministic, command: \"{body}\", until: PASS, maxIterations: 5}}\n"),
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(out(&summary(&o), "fix"), "PASS");
    let started: Vec<String> = w
        .events()
        .iter()
        .filter(|e| e["type"] == "step:started")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(started, ["fix#1", "fix#2", "fix#3"]);

    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: fix, type: deterministic, command: \"echo FAIL\", until: \"regex:^PASS$\", maxIterations: 2}\n      - {name: after, type: deterministic, dependsOn: [fix], command: \"echo no\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "fix")["status"], "failed");
    let reason = step(&s, "fix")["reason"].as_str().unwrap();
    assert!(reason.contains("not met after 2 iterations"), "{reason}");
    assert_eq!(step(&s, "after")["status"], "skipped");
}

#[test]
fn break_if_failure_stops_a_counted_loop() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: work, type: deterministic, command: \"echo n{{iteration}} >> done.log; test {{iteration}} -lt 3\", retries: 0, loop: {max: 6}, breakIf: failure}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(w.read("done.log"), "n1\nn2\nn3\n");
}

#[test]
fn conditions_skip_and_run_steps_and_say_why() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: triage, type: deterministic, command: \"echo found P1\", outputVar: found}\n      - {name: hotfix, type: deterministic, dependsOn: [triage], if: \"contains(steps.triage.output, 'P0')\", command: \"echo hotfix\"}\n      - {name: ticket, type: deterministic, dependsOn: [triage], if: \"steps.triage.status == 'completed' and not contains(steps.triage.output, 'P0') and mode == 'ci'\", command: \"echo ticket for {{found}} by {{who}}\"}\n      - {name: report, type: deterministic, dependsOn: [hotfix, ticket], command: \"echo [{{steps.hotfix.output}}] [{{steps.ticket.output}}]\"}\n",
        ),
    );
    let o = w.run(&[
        "run",
        f.to_str().unwrap(),
        "--json",
        "--input",
        r#"{"mode": "ci", "who": "bot"}"#,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "hotfix")["status"], "skipped");
    let why = step(&s, "hotfix")["reason"].as_str().unwrap();
    assert!(
        why.contains("contains(steps.triage.output, 'P0')") && why.contains("false"),
        "{why}"
    );
    assert_eq!(out(&s, "ticket"), "ticket for found P1 by bot");
    assert_eq!(out(&s, "report"), "[] [ticket for found P1 by bot]");
    // The line view says why too.
    let o = w.run(&[
        "run",
        f.to_str().unwrap(),
        "--input",
        r#"{"mode": "ci", "who": "bot"}"#,
    ]);
    assert!(
        stderr(&o).contains("hotfix skipped: condition"),
        "{}",
        stderr(&o)
    );
    // A variable a condition needs is a missing variable, found before anything runs.
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("mode"), "{}", stderr(&o));
    // A bad --input names the problem.
    let o = w.run(&["run", f.to_str().unwrap(), "--input", "[1, 2]"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("--input"), "{}", stderr(&o));
}

#[test]
fn continue_on_failure_and_skip_if_make_a_fallback() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: fast, type: deterministic, command: \"exit 3\", retries: 0, continueOnFailure: true}\n      - {name: slow, type: deterministic, dependsOn: [fast], skipIf: previous_success, command: \"echo slow path\"}\n      - {name: cached, type: deterministic, skipIf: {sh: \"test -f cache.txt\"}, command: \"echo built > cache.txt; echo built\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "fast")["status"], "failed");
    assert_eq!(out(&s, "slow"), "slow path");
    assert_eq!(out(&s, "cached"), "built");
    // The second time the cache is there: skipped.
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    assert_eq!(step(&s, "cached")["status"], "skipped");
    assert!(
        step(&s, "cached")["reason"]
            .as_str()
            .unwrap()
            .contains("exited 0")
    );
}

fn approval_workflow(w: &World, approval: &str) -> std::path::PathBuf {
    w.write(
        "wf.yaml",
        &workflow(
            "",
            &format!("    steps:\n      - {{name: build, type: deterministic, command: \"echo built\"}}\n      - {{name: deploy, type: deterministic, dependsOn: [build], command: \"echo deployed > deployed.txt; echo deployed\", approval: {approval}}}\n"),
        ),
    )
}

#[test]
fn an_approval_granted_from_another_terminal_starts_the_step() {
    let w = World::new();
    let f = approval_workflow(&w, "required");
    let child = spawn(&w, &["run", f.to_str().unwrap(), "--json"]);
    wait_for(
        || has_event(&w, "approval:requested", "deploy"),
        "the request",
    );
    let listed = w.run(&["approvals", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["step"], "deploy");
    assert!(
        !w.path().join("deployed.txt").exists(),
        "nothing ran before approval"
    );
    let wrong = w.run(&["approve", "last", "build"]);
    assert_eq!(wrong.status.code(), Some(3));
    assert!(stderr(&wrong).contains("`deploy`"), "{}", stderr(&wrong));
    let a = w.run(&[
        "approve", "last", "deploy", "--reason", "ship it", "--by", "ann",
    ]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let (code, s, err) = finish(child);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out(&s, "deploy"), "deployed");
    let decided = w
        .events()
        .into_iter()
        .find(|e| e["type"] == "approval:decided")
        .unwrap();
    assert_eq!(decided["approved"], true);
    assert_eq!(decided["by"], "ann");
    assert_eq!(decided["reason"], "ship it");
}

#[test]
fn a_rejected_step_does_not_run_and_the_run_fails() {
    let w = World::new();
    let f = approval_workflow(&w, "{approvers: [ann]}");
    let child = spawn(&w, &["run", f.to_str().unwrap(), "--json"]);
    wait_for(
        || has_event(&w, "approval:requested", "deploy"),
        "the request",
    );
    let bob = w.run(&["reject", "last", "deploy", "--by", "bob"]);
    assert_eq!(bob.status.code(), Some(3), "only approvers decide");
    let r = w.run(&[
        "reject", "last", "deploy", "--by", "ann", "--reason", "freeze",
    ]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let (code, s, err) = finish(child);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(step(&s, "deploy")["reason"], "rejected by ann: freeze");
    assert!(!w.path().join("deployed.txt").exists());
}

#[test]
fn an_approval_that_times_out_rejects_by_default() {
    let w = World::new();
    let f = approval_workflow(&w, "{timeoutMs: 300}");
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let reason = step(&summary(&o), "deploy")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("rejected by timeout"), "{reason}");
    assert!(!w.path().join("deployed.txt").exists());
}

#[test]
fn an_approval_wait_survives_a_kill_of_the_coordinator() {
    let w = World::new();
    let f = approval_workflow(&w, "required");
    let mut child = spawn(&w, &["run", f.to_str().unwrap(), "--json"]);
    wait_for(
        || has_event(&w, "approval:requested", "deploy"),
        "the request",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = spawn(&w, &["resume", "last", "--json"]);
    wait_for(
        || count_events(&w, "approval:requested") == 2,
        "the request again",
    );
    let a = w.run(&["approve", "last", "deploy"]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let (code, s, err) = finish(resumed);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out(&s, "deploy"), "deployed");
    // build ran once: kept by the resume.
    let builds = w
        .events()
        .iter()
        .filter(|e| e["type"] == "step:started" && e["step"] == "build")
        .count();
    assert_eq!(builds, 1);
}

#[test]
fn pause_holds_new_steps_and_unpause_lets_them_start() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: one, type: deterministic, command: \"sleep 0.5; echo one\"}\n      - {name: two, type: deterministic, dependsOn: [one], command: \"echo two\"}\n",
        ),
    );
    let child = spawn(&w, &["run", f.to_str().unwrap(), "--json"]);
    wait_for(|| has_event(&w, "step:started", "one"), "one to start");
    let p = w.run(&["pause", "last"]);
    assert_eq!(p.status.code(), Some(0), "{}", stderr(&p));
    let again = w.run(&["pause", "last"]);
    assert_eq!(again.status.code(), Some(3), "already paused");
    wait_for(|| has_event(&w, "step:completed", "one"), "one to finish");
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        !has_event(&w, "step:started", "two"),
        "two waits while paused"
    );
    let u = w.run(&["unpause", "last"]);
    assert_eq!(u.status.code(), Some(0), "{}", stderr(&u));
    let (code, s, err) = finish(child);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out(&s, "two"), "two");
    assert!(has_event(&w, "run:paused", "") && has_event(&w, "run:unpaused", ""));
}

#[test]
fn a_run_killed_inside_a_loop_resumes_at_the_iteration_it_was_in() {
    let w = World::new();
    let body = "if [ {{iteration}} = 3 ] && [ ! -f go ]; then sleep 60; fi; echo n{{iteration}} >> done.log; echo n{{iteration}}";
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            &format!("    steps:\n      - {{name: work, type: deterministic, command: \"{body}\", loop: {{max: 5}}}}\n      - {{name: after, type: deterministic, dependsOn: [work], command: \"printf '%s' {{{{steps.work.outputs}}}}\"}}\n"),
        ),
    );
    let mut child = spawn(&w, &["run", f.to_str().unwrap(), "--json"]);
    wait_for(|| has_event(&w, "step:started", "work#3"), "iteration 3");
    child.kill().unwrap();
    child.wait().unwrap();
    w.write("go", "");
    let o = w.run(&["resume", "last", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        w.read("done.log"),
        "n1\nn2\nn3\nn4\nn5\n",
        "no iteration ran twice"
    );
    let all: Vec<String> = serde_json::from_str(&out(&summary(&o), "after")).unwrap();
    assert_eq!(all, ["n1", "n2", "n3", "n4", "n5"]);
}
