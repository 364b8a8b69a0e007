//! End-to-end runs of the real binary with the fake agent standing in for every CLI.

#![allow(clippy::unwrap_used)]

mod support;

use support::{World, stderr, step, summary, workflow};

#[test]
fn chained_pipeline_passes_outputs_downstream() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            r#"    steps:
      - name: a
        agent: dev
        task: "[[fake:say=TOKEN_A]]"
      - name: b
        agent: ops
        dependsOn: [a]
        task: "got {{steps.a.output}} [[fake:echo-task]]"
        verification: {type: output_contains, value: TOKEN_A}
      - name: c
        agent: dev
        dependsOn: [b]
        task: "[[fake:say=from-b=]]{{steps.b.output}}"
        verification: {type: output_contains, value: "from-b="}
"#,
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["workflow"], "main");
    for name in ["a", "b", "c"] {
        assert_eq!(step(&s, name)["status"], "completed");
        assert_eq!(step(&s, name)["attempts"], 1);
        assert_eq!(step(&s, name)["exitCode"], 0);
    }
    assert!(
        step(&s, "b")["output"]
            .as_str()
            .unwrap()
            .contains("got TOKEN_A")
    );
    // The run directory keeps the workflow, the events in order and each output.
    let dir = w.run_dir();
    assert!(dir.join("workflow.yaml").exists());
    assert!(dir.join("result.json").exists());
    assert!(
        std::fs::read_to_string(dir.join("steps/b/output.txt"))
            .unwrap()
            .contains("TOKEN_A")
    );
    let types: Vec<String> = w
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .filter(|t| t.starts_with("run:") || t == "step:started" || t == "step:completed")
        .collect();
    assert_eq!(
        types,
        [
            "run:started",
            "step:started",
            "step:completed",
            "step:started",
            "step:completed",
            "step:started",
            "step:completed",
            "run:completed"
        ]
    );
    assert!(
        w.events()
            .iter()
            .all(|e| e["ts"].as_str().is_some_and(|t| t.ends_with('Z')))
    );
}

#[test]
fn fan_out_runs_exactly_max_concurrency_at_once() {
    let w = World::new();
    let mut steps = String::from("    steps:\n");
    for i in 0..9 {
        steps.push_str(&format!(
            "      - name: s{i}\n        agent: dev\n        task: \"[[fake:sleep=400]]\"\n"
        ));
    }
    let f = w.write(
        "wf.yaml",
        &workflow("swarm:\n  maxConcurrency: 3\n", &steps),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = w.agent_log();
    assert_eq!(log.lines().filter(|l| l.starts_with("start")).count(), 9);
    assert_eq!(
        relay_testkit::max_overlap(&log),
        3,
        "never more and at some point exactly 3 at once:\n{log}"
    );
}

#[test]
fn retry_recovers_and_tells_the_agent_what_failed() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            r#"    steps:
      - name: flaky
        agent: dev
        retries: 1
        task: "[[fake:fail-once=flaky]] [[fake:echo-task]]"
"#,
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    let st = step(&s, "flaky");
    assert_eq!(st["status"], "completed");
    assert_eq!(st["attempts"], 2);
    let out = st["output"].as_str().unwrap();
    assert!(
        out.contains("previous attempt failed: exit code 1"),
        "{out}"
    );
    assert!(out.contains("failing first attempt of flaky"), "{out}");
    assert!(
        w.events()
            .iter()
            .any(|e| e["type"] == "step:retrying" && e["attempt"] == 1)
    );
}

#[test]
fn exit_code_mismatch_fails_and_skips_downstream() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            r#"    steps:
      - name: build
        agent: dev
        task: "[[fake:exit=3]]"
        verification: {type: exit_code, value: 0}
      - name: deploy
        agent: ops
        dependsOn: [build]
        task: "deploy"
"#,
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["status"], "failed");
    assert_eq!(step(&s, "build")["status"], "failed");
    assert_eq!(step(&s, "build")["exitCode"], 3);
    assert!(
        step(&s, "build")["reason"]
            .as_str()
            .unwrap()
            .contains("exit code 3, expected 0")
    );
    assert_eq!(step(&s, "deploy")["status"], "skipped");
    assert!(
        !w.agent_log().contains("start deploy"),
        "deploy must never start"
    );
}

#[test]
fn exit_code_verification_accepts_the_expected_non_zero_code() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: a\n        agent: dev\n        task: \"[[fake:exit=2]]\"\n        verification: {type: exit_code, value: \"2\"}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(step(&summary(&o), "a")["exitCode"], 2);
}

