//! Durable runs: resume after `kill -9` at any point (also of a loop, a sub-workflow and a
//! looping group), inspection of runs, following a live run, cancelling from another
//! process, the run lock, a torn log line, and a disk that stops accepting writes.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{World, stderr, stdout, step, summary, workflow};

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Parallel branches that join, every step counting its executions.
fn branching() -> String {
    let s = |name: &str, deps: &str, ms: u32, extra: &str| {
        format!(
            "      - name: {name}\n        agent: dev\n        dependsOn: [{deps}]\n        task: \"[[fake:count={name}]] [[fake:sleep={ms}]] [[fake:say=out-{name}]]{extra}\"\n"
        )
    };
    let mut steps = String::from("    steps:\n");
    steps.push_str(&s("a", "", 60, ""));
    steps.push_str(&s("b1", "a", 90, " {{steps.a.output}}"));
    steps.push_str(&s("b2", "a", 120, ""));
    steps.push_str(&s("b3", "a", 40, ""));
    steps.push_str(&s("c", "b1, b2", 60, " {{steps.b1.output}}"));
    steps.push_str(&s("d", "b3", 40, ""));
    steps.push_str(&s(
        "e",
        "c, d",
        40,
        " {{steps.c.output}} {{steps.d.output}}",
    ));
    workflow("", &steps)
}

const STEPS: [&str; 7] = ["a", "b1", "b2", "b3", "c", "d", "e"];

fn outputs(dir: &Path) -> BTreeMap<String, String> {
    STEPS
        .iter()
        .map(|s| {
            let text = std::fs::read_to_string(dir.join("steps").join(s).join("output.txt"))
                .unwrap_or_else(|_| panic!("no output of {s} in {}", dir.display()));
            (s.to_string(), text)
        })
        .collect()
}

fn count(w: &World, step: &str) -> usize {
    w.read(&format!("state/count-{step}")).lines().count()
}

fn completed_in_log(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "step:completed")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect()
}

