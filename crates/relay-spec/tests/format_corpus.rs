//! The real-format corpus (`tests/format-corpus/` at the top of the repository): every
//! file loads, validates without findings and matches the JSON Schema; together the
//! files use every field of the format as the reference implementation writes it; and
//! the mistakes users make in those fields are reported with a position and the closest
//! known name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use relay_spec::{LoadError, load_file, parse, validate};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/format-corpus")
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/format-corpus exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_loads_and_validates_clean() {
    let files = corpus();
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let loaded = load_file(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let report = validate(&loaded, None);
        let findings: Vec<String> = report
            .diagnostics
            .iter()
            .map(|d| d.render(&loaded.origin))
            .collect();
        assert!(findings.is_empty(), "{findings:#?}");
    }
}

#[test]
fn every_corpus_file_matches_the_schema() {
    let validator =
        jsonschema::validator_for(&relay_spec::json_schema()).expect("the schema compiles");
    for f in corpus() {
        let text = std::fs::read_to_string(&f).expect("readable");
        let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
    let steps = corpus_dir().join(".relay/steps.yaml");
    let doc: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(steps).expect("steps file")).expect("YAML");
    let validator =
        jsonschema::validator_for(&relay_spec::custom_steps_schema()).expect("compiles");
    assert!(validator.is_valid(&doc));
}