fn on_error_workflow(policy: &str) -> String {
    workflow(
        "swarm:\n  maxConcurrency: 1\n",
        &format!(
            r#"    onError: {policy}
    steps:
      - name: bad
        agent: dev
        task: "[[fake:exit=1]]"
      - name: after-bad
        agent: dev
        dependsOn: [bad]
        task: "x"
      - name: independent
        agent: ops
        task: "[[fake:say=INDEPENDENT]]"
"#
        ),
    )
}

#[test]
fn on_error_fail_stops_everything_not_started() {
    let w = World::new();
    let f = w.write("wf.yaml", &on_error_workflow("fail"));
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let s = summary(&o);
    assert_eq!(step(&s, "bad")["status"], "failed");
    assert_eq!(step(&s, "after-bad")["status"], "skipped");
    assert_eq!(step(&s, "independent")["status"], "skipped");
    assert!(
        step(&s, "independent")["reason"]
            .as_str()
            .unwrap()
            .contains("`bad` failed")
    );
}

#[test]
fn on_error_skip_runs_everything_independent() {
    for policy in ["skip", "continue"] {
        let w = World::new();
        let f = w.write("wf.yaml", &on_error_workflow(policy));
        let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "a failed step still fails the run: {}",
            stderr(&o)
        );
        let s = summary(&o);
        assert_eq!(step(&s, "bad")["status"], "failed");
        assert_eq!(step(&s, "after-bad")["status"], "skipped");
        assert!(
            step(&s, "after-bad")["reason"]
                .as_str()
                .unwrap()
                .contains("dependency `bad` failed")
        );
        assert_eq!(step(&s, "independent")["status"], "completed", "{policy}");
    }
}

#[test]
fn retries_fall_back_from_step_to_agent_to_error_handling() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        r#"name: t
agents:
  - name: dev
    cli: claude
    interactive: false
    constraints: {retries: 2}
  - name: ops
    cli: codex
    interactive: false
workflows:
  - name: main
    onError: continue
    steps:
      - name: by-step
        agent: dev
        retries: 0
        task: "[[fake:exit=1]]"
      - name: by-agent
        agent: dev
        task: "[[fake:exit=1]]"
      - name: by-default
        agent: ops
        task: "[[fake:exit=1]]"
errorHandling:
  maxRetries: 1
"#,
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    assert_eq!(step(&s, "by-step")["attempts"], 1);
    assert_eq!(step(&s, "by-agent")["attempts"], 3);
    assert_eq!(step(&s, "by-default")["attempts"], 2);
}

#[test]
fn deterministic_steps_capture_stdout_and_quote_values() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            r#"    steps:
      - name: list
        type: deterministic
        command: "printf 'one\ntwo\n'; echo {{who}}"
      - name: quiet
        type: deterministic
        command: "echo hidden"
        captureOutput: false
      - name: tolerant
        type: deterministic
        command: "echo partial; exit 5"
        failOnError: false
      - name: use
        agent: dev
        dependsOn: [list]
        task: "[[fake:say=seen {{steps.list.output}}]]"
