//! The execution plan: the graph the run state drives. A workflow step becomes one or more
//! nodes. A `Run` node runs its step (an agent or a command), possibly with another agent,
//! another task or extra context; a `Gate` node runs nothing: when it becomes ready, the
//! pattern that made it decides, from what its dependencies produced, whether it completes
//! (with an output), fails, or expands into new nodes and decides again once they finish.
//! Loops, per-item fan-out, tiers, votes and rounds are all gates.
//!
//! Node ids are handed out by whoever places the node: the pattern builder for the
//! initial plan, the run state for nodes a gate adds (which it then tells the gate).

use std::collections::BTreeMap;
use std::fmt;

use crate::events::EventKind;
use crate::outcome::StepOutcome;

/// A node of the plan: its index in the run's node table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The node at `index` of the table.
    pub fn new(index: usize) -> NodeId {
        NodeId(u32::try_from(index).unwrap_or(u32::MAX))
    }

    /// Its index in the node table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

pub use relay_spec::graph::StepIdx;

/// How a node names another: one already placed, or one placed together with it (the
/// `k`-th node of the same expansion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRef {
    /// A node that has its id.
    Id(NodeId),
    /// The `k`-th node of the expansion this one is part of.
    New(usize),
}

impl From<NodeId> for NodeRef {
    fn from(id: NodeId) -> Self {
        NodeRef::Id(id)
    }
}

/// One node of the plan.
pub struct Node {
    /// Its name in events: the step name, or the step name with a suffix (`draft#2`,
    /// `summarize[3]`, `vote:alice`).
    pub label: String,
    /// The workflow step it stands for.
    pub step: StepIdx,
    /// Nodes it waits for.
    pub deps: Vec<NodeRef>,
    /// What it is.
    pub kind: NodeKind,
    /// Whether its output becomes the output of its workflow step (`{{steps.X.output}}`,
    /// the summary). The last publishing node to finish wins.
    pub publishes: bool,
}

/// What a node does.
pub enum NodeKind {
    /// Run the step.
    Run(RunSpec),
    /// Let the pattern decide.
    Gate(Box<dyn Gate>),
}

/// How a `Run` node differs from its plain step.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// Another agent than the step's.
    pub agent: Option<String>,
    /// Another task text (before interpolation) than the step's.
    pub task: Option<String>,
    /// Sections appended to the task after interpolation: (heading, text).
    pub context: Vec<(String, String)>,
    /// Outputs of other nodes appended to the task when it starts: (heading, node).
    pub inputs: Vec<(String, NodeRef)>,
    /// Append the run's shared board (blackboard).
    pub board: bool,
    /// Run by whichever agent of the pattern's pool is free (swarm).
    pub pooled: bool,
    /// Circuit breaker: when it is open at the moment the node starts, run on this
    /// fallback agent instead.
    pub breaker: Option<String>,
    /// Extra variables (`{{item}}`, `{{iteration}}`).
    pub vars: BTreeMap<String, String>,
    /// A failure does not fail the run; a gate downstream judges it.
    pub soft: bool,
    /// Retries for this node instead of the step's (`Some(0)` for bids and votes).
    pub retries: Option<u32>,
    /// Verification is not applied (bids, votes and critiques are judged by gates).
    pub unverified: bool,
    /// Run this shell command instead of the step's work (a `skipIf` check).
    pub command: Option<String>,
    /// Step outputs this node reads when the run has none yet, by step name (a group's
    /// nested steps in its first iteration: a sibling that runs later is empty).
    pub fallback_outputs: BTreeMap<String, String>,
}

impl Node {
    /// A node that runs workflow step `step` as written.
    pub fn run(label: impl Into<String>, step: StepIdx, deps: Vec<NodeRef>) -> Node {
        Node::run_with(label, step, deps, RunSpec::default(), true)
    }

    /// A node that runs workflow step `step` changed by `spec`.
    pub fn run_with(
        label: impl Into<String>,
        step: StepIdx,
        deps: Vec<NodeRef>,
        spec: RunSpec,
        publishes: bool,
    ) -> Node {
        Node {
            label: label.into(),
            step,
            deps,
            kind: NodeKind::Run(spec),
            publishes,
        }
    }

    /// A gate for workflow step `step`.
    pub fn gate(
        label: impl Into<String>,
        step: StepIdx,
        deps: Vec<NodeRef>,
        gate: Box<dyn Gate>,
    ) -> Node {
        Node {
            label: label.into(),
            step,
            deps,
            kind: NodeKind::Gate(gate),
            publishes: true,
        }
    }
}

/// What a finished node produced: how it ended, how long it took, who ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResult {
    /// How it ended.
    pub outcome: StepOutcome,
    /// How long it ran.
    pub duration_ms: u64,
    /// The agent that ran it.
    pub agent: Option<String>,
}

