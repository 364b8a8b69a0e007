//! Validation findings, one behaviour per test.

use super::*;
use crate::load::parse;

const AGENTS: &str = "name: t\nagents:\n  - name: dev\n    cli: claude\n    interactive: false\n";

fn report(workflows: &str) -> Report {
    let src = format!("{AGENTS}workflows:\n{workflows}");
    let loaded = parse(&src, "w.yaml").unwrap();
    validate(&loaded, None)
}

fn errors(workflows: &str) -> Vec<String> {
    report(workflows)
        .errors()
        .map(|d| d.message.clone())
        .collect()
}

#[test]
fn a_clean_file_has_no_findings() {
    let r = report(
        "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: go\n      - name: b\n        agent: dev\n        task: 'use {{steps.a.output}}'\n        dependsOn: [a]\n",
    );
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
}

#[test]
fn duplicate_steps_and_unknown_agent_are_all_reported() {
    let e = errors(
        "  - name: w\n    steps:\n      - name: a\n        agent: dve\n        task: go\n      - name: a\n        agent: dev\n        task: go\n",
    );
    assert!(
        e.iter()
            .any(|m| m.contains("unknown agent `dve`") && m.contains("`dev`")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.contains("duplicate step name `a`")),
        "{e:?}"
    );
}

#[test]
fn unknown_dependency_is_named() {
    let e = errors(
        "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: go\n        dependsOn: [nope]\n",
    );
    assert!(e.iter().any(|m| m.contains("unknown step `nope`")), "{e:?}");
}

#[test]
fn cycle_names_its_steps() {
    let e = errors(
        "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: go\n        dependsOn: [c]\n      - name: b\n        agent: dev\n        task: go\n        dependsOn: [a]\n      - name: c\n        agent: dev\n        task: go\n        dependsOn: [b]\n",
    );
    let m = e
        .iter()
        .find(|m| m.contains("cycle"))
        .expect("a cycle error");
    for s in ["a", "b", "c"] {
        assert!(m.contains(&format!("{s} ->")) || m.ends_with(s), "{m}");
    }
}

#[test]
fn step_output_of_a_non_upstream_step_is_an_error() {
    let e = errors(
        "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: go\n      - name: b\n        agent: dev\n        task: 'x {{steps.a.output}}'\n",
    );
    assert!(
        e.iter().any(|m| m.contains("does not depend on `a`")),
        "{e:?}"
    );
}

#[test]
fn empty_workflow_and_missing_file_workflows() {
    assert!(
        errors("  - name: w\n    steps: []\n")
            .iter()
            .any(|m| m.contains("has no steps"))
    );
    let loaded = parse(AGENTS, "w.yaml").unwrap();
    assert!(
        validate(&loaded, None)
            .errors()
            .any(|d| d.message.contains("no workflows"))
    );
}

#[test]
fn unknown_workflow_for_selection() {
    let src = format!(
        "{AGENTS}workflows:\n  - name: build\n    steps:\n      - name: a\n        agent: dev\n        task: go\n"
    );
    let loaded = parse(&src, "w.yaml").unwrap();
    let r = validate(&loaded, Some("buidl"));
    assert!(
        r.errors().any(
            |d| d.message.contains("unknown workflow `buidl`") && d.message.contains("`build`")
        )
    );
}

#[test]
fn deterministic_step_needs_a_command_and_exit_code_needs_an_integer() {
    let e = errors(
        "  - name: w\n    steps:\n      - name: a\n        type: deterministic\n      - name: b\n        agent: dev\n        task: go\n        verification: {type: exit_code, value: zero}\n",
    );
    assert!(e.iter().any(|m| m.contains("has no `command`")), "{e:?}");
    assert!(e.iter().any(|m| m.contains("not an integer")), "{e:?}");
}

#[test]
fn positions_point_at_the_offending_text() {
    let r = report(
        "  - name: w\n    steps:\n      - name: a\n        agent: ghost\n        task: go\n",
    );
    let d = r.errors().next().unwrap();
    assert_eq!(d.pos.map(|p| p.line), Some(10));
    assert!(d.render("w.yaml").starts_with("w.yaml:10:"));
}

#[test]
fn required_and_missing_vars() {
    let src = format!(
        "{AGENTS}workflows:\n  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: '{{{{task}}}} on {{{{base}}}}'\n"
    );
    let loaded = parse(&src, "w.yaml").unwrap();
    let wf = &loaded.file.workflows[0];
    assert_eq!(
        required_vars(wf).into_iter().collect::<Vec<_>>(),
        ["base", "task"]
    );
    let vars = BTreeMap::from([("task".to_string(), "x".to_string())]);
    assert_eq!(missing_vars(wf, &vars), ["base"]);
}

/// The findings for a whole file.
fn file_errors(src: &str) -> Vec<String> {
    let loaded = parse(src, "w.yaml").unwrap();
    validate(&loaded, None)
        .errors()
        .map(|d| d.message.clone())
        .collect()
}

