//! Groups of nested steps looping together (`steps:` on a step), driven without
//! processes like the rest of the run state's tests.

use super::*;

/// One agent `a`; a group `g` after `plan` around `nested`, with `extra` on the group;
/// `after` reads what the group produced.
fn grouped(extra: &str, nested: &str) -> Fixture {
    one_agent(&format!(
        "      - {{name: plan, agent: a, task: plan}}\n      - name: g\n        dependsOn: [plan]\n{extra}        steps:\n{nested}      - {{name: after, agent: a, dependsOn: [g], task: \"{{{{steps.g.output}}}} {{{{steps.g.outputs}}}} {{{{steps.g/fix.outputs}}}}\"}}\n"
    ))
}

const FIX_TEST: &str = "          - {name: fix, agent: a, task: \"fix {{iteration}}/{{maxIterations}} after '{{steps.test.output}}'\", retries: 0}\n          - {name: test, agent: a, task: \"test {{iteration}}\", dependsOn: [fix], retries: 0}\n";

/// The fake agent: `test N` says FAIL until iteration `pass`, fixes echo their task.
fn tests_pass_at(pass: u32) -> impl FnMut(&Launch) -> StepOutcome {
    move |l| match l.text.strip_prefix("test ") {
        Some(n) if n.parse::<u32>().is_ok_and(|n| n >= pass) => done("PASS"),
        Some(n) => done(&format!("FAIL {n}")),
        None => done(&l.text),
    }
}

/// The tasks the fixes were given, in order.
fn fix_tasks<'s>(sim: &'s Sim<'_>) -> Vec<&'s str> {
    sim.launched
        .iter()
        .filter(|l| l.job.label.starts_with("g/fix"))
        .map(|l| l.text.as_str())
        .collect()
}

#[test]
fn fix_and_test_loops_as_a_group_until_the_tests_pass() {
    let f = grouped("        until: PASS\n        maxIterations: 5\n", FIX_TEST);
    let mut sim = Sim::new(&f);
    let s = sim.run(tests_pass_at(3));
    assert_eq!(
        sim.labels(),
        [
            "plan", "g/fix#1", "g/test#1", "g/fix#2", "g/test#2", "g/fix#3", "g/test#3", "after"
        ]
    );
    let fixes = fix_tasks(&sim);
    // Each fix sees the test output of the iteration before (nothing in the first).
    assert_eq!(
        fixes,
        [
            "fix 1/5 after ''",
            "fix 2/5 after 'FAIL 1'",
            "fix 3/5 after 'FAIL 2'"
        ]
    );
    assert_eq!(s.status, RunStatus::Completed);
    assert_eq!(
        step(&s, "after").output,
        r#"PASS ["FAIL 1","FAIL 2","PASS"] ["fix 1/5 after ''","fix 2/5 after 'FAIL 1'","fix 3/5 after 'FAIL 2'"]"#
    );
    assert_eq!(
        sim.pattern("loop")[..2],
        ["g: iteration 1 of 5", "g: iteration 2 of 5"]
    );
    // An until never met fails the group after its last iteration.
    let f = grouped("        until: PASS\n        maxIterations: 2\n", FIX_TEST);
    let mut sim = Sim::new(&f);
    let s = sim.run(tests_pass_at(9));
    assert_eq!(s.status, RunStatus::Failed);
    assert!(
        step(&s, "g")
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("`until: PASS` not met after 2 iterations")),
        "{:?}",
        step(&s, "g").reason
    );
    assert_eq!(step(&s, "after").status, StepStatus::Skipped);
}

#[test]
fn nested_steps_without_dependencies_run_together_and_all_see_the_loop_variable() {
    let f = grouped(
        "        loop: {over: [p, q], as: file}\n        resultFrom: join\n",
        "          - {name: fix, agent: a, task: \"left {{file}}\"}\n          - {name: right, agent: a, task: \"right {{file}} {{iteration}}\"}\n          - {name: join, agent: a, task: \"join {{steps.fix.output}} {{steps.right.output}}\", dependsOn: [fix, right]}\n",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(echo);
    let texts: Vec<&str> = sim.launched.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts[1..7],
        [
            "left p",
            "right p 1",
            "join left p right p 1",
            "left q",
            "right q 2",
            "join left q right q 2"
        ]
    );
    // `fix` and `right` of one iteration were out at the same time.
    assert_eq!(sim.most, 2);
    assert_eq!(
        step(&s, "after").output,
        r#"join left q right q 2 ["join left p right p 1","join left q right q 2"] ["left p","left q"]"#
    );
}

