//! One attempt of one step, from start to verdict: the messages waiting for a one-shot
//! agent and the note on its peers put in its task, the launch spec built (`launch`), the
//! attempt run through the `Launcher` with its events passed on, the attempt's output
//! kept, and the verification judged (`verify`). Runs as its own task; the run state
//! decides what the outcome means (retry, advance, fail).

mod launch;
pub mod repair;
pub mod verify;
pub mod wait;

use std::path::PathBuf;
use std::sync::Arc;

use relay_broker::Launcher;
use relay_broker::session::{NudgePolicy, SessionEnd, SessionEvent};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

pub use launch::{EXIT_INSTRUCTION, MCP_EXIT_INSTRUCTION};

use crate::events::EventKind;
use crate::job::{Launch, StepJob, Work};
use crate::messaging::RunMessaging;
use crate::outcome::StepOutcome;
use crate::settings::Settings;
use crate::worktrees::{Conflict, Left, Resolution, RunWorktrees};
use verify::{Attempt, AttemptEnd, CheckEnv, Verdict, judge};

/// What every attempt of a run shares.
pub(crate) struct Shared<L: Launcher> {
    pub launcher: Arc<L>,
    pub run_id: String,
    pub run_dir: PathBuf,
    pub self_bin: PathBuf,
    pub rehearse: bool,
    /// Start agents whose permissions cannot all be enforced (`--allow-unenforced`).
    pub allow_unenforced: bool,
    /// Prices of the models, for the cost of each attempt.
    pub prices: crate::prices::PriceTable,
    pub settings: Settings,
    pub nudge: Option<NudgePolicy>,
    pub events: UnboundedSender<EventKind>,
    /// The run's messaging: broker, socket, agents' states.
    pub messaging: Arc<RunMessaging>,
    /// The agents' git worktrees, when any agent has one.
    pub worktrees: Option<Arc<RunWorktrees>>,
}

