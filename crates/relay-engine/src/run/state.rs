//! The run as a state machine, free of I/O: inputs in (start, an attempt's outcome, time
//! passing, a cancel), effects out (events to record, outputs to store, attempts to
//! launch, running attempts to cancel, the end). The async driver only turns sources
//! into inputs and carries out effects in order, so every decision of a run (gates,
//! pattern hooks, retries, failure policy, barriers, timeouts, cancel, resume presets)
//! is tested here without processes.
//!
//! One record per node holds everything about it; one `Stop` says why the run stopped
//! starting work, if it did.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_spec::{RelayFile, WorkflowDef};

use crate::events::EventKind;
use crate::job::{self, JobCtx, Launch, NodeToRun, Previous, StepJob};
use crate::outcome::{RunStatus, RunSummary, StepOutcome, StepStatus, StepSummary};
use crate::patterns::PatternHooks;
use crate::plan::{
    Gate, GateCtx, Node, NodeId, NodeKind, NodeLookup, NodeRef, NodeResult, Plan, Resolution,
    RunSpec, StepIdx,
};
use crate::scheduler::{NodeState, Scheduler, SkipCause};

/// Something that happens to the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The run begins: start what is ready.
    Start,
    /// Attempt `attempt` of node `node` ended.
    AttemptDone {
        /// The node.
        node: NodeId,
        /// Which attempt.
        attempt: u32,
        /// How it ended.
        outcome: StepOutcome,
    },
    /// Time passed: act on every deadline reached.
    Tick,
    /// Stop the run (Ctrl+C, `agent-relay cancel`).
    Cancel {
        /// Why, in words.
        reason: String,
    },
    /// A person answered the question of node `step` (its label).
    Answer {
        /// The node.
        step: String,
        /// The answer.
        text: String,
    },
    /// A person decided the approval of workflow step `step` (check it first with
    /// [`RunState::check_decision`]).
    Decide {
        /// The step's name.
        step: String,
        /// Whether it may run.
        approved: bool,
        /// Who decided.
        by: String,
        /// Why, when they said.
        reason: Option<String>,
    },
    /// No new node starts until `Unpause`; running ones go on.
    Pause {
        /// Who paused the run.
        by: String,
    },
    /// Nodes start again.
    Unpause {
        /// Who unpaused the run.
        by: String,
    },
    /// Resume every parked node now (`agent-relay unpark`).
    Unpark,
    /// An item of node `step`'s checklist was marked (check it first with
    /// [`RunState::check_mark`]).
    Mark {
        /// The node's label.
        step: String,
        /// The item's id.
        item: String,
        /// Done or blocked, and the note.
        mark: Mark,
        /// Who marked it.
        by: String,
    },
    /// `agent`'s CLI named the conversation it works in.
    Session {
        /// The agent.
        agent: String,
        /// The CLI's session id.
        session: String,
    },
    /// Node `step` (its label; empty for spending a resumed run brings along) spent
    /// tokens and dollars.
    Usage {
        /// The node.
        step: String,
        /// Tokens by kind.
        usage: relay_broker::usage::Usage,
        /// Dollars, when its model has a price.
        cost_usd: Option<f64>,
    },
}

/// Something the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Append this event to the log.
    Record(EventKind),
    /// Store the final output of node `label` (before its completion is recorded).
    StoreOutput {
        /// The node.
        label: String,
        /// Its output.
        output: String,
    },
    /// A node of `agent` starts (the agent is busy).
    NodeStarted {
        /// The node.
        label: String,
        /// Its agent.
        agent: Option<String>,
    },
    /// Start one attempt.
    Launch(Launch),
    /// End every running attempt.
    CancelRunning,
    /// A node of `agent` ended; `failure` says why when it failed.
    NodeEnded {
        /// The node.
        label: String,
        /// Its agent.
        agent: Option<String>,
        /// Why it failed, if it did.
        failure: Option<String>,
    },
    /// The run is over.
    Finish(RunSummary),
}

/// What a resumed run (or one that reuses another's steps) keeps of a node, by label.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    /// How it ended: completed (kept), or failed (kept only for a node a gate judges).
    pub status: StepStatus,
    /// Its output.
    pub output: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// Attempts it took.
    pub attempts: u32,
    /// Exit code of its last attempt.
    pub exit_code: Option<i32>,
    /// How long it took.
    pub duration_ms: u64,
}

/// Why the run stopped starting work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Cancelled from outside.
    Cancelled(String),
    /// The run's own timeout ran out.
    TimedOut(u64),
    /// The machine failed a node; nothing else can be trusted to run.
    Broken(String),
    /// A step used up its retries and repairs, and a person decides what next
    /// (`onExhaustion: needs-human`).
    NeedsHuman(String),
}

/// Everything the state needs to know about the run at its start.
pub struct RunSetup<'a> {
    /// The workflow file.
    pub file: &'a RelayFile,
    /// The workflow.
    pub wf: &'a WorkflowDef,
    /// User variables, defaults applied.
    pub vars: &'a BTreeMap<String, String>,
    /// The run's working directory.
    pub workdir: PathBuf,
    /// The directories of `paths`, resolved.
    pub paths: BTreeMap<String, PathBuf>,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The run id.
    pub run_id: String,
    /// Nodes kept from an earlier run, by label.
    pub presets: BTreeMap<String, Preset>,
    /// Steps whose approval an earlier coordinator of this run already granted.
    pub approved: BTreeSet<String>,
    /// Checklist marks an earlier coordinator of this run recorded.
    pub marks: Marks,
    /// Each agent's latest conversation an earlier coordinator of this run recorded.
    pub sessions: BTreeMap<String, String>,
    /// Files matched by the globs of for-each loops, by glob as written.
    pub globs: BTreeMap<String, Vec<String>>,
}

/// Where a run node's attempts stand.
#[derive(Debug, Clone)]
enum Attempts {
    /// Not started.
    Idle,
    /// Resolved; waits for its step's approval before attempt 1.
    AwaitingApproval { job: Arc<StepJob> },
    /// Attempt `n` runs.
    Running { job: Arc<StepJob>, n: u32 },
    /// Attempt `n` ended with a question; attempt `n + 1` starts with its answer.
    Asking {
        job: Arc<StepJob>,
        n: u32,
        question: String,
        output: String,
    },
    /// Attempt `n` failed and a repair runs before attempt `n + 1`.
    Repairing {
        job: Arc<StepJob>,
        n: u32,
        previous: Previous,
    },
    /// Attempt `n` failed; attempt `n + 1` starts when its time comes (`retrying`).
    Retrying {
        job: Arc<StepJob>,
        n: u32,
        previous: Previous,
    },
    /// Waiting for its provider's rate limit to reset; attempt `n` starts then (the
    /// parked attempt spent no retry).
    Parked {
        job: Arc<StepJob>,
        n: u32,
        previous: Option<Previous>,
        until: super::park::Until,
    },
    /// No more attempts.
    Done,
}

enum Kind {
    Run {
        spec: Box<RunSpec>,
        attempts: Attempts,
    },
    /// `None` while the gate is deciding.
    Gate(Option<Box<dyn Gate>>),
}

struct NodeRecord {
    label: String,
    step: StepIdx,
    kind: Kind,
    publishes: bool,
    /// When its first attempt started.
    started_at: Option<Instant>,
    /// The agent it ran on.
    agent: Option<String>,
    /// Repairs it had.
    repairs: u32,
    /// Rate limits its attempts reported in a row.
    parks: u32,
    /// Attempts that spent no retry (rate-limited ones).
    free_attempts: u32,
    result: Option<NodeResult>,
    skip_reason: Option<String>,
}

