//! The loop of a run: start every ready node of the plan while a slot is free (a gate is
//! decided on the spot; a run node becomes a task), record what the tasks report, apply
//! each result (outputs, dependents, failure policy), fail barriers at their timeout, run a
//! saga's compensations after a failure, and stop on the run timeout or a cancel. Every
//! event is appended to the log (and the snapshot refreshed) before the loop acts on it.
//! If the run directory stops accepting writes, running steps are ended before the error
//! is returned, so nothing is left running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_broker::Launcher;
use relay_broker::session::NudgePolicy;
use relay_spec::template::{Quoting, Ref, render};
use relay_spec::{Agent, OnError, Pattern, StepType, WorkflowDef};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventKind, RunStatus};
use crate::exec::{Shared, StepJob, StepResult, run_step};
use crate::plan::{GateCtx, Node, NodeKind, NodeResult, Plan, Resolution, RunSpec};
use crate::replay::Replay;
use crate::run::{RunRequest, RunSummary, StepStatus, StepSummary};
use crate::scheduler::{Scheduler, SkipCause, StepState};
use crate::store::{RunStore, StoreError, write_atomic};
use crate::verify::Check;

/// Records events in the run's log, keeps the snapshot current, and passes them on.
pub(crate) struct EventLog {
    pub store: RunStore,
    pub observer: Option<UnboundedSender<Event>>,
    pub replay: Replay,
}

impl EventLog {
    pub async fn record(&mut self, kind: EventKind) -> Result<(), StoreError> {
        let event = Event::now(kind);
        self.store.append(&event).await?;
        // Only what changes a step's or the run's state rewrites the snapshot; message,
        // agent and pattern events are many and leave it as it is.
        let refresh = matches!(
            event.kind,
            EventKind::RunStarted { .. }
                | EventKind::RunResumed { .. }
                | EventKind::StepStarted { .. }
                | EventKind::StepCompleted { .. }
                | EventKind::StepFailed { .. }
                | EventKind::StepSkipped { .. }
                | EventKind::RunCompleted { .. }
                | EventKind::RunFailed { .. }
                | EventKind::RunCancelled { .. }
        );
        self.replay.apply_event(event.clone());
        if refresh {
            self.store
                .write_json("state.json", &self.replay.snapshot())
                .await?;
        }
        if let Some(o) = &self.observer {
            let _ = o.send(event);
        }
        Ok(())
    }
}

/// Nodes a resumed run keeps, by label, with what they produced.
pub(crate) type Preset = BTreeMap<String, StepSummary>;

struct Loop<'a, L: Launcher> {
    req: &'a RunRequest,
    wf: &'a WorkflowDef,
    agents: BTreeMap<&'a str, &'a Agent>,
    shared: Arc<Shared<L>>,
    log: EventLog,
    nodes: Vec<Node>,
    final_node: Vec<usize>,
    pattern: Pattern,
    sched: Scheduler,
    results: Vec<Option<NodeResult>>,
    skip_reasons: BTreeMap<usize, String>,
    attempts: Vec<u32>,
    last_output: Vec<Option<String>>,
    outputs: BTreeMap<String, String>,
    completed_order: Vec<usize>,
    tasks: JoinSet<StepResult>,
    steps_cancel: CancellationToken,
    stop: Option<(RunStatus, String)>,
    runtime_error: Option<String>,
    first_failure: Option<String>,
    pool: Vec<String>,
    busy: BTreeMap<usize, String>,
    ran_by: BTreeMap<usize, String>,
    barriers: Vec<(usize, Instant, u64)>,
    compensated: bool,
}

