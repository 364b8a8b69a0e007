//! The run state driven without processes: a simulated launcher answers each `Launch`
//! effect with an outcome the test chooses, and time is a fake clock moved by hand.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::events::EventKind;
use crate::outcome::{RunStatus, StepOutcome, StepStatus};

#[path = "state_park_tests.rs"]
mod park;

#[path = "state_group_tests.rs"]
mod group;

/// One workflow file under test.
struct Fixture {
    loaded: relay_spec::Loaded,
    vars: BTreeMap<String, String>,
}

fn fixture(yaml: &str) -> Fixture {
    let loaded = relay_spec::parse(yaml, "t.yaml").expect("test workflow parses");
    let report = relay_spec::validate(&loaded, None);
    assert!(
        !report.has_errors(),
        "test workflow is valid: {:?}",
        report.diagnostics
    );
    Fixture {
        loaded,
        vars: BTreeMap::new(),
    }
}

/// A run under test: the state, the fake clock, and everything it did.
struct Sim<'a> {
    state: RunState<'a>,
    now: Instant,
    /// Attempts launched and not answered yet, oldest first.
    pending: Vec<Launch>,
    /// Every attempt launched, in order.
    launched: Vec<Launch>,
    events: Vec<EventKind>,
    effects: Vec<Effect>,
    summary: Option<RunSummary>,
    /// Most attempts outstanding at once.
    most: usize,
}

impl<'a> Sim<'a> {
    fn new(f: &'a Fixture) -> Sim<'a> {
        Self::with_presets(f, BTreeMap::new())
    }

    fn with_presets(f: &'a Fixture, presets: BTreeMap<String, Preset>) -> Sim<'a> {
        Self::with_setup(f, presets, BTreeMap::new(), Default::default())
    }

    fn with_setup(
        f: &'a Fixture,
        presets: BTreeMap<String, Preset>,
        globs: BTreeMap<String, Vec<String>>,
        approved: std::collections::BTreeSet<String>,
    ) -> Sim<'a> {
        Self::with_marks(f, presets, globs, approved, Default::default())
    }

    fn with_marks(
        f: &'a Fixture,
        presets: BTreeMap<String, Preset>,
        globs: BTreeMap<String, Vec<String>>,
        approved: std::collections::BTreeSet<String>,
        marks: super::Marks,
    ) -> Sim<'a> {
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
                presets,
                approved,
                marks,
                sessions: BTreeMap::new(),
                globs,
            },
            plan,
            hooks,
            now,
        );
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

    fn input(&mut self, input: Input) {
        let effects = self.state.handle(input, self.now);
        for e in effects {
            match &e {
                Effect::Record(kind) => self.events.push(kind.clone()),
                Effect::Launch(l) => {
                    self.pending.push(l.clone());
                    self.launched.push(l.clone());
                }
                Effect::Finish(s) => {
                    assert!(self.summary.is_none(), "finished twice");
                    self.summary = Some(s.clone());
                }
                _ => {}
            }
            self.effects.push(e);
        }
        self.most = self.most.max(self.pending.len());
    }

    /// Answers the oldest outstanding attempt with `outcome`.
    fn answer(&mut self, outcome: StepOutcome) -> Launch {
        let l = self.pending.remove(0);
        self.input(Input::AttemptDone {
            node: l.job.node,
            attempt: l.attempt,
            outcome,
        });
        l
    }

    /// Answers outstanding attempts with `respond` until none is left, moving the clock
    /// to the next deadline when only timers remain.
    fn run(&mut self, mut respond: impl FnMut(&Launch) -> StepOutcome) -> RunSummary {
        for _ in 0..10_000 {
            if let Some(s) = &self.summary {
                return s.clone();
            }
            if let Some(l) = self.pending.first().cloned() {
                let outcome = respond(&l);
                self.answer(outcome);
            } else if let Some(at) = self.state.next_deadline() {
                self.now = self.now.max(at);
                self.input(Input::Tick);
            } else {
                panic!("stuck: nothing pending, no deadline, not finished");
            }
        }
        panic!("the run did not end");
    }

    fn labels(&self) -> Vec<String> {
        self.launched.iter().map(|l| l.job.label.clone()).collect()
    }

    fn pattern(&self, action: &str) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                EventKind::Pattern {
                    step,
                    action: a,
                    detail,
                } if a == action => Some(format!("{step}: {detail}")),
                _ => None,
            })
            .collect()
    }

    fn skipped(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                EventKind::StepSkipped { step, reason } => Some((step.clone(), reason.clone())),
                _ => None,
            })
            .collect()
    }
}

fn done(output: &str) -> StepOutcome {
    StepOutcome::Completed {
        output: output.into(),
        exit_code: Some(0),
    }
}

fn failed(reason: &str) -> StepOutcome {
    StepOutcome::Failed {
        output: String::new(),
        reason: reason.into(),
        exit_code: Some(1),
        retryable: true,
    }
}

/// Answers every attempt with its own task text as output.
fn echo(l: &Launch) -> StepOutcome {
    done(&l.text)
}

fn team(header: &str, agents: &[(&str, &str)], steps: &str) -> String {
    let mut y = format!("name: t\n{header}agents:\n");
    for (name, role) in agents {
        y.push_str(&format!(
            "  - {{name: {name}, cli: claude, role: \"{role}\", interactive: false}}\n"
        ));
    }
    y.push_str("workflows:\n  - name: w\n    steps:\n");
    y.push_str(steps);
    y
}

fn step<'s>(s: &'s RunSummary, name: &str) -> &'s crate::outcome::StepSummary {
    s.steps
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

// ---- scheduling, data and failure policy --------------------------------------------

#[test]
fn a_dependent_starts_after_its_dependency_with_its_output() {
    let f = fixture(&team(
        "",
        &[("a", "dev")],
        "      - {name: one, agent: a, task: first}\n      - {name: two, agent: a, dependsOn: [one], task: \"got {{steps.one.output}}\"}\n",
    ));
    let mut sim = Sim::new(&f);
    assert_eq!(sim.labels(), ["one"], "only what is ready starts");
    let s = sim.run(|l| done(&format!("{}!", l.text)));
    assert_eq!(sim.labels(), ["one", "two"]);
    assert_eq!(s.status, RunStatus::Completed);
    assert_eq!(step(&s, "two").output, "got first!!");
    // The output is stored before the completion is recorded.
    let store = sim
        .effects
        .iter()
        .position(|e| matches!(e, Effect::StoreOutput { label, .. } if label == "one"));
    let record = sim.effects.iter().position(
        |e| matches!(e, Effect::Record(EventKind::StepCompleted { step, .. }) if step == "one"),
    );
    assert!(store < record && store.is_some());
}

