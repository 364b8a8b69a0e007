//! Control flow end to end through the binary: for-each loops over a glob of task files,
//! loops until an output shows and until `maxIterations`, `breakIf`, conditions that skip
//! and run, `outputVar`, `--input`, approval gates decided from another terminal (granted,
//! rejected, timed out, and waiting on across a kill -9 of the coordinator), pause and
//! unpause, a run killed in the middle of a loop resumed without running a completed
//! iteration twice, and checklists.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Child;
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
    w.spawn(args)
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

/// The labels of the nodes that started, in order.
fn started(w: &World) -> Vec<String> {
    w.events()
        .iter()
        .filter(|e| e["type"] == "step:started")
        .filter_map(|e| e["step"].as_str().map(str::to_owned))
        .collect()
}

/// Runs `f`, kills the coordinator (SIGKILL) once node `label` started, lets a step that
/// waits for the file `go` go on, and resumes the run.
fn kill_at_then_resume(w: &World, f: &std::path::Path, label: &str) -> std::process::Output {
    let mut child = spawn(w, &["run", f.to_str().unwrap(), "--json"]);
    wait_for(|| has_event(w, "step:started", label), label);
    child.kill().unwrap();
    child.wait().unwrap();
    // The killed run's agents end with it (its watchdog); one still alive when `go`
    // appears could finish the attempt the resume runs again.
    wait_for(
        || w.leftovers().is_empty(),
        "the killed run's agents to end",
    );
    w.write("go", "");
    w.run(&["resume", "last", "--json"])
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
    assert_eq!(started(&w), ["fix#1", "fix#2", "fix#3"]);

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
    // With no coordinator, the decision has nobody to go to: the error says to resume.
    let early = w.run(&["approve", "last", "deploy"]);
    assert_eq!(early.status.code(), Some(3), "{}", stderr(&early));
    assert!(
        stderr(&early).contains("is not running (interrupted)")
            && stderr(&early).contains("agent-relay resume"),
        "{}",
        stderr(&early)
    );
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
    let o = kill_at_then_resume(&w, &f, "work#3");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        w.read("done.log"),
        "n1\nn2\nn3\nn4\nn5\n",
        "no iteration ran twice"
    );
    let all: Vec<String> = serde_json::from_str(&out(&summary(&o), "after")).unwrap();
    assert_eq!(all, ["n1", "n2", "n3", "n4", "n5"]);
}

/// A checklist step is complete only once every item is marked done: here one item per
/// attempt, so two re-prompts name what is still open.
#[test]
fn a_checklist_needs_two_re_prompts_until_every_item_is_done() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: build\n        agent: dev\n        retries: 3\n        task: \"[[fake:task-next=tests,docs,lint]] [[fake:echo-task]]\"\n        verification:\n          type: checklist\n          items: [{id: tests, title: Tests pass}, {id: docs, title: README updated}, {id: lint}]\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "build")["attempts"], 3, "{s}");
    let text = out(&s, "build");
    assert!(
        text.contains("## Checklist") && text.contains("- [ ] docs: README updated"),
        "{text}"
    );
    assert!(
        text.contains("checklist items not marked done: `lint`"),
        "the re-prompt names what is open: {text}"
    );
    let t = w.run(&["tasks", "last", "--json"]);
    assert_eq!(t.status.code(), Some(0), "{}", stderr(&t));
    let listed: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap();
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("tests", "done"), ("docs", "done"), ("lint", "done")]
    );
}

