//! Running one step to its end: each attempt (an agent as a subprocess or terminal session,
//! or a shell command), its verification, and the retries in between. Runs as its own
//! task; reports what happens as events and returns the step's result.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_broker::Launcher;
use relay_broker::cli_table::{interactive_args, oneshot_args, profile};
use relay_broker::process::{ProcessEnd, ProcessSpec};
use relay_broker::session::{NudgePolicy, SessionEnd, SessionEvent, SessionSpec, SessionTiming};
use relay_messaging::PolicyHandle;
use relay_spec::{Agent, Step, StepType, VerificationType};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::events::EventKind;
use crate::messaging::RunMessaging;
use crate::settings::Settings;
use crate::verify::{Attempt, AttemptEnd, Check, CheckEnv, Verdict, judge, tail_lines};

/// What every step of a run shares.
pub(crate) struct Shared<L: Launcher> {
    pub launcher: Arc<L>,
    pub run_id: String,
    pub run_dir: PathBuf,
    pub self_bin: PathBuf,
    pub rehearse: bool,
    pub settings: Settings,
    pub nudge: Option<NudgePolicy>,
    pub events: UnboundedSender<EventKind>,
    /// The run's messaging: broker, socket, agents' states.
    pub relay: Arc<RunMessaging>,
    /// Who may message whom: the router's policy. Patterns restrict it with
    /// `may_send.set(SendPolicy::new(rule, |from, to| ...))`; a refused message fails
    /// with a reason naming the rule.
    #[allow(
        dead_code,
        reason = "set by swarm patterns; the router reads it through its handle"
    )]
    pub may_send: PolicyHandle,
}

/// One step, ready to run: its texts already interpolated.
pub(crate) struct StepJob {
    pub index: usize,
    /// The node's name in events, logs and `AGENT_RELAY_STEP`.
    pub label: String,
    pub step: Step,
    pub agent: Option<Agent>,
    /// The task (agent steps) or command (deterministic steps).
    pub text: String,
    pub cwd: PathBuf,
    pub check: Option<Check>,
    pub max_attempts: u32,
    pub retry_delay: Duration,
    pub timeout: Option<Duration>,
    pub step_dir: PathBuf,
    pub cancel: CancellationToken,
}

/// How a step ended.
#[derive(Debug, Clone)]
pub(crate) struct StepResult {
    pub index: usize,
    pub completed: bool,
    pub attempts: u32,
    pub exit_code: Option<i32>,
    pub output: String,
    pub reason: Option<String>,
    pub duration: Duration,
    /// Set when the step could not run at all (CLI missing, cannot spawn, disk).
    pub runtime_error: Option<String>,
    pub cancelled: bool,
}

/// How a step ended, before it becomes a `StepResult`.
struct Ended {
    completed: bool,
    exit_code: Option<i32>,
    output: String,
    reason: Option<String>,
    runtime_error: Option<String>,
    cancelled: bool,
}

impl Ended {
    fn result(self, job: &StepJob, attempts: u32, started: Instant) -> StepResult {
        StepResult {
            index: job.index,
            completed: self.completed,
            attempts,
            exit_code: self.exit_code,
            output: self.output,
            reason: self.reason,
            duration: started.elapsed(),
            runtime_error: self.runtime_error,
            cancelled: self.cancelled,
        }
    }
}

pub(crate) async fn run_step<L: Launcher>(shared: Arc<Shared<L>>, job: StepJob) -> StepResult {
    shared.relay.attach(&shared.events);
    let label = job.label.clone();
    let agent = job.agent.as_ref().map(|a| a.name.clone());
    shared.relay.step_started(agent.as_deref()).await;
    let result = run_attempts(shared.clone(), job).await;
    let failure = (!result.completed && !result.cancelled)
        .then(|| result.reason.as_deref().unwrap_or("failed"));
    shared
        .relay
        .step_finished(&label, agent.as_deref(), failure)
        .await;
    result
}

