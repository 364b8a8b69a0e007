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
        /// The worker running it, when it runs on another machine (the group id is
        /// that machine's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker: Option<String>,
        /// The agent's terminal from its earlier step, continued (`session: resume`):
        /// the same process, no new one.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        continued: bool,
    },
    /// The agent's CLI named its conversation (or was given one): what a later step of
    /// the same agent with `session: resume` continues, in this run or a resumed one.
    #[serde(rename = "agent:session")]
    AgentSession {
        /// Step name.
        step: String,
        /// Attempt number.
        attempt: u32,
        /// The agent.
        agent: String,
        /// The CLI's session id.
        session: String,
        /// Whether the attempt continued that conversation rather than starting it.
        #[serde(default)]
        resumed: bool,
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
    /// The kernel confines an attempt's process to these rules (agent permissions).
    #[serde(rename = "agent:sandboxed")]
    AgentSandboxed {
        /// Step name.
        step: String,
        /// Attempt number.
        attempt: u32,
        /// The rules, in words.
        rules: Vec<String>,
    },
    /// Tokens an attempt used, as its CLI reported them, and what they cost.
    #[serde(rename = "step:usage")]
    StepUsage {
        /// Step name.
        step: String,
        /// Attempt number.
        attempt: u32,
        /// Tokens by kind.
        usage: relay_broker::usage::Usage,
        /// Every token of every kind.
        total_tokens: u64,
        /// The model it was priced as.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        model: Option<String>,
        /// Cost in US dollars, when the model has a price.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cost_usd: Option<f64>,
    },
    /// A running agent passed its `maxTokens` and was stopped.
    #[serde(rename = "step:token-limit")]
    StepTokenLimit {
        /// Step name.
        step: String,
        /// Attempt number.
        attempt: u32,
        /// The limit.
        max_tokens: u64,
        /// Tokens it had used.
        used: u64,
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
    /// The step waits for its provider's rate or usage limit to reset (not a failure: no
    /// retry is spent), or holds back because another step's agent on the same provider
    /// hit it.
    #[serde(rename = "step:parked")]
    StepParked {
        /// Step name.
        step: String,
        /// The attempt that starts when it resumes.
        attempt: u32,
        /// The provider (the agent's CLI).
        provider: String,
        /// Until when, RFC 3339 UTC.
        until: String,
        /// The same, in milliseconds since the Unix epoch.
        until_ms: u64,
        /// What the agent reported, or why it holds back.
        reason: String,
    },
    /// `agent-relay unpark` resumed the run's parked steps at once.
    #[serde(rename = "run:unparked")]
    RunUnparked {
        /// The steps that were parked.
        steps: Vec<String>,
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
    /// A step with a checklist started; its agent marks these items.
    #[serde(rename = "checklist:items")]
    ChecklistItems {
        /// The step (node label).
        step: String,
        /// The items.
        items: Vec<relay_spec::ChecklistItem>,
    },
    /// The agent of a step marked an item of its checklist.
    #[serde(rename = "checklist:marked")]
    ChecklistMarked {
        /// The step (node label).
        step: String,
        /// The item's id.
        item: String,
        /// Blocked rather than done.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        blocked: bool,
        /// What the agent said (the reason, when blocked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// Who marked it.
        by: String,
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
    /// A key of the shared state was written (the value itself when it is small).
    #[serde(rename = "state:set")]
    StateSet {
        /// The key (without the namespace).
        key: String,
        /// Who wrote it.
        by: String,
        /// Its new revision.
        rev: u64,
        /// The value, when at most 200 bytes.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        value: Option<String>,
        /// Its size in bytes.
        bytes: usize,
        /// Its TTL.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        ttl_ms: Option<u64>,
    },
    /// A key of the shared state was deleted.
    #[serde(rename = "state:deleted")]
    StateDeleted {
        /// The key.
        key: String,
        /// Who deleted it.
        by: String,
    },
    /// An agent was granted claims on paths.
    #[serde(rename = "claim:granted")]
    ClaimGranted {
        /// The holder.
        agent: String,
        /// The paths or globs.
        paths: Vec<String>,
        /// The holder's step.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        step: Option<String>,
        /// How long they last at most.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        ttl_ms: Option<u64>,
    },
    /// Claims ended.
    #[serde(rename = "claim:released")]
    ClaimReleased {
        /// The holder.
        agent: String,
        /// The paths or globs.
        paths: Vec<String>,
        /// How: `released`, `expired`, `step-ended`, `run-ended`.
        why: String,
    },
    /// A step changed a file while another agent held a claim on it.
    #[serde(rename = "claim:conflict")]
    ClaimConflict {
        /// The step.
        step: String,
        /// Its agent.
        agent: String,
        /// The file, relative to the step's directory.
        path: String,
        /// Who held the claim.
        holder: String,
        /// The claim (path or glob).
        claim: String,
        /// Whether the holder worked in another directory, so the change was surely not
        /// its own (only such a conflict fails a step under `coordination.claims: enforce`).
        certain: bool,
    },
    /// Agents work in git worktrees; their work is merged into this branch.
    #[serde(rename = "worktree:run-branch")]
    WorktreeRunBranch {
        /// The run's branch.
        branch: String,
        /// The commit it started from.
        base: String,
        /// The repository.
        repo: String,
    },
    /// An agent's worktree was made.
    #[serde(rename = "worktree:created")]
    WorktreeCreated {
        /// The agent.
        agent: String,
        /// Its branch.
        branch: String,
        /// Where.
        path: String,
        /// Untracked files copied in (`swarm.worktreeInclude`).
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        copied: Vec<String>,
    },
    /// A step's changes were merged into the run's branch.
    #[serde(rename = "worktree:merged")]
    WorktreeMerged {
        /// The step.
        step: String,
        /// Its agent.
        agent: String,
        /// The agent's branch.
        branch: String,
        /// The run branch's new tip.
        commit: String,
    },
    /// A step's changes conflicted with the run's branch; both versions are kept.
    #[serde(rename = "worktree:conflict")]
    WorktreeConflict {
        /// The step.
        step: String,
        /// Its agent.
        agent: String,
        /// The agent's branch, which keeps its version.
        branch: String,
        /// The files.
        files: Vec<String>,
        /// The conflict report.
        report: String,
    },
    /// The resolver resolved a step's conflict onto the run's branch.
    #[serde(rename = "worktree:resolved")]
    WorktreeResolved {
        /// The step.
        step: String,
        /// The resolver.
        resolver: String,
        /// The run branch's new tip.
        commit: String,
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
            | EventKind::AgentSession { step, .. }
            | EventKind::AgentSandboxed { step, .. }
            | EventKind::StepUsage { step, .. }
            | EventKind::StepTokenLimit { step, .. }
            | EventKind::AgentReady { step, .. }
            | EventKind::TaskDelivered { step, .. }
            | EventKind::AgentIdle { step }
            | EventKind::StepNudged { step, .. }
            | EventKind::StepForceReleased { step }
            | EventKind::AgentExitRequested { step }
            | EventKind::AgentDialogAnswered { step, .. }
            | EventKind::AgentNotReady { step, .. }
            | EventKind::StepRetrying { step, .. }
            | EventKind::StepParked { step, .. }
            | EventKind::StepCompleted { step, .. }
            | EventKind::StepFailed { step, .. }
            | EventKind::StepSkipped { step, .. }
            | EventKind::QuestionAsked { step, .. }
            | EventKind::QuestionAnswered { step, .. }
            | EventKind::ApprovalRequested { step, .. }
            | EventKind::ApprovalDecided { step, .. }
            | EventKind::ChecklistItems { step, .. }
            | EventKind::ChecklistMarked { step, .. }
            | EventKind::Pattern { step, .. }
            | EventKind::ClaimConflict { step, .. }
            | EventKind::WorktreeMerged { step, .. }
            | EventKind::WorktreeConflict { step, .. }
            | EventKind::WorktreeResolved { step, .. } => Some(step),
            _ => None,
        }
    }

    /// The step whose open question this event closes: the answer, or the end of the
    /// attempt that asked (a question asked through `ask_human` goes with its attempt; one a
    /// one-shot agent printed keeps its step waiting, with none of these events, until it
    /// is answered).
    pub fn closes_question(&self) -> Option<&str> {
        match self {
            EventKind::QuestionAnswered { step, .. }
            | EventKind::StepRetrying { step, .. }
            | EventKind::StepParked { step, .. }
            | EventKind::StepCompleted { step, .. }
            | EventKind::StepFailed { step, .. }
            | EventKind::StepSkipped { step, .. } => Some(step),
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
