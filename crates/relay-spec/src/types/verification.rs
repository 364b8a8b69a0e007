//! The check that decides whether a step succeeded.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Scalar;
use super::defaults::*;

/// The check a step's result must pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Verification {
    /// Which check.
    #[serde(rename = "type")]
    pub kind: VerificationType,
    /// Its argument: the text, the exit code (0 to 255), the path, or the shell command
    /// (`custom`; `regex:PATTERN` instead matches the output against PATTERN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Scalar>,
    /// What the check means, shown when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Bound on a `custom` check's command, in milliseconds (default 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Extension (`checklist`): the items the agent must mark done (or, instead, a file
    /// of them named by `value`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ChecklistItem>,
}

/// One item of a `checklist` verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    /// How the agent names it (`agent-relay task done ID`): letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// What is to be done.
    #[serde(default)]
    pub title: String,
}

impl ChecklistItem {
    /// Whether `id` is a valid item id.
    pub fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }
}

/// The verification checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationType {
    /// The step output contains `value`.
    OutputContains,
    /// The process exited with code `value`.
    ExitCode,
    /// A file exists at `value`, relative to the step's cwd.
    FileExists,
    /// The shell command `value` exits 0, or the output matches `regex:PATTERN`.
    Custom,
    /// Extension: every item of `items` (or of the file `value`) is marked done by the
    /// agent (`agent-relay task done ID`).
    Checklist,
}

/// What a `custom` check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomCheck<'a> {
    /// Run this shell command; it must exit 0.
    Command(&'a str),
    /// Match the step's output against this regular expression.
    Regex(&'a str),
}

impl CustomCheck<'_> {
    /// The prefix that makes a `custom` value a regular expression.
    pub const REGEX_PREFIX: &'static str = "regex:";

    /// How the `custom` value `text` reads.
    pub fn parse(text: &str) -> CustomCheck<'_> {
        match text.strip_prefix(CustomCheck::REGEX_PREFIX) {
            Some(pattern) => CustomCheck::Regex(pattern),
            None => CustomCheck::Command(text),
        }
    }
}

impl VerificationType {
    /// The name as written in relay.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationType::OutputContains => "output_contains",
            VerificationType::ExitCode => "exit_code",
            VerificationType::FileExists => "file_exists",
            VerificationType::Custom => "custom",
            VerificationType::Checklist => "checklist",
        }
    }
}

impl Verification {
    /// Bound on a `custom` check's command (default 60 s).
    pub fn timeout(&self) -> Duration {
        self.timeout_ms
            .map(ms)
            .unwrap_or(DEFAULT_VERIFICATION_TIMEOUT)
    }

    /// The expected code of an `exit_code` check, when the value is one (0..=255).
    pub fn expected_exit_code(&self) -> Option<u8> {
        if self.kind != VerificationType::ExitCode {
            return None;
        }
        self.value.as_ref()?.as_text().trim().parse().ok()
    }

    /// A `custom` check's command or regular expression, as written (variables not yet
    /// filled in).
    pub fn custom_check(&self) -> Option<CustomCheck<'_>> {
        match (&self.kind, &self.value) {
            (VerificationType::Custom, Some(Scalar::Text(t))) => Some(CustomCheck::parse(t)),
            _ => None,
        }
    }
}
