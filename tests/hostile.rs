//! What an adversarial probe found, kept fixed: agents die with a killed coordinator,
//! `setsid` grandchildren do not outlive their run, Ctrl+C means cancel whatever is in
//! flight, run files are private whatever the umask, step directories never collide,
//! resume keeps finished work inside gates and messages queued for agents not started
//! yet, rehearsals write only inside the project, and huge outputs keep their end.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use support::{World, stderr, step, summary, workflow};

fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn agents_die_with_a_killed_coordinator() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: a, agent: dev, task: \"[[fake:child=60000]] [[fake:sleep=60000]]\"}\n      - {name: b, agent: ops, task: \"[[fake:ignore-term]] [[fake:sleep=60000]]\"}\n",
        ),
    );
    let mut child = w
        .cmd()
        .args(["run", f.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        || relay_testkit::processes_with_env("RELAY_TEST_TAG", &w.tag).len() >= 4,
        "agents and a grandchild to be alive",
    );
    signal(child.id(), "-KILL");
    child.wait().unwrap();
    // No resume: the watchdog alone ends them.
    let left = w.leftovers();
    assert!(left.is_empty(), "agents outlived the coordinator: {left:?}");
}

#[test]
fn a_setsid_grandchild_does_not_outlive_its_run() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    onError: continue\n    steps:\n      - {name: quick, type: deterministic, command: \"setsid sleep 60 > /dev/null 2>&1 & echo started\"}\n      - {name: slow, type: deterministic, timeoutMs: 300, command: \"setsid sleep 60 > /dev/null 2>&1 & sleep 60\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "quick")["status"], "completed");
    let left = w.leftovers();
    assert!(left.is_empty(), "setsid processes survived: {left:?}");
}

#[test]
fn ctrl_c_cancels_a_busy_fan_out_at_once() {
    let w = World::new();
    let mut steps = String::from("    steps:\n");
    for i in 0..400 {
        steps.push_str(&format!(
            "      - {{name: s{i}, agent: dev, task: \"[[fake:sleep=20]]\"}}\n"
        ));
    }
    let f = w.write("wf.yaml", &workflow("swarm: {maxConcurrency: 4}\n", &steps));
    let child = w
        .cmd()
        .args(["run", f.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        || {
            w.agent_log()
                .lines()
                .filter(|l| l.starts_with("end"))
                .count()
                >= 10
        },
        "the fan-out to get going",
    );
    let sent = Instant::now();
    signal(child.id(), "-INT");
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["status"], "cancelled");
    let started_after: usize = w
        .events()
        .iter()
        .skip_while(|e| e["type"] != "run:cancelled" && e["type"] != "step:skipped")
        .filter(|e| e["type"] == "step:started")
        .count();
    assert_eq!(started_after, 0, "steps started after the cancel");
    // Not a timing assertion of the product: a bound far above the kill grace, so a
    // cancel that waits for the whole fan-out (seconds) fails.
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
}

#[test]
fn run_files_are_private_whatever_the_umask() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: a, agent: dev, task: \"[[fake:say=hello]]\"}\n",
        ),
    );
    let o = w
        .shell()
        .arg(format!(
            "umask 000 && \"$AGENT_RELAY\" run {} --var secret=s3cr3t",
            f.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = w.run_dir();
    let mut checked = 0;
    let mut stack = vec![dir];
    while let Some(p) = stack.pop() {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        if p.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} files checked");
}

#[test]
fn steps_whose_names_differ_only_in_punctuation_keep_their_own_outputs() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: \"a b\", agent: dev, task: \"[[fake:say=SPACE]]\"}\n      - {name: a_b, agent: dev, task: \"[[fake:say=UNDERSCORE]]\"}\n      - {name: a/b, agent: dev, task: \"[[fake:say=SLASH]]\"}\n      - {name: \"..\", agent: dev, task: \"[[fake:say=DOTS]]\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    assert_eq!(s["status"], "completed", "{}", stderr(&o));
    let dir = w.run_dir().join("steps");
    let mut outs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path().join("output.txt")).unwrap())
        .map(|t| t.lines().next().unwrap_or("").to_string())
        .collect();
    outs.sort();
    assert_eq!(
        outs,
        ["DOTS", "SLASH", "SPACE", "UNDERSCORE"],
        "one directory per step"
    );
    assert!(
        !w.run_dir().join("output.txt").exists(),
        "`..` wrote into the run directory"
    );
}

