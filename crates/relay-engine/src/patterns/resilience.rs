//! Resilience patterns:
//! - escalation: a step runs on its agent first; when that fails (after its retries) the
//!   same task goes to the next tier (`escalateTo`, else the agents whose role names a
//!   higher `tier-N`, in order), and so on; an `escalated` event names each hand-over.
//! - circuit-breaker: steps on the primary agent fall back (`escalateTo`, else roles
//!   fallback or backup) when the primary fails; after two failures of the primary the
//!   breaker opens (`opened` event) and later steps go straight to the fallback without
//!   trying the primary. A success of the primary closes it again.
//! - saga: when the run fails, each completed step that declares `compensate` is undone,
//!   in reverse order of completion (a task for its agent, or a shell command for a
//!   deterministic step); the run still ends failed, with the compensations recorded.

use std::sync::{Arc, Mutex};

use relay_spec::Pattern;
use relay_spec::pattern::{agent_has, tier_of};

use super::Builder;
use super::verdict::describe_result;
use crate::events::EventKind;
use crate::plan::{Gate, GateCtx, Node, NodeId, NodeRef, Resolution, RunSpec, StepIdx};

/// Failures of the primary that open the breaker.
pub(crate) const BREAKER_THRESHOLD: u32 = 2;

pub(super) fn step_nodes(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    if b.wf.steps[i].kind() != relay_spec::StepType::Agent {
        return b.plain(i, deps);
    }
    match b.pattern {
        Pattern::Escalation => escalation(b, i, deps),
        Pattern::CircuitBreaker => breaker(b, i, deps),
        _ => b.plain(i, deps),
    }
}

fn fallbacks(b: &Builder<'_>, i: usize, keywords: &[&str]) -> Vec<String> {
    let listed = &b.wf.steps[i].escalate_to;
    if !listed.is_empty() {
        return listed.clone();
    }
    let own = b.wf.steps[i].agent.clone().unwrap_or_default();
    b.file
        .agents
        .iter()
        .filter(|a| a.name != own && agent_has(a, keywords))
        .map(|a| a.name.clone())
        .collect()
}

fn escalation(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    let name = b.wf.steps[i].name.clone();
    let own_tier = b.agent_of(i).and_then(tier_of).unwrap_or(0);
    let chain: Vec<String> = if b.wf.steps[i].escalate_to.is_empty() {
        let mut tiers: Vec<(u32, String)> = b
            .file
            .agents
            .iter()
            .filter_map(|a| {
                tier_of(a)
                    .filter(|t| *t > own_tier)
                    .map(|t| (t, a.name.clone()))
            })
            .collect();
        tiers.sort();
        tiers.into_iter().map(|(_, n)| n).collect()
    } else {
        b.wf.steps[i].escalate_to.clone()
    };
    let first = b.soft_attempt(i, deps);
    let agent = b.wf.steps[i].agent.clone().unwrap_or_default();
    b.add(Node::gate(
        name,
        StepIdx(i),
        vec![first.into()],
        Box::new(Escalate {
            step: StepIdx(i),
            current: (agent, first),
            rest: chain,
        }),
    ))
}

struct Escalate {
    step: StepIdx,
    current: (String, NodeId),
    rest: Vec<String>,
}

impl Gate for Escalate {
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        let label = ctx.my_label();
        if ctx.result(self.current.1).is_some_and(|r| r.completed()) {
            return Resolution::Complete {
                output: ctx.output(self.current.1).to_string(),
                events: Vec::new(),
            };
        }
        let why = describe_result(ctx, self.current.1);
        let why = why.lines().next().unwrap_or("").to_string();
        if self.rest.is_empty() {
            return Resolution::Fail {
                reason: format!("failed at the last tier ({}): {why}", self.current.0),
                events: Vec::new(),
            };
        }
        let next = self.rest.remove(0);
        let node = Node::run_with(
            format!("{label}@{next}"),
            self.step,
            Vec::new(),
            RunSpec {
                agent: Some(next.clone()),
                soft: true,
                ..RunSpec::default()
            },
            true,
        );
        let from = std::mem::replace(&mut self.current.0, next.clone());
        Resolution::Expand {
            nodes: vec![node],
            wait_for: vec![NodeRef::New(0)],
            events: vec![EventKind::Pattern {
                step: label,
                action: "escalated".into(),
                detail: format!("{from} -> {next} after: {why}"),
            }],
        }
    }

    fn placed(&mut self, ids: &[NodeId]) {
        if let Some(id) = ids.first() {
            self.current.1 = *id;
        }
    }
}