/// An item marked blocked ends the step for good and the run waits for a person (exit
/// 2); a mark of an unknown item is refused with the items named.
#[test]
fn a_checklist_item_blocked_ends_the_run_for_a_person() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: deploy\n        agent: dev\n        retries: 2\n        task: \"[[fake:task=done:tset]] [[fake:task=done:tests]] [[fake:task=blocked:creds:needs prod credentials]]\"\n        verification: {type: checklist, items: [{id: tests}, {id: creds, title: Deploy with prod credentials}]}\n      - {name: after, dependsOn: [deploy], type: deterministic, command: 'echo never'}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["status"], "needs_human", "{s}");
    let deploy = step(&s, "deploy");
    assert_eq!(deploy["attempts"], 1, "a blocked item is not retried: {s}");
    let reason = deploy["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("blocked") && reason.contains("needs prod credentials"),
        "{reason}"
    );
    assert_eq!(step(&s, "after")["status"], "skipped", "{s}");
    let refused =
        std::fs::read_to_string(w.run_dir().join("steps/deploy/stderr.log")).unwrap_or_default();
    assert!(
        refused.contains("no checklist item `tset`")
            && refused.contains("its items are tests, creds"),
        "{refused}"
    );
}

/// With a terminal on stdin, `agent-relay run` asks about a step that waits for approval,
/// and the answer typed there decides it.
#[test]
fn an_approval_is_decided_at_the_terminal_prompt() {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};

    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: deploy, type: deterministic, command: 'echo deployed', approval: required}\n",
        ),
    );
    let mut cmd = w.cmd();
    cmd.args(["run", f.to_str().unwrap()]);
    let mut b = CommandBuilder::new(cmd.get_program());
    b.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => b.env(k, v),
            None => b.env_remove(k),
        }
    }
    b.cwd(cmd.get_current_dir().unwrap_or(w.path()));
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut child = pty.slave.spawn_command(b).unwrap();
    drop(pty.slave);
    let screen = Arc::new(Mutex::new(String::new()));
    let mut reader = pty.master.try_clone_reader().unwrap();
    let seen = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    wait_for(
        || screen.lock().unwrap().contains("approve step `deploy`?"),
        "the prompt",
    );
    let mut writer = pty.master.take_writer().unwrap();
    writer.write_all(b"y\n").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", screen.lock().unwrap());
    let decided: Vec<serde_json::Value> = w
        .events()
        .into_iter()
        .filter(|e| e["type"] == "approval:decided")
        .collect();
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["approved"], true);
    assert!(has_event(&w, "step:completed", "deploy"));
}

/// A checklist kept in a file next to the workflow; a rehearsal marks every item done.
#[test]
fn a_checklist_file_is_read_and_a_rehearsal_marks_it_done() {
    let w = World::new();
    w.write(
        "checks.yaml",
        "- 'tests: Tests pass'\n- {id: docs, title: README updated}\n",
    );
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: build, agent: dev, task: go, verification: {type: checklist, value: checks.yaml}}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--rehearse", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = w.run(&["tasks", "last", "build", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap();
    let items: Vec<(&str, &str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap(),
                i["title"].as_str().unwrap(),
                i["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            ("tests", "Tests pass", "done"),
            ("docs", "README updated", "done")
        ]
    );
    let missing = w.write(
        "bad.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: build, agent: dev, task: go, verification: {type: checklist, value: nope.yaml}}\n",
        ),
    );
    let o = w.run(&["validate", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("checklist file"), "{}", stderr(&o));
}

