//! Deciding whether an attempt succeeded: how it ended, its exit code, and the step's
//! verification check (`output_contains`, `exit_code`, `file_exists`, `custom`), run
//! where the attempt ran (custom checks through the same launcher).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use relay_broker::Launcher;
use relay_broker::process::{ProcessEnd, ProcessSpec};
use relay_spec::{CustomCheck, VerificationType};

use crate::markers::OwnerDecision;

use crate::job::{Check, tail_lines};
use tokio_util::sync::CancellationToken;

/// How an attempt ended, whatever ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The process exited by itself.
    Exited,
    /// An interactive agent printed `/exit`.
    ExitRequested,
    /// The attempt's timeout ran out.
    TimedOut(Duration),
    /// The run was cancelled.
    Cancelled,
    /// An idle interactive agent was force-released.
    ForceReleased,
    /// The agent passed its `maxTokens` (the limit) and was stopped.
    TokenLimit(u64),
    /// The task could not be delivered to an interactive agent.
    DeliveryFailed(String),
    /// An interactive agent stopped at a provider's limit (the line that says so).
    RateLimited(String),
}

/// What an attempt produced.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// How it ended.
    pub end: AttemptEnd,
    /// Exit code, when it exited with one.
    pub exit_code: Option<i32>,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// The step output.
    pub output: String,
    /// A terminal session's agent asked a person and had every question answered while
    /// it ran: the questions in its output are settled.
    pub answered_live: bool,
}

/// Whether the attempt passed, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The step succeeded.
    Pass,
    /// It failed; `retryable` is false when another attempt cannot help.
    Fail {
        /// Why, in words.
        reason: String,
        /// Whether retrying makes sense.
        retryable: bool,
    },
}

impl Verdict {
    fn fail(reason: impl Into<String>) -> Self {
        Verdict::Fail {
            reason: reason.into(),
            retryable: true,
        }
    }
}

/// Everything a check may need to look at.
pub struct CheckEnv<'a, L: Launcher> {
    /// Runs custom check commands.
    pub launcher: &'a Arc<L>,
    /// The step's working directory.
    pub cwd: &'a Path,
    /// The file holding this attempt's output.
    pub output_file: &'a Path,
    /// Extra environment for custom checks.
    pub env: &'a [(String, String)],
    /// Where a custom check's stderr goes.
    pub stderr_path: Option<PathBuf>,
    /// Cancels a running custom check.
    pub cancel: &'a CancellationToken,
    /// Grace between TERM and KILL when a custom check is ended.
    pub kill_grace: Duration,
    /// Whether a non-zero exit is accepted (deterministic steps with `failOnError: false`).
    pub tolerate_exit_code: bool,
}

/// Judges `attempt` against `check`.
pub async fn judge<L: Launcher>(
    attempt: &Attempt,
    check: Option<&Check>,
    env: &CheckEnv<'_, L>,
) -> Verdict {
    match &attempt.end {
        AttemptEnd::Cancelled => {
            return Verdict::Fail {
                reason: "cancelled".into(),
                retryable: false,
            };
        }
        AttemptEnd::DeliveryFailed(why) => {
            return Verdict::fail(format!("task could not be delivered: {why}"));
        }
        AttemptEnd::RateLimited(line) => {
            return Verdict::fail(format!("the agent stopped at a provider's limit: {line}"));
        }
        AttemptEnd::TimedOut(after) => {
            // The safety net: an agent that did its work but never said so still passes.
            if let Some(c) = check.filter(|c| c.kind == VerificationType::FileExists)
                && run_check(c, attempt, env).await == Verdict::Pass
            {
                return Verdict::Pass;
            }
            return Verdict::fail(format!("timed out after {} ms", after.as_millis()));
        }
        AttemptEnd::TokenLimit(max) => {
            // Judged on what it produced; another attempt would spend as much again.
            let stopped = format!("stopped after passing its maxTokens ({max})");
            return match check {
                None => Verdict::Fail {
                    reason: stopped,
                    retryable: false,
                },
                Some(c) => match run_check(c, attempt, env).await {
                    Verdict::Pass => Verdict::Pass,
                    Verdict::Fail { reason, .. } => Verdict::Fail {
                        reason: format!("{stopped}; {reason}"),
                        retryable: false,
                    },
                },
            };
        }
        AttemptEnd::ForceReleased => {
            return match check {
                None => Verdict::fail("force-released"),
                Some(c) => match run_check(c, attempt, env).await {
                    Verdict::Pass => Verdict::Pass,
                    Verdict::Fail { reason, retryable } => Verdict::Fail {
                        reason: format!("force-released; {reason}"),
                        retryable,
                    },
                },
            };
        }
        AttemptEnd::Exited | AttemptEnd::ExitRequested => {}
    }
    // What the agent said of its own work comes first.
    match crate::markers::owner_decision(&attempt.output) {
        Some(OwnerDecision::Fail(reason)) => {
            return Verdict::Fail {
                reason: reported("INCOMPLETE_FAIL", reason),
                retryable: false,
            };
        }
        Some(OwnerDecision::Retry(reason)) => {
            return Verdict::fail(reported("INCOMPLETE_RETRY", reason));
        }
        Some(OwnerDecision::Complete | OwnerDecision::NeedsClarification(_)) | None => {}
    }
    // An agent that printed `/exit` declared success; the code it exits with when we then
    // end its session (143 for claude on TERM) is ours, not its verdict.
    let code = match attempt.end {
        AttemptEnd::ExitRequested => Some(0),
        _ => attempt.exit_code,
    };
    if let Some(c) = check.filter(|c| c.kind == VerificationType::ExitCode) {
        let expected: i32 = c.value.trim().parse().unwrap_or(0);
        return match code {
            Some(got) if got == expected => Verdict::Pass,
            Some(got) => Verdict::fail(format!("exit code {got}, expected {expected}")),
            None => Verdict::fail(format!(
                "killed by signal {}, expected exit code {expected}",
                attempt.signal.unwrap_or(0)
            )),
        };
    }
    match code {
        Some(0) => {}
        Some(_) if env.tolerate_exit_code => {}
        Some(got) => return Verdict::fail(format!("exit code {got}")),
        None => {
            return Verdict::fail(format!("killed by signal {}", attempt.signal.unwrap_or(0)));
        }
    }
    match check {
        Some(c) => run_check(c, attempt, env).await,
        None => Verdict::Pass,
    }
}