fn has(errors: &[String], all: &[&str]) -> bool {
    errors.iter().any(|m| all.iter().all(|p| m.contains(p)))
}

#[test]
fn a_barrier_named_like_a_step_is_an_error_naming_both() {
    let e = file_errors(&format!(
        "{AGENTS}coordination:\n  barriers:\n    - {{name: build, waitFor: [build]}}\n    - {{name: gate, waitFor: [build]}}\n    - {{name: gate, waitFor: [build]}}\nworkflows:\n  - name: w\n    steps:\n      - {{name: build, agent: dev, task: go}}\n      - {{name: ship, agent: dev, task: go, dependsOn: [build]}}\n"
    ));
    assert!(
        has(
            &e,
            &["barrier `build`", "step `build`", "workflow `w`", "rename"]
        ),
        "{e:?}"
    );
    assert!(has(&e, &["duplicate barrier name `gate`"]), "{e:?}");
}

#[test]
fn barriers_must_wait_for_known_steps() {
    let e = file_errors(&format!(
        "{AGENTS}coordination:\n  barriers:\n    - {{name: g1, waitFor: [biuld]}}\n    - {{name: g2, waitFor: []}}\nworkflows:\n  - name: w\n    steps:\n      - {{name: build, agent: dev, task: go}}\n"
    ));
    assert!(
        has(&e, &["unknown step `biuld`", "did you mean `build`"]),
        "{e:?}"
    );
    assert!(has(&e, &["barrier `g2` waits for no steps"]), "{e:?}");
}

/// A chain of `n` steps, each using the output of the first and of the one before.
fn chain(n: usize) -> String {
    let mut y = format!(
        "{AGENTS}workflows:\n  - name: w\n    steps:\n      - {{name: s0, agent: dev, task: go}}\n"
    );
    for i in 1..n {
        y.push_str(&format!(
            "      - {{name: s{i}, agent: dev, task: 'from {{{{steps.s0.output}}}} and {{{{steps.s{}.output}}}}', dependsOn: [s{}]}}\n",
            i - 1,
            i - 1
        ));
    }
    y
}

#[test]
fn a_10000_step_chain_validates_without_quadratic_upstream_sets() {
    // Per-step upstream sets are 50 million entries here; the graph answers the 20 000
    // references in a few passes.
    let n = 10_000;
    assert!(file_errors(&chain(n)).is_empty());
    // A reference to a step that is not upstream is still found, and only that one.
    let mut y = chain(n);
    y.push_str("      - {name: lone, agent: dev, task: 'x {{steps.s9999.output}}'}\n");
    let e = file_errors(&y);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("step `lone`") && e[0].contains("does not depend on `s9999`"));
}

#[test]
fn a_400_kb_task_and_a_40_kb_name_validate_quickly() {
    let task = "{{ not a ref ".repeat(31_000);
    assert!(task.len() > 400_000);
    let e = errors(&format!(
        "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: '{task}}}}}'\n"
    ));
    assert!(e.is_empty(), "{e:?}");
    // Two 20 000-byte names one edit apart: comparing them fully for a suggestion would
    // build a 3 GB matrix.
    let long = "n".repeat(20_000);
    let near = format!("{}m", "n".repeat(19_999));
    let e = errors(&format!(
        "  - name: w\n    steps:\n      - {{name: {long}, agent: dev, task: go}}\n      - {{name: b, agent: dev, task: go, dependsOn: [{near}]}}\n"
    ));
    assert!(
        has(&e, &["step name `nnnn", "too long", "128 bytes"]),
        "{e:?}"
    );
    assert!(has(&e, &["depends on unknown step `nnnn"]), "{e:?}");
    assert!(!has(&e, &["did you mean"]), "{e:?}");
    assert!(e.iter().all(|m| m.len() < 300), "messages stay short");
}