impl NodeRecord {
    fn soft(&self) -> bool {
        matches!(&self.kind, Kind::Run { spec, .. } if spec.soft)
    }
}

struct Nodes(Vec<NodeRecord>);

impl NodeLookup for Nodes {
    fn label(&self, id: NodeId) -> &str {
        self.0.get(id.index()).map_or("", |n| n.label.as_str())
    }

    fn result(&self, id: NodeId) -> Option<&NodeResult> {
        self.0.get(id.index()).and_then(|n| n.result.as_ref())
    }

    fn skip_reason(&self, id: NodeId) -> Option<&str> {
        self.0
            .get(id.index())
            .and_then(|n| n.skip_reason.as_deref())
    }
}

/// What the run knows of each workflow step.
#[derive(Debug, Clone, Default)]
struct StepProgress {
    final_node: Option<NodeId>,
    attempts: u32,
    /// The last output any node of it produced (what a failed step shows).
    last_output: Option<String>,
}

/// The state of one run.
pub struct RunState<'a> {
    file: &'a RelayFile,
    wf: &'a WorkflowDef,
    /// User variables, and the outputs of steps with `outputVar` as they complete.
    vars: BTreeMap<String, String>,
    workdir: PathBuf,
    paths: BTreeMap<String, PathBuf>,
    run_dir: PathBuf,
    run_id: String,
    nodes: Nodes,
    sched: Scheduler,
    hooks: PatternHooks,
    steps: Vec<StepProgress>,
    /// Published outputs by step name (for `{{steps.X.output}}`), trailing space trimmed.
    outputs: BTreeMap<String, String>,
    /// Steps in the order their final node completed.
    completed_order: Vec<StepIdx>,
    presets: BTreeMap<String, Preset>,
    stop: Option<Stop>,
    /// The first node whose failure counts (not soft, not cancelled).
    first_failure: Option<String>,
    started: Instant,
    run_deadline: Option<(Instant, u64)>,
    barriers: Vec<(NodeId, Instant, u64)>,
    /// Nodes waiting to retry, and when.
    retrying: BTreeMap<NodeId, Instant>,
    /// Worktrees made by worktree steps.
    worktrees: Vec<String>,
    /// Repairs a failing step may have before its next attempt.
    repair_budget: u32,
    /// Whether a step that used up everything stops the run for a person.
    needs_human_on_exhaustion: bool,
    /// Steps approved (by name).
    approved: BTreeSet<String>,
    /// Checklist marks, by node label.
    marks: Marks,
    /// Each agent's latest conversation, by agent: what `session: resume` continues.
    sessions: BTreeMap<String, String>,
    /// Steps whose approval was asked for.
    approval_asked: BTreeSet<StepIdx>,
    /// Nodes waiting for approval that time out, and when.
    approval_deadlines: BTreeMap<NodeId, Instant>,
    /// Files of for-each globs.
    globs: BTreeMap<String, Vec<String>>,
    /// Whether `pause` holds new nodes back.
    paused: bool,
    /// Tokens and dollars spent, against the run's budget.
    budget: super::budget::Budget,
    /// Rate-limited providers and the run's wall clock.
    parking: super::park::Parking,
    /// Parked nodes, and when they start again.
    parked: BTreeMap<NodeId, Instant>,
    /// Nodes (by label) a resumed run's log left parked, until when (wall-clock ms).
    resume_parks: BTreeMap<String, u64>,
    finished: bool,
}

impl<'a> RunState<'a> {
    /// The state of a run of `plan` under its pattern's `hooks`, starting at `now`.
    pub fn new(setup: RunSetup<'a>, plan: Plan, hooks: PatternHooks, now: Instant) -> Self {
        let file = setup.file;
        let swarm = file.swarm.clone().unwrap_or_default();
        let policy = file.on_error_for(setup.wf);
        let limit = match (swarm.concurrency_limit(), hooks.concurrency_cap()) {
            (l, None) => l,
            (Some(l), Some(p)) => Some(l.min(p)),
            (None, Some(p)) => Some(p),
        };
        let barriers = hooks
            .deadlines
            .iter()
            .map(|&(id, ms)| (id, deadline(now, ms), ms))
            .collect();
        let mut state = RunState {
            file,
            wf: setup.wf,
            vars: setup.vars.clone(),
            workdir: setup.workdir,
            paths: setup.paths,
            run_dir: setup.run_dir,
            run_id: setup.run_id,
            nodes: Nodes(Vec::with_capacity(plan.nodes.len())),
            sched: Scheduler::new(limit, policy.halts_run()),
            hooks,
            steps: vec![StepProgress::default(); setup.wf.steps.len()],
            outputs: BTreeMap::new(),
            completed_order: Vec::new(),
            presets: setup.presets,
            stop: None,
            first_failure: None,
            started: now,
            run_deadline: swarm
                .timeout()
                .map(|t| (deadline(now, t.as_millis() as u64), t.as_millis() as u64)),
            barriers,
            retrying: BTreeMap::new(),
            worktrees: Vec::new(),
            repair_budget: job::repair_budget(file, setup.wf),
            needs_human_on_exhaustion: file
                .error_handling
                .as_ref()
                .is_some_and(|e| e.on_exhaustion() == relay_spec::OnExhaustion::NeedsHuman),
            approved: setup.approved,
            marks: setup.marks,
            sessions: setup.sessions,
            approval_asked: BTreeSet::new(),
            approval_deadlines: BTreeMap::new(),
            globs: setup.globs,
            paused: false,
            budget: super::budget::Budget::new(
                swarm.token_budget,
                swarm.cost_budget,
                setup.wf.steps.len(),
            ),
            parking: super::park::Parking::new(now, 0, Duration::from_secs(60)),
            parked: BTreeMap::new(),
            resume_parks: BTreeMap::new(),
            finished: false,
        };
        for (s, id) in plan.final_node.iter().enumerate() {
            if let Some(p) = state.steps.get_mut(s) {
                p.final_node = Some(*id);
            }
        }
        let mut out = Vec::new();
        state.place(plan.nodes, &mut out);
        // Presets record nothing: the log already has them.
        state
    }