"#,
        ),
    );
    let evil = "x; touch pwned; $(touch pwned2)";
    let o = w.run(&[
        "run",
        f.to_str().unwrap(),
        "--json",
        "--var",
        &format!("who={evil}"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(step(&s, "list")["output"], format!("one\ntwo\n{evil}\n"));
    assert!(!w.path().join("pwned").exists() && !w.path().join("pwned2").exists());
    assert_eq!(step(&s, "quiet")["output"], "command completed (exit 0)");
    assert_eq!(step(&s, "tolerant")["status"], "completed");
    assert_eq!(step(&s, "tolerant")["exitCode"], 5);
    assert!(
        step(&s, "use")["output"]
            .as_str()
            .unwrap()
            .contains("seen one")
    );
}

#[test]
fn file_exists_and_custom_checks() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            r#"    onError: continue
    steps:
      - name: writes
        agent: dev
        task: "[[fake:write=out/report.md]]"
        verification: {type: file_exists, value: out/report.md}
      - name: no-file
        agent: dev
        task: "nothing"
        verification: {type: file_exists, value: out/missing.md}
      - name: custom-pass
        agent: ops
        task: "[[fake:say=GREEN]]"
        verification: {type: custom, value: 'echo "$AGENT_RELAY_STEP_OUTPUT" | grep -q GREEN && grep -q GREEN "$AGENT_RELAY_STEP_OUTPUT_FILE"'}
      - name: custom-fail
        agent: ops
        task: "[[fake:say=RED]]"
        verification: {type: custom, value: 'echo checking; exit 7'}
"#,
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    let s = summary(&o);
    assert_eq!(step(&s, "writes")["status"], "completed");
    assert_eq!(step(&s, "no-file")["status"], "failed");
    assert!(
        step(&s, "no-file")["reason"]
            .as_str()
            .unwrap()
            .contains("out/missing.md")
    );
    assert_eq!(step(&s, "custom-pass")["status"], "completed");
    assert_eq!(step(&s, "custom-fail")["status"], "failed");
    assert!(
        step(&s, "custom-fail")["reason"]
            .as_str()
            .unwrap()
            .contains("exit code 7")
    );
}

#[test]
fn every_cli_is_invoked_in_its_one_shot_shape() {
    let w = World::new();
    let clis = [
        "claude", "codex", "gemini", "aider", "goose", "opencode", "droid",
    ];
    let mut yaml = String::from("name: t\nagents:\n");
    for c in clis {
        yaml.push_str(&format!(
            "  - name: {c}-agent\n    cli: {c}\n    interactive: false\n    model: m-{c}\n"
        ));
    }
    yaml.push_str("workflows:\n  - name: main\n    steps:\n");
    for c in clis {
        yaml.push_str(&format!(
            "      - name: {c}\n        agent: {c}-agent\n        task: \"hello from {c}\"\n"
        ));
    }
    let f = w.write("wf.yaml", &yaml);
    let argv_log = w.path().join("argv.log");
    let o = w
        .cmd()
        .env("FAKE_AGENT_ARGV_LOG", &argv_log)
        .args(["run", f.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = std::fs::read_to_string(argv_log).unwrap();
    for c in clis {
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("{c}\t")))
            .unwrap_or_else(|| panic!("{c} was not invoked:\n{log}"));
        assert!(line.contains(&format!("m-{c}")), "{c} got no model: {line}");
    }
    assert!(log.contains("\"exec\""), "codex/droid use exec: {log}");
    // The run's MCP server, each CLI its own way (gemini and opencode by environment).
    for (c, flag) in [
        ("claude", "--mcp-config"),
        ("codex", "mcp_servers.agent-relay.command="),
        ("goose", "--with-extension"),
    ] {
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("{c}\t")))
            .unwrap();
        assert!(
            line.contains(flag),
            "{c} was not given the MCP server: {line}"
        );
    }
}

#[test]
fn agents_get_the_relay_environment() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: env-check\n        agent: dev\n        task: \"x\"\n        verification: {type: custom, value: 'true'}\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The fake agent logs the step from AGENT_RELAY_STEP.
    assert!(
        w.agent_log().contains("start env-check"),
        "{}",
        w.agent_log()
    );
}

#[test]
fn missing_cli_is_a_runtime_error_naming_it() {
    let w = World::new();
    std::fs::remove_file(w.bin.join("droid")).unwrap();
    std::fs::remove_file(w.bin.join("goose")).ok();
    // Two steps of one agent, and a second agent: each missing agent is named once, in
    // the order of its first step.
    let f = w.write(
        "wf.yaml",
        "name: t\nagents:\n  - name: robot\n    cli: droid\n    interactive: false\n  - name: bird\n    cli: goose\n    interactive: false\nworkflows:\n  - name: main\n    steps:\n      - name: a\n        agent: robot\n        task: x\n      - name: b\n        agent: bird\n        task: x\n      - name: c\n        agent: robot\n        task: x\n",
    );
    let o = w
        .cmd()
        .env("PATH", &w.bin)
        .args(["run", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    let err = stderr(&o);
    assert!(
        err.contains(
            "agent `robot` needs `droid`, which is not installed (not found on PATH); \
             agent `bird` needs `goose`, which is not installed (not found on PATH); nothing was run"
        ),
        "{err}"
    );
    assert!(w.agent_log().is_empty());
}

#[test]
fn missing_variable_stops_before_anything_starts() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: a\n        agent: dev\n        task: \"do {{feature}} on {{base}}\"\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--var", "base=main"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("feature"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("base,"), "base was given");
    assert!(w.agent_log().is_empty() && !w.has_run_dir());
}

#[test]
fn vars_file_supplies_variables_and_var_wins() {
    let w = World::new();
    w.write("vars.yaml", "feature: from-file\nbase: file-base\n");
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: a\n        agent: dev\n        task: \"[[fake:say={{feature}}/{{base}}]]\"\n",
        ),
    );
    let o = w.run(&[
        "run",
        f.to_str().unwrap(),
        "--json",
        "--vars-file",
        "vars.yaml",
        "--var",
        "base=cli-base",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        step(&summary(&o), "a")["output"]
            .as_str()
            .unwrap()
            .contains("from-file/cli-base")
    );
}