#[test]
fn items_outside_the_item_patterns_is_an_error_naming_them() {
    let e = errors(
        "  - name: w\n    steps:\n      - {name: a, agent: dev, task: 'do {{item}}', items: [x, y]}\n",
    );
    assert!(
        has(
            &e,
            &[
                "step `a` has `items`",
                "map-reduce",
                "scatter-gather",
                "fan-out"
            ]
        ),
        "{e:?}"
    );
    let ok = file_errors(&format!(
        "{AGENTS}swarm: {{pattern: map-reduce}}\nworkflows:\n  - name: w\n    steps:\n      - {{name: a, agent: dev, task: 'do {{{{item}}}} {{{{itemIndex}}}}', items: [x, y]}}\n"
    ));
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn item_references_need_items() {
    let e = file_errors(&format!(
        "{AGENTS}swarm: {{pattern: map-reduce}}\nworkflows:\n  - name: w\n    steps:\n      - {{name: a, agent: dev, task: 'do {{{{item}}}}'}}\n      - {{name: b, type: deterministic, command: 'echo {{{{itemIndex}}}}'}}\n"
    ));
    assert!(has(&e, &["step `a` uses {{item}}", "no `items`"]), "{e:?}");
    assert!(
        has(&e, &["step `b` uses {{itemIndex}}", "no `items`"]),
        "{e:?}"
    );
}

#[test]
fn agents_named_in_participants_escalate_to_and_reports_to_must_exist() {
    let e = file_errors(
        "name: t\nagents:\n  - {name: dev, cli: claude}\n  - {name: lead, cli: claude, reportsTo: deev}\nworkflows:\n  - name: w\n    steps:\n      - {name: a, agent: dev, task: go, participants: [led], escalateTo: [dve]}\n",
    );
    assert!(
        has(
            &e,
            &[
                "agent `lead` reports to unknown agent `deev`",
                "did you mean `dev`"
            ]
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &[
                "unknown agent `led` in `participants`",
                "did you mean `lead`"
            ]
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &["unknown agent `dve` in `escalateTo`", "did you mean `dev`"]
        ),
        "{e:?}"
    );
    let loaded = parse(
        "name: t\nagents:\n  - {name: dev, cli: claude}\n  - {name: lead, cli: claude, reportsTo: deev}\nworkflows:\n  - name: w\n    steps:\n      - {name: a, agent: dev, task: go}\n",
        "w.yaml",
    )
    .unwrap();
    let r = validate(&loaded, None);
    let d = r.errors().next().unwrap();
    assert_eq!(d.pos.map(|p| p.line), Some(4), "points at reportsTo");
}

#[test]
fn reports_to_cycles_are_named_once() {
    let e = file_errors(
        "name: t\nagents:\n  - {name: a, cli: claude, reportsTo: c}\n  - {name: b, cli: claude, reportsTo: a}\n  - {name: c, cli: claude, reportsTo: b}\n  - {name: d, cli: claude, reportsTo: a}\n  - {name: e, cli: claude, reportsTo: e}\nworkflows:\n  - name: w\n    steps:\n      - {name: s, agent: a, task: go}\n",
    );
    let cycles: Vec<&String> = e.iter().filter(|m| m.contains("cycle")).collect();
    assert_eq!(cycles.len(), 1, "{e:?}");
    assert!(cycles[0].contains("a -> c -> b -> a"), "{e:?}");
    assert!(has(&e, &["agent `e` reports to itself"]), "{e:?}");
}

#[test]
fn step_outputs_in_items_and_compensate_must_exist_and_be_upstream() {
    let e = file_errors(&format!(
        "{AGENTS}swarm: {{pattern: map-reduce}}\nworkflows:\n  - name: w\n    steps:\n      - {{name: list, agent: dev, task: go}}\n      - {{name: a, agent: dev, task: 'do {{{{item}}}}', items: '{{{{steps.ghost.output}}}}', compensate: 'undo {{{{steps.list.output}}}}'}}\n"
    ));
    assert!(
        has(
            &e,
            &["step `a` uses {{steps.ghost.output}}", "no step `ghost`"]
        ),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            &[
                "step `a` uses {{steps.list.output}}",
                "does not depend on `list`"
            ]
        ),
        "{e:?}"
    );
}

#[test]
fn nul_characters_in_names_and_commands_are_errors() {
    let e = file_errors(
        "name: t\nagents:\n  - {name: \"de\\0v\", cli: claude}\nworkflows:\n  - name: \"w\\0\"\n    steps:\n      - {name: \"s\\0\", type: deterministic, command: \"echo \\0 hi\"}\n      - {name: v, type: deterministic, command: 'true', verification: {type: custom, value: \"test \\0\"}}\n",
    );
    for what in ["agent name", "workflow name", "step name"] {
        assert!(has(&e, &[what, "NUL"]), "{what}: {e:?}");
    }
    assert!(
        has(&e, &["command of step `s", "NUL", "at byte 5"]),
        "{e:?}"
    );
    assert!(
        has(&e, &["verification command of step `v`", "NUL"]),
        "{e:?}"
    );
}

#[test]
fn names_longer_than_the_bound_are_errors() {
    let long = "x".repeat(129);
    let e = file_errors(&format!(
        "name: t\nagents:\n  - {{name: {long}, cli: claude}}\nworkflows:\n  - name: {long}\n    steps:\n      - {{name: {long}, agent: {long}, task: go}}\n"
    ));
    for what in ["agent name", "workflow name", "step name"] {
        assert!(has(&e, &[what, "too long"]), "{what}: {e:?}");
    }
    let ok = "x".repeat(128);
    assert!(file_errors(&format!(
        "name: t\nagents:\n  - {{name: {ok}, cli: claude}}\nworkflows:\n  - name: {ok}\n    steps:\n      - {{name: {ok}, agent: {ok}, task: go}}\n"
    ))
    .is_empty());
}