#[test]
fn the_concurrency_limit_holds_and_freed_slots_fill_at_once() {
    let f = fixture(&team(
        "swarm: {maxConcurrency: 2}\n",
        &[("a", "dev")],
        "      - {name: s1, agent: a, task: x}\n      - {name: s2, agent: a, task: x}\n      - {name: s3, agent: a, task: x}\n      - {name: s4, agent: a, task: x}\n",
    ));
    let mut sim = Sim::new(&f);
    assert_eq!(sim.pending.len(), 2);
    sim.answer(done("ok"));
    assert_eq!(sim.pending.len(), 2, "the freed slot is taken at once");
    let s = sim.run(echo);
    assert_eq!(sim.most, 2);
    assert_eq!(s.status, RunStatus::Completed);
}

#[test]
fn a_retry_waits_its_delay_and_tells_the_agent_what_failed() {
    let f = fixture(&team(
        "errorHandling: {retryDelayMs: 500}\n",
        &[("a", "dev")],
        "      - {name: flaky, agent: a, retries: 1, task: do it}\n",
    ));
    let mut sim = Sim::new(&f);
    sim.answer(failed("exit code 1"));
    assert!(sim.pending.is_empty(), "the retry waits for its delay");
    let t0 = sim.now;
    assert_eq!(
        sim.state.next_deadline(),
        Some(t0 + Duration::from_millis(500))
    );
    sim.now = t0 + Duration::from_millis(499);
    sim.input(Input::Tick);
    assert!(sim.pending.is_empty());
    sim.now = t0 + Duration::from_millis(500);
    sim.input(Input::Tick);
    let retry = sim.pending[0].clone();
    assert_eq!(retry.attempt, 2);
    assert!(
        retry
            .text
            .contains("The previous attempt failed: exit code 1.")
    );
    let s = sim.run(echo);
    assert_eq!(step(&s, "flaky").status, StepStatus::Completed);
    assert_eq!(step(&s, "flaky").attempts, 2);
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, EventKind::StepRetrying { delay_ms: 500, .. }))
    );
}

#[test]
fn a_failure_that_cannot_be_retried_is_not() {
    let f = fixture(&team(
        "",
        &[("a", "dev")],
        "      - {name: one, agent: a, retries: 3, task: x}\n",
    ));
    let mut sim = Sim::new(&f);
    sim.answer(StepOutcome::Failed {
        output: String::new(),
        reason: "no such agent".into(),
        exit_code: None,
        retryable: false,
    });
    let s = sim.summary.clone().expect("finished");
    assert_eq!(sim.launched.len(), 1);
    assert_eq!(s.status, RunStatus::Failed);
}

#[test]
fn fail_fast_skips_everything_not_started_continue_only_dependents() {
    let steps = "      - {name: bad, agent: a, task: x}\n      - {name: after, agent: a, dependsOn: [bad], task: x}\n      - {name: other, agent: a, dependsOn: [slow], task: x}\n      - {name: slow, agent: a, task: x}\n";
    let f = fixture(&team("", &[("a", "dev")], steps));
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.job.label == "bad" {
            failed("exit code 1")
        } else {
            done("ok")
        }
    });
    assert_eq!(s.status, RunStatus::Failed);
    assert_eq!(s.reason.as_deref(), Some("step failed: bad"));
    assert_eq!(step(&s, "after").status, StepStatus::Skipped);
    assert_eq!(
        step(&s, "other").reason.as_deref(),
        Some("not started: the run stopped after step `bad` failed")
    );
    // `slow` had started and finishes.
    assert_eq!(step(&s, "slow").status, StepStatus::Completed);

    let f = fixture(
        &team("", &[("a", "dev")], steps)
            .replace("  - name: w\n", "  - name: w\n    onError: continue\n"),
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.job.label == "bad" {
            failed("exit code 1")
        } else {
            done("ok")
        }
    });
    assert_eq!(
        step(&s, "after").reason.as_deref(),
        Some("dependency `bad` failed")
    );
    assert_eq!(step(&s, "other").status, StepStatus::Completed);
}

// ---- stop causes -------------------------------------------------------------------

#[test]
fn cancel_ends_running_attempts_skips_the_rest_and_the_run_is_cancelled() {
    let f = fixture(&team(
        "swarm: {maxConcurrency: 1}\n",
        &[("a", "dev")],
        "      - {name: one, agent: a, task: x}\n      - {name: two, agent: a, task: x}\n",
    ));
    let mut sim = Sim::new(&f);
    sim.input(Input::Cancel {
        reason: "interrupted".into(),
    });
    assert!(sim.effects.contains(&Effect::CancelRunning));
    assert_eq!(
        sim.skipped(),
        [("two".to_string(), "not started: interrupted".to_string())]
    );
    // A result that still arrives does not make the run complete.
    sim.answer(done("finished anyway"));
    let s = sim.summary.clone().expect("finished");
    assert_eq!(s.status, RunStatus::Cancelled);
    assert_eq!(s.reason.as_deref(), Some("interrupted"));
}

#[test]
fn a_cancel_during_a_retry_delay_ends_the_step_at_once() {
    let f = fixture(&team(
        "errorHandling: {retryDelayMs: 60000}\n",
        &[("a", "dev")],
        "      - {name: flaky, agent: a, retries: 2, task: x}\n",
    ));
    let mut sim = Sim::new(&f);
    sim.answer(failed("exit code 1"));
    sim.input(Input::Cancel {
        reason: "interrupted".into(),
    });
    let s = sim.summary.clone().expect("no waiting for the delay");
    assert_eq!(s.status, RunStatus::Cancelled);
    assert_eq!(sim.launched.len(), 1);
}

#[test]
fn the_run_timeout_cancels_and_fails_the_run() {
    let f = fixture(&team(
        "swarm: {timeoutMs: 1000}\n",
        &[("a", "dev")],
        "      - {name: slow, agent: a, task: x}\n      - {name: next, agent: a, dependsOn: [slow], task: x}\n",
    ));
    let mut sim = Sim::new(&f);
    assert_eq!(
        sim.state.next_deadline(),
        Some(sim.now + Duration::from_millis(1000))
    );
    sim.now += Duration::from_millis(1000);
    sim.input(Input::Tick);
    assert!(sim.effects.contains(&Effect::CancelRunning));
    sim.answer(StepOutcome::Cancelled {
        output: String::new(),
    });
    let s = sim.summary.clone().expect("finished");
    assert_eq!(s.status, RunStatus::Failed);
    assert_eq!(s.reason.as_deref(), Some("run timed out after 1000 ms"));
    assert_eq!(step(&s, "next").status, StepStatus::Skipped);
}

