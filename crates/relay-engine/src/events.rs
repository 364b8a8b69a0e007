//! The typed events of a run. Each is one JSON line in the run's `events.jsonl`
//! (`{"type": "step:started", "ts": ..., ...}`), and the progress view is fed by them.

use serde::{Deserialize, Serialize};

/// One event, stamped with the wall-clock time it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339 UTC time with milliseconds.
    pub ts: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// `kind`, stamped now.
    pub fn now(kind: EventKind) -> Self {
        Event {
            ts: crate::clock::now_rfc3339(),
            kind,
        }
    }
}

pub use crate::outcome::RunStatus;

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum EventKind {
    /// The run began.
    #[serde(rename = "run:started")]
    RunStarted {
        /// Run id.
        run_id: String,
        /// Workflow name.
        workflow: String,
        /// Pattern in effect.
        pattern: String,
        /// Concurrency limit, if any.
        max_concurrency: Option<u32>,
        /// Step names in declaration order.
        steps: Vec<String>,
        /// Whether agents are simulated.
        rehearsal: bool,
    },
    /// A run was picked up again after it stopped (or a new run reuses another's steps).
    #[serde(rename = "run:resumed")]
    RunResumed {
        /// Steps kept as completed, not run again.
        completed: Vec<String>,
        /// The run whose completed steps were reused, when it is another run.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        reused_from: Option<String>,
    },
    /// An attempt of a step began.
    #[serde(rename = "step:started")]
    StepStarted {
        /// Step name.
        step: String,
        /// Attempt number, from 1.
        attempt: u32,
        /// Agent, for agent steps.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        agent: Option<String>,
    },
    /// The step's process (group) started.
    #[serde(rename = "agent:spawned")]
    AgentSpawned {
        /// Step name.
        step: String,
        /// Attempt number.
        attempt: u32,
        /// Process group id.
        pgid: u32,
    },
    /// An interactive agent's TUI was judged ready.
    #[serde(rename = "agent:ready")]
    AgentReady {
        /// Step name.
        step: String,
        /// Whether the bounded fallback wait ran out instead of a cue being seen.
        fallback: bool,
    },
    /// The task was typed into an interactive agent and confirmed.
    #[serde(rename = "task:delivered")]
    TaskDelivered {
        /// Step name.
        step: String,
        /// Attempts it took.
        attempts: u32,
    },
    /// An interactive agent went idle.
    #[serde(rename = "agent:idle")]
    AgentIdle {
        /// Step name.
        step: String,
    },
    /// An idle agent was nudged.
    #[serde(rename = "step:nudged")]
    StepNudged {
        /// Step name.
        step: String,
        /// Which nudge.
        count: u32,
    },
    /// An idle agent was force-released.
    #[serde(rename = "step:force-released")]
    StepForceReleased {
        /// Step name.
        step: String,
    },
    /// An interactive agent's start-up dialog (trust this folder, a theme picker, ...)
    /// was answered.
    #[serde(rename = "agent:dialog-answered")]
    AgentDialogAnswered {
        /// Step name.
        step: String,
        /// Which dialog.
        dialog: String,
    },
    /// An interactive agent is alive but will not become ready (a login dialog, a
    /// screen that never goes quiet); the attempt ends with this reason.
    #[serde(rename = "agent:not-ready")]
    AgentNotReady {
        /// Step name.
        step: String,
        /// Why.
        reason: String,
    },
    /// An interactive agent printed `/exit`.
    #[serde(rename = "agent:exit-requested")]
    AgentExitRequested {
        /// Step name.
        step: String,
    },
    /// An attempt failed and another follows.
    #[serde(rename = "step:retrying")]
    StepRetrying {
        /// Step name.
        step: String,
        /// The attempt that failed.
        attempt: u32,
        /// Why it failed.
        reason: String,
        /// Pause before the next attempt.
        delay_ms: u64,
    },
    /// The step completed.
    #[serde(rename = "step:completed")]
    StepCompleted {
        /// Step name.
        step: String,
        /// Attempts used.
        attempt: u32,
        /// Exit code of the last attempt.
        exit_code: Option<i32>,
        /// Time from first start to completion.
        duration_ms: u64,
    },
    /// The step failed for good.
    #[serde(rename = "step:failed")]
    StepFailed {
        /// Step name.
        step: String,
        /// Attempts used.
        attempt: u32,
        /// Why.
        reason: String,
        /// Exit code of the last attempt.
        exit_code: Option<i32>,
        /// Time from first start to failure.
        duration_ms: u64,
    },
    /// The step never ran.
    #[serde(rename = "step:skipped")]
    StepSkipped {
        /// Step name.
        step: String,
        /// Why.
        reason: String,
    },
    /// A decision of the swarm pattern: a review verdict, a new iteration, a vote tally, an
    /// auction award, an escalation, a restart, a compensation, a barrier timeout.
    #[serde(rename = "pattern")]
    Pattern {
        /// The step (or node) it is about.
        step: String,
        /// What was decided (`approved`, `rejected`, `expanded`, `decided`, `awarded`,
        /// `escalated`, `restarted`, `opened`, `compensating`, `timed-out`, ...).
        action: String,
        /// Details in words (tally, winner, reason).
        detail: String,
    },
    /// An agent asked a person a question; its step waits for `agent-relay answer`.
    #[serde(rename = "question:asked")]
    QuestionAsked {
        /// Step name.
        step: String,
        /// The question.
        question: String,
    },
    /// A person answered a step's question.
    #[serde(rename = "question:answered")]
    QuestionAnswered {
        /// Step name.
        step: String,
        /// The answer.
        answer: String,
    },
    /// A step waits for a person's approval before it starts.
    #[serde(rename = "approval:requested")]
    ApprovalRequested {
        /// Step name.
        step: String,
        /// Who may decide (anyone when empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        approvers: Vec<String>,
        /// How long the run waits, if not for ever.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// A person (or the timeout) decided a step's approval.
    #[serde(rename = "approval:decided")]
    ApprovalDecided {
        /// Step name.
        step: String,
        /// Whether it may run.
        approved: bool,
        /// Who decided (`timeout` when nobody did in time).
        by: String,
        /// Why, when they said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// No new step starts until the run is unpaused; running ones go on.
    #[serde(rename = "run:paused")]
    RunPaused {
        /// Who paused it.
        by: String,
    },
    /// Steps start again.
    #[serde(rename = "run:unpaused")]
    RunUnpaused {
        /// Who unpaused it.
        by: String,
    },
    /// An agent (or `agent-relay send`) sent a message; one event per recipient.
    #[serde(rename = "message:sent")]
    MessageSent {
        /// The message id (per recipient).
        id: u64,
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
        /// How it was addressed: `NAME`, `#channel` or `*`.
        target: String,
    },
    /// A message was typed into its recipient's terminal (confirmed on screen) or put in
    /// its task.
    #[serde(rename = "message:delivered")]
    MessageDelivered {
        /// The message id.
        id: u64,
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
    },
    /// A message was taken with `agent-relay inbox`.
    #[serde(rename = "message:read")]
    MessageRead {
        /// The message id.
        id: u64,
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
    },
    /// A message will never reach its recipient.
    #[serde(rename = "message:failed")]
    MessageFailed {
        /// The message id.
        id: u64,
        /// Sender.
        from: String,
        /// Recipient (or the target, when nobody could get it).
        to: String,
        /// Why.
        reason: String,
    },
    /// Something the user should know that changes nothing by itself.
    #[serde(rename = "warning")]
    Warning {
        /// The message.
        message: String,
    },
    /// Every step completed.
    #[serde(rename = "run:completed")]
    RunCompleted {
        /// Run duration.
        duration_ms: u64,
    },
    /// The run ended with a failure.
    #[serde(rename = "run:failed")]
    RunFailed {
        /// Why.
        reason: String,
        /// Run duration.
        duration_ms: u64,
    },
    /// The run stopped for a person to act.
    #[serde(rename = "run:needs-human")]
    RunNeedsHuman {
        /// What they are needed for.
        reason: String,
        /// Run duration.
        duration_ms: u64,
    },
    /// The run was interrupted.
    #[serde(rename = "run:cancelled")]
    RunCancelled {
        /// Why.
        reason: String,
        /// Run duration.
        duration_ms: u64,
    },
}

impl EventKind {
    /// The step this event is about, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            EventKind::StepStarted { step, .. }
            | EventKind::AgentSpawned { step, .. }
            | EventKind::AgentReady { step, .. }
            | EventKind::TaskDelivered { step, .. }
            | EventKind::AgentIdle { step }
            | EventKind::StepNudged { step, .. }
            | EventKind::StepForceReleased { step }
            | EventKind::AgentExitRequested { step }
            | EventKind::AgentDialogAnswered { step, .. }
            | EventKind::AgentNotReady { step, .. }
            | EventKind::StepRetrying { step, .. }
            | EventKind::StepCompleted { step, .. }
            | EventKind::StepFailed { step, .. }
            | EventKind::StepSkipped { step, .. }
            | EventKind::QuestionAsked { step, .. }
            | EventKind::QuestionAnswered { step, .. }
            | EventKind::ApprovalRequested { step, .. }
            | EventKind::ApprovalDecided { step, .. }
            | EventKind::Pattern { step, .. } => Some(step),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_type_tag_and_camel_case_fields() {
        let e = Event {
            ts: "2026-01-01T00:00:00.000Z".into(),
            kind: EventKind::StepRetrying {
                step: "a".into(),
                attempt: 1,
                reason: "exit code 1".into(),
                delay_ms: 5,
            },
        };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "step:retrying");
        assert_eq!(v["delayMs"], 5);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