/// Runs attempt `launch` to its verdict. `cancel` ends it early.
pub(crate) async fn run_attempt<L: Launcher>(
    shared: Arc<Shared<L>>,
    launch: Launch,
    cancel: CancellationToken,
) -> StepOutcome {
    let job = launch.job.clone();
    if let Some(outcome) = without_running(&shared, &job) {
        return outcome;
    }
    if let Err(e) = crate::store::create_private_dir(&job.step_dir).await {
        return StepOutcome::Broken {
            why: format!("cannot write {}: {e}", job.step_dir.display()),
        };
    }
    let started_ms = relay_state::now_ms();
    // `{{state.KEY}}` is read now, as the attempt starts. A key nobody has set yet fails
    // the attempt (and may be set before a retry); a backend that fails stops the run.
    let mut launch = launch;
    if let Some(slots) = &job.state {
        let values = match shared.messaging.state_values(&slots.keys()).await {
            Ok(v) => v,
            Err(e) => {
                return StepOutcome::Broken {
                    why: format!("cannot read the shared state: {e}"),
                };
            }
        };
        match slots.fill(&launch.text, &values) {
            Ok(text) => launch.text = text,
            Err(reason) => {
                return StepOutcome::Failed {
                    output: String::new(),
                    reason,
                    exit_code: None,
                    retryable: true,
                };
            }
        }
    }
    // An agent with a worktree works there: made, or brought up to the run's branch.
    let tree = match (&shared.worktrees, &job.work) {
        (Some(w), Work::Agent(a)) if w.uses(&a.name) => Some((w.clone(), a.name.clone())),
        _ => None,
    };
    let mut job = job;
    if let Some((w, agent)) = &tree {
        match w.enter(agent, &job.cwd).await {
            Ok(entered) => {
                if let Some((path, branch, copied)) = entered.created {
                    let _ = shared.events.send(EventKind::WorktreeCreated {
                        agent: agent.clone(),
                        branch,
                        path: path.display().to_string(),
                        copied,
                    });
                }
                if let Some(why) = entered.not_synced {
                    let _ = shared.events.send(EventKind::Warning {
                        message: format!(
                            "step `{}`: the run's branch could not be merged into `{agent}`'s worktree; it works without the latest changes: {why}",
                            job.label
                        ),
                    });
                }
                let mut moved = (*job).clone();
                moved.cwd = entered.cwd;
                job = Arc::new(moved);
                launch.job = job.clone();
            }
            Err(e) => {
                return StepOutcome::Broken {
                    why: format!("cannot prepare the worktree of `{agent}`: {e}"),
                };
            }
        }
    }
    if let Work::Repair { agent, protect } = &job.work {
        return repair_attempt(&shared, &launch, agent, protect, &cancel).await;
    }
    let stderr_log = job.step_dir.join("stderr.log");
    let stderr_from = tokio::fs::metadata(&stderr_log)
        .await
        .map_or(0, |m| m.len());
    let attempt = match run_it(&shared, &launch, &cancel).await {
        Ok(a) => a,
        Err(why) => return StepOutcome::Broken { why },
    };
    // Files changed under another agent's claim: recorded, and with
    // `coordination.claims: enforce` the attempt fails.
    let claims_failure = match job.agent() {
        Some(agent) => {
            shared
                .messaging
                .check_claims(
                    &job.label,
                    &agent.name,
                    &job.cwd,
                    started_ms,
                    &shared.events,
                )
                .await
        }
        None => None,
    };
    if matches!(
        attempt.end,
        AttemptEnd::TimedOut(_)
            | AttemptEnd::Cancelled
            | AttemptEnd::ForceReleased
            | AttemptEnd::TokenLimit(_)
    ) {
        // What left the attempt's group (`setsid`) still carries the step's name.
        relay_broker::procscan::end_groups_with_envs(
            &[
                (relay_broker::watchdog::RUN_ID_ENV, shared.run_id.as_str()),
                ("AGENT_RELAY_STEP", job.label.as_str()),
            ],
            shared.settings.kill_grace,
        )
        .await;
    }
    let out_file = job.step_dir.join(format!("attempt-{}.txt", launch.attempt));
    if let Err(e) = crate::store::write_atomic(&out_file, attempt.output.as_bytes()).await {
        return StepOutcome::Broken { why: e.to_string() };
    }
    // An agent that asked a person waits for the answer (the run state decides).
    if job.agent().is_some()
        && matches!(
            attempt.end,
            AttemptEnd::Exited | AttemptEnd::ExitRequested | AttemptEnd::ForceReleased
        )
        && !attempt.answered_live
        && let Some(question) = crate::markers::question(&attempt.output)
    {
        return StepOutcome::NeedsAnswer {
            output: attempt.output,
            question,
        };
    }
    let env = launch::base_env(&shared, &job);
    let verdict = judge(
        &attempt,
        job.check.as_ref(),
        &CheckEnv {
            launcher: &shared.launcher,
            cwd: &job.cwd,
            output_file: &out_file,
            env: &env,
            stderr_path: Some(job.step_dir.join("stderr.log")),
            cancel: &cancel,
            kill_grace: shared.settings.kill_grace,
            tolerate_exit_code: matches!(
                job.work,
                Work::Command {
                    fail_on_error: false,
                    ..
                }
            ),
        },
    )
    .await;
    // The step's changes go onto its agent's branch, and into the run's branch when it
    // passed; a conflict loses neither side.
    if let Some((w, agent)) = &tree {
        let passed = matches!(verdict, Verdict::Pass) && claims_failure.is_none();
        match w.leave(&job.label, agent, passed).await {
            Ok(Left::Merged { commit }) => {
                let _ = shared.events.send(EventKind::WorktreeMerged {
                    step: job.label.clone(),
                    agent: agent.clone(),
                    branch: w.branch_of(agent),
                    commit,
                });
            }
            Ok(Left::Conflict(c)) => {
                let _ = shared.events.send(EventKind::WorktreeConflict {
                    step: job.label.clone(),
                    agent: agent.clone(),
                    branch: c.branch.clone(),
                    files: c.files.clone(),
                    report: c.report.display().to_string(),
                });
                return conflicted(&shared, &launch, w, &c, attempt, &cancel).await;
            }
            Ok(Left::Unchanged | Left::Kept { .. }) => {}
            Err(e) => {
                return StepOutcome::Broken {
                    why: format!("cannot commit or merge the work of `{agent}`: {e}"),
                };
            }
        }
    }
    if let Some(reason) = claims_failure {
        return StepOutcome::Failed {
            output: attempt.output,
            reason,
            exit_code: attempt.exit_code,
            retryable: false,
        };
    }
    match verdict {
        Verdict::Pass => StepOutcome::Completed {
            output: attempt.output,
            exit_code: attempt.exit_code,
        },
        Verdict::Fail { .. } if cancel.is_cancelled() => StepOutcome::Cancelled {
            output: attempt.output,
        },
        Verdict::Fail { reason, retryable } => {
            // A provider's limit is not the agent failing: the step parks.
            if let Some(limit) = rate_limit(&job, &attempt, &stderr_log, stderr_from).await {
                return StepOutcome::RateLimited {
                    output: attempt.output,
                    message: limit.message,
                    resets_at: limit.resets_at,
                };
            }
            StepOutcome::Failed {
                output: attempt.output,
                reason,
                exit_code: attempt.exit_code,
                retryable,
            }
        }
    }
}

