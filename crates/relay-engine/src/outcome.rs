//! How things ended: one attempt or node (`StepOutcome`), one workflow step
//! (`StepSummary`), one run (`RunSummary`). A leaf: every other module may use it, it
//! uses none of them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How an attempt of a step, or a node of the plan, ended: the one type for that fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum StepOutcome {
    /// It did what was asked (and passed its verification).
    Completed {
        /// What it produced.
        output: String,
        /// Exit code of the process, when it exited with one.
        exit_code: Option<i32>,
    },
    /// It failed.
    Failed {
        /// What it produced before failing.
        output: String,
        /// Why, in words.
        reason: String,
        /// Exit code of the process, when it exited with one.
        exit_code: Option<i32>,
        /// Whether another attempt could help (a timeout or a failed check can; a
        /// cancelled attempt or an unknown agent cannot).
        retryable: bool,
    },
    /// The agent asked a person a question and stopped: its step waits for the answer.
    NeedsAnswer {
        /// What it produced, the question included.
        output: String,
        /// The question.
        question: String,
    },
    /// The agent reported its provider's rate or usage limit: not a failure, its step
    /// waits for the reset (parks) and tries again without spending a retry.
    RateLimited {
        /// What it produced.
        output: String,
        /// The line that reported the limit.
        message: String,
        /// When the limit resets (Unix seconds), when it said.
        resets_at: Option<u64>,
    },
    /// The run was cancelled while it ran.
    Cancelled {
        /// What it produced before it was stopped.
        output: String,
    },
    /// The machine failed it (CLI missing, cannot spawn, disk): nothing else can be
    /// trusted to run.
    Broken {
        /// Why.
        why: String,
    },
}

impl StepOutcome {
    /// Whether it completed.
    pub fn is_completed(&self) -> bool {
        matches!(self, StepOutcome::Completed { .. })
    }

    /// What it produced (empty for a broken attempt).
    pub fn output(&self) -> &str {
        match self {
            StepOutcome::Completed { output, .. }
            | StepOutcome::Failed { output, .. }
            | StepOutcome::NeedsAnswer { output, .. }
            | StepOutcome::RateLimited { output, .. }
            | StepOutcome::Cancelled { output } => output,
            StepOutcome::Broken { .. } => "",
        }
    }

    /// Why it did not complete.
    pub fn reason(&self) -> Option<&str> {
        match self {
            StepOutcome::Completed { .. } => None,
            StepOutcome::Failed { reason, .. } => Some(reason),
            StepOutcome::NeedsAnswer { .. } => Some("waiting for an answer"),
            StepOutcome::RateLimited { message, .. } => Some(message),
            StepOutcome::Cancelled { .. } => Some("cancelled"),
            StepOutcome::Broken { why } => Some(why),
        }
    }

    /// The exit code of its process, when it exited with one.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            StepOutcome::Completed { exit_code, .. } | StepOutcome::Failed { exit_code, .. } => {
                *exit_code
            }
            StepOutcome::NeedsAnswer { .. }
            | StepOutcome::RateLimited { .. }
            | StepOutcome::Cancelled { .. }
            | StepOutcome::Broken { .. } => None,
        }
    }

    /// Whether another attempt could turn it into a success.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            StepOutcome::Failed {
                retryable: true,
                ..
            }
        )
    }
}

/// Final state of one workflow step.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Tokens its attempts used, when their CLIs reported them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub usage: Option<relay_broker::usage::Usage>,
    /// What they cost in US dollars, when their models have a price.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cost_usd: Option<f64>,
}

/// Terminal status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every step completed.
    Completed,
    /// A step failed (or the run timed out).
    Failed,
    /// Interrupted or cancelled.
    Cancelled,
    /// Stopped for a person to act (`onExhaustion: needs-human`); `resume` goes on.
    #[serde(rename = "needs_human")]
    NeedsHuman,
}

impl RunStatus {
    /// The name as written in logs and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::NeedsHuman => "needs_human",
        }
    }
}

/// The outcome of a run, as printed by `--json` and kept in `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Set when the run stopped because the machine failed it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub runtime_error: Option<String>,
    /// Tokens all attempts used, when their CLIs reported them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub usage: Option<relay_broker::usage::Usage>,
    /// What they cost in US dollars, when their models have a price.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cost_usd: Option<f64>,
    /// The git worktrees its worktree steps made (absolute paths).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub worktrees: Vec<String>,
    /// The run directory.
    #[serde(skip)]
    pub run_dir: PathBuf,
}
