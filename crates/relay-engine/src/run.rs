//! Starting a run: the checks that must pass before anything starts (validation,
//! variables, installed CLIs), opening the run directory (new, resumed, or a new run that
//! reuses another run's completed steps), taking the run's lock, and handing over to the
//! driver loop. Also the public result types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use relay_broker::Launcher;
use relay_broker::cli_table::profile;
use relay_broker::process::which;
use relay_spec::validate::{missing_vars, select_workflow};
use relay_spec::{Loaded, Report, StepType};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::driver::{EventLog, Preset, drive};
use crate::events::{Event, EventKind, RunStatus};
use crate::lock::{LockError, RunLock};
use crate::messaging::RunMessaging;
use crate::replay::Replay;
use crate::settings::Settings;
use crate::store::{RunStore, StoreError};

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
    /// Continue an earlier run, or reuse its completed steps; `None` for a fresh run.
    pub resume: Option<ResumeFrom>,
}

/// What a run takes over from an earlier one.
#[derive(Debug, Clone)]
pub struct ResumeFrom {
    /// The earlier run.
    pub run_id: String,
    /// Continue that very run (same id, directory and log) rather than start a new one.
    pub same_run: bool,
    /// Completed steps kept, by name, with their results and outputs.
    pub completed: BTreeMap<String, StepSummary>,
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
    /// Another coordinator drives the run.
    #[error(transparent)]
    Lock(#[from] LockError),
}

impl EngineError {
    /// The process exit code this error maps to: 3 for bad input, 4 for the machine.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Invalid(_)
            | EngineError::MissingVars { .. }
            | EngineError::UnknownWorkflow(_) => 3,
            EngineError::CliMissing { .. } | EngineError::Store(_) => 4,
            EngineError::Lock(LockError::Busy { .. }) => 3,
            EngineError::Lock(LockError::Io { .. }) => 4,
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
    if !req.rehearse {
        check_clis_installed(file, wf)?;
    }
    let started = Instant::now();
    let plan = crate::patterns::build(file, wf);
    let (mut log, preset, lock) = open_run(&req, wf, &plan).await?;
    for w in crate::capabilities::not_yet_effective(file) {
        log.record(EventKind::Warning { message: w.message })
            .await?;
    }
    let done = preset.keys().cloned().collect();
    let run_id = log.replay.run_id.clone().unwrap_or_default();
    let relay = RunMessaging::start(log.store.dir(), &run_id, file, wf, &plan, &done).await?;
    let summary = drive(
        launcher,
        &req,
        wf,
        plan,
        log,
        preset,
        started,
        relay.clone(),
    )
    .await;
    // Whatever is still queued fails now, with the run's end as the reason.
    relay.shutdown().await;
    drop(lock);
    Ok(summary?)
}

fn check_clis_installed(
    file: &relay_spec::RelayFile,
    wf: &relay_spec::WorkflowDef,
) -> Result<(), EngineError> {
    let mut missing = Vec::new();
    for step in wf.steps.iter().filter(|s| s.kind() == StepType::Agent) {
        let Some(a) = step
            .agent
            .as_deref()
            .and_then(|a| file.agents.iter().find(|x| x.name == a))
        else {
            continue;
        };
        let program = profile(a.cli).program;
        let pair = (a.name.clone(), program.to_string());
        if which(program).is_none() && !missing.contains(&pair) {
            missing.push(pair);
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(EngineError::CliMissing { missing })
    }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    reused_from: Option<&'a str>,
}

/// Opens (or reopens) the run directory, takes the lock and records how the run begins.
async fn open_run(
    req: &RunRequest,
    wf: &relay_spec::WorkflowDef,
    plan: &crate::plan::Plan,
) -> Result<(EventLog, Preset, RunLock), EngineError> {
    // Completed nodes are matched by label: a plain step's node carries the step's name.
    let preset: Preset = req
        .resume
        .iter()
        .flat_map(|r| r.completed.iter())
        .filter(|(label, _)| plan.nodes.iter().any(|n| n.label == **label))
        .map(|(label, s)| (label.clone(), s.clone()))
        .collect();
    let kept: Vec<String> = preset.keys().cloned().collect();

    if let Some(r) = req.resume.as_ref().filter(|r| r.same_run) {
        let store = RunStore::open(&req.workdir, &r.run_id).await?;
        let lock = RunLock::acquire(store.dir(), &r.run_id)?;
        let replay = Replay::load(store.dir()).unwrap_or_default();
        // Whatever the stopped coordinator left running is ended before anything reruns.
        relay_broker::procscan::end_groups_with_env(
            "AGENT_RELAY_RUN_ID",
            &r.run_id,
            req.settings.kill_grace,
        )
        .await;
        let mut log = EventLog {
            store,
            observer: req.observer.clone(),
            replay,
        };
        log.record(EventKind::RunResumed {
            completed: kept,
            reused_from: None,
        })
        .await?;
        return Ok((log, preset, lock));
    }

    let run_id = new_run_id();
    let store = RunStore::create(&req.workdir, &run_id).await?;
    let lock = RunLock::acquire(store.dir(), &run_id)?;
    store
        .write_file("workflow.yaml", req.loaded.source.as_bytes())
        .await?;
    let reused_from = req.resume.as_ref().map(|r| r.run_id.as_str());
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
                reused_from,
            },
        )
        .await?;
    // Reused steps keep their outputs in this run's directory too.
    for (label, s) in &preset {
        let dir = store.step_dir(label).await?;
        crate::store::write_atomic(&dir.join("output.txt"), s.output.as_bytes()).await?;
    }
    let swarm = req.loaded.file.swarm.clone().unwrap_or_default();
    let mut log = EventLog {
        store,
        observer: req.observer.clone(),
        replay: Replay::default(),
    };
    log.record(EventKind::RunStarted {
        run_id: run_id.clone(),
        workflow: wf.name.clone(),
        pattern: plan.pattern.pattern.as_str().to_string(),
        max_concurrency: swarm.max_concurrency,
        steps: wf.steps.iter().map(|s| s.name.clone()).collect(),
        rehearsal: req.rehearse,
    })
    .await?;
    if let Some(from) = reused_from {
        log.record(EventKind::RunResumed {
            completed: kept,
            reused_from: Some(from.to_string()),
        })
        .await?;
    }
    Ok((log, preset, lock))
}
