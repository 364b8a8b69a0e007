//! Running a workflow: the checks that must pass before anything starts (validation,
//! variables, installed CLIs), opening the run directory (new, resumed, or a new run that
//! reuses another run's completed steps) under its lock, the run's messaging, and then
//! the run itself: a sans-I/O [`state::RunState`] driven by a thin async [`driver`].
//!
//! ```text
//!  sources (cancel, attempt events and ends, deadlines) ──► driver ──► Input
//!                                                                       │
//!                                        RunState::handle (pure) ◄──────┘
//!                                                │ Vec<Effect>
//!  log (events.jsonl, state.json), outputs,  ◄───┘  carried out in order by the driver
//!  attempts started (exec), cancelled, the end
//! ```

pub mod budget;
mod driver;
pub mod log;
pub mod park;
pub mod preflight;
pub mod state;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use relay_broker::Launcher;
use relay_broker::cli_table::profile;
use relay_broker::session::NudgePolicy;
use relay_broker::watchdog::{COORDINATOR_ENV, RUN_ID_ENV, Watchdog};
use relay_spec::validate::{missing_vars, select_workflow};
use relay_spec::{Loaded, Report, StepType};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventKind};
use crate::exec::Shared;
use crate::lock::{LockError, RunLock};
use crate::messaging::RunMessaging;
use crate::outcome::{RunSummary, StepStatus};
use crate::settings::Settings;
use crate::snapshot::Snapshot;
use crate::store::{CANCEL_REQUEST, RunStore, StoreError};
use crate::worktrees::RunWorktrees;
use log::EventLog;
use state::{Preset, RunSetup, RunState};

/// A workflow file that passed validation for the workflow it will run: the engine
/// takes only these, so a file is validated once per command.
#[derive(Debug, Clone)]
pub struct Checked {
    loaded: Loaded,
    workflow: Option<String>,
}

impl Checked {
    /// Validates `loaded` for `workflow` (default: the first): the checked file and
    /// every finding (warnings), or the file back with every finding when some are
    /// errors.
    pub fn new(
        loaded: Loaded,
        workflow: Option<&str>,
    ) -> Result<(Checked, Report), Box<(Loaded, Report)>> {
        let report = relay_spec::validate(&loaded, workflow);
        if report.has_errors() {
            return Err(Box::new((loaded, report)));
        }
        let checked = Checked {
            loaded,
            workflow: workflow.map(str::to_owned),
        };
        Ok((checked, report))
    }

    /// The file.
    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// Which workflow of it.
    pub fn workflow(&self) -> Option<&str> {
        self.workflow.as_deref()
    }
}

/// Everything needed to start a run.
pub struct RunRequest {
    /// The workflow file, validated, and which workflow of it.
    pub checked: Checked,
    /// User variables.
    pub vars: BTreeMap<String, String>,
    /// Working directory: default cwd of steps, and home of `.agent-relay/runs`.
    pub workdir: PathBuf,
    /// This program, for `AGENT_RELAY_BIN` and the rehearsal agent.
    pub self_bin: PathBuf,
    /// Replace every agent CLI with the built-in rehearsal agent.
    pub rehearse: bool,
    /// Start agents whose permissions cannot all be enforced here, with what can be.
    pub allow_unenforced: bool,
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
    /// Nodes kept, by label: completed ones, and failed ones a gate may judge.
    pub completed: BTreeMap<String, crate::outcome::StepSummary>,
    /// Steps whose approval that run granted (same run only).
    pub approved: std::collections::BTreeSet<String>,
    /// Checklist marks that run recorded (same run only).
    pub marks: state::Marks,
    /// Each agent's latest conversation in that run (same run only).
    pub sessions: BTreeMap<String, String>,
}

