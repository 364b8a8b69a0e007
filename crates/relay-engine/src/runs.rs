//! Runs on disk: finding and listing them, reading their state back from their logs,
//! preparing a resume (of the same run, or a new run that starts from a step and reuses
//! an earlier run's results), and cancelling a live run from another process.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_spec::Loaded;

use crate::lock::live_holder;
use crate::outcome::{RunStatus, StepStatus, StepSummary};
use crate::run::ResumeFrom;
use crate::snapshot::{Snapshot, StepState};
use crate::store::{CANCEL_REQUEST, runs_root, step_dir_of};

/// Why a run could not be found or acted on.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    /// No run matches.
    #[error("no run `{0}` in this directory (see `agent-relay runs`)")]
    NotFound(String),
    /// The run id given is empty.
    #[error("the run id is empty: give a run id, a unique start of one, or `last`")]
    EmptyId,
    /// A prefix matches several runs.
    #[error("`{prefix}` matches several runs: {}", matches.join(", "))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// The runs it matches.
        matches: Vec<String>,
    },
    /// The run's stored workflow cannot be read.
    #[error("run {run_id}: {reason}")]
    Unreadable {
        /// The run.
        run_id: String,
        /// Why.
        reason: String,
    },
    /// The run's directory is there but its event log is not.
    #[error(
        "run `{run_id}` has no event log ({} is missing): what it did is not recorded, so it \
         cannot be shown or resumed",
        dir.join("events.jsonl").display()
    )]
    NoLog {
        /// The run.
        run_id: String,
        /// Its directory.
        dir: PathBuf,
    },
    /// Nothing is left to do.
    #[error("run {0} already completed; nothing to resume")]
    AlreadyCompleted(String),
    /// A live coordinator drives it.
    #[error("run {run_id} is still running (pid {pid}); cancel it first or wait")]
    Live {
        /// The run.
        run_id: String,
        /// The coordinator.
        pid: u32,
    },
    /// `--start-from` cannot reuse what it needs.
    #[error("{0}")]
    StartFrom(String),
}

/// Where a run stands, as `runs` and `status` tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    /// A live coordinator drives it.
    Running,
    /// It ended with every step completed.
    Completed,
    /// It ended with a failure.
    Failed,
    /// It was cancelled.
    Cancelled,
    /// It stopped for a person to act; `resume` continues it.
    #[serde(rename = "needs_human")]
    NeedsHuman,
    /// Its coordinator died before it finished; `resume` continues it.
    Interrupted,
}

impl Standing {
    /// The name as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Running => "running",
            Standing::Completed => "completed",
            Standing::Failed => "failed",
            Standing::Cancelled => "cancelled",
            Standing::NeedsHuman => "needs_human",
            Standing::Interrupted => "interrupted",
        }
    }
}

/// What `runs` and `status` show about one run.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    /// Run id.
    pub run_id: String,
    /// Workflow name.
    pub workflow: String,
    /// Where it stands.
    pub status: Standing,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// First event's time.
    pub started_at: Option<String>,
    /// Duration, when finished.
    pub duration_ms: Option<u64>,
    /// The live coordinator, if any.
    pub pid: Option<u32>,
    /// Steps: (name, status, attempts, reason).
    pub steps: Vec<StepInfo>,
    /// Log lines that could not be read.
    pub bad_lines: Vec<(usize, String)>,
    /// The run directory.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// One step in `status`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepInfo {
    /// Step name.
    pub name: String,
    /// Where it stands.
    pub status: StepState,
    /// Attempts started.
    pub attempts: u32,
    /// Last exit code.
    pub exit_code: Option<i32>,
    /// Duration, when finished.
    pub duration_ms: u64,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// While parked: until when (milliseconds since the Unix epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_until_ms: Option<u64>,
    /// Tokens its attempts used, when their CLIs reported them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<relay_broker::usage::Usage>,
    /// What they cost in US dollars, when their models have a price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// Finds the directory of a run by id, unique prefix, or `last`.
pub fn find_run(workdir: &Path, id: &str) -> Result<PathBuf, RunsError> {
    let root = runs_root(workdir);
    let mut ids: Vec<String> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("events.jsonl").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    if id.trim().is_empty() {
        return Err(RunsError::EmptyId);
    }
    if id == "last" || id == "latest" {
        return ids
            .last()
            .map(|i| root.join(i))
            .ok_or_else(|| RunsError::NotFound(id.to_string()));
    }
    if ids.iter().any(|i| i == id) {
        return Ok(root.join(id));
    }
    let matches: Vec<String> = ids.into_iter().filter(|i| i.starts_with(id)).collect();
    match matches.len() {
        // A directory of that exact name whose log is gone is not "no run".
        0 if is_plain_id(id) && root.join(id).is_dir() => Err(RunsError::NoLog {
            run_id: id.to_string(),
            dir: root.join(id),
        }),
        0 => Err(RunsError::NotFound(id.to_string())),
        1 => Ok(root.join(&matches[0])),
        _ => Err(RunsError::Ambiguous {
            prefix: id.to_string(),
            matches,
        }),
    }
}

