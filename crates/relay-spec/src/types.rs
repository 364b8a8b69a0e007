//! The typed shape of a relay.yaml file. Field names follow the file (camelCase); every
//! struct rejects unknown fields so a typo is reported instead of silently ignored.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole relay.yaml file: agents, one or more workflows, and run-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RelayFile {
    /// Format version, e.g. "1.0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Scalar>,
    /// Name of this file's project or swarm.
    pub name: String,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How agents are coordinated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<Swarm>,
    /// The agents steps can be given to.
    #[serde(default)]
    pub agents: Vec<Agent>,
    /// Named workflows; the first one runs unless `--workflow` picks another.
    #[serde(default)]
    pub workflows: Vec<WorkflowDef>,
    /// Run-wide defaults for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_handling: Option<ErrorHandling>,
    /// Barriers and consensus settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordination: Option<Coordination>,
    /// Shared state agents may use during a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateConfig>,
    /// Extension: the variables the workflows use, with descriptions and defaults.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub variables: std::collections::BTreeMap<String, VariableDef>,
}

/// Extension: a declared variable. Undeclared variables are still allowed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariableDef {
    /// What the variable is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The value used when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Scalar>,
}

impl RelayFile {
    /// The declared defaults, overridden by `given`.
    pub fn vars_with_defaults(
        &self,
        given: &std::collections::BTreeMap<String, String>,
    ) -> std::collections::BTreeMap<String, String> {
        let mut vars: std::collections::BTreeMap<String, String> = self
            .variables
            .iter()
            .filter_map(|(k, v)| v.default.as_ref().map(|d| (k.clone(), d.as_text())))
            .collect();
        vars.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars
    }
}

