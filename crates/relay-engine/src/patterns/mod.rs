//! Swarm patterns: how a workflow's steps become the plan the run state drives. Each
//! family of patterns lives in its own module and decides the nodes a step becomes (plain
//! run, or gates that loop, fan out, pick a winner, vote, escalate) and the data each node
//! receives (outputs of other steps appended to its task). What a pattern needs from the
//! run beyond its plan (an agent chosen when a node starts, compensations after a
//! failure, barrier deadlines, who may message whom) is in its [`PatternHooks`], so the
//! run loop never names a pattern. Dependencies a pattern implies between steps come from
//! `relay_spec::pattern::implicit_deps`, which validation uses too.
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
mod core;
mod data;
mod hooks;
mod quality;
mod resilience;
pub(crate) mod verdict;

pub(crate) use verdict::result_text;

use std::collections::BTreeMap;

use relay_messaging::Topology;
use relay_spec::pattern::{choose, hubs, implicit_deps, managers};
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
        self.add(Node::run(label, StepIdx::new(i), deps))
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
            StepIdx::new(i),
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
            StepIdx::new(i),
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
    let index: BTreeMap<&str, usize> = wf
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let barriers: BTreeMap<&str, &relay_spec::Barrier> = file
        .coordination
        .iter()
        .flat_map(|c| c.barriers.iter().map(|b| (b.name.as_str(), b)))
        // A barrier named like a step is rejected by validation; the step wins here.
        .filter(|(name, _)| !index.contains_key(name))
        .collect();
    let implicit = implicit_deps(file, wf, choice.pattern);
    let step_deps: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            let mut d: Vec<usize> = wf.steps[i]
                .depends_on
                .iter()
                .filter_map(|x| index.get(x.as_str()).copied())
                .collect();
            d.extend(implicit[i].iter().copied());
            d.sort_unstable();
            d.dedup();
            d
        })
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
    // Steps after a reviewed producer wait for its approved version.
    quality::link_reviews(&mut b);
    let mut hooks = PatternHooks::default();
    let mut barrier_node: BTreeMap<String, NodeId> = BTreeMap::new();
    let step_deps = b.step_deps.clone();
    for i in topo_order(&step_deps, wf, &barriers, &index) {
        let mut deps: Vec<NodeRef> = step_deps[i].iter().map(|&d| b.final_of(d)).collect();
        for name in &wf.steps[i].depends_on {
            if let Some(bar) = barriers.get(name.as_str()) {
                let node = match barrier_node.get(name) {
                    Some(&x) => x,
                    None => {
                        let waits: Vec<NodeRef> = bar
                            .wait_for
                            .iter()
                            .filter_map(|w| index.get(w.as_str()).map(|&s| b.final_of(s)))
                            .collect();
                        let x = b.add(Node::gate(
                            format!("barrier:{}", bar.name),
                            StepIdx::new(i),
                            waits,
                            Box::new(verdict::Barrier),
                        ));
                        b.nodes[x.index()].publishes = false;
                        if let Some(ms) = bar.timeout_ms {
                            hooks.deadlines.push((x, ms));
                        }
                        barrier_node.insert(name.clone(), x);
                        x
                    }
                };
                deps.push(NodeRef::Id(node));
            }
        }
        let last = match choice.pattern {
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

/// Step indices in an order where every step comes after those it depends on
/// (declaration order among equals). Validation has ruled out cycles.
fn topo_order(
    deps: &[Vec<usize>],
    wf: &WorkflowDef,
    barriers: &BTreeMap<&str, &relay_spec::Barrier>,
    index: &BTreeMap<&str, usize>,
) -> Vec<usize> {
    let n = deps.len();
    // A barrier dependency means waiting for its steps too.
    let full: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            let mut d = deps[i].clone();
            for name in &wf.steps[i].depends_on {
                if let Some(bar) = barriers.get(name.as_str()) {
                    d.extend(
                        bar.wait_for
                            .iter()
                            .filter_map(|w| index.get(w.as_str()).copied()),
                    );
                }
            }
            d
        })
        .collect();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let before = order.len();
        for i in 0..n {
            if !placed[i] && full[i].iter().all(|&d| placed[d]) {
                placed[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            // A cycle slipped through: place the rest in declaration order.
            order.extend((0..n).filter(|&i| !placed[i]));
            break;
        }
    }
    order
}