#[test]
fn exit_codes_must_be_integers_from_0_to_255() {
    for bad in ["256", "-1", "1.5", "'0x1'", "zero"] {
        let e = errors(&format!(
            "  - name: w\n    steps:\n      - {{name: a, agent: dev, task: go, verification: {{type: exit_code, value: {bad}}}}}\n"
        ));
        assert!(
            has(&e, &["exit_code", "not an integer from 0 to 255"]),
            "{bad}: {e:?}"
        );
    }
    for good in ["0", "255", "'3'"] {
        let e = errors(&format!(
            "  - name: w\n    steps:\n      - {{name: a, agent: dev, task: go, verification: {{type: exit_code, value: {good}}}}}\n"
        ));
        assert!(e.is_empty(), "{good}: {e:?}");
    }
}

#[test]
fn max_concurrency_zero_is_an_error() {
    let loaded = parse(
        &format!("{AGENTS}swarm:\n  maxConcurrency: 0\nworkflows:\n  - name: w\n    steps:\n      - {{name: a, agent: dev, task: go}}\n"),
        "w.yaml",
    )
    .unwrap();
    let r = validate(&loaded, None);
    let d = r.errors().next().expect("an error");
    assert!(
        d.message.contains("maxConcurrency must be at least 1"),
        "{d:?}"
    );
    assert_eq!(d.pos.map(|p| p.line), Some(7));
}

#[test]
fn an_auction_needs_a_possible_bidder() {
    let only = "name: t\nswarm: {pattern: auction}\nagents:\n  - {name: house, cli: claude, role: auctioneer}\nworkflows:\n  - name: w\n    steps:\n      - {name: job, agent: house, task: go}\n";
    assert!(has(
        &file_errors(only),
        &["step `job`", "auction", "no one to bid"]
    ));
    let with_bidder = only.replace(
        "workflows:",
        "  - {name: fast, cli: codex, role: bidder}\nworkflows:",
    );
    assert!(file_errors(&with_bidder).is_empty());
    let listed = only.replace("task: go}", "task: go, participants: [house]}");
    assert!(file_errors(&listed).is_empty());
}

#[test]
fn texts_over_the_size_limit_are_errors() {
    let big = "t".repeat(crate::limits::MAX_TEXT_BYTES + 1);
    let e = errors(&format!(
        "  - name: w\n    steps:\n      - {{name: a, agent: dev, task: {big}}}\n      - {{name: b, type: deterministic, command: 'echo', compensate: {big}}}\n"
    ));
    assert!(has(&e, &["the task of step `a`", "at most 1 MiB"]), "{e:?}");
    assert!(
        has(&e, &["the compensate of step `b`", "at most 1 MiB"]),
        "{e:?}"
    );
}

#[test]
fn workflows_over_the_step_limit_are_refused_while_parsing() {
    let max = crate::limits::MAX_STEPS;
    let mut y = format!("{AGENTS}workflows:\n  - name: w\n    steps:\n");
    for i in 0..=max {
        y.push_str(&format!("      - {{name: s{i}, agent: dev, task: go}}\n"));
    }
    let e = parse(&y, "w.yaml").unwrap_err().to_string();
    assert!(e.contains("at most 100000 steps"), "{e}");
    assert!(
        e.starts_with(&format!("w.yaml:{}:", max + 9)),
        "points at the step past the limit: {e}"
    );
}

#[test]
fn references_in_worktree_wait_and_integration_fields_are_checked() {
    let e = file_errors(
        "name: t\nworkflows:\n  - name: w\n    steps:\n      - {name: a, type: deterministic, command: 'true'}\n      - {name: wt, type: worktree, branch: 'f/{{steps.a.output}}'}\n      - {name: pr, type: integration, integration: github, action: create-pr, params: {body: '{{steps.ghost.output}}'}}\n      - {name: wait, type: waitFor, waitFor: {path: '{{steps.a.output}}'}, dependsOn: [a]}\n",
    );
    assert!(has(&e, &["step `wt`", "does not depend on `a`"]), "{e:?}");
    assert!(has(&e, &["step `pr`", "no step `ghost`"]), "{e:?}");
    assert!(!has(&e, &["step `wait`"]), "{e:?}");
    let loaded = parse(
        "name: t\nworkflows:\n  - name: w\n    steps:\n      - {name: wt, type: worktree, branch: 'f/{{ticket}}', path: '{{dir}}'}\n",
        "w.yaml",
    )
    .unwrap();
    let vars: Vec<String> = required_vars(&loaded.file.workflows[0])
        .into_iter()
        .collect();
    assert_eq!(vars, ["dir", "ticket"]);
}

// ---- control flow ---------------------------------------------------------------------