#[test]
fn resume_keeps_the_map_items_already_done() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "swarm: {pattern: map-reduce, maxConcurrency: 1}\n",
            "    steps:\n      - {name: m, agent: dev, items: [a, b, c, d], task: \"[[fake:count=item-{{item}}]] [[fake:sleep=300]] [[fake:say={{item}}]]\"}\n",
        ),
    );
    let mut child = w
        .cmd()
        .args(["run", f.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        || {
            w.events_if_any()
                .iter()
                .filter(|e| e["type"] == "step:completed")
                .count()
                >= 2
        },
        "two items to complete",
    );
    signal(child.id(), "-KILL");
    child.wait().unwrap();
    let o = w.run(&["resume", "last", "--json"]);
    let s = summary(&o);
    assert_eq!(s["status"], "completed", "{}", stderr(&o));
    let runs = |item: &str| w.read(&format!("state/count-item-{item}")).lines().count();
    assert_eq!(runs("a"), 1, "an item completed before the kill ran again");
    assert_eq!(runs("b"), 1, "an item completed before the kill ran again");
    assert!(runs("c") >= 1 && runs("d") >= 1);
    assert!(
        step(&s, "m")["output"]
            .as_str()
            .unwrap()
            .contains("### item 4: d"),
        "{s}"
    );
}

#[test]
fn a_message_queued_for_an_agent_not_started_yet_survives_a_resume() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: first, agent: dev, task: \"[[fake:send=ops:the key is 42]] [[fake:sleep=60000]]\"}\n      - {name: later, agent: ops, dependsOn: [first], task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    let mut child = w
        .cmd()
        .args(["run", f.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        || {
            w.events_if_any()
                .iter()
                .any(|e| e["type"] == "message:sent")
        },
        "the message to be queued",
    );
    signal(child.id(), "-KILL");
    child.wait().unwrap();
    // The resumed run's first step is quick this time, and sends nothing again: only
    // the message queued before the kill can reach `later`.
    let wf = std::fs::read_to_string(w.run_dir().join("workflow.yaml"))
        .unwrap()
        .replace(
            "[[fake:send=ops:the key is 42]] [[fake:sleep=60000]]",
            "done",
        );
    std::fs::write(w.run_dir().join("workflow.yaml"), wf).unwrap();
    let o = w.run(&["resume", "last", "--json"]);
    let s = summary(&o);
    assert_eq!(s["status"], "completed", "{}", stderr(&o));
    let later = step(&s, "later")["output"].as_str().unwrap().to_string();
    assert!(later.contains("the key is 42"), "{later}");
}

#[test]
fn a_rehearsal_writes_nothing_outside_the_project() {
    let w = World::new();
    let outside = w.path().join("outside.txt");
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            &format!(
                "    steps:\n      - {{name: a, agent: dev, task: x, verification: {{type: file_exists, value: {}}}}}\n      - {{name: b, agent: dev, cwd: proj, task: x, verification: {{type: file_exists, value: ../escape.txt}}}}\n",
                outside.display()
            ),
        ),
    );
    std::fs::create_dir_all(w.path().join("proj")).unwrap();
    let o = w.run(&["run", f.to_str().unwrap(), "--rehearse", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!outside.exists());
    assert!(!w.path().join("escape.txt").exists());
}

#[test]
fn a_huge_output_keeps_its_end_and_says_what_was_dropped() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: big, type: deterministic, command: \"head -c 20000000 /dev/zero | tr '\\\\0' x; echo; echo THE_END\", verification: {type: output_contains, value: THE_END}}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        w.events().iter().any(|e| e["type"] == "warning"
            && e["message"]
                .as_str()
                .unwrap_or("")
                .contains("bytes from the middle were dropped")),
        "no warning about the dropped output"
    );
}

