//! The pattern engine: plans a workflow's steps, schedules them on a ready queue under a
//! real concurrency limit, runs each through the broker's `Launcher`, verifies results,
//! retries, applies the failure policy, and records every event in the run directory,
//! from which a stopped run can be resumed.

pub mod capabilities;
mod clock;
mod driver;
pub mod events;
mod exec;
pub mod lock;
mod messaging;
pub mod patterns;
pub mod plan;
pub mod replay;
mod run;
pub mod runs;
pub mod scheduler;
mod settings;
pub mod store;
pub mod verify;

pub use clock::{now_rfc3339, rfc3339};
pub use exec::EXIT_INSTRUCTION;
pub use run::{
    EngineError, ResumeFrom, RunRequest, RunSummary, StepStatus, StepSummary, new_run_id, run,
};
pub use settings::Settings;