fn found(workflows: &str, what: &str) -> Diagnostic {
    let r = report(workflows);
    r.errors()
        .find(|d| d.message.contains(what))
        .cloned()
        .unwrap_or_else(|| panic!("no error with {what:?} in {:?}", r.diagnostics))
}

#[test]
fn control_flow_misuse_is_reported_at_its_line_and_column() {
    let w = "  - name: w\n    steps:\n      - {name: a, agent: dev, task: go}\n";
    // A syntax error: the position of the `if` value and the column inside it.
    let d = found(
        &format!(
            "{w}      - {{name: b, agent: dev, task: go, dependsOn: [a], if: \"steps.a.status = 'x'\"}}\n"
        ),
        "column 16 of the condition",
    );
    let pos = d.pos.expect("a position");
    assert_eq!((pos.line, pos.column), (10, 61));
    assert!(d.message.contains("`==`"), "{}", d.message);
    // A step a condition names must exist and be upstream.
    found(
        &format!("{w}      - {{name: b, agent: dev, task: go, if: \"steps.aa.status == 'x'\"}}\n"),
        "no step `aa` (did you mean `a`?)",
    );
    found(
        &format!("{w}      - {{name: b, agent: dev, task: go, if: \"steps.a.status == 'x'\"}}\n"),
        "does not depend on it",
    );
    found(
        &format!(
            "{w}      - {{name: b, agent: dev, task: go, dependsOn: [a], if: \"steps.a.state == 'x'\"}}\n"
        ),
        "`.output` or `.exitCode`",
    );
    found(
        &format!("{w}      - {{name: b, agent: dev, task: go, skipIf: sometimes}}\n"),
        "is no rule",
    );
    found(
        &format!("{w}      - {{name: b, agent: dev, task: go, loop: {{max: 0}}}}\n"),
        "at least 1",
    );
    found(
        &format!("{w}      - {{name: b, agent: dev, task: go, loop: {{}}}}\n"),
        "needs `max: N`",
    );
    found(
        &format!("{w}      - {{name: b, agent: dev, task: go, breakIf: failure}}\n"),
        "no loop",
    );
    found(
        &format!("{w}      - {{name: b, agent: dev, task: go, until: \"regex:(\"}}\n"),
        "not a valid regular expression",
    );
    found(
        &format!("{w}      - {{name: b, agent: dev, task: go, approval: maybe}}\n"),
        "`approval: maybe` is not a setting",
    );
    found(
        &format!("{w}      - {{name: b, agent: dev, task: \"{{{{res}}}}\", outputVar: res}}\n"),
        "its own output",
    );
    found(
        &format!(
            "{w}      - {{name: b, agent: dev, task: go, outputVar: res}}\n      - {{name: c, agent: dev, task: \"{{{{res}}}}\"}}\n"
        ),
        "does not depend on it",
    );
}

#[test]
fn loop_and_output_names_are_not_missing_variables() {
    let src = format!(
        "{AGENTS}workflows:\n  - name: w\n    steps:\n      - {{name: a, agent: dev, task: go, outputVar: plan}}\n      - {{name: b, agent: dev, dependsOn: [a], task: \"{{{{plan}}}} {{{{file}}}} {{{{iteration}}}}/{{{{maxIterations}}}} {{{{who}}}}\", loop: {{over: [x, y], as: file}}, breakIf: \"contains(output, 'x') or mode == 'quick'\"}}\n"
    );
    let loaded = parse(&src, "w.yaml").unwrap();
    let r = validate(&loaded, None);
    assert!(!r.has_errors(), "{:?}", r.diagnostics);
    let wf = &loaded.file.workflows[0];
    assert_eq!(
        required_vars(wf).into_iter().collect::<Vec<_>>(),
        ["mode", "who"]
    );
}

#[test]
fn worktree_settings_are_checked() {
    let src = "name: t\nagents:\n  - {name: dev, cli: claude, worktree: true}\n  - {name: fixer, cli: codex}\nswarm:\n  resolver: fixr\n  worktreeInclude: ['.env', '../secrets', '/etc/passwd', '']\nworkflows:\n  - name: w\n    steps:\n      - {name: a, agent: dev, task: go}\n";
    let loaded = parse(src, "w.yaml").unwrap();
    let r = validate(&loaded, None);
    let e: Vec<(String, Option<u64>)> = r
        .errors()
        .map(|d| (d.message.clone(), d.pos.map(|p| p.line)))
        .collect();
    assert!(
        e.iter().any(
            |(m, line)| m.contains("swarm.resolver names unknown agent `fixr`")
                && m.contains("`fixer`")
                && *line == Some(6)
        ),
        "{e:?}"
    );
    for bad in ["`../secrets`", "`/etc/passwd`", "empty path"] {
        assert!(
            e.iter()
                .any(|(m, line)| m.contains(bad) && *line == Some(7)),
            "{bad}: {e:?}"
        );
    }
    assert!(
        !e.iter().any(|(m, _)| m.contains("`.env`")),
        "a relative path is fine: {e:?}"
    );
}

