//! Reading a run back from its event log, the run's source of truth. A torn or corrupt
//! line (a crash mid-write, a full disk) is skipped and reported, never fatal.

use std::collections::BTreeMap;
use std::path::Path;

use crate::events::{Event, EventKind, RunStatus};
use crate::run::StepStatus;

/// What the log says about one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Final status, or `None` while it was still running (or never started).
    pub status: Option<StepStatus>,
    /// Whether it was started and not finished when the log ends.
    pub in_flight: bool,
    /// Attempts started so far.
    pub attempts: u32,
    /// Last exit code seen.
    pub exit_code: Option<i32>,
    /// Duration, when finished.
    pub duration_ms: u64,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// Process groups its attempts ran in.
    pub pgids: Vec<u32>,
}

/// A run as its log tells it.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Every well-formed event, in order.
    pub events: Vec<Event>,
    /// Lines that could not be read: (1-based line number, problem).
    pub bad_lines: Vec<(usize, String)>,
    /// Run id, from `run:started`.
    pub run_id: Option<String>,
    /// Workflow name, from `run:started`.
    pub workflow: Option<String>,
    /// Step names in declaration order, from `run:started`.
    pub step_order: Vec<String>,
    /// Per-step state.
    pub steps: BTreeMap<String, StepRecord>,
    /// The run's final status, if it reached one (the last terminal event wins).
    pub status: Option<RunStatus>,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// When it started (the first event's stamp).
    pub started_at: Option<String>,
    /// When it last changed (the last event's stamp).
    pub last_at: Option<String>,
    /// Total duration, when finished.
    pub duration_ms: Option<u64>,
}

