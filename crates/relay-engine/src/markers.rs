//! The lines agents print to say what they decided, read the same way wherever they
//! appear: on a line of their own, with a reply glyph, list dash, markdown emphasis or
//! indentation in front allowed, keys case-insensitive. Besides the pattern verdicts
//! (`VERDICT:`, `VOTE:`, `BID:`, read in `patterns::verdict`), the markers agents of the
//! reference implementation are trained to print:
//!
//! | line | means |
//! |---|---|
//! | `OWNER_DECISION: COMPLETE` | done |
//! | `OWNER_DECISION: INCOMPLETE_RETRY` (`REASON: ...`) | not done; try again |
//! | `OWNER_DECISION: INCOMPLETE_FAIL` (`REASON: ...`) | not done; do not retry |
//! | `OWNER_DECISION: NEEDS_CLARIFICATION` (`REASON: ...`) | a question for a person |
//! | `STEP_COMPLETE:<step>` | step `<step>` is done |
//! | `REVIEW_DECISION: APPROVE` / `REJECT` | a review's verdict |
//! | `HUMAN_QUESTION: ...` | a question for a person |

/// Lines of `text` with reply glyphs, markdown emphasis and indentation removed.
pub fn clean_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().map(|l| {
        l.trim()
            .trim_start_matches(['●', '•', '✦', '⏺', '>', '-', '*'])
            .trim()
            .trim_matches('*')
            .trim()
            .to_string()
    })
}

/// The rest of `line` after `prefix` when it starts with it, ignoring ASCII case.
fn after_prefix<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| line.get(prefix.len()..))
        .flatten()
}

/// The value after `KEY:` on the last line that starts with it (case-insensitive).
pub fn field(text: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}:");
    clean_lines(text)
        .filter_map(|l| after_prefix(&l, &prefix).map(|v| v.trim().to_string()))
        .last()
        .filter(|v| !v.is_empty())
}

/// What an agent decided about its own step (`OWNER_DECISION:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerDecision {
    /// Done.
    Complete,
    /// Not done; another attempt may help.
    Retry(Option<String>),
    /// Not done; another attempt will not help.
    Fail(Option<String>),
    /// A question for a person.
    NeedsClarification(Option<String>),
}

/// The last `OWNER_DECISION:` line of `text`, with the `REASON:` that goes with it.
pub fn owner_decision(text: &str) -> Option<OwnerDecision> {
    let value = field(text, "OWNER_DECISION")?;
    let reason = field(text, "REASON");
    let word: String = value
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match word.to_ascii_uppercase().as_str() {
        "COMPLETE" => Some(OwnerDecision::Complete),
        "INCOMPLETE_RETRY" => Some(OwnerDecision::Retry(reason)),
        "INCOMPLETE_FAIL" => Some(OwnerDecision::Fail(reason)),
        "NEEDS_CLARIFICATION" => Some(OwnerDecision::NeedsClarification(reason)),
        _ => None,
    }
}

/// A review's `REVIEW_DECISION:`: approve (true) or reject (false).
pub fn review_decision(text: &str) -> Option<bool> {
    let v = field(text, "REVIEW_DECISION")?;
    let v = v.to_ascii_uppercase();
    if v.starts_with("APPROVE") {
        Some(true)
    } else if v.starts_with("REJECT") {
        Some(false)
    } else {
        None
    }
}

/// Whether `text` has a `STEP_COMPLETE:<step>` line for `step`.
pub fn step_complete(text: &str, step: &str) -> bool {
    clean_lines(text).any(|l| {
        after_prefix(&l, "STEP_COMPLETE:").is_some_and(|s| s.trim().trim_matches('`') == step)
    })
}

/// A question the agent asked a person: `HUMAN_QUESTION: ...`, or the reason given with
/// `OWNER_DECISION: NEEDS_CLARIFICATION`.
pub fn question(text: &str) -> Option<String> {
    if let Some(q) = field(text, "HUMAN_QUESTION") {
        return Some(q);
    }
    match owner_decision(text)? {
        OwnerDecision::NeedsClarification(q) => {
            Some(q.unwrap_or_else(|| "the agent needs clarification".into()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_decisions_with_their_reasons() {
        assert_eq!(
            owner_decision("done\n● OWNER_DECISION: COMPLETE"),
            Some(OwnerDecision::Complete)
        );
        assert_eq!(
            owner_decision("OWNER_DECISION: INCOMPLETE_RETRY\nREASON: tests still red"),
            Some(OwnerDecision::Retry(Some("tests still red".into())))
        );
        assert_eq!(
            owner_decision("**owner_decision: incomplete_fail**"),
            Some(OwnerDecision::Fail(None))
        );
        assert_eq!(owner_decision("I will print OWNER_DECISION later"), None);
        assert_eq!(owner_decision("OWNER_DECISION: maybe"), None);
    }

    #[test]
    fn step_complete_review_decision_and_questions() {
        assert!(step_complete("work\nSTEP_COMPLETE:build\n", "build"));
        assert!(!step_complete("STEP_COMPLETE:build-docs", "build"));
        assert_eq!(review_decision("REVIEW_DECISION: APPROVE"), Some(true));
        assert_eq!(
            review_decision("- REVIEW_DECISION: reject, see above"),
            Some(false)
        );
        assert_eq!(
            question("HUMAN_QUESTION: which port?"),
            Some("which port?".into())
        );
        assert_eq!(
            question("OWNER_DECISION: NEEDS_CLARIFICATION\nREASON: which database?"),
            Some("which database?".into())
        );
    }

    #[test]
    fn no_text_an_agent_prints_can_make_reading_panic() {
        // U+212A (Kelvin sign) lowercases to an ASCII `k`; slicing by a lowercased prefix
        // would cut inside it.
        for text in ["\u{212A}EY: x", "REASON", "", "OWNER_DECISION:", "::::"] {
            let _ = field(text, "KEY");
            let _ = owner_decision(text);
            let _ = step_complete(text, "s");
        }
        assert_eq!(field("\u{212A}EY: x", "KEY"), None);
    }
}
