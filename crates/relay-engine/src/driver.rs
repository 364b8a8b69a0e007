//! The loop of a run: start every ready step while a slot is free, record what the steps
//! report, apply each result (outputs, dependents, failure policy), and stop on the run
//! timeout or a cancel. Every event is appended to the log (and the snapshot refreshed)
//! before the loop acts on it. If the run directory stops accepting writes, running
//! steps are ended before the error is returned, so nothing is left running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_broker::Launcher;
use relay_broker::session::NudgePolicy;
use relay_spec::template::{Quoting, Ref, render};
use relay_spec::{Agent, OnError, StepType, WorkflowDef};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventKind, RunStatus};
use crate::exec::{Shared, StepJob, StepResult, run_step};
use crate::replay::Replay;
use crate::run::{RunRequest, RunSummary, StepStatus, StepSummary};
use crate::scheduler::{Scheduler, SkipCause};
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
        let refresh = !matches!(
            event.kind,
            EventKind::AgentIdle { .. } | EventKind::Warning { .. }
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

/// Steps a resumed run keeps, by index, with what they produced.
pub(crate) type Preset = BTreeMap<usize, StepSummary>;

struct Loop<'a, L: Launcher> {
    req: &'a RunRequest,
    wf: &'a WorkflowDef,
    agents: BTreeMap<&'a str, &'a Agent>,
    shared: Arc<Shared<L>>,
    log: EventLog,
    sched: Scheduler,
    results: Vec<Option<StepSummary>>,
    outputs: BTreeMap<String, String>,
    tasks: JoinSet<StepResult>,
    steps_cancel: CancellationToken,
    stop: Option<(RunStatus, String)>,
    runtime_error: Option<String>,
    first_failure: Option<String>,
}

