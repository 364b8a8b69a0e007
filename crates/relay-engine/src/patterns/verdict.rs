//! Reading what agents decided: approvals, votes and bids are lines of a documented form
//! in their output (reply glyphs and indentation allowed), plus the consensus rules and the
//! gates shared by several patterns.

use relay_spec::ConsensusStrategy;

use crate::plan::{Gate, GateCtx, Resolution};

use crate::markers::{clean_lines, field, review_decision};

/// Whether a reviewer approved: a line `APPROVED`, `NO_FINDINGS`,
/// `VERDICT: pass|approve|approved`, or `REVIEW_DECISION: APPROVE`.
pub fn approved(text: &str) -> bool {
    if let Some(decision) = review_decision(text) {
        return decision;
    }
    if let Some(v) = field(text, "VERDICT") {
        let v = v.to_lowercase();
        return ["pass", "passed", "approve", "approved", "ok"]
            .iter()
            .any(|w| v.split(|c: char| !c.is_alphanumeric()).next() == Some(*w));
    }
    clean_lines(text).any(|l| {
        let u = l.to_uppercase();
        u == "APPROVED" || u == "NO_FINDINGS" || u == "NO FINDINGS"
    })
}

/// The choice on a `VOTE: <choice>` line, normalised to lower case.
pub fn vote(text: &str) -> Option<String> {
    field(text, "VOTE").map(|v| v.to_lowercase())
}

/// The number on a `BID: <number>` line.
pub fn bid(text: &str) -> Option<f64> {
    field(text, "BID").and_then(|v| {
        v.split_whitespace()
            .next()
            .and_then(|n| n.trim_end_matches([',', ';']).parse().ok())
    })
}

/// The outcome of counting votes: the decision, or why there is none; and the tally.
pub fn tally(
    votes: &[(String, Option<String>)],
    strategy: ConsensusStrategy,
    threshold: Option<f64>,
) -> (Result<String, String>, String) {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (_, v) in votes {
        let key = v.clone().unwrap_or_else(|| "(no vote)".into());
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some(c) => c.1 += 1,
            None => counts.push((key, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let text = counts
        .iter()
        .map(|(k, c)| format!("{k}={c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let total = votes.len();
    let top = counts.iter().find(|(k, _)| k != "(no vote)").cloned();
    let decision = match (strategy, top) {
        (_, None) => Err("no votes were cast".to_string()),
        (ConsensusStrategy::Unanimous, Some((k, c))) if c == total => Ok(k),
        (ConsensusStrategy::Unanimous, Some(_)) => Err("the vote was not unanimous".into()),
        (ConsensusStrategy::Majority, Some((k, c))) if c * 2 > total => Ok(k),
        (ConsensusStrategy::Majority, Some(_)) => Err("no choice has a majority".into()),
        (ConsensusStrategy::Quorum, Some((k, c))) => {
            let need = threshold.unwrap_or(0.5);
            if c as f64 / total.max(1) as f64 >= need {
                Ok(k)
            } else {
                Err(format!("no choice reached the quorum of {need}"))
            }
        }
    };
    (decision, text)
}

/// A barrier: completes once everything it waits for has completed (the scheduler skips it
/// when one of them fails; the driver fails it at its timeout).
pub struct Barrier;

impl Gate for Barrier {
    fn resolve(&mut self, _ctx: &GateCtx<'_>) -> Resolution {
        Resolution::Complete {
            output: String::new(),
            events: Vec::new(),
        }
    }
}

/// Text of a node's result for another agent to read: its output, or why it failed.
pub fn describe_result(ctx: &GateCtx<'_>, i: crate::plan::NodeId) -> String {
    result_text(ctx.result(i))
}

/// Text of a result for another agent to read: its output, or why it failed.
pub fn result_text(result: Option<&crate::plan::NodeResult>) -> String {
    match result {
        Some(r) if r.completed() => r.output().trim().to_string(),
        Some(r) => format!(
            "[failed: {}]\n{}",
            r.reason().unwrap_or("unknown reason"),
            r.output().trim()
        ),
        None => "[not run]".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_votes_and_bids_are_read_from_lines() {
        assert!(approved("Looks good.\nVERDICT: pass"));
        assert!(approved("● APPROVED"));
        assert!(!approved("VERDICT: fail - missing tests\nAPPROVED later?"));
        assert!(!approved("I have not APPROVED this"));
        assert_eq!(vote("I think so.\n  VOTE: Yes"), Some("yes".into()));
        assert_eq!(bid("• BID: 12.5 credits"), Some(12.5));
        assert_eq!(bid("no bid"), None);
    }

    fn votes(v: &[&str]) -> Vec<(String, Option<String>)> {
        v.iter()
            .enumerate()
            .map(|(i, x)| (format!("a{i}"), (!x.is_empty()).then(|| x.to_string())))
            .collect()
    }

    #[test]
    fn consensus_rules_on_split_votes() {
        use ConsensusStrategy::*;
        assert_eq!(
            tally(&votes(&["yes", "yes", "no"]), Majority, None).0,
            Ok("yes".into())
        );
        assert!(tally(&votes(&["yes", "no"]), Majority, None).0.is_err());
        assert!(
            tally(&votes(&["yes", "yes", "no"]), Unanimous, None)
                .0
                .is_err()
        );
        assert_eq!(
            tally(&votes(&["no", "no"]), Unanimous, None).0,
            Ok("no".into())
        );
        assert_eq!(
            tally(&votes(&["a", "b", "a", "c"]), Quorum, Some(0.5)).0,
            Ok("a".into())
        );
        assert!(
            tally(&votes(&["a", "b", "a", "c"]), Quorum, Some(0.75))
                .0
                .is_err()
        );
        assert!(
            tally(&votes(&["", "yes", ""]), Majority, None).0.is_err(),
            "missing votes count against"
        );
        assert_eq!(
            tally(&votes(&["yes", "yes", "no"]), Majority, None).1,
            "yes=2, no=1"
        );
    }
}