/// Every key path in `v` (`agents[].permissions.files.deny`), list positions folded.
fn key_paths(v: &serde_json::Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                out.insert(p.clone());
                key_paths(child, &p, out);
            }
        }
        serde_json::Value::Array(items) => {
            for child in items {
                key_paths(child, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_corpus_uses_every_field_of_the_reference_format() {
    let mut seen = BTreeSet::new();
    for f in corpus() {
        let text = std::fs::read_to_string(&f).expect("readable");
        let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
        key_paths(&doc, "", &mut seen);
    }
    let expected = [
        "paths[].name",
        "paths[].path",
        "paths[].description",
        "paths[].required",
        "permission_profiles",
        "permissionProfiles",
        "trajectories",
        "trajectories.enabled",
        "trajectories.autoDecisions",
        "trajectories.reflectOnBarriers",
        "trajectories.reflectOnConverge",
        "integrations.relayfile",
        "integrations.subscriptions[].provider",
        "integrations.subscriptions[].paths",
        "integrations.subscriptions[].events",
        "integrations.subscriptions[].event",
        "swarm.completionGracePeriodMs",
        "swarm.humanAssistance.slack",
        "swarm.humanAssistance.slack.channel",
        "swarm.humanAssistance.slack.timeoutMs",
        "swarm.humanAssistance.slack.mentions",
        "swarm.humanAssistance.slack.ignoreUserIds",
        "swarm.tokenBudget",
        "agents[].permissions",
        "agents[].permissions.profile",
        "agents[].permissions.access",
        "agents[].permissions.inherit",
        "agents[].permissions.files.write",
        "agents[].permissions.description",
        "agents[].permissions.why",
        "permission_profiles.builder.files.read",
        "permission_profiles.builder.files.deny",
        "permission_profiles.builder.network.allow",
        "permission_profiles.builder.network.deny",
        "permission_profiles.builder.exec",
        "permission_profiles.builder.scopes",
        "permission_profiles.reviewer-readonly.network",
        "agents[].workdir",
        "agents[].additionalPaths",
        "agents[].task",
        "agents[].watch",
        "agents[].subscriptions",
        "agents[].subscriptions[].match",
        "agents[].constraints.maxTokens",
        "agents[].constraints.idleThresholdSecs",
        "workflows[].preflight[].command",
        "workflows[].preflight[].successIf",
        "workflows[].preflight[].failIf",
        "workflows[].preflight[].description",
        "workflows[].steps[].type",
        "workflows[].steps[].use",
        "workflows[].steps[].workdir",
        "workflows[].steps[].maxIterations",
        "workflows[].steps[].humanAssistance",
        "workflows[].steps[].captureOutput",
        "workflows[].steps[].failOnError",
        "workflows[].steps[].retries",
        "workflows[].steps[].verification",
        "workflows[].steps[].branch",
        "workflows[].steps[].baseBranch",
        "workflows[].steps[].createBranch",
        "workflows[].steps[].path",
        "workflows[].steps[].waitFor.provider",
        "workflows[].steps[].waitFor.path",
        "workflows[].steps[].waitFor.paths",
        "workflows[].steps[].waitFor.event",
        "workflows[].steps[].waitFor.events",
        "workflows[].steps[].waitFor.timeoutMs",
        "workflows[].steps[].waitFor.match",
        "workflows[].steps[].integration",
        "workflows[].steps[].action",
        "workflows[].steps[].params",
        "errorHandling.strategy",
        "errorHandling.repairAgent",
        "errorHandling.repairRetries",
        "errorHandling.onExhaustion",
        "errorHandling.protect",
        "coordination.votingThreshold",
    ];
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|p| !seen.contains(*p))
        .collect();
    assert!(missing.is_empty(), "not in the corpus: {missing:?}");
    // Every CLI spelling, every step type, the values given in more than one form.
    let text: String = corpus()
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("readable"))
        .collect();
    for needle in [
        "cli: cursor\n",
        "cli: cursor-agent\n",
        "cli: agent\n",
        "type: worktree",
        "type: waitFor",
        "type: integration",
        "type: deterministic",
        "type: agent",
        "trajectories: false",
        "slack: true",
        "humanAssistance: false",
        "network: false",
        "permissions: readonly",
        "value: \"regex:",
        "strategy: retry",
        "onExhaustion: needs-human",
    ] {
        assert!(text.contains(needle), "no `{needle}` in the corpus");
    }
}

fn syntax(src: &str) -> (u64, String) {
    match parse(src, "w.yaml") {
        Err(LoadError::Syntax { pos, message, .. }) => (pos.line, message),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn typos_in_reference_fields_name_the_closest_key() {
    let cases = [
        // (file, line of the typo, the typo, the field meant)
        (
            "name: x\nagents:\n  - name: a\n    cli: claude\n    permisions: readonly\n",
            5,
            "permisions",
            "permissions",
        ),
        (
            "name: x\nworkflows:\n  - name: w\n    prefligth: []\n",
            4,
            "prefligth",
            "preflight",
        ),
        (
            "name: x\ntrajectories:\n  autoDecision: true\n",
            3,
            "autoDecision",
            "autoDecisions",
        ),
        (
            "name: x\nswarm:\n  humanAssistance:\n    slack: {chanel: '#a'}\n",
            4,
            "chanel",
            "channel",
        ),
        (
            "name: x\nagents:\n  - name: a\n    cli: claude\n    permissions: {acess: readonly}\n",
            5,
            "acess",
            "access",
        ),
        (
            "name: x\npermission_profiles:\n  p:\n    network: {alow: []}\n",
            4,
            "alow",
            "allow",
        ),
        (
            "name: x\nworkflows:\n  - name: w\n    steps:\n      - name: s\n        type: waitFor\n        waitFor: {evnt: created}\n",
            7,
            "evnt",
            "event",
        ),
        (
            "name: x\nworkflows:\n  - name: w\n    steps:\n      - name: s\n        type: worktree\n        baseBrunch: main\n",
            7,
            "baseBrunch",
            "baseBranch",
        ),
        (
            "name: x\nerrorHandling:\n  repairAgnet: a\n",
            3,
            "repairAgnet",
            "repairAgent",
        ),
        (
            "name: x\npaths:\n  - {name: a, path: b, requried: false}\n",
            3,
            "requried",
            "required",
        ),
        (
            "name: x\nswarm:\n  tokenBudjet: 5\n",
            3,
            "tokenBudjet",
            "tokenBudget",
        ),
    ];
    for (src, line, typo, meant) in cases {
        let (at, msg) = syntax(src);
        assert!(
            msg.contains(&format!("unknown field `{typo}`")),
            "{typo}: {msg}"
        );
        assert!(
            msg.contains(&format!("did you mean `{meant}`?")),
            "{typo}: {msg}"
        );
        assert_eq!(at, line, "{typo}: {msg}");
    }
    // A key in neither format is still refused.
    let (_, msg) = syntax("name: x\nharnesess: {}\n");
    assert!(msg.contains("unknown field `harnesess`"), "{msg}");
    let (_, msg) = syntax("name: x\nagents:\n  - {name: a, cli: curser}\n");
    assert!(msg.contains("did you mean `cursor`?"), "{msg}");
}

fn errors(src: &str) -> Vec<String> {
    let loaded = parse(src, "w.yaml").expect("parses");
    validate(&loaded, None)
        .errors()
        .map(|d| format!("{}: {}", d.pos.map(|p| p.line).unwrap_or(0), d.message))
        .collect()
}

#[test]
fn a_workdir_must_name_a_path() {
    let e = errors(
        "name: x\npaths:\n  - {name: api, path: ../api}\nagents:\n  - {name: a, cli: claude, workdir: apj}\nworkflows:\n  - name: w\n    steps:\n      - {name: s, agent: a, task: t, workdir: web}\n",
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("5: agent `a` has `workdir: apj`")
                && m.contains("did you mean `api`?")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("9: step `s` has `workdir: web`") && m.contains("paths: api")),
        "{e:?}"
    );
}

#[test]
fn custom_step_mistakes_are_reported_at_the_use() {
    let dir = std::env::temp_dir().join(format!("relay-corpus-neg-{}", std::process::id()));
    std::fs::create_dir_all(dir.join(".relay")).expect("dir");
    std::fs::copy(
        corpus_dir().join(".relay/steps.yaml"),
        dir.join(".relay/steps.yaml"),
    )
    .expect("copy steps");
    let wf = dir.join("w.yaml");
    std::fs::write(
        &wf,
        "name: x\nworkflows:\n  - name: w\n    steps:\n      - {name: a, use: run-chek, check: lint}\n      - {name: b, use: run-check, args: -q}\n",
    )
    .expect("write");
    let loaded = load_file(&wf).expect("loads");
    let report = validate(&loaded, None);
    let e: Vec<String> = report
        .errors()
        .map(|d| format!("{}: {}", d.pos.map(|p| p.line).unwrap_or(0), d.message))
        .collect();
    assert!(
        e.iter().any(
            |m| m.starts_with("5: step `a` uses unknown custom step `run-chek`")
                && m.contains("did you mean `run-check`?")
        ),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.starts_with(
            "6: step `b` uses custom step `run-check` without its required parameter `check`"
        )),
        "{e:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn reference_field_values_are_checked() {
    let e = errors(
        "name: x\npermission_profiles:\n  readonly: {}\nagents:\n  - {name: a, cli: claude, permissions: buildr}\n  - {name: b, cli: claude, subscriptions: [nope]}\nworkflows:\n  - name: w\n    preflight:\n      - {command: 'true', failIf: '(unclosed'}\n    steps:\n      - {name: s, type: worktree}\n      - {name: t, type: waitFor, waitFor: {path: a, paths: [b]}}\n      - {name: u, type: integration, integration: github}\n      - {name: v, agent: a, task: t, verification: {type: custom, value: 'regex:[z-a]'}}\nerrorHandling: {repairAgent: ghost}\n",
    );
    for expected in [
        "permission profile `readonly` has the name of an access preset",
        "permissions `buildr` is neither an access preset",
        "subscribes to `nope`",
        "failIf of preflight command 1",
        "worktree step `s` has no `branch`",
        "`path` or `paths`, not both",
        "integration step `u` has no `action`",
        "verification `regex:` pattern does not compile",
        "repairAgent names unknown agent `ghost`",
    ] {
        assert!(e.iter().any(|m| m.contains(expected)), "{expected}: {e:?}");
    }
}

#[test]
fn writing_a_corpus_file_out_and_reading_it_back_changes_nothing() {
    for f in corpus() {
        let text = std::fs::read_to_string(&f).expect("readable");
        let first = parse(&text, "a.yaml").expect("parses").file;
        let written = serde_saphyr::to_string(&first).expect("serialises");
        let second = parse(&written, "b.yaml")
            .unwrap_or_else(|e| panic!("{}: {e}\n{written}", f.display()))
            .file;
        assert_eq!(first, second, "{}", f.display());
    }
}