impl NodeResult {
    /// Whether it completed (a soft failure has not).
    pub fn completed(&self) -> bool {
        self.outcome.is_completed()
    }

    /// Its output.
    pub fn output(&self) -> &str {
        self.outcome.output()
    }

    /// Why it failed.
    pub fn reason(&self) -> Option<&str> {
        self.outcome.reason()
    }
}

/// Read access to the nodes placed so far, for gates.
pub trait NodeLookup {
    /// The label of node `id`.
    fn label(&self, id: NodeId) -> &str;
    /// The result of node `id`, if it finished.
    fn result(&self, id: NodeId) -> Option<&NodeResult>;
    /// Why node `id` was skipped, if it was.
    fn skip_reason(&self, id: NodeId) -> Option<&str> {
        let _ = id;
        None
    }
}

/// What a gate sees when it decides.
pub struct GateCtx<'a> {
    /// The gate itself.
    pub me: NodeId,
    /// Every node placed so far.
    pub nodes: &'a dyn NodeLookup,
    /// User variables.
    pub vars: &'a BTreeMap<String, String>,
    /// Outputs of completed workflow steps, by step name.
    pub outputs: &'a BTreeMap<String, String>,
    /// Files matched by the globs of for-each loops (`loop.over`), by glob as written,
    /// relative to the run's working directory, listed when the run started.
    pub globs: &'a BTreeMap<String, Vec<String>>,
}

impl GateCtx<'_> {
    /// The gate's own label.
    pub fn my_label(&self) -> String {
        self.nodes.label(self.me).to_string()
    }

    /// The label of node `id`.
    pub fn label(&self, id: NodeId) -> &str {
        self.nodes.label(id)
    }

    /// The result of node `id`, if it finished.
    pub fn result(&self, id: NodeId) -> Option<&NodeResult> {
        self.nodes.result(id)
    }

    /// The output of node `id` (empty when it has none).
    pub fn output(&self, id: NodeId) -> &str {
        self.result(id).map(NodeResult::output).unwrap_or("")
    }
}

/// A gate's decision.
pub enum Resolution {
    /// The gate completes with this output; `events` are recorded first.
    Complete {
        /// The output.
        output: String,
        /// Events to record (decisions, tallies).
        events: Vec<EventKind>,
    },
    /// The gate fails.
    Fail {
        /// Why.
        reason: String,
        /// Events to record first.
        events: Vec<EventKind>,
    },
    /// The step does not run: it is skipped, for this reason, and the steps after it go
    /// on (its output is empty).
    Skip {
        /// Why, in words.
        reason: String,
        /// Events to record first.
        events: Vec<EventKind>,
    },
    /// Place these nodes (the gate is told their ids through [`Gate::placed`]), wait for
    /// `wait_for`, then decide again.
    Expand {
        /// New nodes; `NodeRef::New(k)` in them names the `k`-th of these.
        nodes: Vec<Node>,
        /// Nodes to wait for (new or existing).
        wait_for: Vec<NodeRef>,
        /// Events to record first.
        events: Vec<EventKind>,
    },
}

/// Pattern logic attached to a gate node.
pub trait Gate: Send {
    /// Decides when the gate becomes ready (and again after each expansion).
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution;

    /// The ids given to the nodes of the expansion just returned, in order.
    fn placed(&mut self, ids: &[NodeId]) {
        let _ = ids;
    }

    /// Further step outputs it produced once complete, by key (`{{steps.X.outputs}}`).
    fn extra_outputs(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// The whole plan of a run.
pub struct Plan {
    /// Nodes; `NodeId::new(i)` is the `i`-th, and every `NodeRef` in them is an `Id`.
    pub nodes: Vec<Node>,
    /// For each workflow step, the node whose completion means the step is done (what
    /// steps depending on it wait for).
    pub final_node: Vec<NodeId>,
    /// The pattern in effect and why it was chosen.
    pub pattern: relay_spec::pattern::Choice,
}

impl Plan {
    /// Lines describing the plan for `--explain`.
    pub fn describe(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| {
                let kind = match &n.kind {
                    NodeKind::Run(spec) => {
                        let mut k = String::from("run");
                        if let Some(a) = &spec.agent {
                            k.push_str(&format!(" by {a}"));
                        }
                        if spec.soft {
                            k.push_str(" (judged downstream)");
                        }
                        k
                    }
                    NodeKind::Gate(_) => "gate (decided by the pattern)".to_string(),
                };
                let deps: Vec<&str> = n
                    .deps
                    .iter()
                    .filter_map(|d| match d {
                        NodeRef::Id(id) => self.nodes.get(id.index()).map(|x| x.label.as_str()),
                        NodeRef::New(_) => None,
                    })
                    .collect();
                if deps.is_empty() {
                    format!("{}: {kind}", n.label)
                } else {
                    format!("{}: {kind}, after {}", n.label, deps.join(", "))
                }
            })
            .collect()
    }
}
