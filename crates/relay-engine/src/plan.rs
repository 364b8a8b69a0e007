//! The execution plan: the graph the scheduler runs. A workflow step becomes one or more
//! nodes. A `Run` node runs its step (an agent or a command), possibly with another agent,
//! another task or extra context; a `Gate` node runs nothing: when it becomes ready, the
//! pattern that made it decides, from what its dependencies produced, whether it completes
//! (with an output), fails, or expands into new nodes and decides again once they finish.
//! Loops, per-item fan-out, tiers, votes and rounds are all gates.

use std::collections::BTreeMap;

use crate::events::EventKind;

/// One node of the plan.
pub struct Node {
    /// Its name in events: the step name, or the step name with a suffix (`draft#2`,
    /// `summarize[3]`, `vote:alice`).
    pub label: String,
    /// Index of the workflow step it stands for.
    pub origin: usize,
    /// Nodes it waits for.
    pub deps: Vec<usize>,
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
    pub inputs: Vec<(String, usize)>,
    /// Append the run's shared board (blackboard).
    pub board: bool,
    /// Run by whichever agent of the swarm pool is free.
    pub pooled: bool,
    /// Circuit breaker: when it is open at the moment the node starts, run on the
    /// fallback agent instead.
    pub breaker: Option<(
        std::sync::Arc<std::sync::Mutex<crate::patterns::BreakerState>>,
        String,
    )>,
    /// Extra variables (`{{item}}`, `{{iteration}}`).
    pub vars: BTreeMap<String, String>,
    /// A failure does not fail the run; a gate downstream judges it.
    pub soft: bool,
    /// Retries for this node instead of the step's (`Some(0)` for bids and votes).
    pub retries: Option<u32>,
    /// Verification is not applied (bids, votes and critiques are judged by gates).
    pub unverified: bool,
}

impl Node {
    /// A node that runs workflow step `origin` as written.
    pub fn run(label: impl Into<String>, origin: usize, deps: Vec<usize>) -> Node {
        Node {
            label: label.into(),
            origin,
            deps,
            kind: NodeKind::Run(RunSpec::default()),
            publishes: true,
        }
    }

    /// A node that runs workflow step `origin` changed by `spec`.
    pub fn run_with(
        label: impl Into<String>,
        origin: usize,
        deps: Vec<usize>,
        spec: RunSpec,
        publishes: bool,
    ) -> Node {
        Node {
            label: label.into(),
            origin,
            deps,
            kind: NodeKind::Run(spec),
            publishes,
        }
    }

    /// A gate for workflow step `origin`.
    pub fn gate(
        label: impl Into<String>,
        origin: usize,
        deps: Vec<usize>,
        gate: Box<dyn Gate>,
    ) -> Node {
        Node {
            label: label.into(),
            origin,
            deps,
            kind: NodeKind::Gate(gate),
            publishes: true,
        }
    }
}

/// What a finished node produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResult {
    /// Whether it completed (a soft failure is `false`).
    pub completed: bool,
    /// Its output.
    pub output: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// Exit code of its last attempt.
    pub exit_code: Option<i32>,
    /// How long it ran.
    pub duration_ms: u64,
    /// The agent that ran it.
    pub agent: Option<String>,
}

/// What a gate sees when it decides.
pub struct GateCtx<'a> {
    /// Labels of every node so far, by index.
    pub labels: &'a [String],
    /// Results of finished nodes, by index.
    pub results: &'a [Option<NodeResult>],
    /// User variables.
    pub vars: &'a BTreeMap<String, String>,
    /// Outputs of completed workflow steps, by step name.
    pub outputs: &'a BTreeMap<String, String>,
    /// Index of the first node a gate adds now (nodes are appended in order).
    pub next_index: usize,
    /// The gate's own index.
    pub me: usize,
}

impl GateCtx<'_> {
    /// The result of node `i`, if it finished.
    pub fn result(&self, i: usize) -> Option<&NodeResult> {
        self.results.get(i).and_then(Option::as_ref)
    }

    /// The output of node `i` (empty when it has none).
    pub fn output(&self, i: usize) -> &str {
        self.result(i).map(|r| r.output.as_str()).unwrap_or("")
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
    /// Add these nodes (their indices start at `ctx.next_index`), wait for the listed
    /// indices, then decide again.
    Expand {
        /// New nodes.
        nodes: Vec<Node>,
        /// Indices to wait for (new or existing).
        wait_for: Vec<usize>,
        /// Events to record first.
        events: Vec<EventKind>,
    },
}

/// Pattern logic attached to a gate node.
pub trait Gate: Send {
    /// Decides when the gate becomes ready (and again after each expansion).
    fn resolve(&mut self, ctx: &GateCtx<'_>) -> Resolution;
}

/// The whole plan of a run.
pub struct Plan {
    /// Nodes; the scheduler's indices are the same.
    pub nodes: Vec<Node>,
    /// For each workflow step, the node whose completion means the step is done (what
    /// steps depending on it wait for).
    pub final_node: Vec<usize>,
    /// The pattern in effect and why it was chosen.
    pub pattern: crate::patterns::Choice,
    /// Who may message whom.
    pub topology: crate::patterns::Topology,
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
                    .filter_map(|&d| self.nodes.get(d).map(|x| x.label.as_str()))
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
