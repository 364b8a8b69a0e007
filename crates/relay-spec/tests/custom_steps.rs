#![allow(clippy::unwrap_used)]

//! Expanding custom steps: parameters, defaults, what the using step keeps, and the
//! errors for unknown steps and missing or unknown parameters.

use std::path::Path;

use relay_spec::custom_steps::{CustomSteps, STEPS_FILE};
use relay_spec::{StepType, load_file, parse, validate};

const STEPS: &str = "steps:\n  run-check:\n    description: one make target\n    params:\n      - {name: check, required: true, description: the make target}\n      - {name: args, default: ''}\n    command: make {{check}} ARGS=\"{{args}}\" {{ticket}}\n    timeoutMs: 300000\n  git-worktree:\n    type: worktree\n    params:\n      - {name: branch, required: true}\n      - {name: base, default: main}\n    branch: '{{branch}}'\n    baseBranch: '{{base}}'\n    path: .worktrees/{{branch}}\n";

fn steps() -> CustomSteps {
    CustomSteps::parse(STEPS, Path::new("/p/.relay/steps.yaml")).expect("steps parse")
}

fn expanded(workflow_steps: &str) -> relay_spec::Loaded {
    let src = format!(
        "name: t\nagents: [{{name: a, cli: claude}}]\nworkflows:\n  - name: w\n    steps:\n{workflow_steps}"
    );
    let mut l = parse(&src, "w.yaml").expect("parses");
    l.expand_custom_steps(&steps());
    l
}

fn messages(l: &relay_spec::Loaded) -> Vec<String> {
    l.diagnostics.iter().map(|d| d.message.clone()).collect()
}

#[test]
fn a_use_is_filled_from_its_definition() {
    let l = expanded(
        "      - {name: lint, use: run-check, check: lint}\n      - {name: unit, use: run-check, check: test, args: -q, timeoutMs: 5, retries: 2, dependsOn: [lint], verification: {type: exit_code, value: 0}, description: mine}\n",
    );
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    let s = &l.file.workflows[0].steps;
    assert!(s[0].expanded && s[0].kind() == StepType::Deterministic);
    // Parameters filled in, the default used, other references left for the run.
    assert_eq!(
        s[0].command.as_deref(),
        Some("make lint ARGS=\"\" {{ticket}}")
    );
    assert_eq!(s[0].timeout_ms, Some(300_000));
    assert_eq!(s[0].description.as_deref(), Some("one make target"));
    // The using step keeps its own timeout, retries, dependencies, check, description.
    assert_eq!(
        s[1].command.as_deref(),
        Some("make test ARGS=\"-q\" {{ticket}}")
    );
    assert_eq!((s[1].timeout_ms, s[1].retries), (Some(5), Some(2)));
    assert_eq!(s[1].depends_on, ["lint"]);
    assert!(s[1].verification.is_some());
    assert_eq!(s[1].description.as_deref(), Some("mine"));
    assert!(validate(&l, None).diagnostics.is_empty());
}

#[test]
fn a_parameter_may_share_its_name_with_a_step_field() {
    let l = expanded("      - {name: wt, use: git-worktree, branch: 'fix/{{ticket}}'}\n");
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    let s = &l.file.workflows[0].steps[0];
    assert_eq!(s.kind(), StepType::Worktree);
    assert_eq!(s.branch.as_deref(), Some("fix/{{ticket}}"));
    assert_eq!(s.base_branch.as_deref(), Some("main"));
    assert_eq!(s.path.as_deref(), Some(".worktrees/fix/{{ticket}}"));
}

#[test]
fn an_unknown_custom_step_suggests_the_closest_and_lists_the_defined() {
    let l = expanded("      - {name: lint, use: run-chek, check: lint}\n");
    let m = messages(&l);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("unknown custom step `run-chek`"), "{m:?}");
    assert!(m[0].contains("did you mean `run-check`?"), "{m:?}");
    assert!(
        m[0].contains("/p/.relay/steps.yaml defines: git-worktree, run-check"),
        "{m:?}"
    );
    // It is an error of validation too, at the `use`, and the step is not judged by kind.
    let r = validate(&l, None);
    let errors: Vec<_> = r.errors().collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].pos.map(|p| p.line), Some(6));
}

#[test]
fn missing_and_unknown_parameters_are_errors() {
    let l = expanded("      - {name: lint, use: run-check, args: x, chek: lint}\n");
    let m = messages(&l);
    assert!(
        m.iter()
            .any(|x| x.contains("without its required parameter `check` (the make target)")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|x| x.contains("gives `chek`") && x.contains("did you mean `check`?")),
        "{m:?}"
    );
    assert!(!l.file.workflows[0].steps[0].expanded);
}

#[test]
fn without_a_steps_file_every_use_is_reported() {
    let src = "name: t\nworkflows:\n  - name: w\n    steps:\n      - {name: lint, use: run-check, check: lint}\n";
    let l = parse(src, "w.yaml").expect("parses");
    let m = messages(&l);
    assert!(m[0].contains("no .relay/steps.yaml was loaded"), "{m:?}");
    assert!(validate(&l, None).has_errors());
}

#[test]
fn the_nearest_steps_file_is_found_from_the_workflow() {
    let dir = std::env::temp_dir().join(format!("relay-custom-steps-{}", std::process::id()));
    let deep = dir.join("flows/nested");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::create_dir_all(dir.join(".relay")).unwrap();
    std::fs::write(dir.join(STEPS_FILE), STEPS).unwrap();
    let wf = deep.join("w.yaml");
    std::fs::write(
        &wf,
        "name: t\nworkflows:\n  - name: w\n    steps:\n      - {name: lint, use: run-check, check: lint}\n",
    )
    .unwrap();
    let l = load_file(&wf).unwrap();
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    assert_eq!(
        l.file.workflows[0].steps[0].command.as_deref(),
        Some("make lint ARGS=\"\" {{ticket}}")
    );
    let found = CustomSteps::find_for(&wf).unwrap();
    assert_eq!(found.origin, Some(dir.join(STEPS_FILE)));
    assert_eq!(found.searched.len(), 3, "{:?}", found.searched);
    // A broken steps file is an error of its own, naming it.
    std::fs::write(dir.join(STEPS_FILE), "steps:\n  x: {comand: ls}\n").unwrap();
    let e = load_file(&wf).unwrap_err().to_string();
    assert!(
        e.contains("steps.yaml") && e.contains("did you mean `command`?"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
