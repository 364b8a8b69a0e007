//! The pattern engine: plans a workflow's steps, drives the plan with a sans-I/O run
//! state under a real concurrency limit, runs each attempt through the broker's
//! `Launcher`, verifies results, retries, applies the failure policy, and records every
//! event in the run directory, from which a stopped run can be resumed.
//!
//! Modules, leaves first: `outcome` (how things ended), `events`, `plan` (nodes and
//! gates), `scheduler`, `patterns` (plans and hooks), `job` (a node resolved, pure),
//! `snapshot` (state folded from a log), `store`, `lock`, `messaging`, `exec` (one
//! attempt), `run` (state machine and driver), `runs` (runs on disk).

pub mod capabilities;
mod clock;
pub mod enforcement;
pub mod events;
mod exec;
pub mod job;
mod live_steps;
pub mod lock;
pub mod markers;
mod messaging;
pub mod outcome;
pub mod patterns;
pub mod plan;
pub mod poll;
pub mod prices;
pub mod run;
pub mod runs;
pub mod scheduler;
mod settings;
pub mod snapshot;
pub mod store;
pub mod trajectory;
pub mod watch;
pub mod worktrees;

pub use clock::{now_rfc3339, rfc3339};
pub use exec::EXIT_INSTRUCTION;
pub use exec::verify;
pub use outcome::{RunStatus, RunSummary, StepOutcome, StepStatus, StepSummary};
pub use run::{Checked, EngineError, ResumeFrom, RunRequest, new_run_id, run};
pub use settings::Settings;