/// Runs `plan` to its end in the opened run `log`, keeping the `preset` nodes.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drive<L: Launcher>(
    launcher: Arc<L>,
    req: &RunRequest,
    wf: &WorkflowDef,
    plan: Plan,
    log: EventLog,
    preset: Preset,
    started: Instant,
    relay: Arc<crate::messaging::RunMessaging>,
) -> Result<RunSummary, StoreError> {
    let file = &req.loaded.file;
    let swarm = file.swarm.clone().unwrap_or_default();
    let policy = wf
        .on_error
        .or(file.error_handling.as_ref().and_then(|e| e.strategy))
        .unwrap_or(OnError::Fail);
    let pattern = plan.pattern.pattern;
    let pool = if pattern == Pattern::Swarm {
        crate::patterns::swarm_pool(file)
    } else {
        Vec::new()
    };
    // A swarm runs at most one step per swarm agent.
    let limit = match (swarm.max_concurrency.map(|m| m as usize), pool.len()) {
        (l, 0) => l,
        (Some(l), p) => Some(l.min(p)),
        (None, p) => Some(p),
    };
    let deps: Vec<Vec<usize>> = plan.nodes.iter().map(|n| n.deps.clone()).collect();
    let done: Vec<bool> = plan
        .nodes
        .iter()
        .map(|n| preset.contains_key(&n.label))
        .collect();
    let mut sched = Scheduler::with_completed(deps, limit, policy.halts_run(), &done);
    for (i, n) in plan.nodes.iter().enumerate() {
        if matches!(n.kind, NodeKind::Gate(_)) {
            sched.mark_urgent(i);
        }
    }
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel::<EventKind>();
    let nudge = swarm.idle_nudge.as_ref().map(|n| NudgePolicy {
        nudge_after: Duration::from_millis(n.nudge_after_ms.unwrap_or(120_000)),
        escalate_after: Duration::from_millis(n.escalate_after_ms.unwrap_or(120_000)),
        max_nudges: n.max_nudges.unwrap_or(1),
    });
    let shared = Arc::new(Shared {
        launcher,
        run_id: log.replay.run_id.clone().unwrap_or_default(),
        run_dir: log.store.dir().to_path_buf(),
        self_bin: req.self_bin.clone(),
        rehearse: req.rehearse,
        settings: req.settings.clone(),
        nudge,
        events: ev_tx,
        may_send: relay.policy(),
        relay,
    });
    // Who may message whom is the pattern's to say.
    if plan.topology != crate::patterns::Topology::All {
        let topology = plan.topology.clone();
        let rule = match &topology {
            crate::patterns::Topology::Hub(_) => "hub-spoke: spokes message only the hub",
            crate::patterns::Topology::Tree(_) => {
                "hierarchical: agents message only their manager and direct reports"
            }
            crate::patterns::Topology::Chain(_) => {
                "handoff: agents message only their neighbours in the chain"
            }
            crate::patterns::Topology::All => "everyone may message everyone",
        };
        shared
            .may_send
            .set(relay_messaging::SendPolicy::new(rule, move |from, to| {
                topology.may_send(from, to).is_ok()
            }));
    }
    let n_steps = wf.steps.len();
    let mut results = vec![None; plan.nodes.len()];
    let mut outputs = BTreeMap::new();
    let mut last_output = vec![None; n_steps];
    let mut completed_order = Vec::new();
    for (i, node) in plan.nodes.iter().enumerate() {
        if let Some(s) = preset.get(&node.label) {
            results[i] = Some(NodeResult {
                completed: true,
                output: s.output.clone(),
                reason: None,
                exit_code: s.exit_code,
                duration_ms: s.duration_ms,
                agent: None,
            });
            if node.publishes {
                outputs.insert(
                    wf.steps[node.origin].name.clone(),
                    s.output.trim_end().to_string(),
                );
                last_output[node.origin] = Some(s.output.clone());
            }
            if plan.final_node.get(node.origin) == Some(&i) {
                completed_order.push(node.origin);
            }
        }
    }
    let now = Instant::now();
    let barriers: Vec<(usize, Instant, u64)> = plan
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let name = n.label.strip_prefix("barrier:")?;
            let b = file
                .coordination
                .as_ref()?
                .barriers
                .iter()
                .find(|b| b.name == name)?;
            let ms = b.timeout_ms?;
            Some((i, now + Duration::from_millis(ms), ms))
        })
        .collect();
    let mut lp = Loop {
        req,
        wf,
        agents: file.agents.iter().map(|a| (a.name.as_str(), a)).collect(),
        shared,
        log,
        final_node: plan.final_node,
        pattern,
        sched,
        results,
        skip_reasons: BTreeMap::new(),
        attempts: vec![0; n_steps],
        last_output,
        outputs,
        completed_order,
        nodes: plan.nodes,
        tasks: JoinSet::new(),
        steps_cancel: req.cancel.child_token(),
        stop: None,
        runtime_error: None,
        first_failure: None,
        pool,
        busy: BTreeMap::new(),
        ran_by: BTreeMap::new(),
        barriers,
        compensated: false,
    };
    let deadline = swarm.timeout_ms.map(Duration::from_millis);
    match lp.run(ev_rx, deadline).await {
        Ok(()) => lp.finish(started).await,
        Err(e) => {
            // The run directory is failing us: end every running agent before giving up.
            lp.steps_cancel.cancel();
            while lp.tasks.join_next().await.is_some() {}
            Err(e)
        }
    }
}