/// Why a run could not start or could not go on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
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
    #[error("{}", missing.iter().map(|(a, c)| format!("agent `{a}` needs `{c}`, which is not installed ({looked})")).collect::<Vec<_>>().join("; "))]
    CliMissing {
        /// (agent, program) pairs.
        missing: Vec<(String, String)>,
        /// Where the launcher looked ([`Launcher::looked_for_clis`]).
        looked: String,
    },
    /// The run directory could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another coordinator drives the run.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A `paths` entry or a preflight check says the run cannot start.
    #[error(transparent)]
    Preflight(#[from] preflight::PreflightError),
    /// A for-each loop's glob is not valid or could not be listed.
    #[error("{0}")]
    LoopFiles(String),
    /// Agents with worktrees cannot have them here.
    #[error(transparent)]
    Worktrees(#[from] crate::worktrees::WorktreeError),
    /// Permissions that cannot be enforced here (and `--allow-unenforced` was not given).
    #[error("{}", findings.join("\n"))]
    Unenforceable {
        /// One line per agent and rule.
        findings: Vec<String>,
    },
    /// A prices file cannot be read.
    #[error(transparent)]
    Prices(#[from] crate::prices::PricesError),
    /// The run's shared state cannot be opened (`state.url`, its backend).
    #[error(transparent)]
    State(#[from] relay_state::open::OpenError),
}

/// A new run id: sortable time stamp plus a random suffix.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!(
        "{}-{:06x}",
        crate::clock::compact(std::time::SystemTime::now()),
        h.finish() & 0xff_ffff
    )
}

/// Runs the request to its end with `launcher`.
pub async fn run<L: Launcher>(
    launcher: Arc<L>,
    mut req: RunRequest,
) -> Result<RunSummary, EngineError> {
    req.vars = req.checked.loaded.file.vars_with_defaults(&req.vars);
    let file = &req.checked.loaded.file;
    let (_, wf) =
        select_workflow(file, req.checked.workflow()).map_err(EngineError::UnknownWorkflow)?;
    let missing = missing_vars(wf, &req.vars);
    if !missing.is_empty() {
        return Err(EngineError::MissingVars { names: missing });
    }
    if !req.rehearse {
        check_clis_installed(file, wf, &*launcher)?;
    }
    let enforcement = crate::enforcement::check(file, wf, &req.workdir, req.allow_unenforced);
    if !req.rehearse && !req.allow_unenforced && !enforcement.refusals.is_empty() {
        return Err(EngineError::Unenforceable {
            findings: enforcement.refusals,
        });
    }
    let prices = crate::prices::PriceTable::load(&req.workdir)?;
    let paths = preflight::resolve_paths(file, &req.workdir)?;
    // A resumed run passed its checks when it started.
    let resuming = req.resume.as_ref().is_some_and(|r| r.same_run);
    if !resuming {
        crate::worktrees::preflight(file, &req.workdir).await?;
        preflight::run_checks(
            launcher.as_ref(),
            wf,
            &req.workdir,
            req.settings.kill_grace,
            &req.cancel,
        )
        .await?;
    }
    let (plan, hooks) = crate::patterns::build(file, wf);
    let globs = loop_globs(wf, &req.workdir).await?;
    let presets = presets(&req);
    let (mut log, lock) = open_run(&req, wf, &plan, &presets).await?;
    if file.trajectories_enabled() {
        log.keep_trajectory(crate::trajectory::pattern_chosen(
            crate::clock::now_rfc3339(),
            plan.pattern.pattern.as_str(),
            &plan.pattern.reason,
        ));
    }
    for w in crate::capabilities::not_yet_effective(file) {
        log.record(EventKind::Warning { message: w.message })
            .await?;
    }
    // What cannot be enforced is never silent: said in the log, and a rehearsal says
    // what would be enforced.
    let said = if req.rehearse {
        enforcement.rehearsal_lines()
    } else {
        enforcement.warnings()
    };
    for message in said {
        log.record(EventKind::Warning { message }).await?;
    }
    if !req.rehearse {
        for message in unplaced_agents(file, wf, &*launcher) {
            log.record(EventKind::Warning { message }).await?;
        }
    }
    let run_id = log.snapshot.run_id.clone().unwrap_or_default();
    // From here on agents may run: if this process dies, they die with it.
    let watchdog = match Watchdog::start(&req.self_bin, &run_id, req.settings.kill_grace) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("no watchdog for run {run_id}: {e}");
            None
        }
    };
    let done = presets
        .iter()
        .filter(|(_, p)| p.status == StepStatus::Completed)
        .map(|(l, _)| l.clone())
        .collect();
    let messaging = RunMessaging::start(
        log.store.dir(),
        &req.workdir,
        &run_id,
        file,
        wf,
        &plan,
        hooks.topology.clone(),
        &done,
        launcher.message_transport(&run_id),
    )
    .await?;
    let worktrees = match RunWorktrees::open(
        file,
        &req.workdir,
        log.store.dir(),
        &run_id,
        req.resume.is_some(),
    )
    .await
    {
        Ok(w) => w,
        Err(e) => {
            // Nothing has run yet; the run ends as failed with the reason.
            let reason = e.to_string();
            log.record(EventKind::RunFailed {
                reason,
                duration_ms: 0,
            })
            .await?;
            messaging.shutdown().await;
            if let Some(w) = watchdog {
                w.disarm();
            }
            return Err(e.into());
        }
    };
    if let Some(w) = &worktrees {
        log.record(EventKind::WorktreeRunBranch {
            branch: w.run_branch().to_string(),
            base: w.base().to_string(),
            repo: w.repo().display().to_string(),
        })
        .await?;
    }
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel::<EventKind>();
    messaging.attach(&ev_tx);
    let swarm = file.swarm.clone().unwrap_or_default();
    let shared = Arc::new(Shared {
        launcher,
        run_id: run_id.clone(),
        run_dir: log.store.dir().to_path_buf(),
        self_bin: req.self_bin.clone(),
        rehearse: req.rehearse,
        allow_unenforced: req.allow_unenforced,
        prices,
        settings: req.settings.clone(),
        nudge: swarm.idle_nudge.as_ref().map(|n| NudgePolicy {
            nudge_after: n.nudge_after(),
            escalate_after: n.escalate_after(),
            max_nudges: n.max_nudges(),
        }),
        events: ev_tx,
        messaging: messaging.clone(),
        worktrees: worktrees.clone(),
    });
    let state = RunState::new(
        RunSetup {
            file,
            wf,
            vars: &req.vars,
            workdir: req.workdir.clone(),
            paths,
            run_dir: log.store.dir().to_path_buf(),
            run_id: run_id.clone(),
            presets,
            approved: req
                .resume
                .as_ref()
                .filter(|r| r.same_run)
                .map(|r| r.approved.clone())
                .unwrap_or_default(),
            marks: req
                .resume
                .as_ref()
                .filter(|r| r.same_run)
                .map(|r| r.marks.clone())
                .unwrap_or_default(),
            sessions: req
                .resume
                .as_ref()
                .filter(|r| r.same_run)
                .map(|r| r.sessions.clone())
                .unwrap_or_default(),
            globs,
        },
        plan,
        hooks,
        Instant::now(),
    )
    .with_parking(
        Instant::now(),
        park::wall_now_ms(),
        req.settings.park_backoff,
        left_parked(&log.snapshot, resuming),
    );
    let cancel_file = log.store.dir().join(CANCEL_REQUEST);
    let why: driver::CancelReason = Box::new(move || {
        if cancel_file.exists() {
            "cancelled by `agent-relay cancel`".to_string()
        } else {
            "interrupted".to_string()
        }
    });
    let launcher = shared.clone();
    let summary = driver::drive(shared, state, &mut log, &req.cancel, why, ev_rx).await;
    // Terminals kept open for agents' later steps end with the run.
    relay_broker::Launcher::end_kept(&*launcher.launcher, &run_id, None).await;
    drop(launcher);
    // Whatever is still queued fails now, with the run's end as the reason.
    messaging.shutdown().await;
    // Agents have stopped: what they left is committed and their worktrees go.
    if let Some(w) = &worktrees
        && let Err(e) = w.close().await
    {
        tracing::warn!("run {run_id}: worktrees not cleaned up: {e}");
    }
    // Processes that left their agent's group (`setsid`) still carry the run's id.
    let me = std::process::id().to_string();
    relay_broker::procscan::end_groups_with_envs(
        &[(RUN_ID_ENV, &run_id), (COORDINATOR_ENV, &me)],
        req.settings.kill_grace,
    )
    .await;
    if let Some(w) = watchdog {
        w.disarm();
    }
    drop(lock);
    Ok(summary?)
}