/// A step whose changes conflicted with the run's branch: the resolver (when named)
/// gets the merge to resolve; the step completes when it lands on the run's branch, and
/// fails, both versions kept, when it does not.
async fn conflicted<L: Launcher>(
    shared: &Arc<Shared<L>>,
    launch: &Launch,
    w: &Arc<RunWorktrees>,
    c: &Conflict,
    attempt: Attempt,
    cancel: &CancellationToken,
) -> StepOutcome {
    let job = &launch.job;
    let kept = format!(
        "merge conflict with the run's branch in {}: both versions are kept (branch `{}`, report {})",
        c.files.join(", "),
        c.branch,
        c.report.display()
    );
    let failed = |reason: String| StepOutcome::Failed {
        output: attempt.output.clone(),
        reason,
        exit_code: attempt.exit_code,
        retryable: false,
    };
    let Some(resolver) = w.resolver().cloned() else {
        return failed(kept);
    };
    let path = match w.start_resolving(&job.label, c).await {
        Ok(p) => p,
        Err(e) => return failed(format!("{kept}; the resolver could not start: {e}")),
    };
    let mut rjob = (**job).clone();
    rjob.work = Work::Agent(Box::new(resolver.clone()));
    rjob.cwd = path.clone();
    rjob.check = None;
    rjob.state = None;
    rjob.append_board = false;
    rjob.step_dir = job.step_dir.join("resolve");
    if let Err(e) = crate::store::create_private_dir(&rjob.step_dir).await {
        return StepOutcome::Broken {
            why: format!("cannot write {}: {e}", rjob.step_dir.display()),
        };
    }
    let agent = job.agent().map(|a| a.name.clone()).unwrap_or_default();
    let text = resolve_task(&job.label, &agent, w.run_branch(), c);
    let rlaunch = Launch {
        job: Arc::new(rjob),
        attempt: launch.attempt,
        text,
        session: None,
    };
    let ran = run_it(shared, &rlaunch, cancel).await;
    if let Ok(a) = &ran {
        let out = rlaunch.job.step_dir.join("output.txt");
        let _ = crate::store::write_atomic(&out, a.output.as_bytes()).await;
    }
    if cancel.is_cancelled() {
        return StepOutcome::Cancelled {
            output: attempt.output,
        };
    }
    let resolution = match ran {
        Ok(_) => w.finish_resolving(&job.label, &path, c).await,
        Err(why) => Ok(Resolution::Unresolved(format!("it could not run: {why}"))),
    };
    match resolution {
        Ok(Resolution::Resolved { commit }) => {
            let _ = shared.events.send(EventKind::WorktreeResolved {
                step: job.label.clone(),
                resolver: resolver.name.clone(),
                commit,
            });
            StepOutcome::Completed {
                output: attempt.output,
                exit_code: attempt.exit_code,
            }
        }
        Ok(Resolution::Unresolved(why)) => failed(format!(
            "{kept}; the resolver `{}` did not resolve it: {why}",
            resolver.name
        )),
        Err(e) => failed(format!("{kept}; resolving failed: {e}")),
    }
}