impl<L: Launcher> Loop<'_, L> {
    async fn run(
        &mut self,
        mut ev_rx: UnboundedReceiver<EventKind>,
        run_deadline: Option<Duration>,
    ) -> Result<(), StoreError> {
        let deadline = async {
            match run_deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        loop {
            self.start_ready().await?;
            if self.sched.is_done() && self.tasks.is_empty() {
                if self.compensate().await? {
                    continue;
                }
                break;
            }
            let barrier = self
                .barriers
                .iter()
                .filter(|(i, _, _)| !self.sched.state(*i).is_final())
                .min_by_key(|(_, at, _)| *at)
                .copied();
            let barrier_wait = async {
                match barrier {
                    Some((_, at, _)) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(kind) = ev_rx.recv() => self.log.record(kind).await?,
                Some(joined) = self.tasks.join_next() => {
                    // Every event a step sent before it returned is recorded first.
                    while let Ok(kind) = ev_rx.try_recv() {
                        self.log.record(kind).await?;
                    }
                    match joined {
                        Ok(r) => self.on_result(r).await?,
                        Err(e) => {
                            self.runtime_error.get_or_insert_with(|| format!("a step task failed: {e}"));
                        }
                    }
                }
                () = barrier_wait => {
                    if let Some((i, _, ms)) = barrier {
                        self.barriers.retain(|(b, _, _)| *b != i);
                        self.barrier_timeout(i, ms).await?;
                    }
                }
                () = &mut deadline, if self.stop.is_none() => {
                    let ms = run_deadline.map(|d| d.as_millis()).unwrap_or(0);
                    self.halt(RunStatus::Failed, format!("run timed out after {ms} ms")).await?;
                }
                () = self.req.cancel.cancelled(), if self.stop.is_none() => {
                    let why = if self.log.store.dir().join(crate::store::CANCEL_REQUEST).exists() {
                        "cancelled by `agent-relay cancel`".to_string()
                    } else {
                        "interrupted".to_string()
                    };
                    self.halt(RunStatus::Cancelled, why).await?;
                }
            }
        }
        while let Ok(kind) = ev_rx.try_recv() {
            self.log.record(kind).await?;
        }
        // A valid plan reaches every node; never leave a hole if one did not.
        let unreached = self.sched.skip_unreached();
        self.record_skips(&unreached).await
    }

    async fn halt(&mut self, status: RunStatus, why: String) -> Result<(), StoreError> {
        self.stop = Some((status, why));
        self.steps_cancel.cancel();
        let skipped = self.sched.halt();
        self.record_skips(&skipped).await
    }

    async fn barrier_timeout(&mut self, i: usize, ms: u64) -> Result<(), StoreError> {
        if self.sched.state(i).is_final() {
            return Ok(());
        }
        let label = self.nodes[i].label.clone();
        let reason = format!("barrier timed out after {ms} ms");
        self.log
            .record(EventKind::Pattern {
                step: label.clone(),
                action: "timed-out".into(),
                detail: reason.clone(),
            })
            .await?;
        self.fail_node(i, 0, None, 0, &reason).await
    }

    /// After a failed saga, undo the completed steps; returns whether nodes were added.
    async fn compensate(&mut self) -> Result<bool, StoreError> {
        if self.pattern != Pattern::Saga
            || self.compensated
            || self.first_failure.is_none()
            || matches!(self.stop, Some((RunStatus::Cancelled, _)))
        {
            return Ok(false);
        }
        self.compensated = true;
        let first = self.nodes.len();
        let nodes = crate::patterns::saga_compensations(self.wf, &self.completed_order, first);
        if nodes.is_empty() {
            return Ok(false);
        }
        let order: Vec<String> = nodes.iter().map(|n| n.label.clone()).collect();
        self.log
            .record(EventKind::Pattern {
                step: self.first_failure.clone().unwrap_or_default(),
                action: "compensating".into(),
                detail: format!("undoing in order: {}", order.join(", ")),
            })
            .await?;
        self.sched.unhalt();
        for node in nodes {
            self.push_node(node);
        }
        Ok(true)
    }

    fn push_node(&mut self, node: Node) -> usize {
        let i = self.sched.add_step(node.deps.clone());
        debug_assert_eq!(i, self.nodes.len());
        if matches!(node.kind, NodeKind::Gate(_)) {
            self.sched.mark_urgent(i);
        }
        self.nodes.push(node);
        self.results.push(None);
        i
    }

    async fn start_ready(&mut self) -> Result<(), StoreError> {
        while let Some(i) = self.sched.next_to_start() {
            if matches!(self.nodes[i].kind, NodeKind::Gate(_)) {
                self.decide(i).await?;
                continue;
            }
            match self.prepare(i).await? {
                Ok(job) => {
                    self.tasks.spawn(run_step(self.shared.clone(), job));
                }
                Err(reason) => self.fail_node(i, 0, None, 0, &reason).await?,
            }
        }
        Ok(())
    }

    /// Lets gate `i` decide; applies its decision.
    async fn decide(&mut self, i: usize) -> Result<(), StoreError> {
        let NodeKind::Gate(mut gate) =
            std::mem::replace(&mut self.nodes[i].kind, NodeKind::Run(RunSpec::default()))
        else {
            return Ok(());
        };
        let labels: Vec<String> = self.nodes.iter().map(|n| n.label.clone()).collect();
        let resolution = gate.resolve(&GateCtx {
            labels: &labels,
            results: &self.results,
            vars: &self.req.vars,
            outputs: &self.outputs,
            next_index: self.nodes.len(),
            me: i,
        });
        self.nodes[i].kind = NodeKind::Gate(gate);
        match resolution {
            Resolution::Complete { output, events } => {
                for e in events {
                    self.log.record(e).await?;
                }
                self.complete_node(i, 0, None, 0, output).await
            }
            Resolution::Fail { reason, events } => {
                for e in events {
                    self.log.record(e).await?;
                }
                self.fail_node(i, 0, None, 0, &reason).await
            }
            Resolution::Expand {
                nodes,
                wait_for,
                events,
            } => {
                for e in events {
                    self.log.record(e).await?;
                }
                for node in nodes {
                    self.push_node(node);
                }
                self.sched.wait_again(i, &wait_for);
                Ok(())
            }
        }
    }

    async fn complete_node(
        &mut self,
        i: usize,
        attempts: u32,
        exit_code: Option<i32>,
        duration_ms: u64,
        output: String,
    ) -> Result<(), StoreError> {
        let label = self.nodes[i].label.clone();
        let origin = self.nodes[i].origin;
        // The output is stored before the node counts as completed.
        let dir = self.log.store.step_dir(&label).await?;
        write_atomic(&dir.join("output.txt"), output.as_bytes()).await?;
        self.log
            .record(EventKind::StepCompleted {
                step: label,
                attempt: attempts.max(1),
                exit_code,
                duration_ms,
            })
            .await?;
        if self.nodes[i].publishes {
            self.outputs.insert(
                self.wf.steps[origin].name.clone(),
                output.trim_end().to_string(),
            );
            self.last_output[origin] = Some(output.clone());
        }
        if self.final_node.get(origin) == Some(&i) {
            self.completed_order.push(origin);
        }
        self.results[i] = Some(NodeResult {
            completed: true,
            output,
            reason: None,
            exit_code,
            duration_ms,
            agent: self.ran_by.get(&i).cloned(),
        });
        self.sched.complete(i);
        Ok(())
    }

    async fn fail_node(
        &mut self,
        i: usize,
        attempts: u32,
        exit_code: Option<i32>,
        duration_ms: u64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let label = self.nodes[i].label.clone();
        self.log
            .record(EventKind::StepFailed {
                step: label.clone(),
                attempt: attempts,
                reason: reason.to_string(),
                exit_code,
                duration_ms,
            })
            .await?;
        let output = self.results[i]
            .as_ref()
            .map(|r| r.output.clone())
            .unwrap_or_default();
        self.results[i] = Some(NodeResult {
            completed: false,
            output,
            reason: Some(reason.to_string()),
            exit_code,
            duration_ms,
            agent: self.ran_by.get(&i).cloned(),
        });
        let soft = matches!(&self.nodes[i].kind, NodeKind::Run(s) if s.soft);
        if soft {
            // Judged by a gate downstream: for the schedule, it is done.
            self.sched.complete(i);
            return Ok(());
        }
        self.first_failure.get_or_insert(label);
        let skipped = self.sched.fail(i);
        self.record_skips(&skipped).await
    }

    async fn on_result(&mut self, r: StepResult) -> Result<(), StoreError> {
        let i = r.index;
        self.busy.remove(&i);
        let origin = self.nodes[i].origin;
        self.attempts[origin] += r.attempts;
        let duration_ms = r.duration.as_millis() as u64;
        if r.completed {
            return self
                .complete_node(i, r.attempts, r.exit_code, duration_ms, r.output)
                .await;
        }
        self.last_output[origin] = Some(r.output.clone());
        self.results[i] = Some(NodeResult {
            completed: false,
            output: r.output.clone(),
            reason: r.reason.clone(),
            exit_code: r.exit_code,
            duration_ms,
            agent: self.ran_by.get(&i).cloned(),
        });
        let reason = r.reason.clone().unwrap_or_else(|| "failed".into());
        if let Some(why) = r.runtime_error {
            // The machine failed the step (missing CLI, spawn, disk): nothing else can
            // be trusted to run, whatever the failure policy or pattern.
            self.runtime_error.get_or_insert(why);
            self.fail_node(i, r.attempts, r.exit_code, duration_ms, &reason)
                .await?;
            let skipped = self.sched.halt();
            return self.record_skips(&skipped).await;
        }
        if r.cancelled {
            self.log
                .record(EventKind::StepFailed {
                    step: self.nodes[i].label.clone(),
                    attempt: r.attempts,
                    reason,
                    exit_code: r.exit_code,
                    duration_ms,
                })
                .await?;
            let skipped = self.sched.fail(i);
            return self.record_skips(&skipped).await;
        }
        self.fail_node(i, r.attempts, r.exit_code, duration_ms, &reason)
            .await
    }

    async fn record_skips(&mut self, skipped: &[(usize, SkipCause)]) -> Result<(), StoreError> {
        for (i, cause) in skipped {
            let reason = match cause {
                SkipCause::Upstream(root) => {
                    format!("dependency `{}` failed", self.nodes[*root].label)
                }
                SkipCause::Halted => match (&self.stop, &self.first_failure) {
                    (Some((_, why)), _) => format!("not started: {why}"),
                    (None, Some(f)) => {
                        format!("not started: the run stopped after step `{f}` failed")
                    }
                    (None, None) => "not started".to_string(),
                },
            };
            self.log
                .record(EventKind::StepSkipped {
                    step: self.nodes[*i].label.clone(),
                    reason: reason.clone(),
                })
                .await?;
            self.skip_reasons.insert(*i, reason);
        }
        Ok(())
    }

    async fn finish(mut self, started: Instant) -> Result<RunSummary, StoreError> {
        let wf = self.wf;
        let steps: Vec<StepSummary> = (0..wf.steps.len()).map(|s| self.step_summary(s)).collect();
        let duration_ms = started.elapsed().as_millis() as u64;
        let failed_steps: Vec<&str> = steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
            .map(|s| s.name.as_str())
            .collect();
        let (status, reason) = match self.stop.take() {
            Some((status, reason)) => (status, Some(reason)),
            None if self.runtime_error.is_some() => (RunStatus::Failed, self.runtime_error.clone()),
            None if failed_steps.is_empty() && self.first_failure.is_none() => {
                (RunStatus::Completed, None)
            }
            None => (
                RunStatus::Failed,
                Some(if failed_steps.is_empty() {
                    format!(
                        "`{}` failed",
                        self.first_failure.clone().unwrap_or_default()
                    )
                } else {
                    format!(
                        "step{} failed: {}",
                        if failed_steps.len() == 1 { "" } else { "s" },
                        failed_steps.join(", ")
                    )
                }),
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
        };
        self.log.record(end).await?;
        let summary = RunSummary {
            run_id: self.shared.run_id.clone(),
            workflow: wf.name.clone(),
            status,
            steps,
            reason,
            duration_ms,
            runtime_error: self.runtime_error,
            run_dir: self.log.store.dir().to_path_buf(),
        };
        self.log.store.write_json("result.json", &summary).await?;
        Ok(summary)
    }

    /// A workflow step as its final node ended.
    fn step_summary(&self, s: usize) -> StepSummary {
        let f = self.final_node[s];
        let name = self.wf.steps[s].name.clone();
        let result = self.results.get(f).and_then(Option::as_ref);
        let state = self.sched.state(f);
        let (status, reason) = match (result, state) {
            (Some(r), _) if r.completed => (StepStatus::Completed, None),
            (Some(r), _) => (StepStatus::Failed, r.reason.clone()),
            (None, StepState::Skipped) => (
                StepStatus::Skipped,
                self.skip_reasons
                    .get(&f)
                    .cloned()
                    .or(Some("not run".into())),
            ),
            (None, _) => (StepStatus::Skipped, Some("not run".into())),
        };
        let output = match status {
            StepStatus::Completed => self
                .outputs
                .get(&name)
                .cloned()
                .or_else(|| result.map(|r| r.output.clone()))
                .unwrap_or_default(),
            _ => self.last_output[s].clone().unwrap_or_default(),
        };
        // Keep the trailing newline of the published text (the stored output is exact).
        let output = match (&self.last_output[s], status) {
            (Some(full), StepStatus::Completed) if full.trim_end() == output => full.clone(),
            _ => output,
        };
        StepSummary {
            name,
            status,
            attempts: self.attempts[s],
            exit_code: result.and_then(|r| r.exit_code),
            duration_ms: result.map(|r| r.duration_ms).unwrap_or(0),
            output,
            reason,
        }
    }

    /// Interpolates node `i` against the variables and completed outputs. The outer error
    /// is the run directory failing; the inner one fails only this node.
    async fn prepare(&mut self, i: usize) -> Result<Result<StepJob, String>, StoreError> {
        let req = self.req;
        let node = &self.nodes[i];
        let NodeKind::Run(spec) = &node.kind else {
            return Ok(Err("not a runnable node".into()));
        };
        let spec = spec.clone();
        let label = node.label.clone();
        let step = &self.wf.steps[node.origin];
        let agent_name = if spec.pooled {
            let free = self
                .pool
                .iter()
                .find(|a| !self.busy.values().any(|b| b == *a))
                .or(self.pool.first())
                .cloned();
            if let Some(a) = &free {
                self.busy.insert(i, a.clone());
            }
            free.or(step.agent.clone())
        } else if let Some((state, fallback)) = spec
            .breaker
            .as_ref()
            .filter(|(st, _)| st.lock().map(|s| s.is_open()).unwrap_or(false))
        {
            let _ = state;
            self.log
                .record(EventKind::Pattern {
                    step: label.clone(),
                    action: "fallback".into(),
                    detail: format!("breaker open: {fallback} instead of the primary"),
                })
                .await?;
            Some(fallback.clone())
        } else {
            spec.agent.clone().or(step.agent.clone())
        };
        if let Some(a) = &agent_name {
            self.ran_by.insert(i, a.clone());
        }
        let agent = agent_name
            .as_deref()
            .and_then(|a| self.agents.get(a))
            .map(|a| (*a).clone());
        let step_dir = self.log.store.step_dir(&label).await?;
        let mut vars = req.vars.clone();
        vars.extend(spec.vars.clone());
        let outputs = &self.outputs;
        let fill = |text: &str, q: Quoting| {
            render(text, &vars, outputs, q).map_err(|m: Vec<Ref>| {
                let refs: Vec<String> = m.iter().map(|r| r.to_string()).collect();
                format!("no value for {}", refs.join(", "))
            })
        };
        let (raw, quoting) = match step.kind() {
            StepType::Deterministic => (
                spec.task
                    .as_deref()
                    .or(step.command.as_deref())
                    .unwrap_or(""),
                Quoting::Shell,
            ),
            StepType::Agent => (
                spec.task.as_deref().or(step.task.as_deref()).unwrap_or(""),
                Quoting::None,
            ),
        };
        let mut text = match fill(raw, quoting) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
        if step.kind() == StepType::Agent {
            for (heading, body) in &spec.context {
                text.push_str(&format!("\n\n## {heading}\n{body}"));
            }
            for (heading, j) in &spec.inputs {
                let body =
                    crate::patterns::result_text(self.results.get(*j).and_then(Option::as_ref));
                text.push_str(&format!("\n\n## {heading}\n{body}"));
            }
            if spec.board
                && let Ok(board) = std::fs::read_to_string(self.log.store.dir().join("board.json"))
                && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&board)
                && !map.is_empty()
            {
                text.push_str("\n\n## Shared board");
                for (k, v) in map {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    text.push_str(&format!("\n- {k}: {v}"));
                }
            }
        }
        let cwd = match step
            .cwd
            .as_deref()
            .or(agent.as_ref().and_then(|a| a.cwd.as_deref()))
        {
            Some(c) => match fill(c, Quoting::None) {
                Ok(c) => req.workdir.join(c),
                Err(e) => return Ok(Err(e)),
            },
            None => req.workdir.clone(),
        };
        let check = match (&step.verification, spec.unverified) {
            (Some(v), false) => {
                let raw = v.value.as_ref().map(|s| s.as_text()).unwrap_or_default();
                let q = if v.kind == relay_spec::VerificationType::Custom {
                    Quoting::Shell
                } else {
                    Quoting::None
                };
                match fill(&raw, q) {
                    Ok(value) => Some(Check {
                        kind: v.kind,
                        value,
                        timeout: Duration::from_millis(v.timeout_ms.unwrap_or(60_000)),
                        description: v.description.clone(),
                    }),
                    Err(e) => return Ok(Err(e)),
                }
            }
            _ => None,
        };
        let eh = req.loaded.file.error_handling.clone().unwrap_or_default();
        let constraints = agent.as_ref().and_then(|a| a.constraints.clone());
        let retries = spec
            .retries
            .or(step.retries)
            .or(constraints.as_ref().and_then(|c| c.retries))
            .or(eh.max_retries)
            .unwrap_or(0);
        let timeout = step
            .timeout_ms
            .or(constraints.as_ref().and_then(|c| c.timeout_ms))
            .map(Duration::from_millis);
        Ok(Ok(StepJob {
            index: i,
            label,
            step: step.clone(),
            agent,
            text,
            cwd,
            check,
            max_attempts: retries.saturating_add(1),
            retry_delay: Duration::from_millis(eh.retry_delay_ms.unwrap_or(0)),
            timeout,
            step_dir,
            cancel: self.steps_cancel.child_token(),
        }))
    }
}