/// The files each for-each glob of `wf` matches (`loop.over: "tasks/*.md"`), relative to
/// the run's working directory and sorted, listed once as the run starts.
async fn loop_globs(
    wf: &relay_spec::WorkflowDef,
    workdir: &std::path::Path,
) -> Result<BTreeMap<String, Vec<String>>, EngineError> {
    let globs: Vec<String> = wf
        .steps
        .iter()
        .filter_map(|s| match s.loop_.as_ref().and_then(|l| l.over.as_ref()) {
            Some(relay_spec::Items::Text(t))
                if !t.contains("{{") && t.contains(['*', '?', '[']) =>
            {
                Some(t.trim().to_string())
            }
            _ => None,
        })
        .collect();
    if globs.is_empty() {
        return Ok(BTreeMap::new());
    }
    let workdir = workdir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut out = BTreeMap::new();
        for g in globs {
            let pattern = workdir.join(&g);
            let entries = glob::glob(&pattern.to_string_lossy()).map_err(|e| {
                EngineError::LoopFiles(format!("loop.over `{g}` is not a valid glob: {e}"))
            })?;
            let mut files: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|p| {
                    p.strip_prefix(&workdir)
                        .unwrap_or(&p)
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            files.sort();
            out.insert(g, files);
        }
        Ok(out)
    })
    .await
    .map_err(|e| EngineError::LoopFiles(format!("listing the files of loop.over failed: {e}")))?
}

/// The nodes a resumed run's log left parked, by label, with until when.
fn left_parked(snapshot: &crate::snapshot::Snapshot, resuming: bool) -> BTreeMap<String, u64> {
    if !resuming {
        return BTreeMap::new();
    }
    snapshot
        .steps
        .iter()
        .filter(|(_, r)| r.state == crate::snapshot::StepState::Parked)
        .filter_map(|(label, r)| r.parked_until_ms.map(|ms| (label.clone(), ms)))
        .collect()
}

