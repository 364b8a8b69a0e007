//! The format's defaults as the accessors apply them, and how the fields that can be
//! written more than one way are read.

use super::*;
use std::time::Duration;

fn parse(src: &str) -> RelayFile {
    crate::parse(src, "t.yaml").expect("parses").file
}

#[test]
fn unset_fields_read_as_the_documented_defaults() {
    let f = parse(
        "name: t\nswarm: {idleNudge: {}}\nagents: [{name: a, cli: claude}]\nworkflows:\n  - name: w\n    steps:\n      - {name: s, agent: a, task: x, verification: {type: custom, value: 'true'}}\n",
    );
    let swarm = f.swarm.clone().expect("swarm");
    let nudge = swarm.idle_nudge.clone().expect("idleNudge");
    assert_eq!(nudge.nudge_after(), Duration::from_millis(120_000));
    assert_eq!(nudge.escalate_after(), Duration::from_millis(120_000));
    assert_eq!(nudge.max_nudges(), 1);
    assert_eq!(swarm.concurrency_limit(), None);
    assert_eq!(swarm.timeout(), None);
    let step = &f.workflows[0].steps[0];
    let v = step.verification.as_ref().expect("verification");
    assert_eq!(v.timeout(), Duration::from_millis(60_000));
    assert_eq!(v.expected_exit_code(), None);
    let eh = ErrorHandling::default();
    assert_eq!((eh.max_retries(), eh.retry_delay()), (0, Duration::ZERO));
    let agent = f.agent("a").expect("agent a");
    assert_eq!(agent.idle_threshold(), Some(Duration::from_secs(30)));
    assert_eq!(step.retries_with(Some(agent), None), 0);
    assert_eq!(step.timeout_with(Some(agent)), None);
    assert!(step.fails_on_error() && step.captures_output());
    assert_eq!((step.iteration_limit(), step.debate_rounds()), (3, 2));
    let c = Coordination::default();
    assert_eq!(c.consensus_strategy(), ConsensusStrategy::Majority);
    assert_eq!(c.voting_threshold(), 0.5);
    assert_eq!(f.on_error_for(&f.workflows[0]), OnError::Fail);
}

#[test]
fn set_fields_win_and_fall_back_in_order() {
    let f = parse(
        "name: t\nswarm: {maxConcurrency: 3, timeoutMs: 9000, idleNudge: {nudgeAfterMs: 5, escalateAfterMs: 6, maxNudges: 2}}\nagents:\n  - {name: a, cli: claude, constraints: {retries: 4, timeoutMs: 700, idleThresholdSecs: 0}}\n  - {name: b, cli: claude, constraints: {idleThresholdSecs: 7}}\nworkflows:\n  - name: w\n    steps:\n      - {name: s, agent: a, task: x}\n      - {name: t, agent: a, task: x, retries: 1, timeoutMs: 50, maxIterations: 0, rounds: 5, verification: {type: exit_code, value: 3, timeoutMs: 10}}\n      - {name: d, type: deterministic, command: 'true', failOnError: false, captureOutput: false}\nerrorHandling: {strategy: continue, maxRetries: 9, retryDelayMs: 25}\ncoordination: {consensusStrategy: unanimous, votingThreshold: 0.75}\n",
    );
    let swarm = f.swarm.clone().expect("swarm");
    assert_eq!(swarm.concurrency_limit(), Some(3));
    assert_eq!(swarm.timeout(), Some(Duration::from_millis(9000)));
    let nudge = swarm.idle_nudge.expect("idleNudge");
    assert_eq!(
        (
            nudge.nudge_after(),
            nudge.escalate_after(),
            nudge.max_nudges()
        ),
        (Duration::from_millis(5), Duration::from_millis(6), 2)
    );
    let (a, b) = (f.agent("a").expect("a"), f.agent("b").expect("b"));
    assert_eq!(a.idle_threshold(), None, "0 disables idleness");
    assert_eq!(b.idle_threshold(), Some(Duration::from_secs(7)));
    let eh = f.error_handling.as_ref();
    let steps = &f.workflows[0].steps;
    // The agent's retries beat errorHandling's; the step's beat both.
    assert_eq!(steps[0].retries_with(Some(a), eh), 4);
    assert_eq!(steps[0].retries_with(Some(b), eh), 9);
    assert_eq!(steps[1].retries_with(Some(a), eh), 1);
    assert_eq!(
        steps[0].timeout_with(Some(a)),
        Some(Duration::from_millis(700))
    );
    assert_eq!(
        steps[1].timeout_with(Some(a)),
        Some(Duration::from_millis(50))
    );
    assert_eq!(
        (steps[1].iteration_limit(), steps[1].debate_rounds()),
        (1, 5)
    );
    let v = steps[1].verification.as_ref().expect("verification");
    assert_eq!(v.expected_exit_code(), Some(3));
    assert_eq!(v.timeout(), Duration::from_millis(10));
    assert!(!steps[2].fails_on_error() && !steps[2].captures_output());
    let eh = f.error_handling.clone().expect("errorHandling");
    assert_eq!(eh.retry_delay(), Duration::from_millis(25));
    assert_eq!(f.on_error_for(&f.workflows[0]), OnError::Continue);
    let c = f.coordination.clone().expect("coordination");
    assert_eq!(c.consensus_strategy(), ConsensusStrategy::Unanimous);
    assert_eq!(c.voting_threshold(), 0.75);
}

fn file(src: &str) -> RelayFile {
    crate::parse(src, "t.yaml").expect("parses").file
}

