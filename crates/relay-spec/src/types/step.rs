//! One step of a workflow, of any type: an agent's task, a shell command, a git
//! worktree, a wait for an event, a call to an integration, or a use of a custom step.
//! How a step is read from YAML is `step_de.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

use super::Scalar;
use super::agent::Agent;
use super::control::{Approval, Items, Loop, SkipIf};
use super::coordination::ErrorHandling;
use super::defaults::*;
use super::either::BoolOr;
use super::swarm::HumanAssistance;
use super::verification::Verification;

/// What kind of work a step is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum StepType {
    /// Give a task to an agent (the default).
    #[default]
    Agent,
    /// Run a shell command; its stdout is the step output.
    Deterministic,
    /// Create or check out a git worktree for the steps after it.
    Worktree,
    /// Wait for an event (a file appearing or changing, a ticket, a message).
    #[serde(rename = "waitFor")]
    WaitFor,
    /// Call an action of an external integration (open a pull request, post a message).
    Integration,
}

impl StepType {
    /// Every step type.
    pub const ALL: [StepType; 5] = [
        StepType::Agent,
        StepType::Deterministic,
        StepType::Worktree,
        StepType::WaitFor,
        StepType::Integration,
    ];

    /// The name as written in relay.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Agent => "agent",
            StepType::Deterministic => "deterministic",
            StepType::Worktree => "worktree",
            StepType::WaitFor => "waitFor",
            StepType::Integration => "integration",
        }
    }
}

/// One step of a workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// Unique step name.
    pub name: String,
    /// `agent` (default), `deterministic`, `worktree`, `waitFor` or `integration`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub step_type: Option<StepType>,
    /// A custom step from `.relay/steps.yaml` this step is an instance of; its parameters
    /// are given as further keys of the step.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// The parameters given to the custom step named in `use`.
    #[serde(flatten)]
    #[schemars(skip)]
    pub use_args: BTreeMap<String, Scalar>,
    /// Whether `use` has been replaced by the custom step's definition.
    #[serde(skip)]
    #[schemars(skip)]
    pub expanded: bool,
    /// The agent that does this step (agent steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The task given to the agent; `{{var}}` and `{{steps.X.output}}` are filled in.
    /// Defaults to the agent's `task`.
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
    /// Steps (or barriers) that must complete first.
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
    /// Working directory by the name of a `paths` entry (instead of `cwd`); defaults to
    /// the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Extension (map-reduce): run this step once per item, `{{item}}` in its task. A list,
    /// or text (a variable or step output) split into lines or read as a JSON array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Items>,
    /// Most rounds of work and review before giving up (reflection, review-loop,
    /// red-team, verifier; default 3).
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
    /// Whether the agent may ask a person for help during this step: `false` turns off
    /// the swarm's `humanAssistance`, a mapping sets it for this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_assistance: Option<BoolOr<HumanAssistance>>,
    /// The worktree's branch (worktree steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Where a new branch starts (worktree steps; default HEAD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    /// Whether to create the branch when it does not exist (worktree steps; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_branch: Option<bool>,
    /// Where the worktree goes (worktree steps; default `.worktrees/<step name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What to wait for (waitFor steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<WaitFor>,
    /// The integration to call: `github`, `linear`, `slack`, ... (integration steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    /// The integration's action, e.g. `create-pr` (integration steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The action's parameters; `{{...}}` is filled in (integration steps).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Scalar>,
    /// Extension: run the step only when this condition holds (see the README's
    /// conditions); otherwise it is skipped and the steps after it go on.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub if_: Option<String>,
    /// Extension: skip the step when every step it depends on completed
    /// (`previous_success`) or when a command exits 0 (`sh: COMMAND`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_if: Option<SkipIf>,
    /// Extension: a failure of this step is reported but fails neither the run nor the
    /// steps after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_on_failure: Option<bool>,
    /// Extension: the step's output is also the variable `{{NAME}}` for later steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_var: Option<String>,
    /// Extension: run the step repeatedly, counted or once per item.
    #[serde(default, rename = "loop", skip_serializing_if = "Option::is_none")]
    pub loop_: Option<Loop>,
    /// Extension: repeat the step until its output contains this text (or matches
    /// `regex:...`), at most `maxIterations` times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Extension (loops): stop repeating when an iteration `success`es, on `failure`, or
    /// when a condition over `output`, `status` and `iteration` holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_if: Option<String>,
    /// Extension: the run waits for a person's approval before starting the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Extension (deterministic steps): what the command may read, write, reach and run,
    /// written as an agent's `permissions` are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<super::either::NameOr<super::permissions::AgentPermissions>>,
    /// Extension: the step is another workflow file (relative to this one), run inside
    /// this run; its `params` fill that file's `{{...}}` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// Extension: which workflow of that file (default: its first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    /// Extension (agent steps): `new` (default) starts a conversation of its own;
    /// `resume` continues the agent's latest earlier conversation; `inherit` does so
    /// across into a sub-workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<super::control::SessionMode>,
    /// Extension: the step is a group of nested steps (with `dependsOn` among
    /// themselves), run together, once or once per iteration of the group's loop. Their
    /// names become `GROUP/NAME` when the file is loaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Extension (groups): the nested step whose output is the group's output, what
    /// `until` and `breakIf` judge (default: the last nested step no other depends on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_from: Option<String>,
    /// The group this step was nested in, once loaded (its name).
    #[serde(skip)]
    #[schemars(skip)]
    pub group: Option<String>,
    /// The pattern of the sub-workflow this step came from, when that file sets one
    /// (`swarm.pattern`); the step runs under it instead of the including workflow's.
    #[serde(skip)]
    #[schemars(skip)]
    pub run_as: Option<super::swarm::Pattern>,
}

