//! Where the workflow of `run` and `validate` comes from: a relay.yaml file, standard
//! input (`-`), or a script that builds one with the Python or JavaScript SDK
//! (`workflow.py`, `.js`, `.mjs`, `.ts`; run by [`crate::script`]).
//!
//! A workflow from standard input or from a script has no file of its own: what it takes
//! from other files (custom steps, checklist files, sub-workflows) is looked for from the
//! current directory, as `python3 workflow.py` running the same workflow through the SDK
//! (`agent-relay run -`) would.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use relay_spec::Loaded;
use relay_spec::limits::MAX_FILE_BYTES;
use serde::Deserialize;

use crate::diagnostics::load_error_lines;
use crate::error::{CliError, CliResult, Exit};

/// A workflow to check and run, with what its source asked for besides the file.
pub struct Source {
    /// The file, loaded.
    pub loaded: Loaded,
    /// Variables the script passed to `.run(vars=...)` (`--var` and the like win).
    pub vars: BTreeMap<String, String>,
    /// The workflow the script asked for (`-w` wins).
    pub workflow: Option<String>,
}

impl From<Loaded> for Source {
    fn from(loaded: Loaded) -> Source {
        Source {
            loaded,
            vars: BTreeMap::new(),
            workflow: None,
        }
    }
}

/// The name a workflow read from standard input is reported under.
const STDIN: &str = "<stdin>";

/// Whether `path` means standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Loads `path`: `-` reads standard input, a script is run to build the workflow, and
/// anything else is read as a relay.yaml file.
pub fn load(path: &Path) -> CliResult<Option<Source>> {
    if is_stdin(path) {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::invalid(format!("cannot read the workflow from stdin: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            CliError::invalid(format!(
                "the workflow on stdin is not UTF-8 text (at byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        return from_text(&text, STDIN).map(|l| Some(Source::from(l)));
    }
    if let Some(lang) = crate::script::Lang::of(path) {
        let text = crate::script::build(path, lang)?;
        return Handoff::parse(&text, path)?.into_source(path).map(Some);
    }
    Ok(None)
}

/// Parses `text` as a workflow with no file of its own, under the name `origin`.
fn from_text(text: &str, origin: &str) -> CliResult<Loaded> {
    let at = crate::cwd::workdir()?.join(STDIN);
    relay_spec::load_source(text, origin, &at)
        .map_err(|e| CliError::lines(Exit::Invalid, load_error_lines(&e)))
}

/// What a script's `.run()` hands back to the binary (`AGENT_RELAY_EMIT_CONFIG`): the
/// workflow it built as relay.yaml text, or the file `run_yaml` named, and the variables
/// and workflow it asked for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    /// The relay.yaml text the builder wrote.
    #[serde(default)]
    pub config: Option<String>,
    /// A relay.yaml file to run instead (`run_yaml(path)`), relative to the current
    /// directory.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// `vars=` of `.run()`.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// `workflow=` of `.run()`.
    #[serde(default)]
    pub workflow: Option<String>,
}

impl Handoff {
    /// Reads what the script handed over.
    pub fn parse(text: &str, script: &Path) -> CliResult<Handoff> {
        serde_json::from_str(text).map_err(|e| {
            CliError::invalid(format!(
                "{} handed over something that is not a workflow ({e}); is its agent-relay SDK \
                 the one this binary bundles?",
                script.display()
            ))
        })
    }

    /// The workflow it names, loaded: the generated text is reported as
    /// `SCRIPT (generated relay.yaml)`, so positions point into what `.to_yaml()` prints.
    fn into_source(self, script: &Path) -> CliResult<Source> {
        let loaded = match (self.config, self.file) {
            (Some(text), None) => from_text(
                &text,
                &format!("{} (generated relay.yaml)", script.display()),
            )?,
            (None, Some(file)) => relay_spec::load_file(&file)
                .map_err(|e| CliError::lines(Exit::Invalid, load_error_lines(&e)))?,
            _ => {
                return Err(CliError::invalid(format!(
                    "{} handed over neither a workflow nor a file",
                    script.display()
                )));
            }
        };
        Ok(Source {
            loaded,
            vars: self.vars,
            workflow: self.workflow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handoff_names_a_workflow_its_variables_and_which_workflow() {
        let h = Handoff::parse(
            r#"{"config": "name: x\n", "vars": {"a": "1"}, "workflow": "main"}"#,
            Path::new("w.py"),
        )
        .unwrap();
        assert_eq!(h.config.as_deref(), Some("name: x\n"));
        assert_eq!(h.vars.get("a").map(String::as_str), Some("1"));
        assert_eq!(h.workflow.as_deref(), Some("main"));
    }

    #[test]
    fn an_unknown_handoff_is_refused_with_the_scripts_name() {
        let e = Handoff::parse(r#"{"yaml": "x"}"#, Path::new("w.py")).unwrap_err();
        assert_eq!(e.exit, Exit::Invalid);
        assert!(e.headline.unwrap().contains("w.py handed over"));
    }
}
