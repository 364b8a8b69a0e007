//! Driving one run: checks that must pass before anything starts (validation, variables,
//! installed CLIs), the run directory, and the loop that starts ready steps, collects
//! their results and events, enforces the run timeout and cancellation, and writes the
//! summary.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use relay_broker::Launcher;
use relay_broker::cli_table::profile;
use relay_broker::process::which;
use relay_broker::session::NudgePolicy;
use relay_spec::template::{Quoting, render};
use relay_spec::validate::{missing_vars, select_workflow};
use relay_spec::{Loaded, OnError, Report, StepType};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventKind, RunStatus};
use crate::exec::{Shared, StepJob, StepResult, run_step};
use crate::scheduler::{Scheduler, SkipCause};
use crate::settings::Settings;
use crate::store::{RunStore, StoreError};
use crate::verify::Check;

/// Everything needed to start a run.
pub struct RunRequest {
    /// The loaded workflow file.
    pub loaded: Loaded,
    /// Which workflow (default: the first).
    pub workflow: Option<String>,
    /// User variables.
    pub vars: BTreeMap<String, String>,
    /// Working directory: default cwd of steps, and home of `.agent-relay/runs`.
    pub workdir: PathBuf,
    /// This program, for `AGENT_RELAY_BIN` and the rehearsal agent.
    pub self_bin: PathBuf,
    /// Replace every agent CLI with the built-in rehearsal agent.
    pub rehearse: bool,
    /// Timing knobs.
    pub settings: Settings,
    /// Receives every event as it is recorded (the progress view).
    pub observer: Option<UnboundedSender<Event>>,
    /// Cancels the run (Ctrl+C).
    pub cancel: CancellationToken,
}

/// Why a run could not start or could not go on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The workflow file has errors.
    #[error("the workflow is invalid")]
    Invalid(Report),
    /// The workflow needs variables that were not given.
    #[error("missing variable{}: {}", if names.len() == 1 { "" } else { "s" }, names.join(", "))]
    MissingVars {
        /// The variables.
        names: Vec<String>,
    },
    /// `--workflow` named no workflow of the file.
    #[error("{0}")]
    UnknownWorkflow(String),
    /// An agent CLI the workflow needs is not installed.
    #[error("{}", missing.iter().map(|(a, c)| format!("agent `{a}` needs `{c}`, which is not installed (not found on PATH)")).collect::<Vec<_>>().join("; "))]
    CliMissing {
        /// (agent, program) pairs.
        missing: Vec<(String, String)>,
    },
    /// The run directory could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    /// The process exit code this error maps to: 3 for bad input, 4 for the machine.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Invalid(_)
            | EngineError::MissingVars { .. }
            | EngineError::UnknownWorkflow(_) => 3,
            EngineError::CliMissing { .. } | EngineError::Store(_) => 4,
        }
    }
}

/// Final state of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// It completed.
    Completed,
    /// It failed.
    Failed,
    /// It never ran.
    Skipped,
}

/// One step in the summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepSummary {
    /// Step name.
    pub name: String,
    /// Final state.
    pub status: StepStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Exit code of the last attempt.
    pub exit_code: Option<i32>,
    /// Time from first start to end.
    pub duration_ms: u64,
    /// The step output.
    pub output: String,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
}

/// The outcome of a run, as printed by `--json` and kept in `result.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Workflow name.
    pub workflow: String,
    /// Final state.
    pub status: RunStatus,
    /// Every step, in declaration order.
    pub steps: Vec<StepSummary>,
    /// Why the run failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Whole-run duration.
    pub duration_ms: u64,
    /// Set when the run stopped because the machine failed it (exit 4).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub runtime_error: Option<String>,
    /// The run directory.
    #[serde(skip)]
    pub run_dir: PathBuf,
}

impl RunSummary {
    /// 0 completed, 1 a step failed, 4 the machine failed the run, 130 cancelled.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            RunStatus::Completed => 0,
            RunStatus::Cancelled => 130,
            RunStatus::Failed if self.runtime_error.is_some() => 4,
            RunStatus::Failed => 1,
        }
    }
}

/// A new run id: sortable time stamp plus a random suffix.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!(
        "{}-{:06x}",
        crate::clock::compact(SystemTime::now()),
        h.finish() & 0xff_ffff
    )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunMeta<'a> {
    run_id: &'a str,
    file: &'a str,
    workflow: &'a str,
    vars: &'a BTreeMap<String, String>,
    workdir: String,
    rehearsal: bool,
    started_at: String,
}