/// What a waitFor step waits for: events from a provider, about one or more paths.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitFor {
    /// Where the events come from (`relayfile`, `github`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The path or glob the event must be about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Several paths or globs, any of which will do (instead of `path`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// The kind of event (`created`, `modified`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Several kinds of event, any of which will do (instead of `event`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Bound on the wait, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Conditions an event's fields must meet, passed to the provider as written.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<serde_json::Value>,
}

impl WaitFor {
    /// `path` and `paths` together.
    pub fn all_paths(&self) -> Vec<&str> {
        self.path
            .iter()
            .chain(&self.paths)
            .map(String::as_str)
            .collect()
    }

    /// `event` and `events` together.
    pub fn all_events(&self) -> Vec<&str> {
        self.event
            .iter()
            .chain(&self.events)
            .map(String::as_str)
            .collect()
    }

    /// Bound on the wait, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(ms)
    }
}

impl Step {
    /// The step's kind, defaulting to an agent step.
    pub fn kind(&self) -> StepType {
        self.step_type.unwrap_or_default()
    }

    /// Retries after a failed attempt: the step's, else its agent's
    /// `constraints.retries`, else `errorHandling.maxRetries`, else none.
    pub fn retries_with(&self, agent: Option<&Agent>, eh: Option<&ErrorHandling>) -> u32 {
        self.retries
            .or(agent.and_then(|a| a.constraints.as_ref()?.retries))
            .unwrap_or_else(|| eh.map(ErrorHandling::max_retries).unwrap_or(0))
    }

    /// Bound on each attempt: the step's `timeoutMs`, else its agent's
    /// `constraints.timeoutMs`; `None` is unbounded.
    pub fn timeout_with(&self, agent: Option<&Agent>) -> Option<Duration> {
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

    /// Where a worktree step's worktree goes: `path`, else `.worktrees/<step name>`.
    pub fn worktree_path(&self) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| format!("{DEFAULT_WORKTREE_DIR}/{}", self.name))
    }

    /// Where a worktree step's new branch starts (default HEAD).
    pub fn base_branch(&self) -> &str {
        self.base_branch.as_deref().unwrap_or(DEFAULT_BASE_BRANCH)
    }

    /// Whether a worktree step creates its branch when missing (default true).
    pub fn creates_branch(&self) -> bool {
        self.create_branch.unwrap_or(true)
    }

    /// Whether this step is a group of nested steps.
    pub fn is_group(&self) -> bool {
        !self.steps.is_empty()
    }

    /// Whether this step turns human assistance off (`humanAssistance: false`).
    pub fn human_assistance_off(&self) -> bool {
        self.human_assistance.as_ref().is_some_and(BoolOr::is_off)
    }
}