/// A sub-workflow with params, nested twice: its steps run inside the run under the
/// parent step's name, its result is the parent step's output, and files that include
/// each other are refused.
#[test]
fn sub_workflows_run_inside_the_run_nested_twice() {
    let w = World::new();
    w.write(
        "inner.yaml",
        "version: \"1.0\"\nname: inner\nagents:\n  - {name: dev, cli: claude, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - {name: hello, agent: dev, task: \"[[fake:say=hello {{who}}]]\"}\n",
    );
    w.write(
        "sub.yaml",
        "version: \"1.0\"\nname: sub\nvariables:\n  target: {default: api}\n  mode: {default: fast}\nagents:\n  - {name: dev, cli: claude, interactive: false}\nworkflows:\n  - name: other\n    steps:\n      - {name: nothing, type: deterministic, command: 'true'}\n  - name: ci\n    steps:\n      - {name: build, type: deterministic, command: 'echo built {{target}} {{mode}}'}\n      - {name: test, type: deterministic, dependsOn: [build], command: \"echo tested {{steps.build.output}}\"}\n      - {name: inner, dependsOn: [test], workflow: inner.yaml, params: {who: '{{target}}'}}\n",
    );
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: prep, type: deterministic, command: 'echo prepared'}\n      - {name: ci, workflow: sub.yaml, workflowName: ci, params: {target: web}, dependsOn: [prep]}\n      - {name: report, type: deterministic, dependsOn: [ci], command: \"echo report: {{steps.ci.output}}\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(out(&s, "ci/build"), "built web fast");
    assert_eq!(out(&s, "ci/test"), "tested built web fast");
    assert!(out(&s, "ci/inner/hello").contains("hello web"), "{s}");
    assert!(out(&s, "ci").contains("hello web"), "the result: {s}");
    assert!(out(&s, "report").starts_with("report: hello web"), "{s}");
    // The sub-workflow's steps start after what the parent step depends on.
    assert_eq!(
        started(&w),
        [
            "prep",
            "ci/build",
            "ci/test",
            "ci/inner/hello",
            "ci/inner",
            "ci",
            "report"
        ]
    );

    w.write(
        "a.yaml",
        &workflow("", "    steps:\n      - {name: b, workflow: b.yaml}\n"),
    );
    w.write(
        "b.yaml",
        &workflow("", "    steps:\n      - {name: a, workflow: a.yaml}\n"),
    );
    let o = w.run(&["validate", w.path().join("a.yaml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("include each other"), "{}", stderr(&o));
}

/// Runs three steps of an agent per CLI in `clis` (agent options `agent`): a first turn,
/// a second with `session: resume` recalling it, a third without; the run's summary.
fn run_three_turns(w: &World, clis: &[&str], agent: &str) -> serde_json::Value {
    let mut agents = String::from("agents:\n");
    let mut steps = String::from("workflows:\n  - name: main\n    steps:\n");
    for cli in clis {
        agents.push_str(&format!("  - {{name: {cli}-dev, cli: {cli}{agent}}}\n"));
        steps.push_str(&format!(
            "      - {{name: {cli}-1, agent: {cli}-dev, task: \"first {cli} turn [[fake:say=ok]]\"}}\n\
             \x20     - {{name: {cli}-2, agent: {cli}-dev, dependsOn: [{cli}-1], session: resume, task: \"[[fake:recall]]\"}}\n\
             \x20     - {{name: {cli}-3, agent: {cli}-dev, dependsOn: [{cli}-2], task: \"[[fake:recall]]\"}}\n"
        ));
    }
    let f = w.write(
        "wf.yaml",
        &format!("version: \"1.0\"\nname: t\n{agents}{steps}"),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    summary(&o)
}

/// `session: resume` continues the agent's latest conversation in each CLI's own way
/// (the fake agent checks the command line as the real CLI would and keeps the
/// conversation); `session: new`, the default, starts one of its own.
#[test]
fn session_resume_continues_each_clis_conversation() {
    let w = World::new();
    let s = run_three_turns(
        &w,
        &["claude", "codex", "gemini", "opencode"],
        ", interactive: false",
    );
    let sessions: Vec<serde_json::Value> = w
        .events()
        .into_iter()
        .filter(|e| e["type"] == "agent:session")
        .collect();
    for cli in ["claude", "codex", "gemini", "opencode"] {
        let second = out(&s, &format!("{cli}-2"));
        assert!(
            second.contains(&format!("recall: first {cli} turn")),
            "{cli}: {second}"
        );
        assert!(
            out(&s, &format!("{cli}-3")).contains("recall: (nothing)"),
            "{cli}: a new session remembers nothing: {s}"
        );
        let id_of = |step: &str| {
            sessions
                .iter()
                .find(|e| e["step"] == step)
                .unwrap_or_else(|| panic!("no agent:session for {step}: {sessions:?}"))
                .clone()
        };
        let (one, two) = (id_of(&format!("{cli}-1")), id_of(&format!("{cli}-2")));
        assert_eq!(one["session"], two["session"], "{cli}");
        assert_eq!(two["resumed"], true, "{cli}");
        assert_ne!(
            id_of(&format!("{cli}-3"))["session"],
            one["session"],
            "{cli}"
        );
    }
}

/// An interactive agent whose CLI can be given a conversation id (claude here) starts
/// its first session in a named one and continues it in the next step's terminal.
#[test]
fn session_resume_continues_an_interactive_agents_conversation() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        "version: \"1.0\"\nname: t\nagents:\n  - {name: dev, cli: claude}\nworkflows:\n  - name: main\n    steps:\n      - {name: one, agent: dev, task: \"interactive first turn [[fake:say=ok]]\"}\n      - {name: two, agent: dev, dependsOn: [one], session: resume, task: \"[[fake:recall]]\"}\n",
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert!(
        out(&s, "two").contains("recall: interactive first turn"),
        "{s}"
    );
}

/// An interactive agent whose later step says `session: resume` keeps its terminal open
/// between the two: the second task is typed into the same process, which remembers the
/// first even where the CLI cannot be given a conversation id (codex, gemini); a step
/// without `session: resume` gets a new process; and the run leaves nothing running.
#[test]
fn an_interactive_agent_continues_in_the_terminal_its_earlier_step_left_open() {
    let w = World::new();
    let clis = ["claude", "codex", "gemini"];
    let s = run_three_turns(&w, &clis, "");
    let events = w.events();
    let spawned = |step: &str| {
        events
            .iter()
            .find(|e| e["type"] == "agent:spawned" && e["step"] == step)
            .unwrap_or_else(|| panic!("no agent:spawned for {step}"))
            .clone()
    };
    for cli in clis {
        let second = out(&s, &format!("{cli}-2"));
        assert!(
            second.contains(&format!("recall: first {cli} turn")),
            "{cli}: {second}"
        );
        let (one, two, three) = (
            spawned(&format!("{cli}-1")),
            spawned(&format!("{cli}-2")),
            spawned(&format!("{cli}-3")),
        );
        assert_eq!(two["continued"], true, "{cli}: {two}");
        assert_eq!(two["pgid"], one["pgid"], "{cli}: the same process");
        assert!(three.get("continued").is_none(), "{cli}: {three}");
        assert_ne!(three["pgid"], one["pgid"], "{cli}");
        let third = out(&s, &format!("{cli}-3"));
        assert!(third.contains("recall: (nothing)"), "{cli}: {third}");
    }
    // The terminal kept after `*-2` (nothing took it) ended with the run.
    assert!(
        w.leftovers().is_empty(),
        "processes left: {:?}",
        w.leftovers()
    );
}

/// A terminal kept open between two steps dies with a coordinator killed -9 (nothing is
/// left running), and the resumed run continues the conversation in a new process by
/// its id.
#[test]
fn a_kept_terminal_dies_with_its_coordinator_and_the_resumed_run_continues_by_id() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        "version: \"1.0\"\nname: t\nagents:\n  - {name: dev, cli: claude}\nworkflows:\n  - name: main\n    steps:\n      - {name: one, agent: dev, task: \"first turn [[fake:say=ok]]\"}\n      - {name: wait, type: deterministic, dependsOn: [one], command: \"while [ ! -f go ]; do sleep 0.05; done\"}\n      - {name: two, agent: dev, dependsOn: [wait], session: resume, task: \"[[fake:recall]]\"}\n",
    );
    // `kill_at_then_resume` waits for the killed run's agents, the kept terminal among
    // them, to be gone before it resumes.
    let o = kill_at_then_resume(&w, &f, "wait");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert!(out(&s, "two").contains("recall: first turn"), "{s}");
    let two = w
        .events()
        .into_iter()
        .find(|e| e["type"] == "agent:spawned" && e["step"] == "two")
        .expect("two was spawned");
    assert!(two.get("continued").is_none(), "a new process: {two}");
    assert!(w.leftovers().is_empty());
}

/// The conversation is in the run's log: a run resumed after a failure continues it.
#[test]
fn a_resumed_run_continues_the_same_conversation() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: a, agent: dev, task: \"alpha turn [[fake:say=ok]]\"}\n      - {name: b, agent: dev, dependsOn: [a], session: resume, task: \"[[fake:fail-once=b]][[fake:recall]]\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = w.run(&["resume", "last", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let b = out(&summary(&o), "b");
    assert!(b.contains("recall: alpha turn"), "{b}");
}