#[test]
fn boolean_or_mapping_fields_read_both_ways() {
    let f = file("name: t\ntrajectories: false\n");
    assert_eq!(f.trajectories, Some(BoolOr::Bool(false)));
    assert!(!f.trajectories_enabled());
    let f = file("name: t\ntrajectories: {enabled: true, autoDecisions: false}\n");
    let t = f
        .trajectories
        .as_ref()
        .and_then(BoolOr::value)
        .expect("settings");
    assert_eq!((t.enabled, t.auto_decisions), (Some(true), Some(false)));
    assert!(f.trajectories_enabled());
    assert!(file("name: t\n").trajectories_enabled());
    let f = file("name: t\nswarm: {humanAssistance: {slack: true}}\n");
    assert!(
        f.swarm
            .expect("swarm")
            .human_assistance
            .expect("ha")
            .slack_enabled()
    );
}

#[test]
fn name_or_mapping_fields_read_both_ways() {
    let f = file(
        "name: t\nagents:\n  - {name: a, cli: claude, permissions: readonly, subscriptions: [s1, {provider: linear, event: x}]}\n  - {name: b, cli: claude, permissions: {access: full}}\n",
    );
    let a = f.agent("a").expect("a");
    assert_eq!(
        a.permissions.as_ref().and_then(NameOr::name),
        Some("readonly")
    );
    assert_eq!(a.subscriptions[0].name(), Some("s1"));
    let sub = a.subscriptions[1].value().expect("inline");
    assert_eq!(sub.all_events(), ["x"]);
    let b = f.agent("b").expect("b");
    let p = b
        .permissions
        .as_ref()
        .and_then(NameOr::value)
        .expect("rules");
    assert_eq!(p.access, Some(Access::Full));
    // A type that fits neither form is an error at its position.
    let e = crate::parse(
        "name: t\nagents:\n  - {name: a, cli: claude, permissions: [x]}\n",
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("t.yaml:3:") && e.contains("a name or a mapping"),
        "{e}"
    );
}

#[test]
fn every_cli_and_step_type_reads_by_its_name() {
    for cli in Cli::ALL {
        let f = file(&format!(
            "name: t\nagents: [{{name: a, cli: {}}}]\n",
            cli.as_str()
        ));
        assert_eq!(f.agents[0].cli, cli);
    }
    assert!(Cli::Cursor.is_cursor() && Cli::CursorAgent.is_cursor() && Cli::Agent.is_cursor());
    assert!(!Cli::Claude.is_cursor());
    for kind in StepType::ALL {
        let f = file(&format!(
            "name: t\nworkflows: [{{name: w, steps: [{{name: s, type: {}}}]}}]\n",
            kind.as_str()
        ));
        assert_eq!(f.workflows[0].steps[0].kind(), kind);
    }
}

#[test]
fn step_keys_are_parameters_only_with_use() {
    let f = file(
        "name: t\nworkflows:\n  - name: w\n    steps:\n      - {name: s, check: lint, use: run, n: 3, on: true}\n",
    );
    let s = &f.workflows[0].steps[0];
    assert_eq!(s.use_.as_deref(), Some("run"));
    assert_eq!(s.use_args["check"], Scalar::Text("lint".into()));
    assert_eq!(s.use_args["n"], Scalar::Int(3));
    assert_eq!(s.use_args["on"], Scalar::Bool(true));
    // Without `use` the same key is a typo, reported where it stands.
    let e = crate::parse(
        "name: t\nworkflows:\n  - name: w\n    steps:\n      - name: s\n        check: lint\n",
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("t.yaml:6:9:") && e.contains("unknown field `check`"),
        "{e}"
    );
    // A parameter is a single value.
    let e = crate::parse(
        "name: t\nworkflows:\n  - name: w\n    steps:\n      - name: s\n        use: run\n        check: [a]\n",
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("t.yaml:7:9:") && e.contains("must be a single value"),
        "{e}"
    );
    // A step without a name says so.
    let e = crate::parse(
        "name: t\nworkflows: [{name: w, steps: [{agent: a}]}]\n",
        "t.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing field `name`"), "{e}");
}

#[test]
fn reference_defaults_apply() {
    let f = file(
        "name: t\npaths: [{name: p, path: ../p}]\nswarm: {completionGracePeriodMs: 0}\nagents: [{name: a, cli: claude, task: lend, workdir: p}]\nworkflows:\n  - name: w\n    steps:\n      - {name: s, agent: a}\n      - {name: wt, type: worktree, branch: b}\nerrorHandling: {repairAgent: a, maxRetries: 4}\n",
    );
    assert_eq!(
        f.swarm.as_ref().and_then(Swarm::completion_grace_period),
        None
    );
    assert_eq!(
        Swarm::default().completion_grace_period(),
        Some(Duration::from_secs(5))
    );
    assert!(f.paths[0].is_required());
    let steps = &f.workflows[0].steps;
    assert_eq!(f.task_of(&steps[0]), Some("lend"));
    assert_eq!(f.cwd_of(&steps[0]), Some("../p"));
    assert_eq!(steps[1].worktree_path(), ".worktrees/wt");
    assert_eq!(steps[1].base_branch(), "HEAD");
    assert!(steps[1].creates_branch());
    let eh = f.error_handling.as_ref().expect("errorHandling");
    assert_eq!(eh.repair_attempts(), 4);
    assert_eq!(eh.on_exhaustion(), OnExhaustion::Fail);
}
