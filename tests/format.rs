//! The relay.yaml format in use today, end to end through the binary: the real-format
//! corpus rehearses green, and each field does what its name says — preflight checks,
//! required paths and workdirs, worktree steps, custom steps, captured output, the repair
//! loop and `needs_human`, questions answered with `agent-relay answer`, local waitFor,
//! trajectories, and the markers agents print.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{World, stderr, step, summary, workflow};

fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sh(dir: &Path, script: &str) {
    let st = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

/// A git repository on `main` with one commit, clean.
fn git_repo(dir: &Path) {
    sh(
        dir,
        "git init -q -b main && git config user.email t@t && git config user.name t && \
         echo '.agent-relay/' > .gitignore && echo '.worktrees/' >> .gitignore && \
         echo '/bin/' >> .gitignore && echo '/state/' >> .gitignore && echo 'agents.log' >> .gitignore && \
         echo 'wf.yaml' >> .gitignore && git add .gitignore && git commit -qm init",
    );
}

/// Waits until a step of the run in `w` asks a person.
fn wait_for_question(w: &World) {
    wait_for(
        || {
            w.events_if_any()
                .iter()
                .any(|e| e["type"] == "question:asked")
        },
        "the question",
    );
}

/// The summary of a run started with `World::spawn`, which must succeed.
fn finished(child: std::process::Child) -> serde_json::Value {
    let o = child.wait_with_output().expect("wait for agent-relay");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    summary(&o)
}

fn out(s: &serde_json::Value, name: &str) -> String {
    step(s, name)["output"].as_str().unwrap_or("").to_string()
}

#[test]
fn every_corpus_workflow_rehearses_green() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/format-corpus");
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let w = World::new();
        // The world the corpus expects: a clean repository on `main`, the named
        // directories, the make targets and the shared step definitions.
        let proj = w.path().join("proj");
        std::fs::create_dir_all(proj.join(".relay")).unwrap();
        std::fs::create_dir_all(w.path().join("api-service")).unwrap();
        std::fs::write(
            proj.join("Makefile"),
            "lint:\n\t@echo lint ok $(ARGS)\ntest:\n\t@echo tests ok\n",
        )
        .unwrap();
        std::fs::copy(
            corpus.join(".relay/steps.yaml"),
            proj.join(".relay/steps.yaml"),
        )
        .unwrap();
        // Its build tool: a stand-in that says what it was asked.
        let cargo = w.bin.join("cargo");
        std::fs::write(&cargo, "#!/bin/sh\necho \"cargo $*: ok\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&file, proj.join(&name)).unwrap();
        git_repo(&proj);
        sh(&proj, "git add -A && git commit -qm corpus");
        let o = w
            .cmd()
            .current_dir(&proj)
            .args(["run", &name, "--rehearse", "--json"])
            .args(["--var", "task=a change", "--var", "branch=demo"])
            .args(["--var", "ticket=t1", "--var", "title=ship it"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert_eq!(summary(&o)["status"], "completed", "{name}");
    }
}

#[test]
fn a_failing_preflight_check_stops_the_run_before_anything_starts() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    preflight:\n      - {command: \"echo ' M src/lib.rs'\", failIf: non-empty, description: the working tree is clean}\n    steps:\n      - {name: a, agent: dev, task: \"[[fake:say=ran]]\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("the working tree is clean"), "{err}");
    assert!(err.contains("M src/lib.rs"), "its output is shown: {err}");
    assert!(!w.has_run_dir(), "nothing of the run exists");
    assert!(w.agent_log().is_empty());

    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    preflight:\n      - {command: \"echo v1.4\", successIf: \"^v1\\\\.\"}\n      - {command: \"true\"}\n    steps:\n      - {name: a, agent: dev, task: \"[[fake:say=ran]]\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_required_path_must_exist_and_workdirs_choose_the_directory() {
    let w = World::new();
    let yaml = |required: &str| {
        format!(
            "version: \"1.0\"\nname: t\npaths:\n  - {{name: svc, path: ./service{required}}}\nagents:\n  - {{name: dev, cli: claude, interactive: false, workdir: svc}}\nworkflows:\n  - name: main\n    steps:\n      - {{name: where, type: deterministic, workdir: svc, command: pwd}}\n      - {{name: agent, agent: dev, task: \"[[fake:write=made-here.txt]]\"}}\n"
        )
    };
    let f = w.write("wf.yaml", &yaml(""));
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("path `svc` is required"),
        "{}",
        stderr(&o)
    );
    std::fs::create_dir(w.path().join("service")).unwrap();
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert!(out(&s, "where").trim_end().ends_with("/service"), "{s}");
    assert!(
        w.path().join("service/made-here.txt").exists(),
        "the agent's workdir"
    );
}

#[test]
fn a_worktree_step_makes_a_worktree_a_later_step_works_in() {
    let w = World::new();
    git_repo(w.path());
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: wt, type: worktree, branch: feature/x, baseBranch: main}\n      - {name: inside, type: deterministic, dependsOn: [wt], cwd: \"{{steps.wt.output}}\", command: \"git rev-parse --abbrev-ref HEAD\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    let path = out(&s, "wt");
    assert!(path.ends_with(".worktrees/wt"), "{path}");
    assert!(Path::new(&path).join(".git").exists());
    assert_eq!(out(&s, "inside").trim(), "feature/x");
    assert_eq!(s["worktrees"][0], path);
    assert!(stderr(&o).contains(&format!("worktree: {path}")));
}

#[test]
fn custom_steps_take_parameters_with_defaults_and_required_ones() {
    let w = World::new();
    std::fs::create_dir_all(w.path().join(".relay")).unwrap();
    w.write(
        ".relay/steps.yaml",
        "steps:\n  greet:\n    type: deterministic\n    params:\n      - {name: who, required: true}\n      - {name: greeting, default: hello}\n    command: \"echo {{greeting}} {{who}}\"\n",
    );
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: plain, use: greet, who: ana}\n      - {name: warm, use: greet, who: ben, greeting: welcome, dependsOn: [plain]}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(out(&s, "plain").trim(), "hello ana");
    assert_eq!(out(&s, "warm").trim(), "welcome ben");
    let f = w.write(
        "wf.yaml",
        &workflow("", "    steps:\n      - {name: plain, use: greet}\n"),
    );
    let o = w.run(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("who"), "{}", stderr(&o));
}

#[test]
fn a_repair_agent_fixes_what_failed_before_the_retry() {
    let w = World::new();
    git_repo(w.path());
    let f = w.write(
        "wf.yaml",
        &workflow(
            "errorHandling: {strategy: retry, maxRetries: 1, repairAgent: dev}\n",
            "    steps:\n      - {name: gate, type: deterministic, command: \"test -f fixed.txt # [[fake:write=fixed.txt]]\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "gate")["attempts"], 2);
    let repair = w.run_dir().join("steps/gate%3arepair%231");
    assert_eq!(
        std::fs::read_to_string(repair.join("changes.txt")).unwrap(),
        "fixed.txt"
    );
    assert!(
        w.events()
            .iter()
            .any(|e| e["action"] == "repaired"
                && e["detail"].as_str().unwrap().contains("fixed.txt"))
    );
}

#[test]
fn a_repair_that_touches_a_protected_file_fails_and_the_run_needs_a_person() {
    let w = World::new();
    git_repo(w.path());
    std::fs::create_dir(w.path().join("tests")).unwrap();
    std::fs::write(w.path().join("tests/golden.txt"), "expected\n").unwrap();
    sh(w.path(), "git add tests && git commit -qm tests");
    let f = w.write(
        "wf.yaml",
        &workflow(
            "errorHandling: {strategy: retry, maxRetries: 1, repairAgent: dev, protect: [\"tests/**\"], onExhaustion: needs-human}\n",
            "    steps:\n      - {name: gate, type: deterministic, command: \"test -f ok.txt # [[fake:write=tests/golden.txt:cheated]] [[fake:write=ok.txt]]\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["status"], "needs_human");
    assert!(
        step(&s, "gate")["reason"]
            .as_str()
            .unwrap()
            .contains("changed protected files: tests/golden.txt")
    );
    // A person puts the test back; the run goes on from where it stopped.
    sh(w.path(), "git checkout tests/golden.txt");
    let o = w.run(&["resume", "last", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(summary(&o)["status"], "completed");
}

#[test]
fn a_question_waits_for_agent_relay_answer() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: ask, agent: dev, task: \"[[fake:nth=q:HUMAN_QUESTION: which port?|done]] [[fake:echo-task]]\"}\n",
        ),
    );
    let child = w.spawn(&["run", f.to_str().unwrap(), "--json"]);
    wait_for_question(&w);
    let q = w.run(&["questions", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&q.stdout).unwrap();
    assert_eq!(listed[0]["step"], "ask");
    assert_eq!(listed[0]["question"], "which port?");
    let wrong = w.run(&["answer", "last", "nope", "8080"]);
    assert_eq!(wrong.status.code(), Some(3), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("`ask`"), "names the step that asks");
    let a = w.run(&["answer", "last", "ask", "use", "8080"]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let s = finished(child);
    let text = out(&s, "ask");
    assert!(text.contains("HUMAN_ANSWER: use 8080"), "{text}");
}

/// An interactive agent that asks a person stays in its session: its idle clock stops
/// (no nudge though its threshold passes), `agent-relay answer` types `HUMAN_ANSWER:` into
/// it, and the same attempt goes on to the end.
#[test]
fn a_live_interactive_agent_gets_its_answer_typed_in() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        "version: \"1.0\"\nname: t\nagents:\n  - {name: dev, cli: claude, constraints: {idleThresholdSecs: 1}}\nworkflows:\n  - name: main\n    steps:\n      - {name: ask, agent: dev, task: \"[[fake:say=HUMAN_QUESTION: which port?]] [[fake:no-exit]] [[fake:obey-nudge]]\"}\n",
    );
    let child = w.spawn(&["run", f.to_str().unwrap(), "--json"]);
    wait_for_question(&w);
    let q = w.run(&["questions", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&q.stdout).unwrap();
    assert_eq!(listed[0]["question"], "which port?", "{listed}");
    // Twice the idle threshold passes while the question waits: no nudge.
    std::thread::sleep(std::time::Duration::from_millis(2_200));
    let a = w.run(&["answer", "last", "ask", "use", "8080"]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let s = finished(child);
    let text = out(&s, "ask");
    assert!(text.contains("got: HUMAN_ANSWER: use 8080"), "{text}");
    let events = w.events();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(!kinds.contains(&"step:nudged"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "step:started").count(),
        1,
        "the answer went into the live session: {kinds:?}"
    );
    assert!(kinds.contains(&"question:answered"), "{kinds:?}");
}

/// The reference format's completion markers end an interactive session as `/exit`
/// does, and mean what they say.
#[test]
fn completion_markers_end_interactive_sessions() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        "version: \"1.0\"\nname: t\nagents:\n  - {name: dev, cli: claude}\nworkflows:\n  - name: main\n    steps:\n      - {name: done, agent: dev, task: \"[[fake:say=built]] [[fake:say=STEP_COMPLETE:done]] [[fake:no-exit]]\"}\n      - {name: owner, agent: dev, task: \"[[fake:say=OWNER_DECISION: COMPLETE]] [[fake:no-exit]]\"}\n      - {name: gaveup, agent: dev, retries: 2, task: \"[[fake:say=OWNER_DECISION: INCOMPLETE_FAIL\\\\nREASON: no access to the db]] [[fake:no-exit]]\"}\n",
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "done")["status"], "completed", "{s}");
    assert!(out(&s, "done").contains("STEP_COMPLETE:done"));
    assert_eq!(step(&s, "owner")["status"], "completed", "{s}");
    assert_eq!(step(&s, "gaveup")["status"], "failed", "{s}");
    assert!(
        step(&s, "gaveup")["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no access to the db"),
        "{s}"
    );
    let started = w
        .events()
        .iter()
        .filter(|e| e["type"] == "step:started" && e["step"] == "gaveup")
        .count();
    assert_eq!(started, 1, "INCOMPLETE_FAIL is not retried");
    let nudged = w.events().iter().any(|e| e["type"] == "step:nudged");
    assert!(!nudged, "no session waited to be nudged");
}

/// Agents that watch local files are told of changes by an `INTEGRATION_EVENT:` message
/// while their step runs: an interactive agent has it typed in, a one-shot agent reads it
/// from its inbox.
#[test]
fn watched_files_reach_running_agents_as_integration_events() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        "version: \"1.0\"\nname: t\nintegrations:\n  subscriptions:\n    - {name: reports, paths: ['out/*.md'], event: created}\nagents:\n  - {name: live, cli: claude, watch: ['out/*.txt']}\n  - {name: batch, cli: codex, interactive: false, subscriptions: [reports]}\nworkflows:\n  - name: main\n    steps:\n      - {name: listen, agent: live, task: \"[[fake:wait-messages=1]]\"}\n      - {name: read, agent: batch, task: \"[[fake:inbox]]\"}\n      - {name: make, type: deterministic, command: \"sleep 1; mkdir -p out && echo hi > out/a.txt && echo r > out/r.md\"}\n",
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    let live = out(&s, "listen");
    assert!(
        live.contains("got: Relay message from agent-relay: INTEGRATION_EVENT:")
            && live.contains("out/a.txt"),
        "{live}"
    );
    assert!(!live.contains("out/r.md"), "not watched by `live`: {live}");
    let batch = out(&s, "read");
    assert!(
        batch.contains("INTEGRATION_EVENT:") && batch.contains("\"subscription\":\"reports\""),
        "{batch}"
    );
    assert!(batch.contains("out/r.md"), "{batch}");
}

#[test]
fn a_waitfor_step_sees_a_file_another_step_creates() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: writer, type: deterministic, command: \"sleep 0.3; mkdir -p out && echo '{}' > out/ready.json\"}\n      - name: waiter\n        type: waitFor\n        waitFor: {paths: [\"out/*.json\"], event: created, timeoutMs: 20000}\n      - {name: after, type: deterministic, dependsOn: [waiter], command: \"echo saw {{steps.waiter.output}}\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    let seen: serde_json::Value = serde_json::from_str(&out(&s, "waiter")).unwrap();
    assert_eq!(seen["event"], "created");
    assert!(seen["path"].as_str().unwrap().ends_with("out/ready.json"));

    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: waiter\n        type: waitFor\n        waitFor: {path: never.txt, timeoutMs: 300}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        step(&summary(&o), "waiter")["reason"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
}

#[test]
fn a_trajectory_records_the_decisions_and_can_be_turned_off() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: flaky, agent: dev, retries: 1, task: \"[[fake:fail-once=f]] [[fake:say=ok]]\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = w.run(&["trajectory", "last"]);
    assert_eq!(t.status.code(), Some(0));
    let text = String::from_utf8_lossy(&t.stdout).to_string();
    assert!(text.contains("**pattern**"), "{text}");
    assert!(text.contains("`flaky` **retry**"), "{text}");
    assert!(w.run_dir().join("trajectory.md").exists());

    let f = w.write(
        "wf.yaml",
        &workflow(
            "trajectories: false\n",
            "    steps:\n      - {name: a, agent: dev, task: \"[[fake:say=ok]]\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = w.run(&["trajectory", "last"]);
    assert_eq!(t.status.code(), Some(1));
    assert!(
        stderr(&t).contains("sets `trajectories: false`"),
        "{}",
        stderr(&t)
    );
    assert!(!w.run_dir().join("trajectory.jsonl").exists());
    // A run that kept one, its file gone: not blamed on the workflow.
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:
      - {name: a, agent: dev, task: \"[[fake:say=ok]]\"}
",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_file(w.run_dir().join("trajectory.jsonl")).unwrap();
    let t = w.run(&["trajectory", "last"]);
    assert_eq!(t.status.code(), Some(1));
    assert!(stderr(&t).contains("is missing"), "{}", stderr(&t));
}

#[test]
fn owner_decisions_mean_what_they_say() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    onError: continue\n    steps:\n      - {name: gives-up, agent: dev, retries: 2, task: \"[[fake:say=OWNER_DECISION: INCOMPLETE_FAIL]] [[fake:say=REASON: the API is gone]]\"}\n      - {name: tries-again, agent: dev, retries: 2, task: \"[[fake:nth=r:OWNER_DECISION: INCOMPLETE_RETRY|OWNER_DECISION: COMPLETE]]\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    assert_eq!(step(&s, "gives-up")["status"], "failed");
    assert_eq!(
        step(&s, "gives-up")["attempts"],
        1,
        "no retry after INCOMPLETE_FAIL"
    );
    assert!(
        step(&s, "gives-up")["reason"]
            .as_str()
            .unwrap()
            .contains("the API is gone")
    );
    assert_eq!(step(&s, "tries-again")["status"], "completed");
    assert_eq!(step(&s, "tries-again")["attempts"], 2);
}

#[test]
fn review_decision_approves_a_review_loop() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        "name: t\nswarm: {pattern: review-loop}\nagents:\n  - {name: author, cli: claude, role: developer, interactive: false}\n  - {name: rev, cli: codex, role: reviewer, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - {name: patch, agent: author, task: \"[[fake:say=v]]\"}\n      - {name: review, agent: rev, dependsOn: [patch], task: \"[[fake:nth=rv:REVIEW_DECISION: REJECT|REVIEW_DECISION: APPROVE]]\"}\n",
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        w.events()
            .iter()
            .any(|e| e["action"] == "approved" && e["detail"] == "iteration 2")
    );
}
