//! Generated valid workflows under every pattern: the plan is well formed and the run
//! state, answered with random outcomes by a simulated launcher, always ends (no panic,
//! no hang), never runs more than the concurrency limit, never launches a node twice at
//! once, and gives every step a final status.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use relay_engine::StepOutcome;
use relay_engine::run::state::{Effect, Input, RunSetup, RunState};

const PATTERNS: [&str; 24] = [
    "dag",
    "fan-out",
    "pipeline",
    "hub-spoke",
    "consensus",
    "mesh",
    "handoff",
    "cascade",
    "debate",
    "hierarchical",
    "map-reduce",
    "scatter-gather",
    "supervisor",
    "reflection",
    "verifier",
    "red-team",
    "auction",
    "escalation",
    "saga",
    "circuit-breaker",
    "blackboard",
    "swarm",
    "competitive",
    "review-loop",
];

const ROLES: [&str; 16] = [
    "developer",
    "critic",
    "reviewer",
    "attacker",
    "auctioneer",
    "supervisor",
    "verifier",
    "tier-1",
    "tier-2",
    "fallback",
    "swarm-agent",
    "hub",
    "lead",
    "reducer",
    "mapper",
    "coordinator",
];

#[derive(Debug, Clone)]
struct Gen {
    pattern: usize,
    limit: Option<u8>,
    agents: Vec<usize>,
    steps: Vec<GenStep>,
    barrier: Option<(Vec<usize>, bool)>,
}

#[derive(Debug, Clone)]
struct GenStep {
    agent: usize,
    deps: Vec<usize>,
    deterministic: bool,
    items: bool,
    max_iterations: Option<u8>,
    rounds: Option<u8>,
    compensate: bool,
    retries: u8,
    participants: Vec<usize>,
}

fn workflows() -> impl Strategy<Value = Gen> {
    (
        0..PATTERNS.len(),
        proptest::option::of(1u8..4),
        proptest::collection::vec(0..ROLES.len(), 1..5),
        1usize..9,
    )
        .prop_flat_map(|(pattern, limit, agents, n)| {
            let na = agents.len();
            let step = (
                0..na,
                proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
                any::<bool>(),
                any::<bool>(),
                proptest::option::of(1u8..4),
                proptest::option::of(1u8..3),
                any::<bool>(),
                0u8..2,
                proptest::collection::vec(0..na, 0..3),
            );
            (
                Just(pattern),
                Just(limit),
                Just(agents),
                proptest::collection::vec(step, n),
                proptest::option::of((
                    proptest::collection::vec(any::<prop::sample::Index>(), 1..3),
                    any::<bool>(),
                )),
            )
        })
        .prop_map(|(pattern, limit, agents, raw, barrier)| {
            let n = raw.len();
            let steps = raw
                .into_iter()
                .enumerate()
                .map(
                    |(i, (agent, picks, det, items, mi, rounds, comp, retries, parts))| {
                        let mut deps: Vec<usize> = if i == 0 {
                            vec![]
                        } else {
                            picks.iter().map(|p| p.index(i)).collect()
                        };
                        deps.sort_unstable();
                        deps.dedup();
                        GenStep {
                            agent,
                            deps,
                            deterministic: det && i % 3 == 2,
                            items,
                            max_iterations: mi,
                            rounds,
                            compensate: comp,
                            retries,
                            participants: parts,
                        }
                    },
                )
                .collect();
            let barrier = barrier.map(|(picks, last)| {
                let mut w: Vec<usize> = picks.iter().map(|p| p.index(n)).collect();
                w.sort_unstable();
                w.dedup();
                (w, last)
            });
            Gen {
                pattern,
                limit,
                agents,
                steps,
                barrier,
            }
        })
}