#[test]
fn a_broken_attempt_stops_the_run_as_a_runtime_failure() {
    let f = fixture(&team(
        "",
        &[("a", "dev")],
        "      - {name: one, agent: a, task: x}\n      - {name: two, agent: a, task: x}\n      - {name: three, agent: a, dependsOn: [one], task: x}\n",
    )
    .replace("  - name: w\n", "  - name: w\n    onError: continue\n"));
    let mut sim = Sim::new(&f);
    sim.answer(StepOutcome::Broken {
        why: "`claude` is not installed".into(),
    });
    // Whatever the failure policy, nothing new starts.
    assert_eq!(
        step_skipped(&sim, "three"),
        Some("dependency `one` failed".into())
    );
    sim.answer(done("ok"));
    let s = sim.summary.clone().expect("finished");
    assert_eq!(s.status, RunStatus::Failed);
    assert_eq!(
        s.runtime_error.as_deref(),
        Some("`claude` is not installed")
    );
}

fn step_skipped(sim: &Sim<'_>, label: &str) -> Option<String> {
    sim.skipped()
        .into_iter()
        .find(|(l, _)| l == label)
        .map(|(_, r)| r)
}

#[test]
fn a_node_that_cannot_be_resolved_fails_alone() {
    let f = fixture(&team(
        "",
        &[("a", "dev")],
        "      - {name: one, agent: a, task: \"needs {{missing}}\"}\n",
    ));
    let sim = Sim::new(&f);
    assert!(sim.launched.is_empty());
    let s = sim.summary.clone().expect("finished");
    assert_eq!(
        step(&s, "one").reason.as_deref(),
        Some("no value for {{missing}}")
    );
}

// ---- gates -----------------------------------------------------------------------------

#[test]
fn a_review_loop_sends_work_back_until_approved() {
    let f = fixture(&team(
        "swarm: {pattern: review-loop}\n",
        &[("author", "developer"), ("rev", "reviewer")],
        "      - {name: patch, agent: author, task: write}\n      - {name: review, agent: rev, dependsOn: [patch], task: review it}\n      - {name: ship, agent: author, dependsOn: [patch], task: \"ship {{steps.patch.output}}\"}\n",
    ));
    let mut sim = Sim::new(&f);
    let mut reviews = 0;
    let s = sim.run(|l| match l.job.label.as_str() {
        "patch" => done("v1"),
        "patch#2" => {
            assert!(l.text.contains("## Feedback to address\nneeds tests"));
            done("v2")
        }
        r if r.starts_with("review") => {
            reviews += 1;
            done(if reviews == 1 {
                "needs tests"
            } else {
                "VERDICT: pass"
            })
        }
        _ => echo(l),
    });
    assert_eq!(
        sim.labels(),
        ["patch", "review#1", "patch#2", "review#2", "ship"],
        "ship waits for the approved version"
    );
    assert_eq!(step(&s, "ship").output, "ship v2");
    assert_eq!(sim.pattern("approved"), ["review: iteration 2"]);
}

#[test]
fn two_reviewers_of_one_producer_make_no_cycle() {
    let f = fixture(&team(
        "swarm: {pattern: review-loop}\n",
        &[
            ("author", "developer"),
            ("r1", "reviewer"),
            ("r2", "reviewer"),
        ],
        "      - {name: patch, agent: author, task: write}\n      - {name: ra, agent: r1, dependsOn: [patch], task: review}\n      - {name: rb, agent: r2, dependsOn: [patch], task: review}\n",
    ));
    let mut sim = Sim::new(&f);
    let s = sim.run(|_| done("VERDICT: pass"));
    assert_eq!(s.status, RunStatus::Completed);
}

#[test]
fn a_review_link_through_a_barrier_makes_no_cycle() {
    // The attacker reviews s2 and waits for a barrier on s3, which depends on s2: a link
    // s3 -> attacker would close a cycle through the barrier.
    let f = fixture(
        "name: t
swarm: {pattern: red-team}
coordination:
  barriers: [{name: gate, waitFor: [s3]}]
agents:
  - {name: dev, cli: claude, role: developer, interactive: false}
  - {name: red, cli: claude, role: attacker, interactive: false}
workflows:
  - name: w
    steps:
      - {name: s2, agent: dev, task: build}
      - {name: s3, agent: dev, dependsOn: [s2], task: more}
      - {name: s4, agent: red, dependsOn: [s2, gate], task: attack}
",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|_| done("NO_FINDINGS"));
    assert_eq!(s.status, RunStatus::Completed, "{:?}", sim.skipped());
}

#[test]
fn map_items_expand_into_nodes_the_gate_is_told_about() {
    let f = fixture(&team(
        "swarm: {pattern: map-reduce, maxConcurrency: 2}\n",
        &[("a", "dev")],
        "      - {name: m, agent: a, items: [x, y, z], task: \"do {{item}} ({{itemIndex}})\"}\n",
    ));
    let mut sim = Sim::new(&f);
    let s = sim.run(echo);
    assert_eq!(sim.labels(), ["m[1]", "m[2]", "m[3]"]);
    assert_eq!(sim.most, 2);
    assert!(step(&s, "m").output.contains("### item 3: z\ndo z (3)"));
}

#[test]
fn consensus_counts_votes_and_fails_without_a_majority() {
    let yaml = team(
        "swarm: {pattern: consensus}\n",
        &[("a", "x"), ("b", "y"), ("c", "z")],
        "      - {name: pick, agent: a, task: Choose.}\n",
    );
    let f = fixture(&yaml);
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        done(if l.job.label.ends_with(":c") {
            "VOTE: no"
        } else {
            "VOTE: yes"
        })
    });
    assert_eq!(step(&s, "pick").output, "yes");
    assert_eq!(
        sim.pattern("decided"),
        ["pick: yes by majority (yes=2, no=1)"]
    );
    let mut sim = Sim::new(&f);
    let mut k = 0;
    let s = sim.run(|_| {
        k += 1;
        done(&format!("VOTE: option{k}"))
    });
    assert_eq!(s.status, RunStatus::Failed);
    assert!(
        step(&s, "pick")
            .reason
            .as_deref()
            .unwrap()
            .contains("no consensus")
    );
}

#[test]
fn debate_rounds_see_the_other_positions() {
    let f = fixture(&team(
        "swarm: {pattern: debate}\n",
        &[("a", "x"), ("b", "y")],
        "      - {name: argue, agent: a, rounds: 2, task: Debate.}\n",
    ));
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| done(&format!("position of {}", l.job.label)));
    assert_eq!(
        sim.labels(),
        ["argue:r1:a", "argue:r1:b", "argue:r2:a", "argue:r2:b"]
    );
    let r2a = &sim.launched[2].text;
    assert!(r2a.contains("## Position of b in round 1\nposition of argue:r1:b"));
    assert!(
        step(&s, "argue")
            .output
            .contains("## a\nposition of argue:r2:a")
    );
}