fn event_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn spawn_run(w: &World, file: &Path, extra: &[&str]) -> Child {
    w.cmd()
        .arg("run")
        .arg(file)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn kill_dash_9_at_any_point_then_resume_gives_the_same_result() {
    // The uninterrupted result to compare against.
    let base = World::new();
    let f = base.write("wf.yaml", &branching());
    let o = base.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let expected = outputs(&base.run_dir());
    let total = event_lines(&base.run_dir());
    assert!(total >= 20, "a full run writes {total} events");

    // Kill the coordinator once the log holds k events, for k across the whole run.
    let points: Vec<usize> = (1..total).collect();
    assert!(points.len() >= 20);
    for k in points {
        let w = World::new();
        let f = w.write("wf.yaml", &branching());
        let mut child = spawn_run(&w, &f, &[]);
        wait_for("the run directory", || w.has_run_dir());
        let dir = w.run_dir();
        wait_for(&format!("{k} events"), || {
            event_lines(&dir) >= k || child.try_wait().unwrap().is_some()
        });
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let done_before = completed_in_log(&dir);

        let run_id = dir.file_name().unwrap().to_str().unwrap().to_string();
        let o = w.run(&["resume", &run_id, "--json"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "k={k}: resume failed:\n{}",
            stderr(&o)
        );
        assert_eq!(outputs(&dir), expected, "k={k}: a different result");
        for s in &done_before {
            assert_eq!(
                count(&w, s),
                1,
                "k={k}: step {s} completed before the kill and ran again"
            );
        }
        for s in STEPS {
            assert!(count(&w, s) >= 1, "k={k}: step {s} never ran");
        }
        let left = w.leftovers();
        assert!(
            left.is_empty(),
            "k={k}: processes left from the killed run: {left:?}"
        );
    }
}

#[test]
fn resume_of_a_failed_run_keeps_completed_steps() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            r#"    steps:
      - name: first
        agent: dev
        task: "[[fake:count=first]] [[fake:say=FIRST]]"
      - name: flaky
        agent: dev
        dependsOn: [first]
        task: "[[fake:count=flaky]] [[fake:fail-once=flaky]] got {{steps.first.output}} [[fake:echo-task]]"
"#,
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let run_id = summary(&o)["runId"].as_str().unwrap().to_string();
    // The workflow file is edited after the run: resume runs it as it was, and says so.
    w.write("wf.yaml", "name: edited\n");
    let o = w.run(&["resume", &run_id[..12], "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("changed since this run started"),
        "{}",
        stderr(&o)
    );
    let s = summary(&o);
    assert_eq!(s["runId"], run_id.as_str(), "the same run continues");
    assert_eq!(step(&s, "flaky")["status"], "completed");
    assert!(
        step(&s, "flaky")["output"]
            .as_str()
            .unwrap()
            .contains("got FIRST")
    );
    assert_eq!(count(&w, "first"), 1);
    assert_eq!(count(&w, "flaky"), 2);
    // The same log holds both parts.
    let types: Vec<String> = w
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().into())
        .collect();
    assert!(
        types.contains(&"run:failed".to_string()) && types.contains(&"run:resumed".to_string())
    );
    assert_eq!(types.last().unwrap(), "run:completed");
    // Resuming a completed run does nothing.
    let o = w.run(&["resume", &run_id]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("already completed"));
    assert_eq!(count(&w, "first"), 1);
}

#[test]
fn runs_status_and_a_torn_last_log_line() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    onError: continue\n    steps:\n      - name: ok\n        agent: dev\n        task: x\n      - name: bad\n        agent: dev\n        task: \"[[fake:fail-once=bad]]\"\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let run_id = summary(&o)["runId"].as_str().unwrap().to_string();
    // A crash mid-write leaves half a line.
    let log = w.run_dir().join("events.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"ts\":\"2026-11-21T00:00:00.000Z\",\"type\":\"step:comp");
    std::fs::write(&log, text).unwrap();

    let o = w.run(&["runs"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains(&run_id) && stdout(&o).contains("failed"),
        "{}",
        stdout(&o)
    );
    let o = w.run(&["status", "last", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unreadable"),
        "the torn line is reported: {}",
        stderr(&o)
    );
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["status"], "failed");
    let steps = st["steps"].as_array().unwrap();
    assert_eq!(steps[0]["status"], "completed");
    assert_eq!(steps[1]["status"], "failed");
    let o = w.run(&["status", &run_id]);
    assert!(stdout(&o).contains("bad") && stdout(&o).contains("failed"));
    // And the run still resumes, the resume's first line on a line of its own.
    let o = w.run(&["resume", &run_id, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&log).unwrap();
    let after_torn = text
        .lines()
        .skip_while(|l| !l.ends_with("step:comp"))
        .nth(1)
        .unwrap_or_default();
    assert!(after_torn.contains("\"run:resumed\""), "{text}");
    let o = w.run(&["logs", &run_id, "bad"]);
    assert!(stdout(&o).contains("step:completed"), "{}", stdout(&o));
    assert!(!stdout(&o).contains(" ok "), "only the step's events");
    let o = w.run(&["logs", &run_id, "bda"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no step `bda`") && stderr(&o).contains("did you mean `bad`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_log_that_lost_a_line_before_its_end_is_not_resumed() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    onError: continue\n    steps:\n      - name: ok\n        agent: dev\n        task: \"[[fake:count=ok]] x\"\n      - name: bad\n        agent: dev\n        task: \"[[fake:fail-once=bad]]\"\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let log = w.run_dir().join("events.jsonl");
    let good = std::fs::read_to_string(&log).unwrap();
    // `ok`'s completion garbled in the middle of the log.
    let garbled: Vec<String> = good
        .lines()
        .map(|l| {
            if l.contains("step:completed") && l.contains("\"ok\"") {
                l.replace("step:completed", "step:compl\u{0}eted")[..20].to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&log, garbled.join("\n") + "\n").unwrap();
    let o = w.run(&["resume", "last"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unreadable") && stderr(&o).contains("not the last one"),
        "{}",
        stderr(&o)
    );
    // An empty log: nothing says what ran.
    std::fs::write(&log, "").unwrap();
    let o = w.run(&["resume", "last"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("is empty"), "{}", stderr(&o));
    // `runs` and `status` still name its workflow and start, from the run's own record.
    let o = w.run(&["status", "last", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["workflow"], "main", "{st}");
    assert!(
        st["startedAt"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{st}"
    );
    let o = w.run(&["runs"]);
    assert!(stdout(&o).contains(" main "), "{}", stdout(&o));
    // Neither ran `ok` again.
    assert_eq!(
        w.agent_log().matches("start ok").count(),
        1,
        "{}",
        w.agent_log()
    );
    // No log at all: the run is named as one whose record is gone, not as unknown.
    let id = w.run_id();
    std::fs::remove_file(&log).unwrap();
    for cmd in ["resume", "status"] {
        let o = w.run(&[cmd, &id]);
        assert_eq!(o.status.code(), Some(3), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("run `{id}` has no event log"))
                && stderr(&o).contains("events.jsonl is missing"),
            "{cmd}: {}",
            stderr(&o)
        );
    }
    // An empty id names no run (rather than matching every one).
    for cmd in ["resume", "status", "cancel"] {
        let o = w.run(&[cmd, ""]);
        assert_eq!(o.status.code(), Some(3), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("the run id is empty"),
            "{cmd}: {}",
            stderr(&o)
        );
    }
    // A damaged copy of the workflow in the run directory is named as that copy.
    std::fs::write(&log, &good).unwrap();
    let stored = w.run_dir().join("workflow.yaml");
    let kept = std::fs::read_to_string(&stored).unwrap();
    std::fs::write(&stored, "::: [\n").unwrap();
    let o = w.run(&["resume", &id]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("kept in the run directory is damaged")
            && stderr(&o).contains(&format!("{id}/workflow.yaml:1")),
        "{}",
        stderr(&o)
    );
    std::fs::write(&stored, kept).unwrap();
    // Back as it was, it resumes.
    let o = w.run(&["resume", "last", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(w.agent_log().matches("start ok").count(), 1);
}

fn slow_workflow(w: &World) -> std::path::PathBuf {
    w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: long\n        agent: dev\n        task: \"[[fake:child=30000]] [[fake:sleep=30000]]\"\n      - name: after\n        agent: dev\n        dependsOn: [long]\n        task: x\n",
        ),
    )
}

#[test]
fn cancel_from_another_process_and_the_lock() {
    let w = World::new();
    let f = slow_workflow(&w);
    let child = spawn_run(&w, &f, &["--json"]);
    wait_for("the agent to start", || {
        w.agent_log().contains("start long")
    });
    let run_id = w.run_id();

    // A second coordinator may not drive the same run.
    let o = w.run(&["resume", &run_id]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("still running"), "{}", stderr(&o));
    let o = w.run(&["status", &run_id]);
    assert!(stdout(&o).contains("running"), "{}", stdout(&o));

    let o = w.run(&["cancel", &run_id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["status"], "cancelled");
    assert!(s["reason"].as_str().unwrap().contains("agent-relay cancel"));
    assert_eq!(step(&s, "after")["status"], "skipped");
    assert!(w.leftovers().is_empty());
    let o = w.run(&["runs"]);
    assert!(stdout(&o).contains("cancelled"));
}

#[test]
fn cancel_of_a_stopped_coordinator_says_so_and_takes_effect_once_it_runs() {
    let w = World::new();
    let f = slow_workflow(&w);
    let child = spawn_run(&w, &f, &["--json"]);
    wait_for("the agent to start", || {
        w.agent_log().contains("start long")
    });
    let kill = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    kill("-STOP");
    let o = w.run(&["cancel", "last"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is stopped") && stderr(&o).contains("kill -CONT"),
        "{}",
        stderr(&o)
    );
    // Running again, it takes the cancel it was sent.
    kill("-CONT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["status"], "cancelled");
    assert!(w.leftovers().is_empty());
}

#[test]
fn cancel_of_an_interrupted_run_marks_it_and_ends_its_leftovers() {
    let w = World::new();
    let f = slow_workflow(&w);
    let mut child = spawn_run(&w, &f, &[]);
    wait_for("the agent to start", || {
        w.agent_log().contains("start long")
    });
    // The coordinator and its watchdog die together (a machine-wide kill), so the agent
    // is left behind for `cancel` to end; with the watchdog alive, it would end it first.
    let watchdog = || {
        relay_testkit::processes_with_env("RELAY_TEST_TAG", &w.tag)
            .into_iter()
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == b"watchdog"))
            })
    };
    wait_for("the watchdog", || watchdog().is_some());
    let dog = watchdog().unwrap();
    let ok = std::process::Command::new("kill")
        .args(["-9", &dog.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    child.kill().unwrap();
    child.wait().unwrap();
    let agents = relay_testkit::processes_with_env("RELAY_TEST_TAG", &w.tag);
    assert!(
        agents.iter().any(|&p| p != dog),
        "the agent outlived its coordinator: {agents:?}"
    );
    let o = w.run(&["status", "last"]);
    assert!(stdout(&o).contains("interrupted"), "{}", stdout(&o));
    let o = w.run(&["cancel", "last"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(w.leftovers().is_empty());
    let o = w.run(&["status", "last"]);
    assert!(stdout(&o).contains("cancelled"), "{}", stdout(&o));
}

#[test]
fn logs_follow_a_live_run_to_its_end() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: one\n        agent: dev\n        task: \"[[fake:sleep=300]]\"\n      - name: two\n        agent: dev\n        dependsOn: [one]\n        task: \"[[fake:sleep=300]] [[fake:say=TWO_DONE]]\"\n",
        ),
    );
    let child = spawn_run(&w, &f, &[]);
    wait_for("the run to start", || {
        w.has_run_dir() && event_lines(&w.run_dir()) > 0
    });
    let o = w.run(&["logs", "last", "--follow"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(!completed_in_log(&w.run_dir()).is_empty());
    for needle in ["run:started", "step:started", "two", "run:completed"] {
        assert!(text.contains(needle), "follow missed {needle}:\n{text}");
    }
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .contains("run:completed")
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let o = w.run(&["logs", "last", "two"]);
    assert!(
        stdout(&o).contains("TWO_DONE"),
        "the step's output follows its events"
    );
}

#[test]
fn start_from_reuses_upstream_results_of_a_previous_run() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: a\n        agent: dev\n        task: \"[[fake:count=a]] [[fake:say=A1]]\"\n      - name: b\n        agent: dev\n        dependsOn: [a]\n        task: \"[[fake:count=b]] from {{steps.a.output}} [[fake:echo-task]]\"\n      - name: c\n        agent: dev\n        dependsOn: [b]\n        task: \"[[fake:count=c]]\"\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let first = summary(&o)["runId"].as_str().unwrap().to_string();
    let o = w.run(&[
        "run",
        f.to_str().unwrap(),
        "--json",
        "--start-from",
        "b",
        "--previous-run",
        &first,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_ne!(s["runId"], first.as_str(), "a new run");
    assert!(
        step(&s, "b")["output"]
            .as_str()
            .unwrap()
            .contains("from A1")
    );
    assert_eq!((count(&w, "a"), count(&w, "b"), count(&w, "c")), (1, 2, 2));
    let o = w.run(&["run", f.to_str().unwrap(), "--start-from", "bb"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("did you mean `b`?"), "{}", stderr(&o));
}

#[test]
fn an_unwritable_run_directory_is_a_runtime_error() {
    let w = World::new();
    w.write(".agent-relay", "not a directory");
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: a\n        agent: dev\n        task: x\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    assert!(w.agent_log().is_empty(), "nothing ran");
}

#[test]
fn a_full_disk_stops_the_run_cleanly() {
    let w = World::new();
    let mut steps = String::from("    steps:\n");
    for i in 0..40 {
        let dep = if i == 0 {
            String::new()
        } else {
            format!("        dependsOn: [s{}]\n", i - 1)
        };
        steps.push_str(&format!(
            "      - name: s{i}\n        agent: dev\n{dep}        task: \"[[fake:child=30000]] [[fake:sleep=30]]\"\n"
        ));
    }
    let f = w.write("wf.yaml", &workflow("", &steps));
    // A file-size limit makes writes past 8 KiB fail as a full disk would.
    let o = w
        .shell()
        .arg(format!(
            "ulimit -f 16; exec \"$AGENT_RELAY\" run {}",
            f.display()
        ))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    assert!(w.leftovers().is_empty(), "agents were ended");
    // Whatever was written is intact: every complete line parses.
    let text = std::fs::read_to_string(w.run_dir().join("events.jsonl")).unwrap();
    let lines: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    assert!(lines.len() > 3);
    for l in lines {
        serde_json::from_str::<serde_json::Value>(l).expect("an intact event line");
    }
}

/// A loop of three iterations, a sub-workflow of two steps and a group of two steps
/// looping twice, joined by a last step.
fn looping(w: &World) -> std::path::PathBuf {
    w.write(
        "sub.yaml",
        "version: \"1.0\"\nname: sub\nagents:\n  - {name: dev, cli: claude, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - {name: s1, agent: dev, task: \"[[fake:count=sub-s1]] [[fake:sleep=40]] [[fake:say=s1-{{flavour}}]]\"}\n      - {name: s2, agent: dev, dependsOn: [s1], task: \"[[fake:count=sub-s2]] [[fake:sleep=30]] [[fake:say=s2]] {{steps.s1.output}}\"}\n",
    );
    w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: prep, agent: dev, task: \"[[fake:count=prep]] [[fake:sleep=30]] [[fake:say=prepared]]\"}\n      - name: spin\n        agent: dev\n        dependsOn: [prep]\n        loop: {max: 3}\n        task: \"[[fake:count=spin-{{iteration}}]] [[fake:sleep=40]] [[fake:say=turn-{{iteration}}]]\"\n      - {name: sub, workflow: sub.yaml, params: {flavour: mint}, dependsOn: [prep]}\n      - name: grp\n        dependsOn: [prep]\n        loop: {max: 2}\n        steps:\n          - {name: a, agent: dev, task: \"[[fake:count=grp-a-{{iteration}}]] [[fake:sleep=30]] [[fake:say=a-{{iteration}}]]\"}\n          - {name: b, agent: dev, dependsOn: [a], task: \"[[fake:count=grp-b-{{iteration}}]] [[fake:sleep=30]] [[fake:say=b-{{iteration}}-{{steps.a.output}}]]\"}\n      - {name: end, agent: dev, dependsOn: [spin, sub, grp], task: \"[[fake:count=end]] [[fake:echo-task]] {{steps.spin.outputs}} {{steps.sub.output}} {{steps.grp.outputs}}\"}\n",
        ),
    )
}

/// The count file a completed node of `looping` adds to.
fn counted_as(label: &str) -> String {
    label.replace(['#', '/'], "-")
}

/// Each step's output in a run's JSON summary.
fn summary_outputs(o: &std::process::Output) -> BTreeMap<String, String> {
    let s = summary(o);
    s["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|st| {
            (
                st["name"].as_str().unwrap_or_default().to_string(),
                st["output"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn kill_dash_9_at_every_event_of_a_loop_and_a_sub_workflow_then_resume() {
    let base = World::new();
    let f = looping(&base);
    let o = base.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let expected = summary_outputs(&o);
    assert!(
        expected["end"].contains("turn-3")
            && expected["sub/s1"].contains("s1-mint")
            && expected["grp"].contains("b-2-a-2")
            && expected["end"].contains("b-1-a-1"),
        "{expected:?}"
    );
    let total = event_lines(&base.run_dir());
    for k in 1..total {
        let w = World::new();
        let f = looping(&w);
        let mut child = spawn_run(&w, &f, &[]);
        wait_for("the run directory", || w.has_run_dir());
        let dir = w.run_dir();
        wait_for(&format!("{k} events"), || {
            event_lines(&dir) >= k || child.try_wait().unwrap().is_some()
        });
        let _ = child.kill();
        let _ = child.wait();
        let done_before = completed_in_log(&dir);
        let run_id = dir.file_name().unwrap().to_str().unwrap().to_string();
        let o = w.run(&["resume", &run_id, "--json"]);
        if stderr(&o).contains("nothing to resume") {
            // Killed after the run's own end: nothing to resume.
            continue;
        }
        assert_eq!(o.status.code(), Some(0), "k={k}: {}", stderr(&o));
        assert_eq!(summary_outputs(&o), expected, "k={k}: a different result");
        for label in &done_before {
            let key = counted_as(label);
            if w.path().join("state").join(format!("count-{key}")).exists() {
                assert_eq!(
                    count(&w, &key),
                    1,
                    "k={k}: {label} completed before the kill and ran again"
                );
            }
        }
        assert!(w.leftovers().is_empty(), "k={k}: processes left");
    }
}
