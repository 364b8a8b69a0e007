//! What the pages show: the run with its steps (states, dependencies, pattern nodes,
//! verification), a timeline of attempts, messages, open questions and approvals, whether
//! it is paused, and the trajectory; and one step's outputs, stderr and transcripts.
//!
//! The folding here is pure (`Folder`, `step_of`, `parse_ts`), one event at a time, so a
//! live run is folded as it goes; `follow` reads the run directory into it.

use std::collections::BTreeMap;
use std::path::Path;

use relay_engine::events::{Event, EventKind};
use relay_engine::runs::Standing;
use relay_engine::snapshot::StepState;
use relay_engine::trajectory::Decision;
use relay_messaging::persist::MessageSummary;
use serde::Serialize;

/// Longest text of one output, stderr or transcript a page gets; the end is kept.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;

/// A run as its page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    /// Run id.
    pub run_id: String,
    /// Workflow name.
    pub workflow: String,
    /// Where it stands.
    pub status: Standing,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// When it started.
    pub started_at: Option<String>,
    /// How long it took (finished), or has been going (live, up to its last event).
    pub duration_ms: Option<u64>,
    /// The pattern in effect.
    pub pattern: Option<String>,
    /// Steps in declaration order.
    pub steps: Vec<StepView>,
    /// Every attempt of every node, in the order they started.
    pub attempts: Vec<AttemptSpan>,
    /// The run's messages and their states.
    pub messages: Vec<MessageSummary>,
    /// Questions that wait for an answer.
    pub questions: Vec<Question>,
    /// Steps that wait for a person's approval.
    pub approvals: Vec<Approval>,
    /// Whether the run is paused (no new step starts).
    pub paused: bool,
    /// Decisions the run made, when it keeps a trajectory.
    pub trajectory: Vec<Decision>,
    /// The step graph, drawn.
    pub graph_svg: String,
}

/// One workflow step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
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
    /// The agent that ran it last.
    pub agent: Option<String>,
    /// What it waits for.
    pub depends_on: Vec<String>,
    /// The pattern's nodes of this step other than the step itself (`draft#2`, `map[3]`).
    pub nodes: Vec<NodeView>,
    /// Its verification, as written.
    pub verification: Option<serde_json::Value>,
}

/// One pattern node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// Its label.
    pub label: String,
    /// Where it stands.
    pub status: StepState,
    /// Attempts started.
    pub attempts: u32,
}

/// How an attempt ended, so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptEnd {
    /// Still going (or the log ends before it did).
    Running,
    /// The node completed with it.
    Completed,
    /// The node failed with it.
    Failed,
    /// It failed and another attempt followed.
    Retried,
}

/// One attempt on the timeline; times are milliseconds after the run's first event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptSpan {
    /// The node (its label).
    pub node: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// When it started.
    pub start_ms: u64,
    /// When it ended.
    pub end_ms: Option<u64>,
    /// How it ended.
    pub end: AttemptEnd,
    /// Why it failed.
    pub reason: Option<String>,
}

/// A question an agent asked that waits for an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Question {
    /// The node that asked.
    pub step: String,
    /// The question.
    pub question: String,
}

/// A step that waits for a person's approval before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The workflow step.
    pub step: String,
    /// Who may decide (anyone when empty).
    pub approvers: Vec<String>,
    /// How long the run waits for a decision, if not for ever.
    pub timeout_ms: Option<u64>,
}

/// What folding a run's events yields beyond the snapshot.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Folded {
    /// The pattern in effect.
    pub pattern: Option<String>,
    /// Attempts, in the order they started.
    pub attempts: Vec<AttemptSpan>,
    /// Open questions.
    pub questions: Vec<Question>,
    /// Steps waiting for approval, in the order they asked.
    pub approvals: Vec<Approval>,
    /// Whether the run is paused.
    pub paused: bool,
    /// The last agent of each node.
    pub agents: BTreeMap<String, String>,
    /// Milliseconds from the first to the last event.
    pub elapsed_ms: u64,
}