#[test]
fn an_auction_awards_the_lowest_bid() {
    let f = fixture(&team(
        "swarm: {pattern: auction}\n",
        &[("boss", "auctioneer"), ("cheap", "dev"), ("dear", "dev")],
        "      - {name: job, agent: boss, task: Build it.}\n",
    ));
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| match l.job.label.as_str() {
        "job:bid:cheap" => done("BID: 3"),
        "job:bid:dear" => done("BID: 9"),
        _ => done(&format!(
            "built by {:?}",
            l.job.agent().map(|a| a.name.clone())
        )),
    });
    assert!(sim.labels().contains(&"job:by:cheap".to_string()));
    assert_eq!(step(&s, "job").output, "built by Some(\"cheap\")");
}

#[test]
fn escalation_hands_a_failed_step_to_the_next_tier() {
    let f = fixture(&team(
        "swarm: {pattern: escalation}\n",
        &[("junior", "tier-1 dev"), ("senior", "tier-2 dev")],
        "      - {name: fix, agent: junior, task: Fix it.}\n",
    ));
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.job.agent().map(|a| a.name.as_str()) == Some("junior") {
            failed("too hard")
        } else {
            done("fixed")
        }
    });
    assert_eq!(sim.labels(), ["fix#1", "fix@senior"]);
    assert_eq!(step(&s, "fix").status, StepStatus::Completed);
    assert_eq!(
        sim.pattern("escalated"),
        ["fix: junior -> senior after: [failed: too hard]"]
    );
}

#[test]
fn the_circuit_breaker_opens_after_two_failures_of_the_primary() {
    let f = fixture(&team(
        "swarm: {pattern: circuit-breaker, maxConcurrency: 1}\n",
        &[("main", "primary"), ("spare", "fallback")],
        "      - {name: s1, agent: main, task: x}\n      - {name: s2, agent: main, dependsOn: [s1], task: x}\n      - {name: s3, agent: main, dependsOn: [s2], task: x}\n",
    ));
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.job.agent().map(|a| a.name.as_str()) == Some("main") {
            failed("down")
        } else {
            done("ok")
        }
    });
    assert_eq!(s.status, RunStatus::Completed);
    assert_eq!(sim.pattern("opened").len(), 1);
    // The third step went straight to the fallback when it started.
    let s3 = sim.launched.iter().find(|l| l.job.label == "s3#1").unwrap();
    assert_eq!(s3.job.agent().map(|a| a.name.as_str()), Some("spare"));
    assert!(
        sim.pattern("fallback")
            .iter()
            .any(|e| e.contains("breaker open"))
    );
}

#[test]
fn the_swarm_pool_gives_each_step_a_free_agent() {
    let f = fixture(&team(
        "swarm: {pattern: swarm}\n",
        &[("w1", "swarm-agent"), ("w2", "swarm-agent")],
        "      - {name: t1, agent: w1, task: x}\n      - {name: t2, agent: w1, task: x}\n      - {name: t3, agent: w1, task: x}\n",
    ));
    let mut sim = Sim::new(&f);
    let running: Vec<Option<String>> = sim
        .pending
        .iter()
        .map(|l| l.job.agent().map(|a| a.name.clone()))
        .collect();
    assert_eq!(
        running,
        [Some("w1".to_string()), Some("w2".to_string())],
        "one step per pool agent at a time"
    );
    let s = sim.run(echo);
    assert_eq!(s.status, RunStatus::Completed);
}

#[test]
fn a_failed_saga_is_compensated_newest_first() {
    let f = fixture(
        "name: t
swarm: {pattern: saga}
agents: [{name: a, cli: claude, interactive: false}]
workflows:
  - name: w
    steps:
      - {name: reserve, type: deterministic, command: r, compensate: undo-r}
      - {name: charge, type: deterministic, dependsOn: [reserve], command: c, compensate: undo-c}
      - {name: ship, type: deterministic, dependsOn: [charge], command: s, compensate: undo-s}
",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.job.label == "ship" {
            failed("exit code 1")
        } else {
            done("ok")
        }
    });
    let undo: Vec<String> = sim
        .launched
        .iter()
        .filter(|l| l.job.label.ends_with(":compensate"))
        .map(|l| l.text.clone())
        .collect();
    assert_eq!(undo, ["undo-c", "undo-r"]);
    assert_eq!(s.status, RunStatus::Failed);
    assert_eq!(sim.pattern("compensating").len(), 1);
}

#[test]
fn a_barrier_fails_its_dependents_at_its_timeout() {
    let f = fixture(
        "name: t
coordination:
  barriers: [{name: gate, waitFor: [a1, a2], timeoutMs: 2000}]
agents: [{name: a, cli: claude, interactive: false}]
workflows:
  - name: w
    onError: continue
    steps:
      - {name: a1, agent: a, task: x}
      - {name: a2, agent: a, task: x}
      - {name: after, agent: a, dependsOn: [gate], task: x}
",
    );
    let mut sim = Sim::new(&f);
    sim.answer(done("a1 done"));
    assert_eq!(
        sim.state.next_deadline(),
        Some(sim.now + Duration::from_millis(2000))
    );
    sim.now += Duration::from_millis(2000);
    sim.input(Input::Tick);
    assert_eq!(
        sim.pattern("timed-out"),
        ["barrier:gate: barrier timed out after 2000 ms"]
    );
    assert_eq!(
        step_skipped(&sim, "after"),
        Some("dependency `barrier:gate` failed".into())
    );
    sim.answer(done("late"));
    let s = sim.summary.clone().expect("finished");
    assert_eq!(step(&s, "after").status, StepStatus::Skipped);
}

#[test]
fn a_supervisor_restarts_a_failed_worker() {
    let f = fixture(&team(
        "swarm: {pattern: supervisor}\n",
        &[("worker", "developer"), ("boss", "supervisor")],
        "      - {name: job, agent: worker, task: x}\n      - {name: watch, agent: boss, task: watch}\n",
    ));
    let mut sim = Sim::new(&f);
    let mut tries = 0;
    let s = sim.run(|l| {
        if l.job.label.starts_with("job") {
            tries += 1;
            if tries == 1 {
                return failed("crashed");
            }
        }
        echo(l)
    });
    assert_eq!(sim.pattern("restarted").len(), 1);
    assert!(
        step(&s, "watch")
            .output
            .contains("## Health of worker step `job`")
    );
}

#[test]
fn competitors_race_and_the_fastest_passing_one_wins() {
    let f = fixture(&team(
        "swarm: {pattern: competitive}\n",
        &[("a", "x"), ("b", "y")],
        "      - {name: race, agent: a, task: Solve.}\n",
    ));
    let mut sim = Sim::new(&f);
    // b answers first, after a clock move, but fails; a passes.
    sim.now += Duration::from_millis(5);
    sim.pending.swap(0, 1);
    sim.answer(failed("wrong"));
    sim.now += Duration::from_millis(5);
    sim.answer(done("a's answer"));
    let s = sim.summary.clone().expect("finished");
    assert_eq!(step(&s, "race").output, "a's answer");
}

