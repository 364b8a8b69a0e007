//! Agents: the CLI that runs each one, its role, limits, permissions and what it watches.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults::*;
use super::either::NameOr;
use super::integrations::Subscription;
use super::permissions::AgentPermissions;

/// The coding-agent CLIs the broker knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Cli {
    /// Claude Code.
    Claude,
    /// OpenAI's Codex CLI.
    Codex,
    /// Gemini CLI.
    Gemini,
    /// Aider.
    Aider,
    /// Goose.
    Goose,
    /// OpenCode.
    Opencode,
    /// Factory's Droid.
    Droid,
    /// Cursor's CLI (the `cursor-agent` program), by its product name.
    Cursor,
    /// Cursor's CLI, by its program name.
    #[serde(rename = "cursor-agent")]
    CursorAgent,
    /// Cursor's CLI, by the short name it also installs as.
    Agent,
}

impl Cli {
    /// Every CLI, in the order the docs list them.
    pub const ALL: [Cli; 10] = [
        Cli::Claude,
        Cli::Codex,
        Cli::Gemini,
        Cli::Aider,
        Cli::Goose,
        Cli::Opencode,
        Cli::Droid,
        Cli::Cursor,
        Cli::CursorAgent,
        Cli::Agent,
    ];

    /// The name as written in relay.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            Cli::Claude => "claude",
            Cli::Codex => "codex",
            Cli::Gemini => "gemini",
            Cli::Aider => "aider",
            Cli::Goose => "goose",
            Cli::Opencode => "opencode",
            Cli::Droid => "droid",
            Cli::Cursor => "cursor",
            Cli::CursorAgent => "cursor-agent",
            Cli::Agent => "agent",
        }
    }

    /// Whether this names Cursor's CLI (three spellings of one program).
    pub fn is_cursor(self) -> bool {
        matches!(self, Cli::Cursor | Cli::CursorAgent | Cli::Agent)
    }
}

/// An agent: a CLI with a role that steps are assigned to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Agent {
    /// Unique agent name.
    pub name: String,
    /// Which CLI runs this agent.
    pub cli: Cli,
    /// What the agent is for; also drives pattern auto-selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The task of this agent's steps that set none of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Model to ask the CLI for (`constraints.model` wins when both are set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Limits for this agent's steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
    /// What the agent may read, write, reach and run: an access preset (`readonly`,
    /// `readwrite`, `restricted`, `full`), the name of a `permission_profiles` entry, or
    /// the rules themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<NameOr<AgentPermissions>>,
    /// Full terminal session (default) or one-shot subprocess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    /// Working directory for this agent's steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Working directory for this agent's steps, by the name of a `paths` entry (instead
    /// of `cwd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Further directories the agent needs to read and write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_paths: Vec<String>,
    /// Extra channels this agent joins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Files whose changes the agent is told about: path globs, or subscriptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<NameOr<Subscription>>,
    /// Events the agent is told about: names of `integrations.subscriptions` entries, or
    /// subscriptions of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<NameOr<Subscription>>,
    /// A named preset of settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Extension (hierarchical): the agent this one reports to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports_to: Option<String>,
    /// Extension: the agent works in its own git worktree and branch, merged back into
    /// the run's branch after each of its steps (default: `swarm.worktrees`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<bool>,
    /// Extension (workers over NATS): which workers may run this agent's steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Extension: give the agent's CLI the run's MCP server (`agent-relay mcp`: tools to
    /// message other agents, read its inbox, use the board, ask a person and report its
    /// result), where the CLI takes MCP servers (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<bool>,
}

/// Extension: where an agent's steps may run when the run dispatches to workers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Labels a worker must carry, every one with this value (`agent-relay worker
    /// --label KEY=VALUE`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Per-agent limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constraints {
    /// Model to ask the CLI for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Bound on each attempt of this agent's steps, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retries for this agent's steps when the step sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Most tokens the agent may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Seconds without output before the agent counts as idle (default 30; 0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_threshold_secs: Option<u64>,
}

impl Agent {
    /// Whether the agent runs as a terminal session (the default).
    pub fn is_interactive(&self) -> bool {
        self.interactive.unwrap_or(true)
    }

    /// Whether the agent's CLI is given the run's MCP server (the default).
    pub fn wants_mcp(&self) -> bool {
        self.mcp.unwrap_or(true)
    }

    /// The model the CLI is asked for, if any.
    pub fn effective_model(&self) -> Option<&str> {
        self.constraints
            .as_ref()
            .and_then(|c| c.model.as_deref())
            .or(self.model.as_deref())
    }

    /// Quiet time before the agent counts as idle (see [`Constraints::idle_threshold`]).
    pub fn idle_threshold(&self) -> Option<Duration> {
        match &self.constraints {
            Some(c) => c.idle_threshold(),
            None => Some(DEFAULT_IDLE_THRESHOLD),
        }
    }
}

impl Constraints {
    /// Quiet time before the agent counts as idle: 30 s unless set; `0` disables it.
    pub fn idle_threshold(&self) -> Option<Duration> {
        match self.idle_threshold_secs {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(s)),
            None => Some(DEFAULT_IDLE_THRESHOLD),
        }
    }
}
