//! Rate-limit parking in the run state, on the fake clock.

use super::*;

/// 2026-11-30T00:53:20Z.
const WALL: u64 = 1_796_000_000_000;

fn sim_parking<'a>(f: &'a Fixture, parked: BTreeMap<String, u64>) -> Sim<'a> {
    let file = &f.loaded.file;
    let wf = &file.workflows[0];
    let (plan, hooks) = crate::patterns::build(file, wf);
    let now = Instant::now();
    let state = RunState::new(
        RunSetup {
            file,
            wf,
            vars: &f.vars,
            workdir: PathBuf::from("/w"),
            paths: BTreeMap::new(),
            run_dir: PathBuf::from("/w/.agent-relay/runs/r"),
            run_id: "r".into(),
            presets: BTreeMap::new(),
            approved: Default::default(),
            marks: Default::default(),
            sessions: Default::default(),
            globs: BTreeMap::new(),
        },
        plan,
        hooks,
        now,
    )
    .with_parking(now, WALL, Duration::from_secs(10), parked);
    let mut sim = Sim {
        state,
        now,
        pending: Vec::new(),
        launched: Vec::new(),
        events: Vec::new(),
        effects: Vec::new(),
        summary: None,
        most: 0,
    };
    sim.input(Input::Start);
    sim
}

fn limited(resets_in_secs: Option<u64>) -> StepOutcome {
    StepOutcome::RateLimited {
        output: "partial".into(),
        message: "usage limit reached".into(),
        resets_at: resets_in_secs.map(|s| WALL / 1000 + s),
    }
}

fn parks(sim: &Sim<'_>) -> Vec<(String, u32, u64, String)> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            EventKind::StepParked {
                step,
                attempt,
                until_ms,
                reason,
                ..
            } => Some((step.clone(), *attempt, *until_ms, reason.clone())),
            _ => None,
        })
        .collect()
}

fn two_providers() -> Fixture {
    fixture(
        "name: t\nagents:\n  - {name: a, cli: claude, interactive: false}\n  - {name: b, cli: claude, interactive: false}\n  - {name: c, cli: codex, interactive: false}\nworkflows:\n  - name: w\n    steps:\n      - {name: one, agent: a, retries: 0, task: first}\n      - {name: two, agent: b, dependsOn: [one], task: second}\n      - {name: other, agent: c, dependsOn: [one], task: third}\n      - {name: late, agent: a, retries: 1, dependsOn: [one], task: fourth}\n",
    )
}

#[test]
fn a_rate_limited_attempt_parks_until_the_reset_and_spends_no_retry() {
    let f = two_providers();
    let mut sim = sim_parking(&f, BTreeMap::new());
    let t0 = sim.now;
    sim.answer(limited(Some(600)));
    assert!(sim.pending.is_empty(), "nothing starts before the reset");
    assert_eq!(
        parks(&sim),
        [(
            "one".into(),
            2,
            WALL + 600_000,
            "usage limit reached".into()
        )]
    );
    assert_eq!(sim.state.parked_steps(), [("one".into(), WALL + 600_000)]);
    assert_eq!(
        sim.state.next_deadline(),
        Some(t0 + Duration::from_secs(600))
    );
    sim.now = t0 + Duration::from_secs(599);
    sim.input(Input::Tick);
    assert!(sim.pending.is_empty());
    sim.now = t0 + Duration::from_secs(600);
    sim.input(Input::Tick);
    let again = sim.pending[0].clone();
    assert_eq!(again.attempt, 2);
    assert_eq!(again.text, "first", "the task again, not a failure report");
    let s = sim.run(echo);
    // `retries: 0`, and still a second attempt: the parked one spent none.
    assert_eq!(step(&s, "one").status, StepStatus::Completed);
    assert_eq!(step(&s, "one").attempts, 2);
    assert_eq!(s.status, RunStatus::Completed);
}

