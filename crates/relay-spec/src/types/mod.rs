//! The typed shape of a relay.yaml file. Field names follow the file (camelCase, and
//! `permission_profiles` as the format spells it); every struct rejects unknown fields so
//! a typo is reported, with the closest known field, instead of silently ignored.
//!
//! | file | types |
//! |---|---|
//! | `mod.rs` | the file itself, declared variables, scalars |
//! | `swarm.rs` | swarm settings, patterns, idle nudging, human assistance, trajectories |
//! | `agent.rs` | agents, CLIs, constraints |
//! | `permissions.rs` | permission profiles and an agent's permissions |
//! | `workflow.rs` | workflows, preflight checks |
//! | `step.rs`, `step_de.rs` | steps of every type, and how a step is read |
//! | `control.rs` | loops, conditions, named outputs and approval gates on a step |
//! | `verification.rs` | the checks a step's result must pass |
//! | `coordination.rs` | failure policies and error handling, barriers, consensus, shared state |
//! | `integrations.rs` | named paths, integrations, subscriptions |
//! | `either.rs` | fields written as a boolean or a name, or as a mapping |
//! | `defaults.rs` | every default of the format |

mod agent;
mod control;
mod coordination;
mod defaults;
mod either;
mod integrations;
mod permissions;
mod step;
mod step_de;
mod swarm;
mod verification;
mod workflow;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use agent::{Agent, Cli, Constraints, Placement};
pub use control::{
    Approval, ApprovalSettings, Items, Loop, OnTimeout, SessionMode, SkipIf, SkipRule,
};
pub use coordination::{
    Barrier, ClaimsMode, ConsensusStrategy, Coordination, ErrorHandling, OnError, OnExhaustion,
    StateBackend, StateConfig,
};
pub use defaults::*;
pub use either::{BoolOr, NameOr};
pub use integrations::{Integrations, PathDef, Subscription};
pub use permissions::{Access, AgentPermissions, FilePermissions, NetworkRules, PermissionProfile};
pub use step::{Step, StepType, WaitFor};
pub use swarm::{
    HumanAssistance, IdleNudge, Pattern, SlackAssistance, Swarm, Trajectories, WorktreeMode,
};
pub use verification::{ChecklistItem, CustomCheck, Verification, VerificationType};
pub use workflow::{OutputCondition, PreflightCheck, WorkflowDef};

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
    /// Directories outside the working directory that agents and steps refer to by name
    /// (`workdir`), checked before a run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathDef>,
    /// Reusable permission profiles, by name, for agents' `permissions`.
    #[serde(
        default,
        rename = "permission_profiles",
        alias = "permissionProfiles",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub permission_profiles: BTreeMap<String, PermissionProfile>,
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
    /// Recording of the run's trajectory (decisions and reflections): `false` turns it
    /// off, a mapping sets it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trajectories: Option<BoolOr<Trajectories>>,
    /// External services: the relayfile file system and event subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrations: Option<Integrations>,
    /// Extension: the variables the workflows use, with descriptions and defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, VariableDef>,
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
    pub fn vars_with_defaults(&self, given: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut vars: BTreeMap<String, String> = self
            .variables
            .iter()
            .filter_map(|(k, v)| v.default.as_ref().map(|d| (k.clone(), d.as_text())))
            .collect();
        vars.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars
    }

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

    /// The entry of `paths` called `name`.
    pub fn path(&self, name: &str) -> Option<&PathDef> {
        self.paths.iter().find(|p| p.name == name)
    }

    /// The task an agent step of `step` is given: its own `task`, else its agent's.
    pub fn task_of<'a>(&'a self, step: &'a Step) -> Option<&'a str> {
        step.task.as_deref().or_else(|| {
            step.agent
                .as_deref()
                .and_then(|a| self.agent(a))
                .and_then(|a| a.task.as_deref())
        })
    }

    /// The directory a step runs in, as written: the step's `cwd`, else the path its
    /// `workdir` names, else its agent's `cwd`, else the path its agent's `workdir` names.
    /// `None` is the run's working directory. Variables are not filled in.
    pub fn cwd_of<'a>(&'a self, step: &'a Step) -> Option<&'a str> {
        let via = |w: &Option<String>| {
            w.as_deref()
                .and_then(|n| self.path(n))
                .map(|p| p.path.as_str())
        };
        let agent = step.agent.as_deref().and_then(|a| self.agent(a));
        step.cwd
            .as_deref()
            .or_else(|| via(&step.workdir))
            .or_else(|| agent.and_then(|a| a.cwd.as_deref()))
            .or_else(|| agent.and_then(|a| via(&a.workdir)))
    }

    /// Whether `agent` works in its own git worktree: its `worktree`, else
    /// `swarm.worktrees: per-agent`.
    pub fn has_worktree(&self, agent: &Agent) -> bool {
        agent.worktree.unwrap_or_else(|| {
            self.swarm.as_ref().and_then(|s| s.worktrees) == Some(WorktreeMode::PerAgent)
        })
    }

    /// The agents that work in worktrees of their own.
    pub fn worktree_agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.iter().filter(|a| self.has_worktree(a))
    }

    /// Whether trajectory recording is on (the default) or turned off.
    pub fn trajectories_enabled(&self) -> bool {
        match &self.trajectories {
            None | Some(BoolOr::Bool(true)) => true,
            Some(BoolOr::Bool(false)) => false,
            Some(BoolOr::Value(t)) => t.enabled.unwrap_or(true),
        }
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

#[cfg(test)]
mod tests;