#[test]
fn session_on_a_step_without_an_agent_is_an_error_at_its_line() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: a\n        type: deterministic\n        command: 'true'\n        session: resume\n",
        ),
    );
    let o = w.run(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("wf.yaml:16:18"), "{err}");
    assert!(err.contains("names no `agent`"), "{err}");

    // A CLI with no sessions to name is warned about, not refused.
    let f = w.write(
        "wf.yaml",
        "version: \"1.0\"\nname: t\nagents:\n  - {name: dev, cli: aider, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - {name: a, agent: dev, task: x}\n      - {name: b, agent: dev, dependsOn: [a], session: resume, task: y}\n",
    );
    let o = w.run(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("step `b`: `session: resume` starts a new conversation each time: aider"),
        "{}",
        stderr(&o)
    );
}

/// Fix and test until the tests pass: a group of two nested steps loops as one, the fix
/// (the fake agent) reading what the test said in the iteration before.
#[test]
fn a_group_of_fix_and_test_loops_until_the_tests_pass() {
    let w = World::new();
    let test = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; if [ $n -ge 3 ]; then echo PASS; else echo FAIL $n; fi";
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            &format!(
                "    steps:\n      - {{name: prep, type: deterministic, command: 'echo ready'}}\n      - name: fix-and-test\n        dependsOn: [prep]\n        until: PASS\n        maxIterations: 5\n        steps:\n          - {{name: fix, agent: dev, task: \"[[fake:echo-task]] fix {{{{iteration}}}} after [{{{{steps.test.output}}}}]\"}}\n          - {{name: test, type: deterministic, dependsOn: [fix], command: \"{test}\"}}\n      - {{name: report, type: deterministic, dependsOn: [fix-and-test], command: \"printf '%s' {{{{steps.fix-and-test.outputs}}}}\"}}\n"
            ),
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(out(&s, "fix-and-test"), "PASS");
    let all: Vec<String> = serde_json::from_str(&out(&s, "report")).unwrap();
    assert_eq!(all, ["FAIL 1", "FAIL 2", "PASS"]);
    // The last fix saw the second test's failure; the first saw nothing yet.
    assert!(
        out(&s, "fix-and-test/fix").contains("fix 3 after [FAIL 2]"),
        "{s}"
    );
    assert_eq!(
        started(&w),
        [
            "prep",
            "fix-and-test/fix#1",
            "fix-and-test/test#1",
            "fix-and-test/fix#2",
            "fix-and-test/test#2",
            "fix-and-test/fix#3",
            "fix-and-test/test#3",
            "report"
        ]
    );
    let first = w
        .events()
        .into_iter()
        .find(|e| e["type"] == "step:completed" && e["step"] == "fix-and-test/fix#1");
    assert!(first.is_some(), "the first fix completed");
}

