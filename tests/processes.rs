//! No agent process outlives its step or the run: timeouts and Ctrl+C end whole process
//! groups, including grandchildren and agents that ignore SIGTERM. Checked by scanning
//! the process table for the test's tag, not assumed.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::{World, stderr, step, summary, workflow};

#[test]
fn step_timeout_kills_the_agents_whole_group() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            r#"    steps:
      - name: stuck
        agent: dev
        timeoutMs: 500
        task: "[[fake:child=30000]] [[fake:ignore-term]] [[fake:sleep=30000]]"
"#,
        ),
    );
    let started = Instant::now();
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert!(
        step(&s, "stuck")["reason"]
            .as_str()
            .unwrap()
            .contains("timed out after 500 ms")
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the run waited for the agent"
    );
    let left = w.leftovers();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_ends_every_agent_group_and_exits_130() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            r#"    steps:
      - name: one
        agent: dev
        task: "[[fake:child=30000]] [[fake:sleep=30000]]"
      - name: two
        agent: ops
        task: "[[fake:ignore-term]] [[fake:child=30000]] [[fake:sleep=30000]]"
      - name: later
        agent: dev
        dependsOn: [one]
        task: x
"#,
        ),
    );
    let child = w
        .cmd()
        .args(["run", f.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both agents (and their grandchildren) are up once each logged its start.
    wait_for(
        || {
            let log = w.agent_log();
            log.contains("start one") && log.contains("start two")
        },
        "both agents to start",
    );
    wait_for(
        || relay_testkit::processes_with_env("RELAY_TEST_TAG", &w.tag).len() >= 5,
        "agents and grandchildren to be alive",
    );
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["status"], "cancelled");
    assert_eq!(step(&s, "later")["status"], "skipped");
    let left = w.leftovers();
    assert!(
        left.is_empty(),
        "processes left behind after Ctrl+C: {left:?}"
    );
    assert!(
        w.events().iter().any(|e| e["type"] == "run:cancelled"),
        "the log records the cancellation"
    );
}