/// Milliseconds since the epoch of a stamp as the engine writes them
/// (`2026-01-02T03:04:05.678Z`; the fraction may be absent or of any length).
pub fn parse_ts(ts: &str) -> Option<u64> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    let ms: i64 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(3).collect();
        let v: i64 = digits.parse().ok()?;
        v * 10i64.pow(3 - digits.len() as u32)
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let total = ((days * 24 + h) * 60 + min) * 60 + s;
    u64::try_from(total * 1000 + ms).ok()
}

/// Folds events one at a time into the timeline, what waits for a person and who ran
/// what.
#[derive(Debug, Default, Clone)]
pub struct Folder {
    folded: Folded,
    /// The first event's time.
    first: Option<u64>,
    /// Index in `attempts` of each node's attempt still going.
    open: BTreeMap<String, usize>,
}

impl Folder {
    /// What has been folded so far.
    pub fn folded(&self) -> &Folded {
        &self.folded
    }

    /// Folds one more event.
    pub fn apply(&mut self, e: &Event) {
        let at = parse_ts(&e.ts).unwrap_or(0);
        let start = *self.first.get_or_insert(at);
        let rel = at.saturating_sub(start);
        let f = &mut self.folded;
        let open = &mut self.open;
        f.elapsed_ms = f.elapsed_ms.max(rel);
        let close = |f: &mut Folded,
                     open: &mut BTreeMap<String, usize>,
                     node: &str,
                     end: AttemptEnd,
                     reason: Option<&String>| {
            if let Some(i) = open.remove(node) {
                let span = &mut f.attempts[i];
                span.end_ms = Some(rel);
                span.end = end;
                span.reason = reason.cloned();
            }
        };
        if let Some(step) = e.kind.closes_question() {
            f.questions.retain(|q| q.step != step);
        }
        match &e.kind {
            EventKind::RunStarted { pattern, .. } => f.pattern = Some(pattern.clone()),
            EventKind::StepStarted {
                step,
                attempt,
                agent,
            } => {
                close(f, open, step, AttemptEnd::Retried, None);
                if let Some(a) = agent {
                    f.agents.insert(step.clone(), a.clone());
                }
                open.insert(step.clone(), f.attempts.len());
                f.attempts.push(AttemptSpan {
                    node: step.clone(),
                    attempt: *attempt,
                    start_ms: rel,
                    end_ms: None,
                    end: AttemptEnd::Running,
                    reason: None,
                });
            }
            EventKind::StepRetrying { step, reason, .. } => {
                close(f, open, step, AttemptEnd::Retried, Some(reason));
            }
            EventKind::StepCompleted { step, .. } => {
                close(f, open, step, AttemptEnd::Completed, None);
            }
            EventKind::StepFailed { step, reason, .. } => {
                close(f, open, step, AttemptEnd::Failed, Some(reason));
            }
            EventKind::QuestionAsked { step, question } => {
                f.questions.retain(|q| q.step != *step);
                f.questions.push(Question {
                    step: step.clone(),
                    question: question.clone(),
                });
            }
            EventKind::ApprovalRequested {
                step,
                approvers,
                timeout_ms,
            } => {
                f.approvals.retain(|a| a.step != *step);
                f.approvals.push(Approval {
                    step: step.clone(),
                    approvers: approvers.clone(),
                    timeout_ms: *timeout_ms,
                });
            }
            EventKind::ApprovalDecided { step, .. } => f.approvals.retain(|a| a.step != *step),
            EventKind::RunPaused { .. } => f.paused = true,
            EventKind::RunUnpaused { .. } => f.paused = false,
            EventKind::RunResumed { .. } => {
                // Attempts the stopped coordinator left open never ended.
                for (_, i) in std::mem::take(open) {
                    f.attempts[i].end_ms = Some(rel);
                    f.attempts[i].end = AttemptEnd::Failed;
                    f.attempts[i].reason = Some("the coordinator stopped".into());
                }
                // A resumed run starts unpaused and asks again for what still waits.
                f.paused = false;
                f.approvals.clear();
            }
            EventKind::RunCompleted { .. }
            | EventKind::RunFailed { .. }
            | EventKind::RunCancelled { .. }
            | EventKind::RunNeedsHuman { .. } => {
                f.questions.clear();
                f.approvals.clear();
                f.paused = false;
            }
            _ => {}
        }
    }
}