/// A run killed in the middle of a group's iteration resumes inside it: nested steps
/// that completed before the kill (in this iteration or earlier ones) do not run again.
#[test]
fn a_run_killed_inside_a_group_iteration_resumes_without_running_a_nested_step_twice() {
    let w = World::new();
    let a = "echo a{{iteration}} >> done.log; echo a{{iteration}}";
    let b = "if [ {{iteration}} = 2 ] && [ ! -f go ]; then sleep 60; fi; echo b{{iteration}} >> done.log; echo b{{iteration}}";
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            &format!(
                "    steps:\n      - name: g\n        loop: {{max: 3}}\n        steps:\n          - {{name: a, type: deterministic, command: \"{a}\"}}\n          - {{name: b, type: deterministic, dependsOn: [a], command: \"{b}\"}}\n      - {{name: after, type: deterministic, dependsOn: [g], command: \"printf '%s' {{{{steps.g.outputs}}}}\"}}\n"
            ),
        ),
    );
    let o = kill_at_then_resume(&w, &f, "g/b#2");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        w.read("done.log"),
        "a1\nb1\na2\nb2\na3\nb3\n",
        "no nested step ran twice"
    );
    let all: Vec<String> = serde_json::from_str(&out(&summary(&o), "after")).unwrap();
    assert_eq!(all, ["b1", "b2", "b3"]);
}