/// A YAML scalar kept as text, so `version: 1.0` and `value: 0` read the same as quoted ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The scalar as the text a user would have written.
    pub fn as_text(&self) -> String {
        match self {
            Scalar::Text(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Swarm-wide coordination settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Swarm {
    /// The coordination pattern; chosen from the agents' roles when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Pattern>,
    /// Most steps running at once (unlimited when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Bound on the whole run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The channel every agent joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// What to do about interactive agents that go quiet without `/exit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_nudge: Option<IdleNudge>,
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

/// The coding-agent CLIs the broker knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Cli {
    Claude,
    Codex,
    Gemini,
    Aider,
    Goose,
    Opencode,
    Droid,
}

impl Cli {
    /// Every CLI, in the order the docs list them.
    pub const ALL: [Cli; 7] = [
        Cli::Claude,
        Cli::Codex,
        Cli::Gemini,
        Cli::Aider,
        Cli::Goose,
        Cli::Opencode,
        Cli::Droid,
    ];

    /// The name as written in relay.yaml (and the executable's name).
    pub fn as_str(self) -> &'static str {
        match self {
            Cli::Claude => "claude",
            Cli::Codex => "codex",
            Cli::Gemini => "gemini",
            Cli::Aider => "aider",
            Cli::Goose => "goose",
            Cli::Opencode => "opencode",
            Cli::Droid => "droid",
        }
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
    /// Model to ask the CLI for (`constraints.model` wins when both are set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Limits for this agent's steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
    /// Full terminal session (default) or one-shot subprocess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    /// Working directory for this agent's steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Extra channels this agent joins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// A named preset of settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Extension (hierarchical): the agent this one reports to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports_to: Option<String>,
}

impl Agent {
    /// Whether the agent runs as a terminal session (the default).
    pub fn is_interactive(&self) -> bool {
        self.interactive.unwrap_or(true)
    }

    /// The model the CLI is asked for, if any.
    pub fn effective_model(&self) -> Option<&str> {
        self.constraints
            .as_ref()
            .and_then(|c| c.model.as_deref())
            .or(self.model.as_deref())
    }
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
    /// Seconds without output before the agent counts as idle (default 30; 0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_threshold_secs: Option<u64>,
}

/// One named workflow: a set of steps and its failure policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowDef {
    /// Unique workflow name.
    pub name: String,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What a failed step does to the rest of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// The steps (at most 100 000).
    #[serde(default, deserialize_with = "bounded_steps")]
    pub steps: Vec<Step>,
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
                    let pos = crate::load::Pos::from_location(&step.referenced)
                        .unwrap_or(crate::load::Pos { line: 1, column: 1 });
                    return Err(serde::de::Error::custom(crate::load::located(
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

/// What kind of work a step is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StepType {
    /// Give a task to an agent (the default).
    #[default]
    Agent,
    /// Run a shell command; its stdout is the step output.
    Deterministic,
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// Unique step name.
    pub name: String,
    /// `agent` (default) or `deterministic`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub step_type: Option<StepType>,
    /// The agent that does this step (agent steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The task given to the agent; `{{var}}` and `{{steps.X.output}}` are filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Shell command (deterministic steps), run by `sh -c` in the step's cwd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Whether stdout becomes the step output (deterministic steps; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_output: Option<bool>,
    /// Whether a non-zero exit fails the step (deterministic steps; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on_error: Option<bool>,
    /// Steps that must complete first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// The check that decides whether the step succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Retries after a failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Bound on each attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Working directory (relative to the run's working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Extension (map-reduce): run this step once per item, `{{item}}` in its task. A list,
    /// or text (a variable or step output) split into lines or read as a JSON array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Items>,
    /// Extension (reflection, review-loop, red-team, verifier): most producer/reviewer
    /// rounds before giving up (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    /// Extension (consensus, debate, competitive, auction): the agents that vote, debate,
    /// compete or bid (default: every agent but the step's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<String>,
    /// Extension (debate): rounds of positions (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    /// Extension (saga): what undoes this step when a later step fails: a task for the
    /// step's agent, or a shell command for a deterministic step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<String>,
    /// Extension (cascade): the phase this step belongs to; a phase starts when every step
    /// of the phase before it has completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<u32>,
    /// Extension (escalation, circuit-breaker): agents to fall back to, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalate_to: Vec<String>,
}

/// Extension: the items a map step runs over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Items {
    /// Literal items.
    List(Vec<Scalar>),
    /// Text with `{{...}}`, split into non-empty lines (or a JSON array of strings).
    Text(String),
}

impl Step {
    /// The step's kind, defaulting to an agent step.
    pub fn kind(&self) -> StepType {
        self.step_type.unwrap_or_default()
    }
}

/// The check a step's result must pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Verification {
    /// Which check.
    #[serde(rename = "type")]
    pub kind: VerificationType,
    /// Its argument: the text, the exit code, the path, or the shell command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Scalar>,
    /// What the check means, shown when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Bound on a `custom` check's command, in milliseconds (default 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
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
    /// The shell command `value` exits 0.
    Custom,
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

// Defaults of the format, as accessors, so every reader of a file applies the same ones.

/// Idle time before the first nudge when `nudgeAfterMs` is not set.
pub const DEFAULT_NUDGE_AFTER: std::time::Duration = std::time::Duration::from_millis(120_000);
/// Further idle time before force-release when `escalateAfterMs` is not set.
pub const DEFAULT_ESCALATE_AFTER: std::time::Duration = std::time::Duration::from_millis(120_000);
/// Nudges before escalation when `maxNudges` is not set.
pub const DEFAULT_MAX_NUDGES: u32 = 1;
/// Bound on a `custom` verification command when `timeoutMs` is not set.
pub const DEFAULT_VERIFICATION_TIMEOUT: std::time::Duration =
    std::time::Duration::from_millis(60_000);
/// Quiet time before an interactive agent counts as idle when `idleThresholdSecs` is not set.
pub const DEFAULT_IDLE_THRESHOLD: std::time::Duration = std::time::Duration::from_secs(30);
/// Producer/reviewer rounds when `maxIterations` is not set.
pub const DEFAULT_MAX_ITERATIONS: u32 = 3;
/// Debate rounds when `rounds` is not set.
pub const DEFAULT_DEBATE_ROUNDS: u32 = 2;
/// Share of votes a quorum needs when `votingThreshold` is not set.
pub const DEFAULT_VOTING_THRESHOLD: f64 = 0.5;

fn ms(v: u64) -> std::time::Duration {
    std::time::Duration::from_millis(v)
}

impl IdleNudge {
    /// Idle time before the first nudge (default 120 s).
    pub fn nudge_after(&self) -> std::time::Duration {
        self.nudge_after_ms.map(ms).unwrap_or(DEFAULT_NUDGE_AFTER)
    }

    /// Further idle time after the last nudge before force-release (default 120 s).
    pub fn escalate_after(&self) -> std::time::Duration {
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
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout_ms.map(ms)
    }
}

impl Verification {
    /// Bound on a `custom` check's command (default 60 s).
    pub fn timeout(&self) -> std::time::Duration {
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
}

impl ErrorHandling {
    /// Retries when neither the step nor its agent sets any (default 0).
    pub fn max_retries(&self) -> u32 {
        self.max_retries.unwrap_or(0)
    }

    /// Pause between attempts (default none).
    pub fn retry_delay(&self) -> std::time::Duration {
        self.retry_delay_ms.map(ms).unwrap_or_default()
    }
}

impl Constraints {
    /// Quiet time before the agent counts as idle: 30 s unless set; `0` disables it.
    pub fn idle_threshold(&self) -> Option<std::time::Duration> {
        match self.idle_threshold_secs {
            Some(0) => None,
            Some(s) => Some(std::time::Duration::from_secs(s)),
            None => Some(DEFAULT_IDLE_THRESHOLD),
        }
    }
}

impl Agent {
    /// Quiet time before the agent counts as idle (see [`Constraints::idle_threshold`]).
    pub fn idle_threshold(&self) -> Option<std::time::Duration> {
        match &self.constraints {
            Some(c) => c.idle_threshold(),
            None => Some(DEFAULT_IDLE_THRESHOLD),
        }
    }
}

impl Step {
    /// Retries after a failed attempt: the step's, else its agent's
    /// `constraints.retries`, else `errorHandling.maxRetries`, else none.
    pub fn retries_with(&self, agent: Option<&Agent>, eh: Option<&ErrorHandling>) -> u32 {
        self.retries
            .or(agent.and_then(|a| a.constraints.as_ref()?.retries))
            .unwrap_or_else(|| eh.map(ErrorHandling::max_retries).unwrap_or(0))
    }

    /// Bound on each attempt: the step's `timeoutMs`, else its agent's
    /// `constraints.timeoutMs`; `None` is unbounded.
    pub fn timeout_with(&self, agent: Option<&Agent>) -> Option<std::time::Duration> {
        self.timeout_ms
            .or(agent.and_then(|a| a.constraints.as_ref()?.timeout_ms))
            .map(ms)
    }

    /// Whether a non-zero exit fails a deterministic step (default true).
    pub fn fails_on_error(&self) -> bool {
        self.fail_on_error.unwrap_or(true)
    }

    /// Whether a deterministic step's stdout becomes its output (default true; agent
    /// steps always capture).
    pub fn captures_output(&self) -> bool {
        self.kind() == StepType::Agent || self.capture_output.unwrap_or(true)
    }

    /// Producer/reviewer rounds before giving up (default 3, at least 1).
    pub fn iteration_limit(&self) -> u32 {
        self.max_iterations.unwrap_or(DEFAULT_MAX_ITERATIONS).max(1)
    }

    /// Debate rounds (default 2, at least 1).
    pub fn debate_rounds(&self) -> u32 {
        self.rounds.unwrap_or(DEFAULT_DEBATE_ROUNDS).max(1)
    }
}

impl Coordination {
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
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout_ms.map(ms)
    }
}

impl RelayFile {
    /// What a failed step of `wf` does to the run: the workflow's `onError`, else
    /// `errorHandling.strategy`, else `fail`.
    pub fn on_error_for(&self, wf: &WorkflowDef) -> OnError {
        wf.on_error
            .or(self.error_handling.as_ref().and_then(|e| e.strategy))
            .unwrap_or(OnError::Fail)
    }

    /// The agent called `name`.
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod default_tests {
    use super::*;
    use std::time::Duration;

    fn parse(src: &str) -> RelayFile {
        crate::parse(src, "t.yaml").expect("parses").file
    }

    #[test]
    fn unset_fields_read_as_the_documented_defaults() {
        let f = parse(
            "name: t\nswarm: {idleNudge: {}}\nagents: [{name: a, cli: claude}]\nworkflows:\n  - name: w\n    steps:\n      - {name: s, agent: a, task: x, verification: {type: custom, value: 'true'}}\n",
        );
        let swarm = f.swarm.clone().expect("swarm");
        let nudge = swarm.idle_nudge.clone().expect("idleNudge");
        assert_eq!(nudge.nudge_after(), Duration::from_millis(120_000));
        assert_eq!(nudge.escalate_after(), Duration::from_millis(120_000));
        assert_eq!(nudge.max_nudges(), 1);
        assert_eq!(swarm.concurrency_limit(), None);
        assert_eq!(swarm.timeout(), None);
        let step = &f.workflows[0].steps[0];
        let v = step.verification.as_ref().expect("verification");
        assert_eq!(v.timeout(), Duration::from_millis(60_000));
        assert_eq!(v.expected_exit_code(), None);
        let eh = ErrorHandling::default();
        assert_eq!((eh.max_retries(), eh.retry_delay()), (0, Duration::ZERO));
        let agent = f.agent("a").expect("agent a");
        assert_eq!(agent.idle_threshold(), Some(Duration::from_secs(30)));
        assert_eq!(step.retries_with(Some(agent), None), 0);
        assert_eq!(step.timeout_with(Some(agent)), None);
        assert!(step.fails_on_error() && step.captures_output());
        assert_eq!((step.iteration_limit(), step.debate_rounds()), (3, 2));
        let c = Coordination::default();
        assert_eq!(c.consensus_strategy(), ConsensusStrategy::Majority);
        assert_eq!(c.voting_threshold(), 0.5);
        assert_eq!(f.on_error_for(&f.workflows[0]), OnError::Fail);
    }

    #[test]
    fn set_fields_win_and_fall_back_in_order() {
        let f = parse(
            "name: t\nswarm: {maxConcurrency: 3, timeoutMs: 9000, idleNudge: {nudgeAfterMs: 5, escalateAfterMs: 6, maxNudges: 2}}\nagents:\n  - {name: a, cli: claude, constraints: {retries: 4, timeoutMs: 700, idleThresholdSecs: 0}}\n  - {name: b, cli: claude, constraints: {idleThresholdSecs: 7}}\nworkflows:\n  - name: w\n    steps:\n      - {name: s, agent: a, task: x}\n      - {name: t, agent: a, task: x, retries: 1, timeoutMs: 50, maxIterations: 0, rounds: 5, verification: {type: exit_code, value: 3, timeoutMs: 10}}\n      - {name: d, type: deterministic, command: 'true', failOnError: false, captureOutput: false}\nerrorHandling: {strategy: continue, maxRetries: 9, retryDelayMs: 25}\ncoordination: {consensusStrategy: unanimous, votingThreshold: 0.75}\n",
        );
        let swarm = f.swarm.clone().expect("swarm");
        assert_eq!(swarm.concurrency_limit(), Some(3));
        assert_eq!(swarm.timeout(), Some(Duration::from_millis(9000)));
        let nudge = swarm.idle_nudge.expect("idleNudge");
        assert_eq!(
            (
                nudge.nudge_after(),
                nudge.escalate_after(),
                nudge.max_nudges()
            ),
            (Duration::from_millis(5), Duration::from_millis(6), 2)
        );
        let (a, b) = (f.agent("a").expect("a"), f.agent("b").expect("b"));
        assert_eq!(a.idle_threshold(), None, "0 disables idleness");
        assert_eq!(b.idle_threshold(), Some(Duration::from_secs(7)));
        let eh = f.error_handling.as_ref();
        let steps = &f.workflows[0].steps;
        // The agent's retries beat errorHandling's; the step's beat both.
        assert_eq!(steps[0].retries_with(Some(a), eh), 4);
        assert_eq!(steps[0].retries_with(Some(b), eh), 9);
        assert_eq!(steps[1].retries_with(Some(a), eh), 1);
        assert_eq!(
            steps[0].timeout_with(Some(a)),
            Some(Duration::from_millis(700))
        );
        assert_eq!(
            steps[1].timeout_with(Some(a)),
            Some(Duration::from_millis(50))
        );
        assert_eq!(
            (steps[1].iteration_limit(), steps[1].debate_rounds()),
            (1, 5)
        );
        let v = steps[1].verification.as_ref().expect("verification");
        assert_eq!(v.expected_exit_code(), Some(3));
        assert_eq!(v.timeout(), Duration::from_millis(10));
        assert!(!steps[2].fails_on_error() && !steps[2].captures_output());
        let eh = f.error_handling.clone().expect("errorHandling");
        assert_eq!(eh.retry_delay(), Duration::from_millis(25));
        assert_eq!(f.on_error_for(&f.workflows[0]), OnError::Continue);
        let c = f.coordination.clone().expect("coordination");
        assert_eq!(c.consensus_strategy(), ConsensusStrategy::Unanimous);
        assert_eq!(c.voting_threshold(), 0.75);
    }
}