async fn run_attempts<L: Launcher>(shared: Arc<Shared<L>>, job: StepJob) -> StepResult {
    let started = Instant::now();
    let name = job.label.clone();
    let mut last: Option<(String, Attempt)> = None;
    let mut attempt_no = 0;
    loop {
        attempt_no += 1;
        let _ = shared.events.send(EventKind::StepStarted {
            step: name.clone(),
            attempt: attempt_no,
            agent: job.agent.as_ref().map(|a| a.name.clone()),
        });
        let text = match (&last, job.step.kind()) {
            (Some((reason, prev)), StepType::Agent) => {
                retry_text(&job.text, attempt_no, job.max_attempts, reason, prev)
            }
            _ => job.text.clone(),
        };
        let attempt = match run_attempt(&shared, &job, attempt_no, &text).await {
            Ok(a) => a,
            Err(why) => {
                return Ended {
                    completed: false,
                    exit_code: None,
                    output: String::new(),
                    reason: Some(why.clone()),
                    runtime_error: Some(why),
                    cancelled: false,
                }
                .result(&job, attempt_no, started);
            }
        };
        let out_file = job.step_dir.join(format!("attempt-{attempt_no}.txt"));
        if let Err(e) = tokio::fs::write(&out_file, &attempt.output).await {
            let why = format!("cannot write {}: {e}", out_file.display());
            return Ended {
                completed: false,
                exit_code: attempt.exit_code,
                output: attempt.output,
                reason: Some(why.clone()),
                runtime_error: Some(why),
                cancelled: false,
            }
            .result(&job, attempt_no, started);
        }
        let env = base_env(&shared, &job);
        let verdict = judge(
            &attempt,
            job.check.as_ref(),
            &CheckEnv {
                launcher: &shared.launcher,
                cwd: &job.cwd,
                output_file: &out_file,
                env: &env,
                stderr_path: Some(job.step_dir.join("stderr.log")),
                cancel: &job.cancel,
                tolerate_exit_code: job.step.kind() == StepType::Deterministic
                    && job.step.fail_on_error == Some(false),
            },
        )
        .await;
        match verdict {
            Verdict::Pass => {
                return Ended {
                    completed: true,
                    exit_code: attempt.exit_code,
                    output: attempt.output,
                    reason: None,
                    runtime_error: None,
                    cancelled: false,
                }
                .result(&job, attempt_no, started);
            }
            Verdict::Fail { reason, retryable } => {
                let cancelled = job.cancel.is_cancelled();
                if !retryable || cancelled || attempt_no >= job.max_attempts {
                    return Ended {
                        completed: false,
                        exit_code: attempt.exit_code,
                        output: attempt.output,
                        reason: Some(reason),
                        runtime_error: None,
                        cancelled,
                    }
                    .result(&job, attempt_no, started);
                }
                let _ = shared.events.send(EventKind::StepRetrying {
                    step: name.clone(),
                    attempt: attempt_no,
                    reason: reason.clone(),
                    delay_ms: job.retry_delay.as_millis() as u64,
                });
                tokio::select! {
                    () = tokio::time::sleep(job.retry_delay) => {}
                    () = job.cancel.cancelled() => {
                        return Ended { completed: false, exit_code: attempt.exit_code, output: attempt.output, reason: Some("cancelled".into()), runtime_error: None, cancelled: true }.result(&job, attempt_no, started);
                    }
                }
                last = Some((reason, attempt));
            }
        }
    }
}

/// The task of a retry: the original task, then what went wrong last time.
fn retry_text(task: &str, attempt: u32, max: u32, reason: &str, prev: &Attempt) -> String {
    let mut t = format!(
        "{task}\n\n---\nThis is attempt {attempt} of {max}. The previous attempt failed: {reason}."
    );
    if let Some(code) = prev.exit_code {
        t.push_str(&format!(" It exited with code {code}."));
    }
    let tail = tail_lines(&prev.output, 20);
    if !tail.is_empty() {
        t.push_str("\nThe end of its output was:\n");
        t.push_str(&tail);
    }
    t.push_str("\nPlease fix that and complete the task.");
    t
}

