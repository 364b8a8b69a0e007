//! Every kind of invalid workflow is refused with exit 3, a message that names the
//! problem and where it is, and no agent started.

#![allow(clippy::unwrap_used)]

mod support;

use support::{World, stderr};

const AGENTS: &str = "name: t\nagents:\n  - name: dev\n    cli: claude\n    interactive: false\n";

/// Runs `validate` and `run` on `yaml`; both must exit 3 and mention every `needles`.
fn refused(yaml: &str, extra: &[&str], needles: &[&str]) -> String {
    let w = World::new();
    let f = w.write("bad.yaml", yaml);
    for cmd in ["validate", "run"] {
        let mut args = vec![cmd, f.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = w.run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{cmd} should exit 3:\n{err}");
        for n in needles {
            assert!(err.contains(n), "{cmd}: expected `{n}` in:\n{err}");
        }
    }
    assert!(w.agent_log().is_empty(), "an agent was started");
    assert!(!w.has_run_dir(), "a run directory was created");
    let o = w.run(&["validate", f.to_str().unwrap()]);
    stderr(&o)
}

fn steps(s: &str) -> String {
    format!("{AGENTS}workflows:\n  - name: main\n    steps:\n{s}")
}

#[test]
fn unknown_field_suggests_the_right_one() {
    refused(
        &steps("      - name: a\n        agent: dev\n        task: x\n        dependOn: [b]\n"),
        &[],
        &[
            "bad.yaml:12:9",
            "unknown field `dependOn`",
            "did you mean `dependsOn`?",
        ],
    );
}

#[test]
fn wrong_type_names_the_position() {
    refused(
        &format!("{AGENTS}swarm:\n  maxConcurrency: three\nworkflows: []\n"),
        &[],
        &["bad.yaml:7:"],
    );
}

#[test]
fn yaml_syntax_error_names_the_position() {
    refused("name: t\nagents: [\n  oops\n", &[], &["bad.yaml:"]);
}

#[test]
fn duplicate_names() {
    let e = refused(
        &format!(
            "{AGENTS}  - name: dev\n    cli: codex\nworkflows:\n  - name: main\n    steps:\n      - name: a\n        agent: dev\n        task: x\n      - name: a\n        agent: dev\n        task: y\n"
        ),
        &[],
        &["duplicate agent name `dev`", "duplicate step name `a`"],
    );
    assert!(e.contains("2 errors"), "all problems are listed:\n{e}");
}

#[test]
fn unknown_agent_and_dependency() {
    refused(
        &steps("      - name: a\n        agent: deb\n        task: x\n        dependsOn: [nope]\n"),
        &[],
        &[
            "unknown agent `deb`",
            "did you mean `dev`?",
            "unknown step `nope`",
        ],
    );
}

#[test]
fn dependency_cycle_names_its_steps() {
    refused(
        &steps(
            "      - name: a\n        agent: dev\n        task: x\n        dependsOn: [b]\n      - name: b\n        agent: dev\n        task: x\n        dependsOn: [a]\n",
        ),
        &[],
        &["dependency cycle in workflow `main`", "b -> a"],
    );
}

#[test]
fn unknown_workflow_for_dash_w() {
    refused(
        &steps("      - name: a\n        agent: dev\n        task: x\n"),
        &["-w", "mian"],
        &["unknown workflow `mian`", "did you mean `main`?"],
    );
}

#[test]
fn empty_workflow() {
    refused(
        &format!("{AGENTS}workflows:\n  - name: main\n    steps: []\n"),
        &[],
        &["workflow `main` has no steps"],
    );
}

#[test]
fn step_output_from_a_step_that_is_not_upstream() {
    refused(
        &steps(
            "      - name: a\n        agent: dev\n        task: x\n      - name: b\n        agent: dev\n        task: \"{{steps.a.output}}\"\n",
        ),
        &[],
        &["step `b` uses {{steps.a.output}} but does not depend on `a`"],
    );
}

#[test]
fn unknown_verification_type() {
    refused(
        &steps(
            "      - name: a\n        agent: dev\n        task: x\n        verification: {type: output_has, value: X}\n",
        ),
        &[],
        &["unknown value `output_has`", "output_contains"],
    );
}

#[test]
fn unknown_cli() {
    refused(
        "name: t\nagents:\n  - name: dev\n    cli: cursr\nworkflows: []\n",
        &[],
        &["unknown value `cursr`", "claude"],
    );
}

#[test]
fn missing_file_is_usage_error() {
    let w = World::new();
    let o = w.run(&["validate", "nope.yaml"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("nope.yaml"));
}

#[test]
fn bad_usage_exits_3() {
    let w = World::new();
    assert_eq!(w.run(&["run"]).status.code(), Some(3));
    assert_eq!(w.run(&["frobnicate"]).status.code(), Some(3));
    let f = w.write(
        "ok.yaml",
        &steps("      - name: a\n        agent: dev\n        task: x\n"),
    );
    assert_eq!(
        w.run(&["run", f.to_str().unwrap(), "--var", "novalue"])
            .status
            .code(),
        Some(3)
    );
}

#[test]
fn validate_warns_about_fields_without_effect_and_passes() {
    let w = World::new();
    let f = w.write(
        "ok.yaml",
        &format!(
            "{AGENTS}    preset: fast\nstate:\n  backend: memory\nworkflows:\n  - name: main\n    steps:\n      - name: a\n        agent: dev\n        task: x\n"
        ),
    );
    let o = w.run(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("state (shared state)"),
        "shared state takes effect: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("agents[dev].preset has no effect yet"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn schema_is_json_and_describes_the_format() {
    let w = World::new();
    let o = w.run(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = v.to_string();
    for field in [
        "maxConcurrency",
        "dependsOn",
        "idleNudge",
        "output_contains",
        "captureOutput",
        "resultFrom",
    ] {
        assert!(text.contains(field), "schema lacks {field}");
    }
}