#[test]
fn an_agent_cannot_speak_or_read_for_another() {
    let w = World::new();
    // `ops` is an agent we did not write: a script that tries to forge and to peek.
    let script = w.bin.join("codex");
    let _ = std::fs::remove_file(&script);
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         \"$AGENT_RELAY_BIN\" send --from dev --to dev forged >/dev/null 2>&1; echo forge=$?\n\
         \"$AGENT_RELAY_BIN\" inbox --as dev >/dev/null 2>&1; echo peek=$?\n\
         AGENT_RELAY_TOKEN=guess \"$AGENT_RELAY_BIN\" agents >/dev/null 2>&1; echo guess=$?\n\
         \"$AGENT_RELAY_BIN\" send --to dev honest >/dev/null 2>&1; echo honest=$?\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - {name: sneaky, agent: ops, task: x}\n      - {name: reader, agent: dev, dependsOn: [sneaky], task: \"[[fake:echo-task]]\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    assert_eq!(s["status"], "completed", "{}", stderr(&o));
    let out = step(&s, "sneaky")["output"].as_str().unwrap().to_string();
    for expect in ["forge=3", "peek=3", "guess=3", "honest=0"] {
        assert!(out.contains(expect), "{expect} not in {out}");
    }
    let task = step(&s, "reader")["output"].as_str().unwrap().to_string();
    assert!(
        task.contains("honest") && !task.contains("forged"),
        "{task}"
    );
}

#[test]
fn large_tasks_and_commands_never_go_on_the_command_line() {
    let w = World::new();
    let yaml = r#"version: "1.0"
name: t
agents:
  - {name: dev, cli: claude, interactive: false}
  - {name: far, cli: droid, interactive: false}
workflows:
  - name: main
    steps:
      - name: big
        type: deterministic
        command: "head -c 300000 /dev/zero | tr '\\0' a"
      - name: agent
        agent: dev
        dependsOn: [big]
        task: "[[fake:sleep=1500]] [[fake:say=GOT_IT]] {{steps.big.output}}"
        verification: {type: output_contains, value: GOT_IT}
      - name: command
        type: deterministic
        dependsOn: [big]
        command: "sleep 1.5; printf %s {{steps.big.output}} | wc -c"
      - name: pointer
        agent: far
        dependsOn: [big]
        task: "Work on this: {{steps.big.output}}"
"#;
    let f = w.write("wf.yaml", yaml);
    let argv_log = w.path().join("argv.log");
    let child = w
        .cmd()
        .env("FAKE_AGENT_ARGV_LOG", &argv_log)
        .args(["run", f.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While the agent and the command run, no process of the run shows the text.
    wait_for(
        || relay_testkit::processes_with_env("RELAY_TEST_TAG", &w.tag).len() >= 2,
        "the agent and the command to be running",
    );
    let long = "a".repeat(200);
    for pid in relay_testkit::processes_with_env("RELAY_TEST_TAG", &w.tag) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(&long),
            "process {pid} has the task in its argv"
        );
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert!(
        step(&s, "agent")["output"]
            .as_str()
            .unwrap()
            .contains("GOT_IT")
    );
    assert_eq!(
        step(&s, "command")["output"].as_str().unwrap().trim(),
        "300000"
    );
    // droid takes its task only as an argument: a pointer to a private file holding it.
    let log = std::fs::read_to_string(&argv_log).unwrap();
    let droid = log.lines().find(|l| l.starts_with("droid\t")).unwrap();
    assert!(
        droid.contains("task.md") && !droid.contains(&long),
        "{droid}"
    );
    let task_file = w.run_dir().join("steps/pointer/task.md");
    let text = std::fs::read_to_string(&task_file).unwrap();
    assert!(text.contains(&"a".repeat(300_000)));
    let mode = std::fs::metadata(&task_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_directory_given_as_the_workflow_is_named_as_one() {
    let w = World::new();
    // Named like a template, it is still the directory that is meant.
    std::fs::create_dir(w.path().join("review")).unwrap();
    for cmd in ["validate", "run"] {
        let o = w.run(&[cmd, "review"]);
        assert_eq!(o.status.code(), Some(3), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("Is a directory"),
            "{cmd}: {}",
            stderr(&o)
        );
    }
}
