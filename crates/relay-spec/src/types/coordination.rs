//! Run-wide failure handling, barriers and consensus, and shared state.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults::*;

/// Failure policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Start nothing new; steps not yet run are skipped.
    Fail,
    /// Same as `fail`.
    FailFast,
    /// Skip the failed step's dependents; everything independent still runs.
    Skip,
    /// Same as `skip`.
    Continue,
    /// Retry the step, then behave as `fail`.
    Retry,
}

impl OnError {
    /// Whether a failure stops the whole run (as opposed to only its dependents).
    pub fn halts_run(self) -> bool {
        matches!(self, OnError::Fail | OnError::FailFast | OnError::Retry)
    }
}

/// Workflow-wide failure defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorHandling {
    /// Default `onError` for workflows that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<OnError>,
    /// Retries when neither the step nor its agent sets any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Pause between attempts, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_ms: Option<u64>,
    /// Channel told about failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_channel: Option<String>,
    /// The agent asked to repair the code or workflow when a deterministic step fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_agent: Option<String>,
    /// Repair attempts before the failure stands (0 turns repair off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_retries: Option<u32>,
    /// What a step that has used up its retries and repairs does: `fail` (default), or
    /// `needs-human` (stop and wait for a person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exhaustion: Option<OnExhaustion>,
    /// Extension: globs of files no step may change; a repair or retry that touches one
    /// fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protect: Vec<String>,
}

/// What happens once a step has no retries or repairs left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnExhaustion {
    /// The step fails.
    #[default]
    Fail,
    /// The run stops and waits for a person to decide.
    NeedsHuman,
}

/// Barriers and consensus.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Coordination {
    /// Named synchronisation points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub barriers: Vec<Barrier>,
    /// How votes are decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus_strategy: Option<ConsensusStrategy>,
    /// Share of votes a quorum needs (0..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voting_threshold: Option<f64>,
    /// Extension: what a step that changed a file another agent held a claim on means:
    /// `report` (default: a `claim:conflict` event) or `enforce` (the step also fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsMode>,
}

/// What file claims enforce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClaimsMode {
    /// Conflicts are recorded as events.
    #[default]
    Report,
    /// Conflicts are recorded, and a step with a certain one fails.
    Enforce,
}

/// A synchronisation point over a set of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Barrier {
    /// Barrier name; steps may depend on it.
    pub name: String,
    /// Steps that must all complete.
    #[serde(default)]
    pub wait_for: Vec<String>,
    /// Bound on the wait, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Consensus decision rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum ConsensusStrategy {
    Majority,
    Unanimous,
    Quorum,
}

/// Shared-state settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateConfig {
    /// Where state lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<StateBackend>,
    /// How long entries live, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Key prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Extension: where the backend is: `redis://HOST:PORT/DB` for `redis` (default
    /// `redis://127.0.0.1:6379/`), a file path (or `sqlite:PATH`) for `database`
    /// (default `.agent-relay/state.sqlite`; relative to the working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// State backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum StateBackend {
    Memory,
    Redis,
    Database,
}

impl ErrorHandling {
    /// Retries when neither the step nor its agent sets any (default 0).
    pub fn max_retries(&self) -> u32 {
        self.max_retries.unwrap_or(0)
    }

    /// Pause between attempts (default none).
    pub fn retry_delay(&self) -> Duration {
        self.retry_delay_ms.map(ms).unwrap_or_default()
    }

    /// Repair attempts (default: the retry budget when a repair agent is set, else 0).
    pub fn repair_attempts(&self) -> u32 {
        match (&self.repair_agent, self.repair_retries) {
            (None, _) => 0,
            (Some(_), Some(r)) => r,
            (Some(_), None) => self.max_retries(),
        }
    }

    /// What a step with nothing left to try does (default `fail`).
    pub fn on_exhaustion(&self) -> OnExhaustion {
        self.on_exhaustion.unwrap_or_default()
    }
}

impl Coordination {
    /// What file claims enforce (default `report`).
    pub fn claims(&self) -> ClaimsMode {
        self.claims.unwrap_or_default()
    }

    /// How votes are decided (default majority).
    pub fn consensus_strategy(&self) -> ConsensusStrategy {
        self.consensus_strategy
            .unwrap_or(ConsensusStrategy::Majority)
    }

    /// Share of votes a quorum needs (default 0.5).
    pub fn voting_threshold(&self) -> f64 {
        self.voting_threshold.unwrap_or(DEFAULT_VOTING_THRESHOLD)
    }
}

impl Barrier {
    /// Bound on the wait, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(ms)
    }
}
