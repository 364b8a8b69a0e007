//! Extensions for control flow on a step: loops (`loop`, `until`, `breakIf`), conditions
//! (`if`, `skipIf`, `continueOnFailure`), named outputs (`outputVar`) and approval gates
//! (`approval`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Scalar;

/// `loop:` on a step: counted (`{max: N}`) or for-each (`{over: ..., as: VAR}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Loop {
    /// Run the step this many times (at most; `until` and `breakIf` may end it sooner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Run the step once per item: a list, a glob of files (relative to the run's
    /// working directory), or text with `{{...}}` split into lines (or a JSON array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<Items>,
    /// The variable each item is given as (default `item`).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub as_: Option<String>,
}

impl Loop {
    /// The loop variable's name.
    pub fn var(&self) -> &str {
        self.as_.as_deref().unwrap_or("item")
    }
}

/// `skipIf:` on a step: `previous_success` (skip when every step it depends on
/// completed), or `{sh: COMMAND}` / `"sh: COMMAND"` (skip when the command exits 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SkipIf {
    /// `previous_success` or `sh: COMMAND` written as one text.
    Text(String),
    /// `{sh: COMMAND}`.
    Command {
        /// The command, run by `sh -c` in the step's directory.
        sh: String,
    },
}

/// What a `skipIf` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipRule<'a> {
    /// Skip when every step it depends on completed.
    PreviousSuccess,
    /// Skip when this command exits 0.
    Command(&'a str),
    /// Not a rule of the format.
    Unknown(&'a str),
}

impl SkipIf {
    /// The rule written.
    pub fn rule(&self) -> SkipRule<'_> {
        match self {
            SkipIf::Command { sh } => SkipRule::Command(sh),
            SkipIf::Text(t) => match t.trim() {
                "previous_success" | "previousSuccess" => SkipRule::PreviousSuccess,
                t => match t.strip_prefix("sh:") {
                    Some(cmd) => SkipRule::Command(cmd.trim()),
                    None => SkipRule::Unknown(t),
                },
            },
        }
    }
}

/// `approval:` on a step: `required`, or a mapping with who may approve and for how long
/// the run waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Approval {
    /// `required` (`none` turns it off).
    Word(String),
    /// The settings.
    Settings(ApprovalSettings),
}

/// The settings of an approval gate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Whether approval is needed (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Who may decide (user names); anyone running the CLI as the run's owner when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// How long to wait for a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// What a timeout decides: `reject` (default) or `approve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
}

/// `session:` on an agent step: which conversation of its agent it talks in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    /// A conversation of its own (the default).
    #[default]
    New,
    /// The conversation of the agent's latest earlier step, continued: the CLI's own
    /// session (claude and gemini `--resume ID`, codex `exec resume ID`, opencode
    /// `--session ID`, Cursor `--resume ID`). A new one when the agent has none yet.
    Resume,
    /// As `resume`, across into a sub-workflow: its first step continues the agent's
    /// conversation from the workflow that includes it.
    Inherit,
}

impl SessionMode {
    /// Whether the step continues an earlier conversation.
    pub fn continues(self) -> bool {
        self != SessionMode::New
    }
}

/// What an approval that timed out decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// The step fails, rejected.
    #[default]
    Reject,
    /// The step goes on.
    Approve,
}

impl Approval {
    /// Whether the step waits for a decision.
    pub fn required(&self) -> bool {
        match self {
            Approval::Word(w) => w.trim() == "required",
            Approval::Settings(s) => s.required.unwrap_or(true),
        }
    }

    /// The word written, when it is not one of the format.
    pub fn unknown_word(&self) -> Option<&str> {
        match self {
            Approval::Word(w) if !matches!(w.trim(), "required" | "none") => Some(w),
            _ => None,
        }
    }

    /// Who may decide (anyone when empty).
    pub fn approvers(&self) -> &[String] {
        match self {
            Approval::Settings(s) => &s.approvers,
            Approval::Word(_) => &[],
        }
    }

    /// How long the run waits.
    pub fn timeout_ms(&self) -> Option<u64> {
        match self {
            Approval::Settings(s) => s.timeout_ms,
            Approval::Word(_) => None,
        }
    }

    /// What a timeout decides.
    pub fn on_timeout(&self) -> OnTimeout {
        match self {
            Approval::Settings(s) => s.on_timeout.unwrap_or_default(),
            Approval::Word(_) => OnTimeout::Reject,
        }
    }
}

/// Extension: the items a map step runs over.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Items {
    /// Literal items.
    List(Vec<Scalar>),
    /// Text with `{{...}}`, split into non-empty lines (or a JSON array of strings).
    Text(String),
}