fn base_env<L: Launcher>(shared: &Shared<L>, job: &StepJob) -> Vec<(String, String)> {
    let mut env = vec![
        ("AGENT_RELAY_RUN_ID".to_string(), shared.run_id.clone()),
        ("AGENT_RELAY_STEP".to_string(), job.label.clone()),
        (
            "AGENT_RELAY_BIN".to_string(),
            shared.self_bin.display().to_string(),
        ),
        (
            "AGENT_RELAY_RUN_DIR".to_string(),
            shared.run_dir.display().to_string(),
        ),
    ];
    if let Some(a) = &job.agent {
        env.push(("AGENT_RELAY_NAME".to_string(), a.name.clone()));
    }
    env.push(shared.relay.env());
    env
}

/// Hints that let the rehearsal agent satisfy the step's verification.
fn rehearsal_env(check: Option<&Check>) -> Vec<(String, String)> {
    let Some(c) = check else {
        return Vec::new();
    };
    let key = match c.kind {
        VerificationType::OutputContains => "AGENT_RELAY_REHEARSE_SAY",
        VerificationType::FileExists => "AGENT_RELAY_REHEARSE_WRITE",
        VerificationType::ExitCode => "AGENT_RELAY_REHEARSE_EXIT_CODE",
        VerificationType::Custom => return Vec::new(),
    };
    vec![(key.to_string(), c.value.clone())]
}