#[test]
fn worktree_settings_without_worktree_agents_are_a_warning() {
    let src = "name: t\nagents:\n  - {name: dev, cli: claude}\nswarm: {keepWorktrees: true}\nworkflows:\n  - name: w\n    steps:\n      - {name: a, agent: dev, task: go}\n";
    let r = validate(&parse(src, "w.yaml").unwrap(), None);
    assert!(!r.has_errors());
    assert!(
        r.warnings().any(|d| d.message.contains("no agent has one")),
        "{:?}",
        r.diagnostics
    );
    let on = "name: t\nagents:\n  - {name: dev, cli: claude}\n  - {name: ops, cli: claude, worktree: false}\nswarm: {worktrees: per-agent, keepWorktrees: true}\nworkflows:\n  - name: w\n    steps:\n      - {name: a, agent: dev, task: go}\n";
    let loaded = parse(on, "w.yaml").unwrap();
    let r = validate(&loaded, None);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let f = &loaded.file;
    assert!(f.has_worktree(f.agent("dev").unwrap()));
    assert!(
        !f.has_worktree(f.agent("ops").unwrap()),
        "an agent may opt out"
    );
}

#[test]
fn placement_and_workers_are_read_and_checked() {
    let src = "name: t\nswarm:\n  workers: nats://builds.example:4222\nagents:\n  - name: dev\n    cli: claude\n    placement:\n      labels: {zone: b, gpu: 'yes'}\nworkflows:\n  - name: w\n    steps:\n      - {name: a, agent: dev, task: go}\n";
    let loaded = parse(src, "w.yaml").unwrap();
    let r = validate(&loaded, None);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let labels = &loaded.file.agents[0].placement.as_ref().unwrap().labels;
    assert_eq!(labels.get("gpu").map(String::as_str), Some("yes"));
    assert_eq!(
        loaded.file.swarm.as_ref().unwrap().workers.as_deref(),
        Some("nats://builds.example:4222")
    );
    // A typo inside placement is an error at parse time, like any unknown key.
    assert!(parse(&src.replace("labels:", "lables:"), "w.yaml").is_err());
    let bad = src
        .replace("{zone: b, gpu: 'yes'}", "{'': b}")
        .replace("nats://builds", "nats://me:pw@builds");
    let r = validate(&parse(&bad, "w.yaml").unwrap(), None);
    let errors: Vec<&str> = r.errors().map(|d| d.message.as_str()).collect();
    assert!(
        errors.iter().any(|m| m.contains("placement.labels")),
        "{errors:?}"
    );
    let warnings: Vec<&str> = r.warnings().map(|d| d.message.as_str()).collect();
    assert!(
        warnings.iter().any(|m| m.contains("holds credentials")),
        "{warnings:?}"
    );
    let r = validate(
        &parse(&src.replace("nats://builds.example:4222", "' '"), "w.yaml").unwrap(),
        None,
    );
    assert!(
        r.errors()
            .any(|d| d.message.contains("swarm.workers is empty"))
    );
}

#[test]
fn a_placement_is_checked_without_a_swarm_section() {
    let src = "name: t\nagents:\n  - name: dev\n    cli: claude\n    placement:\n      labels: {'': b}\nworkflows:\n  - name: w\n    steps:\n      - {name: a, agent: dev, task: go}\n";
    let r = validate(&parse(src, "w.yaml").unwrap(), None);
    assert!(
        r.errors().any(|d| d.message.contains("placement.labels")),
        "{:?}",
        r.diagnostics
    );
}

#[test]
fn checklists_need_distinct_valid_items_on_an_agent_step() {
    let e = errors(
        "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: go\n        verification: {type: checklist, items: [{id: x}, {id: x}, {id: 'has space'}]}\n      - name: b\n        type: deterministic\n        command: 'true'\n        verification: {type: checklist}\n",
    );
    assert!(
        e.iter().any(|m| m.contains("item `x` is listed twice")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.contains("`has space` is not")), "{e:?}");
    assert!(
        e.iter()
            .any(|m| m.contains("step `b`: a checklist is marked by an agent")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains("step `b`: verification `checklist` needs `items`")),
        "{e:?}"
    );
    let ok = errors(
        "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: go\n        verification: {type: checklist, items: [{id: tests, title: Tests pass}]}\n",
    );
    assert!(ok.is_empty(), "{ok:?}");
}

// ---- groups of nested steps -----------------------------------------------------------

/// A group `g` (after step `a`) around `nested`, then `rest`.
fn group(extra: &str, nested: &str, rest: &str) -> String {
    format!(
        "  - name: w\n    steps:\n      - {{name: a, agent: dev, task: go}}\n      - name: g\n        dependsOn: [a]\n{extra}        steps:\n{nested}{rest}"
    )
}