/// The reason of a failure an agent reported with `OWNER_DECISION: <what>`.
fn reported(what: &str, reason: Option<String>) -> String {
    match reason {
        Some(r) => format!("the agent reported {what}: {r}"),
        None => format!("the agent reported {what}"),
    }
}

async fn run_check<L: Launcher>(c: &Check, attempt: &Attempt, env: &CheckEnv<'_, L>) -> Verdict {
    let what = c
        .description
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    match c.kind {
        VerificationType::OutputContains => {
            if attempt.output.contains(&c.value) {
                Verdict::Pass
            } else {
                Verdict::fail(format!("output does not contain `{}`{what}", c.value))
            }
        }
        VerificationType::FileExists => {
            let p = env.cwd.join(&c.value);
            if tokio::fs::metadata(&p).await.is_ok() {
                Verdict::Pass
            } else {
                Verdict::fail(format!("file `{}` does not exist{what}", c.value))
            }
        }
        // The exit code is judged above; a checklist by the run state.
        VerificationType::ExitCode | VerificationType::Checklist => Verdict::Pass,
        VerificationType::Custom => match CustomCheck::parse(&c.value) {
            CustomCheck::Regex(pattern) => match regex::Regex::new(pattern) {
                Ok(re) if re.is_match(&attempt.output) => Verdict::Pass,
                Ok(_) => Verdict::fail(format!("output does not match `{pattern}`{what}")),
                Err(e) => Verdict::Fail {
                    reason: format!("`{pattern}` is not a regular expression: {e}"),
                    retryable: false,
                },
            },
            CustomCheck::Command(_) => custom(c, attempt, env, &what).await,
        },
    }
}

/// Largest output passed in the environment; the full text is always in the file.
const ENV_OUTPUT_CAP: usize = 64 * 1024;

async fn custom<L: Launcher>(
    c: &Check,
    attempt: &Attempt,
    env: &CheckEnv<'_, L>,
    what: &str,
) -> Verdict {
    let mut vars = env.env.to_vec();
    let mut inline = attempt.output.clone();
    if inline.len() > ENV_OUTPUT_CAP {
        let mut cut = ENV_OUTPUT_CAP;
        while !inline.is_char_boundary(cut) {
            cut -= 1;
        }
        inline.truncate(cut);
    }
    vars.push(("AGENT_RELAY_STEP_OUTPUT".into(), inline.clone()));
    // The name the reference implementation's checks use.
    vars.push(("STEP_OUTPUT".into(), inline));
    vars.push((
        "AGENT_RELAY_STEP_OUTPUT_FILE".into(),
        env.output_file.display().to_string(),
    ));
    vars.push((
        "AGENT_RELAY_STEP_EXIT_CODE".into(),
        attempt.exit_code.map(|c| c.to_string()).unwrap_or_default(),
    ));
    let spec = ProcessSpec {
        program: "sh".into(),
        args: vec!["-c".into(), c.value.clone()],
        cwd: env.cwd.to_path_buf(),
        env: vars,
        timeout: Some(c.timeout),
        stderr_path: env.stderr_path.clone(),
        kill_grace: env.kill_grace,
        sandbox: None,
        usage: None,
        max_tokens: None,
        stdin: None,
    };
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    match env.launcher.run_process(spec, env.cancel.clone(), tx).await {
        Err(e) => Verdict::fail(format!("custom check could not run: {e}")),
        Ok(out) => match (out.end, out.exit_code) {
            (ProcessEnd::Exited, Some(0)) => Verdict::Pass,
            (ProcessEnd::TimedOut, _) => Verdict::fail(format!(
                "custom check `{}` timed out after {} ms{what}",
                c.value,
                c.timeout.as_millis()
            )),
            (ProcessEnd::Cancelled, _) => Verdict::Fail {
                reason: "cancelled".into(),
                retryable: false,
            },
            (_, code) => {
                let tail = tail_lines(&out.stdout, 5);
                let mut reason = format!(
                    "custom check `{}` failed (exit code {}){what}",
                    c.value,
                    code.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
                );
                if !tail.is_empty() {
                    reason.push_str(": ");
                    reason.push_str(&tail);
                }
                Verdict::fail(reason)
            }
        },
    }
}