impl Replay {
    /// Reads `events.jsonl` text.
    pub fn parse(text: &str) -> Replay {
        let mut r = Replay::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(line) {
                Ok(e) => r.apply_event(e),
                Err(err) => r.bad_lines.push((i + 1, err.to_string())),
            }
        }
        r
    }

    /// Reads the log of the run in `dir`.
    pub fn load(dir: &Path) -> std::io::Result<Replay> {
        let text = std::fs::read(dir.join("events.jsonl"))?;
        Ok(Replay::parse(&String::from_utf8_lossy(&text)))
    }

    fn step(&mut self, name: &str) -> &mut StepRecord {
        self.steps
            .entry(name.to_string())
            .or_insert_with(|| StepRecord {
                status: None,
                in_flight: false,
                attempts: 0,
                exit_code: None,
                duration_ms: 0,
                reason: None,
                pgids: Vec::new(),
            })
    }

    /// Folds one more event into the picture.
    pub fn apply_event(&mut self, e: Event) {
        if self.started_at.is_none() {
            self.started_at = Some(e.ts.clone());
        }
        self.last_at = Some(e.ts.clone());
        match &e.kind {
            EventKind::RunStarted {
                run_id,
                workflow,
                steps,
                ..
            } => {
                self.run_id = Some(run_id.clone());
                self.workflow = Some(workflow.clone());
                self.step_order = steps.clone();
            }
            EventKind::RunResumed { .. } => {
                // A resumed run is live again until its next terminal event.
                self.status = None;
                self.reason = None;
                self.duration_ms = None;
                for s in self.steps.values_mut() {
                    s.in_flight = false;
                    if s.status != Some(StepStatus::Completed) {
                        s.status = None;
                    }
                }
            }
            EventKind::StepStarted { step, attempt, .. } => {
                let s = self.step(step);
                s.status = None;
                s.in_flight = true;
                s.attempts = *attempt;
            }
            EventKind::AgentSpawned { step, pgid, .. } => {
                let s = self.step(step);
                if !s.pgids.contains(pgid) {
                    s.pgids.push(*pgid);
                }
            }
            EventKind::StepCompleted {
                step,
                attempt,
                exit_code,
                duration_ms,
            } => {
                let s = self.step(step);
                s.status = Some(StepStatus::Completed);
                s.in_flight = false;
                s.attempts = *attempt;
                s.exit_code = *exit_code;
                s.duration_ms = *duration_ms;
                s.reason = None;
            }
            EventKind::StepFailed {
                step,
                attempt,
                reason,
                exit_code,
                duration_ms,
            } => {
                let s = self.step(step);
                s.status = Some(StepStatus::Failed);
                s.in_flight = false;
                s.attempts = *attempt;
                s.exit_code = *exit_code;
                s.duration_ms = *duration_ms;
                s.reason = Some(reason.clone());
            }
            EventKind::StepSkipped { step, reason } => {
                let s = self.step(step);
                s.status = Some(StepStatus::Skipped);
                s.in_flight = false;
                s.reason = Some(reason.clone());
            }
            EventKind::RunCompleted { duration_ms } => {
                self.status = Some(RunStatus::Completed);
                self.duration_ms = Some(*duration_ms);
            }
            EventKind::RunFailed {
                reason,
                duration_ms,
            } => {
                self.status = Some(RunStatus::Failed);
                self.reason = Some(reason.clone());
                self.duration_ms = Some(*duration_ms);
            }
            EventKind::RunCancelled {
                reason,
                duration_ms,
            } => {
                self.status = Some(RunStatus::Cancelled);
                self.reason = Some(reason.clone());
                self.duration_ms = Some(*duration_ms);
            }
            _ => {}
        }
        self.events.push(e);
    }

    /// The state snapshot written beside the log (`state.json`): derived from the log,
    /// never the other way round.
    pub fn snapshot(&self) -> serde_json::Value {
        let status = match self.status {
            Some(RunStatus::Completed) => "completed",
            Some(RunStatus::Failed) => "failed",
            Some(RunStatus::Cancelled) => "cancelled",
            None => "running",
        };
        let steps: Vec<serde_json::Value> = self
            .step_order
            .iter()
            .map(|name| {
                let s = self.steps.get(name);
                let state = match s {
                    None => "pending",
                    Some(s) if s.in_flight => "running",
                    Some(s) => match s.status {
                        Some(StepStatus::Completed) => "completed",
                        Some(StepStatus::Failed) => "failed",
                        Some(StepStatus::Skipped) => "skipped",
                        None => "pending",
                    },
                };
                serde_json::json!({
                    "name": name,
                    "status": state,
                    "attempts": s.map(|s| s.attempts).unwrap_or(0),
                    "exitCode": s.and_then(|s| s.exit_code),
                    "durationMs": s.map(|s| s.duration_ms).unwrap_or(0),
                    "reason": s.and_then(|s| s.reason.clone()),
                })
            })
            .collect();
        serde_json::json!({
            "runId": self.run_id,
            "workflow": self.workflow,
            "status": status,
            "reason": self.reason,
            "startedAt": self.started_at,
            "updatedAt": self.last_at,
            "durationMs": self.duration_ms,
            "steps": steps,
        })
    }

    /// Steps the log shows as completed.
    pub fn completed(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .filter(|(_, s)| s.status == Some(StepStatus::Completed))
            .map(|(n, _)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(kind: EventKind) -> String {
        serde_json::to_string(&Event {
            ts: "2026-01-01T00:00:00.000Z".into(),
            kind,
        })
        .unwrap()
    }

    #[test]
    fn replays_step_states_and_ignores_a_torn_last_line() {
        let text = [
            line(EventKind::RunStarted {
                run_id: "r".into(),
                workflow: "w".into(),
                pattern: "dag".into(),
                max_concurrency: None,
                steps: vec!["a".into(), "b".into()],
                rehearsal: false,
            }),
            line(EventKind::StepStarted {
                step: "a".into(),
                attempt: 1,
                agent: None,
            }),
            line(EventKind::StepCompleted {
                step: "a".into(),
                attempt: 1,
                exit_code: Some(0),
                duration_ms: 5,
            }),
            line(EventKind::StepStarted {
                step: "b".into(),
                attempt: 1,
                agent: None,
            }),
            line(EventKind::AgentSpawned {
                step: "b".into(),
                attempt: 1,
                pgid: 4242,
            }),
            "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"type\":\"step:comp".to_string(),
        ]
        .join("\n");
        let r = Replay::parse(&text);
        assert_eq!(r.bad_lines.len(), 1);
        assert_eq!(r.bad_lines[0].0, 6);
        assert_eq!(r.steps["a"].status, Some(StepStatus::Completed));
        assert!(r.steps["b"].in_flight);
        assert_eq!(r.steps["b"].pgids, [4242]);
        assert_eq!(r.status, None);
        assert_eq!(r.completed().collect::<Vec<_>>(), ["a"]);
    }
}