/// Runs `wf` to its end in the opened run `log`, keeping the `preset` steps.
pub(crate) async fn drive<L: Launcher>(
    launcher: Arc<L>,
    req: &RunRequest,
    wf: &WorkflowDef,
    log: EventLog,
    preset: Preset,
    started: Instant,
) -> Result<RunSummary, StoreError> {
    let file = &req.loaded.file;
    let swarm = file.swarm.clone().unwrap_or_default();
    let policy = wf
        .on_error
        .or(file.error_handling.as_ref().and_then(|e| e.strategy))
        .unwrap_or(OnError::Fail);
    let index: BTreeMap<&str, usize> = wf
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = wf
        .steps
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let done: Vec<bool> = (0..wf.steps.len())
        .map(|i| preset.contains_key(&i))
        .collect();
    let sched = Scheduler::with_completed(
        deps,
        swarm.max_concurrency.map(|m| m as usize),
        policy.halts_run(),
        &done,
    );
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
    });
    let mut results: Vec<Option<StepSummary>> = vec![None; wf.steps.len()];
    let mut outputs = BTreeMap::new();
    for (i, s) in preset {
        outputs.insert(wf.steps[i].name.clone(), s.output.trim_end().to_string());
        results[i] = Some(s);
    }
    let mut lp = Loop {
        req,
        wf,
        agents: file.agents.iter().map(|a| (a.name.as_str(), a)).collect(),
        shared,
        log,
        sched,
        results,
        outputs,
        tasks: JoinSet::new(),
        steps_cancel: req.cancel.child_token(),
        stop: None,
        runtime_error: None,
        first_failure: None,
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
                break;
            }
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
        // A valid plan reaches every step; never leave a hole if one did not.
        let unreached = self.sched.skip_unreached();
        self.record_skips(&unreached).await
    }

    async fn halt(&mut self, status: RunStatus, why: String) -> Result<(), StoreError> {
        self.stop = Some((status, why));
        self.steps_cancel.cancel();
        let skipped = self.sched.halt();
        self.record_skips(&skipped).await
    }

    async fn start_ready(&mut self) -> Result<(), StoreError> {
        while let Some(i) = self.sched.next_to_start() {
            match self.prepare(i).await? {
                Ok(job) => {
                    self.tasks.spawn(run_step(self.shared.clone(), job));
                }
                Err(reason) => {
                    let name = self.wf.steps[i].name.clone();
                    self.log
                        .record(EventKind::StepFailed {
                            step: name.clone(),
                            attempt: 0,
                            reason: reason.clone(),
                            exit_code: None,
                            duration_ms: 0,
                        })
                        .await?;
                    self.results[i] = Some(failed(&name, 0, None, 0, "", &reason));
                    self.first_failure.get_or_insert(name);
                    let skipped = self.sched.fail(i);
                    self.record_skips(&skipped).await?;
                }
            }
        }
        Ok(())
    }

    async fn on_result(&mut self, r: StepResult) -> Result<(), StoreError> {
        let name = self.wf.steps[r.index].name.clone();
        let duration_ms = r.duration.as_millis() as u64;
        if r.completed {
            // The output is stored before the step counts as completed.
            let dir = self.log.store.step_dir(&name).await?;
            write_atomic(&dir.join("output.txt"), r.output.as_bytes()).await?;
            self.log
                .record(EventKind::StepCompleted {
                    step: name.clone(),
                    attempt: r.attempts,
                    exit_code: r.exit_code,
                    duration_ms,
                })
                .await?;
            self.outputs
                .insert(name.clone(), r.output.trim_end().to_string());
            self.results[r.index] = Some(StepSummary {
                name,
                status: StepStatus::Completed,
                attempts: r.attempts,
                exit_code: r.exit_code,
                duration_ms,
                output: r.output,
                reason: None,
            });
            self.sched.complete(r.index);
            return Ok(());
        }
        let reason = r.reason.clone().unwrap_or_else(|| "failed".into());
        self.log
            .record(EventKind::StepFailed {
                step: name.clone(),
                attempt: r.attempts,
                reason: reason.clone(),
                exit_code: r.exit_code,
                duration_ms,
            })
            .await?;
        self.results[r.index] = Some(failed(
            &name,
            r.attempts,
            r.exit_code,
            duration_ms,
            &r.output,
            &reason,
        ));
        if !r.cancelled {
            self.first_failure.get_or_insert(name);
        }
        let mut skipped = self.sched.fail(r.index);
        if let Some(why) = r.runtime_error {
            // The machine failed the step (missing CLI, spawn, disk): nothing else can
            // be trusted to run, whatever the failure policy.
            self.runtime_error.get_or_insert(why);
            skipped.extend(self.sched.halt());
        }
        self.record_skips(&skipped).await
    }

    async fn record_skips(&mut self, skipped: &[(usize, SkipCause)]) -> Result<(), StoreError> {
        for (i, cause) in skipped {
            let reason = match cause {
                SkipCause::Upstream(root) => {
                    format!("dependency `{}` failed", self.wf.steps[*root].name)
                }
                SkipCause::Halted => match (&self.stop, &self.first_failure) {
                    (Some((_, why)), _) => format!("not started: {why}"),
                    (None, Some(f)) => {
                        format!("not started: the run stopped after step `{f}` failed")
                    }
                    (None, None) => "not started".to_string(),
                },
            };
            let name = self.wf.steps[*i].name.clone();
            self.log
                .record(EventKind::StepSkipped {
                    step: name.clone(),
                    reason: reason.clone(),
                })
                .await?;
            self.results[*i] = Some(StepSummary {
                name,
                status: StepStatus::Skipped,
                attempts: 0,
                exit_code: None,
                duration_ms: 0,
                output: String::new(),
                reason: Some(reason),
            });
        }
        Ok(())
    }

    async fn finish(mut self, started: Instant) -> Result<RunSummary, StoreError> {
        let wf = self.wf;
        let steps: Vec<StepSummary> = std::mem::take(&mut self.results)
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.unwrap_or_else(|| failed(&wf.steps[i].name, 0, None, 0, "", "not run")))
            .collect();
        let duration_ms = started.elapsed().as_millis() as u64;
        let failed_steps: Vec<&str> = steps
            .iter()
            .filter(|s| s.status == StepStatus::Failed)
            .map(|s| s.name.as_str())
            .collect();
        let (status, reason) = match self.stop.take() {
            Some((status, reason)) => (status, Some(reason)),
            None if self.runtime_error.is_some() => (RunStatus::Failed, self.runtime_error.clone()),
            None if failed_steps.is_empty() => (RunStatus::Completed, None),
            None => (
                RunStatus::Failed,
                Some(format!(
                    "step{} failed: {}",
                    if failed_steps.len() == 1 { "" } else { "s" },
                    failed_steps.join(", ")
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

    /// Interpolates step `i` against the variables and completed outputs. The outer error
    /// is the run directory failing; the inner one fails only this step.
    async fn prepare(&self, i: usize) -> Result<Result<StepJob, String>, StoreError> {
        let req = self.req;
        let step = &self.wf.steps[i];
        let agent = step
            .agent
            .as_deref()
            .and_then(|a| self.agents.get(a))
            .map(|a| (*a).clone());
        let step_dir = self.log.store.step_dir(&step.name).await?;
        let outputs = &self.outputs;
        let fill = |text: &str, q: Quoting| {
            render(text, &req.vars, outputs, q).map_err(|m: Vec<Ref>| {
                let refs: Vec<String> = m.iter().map(|r| r.to_string()).collect();
                format!("no value for {}", refs.join(", "))
            })
        };
        let (raw, quoting) = match step.kind() {
            StepType::Deterministic => (step.command.as_deref().unwrap_or(""), Quoting::Shell),
            StepType::Agent => (step.task.as_deref().unwrap_or(""), Quoting::None),
        };
        let text = match fill(raw, quoting) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        };
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
        let check = match &step.verification {
            None => None,
            Some(v) => {
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
        };
        let eh = req.loaded.file.error_handling.clone().unwrap_or_default();
        let constraints = agent.as_ref().and_then(|a| a.constraints.clone());
        let retries = step
            .retries
            .or(constraints.as_ref().and_then(|c| c.retries))
            .or(eh.max_retries)
            .unwrap_or(0);
        let timeout = step
            .timeout_ms
            .or(constraints.as_ref().and_then(|c| c.timeout_ms))
            .map(Duration::from_millis);
        Ok(Ok(StepJob {
            index: i,
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

fn failed(
    name: &str,
    attempts: u32,
    exit_code: Option<i32>,
    duration_ms: u64,
    output: &str,
    reason: &str,
) -> StepSummary {
    StepSummary {
        name: name.to_string(),
        status: StepStatus::Failed,
        attempts,
        exit_code,
        duration_ms,
        output: output.to_string(),
        reason: Some(reason.to_string()),
    }
}