/// Folds `events` into the timeline, what waits for a person and who ran what.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Folded {
    let mut f = Folder::default();
    for e in events {
        f.apply(e);
    }
    f.folded
}

/// The workflow step a node label belongs to: the step itself, or the longest step name
/// the label continues with `#`, `[` or `:` (`draft#2`, `map[3]`, `decide:vote:alice`).
pub fn step_of<'a>(label: &str, steps: &'a [String]) -> Option<&'a str> {
    steps
        .iter()
        .filter(|s| {
            label == s.as_str()
                || label
                    .strip_prefix(s.as_str())
                    .is_some_and(|rest| rest.starts_with(['#', '[', ':']))
        })
        .max_by_key(|s| s.len())
        .map(String::as_str)
}

/// One attempt's files.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptFiles {
    /// Attempt number.
    pub attempt: u32,
    /// Its output, when kept.
    pub output: Option<String>,
    /// Whether it ran in a terminal (a transcript exists).
    pub transcript: bool,
}

/// A step (or node) as its agent page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepDetail {
    /// The run.
    pub run_id: String,
    /// The node label.
    pub step: String,
    /// Where it stands.
    pub status: StepState,
    /// The agent.
    pub agent: Option<String>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// The final output.
    pub output: Option<String>,
    /// stderr of one-shot attempts.
    pub stderr: Option<String>,
    /// Each attempt.
    pub attempts: Vec<AttemptFiles>,
    /// Whether the run is live.
    pub live: bool,
}

