//! The catalogue of workflow templates, picked by name. Six are compiled into the binary;
//! users and projects add their own as `NAME.yaml` files. A name is looked up in this order, first match wins:
//!
//! 1. the project's `.agent-relay/templates/` (relative to the working directory),
//! 2. the user's template directory: `$AGENT_RELAY_CONFIG_DIR/templates`, else
//!    `$XDG_CONFIG_HOME/agent-relay/templates`, else `~/.config/agent-relay/templates`,
//! 3. the built-ins.
//!
//! A file found earlier hides a template of the same name found later. Installing is
//! stricter: it refuses to create a user template that would hide a built-in unless forced,
//! so a built-in is never replaced by accident.
//!
//! The YAML of the built-ins lives in this crate's `templates/` folder so the crate
//! packages on its own; the repository's top-level `templates/` links to those files.

mod builtin;
mod error;
mod names;
mod registry;

pub use builtin::{BUILTINS, Builtin, builtin};
pub use error::{Rejected, TemplateError};
pub use names::{is_template_name, project_dir, user_dir};
pub use registry::{Entry, Installed, Registry, Source, Summary};
pub use relay_spec::templates::{Variable, variables};
