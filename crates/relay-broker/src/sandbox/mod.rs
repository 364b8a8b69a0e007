//! Agent permissions enforced by the kernel (Landlock), on the agent process and
//! everything it starts. The engine puts a [`Sandbox`] (plain data: the rules as declared,
//! globs unresolved) into a process or session spec; on the machine that runs the agent,
//! just before the spawn, [`prepare`] probes the kernel, resolves the globs and dotfiles
//! against the files there, and builds the Landlock ruleset; the child restricts itself
//! with it between fork and exec (`process.rs`) or is forked from a thread that did
//! (`session/pty.rs`, whose spawn owns its own `pre_exec`). The coordinator itself is never
//! restricted.
//!
//! - `plan`: a workflow's effective permissions turned into a [`Sandbox`], with the rules
//!   Landlock cannot express and how each rule is enforced, in words.
//! - `probe`: which Landlock ABI the kernel offers (`AGENT_RELAY_LANDLOCK_ABI` caps it,
//!   to simulate an older kernel).
//! - `resolve`: globs, dotfiles, CLI state directories and programs turned into path
//!   intents (most specific wins) and additive grants.
//! - `compile`: intents turned into Landlock's union-only rules, splitting directories
//!   that hold something with fewer rights.
//! - `apply`: the ruleset built before fork and the async-signal-safe restriction.

mod apply;
mod compile;
pub mod plan;
pub mod probe;
mod resolve;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use apply::Prepared;
pub(crate) use apply::{confine, spawn_confined};

/// What an agent (or a deterministic step) may touch, as declared: plain data that may
/// cross machines. Globs are resolved where the agent runs, when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    /// Whose rules these are (`agent reviewer`, `step build`), for messages.
    pub owner: String,
    /// File rules; `None` leaves files unrestricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FileRules>,
    /// Programs that may be executed (names looked up on PATH, or paths); `None` is any.
    /// The agent's own program, its interpreter and `agent-relay` are always allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// TCP ports that may be connected to; `None` is any connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_connect: Option<Vec<u16>>,
    /// Paths that stay writable whatever the file rules say: the CLI's own state
    /// directories (`~/` is the home directory of the machine that runs it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writable: Vec<String>,
    /// Paths that stay readable whatever the file rules say (the step's own directory in
    /// the run directory, where a long task is handed over).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readable: Vec<String>,
    /// Start the agent even when the kernel cannot enforce every rule (what it can is
    /// still enforced).
    #[serde(default)]
    pub allow_unenforced: bool,
}

/// What an agent may do with the project's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectAccess {
    /// Nothing but what the globs grant (`restricted`).
    None,
    /// Read (`readonly`).
    Read,
    /// Read and write (`readwrite`, `full`).
    Write,
}

/// File rules, relative to the agent's working directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRules {
    /// The project: the agent's working directory; relative globs start here.
    pub root: PathBuf,
    /// Access to the project as a whole.
    pub project: ProjectAccess,
    /// Globs that may be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<String>,
    /// Globs that may be written (and read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write: Vec<String>,
    /// Globs that may be neither read nor written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Further directories with the project's access (`additionalPaths`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
    /// Whether `.agentignore` and `.agentreadonly` in the project apply.
    pub dotfiles: bool,
    /// The agent whose `.NAME.agentignore` / `.NAME.agentreadonly` also apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// Why an agent cannot be started with its rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SandboxError {
    /// The kernel cannot enforce a rule, and unenforced rules are not allowed.
    #[error(
        "{owner}: `{rule}` cannot be enforced: {why} (pass --allow-unenforced to start it anyway with what can be enforced)"
    )]
    Unenforceable {
        /// Whose rule.
        owner: String,
        /// The rule.
        rule: String,
        /// Why.
        why: String,
    },
    /// The rules could not be resolved or built.
    #[error("{owner}: cannot set up its permissions: {why}")]
    Setup {
        /// Whose rules.
        owner: String,
        /// What failed.
        why: String,
    },
}

impl Sandbox {
    /// The rules in words, one line each, as recorded in the attempt's events.
    pub fn describe(&self) -> Vec<String> {
        plan::describe(self)
    }
}

/// Everything the kernel needs to restrict the child, built on this machine now.
/// `program` is the resolved program the child will execute; `env` its extra environment.
/// `Ok(None)` when nothing needs restricting (or nothing can be, and that is allowed).
pub fn prepare(
    sandbox: &Sandbox,
    program: &std::path::Path,
    env: &[(String, String)],
) -> Result<Option<Prepared>, SandboxError> {
    let abi = probe::abi();
    let missing = plan::missing_features(sandbox, abi);
    if let Some((rule, why)) = missing.first()
        && !sandbox.allow_unenforced
    {
        return Err(SandboxError::Unenforceable {
            owner: sandbox.owner.clone(),
            rule: rule.clone(),
            why: why.clone(),
        });
    }
    if abi == 0 {
        return Ok(None);
    }
    let setup = |why: String| SandboxError::Setup {
        owner: sandbox.owner.clone(),
        why,
    };
    // Made before the rules are resolved, so that it is granted like any temp file.
    let tmp = sandbox
        .files
        .as_ref()
        .map(|_| apply::PrivateTmp::create())
        .transpose()
        .map_err(|e| setup(format!("cannot make its temp directory: {e}")))?;
    let resolved = resolve::resolve(sandbox, program, env, abi).map_err(setup)?;
    if resolved.is_empty() {
        return Ok(None);
    }
    let rules = compile::compile(&resolved.intents).map_err(setup)?;
    apply::build(&resolved, &rules, abi, tmp)
        .map(Some)
        .map_err(setup)
}