/// What the resolver is asked to do.
fn resolve_task(step: &str, agent: &str, run_branch: &str, c: &Conflict) -> String {
    format!(
        "Resolve a merge conflict. The run's branch `{run_branch}` and `{}` (the work of agent \
         `{agent}` on step `{step}`) changed the same lines of: {}.\n\
         This directory has that merge in progress: the conflicted files contain conflict \
         markers (<<<<<<<, =======, >>>>>>>). Edit each file so it keeps what both sides \
         meant, remove every marker, and finish. Do not commit, switch branches or abort the \
         merge. The full report: {}",
        c.branch,
        c.files.join(", "),
        c.report.display()
    )
}

/// The rate or usage limit a failed agent attempt reported, in its output or in what it
/// wrote to stderr during the attempt (from byte `stderr_from` of the step's log).
async fn rate_limit(
    job: &StepJob,
    attempt: &Attempt,
    stderr_log: &std::path::Path,
    stderr_from: u64,
) -> Option<relay_broker::ratelimit::RateLimit> {
    let agent = job.agent()?;
    if matches!(
        attempt.end,
        AttemptEnd::Cancelled | AttemptEnd::TokenLimit(_) | AttemptEnd::DeliveryFailed(_)
    ) {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let offset = relay_broker::ratelimit::local_utc_offset(now);
    if let Some(l) = relay_broker::ratelimit::detect(Some(agent.cli), &attempt.output, now, offset)
    {
        return Some(l);
    }
    // Only the end of what this attempt wrote: enough for its last words.
    const TAIL: u64 = 16 * 1024;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(stderr_log).await.ok()?;
    let len = f.metadata().await.ok()?.len();
    let start = stderr_from.max(len.saturating_sub(TAIL)).min(len);
    f.seek(std::io::SeekFrom::Start(start)).await.ok()?;
    let mut bytes = Vec::new();
    f.take(TAIL).read_to_end(&mut bytes).await.ok()?;
    let text = String::from_utf8_lossy(&bytes);
    relay_broker::ratelimit::detect(Some(agent.cli), &text, now, offset)
}

/// The outcome of an attempt that runs nothing: a step only a hosted service could do
/// (failed with the reason; a rehearsal stands in for the service), and under
/// `--rehearse` a wait (it would wait for nothing the rehearsal agents make).
fn without_running<L: Launcher>(shared: &Shared<L>, job: &StepJob) -> Option<StepOutcome> {
    let rehearsed = |what: String| {
        let _ = shared.events.send(EventKind::Warning {
            message: format!("step `{}`: rehearsed: {what}", job.label),
        });
        StepOutcome::Completed {
            output: format!("rehearsal: {what}"),
            exit_code: None,
        }
    };
    match &job.work {
        Work::Unavailable(reason) if shared.rehearse => Some(rehearsed(reason.clone())),
        Work::Unavailable(reason) => Some(StepOutcome::Failed {
            output: String::new(),
            reason: reason.clone(),
            exit_code: None,
            retryable: false,
        }),
        Work::WaitFor { paths, events, .. } if shared.rehearse => Some(rehearsed(format!(
            "not waiting for {} on {}",
            if events.is_empty() {
                "any event".to_string()
            } else {
                events.join(" or ")
            },
            paths.join(", ")
        ))),
        _ => None,
    }
}

/// A random (version 4) UUID: the name of a new conversation a later step resumes.
/// Drawn from the standard library's per-process random hasher keys, which the OS
/// seeds; unique, not secret.
fn new_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Runs the attempt itself; an error is the machine failing it.
async fn run_it<L: Launcher>(
    shared: &Arc<Shared<L>>,
    launch: &Launch,
    cancel: &CancellationToken,
) -> Result<Attempt, String> {
    let job = &launch.job;
    let mut text = launch.text.clone();
    if job.append_board {
        text.push_str(&shared.messaging.board_section().await);
    }
    match &job.work {
        Work::Agent(agent) if agent.is_interactive() && !shared.rehearse => {
            let conversation =
                launch::conversation(shared, job, agent, launch.session.as_deref(), new_uuid);
            session_attempt(shared, job, launch.attempt, &text, conversation, cancel).await
        }
        Work::Agent(agent) => {
            // A one-shot agent learns who else is in the run, and gets the messages
            // waiting for it, in its task; they count as delivered once it is handed over.
            let (waiting, handed) = shared.messaging.waiting_for_oneshot(&agent.name).await;
            let mcp = launch::mcp_of(shared, job, agent);
            if let Some(m) = &mcp {
                launch::write_mcp_file(m).await?;
            }
            let task = format!(
                "{}{waiting}",
                shared
                    .messaging
                    .with_note(&text, &agent.name, mcp.is_some())
            );
            let task = launch::fit_argument(job, agent, task).await?;
            let resume = launch.session.as_deref();
            let spec = launch::agent_process(shared, job, agent, &task, resume, mcp.as_ref());
            // The agent may report its result through the socket (`report_done`).
            shared.messaging.live.started(&job.label, &agent.name, None);
            let attempt = process_attempt(shared, job, launch.attempt, spec, resume, cancel).await;
            let reported = shared.messaging.live.finished(&job.label);
            let mut attempt = attempt?;
            for d in handed {
                d.delivered();
            }
            shared
                .messaging
                .relay_output(&agent.name, &attempt.output)
                .await;
            if let Some(report) = reported {
                attempt.output = report;
            }
            Ok(attempt)
        }
        Work::Worktree {
            branch,
            base,
            create,
            path,
        } => {
            let script = launch::worktree_script(branch, base, *create, path, shared.rehearse);
            let spec = launch::command_process(shared, job, &script);
            let mut attempt =
                process_attempt(shared, job, launch.attempt, spec, None, cancel).await?;
            attempt.output = attempt.output.trim().to_string();
            Ok(attempt)
        }
        Work::WaitFor {
            paths,
            events,
            timeout,
        } => Ok(
            match wait::wait(&job.cwd, paths, events, *timeout, cancel).await {
                wait::WaitEnd::Event(e) => Attempt {
                    end: AttemptEnd::Exited,
                    exit_code: Some(0),
                    signal: None,
                    output: serde_json::to_string(&e).unwrap_or_default(),
                    answered_live: false,
                },
                wait::WaitEnd::TimedOut => Attempt {
                    end: AttemptEnd::TimedOut(timeout.unwrap_or_default()),
                    exit_code: None,
                    signal: None,
                    output: String::new(),
                    answered_live: false,
                },
                wait::WaitEnd::Cancelled => Attempt {
                    end: AttemptEnd::Cancelled,
                    exit_code: None,
                    signal: None,
                    output: String::new(),
                    answered_live: false,
                },
            },
        ),
        Work::Unavailable(reason) => Err(reason.clone()),
        Work::Repair { .. } => Err("a repair runs on its own".into()),
        Work::Command { capture_output, .. } => {
            let spec = launch::command_process(shared, job, &text);
            let mut attempt =
                process_attempt(shared, job, launch.attempt, spec, None, cancel).await?;
            if !capture_output {
                attempt.output = match attempt.exit_code {
                    Some(code) => format!("command completed (exit {code})"),
                    None => "command completed (killed by a signal)".to_string(),
                };
            }
            Ok(attempt)
        }
    }
}

/// A repair: the agent runs one-shot between photographs of the working tree; what it
/// changed is kept (`changes.txt`, `diff.patch` in its directory) and is the outcome's
/// output; a protected file among the changes fails it.
async fn repair_attempt<L: Launcher>(
    shared: &Arc<Shared<L>>,
    launch: &Launch,
    agent: &relay_spec::Agent,
    protect: &[String],
    cancel: &CancellationToken,
) -> StepOutcome {
    let job = &launch.job;
    let photo = |cwd: std::path::PathBuf, scratch: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || repair::photograph(&cwd, &scratch))
    };
    let before = match photo(job.cwd.clone(), job.step_dir.clone()).await {
        Ok(p) => p,
        Err(e) => return StepOutcome::Broken { why: e.to_string() },
    };
    let task = match launch::fit_argument(job, agent, launch.text.clone()).await {
        Ok(t) => t,
        Err(why) => return StepOutcome::Broken { why },
    };
    let spec = launch::agent_process(shared, job, agent, &task, None, None);
    let attempt = match process_attempt(shared, job, launch.attempt, spec, None, cancel).await {
        Ok(a) => a,
        Err(why) => return StepOutcome::Broken { why },
    };
    let after = match photo(job.cwd.clone(), job.step_dir.clone()).await {
        Ok(p) => p,
        Err(e) => return StepOutcome::Broken { why: e.to_string() },
    };
    let changes = tokio::task::spawn_blocking(move || repair::compare(&before, &after))
        .await
        .unwrap_or_default();
    let files = changes.files.join("\n");
    let kept = [
        ("output.txt", attempt.output.as_str()),
        ("changes.txt", files.as_str()),
        ("diff.patch", changes.diff.as_str()),
    ];
    for (name, text) in kept {
        if let Err(e) = crate::store::write_atomic(&job.step_dir.join(name), text.as_bytes()).await
        {
            return StepOutcome::Broken { why: e.to_string() };
        }
    }
    let summary = match changes.files.len() {
        0 => "changed no files".to_string(),
        n => format!("changed {n} file(s): {}", changes.files.join(", ")),
    };
    let forbidden = repair::protected(&changes, protect);
    if !forbidden.is_empty() {
        return StepOutcome::Failed {
            output: summary,
            reason: format!(
                "the repair by `{}` changed protected files: {}",
                agent.name,
                forbidden.join(", ")
            ),
            exit_code: attempt.exit_code,
            retryable: false,
        };
    }
    match (attempt.end, attempt.exit_code) {
        (AttemptEnd::Exited, Some(0)) => StepOutcome::Completed {
            output: summary,
            exit_code: Some(0),
        },
        (AttemptEnd::Cancelled, _) => StepOutcome::Cancelled { output: summary },
        (_, code) => StepOutcome::Failed {
            output: summary,
            reason: format!(
                "the repair by `{}` did not finish (exit code {})",
                agent.name,
                code.map_or("none".to_string(), |c| c.to_string())
            ),
            exit_code: code,
            retryable: false,
        },
    }
}

