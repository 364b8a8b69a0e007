//! Workflows written in Python, JavaScript, TypeScript and Rust, and the binary's side of
//! the SDKs: `run -` (stdin), `--events-json`, `run`/`validate` of a script, the bundled
//! SDKs found by scripts, missing interpreters, and the SDKs' own test suites run against
//! this binary. Without python3 or node the tests that need them say why they skip; with
//! `CI` set they fail instead.

#![allow(clippy::unwrap_used)]

mod support;

#[path = "../crates/relay-spec/examples/build_workflow.rs"]
mod rust_example;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::{World, agent_relay, stderr, stdout, summary};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> String {
    root().join("examples").join(name).display().to_string()
}

/// Whether `program` runs; when not, skips with the reason printed, or fails under CI.
fn have(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is needed by this test and CI is set"
        );
        eprintln!("skipped: {program} is not installed");
    }
    ok
}

/// `agent-relay ARGS` in the world, with its SDK cache inside the world.
fn relay(w: &World) -> Command {
    let mut c = w.cmd();
    c.env("XDG_CACHE_HOME", w.path().join("cache"));
    c
}

fn run_with_stdin(c: &mut Command, input: &str) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn step_names(s: &serde_json::Value) -> Vec<(String, String)> {
    s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().to_string(),
                x["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_python_example_runs_green_under_the_binary() {
    if !have("python3") {
        return;
    }
    let w = World::new();
    let out = relay(&w)
        .args(["run", &example("sdk-python.py"), "--rehearse", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["workflow"], "sdk-python");
    assert_eq!(
        step_names(&s),
        ["plan", "lint", "test", "review"].map(|n| (n.to_string(), "completed".to_string()))
    );
    // The CLI owned the run: its progress view and run directory.
    assert!(stderr(&out).contains("(rehearsal)"), "{}", stderr(&out));
    assert!(w.run_dir().join("workflow.yaml").is_file());
    let stored = std::fs::read_to_string(w.run_dir().join("workflow.yaml")).unwrap();
    assert!(stored.contains("maxConcurrency: 2"), "{stored}");
}

#[test]
fn the_node_example_runs_green_under_the_binary() {
    if !have("node") {
        return;
    }
    let w = World::new();
    let out = relay(&w)
        .args(["run", &example("sdk-node.mjs"), "--rehearse", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["workflow"], "sdk-node");
    assert_eq!(s["steps"].as_array().unwrap().len(), 3);
    assert_eq!(s["status"], "completed");
}

#[test]
fn a_typescript_workflow_runs_with_tsx_or_says_what_to_install() {
    if !have("node") {
        return;
    }
    let w = World::new();
    let node_strips = Command::new("node")
        .args(["--experimental-strip-types", "-e", "0"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let has_tsx = on_path("tsx");
    let out = relay(&w)
        .args([
            "run",
            &example("sdk-typescript.mts"),
            "--rehearse",
            "--json",
        ])
        .output()
        .unwrap();
    if has_tsx || node_strips {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(summary(&out)["workflow"], "sdk-typescript");
    } else {
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("needs `tsx`"), "{err}");
        assert!(err.contains("npm install -g tsx"), "{err}");
        assert!(err.contains("22.6"), "{err}");
        assert!(!w.has_run_dir());
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

#[test]
fn a_typescript_workflow_goes_through_tsx_when_it_is_on_path() {
    if !have("node") {
        return;
    }
    let w = World::new();
    // A stand-in tsx that records how it was called and runs the (type-free) file with
    // node: what is tested is that the binary calls tsx with the script and the SDK.
    let shim = w.path().join("tsxbin");
    std::fs::create_dir_all(&shim).unwrap();
    let log = w.path().join("tsx.log");
    let tsx = shim.join("tsx");
    std::fs::write(
        &tsx,
        format!(
            "#!/bin/sh\necho \"$@\" > '{}'\ncp \"$1\" \"$1.mjs\" && exec node \"$1.mjs\"\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tsx, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.write(
        "wf.ts",
        "import { workflow } from \"agent-relay\";\nawait workflow(\"via-tsx\").step(\"a\", { command: \"echo typed\" }).run();\n",
    );
    let path = format!(
        "{}:{}",
        shim.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = relay(&w)
        .env("PATH", path)
        .args(["run", "wf.ts", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary(&out)["steps"][0]["output"], "typed\n");
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "wf.ts");
}

#[test]
fn an_es_module_js_file_runs_on_this_node() {
    if !have("node") {
        return;
    }
    let w = World::new();
    w.write(
        "wf.js",
        "import { workflow } from \"agent-relay\";\nawait workflow(\"plain-js\").step(\"a\", { command: \"echo js\" }).run();\n",
    );
    let out = relay(&w).args(["run", "wf.js", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary(&out)["steps"][0]["output"], "js\n");
}

#[test]
fn a_missing_interpreter_is_a_clear_error_with_exit_4() {
    let w = World::new();
    w.write("wf.py", "raise SystemExit(1)\n");
    w.write("wf.mjs", "process.exit(1)\n");
    let out = relay(&w)
        .env("AGENT_RELAY_PYTHON", "no-such-python3")
        .args(["run", "wf.py"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`no-such-python3` is not on PATH; install Python 3"),
        "{}",
        stderr(&out)
    );
    let out = relay(&w)
        .env("AGENT_RELAY_NODE", "no-such-node")
        .args(["validate", "wf.mjs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`no-such-node` is not on PATH; it needs Node.js"),
        "{}",
        stderr(&out)
    );
    assert!(!w.has_run_dir());
}

#[test]
fn a_script_that_fails_or_never_runs_a_workflow_is_invalid_input() {
    if !have("python3") {
        return;
    }
    let w = World::new();
    w.write(
        "crash.py",
        "import sys\nprint('boom', file=sys.stderr)\nsys.exit(5)\n",
    );
    w.write(
        "idle.py",
        "from agent_relay import workflow\nworkflow('x').to_yaml()\n",
    );
    let out = relay(&w).args(["run", "crash.py"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("boom"), "{err}");
    assert!(
        err.contains("crash.py exited with status 5 before handing over a workflow"),
        "{err}"
    );
    let out = relay(&w).args(["run", "idle.py"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("idle.py ended without handing over a workflow"),
        "{}",
        stderr(&out)
    );
    assert!(!w.has_run_dir());
}

#[test]
fn validate_checks_a_script_and_points_into_the_generated_yaml() {
    if !have("python3") {
        return;
    }
    let w = World::new();
    let out = relay(&w)
        .args(["validate", &example("sdk-python.py")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("(generated relay.yaml): valid (1 workflow, 4 steps, 2 agents)"),
        "{}",
        stdout(&out)
    );
    w.write(
        "bad.py",
        "from agent_relay import workflow\nworkflow('b').step('s', agent='ghost', task='x').run()\n",
    );
    let out = relay(&w).args(["validate", "bad.py"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("bad.py (generated relay.yaml):"), "{err}");
    assert!(err.contains("ghost"), "{err}");
}

#[test]
fn the_command_line_wins_over_the_scripts_vars_and_workflow() {
    if !have("python3") {
        return;
    }
    let w = World::new();
    w.write(
        "two.yaml",
        "name: two\nagents: []\nworkflows:\n  - name: first\n    steps:\n      - {name: a, type: deterministic, command: 'echo first {{v}}'}\n  - name: second\n    steps:\n      - {name: b, type: deterministic, command: 'echo second {{v}}'}\n",
    );
    w.write(
        "pick.py",
        "from agent_relay import run_yaml\nrun_yaml('two.yaml', workflow='second', vars={'v': 'script'})\n",
    );
    let out = relay(&w)
        .args(["run", "pick.py", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["workflow"], "second");
    assert_eq!(s["steps"][0]["output"], "second script\n");
    let out = relay(&w)
        .args(["run", "pick.py", "--json", "-w", "first", "--var", "v=cli"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["workflow"], "first");
    assert_eq!(s["steps"][0]["output"], "first cli\n");
}

#[test]
fn run_dash_reads_stdin_and_resolves_relative_paths_from_the_current_directory() {
    let w = World::new();
    std::fs::create_dir_all(w.path().join(".relay")).unwrap();
    w.write(
        ".relay/steps.yaml",
        "steps:\n  greet:\n    type: deterministic\n    params: [{name: who, required: true}]\n    command: echo hello {{who}}\n",
    );
    w.write(
        "sub.yaml",
        "name: sub\nagents: []\nworkflows:\n  - name: main\n    steps:\n      - {name: inner, type: deterministic, command: echo from sub}\n",
    );
    let yaml = "name: piped\nagents: []\nworkflows:\n  - name: main\n    steps:\n      - {name: hi, use: greet, who: stdin}\n      - {name: nested, workflow: sub.yaml, dependsOn: [hi]}\n";
    let out = run_with_stdin(relay(&w).args(["run", "-", "--json"]), yaml);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    let hi = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "hi")
        .unwrap();
    assert_eq!(hi["output"], "hello stdin\n");
    assert!(stdout(&out).contains("from sub"), "{}", stdout(&out));
    let stored = std::fs::read_to_string(w.run_dir().join("workflow.yaml")).unwrap();
    assert_eq!(stored, yaml, "the run keeps what was piped in, for resume");
    // Errors name <stdin> with positions.
    let out = run_with_stdin(
        relay(&w).args(["validate", "-"]),
        "name: x\nagents: []\nworkflows:\n  - name: main\n    steps:\n      - {name: a, agent: ghost, task: t}\n",
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("<stdin>:6:"), "{}", stderr(&out));
}

#[test]
fn events_json_prints_every_event_as_a_line_and_the_summary_last() {
    let w = World::new();
    let yaml = "name: ev\nagents: []\nworkflows:\n  - name: main\n    steps:\n      - {name: a, type: deterministic, command: echo a}\n      - {name: b, type: deterministic, command: echo b, dependsOn: [a]}\n";
    let out = run_with_stdin(
        relay(&w).args(["run", "-", "--json", "--events-json"]),
        yaml,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (last, events) = lines.split_last().unwrap();
    assert_eq!(last["status"], "completed");
    assert_eq!(last["steps"].as_array().unwrap().len(), 2);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"run:started"));
    assert_eq!(types.last(), Some(&"run:completed"));
    let done: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "step:completed")
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(done, ["a", "b"]);
    // The same events as the run's log, in the same order.
    assert_eq!(events, w.events().as_slice());
    // Without --json only events are on stdout; the summary stays on stderr.
    let out = run_with_stdin(relay(&w).args(["run", "-", "--events-json"]), yaml);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).lines().all(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["type"].is_string()
    }));
    assert!(stderr(&out).contains("completed in"), "{}", stderr(&out));
}

#[test]
fn the_rust_builders_example_validates_and_runs_from_stdin() {
    let yaml = rust_example::workflow().to_yaml().unwrap();
    let w = World::new();
    let out = run_with_stdin(relay(&w).args(["validate", "-"]), &yaml);
    assert_eq!(out.status.code(), Some(0), "{}\n{yaml}", stderr(&out));
    let out = run_with_stdin(relay(&w).args(["run", "-", "--rehearse", "--json"]), &yaml);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary(&out)["status"], "completed");
}

/// Runs an SDK's own suite against this binary, with the fake agents first on PATH.
fn sdk_suite(program: &str, args: &[&str]) {
    let w = World::new();
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .env("AGENT_RELAY_BIN", agent_relay())
        .env("AGENT_RELAY_FAKE_BIN", &w.bin)
        .env("XDG_CACHE_HOME", w.path().join("cache"))
        .env("RELAY_TEST_TAG", &w.tag)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn the_python_sdk_suite_passes_against_this_binary() {
    if !have("python3") {
        return;
    }
    sdk_suite(
        "python3",
        &["-m", "unittest", "discover", "-s", "sdk/python/tests", "-v"],
    );
}

#[test]
fn the_node_sdk_suite_passes_against_this_binary() {
    if !have("node") {
        return;
    }
    sdk_suite("node", &["--test", "sdk/typescript/test/"]);
}