/// Whether `id` can only name a directory inside the runs root (no `/`, not `.`/`..`).
fn is_plain_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains('/')
}

/// What the log and lock of the run in `dir` say about it.
pub fn run_info(dir: &Path) -> RunInfo {
    let replay = Snapshot::load(dir).unwrap_or_default();
    let pid = live_holder(dir).map(|h| h.pid);
    let status = match (replay.status, pid) {
        (Some(RunStatus::Completed), _) => Standing::Completed,
        (Some(RunStatus::Failed), _) => Standing::Failed,
        (Some(RunStatus::Cancelled), _) => Standing::Cancelled,
        (Some(RunStatus::NeedsHuman), _) => Standing::NeedsHuman,
        (None, Some(_)) => Standing::Running,
        (None, None) => Standing::Interrupted,
    };
    // A log that lost its first line still has the run's own record (run.json).
    // Read only when the log lacks what it records, and then once.
    let meta = if replay.workflow.is_none() || replay.started_at.is_none() {
        dir.file_name()
            .and_then(|id| read_meta(dir, &id.to_string_lossy()).ok())
    } else {
        None
    };
    let steps = replay
        .workflow_steps()
        .map(|(name, s)| StepInfo {
            name: name.to_string(),
            status: s.state,
            attempts: s.attempts,
            exit_code: s.exit_code,
            duration_ms: s.duration_ms,
            reason: s.reason,
            parked_until_ms: s.parked_until_ms,
            usage: s.usage,
            cost_usd: s.cost_usd,
        })
        .collect();
    RunInfo {
        run_id: replay.run_id.clone().unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        }),
        workflow: replay
            .workflow
            .clone()
            .or_else(|| meta.as_ref().map(|m| m.workflow.clone()))
            .unwrap_or_default(),
        status,
        reason: replay.reason.clone(),
        started_at: replay
            .started_at
            .clone()
            .or_else(|| meta.and_then(|m| m.started_at)),
        duration_ms: replay.duration_ms,
        pid,
        steps,
        bad_lines: replay.bad_lines.clone(),
        dir: dir.to_path_buf(),
    }
}

/// Every run under `workdir`, newest first.
pub fn list_runs(workdir: &Path) -> Vec<RunInfo> {
    let root = runs_root(workdir);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("events.jsonl").exists())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs.iter().map(|d| run_info(d)).collect()
}

/// The nodes of the run in `dir` that a resume keeps: the completed ones with their
/// stored outputs (one whose output file is missing does not count as completed), and
/// the failed ones with their last attempt's output (kept only where a gate judges the
/// failure).
fn completed_steps(dir: &Path, replay: &Snapshot) -> BTreeMap<String, StepSummary> {
    replay
        .steps
        .iter()
        .filter_map(|(name, s)| {
            let node_dir = step_dir_of(dir, name);
            let (status, output) = match s.state {
                StepState::Completed => (
                    StepStatus::Completed,
                    std::fs::read(node_dir.join("output.txt")).ok()?,
                ),
                StepState::Failed => (
                    StepStatus::Failed,
                    std::fs::read(node_dir.join(format!("attempt-{}.txt", s.attempts)))
                        .unwrap_or_default(),
                ),
                _ => return None,
            };
            Some((
                name.clone(),
                StepSummary {
                    name: name.clone(),
                    status,
                    attempts: s.attempts,
                    exit_code: s.exit_code,
                    duration_ms: s.duration_ms,
                    output: String::from_utf8_lossy(&output).into_owned(),
                    reason: s.reason.clone(),
                    usage: s.usage,
                    cost_usd: s.cost_usd,
                },
            ))
        })
        .collect()
}

/// Everything needed to resume a run as it was run.
#[derive(Debug)]
pub struct ResumePlan {
    /// The workflow as it was run (from the run directory).
    pub loaded: Loaded,
    /// The workflow's name.
    pub workflow: String,
    /// The variables it ran with.
    pub vars: BTreeMap<String, String>,
    /// Whether it was a rehearsal.
    pub rehearse: bool,
    /// Whether it was started with `--allow-unenforced`.
    pub allow_unenforced: bool,
    /// The steps kept.
    pub resume: ResumeFrom,
    /// Set when the original file now differs from what was run: its path.
    pub source_changed: Option<String>,
    /// Log lines skipped as unreadable.
    pub bad_lines: Vec<(usize, String)>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    file: String,
    workflow: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    rehearsal: bool,
    #[serde(default)]
    allow_unenforced: bool,
    #[serde(default)]
    started_at: Option<String>,
}