/// The nodes kept from an earlier run, by label.
fn presets(req: &RunRequest) -> BTreeMap<String, Preset> {
    req.resume
        .iter()
        .flat_map(|r| r.completed.iter())
        .map(|(label, s)| {
            (
                label.clone(),
                Preset {
                    status: s.status,
                    output: s.output.clone(),
                    reason: s.reason.clone(),
                    attempts: s.attempts,
                    exit_code: s.exit_code,
                    duration_ms: s.duration_ms,
                },
            )
        })
        .collect()
}

/// The agents of `wf`'s agent steps, each once, in the order their first step comes.
fn step_agents<'a>(
    file: &'a relay_spec::RelayFile,
    wf: &'a relay_spec::WorkflowDef,
) -> Vec<&'a relay_spec::Agent> {
    let mut out: Vec<&relay_spec::Agent> = Vec::new();
    for step in wf.steps.iter().filter(|s| s.kind() == StepType::Agent) {
        if let Some(a) = step
            .agent
            .as_deref()
            .and_then(|a| file.agents.iter().find(|x| x.name == a))
            && !out.iter().any(|x| x.name == a.name)
        {
            out.push(a);
        }
    }
    out
}

fn check_clis_installed(
    file: &relay_spec::RelayFile,
    wf: &relay_spec::WorkflowDef,
    launcher: &impl Launcher,
) -> Result<(), EngineError> {
    let missing: Vec<(String, String)> = step_agents(file, wf)
        .into_iter()
        .map(|a| (a.name.clone(), profile(a.cli).program.to_string()))
        .filter(|(_, program)| !launcher.can_run(program))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(EngineError::CliMissing {
            missing,
            looked: launcher.looked_for_clis(),
        })
    }
}

/// What the launcher says of each agent of `wf`'s steps that nothing can run yet (no
/// worker it knows meets the agent's needs): their steps wait, so the user hears why.
fn unplaced_agents(
    file: &relay_spec::RelayFile,
    wf: &relay_spec::WorkflowDef,
    launcher: &impl Launcher,
) -> Vec<String> {
    step_agents(file, wf)
        .into_iter()
        .filter_map(|a| launcher.unplaced(&a.name, profile(a.cli).program))
        .collect()
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
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    allow_unenforced: bool,
    started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reused_from: Option<&'a str>,
}

/// Opens (or reopens) the run directory, takes the lock and records how the run begins.
async fn open_run(
    req: &RunRequest,
    wf: &relay_spec::WorkflowDef,
    plan: &crate::plan::Plan,
    presets: &BTreeMap<String, Preset>,
) -> Result<(EventLog, RunLock), EngineError> {
    let kept: Vec<String> = presets
        .iter()
        .filter(|(_, p)| p.status == StepStatus::Completed)
        .map(|(l, _)| l.clone())
        .collect();

    if let Some(r) = req.resume.as_ref().filter(|r| r.same_run) {
        let store = RunStore::open(&req.workdir, &r.run_id).await?;
        let lock = RunLock::acquire(store.dir(), &r.run_id)?;
        let snapshot = Snapshot::load(store.dir()).unwrap_or_default();
        // Whatever the stopped coordinator left running is ended before anything reruns.
        relay_broker::procscan::end_groups_with_env(RUN_ID_ENV, &r.run_id, req.settings.kill_grace)
            .await;
        let mut log = EventLog::new(store, snapshot, req.observer.clone());
        log.record(EventKind::RunResumed {
            completed: kept,
            reused_from: None,
        })
        .await?;
        return Ok((log, lock));
    }

    let run_id = new_run_id();
    let store = RunStore::create(&req.workdir, &run_id).await?;
    let lock = RunLock::acquire(store.dir(), &run_id)?;
    store
        .write_file("workflow.yaml", req.checked.loaded.source.as_bytes())
        .await?;
    let reused_from = req.resume.as_ref().map(|r| r.run_id.as_str());
    store
        .write_json(
            "run.json",
            &RunMeta {
                run_id: &run_id,
                file: &req.checked.loaded.origin,
                workflow: &wf.name,
                vars: &req.vars,
                workdir: req.workdir.display().to_string(),
                rehearsal: req.rehearse,
                allow_unenforced: req.allow_unenforced,
                started_at: crate::clock::now_rfc3339(),
                reused_from,
            },
        )
        .await?;
    // Reused steps keep their outputs in this run's directory too.
    for (label, p) in presets
        .iter()
        .filter(|(_, p)| p.status == StepStatus::Completed)
    {
        let dir = store.step_dir(label).await?;
        crate::store::write_atomic(&dir.join("output.txt"), p.output.as_bytes()).await?;
    }
    let swarm = req.checked.loaded.file.swarm.clone().unwrap_or_default();
    let mut log = EventLog::new(store, Snapshot::default(), req.observer.clone());
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
    Ok((log, lock))
}
