//! A run as its event log tells it: the log is the source of truth, and this is the state
//! folded from it, event by event. The live run keeps one current (and writes it beside
//! the log as `state.json`); `status`, `runs` and `resume` fold the log again. Only the
//! state is kept, never the events, so memory grows with the steps, not with the events.
//! A torn or corrupt line (a crash mid-write, a full disk) is skipped and reported.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::events::{Event, EventKind};
use crate::outcome::{RunStatus, StepStatus};

/// Where a step (or node) stands in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    /// Not started (or started before a resume and not finished).
    Pending,
    /// Started and not finished when the log ends.
    Running,
    /// Waiting for its provider's rate limit to reset (`parkedUntil`).
    Parked,
    /// Completed.
    Completed,
    /// Failed.
    Failed,
    /// Never ran.
    Skipped,
}

impl StepState {
    /// The final status, when the step reached one.
    pub fn status(self) -> Option<StepStatus> {
        match self {
            StepState::Completed => Some(StepStatus::Completed),
            StepState::Failed => Some(StepStatus::Failed),
            StepState::Skipped => Some(StepStatus::Skipped),
            StepState::Pending | StepState::Running | StepState::Parked => None,
        }
    }
}

/// What the log says about one step or node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// Where it stands.
    #[serde(rename = "status")]
    pub state: StepState,
    /// Attempts started so far.
    pub attempts: u32,
    /// Last exit code seen.
    pub exit_code: Option<i32>,
    /// Duration, when finished.
    pub duration_ms: u64,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// Process groups its attempts ran in.
    #[serde(skip)]
    pub pgids: Vec<u32>,
    /// Tokens its attempts used, as their CLIs reported them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<relay_broker::usage::Usage>,
    /// What they cost in US dollars, when their models have a price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// While parked: until when (milliseconds since the Unix epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_until_ms: Option<u64>,
}

impl StepRecord {
    fn new() -> Self {
        StepRecord {
            state: StepState::Pending,
            attempts: 0,
            exit_code: None,
            duration_ms: 0,
            reason: None,
            pgids: Vec::new(),
            usage: None,
            cost_usd: None,
            parked_until_ms: None,
        }
    }

    /// The final status, when it reached one.
    pub fn status(&self) -> Option<StepStatus> {
        self.state.status()
    }
}

/// A run's state, folded from its log.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Lines that could not be read: (1-based line number, problem).
    pub bad_lines: Vec<(usize, String)>,
    /// The first bad line that is not a torn write: a torn write (a crash while the line
    /// was written) is the log's last line, or the last before a resume's first line.
    pub broken: Option<(usize, String)>,
    /// Run id, from `run:started`.
    pub run_id: Option<String>,
    /// Workflow name, from `run:started`.
    pub workflow: Option<String>,
    /// Step names in declaration order, from `run:started`.
    pub step_order: Vec<String>,
    /// Per step and node (by label).
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
    /// Steps whose approval was granted.
    pub approved: std::collections::BTreeSet<String>,
    /// Checklist marks, by step (node label), then item.
    pub marks: crate::outcome::Marks,
    /// The latest conversation of each agent (`agent:session`), by agent.
    pub sessions: BTreeMap<String, String>,
}

/// The shape of `state.json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateFile<'a> {
    run_id: &'a Option<String>,
    workflow: &'a Option<String>,
    status: &'static str,
    reason: &'a Option<String>,
    started_at: &'a Option<String>,
    updated_at: &'a Option<String>,
    duration_ms: Option<u64>,
    steps: Vec<StepLine<'a>>,
}

#[derive(Serialize)]
struct StepLine<'a> {
    name: &'a str,
    #[serde(flatten)]
    record: &'a StepRecord,
}

