//! Swarm-wide settings: the pattern, concurrency, idle nudging, human assistance, budgets;
//! and how a run's trajectory is recorded.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults::*;
use super::either::BoolOr;

/// Swarm-wide coordination settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Swarm {
    /// The coordination pattern; chosen from the agents' roles when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
    /// Most steps running at once, at least 1 (unlimited when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Bound on the whole run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Most tokens all steps together may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u64>,
    /// Extension: most US dollars all steps together may spend (priced by
    /// `agent-relay prices`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_budget: Option<f64>,
    /// The channel every agent joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// What to do about interactive agents that go quiet without `/exit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_nudge: Option<IdleNudge>,
    /// After an agent exits 0 without signalling completion, how long to look for
    /// evidence (verification, files) before failing the step, in milliseconds (default
    /// 5000; 0 turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_grace_period_ms: Option<u64>,
    /// Where agents may ask a person for help.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_assistance: Option<HumanAssistance>,
    /// Extension: `per-agent` gives every agent its own git worktree and branch
    /// (`agents[].worktree` decides for one agent); `shared` (default) runs them all in
    /// the run's working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktrees: Option<WorktreeMode>,
    /// Extension: untracked files copied into every new agent worktree (`.env` and the
    /// like): paths or globs relative to the repository's top.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worktree_include: Vec<String>,
    /// Extension: keep the agents' worktrees after the run (default: removed; their
    /// branches always stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_worktrees: Option<bool>,
    /// Extension: the agent given a merge conflict between an agent's branch and the
    /// run's branch to resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// Extension: the NATS server (`nats://host:port` or `tls://host:port`) whose workers
    /// run this file's agent steps; `--nats` and `AGENT_RELAY_NATS` take precedence.
    /// Credentials belong in the environment, not here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<String>,
}

/// Whether agents share one working directory or each have a git worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WorktreeMode {
    /// Every agent works in the run's working directory.
    Shared,
    /// Every agent has its own worktree and branch.
    PerAgent,
}

/// Idle-agent nudging and force-release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdleNudge {
    /// Idle time before the first nudge (default 120000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nudge_after_ms: Option<u64>,
    /// Further idle time after the last nudge before force-release (default 120000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after_ms: Option<u64>,
    /// Nudges before escalation (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nudges: Option<u32>,
}

/// Ways agents may ask a person for help.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HumanAssistance {
    /// Ask on Slack: `true` with the defaults, or the channel and who to mention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<BoolOr<SlackAssistance>>,
}

/// Asking for help on Slack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackAssistance {
    /// The channel questions are posted in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// How long to wait for an answer, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Who is mentioned in each question (`@oncall`, user ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// Slack users whose replies are not taken as answers (bots).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_user_ids: Vec<String>,
}

/// Recording the run's trajectory: the decisions taken and reflections on them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trajectories {
    /// Whether to record at all (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Record retry, skip and fail decisions as they are taken (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_decisions: Option<bool>,
    /// Reflect when a barrier resolves (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflect_on_barriers: Option<bool>,
    /// Reflect when parallel branches of the workflow meet (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reflect_on_converge: Option<bool>,
}

/// The swarm patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum Pattern {
    Dag,
    FanOut,
    Pipeline,
    HubSpoke,
    Consensus,
    Mesh,
    Handoff,
    Cascade,
    Debate,
    Hierarchical,
    MapReduce,
    ScatterGather,
    Supervisor,
    Reflection,
    Verifier,
    RedTeam,
    Auction,
    Escalation,
    Saga,
    CircuitBreaker,
    Blackboard,
    Swarm,
    Competitive,
    ReviewLoop,
}

impl Pattern {
    /// The name as written in relay.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Dag => "dag",
            Pattern::FanOut => "fan-out",
            Pattern::Pipeline => "pipeline",
            Pattern::HubSpoke => "hub-spoke",
            Pattern::Consensus => "consensus",
            Pattern::Mesh => "mesh",
            Pattern::Handoff => "handoff",
            Pattern::Cascade => "cascade",
            Pattern::Debate => "debate",
            Pattern::Hierarchical => "hierarchical",
            Pattern::MapReduce => "map-reduce",
            Pattern::ScatterGather => "scatter-gather",
            Pattern::Supervisor => "supervisor",
            Pattern::Reflection => "reflection",
            Pattern::Verifier => "verifier",
            Pattern::RedTeam => "red-team",
            Pattern::Auction => "auction",
            Pattern::Escalation => "escalation",
            Pattern::Saga => "saga",
            Pattern::CircuitBreaker => "circuit-breaker",
            Pattern::Blackboard => "blackboard",
            Pattern::Swarm => "swarm",
            Pattern::Competitive => "competitive",
            Pattern::ReviewLoop => "review-loop",
        }
    }
}

impl IdleNudge {
    /// Idle time before the first nudge (default 120 s).
    pub fn nudge_after(&self) -> Duration {
        self.nudge_after_ms.map(ms).unwrap_or(DEFAULT_NUDGE_AFTER)
    }

    /// Further idle time after the last nudge before force-release (default 120 s).
    pub fn escalate_after(&self) -> Duration {
        self.escalate_after_ms
            .map(ms)
            .unwrap_or(DEFAULT_ESCALATE_AFTER)
    }

    /// Nudges before escalation (default 1).
    pub fn max_nudges(&self) -> u32 {
        self.max_nudges.unwrap_or(DEFAULT_MAX_NUDGES)
    }
}

impl Swarm {
    /// Most steps running at once; `None` is unlimited. (`maxConcurrency: 0` is a
    /// validation error, never read as a limit.)
    pub fn concurrency_limit(&self) -> Option<usize> {
        self.max_concurrency
            .filter(|&m| m > 0)
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX))
    }

    /// Bound on the whole run, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(ms)
    }

    /// How long to look for evidence of completion after a silent clean exit (default
    /// 5 s); `None` when turned off with 0.
    pub fn completion_grace_period(&self) -> Option<Duration> {
        match self.completion_grace_period_ms {
            Some(0) => None,
            Some(v) => Some(ms(v)),
            None => Some(DEFAULT_COMPLETION_GRACE),
        }
    }
}

impl HumanAssistance {
    /// Whether asking on Slack is on.
    pub fn slack_enabled(&self) -> bool {
        self.slack.as_ref().is_some_and(|s| !s.is_off())
    }
}