#[test]
fn blackboard_steps_ask_for_the_board() {
    let f = fixture(&team(
        "swarm: {pattern: blackboard}\n",
        &[("a", "x")],
        "      - {name: one, agent: a, task: x}\n",
    ));
    let sim = Sim::new(&f);
    assert!(sim.pending[0].job.append_board);
}

// ---- resume --------------------------------------------------------------------------

fn kept(output: &str) -> Preset {
    Preset {
        status: StepStatus::Completed,
        output: output.into(),
        reason: None,
        attempts: 1,
        exit_code: Some(0),
        duration_ms: 7,
    }
}

#[test]
fn completed_nodes_of_an_earlier_run_are_kept_with_their_outputs() {
    let f = fixture(&team(
        "",
        &[("a", "dev")],
        "      - {name: one, agent: a, task: x}\n      - {name: two, agent: a, dependsOn: [one], task: \"after {{steps.one.output}}\"}\n",
    ));
    let mut sim = Sim::with_presets(&f, BTreeMap::from([("one".to_string(), kept("kept\n"))]));
    assert_eq!(sim.state.kept(), ["one"]);
    let s = sim.run(echo);
    assert_eq!(sim.labels(), ["two"], "a kept node never runs again");
    assert_eq!(step(&s, "two").output, "after kept");
    assert_eq!(step(&s, "one").output, "kept\n");
    assert_eq!(step(&s, "one").attempts, 1);
}

#[test]
fn nodes_of_an_expanded_gate_are_kept_too() {
    let f = fixture(&team(
        "swarm: {pattern: map-reduce}\n",
        &[("a", "dev")],
        "      - {name: m, agent: a, items: [x, y, z], task: \"{{item}}\"}\n",
    ));
    let presets = BTreeMap::from([
        ("m[1]".to_string(), kept("X")),
        ("m[3]".to_string(), kept("Z")),
    ]);
    let mut sim = Sim::with_presets(&f, presets);
    let s = sim.run(|_| done("Y"));
    assert_eq!(sim.labels(), ["m[2]"], "only the item not done before runs");
    assert!(step(&s, "m").output.contains("### item 1: x\nX"));
    assert!(step(&s, "m").output.contains("### item 3: z\nZ"));
}

#[test]
fn a_judged_failure_is_kept_but_a_plain_one_runs_again() {
    let f = fixture(&team(
        "swarm: {pattern: review-loop}\n",
        &[("author", "developer"), ("rev", "reviewer")],
        "      - {name: patch, agent: author, task: write}\n      - {name: review, agent: rev, dependsOn: [patch], maxIterations: 2, task: review}\n      - {name: solo, agent: author, task: solo}\n",
    ));
    let failed_preset = |reason: &str| Preset {
        status: StepStatus::Failed,
        output: "partial".into(),
        reason: Some(reason.into()),
        attempts: 1,
        exit_code: Some(1),
        duration_ms: 3,
    };
    let presets = BTreeMap::from([
        ("patch".to_string(), kept("v1")),
        ("review#1".to_string(), failed_preset("reviewer crashed")),
        ("solo".to_string(), failed_preset("exit code 1")),
    ]);
    let mut sim = Sim::with_presets(&f, presets);
    let s = sim.run(|l| match l.job.label.as_str() {
        "review#2" => done("VERDICT: pass"),
        _ => done("ok"),
    });
    assert_eq!(sim.labels(), ["solo", "patch#2", "review#2"]);
    assert_eq!(s.status, RunStatus::Completed);
}

// ---- repair and exhaustion -----------------------------------------------------------

const REPAIRED: &str = "name: t
agents:
  - {name: dev, cli: claude, interactive: false}
  - {name: fixer, cli: codex, interactive: false}
errorHandling: {strategy: retry, maxRetries: 2, repairAgent: fixer, repairRetries: 1, onExhaustion: needs-human}
workflows:
  - name: w
    steps:
      - {name: build, agent: dev, task: build it}
      - {name: test, type: deterministic, dependsOn: [build], command: make test}
      - {name: other, agent: dev, task: independent, dependsOn: [build]}
";

#[test]
fn a_repair_runs_before_the_retry_of_a_failed_step() {
    let f = fixture(REPAIRED);
    let mut sim = Sim::new(&f);
    let mut tests = 0;
    let s = sim.run(|l| match l.job.label.as_str() {
        "test" => {
            tests += 1;
            if tests == 1 {
                StepOutcome::Failed {
                    output: "1 test failed".into(),
                    reason: "exit code 2".into(),
                    exit_code: Some(2),
                    retryable: true,
                }
            } else {
                done("all green")
            }
        }
        "test:repair#1" => {
            assert!(matches!(l.job.work, crate::job::Work::Repair { .. }));
            assert_eq!(l.job.agent().map(|a| a.name.as_str()), Some("fixer"));
            assert!(l.text.contains("make test") && l.text.contains("1 test failed"));
            done("changed 1 file(s): src/lib.rs")
        }
        _ => done("ok"),
    });
    assert_eq!(s.status, RunStatus::Completed);
    let order: Vec<String> = sim.labels();
    let repair = order.iter().position(|l| l == "test:repair#1").unwrap();
    assert_eq!(order.iter().filter(|l| *l == "test").count(), 2);
    assert!(order.iter().rposition(|l| l == "test").unwrap() > repair);
    assert_eq!(
        sim.pattern("repaired"),
        ["test: changed 1 file(s): src/lib.rs"]
    );
}

#[test]
fn a_failed_repair_fails_the_step_and_exhaustion_needs_a_person() {
    let f = fixture(REPAIRED);
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| match l.job.label.as_str() {
        "build" => done("built"),
        "test" => failed("exit code 2"),
        "test:repair#1" => StepOutcome::Failed {
            output: "changed 1 file(s): tests/it.rs".into(),
            reason: "the repair by `fixer` changed protected files: tests/it.rs".into(),
            exit_code: Some(0),
            retryable: false,
        },
        // `other` runs alongside and is allowed to finish.
        _ => done("ok"),
    });
    assert_eq!(s.status, RunStatus::NeedsHuman);
    assert!(s.reason.as_deref().unwrap().contains("step `test` used up"));
    assert!(
        step(&s, "test")
            .reason
            .as_deref()
            .unwrap()
            .contains("protected files")
    );
    assert_eq!(sim.pattern("repair-failed").len(), 1);
    assert_eq!(
        sim.labels().iter().filter(|l| *l == "test").count(),
        1,
        "no retry after a failed repair"
    );
}

