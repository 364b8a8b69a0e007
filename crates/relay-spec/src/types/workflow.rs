//! A named workflow: its checks before anything runs, its steps and its failure policy.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::coordination::OnError;
use super::step::Step;

/// One named workflow: a set of steps and its failure policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowDef {
    /// Unique workflow name.
    pub name: String,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Commands that must all pass before any step starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preflight: Vec<PreflightCheck>,
    /// What a failed step does to the rest of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// The steps (at most 100 000).
    #[serde(default, deserialize_with = "bounded_steps")]
    pub steps: Vec<Step>,
}

/// A command run before any step; its output decides whether the run may start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreflightCheck {
    /// The shell command.
    pub command: String,
    /// Fail when the output is `empty`, `non-empty`, or matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_if: Option<String>,
    /// Pass only when the output is `empty`, `non-empty`, or matches this regular
    /// expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_if: Option<String>,
    /// What the check makes sure of, shown when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// How a preflight condition reads the command's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputCondition<'a> {
    /// The output is empty (after trimming).
    Empty,
    /// The output is not empty (after trimming).
    NonEmpty,
    /// The output matches this regular expression.
    Matches(&'a str),
}

impl<'a> OutputCondition<'a> {
    /// `empty`, `non-empty`, or a regular expression.
    pub fn parse(text: &'a str) -> OutputCondition<'a> {
        match text.trim() {
            "empty" => OutputCondition::Empty,
            "non-empty" => OutputCondition::NonEmpty,
            _ => OutputCondition::Matches(text),
        }
    }
}

impl PreflightCheck {
    /// The `failIf` condition.
    pub fn fail_condition(&self) -> Option<OutputCondition<'_>> {
        self.fail_if.as_deref().map(OutputCondition::parse)
    }

    /// The `successIf` condition.
    pub fn success_condition(&self) -> Option<OutputCondition<'_>> {
        self.success_if.as_deref().map(OutputCondition::parse)
    }
}

/// Reads `steps`, refusing the first step past [`MAX_STEPS`](crate::limits::MAX_STEPS)
/// instead of building an arbitrarily long list.
fn bounded_steps<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Step>, D::Error> {
    struct Steps;
    impl<'de> serde::de::Visitor<'de> for Steps {
        type Value = Vec<Step>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of steps")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<Step>, A::Error> {
            let max = crate::limits::MAX_STEPS;
            let mut steps = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(step) = seq.next_element::<serde_saphyr::Spanned<Step>>()? {
                if steps.len() == max {
                    let pos = crate::diagnostic::Pos::from_location(&step.referenced)
                        .unwrap_or(crate::diagnostic::Pos { line: 1, column: 1 });
                    return Err(serde::de::Error::custom(crate::diagnostic::located(
                        pos,
                        format!("a workflow may have at most {max} steps"),
                    )));
                }
                steps.push(step.value);
            }
            Ok(steps)
        }
    }
    d.deserialize_seq(Steps)
}
