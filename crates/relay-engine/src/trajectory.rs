//! A run's trajectory: every decision it made, with its reason and its evidence, as JSON
//! lines (`trajectory.jsonl`) and a readable summary (`trajectory.md`, and `agent-relay
//! trajectory RUN_ID`). Decisions are read off the run's own events as they are recorded:
//! the pattern chosen, retries, repairs, gate verdicts, votes, awards, escalations,
//! nudges, force-releases, failures and the end. `trajectories: false` turns it off.

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventKind};

/// The trajectory file in the run directory.
pub const FILE: &str = "trajectory.jsonl";

/// Its readable summary.
pub const SUMMARY: &str = "trajectory.md";

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// When it was made.
    pub ts: String,
    /// The step (or node) it is about; empty for the run.
    pub step: String,
    /// What was decided (`pattern`, `retry`, `approved`, `failed`, ...).
    pub decision: String,
    /// Why.
    pub reason: String,
    /// What it rested on (a tally, an exit code, an agent).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evidence: String,
}

fn decision(e: &Event, step: &str, what: &str, reason: String, evidence: String) -> Decision {
    Decision {
        ts: e.ts.clone(),
        step: step.to_owned(),
        decision: what.to_owned(),
        reason,
        evidence,
    }
}

/// The decision event `e` records, if it records one.
pub fn of_event(e: &Event) -> Option<Decision> {
    Some(match &e.kind {
        EventKind::StepRetrying {
            step,
            attempt,
            reason,
            delay_ms,
        } => decision(
            e,
            step,
            "retry",
            reason.clone(),
            format!("attempt {attempt} failed; next in {delay_ms} ms"),
        ),
        EventKind::StepFailed {
            step,
            attempt,
            reason,
            exit_code,
            ..
        } => decision(
            e,
            step,
            "failed",
            reason.clone(),
            match exit_code {
                Some(c) => format!("after {attempt} attempt(s), exit code {c}"),
                None => format!("after {attempt} attempt(s)"),
            },
        ),
        EventKind::Pattern {
            step,
            action,
            detail,
        } => decision(e, step, action, detail.clone(), String::new()),
        EventKind::StepNudged { step, count } => decision(
            e,
            step,
            "nudged",
            "the agent went quiet".into(),
            format!("nudge {count}"),
        ),
        EventKind::StepForceReleased { step } => decision(
            e,
            step,
            "force-released",
            "the agent stayed quiet after its nudges; its verification decides".into(),
            String::new(),
        ),
        EventKind::Warning { message } => {
            decision(e, "", "warning", message.clone(), String::new())
        }
        EventKind::RunCompleted { duration_ms } => decision(
            e,
            "",
            "completed",
            "every step completed".into(),
            format!("{duration_ms} ms"),
        ),
        EventKind::RunFailed {
            reason,
            duration_ms,
        } => decision(
            e,
            "",
            "run failed",
            reason.clone(),
            format!("{duration_ms} ms"),
        ),
        EventKind::RunCancelled {
            reason,
            duration_ms,
        } => decision(
            e,
            "",
            "cancelled",
            reason.clone(),
            format!("{duration_ms} ms"),
        ),
        _ => return None,
    })
}

/// The first decision of a run: its pattern and why.
pub fn pattern_chosen(ts: String, pattern: &str, why: &str) -> Decision {
    Decision {
        ts,
        step: String::new(),
        decision: "pattern".into(),
        reason: why.to_owned(),
        evidence: pattern.to_owned(),
    }
}

/// The readable summary of `decisions`.
pub fn summary(run_id: &str, decisions: &[Decision]) -> String {
    let mut out = format!("# Trajectory of run {run_id}\n\n");
    for d in decisions {
        let time =
            d.ts.split('T')
                .nth(1)
                .unwrap_or(&d.ts)
                .trim_end_matches('Z');
        let step = if d.step.is_empty() {
            String::new()
        } else {
            format!(" `{}`", d.step)
        };
        out.push_str(&format!("- {time}{step} **{}**: {}", d.decision, d.reason));
        if !d.evidence.is_empty() {
            out.push_str(&format!(" ({})", d.evidence));
        }
        out.push('\n');
    }
    out
}

/// Reads `trajectory.jsonl` text; unreadable lines are skipped.
pub fn parse(text: &str) -> Vec<Decision> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_come_from_events_and_read_as_a_summary() {
        let retry = Event {
            ts: "2026-01-01T10:00:00.000Z".into(),
            kind: EventKind::StepRetrying {
                step: "build".into(),
                attempt: 1,
                reason: "exit code 2".into(),
                delay_ms: 0,
            },
        };
        let d = of_event(&retry).unwrap();
        assert_eq!(
            (d.decision.as_str(), d.reason.as_str()),
            ("retry", "exit code 2")
        );
        let started = Event::now(EventKind::StepStarted {
            step: "build".into(),
            attempt: 1,
            agent: None,
        });
        assert_eq!(of_event(&started), None, "a start decides nothing");
        let text = summary(
            "r1",
            &[pattern_chosen("t".into(), "dag", "set in swarm.pattern"), d],
        );
        assert!(text.contains("**pattern**: set in swarm.pattern (dag)"));
        assert!(text.contains("10:00:00.000 `build` **retry**: exit code 2"));
        let line = serde_json::to_string(&of_event(&retry).unwrap()).unwrap();
        assert_eq!(parse(&format!("{line}\nnot json\n")).len(), 1);
    }
}