#[test]
fn run_timeout_bounds_the_whole_run() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "swarm:\n  timeoutMs: 400\n",
            "    steps:\n      - name: slow\n        agent: dev\n        task: \"[[fake:sleep=20000]]\"\n      - name: next\n        agent: dev\n        dependsOn: [slow]\n        task: x\n",
        ),
    );
    let o = w.run(&["run", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let s = summary(&o);
    assert!(s["reason"].as_str().unwrap().contains("timed out"), "{s}");
    assert_eq!(step(&s, "slow")["status"], "failed");
    assert_eq!(step(&s, "next")["status"], "skipped");
    assert!(w.leftovers().is_empty());
}

#[test]
fn rehearsal_satisfies_verification_without_any_cli() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            r#"    steps:
      - name: a
        agent: dev
        task: "plan"
        verification: {type: output_contains, value: PLAN_DONE}
      - name: b
        agent: ops
        dependsOn: [a]
        task: "write"
        verification: {type: file_exists, value: out/b.md}
"#,
        ),
    );
    // No fake CLIs on PATH at all: rehearsal must not need them.
    let o = w
        .cmd()
        .env("PATH", "/usr/bin:/bin")
        .args(["run", f.to_str().unwrap(), "--rehearse", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert!(
        step(&s, "a")["output"]
            .as_str()
            .unwrap()
            .contains("PLAN_DONE")
    );
    assert!(w.path().join("out/b.md").exists());
    assert!(w.agent_log().is_empty(), "no fake agent ran");
}

/// `run` of a one-step workflow with `env` set: refused before anything starts (exit 3,
/// no agent ran, no run directory); its stderr.
fn refused_with_knobs(env: &[(&str, &str)]) -> String {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: a\n        agent: dev\n        task: \"go\"\n",
        ),
    );
    let o = w
        .cmd()
        .args(["run", f.to_str().unwrap()])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(w.agent_log().is_empty() && !w.has_run_dir());
    stderr(&o)
}

#[test]
fn an_unreadable_timing_knob_is_refused_naming_it() {
    let err = refused_with_knobs(&[
        ("AGENT_RELAY_PTY_ROWS", "abc"),
        ("AGENT_RELAY_KILL_GRACE_MS", "2s"),
    ]);
    assert!(err.contains("AGENT_RELAY_PTY_ROWS=\"abc\""), "{err}");
    assert!(err.contains("AGENT_RELAY_KILL_GRACE_MS=\"2s\""), "{err}");
}

/// A readiness wait of 0 would fail every interactive agent at start-up with a message
/// about its screen; it is refused before anything starts, naming the variable.
#[test]
fn a_readiness_wait_no_screen_could_meet_is_refused_naming_it() {
    let err = refused_with_knobs(&[("AGENT_RELAY_READY_TIMEOUT_MS", "0")]);
    assert!(err.contains("AGENT_RELAY_READY_TIMEOUT_MS=0 "), "{err}");
    assert!(err.contains("AGENT_RELAY_SETTLE_MS"), "{err}");
}

#[test]
fn a_mistyped_var_is_named_with_the_variable_it_was_meant_for() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &workflow(
            "",
            "    steps:\n      - name: a\n        agent: dev\n        task: \"do {{feature}}\"\n        if: \"mode == 'fast'\"\n",
        ),
    );
    let f = f.to_str().unwrap();
    let o = w.run(&["run", f, "--var", "featur=x"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "--var `featur` is not a variable of workflow `main` (did you mean `feature`?)"
        ),
        "{err}"
    );
    assert!(w.agent_log().is_empty() && !w.has_run_dir());
    let o = w.run(&["validate", f, "--var", "featur=x"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("(did you mean `feature`?)"),
        "{}",
        stderr(&o)
    );
    // A variable only a condition reads is used; an extra one is named and the run goes on.
    let o = w.run(&[
        "run",
        f,
        "--var",
        "feature=x",
        "--var",
        "mode=fast",
        "--var",
        "extra=1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("--var `extra` is not a variable"), "{err}");
    assert!(
        !err.contains("`mode` is not") && !err.contains("`feature` is not"),
        "{err}"
    );
}