#[test]
fn bad_nesting_in_a_group_is_an_error_at_its_line_and_column() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: prep, type: deterministic, command: 'true'}\n      - name: g\n        loop: {max: 2}\n        steps:\n          - {name: a, type: deterministic, command: 'true', dependsOn: [prep]}\n          - name: inner\n            steps:\n              - {name: deep, type: deterministic, command: 'true'}\n",
        ),
    );
    let o = w.run(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("wf.yaml:17:73")
            && err
                .contains("step `a` inside group `g` depends on `prep`, which is not in the group"),
        "{err}"
    );
    assert!(
        err.contains("wf.yaml:20:24") && err.contains("groups do not nest"),
        "{err}"
    );
}

/// A sub-workflow with a pattern of its own runs under it, nested under the parent step:
/// a pipeline chains its steps and hands each the output of the one before; a pattern
/// that shapes the whole run is refused by `validate`, naming it.
#[test]
fn a_sub_workflows_own_pattern_applies_to_its_steps() {
    let w = World::new();
    w.write(
        "stages.yaml",
        "version: \"1.0\"\nname: stages\nswarm: {pattern: pipeline}\nagents:\n  - {name: dev, cli: claude, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - {name: draft, agent: dev, task: \"[[fake:say=drafted]]\"}\n      - {name: edit, agent: dev, task: \"[[fake:echo-task]] edit\"}\n      - {name: publish, type: deterministic, command: \"echo published\"}\n",
    );
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: prep, type: deterministic, command: 'echo prepared'}\n      - {name: doc, workflow: stages.yaml, dependsOn: [prep]}\n      - {name: after, type: deterministic, dependsOn: [doc], command: \"echo {{steps.doc.output}}\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    // `edit` declared no dependency: the pipeline put it after `draft`, with its output.
    let edit = out(&s, "doc/edit");
    assert!(
        edit.contains("Input from `doc/draft`") && edit.contains("drafted"),
        "{edit}"
    );
    assert_eq!(out(&s, "after"), "published");
    assert_eq!(
        started(&w),
        [
            "prep",
            "doc/draft",
            "doc/edit",
            "doc/publish",
            "doc",
            "after"
        ]
    );

    w.write(
        "talk.yaml",
        "version: \"1.0\"\nname: talk\nswarm: {pattern: hub-spoke}\nagents:\n  - {name: dev, cli: claude, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - {name: a, agent: dev, task: a}\n",
    );
    let bad = w.write(
        "bad.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: chat, workflow: talk.yaml}\n",
        ),
    );
    let o = w.run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("bad.yaml:13:")
            && err.contains("sub-workflow `talk.yaml` runs as `hub-spoke`")
            && err.contains("who may message whom"),
        "{err}"
    );
}

#[test]
fn steering_a_finished_run_says_it_finished() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: a\n        agent: dev\n        task: go\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for args in [
        &["pause", "last"][..],
        &["unpause", "last"],
        &["approve", "last", "a"],
        &["unpark", "last"],
        &["answer", "last", "a", "yes"],
    ] {
        let o = w.run(args);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("already finished (completed)"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("still going"), "{args:?}: {err}");
    }
}