#[test]
fn a_failing_nested_step_ends_its_iteration_and_break_if_failure_ends_the_loop() {
    let f = grouped(
        "        loop: {max: 5}\n        breakIf: failure\n",
        FIX_TEST,
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.text.starts_with("fix 2/") {
            failed("broke")
        } else {
            done(&l.text)
        }
    });
    // The test after the failed fix never ran, and no third iteration started.
    assert_eq!(
        sim.labels(),
        ["plan", "g/fix#1", "g/test#1", "g/fix#2", "after"]
    );
    assert_eq!(s.status, RunStatus::Completed);
    assert_eq!(step(&s, "g").output, "test 1");
    // Without breakIf the failure fails the group, naming the nested step.
    let f = grouped("        loop: {max: 5}\n", FIX_TEST);
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.text == "test 2" {
            failed("red")
        } else {
            done(&l.text)
        }
    });
    assert_eq!(s.status, RunStatus::Failed);
    let reason = step(&s, "g").reason.clone().unwrap_or_default();
    assert!(
        reason.contains("iteration 2 failed: `g/test` failed: red"),
        "{reason}"
    );
}

/// What `after` reads from the group of three iterations the resume test finishes.
const RESUMED: &str = r#"FAIL 3 ["FAIL 1","FAIL 2","FAIL 3"] ["fix 1/3 after ''","fix 2/3 after 'FAIL 1'","fix 3/3 after 'FAIL 2'"]"#;

#[test]
fn a_resumed_group_keeps_every_nested_step_done_and_runs_the_rest() {
    let f = grouped("        loop: {max: 3}\n", FIX_TEST);
    // Killed in iteration 2, after its fix completed.
    let presets = BTreeMap::from([
        ("plan".to_string(), kept("plan")),
        ("g/fix#1".to_string(), kept("fix 1/3 after ''")),
        ("g/test#1".to_string(), kept("FAIL 1")),
        ("g/fix#2".to_string(), kept("fix 2/3 after 'FAIL 1'")),
    ]);
    let mut sim = Sim::with_presets(&f, presets.clone());
    let s = sim.run(tests_pass_at(9));
    assert_eq!(sim.labels(), ["g/test#2", "g/fix#3", "g/test#3", "after"]);
    // The third fix reads the second test's output, from the resumed run.
    assert_eq!(sim.launched[1].text, "fix 3/3 after 'FAIL 2'");
    assert_eq!(step(&s, "after").output, RESUMED);
    // Killed after the group completed: its outputs come back from the iterations kept.
    let mut all = presets;
    all.insert("g/test#2".into(), kept("FAIL 2"));
    all.insert("g/fix#3".into(), kept("fix 3/3 after 'FAIL 2'"));
    all.insert("g/test#3".into(), kept("FAIL 3"));
    all.insert("g".into(), kept("FAIL 3"));
    let mut sim = Sim::with_presets(&f, all);
    let s = sim.run(echo);
    assert_eq!(sim.labels(), ["after"]);
    assert_eq!(step(&s, "after").output, RESUMED);
    // Each nested step's summary shows its own last output, not the group's.
    assert_eq!(step(&s, "g/fix").output, "fix 3/3 after 'FAIL 2'");
}

#[test]
fn a_false_condition_skips_the_whole_group() {
    let f = grouped(
        "        if: \"steps.plan.output == 'go'\"\n        loop: {max: 2}\n",
        FIX_TEST,
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        done(if l.job.label == "plan" {
            "stop"
        } else {
            &l.text
        })
    });
    // Skipped with its nested steps; the steps after it go on.
    assert_eq!(sim.labels(), ["plan", "after"]);
    assert_eq!(step(&s, "g").status, StepStatus::Skipped);
    assert_eq!(step(&s, "g/fix").status, StepStatus::Skipped);
}

#[test]
fn a_nested_test_that_fails_and_continues_is_judged_on_what_it_printed() {
    let nested = "          - {name: fix, agent: a, task: \"fix {{iteration}}/{{maxIterations}} after '{{steps.test.output}}'\", retries: 0}\n          - {name: test, agent: a, task: \"test {{iteration}}\", dependsOn: [fix], retries: 0, continueOnFailure: true}\n";
    let f = grouped("        until: PASS\n        maxIterations: 4\n", nested);
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| match l.text.as_str() {
        "test 3" => done("PASS"),
        t if t.starts_with("test ") => StepOutcome::Failed {
            output: format!("red {t}"),
            reason: "exit 1".into(),
            exit_code: Some(1),
            retryable: false,
        },
        t => done(t),
    });
    assert_eq!(s.status, RunStatus::Completed);
    let fixes = fix_tasks(&sim);
    // The fix reads the failed test's output; the loop went on to the passing test.
    assert_eq!(
        fixes,
        [
            "fix 1/4 after ''",
            "fix 2/4 after 'red test 1'",
            "fix 3/4 after 'red test 2'"
        ]
    );
    assert_eq!(step(&s, "g").output, "PASS");
}
