//! Collaborative patterns:
//! - blackboard: every agent step receives the run's shared board (what agents wrote with
//!   `agent-relay board set`, kept in the run directory as `board.json`) appended to its
//!   task when it starts, so later steps build on what earlier ones posted.
//! - swarm: steps given to swarm agents (role swarm-agent or hive-mind) form one queue
//!   that those agents pull from: a step runs on whichever swarm agent is free, at most one
//!   step per agent at a time.

use relay_spec::Pattern;
use relay_spec::pattern::agent_has;

use super::Builder;
use crate::plan::{Node, NodeId, NodeRef, RunSpec, StepIdx};

/// The roles of swarm agents.
pub(crate) const SWARM_ROLES: [&str; 2] = ["swarm-agent", "hive-mind"];

pub(super) fn step_nodes(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    let is_agent_step = b.wf.steps[i].kind() == relay_spec::StepType::Agent;
    let spec = match b.pattern {
        Pattern::Blackboard if is_agent_step => RunSpec {
            board: true,
            ..RunSpec::default()
        },
        Pattern::Swarm if b.agent_of(i).is_some_and(|a| agent_has(a, &SWARM_ROLES)) => RunSpec {
            pooled: true,
            ..RunSpec::default()
        },
        _ => return b.plain(i, deps),
    };
    let label = b.wf.steps[i].name.clone();
    b.add(Node::run_with(label, StepIdx(i), deps, spec, true))
}

/// The swarm pool: agents with a swarm role.
pub(super) fn pool(file: &relay_spec::RelayFile) -> Vec<String> {
    file.agents
        .iter()
        .filter(|a| agent_has(a, &SWARM_ROLES))
        .map(|a| a.name.clone())
        .collect()
}
