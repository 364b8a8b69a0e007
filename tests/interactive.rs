//! Interactive agents (the default mode) through the real binary: the fake agent runs as
//! a TUI in a real PTY, the broker waits for it, types the task, reads the rendered
//! screen for `/exit`, nudges and force-releases idle agents, and leaves nothing running.

#![allow(clippy::unwrap_used)]

mod support;

use support::{World, stderr, step, summary};

/// Interactive agents of three CLIs and short, test-sized timing knobs.
fn interactive(header: &str, steps: &str) -> String {
    format!(
        "name: t\n{header}agents:\n  - name: lead\n    cli: claude\n  - name: dev\n    cli: codex\n  - name: gem\n    cli: gemini\nworkflows:\n  - name: main\n{steps}"
    )
}

fn run(w: &World, yaml: &str, env: &[(&str, &str)]) -> std::process::Output {
    let f = w.write("wf.yaml", yaml);
    let mut c = w.cmd();
    c.env("AGENT_RELAY_SETTLE_MS", "150")
        .env("AGENT_RELAY_READY_TIMEOUT_MS", "4000")
        .env("FAKE_AGENT_THINK_MS", "50");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["run", f.to_str().unwrap(), "--json"])
        .output()
        .unwrap()
}

fn event_types(w: &World) -> Vec<String> {
    w.events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_pipeline_of_tui_agents_gets_each_task_and_clean_output() {
    let w = World::new();
    let o = run(
        &w,
        &interactive(
            "",
            r#"    steps:
      - name: plan
        agent: lead
        task: "Plan it. [[fake:say=PLAN_READY]]"
        verification: {type: output_contains, value: PLAN_READY}
      - name: build
        agent: dev
        dependsOn: [plan]
        task: "Build from {{steps.plan.output}} [[fake:say=BUILT]] [[fake:exit-style=spinner]]"
      - name: check
        agent: gem
        dependsOn: [build]
        task: "Check {{steps.build.output}} [[fake:say=CHECKED]] [[fake:exit-style=color]]"
"#,
        ),
        // A slow-starting TUI must still get its whole task.
        &[("FAKE_AGENT_START_DELAY_MS", "700")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "plan")["output"], "PLAN_READY");
    assert_eq!(step(&s, "build")["output"], "BUILT");
    assert_eq!(step(&s, "check")["output"], "CHECKED");
    let types = event_types(&w);
    for t in ["agent:ready", "task:delivered", "agent:exit-requested"] {
        assert_eq!(
            types.iter().filter(|x| *x == t).count(),
            3,
            "{t} per step: {types:?}"
        );
    }
    assert!(
        w.run_dir().join("steps/plan/attempt-1.pty").exists(),
        "raw transcript kept"
    );
    assert!(w.leftovers().is_empty());
}

#[test]
fn the_echo_of_the_task_is_never_output_or_exit() {
    let w = World::new();
    let o = run(
        &w,
        &interactive(
            "",
            "    steps:\n      - name: quiet\n        agent: lead\n        timeoutMs: 2500\n        task: \"Do not stop yet.\\n/exit\\nSECRET_TASK_TEXT [[fake:no-exit]] [[fake:say=WORKING]]\"\n",
        ),
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    let st = step(&s, "quiet");
    assert!(st["reason"].as_str().unwrap().contains("timed out"), "{st}");
    assert!(!event_types(&w).contains(&"agent:exit-requested".to_string()));
    let out = st["output"].as_str().unwrap();
    assert!(out.contains("WORKING"), "{out}");
    assert!(
        !out.contains("SECRET_TASK_TEXT"),
        "echoed task counted as output: {out}"
    );
    assert!(w.leftovers().is_empty());
}

const NUDGE: &str =
    "swarm:\n  idleNudge: {nudgeAfterMs: 300, escalateAfterMs: 300, maxNudges: 1}\n";

#[test]
fn idle_agent_is_nudged_then_force_released() {
    let w = World::new();
    let o = run(
        &w,
        &interactive(
            NUDGE,
            r#"    onError: continue
    steps:
      - name: forgetful
        agent: lead
        task: "[[fake:say=PARTIAL_WORK]] [[fake:no-exit]]"
      - name: forgetful-but-verified
        agent: dev
        task: "[[fake:say=GOOD_ENOUGH]] [[fake:no-exit]]"
        verification: {type: output_contains, value: GOOD_ENOUGH}
"#,
        ),
        &[("AGENT_RELAY_IDLE_MS", "200")],
    );
    let s = summary(&o);
    let f = step(&s, "forgetful");
    assert_eq!(f["status"], "failed");
    assert_eq!(f["reason"], "force-released");
    assert_eq!(f["output"], "PARTIAL_WORK", "what it produced is kept");
    assert_eq!(step(&s, "forgetful-but-verified")["status"], "completed");
    let order: Vec<String> = w
        .events()
        .iter()
        .filter(|e| e["step"] == "forgetful")
        .map(|e| e["type"].as_str().unwrap().to_string())
        .filter(|t| ["agent:idle", "step:nudged", "step:force-released"].contains(&t.as_str()))
        .collect();
    let nudged = order
        .iter()
        .position(|t| *t == "step:nudged")
        .expect("nudged");
    let released = order
        .iter()
        .position(|t| *t == "step:force-released")
        .expect("released");
    assert!(order[0] == "agent:idle" && nudged < released, "{order:?}");
    assert!(w.leftovers().is_empty());
}

#[test]
fn a_nudged_agent_that_finishes_completes() {
    let w = World::new();
    let o = run(
        &w,
        &interactive(
            NUDGE,
            "    steps:\n      - name: obedient\n        agent: gem\n        task: \"[[fake:say=DONE_AFTER_NUDGE]] [[fake:no-exit]] [[fake:obey-nudge]]\"\n",
        ),
        &[("AGENT_RELAY_IDLE_MS", "200")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let types = event_types(&w);
    assert!(types.contains(&"step:nudged".to_string()));
    assert!(!types.contains(&"step:force-released".to_string()));
    assert!(types.contains(&"agent:exit-requested".to_string()));
}

#[test]
fn timeout_is_rescued_by_file_exists() {
    let w = World::new();
    let o = run(
        &w,
        &interactive(
            "",
            r#"    onError: continue
    steps:
      - name: wrote-it
        agent: lead
        timeoutMs: 2000
        task: "[[fake:write=out/result.md]] [[fake:no-exit]]"
        verification: {type: file_exists, value: out/result.md}
      - name: did-not
        agent: dev
        timeoutMs: 2000
        task: "[[fake:no-exit]]"
        verification: {type: file_exists, value: out/other.md}
"#,
        ),
        &[],
    );
    let s = summary(&o);
    assert_eq!(step(&s, "wrote-it")["status"], "completed", "{s}");
    assert_eq!(step(&s, "did-not")["status"], "failed");
    assert!(
        step(&s, "did-not")["reason"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    assert!(w.leftovers().is_empty());
}

#[test]
fn an_agent_that_exits_by_itself_ends_its_step_with_its_code() {
    let w = World::new();
    let o = run(
        &w,
        &interactive(
            "",
            "    steps:\n      - name: quits\n        agent: lead\n        task: \"[[fake:say=BYE]] [[fake:exit=3]]\"\n        verification: {type: exit_code, value: 3}\n",
        ),
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(step(&summary(&o), "quits")["exitCode"], 3);
}

#[test]
fn ctrl_c_ends_interactive_sessions() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &interactive(
            "",
            "    steps:\n      - name: a\n        agent: lead\n        task: \"[[fake:ignore-term]] [[fake:child=30000]] [[fake:no-exit]]\"\n      - name: b\n        agent: dev\n        task: \"[[fake:no-exit]]\"\n",
        ),
    );
    let child = w
        .cmd()
        .env("AGENT_RELAY_SETTLE_MS", "150")
        .args(["run", f.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while w
        .events_if_any()
        .iter()
        .filter(|e| e["type"] == "task:delivered")
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "tasks never delivered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(w.leftovers().is_empty(), "sessions left running");
}
