//! Swarm patterns: how a workflow's steps become the plan the run state drives. Each
//! family of patterns lives in its own module and decides the nodes a step becomes (plain
//! run, or gates that loop, fan out, pick a winner, vote, escalate) and the data each node
//! receives (outputs of other steps appended to its task). What a pattern needs from the
//! run beyond its plan (an agent chosen when a node starts, compensations after a
//! failure, barrier deadlines, who may message whom) is in its [`PatternHooks`], so the
//! run loop never names a pattern. Dependencies a pattern implies between steps come from
//! `relay_spec::pattern::implicit_deps`, which validation uses too. A step that came from
//! a sub-workflow with a pattern of its own (`Step::run_as`) is planned under that
//! pattern; the nested steps of a group are placed by their group's gate (`control`).
//!
//! | family | module | patterns |
//! |---|---|---|
//! | core | `core` | dag, fan-out, pipeline, hub-spoke, mesh, handoff, cascade, hierarchical |
//! | data processing | `data` | map-reduce, scatter-gather |
//! | supervision & quality | `quality` | supervisor, reflection, review-loop, verifier |
//! | adversarial & validation | `adversarial` | red-team, auction, consensus, debate, competitive |
//! | resilience | `resilience` | escalation, circuit-breaker, saga |
//! | collaborative | `collaborative` | blackboard, swarm |

mod adversarial;
mod collaborative;
mod control;
mod core;
mod data;
mod hooks;
mod quality;
mod resilience;
pub(crate) mod verdict;

pub(crate) use verdict::result_text;

use std::collections::BTreeMap;

use relay_messaging::Topology;
use relay_spec::graph::{StepGraph, plan_order};
use relay_spec::pattern::{choose, hubs, managers};
use relay_spec::{Pattern, RelayFile, WorkflowDef};

pub use hooks::{AgentPick, PatternHooks};
pub use relay_spec::pattern::Choice;
pub use resilience::BreakerState;

use crate::plan::{Node, NodeId, NodeRef, Plan, RunSpec, StepIdx};

/// Builds the plan while the nodes of each step are added in dependency order.
pub(crate) struct Builder<'a> {
    pub file: &'a RelayFile,
    pub wf: &'a WorkflowDef,
    pub pattern: Pattern,
    pub nodes: Vec<Node>,
    pub final_node: Vec<Option<NodeId>>,
    /// For each step, the steps it depends on (explicit and implied).
    pub step_deps: Vec<Vec<usize>>,
    /// The circuit breaker every step of the run shares.
    pub breaker: std::sync::Arc<std::sync::Mutex<resilience::BreakerState>>,
}

impl Builder<'_> {
    /// Appends `node`, returning its id.
    pub fn add(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        NodeId::new(self.nodes.len() - 1)
    }

    /// The step's name.
    pub fn name(&self, i: usize) -> String {
        self.wf.steps[i].name.clone()
    }

    /// The node step `d` is done with (already placed: steps go in dependency order).
    pub fn final_of(&self, d: usize) -> NodeRef {
        NodeRef::Id(self.final_id(d))
    }

    /// The id of the node step `d` is done with. `None` cannot happen for a validated
    /// workflow; a reference to no node waits for ever, and the run reports the node as
    /// never reached.
    pub fn final_id(&self, d: usize) -> NodeId {
        self.final_node[d].unwrap_or(NodeId::new(usize::MAX))
    }

    /// The plain node of step `i`: its step, as written.
    pub fn plain(&mut self, i: usize, deps: Vec<NodeRef>) -> NodeId {
        let label = self.name(i);
        self.add(Node::run(label, StepIdx(i), deps))
    }

    /// The plain node of step `i`, receiving the outputs of the steps it depends on.
    pub fn with_inputs(&mut self, i: usize, deps: Vec<NodeRef>, heading: &str) -> NodeId {
        let from = self.step_deps[i].clone();
        self.receiving(i, deps, heading, &from)
    }

    /// The node of step `i`, receiving the outputs of steps `from` under `heading`.
    pub fn receiving(
        &mut self,
        i: usize,
        deps: Vec<NodeRef>,
        heading: &str,
        from: &[usize],
    ) -> NodeId {
        let inputs: Vec<(String, NodeRef)> = from
            .iter()
            .map(|&d| {
                (
                    format!("{heading} `{}`", self.wf.steps[d].name),
                    self.final_of(d),
                )
            })
            .collect();
        let label = self.name(i);
        self.add(Node::run_with(
            label,
            StepIdx(i),
            deps,
            RunSpec {
                inputs,
                ..RunSpec::default()
            },
            true,
        ))
    }

    /// The first attempt of step `i` as a node whose failure a gate judges (`STEP#1`).
    pub fn soft_attempt(&mut self, i: usize, deps: Vec<NodeRef>) -> NodeId {
        let label = format!("{}#1", self.wf.steps[i].name);
        self.add(Node::run_with(
            label,
            StepIdx(i),
            deps,
            RunSpec {
                soft: true,
                ..RunSpec::default()
            },
            true,
        ))
    }

    /// The agent of step `i`.
    pub fn agent_of(&self, i: usize) -> Option<&relay_spec::Agent> {
        let name = self.wf.steps[i].agent.as_deref()?;
        self.file.agents.iter().find(|a| a.name == name)
    }
}