const FIX_TEST: &str = "          - {name: fix, agent: dev, task: \"fix {{steps.test.output}} {{iteration}} {{file}}\"}\n          - {name: test, agent: dev, task: test, dependsOn: [fix]}\n";

#[test]
fn a_looping_group_of_nested_steps_is_valid() {
    let src = group(
        "        loop: {over: [x, y], as: file}\n        until: PASS\n        breakIf: failure\n        resultFrom: test\n",
        FIX_TEST,
        "      - {name: ship, agent: dev, task: \"{{steps.g.output}} {{steps.g/test.outputs}}\", dependsOn: [g]}\n",
    );
    let r = report(&src);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let loaded = parse(&format!("{AGENTS}workflows:\n{src}"), "w.yaml").unwrap();
    assert!(required_vars(&loaded.file.workflows[0]).is_empty());
}

#[test]
fn bad_nesting_is_reported_at_its_line_and_column() {
    // Lines: 1-5 agents, 6 `workflows:`, 7 `- name: w`, 8 `steps:`, 9 `a`, 10 `- name: g`,
    // 11 dependsOn, then the extra lines, `steps:`, and the nested steps.
    let at = |d: Diagnostic| d.pos.map(|p| (p.line, p.column)).expect("a position");
    let d = found(
        &group(
            "",
            "          - {name: fix, agent: dev, task: go, dependsOn: [a]}\n",
            "",
        ),
        "nested steps depend only on each other",
    );
    assert_eq!(at(d), (13, 59));
    let d = found(
        &group(
            "",
            "          - name: inner\n            steps:\n              - {name: deep, agent: dev, task: go}\n",
            "",
        ),
        "groups do not nest",
    );
    assert_eq!(at(d), (15, 24));
    let d = found(
        &group(
            "",
            "          - {name: fix, agent: dev, task: go, loop: {max: 2}}\n",
            "",
        ),
        "step `fix` inside group `g` cannot have a `loop`",
    );
    assert_eq!(at(d), (13, 53));
    let d = found(
        &group(
            "",
            FIX_TEST,
            "      - {name: ship, agent: dev, task: go, dependsOn: [g/test]}\n",
        ),
        "a step inside group `g`: depend on the group `g`",
    );
    assert_eq!(at(d), (15, 56));
    let d = found(
        &group("        agent: dev\n", FIX_TEST, ""),
        "cannot have an `agent`",
    );
    assert_eq!(at(d), (12, 16));
    let d = found(
        &group("        resultFrom: tset\n", FIX_TEST, ""),
        "`resultFrom: tset` names none of its nested steps (fix, test) (did you mean `test`?)",
    );
    assert_eq!(at(d), (12, 21));
    found(
        "  - name: w\n    steps:\n      - {name: a, agent: dev, task: go, resultFrom: x}\n",
        "has `resultFrom` but no nested `steps`",
    );
    // A step after the group may not read a nested step it does not wait for.
    found(
        &group(
            "",
            FIX_TEST,
            "      - {name: ship, agent: dev, task: \"{{steps.g/test.output}}\"}\n",
        ),
        "does not depend on `g/test`",
    );
}

#[test]
fn loop_over_references_are_checked_like_a_steps_other_texts() {
    let w =
        "  - name: w\n    steps:\n      - {name: a, type: deterministic, command: echo first}\n";
    let over = |dep: &str, over: &str| {
        format!(
            "{w}      - {{name: b, type: deterministic,{dep} command: 'echo \"{{{{it}}}}\"', loop: {{over: \"{over}\", as: it}}}}\n"
        )
    };
    let d = found(
        &over(" dependsOn: [a],", "{{steps.zz.output}}"),
        "step `b` uses {{steps.zz.output}} but there is no step `zz`",
    );
    assert_eq!(d.pos.map(|p| p.line), Some(10), "at the loop");
    found(
        &over("", "{{steps.a.output}}"),
        "step `b` uses {{steps.a.output}} but does not depend on `a` (add it to dependsOn)",
    );
    found(
        &over(" dependsOn: [a],", "{{steps.b.output}}"),
        "step `b` uses {{steps.b.output}}, its own output: a step cannot use its own output",
    );
    // Upstream and declared: fine; an undeclared variable is one the run needs.
    let src = format!(
        "{AGENTS}workflows:\n{}",
        over(" dependsOn: [a],", "{{steps.a.output}} {{undeclared}}")
    );
    let loaded = parse(&src, "w.yaml").unwrap();
    let r = validate(&loaded, None);
    assert!(!r.has_errors(), "{:?}", r.diagnostics);
    assert_eq!(
        required_vars(&loaded.file.workflows[0])
            .into_iter()
            .collect::<Vec<_>>(),
        ["undeclared"]
    );
}