async fn run_attempt<L: Launcher>(
    shared: &Arc<Shared<L>>,
    job: &StepJob,
    attempt: u32,
    text: &str,
) -> Result<Attempt, String> {
    let mut env = base_env(shared, job);
    let stderr_path = Some(job.step_dir.join("stderr.log"));
    // A one-shot agent learns who else is in the run, and gets the messages waiting for
    // it, in its task; they count as delivered once the task is handed over.
    let mut handed = Vec::new();
    let oneshot_task;
    let text = match (&job.agent, job.step.kind()) {
        (Some(agent), StepType::Agent) if shared.rehearse || !agent.is_interactive() => {
            let (waiting, claimed) = shared.relay.waiting_for_oneshot(&agent.name).await;
            handed = claimed;
            oneshot_task = format!("{}{waiting}", with_note(text, &shared.relay, &agent.name));
            oneshot_task.as_str()
        }
        _ => text,
    };
    let spec = match (&job.agent, job.step.kind()) {
        (_, StepType::Deterministic) => ProcessSpec {
            program: "sh".into(),
            args: vec!["-c".into(), text.to_string()],
            cwd: job.cwd.clone(),
            env,
            timeout: job.timeout,
            stderr_path,
            kill_grace: shared.settings.kill_grace,
        },
        (Some(agent), StepType::Agent) if shared.rehearse => {
            env.extend(rehearsal_env(job.check.as_ref()));
            ProcessSpec {
                program: shared.self_bin.display().to_string(),
                args: vec![
                    "rehearse-agent".into(),
                    "--cli".into(),
                    agent.cli.as_str().into(),
                    "--".into(),
                    text.to_string(),
                ],
                cwd: job.cwd.clone(),
                env,
                timeout: job.timeout,
                stderr_path,
                kill_grace: shared.settings.kill_grace,
            }
        }
        (Some(agent), StepType::Agent) if agent.is_interactive() => {
            return run_session_attempt(shared, job, agent, attempt, text, env).await;
        }
        (Some(agent), StepType::Agent) => ProcessSpec {
            program: profile(agent.cli).program.into(),
            args: oneshot_args(agent.cli, agent.effective_model(), text),
            cwd: job.cwd.clone(),
            env,
            timeout: job.timeout,
            stderr_path,
            kill_grace: shared.settings.kill_grace,
        },
        (None, StepType::Agent) => return Err(format!("step `{}` has no agent", job.step.name)),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fut = shared.launcher.run_process(spec, job.cancel.clone(), tx);
    tokio::pin!(fut);
    let res = loop {
        tokio::select! {
            res = &mut fut => break res,
            Some(pgid) = rx.recv() => {
                let _ = shared.events.send(EventKind::AgentSpawned { step: job.label.clone(), attempt, pgid });
            }
        }
    };
    while let Ok(pgid) = rx.try_recv() {
        let _ = shared.events.send(EventKind::AgentSpawned {
            step: job.label.clone(),
            attempt,
            pgid,
        });
    }
    let out = res.map_err(|e| e.to_string())?;
    for d in handed {
        d.delivered();
    }
    if let (Some(agent), StepType::Agent) = (&job.agent, job.step.kind()) {
        shared.relay.relay_output(&agent.name, &out.stdout).await;
    }
    let capture = job.step.kind() == StepType::Agent || job.step.capture_output != Some(false);
    Ok(Attempt {
        end: match out.end {
            ProcessEnd::Exited => AttemptEnd::Exited,
            ProcessEnd::TimedOut => AttemptEnd::TimedOut(job.timeout.unwrap_or_default()),
            ProcessEnd::Cancelled => AttemptEnd::Cancelled,
        },
        exit_code: out.exit_code,
        signal: out.signal,
        output: if capture { out.stdout } else { String::new() },
    })
}

/// `task` followed by the note on `agent`'s peers, when it has any.
fn with_note(task: &str, relay: &RunMessaging, agent: &str) -> String {
    match relay.peers_note(agent) {
        Some(note) => format!("{task}\n\n{note}"),
        None => task.to_owned(),
    }
}

/// The line appended to every interactive task so the agent knows how to finish.
pub const EXIT_INSTRUCTION: &str = "When you have finished, print /exit on a line of its own.";

async fn run_session_attempt<L: Launcher>(
    shared: &Arc<Shared<L>>,
    job: &StepJob,
    agent: &Agent,
    attempt: u32,
    text: &str,
    env: Vec<(String, String)>,
) -> Result<Attempt, String> {
    let p = profile(agent.cli);
    let mut argv = vec![p.program.to_string()];
    argv.extend(interactive_args(agent.cli, agent.effective_model()));
    let mut timing: SessionTiming = shared.settings.session_timing();
    timing.idle_threshold = match agent
        .constraints
        .as_ref()
        .and_then(|c| c.idle_threshold_secs)
    {
        Some(0) => None,
        Some(s) => Some(Duration::from_secs(s)),
        None => timing.idle_threshold,
    };
    let (inbox, mut feed) = shared.relay.session_feed(&agent.name);
    let spec = SessionSpec {
        argv,
        cwd: job.cwd.clone(),
        env,
        task: format!(
            "{}\n\n{EXIT_INSTRUCTION}",
            with_note(text, &shared.relay, &agent.name)
        ),
        cli: Some(agent.cli),
        transcript_path: job.step_dir.join(format!("attempt-{attempt}.pty")),
        timeout: job.timeout,
        size: shared.settings.pty_size,
        timing,
        nudge: shared.nudge.clone(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fut = shared
        .launcher
        .run_session(spec, job.cancel.clone(), tx, Some(inbox));
    tokio::pin!(fut);
    let step = job.label.clone();
    let forward = |ev: SessionEvent| {
        let kind = match ev {
            SessionEvent::Spawned { pgid } => EventKind::AgentSpawned {
                step: step.clone(),
                attempt,
                pgid,
            },
            SessionEvent::Ready { fallback } => EventKind::AgentReady {
                step: step.clone(),
                fallback,
            },
            SessionEvent::TaskDelivered { attempts } => EventKind::TaskDelivered {
                step: step.clone(),
                attempts,
            },
            SessionEvent::Idle => EventKind::AgentIdle { step: step.clone() },
            SessionEvent::Nudged { count } => EventKind::StepNudged {
                step: step.clone(),
                count,
            },
            SessionEvent::ForceReleased => EventKind::StepForceReleased { step: step.clone() },
            SessionEvent::ExitRequested => EventKind::AgentExitRequested { step: step.clone() },
            SessionEvent::Relay(_)
            | SessionEvent::MessageDelivered { .. }
            | SessionEvent::MessageNotDelivered { .. } => return,
            _ => return,
        };
        let _ = shared.events.send(kind);
    };
    let res = loop {
        tokio::select! {
            res = &mut fut => break res,
            Some(ev) = rx.recv() => {
                feed.on_event(&agent.name, &ev).await;
                forward(ev);
            }
        }
    };
    // What the agent printed for others is sent before its step counts as finished.
    while let Ok(ev) = rx.try_recv() {
        feed.on_event(&agent.name, &ev).await;
        forward(ev);
    }
    drop(feed);
    let out = res.map_err(|e| e.to_string())?;
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
        },
        exit_code,
        signal: None,
        output: out.output,
    })
}