/// Runs the request to its end with `launcher`.
pub async fn run<L: Launcher>(
    launcher: Arc<L>,
    mut req: RunRequest,
) -> Result<RunSummary, EngineError> {
    req.vars = req.loaded.file.vars_with_defaults(&req.vars);
    let report = relay_spec::validate(&req.loaded, req.workflow.as_deref());
    if report.has_errors() {
        return Err(EngineError::Invalid(report));
    }
    let file = &req.loaded.file;
    let (_, wf) =
        select_workflow(file, req.workflow.as_deref()).map_err(EngineError::UnknownWorkflow)?;
    let missing = missing_vars(wf, &req.vars);
    if !missing.is_empty() {
        return Err(EngineError::MissingVars { names: missing });
    }
    let agents: BTreeMap<&str, &relay_spec::Agent> =
        file.agents.iter().map(|a| (a.name.as_str(), a)).collect();
    if !req.rehearse {
        let mut missing = Vec::new();
        for step in wf.steps.iter().filter(|s| s.kind() == StepType::Agent) {
            if let Some(a) = step.agent.as_deref().and_then(|a| agents.get(a)) {
                let program = profile(a.cli).program;
                let pair = (a.name.clone(), program.to_string());
                if which(program).is_none() && !missing.contains(&pair) {
                    missing.push(pair);
                }
            }
        }
        if !missing.is_empty() {
            return Err(EngineError::CliMissing { missing });
        }
    }

    let started = Instant::now();
    let run_id = new_run_id();
    let mut store = RunStore::create(&req.workdir, &run_id).await?;
    store
        .write_file("workflow.yaml", req.loaded.source.as_bytes())
        .await?;
    store
        .write_json(
            "run.json",
            &RunMeta {
                run_id: &run_id,
                file: &req.loaded.origin,
                workflow: &wf.name,
                vars: &req.vars,
                workdir: req.workdir.display().to_string(),
                rehearsal: req.rehearse,
                started_at: crate::clock::now_rfc3339(),
            },
        )
        .await?;

    let swarm = file.swarm.clone().unwrap_or_default();
    let policy = wf
        .on_error
        .or(file.error_handling.as_ref().and_then(|e| e.strategy))
        .unwrap_or(OnError::Fail);
    let eh = file.error_handling.clone().unwrap_or_default();
    let n = wf.steps.len();
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
    let mut sched = Scheduler::new(
        deps,
        swarm.max_concurrency.map(|m| m as usize),
        policy.halts_run(),
    );

    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel::<EventKind>();
    let mut log = EventLog {
        store: &mut store,
        observer: req.observer.clone(),
    };
    log.record(EventKind::RunStarted {
        run_id: run_id.clone(),
        workflow: wf.name.clone(),
        pattern: swarm
            .pattern
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "dag".into()),
        max_concurrency: swarm.max_concurrency,
        steps: wf.steps.iter().map(|s| s.name.clone()).collect(),
        rehearsal: req.rehearse,
    })
    .await?;
    for w in crate::capabilities::not_yet_effective(file) {
        log.record(EventKind::Warning { message: w.message }).await?;
    }

    let nudge = swarm.idle_nudge.as_ref().map(|n| NudgePolicy {
        nudge_after: Duration::from_millis(n.nudge_after_ms.unwrap_or(120_000)),
        escalate_after: Duration::from_millis(n.escalate_after_ms.unwrap_or(120_000)),
        max_nudges: n.max_nudges.unwrap_or(1),
    });
    let shared = Arc::new(Shared {
        launcher,
        run_id: run_id.clone(),
        run_dir: log.store.dir().to_path_buf(),
        self_bin: req.self_bin.clone(),
        rehearse: req.rehearse,
        settings: req.settings.clone(),
        nudge,
        events: ev_tx,
    });
    let steps_cancel = req.cancel.child_token();
    let run_deadline = swarm.timeout_ms.map(Duration::from_millis);
    let deadline = async {
        match run_deadline {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);

    let mut results: Vec<Option<StepSummary>> = vec![None; n];
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    let mut tasks: JoinSet<StepResult> = JoinSet::new();
    let mut stop: Option<(RunStatus, String)> = None;
    let mut runtime_error: Option<String> = None;
    let mut first_failure: Option<String> = None;

    loop {
        while let Some(i) = sched.next_to_start() {
            let step = &wf.steps[i];
            match prepare(&req, &shared, wf, i, &agents, &outputs, &eh, &steps_cancel, &log).await {
                Ok(job) => {
                    tasks.spawn(run_step(shared.clone(), job));
                }
                Err(reason) => {
                    // Rendering cannot fail after validation; if it does, the step fails.
                    log.record(EventKind::StepFailed {
                        step: step.name.clone(),
                        attempt: 0,
                        reason: reason.clone(),
                        exit_code: None,
                        duration_ms: 0,
                    })
                    .await?;
                    results[i] = Some(summary_failed(&step.name, 0, None, 0, "", &reason));
                    first_failure.get_or_insert_with(|| step.name.clone());
                    let skipped = sched.fail(i);
                    record_skips(&mut log, wf, &skipped, &mut results, &stop, &first_failure).await?;
                }
            }
        }
        if sched.is_done() && tasks.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some(kind) = ev_rx.recv() => {
                log.record(kind).await?;
            }
            Some(joined) = tasks.join_next() => {
                // Every event a step sent before it returned is recorded before its result.
                while let Ok(kind) = ev_rx.try_recv() {
                    log.record(kind).await?;
                }
                let r = match joined {
                    Ok(r) => r,
                    Err(e) => {
                        runtime_error.get_or_insert_with(|| format!("a step task failed: {e}"));
                        continue;
                    }
                };
                let name = wf.steps[r.index].name.clone();
                if r.completed {
                    let dir = log.store.step_dir(&name).await?;
                    crate::store::write_atomic(&dir.join("output.txt"), r.output.as_bytes()).await?;
                    log.record(EventKind::StepCompleted {
                        step: name.clone(),
                        attempt: r.attempts,
                        exit_code: r.exit_code,
                        duration_ms: r.duration.as_millis() as u64,
                    }).await?;
                    outputs.insert(name.clone(), r.output.trim_end().to_string());
                    results[r.index] = Some(StepSummary {
                        name,
                        status: StepStatus::Completed,
                        attempts: r.attempts,
                        exit_code: r.exit_code,
                        duration_ms: r.duration.as_millis() as u64,
                        output: r.output,
                        reason: None,
                    });
                    sched.complete(r.index);
                } else {
                    let reason = r.reason.clone().unwrap_or_else(|| "failed".into());
                    log.record(EventKind::StepFailed {
                        step: name.clone(),
                        attempt: r.attempts,
                        reason: reason.clone(),
                        exit_code: r.exit_code,
                        duration_ms: r.duration.as_millis() as u64,
                    }).await?;
                    results[r.index] = Some(summary_failed(&name, r.attempts, r.exit_code, r.duration.as_millis() as u64, &r.output, &reason));
                    if !r.cancelled {
                        first_failure.get_or_insert_with(|| name.clone());
                    }
                    let skipped = if let Some(why) = r.runtime_error {
                        runtime_error.get_or_insert(why);
                        sched.fail(r.index);
                        sched.halt()
                    } else {
                        sched.fail(r.index)
                    };
                    record_skips(&mut log, wf, &skipped, &mut results, &stop, &first_failure).await?;
                }
            }
            () = &mut deadline, if stop.is_none() => {
                let ms = run_deadline.map(|d| d.as_millis()).unwrap_or(0);
                stop = Some((RunStatus::Failed, format!("run timed out after {ms} ms")));
                steps_cancel.cancel();
                let skipped = sched.halt();
                record_skips(&mut log, wf, &skipped, &mut results, &stop, &first_failure).await?;
            }
            () = req.cancel.cancelled(), if stop.is_none() => {
                stop = Some((RunStatus::Cancelled, "interrupted".into()));
                steps_cancel.cancel();
                let skipped = sched.halt();
                record_skips(&mut log, wf, &skipped, &mut results, &stop, &first_failure).await?;
            }
        }
    }
    while let Ok(kind) = ev_rx.try_recv() {
        log.record(kind).await?;
    }
    // Anything never reached (cannot happen in a valid plan, but never leave a hole).
    let unreached = sched.skip_unreached();
    record_skips(&mut log, wf, &unreached, &mut results, &stop, &first_failure).await?;

    let steps: Vec<StepSummary> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| StepSummary {
                name: wf.steps[i].name.clone(),
                status: StepStatus::Skipped,
                attempts: 0,
                exit_code: None,
                duration_ms: 0,
                output: String::new(),
                reason: Some("not run".into()),
            })
        })
        .collect();
    let duration_ms = started.elapsed().as_millis() as u64;
    let failed: Vec<&str> = steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .map(|s| s.name.as_str())
        .collect();
    let (status, reason) = match stop {
        Some((status, reason)) => (status, Some(reason)),
        None if runtime_error.is_some() => (RunStatus::Failed, runtime_error.clone()),
        None if failed.is_empty() => (RunStatus::Completed, None),
        None => (
            RunStatus::Failed,
            Some(format!("step{} failed: {}", if failed.len() == 1 { "" } else { "s" }, failed.join(", "))),
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
    log.record(end).await?;
    let summary = RunSummary {
        run_id,
        workflow: wf.name.clone(),
        status,
        steps,
        reason,
        duration_ms,
        runtime_error,
        run_dir: log.store.dir().to_path_buf(),
    };
    log.store.write_json("result.json", &summary).await?;
    Ok(summary)
}

/// Records events in the run's log and passes them to the observer.
struct EventLog<'a> {
    store: &'a mut RunStore,
    observer: Option<UnboundedSender<Event>>,
}