#[test]
fn a_step_using_its_own_output_is_told_so_not_to_depend_on_itself() {
    let d = found(
        "  - name: w\n    steps:\n      - {name: a, agent: dev, task: \"{{steps.a.output}}\"}\n",
        "its own output",
    );
    assert_eq!(
        d.message,
        "step `a` uses {{steps.a.output}}, its own output: a step cannot use its own output \
         (it has none until it has run); take it from a step it depends on"
    );
    assert!(!d.message.contains("dependsOn"), "{}", d.message);
}

#[test]
fn until_with_a_template_is_refused_as_it_is_never_filled_in() {
    let d = found(
        "  - name: w\n    steps:\n      - {name: a, type: deterministic, command: echo, until: \"{{undeclared}}\"}\n",
        "`until: {{undeclared}}` would be looked for as written",
    );
    assert!(d.message.contains("not filled in"), "{}", d.message);
    assert_eq!(d.pos.map(|p| p.line), Some(9));
    // Plain text and a regular expression are what `until` takes.
    for until in ["PASS", "\"regex:^ok \\\\d{2}$\""] {
        let e = errors(&format!(
            "  - name: w\n    steps:\n      - {{name: a, type: deterministic, command: echo, until: {until}}}\n"
        ));
        assert!(e.is_empty(), "{until}: {e:?}");
    }
}

#[test]
fn bounds_of_zero_are_errors_naming_the_field() {
    let e = file_errors(
        "name: t\nswarm: {timeoutMs: 0}\nagents:\n  - {name: dev, cli: claude, constraints: {timeoutMs: 0}}\nworkflows:\n  - name: w\n    steps:\n      - {name: a, type: deterministic, command: echo, timeoutMs: 0}\n      - {name: b, type: deterministic, command: echo, until: ok, maxIterations: 0}\n      - {name: c, agent: dev, task: go, maxIterations: 0}\n",
    );
    for want in [
        "swarm.timeoutMs must be at least 1",
        "agent `dev`: constraints.timeoutMs must be at least 1",
        "step `a`: `timeoutMs` must be at least 1",
        "step `b`: `maxIterations` must be at least 1",
        "step `c`: `maxIterations` must be at least 1",
    ] {
        assert!(has(&e, &[want]), "{want}: {e:?}");
    }
    assert_eq!(e.len(), 5, "{e:?}");
    let d = found(
        "  - name: w\n    steps:\n      - name: a\n        type: deterministic\n        command: echo\n        timeoutMs: 0\n",
        "`timeoutMs` must be at least 1",
    );
    assert_eq!(d.pos.map(|p| p.line), Some(12), "at the field");
    // 1 is a bound.
    let e = file_errors(&format!(
        "{AGENTS}swarm: {{timeoutMs: 1}}\nworkflows:\n  - name: w\n    steps:\n      - {{name: a, type: deterministic, command: echo, timeoutMs: 1, until: ok, maxIterations: 1}}\n"
    ));
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn control_characters_in_names_are_errors_showing_the_name_escaped() {
    let e = file_errors(
        "name: t\nswarm: {channel: \"ops\\e[2J\"}\nerrorHandling: {notifyChannel: \"al\\nerts\"}\nagents:\n  - {name: \"dev\\nFAKE LINE\", cli: claude}\n  - {name: ok, cli: claude, channels: [\"a\\tb\"]}\nworkflows:\n  - name: \"w\\r\"\n    steps:\n      - {name: \"a\\nok    forged completed\\e[31mRED\", agent: ok, task: go}\n",
    );
    for want in [
        r#"swarm.channel "ops\u{1b}[2J" contains the control character '\u{1b}'"#,
        r#"errorHandling.notifyChannel "al\nerts" contains the control character '\n'"#,
        r#"agent name "dev\nFAKE LINE" contains the control character '\n'"#,
        r#"channel "a\tb" contains the control character '\t'"#,
        r#"workflow name "w\r" contains the control character '\r'"#,
        r#"step name "a\nok    forged completed\u{1b}[31mRED" contains the control character '\n'"#,
    ] {
        assert!(has(&e, &[want]), "{want}: {e:?}");
    }
    assert!(
        e.iter().all(|m| !m.chars().any(char::is_control)),
        "no message carries a control character itself: {e:?}"
    );
}

#[test]
fn agent_names_must_be_names_messages_can_be_sent_to() {
    let e = file_errors(
        "name: t\nagents:\n  - {name: \"my dev\", cli: claude}\n  - {name: ok.dev_2-x, cli: claude}\nworkflows:\n  - name: w\n    steps:\n      - {name: a, agent: ok.dev_2-x, task: go}\n",
    );
    assert_eq!(
        e,
        [
            "agent name `my dev` is not a valid name (letters, digits, `-`, `_`, `.`): messages \
          could not be sent to it"
        ]
    );
}