impl Snapshot {
    /// Folds `events.jsonl` text.
    pub fn parse(text: &str) -> Snapshot {
        let mut r = Snapshot::default();
        // Whether the line before was bad, and whether a bad line was followed by more of
        // the same coordinator's lines.
        let mut after_bad = false;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(line) {
                Ok(e) => {
                    if after_bad && r.broken.is_none() {
                        let resumed = matches!(e.kind, EventKind::RunResumed { .. });
                        if !resumed {
                            r.broken = r.bad_lines.last().cloned();
                        }
                    }
                    after_bad = false;
                    r.apply(&e);
                }
                Err(err) => {
                    if after_bad && r.broken.is_none() {
                        r.broken = r.bad_lines.last().cloned();
                    }
                    after_bad = true;
                    r.bad_lines.push((i + 1, err.to_string()));
                }
            }
        }
        r
    }

    /// Folds the log of the run in `dir`.
    pub fn load(dir: &Path) -> std::io::Result<Snapshot> {
        let text = std::fs::read(dir.join("events.jsonl"))?;
        Ok(Snapshot::parse(&String::from_utf8_lossy(&text)))
    }

    fn step(&mut self, name: &str) -> &mut StepRecord {
        if !self.steps.contains_key(name) {
            self.steps.insert(name.to_string(), StepRecord::new());
        }
        self.steps
            .get_mut(name)
            .expect("the record was just inserted")
    }

    /// Folds one more event in; true when it changed the state of a step or of the run
    /// (what `state.json` shows), false for messages, agent and pattern events.
    pub fn apply(&mut self, e: &Event) -> bool {
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
                    // A parked step stays parked (the resumed run parks it again).
                    if !matches!(s.state, StepState::Completed | StepState::Parked) {
                        s.state = StepState::Pending;
                    }
                }
            }
            EventKind::StepStarted { step, attempt, .. } => {
                let s = self.step(step);
                s.state = StepState::Running;
                s.attempts = *attempt;
                s.parked_until_ms = None;
            }
            EventKind::StepParked { step, until_ms, .. } => {
                let s = self.step(step);
                s.state = StepState::Parked;
                s.parked_until_ms = Some(*until_ms);
            }
            EventKind::RunUnparked { steps } => {
                for step in steps {
                    let s = self.step(step);
                    s.parked_until_ms = None;
                    if s.state == StepState::Parked {
                        s.state = StepState::Running;
                    }
                }
            }
            EventKind::StepUsage {
                step,
                usage,
                cost_usd,
                ..
            } => {
                let s = self.step(step);
                s.usage = Some(s.usage.unwrap_or_default().plus(usage));
                if let Some(c) = cost_usd {
                    s.cost_usd = Some(s.cost_usd.unwrap_or(0.0) + c);
                }
            }
            EventKind::AgentSpawned { step, pgid, .. } => {
                let s = self.step(step);
                if !s.pgids.contains(pgid) {
                    s.pgids.push(*pgid);
                }
                return false;
            }
            EventKind::StepCompleted {
                step,
                attempt,
                exit_code,
                duration_ms,
            } => {
                let s = self.step(step);
                s.state = StepState::Completed;
                s.parked_until_ms = None;
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
                s.state = StepState::Failed;
                s.parked_until_ms = None;
                s.attempts = *attempt;
                s.exit_code = *exit_code;
                s.duration_ms = *duration_ms;
                s.reason = Some(reason.clone());
            }
            EventKind::ApprovalDecided {
                step,
                approved: true,
                ..
            } => {
                self.approved.insert(step.clone());
                return false;
            }
            EventKind::AgentSession { agent, session, .. } => {
                self.sessions.insert(agent.clone(), session.clone());
                return false;
            }
            EventKind::ChecklistMarked {
                step,
                item,
                blocked,
                note,
                ..
            } => {
                self.marks.entry(step.clone()).or_default().insert(
                    item.clone(),
                    crate::outcome::Mark {
                        blocked: *blocked,
                        note: note.clone(),
                    },
                );
                return false;
            }
            EventKind::StepSkipped { step, reason } => {
                let s = self.step(step);
                s.state = StepState::Skipped;
                s.parked_until_ms = None;
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
            EventKind::RunNeedsHuman {
                reason,
                duration_ms,
            } => {
                self.status = Some(RunStatus::NeedsHuman);
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
            _ => return false,
        }
        true
    }

    /// The workflow steps in declaration order, each with its record (a pending one
    /// when the log says nothing of it).
    pub fn workflow_steps(&self) -> impl Iterator<Item = (&str, StepRecord)> + '_ {
        self.step_order.iter().map(|name| {
            (
                name.as_str(),
                self.steps
                    .get(name)
                    .cloned()
                    .unwrap_or_else(StepRecord::new),
            )
        })
    }

    /// The `state.json` text: derived from the log, never the other way round.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let pending = StepRecord::new();
        let file = StateFile {
            run_id: &self.run_id,
            workflow: &self.workflow,
            status: self.status.map_or("running", RunStatus::as_str),
            reason: &self.reason,
            started_at: &self.started_at,
            updated_at: &self.last_at,
            duration_ms: self.duration_ms,
            steps: self
                .step_order
                .iter()
                .map(|name| StepLine {
                    name,
                    record: self.steps.get(name).unwrap_or(&pending),
                })
                .collect(),
        };
        serde_json::to_vec_pretty(&file)
    }

    /// Steps and nodes the log shows as completed.
    pub fn completed(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .filter(|(_, s)| s.state == StepState::Completed)
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
    fn folds_step_states_and_ignores_a_torn_last_line() {
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
                worker: None,
                continued: false,
            }),
            "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"type\":\"step:comp".to_string(),
        ]
        .join("\n");
        let r = Snapshot::parse(&text);
        assert_eq!(r.bad_lines.len(), 1);
        assert_eq!(r.bad_lines[0].0, 6);
        assert_eq!(r.steps["a"].status(), Some(StepStatus::Completed));
        assert_eq!(r.steps["b"].state, StepState::Running);
        assert_eq!(r.steps["b"].pgids, [4242]);
        assert_eq!(r.status, None);
        assert_eq!(r.completed().collect::<Vec<_>>(), ["a"]);
        let json: serde_json::Value = serde_json::from_slice(&r.to_json().unwrap()).unwrap();
        assert_eq!(json["status"], "running");
        assert_eq!(json["steps"][0]["name"], "a");
        assert_eq!(json["steps"][0]["status"], "completed");
        assert_eq!(json["steps"][1]["status"], "running");
        assert_eq!(json["steps"][1]["exitCode"], serde_json::Value::Null);
        assert_eq!(r.broken, None, "a torn last line is not damage");
    }

    #[test]
    fn a_bad_line_is_damage_unless_a_crash_tore_it() {
        let started = line(EventKind::RunStarted {
            run_id: "r".into(),
            workflow: "w".into(),
            pattern: "dag".into(),
            max_concurrency: None,
            steps: vec!["a".into()],
            rehearsal: false,
        });
        let step = line(EventKind::StepStarted {
            step: "a".into(),
            attempt: 1,
            agent: None,
        });
        let resumed = line(EventKind::RunResumed {
            completed: Vec::new(),
            reused_from: None,
        });
        let torn = "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"type\":\"step:comp".to_string();
        let parse = |lines: &[&String]| {
            Snapshot::parse(
                &lines
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        };
        // Torn, then a resume carried on: not damage.
        let r = parse(&[&started, &torn, &resumed, &step]);
        assert_eq!((r.bad_lines.len(), r.broken), (1, None));
        // The same coordinator wrote on after it: a line lost from the middle.
        let r = parse(&[&started, &torn, &step]);
        assert_eq!(r.broken.map(|b| b.0), Some(2));
        let r = parse(&[&started, &torn, &torn.clone(), &resumed]);
        assert_eq!(r.broken.map(|b| b.0), Some(2));
    }

    #[test]
    fn a_resume_makes_unfinished_steps_pending_again() {
        let mut r = Snapshot::default();
        r.apply(&Event::now(EventKind::StepStarted {
            step: "a".into(),
            attempt: 1,
            agent: None,
        }));
        assert!(r.apply(&Event::now(EventKind::RunResumed {
            completed: vec![],
            reused_from: None,
        })));
        assert_eq!(r.steps["a"].state, StepState::Pending);
        assert!(!r.apply(&Event::now(EventKind::Warning {
            message: "x".into()
        })));
    }
}
