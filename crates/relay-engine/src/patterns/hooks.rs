//! What a pattern needs from the run beyond its plan, asked for by the run state at the
//! moments they matter, so the state never names a pattern: the agent a node runs on
//! when it starts (swarm pool, circuit breaker), the concurrency cap the pool implies,
//! the nodes that undo a failed run (saga), the deadlines of barriers, and who may
//! message whom.

use std::sync::{Arc, Mutex, PoisonError};

use relay_messaging::Topology;
use relay_spec::WorkflowDef;

use super::resilience::{BreakerState, saga_compensations};
use crate::events::EventKind;
use crate::plan::{Node, NodeId, RunSpec, StepIdx};

/// The hooks of one run's pattern.
#[derive(Debug, Default)]
pub struct PatternHooks {
    /// Swarm: the agents `pooled` nodes run on, whichever is free.
    pub pool: Vec<String>,
    /// Circuit breaker: the state every `breaker` node consults when it starts.
    pub breaker: Option<Arc<Mutex<BreakerState>>>,
    /// Saga: completed steps are undone once when the run fails.
    pub compensate: bool,
    /// Barrier nodes that fail after this many milliseconds from the run's start.
    pub deadlines: Vec<(NodeId, u64)>,
    /// Who may message whom.
    pub topology: Topology,
    compensated: bool,
}

/// The agent a node runs on, and the decision to record when it is not the usual one.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentPick {
    /// The agent (`None`: the step has none).
    pub agent: Option<String>,
    /// What to record about the choice (a breaker's fallback).
    pub event: Option<EventKind>,
}

impl PatternHooks {
    /// Most nodes running at once that the pattern allows (a swarm runs one step per pool
    /// agent at a time).
    pub fn concurrency_cap(&self) -> Option<usize> {
        (!self.pool.is_empty()).then_some(self.pool.len())
    }

    /// The agent node `label` (with `spec`, of a step run by `step_agent`) runs on when it
    /// starts now, given which agents are `busy`.
    pub fn pick_agent(
        &self,
        label: &str,
        spec: &RunSpec,
        step_agent: Option<&str>,
        busy: impl Fn(&str) -> bool,
    ) -> AgentPick {
        if spec.pooled && !self.pool.is_empty() {
            let free = self.pool.iter().find(|a| !busy(a)).or(self.pool.first());
            return AgentPick {
                agent: free.cloned().or_else(|| step_agent.map(str::to_owned)),
                event: None,
            };
        }
        if let (Some(fallback), Some(state)) = (&spec.breaker, &self.breaker)
            && state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_open()
        {
            return AgentPick {
                agent: Some(fallback.clone()),
                event: Some(EventKind::Pattern {
                    step: label.to_owned(),
                    action: "fallback".into(),
                    detail: format!("breaker open: {fallback} instead of the primary"),
                }),
            };
        }
        AgentPick {
            agent: spec.agent.clone().or_else(|| step_agent.map(str::to_owned)),
            event: None,
        }
    }

    /// Nodes to run because step `failed` failed the run, given the steps completed so
    /// far in order, and the decision to record; at most once per run.
    pub fn on_run_failed(
        &mut self,
        wf: &WorkflowDef,
        completed: &[StepIdx],
        failed: &str,
    ) -> Option<(Vec<Node>, EventKind)> {
        if !self.compensate || self.compensated {
            return None;
        }
        self.compensated = true;
        let nodes = saga_compensations(wf, completed);
        if nodes.is_empty() {
            return None;
        }
        let order: Vec<&str> = nodes.iter().map(|n| n.label.as_str()).collect();
        let event = EventKind::Pattern {
            step: failed.to_owned(),
            action: "compensating".into(),
            detail: format!("undoing in order: {}", order.join(", ")),
        };
        Some((nodes, event))
    }
}