async fn process_attempt<L: Launcher>(
    shared: &Arc<Shared<L>>,
    job: &StepJob,
    attempt: u32,
    spec: relay_broker::process::ProcessSpec,
    resuming: Option<&str>,
    cancel: &CancellationToken,
) -> Result<Attempt, String> {
    if let Some(sandbox) = &spec.sandbox {
        let _ = shared.events.send(EventKind::AgentSandboxed {
            step: job.label.clone(),
            attempt,
            rules: sandbox.describe(),
        });
    }
    let max_tokens = spec.max_tokens;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fut = shared.launcher.run_process(spec, cancel.clone(), tx);
    tokio::pin!(fut);
    let spawned = |pgid| {
        let _ = shared.events.send(EventKind::AgentSpawned {
            step: job.label.clone(),
            attempt,
            pgid,
            worker: shared.launcher.placement(&job.label),
            continued: false,
        });
    };
    let res = loop {
        tokio::select! {
            res = &mut fut => break res,
            Some(pgid) = rx.recv() => spawned(pgid),
        }
    };
    while let Ok(pgid) = rx.try_recv() {
        spawned(pgid);
    }
    let out = res.map_err(|e| e.to_string())?;
    if let (Some(agent), Some(session)) = (job.agent(), &out.session) {
        let _ = shared.events.send(EventKind::AgentSession {
            step: job.label.clone(),
            attempt,
            agent: agent.name.clone(),
            session: session.clone(),
            resumed: resuming == Some(session.as_str()),
        });
    }
    if out.dropped > 0 {
        let _ = shared.events.send(EventKind::Warning {
            message: format!(
                "step `{}`: its output passed {} MiB; {} bytes from the middle were dropped",
                job.label,
                relay_broker::process::OUTPUT_CAP / (1024 * 1024),
                out.dropped
            ),
        });
    }
    if let Some(usage) = &out.usage {
        let model = out.model.clone().or_else(|| {
            job.agent()
                .and_then(|a| a.effective_model().map(str::to_owned))
        });
        let _ = shared.events.send(EventKind::StepUsage {
            step: job.label.clone(),
            attempt,
            usage: *usage,
            total_tokens: usage.total(),
            cost_usd: shared.prices.cost(model.as_deref(), usage),
            model,
        });
        if out.end == relay_broker::process::ProcessEnd::TokenLimit {
            let _ = shared.events.send(EventKind::StepTokenLimit {
                step: job.label.clone(),
                attempt,
                max_tokens: max_tokens.unwrap_or_default(),
                used: usage.total(),
            });
        }
    }
    Ok(Attempt {
        end: match out.end {
            relay_broker::process::ProcessEnd::Exited => AttemptEnd::Exited,
            relay_broker::process::ProcessEnd::TimedOut => {
                AttemptEnd::TimedOut(job.timeout.unwrap_or_default())
            }
            relay_broker::process::ProcessEnd::Cancelled => AttemptEnd::Cancelled,
            relay_broker::process::ProcessEnd::TokenLimit => {
                AttemptEnd::TokenLimit(max_tokens.unwrap_or_default())
            }
        },
        exit_code: out.exit_code,
        signal: out.signal,
        output: out.stdout,
        answered_live: false,
    })
}