#[test]
fn a_deterministic_step_is_repaired_by_the_nearest_agent_upstream() {
    let f = fixture(&REPAIRED.replace("repairAgent: fixer, ", ""));
    let mut sim = Sim::new(&f);
    let mut first = true;
    sim.run(|l| match l.job.label.as_str() {
        "test" if first => {
            first = false;
            failed("exit code 2")
        }
        "test:repair#1" => {
            assert_eq!(l.job.agent().map(|a| a.name.as_str()), Some("dev"));
            done("changed no files")
        }
        _ => done("ok"),
    });
    assert!(sim.labels().contains(&"test:repair#1".to_string()));
}

// ---- control flow: conditions, loops, approvals, pause --------------------------------

fn one_agent(steps: &str) -> Fixture {
    fixture(&team("", &[("a", "dev")], steps))
}

#[test]
fn a_false_condition_skips_the_step_with_the_reason_and_the_rest_goes_on() {
    let f = one_agent(
        "      - {name: triage, agent: a, task: t}\n      - name: fix\n        agent: a\n        dependsOn: [triage]\n        if: \"contains(steps.triage.output, 'P0')\"\n        task: fix it\n      - {name: report, agent: a, dependsOn: [fix], task: \"r[{{steps.fix.output}}]\"}\n",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        done(if l.job.label == "triage" {
            "P2 only"
        } else {
            &l.text
        })
    });
    assert_eq!(sim.labels(), ["triage", "report"]);
    assert_eq!(s.status, RunStatus::Completed);
    let fix = step(&s, "fix");
    assert_eq!(fix.status, StepStatus::Skipped);
    assert!(
        fix.reason.as_deref().unwrap().contains("is false"),
        "{:?}",
        fix.reason
    );
    assert_eq!(step(&s, "report").output, "r[]");
}

#[test]
fn a_true_condition_runs_the_step_once() {
    let f = one_agent(
        "      - {name: triage, agent: a, task: t}\n      - name: fix\n        agent: a\n        dependsOn: [triage]\n        if: \"contains(steps.triage.output, 'P0') and steps.triage.status == 'completed'\"\n        task: fix it\n",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        done(if l.job.label == "triage" {
            "a P0 bug"
        } else {
            "fixed"
        })
    });
    assert_eq!(sim.labels(), ["triage", "fix#1"]);
    assert_eq!(step(&s, "fix").status, StepStatus::Completed);
    assert_eq!(step(&s, "fix").output, "fixed");
}

#[test]
fn skip_if_previous_success_runs_only_after_a_failure_it_may_continue_past() {
    let f = one_agent(
        "      - {name: main, agent: a, task: t, retries: 0, continueOnFailure: true}\n      - {name: fallback, agent: a, dependsOn: [main], skipIf: previous_success, task: f}\n",
    );
    // main completes: fallback is skipped.
    let mut sim = Sim::new(&f);
    let s = sim.run(echo);
    assert_eq!(sim.labels(), ["main"]);
    assert_eq!(step(&s, "fallback").status, StepStatus::Skipped);
    // main fails: fallback runs, and the run completes (continueOnFailure).
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.job.label == "main" {
            failed("boom")
        } else {
            done("saved")
        }
    });
    assert_eq!(sim.labels(), ["main", "fallback#1"]);
    assert_eq!(step(&s, "main").status, StepStatus::Failed);
    assert_eq!(step(&s, "fallback").output, "saved");
    assert_eq!(s.status, RunStatus::Completed, "{:?}", s.reason);
}

#[test]
fn skip_if_a_command_runs_it_first_and_skips_on_exit_zero() {
    let f = one_agent(
        "      - name: build\n        agent: a\n        task: b\n        skipIf: {sh: test -f done}\n",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        assert!(
            l.job.label != "build#1",
            "the step runs only when the check fails"
        );
        done("")
    });
    assert_eq!(sim.labels(), ["build:skip-check"]);
    assert!(matches!(
        sim.launched[0].job.work,
        job::Work::Command { .. }
    ));
    assert!(sim.launched[0].text.contains("test -f done"));
    assert_eq!(step(&s, "build").status, StepStatus::Skipped);
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.job.label == "build:skip-check" {
            failed("exit code 1")
        } else {
            done("built")
        }
    });
    assert_eq!(sim.labels(), ["build:skip-check", "build#1"]);
    assert_eq!(step(&s, "build").output, "built");
    assert_eq!(s.status, RunStatus::Completed);
}

#[test]
fn a_loop_until_ends_on_the_iteration_whose_output_matches() {
    let f = one_agent(
        "      - {name: fix, agent: a, task: \"try {{iteration}} of {{maxIterations}}\", until: PASS, maxIterations: 5}\n      - {name: after, agent: a, dependsOn: [fix], task: \"{{steps.fix.output}} / {{steps.fix.outputs}}\"}\n",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| match l.text.as_str() {
        "try 3 of 5" => done("PASS"),
        t if t.starts_with("try") => done("FAIL"),
        t => done(t),
    });
    assert_eq!(sim.labels(), ["fix#1", "fix#2", "fix#3", "after"]);
    assert_eq!(step(&s, "fix").output, "PASS");
    assert_eq!(step(&s, "after").output, r#"PASS / ["FAIL","FAIL","PASS"]"#);
}

#[test]
fn a_loop_until_that_never_matches_fails_after_max_iterations() {
    let f = one_agent(
        "      - {name: fix, agent: a, task: t, until: \"regex:^ok$\", maxIterations: 3}\n",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|_| done("nope"));
    assert_eq!(sim.labels(), ["fix#1", "fix#2", "fix#3"]);
    assert_eq!(s.status, RunStatus::Failed);
    let reason = step(&s, "fix").reason.clone().unwrap();
    assert!(reason.contains("not met after 3 iterations"), "{reason}");
}

#[test]
fn break_if_failure_ends_a_counted_loop_at_the_failing_iteration() {
    let f = one_agent(
        "      - {name: work, agent: a, task: \"n{{iteration}}\", retries: 0, loop: {max: 5}, breakIf: failure}\n",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.text == "n3" {
            failed("broke")
        } else {
            done(&l.text)
        }
    });
    assert_eq!(sim.labels(), ["work#1", "work#2", "work#3"]);
    assert_eq!(s.status, RunStatus::Completed);
    assert_eq!(step(&s, "work").output, "n2");
    // Without breakIf, a failing iteration fails the step.
    let f = one_agent(
        "      - {name: work, agent: a, task: \"n{{iteration}}\", retries: 0, loop: {max: 5}}\n",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        if l.text == "n2" {
            failed("broke")
        } else {
            done(&l.text)
        }
    });
    assert_eq!(sim.labels(), ["work#1", "work#2"]);
    assert_eq!(s.status, RunStatus::Failed);
    assert!(
        step(&s, "work")
            .reason
            .as_deref()
            .unwrap()
            .contains("iteration 2 failed: broke")
    );
}