fn yaml(g: &Gen) -> String {
    let pattern = PATTERNS[g.pattern];
    let mut y = format!("name: gen\nswarm:\n  pattern: {pattern}\n");
    if let Some(l) = g.limit {
        y.push_str(&format!("  maxConcurrency: {l}\n"));
    }
    let n = g.steps.len();
    // A barrier waits for some steps and the last step depends on it, when it is not
    // one of them.
    let barrier = g
        .barrier
        .as_ref()
        .filter(|(w, _)| !w.contains(&(n - 1)) && n > 1);
    if let Some((wait, _)) = barrier {
        let names: Vec<String> = wait.iter().map(|i| format!("s{i}")).collect();
        y.push_str(&format!(
            "coordination:\n  barriers:\n    - {{name: gate, waitFor: [{}], timeoutMs: 5000}}\n",
            names.join(", ")
        ));
    }
    y.push_str("agents:\n");
    for (k, r) in g.agents.iter().enumerate() {
        y.push_str(&format!(
            "  - {{name: a{k}, cli: claude, role: \"{}\", interactive: false}}\n",
            ROLES[*r]
        ));
    }
    y.push_str("workflows:\n  - name: w\n    steps:\n");
    let items_ok = matches!(pattern, "map-reduce" | "scatter-gather");
    for (i, s) in g.steps.iter().enumerate() {
        let mut deps: Vec<String> = s.deps.iter().map(|d| format!("s{d}")).collect();
        if i == n - 1 && barrier.is_some() {
            deps.push("gate".into());
        }
        y.push_str(&format!("      - name: s{i}\n"));
        if s.deterministic {
            y.push_str("        type: deterministic\n        command: echo hi\n");
        } else {
            y.push_str(&format!(
                "        agent: a{}\n        task: do s{i}\n",
                s.agent
            ));
        }
        if !deps.is_empty() {
            y.push_str(&format!("        dependsOn: [{}]\n", deps.join(", ")));
        }
        if s.items && items_ok && !s.deterministic {
            y.push_str("        items: [x, y]\n");
        }
        if let Some(m) = s.max_iterations {
            y.push_str(&format!("        maxIterations: {m}\n"));
        }
        if let Some(r) = s.rounds {
            y.push_str(&format!("        rounds: {r}\n"));
        }
        if s.compensate {
            y.push_str("        compensate: undo it\n");
        }
        if s.retries > 0 {
            y.push_str(&format!("        retries: {}\n", s.retries));
        }
        let parts: BTreeSet<usize> = s.participants.iter().copied().collect();
        if !parts.is_empty() && !s.deterministic {
            let names: Vec<String> = parts.iter().map(|p| format!("a{p}")).collect();
            y.push_str(&format!("        participants: [{}]\n", names.join(", ")));
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn every_generated_workflow_runs_to_an_end(g in workflows(), seed in any::<u64>()) {
        let text = yaml(&g);
        let loaded = relay_spec::parse(&text, "gen.yaml").unwrap();
        let report = relay_spec::validate(&loaded, None);
        prop_assume!(!report.has_errors());
        let file = &loaded.file;
        let wf = &file.workflows[0];
        let (plan, hooks) = relay_engine::patterns::build(file, wf);
        // Well formed: every dependency names a node before or at the end of the plan.
        for node in &plan.nodes {
            for d in &node.deps {
                if let relay_engine::plan::NodeRef::Id(id) = d {
                    prop_assert!(id.index() < plan.nodes.len(), "{} waits for no node\n{text}", node.label);
                }
            }
        }
        prop_assert_eq!(plan.final_node.len(), wf.steps.len());
        let vars = BTreeMap::new();
        let mut now = Instant::now();
        let mut state = RunState::new(
            RunSetup {
                file,
                wf,
                vars: &vars,
                workdir: PathBuf::from("/w"),
                paths: BTreeMap::new(),
                run_dir: PathBuf::from("/w/r"),
                run_id: "r".into(),
                presets: BTreeMap::new(),
                approved: Default::default(),
                marks: Default::default(),
                sessions: BTreeMap::new(),
                globs: BTreeMap::new(),
            },
            plan,
            hooks,
            now,
        );
        let limit = g.limit.map(usize::from);
        let mut pending: Vec<relay_engine::job::Launch> = Vec::new();
        let mut summary = None;
        let mut rng = seed;
        let mut effects = state.handle(Input::Start, now);
        for _ in 0..5_000 {
            for e in effects.drain(..) {
                match e {
                    Effect::Launch(l) => {
                        prop_assert!(
                            !pending.iter().any(|p| p.job.node == l.job.node),
                            "node {} launched twice at once", l.job.label
                        );
                        pending.push(l);
                    }
                    Effect::Finish(s) => summary = Some(s),
                    _ => {}
                }
            }
            if let Some(l) = limit {
                prop_assert!(pending.len() <= l, "{} running over the limit {l}\n{text}", pending.len());
            }
            if summary.is_some() {
                break;
            }
            if pending.is_empty() {
                let Some(at) = state.next_deadline() else {
                    prop_assert!(false, "stuck with nothing to do\n{text}");
                    unreachable!()
                };
                now = now.max(at);
                effects = state.handle(Input::Tick, now);
                continue;
            }
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let pick = (rng >> 33) as usize % pending.len();
            let l = pending.remove(pick);
            let outcome = match (rng >> 20) % 5 {
                0 => StepOutcome::Failed {
                    output: "VOTE: no".into(),
                    reason: "exit code 1".into(),
                    exit_code: Some(1),
                    retryable: true,
                },
                1 => StepOutcome::Completed { output: "VERDICT: fail\nVOTE: yes\nBID: 3".into(), exit_code: Some(0) },
                _ => StepOutcome::Completed { output: "VERDICT: pass\nVOTE: yes\nBID: 2".into(), exit_code: Some(0) },
            };
            now += Duration::from_millis(1 + (rng >> 40) % 50);
            effects = state.handle(Input::AttemptDone { node: l.job.node, attempt: l.attempt, outcome }, now);
        }
        let s = summary.expect("the run ended");
        prop_assert_eq!(s.steps.len(), wf.steps.len());
    }
}