#[test]
fn other_steps_on_the_same_provider_hold_back_and_others_run() {
    let f = two_providers();
    let mut sim = sim_parking(&f, BTreeMap::new());
    let t0 = sim.now;
    sim.answer(done("ok"));
    // two, other, late run; two hits the limit.
    assert_eq!(sim.labels(), ["one", "two", "other", "late"]);
    let two = sim.pending.remove(0);
    sim.input(Input::AttemptDone {
        node: two.job.node,
        attempt: two.attempt,
        outcome: limited(Some(60)),
    });
    // late (claude) then fails the normal way and retries: its retry holds back.
    let late = sim.pending.remove(1);
    assert_eq!(late.job.label, "late");
    sim.input(Input::AttemptDone {
        node: late.job.node,
        attempt: late.attempt,
        outcome: failed("exit code 1"),
    });
    let p = parks(&sim);
    assert_eq!(p.len(), 2);
    assert_eq!(
        (p[1].0.as_str(), p[1].1, p[1].2),
        ("late", 2, WALL + 60_000)
    );
    assert!(p[1].3.contains("held back: claude"), "{}", p[1].3);
    // codex is not held back.
    assert_eq!(sim.pending.len(), 1);
    assert_eq!(sim.pending[0].job.label, "other");
    sim.answer(done("ok"));
    sim.now = t0 + Duration::from_secs(60);
    sim.input(Input::Tick);
    let mut again: Vec<_> = sim
        .pending
        .iter()
        .map(|l| (l.job.label.clone(), l.attempt))
        .collect();
    again.sort();
    assert_eq!(again, [("late".to_string(), 2), ("two".to_string(), 2)]);
    assert!(
        sim.pending[1..]
            .iter()
            .chain(&sim.pending[..1])
            .any(|l| l.text.contains("The previous attempt failed")),
        "a held-back retry keeps what failed"
    );
    assert_eq!(sim.run(echo).status, RunStatus::Completed);
}

#[test]
fn unpark_resumes_every_parked_step_at_once() {
    let f = two_providers();
    let mut sim = sim_parking(&f, BTreeMap::new());
    sim.answer(limited(Some(3600)));
    assert!(sim.pending.is_empty());
    sim.input(Input::Unpark);
    assert_eq!(sim.pending.len(), 1);
    assert_eq!(sim.pending[0].attempt, 2);
    assert!(
        sim.events.iter().any(
            |e| matches!(e, EventKind::RunUnparked { steps } if steps == &["one".to_string()])
        )
    );
    // The hold is lifted too: the next claude steps start.
    sim.answer(done("ok"));
    assert_eq!(sim.pending.len(), 3);
    assert_eq!(sim.run(echo).status, RunStatus::Completed);
}

#[test]
fn a_resumed_run_parks_again_what_its_log_left_parked() {
    let f = two_providers();
    let parked = BTreeMap::from([("one".to_string(), WALL + 120_000)]);
    let mut sim = sim_parking(&f, parked);
    let t0 = sim.now;
    assert!(sim.pending.is_empty(), "parked again, not started");
    let p = parks(&sim);
    assert_eq!(
        (p[0].0.as_str(), p[0].1, p[0].2),
        ("one", 1, WALL + 120_000)
    );
    assert_eq!(
        sim.state.next_deadline(),
        Some(t0 + Duration::from_secs(120))
    );
    sim.now = t0 + Duration::from_secs(120);
    sim.input(Input::Tick);
    assert_eq!(sim.pending[0].attempt, 1);
    // A park whose time passed while nothing ran does not wait.
    let f2 = two_providers();
    let past = BTreeMap::from([("one".to_string(), WALL - 1)]);
    let sim2 = sim_parking(&f2, past);
    assert_eq!(sim2.pending.len(), 1);
}

#[test]
fn without_a_reset_the_backoff_doubles_and_a_provider_that_keeps_refusing_fails_the_step() {
    let f = two_providers();
    let mut sim = sim_parking(&f, BTreeMap::new());
    let t0 = sim.now;
    sim.answer(limited(None));
    sim.now = t0 + Duration::from_secs(10);
    sim.input(Input::Tick);
    sim.answer(limited(None));
    let p = parks(&sim);
    assert_eq!(p[0].2, WALL + 10_000);
    assert_eq!(p[1].2, WALL + 10_000 + 20_000);
    let s = sim.run(|_| limited(None));
    assert_eq!(step(&s, "one").status, StepStatus::Failed);
    let reason = step(&s, "one").reason.clone().unwrap_or_default();
    assert!(
        reason.contains("rate limited 12 times in a row"),
        "{reason}"
    );
    assert_eq!(parks(&sim).len(), 12);
    assert_eq!(step(&s, "two").status, StepStatus::Skipped);
}

#[test]
fn a_cancel_ends_a_parked_step() {
    let f = two_providers();
    let mut sim = sim_parking(&f, BTreeMap::new());
    sim.answer(limited(Some(3600)));
    sim.input(Input::Cancel {
        reason: "interrupted".into(),
    });
    let s = sim.summary.clone().expect("finished at once");
    assert_eq!(s.status, RunStatus::Cancelled);
    assert_eq!(step(&s, "one").status, StepStatus::Failed);
    assert!(sim.state.parked_steps().is_empty());
}
