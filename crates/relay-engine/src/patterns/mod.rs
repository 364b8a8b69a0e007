//! Swarm patterns: how a workflow's steps become the plan the scheduler runs. Each family
//! of patterns lives in its own module and decides three things the driver consults:
//! the nodes a step becomes (plain run, or gates that loop, fan out, pick a winner, vote,
//! escalate), the data each node receives (outputs of other steps appended to its task),
//! and who may message whom (`Topology`). Dependencies a pattern implies between steps
//! come from `relay_spec::pattern::implicit_deps`, which validation uses too.
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
mod quality;
mod resilience;
pub(crate) mod verdict;

pub(crate) use verdict::result_text;

use std::collections::{BTreeMap, BTreeSet};

use relay_spec::pattern::{choose, hubs, implicit_deps, managers};
use relay_spec::{Pattern, RelayFile, WorkflowDef};

pub(crate) use collaborative::pool as swarm_pool;
pub use relay_spec::pattern::Choice;
pub use resilience::BreakerState;
pub(crate) use resilience::saga_compensations;

use crate::plan::{Node, Plan, RunSpec};

/// Who may send a message to whom, as the pattern decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// Anyone to anyone (dag, mesh, most patterns).
    All,
    /// Spokes talk to the hubs only; hubs talk to anyone (hub-spoke, fan-out with a lead).
    Hub(BTreeSet<String>),
    /// Each agent talks to its manager and its direct reports (hierarchical).
    Tree(BTreeMap<String, Option<String>>),
    /// Each agent talks to the next agent in the chain (handoff).
    Chain(Vec<String>),
}

impl Topology {
    /// `Ok` when `from` may message `to`; otherwise the rule that forbids it.
    pub fn may_send(&self, from: &str, to: &str) -> Result<(), String> {
        match self {
            Topology::All => Ok(()),
            Topology::Hub(hubs) => {
                if hubs.contains(from) || hubs.contains(to) {
                    Ok(())
                } else {
                    Err(format!(
                        "hub-spoke: `{from}` may message only the hub ({})",
                        hubs.iter().cloned().collect::<Vec<_>>().join(", ")
                    ))
                }
            }
            Topology::Tree(boss) => {
                let is_boss = |a: &str, b: &str| boss.get(a).and_then(|x| x.as_deref()) == Some(b);
                if is_boss(from, to) || is_boss(to, from) {
                    Ok(())
                } else {
                    Err(format!(
                        "hierarchical: `{from}` may message only its manager and direct reports"
                    ))
                }
            }
            Topology::Chain(order) => {
                let pos = |a: &str| order.iter().position(|x| x == a);
                match (pos(from), pos(to)) {
                    (Some(f), Some(t)) if t == f + 1 || f == t + 1 => Ok(()),
                    _ => Err(format!(
                        "handoff: `{from}` may message only the agents next to it in the chain"
                    )),
                }
            }
        }
    }
}

/// Builds the plan while the nodes of each step are added in dependency order.
pub(crate) struct Builder<'a> {
    pub file: &'a RelayFile,
    pub wf: &'a WorkflowDef,
    pub pattern: Pattern,
    pub nodes: Vec<Node>,
    pub final_node: Vec<usize>,
    /// For each step, the steps it depends on (explicit and implied).
    pub step_deps: Vec<Vec<usize>>,
    /// The circuit breaker every step of the run shares.
    pub breaker: std::sync::Arc<std::sync::Mutex<resilience::BreakerState>>,
}

impl Builder<'_> {
    /// Appends `node`, returning its index.
    pub fn add(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// The plain node of step `i`: its step, as written.
    pub fn plain(&mut self, i: usize, deps: Vec<usize>) -> usize {
        let label = self.wf.steps[i].name.clone();
        self.add(Node::run(label, i, deps))
    }

    /// The plain node of step `i`, receiving the outputs of the steps it depends on.
    pub fn with_inputs(&mut self, i: usize, deps: Vec<usize>, heading: &str) -> usize {
        let from = self.step_deps[i].clone();
        self.receiving(i, deps, heading, &from)
    }

    /// The node of step `i`, receiving the outputs of steps `from` under `heading`.
    pub fn receiving(
        &mut self,
        i: usize,
        deps: Vec<usize>,
        heading: &str,
        from: &[usize],
    ) -> usize {
        let inputs: Vec<(String, usize)> = from
            .iter()
            .map(|&d| {
                (
                    format!("{heading} `{}`", self.wf.steps[d].name),
                    self.final_node[d],
                )
            })
            .collect();
        let label = self.wf.steps[i].name.clone();
        self.add(Node::run_with(
            label,
            i,
            deps,
            RunSpec {
                inputs,
                ..RunSpec::default()
            },
            true,
        ))
    }

    /// The first attempt of step `i` as a node whose failure a gate judges (`STEP#1`).
    pub fn soft_attempt(&mut self, i: usize, deps: Vec<usize>) -> usize {
        let label = format!("{}#1", self.wf.steps[i].name);
        self.add(Node::run_with(
            label,
            i,
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

/// Turns `wf` into the plan of its pattern.
pub fn build(file: &RelayFile, wf: &WorkflowDef) -> Plan {
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
        final_node: vec![usize::MAX; n],
        step_deps,
        breaker: Default::default(),
    };
    // Steps after a reviewed producer wait for its approved version.
    quality::link_reviews(&mut b);
    let mut barrier_node: BTreeMap<String, usize> = BTreeMap::new();
    let step_deps = b.step_deps.clone();
    for i in topo_order(&step_deps, wf, &barriers, &index) {
        let mut deps: Vec<usize> = step_deps[i].iter().map(|&d| b.final_node[d]).collect();
        for name in &wf.steps[i].depends_on {
            if let Some(bar) = barriers.get(name.as_str()) {
                let node = match barrier_node.get(name) {
                    Some(&x) => x,
                    None => {
                        let waits: Vec<usize> = bar
                            .wait_for
                            .iter()
                            .filter_map(|w| index.get(w.as_str()).map(|&s| b.final_node[s]))
                            .collect();
                        let x = b.add(Node::gate(
                            format!("barrier:{}", bar.name),
                            i,
                            waits,
                            Box::new(verdict::Barrier),
                        ));
                        b.nodes[x].publishes = false;
                        barrier_node.insert(name.clone(), x);
                        x
                    }
                };
                deps.push(node);
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
        b.final_node[i] = last;
    }
    let topology = match choice.pattern {
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
    Plan {
        nodes: b.nodes,
        final_node: b.final_node,
        pattern: choice,
        topology,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topologies_allow_and_refuse() {
        assert!(Topology::All.may_send("a", "b").is_ok());
        let hub = Topology::Hub(BTreeSet::from(["lead".to_string()]));
        assert!(hub.may_send("w1", "lead").is_ok());
        assert!(hub.may_send("lead", "w2").is_ok());
        assert!(
            hub.may_send("w1", "w2")
                .unwrap_err()
                .contains("only the hub")
        );
        let tree = Topology::Tree(BTreeMap::from([
            ("ceo".to_string(), None),
            ("vp".to_string(), Some("ceo".to_string())),
            ("dev".to_string(), Some("vp".to_string())),
        ]));
        assert!(tree.may_send("dev", "vp").is_ok());
        assert!(tree.may_send("ceo", "vp").is_ok());
        assert!(tree.may_send("dev", "ceo").is_err());
        let chain = Topology::Chain(vec!["a".into(), "b".into(), "c".into()]);
        assert!(chain.may_send("a", "b").is_ok());
        assert!(chain.may_send("a", "c").is_err());
    }
}