fn read_meta(dir: &Path, run_id: &str) -> Result<Meta, RunsError> {
    let unreadable = |reason: String| RunsError::Unreadable {
        run_id: run_id.to_string(),
        reason,
    };
    let text = std::fs::read_to_string(dir.join("run.json"))
        .map_err(|e| unreadable(format!("cannot read run.json: {e}")))?;
    serde_json::from_str(&text).map_err(|e| unreadable(format!("run.json: {e}")))
}

/// Prepares `resume` of the run in `dir`: the stored workflow and variables, the steps
/// it completed (kept), everything else to run again.
pub fn prepare_resume(dir: &Path) -> Result<ResumePlan, RunsError> {
    let info = run_info(dir);
    let run_id = info.run_id.clone();
    if let Some(pid) = info.pid {
        return Err(RunsError::Live { run_id, pid });
    }
    let replay = Snapshot::load(dir).unwrap_or_default();
    if replay.status == Some(RunStatus::Completed) {
        return Err(RunsError::AlreadyCompleted(run_id));
    }
    damage(&replay).map_err(|reason| RunsError::Unreadable {
        run_id: run_id.clone(),
        reason,
    })?;
    let meta = read_meta(dir, &run_id)?;
    let source =
        std::fs::read_to_string(dir.join("workflow.yaml")).map_err(|e| RunsError::Unreadable {
            run_id: run_id.clone(),
            reason: format!("cannot read the stored workflow: {e}"),
        })?;
    let mut loaded = relay_spec::parse(&source, &meta.file).map_err(|_| {
        // The copy kept in the run directory is what failed, not the user's file.
        let stored = dir.join("workflow.yaml");
        let why = relay_spec::parse(&source, &stored.display().to_string())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        RunsError::Unreadable {
            run_id: run_id.clone(),
            reason: format!(
                "the copy of {} kept in the run directory is damaged, so the run cannot be \
                 resumed: {why}",
                meta.file
            ),
        }
    })?;
    // Custom steps (`use:`) expand from the `.relay/steps.yaml` next to the workflow.
    let custom =
        relay_spec::custom_steps::CustomSteps::find_for(Path::new(&meta.file)).map_err(|e| {
            RunsError::Unreadable {
                run_id: run_id.clone(),
                reason: e.to_string(),
            }
        })?;
    loaded.expand_custom_steps(&custom);
    // Checklists kept in files and sub-workflows are read from next to the workflow too.
    let dir_of = Path::new(&meta.file).parent().unwrap_or(Path::new("."));
    relay_spec::checklist::load_files(&mut loaded, dir_of);
    relay_spec::subworkflows::expand_loaded(&mut loaded, Path::new(&meta.file));
    let source_changed = std::fs::read_to_string(&meta.file)
        .ok()
        .filter(|now| *now != source)
        .map(|_| meta.file.clone());
    Ok(ResumePlan {
        loaded,
        workflow: meta.workflow,
        vars: meta.vars,
        rehearse: meta.rehearsal,
        allow_unenforced: meta.allow_unenforced,
        resume: ResumeFrom {
            run_id,
            same_run: true,
            completed: completed_steps(dir, &replay),
            approved: replay.approved.clone(),
            marks: replay.marks.clone(),
            sessions: replay.sessions.clone(),
        },
        source_changed,
        bad_lines: replay.bad_lines,
    })
}

/// Why a run's log cannot be resumed from: a resume trusts the log for what already ran,
/// so a log that lost its start or a line before its end would have steps run again.
/// A torn line (a crash while it was written, see [`Snapshot::broken`]) is not damage.
fn damage(replay: &Snapshot) -> Result<(), String> {
    let log = "its event log (events.jsonl)";
    if replay.run_id.is_none() {
        return Err(format!(
            "{log} is empty or lost its first line (`run:started`), so what already ran is \
             unknown and resuming could run steps again; start a new run instead"
        ));
    }
    if let Some((line, why)) = &replay.broken {
        return Err(format!(
            "line {line} of {log} is unreadable ({why}) and it is not the last one, so steps it \
             records could run again; repair or delete that line, then resume"
        ));
    }
    Ok(())
}