#[test]
fn break_if_a_condition_sees_the_iteration_output() {
    let f = one_agent(
        "      - {name: work, agent: a, task: \"n{{iteration}}\", loop: {max: 9}, breakIf: \"contains(output, 'stop') or iteration >= 7\"}\n",
    );
    let mut sim = Sim::new(&f);
    sim.run(|l| done(if l.text == "n4" { "please stop" } else { "go" }));
    assert_eq!(sim.labels(), ["work#1", "work#2", "work#3", "work#4"]);
}

#[test]
fn a_for_each_loop_runs_once_per_item_of_a_list_a_glob_or_an_output() {
    let f = one_agent(
        "      - {name: each, agent: a, task: \"do {{file}} ({{iteration}}/{{maxIterations}})\", loop: {over: \"tasks/*.md\", as: file}}\n",
    );
    let globs = BTreeMap::from([(
        "tasks/*.md".to_string(),
        vec!["tasks/a.md".to_string(), "tasks/b.md".to_string()],
    )]);
    let mut sim = Sim::with_setup(&f, BTreeMap::new(), globs, Default::default());
    let s = sim.run(echo);
    let texts: Vec<&str> = sim.launched.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["do tasks/a.md (1/2)", "do tasks/b.md (2/2)"]);
    assert_eq!(s.status, RunStatus::Completed);
    let f = one_agent(
        "      - {name: list, agent: a, task: t}\n      - {name: each, agent: a, dependsOn: [list], task: \"x {{item}}\", loop: {over: \"{{steps.list.output}}\"}}\n",
    );
    let mut sim = Sim::new(&f);
    sim.run(|l| {
        done(if l.job.label == "list" {
            "[\"p\", \"q\", \"r\"]"
        } else {
            &l.text
        })
    });
    assert_eq!(sim.labels(), ["list", "each#1", "each#2", "each#3"]);
}

#[test]
fn a_resumed_loop_keeps_the_iterations_done_and_runs_the_rest() {
    let f = one_agent(
        "      - {name: work, agent: a, task: \"n{{iteration}}\", loop: {max: 5}}\n      - {name: after, agent: a, dependsOn: [work], task: \"{{steps.work.outputs}}\"}\n",
    );
    let kept = |o: &str| Preset {
        status: StepStatus::Completed,
        output: o.into(),
        reason: None,
        attempts: 1,
        exit_code: Some(0),
        duration_ms: 1,
    };
    let presets = BTreeMap::from([
        ("work#1".to_string(), kept("n1")),
        ("work#2".to_string(), kept("n2")),
    ]);
    let mut sim = Sim::with_presets(&f, presets);
    let s = sim.run(echo);
    assert_eq!(sim.labels(), ["work#3", "work#4", "work#5", "after"]);
    assert_eq!(step(&s, "after").output, r#"["n1","n2","n3","n4","n5"]"#);
}

#[test]
fn output_var_names_a_step_output_for_later_steps() {
    let f = one_agent(
        "      - {name: plan, agent: a, task: t, outputVar: theplan}\n      - {name: do, agent: a, dependsOn: [plan], task: \"follow {{theplan}}\"}\n",
    );
    let mut sim = Sim::new(&f);
    let s = sim.run(|l| {
        done(if l.job.label == "plan" {
            "P  \n"
        } else {
            &l.text
        })
    });
    assert_eq!(step(&s, "do").output, "follow P");
}

fn approvals(sim: &Sim<'_>) -> Vec<String> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            EventKind::ApprovalRequested { step, .. } => Some(format!("asked {step}")),
            EventKind::ApprovalDecided {
                step,
                approved,
                by,
                reason,
            } => Some(format!(
                "{step} {} by {by}{}",
                if *approved { "approved" } else { "rejected" },
                reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn an_approval_gate_holds_the_step_until_a_person_approves() {
    let f = one_agent(
        "      - {name: build, agent: a, task: b}\n      - {name: deploy, agent: a, dependsOn: [build], task: d, approval: required}\n",
    );
    let mut sim = Sim::new(&f);
    sim.answer(done("ok"));
    assert!(sim.pending.is_empty(), "deploy waits");
    assert_eq!(approvals(&sim), ["asked deploy"]);
    assert_eq!(sim.state.awaiting_approval()[0].0, "deploy");
    assert!(sim.state.check_decision("build", "ann").is_err());
    assert!(sim.state.check_decision("deploy", "ann").is_ok());
    sim.input(Input::Decide {
        step: "deploy".into(),
        approved: true,
        by: "ann".into(),
        reason: Some("looks good".into()),
    });
    assert_eq!(sim.labels(), ["build", "deploy"]);
    let s = sim.run(echo);
    assert_eq!(s.status, RunStatus::Completed);
    assert_eq!(approvals(&sim)[1], "deploy approved by ann: looks good");
}

#[test]
fn a_rejected_step_fails_without_running_and_approvers_are_enforced() {
    let f = one_agent(
        "      - name: deploy\n        agent: a\n        task: d\n        approval: {approvers: [ann]}\n",
    );
    let mut sim = Sim::new(&f);
    let e = sim.state.check_decision("deploy", "bob").unwrap_err();
    assert!(e.contains("`ann`"), "{e}");
    sim.input(Input::Decide {
        step: "deploy".into(),
        approved: false,
        by: "ann".into(),
        reason: Some("not today".into()),
    });
    let s = sim.summary.clone().expect("finished");
    assert!(sim.launched.is_empty());
    assert_eq!(s.status, RunStatus::Failed);
    assert_eq!(
        step(&s, "deploy").reason.as_deref(),
        Some("rejected by ann: not today")
    );
}

#[test]
fn an_approval_times_out_as_configured() {
    for (on_timeout, approved) in [("reject", false), ("approve", true)] {
        let f = one_agent(&format!(
            "      - name: deploy\n        agent: a\n        task: d\n        approval: {{timeoutMs: 500, onTimeout: {on_timeout}}}\n"
        ));
        let mut sim = Sim::new(&f);
        let s = sim.run(echo);
        assert_eq!(!sim.launched.is_empty(), approved, "{on_timeout}");
        assert_eq!(s.status == RunStatus::Completed, approved, "{on_timeout}");
        assert!(
            approvals(&sim)[1].contains("by timeout"),
            "{:?}",
            approvals(&sim)
        );
    }
}

#[test]
fn an_approval_granted_before_a_restart_is_not_asked_again() {
    let f = one_agent("      - {name: deploy, agent: a, task: d, approval: required}\n");
    let approved = std::collections::BTreeSet::from(["deploy".to_string()]);
    let mut sim = Sim::with_setup(&f, BTreeMap::new(), BTreeMap::new(), approved);
    assert_eq!(sim.labels(), ["deploy"]);
    sim.run(echo);
    assert!(approvals(&sim).is_empty());
}

#[test]
fn cancel_ends_a_step_waiting_for_approval() {
    let f = one_agent("      - {name: deploy, agent: a, task: d, approval: required}\n");
    let mut sim = Sim::new(&f);
    sim.input(Input::Cancel {
        reason: "stop".into(),
    });
    let s = sim.summary.clone().expect("finished");
    assert_eq!(s.status, RunStatus::Cancelled);
}

#[test]
fn a_paused_run_starts_nothing_new_until_unpaused() {
    let f = one_agent(
        "      - {name: one, agent: a, task: t}\n      - {name: two, agent: a, dependsOn: [one], task: t}\n",
    );
    let mut sim = Sim::new(&f);
    sim.input(Input::Pause { by: "ann".into() });
    assert!(sim.state.is_paused());
    sim.answer(done("x"));
    assert!(sim.pending.is_empty(), "two waits while paused");
    assert!(sim.summary.is_none());
    sim.input(Input::Unpause { by: "ann".into() });
    assert_eq!(sim.labels(), ["one", "two"]);
    let s = sim.run(echo);
    assert_eq!(s.status, RunStatus::Completed);
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, EventKind::RunPaused { by } if by == "ann"))
    );
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, EventKind::RunUnpaused { .. }))
    );
}