impl EventLog<'_> {
    async fn record(&mut self, kind: EventKind) -> Result<(), StoreError> {
        let event = Event::now(kind);
        self.store.append(&event).await?;
        if let Some(o) = &self.observer {
            let _ = o.send(event);
        }
        Ok(())
    }
}

fn summary_failed(
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

async fn record_skips(
    log: &mut EventLog<'_>,
    wf: &relay_spec::WorkflowDef,
    skipped: &[(usize, SkipCause)],
    results: &mut [Option<StepSummary>],
    stop: &Option<(RunStatus, String)>,
    first_failure: &Option<String>,
) -> Result<(), StoreError> {
    for (i, cause) in skipped {
        let reason = match cause {
            SkipCause::Upstream(root) => format!("dependency `{}` failed", wf.steps[*root].name),
            SkipCause::Halted => match (stop, first_failure) {
                (Some((_, why)), _) => format!("not started: {why}"),
                (None, Some(f)) => format!("not started: the run stopped after step `{f}` failed"),
                (None, None) => "not started".to_string(),
            },
        };
        let name = wf.steps[*i].name.clone();
        log.record(EventKind::StepSkipped {
            step: name.clone(),
            reason: reason.clone(),
        })
        .await?;
        results[*i] = Some(StepSummary {
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

#[allow(clippy::too_many_arguments)]
async fn prepare<L: Launcher>(
    req: &RunRequest,
    shared: &Arc<Shared<L>>,
    wf: &relay_spec::WorkflowDef,
    i: usize,
    agents: &BTreeMap<&str, &relay_spec::Agent>,
    outputs: &BTreeMap<String, String>,
    eh: &relay_spec::ErrorHandling,
    cancel: &CancellationToken,
    log: &EventLog<'_>,
) -> Result<StepJob, String> {
    let step = &wf.steps[i];
    let agent = step
        .agent
        .as_deref()
        .and_then(|a| agents.get(a))
        .map(|a| (*a).clone());
    let missing = |m: Vec<relay_spec::template::Ref>| {
        format!(
            "no value for {}",
            m.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
        )
    };
    let (raw, quoting) = match step.kind() {
        StepType::Deterministic => (step.command.as_deref().unwrap_or(""), Quoting::Shell),
        StepType::Agent => (step.task.as_deref().unwrap_or(""), Quoting::None),
    };
    let text = render(raw, &req.vars, outputs, quoting).map_err(missing)?;
    let cwd_raw = step
        .cwd
        .as_deref()
        .or(agent.as_ref().and_then(|a| a.cwd.as_deref()));
    let cwd = match cwd_raw {
        Some(c) => req
            .workdir
            .join(render(c, &req.vars, outputs, Quoting::None).map_err(missing)?),
        None => req.workdir.clone(),
    };
    let check = match &step.verification {
        None => None,
        Some(v) => {
            let raw = v.value.as_ref().map(|s| s.as_text()).unwrap_or_default();
            let quoting = if v.kind == relay_spec::VerificationType::Custom {
                Quoting::Shell
            } else {
                Quoting::None
            };
            Some(Check {
                kind: v.kind,
                value: render(&raw, &req.vars, outputs, quoting).map_err(missing)?,
                timeout: Duration::from_millis(v.timeout_ms.unwrap_or(60_000)),
                description: v.description.clone(),
            })
        }
    };
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
    let step_dir = log.store.step_dir(&step.name).await.map_err(|e| e.to_string())?;
    let _ = shared;
    Ok(StepJob {
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
        cancel: cancel.child_token(),
    })
}