/// The end of the file at `path` as text, at most [`MAX_TEXT_BYTES`], with a first line
/// saying how much was left out.
pub fn read_tail(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let cut = len.saturating_sub(MAX_TEXT_BYTES as u64);
    f.seek(SeekFrom::Start(cut)).ok()?;
    let mut bytes = Vec::new();
    f.take(MAX_TEXT_BYTES as u64).read_to_end(&mut bytes).ok()?;
    Some(if cut == 0 {
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        format!(
            "[{cut} earlier bytes not shown]\n{}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// The last [`MAX_TEXT_BYTES`] of `bytes` as text.
pub fn tail_text(bytes: &[u8]) -> String {
    if bytes.len() <= MAX_TEXT_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let cut = bytes.len() - MAX_TEXT_BYTES;
    format!(
        "[{cut} earlier bytes not shown]\n{}",
        String::from_utf8_lossy(&bytes[cut..])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts_ms: u64, kind: EventKind) -> Event {
        let secs = ts_ms / 1000;
        Event {
            ts: format!(
                "2026-03-04T10:{:02}:{:02}.{:03}Z",
                secs / 60,
                secs % 60,
                ts_ms % 1000
            ),
            kind,
        }
    }

    #[test]
    fn stamps_parse_to_epoch_milliseconds() {
        assert_eq!(parse_ts("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_ts("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        assert_eq!(parse_ts("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(
            parse_ts("2026-03-04T10:00:01.250Z").unwrap()
                - parse_ts("2026-03-04T10:00:00.000Z").unwrap(),
            1250
        );
        for bad in [
            "",
            "2026-03-04",
            "2026-13-01T00:00:00Z",
            "x-y-zT1:2:3Z",
            "2026-03-04T10:00:00",
        ] {
            assert_eq!(parse_ts(bad), None, "{bad}");
        }
    }

    #[test]
    fn attempts_form_a_timeline_with_retries_and_results() {
        let events = [
            ev(
                0,
                EventKind::RunStarted {
                    run_id: "r".into(),
                    workflow: "w".into(),
                    pattern: "dag".into(),
                    max_concurrency: None,
                    steps: vec!["a".into(), "b".into()],
                    rehearsal: false,
                },
            ),
            ev(
                100,
                EventKind::StepStarted {
                    step: "a".into(),
                    attempt: 1,
                    agent: Some("alice".into()),
                },
            ),
            ev(
                600,
                EventKind::StepRetrying {
                    step: "a".into(),
                    attempt: 1,
                    reason: "exit code 1".into(),
                    delay_ms: 0,
                },
            ),
            ev(
                700,
                EventKind::StepStarted {
                    step: "a".into(),
                    attempt: 2,
                    agent: Some("alice".into()),
                },
            ),
            ev(
                900,
                EventKind::StepCompleted {
                    step: "a".into(),
                    attempt: 2,
                    exit_code: Some(0),
                    duration_ms: 200,
                },
            ),
            ev(
                1000,
                EventKind::StepStarted {
                    step: "b".into(),
                    attempt: 1,
                    agent: None,
                },
            ),
        ];
        let f = fold(&events);
        assert_eq!(f.pattern.as_deref(), Some("dag"));
        assert_eq!(f.agents.get("a").map(String::as_str), Some("alice"));
        assert_eq!(f.elapsed_ms, 1000);
        let spans: Vec<_> = f
            .attempts
            .iter()
            .map(|s| (s.node.as_str(), s.attempt, s.start_ms, s.end_ms, s.end))
            .collect();
        assert_eq!(
            spans,
            vec![
                ("a", 1, 100, Some(600), AttemptEnd::Retried),
                ("a", 2, 700, Some(900), AttemptEnd::Completed),
                ("b", 1, 1000, None, AttemptEnd::Running),
            ]
        );
        assert_eq!(f.attempts[0].reason.as_deref(), Some("exit code 1"));
    }

    #[test]
    fn questions_stay_open_until_answered_their_step_ends_or_the_run_ends() {
        let asked = |s: &str| {
            ev(
                1,
                EventKind::QuestionAsked {
                    step: s.into(),
                    question: format!("{s}?"),
                },
            )
        };
        let f = fold(&[
            asked("a"),
            asked("b"),
            ev(
                2,
                EventKind::QuestionAnswered {
                    step: "a".into(),
                    answer: "yes".into(),
                },
            ),
        ]);
        assert_eq!(
            f.questions,
            vec![Question {
                step: "b".into(),
                question: "b?".into()
            }]
        );
        let f = fold(&[
            asked("a"),
            ev(
                3,
                EventKind::RunNeedsHuman {
                    reason: "q".into(),
                    duration_ms: 3,
                },
            ),
        ]);
        assert!(f.questions.is_empty());
        // An `ask_human` question goes with the attempt that asked it.
        let f = fold(&[
            asked("a"),
            asked("b"),
            ev(
                4,
                EventKind::StepCompleted {
                    step: "a".into(),
                    attempt: 1,
                    exit_code: Some(0),
                    duration_ms: 4,
                },
            ),
            ev(
                5,
                EventKind::StepRetrying {
                    step: "b".into(),
                    attempt: 1,
                    reason: "exit code 1".into(),
                    delay_ms: 0,
                },
            ),
        ]);
        assert!(f.questions.is_empty(), "{:?}", f.questions);
    }

    #[test]
    fn a_resume_closes_the_attempts_the_stopped_coordinator_left_open() {
        let f = fold(&[
            ev(
                0,
                EventKind::StepStarted {
                    step: "a".into(),
                    attempt: 1,
                    agent: None,
                },
            ),
            ev(
                50,
                EventKind::RunResumed {
                    completed: vec![],
                    reused_from: None,
                },
            ),
        ]);
        assert_eq!(f.attempts[0].end, AttemptEnd::Failed);
        assert_eq!(f.attempts[0].end_ms, Some(50));
    }

    #[test]
    fn node_labels_belong_to_their_workflow_step() {
        let steps: Vec<String> = ["draft", "draft-review", "map", "decide"]
            .map(String::from)
            .into();
        assert_eq!(step_of("draft", &steps), Some("draft"));
        assert_eq!(step_of("draft#2", &steps), Some("draft"));
        assert_eq!(step_of("draft-review#3", &steps), Some("draft-review"));
        assert_eq!(step_of("map[3]", &steps), Some("map"));
        assert_eq!(step_of("decide:vote:alice", &steps), Some("decide"));
        assert_eq!(step_of("drafts", &steps), None);
        assert_eq!(step_of("other", &steps), None);
    }

    #[test]
    fn long_texts_keep_their_end() {
        let big = vec![b'x'; MAX_TEXT_BYTES + 10];
        let t = tail_text(&big);
        assert!(t.starts_with("[10 earlier bytes not shown]\n"));
        assert_eq!(t.len() - t.find('\n').unwrap() - 1, MAX_TEXT_BYTES);
        assert_eq!(tail_text(b"short"), "short");
    }
}