// ---- checklists ---------------------------------------------------------------------

fn mark(sim: &mut Sim<'_>, item: &str, blocked: bool) {
    sim.input(Input::Mark {
        step: "build".into(),
        item: item.into(),
        mark: super::Mark {
            blocked,
            note: blocked.then(|| "no access".to_string()),
        },
        by: "a".into(),
    });
}

const CHECKLIST: &str = "      - name: build\n        agent: a\n        task: b\n        retries: 2\n        verification: {type: checklist, items: [{id: tests, title: Tests pass}, {id: docs}]}\n      - {name: after, agent: a, dependsOn: [build], task: x}\n";

#[test]
fn a_checklist_step_completes_only_when_every_item_is_marked_done() {
    let f = one_agent(CHECKLIST);
    let mut sim = Sim::new(&f);
    assert!(sim.launched[0].text.contains("- [ ] tests: Tests pass"));
    // Only the running step's own agent marks, and only items it has.
    assert!(sim.state.check_mark("build", "tests", Some("a")).is_ok());
    let e = sim
        .state
        .check_mark("build", "tests", Some("b"))
        .unwrap_err();
    assert!(e.contains("`a`'s"), "{e}");
    let e = sim.state.check_mark("build", "lint", None).unwrap_err();
    assert!(e.contains("its items are tests, docs"), "{e}");
    let e = sim.state.check_mark("after", "tests", None).unwrap_err();
    assert!(e.contains("these have: `build`"), "{e}");
    mark(&mut sim, "tests", false);
    sim.answer(done("did some"));
    // Not complete: the retry names what is still open.
    let retry = &sim.launched[1];
    assert_eq!(retry.job.label, "build");
    assert!(
        retry
            .text
            .contains("checklist items not marked done: `docs`"),
        "{}",
        retry.text
    );
    mark(&mut sim, "docs", false);
    sim.answer(done("all done"));
    let s = sim.run(echo);
    assert_eq!(s.status, RunStatus::Completed);
    assert_eq!(sim.labels(), ["build", "build", "after"]);
    let marked = sim
        .events
        .iter()
        .filter(|e| matches!(e, EventKind::ChecklistMarked { .. }))
        .count();
    assert_eq!(marked, 2);
}

#[test]
fn a_blocked_item_fails_the_step_for_good_and_the_run_needs_a_person() {
    let f = one_agent(CHECKLIST);
    let mut sim = Sim::new(&f);
    mark(&mut sim, "tests", false);
    mark(&mut sim, "docs", true);
    // Blocked also when the attempt itself failed.
    sim.answer(failed("exit 1"));
    let s = sim.run(echo);
    assert_eq!(s.status, RunStatus::NeedsHuman);
    assert_eq!(sim.labels(), ["build"], "neither retried nor followed");
    let b = step(&s, "build");
    assert!(
        b.reason
            .as_deref()
            .is_some_and(|r| r.contains("blocked: checklist item `docs`: no access")),
        "{:?}",
        b.reason
    );
}

#[test]
fn marks_from_an_earlier_coordinator_still_count() {
    let f = one_agent(CHECKLIST);
    let done_mark = super::Mark {
        blocked: false,
        note: None,
    };
    let marks: super::Marks = [(
        "build".to_string(),
        [
            ("tests".to_string(), done_mark.clone()),
            ("docs".to_string(), done_mark),
        ]
        .into(),
    )]
    .into();
    let mut sim = Sim::with_marks(
        &f,
        BTreeMap::new(),
        BTreeMap::new(),
        Default::default(),
        marks,
    );
    sim.answer(done("resumed"));
    assert_eq!(
        sim.labels(),
        ["build", "after"],
        "build completed on its earlier marks"
    );
}

/// `session: resume` launches with the agent's latest conversation, as the driver
/// reported it; `new` and other agents' steps launch with none.
#[test]
fn resumed_sessions_continue_the_agents_latest_conversation() {
    let f = fixture(
        "name: t\nagents:\n  - {name: a, cli: claude}\n  - {name: b, cli: codex}\nworkflows:\n  - name: w\n    steps:\n      - {name: one, agent: a, task: x}\n      - {name: two, agent: a, dependsOn: [one], session: resume, task: x}\n      - {name: other, agent: b, dependsOn: [two], session: resume, task: x}\n      - {name: fresh, agent: a, dependsOn: [other], task: x}\n",
    );
    let mut sim = Sim::new(&f);
    assert_eq!(sim.pending[0].session, None, "nothing to continue yet");
    sim.input(Input::Session {
        agent: "a".into(),
        session: "s-1".into(),
    });
    sim.answer(done("ok"));
    assert_eq!(sim.pending[0].job.label, "two");
    assert_eq!(sim.pending[0].session.as_deref(), Some("s-1"));
    sim.input(Input::Session {
        agent: "a".into(),
        session: "s-2".into(),
    });
    sim.answer(done("ok"));
    assert_eq!(sim.pending[0].job.label, "other");
    assert_eq!(sim.pending[0].session, None, "agent b has no conversation");
    sim.answer(done("ok"));
    assert_eq!(sim.pending[0].job.label, "fresh");
    assert_eq!(sim.pending[0].session, None, "`session: new` starts one");
    let s = sim.run(|_| done("ok"));
    assert_eq!(s.status, RunStatus::Completed);
}