/// Turns `wf` into the plan of its pattern and the hooks the run consults.
pub fn build(file: &RelayFile, wf: &WorkflowDef) -> (Plan, PatternHooks) {
    let choice = choose(file, wf);
    let n = wf.steps.len();
    let graph = StepGraph::new(file, wf, choice.pattern);
    let step_deps: Vec<Vec<usize>> = (0..n)
        .map(|i| graph.deps(StepIdx(i)).iter().map(|d| d.get()).collect())
        .collect();
    let mut b = Builder {
        file,
        wf,
        pattern: choice.pattern,
        nodes: Vec::new(),
        final_node: vec![None; n],
        step_deps,
        breaker: Default::default(),
    };
    // What each step waits for, barriers expanded; steps after a reviewed producer
    // then wait for its approved version too.
    let mut waits: Vec<Vec<StepIdx>> = (0..n)
        .map(|i| graph.waits_for(StepIdx(i)).to_vec())
        .collect();
    quality::link_reviews(&mut b, &mut waits);
    let barriers = file
        .coordination
        .as_ref()
        .map(|c| c.barriers.as_slice())
        .unwrap_or_default();
    let mut hooks = PatternHooks::default();
    let mut barrier_node: BTreeMap<usize, NodeId> = BTreeMap::new();
    let step_deps = b.step_deps.clone();
    for StepIdx(i) in plan_order(&waits) {
        // A group's members are placed by the group, iteration by iteration.
        if wf.steps[i].group.is_some() {
            continue;
        }
        let mut deps: Vec<NodeRef> = step_deps[i].iter().map(|&d| b.final_of(d)).collect();
        for &bar in graph.barrier_deps(StepIdx(i)) {
            let node = match barrier_node.get(&bar.get()) {
                Some(&x) => x,
                None => {
                    let waits: Vec<NodeRef> = graph
                        .barrier_waits(bar)
                        .iter()
                        .map(|s| b.final_of(s.get()))
                        .collect();
                    let Some(def) = barriers.get(bar.get()) else {
                        continue;
                    };
                    let x = b.add(Node::gate(
                        format!("barrier:{}", def.name),
                        StepIdx(i),
                        waits,
                        Box::new(verdict::Barrier),
                    ));
                    b.nodes[x.index()].publishes = false;
                    if let Some(ms) = def.timeout_ms {
                        hooks.deadlines.push((x, ms));
                    }
                    barrier_node.insert(bar.get(), x);
                    x
                }
            };
            deps.push(NodeRef::Id(node));
        }
        // A sub-workflow's step runs under that workflow's own pattern, if it has one.
        b.pattern = wf.steps[i].run_as.unwrap_or(choice.pattern);
        let last = match b.pattern {
            _ if relay_spec::validate::is_controlled(&wf.steps[i]) => {
                control::step_nodes(&mut b, i, deps)
            }
            Pattern::Dag | Pattern::Mesh => b.plain(i, deps),
            Pattern::FanOut
            | Pattern::Pipeline
            | Pattern::HubSpoke
            | Pattern::Handoff
            | Pattern::Cascade
            | Pattern::Hierarchical => core::step_nodes(&mut b, i, deps),
            Pattern::MapReduce | Pattern::ScatterGather => data::step_nodes(&mut b, i, deps),
            Pattern::Supervisor | Pattern::Reflection | Pattern::ReviewLoop | Pattern::Verifier => {
                quality::step_nodes(&mut b, i, deps)
            }
            Pattern::RedTeam
            | Pattern::Auction
            | Pattern::Consensus
            | Pattern::Debate
            | Pattern::Competitive => adversarial::step_nodes(&mut b, i, deps),
            Pattern::Escalation | Pattern::CircuitBreaker | Pattern::Saga => {
                resilience::step_nodes(&mut b, i, deps)
            }
            Pattern::Blackboard | Pattern::Swarm => collaborative::step_nodes(&mut b, i, deps),
        };
        b.final_node[i] = Some(last);
    }
    // A member is done when its group is.
    for (i, step) in wf.steps.iter().enumerate() {
        if let Some(g) = step.group.as_deref()
            && let Some(gi) = wf.steps.iter().position(|s| s.name == g)
        {
            b.final_node[i] = b.final_node[gi];
        }
    }
    hooks.topology = match choice.pattern {
        Pattern::HubSpoke => Topology::Hub(hubs(file)),
        Pattern::Hierarchical => Topology::Tree(managers(file).into_iter().collect()),
        Pattern::Handoff => {
            let mut order: Vec<String> = Vec::new();
            for s in &wf.steps {
                if let Some(a) = &s.agent
                    && order.last() != Some(a)
                {
                    order.push(a.clone());
                }
            }
            Topology::Chain(order)
        }
        _ => Topology::All,
    };
    if choice.pattern == Pattern::Swarm {
        hooks.pool = collaborative::pool(file);
    }
    if choice.pattern == Pattern::CircuitBreaker {
        hooks.breaker = Some(b.breaker.clone());
    }
    hooks.compensate = choice.pattern == Pattern::Saga;
    let final_node = b
        .final_node
        .iter()
        .map(|f| f.unwrap_or(NodeId::new(usize::MAX)))
        .collect();
    (
        Plan {
            nodes: b.nodes,
            final_node,
            pattern: choice,
        },
        hooks,
    )
}