/// Prepares a new run of `loaded`'s workflow `workflow` that starts from `step`: every
/// step that is neither `step` nor downstream of it is taken from the earlier run in
/// `previous` when it completed there. The upstream of `step` must all be reusable.
pub fn prepare_start_from(
    previous: &Path,
    loaded: &Loaded,
    workflow: Option<&str>,
    step: &str,
) -> Result<ResumeFrom, RunsError> {
    let (_, wf) = relay_spec::validate::select_workflow(&loaded.file, workflow)
        .map_err(RunsError::StartFrom)?;
    let names: Vec<&str> = wf.steps.iter().map(|s| s.name.as_str()).collect();
    if !names.contains(&step) {
        let mut msg = format!("--start-from: workflow `{}` has no step `{step}`", wf.name);
        if let Some(b) = relay_spec::load::did_you_mean(step, names.iter().copied()) {
            msg.push_str(&format!(" (did you mean `{b}`?)"));
        }
        return Err(RunsError::StartFrom(msg));
    }
    // Downstream of `step`, itself included: these run again.
    let mut rerun: BTreeSet<&str> = BTreeSet::from([step]);
    loop {
        let before = rerun.len();
        for s in &wf.steps {
            if s.depends_on.iter().any(|d| rerun.contains(d.as_str())) {
                rerun.insert(s.name.as_str());
            }
        }
        if rerun.len() == before {
            break;
        }
    }
    // Upstream of `step`: these must come from the earlier run.
    let mut upstream: BTreeSet<&str> = BTreeSet::new();
    let mut frontier = vec![step];
    while let Some(n) = frontier.pop() {
        if let Some(s) = wf.steps.iter().find(|s| s.name == n) {
            for d in &s.depends_on {
                if upstream.insert(d.as_str()) {
                    frontier.push(d.as_str());
                }
            }
        }
    }
    let replay = Snapshot::load(previous).unwrap_or_default();
    let prev_id = replay.run_id.clone().unwrap_or_else(|| {
        previous
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let done: BTreeMap<String, StepSummary> = completed_steps(previous, &replay)
        .into_iter()
        .filter(|(_, s)| s.status == StepStatus::Completed)
        .collect();
    let missing: Vec<&str> = upstream
        .iter()
        .filter(|u| !done.contains_key(**u))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(RunsError::StartFrom(format!(
            "--start-from {step}: run {prev_id} did not complete {} (needed upstream of `{step}`)",
            missing.join(", ")
        )));
    }
    let completed = done
        .into_iter()
        .filter(|(n, _)| names.contains(&n.as_str()) && !rerun.contains(n.as_str()))
        .collect();
    Ok(ResumeFrom {
        run_id: prev_id,
        same_run: false,
        completed,
        approved: Default::default(),
        marks: Default::default(),
        sessions: Default::default(),
    })
}

/// What `cancel` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The live coordinator was asked to stop and did (its pid).
    Stopped(u32),
    /// The live coordinator was asked to stop but is still finishing.
    Requested(u32),
    /// Nobody drove the run; it was marked cancelled and its leftovers ended.
    Marked,
    /// The run had already finished with this status.
    AlreadyFinished(Standing),
}

/// Cancels the run in `dir` from another process.
pub async fn cancel(dir: &Path, grace: Duration) -> std::io::Result<CancelOutcome> {
    let info = run_info(dir);
    if !matches!(info.status, Standing::Running | Standing::Interrupted) {
        return Ok(CancelOutcome::AlreadyFinished(info.status));
    }
    if let Some(pid) = info.pid {
        std::fs::write(dir.join(CANCEL_REQUEST), b"")?;
        relay_broker::group::signal_process(pid, relay_broker::group::Signal::SIGTERM);
        // The coordinator ends its agents (TERM, grace, KILL) and then its lock.
        let deadline = tokio::time::Instant::now() + grace * 4 + Duration::from_secs(10);
        while live_holder(dir).is_some() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        return Ok(if live_holder(dir).is_some() {
            CancelOutcome::Requested(pid)
        } else {
            CancelOutcome::Stopped(pid)
        });
    }
    // An interrupted run: nobody will write its end, so write it here.
    relay_broker::procscan::end_groups_with_env("AGENT_RELAY_RUN_ID", &info.run_id, grace).await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("events.jsonl"))?;
    let ev = crate::events::Event::now(crate::events::EventKind::RunCancelled {
        reason: "cancelled by `agent-relay cancel` after its coordinator stopped".into(),
        duration_ms: 0,
    });
    use std::io::Write;
    writeln!(f, "{}", serde_json::to_string(&ev).unwrap_or_default())?;
    Ok(CancelOutcome::Marked)
}