async fn session_attempt<L: Launcher>(
    shared: &Arc<Shared<L>>,
    job: &StepJob,
    attempt: u32,
    text: &str,
    conversation: Option<launch::Conversation>,
    cancel: &CancellationToken,
) -> Result<Attempt, String> {
    let Work::Agent(agent) = &job.work else {
        return Err(format!("step `{}` has no agent", job.step_name));
    };
    if let Some(c) = &conversation {
        let _ = shared.events.send(EventKind::AgentSession {
            step: job.label.clone(),
            attempt,
            agent: agent.name.clone(),
            session: c.id.clone(),
            resumed: c.resumed,
        });
    }
    let mcp = launch::mcp_of(shared, job, agent);
    if let Some(m) = &mcp {
        launch::write_mcp_file(m).await?;
    }
    let exit = if mcp.is_some() {
        MCP_EXIT_INSTRUCTION
    } else {
        EXIT_INSTRUCTION
    };
    let task = format!(
        "{}\n\n{exit}",
        shared.messaging.with_note(text, &agent.name, mcp.is_some())
    );
    let spec = launch::session(
        shared,
        job,
        agent,
        attempt,
        task,
        conversation.as_ref(),
        mcp.as_ref(),
    );
    if let Some(sandbox) = &spec.sandbox {
        let _ = shared.events.send(EventKind::AgentSandboxed {
            step: job.label.clone(),
            attempt,
            rules: sandbox.describe(),
        });
    }
    let (inbox, mut feed) = shared.messaging.session_feed(&agent.name);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // `report_done` ends the session through its own token, a child of the attempt's.
    let ending = cancel.child_token();
    shared
        .messaging
        .live
        .started(&job.label, &agent.name, Some(ending.clone()));
    let fut = shared
        .launcher
        .run_session(spec, ending.clone(), tx, Some(inbox));
    tokio::pin!(fut);
    let step = job.label.clone();
    let mut asked = false;
    let forward = |ev: &SessionEvent| {
        let kind = match ev {
            SessionEvent::Spawned { pgid } | SessionEvent::Continued { pgid } => {
                EventKind::AgentSpawned {
                    step: step.clone(),
                    attempt,
                    pgid: *pgid,
                    worker: shared.launcher.placement(&step),
                    continued: matches!(ev, SessionEvent::Continued { .. }),
                }
            }
            SessionEvent::Ready { fallback } => EventKind::AgentReady {
                step: step.clone(),
                fallback: *fallback,
            },
            SessionEvent::TaskDelivered { attempts } => EventKind::TaskDelivered {
                step: step.clone(),
                attempts: *attempts,
            },
            SessionEvent::Idle => EventKind::AgentIdle { step: step.clone() },
            SessionEvent::Nudged { count } => EventKind::StepNudged {
                step: step.clone(),
                count: *count,
            },
            SessionEvent::ForceReleased => EventKind::StepForceReleased { step: step.clone() },
            SessionEvent::ExitRequested => EventKind::AgentExitRequested { step: step.clone() },
            SessionEvent::DialogAnswered { dialog } => EventKind::AgentDialogAnswered {
                step: step.clone(),
                dialog: dialog.clone(),
            },
            SessionEvent::NotReady { reason } => EventKind::AgentNotReady {
                step: step.clone(),
                reason: reason.clone(),
            },
            SessionEvent::Asked { question } => EventKind::QuestionAsked {
                step: step.clone(),
                question: question.clone(),
            },
            // Messaging events are the feed's; the router records them.
            SessionEvent::Relay(_)
            | SessionEvent::MessageDelivered { .. }
            | SessionEvent::MessageNotDelivered { .. } => return,
        };
        let _ = shared.events.send(kind);
    };
    let res = loop {
        tokio::select! {
            res = &mut fut => break res,
            Some(ev) = rx.recv() => {
                if matches!(ev, SessionEvent::Asked { .. }) {
                    asked = true;
                    shared.messaging.asking(&step, &feed);
                }
                feed.on_event(&agent.name, &ev).await;
                forward(&ev);
            }
        }
    };
    // What the agent printed for others is sent before its step counts as finished.
    while let Ok(ev) = rx.try_recv() {
        feed.on_event(&agent.name, &ev).await;
        forward(&ev);
    }
    // A question still waiting for its answer is asked again once the session is over.
    let answered_live = !shared.messaging.session_ended(&step) && asked;
    // Messages offered and not delivered go back to the mailbox.
    drop(feed);
    let reported = shared.messaging.live.finished(&step);
    // A terminal the launcher kept open for the agent's next step after a cancel from
    // outside (not the agent's own report) was stopped mid-task: it ends here.
    if cancel.is_cancelled() && job.keeps_session {
        shared
            .launcher
            .end_kept(&shared.run_id, Some(&agent.name))
            .await;
    }
    let mut out = res.map_err(|e| e.to_string())?;
    // Ended because the agent reported its result, not by a cancel from outside: as if
    // it had printed `/exit`, with the result as its output.
    if let Some(report) = reported
        && !cancel.is_cancelled()
    {
        if out.end == SessionEnd::Cancelled {
            out.end = SessionEnd::ExitRequested;
        }
        out.output = report;
    }
    // After `/exit` the process ends because we end it; its exit code says nothing.
    let exit_code = match out.end {
        SessionEnd::ExitRequested => None,
        _ => out.exit_code,
    };
    Ok(Attempt {
        end: match out.end {
            SessionEnd::ExitRequested => AttemptEnd::ExitRequested,
            SessionEnd::Exited => AttemptEnd::Exited,
            SessionEnd::TimedOut => AttemptEnd::TimedOut(job.timeout.unwrap_or_default()),
            SessionEnd::ForceReleased => AttemptEnd::ForceReleased,
            SessionEnd::Cancelled => AttemptEnd::Cancelled,
            SessionEnd::DeliveryFailed(why) => AttemptEnd::DeliveryFailed(why),
            SessionEnd::RateLimited(line) => AttemptEnd::RateLimited(line),
        },
        exit_code,
        signal: None,
        output: out.output,
        answered_live,
    })
}