/// The circuit breaker shared by every step of a run.
#[derive(Debug, Default)]
pub struct BreakerState {
    failures: u32,
    open: bool,
}

impl BreakerState {
    /// Whether steps skip the primary now.
    pub fn is_open(&self) -> bool {
        self.open
    }
}

fn breaker(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    let name = b.wf.steps[i].name.clone();
    let fallback = fallbacks(b, i, &["fallback", "backup"]);
    let is_fallback = b
        .agent_of(i)
        .is_some_and(|a| agent_has(a, &["fallback", "backup"]));
    let (false, Some(first)) = (is_fallback, fallback.first().cloned()) else {
        return b.plain(i, deps);
    };
    // One breaker per run; the agent is picked when the step gets a slot, so a breaker
    // opened by an earlier step's failure sends this one straight to the fallback.
    let shared = b.breaker.clone();
    let primary = b.wf.steps[i].agent.clone().unwrap_or_default();
    let run = b.add(Node::run_with(
        format!("{name}#1"),
        StepIdx(i),
        deps,
        RunSpec {
            soft: true,
            breaker: Some(first),
            ..RunSpec::default()
        },
        true,
    ));
    b.add(Node::gate(
        name,
        StepIdx(i),
        vec![run.into()],
        Box::new(Breaker {
            step: StepIdx(i),
            primary,
            fallback,
            state: shared,
            last: run,
            tried: Vec::new(),
        }),
    ))
}

struct Breaker {
    step: StepIdx,
    primary: String,
    fallback: Vec<String>,
    state: Arc<Mutex<BreakerState>>,
    last: NodeId,
    tried: Vec<String>,
}

impl Gate for Breaker {
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution {
        let label = ctx.my_label();
        let mut events = Vec::new();
        let ran_by = ctx
            .result(self.last)
            .and_then(|r| r.agent.clone())
            .unwrap_or_default();
        let ok = ctx.result(self.last).is_some_and(|r| r.completed());
        self.tried.push(ran_by.clone());
        if ran_by == self.primary {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if ok {
                st.failures = 0;
                st.open = false;
            } else {
                st.failures += 1;
                if !st.open && st.failures >= BREAKER_THRESHOLD {
                    st.open = true;
                    events.push(EventKind::Pattern {
                        step: label.clone(),
                        action: "opened".into(),
                        detail: format!(
                            "{} failed {} times; later steps go to the fallback",
                            self.primary, st.failures
                        ),
                    });
                }
            }
        }
        if ok {
            return Resolution::Complete {
                output: ctx.output(self.last).to_string(),
                events,
            };
        }
        let Some(next) = self
            .fallback
            .iter()
            .find(|f| !self.tried.contains(f))
            .cloned()
        else {
            return Resolution::Fail {
                reason: format!(
                    "the primary and every fallback failed (tried {})",
                    self.tried.join(", ")
                ),
                events,
            };
        };
        events.push(EventKind::Pattern {
            step: label.clone(),
            action: "fallback".into(),
            detail: format!("{ran_by} failed: {next} takes over"),
        });
        let node = Node::run_with(
            format!("{label}@{next}"),
            self.step,
            Vec::new(),
            RunSpec {
                agent: Some(next),
                soft: true,
                ..RunSpec::default()
            },
            true,
        );
        Resolution::Expand {
            nodes: vec![node],
            wait_for: vec![NodeRef::New(0)],
            events,
        }
    }

    fn placed(&mut self, ids: &[NodeId]) {
        if let Some(id) = ids.first() {
            self.last = *id;
        }
    }
}

/// The compensation nodes of a failed saga: for the completed steps (in completion
/// order) that declare `compensate`, newest first, each after the previous one.
pub(super) fn saga_compensations(
    wf: &relay_spec::WorkflowDef,
    completed_in_order: &[StepIdx],
) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for &s in completed_in_order.iter().rev() {
        let Some(undo) = wf.steps.get(s.get()).and_then(|x| x.compensate.clone()) else {
            continue;
        };
        let deps = match nodes.len() {
            0 => Vec::new(),
            k => vec![NodeRef::New(k - 1)],
        };
        nodes.push(Node::run_with(
            format!("{}:compensate", wf.steps[s.get()].name),
            s,
            deps,
            RunSpec {
                task: Some(undo),
                unverified: true,
                ..RunSpec::default()
            },
            false,
        ));
    }
    nodes
}
