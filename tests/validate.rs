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
fn loop_over_references_are_checked() {
    let looping = |dep: &str, over: &str| {
        steps(&format!(
            "      - {{name: a, type: deterministic, command: echo first}}\n      - {{name: b, type: deterministic,{dep} command: 'echo \"{{{{it}}}}\"', loop: {{over: \"{over}\", as: it}}}}\n"
        ))
    };
    refused(
        &looping(" dependsOn: [a],", "{{steps.zz.output}}"),
        &[],
        &[
            "bad.yaml:10:88",
            "step `b` uses {{steps.zz.output}} but there is no step `zz`",
        ],
    );
    refused(
        &looping("", "{{steps.a.output}}"),
        &[],
        &["step `b` uses {{steps.a.output}} but does not depend on `a`"],
    );
    refused(
        &looping(" dependsOn: [a],", "{{steps.b.output}}"),
        &[],
        &["step `b` uses {{steps.b.output}}, its own output"],
    );
    // A variable with no value stops the run before anything starts, as in any text.
    let w = World::new();
    let f = w.write("wf.yaml", &looping(" dependsOn: [a],", "{{undeclared}}"));
    let o = w.run(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("uses variables: undeclared"),
        "{}",
        stderr(&o)
    );
    let o = w.run(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("missing variable `undeclared`; nothing was run"),
        "{}",
        stderr(&o)
    );
    assert!(!w.has_run_dir(), "a run directory was created");
}

#[test]
fn a_step_using_its_own_output() {
    let e = refused(
        &steps("      - name: a\n        agent: dev\n        task: \"{{steps.a.output}}\"\n"),
        &[],
        &["step `a` uses {{steps.a.output}}, its own output: a step cannot use its own output"],
    );
    assert!(!e.contains("dependsOn"), "{e}");
}

#[test]
fn until_with_a_template() {
    refused(
        &steps(
            "      - {name: a, type: deterministic, command: echo first, until: \"{{undeclared}}\"}\n",
        ),
        &[],
        &[
            "bad.yaml:9:68",
            "`until: {{undeclared}}` would be looked for as written",
        ],
    );
}

#[test]
fn bounds_of_zero() {
    refused(
        &format!(
            "{AGENTS}swarm: {{timeoutMs: 0}}\nworkflows:\n  - name: main\n    steps:\n      - {{name: a, type: deterministic, command: echo, timeoutMs: 0}}\n      - {{name: b, type: deterministic, command: echo, until: ok, maxIterations: 0}}\n"
        ),
        &[],
        &[
            "bad.yaml:6:",
            "swarm.timeoutMs must be at least 1",
            "step `a`: `timeoutMs` must be at least 1",
            "step `b`: `maxIterations` must be at least 1",
            "3 errors",
        ],
    );
}

#[test]
fn control_characters_in_names() {
    let e = refused(
        "name: t\nagents:\n  - {name: \"dev\\nFAKE LINE\", cli: claude, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - {name: \"a\\nok    forged completed\\e[31mRED\", type: deterministic, command: echo}\n",
        &[],
        &[
            r#"agent name "dev\nFAKE LINE" contains the control character '\n'"#,
            r#"step name "a\nok    forged completed\u{1b}[31mRED" contains the control character"#,
        ],
    );
    assert!(!e.contains('\u{1b}') && !e.contains("\nFAKE LINE"), "{e}");
}

#[test]
fn an_agent_name_messages_cannot_be_sent_to() {
    refused(
        "name: t\nagents:\n  - {name: \"my dev\", cli: claude, interactive: false}\nworkflows:\n  - name: main\n    steps:\n      - {name: a, agent: \"my dev\", task: x}\n",
        &[],
        &[
            "bad.yaml:3:",
            "agent name `my dev` is not a valid name (letters, digits, `-`, `_`, `.`)",
        ],
    );
}

#[test]
fn a_file_may_run_another_of_its_workflows_but_not_itself() {
    let w = World::new();
    let f = w.write(
        "same.yaml",
        &format!(
            "{AGENTS}workflows:\n  - name: m\n    steps:\n      - {{name: x, workflow: same.yaml, workflowName: n}}\n  - name: n\n    steps:\n      - {{name: e, type: deterministic, command: echo hi}}\n"
        ),
    );
    let o = w.run(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = refused(
        &format!(
            "{AGENTS}workflows:\n  - name: m\n    steps:\n      - {{name: x, workflow: bad.yaml, workflowName: n}}\n  - name: n\n    steps:\n      - {{name: y, workflow: bad.yaml, workflowName: m}}\n"
        ),
        &[],
        &["sub-workflows include each other"],
    );
    assert!(
        e.contains("bad.yaml (workflow `m`) -> ") && e.contains("bad.yaml (workflow `n`) -> "),
        "{e}"
    );
}

#[test]
fn too_many_alias_expansions() {
    let mut yaml = steps(
        "      - name: a\n        type: deterministic\n        command: echo\n        items:\n",
    );
    yaml.push_str(&format!("          - &a0 [{}]\n", ["lol"; 10].join(", ")));
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        yaml.push_str(&format!(
            "          - &a{i} [{}]\n",
            [prev.as_str(); 10].join(", ")
        ));
    }
    let e = refused(
        &yaml,
        &[],
        &[
            "error: too many alias expansions (more than 1,000,000): the file expands to more than this tool reads",
        ],
    );
    assert!(
        !e.contains("RecordedAnchorEvents") && !e.contains("defined at"),
        "{e}"
    );
}

#[test]
fn a_vars_file_value_that_is_a_list_or_mapping() {
    let w = World::new();
    let f = w.write(
        "wf.yaml",
        &steps("      - {name: a, type: deterministic, command: 'echo {{feature}}'}\n"),
    );
    for (vars, what) in [
        ("feature: [1, {a: 2}]\n", "a list"),
        ("feature: {a: 2}\n", "a mapping"),
    ] {
        let v = w.write("vars.yaml", vars);
        for cmd in ["validate", "run"] {
            let o = w.run(&[cmd, f.to_str().unwrap(), "--vars-file", v.to_str().unwrap()]);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(3), "{cmd}: {err}");
            assert!(
                err.contains(&format!(
                    "variable `feature` (line 1, column 10) must be a string, number or boolean, not {what}"
                )),
                "{cmd}: {err}"
            );
            assert!(!err.contains("untagged"), "{err}");
        }
    }
    assert!(!w.has_run_dir(), "a run directory was created");
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

#[test]
fn names_with_terminal_escapes_are_printed_escaped_in_every_message() {
    let w = World::new();
    let f = w.write(
        "esc.yaml",
        "version: \"1\"\nname: t\nagents:\n  - {name: dev, cli: claude}\nworkflows:\n  - name: m\n    steps:\n      - name: \"a\\e[31m\"\n        agent: \"x\\e[2J\"\n        task: go\n        dependsOn: [\"q\\e[0m\"]\n",
    );
    let o = w.run(&["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("unknown agent `x\\u{1b}[2J`"), "{err}");
    assert!(err.contains("unknown step `q\\u{1b}[0m`"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    // And in the errors of commands that name a run.
    let o = w.run(&["status", "x\u{1b}[2Jy"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!stderr(&o).contains('\u{1b}'), "{:?}", stderr(&o));
    assert!(
        stderr(&o).contains("no run `x\\u{1b}[2Jy`"),
        "{}",
        stderr(&o)
    );
}