    /// The next moment `Tick` has something to do, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let run = self
            .run_deadline
            .filter(|_| self.stop.is_none())
            .map(|(at, _)| at);
        let barriers = self
            .barriers
            .iter()
            .filter(|(id, _, _)| !self.sched.state(*id).is_final())
            .map(|(_, at, _)| *at);
        let retries = self.retrying.values().copied();
        let approvals = self.approval_deadlines.values().copied();
        let parked = self.parked.values().copied();
        run.into_iter()
            .chain(barriers)
            .chain(retries)
            .chain(approvals)
            .chain(parked)
            .min()
    }

    /// Whether the run is over.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Why the run stopped starting work, if it did.
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// Acts on `input` at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        match input {
            Input::Start => {}
            Input::AttemptDone {
                node,
                attempt,
                outcome,
            } => self.attempt_done(node, attempt, outcome, now, &mut out),
            Input::Tick => self.tick(now, &mut out),
            Input::Cancel { reason } => {
                if self.stop.is_none() {
                    self.halt(Stop::Cancelled(reason), now, &mut out);
                }
            }
            Input::Answer { step, text } => self.answered(&step, text, &mut out),
            Input::Decide {
                step,
                approved,
                by,
                reason,
            } => self.decided(&step, approved, by, reason, now, &mut out),
            Input::Pause { by } => {
                if !self.paused && self.stop.is_none() {
                    self.paused = true;
                    out.push(Effect::Record(EventKind::RunPaused { by }));
                }
            }
            Input::Unpause { by } => {
                if self.paused {
                    self.paused = false;
                    out.push(Effect::Record(EventKind::RunUnpaused { by }));
                }
            }
            Input::Unpark => self.unpark(true, now, &mut out),
            Input::Mark {
                step,
                item,
                mark,
                by,
            } => self.mark(step, item, mark, by, &mut out),
            Input::Session { agent, session } => {
                self.sessions.insert(agent, session);
            }
            Input::Usage {
                step,
                usage,
                cost_usd,
            } => {
                let idx = self
                    .nodes
                    .0
                    .iter()
                    .find(|n| n.label == step)
                    .map(|n| n.step.get());
                self.budget.record(idx, &usage, cost_usd);
            }
        }
        self.pump(now, &mut out);
        out
    }

    // ---- placing nodes -------------------------------------------------------------

    /// Places `nodes` (their `NodeRef::New(k)` naming the `k`-th of them), applying
    /// presets; returns their ids.
    fn place(&mut self, nodes: Vec<Node>, out: &mut Vec<Effect>) -> Vec<NodeId> {
        let first = self.nodes.0.len();
        let ids: Vec<NodeId> = (0..nodes.len()).map(|k| NodeId::new(first + k)).collect();
        let resolve = |r: NodeRef| match r {
            NodeRef::Id(id) => id,
            NodeRef::New(k) => ids.get(k).copied().unwrap_or(NodeId::new(usize::MAX)),
        };
        for node in nodes {
            let deps: Vec<NodeId> = node.deps.iter().map(|&d| resolve(d)).collect();
            let (kind, urgent) = match node.kind {
                NodeKind::Run(mut spec) => {
                    for (_, input) in &mut spec.inputs {
                        *input = NodeRef::Id(resolve(*input));
                    }
                    (
                        Kind::Run {
                            spec: Box::new(spec),
                            attempts: Attempts::Idle,
                        },
                        false,
                    )
                }
                NodeKind::Gate(g) => (Kind::Gate(Some(g)), true),
            };
            let id = self.sched.add_node(deps, urgent);
            self.nodes.0.push(NodeRecord {
                label: node.label,
                step: node.step,
                kind,
                publishes: node.publishes,
                started_at: None,
                agent: None,
                repairs: 0,
                parks: 0,
                free_attempts: 0,
                result: None,
                skip_reason: None,
            });
            if self.sched.state(id) == NodeState::Skipped {
                let reason = self.halted_reason();
                self.skipped(id, reason, out);
            } else {
                self.apply_preset(id);
            }
        }
        ids
    }

    /// Marks node `id` done as an earlier run left it, when it did.
    fn apply_preset(&mut self, id: NodeId) {
        let rec = &self.nodes.0[id.index()];
        let Some(p) = self.presets.get(&rec.label) else {
            return;
        };
        let outcome = match p.status {
            StepStatus::Completed => StepOutcome::Completed {
                output: p.output.clone(),
                exit_code: p.exit_code,
            },
            // A failure is kept only where a gate judges it; elsewhere the node runs again.
            StepStatus::Failed if rec.soft() => StepOutcome::Failed {
                output: p.output.clone(),
                reason: p.reason.clone().unwrap_or_else(|| "failed".into()),
                exit_code: p.exit_code,
                retryable: false,
            },
            _ => return,
        };
        let (attempts, duration_ms) = (p.attempts, p.duration_ms);
        let rec = &mut self.nodes.0[id.index()];
        if let Kind::Run { attempts: a, .. } = &mut rec.kind {
            *a = Attempts::Done;
        }
        rec.result = Some(NodeResult {
            outcome: outcome.clone(),
            duration_ms,
            agent: None,
        });
        let step = rec.step;
        if let Some(s) = self.steps.get_mut(step.get()) {
            s.attempts += attempts;
        }
        if outcome.is_completed() {
            self.publish(id, outcome.output());
            self.preset_loop_outputs(id);
        }
        self.sched.complete(id);
    }

    /// A looping step kept from an earlier run: `{{steps.X.outputs}}` again from the
    /// iterations it kept (`X#1`, `X#2`, ...).
    fn preset_loop_outputs(&mut self, id: NodeId) {
        let rec = &self.nodes.0[id.index()];
        let Some(def) = self.wf.steps.get(rec.step.get()) else {
            return;
        };
        if !matches!(rec.kind, Kind::Gate(_))
            || rec.label != def.name
            || !(relay_spec::validate::is_loop(def) || def.is_group())
        {
            return;
        }
        let kept = |name: &str| -> String {
            let outputs: Vec<String> = (1..)
                .map_while(|k| self.presets.get(&format!("{name}#{k}")))
                .filter(|p| p.status == StepStatus::Completed)
                .map(|p| p.output.trim_end().to_string())
                .collect();
            serde_json::to_string(&outputs).unwrap_or_else(|_| "[]".into())
        };
        let g = rec.step.get();
        let mut found = Vec::new();
        let mut last_outputs = Vec::new();
        if def.is_group() {
            // A group's iterations are its members' (`GROUP/X#k`); its own are its
            // judged member's.
            for m in relay_spec::groups::members(self.wf, g) {
                let name = &self.wf.steps[m].name;
                let last = (1..)
                    .map_while(|k| self.presets.get(&format!("{name}#{k}")))
                    .filter(|p| p.status == StepStatus::Completed)
                    .last();
                if let Some(p) = last {
                    found.push((name.clone(), p.output.trim_end().to_string()));
                    last_outputs.push((m, p.output.clone()));
                }
                found.push((relay_spec::template::outputs_key(name), kept(name)));
            }
            if relay_spec::validate::is_loop(def)
                && let Some(j) = relay_spec::groups::judged(self.wf, g)
            {
                let all = kept(&self.wf.steps[j].name);
                found.push((relay_spec::template::outputs_key(&def.name), all));
            }
        } else {
            found.push((
                relay_spec::template::outputs_key(&def.name),
                kept(&def.name),
            ));
        }
        self.outputs.extend(found);
        // What the summary shows of each nested step: its last iteration's output.
        for (m, output) in last_outputs {
            if let Some(p) = self.steps.get_mut(m) {
                p.last_output = Some(output);
            }
        }
    }

    // ---- the loop --------------------------------------------------------------------

    /// Starts everything that may start; ends the run when nothing can happen any more.
    fn pump(&mut self, now: Instant, out: &mut Vec<Effect>) {
        loop {
            // A paused run starts nothing; a stopped one has nothing left to start.
            while !self.paused || self.stop.is_some() {
                let Some(id) = self.sched.next_to_start() else {
                    break;
                };
                self.start(id, now, out);
            }
            if !self.sched.is_done() {
                return;
            }
            // A run failed by a step (not cancelled) may first have work to undo (saga).
            if let Some(failed) = self.first_failure.clone()
                && !matches!(self.stop, Some(Stop::Cancelled(_)))
                && let Some((nodes, event)) =
                    self.hooks
                        .on_run_failed(self.wf, &self.completed_order, &failed)
            {
                out.push(Effect::Record(event));
                self.sched.unhalt();
                self.place(nodes, out);
                continue;
            }
            // A valid plan reaches every node; never leave a hole if one did not.
            let unreached = self.sched.skip_unreached();
            let reason = "not started: the steps it waits for never finished".to_string();
            for (id, _) in unreached {
                self.skipped(id, reason.clone(), out);
            }
            self.finish(now, out);
            return;
        }
    }

    fn start(&mut self, id: NodeId, now: Instant, out: &mut Vec<Effect>) {
        let rec = &mut self.nodes.0[id.index()];
        match &mut rec.kind {
            Kind::Gate(_) => self.decide(id, now, out),
            Kind::Run { spec, .. } => {
                let spec = spec.clone();
                let label = rec.label.clone();
                let step = rec.step;
                let step_agent = self.wf.steps.get(step.get()).and_then(|s| s.agent.clone());
                let pick = self
                    .hooks
                    .pick_agent(&label, &spec, step_agent.as_deref(), |a| self.busy(a));
                if let Some(e) = pick.event {
                    out.push(Effect::Record(e));
                }
                let ctx = JobCtx {
                    file: self.file,
                    wf: self.wf,
                    vars: &self.vars,
                    workdir: &self.workdir,
                    paths: &self.paths,
                    run_dir: &self.run_dir,
                };
                let resolved = job::resolve(
                    &ctx,
                    &NodeToRun {
                        id,
                        label: &label,
                        step,
                        spec: &spec,
                        agent: pick.agent.as_deref(),
                    },
                    &self.outputs,
                    &self.nodes,
                );
                let rec = &mut self.nodes.0[id.index()];
                rec.agent = pick.agent.clone();
                rec.started_at = Some(now);
                match resolved {
                    Ok(job) if self.needs_approval(step) => {
                        self.await_approval(id, step, Arc::new(job), now, out);
                    }
                    Ok(job) => {
                        out.push(Effect::NodeStarted {
                            label: label.clone(),
                            agent: pick.agent.clone(),
                        });
                        self.launch(id, Arc::new(job), 1, None, now, out);
                    }
                    Err(reason) => {
                        let failure = StepOutcome::Failed {
                            output: String::new(),
                            reason,
                            exit_code: None,
                            retryable: false,
                        };
                        self.node_done(id, failure, 0, now, out);
                    }
                }
            }
        }
    }

    // ---- approvals -------------------------------------------------------------------

    /// Whether step `step` must wait for a person before it runs.
    fn needs_approval(&self, step: StepIdx) -> bool {
        self.wf.steps.get(step.get()).is_some_and(|s| {
            s.approval.as_ref().is_some_and(|a| a.required()) && !self.approved.contains(&s.name)
        })
    }

    /// Node `id` of `step` is resolved and waits for the step's approval.
    fn await_approval(
        &mut self,
        id: NodeId,
        step: StepIdx,
        job: Arc<StepJob>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Some(def) = self.wf.steps.get(step.get()) else {
            return;
        };
        let approval = def.approval.clone();
        if let Kind::Run { attempts, .. } = &mut self.nodes.0[id.index()].kind {
            *attempts = Attempts::AwaitingApproval { job };
        }
        let timeout_ms = approval.as_ref().and_then(|a| a.timeout_ms());
        if let Some(ms) = timeout_ms {
            self.approval_deadlines.insert(id, deadline(now, ms));
        }
        if self.approval_asked.insert(step) {
            out.push(Effect::Record(EventKind::ApprovalRequested {
                step: def.name.clone(),
                approvers: approval
                    .as_ref()
                    .map(|a| a.approvers().to_vec())
                    .unwrap_or_default(),
                timeout_ms,
            }));
        }
    }

    /// Steps waiting for approval: (step name, who may decide).
    pub fn awaiting_approval(&self) -> Vec<(&str, &[String])> {
        let mut out: Vec<(&str, &[String])> = Vec::new();
        for n in &self.nodes.0 {
            if let Kind::Run {
                attempts: Attempts::AwaitingApproval { .. },
                ..
            } = &n.kind
                && let Some(s) = self.wf.steps.get(n.step.get())
                && !out.iter().any(|(name, _)| *name == s.name)
            {
                let approvers = s.approval.as_ref().map_or(&[][..], |a| a.approvers());
                out.push((s.name.as_str(), approvers));
            }
        }
        out
    }

    /// Whether `by` may decide the approval of `step` now; why not otherwise.
    pub fn check_decision(&self, step: &str, by: &str) -> Result<(), String> {
        let waiting = self.awaiting_approval();
        match waiting.iter().find(|(name, _)| *name == step) {
            Some((_, approvers)) if approvers.is_empty() || approvers.iter().any(|a| a == by) => {
                Ok(())
            }
            Some((_, approvers)) => Err(format!(
                "`{by}` may not decide step `{step}`; its approvers are {}",
                approvers
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None if waiting.is_empty() => Err(format!(
                "step `{step}` is not waiting for approval (no step is)"
            )),
            None => Err(format!(
                "step `{step}` is not waiting for approval (these are: {})",
                waiting
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The nodes waiting for approval, of workflow step `step` or of any.
    fn awaiting(&self, step: Option<&str>) -> Vec<NodeId> {
        self.nodes
            .0
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                matches!(
                    n.kind,
                    Kind::Run {
                        attempts: Attempts::AwaitingApproval { .. },
                        ..
                    }
                ) && step.is_none_or(|name| {
                    self.wf
                        .steps
                        .get(n.step.get())
                        .is_some_and(|s| s.name == name)
                })
            })
            .map(|(i, _)| NodeId::new(i))
            .collect()
    }

    /// Whether the run is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The approval of `step` was decided: its waiting nodes start, or fail rejected.
    fn decided(
        &mut self,
        step: &str,
        approved: bool,
        by: String,
        reason: Option<String>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let waiting = self.awaiting(Some(step));
        if waiting.is_empty() {
            return;
        }
        out.push(Effect::Record(EventKind::ApprovalDecided {
            step: step.to_string(),
            approved,
            by: by.clone(),
            reason: reason.clone(),
        }));
        if approved {
            self.approved.insert(step.to_string());
        }
        for id in waiting {
            self.approval_deadlines.remove(&id);
            let rec = &mut self.nodes.0[id.index()];
            let Kind::Run { attempts, .. } = &mut rec.kind else {
                continue;
            };
            let Attempts::AwaitingApproval { job } = std::mem::replace(attempts, Attempts::Idle)
            else {
                continue;
            };
            if approved {
                out.push(Effect::NodeStarted {
                    label: rec.label.clone(),
                    agent: rec.agent.clone(),
                });
                rec.started_at = Some(now);
                self.launch(id, job, 1, None, now, out);
            } else {
                let failure = StepOutcome::Failed {
                    output: String::new(),
                    reason: match &reason {
                        Some(r) => format!("rejected by {by}: {r}"),
                        None => format!("rejected by {by}"),
                    },
                    exit_code: None,
                    retryable: false,
                };
                self.node_done(id, failure, 0, now, out);
            }
        }
    }

    fn busy(&self, agent: &str) -> bool {
        self.nodes.0.iter().any(|n| {
            n.agent.as_deref() == Some(agent)
                && matches!(
                    &n.kind,
                    Kind::Run {
                        attempts: Attempts::Running { .. }
                            | Attempts::Retrying { .. }
                            | Attempts::Parked { .. },
                        ..
                    }
                )
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn launch(
        &mut self,
        id: NodeId,
        job: Arc<StepJob>,
        n: u32,
        previous: Option<&Previous>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        // Agents spend tokens: none starts once the run's budget is spent.
        if job.agent().is_some()
            && let Some(reason) = self.budget.exhausted()
        {
            let failed = StepOutcome::Failed {
                output: previous.map(|p| p.output.clone()).unwrap_or_default(),
                reason,
                exit_code: None,
                retryable: false,
            };
            return self.node_done(id, failed, n.saturating_sub(1), now, out);
        }
        // A provider that reported a rate limit takes no attempt before its reset.
        if self.hold_back(id, &job, n, previous, now, out) {
            return;
        }
        let session = self.session_for(&job);
        let rec = &mut self.nodes.0[id.index()];
        let text = job::attempt_text(&job, n, previous);
        out.push(Effect::Record(EventKind::StepStarted {
            step: rec.label.clone(),
            attempt: n,
            agent: job.agent().map(|a| a.name.clone()),
        }));
        if previous.is_none() && !job.checklist.is_empty() {
            out.push(Effect::Record(EventKind::ChecklistItems {
                step: rec.label.clone(),
                items: job.checklist.clone(),
            }));
        }
        if let Kind::Run { attempts, .. } = &mut rec.kind {
            *attempts = Attempts::Running {
                job: job.clone(),
                n,
            };
        }
        out.push(Effect::Launch(Launch {
            job,
            attempt: n,
            text,
            session,
        }));
    }

    /// The conversation an attempt of `job` continues: its agent's latest, when its step
    /// says `session: resume` (or `inherit`) and the agent has one.
    fn session_for(&self, job: &StepJob) -> Option<String> {
        let agent = job.agent()?;
        let step = self.wf.steps.get(job.step.get())?;
        if !step.session.is_some_and(relay_spec::SessionMode::continues) {
            return None;
        }
        self.sessions.get(&agent.name).cloned()
    }

    fn attempt_done(
        &mut self,
        id: NodeId,
        attempt: u32,
        outcome: StepOutcome,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let Some(rec) = self.nodes.0.get(id.index()) else {
            return;
        };
        let (job, n) = match &rec.kind {
            Kind::Run {
                attempts: Attempts::Running { job, n },
                ..
            } if *n == attempt => (job.clone(), *n),
            Kind::Run {
                attempts: Attempts::Repairing { job, n, previous },
                ..
            } if *n == attempt => {
                let (job, n, previous) = (job.clone(), *n, previous.clone());
                return self.repair_done(id, job, n, previous, outcome, now, out);
            }
            // Not the attempt in flight (a late report): nothing to do.
            _ => return,
        };
        let step = rec.step;
        if let Some(s) = self.steps.get_mut(step.get()) {
            s.attempts += 1;
        }
        if let StepOutcome::NeedsAnswer { output, question } = outcome {
            return self.ask(id, job, n, question, output, now, out);
        }
        if let StepOutcome::RateLimited {
            output,
            message,
            resets_at,
        } = outcome
        {
            let limited = state_park::Limited {
                output,
                message,
                resets_at,
            };
            return self.rate_limited(id, job, n, limited, now, out);
        }
        let label = self.nodes.0[id.index()].label.clone();
        let outcome = match self.judge_checklist(&label, &job, outcome) {
            state_checklist::Judged::Stands(o) => o,
            state_checklist::Judged::Blocked(o) => {
                let reason = match &o {
                    StepOutcome::Failed { reason, .. } => reason.clone(),
                    _ => String::new(),
                };
                self.node_done(id, o, n, now, out);
                return self.stop_blocked(&label, &reason, out);
            }
        };
        let rec = &mut self.nodes.0[id.index()];
        rec.parks = 0;
        let counted = n.saturating_sub(rec.free_attempts);
        let may_retry = outcome.retryable() && counted < job.max_attempts && self.stop.is_none();
        if let (
            true,
            StepOutcome::Failed {
                output,
                reason,
                exit_code,
                ..
            },
        ) = (may_retry, &outcome)
        {
            let label = self.nodes.0[id.index()].label.clone();
            out.push(Effect::Record(EventKind::StepRetrying {
                step: label.clone(),
                attempt: n,
                reason: reason.clone(),
                delay_ms: job.retry_delay.as_millis() as u64,
            }));
            let previous = Previous {
                reason: reason.clone(),
                exit_code: *exit_code,
                output: output.clone(),
            };
            if self.start_repair(id, &job, n, &previous, out) {
                return;
            }
            self.retry(id, job, n, previous, now, out);
            return;
        }
        if let (job::Work::Worktree { .. }, StepOutcome::Completed { output, .. }) =
            (&job.work, &outcome)
        {
            self.worktrees.push(output.trim().to_string());
        }
        self.node_done(id, outcome, n, now, out);
    }

    /// Attempt `n` of node `id` asked a person `question`: the step waits for the answer
    /// (holding its slot), or fails when it may not ask.
    #[allow(clippy::too_many_arguments)]
    fn ask(
        &mut self,
        id: NodeId,
        job: Arc<StepJob>,
        n: u32,
        question: String,
        output: String,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        if !job.human_assistance || self.stop.is_some() {
            let reason = if self.stop.is_some() {
                format!("the agent asked a person (`{question}`) as the run was stopping")
            } else {
                format!(
                    "the agent asked a person (`{question}`), and this step has human assistance off"
                )
            };
            let failed = StepOutcome::Failed {
                output,
                reason,
                exit_code: None,
                retryable: false,
            };
            return self.node_done(id, failed, n, now, out);
        }
        let rec = &mut self.nodes.0[id.index()];
        out.push(Effect::Record(EventKind::QuestionAsked {
            step: rec.label.clone(),
            question: question.clone(),
        }));
        if let Kind::Run { attempts, .. } = &mut rec.kind {
            *attempts = Attempts::Asking {
                job,
                n,
                question,
                output,
            };
        }
    }

    /// The question node `label` asked, if it waits for an answer.
    pub fn open_question(&self, label: &str) -> Option<&str> {
        self.nodes.0.iter().find_map(|n| match &n.kind {
            Kind::Run {
                attempts: Attempts::Asking { question, .. },
                ..
            } if n.label == label => Some(question.as_str()),
            _ => None,
        })
    }

    /// Every open question: (node label, question).
    pub fn open_questions(&self) -> Vec<(&str, &str)> {
        self.nodes
            .0
            .iter()
            .filter_map(|n| match &n.kind {
                Kind::Run {
                    attempts: Attempts::Asking { question, .. },
                    ..
                } => Some((n.label.as_str(), question.as_str())),
                _ => None,
            })
            .collect()
    }

    /// A person answered node `label`'s question: its next attempt starts with it.
    fn answered(&mut self, label: &str, text: String, out: &mut Vec<Effect>) {
        let Some(i) = self.nodes.0.iter().position(|n| {
            n.label == label
                && matches!(
                    n.kind,
                    Kind::Run {
                        attempts: Attempts::Asking { .. },
                        ..
                    }
                )
        }) else {
            return;
        };
        let Kind::Run { attempts, .. } = &mut self.nodes.0[i].kind else {
            return;
        };
        let Attempts::Asking {
            job,
            n,
            question,
            output,
        } = std::mem::replace(attempts, Attempts::Idle)
        else {
            return;
        };
        out.push(Effect::Record(EventKind::QuestionAnswered {
            step: label.to_owned(),
            answer: text.clone(),
        }));
        let session = self.session_for(&job);
        let rec = &mut self.nodes.0[i];
        let next = n + 1;
        let text = job::answered_text(&job, &output, &question, &text);
        out.push(Effect::Record(EventKind::StepStarted {
            step: rec.label.clone(),
            attempt: next,
            agent: job.agent().map(|a| a.name.clone()),
        }));
        if let Kind::Run { attempts, .. } = &mut rec.kind {
            *attempts = Attempts::Running {
                job: job.clone(),
                n: next,
            };
        }
        out.push(Effect::Launch(Launch {
            job,
            attempt: next,
            text,
            session,
        }));
    }

    /// Starts attempt `n + 1` of node `id`, after the retry delay.
    fn retry(
        &mut self,
        id: NodeId,
        job: Arc<StepJob>,
        n: u32,
        previous: Previous,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        if job.retry_delay.is_zero() {
            self.launch(id, job, n + 1, Some(&previous), now, out);
        } else if let Kind::Run { attempts, .. } = &mut self.nodes.0[id.index()].kind {
            let at = now.checked_add(job.retry_delay).unwrap_or(now);
            *attempts = Attempts::Retrying { job, n, previous };
            self.retrying.insert(id, at);
        }
    }

    /// Launches a repair of node `id` before its next attempt, when it may have one and
    /// an agent can do it; whether it did.
    fn start_repair(
        &mut self,
        id: NodeId,
        job: &Arc<StepJob>,
        n: u32,
        previous: &Previous,
        out: &mut Vec<Effect>,
    ) -> bool {
        let rec = &self.nodes.0[id.index()];
        if rec.repairs >= self.repair_budget || matches!(job.work, job::Work::Repair { .. }) {
            return false;
        }
        let upstream = upstream_agent(self.wf, job.step);
        let ctx = JobCtx {
            file: self.file,
            wf: self.wf,
            vars: &self.vars,
            workdir: &self.workdir,
            paths: &self.paths,
            run_dir: &self.run_dir,
        };
        let Some(repair) =
            job::repair_job(&ctx, job, previous, upstream.as_deref(), rec.repairs + 1)
        else {
            return false;
        };
        let rec = &mut self.nodes.0[id.index()];
        rec.repairs += 1;
        out.push(Effect::Record(EventKind::Pattern {
            step: rec.label.clone(),
            action: "repairing".into(),
            detail: format!(
                "{} repairs it (repair {} of {}) after: {}",
                repair.agent().map(|a| a.name.as_str()).unwrap_or("?"),
                rec.repairs,
                self.repair_budget,
                previous.reason
            ),
        }));
        if let Kind::Run { attempts, .. } = &mut rec.kind {
            *attempts = Attempts::Repairing {
                job: job.clone(),
                n,
                previous: previous.clone(),
            };
        }
        let text = repair.text.clone();
        out.push(Effect::Launch(Launch {
            job: Arc::new(repair),
            attempt: n,
            text,
            session: None,
        }));
        true
    }

    /// The repair before attempt `n + 1` of node `id` ended.
    #[allow(clippy::too_many_arguments)]
    fn repair_done(
        &mut self,
        id: NodeId,
        job: Arc<StepJob>,
        n: u32,
        previous: Previous,
        outcome: StepOutcome,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let label = self.nodes.0[id.index()].label.clone();
        match outcome {
            StepOutcome::Completed { output, .. } | StepOutcome::NeedsAnswer { output, .. }
                if self.stop.is_none() =>
            {
                out.push(Effect::Record(EventKind::Pattern {
                    step: label,
                    action: "repaired".into(),
                    detail: output,
                }));
                self.retry(id, job, n, previous, now, out);
            }
            StepOutcome::Cancelled { .. }
            | StepOutcome::Completed { .. }
            | StepOutcome::NeedsAnswer { .. } => {
                let output = previous.output;
                self.node_done(id, StepOutcome::Cancelled { output }, n, now, out);
            }
            StepOutcome::Failed { reason, .. }
            | StepOutcome::Broken { why: reason }
            | StepOutcome::RateLimited {
                message: reason, ..
            } => {
                out.push(Effect::Record(EventKind::Pattern {
                    step: label,
                    action: "repair-failed".into(),
                    detail: reason.clone(),
                }));
                let failed = StepOutcome::Failed {
                    output: previous.output,
                    reason: format!("{} (and {reason})", previous.reason),
                    exit_code: previous.exit_code,
                    retryable: false,
                };
                self.node_done(id, failed, n, now, out);
            }
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Effect>) {
        let due: Vec<NodeId> = self
            .approval_deadlines
            .iter()
            .filter(|(_, at)| now >= **at)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(def) = self
                .nodes
                .0
                .get(id.index())
                .and_then(|n| self.wf.steps.get(n.step.get()))
            else {
                continue;
            };
            let (name, approval) = (def.name.clone(), def.approval.clone());
            let approve = approval
                .as_ref()
                .is_some_and(|a| a.on_timeout() == relay_spec::OnTimeout::Approve);
            let ms = approval.as_ref().and_then(|a| a.timeout_ms()).unwrap_or(0);
            self.decided(
                &name,
                approve,
                "timeout".into(),
                Some(format!("no decision within {ms} ms")),
                now,
                out,
            );
        }
        if let Some((at, ms)) = self.run_deadline
            && now >= at
            && self.stop.is_none()
        {
            self.halt(Stop::TimedOut(ms), now, out);
        }
        let due: Vec<(NodeId, u64)> = self
            .barriers
            .iter()
            .filter(|(id, at, _)| now >= *at && !self.sched.state(*id).is_final())
            .map(|(id, _, ms)| (*id, *ms))
            .collect();
        for (id, ms) in due {
            let reason = format!("barrier timed out after {ms} ms");
            out.push(Effect::Record(EventKind::Pattern {
                step: self.nodes.0[id.index()].label.clone(),
                action: "timed-out".into(),
                detail: reason.clone(),
            }));
            let failure = StepOutcome::Failed {
                output: String::new(),
                reason,
                exit_code: None,
                retryable: false,
            };
            self.node_done(id, failure, 0, now, out);
        }
        let due: Vec<NodeId> = self
            .retrying
            .iter()
            .filter(|(_, at)| now >= **at)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.retrying.remove(&id);
            let attempts = match &mut self.nodes.0[id.index()].kind {
                Kind::Run { attempts, .. } => std::mem::replace(attempts, Attempts::Idle),
                Kind::Gate(_) => continue,
            };
            if let Attempts::Retrying {
                job, n, previous, ..
            } = attempts
            {
                self.launch(id, job, n + 1, Some(&previous), now, out);
            }
        }
        self.unpark(false, now, out);
    }

    /// Stops starting work for `why`: everything not started is skipped, running attempts
    /// are ended, attempts waiting to retry end now.
    fn halt(&mut self, why: Stop, now: Instant, out: &mut Vec<Effect>) {
        self.stop = Some(why);
        out.push(Effect::CancelRunning);
        let skipped = self.sched.halt();
        self.record_skips(&skipped, out);
        let asking: Vec<(NodeId, u32, String)> = self
            .nodes
            .0
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.kind {
                Kind::Run {
                    attempts: Attempts::Asking { n, output, .. },
                    ..
                } => Some((NodeId::new(i), *n, output.clone())),
                _ => None,
            })
            .collect();
        for (id, n, output) in asking {
            self.node_done(id, StepOutcome::Cancelled { output }, n, now, out);
        }
        let awaiting = self.awaiting(None);
        self.approval_deadlines.clear();
        for id in awaiting {
            let output = String::new();
            self.node_done(id, StepOutcome::Cancelled { output }, 0, now, out);
        }
        for id in std::mem::take(&mut self.retrying).into_keys() {
            let (n, output) = match &self.nodes.0[id.index()].kind {
                Kind::Run {
                    attempts: Attempts::Retrying { n, previous, .. },
                    ..
                } => (*n, previous.output.clone()),
                _ => continue,
            };
            self.node_done(id, StepOutcome::Cancelled { output }, n, now, out);
        }
        self.end_parked(now, out);
    }

    // ---- gates -----------------------------------------------------------------------

    fn decide(&mut self, id: NodeId, now: Instant, out: &mut Vec<Effect>) {
        let Kind::Gate(slot) = &mut self.nodes.0[id.index()].kind else {
            return;
        };
        let Some(mut gate) = slot.take() else {
            return;
        };
        let resolution = gate.resolve(&GateCtx {
            me: id,
            nodes: &self.nodes,
            vars: &self.vars,
            outputs: &self.outputs,
            globs: &self.globs,
        });
        match resolution {
            Resolution::Complete { output, events } => {
                for (key, value) in gate.extra_outputs() {
                    self.outputs.insert(key, value);
                }
                self.put_back(id, gate);
                out.extend(events.into_iter().map(Effect::Record));
                let outcome = StepOutcome::Completed {
                    output,
                    exit_code: None,
                };
                self.node_done(id, outcome, 0, now, out);
            }
            Resolution::Skip { reason, events } => {
                for (key, value) in gate.extra_outputs() {
                    self.outputs.insert(key, value);
                }
                self.put_back(id, gate);
                out.extend(events.into_iter().map(Effect::Record));
                self.skipped(id, reason, out);
                // Its steps after it go on, with an empty output.
                self.publish(id, "");
                self.sched.complete(id);
            }
            Resolution::Fail { reason, events } => {
                self.put_back(id, gate);
                out.extend(events.into_iter().map(Effect::Record));
                let outcome = StepOutcome::Failed {
                    output: String::new(),
                    reason,
                    exit_code: None,
                    retryable: false,
                };
                self.node_done(id, outcome, 0, now, out);
            }
            Resolution::Expand {
                nodes,
                wait_for,
                events,
            } => {
                out.extend(events.into_iter().map(Effect::Record));
                let ids = self.place(nodes, out);
                gate.placed(&ids);
                self.put_back(id, gate);
                let wait: Vec<NodeId> = wait_for
                    .into_iter()
                    .map(|r| match r {
                        NodeRef::Id(i) => i,
                        NodeRef::New(k) => ids.get(k).copied().unwrap_or(NodeId::new(usize::MAX)),
                    })
                    .collect();
                self.sched.wait_again(id, &wait);
                if self.sched.state(id) == NodeState::Skipped {
                    let reason = self.halted_reason();
                    self.skipped(id, reason, out);
                }
            }
        }
    }

    fn put_back(&mut self, id: NodeId, gate: Box<dyn Gate>) {
        if let Kind::Gate(slot) = &mut self.nodes.0[id.index()].kind {
            *slot = Some(gate);
        }
    }

    // ---- results ---------------------------------------------------------------------

    /// Node `id` ended for good with `outcome` after `attempts` attempts.
    fn node_done(
        &mut self,
        id: NodeId,
        outcome: StepOutcome,
        attempts: u32,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let rec = &mut self.nodes.0[id.index()];
        let is_run = matches!(rec.kind, Kind::Run { .. });
        if let Kind::Run { attempts: a, .. } = &mut rec.kind {
            *a = Attempts::Done;
        }
        let duration_ms = rec
            .started_at
            .map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64);
        let label = rec.label.clone();
        let agent = rec.agent.clone();
        let soft = rec.soft();
        let step = rec.step;
        if !outcome.is_completed()
            && let Some(s) = self.steps.get_mut(step.get())
        {
            s.last_output = Some(outcome.output().to_string());
        }
        match &outcome {
            StepOutcome::Completed { output, exit_code } => {
                // The output is stored before the node counts as completed.
                out.push(Effect::StoreOutput {
                    label: label.clone(),
                    output: output.clone(),
                });
                out.push(Effect::Record(EventKind::StepCompleted {
                    step: label.clone(),
                    attempt: attempts.max(1),
                    exit_code: *exit_code,
                    duration_ms,
                }));
            }
            StepOutcome::Failed {
                reason, exit_code, ..
            } => out.push(Effect::Record(EventKind::StepFailed {
                step: label.clone(),
                attempt: attempts,
                reason: reason.clone(),
                exit_code: *exit_code,
                duration_ms,
            })),
            StepOutcome::NeedsAnswer { question, .. } => {
                out.push(Effect::Record(EventKind::StepFailed {
                    step: label.clone(),
                    attempt: attempts,
                    reason: format!("unanswered question: {question}"),
                    exit_code: None,
                    duration_ms,
                }))
            }
            StepOutcome::RateLimited { message, .. } => {
                out.push(Effect::Record(EventKind::StepFailed {
                    step: label.clone(),
                    attempt: attempts,
                    reason: format!("rate limited: {message}"),
                    exit_code: None,
                    duration_ms,
                }))
            }
            StepOutcome::Cancelled { .. } => out.push(Effect::Record(EventKind::StepFailed {
                step: label.clone(),
                attempt: attempts,
                reason: "cancelled".into(),
                exit_code: None,
                duration_ms,
            })),
            StepOutcome::Broken { why } => out.push(Effect::Record(EventKind::StepFailed {
                step: label.clone(),
                attempt: attempts,
                reason: why.clone(),
                exit_code: None,
                duration_ms,
            })),
        }
        if is_run {
            let failure = match &outcome {
                StepOutcome::Failed { reason, .. } => Some(reason.clone()),
                StepOutcome::Broken { why } => Some(why.clone()),
                StepOutcome::NeedsAnswer { question, .. } => Some(question.clone()),
                StepOutcome::RateLimited { message, .. } => Some(message.clone()),
                StepOutcome::Completed { .. } | StepOutcome::Cancelled { .. } => None,
            };
            out.push(Effect::NodeEnded {
                label: label.clone(),
                agent: agent.clone(),
                failure,
            });
        }
        self.nodes.0[id.index()].result = Some(NodeResult {
            outcome: outcome.clone(),
            duration_ms,
            agent,
        });
        match outcome {
            StepOutcome::Completed { output, .. } => {
                self.publish(id, &output);
                self.sched.complete(id);
            }
            // Judged by a gate downstream: for the schedule, it is done. A group's nested
            // step with `continueOnFailure` still gives its siblings what it printed.
            StepOutcome::Failed { output, .. } if soft => {
                let goes_on = self
                    .wf
                    .steps
                    .get(step.get())
                    .is_some_and(|s| s.group.is_some() && s.continue_on_failure == Some(true));
                if goes_on {
                    self.publish(id, &output);
                }
                self.sched.complete(id);
            }
            // `continueOnFailure`: reported, and the steps after it go on with what it
            // produced.
            StepOutcome::Failed { output, .. } if self.continues(id) => {
                self.publish(id, &output);
                self.sched.complete(id);
            }
            StepOutcome::Failed { reason, .. }
            | StepOutcome::RateLimited {
                message: reason, ..
            } => {
                self.first_failure.get_or_insert(label.clone());
                let skipped = self.sched.fail(id);
                self.record_skips(&skipped, out);
                if self.needs_human_on_exhaustion && self.stop.is_none() && is_run {
                    // Nothing new starts; what runs finishes; a person decides.
                    self.stop = Some(Stop::NeedsHuman(format!(
                        "step `{label}` used up its retries and repairs: {reason}"
                    )));
                    let skipped = self.sched.halt();
                    self.record_skips(&skipped, out);
                }
            }
            StepOutcome::Cancelled { .. } | StepOutcome::NeedsAnswer { .. } => {
                let skipped = self.sched.fail(id);
                self.record_skips(&skipped, out);
            }
            StepOutcome::Broken { why } => {
                self.first_failure.get_or_insert(label);
                let skipped = self.sched.fail(id);
                self.record_skips(&skipped, out);
                if self.stop.is_none() {
                    self.stop = Some(Stop::Broken(why));
                    let skipped = self.sched.halt();
                    self.record_skips(&skipped, out);
                }
            }
        }
    }

    /// Whether node `id` is the last of a step with `continueOnFailure`.
    fn continues(&self, id: NodeId) -> bool {
        let Some(rec) = self.nodes.0.get(id.index()) else {
            return false;
        };
        self.steps.get(rec.step.get()).and_then(|p| p.final_node) == Some(id)
            && self
                .wf
                .steps
                .get(rec.step.get())
                .is_some_and(|s| s.continue_on_failure == Some(true))
    }

    /// Makes `output` the output of node `id`'s step when the node publishes it.
    fn publish(&mut self, id: NodeId, output: &str) {
        let rec = &self.nodes.0[id.index()];
        let step = rec.step;
        let Some(progress) = self.steps.get_mut(step.get()) else {
            return;
        };
        if rec.publishes {
            if let Some(s) = self.wf.steps.get(step.get()) {
                self.outputs
                    .insert(s.name.clone(), output.trim_end().to_string());
                if let Some(var) = &s.output_var {
                    self.vars.insert(var.clone(), output.trim_end().to_string());
                }
            }
            progress.last_output = Some(output.to_string());
        }
        if progress.final_node == Some(id) {
            self.completed_order.push(step);
        }
    }

    fn halted_reason(&self) -> String {
        match (&self.stop, &self.first_failure) {
            (Some(stop), _) => format!("not started: {}", stop_reason(stop)),
            (None, Some(f)) => format!("not started: the run stopped after step `{f}` failed"),
            (None, None) => "not started".to_string(),
        }
    }

    fn record_skips(&mut self, skipped: &[(NodeId, SkipCause)], out: &mut Vec<Effect>) {
        for &(id, cause) in skipped {
            let reason = match cause {
                SkipCause::Upstream(root) => {
                    format!("dependency `{}` failed", self.nodes.label(root))
                }
                SkipCause::Halted => self.halted_reason(),
            };
            self.skipped(id, reason, out);
        }
    }

    fn skipped(&mut self, id: NodeId, reason: String, out: &mut Vec<Effect>) {
        let rec = &mut self.nodes.0[id.index()];
        out.push(Effect::Record(EventKind::StepSkipped {
            step: rec.label.clone(),
            reason: reason.clone(),
        }));
        rec.skip_reason = Some(reason);
    }

    // ---- the end ---------------------------------------------------------------------

    fn finish(&mut self, now: Instant, out: &mut Vec<Effect>) {
        self.finished = true;
        let steps: Vec<StepSummary> = (0..self.wf.steps.len())
            .map(|s| self.step_summary(s))
            .collect();
        let duration_ms = now.saturating_duration_since(self.started).as_millis() as u64;
        let failed: Vec<&str> = steps
            .iter()
            .zip(&self.wf.steps)
            .filter(|(s, def)| {
                s.status == StepStatus::Failed && def.continue_on_failure != Some(true)
            })
            .map(|(s, _)| s.name.as_str())
            .collect();
        let broken = match &self.stop {
            Some(Stop::Broken(why)) => Some(why.clone()),
            _ => None,
        };
        let (status, reason) = match &self.stop {
            Some(Stop::Cancelled(why)) => (RunStatus::Cancelled, Some(why.clone())),
            Some(Stop::NeedsHuman(why)) => (RunStatus::NeedsHuman, Some(why.clone())),
            Some(stop) => (RunStatus::Failed, Some(stop_reason(stop))),
            None if failed.is_empty() && self.first_failure.is_none() => {
                (RunStatus::Completed, None)
            }
            None if failed.is_empty() => (
                RunStatus::Failed,
                Some(format!(
                    "`{}` failed",
                    self.first_failure.clone().unwrap_or_default()
                )),
            ),
            None => (
                RunStatus::Failed,
                Some(format!(
                    "step{} failed: {}",
                    if failed.len() == 1 { "" } else { "s" },
                    failed.join(", ")
                )),
            ),
        };
        let end = match status {
            RunStatus::Completed => EventKind::RunCompleted { duration_ms },
            RunStatus::Failed => EventKind::RunFailed {
                reason: reason.clone().unwrap_or_default(),
                duration_ms,
            },
            RunStatus::Cancelled => EventKind::RunCancelled {
                reason: reason.clone().unwrap_or_default(),
                duration_ms,
            },
            RunStatus::NeedsHuman => EventKind::RunNeedsHuman {
                reason: reason.clone().unwrap_or_default(),
                duration_ms,
            },
        };
        out.push(Effect::Record(end));
        out.push(Effect::Finish(RunSummary {
            run_id: self.run_id.clone(),
            workflow: self.wf.name.clone(),
            status,
            steps,
            reason,
            duration_ms,
            runtime_error: broken,
            usage: Some(self.budget.total().usage).filter(|u| !u.is_zero()),
            cost_usd: self.budget.total().cost_usd,
            worktrees: self.worktrees.clone(),
            run_dir: self.run_dir.clone(),
        }));
    }

    /// A workflow step as its final node ended.
    fn step_summary(&self, s: usize) -> StepSummary {
        let name = self.wf.steps[s].name.clone();
        let progress = &self.steps[s];
        let rec = progress
            .final_node
            .and_then(|f| self.nodes.0.get(f.index()));
        let result = rec.and_then(|r| r.result.as_ref());
        let (status, reason) = match result {
            Some(r) if r.completed() => (StepStatus::Completed, None),
            Some(r) => (StepStatus::Failed, r.reason().map(str::to_string)),
            None => (
                StepStatus::Skipped,
                rec.and_then(|r| r.skip_reason.clone())
                    .or(Some("not run".into())),
            ),
        };
        let output = match status {
            StepStatus::Completed => progress
                .last_output
                .clone()
                .or_else(|| result.map(|r| r.output().to_string()))
                .unwrap_or_default(),
            _ => progress.last_output.clone().unwrap_or_default(),
        };
        StepSummary {
            name,
            status,
            attempts: progress.attempts,
            exit_code: result.and_then(|r| r.outcome.exit_code()),
            duration_ms: result.map_or(0, |r| r.duration_ms),
            output,
            reason,
            usage: self.budget.of_step(s).map(|b| b.usage),
            cost_usd: self.budget.of_step(s).and_then(|b| b.cost_usd),
        }
    }

    /// Labels of the nodes a resume kept (completed or judged), for `run:resumed`.
    pub fn kept(&self) -> Vec<String> {
        self.nodes
            .0
            .iter()
            .filter(|n| n.result.is_some() && n.started_at.is_none())
            .map(|n| n.label.clone())
            .collect()
    }
}

/// `now + ms`, or the far future when that overflows.
fn deadline(now: Instant, ms: u64) -> Instant {
    now.checked_add(Duration::from_millis(ms))
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// The nearest agent upstream of `step` (breadth first over `dependsOn`), for repairing
/// a step that has none of its own.
fn upstream_agent(wf: &WorkflowDef, step: StepIdx) -> Option<String> {
    let mut queue: std::collections::VecDeque<usize> = [step.get()].into();
    let mut seen = vec![false; wf.steps.len()];
    while let Some(i) = queue.pop_front() {
        let s = wf.steps.get(i)?;
        if i != step.get()
            && let Some(a) = &s.agent
        {
            return Some(a.clone());
        }
        for d in &s.depends_on {
            if let Some(j) = wf.steps.iter().position(|x| &x.name == d)
                && !std::mem::replace(&mut seen[j], true)
            {
                queue.push_back(j);
            }
        }
    }
    None
}

fn stop_reason(stop: &Stop) -> String {
    match stop {
        Stop::Cancelled(why) | Stop::Broken(why) | Stop::NeedsHuman(why) => why.clone(),
        Stop::TimedOut(ms) => format!("run timed out after {ms} ms"),
    }
}

#[path = "state_park.rs"]
mod state_park;

#[path = "state_checklist.rs"]
mod state_checklist;
pub use state_checklist::{Mark, Marks};

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
