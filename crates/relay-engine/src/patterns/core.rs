//! Core patterns. What each changes beyond `dag` (explicit `dependsOn` only):
//! - fan-out: steps without dependencies start together; a step that joins two or more
//!   steps receives all their outputs appended to its task.
//! - pipeline: a step without `dependsOn` follows the step declared before it and
//!   receives that step's output as its input.
//! - handoff: chained like pipeline; each step receives the notes of every step before it
//!   in the chain; an agent may message only its neighbours in the chain.
//! - cascade: steps are grouped into phases (`phase:`, carried forward; without any, each
//!   step is its own phase); a phase starts when every step of the phase before completed,
//!   and receives their outputs.
//! - hub-spoke: a hub step (role hub, coordinator or lead) without `dependsOn` waits for
//!   the spoke steps declared before it and receives their reports; spokes may message
//!   only the hub.
//! - hierarchical: a manager's step without `dependsOn` waits for the steps of its direct
//!   reports (`reportsTo`, else the lead) declared before it and receives their reports;
//!   an agent may message only its manager and its direct reports.
//! - mesh (in `mod.rs`): plain steps; every agent may message every other.

use relay_spec::Pattern;

use super::Builder;
use crate::plan::{NodeId, NodeRef};

pub(super) fn step_nodes(b: &mut Builder<'_>, i: usize, deps: Vec<NodeRef>) -> NodeId {
    let step_deps = b.step_deps[i].clone();
    match b.pattern {
        Pattern::FanOut if step_deps.len() >= 2 => b.with_inputs(i, deps, "Result of"),
        Pattern::Pipeline | Pattern::Cascade if !step_deps.is_empty() => {
            b.with_inputs(i, deps, "Input from")
        }
        Pattern::HubSpoke | Pattern::Hierarchical if !step_deps.is_empty() => {
            b.with_inputs(i, deps, "Report from")
        }
        Pattern::Handoff if !step_deps.is_empty() => {
            // The whole trail so far, oldest first.
            let mut trail: Vec<usize> = Vec::new();
            let mut frontier = step_deps.clone();
            while let Some(d) = frontier.pop() {
                if !trail.contains(&d) {
                    trail.push(d);
                    frontier.extend(b.step_deps[d].iter().copied());
                }
            }
            trail.sort_unstable();
            b.receiving(i, deps, "Handoff notes from", &trail)
        }
        _ => b.plain(i, deps),
    }
}
