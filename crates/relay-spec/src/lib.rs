//! The relay.yaml workflow format: typed definitions, loading with file:line:column
//! errors, validation, `{{...}}` interpolation and the JSON Schema.
//!
//! Pure: no async runtime and no I/O beyond reading the workflow and vars files.

mod builder;
pub mod checklist;
pub mod condition;
pub mod custom_steps;
mod diagnostic;
mod files;
pub mod graph;
pub mod groups;
pub mod inventory;
pub mod limits;
pub mod load;
mod load_error;
pub mod pattern;
pub mod permissions;
mod rename;
mod schema;
mod source_map;
pub mod subworkflows;
pub mod suggest;
pub mod template;
pub mod templates;
mod types;
pub mod validate;
pub mod vars;

pub use builder::{AgentBuilder, FileBuilder, StepBuilder, ToYamlError};
pub use diagnostic::printable;
pub use files::{load_file, load_source};
pub use load::{LoadError, Loaded, Pos, parse};
pub use schema::{custom_steps_schema, json_schema};
pub use types::*;
pub use validate::{Diagnostic, Report, Severity, validate};
